//! berth-manager: without a subcommand, serve (containerd-style flags); with one, act as a
//! client of the manager at --address.

use std::path::PathBuf;

use berth_manager::{client, config};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "berth-manager",
    version,
    about = "Containers and tasks over gRPC; one shim per task"
)]
struct Args {
    /// Unix socket to serve on (or, for client commands, to dial).
    #[arg(long, global = true)]
    address: Option<PathBuf>,
    /// Persistent data directory (metadata, logs).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Runtime state directory (shims, bundles).
    #[arg(long)]
    state: Option<PathBuf>,
    /// JSON config file (address, root, state, shim, default_runtime, runtimes).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log level for the server (error, warn, info, debug).
    #[arg(long, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Option<client::Command>,
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async move {
        match args.command {
            Some(cmd) => {
                let address = args
                    .address
                    .unwrap_or_else(|| config::DEFAULT_ADDRESS.into());
                client::run(&address, cmd).await
            }
            None => {
                let level = args.log_level.parse().unwrap_or(tracing::Level::INFO);
                tracing_subscriber::fmt()
                    .with_max_level(level)
                    .with_ansi(false)
                    .with_writer(std::io::stderr)
                    .init();
                let mut cfg = match &args.config {
                    Some(p) => match config::Config::load(p) {
                        Ok(c) => c,
                        Err(e) => return Err(e),
                    },
                    None => config::Config::default(),
                };
                if let Some(a) = args.address {
                    cfg.address = a;
                }
                if let Some(r) = args.root {
                    cfg.root = r;
                }
                if let Some(s) = args.state {
                    cfg.state = s;
                }
                berth_manager::serve(cfg).await.map(|()| 0)
            }
        }
    });
    match code {
        Ok(c) => std::process::exit(c),
        Err(e) => {
            eprintln!("berth-manager: {e:#}");
            std::process::exit(1);
        }
    }
}
