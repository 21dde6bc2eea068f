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
        }
    }
}

pub type State = Arc<Daemon>;
