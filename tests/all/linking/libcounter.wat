;; libcounter.so: static data placed at `__memory_base`, two functions placed
;; in the shared table at `__table_base` by an element segment, data
;; relocations (`__wasm_apply_data_relocs` stores an absolute pointer to its
;; own string, and a function pointer, `__table_base` + 0, to `double`) and a
;; constructor (`__wasm_call_ctors`), both called by the start function of
;; the linker's `__init` module when the component is instantiated. Data
;; symbols are exported as globals holding their offset from `__memory_base`.
;;
;; Layout at __memory_base:
;;   +0  counter    i32, 7 in the data segment; the constructor adds 1000
;;   +4  ctor_runs  i32, how many times the constructor ran
;;   +8  tag        {ptr, len}: a string, ptr filled in by the data relocation
;;   +16 "ctr!"
;;   +20 handler    a function pointer, filled in by the data relocation
(module
  (@dylink.0
    (mem-info (memory 24 2) (table 2 0)))
  (import "env" "memory" (memory 0))
  (import "env" "__indirect_function_table" (table 0 funcref))
  (import "env" "__memory_base" (global $memory_base i32))
  (import "env" "__table_base" (global $table_base i32))

  (global (export "counter") i32 (i32.const 0))
  (global (export "ctor_runs") i32 (i32.const 4))
  (global (export "counter_tag") i32 (i32.const 8))
  (global (export "handler") i32 (i32.const 20))

  (data (global.get $memory_base)
    "\07\00\00\00" "\00\00\00\00" "\00\00\00\00" "\04\00\00\00" "ctr!"
    "\00\00\00\00")
  (elem (global.get $table_base) func $double $square)

  (func (export "__wasm_apply_data_relocs")
    (i32.store offset=8
      (global.get $memory_base)
      (i32.add (global.get $memory_base) (i32.const 16)))
    (i32.store offset=20
      (global.get $memory_base)
      (i32.add (global.get $table_base) (i32.const 0))))

  (func (export "__wasm_call_ctors")
    (i32.store offset=4
      (global.get $memory_base)
      (i32.add (i32.load offset=4 (global.get $memory_base)) (i32.const 1)))
    (drop (call $bump (i32.const 1000))))

  (func $bump (export "bump") (param $by i32) (result i32)
    (local $v i32)
    (local.set $v (i32.add (i32.load (global.get $memory_base)) (local.get $by)))
    (i32.store (global.get $memory_base) (local.get $v))
    (local.get $v))

  (func $double (export "double") (param i32) (result i32)
    (i32.shl (local.get 0) (i32.const 1)))

  (func $square (export "square") (param i32) (result i32)
    (i32.mul (local.get 0) (local.get 0))))
