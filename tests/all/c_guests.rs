//! Real C guests, built from source by the tests with the clang of Zig.
//!
//! `tests/programs/c-callbacks/callbacks.c` is a callback registry (an
//! interpreter registering builtins, Emscripten's `addFunction`): its init
//! grows the module's function table at run time (`table.grow`), overwrites
//! a slot (`table.set`), fills slots (`table.fill`, with a function and with
//! null) and keeps the slots in linear memory; its exports call them by slot
//! (`call_indirect`). Pre-initialized as a core module (`wizer.initialize`),
//! the output starts with the table init left and answers as the instance
//! initialized at run time did. The same program made a component (with
//! `world.wit`, init exported as `init`) is the component case: the slots
//! init fills are carried the same way.
//!
//! Zig (`ziglang` 0.17.1 on PyPI, clang 22) is installed with pip into a
//! venv under `target/tools` when it is missing (once per test run; the
//! network is needed the first time). No libc: the module is freestanding
//! and imports nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use wasmtime::component::Val;
use wasmtime::{Engine, Instance, Module, Store};

use crate::support::{cli_in, export_names, pip_install, run, run_tool, validate};

/// The `ziglang` package the tests compile C with, pinned.
const ZIGLANG: &str = "0.17.1";

/// What `dispatch` answers for a callback that is not registered.
const NOT_REGISTERED: i32 = i32::MIN;

/// The callbacks init registers, in order: twice, square, negate,
/// add_seven, cube, clamp_byte.
const CALLBACKS: i32 = 6;

/// The arguments each callback is called with.
const XS: [i32; 3] = [5, -3, 300];

/// The table slots `is-null` is asked about: past the grown table's end.
const SLOTS: i32 = 16;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of `target/tools/zig-venv`, where `ziglang` is installed
/// when it is missing or another version (once per test run).
fn zig_python() -> &'static Path {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let venv = root().join("target/tools/zig-venv");
            let python = venv.join("bin/python3");
            let installed = Command::new(&python)
                .args(["-m", "ziglang", "version"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == ZIGLANG);
            if !installed {
                pip_install(&venv, &format!("ziglang=={ZIGLANG}"))?;
            }
            Ok(python)
        })
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Compiles `tests/programs/<name>/<source>` into a freestanding core
/// module (no libc, no imports, a growable function table) at
/// `target/c-guests/<name>.wasm`, and returns its bytes.
fn compile_c(name: &str, source: &str) -> Result<Vec<u8>, String> {
    let python = zig_python();
    let source = root().join("tests/programs").join(name).join(source);
    let out_dir = root().join("target/c-guests");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let out = out_dir.join(format!("{name}.wasm"));
    let cache = root().join("target/tools/zig-cache");
    let start = Instant::now();
    run_tool(
        Command::new(python)
            .args(["-m", "ziglang", "cc", "--target=wasm32-freestanding"])
            // The table instructions are inline assembly: the assembler
            // needs the feature named (Zig's default CPU has it, but its
            // assembler does not see it).
            .args(["-mcpu=generic+reference_types", "-O2", "-g0", "-nostdlib"])
            .args(["-Wl,--no-entry", "-Wl,--growable-table", "-o"])
            .arg(&out)
            .arg(&source)
            .env("ZIG_GLOBAL_CACHE_DIR", &cache)
            .env("ZIG_LOCAL_CACHE_DIR", &cache),
        &format!("zig cc {}", source.display()),
    )?;
    let bytes = std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "zig cc: tests/programs/{name} compiled into {} bytes in {:.1?}",
        bytes.len(),
        start.elapsed()
    );
    Ok(bytes)
}

/// `tests/programs/c-callbacks` as a core module (once per test run).
fn c_callbacks_module() -> &'static [u8] {
    static BUILT: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| compile_c("c-callbacks", "callbacks.c"))
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `tests/programs/c-callbacks` as a component: the core module with the
/// world `callbacks` of `world.wit` embedded, encoded by wit-component
/// (which leaves the export `wizer.initialize`, not in the world, out).
fn c_callbacks_component() -> Vec<u8> {
    let mut module = c_callbacks_module().to_vec();
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_path(root().join("tests/programs/c-callbacks/world.wit"))
        .unwrap();
    crate::support::embed_world(&mut module, &resolve, package, "callbacks");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}

/// The questions asked of an instance, in order: each export with its
/// arguments.
fn questions() -> Vec<(&'static str, Vec<i32>)> {
    let mut questions = vec![
        ("registered", vec![]),
        ("table-size", vec![]),
        ("cleared", vec![]),
    ];
    questions.extend((-1..=CALLBACKS).map(|n| ("slot", vec![n])));
    for n in -1..=CALLBACKS {
        questions.extend(XS.iter().map(|x| ("dispatch", vec![n, *x])));
    }
    questions.extend((0..SLOTS).map(|s| ("is-null", vec![s])));
    questions
}

/// What an instance answers to `questions()`.
#[derive(Debug, PartialEq)]
struct Answers {
    /// `registered()`.
    registered: i32,
    /// `table-size()`.
    table_size: i32,
    /// `cleared()`.
    cleared: i32,
    /// `slot(n)` for n = -1 to CALLBACKS.
    slots: Vec<i32>,
    /// `dispatch(n, x)` for n = -1 to CALLBACKS, for each x of XS.
    dispatch: Vec<Vec<i32>>,
    /// `is-null(s)` for s = 0 to SLOTS - 1.
    nulls: Vec<i32>,
}

impl Answers {
    /// Reads the answers to `questions()`, in order.
    fn read(answers: Vec<i32>) -> Answers {
        let mut answers = answers.into_iter();
        let mut take = |n: i32| -> Vec<i32> { answers.by_ref().take(n as usize).collect() };
        let head = take(3);
        Answers {
            registered: head[0],
            table_size: head[1],
            cleared: head[2],
            slots: take(CALLBACKS + 2),
            dispatch: (-1..=CALLBACKS).map(|_| take(XS.len() as i32)).collect(),
            nulls: take(SLOTS),
        }
    }
}

/// What the registry answers before init, in a table of `size` slots.
fn uninitialized(size: i32) -> Answers {
    Answers {
        registered: 0,
        table_size: size,
        cleared: -1,
        slots: vec![-1; CALLBACKS as usize + 2],
        dispatch: vec![vec![NOT_REGISTERED; XS.len()]; CALLBACKS as usize + 2],
        // Slot 0 is null (no function pointer is 0), the functions whose
        // address is taken follow.
        nulls: (0..SLOTS)
            .map(|s| match s {
                0 => 1,
                s if s < size => 0,
                _ => -1,
            })
            .collect(),
    }
}

/// What the registry answers after init, which grew a table of `size`
/// slots by 7: the four builtins, the plugin it cleared, and two reserved
/// slots (cube, then clamp_byte overwriting cube).
fn initialized(size: i32) -> Answers {
    let plugin = size + 4;
    let table_size = size + 7;
    Answers {
        registered: CALLBACKS,
        table_size,
        cleared: plugin,
        // None at -1, the builtins, the two reserved slots (the plugin's,
        // in between, was cleared), none at CALLBACKS.
        slots: vec![
            -1,
            size,
            size + 1,
            size + 2,
            size + 3,
            size + 5,
            size + 6,
            -1,
        ],
        dispatch: vec![
            vec![NOT_REGISTERED; 3],
            vec![10, -6, 600],
            vec![25, 9, 90_000],
            vec![-5, 3, -300],
            vec![12, 4, 307],
            vec![125, -27, 27_000_000],
            vec![5, 0, 255],
            vec![NOT_REGISTERED; 3],
        ],
        nulls: (0..SLOTS)
            .map(|s| match s {
                0 => 1,
                s if s == plugin => 1,
                s if s < table_size => 0,
                _ => -1,
            })
            .collect(),
    }
}

/// Instantiates the core module `bytes` (it imports nothing), calls each
/// export of `calls` first, then asks `questions()`.
fn core_answers(bytes: &[u8], calls: &[&str]) -> Answers {
    let engine = Engine::default();
    let module = Module::new(&engine, bytes).expect("the module compiles");
    let mut store = Store::new(&engine, ());
    let instance =
        Instance::new(&mut store, &module, &[]).expect("the module instantiates without imports");
    for name in calls {
        instance
            .get_typed_func::<(), ()>(&mut store, name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .call(&mut store, ())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    let answers = questions()
        .into_iter()
        .map(|(name, args)| {
            match args[..] {
                [] => instance
                    .get_typed_func::<(), i32>(&mut store, name)
                    .and_then(|f| f.call(&mut store, ())),
                [a] => instance
                    .get_typed_func::<i32, i32>(&mut store, name)
                    .and_then(|f| f.call(&mut store, a)),
                [a, b] => instance
                    .get_typed_func::<(i32, i32), i32>(&mut store, name)
                    .and_then(|f| f.call(&mut store, (a, b))),
                _ => unreachable!("at most two arguments"),
            }
            .unwrap_or_else(|e| panic!("{name}{args:?}: {e:?}"))
        })
        .collect();
    Answers::read(answers)
}

/// Instantiates the component `bytes`, calls each export of `calls`
/// first, then asks `questions()`.
fn component_answers(bytes: &[u8], calls: &[&str]) -> Answers {
    let all: Vec<(&str, Vec<Val>)> = calls
        .iter()
        .map(|name| (*name, vec![]))
        .chain(
            questions()
                .into_iter()
                .map(|(name, args)| (name, args.into_iter().map(Val::S32).collect())),
        )
        .collect();
    let all: Vec<(&str, &[Val])> = all.iter().map(|(n, a)| (*n, &a[..])).collect();
    let results = run(bytes, &all).unwrap_or_else(|e| panic!("{e:?}"));
    let answers = results[calls.len()..]
        .iter()
        .map(|r| match r[..] {
            [Val::S32(x)] => x,
            ref other => panic!("not one s32: {other:?}"),
        })
        .collect();
    Answers::read(answers)
}

/// The minimum of every table defined in `bytes`, a module or a component
/// (at any depth).
fn table_minimums(bytes: &[u8]) -> Vec<u64> {
    let mut minimums = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::TableSection(tables) = payload.unwrap() {
            minimums.extend(tables.into_iter().map(|t| t.unwrap().ty.initial));
        }
    }
    minimums
}

/// The names a core module exports.
fn module_exports(module: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::ExportSection(exports) = payload.unwrap() {
            names.extend(exports.into_iter().map(|e| e.unwrap().name.to_string()));
        }
    }
    names
}

/// The table instructions (and `call_indirect`) in the code of `module`,
/// by name, each once, and the functions its element segments hold.
fn table_code(module: &[u8]) -> (Vec<&'static str>, u32) {
    use wasmparser::{ElementItems, Operator, Payload};
    let mut seen = Vec::new();
    let mut functions_in_segments = 0;
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        match payload.unwrap() {
            Payload::CodeSectionEntry(body) => {
                let mut reader = body.get_operators_reader().unwrap();
                while !reader.eof() {
                    let name = match reader.read().unwrap() {
                        Operator::TableGet { .. } => "table.get",
                        Operator::TableGrow { .. } => "table.grow",
                        Operator::TableSet { .. } => "table.set",
                        Operator::TableFill { .. } => "table.fill",
                        Operator::TableSize { .. } => "table.size",
                        Operator::CallIndirect { .. } => "call_indirect",
                        _ => continue,
                    };
                    if !seen.contains(&name) {
                        seen.push(name);
                    }
                }
            }
            Payload::ElementSection(segments) => {
                for segment in segments {
                    if let ElementItems::Functions(f) = segment.unwrap().items {
                        functions_in_segments += f.count();
                    }
                }
            }
            _ => {}
        }
    }
    seen.sort();
    (seen, functions_in_segments)
}

/// The C program as built: freestanding (no imports), init exported under
/// both names, the table grown by code and not by an element segment.
#[test]
fn c_callbacks_module_changes_its_table_at_run_time() {
    let module = c_callbacks_module();
    let exports = module_exports(module);
    for name in ["wizer.initialize", "init", "dispatch", "table-size"] {
        assert!(exports.iter().any(|e| e == name), "{name}: {exports:?}");
    }
    let imports = wasmparser::Parser::new(0)
        .parse_all(module)
        .any(|p| matches!(p.unwrap(), wasmparser::Payload::ImportSection(_)));
    assert!(!imports, "the module imports something");
    let (instructions, in_segments) = table_code(module);
    assert_eq!(
        instructions,
        [
            "call_indirect",
            "table.fill",
            "table.get",
            "table.grow",
            "table.set",
            "table.size"
        ]
    );
    // The element segment holds the seven functions whose address is
    // taken, from slot 1; nothing else is in the table until init runs.
    assert_eq!(in_segments, 7);
    assert_eq!(table_minimums(module), [8]);
    assert_eq!(core_answers(module, &[]), uninitialized(8));
    assert_eq!(core_answers(module, &["wizer.initialize"]), initialized(8));
    assert_eq!(core_answers(module, &["init"]), initialized(8));
    // Init registers once: a second call changes nothing.
    assert_eq!(core_answers(module, &["init", "init"]), initialized(8));
}

/// `component-init in.wasm --init-func wizer.initialize -o out.wasm`: the
/// output starts with the table init grew (its minimum is the grown size,
/// every slot holding what init left, the plugin's slot null), the
/// registry in memory, and answers as the module initialized at run time,
/// without init; `wizer.initialize` is gone, and `init` on the output
/// finds the registry built.
#[test]
fn c_callbacks_module_pre_initialized_by_the_cli() {
    let module = c_callbacks_module();
    let before = core_answers(module, &[]);
    let expected = core_answers(module, &["wizer.initialize"]);
    assert_ne!(before, expected, "init changes nothing visible");
    assert_eq!(expected, initialized(8));

    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let (process, out_path) = cli_in(dir.path(), module, &["--init-func", "wizer.initialize"]);
    assert!(
        process.status.success(),
        "{}",
        String::from_utf8_lossy(&process.stderr)
    );
    let output = std::fs::read(&out_path).unwrap();
    eprintln!(
        "component-init: {} bytes in, {} bytes out, in {:.1?}",
        module.len(),
        output.len(),
        start.elapsed()
    );
    validate(&output);
    assert_eq!(table_minimums(&output), [expected.table_size as u64]);
    let exports = module_exports(&output);
    assert!(
        !exports.iter().any(|e| e == "wizer.initialize"),
        "{exports:?}"
    );
    let mut kept: Vec<String> = module_exports(module)
        .into_iter()
        .filter(|e| e != "wizer.initialize")
        .collect();
    kept.sort();
    let mut exports = exports;
    exports.sort();
    assert_eq!(exports, kept);

    assert_eq!(core_answers(&output, &[]), expected);
    assert_eq!(core_answers(&output, &["init"]), expected);
}

/// The same program as a component, pre-initialized by the CLI with
/// `--init-func init`: the same answers as the component initialized at
/// run time.
#[test]
fn c_callbacks_component_pre_initialized_by_the_cli() {
    let component = c_callbacks_component();
    let before = component_answers(&component, &[]);
    let expected = component_answers(&component, &["init"]);
    assert_eq!(before, uninitialized(8));
    assert_eq!(expected, initialized(8));

    let dir = tempfile::tempdir().unwrap();
    let (process, out_path) = cli_in(dir.path(), &component, &["--init-func", "init"]);
    assert!(
        process.status.success(),
        "{}",
        String::from_utf8_lossy(&process.stderr)
    );
    let output = std::fs::read(&out_path).unwrap();
    validate(&output);
    assert_eq!(table_minimums(&output), [expected.table_size as u64]);
    let exports = export_names(&output);
    assert!(!exports.contains(&"init".to_string()), "{exports:?}");
    assert!(exports.contains(&"dispatch".to_string()), "{exports:?}");
    assert_eq!(component_answers(&output, &[]), expected);
}
