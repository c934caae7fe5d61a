//! Encoding shared by the code this crate synthesizes: instruction
//! sequences of the reader functions (the component front end's `readers`) and section
//! contents without their size (probes' code sections, module edits).

use anyhow::{Context, Result};
use wasm_encoder::{BlockType, Instruction as I, ValType};

/// Pushes the size in bytes, as `i64`, of memory `memory`.
pub fn memory_bytes(memory: u32, memory64: bool, page_size_log2: u32) -> Vec<I<'static>> {
    let mut code = vec![I::MemorySize(memory)];
    if !memory64 {
        code.push(I::I64ExtendI32U);
    }
    code.extend([I::I64Const(i64::from(page_size_log2)), I::I64Shl]);
    code
}

/// Pushes, as `i32`, how many bytes to return from `offset` in a memory of
/// `size` bytes when at most `len` are asked for:
/// `offset >= size ? 0 : min(size - offset, len)`. Each operand is an
/// instruction that pushes an `i64`.
pub fn bytes_left(
    offset: &[I<'static>],
    size: &[I<'static>],
    len: &[I<'static>],
) -> Vec<I<'static>> {
    let mut code = Vec::new();
    code.extend_from_slice(offset);
    code.extend_from_slice(size);
    code.extend([
        I::I64GeU,
        I::If(BlockType::Result(ValType::I32)),
        I::I32Const(0),
        I::Else,
    ]);
    // select(size - offset, len, size - offset < len)
    for _ in 0..2 {
        code.extend_from_slice(size);
        code.extend_from_slice(offset);
        code.push(I::I64Sub);
        code.extend_from_slice(len);
    }
    code.extend([I::I64LtU, I::Select, I::I32WrapI64, I::End]);
    code
}

/// Grows memory `own` (64 KiB pages) so that it holds `8 + n` bytes, where
/// local `n` is an `i32`; uses local `pages` (`i32`) as scratch; traps when
/// the memory cannot grow.
pub fn grow_to_hold(own: u32, n: u32, pages: u32) -> Vec<I<'static>> {
    vec![
        // pages = (n + 8 + 0xffff) >> 16
        I::LocalGet(n),
        I::I64ExtendI32U,
        I::I64Const(8 + 0xffff),
        I::I64Add,
        I::I64Const(16),
        I::I64ShrU,
        I::I32WrapI64,
        I::LocalTee(pages),
        I::MemorySize(own),
        I::I32GtU,
        I::If(BlockType::Empty),
        I::LocalGet(pages),
        I::MemorySize(own),
        I::I32Sub,
        I::MemoryGrow(own),
        I::I32Const(-1),
        I::I32Eq,
        I::If(BlockType::Empty),
        I::Unreachable,
        I::End,
        I::End,
    ]
}

/// Copies `n` bytes (local `n`, `i32`) of memory `memory` from the address
/// `src` pushes (`i64`) to `own[8..8 + n]`, unless `n` is 0.
pub fn copy_to_own(
    memory: u32,
    memory64: bool,
    own: u32,
    src: &[I<'static>],
    n: u32,
) -> Vec<I<'static>> {
    let mut code = vec![I::LocalGet(n), I::If(BlockType::Empty), I::I32Const(8)];
    code.extend_from_slice(src);
    if !memory64 {
        code.push(I::I32WrapI64);
    }
    code.extend([
        I::LocalGet(n),
        I::MemoryCopy {
            src_mem: memory,
            dst_mem: own,
        },
        I::End,
    ]);
    code
}

/// Writes the canonical ABI return area of a `list<u8>` at `own[0..8]`:
/// `(8, n)`, and pushes its address, 0.
pub fn return_own_list(own: u32, n: u32) -> Vec<I<'static>> {
    let store = |offset| {
        I::I32Store(wasm_encoder::MemArg {
            offset,
            align: 2,
            memory_index: own,
        })
    };
    vec![
        I::I32Const(0),
        I::I32Const(8),
        store(0),
        I::I32Const(0),
        I::LocalGet(n),
        store(4),
        I::I32Const(0),
    ]
}

/// A section encodes as its size followed by its contents; keeps the contents.
pub(crate) fn strip_size(mut sized: Vec<u8>) -> Result<Vec<u8>> {
    let mut reader = wasmparser::BinaryReader::new(&sized, 0);
    reader
        .read_var_u32()
        .context("internal error: an encoded section has no size")?;
    let start = reader.original_position();
    sized.drain(..start);
    Ok(sized)
}
