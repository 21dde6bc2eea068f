//! A process's stdio as the shim holds it. Without a terminal: a pipe per stream (the shim
//! keeps stdin's write end open, so the process never reads EOF until asked), /dev/null for
//! stdin when none was asked for. With a terminal: a console socket the runtime connects to,
//! over which it sends the pty master; output then comes from the master as stdout.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use crate::driver::ChildStdio;
use crate::sys;

/// The shim's ends.
pub struct ShimEnds {
    /// Where stdin bytes go (pipe write end or pty master); None when stdin is closed.
    pub stdin: Option<OwnedFd>,
    /// Output sources: (stream, fd) – stdout and stderr pipes, or the pty master.
    pub outputs: Vec<(crate::jsonlog::Stream, OwnedFd)>,
    /// The pty master, for resizing.
    pub pty: Option<OwnedFd>,
}

/// Pipes for a process without a terminal: (child's ends, shim's ends).
pub fn pipes(stdin: bool) -> std::io::Result<(ChildStdio, ShimEnds)> {
    use crate::jsonlog::Stream;
    let (in_r, in_w) = if stdin {
        let (r, w) = sys::pipe()?;
        (r, Some(w))
    } else {
        (devnull()?, None)
    };
    let (out_r, out_w) = sys::pipe()?;
    let (err_r, err_w) = sys::pipe()?;
    Ok((
        ChildStdio {
            stdin: in_r,
            stdout: out_w,
            stderr: err_w,
        },
        ShimEnds {
            stdin: in_w,
            outputs: vec![(Stream::Stdout, out_r), (Stream::Stderr, err_r)],
            pty: None,
        },
    ))
}

/// /dev/null for all three streams (a process with a terminal ignores the runtime's stdio).
pub fn null_stdio() -> std::io::Result<ChildStdio> {
    Ok(ChildStdio {
        stdin: devnull()?,
        stdout: devnull()?,
        stderr: devnull()?,
    })
}

fn devnull() -> std::io::Result<OwnedFd> {
    Ok(std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into())
}

/// A listening console socket at `path`, removed on drop.
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn bind(path: &Path) -> std::io::Result<ConsoleSocket> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        Ok(ConsoleSocket {
            path: path.to_path_buf(),
            listener,
        })
    }

    /// Accept the runtime's connection and receive the pty master.
    pub async fn receive(&self) -> std::io::Result<OwnedFd> {
        let (stream, _) = self.listener.accept().await?;
        loop {
            stream.readable().await?;
            match stream.try_io(tokio::io::Interest::READABLE, || {
                sys::recv_fd(std::os::fd::AsRawFd::as_raw_fd(&stream))
            }) {
                Ok(fd) => return Ok(fd),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The shim's ends for a terminal: the master is both output and stdin.
pub fn pty_ends(master: OwnedFd, stdin: bool) -> std::io::Result<ShimEnds> {
    let out = master.as_fd().try_clone_to_owned()?;
    let input = if stdin {
        Some(master.as_fd().try_clone_to_owned()?)
    } else {
        None
    };
    Ok(ShimEnds {
        stdin: input,
        outputs: vec![(crate::jsonlog::Stream::Stdout, out)],
        pty: Some(master),
    })
}
