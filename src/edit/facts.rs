//! Facts about one core module that the phases need, whatever holds the
//! module: its index, its bytes, the memories and mutable globals it
//! defines, and what it imports. Gathered during the validating walk
//! ([`ModuleFrame`] while the module is read, [`finish_module`] at its end),
//! so that any front end that walks modules can reuse them.

use anyhow::{Context, Result, bail};
use std::ops::Range;
use wasmparser::{GlobalType, MemoryType, TypeRef, ValType};

/// What the later phases need to know about one core module: where it is
/// and the mutable state it defines.
pub struct ModuleInfo {
    /// The module's index in its parent's core module index space.
    pub index: u32,
    /// The module's bytes (from the `\0asm` header on) within the input.
    pub range: Range<usize>,
    /// Memories the module defines (imported memories are owned elsewhere).
    pub memories: Vec<MemoryDef>,
    /// Mutable globals the module defines.
    pub globals: Vec<GlobalDef>,
    /// Size of the module's global index space.
    pub global_count: u32,
    /// Number of functions the module imports.
    pub imported_funcs: u32,
    /// Mutable reference-typed globals, defined or imported: accepted as long
    /// as init does not write them (see [`crate::edit::probe`]).
    pub ref_globals: Vec<u32>,
}

/// A memory defined by a module.
#[derive(Clone, Copy)]
pub struct MemoryDef {
    /// Index in the module's memory index space (imports included).
    pub index: u32,
    /// The declared type.
    pub ty: MemoryType,
}

/// A mutable global defined by a module.
#[derive(Clone, Copy)]
pub struct GlobalDef {
    /// Index in the module's global index space (imports included).
    pub index: u32,
    /// The global's value type.
    pub ty: ValType,
}

/// What a walk has gathered about a module before its end: where it is and
/// how many of each item it imports.
#[derive(Default)]
pub struct ModuleFrame {
    /// The module's index in its parent.
    index: u32,
    range: Range<usize>,
    imported_memories: u32,
    imported_globals: u32,
    imported_funcs: u32,
}

impl ModuleFrame {
    /// A module with index `index` in its parent, whose bytes are `range`.
    pub fn new(index: u32, range: Range<usize>) -> ModuleFrame {
        ModuleFrame {
            index,
            range,
            ..Default::default()
        }
    }

    /// Counts the memories, globals and functions of the module's import
    /// section.
    pub fn count_imports(&mut self, imports: &wasmparser::ImportSectionReader<'_>) -> Result<()> {
        for import in imports.clone().into_imports() {
            match import.context("failed to parse an import")?.ty {
                TypeRef::Memory(_) => self.imported_memories += 1,
                TypeRef::Global(_) => self.imported_globals += 1,
                TypeRef::Func(_) | TypeRef::FuncExact(_) => self.imported_funcs += 1,
                _ => {}
            }
        }
        Ok(())
    }
}

/// The facts about the module `frame` walked, from `types`, the validator's
/// types at the module's end; an error for state that cannot be snapshotted.
pub fn finish_module(
    frame: ModuleFrame,
    types: &wasmparser::types::TypesRef<'_>,
) -> Result<ModuleInfo> {
    let mut memories = Vec::new();
    for index in frame.imported_memories..types.memory_count() {
        let ty = types.memory_at(index);
        if ty.shared {
            bail!(
                "core module {} defines shared memory {index}; shared memories (threads) cannot \
                 be snapshotted",
                frame.index
            );
        }
        memories.push(MemoryDef { index, ty });
    }
    let mut globals = Vec::new();
    let mut ref_globals = Vec::new();
    for index in 0..types.global_count() {
        let GlobalType {
            content_type,
            mutable,
            shared,
        } = types.global_at(index);
        if !mutable {
            continue;
        }
        if let ValType::Ref(_) = content_type {
            ref_globals.push(index);
            continue;
        }
        if index < frame.imported_globals {
            continue;
        }
        if shared {
            bail!(
                "mutable global {index} of core module {} is shared; shared globals are not \
                 supported",
                frame.index
            );
        }
        match content_type {
            ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64 | ValType::V128 => {}
            other => bail!(
                "mutable global {index} of core module {} has type `{other}`, which \
                 component-init cannot snapshot yet (supported: i32, i64, f32, f64, v128)",
                frame.index
            ),
        }
        globals.push(GlobalDef {
            index,
            ty: content_type,
        });
    }
    Ok(ModuleInfo {
        index: frame.index,
        range: frame.range,
        memories,
        globals,
        global_count: types.global_count(),
        imported_funcs: frame.imported_funcs,
        ref_globals,
    })
}
