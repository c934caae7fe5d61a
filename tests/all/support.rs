//! Helpers shared by the tests.

use anyhow::Result;
use component_init::{InitFunc, InstrumentOptions};
use wasmtime::component::{Component, Linker, Val};
use wasmtime::{Config, Engine, Store};

/// Runs `component-init DIR/in.wasm -o DIR/out.wasm ARGS`, with `input`
/// (binary or text) written to `DIR/in.wasm`; returns what the process did
/// and the output's path.
pub fn cli_in(
    dir: &std::path::Path,
    input: &[u8],
    args: &[&str],
) -> (std::process::Output, std::path::PathBuf) {
    let in_path = dir.join("in.wasm");
    std::fs::write(&in_path, input).unwrap();
    let out_path = dir.join("out.wasm");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_component-init"))
        .arg(&in_path)
        .arg("-o")
        .arg(&out_path)
        .args(args)
        .output()
        .unwrap();
    (output, out_path)
}

/// Runs `component-init instrument` on `input` (binary or text) in `dir`
/// (`app.wasm` to `inst.wasm` and `plan.json`), then `component-init
/// snapshot` to `snap.bin` with `args`; returns what the snapshot step did.
pub fn split_snapshot(dir: &std::path::Path, input: &[u8], args: &[&str]) -> std::process::Output {
    let d = |name: &str| dir.join(name);
    let cli = || std::process::Command::new(env!("CARGO_BIN_EXE_component-init"));
    std::fs::write(d("app.wasm"), input).unwrap();
    let status = cli()
        .args(["instrument".as_ref(), d("app.wasm").as_os_str()])
        .args(["-o".as_ref(), d("inst.wasm").as_os_str()])
        .args(["--plan".as_ref(), d("plan.json").as_os_str()])
        .status()
        .unwrap();
    assert!(status.success(), "instrument");
    cli()
        .args(["snapshot".as_ref(), d("inst.wasm").as_os_str()])
        .args(["--plan".as_ref(), d("plan.json").as_os_str()])
        .args(["-o".as_ref(), d("snap.bin").as_os_str()])
        .args(args)
        .output()
        .unwrap()
}

/// Parses a component written in WebAssembly text.
pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("test WAT parses")
}

/// Pre-initializes with the library's Wasmtime helper.
pub fn pre_init(component: &[u8]) -> Result<Vec<u8>> {
    component_init::initialize_with_wasmtime(component, &InstrumentOptions::default())
}

/// Pre-initializes with options.
pub fn pre_init_with(
    component: &[u8],
    init_func: Option<&str>,
    keep_init_func: bool,
) -> Result<Vec<u8>> {
    let options = InstrumentOptions {
        init_func: init_func.map(|f| InitFunc::parse(f).unwrap()),
        keep_init_func,
    };
    component_init::initialize_with_wasmtime(component, &options)
}

/// An engine with the features the tests' components use.
fn config() -> Config {
    let mut config = Config::new();
    config.wasm_multi_memory(true);
    config.wasm_memory64(true);
    config.wasm_custom_page_sizes(true);
    config.wasm_component_model_more_async_builtins(true);
    config.wasm_component_model_async_stackful(true);
    config.wasm_component_model_error_context(true);
    config
}

/// Compiles `bytes` for running them in a test: with Winch, which compiles
/// several times faster than Cranelift (the componentize-py app is 21 MB),
/// or with Cranelift where Winch cannot (GC, for one).
pub fn compile(bytes: &[u8]) -> Result<(Engine, Component)> {
    let mut winch = config();
    winch.strategy(wasmtime::Strategy::Winch);
    if let Ok(engine) = Engine::new(&winch)
        && let Ok(component) = Component::new(&engine, bytes)
    {
        return Ok((engine, component));
    }
    let engine = Engine::new(&config())?;
    let component = Component::new(&engine, bytes)?;
    Ok((engine, component))
}

/// Instantiates `component` once and calls each `(export, args)` in order,
/// returning each call's results, or the first error (a trap).
/// An export `iface#func` names a function of an exported instance. Calls
/// go through `call_async`, so exports lifted `async` are called as Wasmtime
/// calls them (to their `task.return`).
pub fn run(component: &[u8], calls: &[(&str, &[Val])]) -> Result<Vec<Vec<Val>>> {
    block_on(run_async(component, calls))
}

/// Runs `future` to completion on a single-threaded Tokio runtime (WASI's
/// host functions need one), shut down without waiting for threads left
/// blocked in the host.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let output = runtime.block_on(future);
    runtime.shutdown_background();
    output
}

async fn run_async(component: &[u8], calls: &[(&str, &[Val])]) -> Result<Vec<Vec<Val>>> {
    let (engine, component) = compile(component)?;
    let mut linker = Linker::<()>::new(&engine);
    linker.define_unknown_imports_as_traps(&component)?;
    let mut store = Store::new(&engine, ());
    let instance = linker.instantiate_async(&mut store, &component).await?;
    let mut out = Vec::new();
    for (name, args) in calls {
        let index = match name.split_once('#') {
            Some((iface, func)) => {
                let parent = instance
                    .get_export_index(&mut store, None, iface)
                    .ok_or_else(|| anyhow::anyhow!("no export {iface}"))?;
                instance.get_export_index(&mut store, Some(&parent), func)
            }
            None => instance.get_export_index(&mut store, None, name),
        }
        .ok_or_else(|| anyhow::anyhow!("no export {name}"))?;
        let func = instance
            .get_func(&mut store, index)
            .ok_or_else(|| anyhow::anyhow!("{name} is not a function"))?;
        let mut results = vec![Val::Bool(false); func.ty(&store).results().len()];
        func.call_async(&mut store, args, &mut results).await?;
        out.push(results);
    }
    Ok(out)
}

/// Calls one export with no arguments and returns its single result.
pub fn call1(component: &[u8], calls: &[&str]) -> Result<Val> {
    let calls: Vec<(&str, &[Val])> = calls.iter().map(|c| (*c, &[][..])).collect();
    let mut results = run(component, &calls)?;
    let last = results.pop().unwrap_or_default();
    last.into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("last call returned nothing"))
}

/// The names of a component's top-level exports.
pub fn export_names(component: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload.unwrap() {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            wasmparser::Payload::ComponentExportSection(s) if depth == 0 => {
                for e in s {
                    names.push(e.unwrap().name.name.to_string());
                }
            }
            _ => {}
        }
    }
    names
}

/// Asserts the component validates.
pub fn validate(component: &[u8]) {
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(component)
        .expect("output validates");
}

/// Runs `command`, failing the test with its output unless it succeeds.
pub fn run_command(command: &mut std::process::Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Installs the npm packages of `dir` with `npm ci`: exactly the lock's
/// packages, and the lock untouched.
pub fn npm_ci(dir: &std::path::Path) {
    run_command(
        std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir),
    );
}

/// Runs `command`, returning its stdout or an error naming `what` with its
/// stderr.
pub fn run_tool(command: &mut std::process::Command, what: &str) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: failed to start {:?}: {e}", command.get_program()))?;
    if !output.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Makes the Python venv `venv` and pip-installs `requirement` into it,
/// saying how long it took (the network is needed the first time).
pub fn pip_install(venv: &std::path::Path, requirement: &str) -> Result<(), String> {
    let start = std::time::Instant::now();
    run_tool(
        std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv),
        "python3 -m venv (is Python 3 installed, with venv?)",
    )?;
    run_tool(
        std::process::Command::new(venv.join("bin/pip")).args(["install", "--quiet", requirement]),
        &format!("pip install {requirement} (the network is needed the first time)"),
    )?;
    eprintln!(
        "installed {requirement} into {} in {:.1?}",
        venv.display(),
        start.elapsed()
    );
    Ok(())
}

/// Embeds world `world` of `package` (in `resolve`) into the core `module`,
/// as `wasm-tools component embed` does.
pub fn embed_world(
    module: &mut Vec<u8>,
    resolve: &wit_parser::Resolve,
    package: wit_parser::PackageId,
    world: &str,
) {
    let world = resolve.select_world(&[package], Some(world)).unwrap();
    wit_component::embed_component_metadata(
        module,
        resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
}
