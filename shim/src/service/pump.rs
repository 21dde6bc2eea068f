//! The output pump: one process's stdout or stderr copied to the container's log (the
//! init's) and to every attached client, until the stream closes.

use super::*;

/// Copy one output stream: to the log (the init's) and to every attached client.
pub(super) async fn pump(
    svc: Arc<Service>,
    p: Arc<Proc>,
    stream: LogStream,
    rx: tokio::net::unix::pipe::Receiver,
    log: Option<Arc<Mutex<Option<JsonLog>>>>,
    open: Arc<AtomicU32>,
) {
    let kind = match stream {
        LogStream::Stdout => pb::StreamKind::StreamStdout,
        LogStream::Stderr => pb::StreamKind::StreamStderr,
    };
    loop {
        // Wait first, then read into a stack buffer: an idle process's pumps then hold no
        // buffer at all while they wait (the buffer is not part of the future's state).
        if rx.readable().await.is_err() {
            break;
        }
        let mut buf = [0u8; CHUNK];
        let n = match rx.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            // A pty master reads EIO once the last slave is closed: that is its EOF.
            Err(_) => break,
        };
        let data = &buf[..n];
        if let Some(log) = &log {
            let r = log
                .lock()
                .unwrap()
                .as_mut()
                .map(|l| l.write(stream, data))
                .unwrap_or(Ok(()));
            note_log_result(&svc, r);
        }
        fan_out(&p, kind, data).await;
    }
    if let Some(log) = &log {
        let r = log
            .lock()
            .unwrap()
            .as_mut()
            .map(|l| l.flush(stream))
            .unwrap_or(Ok(()));
        note_log_result(&svc, r);
    }
    if open.fetch_sub(1, Ordering::SeqCst) == 1 {
        // Last stream: attached clients see the end once they have read what is queued.
        p.output.lock().unwrap().take();
        p.io_done.send_replace(true);
    }
}

/// Every attached client gets every chunk, in order. An exec's clients are waited for
/// (backpressure: the exec's output pipe fills and the process waits, as with a pipe);
/// the init's are not — the container must not wait on a client, and its log keeps
/// everything — so a client more than [`FANOUT_INIT`] chunks behind is cut off (its stream
/// ends; said in the shim's log), never silently skipped past. A client that went away is
/// dropped either way.
async fn fan_out(p: &Proc, kind: pb::StreamKind, data: &[u8]) {
    let subs: Vec<tokio::sync::mpsc::Sender<Output>> = match p.output.lock().unwrap().as_ref() {
        Some(s) if !s.is_empty() => s.clone(),
        _ => return,
    };
    let mut gone = Vec::new();
    for tx in &subs {
        let item = (kind, data.to_vec());
        let ok = if p.exec_id.is_empty() {
            match tx.try_send(item) {
                Ok(()) => true,
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(
                        "an attached client fell {FANOUT_INIT} chunks behind the container's output: cut off (the log has everything)"
                    );
                    false
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
            }
        } else {
            tx.send(item).await.is_ok()
        };
        if !ok {
            gone.push(tx.clone());
        }
    }
    if !gone.is_empty() {
        if let Some(s) = p.output.lock().unwrap().as_mut() {
            s.retain(|t| !gone.iter().any(|g| g.same_channel(t)));
        }
    }
}

/// A failing log does not stop the container: report the first failure, and recovery.
fn note_log_result(svc: &Service, r: Result<(), crate::jsonlog::Error>) {
    match r {
        Ok(()) => {
            if svc.log_failing.swap(false, Ordering::SeqCst) {
                tracing::warn!("log writes succeed again");
            }
        }
        Err(e) => {
            if !svc.log_failing.swap(true, Ordering::SeqCst) {
                let msg = chain(&e);
                tracing::error!("{msg} (output is dropped until writes succeed)");
                svc.publish(pb::EventKind::EventLogError, None, 0, &msg);
            }
        }
    }
}
