;; A component whose init registers callbacks the way an interpreter
;; registers builtins or a plugin host its handlers: it grows a funcref
;; table shared by two core instances and fills the new slots, each
;; instance with its own functions. Wizer and `wasmtime wizer` refuse such
;; an init; `component-init` carries the table: the output starts with the
;; slots filled, written by element segments of the instance that owns each
;; function.
;;
;;   component-init examples/callbacks.wat -o callbacks.init.wasm -v
;;   wasmtime run --invoke 'call(3, 7)' callbacks.init.wasm     # 49
(component
  (core module $host
    (type $handler (func (param i32) (result i32)))
    (table $handlers (export "handlers") 1 funcref)
    (global $count (export "count") (mut i32) (i32.const 0))
    (func $identity (type $handler) (local.get 0))
    (elem (i32.const 0) func $identity)
    ;; Calls handler `slot` with `x`; -1 when there is none.
    (func (export "call") (param $slot i32) (param $x i32) (result i32)
      (if (i32.ge_u (local.get $slot) (table.size $handlers))
        (then (return (i32.const -1))))
      (if (ref.is_null (table.get $handlers (local.get $slot)))
        (then (return (i32.const -1))))
      (call_indirect $handlers (type $handler) (local.get $x) (local.get $slot)))
    (func (export "registered") (result i32) (global.get $count)))
  (core module $plugin
    (type $handler (func (param i32) (result i32)))
    (import "host" "handlers" (table $handlers 1 funcref))
    (import "host" "count" (global $count (mut i32)))
    (func $double (type $handler) (i32.mul (local.get 0) (i32.const 2)))
    (func $negate (type $handler) (i32.sub (i32.const 0) (local.get 0)))
    (func $square (type $handler) (i32.mul (local.get 0) (local.get 0)))
    (elem declare func $double $negate $square)
    ;; Appends a handler; returns its slot.
    (func $register (param $f funcref) (result i32)
      (global.set $count (i32.add (global.get $count) (i32.const 1)))
      (table.grow $handlers (local.get $f) (i32.const 1)))
    (func (export "init")
      (drop (call $register (ref.func $double)))
      (drop (call $register (ref.func $negate)))
      (drop (call $register (ref.func $square)))))
  (core instance $host (instantiate $host))
  (core instance $plugin (instantiate $plugin (with "host" (instance $host))))
  (func (export "component-init") (canon lift (core func $plugin "init")))
  (func (export "call") (param "slot" u32) (param "x" s32) (result s32)
    (canon lift (core func $host "call")))
  (func (export "registered") (result u32) (canon lift (core func $host "registered"))))
