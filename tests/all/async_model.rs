//! The async component model: components using its builtins and async init
//! functions pre-initialize, and state the snapshot cannot carry (streams,
//! futures, waitable sets, error contexts, backpressure, tasks still
//! pending) is refused by name.
//!
//! Each case is one WAT component: a `libc` module holding the memory, the
//! builtins under test lowered from the canon section, and a module `$m`
//! with a mutable global `$n` (read by `get`), an `init` lifted `async`
//! (with a callback `cb`, or stackful) and whatever `init` does with the
//! builtins.

use wasmtime::component::Val;

use crate::support::*;

/// One builtin the module imports: its name in the module (`"" NAME`), the
/// `canon` that makes it, and its core type.
struct Builtin(&'static str, &'static str, &'static str);

const TASK_RETURN: Builtin = Builtin("task.return", "task.return", "(func)");
const YIELD: Builtin = Builtin("yield", "thread.yield", "(func (result i32))");
const CONTEXT_GET: Builtin = Builtin("context.get", "context.get i32 0", "(func (result i32))");
const CONTEXT_SET: Builtin = Builtin("context.set", "context.set i32 0", "(func (param i32))");
const SET_NEW: Builtin = Builtin("set.new", "waitable-set.new", "(func (result i32))");
const SET_DROP: Builtin = Builtin("set.drop", "waitable-set.drop", "(func (param i32))");
const JOIN: Builtin = Builtin("join", "waitable.join", "(func (param i32 i32))");
const STREAM_NEW: Builtin = Builtin("stream.new", "stream.new $st", "(func (result i64))");
const STREAM_DROP_R: Builtin = Builtin(
    "stream.drop-readable",
    "stream.drop-readable $st",
    "(func (param i32))",
);
const STREAM_DROP_W: Builtin = Builtin(
    "stream.drop-writable",
    "stream.drop-writable $st",
    "(func (param i32))",
);
const FUTURE_NEW: Builtin = Builtin("future.new", "future.new $ft", "(func (result i64))");
const FUTURE_DROP_R: Builtin = Builtin(
    "future.drop-readable",
    "future.drop-readable $ft",
    "(func (param i32))",
);
const FUTURE_WRITE: Builtin = Builtin(
    "future.write",
    "future.write $ft (memory $libc \"mem\")",
    "(func (param i32 i32) (result i32))",
);
const FUTURE_DROP_W: Builtin = Builtin(
    "future.drop-writable",
    "future.drop-writable $ft",
    "(func (param i32))",
);
const ERROR_NEW: Builtin = Builtin(
    "error.new",
    "error-context.new (memory $libc \"mem\") string-encoding=utf8",
    "(func (param i32 i32) (result i32))",
);
const ERROR_DROP: Builtin = Builtin("error.drop", "error-context.drop", "(func (param i32))");
const BP_INC: Builtin = Builtin("bp.inc", "backpressure.inc", "(func)");
const BP_DEC: Builtin = Builtin("bp.dec", "backpressure.dec", "(func)");

/// How `init` is lifted.
enum Lift {
    /// `async (callback cb)`: `init` and `cb` return callback codes.
    Callback,
    /// `async` without a callback: `init` runs on its own stack.
    Stackful,
}

/// The component described in the module docs.
fn component(builtins: &[Builtin], lift: Lift, body: &str) -> String {
    let canon: String = builtins
        .iter()
        .map(|Builtin(name, canon, _)| format!("  (core func ${name} (canon {canon}))\n"))
        .collect();
    let imports: String = builtins
        .iter()
        .map(|Builtin(name, _, ty)| {
            let params = ty.strip_prefix("(func").and_then(|t| t.strip_suffix(')'));
            let params = params.expect("a core func type");
            format!("    (import \"\" \"{name}\" (func ${name} {params}))\n")
        })
        .collect();
    let exports: String = builtins
        .iter()
        .map(|Builtin(name, ..)| format!(" (export \"{name}\" (func ${name}))"))
        .collect();
    let lift = match lift {
        Lift::Callback => r#"async (callback (func $i "cb"))"#,
        Lift::Stackful => "async",
    };
    format!(
        r#"(component
  (type $st (stream u8))
  (type $ft (future u8))
  (core module $libc (memory (export "mem") 1))
  (core instance $libc (instantiate $libc))
{canon}  (core module $m
    (import "" "mem" (memory 1))
{imports}    (global $n (mut i32) (i32.const 0))
{body}
    (func (export "get") (result i32) (global.get $n)))
  (core instance $i (instantiate $m
    (with "" (instance (export "mem" (memory $libc "mem")){exports}))))
  (func (export "component-init") async (canon lift (core func $i "init") {lift}))
  (func (export "get") (result u32) (canon lift (core func $i "get"))))"#
    )
}

/// Callback codes.
const EXIT: i32 = 0;
const YIELD_CODE: i32 = 1;

fn get(component: &[u8]) -> Val {
    call1(component, &["get"]).unwrap()
}

/// The canonical functions of a component, in order, as wasmparser reads
/// them.
fn canonical_functions(component: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        if let wasmparser::Payload::ComponentCanonicalSection(section) = payload.unwrap() {
            for func in section {
                found.push(format!("{:?}", func.unwrap()));
            }
        }
    }
    found
}

/// Pre-initializes `wat`, checks the init ran at build time only and the
/// builtins were kept as they were, and returns `get` on the output.
fn pre_initialized(wat_text: &str) -> Val {
    let input = wat(wat_text);
    assert_eq!(get(&input), Val::U32(0), "before init");
    let output = pre_init(&input).unwrap_or_else(|e| panic!("{e:#}"));
    validate(&output);
    assert_eq!(canonical_functions(&output), canonical_functions(&input));
    get(&output)
}

#[test]
fn an_async_init_with_a_callback_runs_to_its_return() {
    let body = format!(
        r#"    (func (export "init") (result i32)
      (global.set $n (i32.const 7))
      (i32.const {YIELD_CODE}))
    (func (export "cb") (param i32 i32 i32) (result i32)
      (global.set $n (i32.add (global.get $n) (i32.const 35)))
      (call $task.return)
      (i32.const {EXIT}))"#
    );
    let wat = component(&[TASK_RETURN], Lift::Callback, &body);
    assert_eq!(pre_initialized(&wat), Val::U32(42));
}

#[test]
fn a_stackful_async_init_that_yields() {
    let body = r#"    (func (export "init")
      (global.set $n (i32.const 40))
      (drop (call $yield))
      (global.set $n (i32.add (global.get $n) (i32.const 2)))
      (call $task.return))"#;
    let wat = component(&[TASK_RETURN, YIELD], Lift::Stackful, body);
    assert_eq!(pre_initialized(wat.as_str()), Val::U32(42));
}

/// Every class of builtin, each released before init returns.
#[test]
fn an_init_using_every_class_of_builtin_and_releasing_it() {
    let body = format!(
        r#"    (func (export "init") (result i32)
      (local $set i32) (local $pair i64) (local $err i32)
      ;; context
      (call $context.set (i32.const 5))
      (global.set $n (call $context.get))
      ;; backpressure on and off again
      (call $bp.inc)
      (call $bp.dec)
      ;; a stream: its readable end joins a waitable set and leaves it
      (local.set $set (call $set.new))
      (local.set $pair (call $stream.new))
      (call $join (i32.wrap_i64 (local.get $pair)) (local.get $set))
      (call $join (i32.wrap_i64 (local.get $pair)) (i32.const 0))
      (call $stream.drop-readable (i32.wrap_i64 (local.get $pair)))
      (call $stream.drop-writable (i32.wrap_i64 (i64.shr_u (local.get $pair) (i64.const 32))))
      (call $set.drop (local.get $set))
      ;; a future
      (local.set $pair (call $future.new))
      (call $future.drop-readable (i32.wrap_i64 (local.get $pair)))
      ;; a future's writer must write before it drops its end: the reader
      ;; is gone, so the write returns at once
      (drop (call $future.write
        (i32.wrap_i64 (i64.shr_u (local.get $pair) (i64.const 32))) (i32.const 0)))
      (call $future.drop-writable (i32.wrap_i64 (i64.shr_u (local.get $pair) (i64.const 32))))
      ;; an error context, its message in memory
      (i32.store (i32.const 0) (i32.const 0x21697968))
      (local.set $err (call $error.new (i32.const 0) (i32.const 4)))
      (call $error.drop (local.get $err))
      (global.set $n (i32.add (global.get $n) (i32.const 30)))
      (i32.const {YIELD_CODE}))
    (func (export "cb") (param i32 i32 i32) (result i32)
      (global.set $n (i32.add (global.get $n) (i32.const 7)))
      (call $task.return)
      (i32.const {EXIT}))"#
    );
    let builtins = [
        TASK_RETURN,
        CONTEXT_GET,
        CONTEXT_SET,
        BP_INC,
        BP_DEC,
        SET_NEW,
        SET_DROP,
        JOIN,
        STREAM_NEW,
        STREAM_DROP_R,
        STREAM_DROP_W,
        FUTURE_NEW,
        FUTURE_DROP_R,
        FUTURE_WRITE,
        FUTURE_DROP_W,
        ERROR_NEW,
        ERROR_DROP,
    ];
    let wat = component(&builtins, Lift::Callback, &body);
    assert_eq!(pre_initialized(&wat), Val::U32(42));
}

/// Runs the CLI on `wat` with `args`; asserts the failure contract (exit
/// 1, one `error:` line, no output) and returns the line.
fn cli_fails(wat_text: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (output, out_path) = cli_in(dir.path(), wat_text.as_bytes(), args);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(!out_path.exists(), "no output may be written");
    stderr
}

/// An init that keeps `what` (a local set by `make`) and returns.
fn leaves(builtins: &[Builtin], make: &str) -> String {
    let body = format!(
        r#"    (global $kept (mut i64) (i64.const 0))
    (func (export "init") (result i32)
      {make}
      (global.set $n (i32.const 1))
      (call $task.return)
      (i32.const {EXIT}))
    (func (export "cb") (param i32 i32 i32) (result i32) unreachable)"#
    );
    let mut all = vec![TASK_RETURN];
    all.extend(builtins.iter().map(|Builtin(a, b, c)| Builtin(a, b, c)));
    component(&all, Lift::Callback, &body)
}

#[test]
fn open_streams_futures_sets_and_error_contexts_are_refused() {
    let cases = [
        (
            leaves(&[STREAM_NEW], "(global.set $kept (call $stream.new))"),
            "a stream",
        ),
        (
            leaves(&[FUTURE_NEW], "(global.set $kept (call $future.new))"),
            "a future",
        ),
        (
            leaves(
                &[SET_NEW],
                "(global.set $kept (i64.extend_i32_u (call $set.new)))",
            ),
            "a waitable set",
        ),
        (
            leaves(
                &[ERROR_NEW],
                "(global.set $kept (i64.extend_i32_u (call $error.new (i32.const 0) (i32.const 0))))",
            ),
            "an error context",
        ),
    ];
    for (wat_text, what) in cases {
        let err = cli_fails(&wat_text, &[]);
        assert!(
            err.contains("init function `component-init` failed")
                && err.contains("object(s) of the async component model alive"),
            "{what}: {err}"
        );
        // the library refuses it too
        let err = format!("{:#}", pre_init(&wat(&wat_text)).unwrap_err());
        assert!(err.contains("async component model alive"), "{what}: {err}");
    }
}

#[test]
fn backpressure_left_on_is_refused() {
    let err = cli_fails(&leaves(&[BP_INC], "(call $bp.inc)"), &[]);
    assert!(err.contains("backpressure"), "{err}");
    // on and off again is fine
    let balanced = leaves(&[BP_INC, BP_DEC], "(call $bp.inc) (call $bp.dec)");
    assert_eq!(
        call1(&pre_init(&wat(&balanced)).unwrap(), &["get"]).unwrap(),
        Val::U32(1)
    );
}

/// `init` returns its result, then waits on a waitable set that nothing
/// will ever make ready: the task never ends, which is found as soon as
/// nothing can run (not at the two-minute timeout).
#[test]
fn a_task_still_pending_after_init_returned_is_refused() {
    let body = r#"    (func (export "init") (result i32)
      (global.set $n (i32.const 1))
      (call $task.return)
      ;; WAIT (2) on a new, empty waitable set
      (i32.or (i32.shl (call $set.new) (i32.const 4)) (i32.const 2)))
    (func (export "cb") (param i32 i32 i32) (result i32) unreachable)"#;
    let wat_text = component(&[TASK_RETURN, SET_NEW], Lift::Callback, body);
    let err = cli_fails(&wat_text, &["--timeout", "2m"]);
    assert!(
        err.contains("it returned, but tasks it started can never finish"),
        "{err}"
    );
}

/// `init` waits, before returning, on something that never arrives: the
/// event loop has nothing left to run.
#[test]
fn an_init_that_deadlocks_is_an_error() {
    let body = r#"    (func (export "init") (result i32)
      (i32.or (i32.shl (call $set.new) (i32.const 4)) (i32.const 2)))
    (func (export "cb") (param i32 i32 i32) (result i32) unreachable)"#;
    let wat_text = component(&[SET_NEW], Lift::Callback, body);
    let err = cli_fails(&wat_text, &[]);
    assert!(err.contains("deadlock"), "{err}");
}

#[test]
fn an_async_init_that_traps_after_yielding_is_an_error() {
    let body = format!(
        r#"    (func (export "init") (result i32) (i32.const {YIELD_CODE}))
    (func (export "cb") (param i32 i32 i32) (result i32) unreachable)"#
    );
    let wat_text = component(&[], Lift::Callback, &body);
    let err = cli_fails(&wat_text, &[]);
    assert!(
        err.contains("init function `component-init` failed") && err.contains("unreachable"),
        "{err}"
    );
}

/// Two sibling components: `$caller`'s init calls `$callee`'s async export
/// through an async lower, gets a subtask (the callee yields before it
/// returns), waits for it in a waitable set, drops the subtask and the set,
/// and keeps the answer.
#[test]
fn an_async_lower_with_a_subtask_awaited_in_a_waitable_set() {
    assert_eq!(pre_initialized(&async_lower(true)), Val::U32(42));
}

/// The same init, returning without waiting for its subtask: the callee
/// finishes after the caller's task is gone, and Wasmtime 48 fails that
/// subtask's return (`resource not present`): init is refused with that
/// error, before the checks for handles left in a table would run.
#[test]
fn a_subtask_left_by_init_is_refused() {
    let err = cli_fails(&async_lower(false), &[]);
    assert!(
        err.contains(
            "init function `component-init` failed: it returned, but a task it started (or a \
             subtask it left) failed: resource not present"
        ),
        "{err}"
    );
}

/// The components of [`an_async_lower_with_a_subtask_awaited_in_a_waitable_set`];
/// without `wait`, init returns right after starting the call.
fn async_lower(wait: bool) -> String {
    let leave = if wait {
        ""
    } else {
        "(global.set $n (i32.const 1)) (call $ret) (return (i32.const 0))"
    };
    format!(
        r#"(component
  (component $callee
    (core module $m
      (import "" "task.return" (func $ret (param i32)))
      (func (export "run") (result i32) (i32.const {YIELD_CODE}))
      (func (export "cb") (param i32 i32 i32) (result i32)
        (call $ret (i32.const 41))
        (i32.const {EXIT})))
    (core func $ret (canon task.return (result u32)))
    (core instance $i (instantiate $m (with "" (instance (export "task.return" (func $ret))))))
    (func (export "answer") async (result u32)
      (canon lift (core func $i "run") async (callback (func $i "cb")))))
  (component $caller
    (import "answer" (func $answer async (result u32)))
    (core module $libc (memory (export "mem") 1))
    (core instance $libc (instantiate $libc))
    (core func $answer (canon lower (func $answer) async (memory $libc "mem")))
    (core func $set.new (canon waitable-set.new))
    (core func $set.wait (canon waitable-set.wait (memory $libc "mem")))
    (core func $set.poll (canon waitable-set.poll (memory $libc "mem")))
    (core func $set.drop (canon waitable-set.drop))
    (core func $join (canon waitable.join))
    (core func $subtask.drop (canon subtask.drop))
    (core func $ret (canon task.return))
    (core module $m
      (import "" "mem" (memory 1))
      (import "" "answer" (func $answer (param i32) (result i32)))
      (import "" "set.new" (func $set.new (result i32)))
      (import "" "set.wait" (func $set.wait (param i32 i32) (result i32)))
      (import "" "set.poll" (func $set.poll (param i32 i32) (result i32)))
      (import "" "set.drop" (func $set.drop (param i32)))
      (import "" "join" (func $join (param i32 i32)))
      (import "" "subtask.drop" (func $subtask.drop (param i32)))
      (import "" "task.return" (func $ret))
      (global $n (mut i32) (i32.const 0))
      (func (export "init") (result i32)
        (local $status i32) (local $subtask i32) (local $set i32)
        ;; the answer goes to mem[100]
        (local.set $status (call $answer (i32.const 100)))
        ;; STARTED (1), with the subtask's handle above the low 4 bits
        (if (i32.ne (i32.and (local.get $status) (i32.const 0xf)) (i32.const 1))
          (then unreachable))
        (local.set $subtask (i32.shr_u (local.get $status) (i32.const 4)))
        {leave}
        (local.set $set (call $set.new))
        (call $join (local.get $subtask) (local.get $set))
        ;; nothing has happened yet
        (if (i32.ne (call $set.poll (local.get $set) (i32.const 200)) (i32.const 0))
          (then unreachable))
        ;; SUBTASK (1) events until its state (at mem[204]) is RETURNED (2)
        (loop $wait
          (if (i32.ne (call $set.wait (local.get $set) (i32.const 200)) (i32.const 1))
            (then unreachable))
          (br_if $wait (i32.ne (i32.load (i32.const 204)) (i32.const 2))))
        (call $join (local.get $subtask) (i32.const 0))
        (call $subtask.drop (local.get $subtask))
        (call $set.drop (local.get $set))
        (global.set $n (i32.add (i32.load (i32.const 100)) (i32.const 1)))
        (call $ret)
        (i32.const {EXIT}))
      (func (export "cb") (param i32 i32 i32) (result i32) unreachable)
      (func (export "get") (result i32) (global.get $n)))
    (core instance $i (instantiate $m (with "" (instance
      (export "mem" (memory $libc "mem"))
      (export "answer" (func $answer))
      (export "set.new" (func $set.new))
      (export "set.wait" (func $set.wait))
      (export "set.poll" (func $set.poll))
      (export "set.drop" (func $set.drop))
      (export "join" (func $join))
      (export "subtask.drop" (func $subtask.drop))
      (export "task.return" (func $ret))))))
    (func (export "component-init") async
      (canon lift (core func $i "init") async (callback (func $i "cb"))))
    (func (export "get") (result u32) (canon lift (core func $i "get"))))
  (instance $callee (instantiate $callee))
  (instance $caller (instantiate $caller (with "answer" (func $callee "answer"))))
  (export "component-init" (func $caller "component-init"))
  (export "get" (func $caller "get")))"#
    )
}
