;; libmain.so: the application. Its `component-type` section (added by the
;; test from WIT) makes its exports the component's exports. It reaches
;; libcounter's data through GOT.mem (including a function pointer there),
;; takes the address of libcounter's
;; `square` through GOT.func (a slot of the shared table), calls `bump` and
;; `malloc` directly, exports `cabi_realloc` on top of libc's `realloc` (as
;; wit-bindgen puts one in every library with component exports: lifting
;; this library's exports uses it, and the linker re-exports it from `env`
;; for the adapter), writes to stdout through wasip1 (the adapter) with an
;; iovec on the shadow stack (`__stack_pointer`), receives the linker's
;; dlopen/dlsym table through `__wasm_set_libraries`, and has one mutable
;; global of its own. `optional_hook` is a weak import no library defines: the
;; linker satisfies it with a trapping stub.
;;
;; Layout at __memory_base:
;;   +0  op          a function pointer (table index), 0 until init
;;   +4  note        {ptr, len}: the current note
;;   +12 first note  {ptr, len}: the note init made
;;   +20 libraries   the dlopen table __wasm_set_libraries received
;;   +24 return area {ptr, len} for string results
;;   +32 "made by init"
(module
  (@dylink.0
    (mem-info (memory 48 2))
    (needed "libcounter.so" "libc.so")
    (import-info "env" "optional_hook" binding-weak))
  (type $i32_to_i32 (func (param i32) (result i32)))
  (import "env" "memory" (memory 0))
  (import "env" "__indirect_function_table" (table 0 funcref))
  (import "env" "__memory_base" (global $memory_base i32))
  (import "env" "__stack_pointer" (global $sp (mut i32)))
  (import "env" "bump" (func $bump (param i32) (result i32)))
  (import "env" "malloc" (func $malloc (param i32) (result i32)))
  (import "env" "realloc" (func $realloc (param i32 i32) (result i32)))
  (import "env" "optional_hook" (func $optional_hook))
  (import "GOT.mem" "counter" (global $counter (mut i32)))
  (import "GOT.mem" "ctor_runs" (global $ctor_runs (mut i32)))
  (import "GOT.mem" "counter_tag" (global $counter_tag (mut i32)))
  (import "GOT.mem" "handler" (global $handler (mut i32)))
  (import "GOT.func" "square" (global $square (mut i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  (global $calls (mut i32) (i32.const 0))

  (data (global.get $memory_base)
    "\00\00\00\00" "\00\00\00\00" "\00\00\00\00" "\00\00\00\00"
    "\00\00\00\00" "\00\00\00\00" "\00\00\00\00" "\00\00\00\00"
    "made by init")

  (func (export "cabi_realloc")
    (param $old i32) (param $old_size i32) (param $align i32) (param $new_size i32)
    (result i32)
    ;; libc's blocks are 16-byte aligned, enough for every canonical ABI type
    (call $realloc (local.get $old) (local.get $new_size)))

  (func (export "__wasm_set_libraries") (param $libraries i32)
    (i32.store offset=20 (global.get $memory_base) (local.get $libraries)))

  (func (export "component-init")
    (local $note i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (drop (call $bump (i32.const 5)))
    (i32.store (global.get $memory_base) (global.get $square))
    (local.set $note (call $malloc (i32.const 12)))
    (memory.copy
      (local.get $note)
      (i32.add (global.get $memory_base) (i32.const 32))
      (i32.const 12))
    (i32.store offset=4 (global.get $memory_base) (local.get $note))
    (i32.store offset=8 (global.get $memory_base) (i32.const 12))
    (i32.store offset=12 (global.get $memory_base) (local.get $note))
    (i32.store offset=16 (global.get $memory_base) (i32.const 12)))

  (func $return_string (param $ptr i32) (param $len i32) (result i32)
    (i32.store offset=24 (global.get $memory_base) (local.get $ptr))
    (i32.store offset=28 (global.get $memory_base) (local.get $len))
    (i32.add (global.get $memory_base) (i32.const 24)))

  (func (export "get-counter") (result i32)
    (i32.load (global.get $counter)))

  (func (export "get-ctor-runs") (result i32)
    (i32.load (global.get $ctor_runs)))

  (func (export "init-calls") (result i32)
    (global.get $calls))

  (func (export "apply") (param $x i32) (result i32)
    (local $op i32)
    (local.set $op (i32.load (global.get $memory_base)))
    (if (result i32) (i32.eqz (local.get $op))
      (then (i32.const -1))
      (else (call_indirect (type $i32_to_i32) (local.get $x) (local.get $op)))))

  (func (export "call-handler") (param $x i32) (result i32)
    (call_indirect (type $i32_to_i32)
      (local.get $x)
      (i32.load (global.get $handler))))

  (func (export "tag") (result i32)
    (global.get $counter_tag))

  (func (export "note") (result i32)
    (i32.add (global.get $memory_base) (i32.const 4)))

  (func (export "first-note") (result i32)
    (i32.add (global.get $memory_base) (i32.const 12)))

  (func (export "set-note") (param $ptr i32) (param $len i32)
    (i32.store offset=4 (global.get $memory_base) (local.get $ptr))
    (i32.store offset=8 (global.get $memory_base) (local.get $len)))

  (func (export "say") (result i32)
    (local $frame i32) (local $errno i32)
    (local.set $frame (i32.sub (global.get $sp) (i32.const 16)))
    (global.set $sp (local.get $frame))
    ;; iovec {buf, len} = the note, then fd_write's count after it
    (i32.store (local.get $frame) (i32.load offset=4 (global.get $memory_base)))
    (i32.store offset=4 (local.get $frame) (i32.load offset=8 (global.get $memory_base)))
    (local.set $errno
      (call $fd_write
        (i32.const 1)
        (local.get $frame)
        (i32.const 1)
        (i32.add (local.get $frame) (i32.const 8))))
    (global.set $sp (i32.add (local.get $frame) (i32.const 16)))
    (local.get $errno))

  ;; The dlopen table (see wit-component's linking.rs):
  ;;   libraries: {count, libs}; lib: {name_len, name, symbol_count, symbols};
  ;;   symbol: {name_len, name, address}, sorted by name; a function's address
  ;;   is a table index, a global's a memory address.
  (func $library (result i32)
    (i32.load offset=4 (i32.load offset=20 (global.get $memory_base))))

  (func $symbol (param $i i32) (result i32)
    (i32.add
      (i32.load offset=12 (call $library))
      (i32.mul (local.get $i) (i32.const 12))))

  (func (export "dl-libraries") (result i32)
    (i32.load (i32.load offset=20 (global.get $memory_base))))

  (func (export "dl-library") (result i32)
    (call $return_string
      (i32.load offset=4 (call $library))
      (i32.load (call $library))))

  (func (export "dl-symbols") (result i32)
    (i32.load offset=8 (call $library)))

  (func (export "dl-symbol") (param $i i32) (result i32)
    (call $return_string
      (i32.load offset=4 (call $symbol (local.get $i)))
      (i32.load (call $symbol (local.get $i)))))

  (func (export "dl-call") (param $i i32) (param $x i32) (result i32)
    (call_indirect (type $i32_to_i32)
      (local.get $x)
      (i32.load offset=8 (call $symbol (local.get $i)))))

  (func (export "dl-load") (param $i i32) (result i32)
    (i32.load (i32.load offset=8 (call $symbol (local.get $i))))))
