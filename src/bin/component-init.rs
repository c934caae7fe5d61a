//! `component-init`: a thin `main` over [`component_init::cli::Opts`].

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = component_init::cli::Opts::parse();
    opts.general_opts().init_logger();
    match opts.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`component-init x.wasm -t | head`) is not an error.
            let io = e.root_cause().downcast_ref::<std::io::Error>();
            if io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
