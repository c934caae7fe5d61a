//! Which exported function runs as the init function.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An exported function, named as `name` (a function exported by the
/// component) or `interface#name` (a function of an exported instance, such
/// as `my:pkg/setup#init`), and the arguments to call it with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitFunc {
    /// The exported instance holding the function, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The function's name.
    pub name: String,
    /// The arguments, in WAVE (the WebAssembly Value Encoding, as
    /// `wasmtime run --invoke` takes them), without the parentheses:
    /// `"\"config.json\", 3, {verbose: true}"`. `None` calls the function
    /// without arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
}

impl InitFunc {
    /// Parses `NAME`, `NAME(ARGS)`, `IFACE#NAME` or `IFACE#NAME(ARGS)`, where
    /// `ARGS` are WAVE values separated by commas (checked against the
    /// function's parameter types when it is called).
    pub fn parse(spec: &str) -> Result<InitFunc> {
        let spec = spec.trim();
        let (path, args) = match spec.find('(') {
            None => (spec, None),
            Some(open) => {
                let Some(args) = spec[open + 1..].strip_suffix(')') else {
                    bail!("init function `{spec}`: the argument list does not end with `)`");
                };
                let args = args.trim();
                (&spec[..open], (!args.is_empty()).then(|| args.to_string()))
            }
        };
        let (interface, name) = match path.rsplit_once('#') {
            Some((interface, name)) => (Some(interface.to_string()), name),
            None => (None, path),
        };
        if name.is_empty() || interface.as_deref() == Some("") {
            bail!("init function `{spec}` is not of the form `NAME` or `INTERFACE#NAME`");
        }
        Ok(InitFunc {
            interface,
            name: name.to_string(),
            args,
        })
    }

    /// The component's own export `name`, without arguments.
    pub fn top_level(name: &str) -> InitFunc {
        InitFunc {
            interface: None,
            name: name.to_string(),
            args: None,
        }
    }

    /// The call as WAVE text: `NAME(ARGS)`, for `wasm_wave`'s call parser.
    pub fn wave_call(&self) -> String {
        format!("{}({})", self.name, self.args.as_deref().unwrap_or(""))
    }
}

impl InitFunc {
    /// `NAME` or `INTERFACE#NAME`, without arguments.
    pub fn path(&self) -> String {
        match &self.interface {
            Some(interface) => format!("{interface}#{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for InitFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(args) = &self.args {
            return write!(f, "{}({args})", self.path());
        }
        match &self.interface {
            Some(interface) => write!(f, "{interface}#{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}
