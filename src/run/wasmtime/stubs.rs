//! Imports that init may not use: traps (functions) and empty host types
//! (resources), defined beside WASI's when WASI is provided, and the table of
//! WASI releases that `wasmtime-wasi` provides.

use anyhow::{Result, bail};
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, LinkerInstance, ResourceType};

use crate::run::wasi::Host;

/// A WASI release that `wasmtime-wasi` provides: the version its linker
/// defines, and the interfaces it defines at that version.
struct WasiRelease {
    /// The version the host defines (`0.2.12`).
    version: &'static str,
    /// The prefix of the versions it matches by semver (`0.2.`).
    matches: &'static str,
    /// The interfaces, in groups (some groups are in both releases).
    interfaces: &'static [&'static [&'static str]],
}

/// `wasi:cli`, as 0.2 and 0.3 both define it.
const WASI_CLI: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

/// `wasi:filesystem` and `wasi:random`, as 0.2 and 0.3 both define them.
const WASI_FILESYSTEM_RANDOM: &[&str] = &[
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// WASI 0.2 (`wasmtime_wasi::p2`) and WASI 0.3 (`wasmtime_wasi::p3`), as
/// Wasmtime 48 defines them: to check on Wasmtime upgrades.
const WASI_RELEASES: &[WasiRelease] = &[
    WasiRelease {
        version: "0.2.12",
        matches: "0.2.",
        interfaces: &[
            WASI_CLI,
            WASI_FILESYSTEM_RANDOM,
            &[
                "wasi:clocks/monotonic-clock",
                "wasi:clocks/wall-clock",
                "wasi:io/error",
                "wasi:io/poll",
                "wasi:io/streams",
                "wasi:sockets/network",
                "wasi:sockets/instance-network",
                "wasi:sockets/tcp",
                "wasi:sockets/tcp-create-socket",
                "wasi:sockets/udp",
                "wasi:sockets/udp-create-socket",
                "wasi:sockets/ip-name-lookup",
            ],
        ],
    },
    WasiRelease {
        version: "0.3.0",
        matches: "0.3.",
        interfaces: &[
            WASI_CLI,
            WASI_FILESYSTEM_RANDOM,
            &[
                "wasi:clocks/types",
                "wasi:clocks/monotonic-clock",
                "wasi:clocks/system-clock",
                "wasi:sockets/types",
                "wasi:sockets/ip-name-lookup",
            ],
        ],
    },
];

/// The name under which the linker holds the WASI interface that `import`
/// (e.g. `wasi:cli/environment@0.2.6` or `@0.3.2`) resolves to, if any.
fn wasi_host_name(import: &str) -> Option<String> {
    let (interface, version) = import.split_once('@')?;
    WASI_RELEASES.iter().find_map(|release| {
        let patch = version.strip_prefix(release.matches)?;
        (release
            .interfaces
            .iter()
            .any(|group| group.contains(&interface))
            && !patch.is_empty()
            && patch.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{interface}@{}", release.version))
    })
}

/// Like [`Linker::define_unknown_imports_as_traps`], for a linker holding
/// WASI: an import of a WASI interface at another 0.2 or 0.3 version resolves to
/// the host's instance (a semver-compatible match), so its missing functions
/// are added to that instance, rather than to a new instance under the
/// import's exact name, which would shadow the host's with traps.
pub(super) fn define_missing_imports_as_traps(
    linker: &mut Linker<Host>,
    component: &Component,
) -> Result<()> {
    let engine = linker.engine().clone();
    let ty = component.component_type();
    for (name, import) in ty.imports(&engine) {
        match &import.ty {
            ComponentItem::ComponentInstance(_) => {
                let host_name = wasi_host_name(name);
                let mut instance = linker.instance(host_name.as_deref().unwrap_or(name))?;
                stub(
                    &mut instance,
                    &engine,
                    None,
                    name,
                    &import.ty,
                    true,
                    host_name.is_some(),
                )?;
            }
            item => stub(&mut linker.root(), &engine, None, name, item, false, false)?,
        }
    }
    Ok(())
}

/// Defines `name` in `linker` as a trap (functions) or an empty host type
/// (resources), unless it is already defined; `inside` says that `linker` is
/// already the instance `name` names, and `host` that it is one of WASI's,
/// whose resource types (its own and those it uses from other interfaces)
/// are the host's.
fn stub(
    linker: &mut LinkerInstance<'_, Host>,
    engine: &Engine,
    parent: Option<&str>,
    name: &str,
    item: &ComponentItem,
    inside: bool,
    host: bool,
) -> Result<()> {
    match item {
        ComponentItem::ComponentFunc(_) => {
            let full = match parent {
                Some(parent) => format!("{parent}#{name}"),
                None => name.to_string(),
            };
            // Without shadowing, defining a name again fails: whatever the
            // host defined stays.
            let _ = linker.func_new(name, move |_, _, _, _| {
                wasmtime::bail!("unknown import: `{full}` has not been defined")
            });
        }
        ComponentItem::Resource(_) if host => {}
        ComponentItem::Resource(_) => {
            let _ = linker.resource(name, ResourceType::host::<()>(), |_, _| Ok(()));
        }
        ComponentItem::ComponentInstance(instance) => {
            if inside {
                stub_exports(linker, engine, name, instance, host)?;
            } else {
                stub_exports(&mut linker.instance(name)?, engine, name, instance, host)?;
            }
        }
        ComponentItem::Component(_) | ComponentItem::Module(_) => {
            bail!("cannot define the import `{name}` (a component or module) as a trap")
        }
        ComponentItem::CoreFunc(_) | ComponentItem::Type(_) => {}
    }
    Ok(())
}

fn stub_exports(
    linker: &mut LinkerInstance<'_, Host>,
    engine: &Engine,
    name: &str,
    instance: &wasmtime::component::types::ComponentInstance,
    host: bool,
) -> Result<()> {
    for (export, item) in instance.exports(engine) {
        stub(linker, engine, Some(name), export, &item.ty, false, host)?;
    }
    Ok(())
}
