//! `docker cp`: `HEAD`/`GET`/`PUT /containers/{id}/archive`.
//!
//! Paths are resolved inside the container's root with `openat2(RESOLVE_IN_ROOT)` from an
//! open directory — the live root of its init (`/proc/<pid>/root`, which includes its
//! volumes and binds) or, when it is not running, a temporary mount of its snapshot — and
//! every later step is relative to an open fd. A container swapping a path component for a
//! symlink mid-copy (CVE-2018-15664) therefore cannot lead a copy onto the host.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as AxPath, RawQuery, State as AxState};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use berth_proto::manager as pb;

use super::internal;
use super::url_pairs;
use super::{ApiError, State};
use crate::containers::{find, state_name, task};

pub fn routes() -> Router<State> {
    Router::new().route(
        "/containers/{id}/archive",
        get(get_archive).head(get_archive).put(put_archive),
    )
}

/// Where the container's root can be opened.
enum Root {
    /// The running init's root, opened when the request came (see [`live_root`]).
    Live(OwnedFd),
    /// The snapshot's mounts, where to mount them, and the container's volumes and binds
    /// as (source on the host, destination in the container, recursive).
    Snapshot(
        Vec<berth_fstree::mount::Mount>,
        PathBuf,
        Vec<(String, String, bool)>,
    ),
}

async fn root_of(d: &State, c: &crate::containers::Container) -> Result<Root, ApiError> {
    let id = c.id.as_str();
    let t = task(d, id).await;
    if let Some(t) = t.as_ref().filter(|t| t.pid > 0) {
        if matches!(state_name(Some(t)), "running" | "paused" | "created") {
            if let Some(root) = live_root(d, id, t.pid).await? {
                return Ok(Root::Live(root));
            }
        }
    }
    let mounts = d
        .images
        .mgr
        .snapshots
        .clone()
        .mounts(pb::SnapshotRef {
            key: id.to_string(),
        })
        .await?
        .into_inner()
        .mounts
        .into_iter()
        .map(berth_manager::images::grpc::mount_of)
        .collect();
    let tmp = d
        .data_root
        .join("tmp")
        .join(format!("cp-{}", crate::images::unique()));
    let binds = c
        .doc
        .mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m.r#type.as_str(), "volume" | "bind") && !m.source.is_empty())
        .map(|(n, m)| {
            // A volume subpath is mounted from where it is pinned.
            let source = if m.subpath.is_some() {
                crate::containers::mounts::subpath_dir(d, id, n)
                    .display()
                    .to_string()
            } else {
                m.source.clone()
            };
            (source, m.destination.clone(), m.r#type == "bind")
        })
        .collect();
    Ok(Root::Snapshot(mounts, tmp, binds))
}

/// Bind the container's volumes and binds into its mounted snapshot at `dir`, each
/// destination resolved inside the root (a symlinked destination cannot lead onto the
/// host); run `f`; unmount them again. What a stopped container's `docker cp` sees is then
/// what it saw when running.
fn with_binds<T>(
    dir: &Path,
    binds: &[(String, String, bool)],
    f: impl FnOnce(&OwnedFd) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    use berth_fstree::open::open_in_root;
    let open = |p: &Path| -> Result<OwnedFd, ApiError> {
        std::fs::File::open(p)
            .map(OwnedFd::from)
            .map_err(|e| internal(format!("open the container root {}: {e}", p.display())))
    };
    let root = open(dir)?;
    let mut mounted: Vec<String> = Vec::new();
    let mut res = Ok(());
    // Outer mounts first, so that nested destinations land on them.
    let mut sorted: Vec<&(String, String, bool)> = binds.iter().collect();
    sorted.sort_by_key(|(_, dst, _)| dst.matches('/').count());
    for (src, dst, recursive) in sorted {
        let Ok(at) = open_in_root(root.as_raw_fd(), Path::new(dst), libc::O_PATH) else {
            continue;
        };
        let target = format!("/proc/self/fd/{}", at.as_raw_fd());
        let mut flags = nix::mount::MsFlags::MS_BIND;
        if *recursive {
            flags |= nix::mount::MsFlags::MS_REC;
        }
        if let Err(e) = nix::mount::mount(
            Some(src.as_str()),
            target.as_str(),
            None::<&str>,
            flags,
            None::<&str>,
        ) {
            res = Err(internal(format!("mount {src} at {dst} for the copy: {e}")));
            break;
        }
        mounted.push(dst.clone());
    }
    let out = res.and_then(|_| f(&root));
    for dst in mounted.iter().rev() {
        // Opened again, the path is the new mount's root, which is what umount needs.
        if let Ok(at) = open_in_root(root.as_raw_fd(), Path::new(dst), libc::O_PATH) {
            let p = format!("/proc/self/fd/{}", at.as_raw_fd());
            let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
    out
}

/// The root directory of the container's init `pid`, opened now and checked to be that
/// process's: a pidfd is taken first, the root opened, then the task asked again (same
/// pid, still running) and the pidfd checked alive — so a pid reused by another process
/// before or during the opening is caught, and the copy (which may start only after a
/// large body is spooled) works on this fd, never on a path looked up later. None: the
/// init is gone (the container stopped meanwhile).
async fn live_root(d: &State, id: &str, pid: u32) -> Result<Option<OwnedFd>, ApiError> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; nothing else.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if raw < 0 {
        return Ok(None);
    }
    // SAFETY: `raw` is a pidfd just returned to us and owned by nothing else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let root = match std::fs::File::open(format!("/proc/{pid}/root")) {
        Ok(f) => OwnedFd::from(f),
        Err(_) => return Ok(None),
    };
    let same = task(d, id).await.is_some_and(|t| {
        t.pid == pid && matches!(state_name(Some(&t)), "running" | "paused" | "created")
    });
    // SAFETY: signal 0 through a pidfd we own only checks that its process still exists.
    let alive = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    } == 0;
    Ok((same && alive).then_some(root))
}

/// Run `f` with an fd of the container's root directory, on a blocking thread.
async fn with_root<T: Send + 'static>(
    root: Root,
    f: impl FnOnce(&OwnedFd) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || match root {
        Root::Live(fd) => f(&fd),
        Root::Snapshot(mounts, tmp, binds) => {
            berth_fstree::mount::with_mounted(&mounts, &tmp, |dir| with_binds(dir, &binds, f))
                .map_err(internal)?
        }
    })
    .await
    .map_err(internal)?
}

fn not_found(path: &str, c: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Could not find the file {path} in container {c}"),
    )
}

/// Split a container path into its parent directory and last component ("." for `/`).
fn split(path: &str) -> (PathBuf, std::ffi::OsString) {
    let p = Path::new(path);
    let norm: PathBuf = p
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    match (norm.parent(), norm.file_name()) {
        (Some(parent), Some(name)) => (parent.to_path_buf(), name.to_os_string()),
        _ => (PathBuf::from("/"), ".".into()),
    }
}

/// Go's os.FileMode bits, which the CLI reads from the stat header.
fn go_mode(st: &nix::sys::stat::FileStat) -> u32 {
    let perm = st.st_mode & 0o777;
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        _ => 0,
    };
    let mut m = perm | kind;
    if st.st_mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if st.st_mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if st.st_mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

fn rfc3339(secs: i64) -> String {
    crate::clock::rfc3339(secs, 0)
}

async fn get_archive(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    method: Method,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let c = find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let path = query
        .get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad_request("archive: path is required"))?;
    let abs = if path.starts_with('/') {
        path.clone()
    } else {
        format!("/{path}")
    };
    let (parent, name) = split(&abs);
    let root = root_of(&d, &c).await?;
    let head = method == Method::HEAD;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(8);
    let (stat_tx, stat_rx) = tokio::sync::oneshot::channel::<Result<String, ApiError>>();
    let cid = c.id.clone();
    let shown = path.clone();
    let job = with_root(root, move |rootfd| {
        let dir = berth_fstree::open_in_root(
            rootfd.as_raw_fd(),
            &parent,
            libc::O_PATH | libc::O_DIRECTORY,
        );
        let stat = dir.map_err(|_| not_found(&shown, &cid)).and_then(|dir| {
            let st = berth_fstree::diff::stat_at(dir.as_raw_fd(), &name)
                .map_err(|_| not_found(&shown, &cid))?;
            let link = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name.as_os_str())
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let shown_name = if name == "." {
                "/".into()
            } else {
                name.to_string_lossy().into_owned()
            };
            let v = serde_json::json!({
                "name": shown_name,
                "size": st.st_size,
                "mode": go_mode(&st),
                "mtime": rfc3339(st.st_mtime),
                "linkTarget": link,
            });
            Ok((dir, v))
        });
        let (dir, v) = match stat {
            Ok(x) => x,
            Err(e) => {
                let _ = stat_tx.send(Err(e));
                return Ok(());
            }
        };
        let header = base64::engine::general_purpose::STANDARD.encode(v.to_string());
        if stat_tx.send(Ok(header)).is_err() || head {
            return Ok(());
        }
        let mut w = ChannelWriter { tx: tx.clone() };
        let top: &OsStr = if name == "." {
            OsStr::from_bytes(b".")
        } else {
            &name
        };
        if let Err(e) =
            berth_fstree::diff::write_tree(dir.as_raw_fd(), &name, Path::new(top), &mut w)
        {
            let _ = tx.blocking_send(Err(e));
        }
        Ok(())
    });
    tokio::spawn(job);
    let header = stat_rx
        .await
        .map_err(|_| internal("archive: the copy stopped early"))??;
    let mut r = if head {
        StatusCode::OK.into_response()
    } else {
        Response::builder()
            .header(header::CONTENT_TYPE, "application/x-tar")
            .body(Body::from_stream(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            ))
            .expect("response")
    };
    r.headers_mut().insert(
        "X-Docker-Container-Path-Stat",
        HeaderValue::from_str(&header).map_err(internal)?,
    );
    Ok(r)
}

/// A `Write` feeding a response body from a blocking thread.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(b.to_vec()))
            .map_err(|_| std::io::Error::other("the client went away"))?;
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn put_archive(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let c = find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let path = query
        .get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad_request("archive: path is required"))?;
    if c.doc.host_config.readonly_rootfs.unwrap_or(false) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "container rootfs is marked read-only",
        ));
    }
    let root = root_of(&d, &c).await?;
    let tmp = super::request::spool(&d, body).await?;
    let (cid, shown, spooled) = (c.id.clone(), path.clone(), tmp.clone());
    let limits = d.archive_limits;
    let r = with_root(root, move |rootfd| {
        let dir = berth_fstree::open_in_root(
            rootfd.as_raw_fd(),
            Path::new(&shown),
            libc::O_PATH | libc::O_NOFOLLOW,
        )
        .map_err(|_| not_found(&shown, &cid))?;
        let st = nix::sys::stat::fstat(dir.as_raw_fd()).map_err(internal)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(ApiError::bad_request(format!(
                "extraction point is not a directory: {shown}"
            )));
        }
        // Measured first: an archive past a bound is refused before anything is written.
        let f = std::fs::File::open(&spooled).map_err(internal)?;
        berth_fstree::layer::measure(f, &limits).map_err(|e| {
            ApiError::bad_request(format!(
                "copy into {shown}: {}",
                crate::archive::limit_hint(e)
            ))
        })?;
        let f = std::fs::File::open(&spooled).map_err(internal)?;
        let target = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        berth_fstree::layer::extract(f, &target, &limits).map_err(|e| {
            ApiError::bad_request(format!(
                "copy into {shown}: {}",
                crate::archive::limit_hint(e)
            ))
        })?;
        Ok(())
    })
    .await;
    let _ = std::fs::remove_file(&tmp);
    r?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_parent_and_name() {
        assert_eq!(
            split("/etc/passwd"),
            (PathBuf::from("/etc"), "passwd".into())
        );
        assert_eq!(split("/etc/"), (PathBuf::from("/"), "etc".into()));
        assert_eq!(split("/etc/."), (PathBuf::from("/"), "etc".into()));
        assert_eq!(split("/"), (PathBuf::from("/"), ".".into()));
    }
}
