//! Core modules pre-initialized as Wizer does it, with real toolchains.
//!
//! - `tests/programs/wizer-init`: a Rust `cdylib` for `wasm32-wasip1` written
//!   for Wizer (a reactor with `_initialize`, and a `wizer-initialize` that
//!   compiles regexes, sieves primes into a `Vec`, counts their gaps in a
//!   `HashMap`, and reads `GREETING` from WASI's environment). Its exports
//!   answer a sentinel until init has run. Pre-initialized by our command
//!   line and by the peer (`wasmtime-wizer` 48, driven as `Wizer::run`
//!   drives it), both outputs start initialized, without init and without
//!   WASI, and answer the same.
//! - ComponentizeJS 0.23.0 (`tests/componentize-js`) with our binary as its
//!   `wizerBin`: it spawns the binary with Wizer's own command line, and the
//!   component it makes answers as the one made with its default Wizer.
//!
//! Needs Node and npm for ComponentizeJS (`npm ci --prefix
//! tests/componentize-js`, which the test runs when it is missing).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{npm_ci, run_command as run};
use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::component::Val;
use wasmtime::{Engine, Instance, Linker, Module, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wizer::{InstanceState, SnapshotVal, Wizer};

use crate::guests::{Grant, run_wasi, string, wasip1_guest};
use crate::support::{block_on, export_names, validate};

/// What init reads from the environment, granted at build time only.
const GREETING: (&str, &str) = ("GREETING", "hi");

/// How many words the module tries its patterns on (`matches(n)`): a
/// date, an e-mail address, a colour, two words with letters outside
/// ASCII, a number, an IPv4 address, a plain word.
const WORDS: usize = 8;

/// What the module's exports answer: the state init built, or sentinels.
#[derive(Debug, PartialEq)]
struct Answers {
    /// `reactor_inits()`: how many times `_initialize` ran.
    reactor_inits: u32,
    /// `init_calls()`: how many times init built the state.
    init_calls: u32,
    /// `matches(n)` for each word, then for one past the last.
    matches: Vec<u32>,
    /// `table_sum()`: the sum of the primes below 1,000,000.
    table_sum: u64,
    /// `prime_count()`.
    prime_count: u32,
    /// `gap_count(g)` for g = 1, 2, 3, 4, 6, 114 (a `HashMap` lookup).
    gap_counts: Vec<u32>,
    /// `GREETING` as init read it, from `greeting_len()` and
    /// `greeting_byte(i)`; `None` when `greeting_len()` is the sentinel.
    greeting: Option<String>,
}

/// The answers of an instance whose `_initialize` ran, and init not.
fn uninitialized() -> Answers {
    Answers {
        reactor_inits: 1,
        init_calls: 0,
        matches: vec![u32::MAX; WORDS + 1],
        table_sum: u64::MAX,
        prime_count: u32::MAX,
        gap_counts: vec![u32::MAX; 6],
        greeting: None,
    }
}

/// The answers of an instance whose `_initialize` then init ran, once each,
/// with `GREETING` set to `greeting`.
fn initialized(greeting: &str) -> Answers {
    Answers {
        reactor_inits: 1,
        init_calls: 1,
        // Bit i: pattern i matches (date, e-mail, colour, letters only,
        // some non-ASCII, number, IPv4, lowercase letters only).
        matches: vec![0x01, 0x02, 0x04, 0x98, 0x98, 0x20, 0x40, 0x88, u32::MAX],
        table_sum: 37_550_402_023,
        prime_count: 78_498,
        // One pair 1 apart (2, 3), 8,169 twin primes, no odd gap, 8,143
        // cousin primes, 13,549 sexy primes, the largest gap below
        // 1,000,000 (after 492,113) once.
        gap_counts: vec![1, 8_169, 0, 8_143, 13_549, 1],
        greeting: Some(greeting.to_string()),
    }
}

/// An instance of a core module, in a store of its own.
struct Running {
    store: Store<WasiP1Ctx>,
    instance: Instance,
}

impl Running {
    /// Instantiates `module`. With `env`, its imports are WASI preview1,
    /// granting that environment and nothing else; without, every import
    /// traps, so the module runs only if it needs nothing from WASI.
    fn new(module: &[u8], env: Option<&[(&str, &str)]>) -> Running {
        let engine = Engine::default();
        let module = Module::new(&engine, module).expect("the module compiles");
        let mut linker = Linker::<WasiP1Ctx>::new(&engine);
        let mut wasi = WasiCtxBuilder::new();
        match env {
            Some(env) => {
                wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |cx| cx).unwrap();
                for (name, value) in env {
                    wasi.env(name, value);
                }
            }
            None => linker.define_unknown_imports_as_traps(&module).unwrap(),
        }
        let mut store = Store::new(&engine, wasi.build_p1());
        let instance = linker
            .instantiate(&mut store, &module)
            .expect("the module instantiates");
        Running { store, instance }
    }

    /// Calls the export `name`, of type `[] -> []`.
    fn call(&mut self, name: &str) {
        self.instance
            .get_typed_func::<(), ()>(&mut self.store, name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .call(&mut self.store, ())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }

    fn u32(&mut self, name: &str, arg: Option<u32>) -> u32 {
        match arg {
            None => self
                .instance
                .get_typed_func::<(), u32>(&mut self.store, name)
                .unwrap()
                .call(&mut self.store, ()),
            Some(arg) => self
                .instance
                .get_typed_func::<u32, u32>(&mut self.store, name)
                .unwrap()
                .call(&mut self.store, arg),
        }
        .unwrap_or_else(|e| panic!("{name}({arg:?}): {e:?}"))
    }

    /// Asks every export that reads the state.
    fn answers(&mut self) -> Answers {
        let greeting_len = self.u32("greeting_len", None);
        let greeting = (greeting_len != u32::MAX).then(|| {
            let bytes: Vec<u8> = (0..greeting_len)
                .map(|i| self.u32("greeting_byte", Some(i)) as u8)
                .collect();
            String::from_utf8(bytes).unwrap()
        });
        Answers {
            reactor_inits: self.u32("reactor_inits", None),
            init_calls: self.u32("init_calls", None),
            matches: (0..=WORDS as u32)
                .map(|n| self.u32("matches", Some(n)))
                .collect(),
            table_sum: self
                .instance
                .get_typed_func::<(), u64>(&mut self.store, "table_sum")
                .unwrap()
                .call(&mut self.store, ())
                .unwrap(),
            prime_count: self.u32("prime_count", None),
            gap_counts: [1, 2, 3, 4, 6, 114]
                .into_iter()
                .map(|gap| self.u32("gap_count", Some(gap)))
                .collect(),
            greeting,
        }
    }
}

/// The names a core module exports.
fn module_exports(module: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::ExportSection(exports) = payload.unwrap() {
            for export in exports {
                names.push(export.unwrap().name.to_string());
            }
        }
    }
    names
}

/// Runs our binary with `args` (which name the input and the output),
/// asserting that it succeeds.
fn component_init(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) {
    let output = Command::new(env!("CARGO_BIN_EXE_component-init"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "component-init {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `component-init app.wasm --wasi --env GREETING=hi -o out.wasm`, in `dir`.
fn pre_init_with_ours(dir: &Path, module: &[u8]) -> Vec<u8> {
    let (app, out) = (dir.join("app.wasm"), dir.join("out.wasm"));
    std::fs::write(&app, module).unwrap();
    let env = format!("{}={}", GREETING.0, GREETING.1);
    component_init(
        &[
            app.as_os_str(),
            "--wasi".as_ref(),
            "--env".as_ref(),
            env.as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
        ],
        &[],
    );
    std::fs::read(&out).unwrap()
}

/// The peer's pipeline for a core module, as `Wizer::run` runs it (behind
/// the peer's `wasmtime` feature, which the dev-dependency leaves off):
/// instrument, instantiate with WASI preview1 granting `env`, call
/// `_initialize` then `wizer-initialize`, snapshot.
fn pre_init_with_wizer(module: &[u8], env: &[(&str, &str)], keep_init_func: bool) -> Vec<u8> {
    let mut wizer = Wizer::new();
    wizer.keep_init_func(keep_init_func);
    let (cx, instrumented) = wizer.instrument(module).unwrap_or_else(|e| panic!("{e:?}"));
    let mut running = Running::new(&instrumented, Some(env));
    running.call("_initialize");
    running.call(wizer.get_init_func());
    block_on(wizer.snapshot(&cx, &mut running)).unwrap_or_else(|e| panic!("{e:?}"))
}

/// What the peer's snapshot reads (as `wasmtime_wizer::WasmtimeWizer`).
impl InstanceState for Running {
    async fn global_get(&mut self, name: &str, _: wasmparser::ValType) -> SnapshotVal {
        let global = self.instance.get_global(&mut self.store, name).unwrap();
        match global.get(&mut self.store) {
            wasmtime::Val::I32(x) => SnapshotVal::I32(x),
            wasmtime::Val::I64(x) => SnapshotVal::I64(x),
            wasmtime::Val::F32(x) => SnapshotVal::F32(x),
            wasmtime::Val::F64(x) => SnapshotVal::F64(x),
            wasmtime::Val::V128(x) => SnapshotVal::V128(x.as_u128()),
            other => panic!("global {name}: {other:?}"),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        let memory = self.instance.get_memory(&mut self.store, name).unwrap();
        contents(memory.data(&self.store))
    }
}

/// Before pre-initialization the module is a plain reactor: its host calls
/// `_initialize`, and until someone calls `wizer-initialize` every export
/// answers its sentinel. Init at run time builds the state from what WASI
/// grants (here `GREETING=hi`).
#[test]
fn wizer_module_answers_sentinels_until_init_runs() {
    let module = wasip1_guest("wizer-init");
    let exports = module_exports(&module);
    for name in ["_initialize", "wizer-initialize", "memory", "matches"] {
        assert!(exports.iter().any(|e| e == name), "{name}: {exports:?}");
    }
    let mut running = Running::new(&module, Some(&[GREETING]));
    running.call("_initialize");
    assert_eq!(running.answers(), uninitialized());
    running.call("wizer-initialize");
    assert_eq!(running.answers(), initialized("hi"));
    // Init builds the state once: a second call changes nothing.
    running.call("wizer-initialize");
    assert_eq!(running.answers(), initialized("hi"));
}

/// `component-init app.wasm --wasi --env GREETING=hi -o out.wasm`: the
/// output no longer exports `wizer-initialize` nor `_initialize` (both ran
/// at build time, once), imports nothing it calls (every import traps) and
/// answers as the module initialized at run time did, `GREETING` included.
/// The peer (`wasmtime-wizer`) on the same module gives an output that
/// answers the same; ours is not larger.
#[test]
fn wizer_module_pre_initialized_by_ours_and_by_wizer() {
    let module = wasip1_guest("wizer-init");
    let dir = tempfile::tempdir().unwrap();
    let ours = pre_init_with_ours(dir.path(), &module);
    let wizer = pre_init_with_wizer(&module, &[GREETING], false);
    for (who, output) in [("ours", &ours), ("wizer", &wizer)] {
        validate(output);
        let exports = module_exports(output);
        assert!(
            !exports
                .iter()
                .any(|e| e == "wizer-initialize" || e == "_initialize"),
            "{who}: {exports:?}"
        );
        let mut expected: Vec<String> = module_exports(&module)
            .into_iter()
            .filter(|e| e != "wizer-initialize" && e != "_initialize")
            .collect();
        expected.sort();
        let mut exports = exports;
        exports.sort();
        assert_eq!(exports, expected, "{who}");
        let mut running = Running::new(output, None);
        assert_eq!(running.answers(), initialized("hi"), "{who}");
    }
    eprintln!(
        "wizer-init: {} bytes in; pre-initialized: ours {} bytes, wasmtime-wizer {} bytes",
        module.len(),
        ours.len(),
        wizer.len()
    );
    assert!(
        ours.len() <= wizer.len(),
        "ours {} bytes > wasmtime-wizer's {} bytes",
        ours.len(),
        wizer.len()
    );
}

/// The command line tools spawn Wizer with, as ComponentizeJS does
/// (`--allow-wasi`, `--init-func`, `--wasm-bulk-memory=true`,
/// `--inherit-env=true`, `-o=OUT`), here with `-r` renaming an export too:
/// `GREETING` comes from the inherited environment.
#[test]
fn wizer_command_line_as_tools_spawn_it() {
    let module = wasip1_guest("wizer-init");
    let dir = tempfile::tempdir().unwrap();
    let (app, out) = (dir.path().join("app.wasm"), dir.path().join("out.wasm"));
    std::fs::write(&app, &module).unwrap();
    let out_arg = format!("-o={}", out.display());
    component_init(
        &[
            "--allow-wasi".as_ref(),
            "--init-func".as_ref(),
            "wizer-initialize".as_ref(),
            "--wasm-bulk-memory=true".as_ref(),
            "--inherit-env=true".as_ref(),
            "-r".as_ref(),
            "sum=table_sum".as_ref(),
            out_arg.as_ref(),
            app.as_os_str(),
        ],
        &[("GREETING", "from the environment")],
    );
    let output = std::fs::read(&out).unwrap();
    validate(&output);
    let exports = module_exports(&output);
    assert!(exports.iter().any(|e| e == "sum"), "{exports:?}");
    for gone in ["table_sum", "wizer-initialize", "_initialize"] {
        assert!(!exports.iter().any(|e| e == gone), "{gone}: {exports:?}");
    }
    let mut running = Running::new(&output, None);
    let sum = running
        .instance
        .get_typed_func::<(), u64>(&mut running.store, "sum")
        .unwrap()
        .call(&mut running.store, ())
        .unwrap();
    assert_eq!(sum, 37_550_402_023);
    assert_eq!(running.u32("greeting_len", None), 20);
    assert_eq!(running.u32("greeting_byte", Some(0)), u32::from(b'f'));
    assert_eq!(running.u32("init_calls", None), 1);
}

/// `--keep-init-func`: `wizer-initialize` stays exported and `_initialize`
/// does not (it ran, and running it again would run the constructors
/// again over the snapshot), as with the peer and the Wizer 10 binary;
/// calling init on the output finds the state built.
#[test]
fn wizer_module_keeps_its_init_func_on_request() {
    let module = wasip1_guest("wizer-init");
    let dir = tempfile::tempdir().unwrap();
    let (app, out) = (dir.path().join("app.wasm"), dir.path().join("out.wasm"));
    std::fs::write(&app, &module).unwrap();
    component_init(
        &[
            app.as_os_str(),
            "--wasi".as_ref(),
            "--keep-init-func".as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
        ],
        &[],
    );
    let ours = std::fs::read(&out).unwrap();
    let wizer = pre_init_with_wizer(&module, &[], true);
    for (who, output) in [("wizer", &wizer), ("ours", &ours)] {
        let exports = module_exports(output);
        assert!(
            exports.iter().any(|e| e == "wizer-initialize"),
            "{who}: {exports:?}"
        );
        assert!(
            !exports.iter().any(|e| e == "_initialize"),
            "{who}: {exports:?}"
        );
        let mut running = Running::new(output, None);
        running.call("wizer-initialize");
        // Init ran at build time without `GREETING`, and not again.
        assert_eq!(running.answers(), initialized("<unset>"), "{who}");
    }
}

fn componentize_js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/componentize-js")
}

/// Installs `tests/componentize-js`'s packages when they are missing.
fn ensure_componentize_js() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let package = componentize_js_dir().join("node_modules/@bytecodealliance/componentize-js");
        if !package.join("package.json").exists() {
            npm_ci(&componentize_js_dir());
        }
    });
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// ComponentizeJS with `wizerBin` set to our binary: it spawns it with
/// Wizer's command line (`--allow-wasi --init-func componentize.wizer
/// --dir=... --mapdir=/::... --wasm-bulk-memory=true --inherit-env=true
/// -o=OUT IN`, the runtime's arguments on stdin) to run app.js's top level
/// in StarlingMonkey. The component answers as the one made with
/// ComponentizeJS's default Wizer, and its top level ran at build time.
#[test]
fn componentize_js_with_our_binary_as_its_wizer() {
    ensure_componentize_js();
    let dir = tempfile::tempdir().unwrap();
    let build = |name: &str, wizer_bin: Option<&str>| {
        let out = dir.path().join(name);
        let mut command = Command::new("node");
        command
            .arg(componentize_js_dir().join("build.mjs"))
            .arg(&out)
            .args(wizer_bin)
            .current_dir(dir.path());
        run(&mut command);
        std::fs::read(&out).unwrap()
    };
    let start = now_ms();
    let wizer = build("wizer.wasm", None);
    let ours = build("ours.wasm", Some(env!("CARGO_BIN_EXE_component-init")));
    let built = now_ms();
    let name = [Val::String("component-init".into())];
    let calls: &[(&str, &[Val])] = &[
        ("calls", &[]),
        ("hello", &name),
        ("hello", &name),
        ("calls", &[]),
        ("computed", &[]),
        ("evaluated-at-ms", &[]),
    ];
    let mut answers = Vec::new();
    for (who, component) in [("wizer", &wizer), ("ours", &ours)] {
        validate(component);
        let exports = export_names(component);
        assert!(
            !exports.iter().any(|e| e.contains("wizer")),
            "{who}: {exports:?}"
        );
        let mut results = run_wasi(component, &Grant::default(), calls)
            .unwrap_or_else(|e| panic!("{who}: {e:?}"));
        let Some(Val::U64(evaluated_at)) = results.pop().unwrap().pop() else {
            panic!("{who}: evaluated-at-ms")
        };
        // app.js's top level ran while ComponentizeJS built the component.
        assert!(
            (start..=built).contains(&evaluated_at),
            "{who}: evaluated at {evaluated_at}, built between {start} and {built}"
        );
        assert_eq!(results[0], [Val::U32(0)], "{who}");
        assert_eq!(results[3], [Val::U32(2)], "{who}");
        assert_eq!(
            string(&results[4][0]),
            "9 distinct of 11 words, \"the\" x3, sum of squares 332833500",
            "{who}"
        );
        assert_eq!(string(&results[1][0]), "Hello, component-init! (58)");
        answers.push(results);
    }
    assert_eq!(answers[0], answers[1]);
    eprintln!(
        "componentize-js: ours {} bytes, default wizer {} bytes",
        ours.len(),
        wizer.len()
    );
}
