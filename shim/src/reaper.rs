//! Reaping. The shim is a subreaper: the container's init and exec processes become its
//! children when the runtime that forked them exits. One task waits for SIGCHLD and reaps
//! every child with `waitpid(-1)`; callers register interest in a pid and get its status.
//! A status that arrives before anyone asked (a process that exits before its pid file is read)
//! is kept until claimed. Runtime commands are spawned with `std::process` and watched here,
//! never waited for directly, so no status is stolen.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// How many unclaimed exit statuses to keep (orphans nobody asks about are forgotten).
const UNCLAIMED_MAX: usize = 256;

#[derive(Default)]
struct Inner {
    waiters: HashMap<i32, Vec<oneshot::Sender<u32>>>,
    unclaimed: HashMap<i32, u32>,
    order: VecDeque<i32>,
}

/// Shared exit-status table.
#[derive(Default, Clone)]
pub struct Reaper {
    inner: Arc<Mutex<Inner>>,
}

impl Reaper {
    /// Get `pid`'s exit status when it is reaped (at once if it already was).
    ///
    /// Call it right after spawning, before any `.await`: the reaper runs on the same thread,
    /// so it cannot reap the pid in between.
    pub fn watch(&self, pid: i32) -> oneshot::Receiver<u32> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.inner.lock().unwrap();
        if let Some(status) = inner.unclaimed.remove(&pid) {
            inner.order.retain(|p| *p != pid);
            let _ = tx.send(status);
        } else {
            inner.waiters.entry(pid).or_default().push(tx);
        }
        rx
    }

    /// Reap every child that has exited.
    pub fn reap(&self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(ws) => {
                    let (Some(pid), Some(status)) = (ws.pid(), crate::exit_status(ws)) else {
                        continue;
                    };
                    self.deliver(pid.as_raw(), status);
                }
            }
        }
    }

    fn deliver(&self, pid: i32, status: u32) {
        let mut inner = self.inner.lock().unwrap();
        match inner.waiters.remove(&pid) {
            Some(txs) => {
                for tx in txs {
                    let _ = tx.send(status);
                }
            }
            None => {
                if inner.order.len() >= UNCLAIMED_MAX {
                    if let Some(old) = inner.order.pop_front() {
                        inner.unclaimed.remove(&old);
                    }
                }
                inner.unclaimed.insert(pid, status);
                inner.order.push_back(pid);
            }
        }
    }

    /// Reap on every SIGCHLD, forever.
    pub async fn run(self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sig = signal(SignalKind::child())?;
        loop {
            self.reap();
            sig.recv().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_before_watch_is_kept() {
        let r = Reaper::default();
        r.deliver(42, 3);
        let mut rx = r.watch(42);
        assert_eq!(rx.try_recv().unwrap(), 3);
        // Claimed once only.
        let mut rx = r.watch(42);
        assert!(rx.try_recv().is_err());
        r.deliver(42, 9);
        assert_eq!(rx.try_recv().unwrap(), 9);
    }

    #[test]
    fn unclaimed_table_is_bounded() {
        let r = Reaper::default();
        for pid in 0..(UNCLAIMED_MAX as i32 + 10) {
            r.deliver(pid, 0);
        }
        assert_eq!(r.inner.lock().unwrap().unclaimed.len(), UNCLAIMED_MAX);
        assert!(r.watch(0).try_recv().is_err());
    }
}
