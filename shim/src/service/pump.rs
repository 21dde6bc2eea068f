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
        if let Some(tx) = p.output.lock().unwrap().as_ref() {
            let _ = tx.send((kind, data.to_vec()));
        }
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
