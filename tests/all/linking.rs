//! Components made by wit-component's linker (`wasm-tools component link`)
//! from shared libraries: one memory and one function table in a synthesized
//! `env` module shared by every library, GOT.mem/GOT.func globals,
//! `__memory_base`/`__table_base`/`__stack_pointer`, an `__init` module whose
//! start function fills the GOT and calls `__wasm_apply_data_relocs`,
//! `__wasm_call_ctors` and `__wasm_set_libraries`, element segments at
//! instantiation, a dlopen/dlsym table, a stub library for a weak undefined
//! symbol, and the wasip1 adapter.
//!
//! The libraries are WAT in `tests/all/linking/`; the component's exports come
//! from the WIT world below, embedded in `libmain.so`.

use crate::support::*;
use anyhow::Result;
use std::sync::OnceLock;
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wasmtime::component::Val;

const LIBC: &str = include_str!("linking/libc.wat");
const LIBCOUNTER: &str = include_str!("linking/libcounter.wat");
const LIBMAIN: &str = include_str!("linking/libmain.wat");

const WIT: &str = r#"
package test:linking;

world app {
  export component-init: func();
  export get-counter: func() -> s32;
  export get-ctor-runs: func() -> s32;
  export init-calls: func() -> s32;
  export apply: func(x: s32) -> s32;
  export call-handler: func(x: s32) -> s32;
  export tag: func() -> string;
  export note: func() -> string;
  export first-note: func() -> string;
  export set-note: func(note: string);
  export say: func() -> u32;
  export dl-libraries: func() -> u32;
  export dl-library: func() -> string;
  export dl-symbols: func() -> u32;
  export dl-symbol: func(index: u32) -> string;
  export dl-call: func(index: u32, x: s32) -> s32;
  export dl-load: func(index: u32) -> s32;
}
"#;

/// `libmain.so` with the world's `component-type` section.
fn libmain() -> Vec<u8> {
    let mut module = wat(LIBMAIN);
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve.push_str("app.wit", WIT).unwrap();
    crate::support::embed_world(&mut module, &resolve, package, "app");
    module
}

/// Links libmain, libc and the given libcounter (dlopen-able) with the
/// wasip1 reactor adapter.
fn link(libcounter: &[u8]) -> Result<Vec<u8>> {
    wit_component::Linker::default()
        .library("libmain.so", &libmain(), false)?
        .library("libcounter.so", libcounter, true)?
        .library("libc.so", &wat(LIBC), false)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
}

fn linked() -> &'static [u8] {
    static LINKED: OnceLock<Vec<u8>> = OnceLock::new();
    LINKED.get_or_init(|| link(&wat(LIBCOUNTER)).expect("the libraries link"))
}

fn pre_initialized() -> &'static [u8] {
    static OUTPUT: OnceLock<Vec<u8>> = OnceLock::new();
    OUTPUT.get_or_init(|| {
        let output = pre_init(linked()).expect("the linked component pre-initializes");
        validate(&output);
        output
    })
}

fn string(v: &Val) -> &str {
    match v {
        Val::String(s) => s,
        other => panic!("expected a string, got {other:?}"),
    }
}

/// One core module of a component's top level.
#[derive(Debug, Default)]
struct CoreModule {
    dylink: bool,
    start: bool,
    memories: u32,
    tables: u32,
    import_modules: Vec<String>,
    exports: Vec<String>,
}

/// The top-level core modules, and for each core instance that instantiates
/// one, the module's index and the names of its instantiation arguments.
fn shape(component: &[u8]) -> (Vec<CoreModule>, Vec<(u32, Vec<String>)>) {
    use wasmparser::{Instance, Parser, Payload};
    let mut modules = Vec::new();
    let mut instances = Vec::new();
    for payload in Parser::new(0).parse_all(component) {
        match payload.unwrap() {
            Payload::ModuleSection {
                unchecked_range, ..
            } => {
                let mut m = CoreModule::default();
                for p in Parser::new(0).parse_all(&component[unchecked_range]) {
                    match p.unwrap() {
                        Payload::CustomSection(s) if s.name() == "dylink.0" => m.dylink = true,
                        Payload::StartSection { .. } => m.start = true,
                        Payload::MemorySection(s) => m.memories += s.count(),
                        Payload::TableSection(s) => m.tables += s.count(),
                        Payload::ImportSection(s) => {
                            for i in s.into_imports() {
                                let module = i.unwrap().module.to_string();
                                if !m.import_modules.contains(&module) {
                                    m.import_modules.push(module);
                                }
                            }
                        }
                        Payload::ExportSection(s) => {
                            m.exports
                                .extend(s.into_iter().map(|e| e.unwrap().name.to_string()));
                        }
                        _ => {}
                    }
                }
                modules.push(m);
            }
            Payload::ComponentSection {
                unchecked_range, ..
            } => panic!("the linker made a nested component at {unchecked_range:?}"),
            Payload::InstanceSection(s) => {
                for instance in s {
                    if let Instance::Instantiate { module_index, args } = instance.unwrap() {
                        instances.push((
                            module_index,
                            args.iter().map(|a| a.name.to_string()).collect(),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    (modules, instances)
}

#[test]
fn linked_component_has_the_dynamic_linking_shape() {
    let (modules, instances) = shape(linked());
    for (i, m) in modules.iter().enumerate() {
        eprintln!("core module {i}: {m:?}");
    }
    for (module, args) in &instances {
        eprintln!("core instance of module {module} with {args:?}");
    }
    // One module defines the single memory and table: the synthesized env.
    let definers: Vec<&CoreModule> = modules
        .iter()
        .filter(|m| m.memories > 0 && m.tables > 0)
        .collect();
    assert_eq!(definers.len(), 1, "{modules:?}");
    let env = definers[0];
    for name in ["memory", "__indirect_function_table", "__stack_pointer"] {
        assert!(env.exports.iter().any(|e| e == name), "{:?}", env.exports);
    }
    assert!(env.exports.iter().any(|e| e == "cabi_realloc"));
    assert!(env.exports.iter().any(|e| e == "libmain.so:counter"));
    // The three libraries, instantiated with `env` and, as they import them,
    // GOT.mem, GOT.func and the adapter.
    let libraries: Vec<usize> = (0..modules.len()).filter(|&i| modules[i].dylink).collect();
    assert_eq!(libraries.len(), 3, "{modules:?}");
    let args_of = |module: usize| {
        instances
            .iter()
            .find(|(m, _)| *m as usize == module)
            .map(|(_, a)| a.clone())
            .expect("every library is instantiated")
    };
    for &l in &libraries {
        assert!(args_of(l).iter().any(|a| a == "env"));
        assert_eq!(modules[l].memories + modules[l].tables, 0);
    }
    let main = *libraries
        .iter()
        .find(|&&l| modules[l].exports.iter().any(|e| e == "component-init"))
        .expect("libmain is linked");
    assert_eq!(
        args_of(main),
        ["env", "GOT.mem", "GOT.func", "wasi_snapshot_preview1"]
    );
    // The `__init` module: a start function, instantiated with env and the
    // libraries that have constructors, relocations or take the dlopen table.
    let init: Vec<&(u32, Vec<String>)> = instances
        .iter()
        .filter(|(m, _)| modules[*m as usize].start)
        .collect();
    assert_eq!(init.len(), 1, "{instances:?}");
    assert_eq!(init[0].1, ["env", "libcounter.so", "libmain.so"]);
    // The wasip1 adapter, with the shared memory.
    assert!(
        modules
            .iter()
            .any(|m| m.import_modules.iter().any(|i| i == "__main_module__")),
        "no adapter"
    );
    // The weak undefined symbol got a stub library.
    assert!(
        modules
            .iter()
            .any(|m| m.exports == ["optional_hook"] && m.import_modules.is_empty()),
        "no stub library"
    );

    // The output keeps every module and instance; only start functions go.
    let (out_modules, out_instances) = shape(pre_initialized());
    assert_eq!(out_instances, instances);
    assert_eq!(out_modules.len(), modules.len());
    for (out, original) in out_modules.iter().zip(&modules) {
        assert!(!out.start);
        assert_eq!(
            (out.dylink, out.memories, out.tables),
            (original.dylink, original.memories, original.tables)
        );
        assert_eq!(out.import_modules, original.import_modules);
        assert_eq!(out.exports, original.exports);
    }
}

/// Every export that reads state, with arguments.
fn observe(dl_square: u32, dl_counter: u32) -> Vec<(&'static str, Vec<Val>)> {
    vec![
        ("get-counter", vec![]),
        ("get-ctor-runs", vec![]),
        ("init-calls", vec![]),
        ("apply", vec![Val::S32(7)]),
        ("call-handler", vec![Val::S32(7)]),
        ("tag", vec![]),
        ("note", vec![]),
        ("first-note", vec![]),
        ("dl-call", vec![Val::U32(dl_square), Val::S32(9)]),
        ("dl-load", vec![Val::U32(dl_counter)]),
    ]
}

fn run_owned(component: &[u8], calls: &[(&str, Vec<Val>)]) -> Result<Vec<Vec<Val>>> {
    let calls: Vec<(&str, &[Val])> = calls.iter().map(|(n, a)| (*n, &a[..])).collect();
    run(component, &calls)
}

/// The names in libcounter's dlsym table, in order.
fn dl_symbols(component: &[u8]) -> Vec<String> {
    let count = match call1(component, &["dl-symbols"]).unwrap() {
        Val::U32(n) => n,
        other => panic!("{other:?}"),
    };
    let calls: Vec<(&str, Vec<Val>)> = (0..count)
        .map(|i| ("dl-symbol", vec![Val::U32(i)]))
        .collect();
    run_owned(component, &calls)
        .unwrap()
        .iter()
        .map(|r| string(&r[0]).to_string())
        .collect()
}

fn index_of(symbols: &[String], name: &str) -> u32 {
    symbols
        .iter()
        .position(|s| s == name)
        .unwrap_or_else(|| panic!("no symbol {name} in {symbols:?}")) as u32
}

#[test]
fn linked_component_state_is_baked_in() {
    let input = linked();
    let output = pre_initialized();
    assert!(export_names(input).contains(&"component-init".to_string()));
    assert!(!export_names(output).contains(&"component-init".to_string()));

    let symbols = dl_symbols(input);
    let (square, counter) = (index_of(&symbols, "square"), index_of(&symbols, "counter"));
    let calls = observe(square, counter);

    // Before init: the constructor ran once at instantiation (7 + 1000), no
    // function pointer, no note.
    let fresh = run_owned(input, &calls).unwrap();
    assert_eq!(fresh[0], [Val::S32(1007)]);
    assert_eq!(fresh[1], [Val::S32(1)]);
    assert_eq!(fresh[2], [Val::S32(0)]);
    assert_eq!(fresh[3], [Val::S32(-1)]);
    assert_eq!(fresh[4], [Val::S32(14)]);
    assert_eq!(string(&fresh[5][0]), "ctr!");
    assert_eq!(string(&fresh[6][0]), "");

    // Init on the original, then the same observations.
    let mut with_init = vec![("component-init", vec![])];
    with_init.extend(calls.iter().cloned());
    let mut before = run_owned(input, &with_init).unwrap();
    before.remove(0);
    let after = run_owned(output, &calls).unwrap();
    assert_eq!(before, after);

    // What init left, read through GOT.mem (libcounter's data), the shared
    // table (GOT.func slot of `square`), libmain's own global, the heap
    // (libc's malloc), the data relocations and the dlopen table.
    assert_eq!(after[0], [Val::S32(1012)]);
    assert_eq!(after[1], [Val::S32(1)], "the constructor ran again");
    assert_eq!(after[2], [Val::S32(1)]);
    assert_eq!(after[3], [Val::S32(49)]);
    assert_eq!(after[4], [Val::S32(14)]);
    assert_eq!(string(&after[5][0]), "ctr!");
    assert_eq!(string(&after[6][0]), "made by init");
    assert_eq!(string(&after[7][0]), "made by init");
    assert_eq!(after[8], [Val::S32(81)]);
    assert_eq!(after[9], [Val::S32(1012)]);
}

#[test]
fn dlopen_table_survives_pre_init() {
    let input = linked();
    let output = pre_initialized();
    let symbols = dl_symbols(output);
    assert_eq!(symbols, dl_symbols(input));
    assert_eq!(
        symbols,
        [
            "bump",
            "counter",
            "counter_tag",
            "ctor_runs",
            "double",
            "handler",
            "square"
        ]
    );
    assert_eq!(call1(output, &["dl-libraries"]).unwrap(), Val::U32(1));
    assert_eq!(
        string(&call1(output, &["dl-library"]).unwrap()),
        "libcounter.so"
    );
    // Functions through the table slots `__init`'s element segment fills,
    // globals through the addresses its start function computed.
    let bump = index_of(&symbols, "bump");
    let double = index_of(&symbols, "double");
    let ctor_runs = index_of(&symbols, "ctor_runs");
    let results = run_owned(
        output,
        &[
            ("dl-call", vec![Val::U32(double), Val::S32(21)]),
            ("dl-call", vec![Val::U32(bump), Val::S32(3)]),
            ("get-counter", vec![]),
            ("dl-load", vec![Val::U32(ctor_runs)]),
        ],
    )
    .unwrap();
    assert_eq!(results[0], [Val::S32(42)]);
    assert_eq!(results[1], [Val::S32(1015)]);
    assert_eq!(results[2], [Val::S32(1015)]);
    assert_eq!(results[3], [Val::S32(1)]);
}

/// libc's heap top is part of the snapshot: allocations after pre-init
/// (here by `cabi_realloc`, lowering a string argument) land after init's.
#[test]
fn linked_heap_continues_after_the_snapshot() {
    let calls = [
        ("set-note", vec![Val::String("a note from the host".into())]),
        ("note", vec![]),
        ("first-note", vec![]),
    ];
    let mut with_init = vec![("component-init", vec![])];
    with_init.extend(calls.iter().cloned());
    let mut before = run_owned(linked(), &with_init).unwrap();
    before.remove(0);
    let after = run_owned(pre_initialized(), &calls).unwrap();
    assert_eq!(before, after);
    assert_eq!(string(&after[1][0]), "a note from the host");
    assert_eq!(string(&after[2][0]), "made by init");
}

#[test]
fn keep_init_func_accumulates_on_a_linked_component() {
    let kept = pre_init_with(linked(), None, true).unwrap();
    validate(&kept);
    assert!(export_names(&kept).contains(&"component-init".to_string()));
    let calls = [
        ("get-counter", vec![]),
        ("init-calls", vec![]),
        ("component-init", vec![]),
        ("get-counter", vec![]),
        ("init-calls", vec![]),
        ("get-ctor-runs", vec![]),
        ("first-note", vec![]),
        ("apply", vec![Val::S32(-6)]),
    ];
    let results = run_owned(&kept, &calls).unwrap();
    assert_eq!(results[0], [Val::S32(1012)]);
    assert_eq!(results[1], [Val::S32(1)]);
    assert_eq!(results[3], [Val::S32(1017)]);
    assert_eq!(results[4], [Val::S32(2)]);
    assert_eq!(results[5], [Val::S32(1)]);
    assert_eq!(string(&results[6][0]), "made by init");
    assert_eq!(results[7], [Val::S32(36)]);

    // Pre-initializing the output again runs init on the captured state.
    let twice = pre_init_with(&kept, None, true).unwrap();
    validate(&twice);
    let results = run_owned(
        &twice,
        &[
            ("get-counter", vec![]),
            ("init-calls", vec![]),
            ("get-ctor-runs", vec![]),
        ],
    )
    .unwrap();
    assert_eq!(results[0], [Val::S32(1017)]);
    assert_eq!(results[1], [Val::S32(2)]);
    assert_eq!(results[2], [Val::S32(1)]);
}

/// Runs `calls` with WASI (stdout captured) and returns the results and what
/// was written to stdout.
fn run_with_stdout(component: &[u8], calls: &[&str]) -> Result<(Vec<Vec<Val>>, Vec<u8>)> {
    use wasmtime::component::{Component, Linker, ResourceTable};
    use wasmtime::{Config, Engine, Store};
    use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
    use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

    struct Host {
        ctx: WasiCtx,
        table: ResourceTable,
    }
    impl WasiView for Host {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.ctx,
                table: &mut self.table,
            }
        }
    }

    let engine = Engine::new(&Config::new())?;
    let component = Component::new(&engine, component)?;
    let mut linker = Linker::<Host>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    let stdout = MemoryOutputPipe::new(1 << 16);
    let ctx = WasiCtxBuilder::new().stdout(stdout.clone()).build();
    let mut store = Store::new(
        &engine,
        Host {
            ctx,
            table: ResourceTable::new(),
        },
    );
    let instance = linker.instantiate(&mut store, &component)?;
    let mut out = Vec::new();
    for name in calls {
        let func = instance
            .get_func(&mut store, name)
            .ok_or_else(|| anyhow::anyhow!("no export {name}"))?;
        let mut results = vec![Val::Bool(false); func.ty(&store).results().len()];
        func.call(&mut store, &[], &mut results)?;
        out.push(results);
    }
    drop(store);
    Ok((out, stdout.contents().to_vec()))
}

/// The wasip1 adapter in a linked component: untouched by init, it allocates
/// its state through libc's `cabi_realloc` on first use after pre-init and
/// writes the note init made.
#[test]
fn adapter_in_a_linked_component_works_after_pre_init() {
    let (before, before_out) =
        run_with_stdout(linked(), &["component-init", "say", "first-note"]).unwrap();
    let (after, after_out) = run_with_stdout(pre_initialized(), &["say", "first-note"]).unwrap();
    assert_eq!(before[1..], after[..]);
    assert_eq!(after[0], [Val::U32(0)], "fd_write errno");
    assert_eq!(string(&after[1][0]), "made by init");
    assert_eq!(before_out, after_out);
    assert_eq!(after_out, b"made by init");
}

/// A library constructor that fills its slot of the shared
/// `__indirect_function_table` with `table.set` instead of an element
/// segment. It runs at instantiation, in the start function of `__init`,
/// before init; the output drops that start function (it already ran), so
/// the slot is carried: the library's instance writes it with an element
/// segment on the table it imports.
#[test]
fn table_set_in_a_library_constructor_is_carried() {
    let libcounter = LIBCOUNTER
        .replace(
            "(elem (global.get $table_base) func $double $square)",
            "(elem (global.get $table_base) func $square $square)\n  (elem declare func $double)",
        )
        .replace(
            "(drop (call $bump (i32.const 1000))))",
            "(drop (call $bump (i32.const 1000)))\n    \
             (table.set (global.get $table_base) (ref.func $double)))",
        );
    assert_ne!(libcounter, LIBCOUNTER);
    let input = link(&wat(&libcounter)).unwrap();
    // The original works: the handler is `double`, set by the constructor.
    assert_eq!(
        run(&input, &[("call-handler", &[Val::S32(7)])]).unwrap()[0],
        [Val::S32(14)]
    );
    let output = pre_init(&input).unwrap();
    validate(&output);
    assert_eq!(
        run(&output, &[("call-handler", &[Val::S32(7)])]).unwrap()[0],
        [Val::S32(14)]
    );
}

/// The minimal form of the case above, without the linker: a start function
/// runs `table.set` at instantiation and init does nothing. The output
/// drops the start function and starts with the slot it filled.
#[test]
fn table_set_in_a_start_function_is_carried() {
    let input = wat(r#"
(component
  (core module $m
    (table 1 funcref)
    (func $f)
    (elem declare func $f)
    (func $start (table.set (i32.const 0) (ref.func $f)))
    (start $start)
    (func (export "init"))
    (func (export "filled") (result i32) (i32.eqz (ref.is_null (table.get (i32.const 0))))))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init")))
  (func (export "filled") (result bool) (canon lift (core func $i "filled"))))
"#);
    let output = pre_init(&input).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["filled"]).unwrap(), Val::Bool(true));
    let mut starts = 0;
    for payload in wasmparser::Parser::new(0).parse_all(&output) {
        if let wasmparser::Payload::StartSection { .. } = payload.unwrap() {
            starts += 1;
        }
    }
    assert_eq!(starts, 0, "the start function already ran");
}
