//! The command-line client: run a rootfs or bundle through manager and shim, and
//! ps/logs/exec/kill/rm/wait/events — Berth without the daemon.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use berth_proto::manager as pb;
use berth_proto::manager::containers_client::ContainersClient;
use berth_proto::manager::events_client::EventsClient;
use berth_proto::manager::tasks_client::TasksClient;
use clap::{Args, Subcommand};
use tokio::io::AsyncReadExt;
use tonic::transport::Channel;

/// A gRPC channel to berth-manager listening on the unix socket `address` (what berthd and
/// this client dial).
pub async fn channel(address: &Path) -> Result<Channel, tonic::transport::Error> {
    berth_shim::client::channel(address).await
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a container from a rootfs or bundle and run it.
    Run(RunArgs),
    /// List tasks.
    Ps,
    /// Print a container's log (json-file), stdout and stderr to ours.
    Logs {
        /// Keep printing until the task exits.
        #[arg(short, long)]
        follow: bool,
        id: String,
    },
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Send a signal to a container's init (or all its processes).
    Kill {
        /// Signal name or number.
        #[arg(short, long, default_value = "TERM")]
        signal: String,
        #[arg(long)]
        all: bool,
        id: String,
    },
    /// Delete a stopped task and its container (-f: kill it first).
    Rm {
        #[arg(short, long)]
        force: bool,
        ids: Vec<String>,
    },
    /// Attach to a running container's stdio (forwarding our stdin); exits with its status.
    Attach {
        id: String,
    },
    /// Freeze / thaw all processes of a container.
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    /// Print a container's resource usage as JSON.
    Stats {
        id: String,
    },
    /// Wait for a task to exit; prints and exits with its status.
    Wait {
        id: String,
    },
    /// Print events as JSON lines.
    Events,
    /// Write a container's filesystem as a tar archive (stdout unless -o).
    Export {
        #[arg(short, long)]
        output: Option<PathBuf>,
        id: String,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// Root filesystem directory (a spec with Docker's defaults is generated).
    #[arg(long, conflicts_with_all = ["bundle", "image"])]
    rootfs: Option<PathBuf>,
    /// An image in the manager's store, by its full name (e.g. docker.io/library/busybox:latest):
    /// unpacked, a snapshot prepared on it as the container's layer, its config applied.
    #[arg(long, conflicts_with = "bundle")]
    image: Option<String>,
    /// OCI bundle directory (its config.json is used as it is).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Runtime: berth-runtime (default), runc, crun, or a path.
    #[arg(long, default_value = "")]
    runtime: String,
    /// Return once started; print the id.
    #[arg(short, long)]
    detach: bool,
    /// Allocate a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Keep stdin open and forward ours.
    #[arg(short, long)]
    interactive: bool,
    /// Delete the task and container after it exits.
    #[arg(long)]
    rm: bool,
    /// KEY=VALUE for the environment.
    #[arg(short, long)]
    env: Vec<String>,
    /// User (name, uid, name:group, uid:gid), resolved in the rootfs.
    #[arg(short, long)]
    user: Option<String>,
    /// Write the json-file log here instead of under the manager's --root.
    #[arg(long)]
    log_path: Option<PathBuf>,
    /// Rotate the log at this many bytes.
    #[arg(long, default_value_t = 0)]
    log_max_size: u64,
    /// Keep this many log files.
    #[arg(long, default_value_t = 1)]
    log_max_files: u32,
    /// Memory limit (bytes, or with a k/m/g suffix as Docker's -m); swap is not allowed on top.
    #[arg(short, long, value_parser = parse_bytes)]
    memory: Option<i64>,
    /// linux.cgroupsPath for the container (default /berth/<id>).
    #[arg(long)]
    cgroup: Option<String>,
    /// Label KEY=VALUE.
    #[arg(short, long)]
    label: Vec<String>,
    id: String,
    /// Command and arguments (default: the bundle's, or sh).
    #[arg(trailing_var_arg = true)]
    args: Vec<String>,
}

impl RunArgs {
    /// The container options these flags ask for (Docker's defaults for the rest).
    fn options(&self) -> crate::oci::Options {
        crate::oci::Options {
            args: (!self.args.is_empty()).then(|| self.args.clone()),
            env: self.env.clone(),
            tty: self.tty,
            user: self.user.clone(),
            cgroups_path: self.cgroup.clone(),
            memory: self.memory,
            memory_swap: self.memory,
            ..Default::default()
        }
    }
}

#[derive(Args)]
pub struct ExecArgs {
    #[arg(short, long)]
    tty: bool,
    #[arg(short, long)]
    interactive: bool,
    #[arg(short, long)]
    detach: bool,
    /// Exec id (default: a generated one).
    #[arg(long)]
    exec_id: Option<String>,
    #[arg(short, long)]
    env: Vec<String>,
    id: String,
    #[arg(trailing_var_arg = true, required = true)]
    args: Vec<String>,
}

struct Clients {
    containers: ContainersClient<Channel>,
    tasks: TasksClient<Channel>,
    events: EventsClient<Channel>,
    content: berth_proto::manager::content_client::ContentClient<Channel>,
    images: berth_proto::manager::images_client::ImagesClient<Channel>,
    snapshots: berth_proto::manager::snapshots_client::SnapshotsClient<Channel>,
}

async fn dial(address: &Path) -> Result<Clients> {
    let ch = channel(address)
        .await
        .with_context(|| format!("connect to berth-manager at {}", address.display()))?;
    Ok(Clients {
        containers: ContainersClient::new(ch.clone()),
        tasks: TasksClient::new(ch.clone()),
        events: EventsClient::new(ch.clone()),
        content: berth_proto::manager::content_client::ContentClient::new(ch.clone()),
        images: berth_proto::manager::images_client::ImagesClient::new(ch.clone()),
        snapshots: berth_proto::manager::snapshots_client::SnapshotsClient::new(ch),
    })
}

fn status_msg(s: tonic::Status) -> anyhow::Error {
    anyhow!("{}", s.message())
}

/// Run one client command; returns the process exit code.
pub async fn run(address: &Path, cmd: Command) -> Result<i32> {
    let mut c = dial(address).await?;
    match cmd {
        Command::Run(a) => run_container(&mut c, a).await,
        Command::Ps => {
            let tasks = c
                .tasks
                .list(pb::Empty {})
                .await
                .map_err(status_msg)?
                .into_inner()
                .tasks;
            println!("{:<24} {:>8} {:<8} {:>6}", "ID", "PID", "STATUS", "EXIT");
            for t in tasks {
                let status = pb::Status::try_from(t.status)
                    .map(|s| s.as_str_name().trim_start_matches("STATUS_").to_lowercase())
                    .unwrap_or_default();
                let exit = if t.status == pb::Status::Stopped as i32 {
                    t.exit_status.to_string()
                } else {
                    String::new()
                };
                println!("{:<24} {:>8} {:<8} {:>6}", t.id, t.pid, status, exit);
            }
            Ok(0)
        }
        Command::Logs { follow, id } => logs(&mut c, &id, follow).await,
        Command::Exec(a) => exec(&mut c, a).await,
        Command::Kill { signal, all, id } => {
            c.tasks
                .kill(pb::KillRequest {
                    container_id: id,
                    exec_id: String::new(),
                    signal: parse_signal(&signal)?,
                    all,
                })
                .await
                .map_err(status_msg)?;
            Ok(0)
        }
        Command::Rm { force, ids } => {
            let mut code = 0;
            for id in ids {
                if let Err(e) = remove(&mut c, &id, force).await {
                    eprintln!("berth-manager: rm {id}: {e:#}");
                    code = 1;
                }
            }
            Ok(code)
        }
        Command::Pause { id } => {
            c.tasks
                .pause(pb::ContainerRef { id })
                .await
                .map_err(status_msg)?;
            Ok(0)
        }
        Command::Resume { id } => {
            c.tasks
                .resume(pb::ContainerRef { id })
                .await
                .map_err(status_msg)?;
            Ok(0)
        }
        Command::Stats { id } => {
            let s = c
                .tasks
                .stats(pb::ContainerRef { id })
                .await
                .map_err(status_msg)?
                .into_inner();
            println!(
                "{}",
                serde_json::json!({
                    "memory_usage": s.memory_usage, "memory_limit": s.memory_limit,
                    "cpu_usage_ns": s.cpu_usage_ns, "pids_current": s.pids_current,
                })
            );
            Ok(0)
        }
        Command::Attach { id } => attach(&mut c, &id, "", false, true, false).await,
        Command::Wait { id } => {
            let r = c
                .tasks
                .wait(pb::ProcessRef {
                    container_id: id,
                    exec_id: String::new(),
                })
                .await
                .map_err(status_msg)?
                .into_inner();
            println!("{}", r.exit_status);
            Ok(r.exit_status as i32)
        }
        Command::Export { output, id } => {
            let mut s = c
                .containers
                .export(pb::ContainerRef { id: id.clone() })
                .await
                .map_err(status_msg)?
                .into_inner();
            let mut out: Box<dyn Write> = match &output {
                Some(p) => Box::new(
                    std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            while let Some(chunk) = s.message().await.map_err(status_msg)? {
                out.write_all(&chunk.data)?;
            }
            out.flush()?;
            Ok(0)
        }
        Command::Events => {
            let mut s = c
                .events
                .subscribe(pb::SubscribeRequest { topics: vec![] })
                .await
                .map_err(status_msg)?
                .into_inner();
            while let Some(e) = s.message().await.map_err(status_msg)? {
                let line = serde_json::json!({
                    "timestamp": e.timestamp, "topic": e.topic, "id": e.id,
                    "exec_id": e.exec_id, "pid": e.pid, "exit_status": e.exit_status,
                    "error": e.error,
                });
                println!("{line}");
                let _ = std::io::stdout().flush();
            }
            Ok(0)
        }
    }
}

pub fn parse_signal(s: &str) -> Result<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    let sig: nix::sys::signal::Signal =
        name.parse().map_err(|_| anyhow!("unknown signal {s:?}"))?;
    Ok(sig as u32)
}

async fn remove(c: &mut Clients, id: &str, force: bool) -> Result<()> {
    let task = c.tasks.get(pb::ContainerRef { id: id.into() }).await;
    if let Ok(t) = task {
        let t = t.into_inner();
        if t.status == pb::Status::Unknown as i32 {
            bail!("container {id} is being created (or its shim does not answer): try again");
        }
        if t.status != pb::Status::Stopped as i32 && t.status != pb::Status::Created as i32 {
            if !force {
                bail!("container {id} is running: stop it or use -f");
            }
            let killed = c
                .tasks
                .kill(pb::KillRequest {
                    container_id: id.into(),
                    exec_id: String::new(),
                    signal: 9,
                    all: false,
                })
                .await;
            if let Err(s) = killed {
                // Already finished is fine; anything else would leave us waiting forever.
                if s.code() != tonic::Code::NotFound {
                    return Err(status_msg(s));
                }
            }
            c.tasks
                .wait(pb::ProcessRef {
                    container_id: id.into(),
                    exec_id: String::new(),
                })
                .await
                .map_err(status_msg)?;
        }
        c.tasks
            .delete(pb::ProcessRef {
                container_id: id.into(),
                exec_id: String::new(),
            })
            .await
            .map_err(status_msg)?;
    }
    c.containers
        .delete(pb::ContainerRef { id: id.into() })
        .await
        .map_err(status_msg)?;
    Ok(())
}

/// A size as Docker's `-m` takes it: bytes, or a number with b, k, m or g (powers of 1024).
fn parse_bytes(s: &str) -> std::result::Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.chars().last() {
        Some('b') => (&t[..t.len() - 1], 1),
        Some('k') => (&t[..t.len() - 1], 1 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t.as_str(), 1),
    };
    num.parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?} is not a size (bytes, or a number with b, k, m or g)"))
}

/// A whole blob from the manager's content store.
async fn read_blob(c: &mut Clients, digest: &str) -> Result<Vec<u8>> {
    let mut s = c
        .content
        .read(pb::ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
        })
        .await
        .map_err(status_msg)?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = s.message().await.map_err(status_msg)? {
        out.extend_from_slice(&chunk.data);
    }
    Ok(out)
}

/// The run-relevant part of image `name`'s config (this host's platform).
async fn image_config(c: &mut Clients, name: &str) -> Result<crate::oci::ImageConfig> {
    use crate::images::manifest;
    let img = c
        .images
        .get(pb::ImageRef {
            name: name.to_string(),
        })
        .await
        .map_err(status_msg)?
        .into_inner();
    let t = img.target.unwrap_or_default();
    let (mut digest, mut mt) = (t.digest, t.media_type);
    let platform = crate::images::host_platform();
    for _ in 0..4 {
        let bytes = read_blob(c, &digest).await?;
        if mt.is_empty() {
            mt = manifest::sniff(&bytes);
        }
        if manifest::is_index(&mt) {
            let idx = manifest::parse_index(&bytes, &digest)?;
            let e = manifest::choose(&idx, &platform)
                .ok_or_else(|| anyhow!("image {name}: no manifest for {platform}"))?;
            digest = e.digest.clone();
            mt = e.media_type.clone();
            continue;
        }
        let m = manifest::parse_manifest(&bytes, &digest)?;
        let cfg: manifest::ImageConfig =
            serde_json::from_slice(&read_blob(c, &m.config.digest).await?)
                .with_context(|| format!("image {name}: config {}", m.config.digest))?;
        return Ok((&cfg.config.unwrap_or_default()).into());
    }
    bail!("image {name}: indexes nest too deep")
}

/// Unpack `image`, prepare snapshot `id` on it, and generate the spec with its config (the
/// snapshot is mounted on a temporary directory meanwhile, to read /etc/passwd and group).
async fn spec_from_image(c: &mut Clients, a: &RunArgs, image: &str) -> Result<serde_json::Value> {
    let chain = c
        .images
        .unpack(pb::UnpackRequest {
            name: image.to_string(),
            lease: String::new(),
        })
        .await
        .map_err(status_msg)?
        .into_inner()
        .chain_id;
    let cfg = image_config(c, image).await?;
    let mounts = c
        .snapshots
        .prepare(pb::PrepareSnapshotRequest {
            key: a.id.clone(),
            parent: chain,
            labels: Default::default(),
        })
        .await
        .map_err(status_msg)?
        .into_inner()
        .mounts;
    let mounts: Vec<crate::images::snapshots::Mount> = mounts
        .into_iter()
        .map(crate::images::grpc::mount_of)
        .collect();
    let tmp = std::env::temp_dir().join(format!("berth-rootfs-{}-{}", a.id, std::process::id()));
    let spec = crate::images::snapshots::with_mounted(&mounts, &tmp, |root| {
        crate::oci::generate(&a.id, root, &cfg, &a.options())
            .map(|s| serde_json::to_value(s).expect("a spec is JSON"))
            .with_context(|| format!("container {}", a.id))
    })
    .map_err(anyhow::Error::from)
    .and_then(|r| r);
    if spec.is_err() {
        let _ = c
            .snapshots
            .remove(pb::SnapshotRef { key: a.id.clone() })
            .await;
    }
    spec
}

async fn run_container(c: &mut Clients, a: RunArgs) -> Result<i32> {
    if let Some(image) = a.image.clone() {
        let spec = spec_from_image(c, &a, &image).await?;
        return create_and_run(c, a, spec, String::new(), image).await;
    }
    let (spec, rootfs) = match (&a.rootfs, &a.bundle) {
        (Some(r), _) => {
            let r = std::fs::canonicalize(r).with_context(|| format!("rootfs {}", r.display()))?;
            let image = crate::oci::ImageConfig {
                cmd: vec!["sh".into()],
                ..Default::default()
            };
            let spec = crate::oci::generate(&a.id, &r, &image, &a.options())
                .map(|s| serde_json::to_value(s).expect("a spec is JSON"))
                .with_context(|| format!("container {}", a.id))?;
            (spec, r.display().to_string())
        }
        (None, Some(b)) => {
            let b = std::fs::canonicalize(b).with_context(|| format!("bundle {}", b.display()))?;
            let text = std::fs::read_to_string(b.join("config.json"))
                .with_context(|| format!("read {}/config.json", b.display()))?;
            let mut spec: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}/config.json", b.display()))?;
            let root = spec["root"]["path"]
                .as_str()
                .unwrap_or("rootfs")
                .to_string();
            let root = if Path::new(&root).is_absolute() {
                PathBuf::from(root)
            } else {
                b.join(root)
            };
            if !a.args.is_empty() {
                spec["process"]["args"] = serde_json::json!(a.args);
            }
            if let Some(cg) = &a.cgroup {
                spec["linux"]["cgroupsPath"] = cg.clone().into();
            }
            if let Some(m) = a.memory {
                spec["linux"]["resources"]["memory"] = serde_json::json!({"limit": m, "swap": m});
            }
            for e in &a.env {
                if let Some(env) = spec["process"]["env"].as_array_mut() {
                    env.push(e.clone().into());
                }
            }
            (spec, root.display().to_string())
        }
        (None, None) => bail!("run: give --rootfs DIR or --bundle DIR"),
    };
    create_and_run(c, a, spec, rootfs, String::new()).await
}

async fn create_and_run(
    c: &mut Clients,
    a: RunArgs,
    spec: serde_json::Value,
    rootfs: String,
    image: String,
) -> Result<i32> {
    let labels = a
        .label
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("label {l:?} is not KEY=VALUE"))
        })
        .collect::<Result<_>>()?;
    let created_container = c
        .containers
        .create(pb::CreateContainerRequest {
            container: Some(pb::Container {
                id: a.id.clone(),
                labels,
                spec: serde_json::to_vec(&spec)?,
                rootfs,
                runtime: Some(pb::Runtime {
                    name: a.runtime.clone(),
                    root: String::new(),
                }),
                log: Some(pb::LogConfig {
                    path: a
                        .log_path
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    max_size: a.log_max_size,
                    max_files: a.log_max_files,
                    disabled: false,
                    ..Default::default()
                }),
                snapshot_key: if image.is_empty() {
                    String::new()
                } else {
                    a.id.clone()
                },
                image: image.clone(),
                ..Default::default()
            }),
        })
        .await;
    if let Err(s) = created_container {
        if !image.is_empty() {
            // The snapshot prepared for it would otherwise be left behind.
            let _ = c
                .snapshots
                .remove(pb::SnapshotRef { key: a.id.clone() })
                .await;
        }
        return Err(status_msg(s));
    }
    let created = c
        .tasks
        .create(pb::CreateTaskRequest {
            container_id: a.id.clone(),
            terminal: a.tty,
            stdin: a.interactive,
        })
        .await;
    // Like `docker run`, a container whose task failed to start is kept (rm removes it).
    created.map_err(status_msg)?;
    if a.detach {
        c.tasks
            .start(pb::ProcessRef {
                container_id: a.id.clone(),
                exec_id: String::new(),
            })
            .await
            .map_err(status_msg)?;
        println!("{}", a.id);
        return Ok(0);
    }
    let code = attach(c, &a.id, "", a.tty, a.interactive, true).await?;
    if a.rm {
        remove(c, &a.id, true).await?;
    }
    Ok(code)
}

async fn exec(c: &mut Clients, a: ExecArgs) -> Result<i32> {
    let exec_id = a
        .exec_id
        .clone()
        .unwrap_or_else(|| format!("exec-{}-{}", std::process::id(), now_nanos()));
    let process = serde_json::json!({
        "args": a.args,
        "env": a.env,
        "terminal": a.tty,
    });
    c.tasks
        .exec(pb::ExecRequest {
            container_id: a.id.clone(),
            exec_id: exec_id.clone(),
            process: serde_json::to_vec(&process)?,
            terminal: a.tty,
            stdin: a.interactive,
            inherit: true,
        })
        .await
        .map_err(status_msg)?;
    if a.detach {
        c.tasks
            .start(pb::ProcessRef {
                container_id: a.id.clone(),
                exec_id: exec_id.clone(),
            })
            .await
            .map_err(status_msg)?;
        println!("{exec_id}");
        return Ok(0);
    }
    let code = attach(c, &a.id, &exec_id, a.tty, a.interactive, true).await?;
    let _ = c
        .tasks
        .delete(pb::ProcessRef {
            container_id: a.id,
            exec_id,
        })
        .await;
    Ok(code)
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Attach to a process (and start it if `start`), copy its output (and our stdin), wait for it.
async fn attach(
    c: &mut Clients,
    id: &str,
    exec_id: &str,
    tty: bool,
    interactive: bool,
    start: bool,
) -> Result<i32> {
    use pb::attach_input::Input;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::AttachInput>(16);
    tx.send(pb::AttachInput {
        input: Some(Input::Start(pb::AttachStart {
            container_id: id.into(),
            exec_id: exec_id.into(),
            stdout: true,
            stderr: true,
        })),
    })
    .await?;
    let mut out = c
        .tasks
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(status_msg)?
        .into_inner();
    let _raw = if tty { RawTerminal::enter() } else { None };
    if tty {
        if let Some((w, h)) = terminal_size() {
            let _ = tx
                .send(pb::AttachInput {
                    input: Some(Input::Resize(pb::Resize {
                        width: w,
                        height: h,
                    })),
                })
                .await;
        }
    }
    if start {
        c.tasks
            .start(pb::ProcessRef {
                container_id: id.into(),
                exec_id: exec_id.into(),
            })
            .await
            .map_err(status_msg)?;
    }
    if interactive {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 8192];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx
                            .send(pb::AttachInput {
                                input: Some(Input::CloseStdin(true)),
                            })
                            .await;
                        break;
                    }
                    Ok(n) => {
                        if tx
                            .send(pb::AttachInput {
                                input: Some(Input::Stdin(buf[..n].to_vec())),
                            })
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
    }
    let mut broken = false;
    loop {
        let chunk = match out.message().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(s) => {
                broken = true;
                eprintln!("berth-manager: attach {id}: {}", s.message());
                break;
            }
        };
        if chunk.stream == pb::StreamKind::StreamStderr as i32 {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(&chunk.data);
            let _ = e.flush();
        } else {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(&chunk.data);
            let _ = o.flush();
        }
    }
    drop(tx);
    if broken {
        return Ok(255);
    }
    let r = c
        .tasks
        .wait(pb::ProcessRef {
            container_id: id.into(),
            exec_id: exec_id.into(),
        })
        .await
        .map_err(status_msg)?
        .into_inner();
    Ok(r.exit_status as i32)
}

async fn logs(c: &mut Clients, id: &str, follow: bool) -> Result<i32> {
    let ctr = c
        .containers
        .get(pb::ContainerRef { id: id.into() })
        .await
        .map_err(status_msg)?
        .into_inner();
    let path = PathBuf::from(ctr.log.map(|l| l.path).unwrap_or_default());
    if path.as_os_str().is_empty() {
        bail!("container {id} has no log");
    }
    // Rotated files first, oldest (highest number) first.
    let mut files = Vec::new();
    for n in (1..100).rev() {
        let mut p = path.clone().into_os_string();
        p.push(format!(".{n}"));
        let p = PathBuf::from(p);
        if p.exists() {
            files.push(p);
        }
    }
    for f in &files {
        print_entries(&std::fs::read(f).unwrap_or_default());
    }
    let mut offset = 0usize;
    loop {
        let data = std::fs::read(&path).unwrap_or_default();
        if data.len() > offset {
            // Only complete lines.
            let end = data[offset..]
                .iter()
                .rposition(|b| *b == b'\n')
                .map(|p| offset + p + 1)
                .unwrap_or(offset);
            print_entries(&data[offset..end]);
            offset = end;
        } else if data.len() < offset {
            offset = 0; // rotated
            continue;
        }
        if !follow {
            break;
        }
        let t = c.tasks.get(pb::ContainerRef { id: id.into() }).await;
        let stopped = t.map_or(true, |t| {
            t.into_inner().status == pb::Status::Stopped as i32
        });
        if stopped {
            let data = std::fs::read(&path).unwrap_or_default();
            if data.len() <= offset {
                break;
            }
            continue;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok(0)
}

fn print_entries(data: &[u8]) {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let text = v["log"].as_str().unwrap_or_default();
        if v["stream"] == "stderr" {
            let _ = err.write_all(text.as_bytes());
        } else {
            let _ = out.write_all(text.as_bytes());
        }
    }
    let _ = out.flush();
    let _ = err.flush();
}

fn terminal_size() -> Option<(u32, u32)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the pointer, which lives across the call.
    let r = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some((ws.ws_col as u32, ws.ws_row as u32))
}

/// Our terminal in raw mode while attached with a tty; restored on drop.
struct RawTerminal {
    saved: nix::sys::termios::Termios,
}

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_bytes("16m"), Ok(16 << 20));
        assert_eq!(super::parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(super::parse_bytes("4096"), Ok(4096));
        assert!(super::parse_bytes("-1").is_err());
        assert!(super::parse_bytes("12q").unwrap_err().contains("\"12q\""));
    }
}
