//! Subcommands that run the pipeline's phases apart, so that init may run in
//! a runtime other than Wasmtime: `instrument` writes the instrumented
//! component and the plan (JSON); any runtime instantiates it, calls the init
//! function and every accessor the plan lists, and writes a snapshot file
//! (`snapshot` does it with Wasmtime; `tests/jco/driver.mjs` with jco);
//! `apply` bakes the snapshot into the original. `wit` prints the accessor
//! interface.

use anyhow::{Context, Result};
use std::path::PathBuf;

use super::{RunArgs, read_input, write_bytes, write_output, write_with};
use crate::component::snapshot;
use crate::plan::{Plan, Snapshot};
use crate::run::wasmtime as wasmtime_runtime;
use crate::{InitFunc, InstrumentOptions, instrument};

/// The phases of the pipeline, one at a time.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Instrument a component: write the instrumented component and the plan
    /// (which accessor reads what) for running init in any runtime.
    Instrument(InstrumentOpts),
    /// Instantiate an instrumented component in Wasmtime, call its init
    /// function and every accessor of the plan, and write the snapshot file.
    Snapshot(Box<SnapshotOpts>),
    /// Bake a snapshot into the original component.
    Apply(ApplyOpts),
    /// Print, as WIT, the accessor interface that instrumentation adds.
    Wit(WitOpts),
}

impl Command {
    pub(super) fn general_opts(&self) -> &wasm_tools::GeneralOpts {
        match self {
            Command::Instrument(o) => o.io.general_opts(),
            Command::Snapshot(o) => o.io.general_opts(),
            Command::Apply(o) => o.io.general_opts(),
            Command::Wit(o) => o.io.general_opts(),
        }
    }

    pub(super) fn run(self) -> Result<()> {
        match self {
            Command::Instrument(o) => o.run(),
            Command::Snapshot(o) => o.run(),
            Command::Apply(o) => o.run(),
            Command::Wit(o) => o.run(),
        }
    }
}

/// Which function runs as init, as on the main command.
#[derive(clap::Args)]
pub struct InitArgs {
    /// The exported function to run as init (see the main command).
    #[clap(long, value_name = "NAME")]
    init_func: Option<String>,

    /// Keep the init function's export in the output.
    #[clap(long)]
    keep_init_func: bool,
}

impl InitArgs {
    fn options(&self) -> Result<InstrumentOptions> {
        Ok(InstrumentOptions {
            init_func: self.init_func.as_deref().map(InitFunc::parse).transpose()?,
            keep_init_func: self.keep_init_func,
        })
    }
}

/// `component-init instrument IN -o instrumented.wasm --plan plan.json`
#[derive(clap::Args)]
pub struct InstrumentOpts {
    #[clap(flatten)]
    io: wasm_tools::InputOutput,

    #[clap(flatten)]
    init: InitArgs,

    /// Where to write the plan (JSON).
    #[clap(long, value_name = "PATH")]
    plan: PathBuf,

    /// Output the instrumented component as WebAssembly text.
    #[clap(short = 't', long)]
    wat: bool,
}

impl InstrumentOpts {
    fn run(self) -> Result<()> {
        let input = read_input(self.io.input_path())?;
        let instrumented = instrument(&input, &self.init.options()?)?;
        write_bytes(
            Some(&self.plan),
            instrumented.plan.to_json().as_bytes(),
            true,
        )?;
        write_output(self.io.output_path(), &instrumented.component, self.wat)
    }
}

/// `component-init snapshot instrumented.wasm --plan plan.json -o snapshot.bin`
#[derive(clap::Args)]
pub struct SnapshotOpts {
    #[clap(flatten)]
    io: wasm_tools::InputOutput,

    /// The plan written by `instrument`.
    #[clap(long, value_name = "PATH")]
    plan: PathBuf,

    #[clap(flatten)]
    run: RunArgs,
}

impl SnapshotOpts {
    fn run(self) -> Result<()> {
        let instrumented = read_input(self.io.input_path())?;
        let plan = read_plan(&self.plan)?;
        let mut runtime = self.run.runtime(self.io.output_path().is_none())?;
        runtime.prepare_for(&plan)?;
        let snapshot = wasmtime_runtime::block_on(snapshot::take(
            &mut runtime,
            &instrumented,
            &plan,
            |_, _| {},
        ))??;
        // streamed: memories go out run by run, never whole
        write_with(self.io.output_path(), false, |out| snapshot.write_to(out))
    }
}

/// `component-init apply IN --plan plan.json --snapshot snapshot.bin -o OUT`
#[derive(clap::Args)]
pub struct ApplyOpts {
    #[clap(flatten)]
    io: wasm_tools::InputOutput,

    /// The plan written by `instrument`.
    #[clap(long, value_name = "PATH")]
    plan: PathBuf,

    /// The snapshot file (see the README for its format).
    #[clap(long, value_name = "PATH")]
    snapshot: PathBuf,

    /// Output the text format of WebAssembly instead of the binary format.
    #[clap(short = 't', long)]
    wat: bool,
}

impl ApplyOpts {
    fn run(self) -> Result<()> {
        let input = read_input(self.io.input_path())?;
        let plan = read_plan(&self.plan)?;
        let bytes = std::fs::read(&self.snapshot)
            .with_context(|| format!("failed to read `{}`", self.snapshot.display()))?;
        let snapshot = Snapshot::from_bytes(&bytes)
            .with_context(|| format!("failed to read `{}`", self.snapshot.display()))?;
        let output = plan.apply(&input, &snapshot)?;
        write_output(self.io.output_path(), &output, self.wat)
    }
}

/// `component-init wit IN`
#[derive(clap::Args)]
pub struct WitOpts {
    #[clap(flatten)]
    io: wasm_tools::InputOutput,

    #[clap(flatten)]
    init: InitArgs,
}

impl WitOpts {
    fn run(self) -> Result<()> {
        let input = read_input(self.io.input_path())?;
        let instrumented = instrument(&input, &self.init.options()?)?;
        let wit = crate::component::wit::print(&instrumented.plan)?;
        write_bytes(self.io.output_path(), wit.as_bytes(), true)
    }
}

fn read_plan(path: &std::path::Path) -> Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    Plan::from_json(&text).with_context(|| format!("failed to read `{}`", path.display()))
}
