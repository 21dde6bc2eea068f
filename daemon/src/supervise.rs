//! berthd's berth-manager: used when one answers at the socket (a manager that outlived a
//! berthd restart, or one given with `--manager`), else started — in its own session, so
//! that stopping or killing berthd leaves it and the containers running — and started
//! again whenever it stops answering.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where berthd's own manager lives.
#[derive(Clone, Debug)]
pub struct ManagerPaths {
    pub socket: PathBuf,
    /// Persistent data (metadata, content, snapshots).
    pub root: PathBuf,
    /// Runtime state (shim sockets): kept short, socket paths are limited to 107 bytes.
    pub state: PathBuf,
    pub log: PathBuf,
}

/// Does something answer at `socket`?
pub async fn answers(socket: &Path) -> bool {
    tokio::net::UnixStream::connect(socket).await.is_ok()
}

fn binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("berth-manager")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("berth-manager"))
}

/// Start a manager and wait until it answers.
pub async fn start(p: &ManagerPaths) -> anyhow::Result<u32> {
    for d in [&p.root, &p.state] {
        std::fs::create_dir_all(d).map_err(|e| anyhow::anyhow!("create {}: {e}", d.display()))?;
    }
    if let Some(d) = p.socket.parent() {
        std::fs::create_dir_all(d).map_err(|e| anyhow::anyhow!("create {}: {e}", d.display()))?;
    }
    let _ = std::fs::remove_file(&p.socket);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p.log)
        .map_err(|e| anyhow::anyhow!("open {}: {e}", p.log.display()))?;
    let mut cmd = std::process::Command::new(binary());
    cmd.arg("--address")
        .arg(&p.socket)
        .arg("--root")
        .arg(&p.root)
        .arg("--state")
        .arg(&p.state)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // Its own session: signals meant for berthd (a terminal's ctrl-c, systemd's stop with
    // KillMode=process) do not reach it.
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("start {}: {e}", binary().display()))?;
    let pid = child.id();
    // Reap it in the background if it exits while we run.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    for _ in 0..200 {
        if answers(&p.socket).await {
            tracing::info!(pid, socket = %p.socket.display(), "started berth-manager");
            return Ok(pid);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!(
        "berth-manager (pid {pid}) did not answer at {} within 5 s; see {}",
        p.socket.display(),
        p.log.display()
    )
}

/// Use the manager answering at the socket, or start one.
pub async fn ensure(p: &ManagerPaths) -> anyhow::Result<()> {
    if answers(&p.socket).await {
        tracing::info!(socket = %p.socket.display(), "using the running berth-manager");
        return Ok(());
    }
    start(p).await.map(|_| ())
}

/// Restart the manager whenever it stops answering.
pub fn watch(p: ManagerPaths) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if answers(&p.socket).await {
                continue;
            }
            tracing::warn!("berth-manager stopped answering; starting it again");
            if let Err(e) = start(&p).await {
                tracing::error!("{e:#}");
            }
        }
    });
}
