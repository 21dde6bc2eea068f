//! `berth-runtime`: runc's command line over the berth_runtime library.

mod cli;
mod log;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Our own memory must not be readable by the container between clone and execve.
    let _ = berth_runtime::sys::set_non_dumpable();
    let args = cli::Cli::parse();
    let guard = log::init(&args.global);
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = format!("{e:#}");
            log::error(&guard, &msg);
            ExitCode::from(1)
        }
    }
}
