//! The inputs: one component per workload, each exporting an init function
//! (`component-init`, or `wizer-initialize` for componentize-js; both tools
//! run the same one) and a `probe` export (no parameters) for the startup
//! measurement that reads state init leaves behind.

use std::fmt::Write;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::child::Setup;

/// One input component and how to run it.
pub struct Workload {
    /// Short name, used on the command line to select workloads.
    pub name: &'static str,
    /// What it is, one line.
    pub description: String,
    /// The init function, and whether init needs WASI p2 (both tools then
    /// provide it, with the same environment and directories).
    pub setup: Setup,
    /// The export called first at startup; it must not run the init work.
    pub probe: &'static str,
    /// The component.
    pub bytes: Vec<u8>,
    /// The same app built again with one line of its source changed (the
    /// "app changed" row of the cache table), where the bench has one.
    pub changed: Option<Changed>,
}

/// A second build of a workload's app, its source changed by one line.
pub struct Changed {
    /// What changed, for the report.
    pub description: String,
    /// The component.
    pub bytes: Vec<u8>,
}

/// Every workload's name, in report order.
pub const NAMES: &[&str] = &[
    "regex-tables",
    "large-code",
    "dense-256mib",
    "dense-96mib",
    "sparse-1gib",
    "sparse-1gib-random",
    "many-globals",
    "adapter-shape",
    "c-app",
    "componentize-py",
    "componentize-js",
];

/// Builds the workload `name`; `Err` says why it cannot be built here.
/// `tools` is where the toolchains of other languages are installed
/// (kept across runs).
pub fn build(name: &str, root: &Path, tools: &Path) -> Result<Workload, String> {
    let wat = |text: &str| wat::parse_str(text).map_err(|e| format!("{name}: {e}"));
    Ok(match name {
        "regex-tables" => Workload {
            name: "regex-tables",
            description: "Rust guest (wasm32-wasip2, tests/programs/regex-tables): init compiles \
                          regexes and builds a HashMap from embedded JSON"
                .into(),
            setup: Setup::new(true),
            probe: "init-calls",
            bytes: rust_guest(root, "regex-tables", "wasm32-wasip2")?,
            changed: None,
        },
        "large-code" => {
            let bytes = wat(&large_code(LARGE_CODE_FUNCS))?;
            Workload {
                name: "large-code",
                description: format!(
                    "{LARGE_CODE_FUNCS} generated functions ({:.1} MiB component), init touches a \
                     few of them",
                    mib(bytes.len())
                ),
                setup: Setup::new(false),
                probe: "probe",
                bytes,
                changed: None,
            }
        }
        "dense-256mib" => Workload {
            name: "dense-256mib",
            description: "init grows memory to 256 MiB and fills all of it with non-zero \
                          pseudo-random bytes"
                .into(),
            setup: Setup::new(false),
            probe: "probe",
            bytes: wat(&dense(4096))?,
            changed: None,
        },
        "dense-96mib" => Workload {
            name: "dense-96mib",
            description: "as dense-256mib at 96 MiB, below the size at which the peer fails".into(),
            setup: Setup::new(false),
            probe: "probe",
            bytes: wat(&dense(1536))?,
            changed: None,
        },
        "sparse-1gib" => Workload {
            name: "sparse-1gib",
            description: "the issue's shape: init grows memory to 1 GiB and writes 16,384 \
                          4-byte words, one every 64 KiB (64 KiB of data over 1 GiB)"
                .into(),
            setup: Setup::new(false),
            probe: "probe",
            bytes: wat(&sparse_strided(16384, 0x10000))?,
            changed: None,
        },
        "sparse-1gib-random" => Workload {
            name: "sparse-1gib-random",
            description: format!(
                "init grows memory to 1 GiB and writes {SPARSE_WRITES} 8-byte words at \
                 pseudo-random places (the bench's sparse-1gib before the issue's shape)"
            ),
            setup: Setup::new(false),
            probe: "probe",
            bytes: wat(&sparse(16384, SPARSE_WRITES))?,
            changed: None,
        },
        "many-globals" => Workload {
            name: "many-globals",
            description: format!(
                "{GLOBALS_MODULES} modules, each instantiated once, with {GLOBALS_PER_MODULE} \
                 mutable i32/i64/f32/f64 globals each ({} in all), init sets every one",
                GLOBALS_MODULES * GLOBALS_PER_MODULE
            ),
            setup: Setup::new(false),
            probe: "probe",
            bytes: wat(&many_globals(GLOBALS_MODULES, GLOBALS_PER_MODULE))?,
            changed: None,
        },
        "adapter-shape" => Workload {
            name: "adapter-shape",
            description: "wit-component's shape: shim (table of trampolines), main module \
                          (1 MiB heap written by init, start function), adapter importing main's \
                          memory with 64 globals of its own, fixups filling the shim's table"
                .into(),
            setup: Setup::new(false),
            probe: "probe",
            bytes: wat(&adapter_shape())?,
            changed: None,
        },
        "c-app" => {
            let bytes = c_app(root, tools)?;
            Workload {
                name: "c-app",
                description: format!(
                    "C guest (benches/programs/c-app, {CLANG} and Debian's wasi-libc, the \
                     preview1 reactor adapter; {:.1} KiB): init builds a chained hash table \
                     of {C_APP_WORDS} malloc'd entries with strdup'd keys, a sorted index and \
                     a string, leaving the heap in many short runs",
                    bytes.len() as f64 / 1024.0
                ),
                setup: Setup::new(true),
                probe: "probe",
                bytes,
                changed: None,
            }
        }
        "componentize-py" => {
            let bytes = py_app(root, tools, None)?;
            let changed = Changed {
                description: format!(
                    "app.py with `{}` in place of `{}`",
                    PY_APP_CHANGE.1.trim(),
                    PY_APP_CHANGE.0.trim()
                ),
                bytes: py_app(root, tools, Some(PY_APP_CHANGE))?,
            };
            Workload {
                name: "componentize-py",
                description: format!(
                    "{COMPONENTIZE_PY} output (benches/programs/py-app, {:.1} MiB), \
                     already pre-initialized by componentize-py itself (the interpreter \
                     and the imports); init is the app's `component-init` export, which \
                     builds tables in Python",
                    mib(bytes.len())
                ),
                setup: Setup::new(true),
                probe: "probe",
                bytes,
                changed: Some(changed),
            }
        }
        "componentize-js" => {
            let (bytes, setup) = js_app(root, tools)?;
            Workload {
                name: "componentize-js",
                description: format!(
                    "{COMPONENTIZE_JS} (benches/programs/js-app), stopped before its own \
                     Wizer step: StarlingMonkey with the app's bindings spliced in and \
                     componentize-js's WASI adapter, un-initialized ({:.1} MiB); init \
                     (`wizer-initialize`, which is componentize-js's \
                     `componentize.wizer`) starts the JS engine and evaluates app.js, \
                     which it reads from a preopened directory",
                    mib(bytes.len())
                ),
                setup,
                probe: "probe",
                bytes,
                changed: None,
            }
        }
        other => return Err(format!("unknown workload `{other}`")),
    })
}

/// The floor for startup: a component with nothing to initialize.
pub fn empty() -> Vec<u8> {
    wat::parse_str(
        r#"(component
          (core module $m (func (export "probe") (result i32) (i32.const 7)))
          (core instance $i (instantiate $m))
          (func (export "probe") (result u32) (canon lift (core func $i "probe"))))"#,
    )
    .expect("the empty component parses")
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Builds a guest of `tests/programs` for `target` (wasm32-wasip2: a
/// component; wasm32-wasip1: a core module) the way `tests/all/guests.rs`
/// does, returning what it made.
pub fn rust_guest(root: &Path, package: &str, target: &str) -> Result<Vec<u8>, String> {
    let dir = root.join("tests/programs");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--locked", "--target", target])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(dir.join("target"))
        .args(["-p", package]);
    // Flags meant for the host build must not reach the guests'.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        command.env_remove(var);
    }
    let output = command
        .output()
        .map_err(|e| format!("failed to run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building tests/programs/{package} for {target} failed (`rustup target add \
             {target}`?): {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ));
    }
    let path = dir
        .join("target")
        .join(target)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The C compiler the `c-app` workload is built with (Debian bookworm's
/// clang 14, whose `wasm32-wasi` target and `wasi-libc` package give a
/// preview1 module).
const CLANG: &str = "clang";
/// The words `benches/programs/c-app/main.c` inserts (its `WORDS`).
const C_APP_WORDS: usize = 700;

/// Where wasi-libc is installed: `WASI_SYSROOT`, or Debian's multiarch
/// layout under /usr (`apt-get install clang lld wasi-libc
/// libclang-rt-dev-wasm32`), or wasi-sdk's.
fn wasi_sysroot() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WASI_SYSROOT") {
        return Some(dir.into());
    }
    [
        ("/usr", "lib/wasm32-wasi/libc.a"),
        ("/usr/share/wasi-sysroot", "lib/wasm32-wasi/libc.a"),
        ("/opt/wasi-sdk/share/wasi-sysroot", "lib/wasm32-wasi/libc.a"),
    ]
    .into_iter()
    .map(|(dir, libc)| (PathBuf::from(dir), libc))
    .find(|(dir, libc)| dir.join(libc).exists())
    .map(|(dir, _)| dir)
}

/// The `c-app` workload: benches/programs/c-app/main.c compiled with clang
/// for `wasm32-wasi` as a reactor (wasi-libc's `_initialize` runs its
/// constructors; wit-component calls it at instantiation), its world
/// embedded and made into a component with the preview1 reactor adapter,
/// as `tests/all/guests.rs` makes its wasip1 guests into components.
fn c_app(root: &Path, tools: &Path) -> Result<Vec<u8>, String> {
    use wasi_preview1_component_adapter_provider::{
        WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    };
    let sources = root.join("benches/programs/c-app");
    let (main, wit) = (sources.join("main.c"), sources.join("world.wit"));
    let sysroot = wasi_sysroot().ok_or(
        "no wasi-libc (WASI_SYSROOT, /usr/lib/wasm32-wasi or /usr/share/wasi-sysroot; on \
         Debian: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32)",
    )?;
    let core = tools.join("c-app.core.wasm");
    let stamp = stamp(
        std::slice::from_ref(&main),
        &format!("{CLANG} {}", sysroot.display()),
    )?;
    if !fresh(&core, &stamp) {
        std::fs::create_dir_all(tools).map_err(|e| format!("{}: {e}", tools.display()))?;
        run(
            Command::new(CLANG)
                .args(["--target=wasm32-wasi", "-O2", "-mexec-model=reactor"])
                .arg(format!("--sysroot={}", sysroot.display()))
                .arg(&main)
                .arg("-o")
                .arg(&core),
            &format!(
                "{CLANG} --target=wasm32-wasi (apt-get install clang lld wasi-libc libclang-rt-dev-wasm32?)"
            ),
        )?;
        std::fs::write(core.with_extension("stamp"), &stamp)
            .map_err(|e| format!("{}: {e}", core.display()))?;
    }
    let mut module = std::fs::read(&core).map_err(|e| format!("{}: {e}", core.display()))?;
    let err = |e: anyhow::Error| format!("c-app: making the component: {e:#}");
    let text = std::fs::read_to_string(&wit).map_err(|e| format!("{}: {e}", wit.display()))?;
    embed_world(&mut module, "world.wit", &text).map_err(err)?;
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .map_err(err)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .map_err(err)?
        .encode()
        .map_err(err)
}

/// The componentize-py the `componentize-py` workload is made with.
const COMPONENTIZE_PY: &str = "componentize-py 0.25.1";
/// The componentize-js the `componentize-js` workload is made from.
pub const COMPONENTIZE_JS: &str = "componentize-js 0.23.0";

/// Runs `command`; `Err` names `what` and ends with the last line of its
/// stderr.
pub fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: failed to start {:?}: {e}", command.get_program()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
    Err(format!(
        "{what} failed ({}): {}",
        output.status,
        last.unwrap_or_default().trim()
    ))
}

/// A hash of `files` and `version`: a made input is reused while its stamp
/// (this hash) is unchanged.
pub fn stamp(files: &[PathBuf], version: &str) -> Result<String, String> {
    let mut hasher = DefaultHasher::new();
    version.hash(&mut hasher);
    for file in files {
        std::fs::read(file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .hash(&mut hasher);
    }
    Ok(format!("{:016x}", hasher.finish()))
}

/// Whether `out` was made from inputs with stamp `stamp`.
pub fn fresh(out: &Path, stamp: &str) -> bool {
    out.exists()
        && std::fs::read_to_string(out.with_extension("stamp")).is_ok_and(|s| s.trim() == stamp)
}

/// The one-line change of app.py for the "app changed" run of the
/// `componentize-py` workload: `lookup` (not called by init or `probe`)
/// folds case. Init's work and `probe`'s result stay the same.
pub const PY_APP_CHANGE: (&str, &str) = (
    "        return state.get(\"words\", {}).get(word)\n",
    "        return state.get(\"words\", {}).get(word.lower())\n",
);

/// The `componentize-py` workload: benches/programs/py-app made into a
/// component by componentize-py, installed with pip into a venv under
/// `tools`; with `change`, app.py has that one line (the first) replaced
/// by the second, and the component is made beside the first.
///
/// componentize-py pre-initializes every component it makes (with
/// component-init-transform, calling its own `init` export with arguments
/// only it can build, in directories it extracts and removes), so the
/// un-initialized component never leaves it. What is measured instead is
/// the pre-initialization of its output with the app's own
/// `component-init` export.
fn py_app(root: &Path, tools: &Path, change: Option<(&str, &str)>) -> Result<Vec<u8>, String> {
    let venv = tools.join("venv");
    let componentize_py = venv.join("bin/componentize-py");
    let version = COMPONENTIZE_PY.replace(' ', "==");
    let installed = Command::new(&componentize_py)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == COMPONENTIZE_PY);
    if !installed {
        eprintln!("   installing {version} into {}", venv.display());
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        )?;
        run(
            Command::new(venv.join("bin/pip")).args(["install", "--quiet", &version]),
            &format!("pip install {version}"),
        )?;
    }
    let sources = root.join("benches/programs/py-app");
    let files = [sources.join("app.py"), sources.join("world.wit")];
    let name = if change.is_some() {
        "py-app-changed"
    } else {
        "py-app"
    };
    let out = tools.join(format!("{name}.wasm"));
    let mut version = COMPONENTIZE_PY.to_string();
    if let Some((from, to)) = change {
        version = format!("{version}\n{from}{to}");
    }
    let stamp = stamp(&files, &version)?;
    if !fresh(&out, &stamp) {
        eprintln!("   {COMPONENTIZE_PY}: making {}", out.display());
        // A copy of the sources: Python writes __pycache__ beside them.
        let work = tools.join(name);
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
        for file in &files {
            let to = work.join(file.file_name().expect("a file name"));
            std::fs::copy(file, &to).map_err(|e| format!("{}: {e}", to.display()))?;
        }
        if let Some((from, to)) = change {
            let app = work.join("app.py");
            let text =
                std::fs::read_to_string(&app).map_err(|e| format!("{}: {e}", app.display()))?;
            if text.matches(from).count() != 1 {
                return Err(format!(
                    "benches/programs/py-app/app.py no longer has the line `{}` (once) that \
                     the app-changed build changes",
                    from.trim()
                ));
            }
            std::fs::write(&app, text.replacen(from, to, 1))
                .map_err(|e| format!("{}: {e}", app.display()))?;
        }
        run(
            Command::new(&componentize_py)
                .arg("-d")
                .arg(work.join("world.wit"))
                .args(["-w", "app", "componentize", "-p"])
                .arg(&work)
                .arg("app")
                .arg("-o")
                .arg(&out),
            "componentize-py componentize",
        )?;
        std::fs::write(out.with_extension("stamp"), &stamp)
            .map_err(|e| format!("{}: {e}", out.display()))?;
    }
    std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))
}

/// componentize-js, installed with npm into `tools/npm` on first use;
/// returns the package's directory.
pub fn componentize_js(tools: &Path) -> Result<PathBuf, String> {
    let prefix = tools.join("npm");
    let package = prefix.join("node_modules/@bytecodealliance/componentize-js");
    let version = COMPONENTIZE_JS.replace("componentize-js ", "@bytecodealliance/componentize-js@");
    let installed = std::fs::read_to_string(package.join("package.json")).is_ok_and(|p| {
        p.contains(&format!(
            "\"version\": \"{}\"",
            COMPONENTIZE_JS.rsplit(' ').next().unwrap_or_default()
        ))
    });
    if !installed {
        eprintln!("   installing {version} into {}", prefix.display());
        std::fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
        run(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg(&version),
            &format!("npm install {version}"),
        )?;
    }
    Ok(package)
}

/// The `componentize-js` workload: benches/programs/js-app, taken through
/// componentize-js (installed with npm under `tools`) up to the step where
/// it pre-initializes, and made into an un-initialized component here.
///
/// componentize-js splices the app's bindings into StarlingMonkey (a core
/// module), runs Wizer on that core module with `componentize.wizer` as
/// init, and only then makes the component with the WASI preview1
/// adapter. `build.mjs` does the splicing and writes out what init reads;
/// [`js_component`] makes the component, with the init export named
/// `wizer-initialize`. Init reads its configuration from environment
/// variables and app.js from a directory preopened as `/`, on both sides.
fn js_app(root: &Path, tools: &Path) -> Result<(Vec<u8>, Setup), String> {
    let package = componentize_js(tools)?;
    let sources = root.join("benches/programs/js-app");
    let files = [
        sources.join("app.js"),
        sources.join("world.wit"),
        sources.join("build.mjs"),
    ];
    let parts = tools.join("js-app");
    let marker = parts.join("engine.wasm");
    let stamp = stamp(&files, COMPONENTIZE_JS)?;
    if !fresh(&marker, &stamp) {
        eprintln!("   {COMPONENTIZE_JS}: splicing into {}", parts.display());
        let _ = std::fs::remove_dir_all(&parts);
        run(
            Command::new("node")
                .arg(sources.join("build.mjs"))
                .arg(&package)
                .arg(&parts),
            "node benches/programs/js-app/build.mjs",
        )?;
        std::fs::write(marker.with_extension("stamp"), &stamp)
            .map_err(|e| format!("{}: {e}", marker.display()))?;
    }
    let env_json = parts.join("env.json");
    let env: std::collections::BTreeMap<String, String> = serde_json::from_str(
        &std::fs::read_to_string(&env_json).map_err(|e| format!("{}: {e}", env_json.display()))?,
    )
    .map_err(|e| format!("{}: {e}", env_json.display()))?;
    let setup = Setup {
        init: names::WIZER_INIT.into(),
        wasi: true,
        env: env.into_iter().collect(),
        dirs: vec![(parts.clone(), "/".into())],
    };
    Ok((js_component(&parts)?, setup))
}

mod names {
    /// The init export of the componentize-js workload: the peer's default.
    pub const WIZER_INIT: &str = "wizer-initialize";
    /// componentize-js's init, in the spliced StarlingMonkey core module.
    pub const COMPONENTIZE_INIT: &str = "componentize.wizer";
}

/// The world of the init export the componentize-js component gets, beside
/// the app's own (which the splicer embedded in the module).
const JS_INIT_WIT: &str = "package bench:js-init;
world init {
  export wizer-initialize: func();
}
";

/// The component of the `componentize-js` workload, from the spliced core
/// module and the adapter in `parts`.
fn js_component(parts: &Path) -> Result<Vec<u8>, String> {
    let read = |name: &str| {
        let path = parts.join(name);
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let err = |e: anyhow::Error| format!("componentize-js: making the component: {e:#}");
    let engine = read("engine.wasm")?;
    let stubs = js_stubs(&engine).map_err(err)?;
    let mut module = js_init_export(&engine).map_err(err)?;
    embed_world(&mut module, "js-init.wit", JS_INIT_WIT).map_err(err)?;
    let mut encoder = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .map_err(err)?
        .adapter("wasi_snapshot_preview1", &read("adapter.wasm")?)
        .map_err(err)?;
    for (name, stub) in &stubs {
        encoder = encoder.adapter(name, stub).map_err(err)?;
    }
    encoder.encode().map_err(err)
}

/// Whether the engine's imports from `module` are stubbed out: what the
/// disabled features (http, fetch-event) need, which neither side's host
/// provides.
fn js_stubbed(module: &str) -> bool {
    module.starts_with("wasi:http/") || module.starts_with("wasi:sockets/")
}

/// For each import module of `engine` that [`js_stubbed`] picks, a core
/// module exporting every function imported from it, each trapping when
/// called (`unreachable`): given to wit-component as adapters, they take
/// the place of those imports.
fn js_stubs(engine: &[u8]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    use wasm_encoder::{CodeSection, ExportKind, ExportSection, Function, FunctionSection};
    use wasm_encoder::{Instruction, TypeSection, ValType};
    use wasmparser::{Parser, Payload, TypeRef};
    let mut types = Vec::new();
    let mut stubbed: std::collections::BTreeMap<String, Vec<(String, u32)>> = Default::default();
    for payload in Parser::new(0).parse_all(engine) {
        match payload? {
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    types.push(ty?);
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import?;
                    if let TypeRef::Func(ty) = import.ty
                        && js_stubbed(import.module)
                    {
                        stubbed
                            .entry(import.module.to_string())
                            .or_default()
                            .push((import.name.to_string(), ty));
                    }
                }
            }
            _ => {}
        }
    }
    let val = |ty: &wasmparser::ValType| match ty {
        wasmparser::ValType::I32 => Ok(ValType::I32),
        wasmparser::ValType::I64 => Ok(ValType::I64),
        wasmparser::ValType::F32 => Ok(ValType::F32),
        wasmparser::ValType::F64 => Ok(ValType::F64),
        other => anyhow::bail!("unexpected type {other:?} in a stubbed import"),
    };
    let mut stubs = Vec::new();
    for (module, funcs) in stubbed {
        let (mut ts, mut fs, mut es, mut cs) = (
            TypeSection::new(),
            FunctionSection::new(),
            ExportSection::new(),
            CodeSection::new(),
        );
        for (i, (name, ty)) in funcs.iter().enumerate() {
            let ty = &types[*ty as usize];
            ts.ty().function(
                ty.params()
                    .iter()
                    .map(val)
                    .collect::<anyhow::Result<Vec<_>>>()?,
                ty.results()
                    .iter()
                    .map(val)
                    .collect::<anyhow::Result<Vec<_>>>()?,
            );
            let i = u32::try_from(i)?;
            fs.function(i);
            es.export(name, ExportKind::Func, i);
            let mut body = Function::new([]);
            body.instruction(&Instruction::Unreachable);
            body.instruction(&Instruction::End);
            cs.function(&body);
        }
        let mut stub = wasm_encoder::Module::new();
        stub.section(&ts).section(&fs).section(&es).section(&cs);
        stubs.push((module, stub.finish()));
    }
    Ok(stubs)
}

/// `module` with `componentize.wizer` exported as `wizer-initialize`, and
/// without the exports that no world declares: StarlingMonkey's own
/// `wizer-initialize` and `wizer.resume` (its Wizer entry points when it
/// runs a script by itself), and `check_init` (which componentize-js calls
/// on the pre-initialized core module, in Node).
fn js_init_export(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    use wasm_encoder::{ExportKind, ExportSection, RawSection};
    use wasmparser::{Parser, Payload};
    let dropped = [names::WIZER_INIT, "wizer.resume", "check_init"];
    let mut out = wasm_encoder::Module::new();
    let mut renamed = false;
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload?;
        if let Payload::ExportSection(reader) = &payload {
            let mut exports = ExportSection::new();
            for export in reader.clone() {
                let export = export?;
                let name = match export.name {
                    names::COMPONENTIZE_INIT => {
                        renamed = true;
                        names::WIZER_INIT
                    }
                    name if dropped.contains(&name) => continue,
                    name => name,
                };
                exports.export(name, ExportKind::from(export.kind), export.index);
            }
            out.section(&exports);
        } else if let Some((id, range)) = payload.as_section() {
            out.section(&RawSection {
                id,
                data: &module[range],
            });
        }
    }
    anyhow::ensure!(renamed, "no export `{}`", names::COMPONENTIZE_INIT);
    Ok(out.finish())
}

const LARGE_CODE_FUNCS: usize = 12_000;

/// A module with `funcs` generated functions (each a small `br_table`
/// switch and arithmetic over memory, a few hundred bytes), of which init
/// calls ten.
fn large_code(funcs: usize) -> String {
    let mut m = String::from("(core module $m (memory (export \"memory\") 1)\n");
    m.push_str("(global $calls (mut i32) (i32.const 0))\n");
    let mut x: u32 = 0x1234_5678;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for i in 0..funcs {
        write!(m, "(func $f{i} (param $x i32) (result i32) (local $y i32)").unwrap();
        write!(
            m,
            "(local.set $y (i32.mul (local.get $x) (i32.const {})))",
            next() | 1
        )
        .unwrap();
        for _ in 0..4 {
            let (a, b, c, d) = (next(), next(), next() % 31, next() & 0xfffc);
            write!(
                m,
                "(block $d (block $c2 (block $c1 (block $c0 \
                   (br_table $c0 $c1 $c2 $d (i32.and (local.get $y) (i32.const 3))))\
                   (local.set $y (i32.add (local.get $y) (i32.const {a}))) (br $d))\
                   (local.set $y (i32.xor (local.get $y) (i32.const {b}))) (br $d))\
                   (local.set $y (i32.rotl (local.get $y) (i32.const {c}))))\
                 (i32.store (i32.const {d}) (i32.add (i32.load (i32.const {d})) (local.get $y)))"
            )
            .unwrap();
        }
        if i > 0 {
            // Calls make the functions reachable from one another.
            write!(
                m,
                "(if (i32.eqz (local.get $x)) (then (local.set $y (call $f{} (local.get $y)))))",
                next() as usize % i
            )
            .unwrap();
        }
        m.push_str("(local.get $y))\n");
    }
    m.push_str("(func (export \"init\") (global.set $calls (i32.const 1))");
    for k in 0..10 {
        let f = k * (funcs / 10);
        write!(
            m,
            "(i32.store (i32.const {}) (call $f{f} (i32.const {})))",
            0x8000 + 4 * k,
            k + 1
        )
        .unwrap();
    }
    m.push_str(")\n(func (export \"probe\") (result i32) (i32.add (global.get $calls) (i32.load (i32.const 0x8000)))))\n");
    format!(
        r#"(component {m}
          (core instance $i (instantiate $m))
          (func (export "component-init") (canon lift (core func $i "init")))
          (func (export "probe") (result u32) (canon lift (core func $i "probe"))))"#
    )
}

/// Init grows memory to `pages` and fills it with non-zero xorshift bytes.
fn dense(pages: u32) -> String {
    component_of(&dense_fields(pages, "init"))
}

/// The core module of the dense workloads, without `(module` around it:
/// its init (exported as `init`) grows memory to `pages` and fills it with
/// non-zero xorshift bytes; `probe` reads the first, a middle and the last
/// word, 0 before init.
pub fn dense_fields(pages: u32, init: &str) -> String {
    let bytes = u64::from(pages) << 16;
    format!(
        r#"(memory 1)
        (func (export "{init}") (local $p i32) (local $x i64)
          (drop (memory.grow (i32.const {grow})))
          (local.set $x (i64.const 0x2545F4914F6CDD1D))
          (loop $l
            (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
            (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
            (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
            (i64.store (local.get $p) (i64.or (local.get $x) (i64.const 0x0101010101010101)))
            (local.set $p (i32.add (local.get $p) (i32.const 8)))
            (br_if $l (i32.lt_u (local.get $p) (i32.const {bytes})))))
        (func (export "probe") (result i32)
          (if (result i32) (i32.lt_u (memory.size) (i32.const {pages}))
            (then (i32.const 0))
            (else
              (i32.xor (i32.xor (i32.load (i32.const 0)) (i32.load (i32.const {mid})))
                       (i32.load (i32.const {last}))))))"#,
        grow = pages - 1,
        mid = bytes / 2 + 4,
        last = bytes - 4,
    )
}

/// A component of one instance of the core module `fields`, exporting its
/// `init` as `component-init` and its `probe`.
fn component_of(fields: &str) -> String {
    format!(
        r#"(component
      (core module $m {fields})
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "probe") (result u32) (canon lift (core func $i "probe"))))"#
    )
}

const SPARSE_WRITES: u32 = 8000;

/// Init grows memory to `pages` (up to 65536) and stores `writes` non-zero
/// words at pseudo-random places.
fn sparse(pages: u32, writes: u32) -> String {
    let mask = ((u64::from(pages) << 16) - 1) & !7;
    format!(
        r#"(component
      (core module $m
        (memory 1)
        (global $last (mut i32) (i32.const 0))
        (func (export "init") (local $n i32) (local $x i64) (local $at i32)
          (drop (memory.grow (i32.const {grow})))
          (local.set $x (i64.const 0x2545F4914F6CDD1D))
          (loop $l
            (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
            (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
            (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
            (local.set $at (i32.wrap_i64 (i64.and (local.get $x) (i64.const {mask}))))
            (i64.store (local.get $at) (i64.or (local.get $x) (i64.const 1)))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $n) (i32.const {writes}))))
          (global.set $last (local.get $at)))
        (func (export "probe") (result i32) (i32.load (global.get $last))))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "probe") (result u32) (canon lift (core func $i "probe"))))"#,
        grow = pages - 1,
    )
}

/// Init grows memory to `pages` (fewer than 65536) and writes a non-zero 4-byte
/// word every `stride` bytes from 0 (the issue's sparse shape: 16,384
/// words over 1 GiB at a stride of 64 KiB); `probe` reads the first, a
/// middle and the last, 0 before init.
fn sparse_strided(pages: u32, stride: u32) -> String {
    let bytes = u64::from(pages) << 16;
    let last = (bytes - 1) / u64::from(stride) * u64::from(stride);
    let mid = last / 2 / u64::from(stride) * u64::from(stride);
    component_of(&strided_fields(pages, u64::from(stride), mid, last, "init"))
}

/// The core module of the strided sparse workloads, without `(module`
/// around it: its init (exported as `init`) grows memory to `pages` and
/// writes a non-zero word every `stride` bytes from 0; `probe` reads the
/// words at 0, `mid` and `last`, 0 before init.
pub fn strided_fields(pages: u32, stride: u64, mid: u64, last: u64, init: &str) -> String {
    let bytes = u64::from(pages) << 16;
    format!(
        r#"(memory 1)
        (func (export "{init}") (local $at i32)
          (drop (memory.grow (i32.const {grow})))
          (loop $l
            (i32.store (local.get $at) (i32.or (local.get $at) (i32.const 0x0101)))
            (local.set $at (i32.add (local.get $at) (i32.const {stride})))
            (br_if $l (i32.lt_u (local.get $at) (i32.const {bytes})))))
        (func (export "probe") (result i32)
          (if (result i32) (i32.lt_u (memory.size) (i32.const {pages}))
            (then (i32.const 0))
            (else
              (i32.xor (i32.xor (i32.load (i32.const 0)) (i32.load (i32.const {mid})))
                       (i32.load (i32.const {last}))))))"#,
        grow = pages - 1,
        // (an i32 constant: 1 GiB fits, as the store addresses do)
        bytes = bytes as u32,
    )
}

const GLOBALS_MODULES: usize = 48;
const GLOBALS_PER_MODULE: usize = 100;

/// `modules` distinct modules with `per_module` mutable globals each, every
/// module instantiated once; a driver module's init calls each one's init.
fn many_globals(modules: usize, per_module: usize) -> String {
    let types = ["i32", "i64", "f32", "f64"];
    let mut c = String::from("(component\n");
    for k in 0..modules {
        writeln!(c, "(core module $m{k}").unwrap();
        for g in 0..per_module {
            let ty = types[g % 4];
            write!(c, "(global $g{g} (mut {ty}) ({ty}.const 0))").unwrap();
        }
        c.push_str("(func (export \"init\")");
        for g in 0..per_module {
            let ty = types[g % 4];
            let v = k * 1000 + g + 1;
            write!(c, "(global.set $g{g} ({ty}.const {v}))").unwrap();
        }
        c.push_str(")(func (export \"get\") (result i32) (global.get $g0)))\n");
        writeln!(c, "(core instance $i{k} (instantiate $m{k}))").unwrap();
    }
    c.push_str("(core module $driver\n");
    for k in 0..modules {
        write!(
            c,
            "(import \"m{k}\" \"init\" (func $init{k})) (import \"m{k}\" \"get\" (func $get{k} (result i32)))"
        )
        .unwrap();
    }
    c.push_str("(func (export \"init\")");
    for k in 0..modules {
        write!(c, "(call $init{k})").unwrap();
    }
    c.push_str(")(func (export \"probe\") (result i32) (i32.const 0)");
    for k in 0..modules {
        write!(c, "(call $get{k}) (i32.add)").unwrap();
    }
    c.push_str("))\n(core instance $driver (instantiate $driver");
    for k in 0..modules {
        write!(c, " (with \"m{k}\" (instance $i{k}))").unwrap();
    }
    c.push_str(
        r#"))
      (func (export "component-init") (canon lift (core func $driver "init")))
      (func (export "probe") (result u32) (canon lift (core func $driver "probe"))))"#,
    );
    c
}

/// The shape of `tests/all/shapes.rs`, with more state: a 1 MiB heap in
/// main, 64 adapter globals.
fn adapter_shape() -> String {
    let mut adapter_globals = String::new();
    let mut adapter_sets = String::new();
    for g in 0..64 {
        write!(adapter_globals, "(global $a{g} (mut i64) (i64.const 0))").unwrap();
        write!(
            adapter_sets,
            "(global.set $a{g} (i64.add (global.get $a{g}) (i64.extend_i32_u (local.get 0))))"
        )
        .unwrap();
    }
    format!(
        r#"(component
  (core module $shim
    (type $t (func (param i32)))
    (table (export "$imports") 1 1 funcref)
    (func (export "log") (param i32) (call_indirect (type $t) (local.get 0) (i32.const 0))))
  (core module $main
    (import "adapter" "log" (func $log (param i32)))
    (memory (export "memory") 17)
    (global $sp (mut i32) (i32.const 1024))
    (global $inited (mut i32) (i32.const 0))
    (func $_initialize (global.set $inited (i32.add (global.get $inited) (i32.const 1))))
    (start $_initialize)
    (func (export "init") (local $p i32)
      (call $log (i32.const 5))
      (global.set $sp (i32.const 2048))
      ;; a 1 MiB heap at 64 KiB, every word its own index
      (local.set $p (i32.const 0x10000))
      (loop $l
        (i32.store (local.get $p) (i32.shr_u (local.get $p) (i32.const 2)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br_if $l (i32.lt_u (local.get $p) (i32.const 0x110000)))))
    (func (export "get") (result i32)
      (i32.add (i32.add (i32.load (i32.const 0x10040)) (global.get $sp)) (global.get $inited))))
  (core module $adapter
    (import "env" "memory" (memory 0))
    {adapter_globals}
    (func (export "log") (param i32)
      {adapter_sets}
      (i32.store (i32.const 4) (i32.add (i32.load (i32.const 4)) (local.get 0))))
    (func (export "total") (result i32) (i32.add (i32.wrap_i64 (global.get $a63)) (i32.load (i32.const 4)))))
  (core module $fixups
    (import "" "$imports" (table 1 1 funcref))
    (import "" "log" (func $log (param i32)))
    (elem (i32.const 0) func $log))
  (core module $probe
    (import "main" "get" (func $get (result i32)))
    (import "adapter" "total" (func $total (result i32)))
    (func (export "probe") (result i32) (i32.add (call $get) (call $total))))
  (core instance $shim (instantiate $shim))
  (core instance $main (instantiate $main (with "adapter" (instance $shim))))
  (core instance $env (export "memory" (memory $main "memory")))
  (core instance $adapter (instantiate $adapter (with "env" (instance $env))))
  (core instance $fixup-args
    (export "$imports" (table $shim "$imports"))
    (export "log" (func $adapter "log")))
  (core instance $fixups (instantiate $fixups (with "" (instance $fixup-args))))
  (core instance $probe (instantiate $probe (with "main" (instance $main)) (with "adapter" (instance $adapter))))
  (func (export "component-init") (canon lift (core func $main "init")))
  (func (export "probe") (result u32) (canon lift (core func $probe "probe"))))"#
    )
}

/// Embeds the one world of the WIT package `text` (read from file `name`)
/// into the core module `module`, as `wasm-tools component embed` does.
fn embed_world(module: &mut Vec<u8>, name: &str, text: &str) -> anyhow::Result<()> {
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve.push_str(name, text)?;
    let world = resolve.select_world(&[package], None)?;
    wit_component::embed_component_metadata(
        module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
}
