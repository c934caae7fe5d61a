//! Init reads `/config/settings.txt` from a preopened directory and the
//! `GREETING` environment variable, and prints to stdout; `config` returns
//! what it read.
//!
//! `component-init` refuses a snapshot while the guest holds WASI resources,
//! so `component-init` releases everything it used: the file is closed, the
//! preopened directories that wasi-libc caches are closed with
//! `__wasilibc_reset_preopens`, and it prints through a `wasi:cli/stdout`
//! stream that it drops at once (wasi-libc, behind `println!`, would keep
//! its stdout stream open). `init-keep-open` does the same work without
//! releasing anything.

use std::fs::File;
use std::io::Read;
use std::sync::Mutex;

wit_bindgen::generate!({
    path: ["../../../wit", "../wit"],
    world: "component-init:test-guests/wasi-config",
});

static CONFIG: Mutex<Option<String>> = Mutex::new(None);
static KEPT_OPEN: Mutex<Option<File>> = Mutex::new(None);

unsafe extern "C" {
    /// wasi-libc: forget (and close) the preopened directories; they are
    /// looked up again when next needed.
    fn __wasilibc_reset_preopens();
}

fn read_config() -> File {
    let mut file = File::open("/config/settings.txt").expect("open /config/settings.txt");
    let mut settings = String::new();
    file.read_to_string(&mut settings)
        .expect("read /config/settings.txt");
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "<unset>".to_string());
    let message = format!(
        "wasi-config: read {} bytes of settings; GREETING={greeting}\n",
        settings.len()
    );
    let stdout = wasip2::cli::stdout::get_stdout();
    stdout
        .blocking_write_and_flush(message.as_bytes())
        .expect("write to stdout");
    drop(stdout);
    *CONFIG.lock().unwrap() = Some(format!(
        "settings={}\ngreeting={greeting}",
        settings.trim_end()
    ));
    file
}

struct WasiConfig;

impl Guest for WasiConfig {
    fn component_init() {
        drop(read_config());
        unsafe { __wasilibc_reset_preopens() };
    }

    fn init_keep_open() {
        *KEPT_OPEN.lock().unwrap() = Some(read_config());
        // Through wasi-libc, which keeps its stdout stream.
        println!("wasi-config: keeping the config file open");
    }

    fn config() -> String {
        CONFIG
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| "not initialized".to_string())
    }
}

export!(WasiConfig);
