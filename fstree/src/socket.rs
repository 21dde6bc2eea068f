//! A listening unix socket whose node has its mode before anyone can connect.
//!
//! `UnixListener::bind` binds and listens at once, so the node exists, accepting, with the
//! mode the umask gives until a later chmod; a client that connects in between keeps its
//! connection. Here the mode is set between bind and listen: until listen, a connect is
//! refused whatever the mode.

use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::sys::socket::{
    bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};

/// Bind `path` (replacing a stale node), give it `mode` (and group `gid`), then listen.
pub fn listen_unix(path: &Path, mode: u32, gid: Option<u32>) -> std::io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr)?;
    let placed =
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).and_then(|()| {
            match gid {
                Some(g) => std::os::unix::fs::chown(path, None, Some(g)),
                None => Ok(()),
            }
        });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    listen(&fd, Backlog::new(1024).unwrap_or(Backlog::MAXCONN))?;
    // SAFETY: the fd is a bound, listening unix stream socket we own; the listener takes it.
    Ok(unsafe { UnixListener::from_raw_fd(fd.into_raw_fd()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn the_node_has_its_mode_whatever_the_umask() {
        let dir = std::env::temp_dir().join(format!("berth-sock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.sock");
        std::fs::write(&p, b"stale").unwrap();
        let l = listen_unix(&p, 0o600, None).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert!(m.file_type().is_socket());
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        let c = std::os::unix::net::UnixStream::connect(&p).unwrap();
        let (_s, _) = l.accept().unwrap();
        drop(c);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
