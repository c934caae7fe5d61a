;; libc.so: the least of a libc these libraries need, `malloc` and `realloc`,
;; a bump allocator starting at `__heap_base` (reached through GOT.mem, as
;; wasm-ld's PIC code does) that grows the shared memory as needed. Each block
;; is 16-byte aligned, its size in the 4 bytes before it. The heap top, the
;; allocator's only state, lives in its own static data at `__memory_base`.
(module
  (@dylink.0
    (mem-info (memory 4 2)))
  (import "env" "memory" (memory 0))
  (import "env" "__memory_base" (global $memory_base i32))
  (import "GOT.mem" "__heap_base" (global $heap_base (mut i32)))

  (func $malloc (export "malloc") (param $size i32) (result i32)
    (local $top i32) (local $ptr i32) (local $end i32)
    (local.set $top (i32.load (global.get $memory_base)))
    (if (i32.eqz (local.get $top))
      (then (local.set $top (global.get $heap_base))))
    ;; room for the size, then align to 16
    (local.set $ptr
      (i32.and (i32.add (local.get $top) (i32.const 19)) (i32.const -16)))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
      (then
        (if (i32.eq
              (memory.grow
                (i32.sub
                  (i32.shr_u (i32.add (local.get $end) (i32.const 0xffff)) (i32.const 16))
                  (memory.size)))
              (i32.const -1))
          (then unreachable))))
    (i32.store (global.get $memory_base) (local.get $end))
    (i32.store offset=0 (i32.sub (local.get $ptr) (i32.const 4)) (local.get $size))
    (local.get $ptr))

  (func (export "realloc") (param $old i32) (param $size i32) (result i32)
    (local $new i32) (local $old_size i32)
    (local.set $new (call $malloc (local.get $size)))
    (if (local.get $old)
      (then
        (local.set $old_size (i32.load (i32.sub (local.get $old) (i32.const 4))))
        (memory.copy
          (local.get $new)
          (local.get $old)
          (select
            (local.get $old_size)
            (local.get $size)
            (i32.lt_u (local.get $old_size) (local.get $size))))))
    (local.get $new)))
