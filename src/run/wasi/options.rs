//! What init may use of the host ([`WasiOptions`], [`PreopenDir`]), and the
//! parsing of the command-line forms that grant it.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::run::reproducible::Reproducible;

/// What the init function may use of the host through WASI 0.2 and 0.3. Nothing of
/// the host is visible unless granted here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WasiOptions {
    /// Host directories preopened for the guest (read-write).
    pub dirs: Vec<PreopenDir>,
    /// Environment variables, after the inherited ones (a name given here
    /// replaces an inherited variable of the same name).
    pub env: Vec<(String, String)>,
    /// Pass the host's whole environment (variables whose name or value is
    /// not UTF-8 are skipped).
    pub inherit_env: bool,
    /// Show init's stdout and stderr on the host's (stdin stays empty). By
    /// default they are discarded, and only counted.
    pub inherit_stdio: bool,
    /// Give init the host's stdin (by default it reads as empty).
    pub inherit_stdin: bool,
    /// With `inherit_stdio`, show init's stdout on the host's stderr (for
    /// when the host's stdout carries the output component).
    pub stdout_to_stderr: bool,
    /// Accept WASI resources that init leaves open (files, streams,
    /// directory handles): the snapshot is taken anyway, and the guest's
    /// handles to them dangle in instances started from it. By default such
    /// resources are an error.
    pub allow_open_resources: bool,
    /// Fix everything init can observe that would vary between runs or
    /// machines (randomness, clocks, sleeps, directory order and file
    /// times), so that the output is the same every run: see
    /// [`Reproducible`]. `None`: the host's randomness and clocks.
    pub reproducible: Option<Reproducible>,
}

/// A host directory made visible to the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreopenDir {
    /// The directory on the host.
    pub host: PathBuf,
    /// The name the guest sees it under.
    pub guest: String,
}

impl PreopenDir {
    /// Parses `HOST[::GUEST]`, as `wasmtime run --dir` does: without
    /// `::GUEST` the guest sees the directory under the name `HOST`.
    pub fn parse(spec: &str) -> Result<PreopenDir> {
        let (host, guest) = match spec.split_once("::") {
            Some((host, guest)) => (host, guest),
            None => (spec, spec),
        };
        if host.is_empty() || guest.is_empty() {
            bail!("directory `{spec}` is not of the form `HOST_DIR[::GUEST_DIR]`");
        }
        Ok(PreopenDir {
            host: PathBuf::from(host),
            guest: guest.to_string(),
        })
    }
}

#[cfg(feature = "cli")]
/// Parses `NAME=VALUE`, or `NAME` to pass the host's value of `NAME` (none
/// when the host has no such variable, as `wasmtime run --env` does).
pub fn parse_env(spec: &str) -> Result<Option<(String, String)>> {
    let (name, value) = match spec.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (spec, None),
    };
    if name.is_empty() {
        bail!("environment variable `{spec}` is not of the form `NAME[=VALUE]`");
    }
    let value = match value {
        Some(value) => value,
        None => match std::env::var(name) {
            Ok(value) => value,
            Err(_) => return Ok(None),
        },
    };
    Ok(Some((name.to_string(), value)))
}

impl WasiOptions {
    /// The environment the guest sees.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        if self.inherit_env {
            env.extend(
                std::env::vars_os()
                    .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
            );
        }
        for (name, value) in &self.env {
            env.retain(|(n, _)| n != name);
            env.push((name.clone(), value.clone()));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dirs() {
        assert_eq!(
            PreopenDir::parse("a/b::/data").unwrap(),
            PreopenDir {
                host: "a/b".into(),
                guest: "/data".into()
            }
        );
        assert_eq!(PreopenDir::parse("here").unwrap().guest, "here");
        assert!(PreopenDir::parse("::/x").is_err());
        assert!(PreopenDir::parse("x::").is_err());
    }

    #[test]
    #[cfg(feature = "cli")]
    fn parses_env() {
        assert_eq!(
            parse_env("A=b=c").unwrap(),
            Some(("A".to_string(), "b=c".to_string()))
        );
        assert_eq!(
            parse_env("A=").unwrap(),
            Some(("A".to_string(), String::new()))
        );
        assert!(parse_env("=x").is_err());
        assert_eq!(
            parse_env("COMPONENT_INIT_SURELY_UNSET_VARIABLE").unwrap(),
            None
        );
    }

    #[test]
    fn explicit_env_replaces_inherited() {
        let options = WasiOptions {
            env: vec![("X".into(), "1".into()), ("X".into(), "2".into())],
            ..WasiOptions::default()
        };
        assert_eq!(options.environment(), [("X".to_string(), "2".to_string())]);
    }
}
