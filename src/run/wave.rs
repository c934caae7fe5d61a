//! Calling the init function in Wasmtime with arguments written in WAVE (the
//! WebAssembly Value Encoding, as `wasmtime run --invoke` takes them), and
//! checking what it returns: an `err` of a `result` fails
//! pre-initialization and shows the payload.

use anyhow::{Result, anyhow, bail};
use wasmtime::Store;
use wasmtime::component::{Func, Type, Val, wasm_wave};

use crate::plan::init_func::InitFunc;

/// The arguments `init` gives for `func`, checked against its parameters,
/// and the number of results it returns.
pub fn args<T>(store: &Store<T>, func: &Func, init: &InitFunc) -> Result<(Vec<Val>, usize)> {
    let ty = func.ty(store);
    let params: Vec<Type> = ty.params().map(|(_, ty)| ty).collect();
    let args: Vec<Val> = match &init.args {
        None if params.is_empty() => Vec::new(),
        None => bail!(
            "init function `{init}` takes {} parameter{}; pass the arguments in WAVE, as \
             `--init-func '{}(ARG, ...)'`",
            params.len(),
            if params.len() == 1 { "" } else { "s" },
            init.path()
        ),
        Some(_) => {
            let text = init.wave_call();
            let call = wasm_wave::untyped::UntypedFuncCall::parse(&text)
                .map_err(|e| anyhow!("the arguments of `{init}` are not valid WAVE: {e}"))?;
            call.to_wasm_params::<Val>(params.iter())
                .map_err(|e| anyhow!("the arguments of `{init}` do not fit its parameters: {e}"))?
        }
    };
    Ok((args, ty.results().len()))
}

/// The init function's results in WAVE; an `err` of a `result` is an error
/// that shows the payload.
pub fn results(init: &InitFunc, results: &[Val]) -> Result<Vec<String>> {
    let mut shown = Vec::with_capacity(results.len());
    for result in results {
        if let Val::Result(Err(payload)) = result {
            let payload = match payload {
                Some(payload) => to_wave(payload),
                None => "(no payload)".to_string(),
            };
            bail!("init function `{init}` returned an error: {payload}");
        }
        shown.push(to_wave(result));
    }
    Ok(shown)
}

fn to_wave(value: &Val) -> String {
    value.to_wave().unwrap_or_else(|_| format!("{value:?}"))
}
