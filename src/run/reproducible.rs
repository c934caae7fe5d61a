//! Reproducible pre-initialization (`--reproducible`): what init can observe
//! through WASI that would vary between runs or machines is fixed, so that
//! the same input and flags give the same output bytes.
//!
//! - randomness (`wasi:random`, secure and insecure, and `insecure-seed`)
//!   comes from ChaCha12 keyed by [`Reproducible::seed`];
//! - the wall clock reads [`Reproducible::wall_clock`] (`SOURCE_DATE_EPOCH`,
//!   or [`DEFAULT_EPOCH`]);
//! - the monotonic clock starts at 0 and advances by [`TICK`] per reading;
//!   sleeps and waits (WASI 0.2 `subscribe-duration`/`subscribe-instant`,
//!   WASI 0.3 `wait-for`/`wait-until`) return at once, advancing it;
//! - in a preopened directory, WASI 0.2 lists entries sorted by name,
//!   reports every timestamp as the wall clock, and numbers files (the
//!   `metadata-hash` that wasi-libc turns into `st_ino`) in the order init
//!   first asks about them;
//! - what cannot be fixed is refused by [`Reproducible::check`]: the host's
//!   whole environment (`--inherit-env`), and a preopened directory for a
//!   component that imports WASI 0.3's filesystem (whose directory streams
//!   Wasmtime 48 gives no way to reorder).
//!
//! The host functions replaced here shadow `wasmtime-wasi`'s in the linker
//! and call through to them where the host is needed.

use anyhow::{Result, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tracing::Instrument;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self as fs, Host as _, HostDescriptor, HostDirectoryEntryStream,
};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

use crate::run::wasi::Host;

/// The wall clock without `SOURCE_DATE_EPOCH`: 1980-01-01T00:00:00Z, the
/// earliest time a zip archive can record (many reproducible-build tools
/// pick it for the same reason).
pub const DEFAULT_EPOCH: u64 = 315_532_800;

/// The seed without `--random-seed`.
pub const DEFAULT_RANDOM_SEED: [u8; 32] = [0; 32];

/// How far the monotonic clock advances each time init reads it (1 µs), so
/// that a loop waiting for time to pass ends.
pub const TICK: u64 = 1_000;

/// The fixed sources of a reproducible run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reproducible {
    /// Keys the random generators (`--random-seed`). Pass a secret one when
    /// init's random values must also be unpredictable.
    pub seed: [u8; 32],
    /// What the wall clock reads, since the Unix epoch.
    pub wall_clock: Duration,
    /// Where `wall_clock` came from, for the log (`SOURCE_DATE_EPOCH`, or
    /// the default).
    pub wall_clock_source: &'static str,
}

impl Default for Reproducible {
    /// The seed 0 and a wall clock at 1980-01-01 (`DEFAULT_RANDOM_SEED`,
    /// `DEFAULT_EPOCH`).
    fn default() -> Reproducible {
        Reproducible {
            seed: DEFAULT_RANDOM_SEED,
            wall_clock: Duration::from_secs(DEFAULT_EPOCH),
            wall_clock_source: "the default, 1980-01-01T00:00:00Z",
        }
    }
}

impl Reproducible {
    /// The default seed and the wall clock from `SOURCE_DATE_EPOCH` when it
    /// is set (failing if it is not a number of seconds), else the default.
    pub fn from_env() -> Result<Reproducible> {
        let mut fixed = Reproducible::default();
        if let Some(epoch) = std::env::var_os("SOURCE_DATE_EPOCH") {
            let epoch = epoch.to_string_lossy();
            let Ok(seconds) = epoch.trim().parse::<u64>() else {
                bail!("`SOURCE_DATE_EPOCH` is `{epoch}`, not a number of seconds since 1970");
            };
            fixed.wall_clock = Duration::from_secs(seconds);
            fixed.wall_clock_source = "SOURCE_DATE_EPOCH";
        }
        Ok(fixed)
    }

    /// Refuses grants whose effect on init cannot be fixed, naming the
    /// flag: the host's whole environment, and preopened directories for a
    /// component that imports WASI 0.3's filesystem (`imports`: the
    /// component's import names).
    pub(crate) fn check<'a>(
        &self,
        inherit_env: bool,
        has_dirs: bool,
        mut imports: impl Iterator<Item = &'a str>,
    ) -> Result<()> {
        if inherit_env {
            bail!(
                "`--inherit-env` cannot be made reproducible (the host's environment varies \
                 between machines): name the variables init needs with `--env NAME=VALUE`"
            );
        }
        if has_dirs && imports.any(|i| i.starts_with("wasi:filesystem/") && i.contains("@0.3.")) {
            bail!(
                "`--dir` cannot be made reproducible for a component that imports WASI 0.3's \
                 filesystem: Wasmtime 48 gives no way to fix the order of its directory \
                 streams; leave out `--dir` or `--reproducible`"
            );
        }
        Ok(())
    }

    /// Sets the random generators and clocks of `builder`; returns the
    /// monotonic clock, which the sleeps advance.
    pub(crate) fn configure(&self, builder: &mut WasiCtxBuilder) -> MonotonicClock {
        let mut keys = StdRng::from_seed(self.seed);
        let mut key = || {
            let mut key = [0; 32];
            rand::Rng::fill_bytes(&mut keys, &mut key);
            key
        };
        builder.secure_random(StdRng::from_seed(key()));
        builder.insecure_random(StdRng::from_seed(key()));
        builder.insecure_random_seed(u128::from_le_bytes(
            key()[..16].try_into().unwrap_or_default(),
        ));
        builder.wall_clock(WallClock(self.wall_clock));
        let monotonic = MonotonicClock::default();
        builder.monotonic_clock(monotonic.clone());
        monotonic
    }
}

#[cfg(feature = "cli")]
/// Parses `--random-seed`: a decimal number, or `0x` and up to 64 hex
/// digits (a 256-bit key).
pub fn parse_seed(text: &str) -> Result<[u8; 32]> {
    let mut seed = [0; 32];
    if let Some(hex) = text.strip_prefix("0x") {
        if hex.is_empty() || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("`{text}` is not a seed: write a number, or `0x` and 1 to 64 hex digits");
        }
        let padded = format!("{hex:0>64}");
        for (byte, pair) in seed.iter_mut().zip(padded.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).unwrap_or("00");
            *byte = u8::from_str_radix(pair, 16).unwrap_or(0);
        }
        return Ok(seed);
    }
    let Ok(number) = text.parse::<u64>() else {
        bail!("`{text}` is not a seed: write a number, or `0x` and 1 to 64 hex digits");
    };
    seed[24..].copy_from_slice(&number.to_be_bytes());
    Ok(seed)
}

struct WallClock(Duration);

impl HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

/// The monotonic clock of a reproducible run: nanoseconds from 0, advanced
/// by [`TICK`] per reading and by every sleep.
#[derive(Clone, Default)]
pub(crate) struct MonotonicClock(Arc<AtomicU64>);

impl MonotonicClock {
    /// Advances the clock by `nanos`.
    fn sleep(&self, nanos: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(nanos))
            });
    }

    /// Advances the clock to `when`, if it is later.
    fn sleep_until(&self, when: u64) {
        self.0.fetch_max(when, Ordering::SeqCst);
    }

    /// Where the clock is.
    pub(crate) fn elapsed(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl HostMonotonicClock for MonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.0.fetch_add(TICK, Ordering::SeqCst)
    }
}

/// What the replaced filesystem functions keep between calls.
#[derive(Default)]
pub(crate) struct FsState {
    /// The rest of each directory listing, sorted, by stream handle.
    listings: HashMap<u32, std::vec::IntoIter<fs::DirectoryEntry>>,
    /// File numbers, in the order init first asked about the files, by the
    /// host's (machine-dependent) metadata hash.
    numbers: BTreeMap<(u64, u64), u64>,
}

/// A pollable that is ready at once: the sleeps of a reproducible run.
struct Ready;

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for Ready {
    async fn ready(&mut self) {}
}

/// The span the audit records WASI calls by (as `wasmtime-wasi`'s
/// bindings open it), for a host function replaced here.
fn audited(module: &'static str, function: &'static str) -> tracing::Span {
    tracing::span!(
        tracing::Level::TRACE,
        "wit-bindgen import",
        module = module,
        function = function
    )
}

/// Replaces, in a linker already holding WASI 0.2 and 0.3, the functions
/// whose results would vary between runs although the context's clocks are
/// fixed: the sleeps, and the filesystem's listings, timestamps and file
/// identities.
pub(crate) fn shadow_wasi(linker: &mut Linker<Host>) -> Result<()> {
    linker.allow_shadowing(true);
    shadow_sleeps(linker)?;
    shadow_filesystem(linker)?;
    linker.allow_shadowing(false);
    Ok(())
}

fn shadow_sleeps(linker: &mut Linker<Host>) -> Result<()> {
    let mut clock = linker.instance("wasi:clocks/monotonic-clock@0.2.12")?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store,
         (nanos,): (u64,)|
         -> wasmtime::Result<(Resource<wasmtime_wasi::p2::DynPollable>,)> {
            let _span = audited("monotonic-clock", "subscribe-duration").entered();
            store.data_mut().monotonic().sleep(nanos);
            ready(store.data_mut())
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store,
         (when,): (u64,)|
         -> wasmtime::Result<(Resource<wasmtime_wasi::p2::DynPollable>,)> {
            let _span = audited("monotonic-clock", "subscribe-instant").entered();
            store.data_mut().monotonic().sleep_until(when);
            ready(store.data_mut())
        },
    )?;
    let mut clock = linker.instance("wasi:clocks/monotonic-clock@0.3.0")?;
    clock.func_wrap_concurrent("wait-for", |accessor, (nanos,): (u64,)| {
        let _span = audited("monotonic-clock", "wait-for").entered();
        accessor.with(|mut store| store.data_mut().monotonic().sleep(nanos));
        Box::pin(async { Ok(()) })
    })?;
    clock.func_wrap_concurrent("wait-until", |accessor, (when,): (u64,)| {
        let _span = audited("monotonic-clock", "wait-until").entered();
        accessor.with(|mut store| store.data_mut().monotonic().sleep_until(when));
        Box::pin(async { Ok(()) })
    })?;
    Ok(())
}

fn ready(host: &mut Host) -> wasmtime::Result<(Resource<wasmtime_wasi::p2::DynPollable>,)> {
    let table = host.filesystem().table;
    let ready = table.push(Ready)?;
    Ok((wasmtime_wasi::p2::subscribe(table, ready)?,))
}

type FsReturn<T> = wasmtime::Result<(Result<T, fs::ErrorCode>,)>;

/// Converts `wasmtime-wasi`'s filesystem result into the WIT result (or a
/// trap, for errors that are not error codes).
fn wit_result<T>(host: &mut Host, result: wasmtime_wasi::p2::FsResult<T>) -> FsReturn<T> {
    Ok((match result {
        Ok(value) => Ok(value),
        Err(e) => Err(host.filesystem().convert_error_code(e)?),
    },))
}

fn shadow_filesystem(linker: &mut Linker<Host>) -> Result<()> {
    let mut types = linker.instance("wasi:filesystem/types@0.2.12")?;
    types.func_wrap_async(
        "[method]directory-entry-stream.read-directory-entry",
        |mut store, (stream,): (Resource<fs::DirectoryEntryStream>,)| {
            Box::new(
                async move {
                    let host = store.data_mut();
                    let rep = stream.rep();
                    if !host.fs_state().listings.contains_key(&rep) {
                        let mut entries = Vec::new();
                        loop {
                            let next = host
                                .filesystem()
                                .read_directory_entry(Resource::new_borrow(rep))
                                .await;
                            match next {
                                Ok(Some(entry)) => entries.push(entry),
                                Ok(None) => break,
                                Err(e) => return wit_result(host, Err(e)),
                            }
                        }
                        entries.sort_by(|a, b| a.name.cmp(&b.name));
                        host.fs_state().listings.insert(rep, entries.into_iter());
                    }
                    let next = host
                        .fs_state()
                        .listings
                        .get_mut(&rep)
                        .and_then(Iterator::next);
                    Ok((Ok(next),))
                }
                .instrument(audited(
                    "types",
                    "[method]directory-entry-stream.read-directory-entry",
                )),
            )
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.stat",
        |mut store, (fd,): (Resource<fs::Descriptor>,)| {
            Box::new(
                async move {
                    let host = store.data_mut();
                    let stat = host.filesystem().stat(fd).await;
                    let epoch = host.wall_clock();
                    wit_result(host, stat.map(|s| fixed_times(s, epoch)))
                }
                .instrument(audited("types", "[method]descriptor.stat")),
            )
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.stat-at",
        |mut store, (fd, flags, path): (Resource<fs::Descriptor>, fs::PathFlags, String)| {
            Box::new(
                async move {
                    let host = store.data_mut();
                    let stat = host.filesystem().stat_at(fd, flags, path).await;
                    let epoch = host.wall_clock();
                    wit_result(host, stat.map(|s| fixed_times(s, epoch)))
                }
                .instrument(audited("types", "[method]descriptor.stat-at")),
            )
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.metadata-hash",
        |mut store, (fd,): (Resource<fs::Descriptor>,)| {
            Box::new(
                async move {
                    let host = store.data_mut();
                    let hash = host.filesystem().metadata_hash(fd).await;
                    let hash = hash.map(|h| host.file_number(h));
                    wit_result(host, hash)
                }
                .instrument(audited("types", "[method]descriptor.metadata-hash")),
            )
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.metadata-hash-at",
        |mut store, (fd, flags, path): (Resource<fs::Descriptor>, fs::PathFlags, String)| {
            Box::new(
                async move {
                    let host = store.data_mut();
                    let hash = host.filesystem().metadata_hash_at(fd, flags, path).await;
                    let hash = hash.map(|h| host.file_number(h));
                    wit_result(host, hash)
                }
                .instrument(audited("types", "[method]descriptor.metadata-hash-at")),
            )
        },
    )?;
    Ok(())
}

/// `stat` with every timestamp set to `epoch`.
fn fixed_times(mut stat: fs::DescriptorStat, epoch: Duration) -> fs::DescriptorStat {
    let time = Some(wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime {
        seconds: epoch.as_secs(),
        nanoseconds: epoch.subsec_nanos(),
    });
    stat.data_access_timestamp = time;
    stat.data_modification_timestamp = time;
    stat.status_change_timestamp = time;
    stat
}

/// The state of a reproducible run that the replaced host functions use.
#[derive(Default)]
pub(crate) struct Fixed {
    pub(crate) monotonic: MonotonicClock,
    pub(crate) wall_clock: Duration,
    pub(crate) fs: FsState,
}

impl Host {
    fn monotonic(&mut self) -> &MonotonicClock {
        &self.fixed.monotonic
    }

    fn wall_clock(&mut self) -> Duration {
        self.fixed.wall_clock
    }

    fn fs_state(&mut self) -> &mut FsState {
        &mut self.fixed.fs
    }

    /// The number of the file whose host metadata hash is `hash`: 1, 2, ...
    /// in the order init first asks.
    fn file_number(&mut self, hash: fs::MetadataHashValue) -> fs::MetadataHashValue {
        let numbers = &mut self.fs_state().numbers;
        let next = numbers.len() as u64 + 1;
        let number = *numbers.entry((hash.lower, hash.upper)).or_insert(next);
        fs::MetadataHashValue {
            lower: number,
            upper: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "cli")]
    fn parses_seeds() {
        assert_eq!(parse_seed("0").unwrap(), [0; 32]);
        assert_eq!(parse_seed("258").unwrap()[30..], [1, 2]);
        let hex = parse_seed("0x0102").unwrap();
        assert_eq!(hex[30..], [1, 2]);
        assert_eq!(
            parse_seed(&format!("0x{}", "ff".repeat(32))).unwrap(),
            [0xff; 32]
        );
        for bad in ["", "0x", "-1", "seed", &format!("0x{}", "0".repeat(65))] {
            assert!(parse_seed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_fixed() {
        let fixed = Reproducible::default();
        let p3_fs = ["wasi:cli/environment@0.3.2", "wasi:filesystem/types@0.3.2"];
        let p2_fs = ["wasi:filesystem/types@0.2.6"];
        assert!(fixed.check(true, false, [].into_iter()).is_err());
        let err = fixed.check(false, true, p3_fs.into_iter()).unwrap_err();
        assert!(err.to_string().contains("`--dir`"), "{err}");
        fixed.check(false, false, p3_fs.into_iter()).unwrap();
        fixed.check(false, true, p2_fs.into_iter()).unwrap();
    }

    #[test]
    fn the_monotonic_clock_ticks_and_sleeps() {
        let clock = MonotonicClock::default();
        assert_eq!(clock.now(), 0);
        assert_eq!(clock.now(), TICK);
        clock.sleep(1_000_000);
        assert_eq!(clock.now(), 2 * TICK + 1_000_000);
        clock.sleep_until(5);
        assert_eq!(clock.elapsed(), 3 * TICK + 1_000_000);
    }
}
