//! The compilation cache (Wasmtime's, on by default in the CLI): a hit
//! gives the same bytes as a miss and as no cache; a corrupt or truncated
//! entry is ignored with a warning; two processes can share it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::guests::wasip2_guest_path;

/// A cache configuration file in `dir` whose cache directory is
/// `dir/cache`; returns the file.
fn cache_config(dir: &Path) -> PathBuf {
    let file = dir.join("cache.toml");
    std::fs::write(
        &file,
        format!("[cache]\ndirectory = \"{}\"\n", dir.join("cache").display()),
    )
    .unwrap();
    file
}

/// Runs the CLI on the regex-tables guest, reproducibly (so that outputs
/// can be compared), with `-C` options `codegen`, writing `out`.
fn run(codegen: &[String], out: &Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_component-init"));
    command
        .arg(wasip2_guest_path("regex-tables"))
        .args(["--wasi", "--reproducible", "-v", "-o"])
        .arg(out);
    for option in codegen {
        command.arg("-C").arg(option);
    }
    command.output().unwrap()
}

fn ok(output: Output) -> String {
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    stderr
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_cache_hit_gives_the_bytes_of_a_miss_and_of_no_cache() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    let config = [format!(
        "cache-config={}",
        cache_config(dir.path()).display()
    )];
    let miss = ok(run(&config, &d("miss.wasm")));
    assert!(miss.contains("stored in the compilation cache"), "{miss}");
    assert!(!files(&d("cache")).is_empty(), "an entry was written");
    let hit = ok(run(&config, &d("hit.wasm")));
    assert!(hit.contains("from the compilation cache"), "{hit}");
    let off = ok(run(&["cache=n".to_string()], &d("off.wasm")));
    assert!(!off.contains("compilation cache"), "{off}");
    let read = |name: &str| std::fs::read(d(name)).unwrap();
    assert!(read("miss.wasm") == read("hit.wasm"));
    assert!(read("miss.wasm") == read("off.wasm"));
}

#[test]
fn corrupt_and_truncated_entries_fall_back_to_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    let config = [format!(
        "cache-config={}",
        cache_config(dir.path()).display()
    )];
    ok(run(&config, &d("first.wasm")));
    let entries: Vec<PathBuf> = files(&d("cache"))
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "modules"))
        .collect();
    assert!(!entries.is_empty());
    // truncated
    for entry in &entries {
        let bytes = std::fs::read(entry).unwrap();
        std::fs::write(entry, &bytes[..bytes.len() / 2]).unwrap();
    }
    let stderr = ok(run(&config, &d("truncated.wasm")));
    assert!(stderr.contains("WARN"), "a warning: {stderr}");
    assert!(
        stderr.contains("stored in the compilation cache"),
        "{stderr}"
    );
    // garbage
    for entry in &entries {
        std::fs::write(entry, b"not a cache entry").unwrap();
    }
    ok(run(&config, &d("garbage.wasm")));
    let read = |name: &str| std::fs::read(d(name)).unwrap();
    assert!(read("first.wasm") == read("truncated.wasm"));
    assert!(read("first.wasm") == read("garbage.wasm"));
}

#[test]
fn two_processes_can_share_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    let config = cache_config(dir.path());
    let spawn = |out: PathBuf| {
        Command::new(env!("CARGO_BIN_EXE_component-init"))
            .arg(wasip2_guest_path("regex-tables"))
            .args(["--wasi", "--reproducible", "-C"])
            .arg(format!("cache-config={}", config.display()))
            .arg("-o")
            .arg(out)
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn(d("a.wasm")), spawn(d("b.wasm")));
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let read = |name: &str| std::fs::read(d(name)).unwrap();
    assert!(read("a.wasm") == read("b.wasm"));
    // and a third, after both wrote, hits
    let config = [format!("cache-config={}", config.display())];
    let stderr = ok(run(&config, &d("c.wasm")));
    assert!(stderr.contains("from the compilation cache"), "{stderr}");
    assert!(read("a.wasm") == read("c.wasm"));
}

#[test]
fn bad_cache_options_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (option, expected) in [
        ("bogus", "unknown option `-C bogus`"),
        ("cache=maybe", "`-C cache=maybe`"),
        ("cache-config=/nonexistent/cache.toml", "compilation cache"),
    ] {
        let output = run(&[option.to_string()], &dir.path().join("out.wasm"));
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{option}: {stderr}");
        assert!(!dir.path().join("out.wasm").exists());
    }
}
