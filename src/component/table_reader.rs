//! The table reader: the core module that reads the tables and
//! reference-typed globals of one component level after init, slot by slot,
//! as [`RefId`]s (8 bytes each), through the probe prologues that
//! [`crate::edit::identify`] gives the level's modules.
//!
//! For a slot's reference it sets every instance's `probing` global, finds
//! the reference's function type with `ref.test` among the types of the
//! level's functions, calls it (`call_ref`, default arguments), clears
//! `probing` and looks which instance's `found` global the function set.
//! `ref.test` and `call_ref` need function references and GC, which the
//! runtime that runs the instrumented component must support (Wasmtime
//! does; the output needs neither).

use anyhow::Result;
use wasm_encoder::{
    BlockType, ExportKind, GlobalType, HeapType, Instruction as I, MemArg, RefType, TableType,
    ValType,
};

use crate::component::readers::ModuleBuilder;
use crate::component::snapshot::CHUNK;
use crate::edit::codegen;
use crate::plan::RefId;

/// What one accessor of the table reader reads.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Read {
    /// A table of this type.
    Table(TableType),
    /// A mutable global holding references of this type.
    Global(RefType),
}

/// A function type a probed reference may have: (params, results).
pub(crate) type ProbeType = (Vec<ValType>, Vec<ValType>);

/// Import name of the `probing` global of the `k`-th probed instance.
pub(crate) fn probing_import(k: usize) -> String {
    format!("probing-{k}")
}

/// Import name of the `found` global of the `k`-th probed instance.
pub(crate) fn found_import(k: usize) -> String {
    format!("found-{k}")
}

/// Import name of what read `n` reads.
pub(crate) fn read_import(n: usize) -> String {
    n.to_string()
}

/// Export name of the function for read `n`: `(offset: i64, len: i32) ->
/// retptr`, a `list<u8>` of 8 bytes per slot.
pub(crate) fn read_export(n: usize) -> String {
    format!("read-{n}")
}

/// Export name of the cursor function for read `n`: `() -> retptr`, the
/// next chunk ([`CHUNK`] bytes at most) of what read `n` reads, front to
/// back; an empty list at the end. For invokers, whose functions take no
/// arguments.
pub(crate) fn cursor_export(n: usize) -> String {
    format!("next-{n}")
}

/// The table reader of a level whose probed instances are `instances` (core
/// instance indices, whose `probing` and `found` globals it imports in this
/// order), reading `reads`, trying `types` for references.
pub(crate) fn table_reader(
    instances: &[u32],
    reads: &[Read],
    types: &[ProbeType],
) -> Result<wasm_encoder::Module> {
    let mut m = ModuleBuilder::default();
    let i32_mut = GlobalType {
        val_type: ValType::I32,
        mutable: true,
        shared: false,
    };
    let mut probed = Vec::with_capacity(instances.len());
    for (k, &instance) in instances.iter().enumerate() {
        let probing = m.import_global_of_type(&probing_import(k), i32_mut)?;
        let found = m.import_global_of_type(&found_import(k), i32_mut)?;
        probed.push((instance, probing, found));
    }
    let mut imported = Vec::with_capacity(reads.len());
    for (n, read) in reads.iter().enumerate() {
        imported.push(match *read {
            Read::Table(ty) => m.import_table(&read_import(n), ty)?,
            Read::Global(ty) => m.import_global_of_type(
                &read_import(n),
                GlobalType {
                    val_type: ValType::Ref(ty),
                    mutable: true,
                    shared: false,
                },
            )?,
        });
    }
    let type_indices: Vec<(u32, &ProbeType)> =
        types.iter().map(|t| (m.func_type(&t.0, &t.1), t)).collect();
    let own = m.memory(0);
    let identify_func = m.func(
        &[ValType::FUNCREF],
        &[ValType::I64],
        &[(1, ValType::I64)],
        &identify(&probed, &type_indices)?,
    );
    let identify_other = m.func(
        &[ValType::Ref(RefType::ANYREF)],
        &[ValType::I64],
        &[],
        &[
            [I::LocalGet(0)].as_slice(),
            &null_or_not_a_function(),
            &[I::End],
        ]
        .concat(),
    );
    let mut reads_funcs = Vec::with_capacity(reads.len());
    for (n, (read, &index)) in reads.iter().zip(&imported).enumerate() {
        let element = match *read {
            Read::Table(ty) => ty.element_type,
            Read::Global(ty) => ty,
        };
        // the function that turns one reference into its 8 bytes; `None`
        // when only null fits (a type of another hierarchy than func and
        // any, such as externref: null or not a function, as `ref.is_null`
        // says)
        let to_id = match hierarchy(element) {
            Hierarchy::Func => Some(identify_func),
            Hierarchy::Any => Some(identify_other),
            Hierarchy::Other => None,
        };
        let body = match *read {
            Read::Table(ty) => read_table(index, ty.table64, own, to_id),
            Read::Global(_) => read_global(index, own, to_id),
        };
        let func = m.func(
            &[ValType::I64, ValType::I32],
            &[ValType::I32],
            &[(1, ValType::I64), (3, ValType::I32)],
            &body,
        );
        m.export(&read_export(n), ExportKind::Func, func);
        reads_funcs.push(func);
    }
    // the cursors, after every read function: cursor = cursor + the length
    // read returned (own[4..8])
    for (n, &read) in reads_funcs.iter().enumerate() {
        let cursor = m.global(ValType::I64, &wasm_encoder::ConstExpr::i64_const(0));
        let func = m.func(
            &[],
            &[ValType::I32],
            &[],
            &[
                I::GlobalGet(cursor),
                I::I32Const(CHUNK as i32),
                I::Call(read),
                I::GlobalGet(cursor),
                I::I32Const(0),
                I::I32Load(MemArg {
                    offset: 4,
                    align: 2,
                    memory_index: own,
                }),
                I::I64ExtendI32U,
                I::I64Add,
                I::GlobalSet(cursor),
                I::End,
            ],
        );
        m.export(&cursor_export(n), ExportKind::Func, func);
    }
    m.export("memory", ExportKind::Memory, own);
    Ok(m.finish())
}

enum Hierarchy {
    Func,
    Any,
    Other,
}

fn hierarchy(ty: RefType) -> Hierarchy {
    use wasm_encoder::AbstractHeapType as A;
    match ty.heap_type {
        HeapType::Abstract {
            ty: A::Func | A::NoFunc,
            ..
        } => Hierarchy::Func,
        HeapType::Abstract {
            ty: A::Any | A::None | A::Eq | A::Struct | A::Array | A::I31,
            ..
        } => Hierarchy::Any,
        HeapType::Concrete(_) | HeapType::Exact(_) => Hierarchy::Func,
        HeapType::Abstract { .. } => Hierarchy::Other,
    }
}

/// `(ref: funcref) -> i64`: the [`RefId`] of `ref`.
fn identify(probed: &[(u32, u32, u32)], types: &[(u32, &ProbeType)]) -> Result<Vec<I<'static>>> {
    const REF: u32 = 0;
    const ID: u32 = 1;
    let mut code = vec![
        I::LocalGet(REF),
        I::RefIsNull,
        I::If(BlockType::Empty),
        I::I64Const(0),
        I::Return,
        I::End,
    ];
    for &(_, probing, _) in probed {
        code.extend([I::I32Const(1), I::GlobalSet(probing)]);
    }
    code.push(I::Block(BlockType::Empty));
    for &(ty, (params, results)) in types {
        code.extend([
            I::LocalGet(REF),
            I::RefTestNonNull(HeapType::Concrete(ty)),
            I::If(BlockType::Empty),
        ]);
        for &param in params {
            code.push(default(param));
        }
        code.extend([
            I::LocalGet(REF),
            I::RefCastNonNull(HeapType::Concrete(ty)),
            I::CallRef(ty),
        ]);
        code.extend(results.iter().map(|_| I::Drop));
        code.extend([I::Br(1), I::End]);
    }
    code.push(I::End);
    for &(_, probing, _) in probed {
        code.extend([I::I32Const(0), I::GlobalSet(probing)]);
    }
    code.extend([I::I64Const(RefId::UNKNOWN as i64), I::LocalSet(ID)]);
    for &(instance, _, found) in probed {
        // id = (instance + 1) << 32 | (found - 1); found = 0
        code.extend([
            I::GlobalGet(found),
            I::If(BlockType::Empty),
            I::I64Const(((u64::from(instance) + 1) << 32) as i64),
            I::GlobalGet(found),
            I::I32Const(1),
            I::I32Sub,
            I::I64ExtendI32U,
            I::I64Or,
            I::LocalSet(ID),
            I::I32Const(0),
            I::GlobalSet(found),
            I::End,
        ]);
    }
    code.extend([I::LocalGet(ID), I::End]);
    Ok(code)
}

/// The default value of a probe type's parameter.
fn default(ty: ValType) -> I<'static> {
    match ty {
        ValType::I32 => I::I32Const(0),
        ValType::I64 => I::I64Const(0),
        ValType::F32 => I::F32Const(0.0.into()),
        ValType::F64 => I::F64Const(0.0.into()),
        ValType::V128 => I::V128Const(0),
        ValType::Ref(r) => I::RefNull(r.heap_type),
    }
}

// Locals of the read functions: 0 offset (i64), 1 len (i32), 2 first slot
// (i64), 3 n slots (i32), 4 bytes (i32), 5 pages (i32).
const OFFSET: u32 = 0;
const LEN: u32 = 1;
const FIRST: u32 = 2;
const N: u32 = 3;
const BYTES: u32 = 4;
const PAGES: u32 = 5;

fn store_at(slot: &[I<'static>]) -> Vec<I<'static>> {
    // address = 8 + slot * 8
    let mut code = slot.to_vec();
    code.extend([I::I32Const(3), I::I32Shl]);
    code
}

/// `(offset, len) -> retptr` over table `table`: slots `offset / 8` on, at
/// most `len / 8` of them, each as [`RefId`] bytes.
fn read_table(table: u32, table64: bool, own: u32, to_id: Option<u32>) -> Vec<I<'static>> {
    let mut code = vec![
        I::LocalGet(OFFSET),
        I::I64Const(3),
        I::I64ShrU,
        I::LocalSet(FIRST),
    ];
    let mut size = vec![I::TableSize(table)];
    if !table64 {
        size.push(I::I64ExtendI32U);
    }
    code.extend(codegen::bytes_left(
        &[I::LocalGet(FIRST)],
        &size,
        &[
            I::LocalGet(LEN),
            I::I32Const(3),
            I::I32ShrU,
            I::I64ExtendI32U,
        ],
    ));
    code.extend([
        I::LocalTee(N),
        I::I32Const(3),
        I::I32Shl,
        I::LocalSet(BYTES),
    ]);
    code.extend(codegen::grow_to_hold(own, BYTES, PAGES));
    // for (i = n; i != 0; ) { i -= 1; own[8 + 8i] = id(table[first + i]) }
    code.extend([
        I::Block(BlockType::Empty),
        I::Loop(BlockType::Empty),
        I::LocalGet(N),
        I::I32Eqz,
        I::BrIf(1),
        I::LocalGet(N),
        I::I32Const(1),
        I::I32Sub,
        I::LocalSet(N),
    ]);
    code.extend(store_at(&[I::LocalGet(N)]));
    code.extend([
        I::LocalGet(FIRST),
        I::LocalGet(N),
        I::I64ExtendI32U,
        I::I64Add,
    ]);
    if !table64 {
        code.push(I::I32WrapI64);
    }
    code.push(I::TableGet(table));
    code.extend(id_of(to_id));
    code.extend([I::I64Store(slot_arg(own)), I::Br(0), I::End, I::End]);
    code.extend(codegen::return_own_list(own, BYTES));
    code.push(I::End);
    code
}

/// `(offset, len) -> retptr` over global `global`, a table of one slot.
fn read_global(global: u32, own: u32, to_id: Option<u32>) -> Vec<I<'static>> {
    // bytes = offset == 0 && len >= 8 ? 8 : 0
    let mut code = vec![
        I::LocalGet(OFFSET),
        I::I64Eqz,
        I::LocalGet(LEN),
        I::I32Const(8),
        I::I32GeU,
        I::I32And,
        I::I32Const(3),
        I::I32Shl,
        I::LocalSet(BYTES),
    ];
    code.extend(codegen::grow_to_hold(own, BYTES, PAGES));
    code.extend([I::LocalGet(BYTES), I::If(BlockType::Empty), I::I32Const(0)]);
    code.push(I::GlobalGet(global));
    code.extend(id_of(to_id));
    code.extend([I::I64Store(slot_arg(own)), I::End]);
    code.extend(codegen::return_own_list(own, BYTES));
    code.push(I::End);
    code
}

/// Turns the reference on the stack into its [`RefId`].
fn id_of(to_id: Option<u32>) -> Vec<I<'static>> {
    match to_id {
        Some(func) => vec![I::Call(func)],
        None => null_or_not_a_function().to_vec(),
    }
}

/// Turns the reference on the stack, which cannot be a function, into its
/// [`RefId`]: null, or not a function.
fn null_or_not_a_function() -> [I<'static>; 6] {
    [
        I::RefIsNull,
        I::If(BlockType::Result(ValType::I64)),
        I::I64Const(0),
        I::Else,
        I::I64Const(RefId::NOT_A_FUNCTION as i64),
        I::End,
    ]
}

/// Stores at `own[8 + address]`.
fn slot_arg(own: u32) -> MemArg {
    MemArg {
        offset: 8,
        align: 3,
        memory_index: own,
    }
}
