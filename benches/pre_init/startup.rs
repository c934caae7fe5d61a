//! Startup: instantiate + the first call of an export, with the component
//! compiled beforehand (compilation is not startup).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wasmtime::component::{Component, Linker, Val};
use wasmtime::{Engine, Store};

use crate::child::{Host, Setup};

/// At least this many instantiations per component...
const MIN_ITERS: usize = 5;
/// ...and at most this many, or as many as fit in [`BUDGET`].
const MAX_ITERS: usize = 50;
const BUDGET: Duration = Duration::from_secs(2);

/// Median seconds of: a new store, instantiate `bytes`, call each of
/// `calls` (exports without parameters) in order, with WASI as `setup`
/// says. Also returns what the last call returned, to compare the variants.
pub fn measure(
    engine: &Engine,
    component: &Component,
    setup: &Setup,
    calls: &[&str],
) -> Result<(f64, String)> {
    let mut linker = Linker::<Host>::new(engine);
    if setup.wasi {
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    } else {
        linker.define_unknown_imports_as_traps(component)?;
    }
    let pre = linker.instantiate_pre(component)?;
    let mut times = Vec::new();
    let mut last = String::new();
    let budget = Instant::now();
    while times.len() < MAX_ITERS && (times.len() < MIN_ITERS || budget.elapsed() < BUDGET) {
        let start = Instant::now();
        let mut store = Store::new(engine, Host::new(setup)?);
        let instance = pre.instantiate(&mut store)?;
        let mut results = Vec::new();
        for name in calls {
            let func = instance
                .get_func(&mut store, name)
                .with_context(|| format!("no export `{name}`"))?;
            results = vec![Val::Bool(false); func.ty(&store).results().len()];
            func.call(&mut store, &[], &mut results)?;
        }
        times.push(start.elapsed().as_secs_f64());
        last = format!("{results:?}");
        drop(store);
    }
    Ok((crate::median(&mut times), last))
}
