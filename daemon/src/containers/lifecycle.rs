//! The container lifecycle: create, start, stop, kill, restart, pause, remove, rename and
//! update, each publishing Docker's event.

use std::time::Duration;

use berth_proto::manager as pb;

use super::doc::{ContainerDoc, CreateBody, RestartPolicy};
use super::{
    all, dir, encode, find, is_running, mounts, network, options, running, state_name, task,
    update_doc, valid_name, wait_exit, Container, Error, Result, CONFIG, NAME,
};
use crate::events;
use crate::state::State;

/// `POST /containers/create` as the service takes it.
#[derive(Clone, Debug, Default)]
pub struct CreateRequest {
    /// `--name` (None: `berth_<short id>`).
    pub name: Option<String>,
    pub body: CreateBody,
}

/// Create a container (and its task, held at the start barrier); returns its id. Nothing
/// is left behind when it fails: snapshot, volumes and network are undone.
#[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, image = %req.body.config.image.as_deref().unwrap_or("")))]
pub async fn create(d: &State, req: CreateRequest) -> Result<String> {
    let CreateRequest { name, body } = req;
    let CreateBody {
        config: mut cfg,
        host_config: mut host,
    } = body;
    let id = super::new_id();
    tracing::Span::current().record("container_id", tracing::field::display(&id));
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) if !valid_name(&n) => return Err(Error::BadName(n)),
        Some(n) => format!("/{}", n.trim_start_matches('/')),
        None => format!("/berth_{}", &id[..12]),
    };
    if let Some(other) = all(d).await?.into_iter().find(|c| c.name == name) {
        return Err(Error::NameInUse { name, id: other.id });
    }
    let image = cfg
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Error::Invalid("config: Image is required".into()))?;
    // docker-py's create_container(runtime=…) sends Runtime beside Config's fields.
    if let Some(serde_json::Value::String(r)) = cfg.rest.remove("Runtime") {
        if host.runtime.as_deref().unwrap_or("").is_empty() {
            host.runtime = Some(r);
        }
    }
    super::fields::refuse_unsupported(&cfg, &host)?;
    // More than one network in EndpointsConfig (API 1.44+): the others are connected once
    // the container exists; each must exist. A single entry for another network than
    // NetworkMode's is not used (as dockerd does).
    let mode = host.network_mode.clone().unwrap_or_default();
    let mode_net = if matches!(mode.as_str(), "" | "default") {
        "bridge".to_string()
    } else {
        mode
    };
    let mut extra_networks = Vec::new();
    let endpoints = cfg
        .networking_config
        .as_ref()
        .map(|n| n.endpoints_config.clone())
        .unwrap_or_default();
    if endpoints.len() > 1 {
        for (net, settings) in endpoints {
            if net == mode_net {
                continue;
            }
            let n = d
                .net
                .find(&net)
                .await
                .ok_or_else(|| Error::NoSuchNetwork(net.clone()))?;
            extra_networks.push((n, settings));
        }
    }
    let dcfg = &d.images.reg.cfg;
    let runtime_name = host
        .runtime
        .clone()
        .filter(|r| !r.is_empty())
        .or_else(|| dcfg.default_runtime.clone())
        .unwrap_or_else(|| "berth-runtime".into());
    let runtime_binary = dcfg.runtime(&runtime_name).map_err(Error::Invalid)?;
    host.runtime = Some(runtime_name);
    options::validate_ports(&host)?;
    super::monitor::validate_policy(&host.restart_policy(), host.auto_remove())?;
    if cfg.network_disabled == Some(true) {
        host.network_mode = Some("none".into());
    }
    let mut opts = options::options(&cfg, &host);
    // Legacy `--link` variables first: the container's own variables win.
    let link_env = network::create_link_env(d, &name, &host).await?;
    let own: std::collections::HashSet<&str> = opts
        .env
        .iter()
        .map(|e| e.split('=').next().unwrap_or_default())
        .collect();
    let link_env: Vec<String> = link_env
        .into_iter()
        .filter(|e| !own.contains(e.split('=').next().unwrap_or_default()))
        .collect();
    opts.env.splice(0..0, link_env.iter().cloned());
    options::checked(&host, &mut opts)?;
    options::security(d, &host, &mut opts)?;
    options::default_ulimits(d, &mut opts);
    if host.init.unwrap_or(d.images.reg.cfg.init) {
        opts.init = Some(super::init::binary(d)?);
    }
    super::health::validate(&cfg)?;
    let shareable_shm = super::namespaces::apply(d, &id, &cfg, &host, &mut opts).await?;
    // Inspect shows the modes in effect, the daemon's defaults included.
    host.ipc_mode = Some(super::namespaces::ipc_mode(d, &host));
    host.cgroupns_mode = Some(
        if opts.cgroupns_private {
            "private"
        } else {
            "host"
        }
        .into(),
    );
    let parent = host
        .cgroup_parent
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(&d.cgroup_parent);
    opts.cgroups_path = Some(format!("/{}/{id}", parent.trim_matches('/')));
    let img = d
        .images
        .find(&image)
        .await
        .map_err(|_| Error::NoSuchImage(image.clone()))?;
    let res = d.images.resolve_record(&img).await?;
    let log = options::log_config(
        d,
        &host,
        &options::LogTarget {
            id: id.clone(),
            name: name.clone(),
            image: image.clone(),
            image_id: res.id().to_string(),
            dir: dir(d, &id),
        },
    )?;
    // Inspect (and logs) show the driver in effect, the daemon's default included.
    let mut lc = host.log_config.clone().unwrap_or_default();
    if lc.r#type.is_empty() {
        lc.r#type = d
            .images
            .reg
            .cfg
            .log_driver
            .clone()
            .unwrap_or_else(|| "json-file".into());
    }
    host.log_config = Some(lc);
    if let Some(parent) = std::path::Path::new(&log.path).parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::Internal(format!("create {}: {e}", parent.display())))?;
    }
    let image_cfg: berth_manager::oci::ImageConfig =
        (&res.config.config.clone().unwrap_or_default()).into();
    cfg.healthcheck = super::health::merge(
        cfg.healthcheck.take(),
        res.config
            .config
            .as_ref()
            .and_then(|c| c.healthcheck.as_ref()),
    );
    let net = network::attach(d, &id, &name, &cfg, &host, &mut opts).await?;
    let wants = match mounts::wants(d, &cfg, &host, &image_cfg.volumes).await {
        Ok(w) => w,
        Err(e) => {
            d.net.detach(&id).await;
            return Err(e);
        }
    };
    let realized = match mounts::realize(d, &id, &wants)
        .and_then(|r| mounts::mount_subpaths(d, &id, &r.records).map(|_| r))
    {
        Ok(r) => r,
        Err(e) => {
            mounts::unmount_subpaths(d, &id);
            d.net.detach(&id).await;
            return Err(e);
        }
    };
    opts.mounts.extend(realized.opts.iter().cloned());
    let mgr = &d.images.mgr;
    let undo = || async {
        let _ = mgr
            .snapshots
            .clone()
            .remove(pb::SnapshotRef { key: id.clone() })
            .await;
        mounts::remove_anonymous(d, &realized.records).await;
        d.net.detach(&id).await;
        super::namespaces::unmount_shm(d, &id);
        mounts::unmount_subpaths(d, &id);
    };
    let prepared = async {
        let chain = mgr
            .images
            .clone()
            .unpack(pb::UnpackRequest {
                name: img.name.clone(),
                lease: String::new(),
            })
            .await?
            .into_inner()
            .chain_id;
        let mounts = mgr
            .snapshots
            .clone()
            .prepare(pb::PrepareSnapshotRequest {
                key: id.clone(),
                parent: chain,
                labels: Default::default(),
            })
            .await?
            .into_inner()
            .mounts;
        Ok::<_, Error>(mounts)
    }
    .await;
    let mounts = match prepared {
        Ok(m) => m,
        Err(e) => {
            undo().await;
            return Err(e);
        }
    };
    // Read /etc/passwd and /etc/group of the container's filesystem for the spec.
    let tmp = d
        .data_root
        .join("tmp")
        .join(format!("rootfs-{}", &id[..12]));
    let mounts: Vec<berth_fstree::mount::Mount> = mounts
        .into_iter()
        .map(berth_manager::images::grpc::mount_of)
        .collect();
    let spec = berth_fstree::mount::with_mounted(&mounts, &tmp, |root| {
        for (target, data) in &realized.seeds {
            crate::volumes::seed(root, target, std::path::Path::new(data)).map_err(|e| {
                Error::Internal(format!("copy the image's {target} into its volume: {e}"))
            })?;
        }
        let spec = berth_manager::oci::generate(&id, root, &image_cfg, &opts)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        // Like dockerd: a working directory the image lacks is created (owned by root).
        let cwd = spec
            .process()
            .as_ref()
            .map(|p| p.cwd().display().to_string());
        if let Some(cwd) = cwd.as_deref().filter(|c| *c != "/") {
            let rootfd: std::os::fd::OwnedFd =
                std::fs::File::open(root).map_err(Error::internal)?.into();
            crate::build::files::mkdir_p(&rootfd, cwd, None)
                .map_err(|e| Error::Invalid(format!("create the working directory {cwd}: {e}")))?;
        }
        Ok(spec)
    })
    .map_err(Error::internal)
    .and_then(|r| r);
    let spec = match spec {
        Ok(s) if shareable_shm => super::namespaces::mount_shm(d, &id, opts.shm_size).map(|_| s),
        other => other,
    };
    let spec = match spec {
        Ok(s) => s,
        Err(e) => {
            undo().await;
            return Err(e);
        }
    };
    let mut args: Vec<String> = spec
        .process()
        .as_ref()
        .and_then(|p| p.args().clone())
        .unwrap_or_default();
    if opts.init.is_some() {
        // Inspect shows the command, not the init that runs it.
        args.drain(..2);
    }
    let tty = cfg.tty();
    let stdin = cfg.open_stdin.unwrap_or(false);
    let doc = ContainerDoc {
        link_env,
        config: cfg,
        host_config: host,
        created: crate::clock::now_rfc3339(),
        mounts: realized.records.clone(),
        image: res.id().to_string(),
        image_name: image,
        net,
        path: args.first().cloned().unwrap_or_default(),
        args: args.get(1..).unwrap_or_default().to_vec(),
        ..Default::default()
    };
    let labels = [
        (NAME.to_string(), name.clone()),
        (CONFIG.to_string(), encode(&doc)),
    ]
    .into_iter()
    .collect();
    let created = mgr
        .containers
        .clone()
        .create(pb::CreateContainerRequest {
            container: Some(pb::Container {
                id: id.clone(),
                labels,
                spec: serde_json::to_vec(&spec).expect("json"),
                log: Some(log),
                image: img.name.clone(),
                snapshot_key: id.clone(),
                runtime: Some(pb::Runtime {
                    name: runtime_binary,
                    root: String::new(),
                }),
                ..Default::default()
            }),
        })
        .await;
    if let Err(s) = created {
        undo().await;
        return Err(s.into());
    }
    if let Err(e) = create_task(d, &id, tty, stdin).await {
        d.net.detach(&id).await;
        super::namespaces::unmount_shm(d, &id);
        mounts::unmount_subpaths(d, &id);
        // A program that is missing or may not be run fails the start, not the create
        // (as with dockerd): the container stays, without a task, and each start says why.
        if !matches!(e, Error::Invalid(_)) {
            let _ = mgr
                .containers
                .clone()
                .delete(pb::ContainerRef { id: id.clone() })
                .await;
            return Err(e);
        }
        tracing::info!(name = %name, "created; its start will fail: {e}");
    }
    if let Ok(c) = find(d, &id).await {
        events::container(d, &c, "create");
        for (n, settings) in &extra_networks {
            let c = find(d, &id).await?;
            if let Err(e) = network::connect(d, &c, n, settings).await {
                let _ = remove(d, &c, true, true).await;
                return Err(e);
            }
        }
    }
    tracing::info!(name = %name, "created");
    Ok(id)
}

async fn create_task(d: &State, id: &str, terminal: bool, stdin: bool) -> Result<()> {
    d.images
        .mgr
        .tasks
        .clone()
        .create(pb::CreateTaskRequest {
            container_id: id.to_string(),
            terminal,
            stdin,
        })
        .await
        .map_err(|s| match s.code() {
            // The program is missing or may not be run: the request's fault (400, as
            // dockerd answers a start; the docker CLI then exits 127 or 126).
            tonic::Code::NotFound | tonic::Code::PermissionDenied => {
                Error::Invalid(s.message().to_string())
            }
            _ => Error::Manager(s),
        })?;
    Ok(())
}

/// Change container `id`'s stored spec (it has no task: the next one uses it).
async fn patch_spec(
    d: &State,
    id: &str,
    f: impl FnOnce(&mut oci_spec::runtime::Spec),
) -> Result<()> {
    let containers = d.images.mgr.containers.clone();
    let mc = containers
        .clone()
        .get(pb::ContainerRef { id: id.to_string() })
        .await?
        .into_inner();
    let mut spec: oci_spec::runtime::Spec = serde_json::from_slice(&mc.spec)
        .map_err(|e| Error::Internal(format!("container {id}: stored spec: {e}")))?;
    f(&mut spec);
    containers
        .clone()
        .update(pb::UpdateContainerRequest {
            id: id.to_string(),
            spec: serde_json::to_vec(&spec).expect("json"),
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// The stored spec with a `docker update`'s resources applied.
async fn apply_updated_resources(d: &State, c: &Container) -> Result<()> {
    patch_spec(d, &c.id, |spec| {
        options::patch_resources(spec, &c.doc.host_config)
    })
    .await
}

/// Put this start's legacy link variables in the stored spec's environment in place of
/// the last start's, before the container's own (which win), and remember them.
async fn apply_link_env(d: &State, c: &Container, mut env: Vec<String>) -> Result<()> {
    patch_spec(d, &c.id, |spec| {
        let Some(p) = spec.process_mut() else { return };
        let mut old = c.doc.link_env.clone();
        let mut rest: Vec<String> = Vec::new();
        for e in p.env().clone().unwrap_or_default() {
            match old.iter().position(|o| *o == e) {
                Some(i) => {
                    old.remove(i);
                }
                None => rest.push(e),
            }
        }
        // The container's own variables replace link variables of the same name.
        let key = |e: &String| e.split('=').next().unwrap_or_default().to_string();
        let own: std::collections::HashSet<String> = rest.iter().map(key).collect();
        env.retain(|e| !own.contains(&key(e)));
        let mut all = env.clone();
        all.extend(rest);
        p.set_env(Some(all));
    })
    .await?;
    super::update_doc(d, &c.id, None, |doc| doc.link_env = env).await
}

/// A start that could not make the task: let go of its network and attach clients, and
/// remove an `--rm` container (as dockerd does), so `docker run --rm` does not wait for a
/// removal that would never come.
async fn start_failed(d: &State, c: &Container, e: Error) -> Error {
    d.net.release(&c.id).await;
    d.drop_attachers(&c.id);
    if c.doc.host_config.auto_remove() {
        if let Err(r) = remove(d, c, true, true).await {
            tracing::warn!(container_id = %c.id, "remove after a failed start: {r}");
        }
    }
    e
}

/// Start the container's init (a new task when the last one exited). False if it was
/// running already.
#[tracing::instrument(skip_all, fields(container_id = %c.id))]
pub async fn start(d: &State, c: &Container) -> Result<bool> {
    let tasks = d.images.mgr.tasks.clone();
    let current = task(d, &c.id).await;
    if matches!(state_name(current.as_ref()), "running" | "paused") {
        return Ok(false);
    }
    // (Before anything is made: a link to a stopped container refuses the start.)
    let link_env = network::link_hosts(d, c).await?;
    let (tty, stdin) = (c.doc.config.tty(), c.doc.config.open_stdin.unwrap_or(false));
    if super::namespaces::ipc_mode(d, &c.doc.host_config) == "shareable" {
        let size = c
            .doc
            .host_config
            .shm_size
            .filter(|s| *s > 0)
            .map(|s| s as u64);
        super::namespaces::mount_shm(d, &c.id, size)?;
    }
    mounts::mount_subpaths(d, &c.id, &c.doc.mounts)?;
    match current {
        Some(t) if t.status == pb::Status::Stopped as i32 => {
            tasks
                .clone()
                .delete(pb::ProcessRef {
                    container_id: c.id.clone(),
                    exec_id: String::new(),
                })
                .await?;
            if c.doc.resources_updated {
                apply_updated_resources(d, c).await?;
            }
            if link_env != c.doc.link_env {
                apply_link_env(d, c, link_env).await?;
            }
            network::reattach(d, c).await?;
            if let Err(e) = create_task(d, &c.id, tty, stdin).await {
                return Err(start_failed(d, c, e).await);
            }
            d.wake_attachers(&c.id).await;
        }
        Some(_) => {}
        None => {
            if link_env != c.doc.link_env {
                apply_link_env(d, c, link_env).await?;
            }
            network::reattach(d, c).await?;
            if let Err(e) = create_task(d, &c.id, tty, stdin).await {
                return Err(start_failed(d, c, e).await);
            }
            d.wake_attachers(&c.id).await;
        }
    }
    // The record is updated while the task starts (a store write is not on the start's
    // critical path). `update_doc` takes the record lock at its first poll, before the
    // start request leaves, and the exit handler takes that lock before reading: an init
    // that exits at once is handled with these values.
    let published = network::publish_ports(d, c).await?;
    let record = update_doc(d, &c.id, None, |doc| {
        doc.published_ports = published;
        doc.started_at = Some(crate::clock::now_rfc3339());
        doc.oom_killed = false;
        doc.manual_stop = false;
        doc.resources_updated = false;
        doc.restarting = false;
    });
    let mut tasks = tasks.clone();
    let start = tasks.start(pb::ProcessRef {
        container_id: c.id.clone(),
        exec_id: String::new(),
    });
    let (recorded, started) = tokio::join!(record, start);
    if recorded.is_err() || started.is_err() {
        d.net.release(&c.id).await;
    }
    recorded?;
    started?;
    tracing::info!("started");
    events::container(d, c, "start");
    super::health::starting(d, c);
    Ok(true)
}

/// Mark a container as stopped by its user (restart policies leave it alone).
async fn mark_manual_stop(d: &State, c: &Container) -> Result<()> {
    update_doc(d, &c.id, None, |doc| doc.manual_stop = true).await
}

/// Send `sig` to the container's init.
pub async fn send_signal(d: &State, id: &str, sig: u32) -> Result<()> {
    d.images
        .mgr
        .tasks
        .clone()
        .kill(pb::KillRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
            signal: sig,
            all: false,
        })
        .await?;
    // A frozen process cannot die: a SIGKILLed paused container is thawed so that it does
    // (`rm -f`, `kill` and `stop` of a paused container end it, as with dockerd).
    if sig == 9
        && task(d, id)
            .await
            .is_some_and(|t| t.status == pb::Status::Paused as i32)
    {
        let _ = d
            .images
            .mgr
            .tasks
            .clone()
            .resume(pb::ContainerRef { id: id.to_string() })
            .await;
    }
    Ok(())
}

/// Stop: the stop signal, then SIGKILL after `secs` (default the container's StopTimeout
/// or 10; negative waits forever). False if it was not running.
#[tracing::instrument(skip_all, fields(container_id = %c.id))]
pub async fn stop(d: &State, c: &Container, secs: Option<i64>) -> Result<bool> {
    let t = task(d, &c.id).await;
    if c.shown_state(t.as_ref()) == "restarting" {
        mark_manual_stop(d, c).await?;
        return Ok(true);
    }
    if !matches!(state_name(t.as_ref()), "running" | "paused") {
        return Ok(false);
    }
    mark_manual_stop(d, c).await?;
    let secs = secs.or(c.doc.config.stop_timeout).unwrap_or(10);
    let stop_sig = c
        .doc
        .config
        .stop_signal
        .as_deref()
        .and_then(super::signal_number)
        .unwrap_or(15);
    if state_name(task(d, &c.id).await.as_ref()) == "paused" {
        // A frozen process cannot handle its signal: kill it outright, like dockerd.
        send_signal(d, &c.id, 9).await?;
        let _ = d
            .images
            .mgr
            .tasks
            .clone()
            .resume(pb::ContainerRef { id: c.id.clone() })
            .await;
    } else {
        send_signal(d, &c.id, stop_sig).await?;
    }
    let waited = if secs < 0 {
        Ok(wait_exit(d, &c.id).await)
    } else {
        tokio::time::timeout(Duration::from_secs(secs as u64), wait_exit(d, &c.id)).await
    };
    if waited.is_err() {
        send_signal(d, &c.id, 9).await?;
        let _ = wait_exit(d, &c.id).await;
    }
    // Its network is released before stop returns (the exit handler would, soon).
    super::monitor::handle_exit(d, &c.id).await;
    tracing::info!(killed = waited.is_err(), "stopped");
    events::container(d, c, "stop");
    Ok(true)
}

/// Stop (as [`stop`]) and start again.
pub async fn restart(d: &State, c: &Container, secs: Option<i64>) -> Result<()> {
    stop(d, c, secs).await?;
    let c = find(d, &c.id).await?;
    start(d, &c).await?;
    events::container(d, &c, "restart");
    Ok(())
}

/// `docker kill -s SIGNAL`.
pub async fn kill(d: &State, c: &Container, signal: &str) -> Result<()> {
    let n = super::signal_number(signal)
        .ok_or_else(|| Error::Invalid(format!("Invalid signal: {signal}")))?;
    if !is_running(d, &c.id).await {
        return Err(Error::NotRunning(c.id.clone()));
    }
    if n == 9 || n == 15 {
        mark_manual_stop(d, c).await?;
    }
    send_signal(d, &c.id, n).await?;
    events::container_with(d, c, "kill", &[("signal", n.to_string())]);
    Ok(())
}

/// Freeze or thaw a running container, refusing when it already is so.
pub async fn pause(d: &State, what: &str, pause: bool) -> Result<()> {
    let (c, t) = running(d, what).await?;
    if (t.status == pb::Status::Paused as i32) == pause {
        let now = if pause {
            "already paused"
        } else {
            "not paused"
        };
        return Err(Error::Conflict(format!("Container {} is {now}", c.id)));
    }
    let tasks = d.images.mgr.tasks.clone();
    let r = pb::ContainerRef { id: c.id.clone() };
    if pause {
        tasks.clone().pause(r).await
    } else {
        tasks.clone().resume(r).await
    }?;
    events::container(d, &c, if pause { "pause" } else { "unpause" });
    Ok(())
}

/// Remove what the manager and berthd hold of a container (its task must have exited).
pub async fn delete(d: &State, id: &str) -> Result<()> {
    let mgr = &d.images.mgr;
    match mgr
        .tasks
        .clone()
        .delete(pb::ProcessRef {
            container_id: id.to_string(),
            exec_id: String::new(),
        })
        .await
    {
        Ok(_) => {}
        Err(s) if s.code() == tonic::Code::NotFound => {}
        Err(s) => return Err(s.into()),
    }
    mgr.containers
        .clone()
        .delete(pb::ContainerRef { id: id.to_string() })
        .await?;
    d.net.detach(id).await;
    super::namespaces::unmount_shm(d, id);
    mounts::unmount_subpaths(d, id);
    // Clients waiting to attach to its next task: there will be none.
    d.attach_waiters.lock().unwrap().remove(id);
    let _ = std::fs::remove_dir_all(dir(d, id));
    d.execs.forget_container(id);
    Ok(())
}

/// `docker rm [-f] [-v]`.
#[tracing::instrument(skip_all, fields(container_id = %c.id))]
pub async fn remove(d: &State, c: &Container, force: bool, volumes: bool) -> Result<()> {
    // Restarting: waiting for its policy's delay, or just exited with its exit not yet
    // handled by the monitor, which will restart it (dockerd marks both at once).
    let about_to_restart = || async {
        let t = task(d, &c.id).await;
        state_name(t.as_ref()) == "exited"
            && t.is_some_and(|t| {
                crate::clock::now_unix() - crate::clock::unix_time(&t.exited_at) <= 2
                    && super::monitor::should_restart(&c.doc, t.exit_status)
            })
    };
    if !force && (c.doc.restarting || about_to_restart().await) {
        return Err(Error::Conflict(format!(
            "You cannot remove a restarting container {}. Stop the container before attempting removal or force remove",
            c.id
        )));
    }
    if is_running(d, &c.id).await {
        if !force {
            return Err(Error::RemoveRunning(c.id.clone()));
        }
        send_signal(d, &c.id, 9).await?;
        let _ = tokio::time::timeout(Duration::from_secs(10), wait_exit(d, &c.id)).await;
    }
    delete(d, &c.id).await?;
    tracing::info!("removed");
    events::container(d, c, "destroy");
    if volumes {
        mounts::remove_anonymous(d, &c.doc.mounts).await;
    }
    Ok(())
}

/// `docker rename`.
pub async fn rename(d: &State, c: &Container, new: &str) -> Result<()> {
    if new.is_empty() {
        return Err(Error::Invalid("rename: name is required".into()));
    }
    if !valid_name(new) {
        return Err(Error::BadName(new.to_string()));
    }
    let new = format!("/{}", new.trim_start_matches('/'));
    if new == c.name {
        return Err(Error::Conflict(
            "Renaming a container with the same name as its current name".into(),
        ));
    }
    if let Some(o) = all(d).await?.into_iter().find(|o| o.name == new) {
        return Err(Error::NameInUse {
            name: new,
            id: o.id,
        });
    }
    update_doc(d, &c.id, Some(&new), |_| {}).await?;
    events::container(d, c, "rename");
    Ok(())
}

/// `POST /containers/{id}/update`'s body: resources (0 or absent: unchanged) and the
/// restart policy.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateRequest {
    #[serde(default)]
    pub memory: Option<i64>,
    #[serde(default)]
    pub memory_swap: Option<i64>,
    #[serde(default)]
    pub cpu_shares: Option<i64>,
    #[serde(default)]
    pub nano_cpus: Option<i64>,
    #[serde(default)]
    pub cpu_quota: Option<i64>,
    #[serde(default)]
    pub cpu_period: Option<i64>,
    #[serde(default)]
    pub pids_limit: Option<i64>,
    #[serde(default)]
    pub restart_policy: Option<RestartPolicy>,
}

/// `docker update`: resources go to the running task (and are kept for later starts),
/// the restart policy to the stored HostConfig.
pub async fn update(d: &State, c: &Container, u: UpdateRequest) -> Result<()> {
    let mut host = c.doc.host_config.clone();
    let mut res = serde_json::json!({});
    let set = |v: Option<i64>| v.filter(|v| *v != 0);
    if let Some(m) = set(u.memory) {
        res["memory"]["limit"] = m.into();
        host.memory = Some(m);
    }
    if let Some(s) = set(u.memory_swap) {
        res["memory"]["swap"] = s.into();
        host.memory_swap = Some(s);
    }
    if let Some(s) = set(u.cpu_shares) {
        res["cpu"]["shares"] = s.into();
        host.cpu_shares = Some(s);
    }
    if let Some(n) = set(u.nano_cpus) {
        res["cpu"]["quota"] = (n / 10_000).into();
        res["cpu"]["period"] = 100_000.into();
        host.nano_cpus = Some(n);
    }
    if let Some(q) = set(u.cpu_quota) {
        res["cpu"]["quota"] = q.into();
        host.cpu_quota = Some(q);
    }
    if let Some(p) = set(u.cpu_period) {
        res["cpu"]["period"] = p.into();
        host.cpu_period = Some(p);
    }
    if let Some(p) = set(u.pids_limit) {
        res["pids"]["limit"] = p.into();
        host.pids_limit = Some(p);
    }
    if let Some(rp) = u.restart_policy {
        super::monitor::validate_policy(&rp, host.auto_remove())?;
        host.restart_policy = Some(rp);
    }
    let changed = res.as_object().is_some_and(|o| !o.is_empty());
    if changed && is_running(d, &c.id).await {
        d.images
            .mgr
            .tasks
            .clone()
            .update(pb::UpdateTaskRequest {
                container_id: c.id.clone(),
                resources: res.to_string().into_bytes(),
            })
            .await
            .map_err(|s| {
                Error::Internal(format!("Cannot update container {}: {}", c.id, s.message()))
            })?;
    }
    // Later starts apply the stored resources to the spec.
    update_doc(d, &c.id, None, |doc| {
        doc.host_config = host;
        if changed {
            doc.resources_updated = true;
        }
    })
    .await?;
    events::container(d, c, "update");
    Ok(())
}
