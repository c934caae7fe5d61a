//! Wizer's command line, as the tools that spawn Wizer pass it: the flags
//! of the Wizer 10 binary (`--allow-wasi`, `--mapdir GUEST::HOST`,
//! `--wasm-*`) and those of `wasmtime wizer` (`-S cli`, `-S inherit-env`,
//! `-W ...`), hidden from `--help` and documented in docs/cli.md. The
//! flags both tools share with ours (`--init-func`/`-f`, `--keep-init-func`,
//! `--rename-func`/`-r`, `--dir`, `--inherit-env`, `--inherit-stdio`, `-o`)
//! are ours, and accept Wizer's `=BOOL` forms.

use anyhow::{Result, bail};

use crate::run::wasi::PreopenDir;

/// Wizer's flags that are not also ours.
#[derive(clap::Args, Default)]
pub struct WizerArgs {
    /// Wizer's `--allow-wasi`: `--wasi` with Wizer's defaults (stdio,
    /// stdin included, inherited unless `--inherit-stdio=false`).
    #[clap(long, hide = true)]
    allow_wasi: bool,

    /// Wizer's `--mapdir GUEST::HOST` (the reverse of `--dir`'s order).
    #[clap(long, hide = true, value_name = "GUEST::HOST")]
    pub(super) mapdir: Vec<String>,

    /// Wizer's wasm feature switches, `--wasm-NAME[=BOOL]`: every feature
    /// Wasmtime supports is on, so they change nothing.
    #[clap(long = "wasm-bulk-memory", hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    bulk_memory: Option<bool>,
    #[clap(long = "wasm-multi-memory", hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    multi_memory: Option<bool>,
    #[clap(long = "wasm-multi-value", hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    multi_value: Option<bool>,
    #[clap(long = "wasm-reference-types", hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    reference_types: Option<bool>,
    #[clap(long = "wasm-simd", hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    simd: Option<bool>,
    #[clap(long = "wasm-relaxed-simd", hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    relaxed_simd: Option<bool>,

    /// `wasmtime wizer`'s WASI options, `-S KEY[=VAL]`: `cli` (WASI on),
    /// `inherit-env`, `inherit-stdio`/`inherit-stdin`; others are refused.
    #[clap(short = 'S', hide = true, value_name = "KEY[=VAL]")]
    wasi_options: Vec<String>,

    /// `wasmtime wizer`'s wasm options, `-W KEY[=VAL]`: feature switches,
    /// which change nothing here (every feature is on).
    #[clap(short = 'W', hide = true, value_name = "KEY[=VAL]")]
    wasm_options: Vec<String>,

    /// Wizer's `--preload`: not supported (refused with an error).
    #[clap(long, hide = true, value_name = "NAME=FILE")]
    preload: Vec<String>,
}

/// What Wizer's flags ask of WASI.
pub struct WizerSettings {
    /// WASI is on (`--allow-wasi`, `-S cli`).
    pub wasi: bool,
    /// The default of `--inherit-stdio` (Wizer's: on).
    pub inherit_stdio: bool,
    /// Inherited stdio includes stdin (Wizer's).
    pub stdin_with_stdio: bool,
    /// `-S inherit-env`.
    pub inherit_env: bool,
}

impl WizerArgs {
    /// What the flags given ask for.
    pub fn settings(&self) -> Result<WizerSettings> {
        if let Some(preload) = self.preload.first() {
            bail!(
                "`--preload {preload}`: preloaded modules are not supported; link them into the \
                 module first (for example with `wasm-merge`)"
            );
        }
        let mut settings = WizerSettings {
            wasi: self.allow_wasi,
            inherit_stdio: self.allow_wasi,
            stdin_with_stdio: self.allow_wasi,
            inherit_env: false,
        };
        for option in &self.wasi_options {
            let (key, value) = option.split_once('=').unwrap_or((option, "y"));
            let on = match value {
                "y" | "yes" | "true" => true,
                "n" | "no" | "false" => false,
                _ => bail!("`-S {option}`: the value must be `y` or `n`"),
            };
            match key {
                "cli" => settings.wasi = on,
                "inherit-env" => settings.inherit_env = on,
                "inherit-stdio" | "inherit-stdin" => {
                    settings.inherit_stdio = on;
                    settings.stdin_with_stdio = on;
                }
                _ => bail!(
                    "`-S {option}` is not supported; the `-S` options accepted are `cli`, \
                     `inherit-env`, `inherit-stdio` and `inherit-stdin` (see `--help` for ours)"
                ),
            }
        }
        let switches = [
            ("bulk-memory", self.bulk_memory),
            ("multi-memory", self.multi_memory),
            ("multi-value", self.multi_value),
            ("reference-types", self.reference_types),
            ("simd", self.simd),
            ("relaxed-simd", self.relaxed_simd),
        ];
        for (feature, value) in switches {
            if let Some(value) = value {
                log::debug!("`--wasm-{feature}={value}`: every feature is on; nothing to change");
            }
        }
        for option in &self.wasm_options {
            let (key, _) = option.split_once('=').unwrap_or((option, "y"));
            if key.is_empty() {
                bail!("`-W {option}`: expected `-W FEATURE[=y|n]`");
            }
        }
        Ok(settings)
    }

    /// The directories of `--mapdir GUEST::HOST`.
    pub fn mapdirs(&self) -> Result<Vec<PreopenDir>> {
        self.mapdir
            .iter()
            .map(|spec| match spec.split_once("::") {
                Some((guest, host)) if !guest.is_empty() && !host.is_empty() => {
                    PreopenDir::parse(&format!("{host}::{guest}"))
                }
                _ => bail!("`--mapdir {spec}` is not of the form `GUEST::HOST`"),
            })
            .collect()
    }
}
