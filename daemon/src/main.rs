//! berthd: the Docker Engine API daemon (no subcommand), and image commands (`berthd image
//! pull|push|ls|rm|tag|import|inspect|history|prune|save|load`) acting on the manager's
//! content store. Serving, it uses the berth-manager given by `--manager`, or its own
//! (started and watched, see [`berth_daemon::supervise`]).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use berth_daemon::config::Config;
use berth_daemon::images::{short, Images, OnProgress, Progress};
use berth_daemon::manager::Mgr;
use berth_daemon::reference::Reference;
use berth_daemon::registry::{docker_credentials, Registry};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berthd",
    version,
    about = "Berth's daemon: the Docker Engine API over berth-manager"
)]
struct Args {
    /// Use the berth-manager at this socket. Default: berthd's own, at EXEC_ROOT/manager.sock,
    /// started (and restarted) by berthd when nothing answers there.
    #[arg(long, global = true)]
    manager: Option<PathBuf>,
    /// Runtime state: the manager's socket and its shims' state.
    #[arg(long, global = true, default_value = "/run/berth")]
    exec_root: PathBuf,
    /// daemon.json (registry-mirrors, insecure-registries, registry-fallback, …).
    #[arg(long, global = true, default_value = "/etc/berth/daemon.json")]
    config_file: PathBuf,
    /// Where to serve the Engine API (serving mode): unix:///path or tcp://host:port (TLS).
    #[arg(
        short = 'H',
        long = "host",
        default_value = "unix:///run/berth/berth.sock"
    )]
    host: String,
    /// Serve TLS on tcp:// (`--tls=false` forces plain TCP, which gives root to anyone who
    /// reaches the port).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    tls: Option<bool>,
    /// TLS, and require client certificates signed by --tlscacert.
    #[arg(long)]
    tlsverify: bool,
    /// CA that signs the clients' certificates.
    #[arg(long)]
    tlscacert: Option<PathBuf>,
    /// The server's certificate (PEM).
    #[arg(long)]
    tlscert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long)]
    tlskey: Option<PathBuf>,
    /// Persistent state of the daemon (serving mode).
    #[arg(long, default_value = "/var/lib/berth")]
    data_root: PathBuf,
    /// Write the daemon's pid here (serving mode).
    #[arg(long)]
    pidfile: Option<PathBuf>,
    /// Parent cgroup of every container (serving mode).
    #[arg(long, default_value = "/berth")]
    cgroup_parent: String,
    /// error, warn, info, debug.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Check the configuration file and exit (as dockerd --validate).
    #[arg(long)]
    validate: bool,
    /// Without a command: serve the Docker Engine API.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Image commands.
    #[command(subcommand)]
    Image(ImageCmd),
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Pull an image from a registry.
    Pull { reference: String },
    /// Push an image to a registry.
    Push { reference: String },
    /// List images.
    Ls {
        /// Only IDs.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove (untag) images.
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Name an image.
    Tag { source: String, target: String },
    /// Make an image from a root filesystem tarball ("-" for stdin is not supported).
    Import {
        file: PathBuf,
        name: Option<String>,
        /// os/arch[/variant] recorded in the image (default: this host's).
        #[arg(long)]
        platform: Option<String>,
        /// Cmd of the image, e.g. --cmd sh --cmd -c --cmd 'echo hi'.
        #[arg(long)]
        cmd: Vec<String>,
    },
    /// Docker-style JSON description.
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Layers and the commands that made them.
    History { image: String },
    /// Remove what no image, container or lease uses.
    Prune,
    /// Write images to an archive (OCI layout plus Docker's manifest.json).
    Save {
        #[arg(short, long)]
        output: PathBuf,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Load images from an archive (Docker or OCI).
    Load {
        #[arg(short, long)]
        input: PathBuf,
    },
}

fn printer() -> OnProgress {
    Arc::new(|p: Progress| {
        if p.id.is_empty() {
            println!("{}", p.status);
        } else if p.status != "Downloading" && p.status != "Pushing" {
            println!("{}: {}", p.id, p.status);
        }
    })
}

fn parse_platform(s: &str) -> anyhow::Result<berth_manager::images::manifest::Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        anyhow::bail!("platform {s:?}: want os/arch[/variant]");
    }
    Ok(berth_manager::images::manifest::Platform {
        os: parts[0].into(),
        architecture: parts[1].into(),
        variant: parts.get(2).map(|v| v.to_string()).unwrap_or_default(),
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = if args.config_file.exists() {
        Config::load(&args.config_file)?
    } else {
        Config::default()
    };
    if args.validate {
        println!("configuration OK");
        return Ok(());
    }
    let data_root = cfg.data_root.clone().unwrap_or(args.data_root.clone());
    let own = berth_daemon::supervise::ManagerPaths {
        socket: args.exec_root.join("manager.sock"),
        root: data_root.join("manager"),
        state: args.exec_root.join("m"),
        log: data_root.join("manager.log"),
    };
    let serving = args.command.is_none();
    let manager = match &args.manager {
        Some(m) => m.clone(),
        None => {
            if serving {
                std::fs::create_dir_all(&data_root)
                    .with_context(|| format!("data root {}", data_root.display()))?;
                berth_daemon::supervise::ensure(&own).await?;
                berth_daemon::supervise::watch(own.clone());
            }
            own.socket.clone()
        }
    };
    let mgr = Mgr::connect(&manager).await?;
    let reg = Arc::new(Registry::new(Arc::new(cfg), docker_credentials()));
    let images = Images::new(mgr.clone(), reg);
    images.reconcile().await?;
    let Some(Command::Image(cmd)) = args.command else {
        let tls = berth_daemon::api::tls::TlsOpts {
            tls: args.tls,
            verify: args.tlsverify,
            ca: args.tlscacert.clone(),
            cert: args.tlscert.clone(),
            key: args.tlskey.clone(),
        };
        if let Some(addr) = args.host.strip_prefix("tcp://") {
            // Refuse a bad TLS setup before anything starts.
            berth_daemon::api::tls::server_config(addr, &tls)?;
        }
        std::fs::create_dir_all(&data_root)
            .with_context(|| format!("data root {}", data_root.display()))?;
        // Docker's data root is 0701 since CVE-2021-41091.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data_root, std::fs::Permissions::from_mode(0o701))?;
        if let Some(p) = &args.pidfile {
            std::fs::write(p, std::process::id().to_string())
                .with_context(|| format!("pidfile {}", p.display()))?;
        }
        let state = Arc::new(berth_daemon::state::Daemon::new(
            images,
            data_root.clone(),
            &args.exec_root,
            args.cgroup_parent.clone(),
        ));
        let r = berth_daemon::api::serve(state, &args.host, &tls).await;
        if let Some(p) = &args.pidfile {
            let _ = std::fs::remove_file(p);
        }
        return r;
    };
    match cmd {
        ImageCmd::Pull { reference } => {
            let r = images.pull(&reference, printer()).await?;
            println!(
                "Status: Downloaded image for {}",
                Reference::parse(&reference)?.familiar()
            );
            println!("{}", r.record.name);
        }
        ImageCmd::Push { reference } => {
            images.push(&reference, printer()).await?;
        }
        ImageCmd::Ls { quiet } => {
            let mut rows = Vec::new();
            for img in mgr.images().await? {
                let Ok(res) = images.resolve_record(&img).await else {
                    continue;
                };
                let (repo, tag) = match Reference::parse(&img.name) {
                    Ok(r) if !img.name.starts_with("sha256:") => (
                        r.familiar_repository(),
                        r.tag.clone().unwrap_or_else(|| "<none>".into()),
                    ),
                    _ => ("<none>".into(), "<none>".into()),
                };
                let size: u64 = res.manifest.layers.iter().map(|l| l.size).sum();
                rows.push((repo, tag, short(res.id()), res.config.created.clone(), size));
            }
            rows.sort();
            if quiet {
                let mut seen = std::collections::BTreeSet::new();
                for r in rows {
                    if seen.insert(r.2.clone()) {
                        println!("{}", r.2);
                    }
                }
            } else {
                println!(
                    "{:<40} {:<12} {:<14} {:<22} SIZE",
                    "REPOSITORY", "TAG", "IMAGE ID", "CREATED"
                );
                for (repo, tag, id, created, size) in rows {
                    println!(
                        "{:<40} {:<12} {:<14} {:<22} {:.1}MB",
                        repo,
                        tag,
                        id,
                        created.chars().take(19).collect::<String>(),
                        size as f64 / 1e6
                    );
                }
            }
        }
        ImageCmd::Rm {
            force,
            images: names,
        } => {
            let mut failed = false;
            for n in names {
                match images.remove(&n, force).await {
                    Ok(lines) => {
                        for (what, x) in lines {
                            println!("{what}: {x}");
                        }
                    }
                    Err(e) => {
                        eprintln!("Error response from daemon: {:#}", anyhow::Error::new(e));
                        failed = true;
                    }
                }
            }
            if failed {
                std::process::exit(1);
            }
        }
        ImageCmd::Tag { source, target } => {
            images.tag(&source, &target).await?;
        }
        ImageCmd::Import {
            file,
            name,
            platform,
            cmd,
        } => {
            let p = platform.as_deref().map(parse_platform).transpose()?;
            let r = images.import(&file, name.as_deref(), cmd, p).await?;
            println!("{}", r.id());
        }
        ImageCmd::Inspect { images: names } => {
            let mut out = Vec::new();
            for n in names {
                let r = images.resolve(&n).await?;
                let mut tags = Vec::new();
                let mut digests = Vec::new();
                for img in mgr.images().await? {
                    if let Ok(o) = images.resolve_record(&img).await {
                        if o.id() == r.id() {
                            if let Ok(rf) = Reference::parse(&img.name) {
                                if !img.name.starts_with("sha256:") {
                                    tags.push(rf.familiar());
                                }
                            }
                            if let Some(d) = img.labels.get("berth.repo-digest") {
                                digests.push(d.clone());
                            }
                        }
                    }
                }
                let size: u64 = r.manifest.layers.iter().map(|l| l.size).sum();
                out.push(serde_json::json!({
                    "Id": r.id(),
                    "RepoTags": tags,
                    "RepoDigests": digests,
                    "Created": r.config.created,
                    "Author": r.config.author,
                    "Architecture": r.config.architecture,
                    "Os": r.config.os,
                    "Variant": r.config.variant,
                    "Config": r.config.config,
                    "RootFS": {"Type": r.config.rootfs.kind, "Layers": r.config.rootfs.diff_ids},
                    "Size": size,
                    "Metadata": {"LastTagTime": r.record.updated_at},
                    "Descriptor": {
                        "mediaType": r.record.target.as_ref().map(|t| t.media_type.clone()),
                        "digest": r.record.target.as_ref().map(|t| t.digest.clone()),
                        "size": r.record.target.as_ref().map(|t| t.size),
                    },
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        ImageCmd::History { image } => {
            let r = images.resolve(&image).await?;
            println!(
                "{:<14} {:<22} {:<45} {:<10} COMMENT",
                "IMAGE", "CREATED", "CREATED BY", "SIZE"
            );
            let mut layer = r.manifest.layers.iter().rev();
            let n = r.config.history.len();
            for (i, h) in r.config.history.iter().rev().enumerate() {
                let size = if h.empty_layer {
                    0
                } else {
                    layer.next().map(|l| l.size).unwrap_or(0)
                };
                let id = if i == 0 {
                    short(r.id())
                } else {
                    "<missing>".into()
                };
                let _ = n;
                println!(
                    "{:<14} {:<22} {:<45} {:<10} {}",
                    id,
                    h.created.chars().take(19).collect::<String>(),
                    h.created_by.chars().take(45).collect::<String>(),
                    format!("{:.1}MB", size as f64 / 1e6),
                    h.comment
                );
            }
        }
        ImageCmd::Save {
            output,
            images: names,
        } => {
            berth_daemon::archive::save(&images, &names, &output).await?;
        }
        ImageCmd::Load { input } => {
            for line in berth_daemon::archive::load(&images, &input, &data_root.join("tmp")).await?
            {
                println!("{line}");
            }
        }
        ImageCmd::Prune => {
            let (dangling, r) = images.prune().await?;
            for d in &dangling {
                println!("Deleted Images:\ndeleted: {d}");
            }
            println!(
                "Total reclaimed space: {:.1}MB ({} blobs, {} snapshots, {} ingests)",
                r.bytes as f64 / 1e6,
                r.blobs.len(),
                r.snapshots.len(),
                r.ingests
            );
        }
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let level = if args.command.is_some() {
        tracing::Level::WARN
    } else {
        args.log_level.parse().unwrap_or(tracing::Level::INFO)
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(args)).context("berthd") {
        eprintln!("{e:#}");
        std::process::exit(1);
    }
}
