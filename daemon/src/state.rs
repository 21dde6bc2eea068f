//! What berthd's services share: the image service, volumes, networks, events, execs, and
//! the locks that order updates of a container's record.

use std::sync::Arc;

use crate::images::Images;

/// The daemon's state, shared by every request (as [`State`]).
pub struct Daemon {
    pub images: Images,
    pub data_root: std::path::PathBuf,
    /// Parent of every container's cgroup (dockerd's --cgroup-parent), e.g. "/berth".
    pub cgroup_parent: String,
    pub volumes: crate::volumes::Volumes,
    /// Exec instances (Docker keeps them in memory too).
    pub execs: crate::containers::execs::Execs,
    pub events: crate::events::Events,
    /// Serialises read-modify-write of a container's stored record.
    pub doc_lock: tokio::sync::Mutex<()>,
    /// One exit handled at a time.
    pub exit_lock: tokio::sync::Mutex<()>,
    /// Networks, namespaces, endpoints and published ports.
    pub net: Arc<crate::network::Net>,
    /// Clients attached to a stopped container, waiting for its next task (`docker start
    /// -a`): each is handed a sender to say it has subscribed before the task starts.
    pub attach_waiters: std::sync::Mutex<std::collections::HashMap<String, Vec<AttachWaiter>>>,
    /// Bounds on client archives and `ADD <url>` (daemon.json archive-max-size/-entries).
    pub archive_limits: berth_fstree::layer::Limits,
    /// What `docker info` warns about (an API reachable without client verification).
    pub warnings: std::sync::Mutex<Vec<String>>,
}

/// See [`Daemon::attach_waiters`].
pub type AttachWaiter = tokio::sync::oneshot::Sender<tokio::sync::oneshot::Sender<()>>;

impl Daemon {
    /// A new task of container `id` exists and has not started: let the clients waiting to
    /// attach subscribe to it first (each gets two seconds).
    pub async fn wake_attachers(&self, id: &str) {
        let waiters = self
            .attach_waiters
            .lock()
            .unwrap()
            .remove(id)
            .unwrap_or_default();
        for w in waiters {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if w.send(tx).is_ok() {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), rx).await;
            }
        }
    }

    /// Container `id`'s next task could not be made: the clients waiting to attach to it
    /// are let go (their streams end).
    pub fn drop_attachers(&self, id: &str) {
        self.attach_waiters.lock().unwrap().remove(id);
    }
}

impl Daemon {
    pub fn new(
        images: Images,
        data_root: std::path::PathBuf,
        exec_root: &std::path::Path,
        cgroup_parent: String,
    ) -> Daemon {
        let cfg = images.reg.cfg.clone();
        Daemon {
            net: Arc::new(crate::network::Net::new(
                &data_root,
                exec_root,
                cfg.network_settings().unwrap_or_default(),
            )),
            images,
            volumes: crate::volumes::Volumes::new(&data_root),
            data_root,
            cgroup_parent,
            execs: Default::default(),
            events: Default::default(),
            doc_lock: Default::default(),
            exit_lock: Default::default(),
            attach_waiters: Default::default(),
            // (checked when daemon.json was read)
            archive_limits: cfg.archive_limits().unwrap_or_default(),
            warnings: Default::default(),
        }
    }
}

pub type State = Arc<Daemon>;
