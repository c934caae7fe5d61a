//! Bounds on the init run: wall-clock time, linear memory and fuel, and
//! how they are written on the command line (`3s`, `500ms`, `64MiB`).

#[cfg(feature = "cli")]
use anyhow::{Result, bail};
#[cfg(feature = "wasmtime")]
use std::fmt;
use std::time::Duration;

/// What the init run may use. Instantiation (start functions included) and
/// the init call count; reading the state back afterwards does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time, enforced with Wasmtime's epoch interruption: an init
    /// still running when it is up traps, and pre-initialization fails with
    /// an error saying it timed out. `None`: no limit.
    pub timeout: Option<Duration>,
    /// Bytes of linear memory the component's instances may hold in all, at
    /// any one time: a `memory.grow` past it traps (it does not return -1),
    /// and the error names the limit. `None`: only the memories' own maxima
    /// apply.
    pub max_memory: Option<u64>,
    /// Fuel (about one unit per WebAssembly instruction): a deterministic
    /// bound, the same on every machine, unlike `timeout`. `None`: fuel is
    /// not metered, and code runs faster.
    pub fuel: Option<u64>,
}

/// The default [`Limits::timeout`]: long enough for the slowest language
/// runtimes' init (seconds), short enough that a hung build ends.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

impl Default for Limits {
    /// 5 minutes (`DEFAULT_TIMEOUT`), no memory limit beyond the memories' own, no fuel.
    fn default() -> Limits {
        Limits {
            timeout: Some(DEFAULT_TIMEOUT),
            max_memory: None,
            fuel: None,
        }
    }
}

impl Limits {
    /// No limit at all.
    pub fn none() -> Limits {
        Limits {
            timeout: None,
            max_memory: None,
            fuel: None,
        }
    }
}

/// Parses a duration: a number followed by `ms`, `s`, `m` or `h` (`500ms`,
/// `3s`, `1.5s`, `2m`); `0` means no limit (`None`).
#[cfg(feature = "cli")]
pub fn parse_duration(text: &str) -> Result<Option<Duration>> {
    let text = text.trim();
    if text == "0" {
        return Ok(None);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "" => bail!("`{text}` has no unit: write it as `500ms`, `3s`, `2m` or `1h`"),
        other => bail!("unknown unit `{other}` in `{text}` (use ms, s, m or h)"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("`{text}` is not a duration such as `500ms`, `3s` or `2m`"))?;
    let duration = Duration::try_from_secs_f64(value * scale)
        .map_err(|_| anyhow::anyhow!("`{text}` is out of range"))?;
    if duration.is_zero() {
        return Ok(None);
    }
    Ok(Some(duration))
}

/// Parses a size in bytes: a number with an optional unit, `B`, `K`/`KiB`,
/// `M`/`MiB`, `G`/`GiB`, `T`/`TiB` (powers of 1024), or `KB`, `MB`, `GB`,
/// `TB` (powers of 1000): `65536`, `64MiB`, `1.5G`.
#[cfg(feature = "cli")]
pub fn parse_size(text: &str) -> Result<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KiB" | "k" => 1024.0,
        "M" | "MiB" => 1024.0 * 1024.0,
        "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        other => bail!("unknown unit `{other}` in `{text}` (use B, KiB, MiB, GiB or TiB)"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("`{text}` is not a size such as `65536`, `64MiB` or `2G`"))?;
    let bytes = value * scale;
    if !(0.0..=u64::MAX as f64).contains(&bytes) {
        bail!("`{text}` is out of range");
    }
    Ok(bytes as u64)
}

/// A duration as one would write it: `300ms`, `3s`, `1.5s`, `2m`.
#[cfg(feature = "wasmtime")]
pub struct ShowDuration(pub Duration);

#[cfg(feature = "wasmtime")]
impl fmt::Display for ShowDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let secs = d.as_secs_f64();
        if d.subsec_nanos() == 0 && d.as_secs().is_multiple_of(3600) && d.as_secs() > 0 {
            write!(f, "{}h", d.as_secs() / 3600)
        } else if d.subsec_nanos() == 0 && d.as_secs().is_multiple_of(60) && d.as_secs() > 0 {
            write!(f, "{}m", d.as_secs() / 60)
        } else if secs >= 1.0 {
            write!(f, "{secs}s")
        } else {
            write!(f, "{}ms", secs * 1e3)
        }
    }
}

/// A size in the largest binary unit that keeps it whole (or in bytes).
#[cfg(feature = "wasmtime")]
pub struct ShowSize(pub u64);

#[cfg(feature = "wasmtime")]
impl fmt::Display for ShowSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if n > 0 && n.is_multiple_of(1 << shift) {
                return write!(f, "{} {unit}", n >> shift);
            }
        }
        write!(f, "{n} bytes")
    }
}

/// Counts the linear memory of a store against [`Limits::max_memory`]
/// (Wasmtime's `ResourceLimiter`).
#[cfg(feature = "wasmtime")]
#[derive(Debug, Default)]
pub(crate) struct MemoryLimiter {
    /// The limit, while it is enforced.
    pub(crate) max: Option<u64>,
    /// Bytes of linear memory the store's instances hold.
    pub(crate) total: u64,
}

#[cfg(feature = "wasmtime")]
impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            // fails anyway: memory.grow returns -1 as usual
            return Ok(false);
        }
        let total = self.total - (current as u64).min(self.total) + desired as u64;
        if let Some(max) = self.max.filter(|&max| total > max) {
            return Err(wasmtime::Error::msg(format!(
                "growing a memory from {current} to {desired} bytes would bring the \
                 component's linear memory to {total} bytes, over the limit of {} \
                 (`--max-memory`)",
                ShowSize(max)
            )));
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = |s: &str| parse_duration(s).unwrap();
        assert_eq!(ok("3s"), Some(Duration::from_secs(3)));
        assert_eq!(ok("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(ok("2m"), Some(Duration::from_secs(120)));
        assert_eq!(ok("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(ok("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(ok("0"), None);
        assert_eq!(ok("0s"), None);
        for bad in ["3", "3 days", "s", "-1s", "1e999s", ""] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for d in ["3s", "500ms", "2m", "1.5s", "1h"] {
            assert_eq!(ShowDuration(ok(d).unwrap()).to_string(), d);
        }
    }

    #[test]
    fn sizes() {
        let ok = |s: &str| parse_size(s).unwrap();
        assert_eq!(ok("65536"), 65536);
        assert_eq!(ok("64MiB"), 64 << 20);
        assert_eq!(ok("64M"), 64 << 20);
        assert_eq!(ok("2G"), 2 << 30);
        assert_eq!(ok("1.5KiB"), 1536);
        assert_eq!(ok("10MB"), 10_000_000);
        for bad in ["", "MiB", "12 parsecs", "-1", "1e99TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(ShowSize(64 << 20).to_string(), "64 MiB");
        assert_eq!(ShowSize(1000).to_string(), "1000 bytes");
    }
}
