//! The manager proper: containers (metadata in the store), tasks (one shim each), events.
//! Plain async methods, callable in-process; `grpc.rs` only forwards to them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_proto::manager as mpb;
use berth_proto::shim as spb;
use berth_proto::shim::shim_client::ShimClient;
use tokio::sync::broadcast;
use tonic::transport::Channel;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::images::Images;
use crate::store::{ContainerRecord, Store, TaskRecord};

/// A live task: a connected shim.
#[derive(Clone)]
struct Handle {
    client: ShimClient<Channel>,
}

pub struct Manager {
    pub cfg: Config,
    store: Arc<Store>,
    /// Content, image records, snapshots, leases.
    pub images: Images,
    events: broadcast::Sender<mpb::Envelope>,
    handles: Mutex<HashMap<String, Handle>>,
    /// One lock per id, held across create/delete of its container or task.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Ids: what runc and Docker accept.
pub fn valid_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "container id {id:?}: use 1-64 of [A-Za-z0-9_.-], starting with a letter or digit"
        )))
    }
}

fn now() -> String {
    berth_runtime::state::now_rfc3339()
}

use crate::task_dir::{
    connect, force_delete, is_mount_point, read_exit_file, remove_task_dir, unmount_rootfs,
    wait_gone,
};

impl Manager {
    /// Open the store and reconnect to every shim a previous manager left running.
    pub async fn open(cfg: Config) -> Result<Arc<Manager>> {
        for d in [&cfg.root, &cfg.state] {
            std::fs::create_dir_all(d).map_err(|e| Error::io("create directory", d, e))?;
        }
        let store = Arc::new(Store::open(&cfg.root.join("meta.redb"))?);
        let images =
            Images::open(&cfg.root, store.clone()).map_err(|e| Error::Images(Box::new(e)))?;
        // Snapshot directories whose record never got written (a crash mid-prepare).
        if let Ok(n) = images.snapshots.reconcile() {
            if n > 0 {
                tracing::info!("removed {n} snapshot directories without a record");
            }
        }
        let m = Arc::new(Manager {
            cfg,
            store,
            images,
            events: broadcast::channel(1024).0,
            handles: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        });
        m.recover().await?;
        Ok(m)
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<mpb::Envelope> {
        self.events.subscribe()
    }

    fn publish(
        &self,
        topic: &str,
        id: &str,
        exec_id: &str,
        pid: u32,
        exit_status: u32,
        error: &str,
    ) {
        let _ = self.events.send(mpb::Envelope {
            timestamp: now(),
            topic: topic.to_string(),
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            pid,
            exit_status,
            error: error.to_string(),
        });
    }

    fn task_dir(&self, id: &str) -> PathBuf {
        self.cfg.state.join("tasks").join(id)
    }

    // ---- containers ----

    #[tracing::instrument(level = "info", skip_all, fields(container_id = %c.id))]
    pub async fn create_container(&self, mut c: ContainerRecord) -> Result<ContainerRecord> {
        valid_id(&c.id)?;
        let _g = self.lock_for(&c.id).lock_owned().await;
        if !c.spec.is_object() {
            return Err(Error::InvalidArgument(format!(
                "container {}: spec must be an OCI runtime config JSON object",
                c.id
            )));
        }
        serde_json::from_value::<oci_spec::runtime::Spec>(c.spec.clone())
            .map_err(|e| Error::InvalidArgument(format!("container {}: spec: {e}", c.id)))?;
        if !c.rootfs.is_empty() && !Path::new(&c.rootfs).is_absolute() {
            return Err(Error::InvalidArgument(format!(
                "container {}: rootfs {:?} must be an absolute path",
                c.id, c.rootfs
            )));
        }
        if c.log_path.is_empty() && !c.log_disabled {
            c.log_path = self
                .cfg
                .root
                .join("containers")
                .join(&c.id)
                .join(format!("{}-json.log", c.id))
                .display()
                .to_string();
        }
        c.created_at = now();
        c.updated_at = c.created_at.clone();
        self.store.create_container(&c)?;
        self.publish("/containers/create", &c.id, "", 0, 0, "");
        Ok(c)
    }

    pub fn container(&self, id: &str) -> Result<ContainerRecord> {
        self.store.container(id)
    }

    pub fn containers(&self, labels: &BTreeMap<String, String>) -> Result<Vec<ContainerRecord>> {
        Ok(self
            .store
            .containers()?
            .into_iter()
            .filter(|c| labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
            .collect())
    }

    #[tracing::instrument(level = "info", skip_all, fields(container_id = %id))]
    pub async fn update_container(
        &self,
        id: &str,
        labels: Option<BTreeMap<String, String>>,
        spec: Option<serde_json::Value>,
    ) -> Result<ContainerRecord> {
        let _g = self.lock_for(id).lock_owned().await;
        let mut c = self.store.container(id)?;
        if let Some(l) = labels {
            c.labels = l;
        }
        if let Some(s) = spec {
            if self.store.task(id)?.is_some() {
                return Err(Error::FailedPrecondition(format!(
                    "container {id}: cannot change the spec while it has a task"
                )));
            }
            serde_json::from_value::<oci_spec::runtime::Spec>(s.clone())
                .map_err(|e| Error::InvalidArgument(format!("container {id}: spec: {e}")))?;
            c.spec = s;
        }
        c.updated_at = now();
        self.store.put_container(&c)?;
        self.publish("/containers/update", id, "", 0, 0, "");
        Ok(c)
    }

    #[tracing::instrument(level = "info", skip_all, fields(container_id = %id))]
    pub async fn delete_container(&self, id: &str) -> Result<()> {
        let _g = self.lock_for(id).lock_owned().await;
        let c = self.store.container(id)?;
        if self.store.task(id)?.is_some() {
            return Err(Error::FailedPrecondition(format!(
                "container {id} has a task: delete the task first"
            )));
        }
        self.store.delete_container(id)?;
        if !c.snapshot_key.is_empty() {
            match self.images.snapshots.remove(&c.snapshot_key) {
                Ok(()) | Err(crate::images::Error::SnapshotNotFound(_)) => {}
                Err(e) => tracing::warn!(container_id = id, "remove its snapshot: {e}"),
            }
        }
        // The log directory we made for it (not a path the caller chose elsewhere).
        let default_dir = self.cfg.root.join("containers").join(id);
        if Path::new(&c.log_path).starts_with(&default_dir) {
            let _ = std::fs::remove_dir_all(&default_dir);
        }
        self.publish("/containers/delete", id, "", 0, 0, "");
        Ok(())
    }

    /// Write container `id`'s filesystem as a tar to `out` (blocking; run off the runtime).
    pub fn export(&self, id: &str, out: &mut dyn std::io::Write) -> Result<()> {
        let c = self.store.container(id)?;
        let live = self.task_dir(id).join("rootfs");
        let tmp = self
            .cfg
            .state
            .join(format!("export-{id}-{}", std::process::id()));
        let (root, mounted) = if is_mount_point(&live) {
            (live, false)
        } else if !c.snapshot_key.is_empty() {
            std::fs::create_dir_all(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
            // A view: an active snapshot's work directory may be in use by a task mount.
            let mut mounts = self
                .images
                .snapshots
                .mounts(&c.snapshot_key)
                .map_err(|e| Error::Images(Box::new(e)))?;
            for m in &mut mounts {
                if m.kind == "overlay" {
                    let upper = m
                        .options
                        .iter()
                        .find_map(|o| o.strip_prefix("upperdir="))
                        .map(String::from);
                    m.options.retain(|o| o.starts_with("lowerdir="));
                    if let (Some(u), Some(l)) = (upper, m.options.first_mut()) {
                        *l = format!("lowerdir={u}:{}", &l["lowerdir=".len()..]);
                    }
                } else {
                    m.options.retain(|o| o != "rw");
                    m.options.push("ro".into());
                }
            }
            crate::images::snapshots::mount_all(&mounts, &tmp)
                .map_err(|e| Error::Images(Box::new(e.into())))?;
            (tmp.clone(), true)
        } else if !c.rootfs.is_empty() {
            (PathBuf::from(&c.rootfs), false)
        } else {
            return Err(Error::FailedPrecondition(format!(
                "container {id} has no root filesystem to export"
            )));
        };
        let r = (|| {
            let mut t = tar::Builder::new(out);
            t.follow_symlinks(false);
            t.mode(tar::HeaderMode::Complete);
            t.append_dir_all(".", &root)?;
            t.finish()
        })();
        if mounted {
            let _ = nix::mount::umount2(&tmp, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(&tmp);
        }
        r.map_err(|e| Error::io("export", &root, e))
    }

    // ---- tasks ----

    fn runtime_of(&self, c: &ContainerRecord) -> (String, String) {
        let name = if c.runtime.is_empty() {
            self.cfg.default_runtime.clone()
        } else {
            c.runtime.clone()
        };
        let binary = self.cfg.runtime_binary(&name);
        let root = if c.runtime_root.is_empty() {
            let short = Path::new(&name)
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "runtime".into());
            self.cfg
                .state
                .join("runtime")
                .join(short)
                .display()
                .to_string()
        } else {
            c.runtime_root.clone()
        };
        (binary, root)
    }

    #[tracing::instrument(level = "info", skip_all, fields(container_id = %id))]
    pub async fn create_task(
        self: &Arc<Self>,
        id: &str,
        terminal: bool,
        stdin: bool,
    ) -> Result<mpb::Task> {
        let _g = self.lock_for(id).lock_owned().await;
        let c = self.store.container(id)?;
        let dir = self.task_dir(id);
        let (runtime, runtime_root) = self.runtime_of(&c);
        let rec = TaskRecord {
            id: id.to_string(),
            dir: dir.clone(),
            terminal,
            stdin,
            runtime: runtime.clone(),
            runtime_root: runtime_root.clone(),
            ..Default::default()
        };
        // Recorded first: a manager killed from here on finds the task on restart.
        self.store.create_task(&rec)?;
        match self.spawn_task(&c, rec).await {
            Ok(t) => {
                tracing::info!(pid = t.pid, "task created");
                Ok(t)
            }
            Err(e) => {
                let _ = self.store.delete_task(id);
                remove_task_dir(&dir);
                Err(e)
            }
        }
    }

    async fn spawn_task(
        self: &Arc<Self>,
        c: &ContainerRecord,
        mut rec: TaskRecord,
    ) -> Result<mpb::Task> {
        let id = c.id.clone();
        let dir = rec.dir.clone();
        remove_task_dir(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create task directory", &dir, e))?;
        std::fs::create_dir_all(&rec.runtime_root)
            .map_err(|e| Error::io("create runtime root", &rec.runtime_root, e))?;
        // The bundle: the container's spec with its rootfs and terminal filled in.
        let mut spec = c.spec.clone();
        if !c.rootfs.is_empty() {
            spec["root"]["path"] = c.rootfs.clone().into();
        }
        if !c.snapshot_key.is_empty() {
            let rootfs = dir.join("rootfs");
            std::fs::create_dir_all(&rootfs)
                .map_err(|e| Error::io("create rootfs mount point", &rootfs, e))?;
            let mounts = self
                .images
                .snapshots
                .mounts(&c.snapshot_key)
                .map_err(|e| Error::Images(Box::new(e)))?;
            crate::images::snapshots::mount_all(&mounts, &rootfs)
                .map_err(|e| Error::Images(Box::new(e.into())))?;
            spec["root"]["path"] = rootfs.display().to_string().into();
        }
        if spec.get("process").is_some() {
            spec["process"]["terminal"] = rec.terminal.into();
        }
        let cfg_path = dir.join("config.json");
        berth_fstree::write_atomic_until_reboot(
            &cfg_path,
            serde_json::to_vec_pretty(&spec).expect("json").as_slice(),
            0o644,
        )
        .map_err(|err| Error::Io {
            what: "write bundle",
            path: cfg_path.display().to_string(),
            err,
        })?;
        if let Some(logdir) = Path::new(&c.log_path)
            .parent()
            .filter(|_| !c.log_path.is_empty())
        {
            std::fs::create_dir_all(logdir)
                .map_err(|e| Error::io("create log directory", logdir, e))?;
        }
        // Start the shim: it returns once it listens.
        let shim = self.cfg.shim_binary();
        let out = tokio::process::Command::new(&shim)
            .arg("--id")
            .arg(&id)
            .arg("--dir")
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| Error::ShimStart {
                id: id.clone(),
                shim: shim.display().to_string(),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(Error::ShimStart {
                id: id.clone(),
                shim: shim.display().to_string(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let sock = dir.join(berth_shim::files::SOCKET);
        let mut client = connect(&id, &sock).await?;
        let info = client
            .info(spb::Empty {})
            .await
            .map_err(|s| Error::shim(&id, s))?
            .into_inner();
        rec.shim_pid = info.shim_pid;
        self.store.put_task(&rec)?;
        let created = client
            .create(spb::CreateRequest {
                id: id.clone(),
                bundle: dir.display().to_string(),
                runtime: rec.runtime.clone(),
                runtime_root: rec.runtime_root.clone(),
                terminal: rec.terminal,
                stdin: rec.stdin,
                log_path: c.log_path.clone(),
                log_max_size: c.log_max_size,
                log_max_files: c.log_max_files,
                log_format: c.log_format.clone(),
                log_compress: c.log_compress,
                log_forward: c.log_forward.clone(),
                log_options: c.log_options.clone().into_iter().collect(),
                no_pivot: false,
            })
            .await;
        let created = match created {
            Ok(r) => r.into_inner(),
            Err(s) => {
                // The shim exits on Delete of a container it never created.
                let _ = client.delete(spb::DeleteRequest::default()).await;
                return Err(Error::shim(&id, s));
            }
        };
        rec.pid = created.pid;
        self.store.put_task(&rec)?;
        self.handles.lock().unwrap().insert(
            id.clone(),
            Handle {
                client: client.clone(),
            },
        );
        self.publish("/tasks/create", &id, "", rec.pid, 0, "");
        self.watch(id.clone(), client);
        Ok(mpb::Task {
            id,
            pid: rec.pid,
            status: mpb::Status::Created as i32,
            exit_status: 0,
            exited_at: String::new(),
            terminal: rec.terminal,
            shim_pid: rec.shim_pid,
        })
    }

    /// Follow a shim: forward its events, and record the init's exit (or the shim's loss).
    fn watch(self: &Arc<Self>, id: String, client: ShimClient<Channel>) {
        let me = self.clone();
        let mut events_client = client.clone();
        let fwd = me.clone();
        let fid = id.clone();
        tokio::spawn(async move {
            let Ok(stream) = events_client.subscribe(spb::Empty {}).await else {
                return;
            };
            let mut stream = stream.into_inner();
            while let Ok(Some(e)) = stream.message().await {
                fwd.forward(&fid, e);
            }
        });
        let mut client = client;
        tokio::spawn(async move {
            match client
                .wait(spb::WaitRequest {
                    exec_id: String::new(),
                })
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    me.on_exit(&id, r.exit_status, &r.exited_at);
                }
                Err(_) => me.on_shim_lost(&id).await,
            }
        });
    }

    fn forward(&self, id: &str, e: spb::Event) {
        use spb::EventKind as K;
        let topic = match K::try_from(e.kind).unwrap_or(K::EventUnknown) {
            K::EventStart => "/tasks/start",
            // The init's exit is published from Wait (reliable across restarts).
            K::EventExit if e.exec_id.is_empty() => return,
            K::EventExit => "/tasks/exit",
            K::EventOom => "/tasks/oom",
            K::EventExecAdded => "/tasks/exec-added",
            K::EventExecStarted => "/tasks/exec-started",
            K::EventPaused => "/tasks/paused",
            K::EventResumed => "/tasks/resumed",
            K::EventLogError => "/tasks/log-error",
            K::EventCreate | K::EventDelete | K::EventUnknown => return,
        };
        self.publish(topic, id, &e.exec_id, e.pid, e.exit_status, &e.error);
    }

    #[tracing::instrument(level = "info", skip_all, fields(container_id = %id))]
    fn on_exit(&self, id: &str, status: u32, at: &str) {
        let Ok(Some(mut rec)) = self.store.task(id) else {
            return;
        };
        if rec.exited {
            return;
        }
        rec.exited = true;
        rec.exit_status = status;
        rec.exited_at = at.to_string();
        if let Err(e) = self.store.put_task(&rec) {
            tracing::error!("record exit of {id}: {}", e.message());
        }
        // Like Docker, a stopped container's rootfs is not left mounted.
        unmount_rootfs(&rec.dir);
        tracing::info!(exit_status = status, "exited");
        self.publish("/tasks/exit", id, "", rec.pid, status, "");
    }

    /// The shim is gone without reporting the init's exit: find out what we can, make sure
    /// nothing keeps running, and report an exit (137 if we had to kill it, 255 if unknown).
    #[tracing::instrument(level = "info", skip_all, fields(container_id = %id))]
    async fn on_shim_lost(&self, id: &str) {
        if self.handles.lock().unwrap().remove(id).is_none() {
            return; // deleted on purpose
        }
        self.report_lost(id).await;
    }

    /// Report the exit of a task whose shim is gone (found lost by the watcher or at start).
    async fn report_lost(&self, id: &str) {
        let Ok(Some(rec)) = self.store.task(id) else {
            return;
        };
        if rec.exited {
            return;
        }
        let (status, at) = match read_exit_file(&rec.dir) {
            Some(x) => x,
            None => {
                let killed = force_delete(&rec).await;
                (if killed { 137 } else { 255 }, now())
            }
        };
        tracing::warn!("task {id}: shim lost; exit status {status}");
        self.on_exit(id, status, &at);
    }

    /// Reconnect to the shims of every recorded task.
    async fn recover(self: &Arc<Self>) -> Result<()> {
        for rec in self.store.tasks()? {
            let sock = rec.dir.join(berth_shim::files::SOCKET);
            match connect(&rec.id, &sock).await {
                Ok(client) => {
                    self.handles.lock().unwrap().insert(
                        rec.id.clone(),
                        Handle {
                            client: client.clone(),
                        },
                    );
                    self.watch(rec.id.clone(), client);
                }
                Err(_) if rec.exited => {}
                // No shim (killed, or /run lost in a reboot).
                Err(_) => self.report_lost(&rec.id).await,
            }
        }
        Ok(())
    }

    fn handle(&self, id: &str) -> Result<Handle> {
        if let Some(h) = self.handles.lock().unwrap().get(id).cloned() {
            return Ok(h);
        }
        match self.store.task(id)? {
            Some(_) => Err(Error::FailedPrecondition(format!(
                "task {id}: its shim is gone; only Get and Delete work"
            ))),
            None => Err(Error::TaskNotFound(id.to_string())),
        }
    }

    #[tracing::instrument(level = "info", skip_all, fields(container_id = %id, exec_id = %exec_id))]
    pub async fn start(&self, id: &str, exec_id: &str) -> Result<mpb::Task> {
        let mut h = self.handle(id)?;
        h.client
            .start(spb::StartRequest {
                exec_id: exec_id.to_string(),
            })
            .await
            .map_err(|s| Error::shim(id, s))?;
        tracing::info!("started");
        self.task(id).await
    }

    pub async fn task(&self, id: &str) -> Result<mpb::Task> {
        let rec = self
            .store
            .task(id)?
            .ok_or_else(|| Error::TaskNotFound(id.to_string()))?;
        let live = self.handles.lock().unwrap().get(id).cloned();
        if let (Some(mut h), false) = (live, rec.exited) {
            if let Ok(st) = h
                .client
                .state(spb::StateRequest {
                    exec_id: String::new(),
                })
                .await
            {
                let st = st.into_inner();
                return Ok(mpb::Task {
                    id: id.to_string(),
                    pid: st.pid,
                    status: st.status,
                    exit_status: st.exit_status,
                    exited_at: st.exited_at,
                    terminal: st.terminal,
                    shim_pid: rec.shim_pid,
                });
            }
        }
        Ok(mpb::Task {
            id: id.to_string(),
            pid: rec.pid,
            status: if rec.exited {
                mpb::Status::Stopped
            } else {
                mpb::Status::Unknown
            } as i32,
            exit_status: rec.exit_status,
            exited_at: rec.exited_at,
            terminal: rec.terminal,
            shim_pid: rec.shim_pid,
        })
    }

    pub async fn tasks(&self) -> Result<Vec<mpb::Task>> {
        let mut out = Vec::new();
        for rec in self.store.tasks()? {
            if let Ok(t) = self.task(&rec.id).await {
                out.push(t);
            }
        }
        Ok(out)
    }

    #[tracing::instrument(level = "info", skip_all, fields(container_id = %id, exec_id = %exec_id, signal))]
    pub async fn kill(&self, id: &str, exec_id: &str, signal: u32, all: bool) -> Result<()> {
        let mut h = self.handle(id)?;
        h.client
            .kill(spb::KillRequest {
                exec_id: exec_id.to_string(),
                signal,
                all,
            })
            .await
            .map_err(|s| Error::shim(id, s))?;
        Ok(())
    }

    #[tracing::instrument(level = "info", skip_all, fields(container_id = %id, exec_id = %exec_id))]
    pub async fn exec(
        &self,
        id: &str,
        exec_id: &str,
        process: &[u8],
        terminal: bool,
        stdin: bool,
        inherit: bool,
    ) -> Result<()> {
        let mut h = self.handle(id)?;
        let mut p: serde_json::Value = serde_json::from_slice(process).map_err(|e| {
            Error::InvalidArgument(format!("exec {exec_id} in {id}: process JSON: {e}"))
        })?;
        if inherit {
            let c = self.store.container(id)?;
            let mut base = c.spec["process"].clone();
            if let (Some(b), Some(o)) = (base.as_object_mut(), p.as_object()) {
                for (k, v) in o {
                    if k == "env" {
                        let mut env = b
                            .get("env")
                            .and_then(|e| e.as_array())
                            .cloned()
                            .unwrap_or_default();
                        env.extend(v.as_array().cloned().unwrap_or_default());
                        b.insert("env".into(), env.into());
                    } else {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
            p = base;
        }
        if p.is_object() {
            p["terminal"] = terminal.into();
        }
        h.client
            .exec(spb::ExecRequest {
                exec_id: exec_id.to_string(),
                process: serde_json::to_vec(&p).expect("json"),
                terminal,
                stdin,
            })
            .await
            .map_err(|s| Error::shim(id, s))?;
        Ok(())
    }

    #[tracing::instrument(level = "info", skip_all, fields(container_id = %id, exec_id = %exec_id))]
    pub async fn wait(&self, id: &str, exec_id: &str) -> Result<(u32, String)> {
        if exec_id.is_empty() {
            if let Some(rec) = self.store.task(id)? {
                if rec.exited {
                    return Ok((rec.exit_status, rec.exited_at));
                }
            }
            // Our own record is set by the shim's report or, if the shim is lost, by the
            // watcher; the shim's Wait answers first when it can.
            let mut rx = self.subscribe();
            loop {
                match self.store.task(id)? {
                    None => return Err(Error::TaskNotFound(id.to_string())),
                    Some(rec) if rec.exited => return Ok((rec.exit_status, rec.exited_at)),
                    Some(_) => {}
                }
                let live = self.handles.lock().unwrap().get(id).cloned();
                let Some(mut h) = live else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                tokio::select! {
                    r = h.client.wait(spb::WaitRequest { exec_id: String::new() }) => {
                        if let Ok(r) = r {
                            let r = r.into_inner();
                            return Ok((r.exit_status, r.exited_at));
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    e = rx.recv() => {
                        if let Ok(e) = e {
                            if e.topic == "/tasks/exit" && e.id == id && e.exec_id.is_empty() {
                                return Ok((e.exit_status, e.timestamp));
                            }
                        }
                    }
                }
            }
        }
        let mut h = self.handle(id)?;
        let r = h
            .client
            .wait(spb::WaitRequest {
                exec_id: exec_id.to_string(),
            })
            .await
            .map_err(|s| Error::shim(id, s))?
            .into_inner();
        Ok((r.exit_status, r.exited_at))
    }

    pub async fn pids(&self, id: &str) -> Result<Vec<mpb::ProcessInfo>> {
        let mut h = self.handle(id)?;
        let r = h
            .client
            .pids(spb::Empty {})
            .await
            .map_err(|s| Error::shim(id, s))?
            .into_inner();
        Ok(r.processes
            .into_iter()
            .map(|p| mpb::ProcessInfo {
                pid: p.pid,
                exec_id: p.exec_id,
            })
            .collect())
    }

    #[tracing::instrument(level = "info", skip_all, fields(container_id = %id, pause))]
    pub async fn pause(&self, id: &str, pause: bool) -> Result<()> {
        let mut h = self.handle(id)?;
        let r = if pause {
            h.client.pause(spb::Empty {}).await
        } else {
            h.client.resume(spb::Empty {}).await
        };
        r.map_err(|s| Error::shim(id, s))?;
        Ok(())
    }

    pub async fn resize(&self, id: &str, exec_id: &str, width: u32, height: u32) -> Result<()> {
        let mut h = self.handle(id)?;
        h.client
            .resize_pty(spb::ResizeRequest {
                exec_id: exec_id.to_string(),
                width,
                height,
            })
            .await
            .map_err(|s| Error::shim(id, s))?;
        Ok(())
    }

    pub async fn close_io(&self, id: &str, exec_id: &str) -> Result<()> {
        let mut h = self.handle(id)?;
        h.client
            .close_stdin(spb::CloseStdinRequest {
                exec_id: exec_id.to_string(),
            })
            .await
            .map_err(|s| Error::shim(id, s))?;
        Ok(())
    }

    pub async fn stats(&self, id: &str) -> Result<mpb::TaskStats> {
        let mut h = self.handle(id)?;
        let s = h
            .client
            .stats(spb::Empty {})
            .await
            .map_err(|s| Error::shim(id, s))?
            .into_inner();
        Ok(mpb::TaskStats {
            memory_usage: s.memory_usage,
            memory_limit: s.memory_limit,
            cpu_usage_ns: s.cpu_usage_ns,
            pids_current: s.pids_current,
            json: s.json,
        })
    }

    #[tracing::instrument(level = "info", skip_all, fields(container_id = %id))]
    pub async fn update_task(&self, id: &str, resources: &[u8]) -> Result<()> {
        let mut h = self.handle(id)?;
        h.client
            .update(spb::UpdateRequest {
                resources: resources.to_vec(),
            })
            .await
            .map_err(|s| Error::shim(id, s))?;
        Ok(())
    }

    /// A shim client for attaching (the gRPC layer proxies the stream).
    pub fn shim_client(&self, id: &str) -> Result<ShimClient<Channel>> {
        Ok(self.handle(id)?.client)
    }

    #[tracing::instrument(level = "info", skip_all, fields(container_id = %id, exec_id = %exec_id))]
    pub async fn delete_task(&self, id: &str, exec_id: &str) -> Result<(u32, String)> {
        if !exec_id.is_empty() {
            let mut h = self.handle(id)?;
            let r = h
                .client
                .delete(spb::DeleteRequest {
                    exec_id: exec_id.to_string(),
                })
                .await
                .map_err(|s| Error::shim(id, s))?
                .into_inner();
            return Ok((r.exit_status, r.exited_at));
        }
        let _g = self.lock_for(id).lock_owned().await;
        let rec = self
            .store
            .task(id)?
            .ok_or_else(|| Error::TaskNotFound(id.to_string()))?;
        let live = self.handles.lock().unwrap().get(id).cloned();
        let (status, at) = match live {
            Some(mut h) => {
                let r = h
                    .client
                    .delete(spb::DeleteRequest::default())
                    .await
                    .map_err(|s| Error::shim(id, s))?
                    .into_inner();
                // From here on the shim exiting is expected; wait for it to be gone, so that
                // nothing of the task is left when Delete returns.
                self.handles.lock().unwrap().remove(id);
                wait_gone(rec.shim_pid, Duration::from_secs(3)).await;
                match self.store.task(id)? {
                    Some(r2) if r2.exited => (r2.exit_status, r2.exited_at),
                    _ => (r.exit_status, r.exited_at),
                }
            }
            None => {
                force_delete(&rec).await;
                (rec.exit_status, rec.exited_at.clone())
            }
        };
        remove_task_dir(&rec.dir);
        self.store.delete_task(id)?;
        self.publish("/tasks/delete", id, "", rec.pid, status, "");
        Ok((status, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "web-1", "A.b_c", &"x".repeat(64)] {
            valid_id(ok).unwrap();
        }
        for bad in ["", "-a", ".a", "a/b", "a b", &"x".repeat(65), "../x"] {
            assert!(valid_id(bad).is_err(), "{bad:?}");
        }
    }
}
