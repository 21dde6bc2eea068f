//! The container service: create, start, stop, kill, restart, remove, rename, update,
//! pause, wait; the exit monitor and restart policies; container networking and mounts.
//! The HTTP layer (`api::containers`, `api::ops`, …) decodes requests, calls these and
//! encodes the answer; the builder and the exit monitor call them too.
//!
//! A Docker container is a berth-manager container whose labels carry its Docker name and
//! record (`berth.docker/name`, `berth.docker/config`: a [`ContainerDoc`]), with a snapshot
//! of its image as root filesystem and a task created at `create` (Docker's "created"
//! state: the runtime holds the init at its start barrier). State therefore lives in the
//! manager's store and survives berthd restarts.

pub mod changes;
pub mod doc;
pub mod error;
pub mod execs;
pub mod fields;
pub mod health;
mod init;
mod lifecycle;
pub mod logfile;
pub mod monitor;
pub mod mounts;
pub mod namespaces;
pub mod network;
mod options;

use berth_proto::manager as pb;

pub use doc::{ContainerDoc, CreateBody};
pub use error::{Error, Result};
pub use lifecycle::{
    create, delete, kill, pause, remove, rename, restart, send_signal, start, stop, update,
    CreateRequest, UpdateRequest,
};
pub use options::check_log_driver;

use crate::state::State;

const NAME: &str = "berth.docker/name";
const CONFIG: &str = "berth.docker/config";

/// A Docker container as the manager stores it.
#[derive(Clone, Debug)]
pub struct Container {
    pub id: String,
    /// With its leading '/'.
    pub name: String,
    pub doc: ContainerDoc,
    pub log_path: String,
}

impl Container {
    fn from_manager(c: pb::Container) -> Option<Container> {
        let name = c.labels.get(NAME)?.clone();
        let doc = match serde_json::from_str(c.labels.get(CONFIG)?) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(container_id = %c.id, "unreadable container record: {e}");
                return None;
            }
        };
        Some(Container {
            id: c.id,
            name,
            doc,
            log_path: c.log.map(|l| l.path).unwrap_or_default(),
        })
    }

    /// Its state as Docker shows it: an exited container waiting for its restart policy's
    /// delay is "restarting".
    pub fn shown_state(&self, t: Option<&pb::Task>) -> &'static str {
        match state_name(t) {
            "exited" if self.doc.restarting => "restarting",
            s => s,
        }
    }
}

/// A new container id: 64 hex digits.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Docker's container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, with or without '/'.
pub fn valid_name(n: &str) -> bool {
    let n = n.trim_start_matches('/');
    let b = n.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Every Docker container.
pub async fn all(d: &State) -> Result<Vec<Container>> {
    let list = d
        .images
        .mgr
        .containers
        .clone()
        .list(pb::ListContainersRequest::default())
        .await?
        .into_inner()
        .containers;
    Ok(list
        .into_iter()
        .filter_map(Container::from_manager)
        .collect())
}

/// By name (with or without '/'), full id, or unique id prefix.
pub async fn find(d: &State, what: &str) -> Result<Container> {
    let name = format!("/{}", what.trim_start_matches('/'));
    let mut prefix = Vec::new();
    for c in all(d).await? {
        if c.id == what || c.name == name {
            return Ok(c);
        }
        if what.len() >= 3 && c.id.starts_with(what) {
            prefix.push(c);
        }
    }
    match prefix.len() {
        1 => Ok(prefix.pop().expect("one")),
        0 => Err(Error::NoSuchContainer(what.to_string())),
        _ => Err(Error::AmbiguousPrefix(what.to_string())),
    }
}

/// The container's init task, if it has one.
pub async fn task(d: &State, id: &str) -> Option<pb::Task> {
    d.images
        .mgr
        .tasks
        .clone()
        .get(pb::ContainerRef { id: id.to_string() })
        .await
        .ok()
        .map(|t| t.into_inner())
}

/// A task's state in Docker's words ("created" when there is none).
pub fn state_name(t: Option<&pb::Task>) -> &'static str {
    match t.map(|t| t.status) {
        Some(s) if s == pb::Status::Running as i32 => "running",
        Some(s) if s == pb::Status::Paused as i32 => "paused",
        Some(s) if s == pb::Status::Stopped as i32 => "exited",
        _ => "created",
    }
}

/// Whether the container's init runs (or is frozen).
pub async fn is_running(d: &State, id: &str) -> bool {
    matches!(state_name(task(d, id).await.as_ref()), "running" | "paused")
}

/// The container and its task, if it runs (else [`Error::NotRunning`]).
pub async fn running(d: &State, what: &str) -> Result<(Container, pb::Task)> {
    let c = find(d, what).await?;
    match task(d, &c.id).await {
        Some(t) if matches!(state_name(Some(&t)), "running" | "paused") => Ok((c, t)),
        _ => Err(Error::NotRunning(c.id)),
    }
}

/// Wait for the init of container `id` to exit.
pub async fn wait_exit(d: &State, id: &str) -> Result<pb::ExitStatus, tonic::Status> {
    d.images
        .mgr
        .tasks
        .clone()
        .wait(pb::ProcessRef {
            container_id: id.to_string(),
            exec_id: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

/// Change the stored name and/or record of a container: `f` edits the current record
/// (read under a lock, so concurrent edits of different fields all land).
pub async fn update_doc(
    d: &State,
    id: &str,
    name: Option<&str>,
    f: impl FnOnce(&mut ContainerDoc),
) -> Result<()> {
    let _g = d.doc_lock.lock().await;
    let mc = d
        .images
        .mgr
        .containers
        .clone()
        .get(pb::ContainerRef { id: id.to_string() })
        .await?
        .into_inner();
    let mut labels = mc.labels;
    if let Some(n) = name {
        labels.insert(NAME.into(), n.to_string());
    }
    let mut doc: ContainerDoc = match labels.get(CONFIG) {
        Some(c) => serde_json::from_str(c)
            .map_err(|e| Error::Internal(format!("container {id}: unreadable record: {e}")))?,
        None => ContainerDoc::default(),
    };
    f(&mut doc);
    labels.insert(CONFIG.into(), encode(&doc));
    d.images
        .mgr
        .containers
        .clone()
        .update(pb::UpdateContainerRequest {
            id: id.to_string(),
            update_labels: true,
            labels,
            spec: Vec::new(),
        })
        .await?;
    Ok(())
}

fn encode(doc: &ContainerDoc) -> String {
    serde_json::to_string(doc).expect("a container record is JSON")
}

/// A signal by name (`SIGTERM`, `term`, any of Linux's) or number (1 to 64).
pub fn signal_number(s: &str) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = format!("SIG{}", up.strip_prefix("SIG").unwrap_or(&up));
    name.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|sig| sig as i32 as u32)
}

/// The directory berthd keeps a container's files in (logs, /etc/hosts, …).
pub fn dir(d: &State, id: &str) -> std::path::PathBuf {
    d.data_root.join("containers").join(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_signals() {
        assert!(valid_name("/web-1"));
        assert!(!valid_name("a"));
        assert!(!valid_name("-bad"));
        assert!(!valid_name("x/y"));
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("kill"), Some(9));
        assert_eq!(signal_number("bogus"), None);
        assert_eq!(signal_number("SIGPWR"), Some(30));
        assert_eq!(signal_number("0"), None);
    }
}
