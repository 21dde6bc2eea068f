//! Pumping a hijacked connection: the process's output (raw with a terminal, else Docker's
//! 8-byte frames split to stdout/stderr) and our stdin, in raw mode when `-t` on a terminal,
//! with the terminal size sent at start and on every SIGWINCH.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{ApiError, Client};
use crate::term;

/// Copy demultiplexed (or raw) output to stdout/stderr until the stream ends.
pub async fn output<R: tokio::io::AsyncRead + Unpin>(mut r: R, tty: bool) -> std::io::Result<()> {
    let mut out = tokio::io::stdout();
    let mut err = tokio::io::stderr();
    if tty {
        let mut buf = vec![0u8; 32 << 10];
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return out.flush().await;
            }
            out.write_all(&buf[..n]).await?;
            out.flush().await?;
        }
    }
    let mut head = [0u8; 8];
    loop {
        match r.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                out.flush().await?;
                return err.flush().await;
            }
            Err(e) => return Err(e),
        }
        let n = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let mut data = vec![0u8; n];
        r.read_exact(&mut data).await?;
        if head[0] == 2 {
            err.write_all(&data).await?;
            err.flush().await?;
        } else {
            out.write_all(&data).await?;
            out.flush().await?;
        }
    }
}

/// Send the terminal's size to `resize_path` (`/containers/ID/resize` or
/// `/exec/ID/resize`) now and whenever it changes.
pub fn follow_resizes(c: &Client, resize_path: String) {
    let c = c.clone();
    tokio::spawn(async move {
        let send = |c: Client, p: String| async move {
            if let Some((h, w)) = term::size(1).or_else(|| term::size(0)) {
                let _ = c.post(&format!("{p}?h={h}&w={w}"), None).await;
            }
        };
        send(c.clone(), resize_path.clone()).await;
        let Ok(mut sig) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while sig.recv().await.is_some() {
            send(c.clone(), resize_path.clone()).await;
        }
    });
}

/// Run a session on a hijacked connection until the output ends, or the user types the
/// detach keys (ctrl-p ctrl-q) on a terminal: then true.
pub async fn session(
    io: hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>,
    tty: bool,
    stdin: bool,
) -> Result<bool, ApiError> {
    let (rd, mut wr) = tokio::io::split(io);
    let _raw = (tty && stdin && term::is_tty(0))
        .then(term::Raw::enter)
        .flatten();
    let (det_tx, det_rx) = tokio::sync::oneshot::channel::<()>();
    if stdin {
        tokio::spawn(async move {
            let mut input = tokio::io::stdin();
            let mut buf = vec![0u8; 32 << 10];
            // ctrl-p ctrl-q, watched on terminals only (as docker does).
            let keys = [0x10u8, 0x11];
            let mut matched = 0usize;
            loop {
                match input.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut pass = Vec::with_capacity(n);
                        for &b in &buf[..n] {
                            if !tty {
                                pass.push(b);
                            } else if b == keys[matched] {
                                matched += 1;
                                if matched == keys.len() {
                                    let _ = wr.write_all(&pass).await;
                                    let _ = det_tx.send(());
                                    return;
                                }
                            } else {
                                pass.extend_from_slice(&keys[..matched]);
                                matched = 0;
                                if b == keys[0] {
                                    matched = 1;
                                } else {
                                    pass.push(b);
                                }
                            }
                        }
                        if wr.write_all(&pass).await.is_err() {
                            return;
                        }
                    }
                }
            }
            // End of our input: the daemon closes the process's stdin (without a terminal).
            let _ = wr.shutdown().await;
            std::future::pending::<()>().await;
        });
    }
    tokio::select! {
        r = output(rd, tty) => r.map(|()| false).map_err(|e| ApiError {
            status: None,
            message: format!("reading the container's output: {e}"),
        }),
        Ok(()) = det_rx => Ok(true),
    }
}
