//! Starting a shim: validate, detach, serve.
//!
//! `berth-shim --id ID --dir DIR` forks; the child starts a new session and forks again, so the
//! server is re-parented away from whoever started it (to init or the nearest subreaper) and
//! killing the manager or its process group leaves it alone. The first process exits 0 once the
//! server listens on `DIR/shim.sock`, or 1 with the server's error, so the caller can connect
//! right after it returns.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use nix::unistd::{fork, setsid, ForkResult};

use crate::reaper::Reaper;
use crate::service::{Service, ShimService};
use crate::{files, sys, MAX_SOCKET_PATH};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("shim socket path {path} is {len} bytes; a unix socket path holds at most {max}: use a shorter state directory")]
    SocketPathTooLong {
        path: String,
        len: usize,
        max: usize,
    },
    #[error("shim state directory {path}")]
    Dir {
        path: String,
        #[source]
        err: std::io::Error,
    },
    #[error("start shim for {id}: {message}")]
    Start { id: String, message: String },
    #[error("fork")]
    Fork(#[source] nix::Error),
}

/// Detach and serve. Returns in the first process only (Ok when the server is listening).
pub fn start(id: &str, dir: &Path) -> Result<(), Error> {
    let sock = dir.join(files::SOCKET);
    let len = sock.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(Error::SocketPathTooLong {
            path: sock.display().to_string(),
            len,
            max: MAX_SOCKET_PATH,
        });
    }
    std::fs::create_dir_all(dir).map_err(|err| Error::Dir {
        path: dir.display().to_string(),
        err,
    })?;
    let (r, w) = sys::pipe().map_err(|err| Error::Dir {
        path: dir.display().to_string(),
        err,
    })?;
    // SAFETY: called from main before any thread is started; the child only runs our code.
    match unsafe { fork() }.map_err(Error::Fork)? {
        ForkResult::Parent { child } => {
            drop(w);
            let mut msg = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut msg);
            let _ = nix::sys::wait::waitpid(child, None);
            if msg == "ok" {
                Ok(())
            } else {
                Err(Error::Start {
                    id: id.to_string(),
                    message: if msg.is_empty() {
                        "the shim exited before it was ready".to_string()
                    } else {
                        msg
                    },
                })
            }
        }
        ForkResult::Child => {
            drop(r);
            let _ = setsid();
            // SAFETY: still single-threaded.
            match unsafe { fork() } {
                Ok(ForkResult::Parent { .. }) => {
                    // SAFETY: _exit skips atexit handlers and destructors the parent owns.
                    unsafe { libc::_exit(0) }
                }
                Ok(ForkResult::Child) => {}
                Err(e) => {
                    let _ = std::fs::File::from(w).write_all(format!("fork: {e}").as_bytes());
                    // SAFETY: as above.
                    unsafe { libc::_exit(1) }
                }
            }
            let code = match serve(id, dir, &sock, w) {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!("{e:#}");
                    1
                }
            };
            std::process::exit(code)
        }
    }
}

fn serve(id: &str, dir: &Path, sock: &Path, ready: OwnedFd) -> anyhow::Result<()> {
    let mut ready = Some(std::fs::File::from(ready));
    let r = (|| -> anyhow::Result<std::os::unix::net::UnixListener> {
        redirect_stdio(&dir.join(files::SHIM_LOG))?;
        init_tracing();
        sys::set_subreaper()?;
        // SAFETY: setting signal dispositions to ignore installs no handler code.
        unsafe {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        let l = berth_fstree::listen_unix(sock, 0o600, None)
            .map_err(|e| anyhow::anyhow!("bind {}: {e}", sock.display()))?;
        l.set_nonblocking(true)?;
        berth_fstree::write_atomic_until_reboot(
            &dir.join(files::PID),
            std::process::id().to_string().as_bytes(),
            0o644,
        )?;
        Ok(l)
    })();
    let listener = match r {
        Ok(l) => l,
        Err(e) => {
            if let Some(mut w) = ready.take() {
                let _ = w.write_all(format!("{e:#}").as_bytes());
            }
            return Err(e);
        }
    };
    if let Some(mut w) = ready.take() {
        let _ = w.write_all(b"ok");
    }
    // One thread, and a small event batch: an idle shim should cost little memory.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_io_events_per_tick(64)
        .build()?;
    // Every line this shim logs carries its container's id.
    let span = tracing::info_span!("shim", container_id = %id);
    let _entered = span.clone().entered();
    rt.block_on(tracing::Instrument::instrument(
        async move {
            let reaper = Reaper::default();
            tokio::spawn(reaper.clone().run());
            let svc = Arc::new(Service::new(dir, reaper));
            let listener = tokio::net::UnixListener::from_std(listener)?;
            tracing::debug!(id, "serving");
            serve_connections(listener, svc.clone()).await;
            let _ = std::fs::remove_file(dir.join(files::SOCKET));
            anyhow::Ok(())
        },
        span,
    ))
}

/// Accept connections until the service asks to shut down (after Delete), serving each over
/// HTTP/2 with the generated `Shim` service. gRPC needs nothing more: no router (one service),
/// no HTTP/1; so only this much of hyper is linked into (and resident in) every shim.
async fn serve_connections(listener: tokio::net::UnixListener, svc: Arc<Service>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;

    let grpc = berth_proto::shim::shim_server::ShimServer::new(ShimService(svc.clone()));
    let mut shutdown = svc.shutdown.subscribe();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let stream = match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!("accept on shim socket: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(grpc.clone());
                let mut stop = svc.shutdown.subscribe();
                conns.spawn(async move {
                    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    let r = tokio::select! {
                        r = conn.as_mut() => r,
                        _ = async { drop(stop.wait_for(|s| *s).await) } => {
                            // GOAWAY: in-flight calls (the Delete reply) finish, then it closes.
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = r {
                        tracing::debug!("shim connection: {e}");
                    }
                });
            }
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    // Connections close gracefully (the reply to Delete goes out); open attach streams may
    // hold theirs: give them a second.
    drop(listener);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

/// stdin/stdout to /dev/null, stderr (our log) to `log`.
fn redirect_stdio(log: &Path) -> anyhow::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    for (src, dst) in [(&null, 0), (&null, 1), (&log, 2)] {
        nix::unistd::dup2(src.as_raw_fd(), dst)?;
    }
    Ok(())
}

fn init_tracing() {
    let filter = std::env::var("BERTH_SHIM_LOG").unwrap_or_else(|_| "warn".into());
    let level = filter.parse().unwrap_or(tracing::Level::WARN);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}
