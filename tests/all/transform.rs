//! `component_init::transform`, the drop-in for `component-init-transform`,
//! used the way componentize-py uses that crate: the caller's own Wasmtime
//! linker with host functions, an init function that takes arguments (the
//! caller's closure calls it), an invoker over `wasmtime::component` calls,
//! and staged pre-initialization where stage 1 has an extra (stub) module.

use crate::support::*;
use anyhow::{Context, anyhow};
use async_trait::async_trait;
use component_init::transform::{Invoker, Stage2Map, initialize, initialize_staged};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use wasmtime::component::{Component, Instance, Linker};
use wasmtime::{Config, Engine, Store};

/// What the host functions see and record.
#[derive(Clone, Default)]
struct Host {
    seed: u32,
    recorded: Arc<Mutex<Vec<u32>>>,
}

fn engine() -> Engine {
    let mut config = Config::new();
    config.wasm_multi_memory(true);
    config.wasm_memory64(true);
    Engine::new(&config).unwrap()
}

/// The caller's linker: `test:host/env` with `seed` and `record`.
fn linker(engine: &Engine) -> anyhow::Result<Linker<Host>> {
    let mut linker = Linker::<Host>::new(engine);
    let mut env = linker.instance("test:host/env")?;
    env.func_wrap("seed", |store, (): ()| {
        let host: &Host = store.data();
        Ok((host.seed,))
    })?;
    env.func_wrap("record", |store, (value,): (u32,)| {
        let host: &Host = store.data();
        host.recorded.lock().unwrap().push(value);
        Ok(())
    })?;
    Ok(linker)
}

/// An invoker over a Wasmtime instance, as componentize-py writes one; it
/// also logs the names it is asked to call.
struct WasmtimeInvoker {
    store: Store<Host>,
    instance: Instance,
    called: Arc<Mutex<Vec<String>>>,
}

impl WasmtimeInvoker {
    async fn call<R>(&mut self, function: &str) -> anyhow::Result<R>
    where
        (R,): wasmtime::component::ComponentNamedList
            + wasmtime::component::Lift
            + Send
            + Sync
            + 'static,
    {
        self.called.lock().unwrap().push(function.to_string());
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut self.store, function)?;
        Ok(func.call_async(&mut self.store, ()).await?.0)
    }
}

#[async_trait]
impl Invoker for WasmtimeInvoker {
    async fn call_s32(&mut self, function: &str) -> anyhow::Result<i32> {
        self.call(function).await
    }
    async fn call_s64(&mut self, function: &str) -> anyhow::Result<i64> {
        self.call(function).await
    }
    async fn call_f32(&mut self, function: &str) -> anyhow::Result<f32> {
        self.call(function).await
    }
    async fn call_f64(&mut self, function: &str) -> anyhow::Result<f64> {
        self.call(function).await
    }
    async fn call_list_u8(&mut self, function: &str) -> anyhow::Result<Vec<u8>> {
        self.call(function).await
    }
}

type InitFuture = Pin<Box<dyn Future<Output = anyhow::Result<Box<dyn Invoker>>> + Send>>;

/// The caller's `initialize` closure: instantiates the instrumented bytes
/// with its own linker and calls `test:app/setup#init(name, factor)`.
fn closure(
    host: Host,
    name: &'static str,
    factor: u32,
    called: Arc<Mutex<Vec<String>>>,
) -> impl FnOnce(Vec<u8>) -> InitFuture {
    move |instrumented: Vec<u8>| -> InitFuture {
        Box::pin(async move {
            let engine = engine();
            let component = Component::new(&engine, &instrumented)?;
            let linker = linker(&engine)?;
            let mut store = Store::new(&engine, host);
            let instance = linker.instantiate_async(&mut store, &component).await?;
            let setup = instance
                .get_export_index(&mut store, None, "test:app/setup")
                .context("no export test:app/setup")?;
            let init = instance
                .get_export_index(&mut store, Some(&setup), "init")
                .context("no function init")?;
            let init = instance
                .get_typed_func::<(String, u32), (Result<(), String>,)>(&mut store, &init)?;
            let (result,) = init
                .call_async(&mut store, (name.to_string(), factor))
                .await?;
            result.map_err(|e| anyhow!("init failed: {e}"))?;
            Ok(Box::new(WasmtimeInvoker {
                store,
                instance,
                called,
            }) as Box<dyn Invoker>)
        })
    }
}

/// Instantiates `component` with the caller's linker and calls each export
/// with no arguments, returning their results.
fn call_exports(
    component: &[u8],
    host: &Host,
    exports: &[&str],
) -> anyhow::Result<Vec<wasmtime::component::Val>> {
    let engine = engine();
    let component = Component::new(&engine, component)?;
    let linker = linker(&engine)?;
    let mut store = Store::new(&engine, host.clone());
    let instance = linker.instantiate(&mut store, &component)?;
    let mut out = Vec::new();
    for name in exports {
        let func = instance
            .get_func(&mut store, *name)
            .with_context(|| format!("no export {name}"))?;
        let mut results =
            vec![wasmtime::component::Val::Bool(false); func.ty(&store).results().len()];
        func.call(&mut store, &[], &mut results)?;
        out.push(
            results
                .into_iter()
                .next()
                .unwrap_or(wasmtime::component::Val::Bool(false)),
        );
    }
    Ok(out)
}

/// The application: module `app` (memory, globals, a heap, a string kept
/// from init) and module `lib` (a counter `app` bumps during init). In the
/// stubbed variant (stage 1), the host's `record` is replaced by module
/// `stub`, which sits between the two, so `lib` is module 2 there and
/// module 1 in the real component (stage 2).
fn app(stubbed: bool) -> Vec<u8> {
    let env_type = if stubbed {
        r#"(export "seed" (func (result u32)))"#
    } else {
        r#"(export "seed" (func (result u32)))
           (export "record" (func (param "value" u32)))"#
    };
    let stub_module = if stubbed {
        r#"(core module $stub (func (export "record") (param i32)))"#
    } else {
        ""
    };
    let env_instance = if stubbed {
        r#"(core instance $stub_i (instantiate $stub))
           (core instance $env_i (export "seed" (func $seed)) (export "record" (func $stub_i "record")))"#
    } else {
        r#"(core func $record (canon lower (func $env "record")))
           (core instance $env_i (export "seed" (func $seed)) (export "record" (func $record)))"#
    };
    wat(&format!(
        r#"(component
  (import "test:host/env" (instance $env {env_type}))
  (core module $app
    (import "env" "seed" (func $seed (result i32)))
    (import "env" "record" (func $record (param i32)))
    (import "lib" "bump" (func $bump (result i32)))
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 4096))
    (global $count (mut i32) (i32.const 0))
    (global $scale (mut f64) (f64.const 1))
    (data (i32.const 16) "hello")
    (data (i32.const 100) "factor must not be zero")
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p
        (i32.and
          (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get 2))))
      (global.set $heap (i32.add (local.get $p) (local.get 3)))
      (local.get $p))
    ;; init(name: string, factor: u32) -> result<_, string>
    (func (export "init") (param $ptr i32) (param $len i32) (param $factor i32) (result i32)
      (if (i32.eqz (local.get $factor))
        (then
          (i32.store (i32.const 48) (i32.const 1))
          (i32.store (i32.const 52) (i32.const 100))
          (i32.store (i32.const 56) (i32.const 23))
          (return (i32.const 48))))
      (i32.store (i32.const 8) (local.get $ptr))
      (i32.store (i32.const 12) (local.get $len))
      (global.set $count (i32.mul (local.get $factor) (call $seed)))
      (global.set $scale (f64.div (f64.convert_i32_u (local.get $factor)) (f64.const 4)))
      (call $record (local.get $factor))
      (drop (call $bump))
      (i32.store (i32.const 48) (i32.const 0))
      (i32.const 48))
    (func (export "greeting") (result i32) (i32.const 8))
    (func (export "count") (result i32) (global.get $count))
    (func (export "scale") (result f64) (global.get $scale))
    (func (export "log") (call $record (global.get $count)))
    (func (export "first") (result i32) (i32.load8_u (i32.const 16))))
  {stub_module}
  (core module $lib
    (global $calls (mut i32) (i32.const 0))
    (func (export "bump") (result i32)
      (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
      (global.get $calls))
    (func (export "calls") (result i32) (global.get $calls)))
  (core func $seed (canon lower (func $env "seed")))
  {env_instance}
  (core instance $lib_i (instantiate $lib))
  (core instance $app_i (instantiate $app (with "env" (instance $env_i)) (with "lib" (instance $lib_i))))
  (type $outcome (result (error string)))
  (func $init (param "name" string) (param "factor" u32) (result $outcome)
    (canon lift (core func $app_i "init") (memory $app_i "memory")
      (realloc (func $app_i "cabi_realloc"))))
  (instance $setup (export "init" (func $init)))
  (export "test:app/setup" (instance $setup))
  (func (export "greeting") (result string)
    (canon lift (core func $app_i "greeting") (memory $app_i "memory")))
  (func (export "count") (result u32) (canon lift (core func $app_i "count")))
  (func (export "scale") (result f64) (canon lift (core func $app_i "scale")))
  (func (export "log") (canon lift (core func $app_i "log")))
  (func (export "first") (result u32) (canon lift (core func $app_i "first")))
  (func (export "calls") (result u32) (canon lift (core func $lib_i "calls"))))"#
    ))
}

const STATE: &[&str] = &["greeting", "count", "scale", "calls", "first"];

fn host(seed: u32) -> Host {
    Host {
        seed,
        recorded: Arc::default(),
    }
}

fn state(component: &[u8]) -> Vec<wasmtime::component::Val> {
    call_exports(component, &host(0), STATE).unwrap()
}

fn expected(name: &str, count: u32, scale: f64, calls: u32) -> Vec<wasmtime::component::Val> {
    use wasmtime::component::Val;
    vec![
        Val::String(name.into()),
        Val::U32(count),
        Val::Float64(scale),
        Val::U32(calls),
        Val::U32(u32::from(b'h')),
    ]
}

use crate::support::block_on;

#[test]
fn init_with_arguments_runs_in_the_callers_closure() {
    let input = app(false);
    assert_eq!(state(&input), expected("", 0, 1.0, 0));

    let host = host(6);
    let called = Arc::new(Mutex::new(Vec::new()));
    let output = block_on(initialize(
        &input,
        closure(host.clone(), "world", 7, called.clone()),
    ))
    .unwrap();
    validate(&output);
    // The host's `record` ran once, during init, in the closure.
    assert_eq!(*host.recorded.lock().unwrap(), [7]);
    // Without the host's seed (0 now), the output still holds 7 * 6.
    assert_eq!(state(&output), expected("world", 42, 1.75, 1));
    // Every export stays, the init function's interface included.
    assert_eq!(export_names(&output), export_names(&input));
    // The invoker was asked for the memory and each global by name.
    let called = called.lock().unwrap().clone();
    assert!(
        called.contains(&"component-init-get-memory-0".to_string()),
        "{called:?}"
    );
    assert!(
        called.iter().all(|n| n.starts_with("component-init-get-")),
        "{called:?}"
    );
    // 4 globals (heap, count, scale, calls), each read once; the rest are
    // calls for chunks of the memory (how many depends on where the reader
    // stops: at a short chunk or at an empty one).
    for global in 0..4 {
        let name = format!("component-init-get-global-{global}");
        assert_eq!(
            called.iter().filter(|n| **n == name).count(),
            1,
            "{called:?}"
        );
    }
    assert!(
        called
            .iter()
            .filter(|n| !n.starts_with("component-init-get-global-"))
            .all(|n| n == "component-init-get-memory-0"),
        "{called:?}"
    );

    // The output's host imports still work after pre-initialization.
    let after = host_with_log(&output);
    assert_eq!(after, [42]);
}

/// Calls `log` on `component` and returns what the host recorded.
fn host_with_log(component: &[u8]) -> Vec<u32> {
    let host = host(0);
    call_exports(component, &host, &["log"]).unwrap();
    host.recorded.lock().unwrap().clone()
}

#[test]
fn staged_init_runs_in_the_stub_variant_and_bakes_into_the_real_one() {
    let stage1 = app(true);
    let stage2 = app(false);
    // Stage 2 module 0 is `app` (stage 1 module 0); stage 2 module 1 is
    // `lib`, which is stage 1 module 2 (module 1 is the stub).
    let map = |i: u32| if i == 1 { 2 } else { i };
    let host = host(5);
    let called = Arc::new(Mutex::new(Vec::new()));
    let output = block_on(initialize_staged(
        &stage1,
        Some((&stage2, &map)),
        closure(host.clone(), "staged", 3, called),
    ))
    .unwrap();
    validate(&output);
    // Init called the stub, not the host.
    assert!(host.recorded.lock().unwrap().is_empty());
    assert_eq!(state(&stage2), expected("", 0, 1.0, 0));
    assert_eq!(state(&output), expected("staged", 15, 0.75, 1));
    // The output is stage 2: it imports `record` from the host and calls it.
    assert_eq!(export_names(&output), export_names(&stage2));
    assert_eq!(host_with_log(&output), [15]);
    // Stage 1 had no `record` import to call.
    assert!(host_with_log(&stage1).is_empty());
}

#[test]
fn staged_init_with_a_wrong_module_map_is_an_error() {
    let stage1 = app(true);
    let stage2 = app(false);
    let identity = |i: u32| i;
    let stage: Stage2Map<'_> = Some((&stage2, &identity));
    let called = Arc::new(Mutex::new(Vec::new()));
    let err = block_on(initialize_staged(
        &stage1,
        stage,
        closure(host(5), "x", 1, called),
    ))
    .unwrap_err();
    let message = format!("{err:#}");
    // lib (stage 2 module 1) would take the stub's state: there is none.
    assert!(message.contains("core module 1 of stage 2"), "{message}");
    assert!(message.contains("stage 1 module 1"), "{message}");
    assert!(message.contains("module map"), "{message}");

    // A map pointing outside stage 1 is an error too, not a panic.
    let far = |i: u32| i + 100;
    let called = Arc::new(Mutex::new(Vec::new()));
    let err = block_on(initialize_staged(
        &stage1,
        Some((&stage2, &far)),
        closure(host(5), "x", 1, called),
    ))
    .unwrap_err();
    assert!(format!("{err:#}").contains("stage 1 module 100"), "{err:#}");
}

#[test]
fn errors_from_the_closure_and_the_invoker_are_returned() {
    let input = app(false);
    // Init returns an error: the closure passes it on.
    let called = Arc::new(Mutex::new(Vec::new()));
    let err = block_on(initialize(&input, closure(host(1), "x", 0, called))).unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("factor must not be zero"), "{message}");
    assert!(message.contains("`initialize` closure failed"), "{message}");

    // An invoker that fails: the error names the export it was calling.
    struct Failing;
    #[async_trait]
    impl Invoker for Failing {
        async fn call_s32(&mut self, f: &str) -> anyhow::Result<i32> {
            Err(anyhow!("no {f} here"))
        }
        async fn call_s64(&mut self, f: &str) -> anyhow::Result<i64> {
            Err(anyhow!("no {f} here"))
        }
        async fn call_f32(&mut self, f: &str) -> anyhow::Result<f32> {
            Err(anyhow!("no {f} here"))
        }
        async fn call_f64(&mut self, f: &str) -> anyhow::Result<f64> {
            Err(anyhow!("no {f} here"))
        }
        async fn call_list_u8(&mut self, f: &str) -> anyhow::Result<Vec<u8>> {
            Err(anyhow!("no {f} here"))
        }
    }
    let err = block_on(initialize(&input, |_| -> InitFuture {
        Box::pin(async { Ok(Box::new(Failing) as Box<dyn Invoker>) })
    }))
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("failed to call `component-init-get-memory-0`"),
        "{message}"
    );

    // An invoker that returns more than a chunk is caught.
    struct TooMuch;
    #[async_trait]
    impl Invoker for TooMuch {
        async fn call_s32(&mut self, _: &str) -> anyhow::Result<i32> {
            Ok(0)
        }
        async fn call_s64(&mut self, _: &str) -> anyhow::Result<i64> {
            Ok(0)
        }
        async fn call_f32(&mut self, _: &str) -> anyhow::Result<f32> {
            Ok(0.0)
        }
        async fn call_f64(&mut self, _: &str) -> anyhow::Result<f64> {
            Ok(0.0)
        }
        async fn call_list_u8(&mut self, _: &str) -> anyhow::Result<Vec<u8>> {
            Ok(vec![0; component_init::transform::CHUNK as usize + 1])
        }
    }
    let err = block_on(initialize(&input, |_| -> InitFuture {
        Box::pin(async { Ok(Box::new(TooMuch) as Box<dyn Invoker>) })
    }))
    .unwrap_err();
    assert!(format!("{err:#}").contains("more than"), "{err:#}");

    // Not a component: an error, before the closure runs.
    let err = block_on(initialize(b"\0asm\x01\0\0\0", |_| -> InitFuture {
        panic!("the closure must not run")
    }))
    .unwrap_err();
    assert!(format!("{err:#}").contains("not a component"), "{err:#}");
}

/// Several memories (one over the chunk size, one 64-bit), a v128 global
/// and a global inside a nested component, all read through the invoker.
#[test]
fn large_and_64_bit_memories_v128_and_nested_globals() {
    let chunk = component_init::transform::CHUNK as i64;
    let input = wat(&format!(
        r#"(component
  (component $inner
    (core module $n
      (global $g (mut i64) (i64.const 1))
      (func (export "set") (global.set $g (i64.const -77)))
      (func (export "get") (result i64) (global.get $g)))
    (core instance $ni (instantiate $n))
    (func (export "set") (canon lift (core func $ni "set")))
    (func (export "get") (result s64) (canon lift (core func $ni "get"))))
  (instance $in (instantiate $inner))
  (core module $m
    (memory $big 1)
    (memory $wide i64 1)
    (global $v (mut v128) (v128.const i64x2 0 0))
    (func (export "init")
      ;; grow to 20 MiB + 1 page, mark bytes around the first chunk's end
      ;; and the last byte
      (drop (memory.grow $big (i32.const 320)))
      (i32.store8 $big (i32.const {last_of_chunk}) (i32.const 1))
      (i32.store8 $big (i32.const {chunk}) (i32.const 2))
      (i32.store8 $big (i32.const {last}) (i32.const 3))
      (drop (memory.grow $wide (i64.const 2)))
      (i64.store $wide (i64.const 131072) (i64.const 0x0102030405060708))
      (global.set $v (v128.const i64x2 0x1111222233334444 -2)))
    (func (export "peek") (param i32) (result i32) (i32.load8_u $big (local.get 0)))
    (func (export "big-pages") (result i32) (memory.size $big))
    (func (export "wide") (result i64) (i64.load $wide (i64.const 131072)))
    (func (export "v-low") (result i64) (i64x2.extract_lane 0 (global.get $v)))
    (func (export "v-high") (result i64) (i64x2.extract_lane 1 (global.get $v))))
  (core instance $i (instantiate $m))
  (func $init (canon lift (core func $i "init")))
  (instance $setup (export "init" (func $init)))
  (export "test:app/setup" (instance $setup))
  (export "inner-set" (func $in "set"))
  (export "inner-get" (func $in "get"))
  (func (export "peek") (param "at" u32) (result u32) (canon lift (core func $i "peek")))
  (func (export "big-pages") (result u32) (canon lift (core func $i "big-pages")))
  (func (export "wide") (result s64) (canon lift (core func $i "wide")))
  (func (export "v-low") (result s64) (canon lift (core func $i "v-low")))
  (func (export "v-high") (result s64) (canon lift (core func $i "v-high"))))"#,
        last_of_chunk = chunk - 1,
        last = 321 * 65536 - 1,
    ));
    let called = Arc::new(Mutex::new(Vec::new()));
    let log = called.clone();
    let output = block_on(initialize(&input, move |instrumented| -> InitFuture {
        Box::pin(async move {
            let engine = engine();
            let component = Component::new(&engine, &instrumented)?;
            let linker = Linker::<Host>::new(&engine);
            let mut store = Store::new(&engine, Host::default());
            let instance = linker.instantiate_async(&mut store, &component).await?;
            let setup = instance
                .get_export_index(&mut store, None, "test:app/setup")
                .context("no setup")?;
            let init = instance
                .get_export_index(&mut store, Some(&setup), "init")
                .context("no init")?;
            let init = instance.get_typed_func::<(), ()>(&mut store, &init)?;
            init.call_async(&mut store, ()).await?;
            // Init of the nested component, called separately.
            let set = instance.get_typed_func::<(), ()>(&mut store, "inner-set")?;
            set.call_async(&mut store, ()).await?;
            Ok(Box::new(WasmtimeInvoker {
                store,
                instance,
                called: log,
            }) as Box<dyn Invoker>)
        })
    }))
    .unwrap();
    validate(&output);

    use wasmtime::component::Val;
    let results = run(
        &output,
        &[
            ("big-pages", &[]),
            ("peek", &[Val::U32(chunk as u32 - 1)]),
            ("peek", &[Val::U32(chunk as u32)]),
            ("peek", &[Val::U32(321 * 65536 - 1)]),
            ("peek", &[Val::U32(5)]),
            ("wide", &[]),
            ("v-low", &[]),
            ("v-high", &[]),
            ("inner-get", &[]),
        ],
    )
    .unwrap();
    let results: Vec<Val> = results.into_iter().map(|mut r| r.remove(0)).collect();
    assert_eq!(
        results,
        [
            Val::U32(321),
            Val::U32(1),
            Val::U32(2),
            Val::U32(3),
            Val::U32(0),
            Val::S64(0x0102030405060708),
            Val::S64(0x1111222233334444),
            Val::S64(-2),
            Val::S64(-77),
        ]
    );
    // The big memory (over one chunk) took at least two calls, each
    // returning at most a chunk; the 64-bit one (3 pages) at least one; the
    // v128 global two halves.
    let called = called.lock().unwrap().clone();
    let count = |name: &str| called.iter().filter(|n| *n == name).count();
    assert!(count("component-init-get-memory-0") >= 2, "{called:?}");
    assert!(count("component-init-get-memory-1") >= 1, "{called:?}");
    assert_eq!(count("component-init-get-global-0-low"), 1, "{called:?}");
    assert_eq!(count("component-init-get-global-0-high"), 1, "{called:?}");
}

#[test]
fn memories_inside_nested_components_are_refused_with_a_reason() {
    let input = wat(r#"(component
  (component $inner
    (core module $n
      (memory 1)
      (func (export "set") (i32.store (i32.const 0) (i32.const 9))))
    (core instance $ni (instantiate $n))
    (func (export "set") (canon lift (core func $ni "set"))))
  (instance $in (instantiate $inner))
  (export "set" (func $in "set")))"#);
    let err = block_on(initialize(&input, |_| -> InitFuture {
        panic!("the closure must not run")
    }))
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("nested component instance 0"), "{message}");
    assert!(message.contains("component_init::initialize"), "{message}");
}

/// A closure for components without imports whose init is the export
/// `init: func()`.
fn call_init(instrumented: Vec<u8>) -> InitFuture {
    call_init_logged(instrumented, Arc::default())
}

/// [`call_init`], with the invoker logging what it is asked to call in
/// `called`.
fn call_init_logged(instrumented: Vec<u8>, called: Arc<Mutex<Vec<String>>>) -> InitFuture {
    Box::pin(async move {
        let engine = engine();
        let component = Component::new(&engine, &instrumented)?;
        let mut store = Store::new(&engine, Host::default());
        let instance = Linker::<Host>::new(&engine)
            .instantiate_async(&mut store, &component)
            .await?;
        let init = instance.get_typed_func::<(), ()>(&mut store, "init")?;
        init.call_async(&mut store, ()).await?;
        Ok(Box::new(WasmtimeInvoker {
            store,
            instance,
            called,
        }) as Box<dyn Invoker>)
    })
}

/// A component with one module, `$m`, defining `state`, whose `init`
/// runs `init_body` and whose export `get` returns `get_body`'s value;
/// instantiated `instances` times (exports come from the last instance).
fn one_module(state: &str, init_body: &str, get: &str, instances: usize) -> Vec<u8> {
    let instantiate: String = (0..instances)
        .map(|k| format!("(core instance $i{k} (instantiate $m))\n"))
        .collect();
    let last = instances - 1;
    wat(&format!(
        r#"(component
  (core module $m
    {state}
    (func (export "init") {init_body})
    (func (export "get") (result i32) {get}))
  {instantiate}
  (func (export "init") (canon lift (core func $i0 "init")))
  (func (export "get") (result s32) (canon lift (core func $i{last} "get"))))"#
    ))
}

#[test]
fn stage_2_state_must_correspond_to_stage_1() {
    let same = |i: u32| i;
    let run_staged = |stage1: &[u8], stage2: &[u8]| {
        block_on(initialize_staged(stage1, Some((stage2, &same)), call_init))
    };

    // One stage 1 instance, two stage 2 instances: both get its state.
    let global = "(global $g (mut i32) (i32.const 1))";
    let stage1 = one_module(
        global,
        "(global.set $g (i32.const 9))",
        "(global.get $g)",
        1,
    );
    let stage2 = one_module(
        global,
        "(global.set $g (i32.const 9))",
        "(global.get $g)",
        2,
    );
    assert_eq!(
        call1(&stage2, &["get"]).unwrap(),
        wasmtime::component::Val::S32(1)
    );
    let output = run_staged(&stage1, &stage2).unwrap();
    assert_eq!(
        call1(&output, &["get"]).unwrap(),
        wasmtime::component::Val::S32(9)
    );

    // A global of another type in stage 2.
    let stage2 = one_module(
        "(global $g (mut i64) (i64.const 1))",
        "",
        "(i32.wrap_i64 (global.get $g))",
        1,
    );
    let message = format!("{:#}", run_staged(&stage1, &stage2).unwrap_err());
    assert!(
        message.contains("defines global 0 (s64), but stage 1 module 0"),
        "{message}"
    );
    assert!(message.contains("defines global 0 (s32)"), "{message}");

    // Two stage 1 instances, three in stage 2: no way to pair them.
    let stage1 = one_module(
        global,
        "(global.set $g (i32.const 9))",
        "(global.get $g)",
        2,
    );
    let stage2 = one_module(global, "", "(global.get $g)", 3);
    let message = format!("{:#}", run_staged(&stage1, &stage2).unwrap_err());
    assert!(message.contains("instantiated 3 times"), "{message}");

    // A memory that grew past what stage 2's memory may hold.
    let grow = "(drop (memory.grow (i32.const 2)))";
    let stage1 = one_module("(memory 1)", grow, "(memory.size)", 1);
    let stage2 = one_module("(memory 1 2)", grow, "(memory.size)", 1);
    let message = format!("{:#}", run_staged(&stage1, &stage2).unwrap_err());
    assert!(message.contains("at most 2 pages"), "{message}");
    // ... and one that may hold it.
    let stage2 = one_module("(memory 1 3)", grow, "(memory.size)", 1);
    let output = run_staged(&stage1, &stage2).unwrap();
    assert_eq!(
        call1(&output, &["get"]).unwrap(),
        wasmtime::component::Val::S32(3)
    );

    // Stage 2 that is not a component: an error.
    let message = format!("{:#}", run_staged(&stage1, b"not wasm").unwrap_err());
    assert!(message.contains("stage 2"), "{message}");
}

/// An init lifted `async` (the async component model), called by the
/// caller's own engine, which has the async features (as componentize-py's
/// does): its builtins pass instrumentation and the rewrite unchanged.
#[test]
fn an_async_init_runs_in_a_callers_engine_with_the_async_features() {
    let input = wat(r#"(component
      (core module $m
        (import "" "task.return" (func $ret))
        (memory (export "memory") 1)
        (global $n (mut i32) (i32.const 0))
        (func (export "init") (result i32)
          (global.set $n (i32.const 40))
          (i32.const 1))
        (func (export "cb") (param i32 i32 i32) (result i32)
          (global.set $n (i32.add (global.get $n) (i32.const 2)))
          (i32.store (i32.const 64) (global.get $n))
          (call $ret)
          (i32.const 0))
        (func (export "get") (result i32) (i32.add (global.get $n) (i32.load (i32.const 64)))))
      (core func $ret (canon task.return))
      (core instance $i (instantiate $m (with "" (instance (export "task.return" (func $ret))))))
      (func (export "init") async (canon lift (core func $i "init") async (callback (func $i "cb"))))
      (func (export "get") (result s32) (canon lift (core func $i "get"))))"#);
    assert_eq!(
        call_exports(&input, &Host::default(), &["get"]).unwrap(),
        [wasmtime::component::Val::S32(0)]
    );
    let output = block_on(initialize(&input, call_init)).unwrap();
    validate(&output);
    assert_eq!(
        call_exports(&output, &Host::default(), &["get"]).unwrap(),
        [wasmtime::component::Val::S32(84)]
    );
}

/// A component whose init grows its table and writes a funcref global;
/// `get` calls slots 0 and 2 with 3 and adds 1000 times the table size.
const GROWS_A_TABLE: &str = r#"
(component
  (core module $m
    (type $ii (func (param i32) (result i32)))
    (table $t 1 funcref)
    (global $g (mut funcref) (ref.null func))
    (func $double (type $ii) (i32.mul (local.get 0) (i32.const 2)))
    (func $square (type $ii) (i32.mul (local.get 0) (local.get 0)))
    (elem declare func $double $square)
    (func (export "init")
      (drop (table.grow (ref.func $square) (i32.const 2)))
      (table.set (i32.const 0) (ref.func $double))
      (global.set $g (ref.func $square)))
    (func (export "get") (result i32)
      (i32.add
        (i32.add
          (call_indirect (type $ii) (i32.const 3) (i32.const 0))
          (call_indirect (type $ii) (i32.const 3) (i32.const 2)))
        (i32.mul (table.size) (i32.const 1000)))))
  (core instance $i (instantiate $m))
  (func (export "init") (canon lift (core func $i "init")))
  (func (export "get") (result s32) (canon lift (core func $i "get"))))"#;

/// A component whose init grows its table and writes a funcref global,
/// read through the invoker (`component-init-get-table-0`, a cursor over
/// the slots) and baked in: the output, without init, calls the same
/// functions through the same slots.
#[test]
fn tables_that_init_changes_are_read_through_the_invoker() {
    let input = wat(GROWS_A_TABLE);
    let called = Arc::new(Mutex::new(Vec::new()));
    let logged = called.clone();
    let output = block_on(initialize(&input, move |instrumented| {
        call_init_logged(instrumented, logged)
    }))
    .unwrap();
    validate(&output);
    // 2 * 3 + 3 * 3, three slots
    let get = |component: &[u8], calls: &[&str]| call1(component, calls).unwrap();
    assert_eq!(get(&input, &["init", "get"]), get(&output, &["get"]));
    assert_eq!(get(&output, &["get"]), wasmtime::component::Val::S32(3015));
    let called = called.lock().unwrap();
    assert!(
        called.iter().any(|c| c == "component-init-get-table-0"),
        "{called:?}"
    );
    assert!(
        called
            .iter()
            .any(|c| c == "component-init-get-ref-global-0"),
        "{called:?}"
    );
}

/// The same component staged: init runs in stage 1 (here, the component
/// itself) and the tables it changed are carried into stage 2.
#[test]
fn staged_init_carries_tables() {
    let stage1 = wat(GROWS_A_TABLE);
    // stage 2: an extra module without state, instantiated first
    let stage2 = wat(
        &String::from_utf8(wasmprinter::print_bytes(&stage1).unwrap().into_bytes())
            .unwrap()
            .replacen(
                "(core module",
                "(core module $extra (func (export \"nop\")))\n  (core module",
                1,
            )
            .replacen(
                "(core instance",
                "(core instance $x (instantiate $extra))\n  (core instance",
                1,
            ),
    );
    let map = |m: u32| m.saturating_sub(1);
    let output = block_on(initialize_staged(&stage1, Some((&stage2, &map)), call_init)).unwrap();
    validate(&output);
    // stage 2's, with its extra module
    assert!(
        wasmprinter::print_bytes(&output)
            .unwrap()
            .contains("(export \"nop\"")
    );
    assert_eq!(
        call1(&output, &["get"]).unwrap(),
        call1(&stage1, &["init", "get"]).unwrap()
    );
    assert_eq!(
        call1(&output, &["get"]).unwrap(),
        wasmtime::component::Val::S32(3015)
    );
}
