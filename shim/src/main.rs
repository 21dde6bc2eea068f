//! berth-shim: see the library docs. Started by berth-manager (or anyone) as
//! `berth-shim --id ID --dir DIR`; returns once the shim serves on `DIR/shim.sock`.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "berth-shim",
    version,
    about = "Per-container shim: stdio, logs, reaping, exit status"
)]
struct Args {
    /// Container id.
    #[arg(long)]
    id: String,
    /// State directory (holds shim.sock, exit, logs of the shim and runtime).
    #[arg(long)]
    dir: std::path::PathBuf,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = berth_shim::daemon::start(&args.id, &args.dir) {
        eprintln!("berth-shim: {:#}", anyhow::Error::new(e));
        std::process::exit(1);
    }
}
