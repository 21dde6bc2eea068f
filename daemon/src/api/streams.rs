//! Streams between clients and processes: attach (hijacked `Upgrade: tcp`, before start as
//! the CLI does it), logs, and resize. Exec sessions use the same [`Session`].
//!
//! Output is multiplexed with Docker's 8-byte frame header unless the process has a terminal
//! (a raw stream then). Client input is scanned for the detach keys (ctrl-p ctrl-q unless
//! told otherwise): they end the session and leave the process running.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as AxPath, RawQuery, Request, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_proto::manager as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::url_pairs;
use super::{internal, is_true};
use super::{ApiError, State};
use crate::containers::{find, state_name, task};

/// Docker's stream framing: [stream, 0, 0, 0, size (big endian u32)] + data.
pub fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + data.len());
    v.push(stream);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// A chunk of process output as the client receives it: raw with a terminal, else framed
/// with its stream (1 stdout, 2 stderr).
pub fn encode(o: pb::AttachOutput, tty: bool) -> Vec<u8> {
    if tty {
        return o.data;
    }
    let kind = if o.stream == pb::StreamKind::StreamStderr as i32 {
        2
    } else {
        1
    };
    frame(kind, &o.data)
}

pub fn content_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Docker's `--detach-keys` syntax: comma-separated `ctrl-<c>` or single characters.
pub fn detach_keys(spec: &str) -> Result<Vec<u8>, ApiError> {
    let bad = || ApiError::bad_request(format!("Invalid detach keys ({spec}) provided"));
    let mut out = Vec::new();
    for k in spec.split(',') {
        if let Some(c) = k.strip_prefix("ctrl-") {
            let c = c.as_bytes();
            if c.len() != 1 {
                return Err(bad());
            }
            out.push(match c[0] {
                b'a'..=b'z' => c[0] - b'a' + 1,
                b'@' => 0,
                b'[' => 27,
                b'\\' => 28,
                b']' => 29,
                b'^' => 30,
                b'_' => 31,
                _ => return Err(bad()),
            });
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            return Err(bad());
        }
    }
    Ok(out)
}

/// Finds the detach sequence in client input, holding back a partial match until it is
/// known not to be one.
pub struct Escape {
    keys: Vec<u8>,
    matched: usize,
}

impl Escape {
    pub fn new(keys: Vec<u8>) -> Escape {
        Escape { keys, matched: 0 }
    }

    /// The bytes to pass on, and whether the sequence was completed.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

/// One hijacked client connection bound to a process's stdio.
pub struct Session {
    pub tty: bool,
    /// Read the client's input and pass it to the process.
    pub stdin: bool,
    /// Close the process's stdin when the client's input ends (`StdinOnce` without a
    /// terminal); otherwise the end of input just ends the session.
    pub close_stdin: bool,
    pub detach: Vec<u8>,
}

impl Session {
    /// Copy until the process's output ends, the client detaches or goes away; then run
    /// `finish` (an exec's exit is recorded there) before the connection is closed.
    pub fn spawn<F, B>(
        self,
        upgrade: hyper::upgrade::OnUpgrade,
        mut out: tonic::Streaming<pb::AttachOutput>,
        in_tx: tokio::sync::mpsc::Sender<pb::AttachInput>,
        before: B,
        finish: F,
    ) where
        F: std::future::Future<Output = ()> + Send + 'static,
        B: std::future::Future<Output = Result<Option<Past>, String>> + Send + 'static,
    {
        tokio::spawn(async move {
            let Ok(io) = upgrade.await else { return };
            let io = hyper_util::rt::TokioIo::new(io);
            let (mut rd, mut wr) = tokio::io::split(io);
            // Starting the process after the upgrade: its failure reaches the client on the
            // stream (as dockerd reports a failed exec).
            match before.await {
                Err(msg) => {
                    let msg = format!("{msg}\r\n");
                    let bytes = if self.tty {
                        msg.into_bytes()
                    } else {
                        frame(2, msg.as_bytes())
                    };
                    let _ = wr.write_all(&bytes).await;
                    let _ = wr.shutdown().await;
                    linger(&mut rd).await;
                    return;
                }
                Ok(Some(mut past)) => {
                    while let Some(chunk) = past.recv().await {
                        if wr.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => {}
            }
            let Session {
                tty,
                stdin,
                close_stdin,
                detach,
            } = self;
            let input = async {
                if !stdin {
                    return std::future::pending::<()>().await;
                }
                let mut esc = Escape::new(detach);
                let mut buf = vec![0u8; 32 << 10];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let (pass, detached) = esc.feed(&buf[..n]);
                            if !pass.is_empty() {
                                let m = pb::AttachInput {
                                    input: Some(pb::attach_input::Input::Stdin(pass)),
                                };
                                if in_tx.send(m).await.is_err() {
                                    return std::future::pending().await;
                                }
                            }
                            if detached {
                                return;
                            }
                        }
                    }
                }
                if close_stdin {
                    let _ = in_tx
                        .send(pb::AttachInput {
                            input: Some(pb::attach_input::Input::CloseStdin(true)),
                        })
                        .await;
                    // The output ending ends the session.
                    std::future::pending::<()>().await;
                }
            };
            let output = async {
                while let Ok(Some(o)) = out.message().await {
                    let bytes = encode(o, tty);
                    if wr.write_all(&bytes).await.is_err() {
                        return false;
                    }
                }
                true
            };
            let ended = tokio::select! {
                ended = output => ended,
                _ = input => false,
            };
            if ended {
                finish.await;
            }
            let _ = wr.shutdown().await;
            linger(&mut rd).await;
        });
    }
}

/// After our FIN: read (and drop) what the client still sends until it closes too, for a
/// moment at most. Closing a socket with unread input makes the kernel send a reset, which
/// can overtake the output in flight (the docker CLI then reports "connection reset by
/// peer" and exit code 1 after a `docker exec -it` whose terminal sent one more byte).
async fn linger<R: tokio::io::AsyncRead + Unpin>(rd: &mut R) {
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Start an Attach call to the manager: the first message names the process.
pub async fn open_attach(
    d: &State,
    container_id: &str,
    exec_id: &str,
    stdout: bool,
    stderr: bool,
) -> Result<
    (
        tonic::Streaming<pb::AttachOutput>,
        tokio::sync::mpsc::Sender<pb::AttachInput>,
    ),
    ApiError,
> {
    let (in_tx, in_rx) = tokio::sync::mpsc::channel::<pb::AttachInput>(16);
    in_tx
        .send(pb::AttachInput {
            input: Some(pb::attach_input::Input::Start(pb::AttachStart {
                container_id: container_id.to_string(),
                exec_id: exec_id.to_string(),
                stdout,
                stderr,
            })),
        })
        .await
        .map_err(internal)?;
    let out = d
        .images
        .mgr
        .tasks
        .clone()
        .attach(tokio_stream::wrappers::ReceiverStream::new(in_rx))
        .await?
        .into_inner();
    Ok((out, in_tx))
}

pub fn switching(tty: bool) -> Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONTENT_TYPE, content_type(tty))
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(Body::empty())
        .expect("response")
}

pub async fn attach(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
    mut req: Request,
) -> Result<Response, ApiError> {
    let c = find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let flag = |k: &str| is_true(&query, k);
    let tty = c.doc.config.tty();
    let detach = detach_keys(
        query
            .get("detachKeys")
            .map(String::as_str)
            .filter(|k| !k.is_empty())
            .unwrap_or("ctrl-p,ctrl-q"),
    )?;
    let Some(upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return Err(ApiError::bad_request(
            "attach needs a hijacked connection (Connection: Upgrade, Upgrade: tcp)",
        ));
    };
    let (stdout, stderr) = (flag("stdout"), flag("stderr"));
    // `logs=1`: what the container wrote so far comes first; `stream=0` (dockerd's default
    // when absent): nothing live after it.
    let past = (flag("logs") && crate::containers::logfile::readable(&c))
        .then(|| past_logs(&c, stdout, stderr));
    if !flag("stream") {
        tokio::spawn(async move {
            let Ok(io) = upgrade.await else { return };
            let mut io = hyper_util::rt::TokioIo::new(io);
            // docker-py reads the hijacked socket from under its HTTP parser: bytes that
            // arrive with the 101's headers land in the parser's buffer and are lost to it.
            // dockerd's log reader is slow enough that this never shows; give the client
            // the moment it needs to finish reading the headers.
            if let Some(mut past) = past {
                tokio::time::sleep(Duration::from_millis(30)).await;
                while let Some(chunk) = past.recv().await {
                    if io.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            }
            let _ = io.shutdown().await;
            linger(&mut io).await;
        });
        return Ok(switching(tty));
    }
    let session = Session {
        tty,
        stdin: flag("stdin"),
        close_stdin: !tty && c.doc.config.stdin_once.unwrap_or(false),
        detach,
    };
    // A stopped container (`docker start -a`), or one without a task (its program could
    // not be run when it was created): its next task is attached once it exists, before
    // it starts, so none of its output is missed.
    let t = task(&d, &c.id).await;
    if t.is_none() || state_name(t.as_ref()) == "exited" {
        let (tx, rx) = tokio::sync::oneshot::channel();
        d.attach_waiters
            .lock()
            .unwrap()
            .entry(c.id.clone())
            .or_default()
            .push(tx);
        let (d2, id) = (d.clone(), c.id.clone());
        tokio::spawn(async move {
            let Ok(ready) = rx.await else { return };
            let opened = open_attach(&d2, &id, "", stdout, stderr).await;
            let _ = ready.send(());
            if let Ok((out, in_tx)) = opened {
                session.spawn(upgrade, out, in_tx, async move { Ok(past) }, async {});
            }
        });
        return Ok(switching(tty));
    }
    // Subscribe before answering: the CLI starts the container once it has the 101.
    let (out, in_tx) = open_attach(&d, &c.id, "", stdout, stderr).await?;
    session.spawn(upgrade, out, in_tx, async move { Ok(past) }, async {});
    Ok(switching(tty))
}

/// What an attach sends before the live output: the container's past log, in bounded
/// chunks read as the client takes them.
pub type Past = tokio::sync::mpsc::Receiver<Vec<u8>>;

/// Everything container `c` logged so far on the chosen streams, framed for its stream
/// (raw with a terminal), read from the log files in order on a blocking thread.
fn past_logs(c: &crate::containers::Container, stdout: bool, stderr: bool) -> Past {
    use crate::containers::logfile;
    let path = std::path::PathBuf::from(&c.log_path);
    let format = logfile::format_of(c);
    let tty = c.doc.config.tty();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::task::spawn_blocking(move || {
        let current = std::fs::File::open(&path).ok();
        let len = current
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        logfile::for_each(&path, format, current.as_ref(), len, |recs| {
            let bytes: Vec<u8> = recs
                .iter()
                .filter(|r| (r.stream == "stderr" && stderr) || (r.stream != "stderr" && stdout))
                .flat_map(|r| {
                    if tty {
                        r.line.clone()
                    } else {
                        frame(if r.stream == "stderr" { 2 } else { 1 }, &r.line)
                    }
                })
                .collect();
            bytes.is_empty() || tx.blocking_send(bytes).is_ok()
        });
    });
    rx
}

/// `POST /containers/{id}/resize?h=&w=`.
pub async fn resize(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let c = find(&d, &what).await?;
    resize_process(&d, &c.id, "", q.as_deref()).await
}

pub async fn resize_process(
    d: &State,
    id: &str,
    exec_id: &str,
    q: Option<&str>,
) -> Result<Response, ApiError> {
    let query = q.map(url_pairs).unwrap_or_default();
    let dim = |k: &str| -> Result<u32, ApiError> {
        query
            .get(k)
            .map(|v| v.parse::<u32>())
            .unwrap_or(Ok(0))
            .map_err(|_| ApiError::bad_request(format!("invalid resize parameter {k}")))
    };
    let (h, w) = (dim("h")?, dim("w")?);
    d.images
        .mgr
        .tasks
        .clone()
        .resize(pb::ResizeRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            width: w,
            height: h,
        })
        .await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn logs(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let c = find(&d, &what).await?;
    if !crate::containers::logfile::readable(&c) {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "configured logging driver does not support reading",
        ));
    }
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let flag = |k: &str| is_true(&query, k);
    let (stdout, stderr, follow, timestamps) = (
        flag("stdout"),
        flag("stderr"),
        flag("follow"),
        flag("timestamps"),
    );
    let tail: Option<usize> = query.get("tail").and_then(|t| t.parse().ok());
    let tty = c.doc.config.tty();
    let path = std::path::PathBuf::from(&c.log_path);
    // since/until: seconds since the epoch (fractions ignored); 0 is unset.
    let secs = |k: &str| -> i64 {
        query
            .get(k)
            .and_then(|v| v.split('.').next()?.parse().ok())
            .unwrap_or(0)
    };
    let (since, until) = (secs("since"), secs("until"));
    use crate::containers::logfile::{self, Record};
    let format = logfile::format_of(&c);
    let render = move |r: &Record| -> Option<Vec<u8>> {
        let stream = r.stream.as_str();
        if (stream == "stdout" && !stdout) || (stream == "stderr" && !stderr) {
            return None;
        }
        if since > 0 || until > 0 {
            let t = crate::clock::unix_time(&r.time);
            if t < since || (until > 0 && t > until) {
                return None;
            }
        }
        let mut data = Vec::new();
        if timestamps {
            data.extend_from_slice(r.time.as_bytes());
            data.push(b' ');
        }
        data.extend_from_slice(&r.line);
        Some(if tty {
            data
        } else {
            frame(if stream == "stderr" { 2 } else { 1 }, &data)
        })
    };
    // What was logged so far, read off the disk in a blocking task, a chunk at a time into
    // the (bounded) channel: `tail` reads the current file backwards from its end and
    // older files only as far as needed; without it everything streams through, oldest
    // first. The current file stays open for following: lines written before a removal
    // of the container (and its log) are still read.
    let current = std::fs::File::open(&path).ok();
    let len = current
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map_or(0, |m| m.len());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(16);
    let content_type = content_type(tty);
    let past = {
        let (tx, path) = (tx.clone(), path.clone());
        tokio::task::spawn_blocking(move || -> (Option<std::fs::File>, u64) {
            let send = |recs: Vec<Record>| -> bool {
                let bytes: Vec<u8> = recs.iter().filter_map(render).flatten().collect();
                bytes.is_empty() || tx.blocking_send(Ok(bytes)).is_ok()
            };
            let end = match tail {
                Some(n) => {
                    let (recs, end) = logfile::tail(&path, format, current.as_ref(), len, n);
                    // (Sent in slices: a long tail does not become one buffer twice.)
                    let mut recs = recs.into_iter().peekable();
                    while recs.peek().is_some() {
                        if !send(recs.by_ref().take(1024).collect()) {
                            break;
                        }
                    }
                    end
                }
                None => logfile::for_each(&path, format, current.as_ref(), len, send),
            };
            (current, end)
        })
    };
    if !follow {
        drop(tx);
        drop(past);
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from_stream(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            ))
            .expect("response"));
    }
    tokio::spawn(async move {
        use std::os::unix::fs::MetadataExt;
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let Ok((current, end)) = past.await else {
            return;
        };
        let mut pending: Vec<u8> = Vec::new();
        let mut file = current.map(tokio::fs::File::from_std);
        if let Some(f) = file.as_mut() {
            if f.seek(std::io::SeekFrom::Start(end)).await.is_err() {
                return;
            }
        }
        loop {
            // No task: the container was removed (docker-py's run(remove=True) removes it
            // before reading the followed logs) or is between two runs; either way, done
            // once what was written is sent.
            let running = task(&d, &c.id)
                .await
                .is_some_and(|t| matches!(state_name(Some(&t)), "running" | "paused" | "created"));
            if let Some(f) = file.as_mut() {
                let _ = f.read_to_end(&mut pending).await;
            }
            // Rotated (the path names another file now) or created since: on with the new
            // one, from its start, once the old one is read to its end.
            let inode = |m: std::io::Result<std::fs::Metadata>| m.ok().map(|m| m.ino());
            let now = inode(std::fs::metadata(&path));
            let ours = match &file {
                Some(f) => inode(f.metadata().await),
                None => None,
            };
            if now.is_some() && now != ours {
                if let Ok(mut f) = tokio::fs::File::open(&path).await {
                    let _ = f.read_to_end(&mut pending).await;
                    file = Some(f);
                }
            }
            let (records, used) = logfile::parse(format, &pending);
            pending.drain(..used);
            for r in &records {
                if let Some(b) = render(r) {
                    if tx.send(Ok(b)).await.is_err() {
                        return;
                    }
                }
            }
            if !running {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .expect("response"))
}
