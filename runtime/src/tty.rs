//! A terminal for foreground `run` and `exec -t` without `--console-socket`, like runc: the
//! runtime receives the pty master itself and copies between it and its own stdio, with our
//! terminal in raw mode and its size passed on.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

use crate::error::{Error, Result, SysContext};

/// A connected socket pair: (ours, the one handed to the container as console socket).
pub fn console_pair() -> Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .sys(|| "socketpair for the console".into())
}

/// Receive the pty master the container's init sends over `sock`.
pub fn recv_master(sock: &OwnedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .sys(|| "receive the pty master".into())?;
    for c in msg.cmsgs().sys(|| "read control message".into())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd in our table for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::Init {
        id: String::new(),
        msg: "the console socket carried no pty master".into(),
    })
}

/// Our terminal in raw mode; restored on drop.
pub struct RawMode(Option<Termios>);

impl RawMode {
    /// Put stdin in raw mode if it is a terminal.
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(orig) = tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = orig.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        RawMode(Some(orig))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

/// Copy our stdout's window size to the pty.
pub fn sync_size(master: RawFd) {
    if let Some((rows, cols)) = crate::sys::get_winsize(libc::STDOUT_FILENO) {
        crate::sys::set_winsize(master, rows, cols);
    }
}

/// Start copying stdin → master and master → stdout. The returned handle finishes when the
/// pty is closed on the container side (all slave fds gone).
pub fn proxy(master: OwnedFd) -> Result<std::thread::JoinHandle<()>> {
    let input = master
        .try_clone()
        .map_err(|e| Error::io("dup pty master", "/dev/ptmx", e))?;
    std::thread::spawn(move || {
        let mut out = std::fs::File::from(input);
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    Ok(std::thread::spawn(move || {
        let mut inp = std::fs::File::from(master);
        let mut buf = [0u8; 4096];
        let mut stdout = std::io::stdout();
        // EIO once the last slave fd closes.
        while let Ok(n) = inp.read(&mut buf) {
            if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = stdout.flush();
        }
    }))
}

/// Let the output copier drain what the container wrote last (bounded: a process that
/// inherited the pty may keep it open after the container's init exited).
pub fn finish(out: std::thread::JoinHandle<()>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    while !out.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    if out.is_finished() {
        let _ = out.join();
    }
}
