//! `component-init`: a thin `main` over [`component_init::cli::Opts`].

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match component_init::cli::Opts::try_parse() {
        Ok(opts) => opts,
        // `--help` and `--version` print as clap has them
        Err(e) if !e.use_stderr() => e.exit(),
        // A usage error: its first line (`error: invalid value ...`), exit
        // status 2 as clap has it.
        Err(e) => {
            let text = e.render().to_string();
            eprintln!(
                "{}",
                text.lines().next().unwrap_or("error: invalid arguments")
            );
            return ExitCode::from(2);
        }
    };
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
