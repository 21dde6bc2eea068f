//! A message channel between the runtime and the process it forked (a SOCK_SEQPACKET pair):
//! each send is one message, and the peer's exit reads as end-of-stream.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use crate::error::{Error, Result, SysContext};

/// One end of the channel.
pub struct Channel(pub OwnedFd);

/// A connected pair (parent end, child end).
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .sys(|| "socketpair for the init channel".into())?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    /// Send one message.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        nix::sys::socket::send(
            self.0.as_raw_fd(),
            msg,
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        )
        .sys(|| "send on init channel".into())?;
        Ok(())
    }

    /// Receive one message; `None` when the peer is gone.
    pub fn recv(&self) -> Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 65536];
        loop {
            match nix::sys::socket::recv(
                self.0.as_raw_fd(),
                &mut buf,
                nix::sys::socket::MsgFlags::empty(),
            ) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(Some(buf));
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::ECONNRESET) => return Ok(None),
                Err(e) => return Err(Error::sys("receive on init channel", e)),
            }
        }
    }

    /// Receive and require exactly `want`.
    pub fn expect(&self, want: &[u8]) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(m) => Err(Error::Init {
                id: String::new(),
                msg: format!(
                    "unexpected message {:?} (wanted {:?})",
                    String::from_utf8_lossy(&m),
                    String::from_utf8_lossy(want)
                ),
            }),
            None => Err(Error::Init {
                id: String::new(),
                msg: "the runtime went away".into(),
            }),
        }
    }
}
