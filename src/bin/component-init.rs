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
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let first = lines.next().unwrap_or("error: invalid arguments");
            // A first line ending in `:` introduces what it is about (the
            // missing arguments): keep that on the same line.
            match first.strip_suffix(':') {
                Some(intro) => {
                    let what: Vec<&str> = lines.take_while(|l| !l.starts_with("Usage:")).collect();
                    eprintln!("{intro}: {}", what.join(", "));
                }
                None => eprintln!("{first}"),
            }
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
