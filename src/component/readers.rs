//! The core modules that read state out of a running component, built with
//! one [`ModuleBuilder`] whose adders return the index they allocate:
//!
//! - the accessor module ([`accessor_module`]), which instrumentation adds
//!   to each component level that has state: one function per memory
//!   (`(offset, len) -> list<u8>`), global and probe;
//! - the in-place reader ([`in_place_reader`]), one per 32-bit memory, which
//!   returns the guest's own bytes without copying them;
//! - the chunk reader ([`chunk_reader_module`]), which the `transform`
//!   drop-in adds for invokers: memories front to back in chunks, `v128`
//!   globals in halves, through functions without parameters.
//!
//! The instruction sequences they share are in [`crate::edit::codegen`].

use anyhow::{Result, bail};
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, EntityType, ExportKind, ExportSection, Function,
    FunctionSection, GlobalSection, GlobalType, ImportSection, Instruction as I, MemArg,
    MemorySection, MemoryType, TypeSection, ValType,
};

use crate::component::names;
use crate::component::snapshot::CHUNK;
use crate::edit::codegen;
use crate::plan::{Accessor, ScalarType, State};

/// A core module under construction. Imports of a kind must come before
/// definitions of that kind, as in the index space; a late import is an
/// internal error rather than a shifted index.
#[derive(Default)]
pub(crate) struct ModuleBuilder {
    types: TypeSection,
    /// Function types added so far, for reuse.
    type_list: Vec<(Vec<ValType>, Vec<ValType>)>,
    imports: ImportSection,
    functions: FunctionSection,
    memories: MemorySection,
    globals: GlobalSection,
    exports: ExportSection,
    code: CodeSection,
    funcs: Space,
    memory_space: Space,
    global_space: Space,
    table_space: Space,
}

/// An index space of a module: how many items are imported and defined.
#[derive(Default)]
struct Space {
    imported: u32,
    defined: u32,
}

impl Space {
    fn import(&mut self, what: &str) -> Result<u32> {
        if self.defined != 0 {
            bail!("internal error: a {what} is imported after one was defined");
        }
        self.imported += 1;
        Ok(self.imported - 1)
    }

    fn define(&mut self) -> u32 {
        self.defined += 1;
        self.imported + self.defined - 1
    }
}

impl ModuleBuilder {
    /// The index of the function type `params -> results`, added when new.
    pub(crate) fn func_type(&mut self, params: &[ValType], results: &[ValType]) -> u32 {
        let key = (params.to_vec(), results.to_vec());
        if let Some(i) = self.type_list.iter().position(|t| *t == key) {
            return i as u32;
        }
        self.types
            .ty()
            .function(params.iter().copied(), results.iter().copied());
        self.type_list.push(key);
        self.type_list.len() as u32 - 1
    }

    /// Imports memory `state.name`; returns its index.
    pub(crate) fn import_memory(
        &mut self,
        name: &str,
        memory64: bool,
        page_size_log2: u32,
    ) -> Result<u32> {
        let index = self.memory_space.import("memory")?;
        self.imports.import(
            "state",
            name,
            EntityType::Memory(any_memory(memory64, page_size_log2)),
        );
        Ok(index)
    }

    /// Imports the mutable global `state.name` of type `val_type`; returns
    /// its index.
    pub(crate) fn import_global(&mut self, name: &str, val_type: ValType) -> Result<u32> {
        let index = self.global_space.import("global")?;
        self.imports
            .import("state", name, EntityType::Global(mutable(val_type)));
        Ok(index)
    }

    /// Imports table `state.name` of type `ty`; returns its index.
    pub(crate) fn import_table(&mut self, name: &str, ty: wasm_encoder::TableType) -> Result<u32> {
        let index = self.table_space.import("table")?;
        self.imports.import("state", name, EntityType::Table(ty));
        Ok(index)
    }

    /// Imports global `state.name` of type `ty`; returns its index.
    pub(crate) fn import_global_of_type(&mut self, name: &str, ty: GlobalType) -> Result<u32> {
        let index = self.global_space.import("global")?;
        self.imports.import("state", name, EntityType::Global(ty));
        Ok(index)
    }

    /// Defines a 32-bit memory of `minimum` 64 KiB pages; returns its index.
    pub(crate) fn memory(&mut self, minimum: u64) -> u32 {
        self.memories.memory(MemoryType {
            minimum,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        self.memory_space.define()
    }

    /// Defines a mutable global of type `val_type` starting at `init`;
    /// returns its index.
    pub(crate) fn global(&mut self, val_type: ValType, init: &ConstExpr) -> u32 {
        self.globals.global(mutable(val_type), init);
        self.global_space.define()
    }

    /// Defines a function of type `params -> results` with `locals` and
    /// `body` (which ends with `End`); returns its index.
    pub(crate) fn func(
        &mut self,
        params: &[ValType],
        results: &[ValType],
        locals: &[(u32, ValType)],
        body: &[I<'_>],
    ) -> u32 {
        let ty = self.func_type(params, results);
        self.functions.function(ty);
        let mut f = Function::new(locals.iter().copied());
        for instruction in body {
            f.instruction(instruction);
        }
        self.code.function(&f);
        self.funcs.define()
    }

    /// Exports item `index` of `kind` as `name`.
    pub(crate) fn export(&mut self, name: &str, kind: ExportKind, index: u32) {
        self.exports.export(name, kind, index);
    }

    /// The module, its sections in the order the binary format wants.
    pub(crate) fn finish(self) -> wasm_encoder::Module {
        let mut module = wasm_encoder::Module::new();
        module.section(&self.types);
        module.section(&self.imports);
        module.section(&self.functions);
        module.section(&self.memories);
        if !self.globals.is_empty() {
            module.section(&self.globals);
        }
        module.section(&self.exports);
        module.section(&self.code);
        module
    }
}

/// The type a reader imports a memory as: any size, the guest's page size.
fn any_memory(memory64: bool, page_size_log2: u32) -> MemoryType {
    MemoryType {
        minimum: 0,
        maximum: None,
        memory64,
        shared: false,
        page_size_log2: (page_size_log2 != 16).then_some(page_size_log2),
    }
}

fn mutable(val_type: ValType) -> GlobalType {
    GlobalType {
        val_type,
        mutable: true,
        shared: false,
    }
}

fn val_type(ty: ScalarType) -> ValType {
    match ty {
        ScalarType::I32 => ValType::I32,
        ScalarType::I64 => ValType::I64,
        ScalarType::F32 => ValType::F32,
        ScalarType::F64 => ValType::F64,
        ScalarType::V128 => ValType::V128,
    }
}

/// The memory a memory accessor reads, as `(memory64, page_size_log2)`.
fn memory_shape(accessor: &Accessor) -> Result<(bool, u32)> {
    match accessor.state {
        State::Memory {
            memory64,
            page_size_log2,
            ..
        } => Ok((memory64, page_size_log2)),
        _ => bail!(
            "internal error: accessor `{}` reads no memory",
            accessor.func
        ),
    }
}

/// `(offset: i64, len: i32) -> retptr`: the memory accessor's signature.
const READ_PARAMS: [ValType; 2] = [ValType::I64, ValType::I32];

/// The accessor module: it imports each piece of state of `accessors` as
/// `state` [`names::accessor_import`]`(n)` and exports one function per
/// accessor, named as the accessor, plus its own `memory`, which holds what
/// the memory accessors (and `v128` globals) return.
pub(crate) fn accessor_module(accessors: &[&Accessor]) -> Result<wasm_encoder::Module> {
    let mut m = ModuleBuilder::default();
    // What each accessor imported: a memory or a global.
    let mut imported = Vec::with_capacity(accessors.len());
    for (n, accessor) in accessors.iter().enumerate() {
        let import = names::accessor_import(n);
        imported.push(match accessor.state {
            State::Memory {
                memory64,
                page_size_log2,
                ..
            } => m.import_memory(&import, memory64, page_size_log2)?,
            State::Global { ty, .. } => m.import_global(&import, val_type(ty))?,
            State::Probe { .. } => m.import_global(&import, ValType::I32)?,
            State::Table { .. } | State::RefGlobal { .. } => bail!(
                "internal error: the accessor module cannot read `{}`, a table",
                accessor.func
            ),
        });
    }
    // Starts empty, so that it does not count against `--max-memory` during
    // init; grown when first needed.
    let own = m.memory(0);
    for (accessor, &state) in accessors.iter().zip(&imported) {
        let func = match accessor.state {
            State::Memory {
                memory64,
                page_size_log2,
                ..
            } => m.func(
                &READ_PARAMS,
                &[ValType::I32],
                &[(1, ValType::I64), (2, ValType::I32)],
                &copying_read(
                    SourceMemory {
                        memory: state,
                        memory64,
                        page_size_log2,
                    },
                    own,
                ),
            ),
            State::Global {
                ty: ScalarType::V128,
                ..
            } => m.func(&[], &[ValType::I32], &[], &v128_read(state, own)),
            State::Global { ty, .. } => {
                m.func(&[], &[val_type(ty)], &[], &[I::GlobalGet(state), I::End])
            }
            State::Probe { .. } => {
                m.func(&[], &[ValType::I32], &[], &[I::GlobalGet(state), I::End])
            }
            State::Table { .. } | State::RefGlobal { .. } => bail!(
                "internal error: the accessor module cannot read `{}`, a table",
                accessor.func
            ),
        };
        m.export(&accessor.func, ExportKind::Func, func);
    }
    m.export("memory", ExportKind::Memory, own);
    Ok(m.finish())
}

/// `(offset: i64, len: i32) -> retptr`: copies up to `len` bytes of
/// `source` from `offset` into memory `own`, stopping at the end of the
/// memory, and returns a pointer to `(ptr, len)` as the canonical ABI wants
/// for a `list<u8>` result.
fn copying_read(source: SourceMemory, own: u32) -> Vec<I<'static>> {
    const OFFSET: u32 = 0;
    const LEN: u32 = 1;
    let locals = CopyLocals {
        size: 2,
        n: 3,
        pages: 4,
    };
    let mut code = copy_out(
        source,
        own,
        &[I::LocalGet(OFFSET)],
        &[I::LocalGet(LEN), I::I64ExtendI32U],
        &locals,
    );
    // own[0..8] = (8, n); return 0
    code.extend(codegen::return_own_list(own, locals.n));
    code.push(I::End);
    code
}

/// The memory a copying reader reads.
struct SourceMemory {
    memory: u32,
    memory64: bool,
    page_size_log2: u32,
}

/// The locals (`size: i64`, `n: i32`, `pages: i32`) that [`copy_out`] uses.
struct CopyLocals {
    size: u32,
    n: u32,
    pages: u32,
}

/// Sets local `n` to the number of bytes to copy out of `source` from the
/// address `from` pushes (`i64`): at most what `len` pushes (`i64`), cut at
/// the end of the memory, 0 at or past it. Then copies them to
/// `own[8..8 + n]`, growing memory `own` to hold them.
fn copy_out(
    source: SourceMemory,
    own: u32,
    from: &[I<'static>],
    len: &[I<'static>],
    locals: &CopyLocals,
) -> Vec<I<'static>> {
    // size = memory.size(memory) << page_size_log2
    let mut code = codegen::memory_bytes(source.memory, source.memory64, source.page_size_log2);
    code.push(I::LocalSet(locals.size));
    // n = from >= size ? 0 : min(size - from, len)
    code.extend(codegen::bytes_left(from, &[I::LocalGet(locals.size)], len));
    code.push(I::LocalSet(locals.n));
    // grow the own memory to hold the return area and n bytes
    code.extend(codegen::grow_to_hold(own, locals.n, locals.pages));
    // if n != 0: copy memory[from..from + n] to own[8..8 + n]
    code.extend(codegen::copy_to_own(
        source.memory,
        source.memory64,
        own,
        from,
        locals.n,
    ));
    code
}

/// `() -> retptr`: stores `v128` global `global` at `own[0..16]` (growing
/// `own` the first time) and returns 0.
fn v128_read(global: u32, own: u32) -> Vec<I<'static>> {
    vec![
        I::MemorySize(own),
        I::I32Eqz,
        I::If(BlockType::Empty),
        I::I32Const(1),
        I::MemoryGrow(own),
        I::Drop,
        I::End,
        I::I32Const(0),
        I::GlobalGet(global),
        I::V128Store(MemArg {
            offset: 0,
            align: 4,
            memory_index: own,
        }),
        I::I32Const(0),
        I::End,
    ]
}

/// The in-place reader of one 32-bit guest memory: it imports only that
/// memory (as `state.memory`) and exports
///
/// - `read(offset: i64, len: i32) -> retptr`: returns `(ptr, n)` pointing at
///   the guest's own bytes `[offset, offset + n)`, with `n <= len`, cut at
///   the memory's size when first read (0 at or past the end). The 8-byte
///   return area is written into the guest memory outside the returned
///   range (at 0 when `offset >= 8`; else at 8, and then `n <= 8 - offset`;
///   past the end, after growing the memory, when it is smaller than 16
///   bytes), after saving what was there;
/// - `restore(retptr)`: the post-return function, which puts the saved bytes
///   back once the caller has copied the list.
///
/// Readers stop at the first empty chunk.
pub(crate) fn in_place_reader(page_size_log2: u32) -> Result<wasm_encoder::Module> {
    let mut m = ModuleBuilder::default();
    let memory = m.import_memory("memory", false, page_size_log2)?;
    let globals = InPlaceGlobals {
        size: m.global(ValType::I64, &ConstExpr::i64_const(-1)),
        saved_low: m.global(ValType::I32, &ConstExpr::i32_const(0)),
        saved_high: m.global(ValType::I32, &ConstExpr::i32_const(0)),
    };
    let read = m.func(
        &READ_PARAMS,
        &[ValType::I32],
        &[(1, ValType::I64), (2, ValType::I32)],
        &in_place_read(memory, page_size_log2, &globals),
    );
    let restore = m.func(
        &[ValType::I32],
        &[],
        &[],
        &in_place_restore(memory, &globals),
    );
    m.export("read", ExportKind::Func, read);
    m.export("restore", ExportKind::Func, restore);
    Ok(m.finish())
}

/// The globals of the in-place reader.
struct InPlaceGlobals {
    /// The memory's size in bytes when first read (-1: not yet).
    size: u32,
    /// The saved bytes of the return area, `[0..4]` and `[4..8]`.
    saved_low: u32,
    saved_high: u32,
}

fn i32_at(memory: u32, offset: u64) -> MemArg {
    MemArg {
        offset,
        align: 2,
        memory_index: memory,
    }
}

/// The body of the in-place reader's `read`.
fn in_place_read(memory: u32, page_size_log2: u32, g: &InPlaceGlobals) -> Vec<I<'static>> {
    const OFFSET: u32 = 0;
    const LEN: u32 = 1;
    const SIZE: u32 = 2;
    const N: u32 = 3;
    const RETURN_AREA: u32 = 4;
    let bytes_in_memory = codegen::memory_bytes(memory, false, page_size_log2);
    let mut code = vec![
        I::GlobalGet(g.size),
        I::I64Const(-1),
        I::I64Eq,
        I::If(BlockType::Empty),
    ];
    code.extend(bytes_in_memory.clone());
    code.extend([
        I::GlobalSet(g.size),
        I::End,
        I::GlobalGet(g.size),
        I::LocalSet(SIZE),
    ]);
    code.extend(codegen::bytes_left(
        &[I::LocalGet(OFFSET)],
        &[I::LocalGet(SIZE)],
        &[I::LocalGet(LEN), I::I64ExtendI32U],
    ));
    code.extend([
        I::LocalSet(N),
        // choose the return area
        I::LocalGet(SIZE),
        I::I64Const(16),
        I::I64LtU,
        I::If(BlockType::Empty),
        // tiny memory: the area is the size rounded up to 8, grown into
        I::LocalGet(SIZE),
        I::I64Const(7),
        I::I64Add,
        I::I64Const(-8),
        I::I64And,
        I::I32WrapI64,
        I::LocalSet(RETURN_AREA),
        I::Block(BlockType::Empty),
        I::Loop(BlockType::Empty),
    ]);
    code.extend(bytes_in_memory);
    code.extend([
        I::LocalGet(RETURN_AREA),
        I::I64ExtendI32U,
        I::I64Const(8),
        I::I64Add,
        I::I64GeU,
        I::BrIf(1),
        I::I32Const(1),
        I::MemoryGrow(memory),
        I::I32Const(-1),
        I::I32Eq,
        I::If(BlockType::Empty),
        I::Unreachable,
        I::End,
        I::Br(0),
        I::End,
        I::End,
        I::Else,
        I::LocalGet(OFFSET),
        I::I64Const(8),
        I::I64GeU,
        I::If(BlockType::Empty),
        I::I32Const(0),
        I::LocalSet(RETURN_AREA),
        I::Else,
        // area = 8, n = min(n, 8 - offset)
        I::I32Const(8),
        I::LocalSet(RETURN_AREA),
        I::LocalGet(N),
        I::I32Const(8),
        I::LocalGet(OFFSET),
        I::I32WrapI64,
        I::I32Sub,
        I::LocalGet(N),
        I::I32Const(8),
        I::LocalGet(OFFSET),
        I::I32WrapI64,
        I::I32Sub,
        I::I32LtU,
        I::Select,
        I::LocalSet(N),
        I::End,
        I::End,
        // save area[0..8], then area[0..8] = (n == 0 ? 0 : offset, n)
        I::LocalGet(RETURN_AREA),
        I::I32Load(i32_at(memory, 0)),
        I::GlobalSet(g.saved_low),
        I::LocalGet(RETURN_AREA),
        I::I32Load(i32_at(memory, 4)),
        I::GlobalSet(g.saved_high),
        I::LocalGet(RETURN_AREA),
        I::LocalGet(OFFSET),
        I::I32WrapI64,
        I::I32Const(0),
        I::LocalGet(N),
        I::Select,
        I::I32Store(i32_at(memory, 0)),
        I::LocalGet(RETURN_AREA),
        I::LocalGet(N),
        I::I32Store(i32_at(memory, 4)),
        I::LocalGet(RETURN_AREA),
        I::End,
    ]);
    code
}

/// The body of the in-place reader's `restore(retptr)`.
fn in_place_restore(memory: u32, g: &InPlaceGlobals) -> Vec<I<'static>> {
    const RETURN_AREA: u32 = 0;
    vec![
        I::LocalGet(RETURN_AREA),
        I::GlobalGet(g.saved_low),
        I::I32Store(i32_at(memory, 0)),
        I::LocalGet(RETURN_AREA),
        I::GlobalGet(g.saved_high),
        I::I32Store(i32_at(memory, 4)),
        I::End,
    ]
}

/// The names under which [`chunk_reader_module`] imports and exports.
pub(crate) struct ChunkNames;

impl ChunkNames {
    /// The import of the `k`-th memory.
    pub(crate) fn memory(k: usize) -> String {
        format!("m{k}")
    }
    /// The import of the `k`-th `v128` global.
    pub(crate) fn v128(k: usize) -> String {
        format!("g{k}")
    }
    /// The export returning the next chunk of the `k`-th memory.
    pub(crate) fn chunks(k: usize) -> String {
        format!("next-{k}")
    }
    /// The exports returning the low and high halves of the `k`-th `v128`.
    pub(crate) fn halves(k: usize) -> [String; 2] {
        [format!("low-{k}"), format!("high-{k}")]
    }
}

/// The chunk reader: it imports `state` [`ChunkNames::memory`] for each of
/// `memories` and [`ChunkNames::v128`] for each of `v128s` globals, and
/// exports [`ChunkNames::chunks`] per memory (`() -> list<u8>`, the next
/// [`CHUNK`] bytes), [`ChunkNames::halves`] per `v128` (`() -> s64`) and its
/// own `memory`, which holds what the chunk functions return.
pub(crate) fn chunk_reader_module(
    memories: &[&Accessor],
    v128s: usize,
) -> Result<wasm_encoder::Module> {
    let mut m = ModuleBuilder::default();
    let mut imported = Vec::with_capacity(memories.len());
    for (k, a) in memories.iter().enumerate() {
        let (memory64, page_size_log2) = memory_shape(a)?;
        let memory = m.import_memory(&ChunkNames::memory(k), memory64, page_size_log2)?;
        imported.push((memory, memory64, page_size_log2));
    }
    let mut globals = Vec::with_capacity(v128s);
    for k in 0..v128s {
        globals.push(m.import_global(&ChunkNames::v128(k), ValType::V128)?);
    }
    let own = m.memory(1);
    for (k, &(memory, memory64, page_size_log2)) in imported.iter().enumerate() {
        // where the memory's next chunk starts
        let cursor = m.global(ValType::I64, &ConstExpr::i64_const(0));
        let read_chunk = m.func(
            &[],
            &[ValType::I32],
            &[(1, ValType::I64), (2, ValType::I32)],
            &next_chunk(
                SourceMemory {
                    memory,
                    memory64,
                    page_size_log2,
                },
                own,
                cursor,
            ),
        );
        m.export(&ChunkNames::chunks(k), ExportKind::Func, read_chunk);
    }
    for (k, &global) in globals.iter().enumerate() {
        for (name, lane) in ChunkNames::halves(k).iter().zip([0, 1]) {
            let half = m.func(
                &[],
                &[ValType::I64],
                &[],
                &[I::GlobalGet(global), I::I64x2ExtractLane(lane), I::End],
            );
            m.export(name, ExportKind::Func, half);
        }
    }
    m.export("memory", ExportKind::Memory, own);
    Ok(m.finish())
}

/// `() -> retptr`: copies the next `CHUNK` bytes (fewer at the end) of
/// `source`, from the position in global `cursor`, into memory `own`
/// at 8, advances the cursor past them and returns a pointer to `(8, n)`, as
/// the canonical ABI wants for a `list<u8>` result.
fn next_chunk(source: SourceMemory, own: u32, cursor: u32) -> Vec<I<'static>> {
    let locals = CopyLocals {
        size: 0,
        n: 1,
        pages: 2,
    };
    let mut code = copy_out(
        source,
        own,
        &[I::GlobalGet(cursor)],
        &[I::I64Const(i64::from(CHUNK))],
        &locals,
    );
    code.extend([
        // cursor += n
        I::GlobalGet(cursor),
        I::LocalGet(locals.n),
        I::I64ExtendI32U,
        I::I64Add,
        I::GlobalSet(cursor),
    ]);
    // own[0..8] = (8, n); return 0
    code.extend(codegen::return_own_list(own, locals.n));
    code.push(I::End);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_after_a_definition_is_an_internal_error() {
        let mut m = ModuleBuilder::default();
        m.memory(0);
        let err = m.import_memory("late", false, 16).unwrap_err().to_string();
        assert!(err.starts_with("internal error"), "{err}");
    }

    #[test]
    fn function_types_are_shared() {
        let mut m = ModuleBuilder::default();
        let a = m.func_type(&[ValType::I32], &[]);
        let b = m.func_type(&[], &[ValType::I64]);
        assert_eq!((a, b, m.func_type(&[ValType::I32], &[])), (0, 1, 0));
    }

    /// Each shape validates, with the memory indices each function uses.
    #[test]
    fn every_reader_validates() -> Result<()> {
        let memory = |index, memory64, page_size_log2| Accessor {
            func: format!("memory-{index}"),
            path: Vec::new(),
            instance: 0,
            module: 0,
            state: State::Memory {
                index,
                memory64,
                page_size_log2,
            },
        };
        let global = |index, ty| Accessor {
            func: format!("global-{index}"),
            path: Vec::new(),
            instance: 0,
            module: 0,
            state: State::Global { index, ty },
        };
        let accessors = [
            memory(0, false, 16),
            memory(1, true, 0),
            global(0, ScalarType::V128),
            global(1, ScalarType::F32),
        ];
        let all: Vec<&Accessor> = accessors.iter().collect();
        let memories: Vec<&Accessor> = accessors[..2].iter().collect();
        let features = crate::component::parse::features();
        for module in [
            accessor_module(&all)?,
            in_place_reader(16)?,
            in_place_reader(0)?,
            chunk_reader_module(&memories, 2)?,
        ] {
            wasmparser::Validator::new_with_features(features).validate_all(&module.finish())?;
        }
        Ok(())
    }
}
