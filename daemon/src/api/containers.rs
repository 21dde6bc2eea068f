//! Container endpoints (first part): create, start, attach (hijacked, before start as the
//! CLI does it), wait, logs, kill, stop, list, inspect, delete; AutoRemove.
//!
//! A Docker container is a berth-manager container whose labels carry its Docker name and
//! configuration (`berth.docker/name`, `berth.docker/config`), with a snapshot of its image
//! as root filesystem and a task created at `create` (Docker's "created" state: the runtime
//! holds the init at its start barrier). State therefore lives in the manager's store and
//! survives berthd restarts.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as AxPath, RawQuery, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_proto::manager as pb;

use super::images::{unix_time, url_pairs};
use super::{streams, ApiError, State};

const NAME: &str = "berth.docker/name";
const CONFIG: &str = "berth.docker/config";

pub fn routes() -> Router<State> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(streams::attach))
        .route("/containers/{id}/resize", post(streams::resize))
        .route("/containers/{id}/logs", get(streams::logs))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}", delete(remove))
}

pub(super) fn status_err(s: tonic::Status) -> ApiError {
    let code = match s.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::AlreadyExists => StatusCode::CONFLICT,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::FailedPrecondition => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(code, s.message().to_string())
}

pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

pub(super) fn new_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(super) fn valid_name(n: &str) -> bool {
    let n = n.trim_start_matches('/');
    let b = n.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A Docker container as the manager stores it.
pub(super) struct Ctr {
    pub id: String,
    pub name: String,
    /// {"Config", "HostConfig", "Created", "Image" (ID), "ImageName"}
    pub doc: serde_json::Value,
    pub log_path: String,
}

fn to_ctr(c: pb::Container) -> Option<Ctr> {
    let name = c.labels.get(NAME)?.clone();
    let doc = serde_json::from_str(c.labels.get(CONFIG)?).ok()?;
    Some(Ctr {
        id: c.id,
        name,
        doc,
        log_path: c.log.map(|l| l.path).unwrap_or_default(),
    })
}

pub(super) async fn all(d: &State) -> Result<Vec<Ctr>, ApiError> {
    let list = d
        .images
        .mgr
        .containers
        .clone()
        .list(pb::ListContainersRequest::default())
        .await
        .map_err(status_err)?
        .into_inner()
        .containers;
    Ok(list.into_iter().filter_map(to_ctr).collect())
}

/// By name (with or without '/'), full id, or unique id prefix.
pub(super) async fn find(d: &State, what: &str) -> Result<Ctr, ApiError> {
    let name = format!("/{}", what.trim_start_matches('/'));
    let cs = all(d).await?;
    let mut prefix = Vec::new();
    for c in cs {
        if c.id == what || c.name == name {
            return Ok(c);
        }
        if what.len() >= 3 && c.id.starts_with(what) {
            prefix.push(c);
        }
    }
    match prefix.len() {
        1 => Ok(prefix.pop().expect("one")),
        0 => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("No such container: {what}"),
        )),
        _ => Err(ApiError::bad_request(format!(
            "multiple containers match the ID prefix {what}"
        ))),
    }
}

pub(super) async fn task(d: &State, id: &str) -> Option<pb::Task> {
    d.images
        .mgr
        .tasks
        .clone()
        .get(pb::ContainerRef { id: id.to_string() })
        .await
        .ok()
        .map(|t| t.into_inner())
}

/// Wait for the init of container `id` to exit.
pub(super) async fn wait_exit(
    d: &State,
    id: &str,
) -> Result<tonic::Response<pb::ExitStatus>, tonic::Status> {
    d.images
        .mgr
        .tasks
        .clone()
        .wait(pb::ProcessRef {
            container_id: id.to_string(),
            exec_id: String::new(),
        })
        .await
}

/// Docker's boolean query values.
pub(super) fn is_true(q: &std::collections::BTreeMap<String, String>, k: &str) -> bool {
    q.get(k)
        .is_some_and(|v| v == "1" || v == "true" || v == "True")
}

pub(super) fn state_name(t: Option<&pb::Task>) -> &'static str {
    match t.map(|t| t.status) {
        Some(s) if s == pb::Status::Running as i32 => "running",
        Some(s) if s == pb::Status::Paused as i32 => "paused",
        Some(s) if s == pb::Status::Stopped as i32 => "exited",
        _ => "created",
    }
}

/// PortBindings as Docker checks them: keys `port[-port][/tcp|udp|sctp]`, host ports
/// numeric (or a range) or empty. They are stored for the networking issue.
fn validate_ports(pb: &serde_json::Value) -> Result<(), ApiError> {
    let Some(map) = pb.as_object() else {
        return if pb.is_null() {
            Ok(())
        } else {
            Err(ApiError::bad_request("PortBindings must be an object"))
        };
    };
    let port_ok = |p: &str| {
        let (a, b) = p.split_once('-').unwrap_or((p, p));
        matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(x), Ok(y)) if x > 0 && x <= y)
    };
    for (k, v) in map {
        let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        if !port_ok(port) || !matches!(proto, "tcp" | "udp" | "sctp") {
            return Err(ApiError::bad_request(format!(
                "invalid port specification: \"{k}\""
            )));
        }
        for b in v.as_array().cloned().unwrap_or_default() {
            let hp = b["HostPort"].as_str().unwrap_or("");
            if !hp.is_empty() && !port_ok(hp) {
                return Err(ApiError::bad_request(format!(
                    "invalid port specification: \"{hp}\""
                )));
            }
            let ip = b["HostIp"].as_str().unwrap_or("");
            if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
                return Err(ApiError::bad_request(format!("invalid IP address: {ip}")));
            }
        }
    }
    Ok(())
}

/// The state as Docker shows it: an exited container waiting for its restart policy's
/// delay is "restarting".
fn shown_state(c: &Ctr, t: Option<&pb::Task>) -> &'static str {
    match state_name(t) {
        "exited" if c.doc["Restarting"].as_bool().unwrap_or(false) => "restarting",
        s => s,
    }
}

/// The container's config over its image's (Env merged by key, Labels merged), with every
/// list Docker's schema declares present.
async fn effective_config(d: &State, c: &Ctr) -> serde_json::Value {
    let mut cfg = c.doc["Config"].clone();
    if !cfg.is_object() {
        cfg = serde_json::json!({});
    }
    let image = match d.images.find(c.doc["Image"].as_str().unwrap_or("")).await {
        Ok(img) => d.images.resolve_record(&img).await.ok(),
        Err(_) => None,
    };
    let mut run = image
        .and_then(|r| r.config.config.clone())
        .unwrap_or_default();
    crate::instructions::overlay(&mut run, &cfg);
    let merged = serde_json::to_value(&run).unwrap_or_default();
    for (k, v) in [
        ("Env", "Env"),
        ("Cmd", "Cmd"),
        ("Entrypoint", "Entrypoint"),
        ("WorkingDir", "WorkingDir"),
        ("User", "User"),
        ("Labels", "Labels"),
        ("ExposedPorts", "ExposedPorts"),
        ("Volumes", "Volumes"),
        ("StopSignal", "StopSignal"),
    ] {
        if !merged[v].is_null() {
            cfg[k] = merged[v].clone();
        }
    }
    for k in ["Env", "Entrypoint", "Shell", "OnBuild"] {
        if cfg[k].is_null() {
            cfg.as_object_mut().map(|o| o.remove(k));
        }
    }
    for (k, v) in [("WorkingDir", ""), ("User", "")] {
        if cfg[k].is_null() {
            cfg[k] = v.into();
        }
    }
    if cfg["Labels"].is_null() {
        cfg["Labels"] = serde_json::json!({});
    }
    cfg
}

/// A container's mounts as inspect shows them.
fn shown_mounts(m: &serde_json::Value) -> serde_json::Value {
    let mut list = m.as_array().cloned().unwrap_or_default();
    for x in &mut list {
        if let Some(o) = x.as_object_mut() {
            o.remove("Anonymous");
        }
    }
    list.into()
}

pub(super) fn strs(v: &serde_json::Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    })
}

/// HostConfig + Config → the spec generator's options.
fn options(
    cfg: &serde_json::Value,
    host: &serde_json::Value,
) -> Result<berth_manager::oci::Options, ApiError> {
    let mut o = berth_manager::oci::Options {
        args: strs(&cfg["Cmd"]).filter(|c| !c.is_empty()),
        // `--entrypoint ""` (sent as [""]) resets the image's entrypoint to none.
        entrypoint: strs(&cfg["Entrypoint"]).filter(|c| !c.is_empty()).map(|c| {
            if c == [""] {
                Vec::new()
            } else {
                c
            }
        }),
        env: strs(&cfg["Env"]).unwrap_or_default(),
        tty: cfg["Tty"].as_bool().unwrap_or(false),
        user: cfg["User"]
            .as_str()
            .filter(|u| !u.is_empty())
            .map(String::from),
        workdir: cfg["WorkingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .map(String::from),
        hostname: cfg["Hostname"]
            .as_str()
            .filter(|h| !h.is_empty())
            .map(String::from),
        privileged: host["Privileged"].as_bool().unwrap_or(false),
        read_only: host["ReadonlyRootfs"].as_bool().unwrap_or(false),
        cap_add: strs(&host["CapAdd"]).unwrap_or_default(),
        cap_drop: strs(&host["CapDrop"]).unwrap_or_default(),
        ..Default::default()
    };
    // The namespace itself is set up by `create` (see attach_network), which also checks
    // that a named network exists.
    if host["NetworkMode"].as_str() == Some("host") {
        o.network = berth_manager::oci::NsMode::Host;
    }
    if let Some(m) = host["Memory"].as_i64().filter(|m| *m > 0) {
        o.memory = Some(m);
        o.memory_swap = host["MemorySwap"].as_i64().filter(|s| *s != 0);
    }
    if let Some(s) = host["CpuShares"].as_u64().filter(|s| *s > 0) {
        o.cpu_shares = Some(s);
    }
    if let Some(n) = host["NanoCpus"].as_i64().filter(|n| *n > 0) {
        o.cpu_period = Some(100_000);
        o.cpu_quota = Some(n / 10_000);
    }
    if let Some(p) = host["PidsLimit"].as_i64().filter(|p| *p > 0) {
        o.pids_limit = Some(p);
    }
    if let Some(t) = host["Tmpfs"].as_object() {
        for (k, v) in t {
            o.tmpfs
                .insert(k.clone(), v.as_str().unwrap_or("").to_string());
        }
    }
    if let Some(us) = host["Ulimits"].as_array() {
        for u in us {
            o.ulimits.push(berth_manager::oci::Ulimit {
                name: u["Name"].as_str().unwrap_or("").to_string(),
                soft: u["Soft"].as_u64().unwrap_or(0),
                hard: u["Hard"].as_u64().unwrap_or(0),
            });
        }
    }
    Ok(o)
}

/// The daemon's default-ulimits for names the container did not set.
fn default_ulimits(d: &State, o: &mut berth_manager::oci::Options) {
    for (name, u) in &d.images.reg.cfg.default_ulimits {
        if !o.ulimits.iter().any(|x| &x.name == name) {
            o.ulimits.push(berth_manager::oci::Ulimit {
                name: name.clone(),
                soft: u["Soft"].as_u64().unwrap_or(0),
                hard: u["Hard"].as_u64().unwrap_or(0),
            });
        }
    }
}

/// HostConfig.LogConfig over daemon.json's log-driver/log-opts: json-file with rotation
/// (max-size, max-file) or none.
fn log_config(
    d: &State,
    host: &serde_json::Value,
    path: &std::path::Path,
) -> Result<pb::LogConfig, ApiError> {
    let cfg = &d.images.reg.cfg;
    let lc = &host["LogConfig"];
    let driver = lc["Type"]
        .as_str()
        .filter(|t| !t.is_empty())
        .or(cfg.log_driver.as_deref())
        .unwrap_or("json-file");
    if driver != "json-file" && driver != "none" {
        return Err(ApiError::bad_request(format!(
            "logging driver {driver:?} is not supported (json-file or none)"
        )));
    }
    let opt = |k: &str| -> Option<String> {
        lc["Config"][k]
            .as_str()
            .map(String::from)
            .or_else(|| cfg.log_opts.get(k).cloned())
    };
    let max_size = match opt("max-size") {
        Some(s) => crate::config::parse_size(&s)
            .ok_or_else(|| ApiError::bad_request(format!("invalid log-opt max-size {s:?}")))?,
        None => 0,
    };
    let max_files = match opt("max-file") {
        Some(n) => n
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::bad_request(format!("invalid log-opt max-file {n:?}")))?,
        None => 1,
    };
    Ok(pb::LogConfig {
        path: path.display().to_string(),
        max_size,
        max_files,
        disabled: driver == "none",
    })
}

pub(super) async fn create(
    AxState(d): AxState<State>,
    RawQuery(q): RawQuery,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    if body.len() > 4 << 20 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is larger than 4 MiB",
        ));
    }
    let cfg: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    if !cfg.is_object() {
        return Err(ApiError::bad_request("invalid JSON: want an object"));
    }
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let id = new_id();
    let name = match query.get("name").filter(|n| !n.is_empty()) {
        Some(n) if !valid_name(n) => {
            return Err(ApiError::bad_request(format!(
                "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )))
        }
        Some(n) => format!("/{}", n.trim_start_matches('/')),
        None => format!("/berth_{}", &id[..12]),
    };
    if let Some(other) = all(&d).await?.into_iter().find(|c| c.name == name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "Conflict. The container name \"{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            ),
        ));
    }
    let image = cfg["Image"]
        .as_str()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad_request("config: Image is required"))?
        .to_string();
    if !cfg["Cmd"].is_null() && !cfg["Cmd"].is_array() && !cfg["Cmd"].is_string() {
        return Err(ApiError::bad_request(
            "config: Cmd must be a list of strings",
        ));
    }
    let mut host = cfg["HostConfig"].clone();
    if !host.is_null() && !host.is_object() {
        return Err(ApiError::bad_request("HostConfig must be an object"));
    }
    validate_ports(&host["PortBindings"])?;
    super::restart::validate(
        &host["RestartPolicy"],
        host["AutoRemove"].as_bool().unwrap_or(false),
    )?;
    let mut opts = options(&cfg, &host)?;
    default_ulimits(&d, &mut opts);
    let log_path = d
        .data_root
        .join("containers")
        .join(&id)
        .join(format!("{id}-json.log"));
    let log = log_config(&d, &host, &log_path)?;
    // Inspect (and logs) show the driver in effect, the daemon's default included.
    if host.is_null() {
        host = serde_json::json!({});
    }
    host["LogConfig"]["Type"] = if log.disabled { "none" } else { "json-file" }.into();
    if !host["LogConfig"]["Config"].is_object() {
        host["LogConfig"]["Config"] = serde_json::json!({});
    }
    let parent = host["CgroupParent"]
        .as_str()
        .filter(|p| !p.is_empty())
        .unwrap_or(&d.cgroup_parent);
    opts.cgroups_path = Some(format!("/{}/{id}", parent.trim_matches('/')));
    let img = d
        .images
        .find(&image)
        .await
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("No such image: {image}")))?;
    let res = d.images.resolve_record(&img).await?;
    let image_cfg: berth_manager::oci::ImageConfig =
        (&res.config.config.clone().unwrap_or_default()).into();
    let net_doc = match attach_network(&d, &id, &name, &cfg, &host, &mut opts).await {
        Ok(n) => n,
        Err(e) => return Err(e),
    };
    let wants = match super::volumes::wants(&d, &cfg, &host, &image_cfg.volumes).await {
        Ok(w) => w,
        Err(e) => {
            d.net.detach(&id).await;
            return Err(e);
        }
    };
    let (mount_docs, mount_opts, seeds) = super::volumes::realize(&d, &wants)?;
    let mount_docs = serde_json::Value::from(mount_docs);
    opts.mounts.extend(mount_opts);
    let mgr = &d.images.mgr;
    let chain = mgr
        .images
        .clone()
        .unpack(pb::UnpackRequest {
            name: img.name.clone(),
            lease: String::new(),
        })
        .await
        .map_err(status_err)?
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
        .await
        .map_err(status_err)?
        .into_inner()
        .mounts;
    let undo_snapshot = || async {
        let _ = mgr
            .snapshots
            .clone()
            .remove(pb::SnapshotRef { key: id.clone() })
            .await;
        super::volumes::remove_anonymous(&d, &mount_docs).await;
        d.net.detach(&id).await;
    };
    // Read /etc/passwd and /etc/group of the container's filesystem for the spec.
    let tmp = d
        .data_root
        .join("tmp")
        .join(format!("rootfs-{}", &id[..12]));
    let mounts: Vec<berth_manager::images::snapshots::Mount> =
        mounts.into_iter().map(Into::into).collect();
    let spec = berth_manager::images::snapshots::with_mounted(&mounts, &tmp, |root| {
        for (target, data) in &seeds {
            crate::volumes::seed(root, target, std::path::Path::new(data))
                .map_err(|e| internal(format!("copy the image's {target} into its volume: {e}")))?;
        }
        let spec = berth_manager::oci::generate(&id, root, &image_cfg, &opts)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        // Like dockerd: a working directory the image lacks is created (owned by root).
        if let Some(cwd) = spec["process"]["cwd"].as_str().filter(|c| *c != "/") {
            let rootfd: std::os::fd::OwnedFd = std::fs::File::open(root).map_err(internal)?.into();
            super::build::files::mkdir_p(&rootfd, cwd, None).map_err(|e| {
                ApiError::bad_request(format!("create the working directory {cwd}: {e}"))
            })?;
        }
        Ok(spec)
    })
    .map_err(internal)
    .and_then(|r| r);
    let spec = match spec {
        Ok(s) => s,
        Err(e) => {
            undo_snapshot().await;
            return Err(e);
        }
    };
    let mut stored = cfg.clone();
    if let Some(o) = stored.as_object_mut() {
        o.remove("HostConfig");
    }
    let doc = serde_json::json!({
        "Config": stored,
        "HostConfig": host,
        "Created": crate::images::now_rfc3339(),
        "Mounts": mount_docs,
        "Image": res.id(),
        "ImageName": image,
        "Net": net_doc,
        "Path": spec["process"]["args"][0],
        "Args": spec["process"]["args"].as_array().map(|a| a[1..].to_vec()).unwrap_or_default(),
    });
    let labels = [
        (NAME.to_string(), name.clone()),
        (CONFIG.to_string(), doc.to_string()),
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
                ..Default::default()
            }),
        })
        .await;
    if let Err(s) = created {
        undo_snapshot().await;
        return Err(status_err(s));
    }
    if let Err(e) = create_task(&d, &id, &cfg).await {
        let _ = mgr
            .containers
            .clone()
            .delete(pb::ContainerRef { id: id.clone() })
            .await;
        d.net.detach(&id).await;
        return Err(e);
    }
    if let Ok(c) = find(&d, &id).await {
        super::events::container(&d, &c, "create");
    }
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "Id": id, "Warnings": [] })),
    )
        .into_response())
}

/// The container's network (`--network`): its namespace in the spec, its /etc/hosts,
/// /etc/hostname and /etc/resolv.conf bind-mounted. Returns what the document keeps.
async fn attach_network(
    d: &State,
    id: &str,
    name: &str,
    cfg: &serde_json::Value,
    host: &serde_json::Value,
    opts: &mut berth_manager::oci::Options,
) -> Result<serde_json::Value, ApiError> {
    use berth_manager::oci::NsMode;
    let mode = host["NetworkMode"].as_str().unwrap_or("").to_string();
    if mode == "host" && opts.hostname.is_none() {
        // Like dockerd: the host's name on the host's network.
        opts.hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok());
    }
    let hostname = opts
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    let etc_dir = d.data_root.join("containers").join(id);
    let mut shared_etc = None;
    let mut endpoint = None;
    if let Some(other) = mode.strip_prefix("container:") {
        let o = find(d, other).await?;
        let pid = task(d, &o.id)
            .await
            .filter(|t| t.pid > 0 && matches!(state_name(Some(t)), "running" | "paused"))
            .map(|t| t.pid)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "cannot join network namespace of a non running container: {}",
                        o.id
                    ),
                )
            })?;
        opts.network = NsMode::Path(format!("/proc/{pid}/ns/net"));
        shared_etc = Some(d.data_root.join("containers").join(&o.id));
    } else {
        let user_net = !matches!(mode.as_str(), "" | "default" | "bridge" | "none" | "host");
        if user_net && d.net.find(&mode).await.is_none() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("network {mode} not found"),
            ));
        }
        let mut req = crate::network::EndpointRequest::from_config(
            name,
            &cfg["NetworkingConfig"]["EndpointsConfig"][&mode],
            cfg["MacAddress"].as_str(),
        )
        .map_err(ApiError::bad_request)?;
        let links = links_of(d, host).await?;
        if !links.is_empty() && matches!(mode.as_str(), "none" | "host") {
            return Err(ApiError::bad_request(format!(
                "conflicting options: {mode} type networking can't be used with links"
            )));
        }
        if user_net {
            // On a user-defined network a link is a name only the linking container sees.
            req.links.extend(links);
        }
        let a = d.net.attach(id, &mode, &req).await.map_err(|e| {
            if e.contains("user defined networks only") || e.starts_with("invalid address") {
                ApiError::bad_request(e)
            } else {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e)
            }
        })?;
        if let Some(ns) = &a.netns {
            opts.network = NsMode::Path(ns.display().to_string());
        }
        endpoint = a.endpoint;
    }
    let files = match &shared_etc {
        Some(dir) => ["hosts", "hostname", "resolv.conf"]
            .iter()
            .map(|f| (format!("/etc/{f}"), dir.join(f)))
            .filter(|(_, p)| p.exists())
            .collect(),
        None => {
            let user_net = !matches!(mode.as_str(), "" | "default" | "bridge" | "none" | "host");
            let mut dns = strs(&host["Dns"]).unwrap_or_default();
            if user_net && dns.is_empty() {
                // The embedded DNS (it forwards what it does not know).
                dns.push(crate::network::dns::ADDR.to_string());
            }
            let made = crate::network::Net::etc_files(
                &etc_dir,
                &hostname,
                endpoint.as_ref(),
                mode == "host",
                &strs(&host["ExtraHosts"]).unwrap_or_default(),
                &dns,
            );
            match made {
                Ok(f) => f,
                Err(e) => {
                    d.net.detach(id).await;
                    return Err(ApiError::bad_request(e));
                }
            }
        }
    };
    for (dest, src) in files {
        opts.mounts.push(berth_manager::oci::MountOpt {
            source: src.display().to_string(),
            destination: dest,
            kind: "bind".into(),
            read_only: false,
            options: vec!["rbind".into(), "rprivate".into()],
        });
    }
    Ok(serde_json::json!({
        "Mode": if mode.is_empty() { "default".to_string() } else { mode },
        "Endpoint": endpoint,
    }))
}

/// `HostConfig.Links` (`--link NAME[:ALIAS]`), each naming an existing container.
async fn links_of(d: &State, host: &serde_json::Value) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for l in host["Links"].as_array().into_iter().flatten() {
        let l = l.as_str().unwrap_or("");
        let (name, alias) = crate::network::parse_link(l).map_err(ApiError::bad_request)?;
        if find(d, &name).await.is_err() {
            return Err(ApiError::bad_request(format!(
                "could not get container for {name}"
            )));
        }
        out.push((name, alias));
    }
    Ok(out)
}

/// On the default bridge, `--link`s are lines of /etc/hosts, written at each start with
/// the linked containers' current addresses (they must run, as with Docker).
async fn link_hosts(d: &State, c: &Ctr) -> Result<(), ApiError> {
    let mode = c.doc["Net"]["Mode"].as_str().unwrap_or("default");
    if !matches!(mode, "default" | "bridge") {
        return Ok(());
    }
    let links = links_of(d, &c.doc["HostConfig"]).await?;
    let mut entries = Vec::new();
    for (name, alias) in links {
        let target = find(d, &name).await?;
        let ip = d
            .net
            .endpoint(&target.id)
            .await
            .filter(|e| !e.released)
            .map(|e| e.ip)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "Cannot link to a non running container: /{name} AS {}/{alias}",
                        c.name
                    ),
                )
            })?;
        entries.push((ip, alias, name));
    }
    if entries.is_empty() {
        return Ok(());
    }
    let dir = d.data_root.join("containers").join(&c.id);
    crate::network::Net::link_hosts(&dir, &entries).map_err(internal)
}

/// Bind the container's published ports (`-p`, `-P`): at start, released at exit.
async fn publish_ports(d: &State, c: &Ctr) -> Result<serde_json::Value, ApiError> {
    let Some(ep) = d.net.endpoint(&c.id).await else {
        return Ok(serde_json::json!({}));
    };
    let host = &c.doc["HostConfig"];
    let mut wants = Vec::new();
    let mut exposed: std::collections::BTreeSet<String> = c.doc["Config"]["ExposedPorts"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if host["PublishAllPorts"].as_bool().unwrap_or(false) {
        if let Ok(img) = d.images.find(c.doc["Image"].as_str().unwrap_or("")).await {
            if let Ok(r) = d.images.resolve_record(&img).await {
                for k in r
                    .config
                    .config
                    .and_then(|c| c.exposed_ports)
                    .unwrap_or_default()
                    .keys()
                {
                    exposed.insert(k.clone());
                }
            }
        }
    }
    let bindings = host["PortBindings"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let key_of = |k: &str| -> Option<(u16, String)> {
        let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        Some((p.parse().ok()?, proto.to_string()))
    };
    for (k, list) in &bindings {
        let Some((port, proto)) = key_of(k) else {
            continue;
        };
        for b in list.as_array().cloned().unwrap_or_default() {
            let ip = b["HostIp"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("0.0.0.0");
            let host_ip = ip.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid host IP {ip:?} for port {k}"))
            })?;
            let hp = b["HostPort"].as_str().unwrap_or("");
            let host_port = if hp.is_empty() {
                0
            } else {
                hp.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid host port {hp:?} for port {k}"))
                })?
            };
            wants.push(crate::network::ports::Want {
                proto: proto.clone(),
                container_port: port,
                host_ip,
                host_port,
            });
        }
    }
    if host["PublishAllPorts"].as_bool().unwrap_or(false) {
        for k in &exposed {
            if bindings.contains_key(k) {
                continue;
            }
            if let Some((port, proto)) = key_of(k) {
                wants.push(crate::network::ports::Want {
                    proto,
                    container_port: port,
                    host_ip: std::net::Ipv4Addr::UNSPECIFIED,
                    host_port: 0,
                });
            }
        }
    }
    if wants.is_empty() {
        return Ok(serde_json::json!({}));
    }
    let ip = ep.ip.parse().map_err(internal)?;
    let rules = d
        .net
        .ports
        .publish(&c.id, ip, &wants)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    d.net.refresh_rules().await;
    let mut ports = serde_json::Map::new();
    for r in rules {
        let e = ports
            .entry(format!("{}/{}", r.container_port, r.proto))
            .or_insert_with(|| serde_json::json!([]));
        e.as_array_mut().expect("array").push(serde_json::json!({
            "HostIp": r.host_ip.to_string(),
            "HostPort": r.host_port.to_string(),
        }));
    }
    Ok(serde_json::Value::Object(ports))
}

/// At berthd's start: drop what belongs to containers that are gone, and publish again the
/// ports of the running ones (live restore: the proxies lived in the old berthd).
pub(super) async fn restore_network(d: &State) {
    let mut cs = None;
    for _ in 0..100 {
        if let Ok(l) = all(d).await {
            cs = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(cs) = cs else { return };
    // Exits are handled after this (their release then undoes what is published here).
    let _g = d.exit_lock.lock().await;
    let exist = cs.iter().map(|c| c.id.clone()).collect();
    let mut states = std::collections::HashMap::new();
    for c in &cs {
        states.insert(c.id.clone(), state_name(task(d, &c.id).await.as_ref()));
    }
    let active = states
        .iter()
        .filter(|(_, s)| matches!(**s, "running" | "paused" | "created"))
        .map(|(k, _)| k.clone())
        .collect();
    d.net.reconcile(&exist, &active).await;
    for c in cs {
        let running = matches!(states.get(&c.id).copied(), Some("running" | "paused"));
        let Some(published) = c.doc["PublishedPorts"]
            .as_object()
            .filter(|p| !p.is_empty())
        else {
            continue;
        };
        // (Not if its exit was handled meanwhile: the endpoint is released then.)
        let Some(ep) = d
            .net
            .endpoint(&c.id)
            .await
            .filter(|e| running && !e.released)
        else {
            continue;
        };
        let mut wants = Vec::new();
        for (k, list) in published {
            let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            for b in list.as_array().cloned().unwrap_or_default() {
                if let (Ok(container_port), Some(Ok(host_ip)), Some(Ok(host_port))) = (
                    port.parse(),
                    b["HostIp"].as_str().map(str::parse),
                    b["HostPort"].as_str().map(str::parse),
                ) {
                    wants.push(crate::network::ports::Want {
                        proto: proto.to_string(),
                        container_port,
                        host_ip,
                        host_port,
                    });
                }
            }
        }
        if let Ok(ip) = ep.ip.parse() {
            if let Err(e) = d.net.ports.publish(&c.id, ip, &wants).await {
                tracing::warn!(container = %c.id, "publish its ports again: {e}");
            }
        }
    }
    d.net.refresh_rules().await;
}

/// The `Ports` of a container list entry (published ones while it runs, exposed ones).
fn list_ports(c: &Ctr, running: bool) -> serde_json::Value {
    let mut out = Vec::new();
    let published = c.doc["PublishedPorts"].as_object().filter(|_| running);
    for (k, _) in c.doc["Config"]["ExposedPorts"]
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        if published.is_some_and(|p| p.contains_key(&k)) {
            continue;
        }
        let (p, proto) = k.split_once('/').unwrap_or((&k, "tcp"));
        out.push(serde_json::json!({"PrivatePort": p.parse::<u16>().unwrap_or(0), "Type": proto}));
    }
    for (k, list) in published.cloned().unwrap_or_default() {
        let (p, proto) = k.split_once('/').unwrap_or((&k, "tcp"));
        for b in list.as_array().cloned().unwrap_or_default() {
            out.push(serde_json::json!({
                "IP": b["HostIp"],
                "PrivatePort": p.parse::<u16>().unwrap_or(0),
                "PublicPort": b["HostPort"].as_str().and_then(|h| h.parse::<u16>().ok()).unwrap_or(0),
                "Type": proto,
            }));
        }
    }
    out.into()
}

/// `NetworkSettings` as inspect shows it.
pub(super) fn network_settings(c: &Ctr, running: bool) -> serde_json::Value {
    let mut ports = serde_json::Map::new();
    for k in c.doc["Config"]["ExposedPorts"]
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        ports.insert(k, serde_json::Value::Null);
    }
    if running {
        if let Some(p) = c.doc["PublishedPorts"].as_object() {
            for (k, v) in p {
                ports.insert(k.clone(), v.clone());
            }
        }
    }
    let net = &c.doc["Net"];
    let mode = net["Mode"].as_str().unwrap_or("default");
    let ep = &net["Endpoint"];
    let mut networks = serde_json::Map::new();
    let name = match mode {
        "default" => "bridge",
        m => m,
    };
    // Addresses are the running container's: released at exit, like Docker's.
    let live = |v: &serde_json::Value| -> String {
        if running {
            v.as_str().unwrap_or("").to_string()
        } else {
            String::new()
        }
    };
    // One entry per endpoint (EndpointSettings): the first network's, then connected ones.
    let entry = |e: &serde_json::Value| {
        serde_json::json!({
            "IPAMConfig": null,
            "Links": [],
            "Aliases": e["aliases"].as_array().cloned().unwrap_or_default(),
            "MacAddress": live(&e["mac"]),
            "NetworkID": e["network_id"].as_str().unwrap_or(""),
            "EndpointID": live(&e["id"]),
            "Gateway": live(&e["gateway"]),
            "IPAddress": live(&e["ip"]),
            "IPPrefixLen": if running { e["prefix"].as_u64().unwrap_or(0) } else { 0 },
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DriverOpts": null,
            "DNSNames": [],
        })
    };
    match ep["network"].as_str() {
        // The first endpoint, under its network's name (a connect after a disconnect from
        // the creation network may have put it on another one).
        Some(n) => {
            networks.insert(n.to_string(), entry(ep));
        }
        None if matches!(name, "host" | "none") => {
            networks.insert(name.to_string(), entry(ep));
        }
        // container: mode, or disconnected from the network it was created on.
        None => {}
    }
    for e in net["Extra"].as_array().cloned().unwrap_or_default() {
        if let Some(n) = e["network"].as_str() {
            networks.insert(n.to_string(), entry(&e));
        }
    }
    serde_json::json!({
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": "",
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": live(&ep["id"]),
        "Gateway": live(&ep["gateway"]),
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": live(&ep["ip"]),
        "IPPrefixLen": if running { ep["prefix"].as_u64().unwrap_or(0) } else { 0 },
        "IPv6Gateway": "",
        "MacAddress": live(&ep["mac"]),
        "Networks": networks,
    })
}

async fn create_task(d: &State, id: &str, cfg: &serde_json::Value) -> Result<(), ApiError> {
    d.images
        .mgr
        .tasks
        .clone()
        .create(pb::CreateTaskRequest {
            container_id: id.to_string(),
            terminal: cfg["Tty"].as_bool().unwrap_or(false),
            stdin: cfg["OpenStdin"].as_bool().unwrap_or(false),
        })
        .await
        .map_err(status_err)?;
    Ok(())
}

async fn start(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
) -> Result<Response, ApiError> {
    let c = find(&d, &what).await?;
    if start_container(&d, &c).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(StatusCode::NOT_MODIFIED.into_response())
    }
}

/// The resource fields of a HostConfig onto a spec (a `docker update` is kept for the next
/// start).
fn patch_resources(spec: &mut serde_json::Value, host: &serde_json::Value) {
    let r = &mut spec["linux"]["resources"];
    if let Some(m) = host["Memory"].as_i64().filter(|m| *m > 0) {
        r["memory"]["limit"] = m.into();
    }
    if let Some(m) = host["MemorySwap"].as_i64().filter(|m| *m != 0) {
        r["memory"]["swap"] = m.into();
    }
    if let Some(v) = host["CpuShares"].as_u64().filter(|v| *v > 0) {
        r["cpu"]["shares"] = v.into();
    }
    if let Some(n) = host["NanoCpus"].as_i64().filter(|n| *n > 0) {
        r["cpu"]["period"] = 100_000.into();
        r["cpu"]["quota"] = (n / 10_000).into();
    }
    if let Some(p) = host["PidsLimit"].as_i64().filter(|p| *p > 0) {
        r["pids"]["limit"] = p.into();
    }
}

/// Start the container's init (a new task when the last one exited). False if it was
/// running already.
pub(super) async fn start_container(d: &State, c: &Ctr) -> Result<bool, ApiError> {
    let tasks = d.images.mgr.tasks.clone();
    let current = task(d, &c.id).await;
    if current.as_ref().is_some_and(|t| {
        t.status == pb::Status::Running as i32 || t.status == pb::Status::Paused as i32
    }) {
        return Ok(false);
    }
    // (Before anything is made: a link to a stopped container refuses the start.)
    link_hosts(d, c).await?;
    match current {
        Some(t) if t.status == pb::Status::Stopped as i32 => {
            tasks
                .clone()
                .delete(pb::ProcessRef {
                    container_id: c.id.clone(),
                    exec_id: String::new(),
                })
                .await
                .map_err(status_err)?;
            if c.doc["ResourcesUpdated"].as_bool().unwrap_or(false) {
                let mut mc = d
                    .images
                    .mgr
                    .containers
                    .clone()
                    .get(pb::ContainerRef { id: c.id.clone() })
                    .await
                    .map_err(status_err)?
                    .into_inner();
                let mut spec: serde_json::Value =
                    serde_json::from_slice(&mc.spec).map_err(internal)?;
                patch_resources(&mut spec, &c.doc["HostConfig"]);
                mc.spec = serde_json::to_vec(&spec).expect("json");
                d.images
                    .mgr
                    .containers
                    .clone()
                    .update(pb::UpdateContainerRequest {
                        id: c.id.clone(),
                        spec: mc.spec,
                        ..Default::default()
                    })
                    .await
                    .map_err(status_err)?;
            }
            reattach_network(d, c).await?;
            if let Err(e) = create_task(d, &c.id, &c.doc["Config"]).await {
                d.net.release(&c.id).await;
                return Err(e);
            }
        }
        Some(_) => {}
        None => {
            reattach_network(d, c).await?;
            create_task(d, &c.id, &c.doc["Config"]).await?
        }
    }
    // The document is updated while the task starts (a store write is not on the start's
    // critical path). `update_doc` takes the document lock at its first poll, before the
    // start request leaves, and the exit handler takes that lock before reading: an init
    // that exits at once is handled with these values.
    let published = publish_ports(d, c).await?;
    let record = update_doc(d, &c.id, None, |doc| {
        doc["PublishedPorts"] = published;
        doc["StartedAt"] = crate::images::now_rfc3339().into();
        doc["OOMKilled"] = false.into();
        doc["ManualStop"] = false.into();
        doc["ResourcesUpdated"] = false.into();
        doc["Restarting"] = false.into();
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
    started.map_err(status_err)?;
    super::events::container(d, c, "start");
    Ok(true)
}

/// The network a stopped container had, plugged in again (see `Net::reattach`); its
/// document and /etc/hosts follow when an address changed.
async fn reattach_network(d: &State, c: &Ctr) -> Result<(), ApiError> {
    let mode = c.doc["Net"]["Mode"].as_str().unwrap_or("default");
    let Some((first, extra)) = d
        .net
        .reattach(&c.id, mode)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?
    else {
        return Ok(());
    };
    let old = c.doc["Net"]["Endpoint"]["ip"].as_str().unwrap_or("");
    let new = first.as_ref().map(|e| e.ip.as_str()).unwrap_or("");
    if old != new {
        let dir = d.data_root.join("containers").join(&c.id);
        crate::network::Net::retarget_hosts(&dir, old, new).map_err(internal)?;
    }
    update_doc(d, &c.id, None, |doc| {
        doc["Net"]["Endpoint"] = serde_json::to_value(&first).expect("json");
        doc["Net"]["Extra"] = serde_json::to_value(&extra).expect("json");
    })
    .await
}

/// Change the stored name and/or document of a container: `f` edits the current document
/// (read under a lock, so concurrent edits of different fields all land).
pub(super) async fn update_doc(
    d: &State,
    id: &str,
    name: Option<&str>,
    f: impl FnOnce(&mut serde_json::Value),
) -> Result<(), ApiError> {
    let _g = d.doc_lock.lock().await;
    let mc = d
        .images
        .mgr
        .containers
        .clone()
        .get(pb::ContainerRef { id: id.to_string() })
        .await
        .map_err(status_err)?
        .into_inner();
    let mut labels = mc.labels;
    if let Some(n) = name {
        labels.insert(NAME.into(), n.to_string());
    }
    let mut doc: serde_json::Value = labels
        .get(CONFIG)
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    f(&mut doc);
    labels.insert(CONFIG.into(), doc.to_string());
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
        .await
        .map_err(status_err)?;
    Ok(())
}

/// Mark a container as stopped by its user (restart policies leave it alone).
async fn mark_manual_stop(d: &State, c: &Ctr) -> Result<(), ApiError> {
    update_doc(d, &c.id, None, |doc| doc["ManualStop"] = true.into()).await
}

/// Stop: the stop signal, then SIGKILL after `secs` (default the container's StopTimeout
/// or 10; negative waits forever).
pub(super) async fn stop_container(
    d: &State,
    c: &Ctr,
    secs: Option<i64>,
) -> Result<bool, ApiError> {
    if shown_state(c, task(d, &c.id).await.as_ref()) == "restarting" {
        mark_manual_stop(d, c).await?;
        return Ok(true);
    }
    if !matches!(
        state_name(task(d, &c.id).await.as_ref()),
        "running" | "paused"
    ) {
        return Ok(false);
    }
    mark_manual_stop(d, c).await?;
    let secs = secs
        .or_else(|| c.doc["Config"]["StopTimeout"].as_i64())
        .unwrap_or(10);
    let stop_sig = c.doc["Config"]["StopSignal"]
        .as_str()
        .and_then(signal_number)
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
    super::restart::handle_exit(d, &c.id).await;
    super::events::container(d, c, "stop");
    Ok(true)
}

pub(super) async fn restart_container(
    d: &State,
    c: &Ctr,
    secs: Option<i64>,
) -> Result<(), ApiError> {
    stop_container(d, c, secs).await?;
    let c = find(d, &c.id).await?;
    start_container(d, &c).await?;
    super::events::container(d, &c, "restart");
    Ok(())
}

pub(super) async fn delete_container(d: &State, id: &str) -> Result<(), ApiError> {
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
        Err(s) => return Err(status_err(s)),
    }
    mgr.containers
        .clone()
        .delete(pb::ContainerRef { id: id.to_string() })
        .await
        .map_err(status_err)?;
    d.net.detach(id).await;
    let _ = std::fs::remove_dir_all(d.data_root.join("containers").join(id));
    d.execs.forget_container(id);
    Ok(())
}

async fn wait(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let c = find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let condition = query
        .get("condition")
        .cloned()
        .unwrap_or_else(|| "not-running".into());
    // Like dockerd: the headers go out at once (the CLI starts the container only after
    // they arrive), the body when the condition is met.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        let st = wait_exit(&d, &c.id).await;
        let (code, error) = match st {
            Ok(s) => (s.into_inner().exit_status as i64, None),
            Err(s) if s.code() == tonic::Code::NotFound => (0, None),
            Err(s) => (-1, Some(s.message().to_string())),
        };
        if condition == "removed" {
            // Woken by the container's "destroy" event; checked again every 250 ms (and
            // first, as it may be gone already).
            let mut events = d.events.subscribe();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while find(&d, &c.id).await.is_ok() && tokio::time::Instant::now() < deadline {
                let _ = tokio::time::timeout(Duration::from_millis(250), async {
                    while let Ok(e) = events.recv().await {
                        if e["Action"] == "destroy" && e["Actor"]["ID"] == c.id.as_str() {
                            return;
                        }
                    }
                })
                .await;
            }
        }
        let v = serde_json::json!({
            "StatusCode": code,
            "Error": error.map(|m| serde_json::json!({ "Message": m })),
        });
        let _ = tx.send(Ok(axum::body::Bytes::from(format!("{v}\n")))).await;
    });
    let body = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .expect("response"))
}

pub(super) fn signal_number(s: &str) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return Some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        "WINCH" => 28,
        _ => return None,
    })
}

pub(super) async fn send_signal(d: &State, id: &str, sig: u32) -> Result<(), ApiError> {
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
        .await
        .map_err(status_err)?;
    Ok(())
}

async fn kill(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let c = find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let sig = query.get("signal").map(String::as_str).unwrap_or("KILL");
    let n = signal_number(sig)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid signal: {sig}")))?;
    if !matches!(
        state_name(task(&d, &c.id).await.as_ref()),
        "running" | "paused"
    ) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Container {} is not running", c.id),
        ));
    }
    if n == 9 || n == 15 {
        mark_manual_stop(&d, &c).await?;
    }
    send_signal(&d, &c.id, n).await?;
    super::events::container_with(&d, &c, "kill", &[("signal", n.to_string())]);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn stop(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let c = find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let secs = query.get("t").and_then(|t| t.parse::<i64>().ok());
    if stop_container(&d, &c, secs).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(StatusCode::NOT_MODIFIED.into_response())
    }
}

async fn remove(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let c = find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let force = is_true(&query, "force");
    if matches!(
        state_name(task(&d, &c.id).await.as_ref()),
        "running" | "paused"
    ) {
        if !force {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    c.id
                ),
            ));
        }
        send_signal(&d, &c.id, 9).await?;
        let _ = tokio::time::timeout(Duration::from_secs(10), wait_exit(&d, &c.id)).await;
    }
    delete_container(&d, &c.id).await?;
    super::events::container(&d, &c, "destroy");
    if is_true(&query, "v") {
        super::volumes::remove_anonymous(&d, &c.doc["Mounts"]).await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn human(secs: i64) -> String {
    match secs {
        s if s < 1 => "Less than a second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 86400 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(super) async fn list(
    AxState(d): AxState<State>,
    RawQuery(q): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let filters = super::Filters::parse(&query)?;
    let want = |k: &str| filters.get(k);
    for k in filters.keys() {
        if !matches!(
            k.as_str(),
            "status" | "name" | "id" | "label" | "ancestor" | "exited" | "volume"
        ) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    // A status filter shows stopped containers too, as with --all.
    let show_all = is_true(&query, "all") || !want("status").is_empty();
    let mut rows = Vec::new();
    for c in all(&d).await? {
        let t = task(&d, &c.id).await;
        let state = shown_state(&c, t.as_ref());
        if !show_all && state != "running" && state != "paused" {
            continue;
        }
        let any = |k: &str, f: &dyn Fn(&str) -> bool| {
            let w = want(k);
            w.is_empty() || w.iter().any(|x| f(x))
        };
        let labels = &c.doc["Config"]["Labels"];
        let keep = any("status", &|w| w == state)
            && any("name", &|w| {
                c.name
                    .trim_start_matches('/')
                    .contains(w.trim_start_matches('/'))
            })
            && any("id", &|w| c.id.starts_with(w))
            && any("ancestor", &|w| {
                c.doc["ImageName"].as_str() == Some(w)
                    || c.doc["Image"].as_str().is_some_and(|i| {
                        i.trim_start_matches("sha256:")
                            .starts_with(w.trim_start_matches("sha256:"))
                    })
            })
            && any("exited", &|w| {
                state == "exited" && t.as_ref().is_some_and(|t| t.exit_status.to_string() == w)
            })
            && any("volume", &|w| {
                c.doc["Mounts"]
                    .as_array()
                    .is_some_and(|ms| ms.iter().any(|m| m["Name"] == w || m["Destination"] == w))
            })
            && want("label").iter().all(|l| match l.split_once('=') {
                Some((k, v)) => labels[k].as_str() == Some(v),
                None => !labels[l.as_str()].is_null(),
            });
        if !keep {
            continue;
        }
        let created = unix_time(c.doc["Created"].as_str().unwrap_or(""));
        let status = match (state, &t) {
            ("exited", Some(t)) => format!(
                "Exited ({}) {} ago",
                t.exit_status,
                human(now_unix() - unix_time(&t.exited_at))
            ),
            ("running", _) => format!("Up {}", human(now_unix() - created)),
            ("paused", _) => format!("Up {} (Paused)", human(now_unix() - created)),
            ("restarting", Some(t)) => format!(
                "Restarting ({}) {} ago",
                t.exit_status,
                human(now_unix() - unix_time(&t.exited_at))
            ),
            _ => "Created".into(),
        };
        let cmd: Vec<String> = std::iter::once(c.doc["Path"].as_str().unwrap_or("").to_string())
            .chain(strs(&c.doc["Args"]).unwrap_or_default())
            .collect();
        rows.push(serde_json::json!({
            "Id": c.id,
            "Names": [c.name],
            "Image": c.doc["ImageName"],
            "ImageID": c.doc["Image"],
            "Command": cmd.join(" "),
            "Created": created,
            "State": state,
            "Status": status,
            "Ports": list_ports(&c, state == "running" || state == "paused"),
            "Labels": c.doc["Config"]["Labels"].as_object().cloned().unwrap_or_default(),
            "HostConfig": {"NetworkMode": c.doc["HostConfig"]["NetworkMode"].as_str().filter(|m| !m.is_empty()).unwrap_or("default")},
            "NetworkSettings": {"Networks": network_settings(&c, state == "running" || state == "paused")["Networks"]},
            "Mounts": shown_mounts(&c.doc["Mounts"]),
        }));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r["Created"].as_i64().unwrap_or(0)));
    if let Some(n) = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        rows.truncate(n);
    }
    Ok(Json(rows.into()))
}

async fn inspect(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = find(&d, &what).await?;
    let t = task(&d, &c.id).await;
    let state = shown_state(&c, t.as_ref());
    let t = t.unwrap_or_default();
    // The effective config, as Docker shows it: the image's, then the container's.
    let mut config = effective_config(&d, &c).await;
    if config["Cmd"].is_null() {
        config["Cmd"] = c.doc["Args"].clone();
    }
    // Docker fills in what the client left out; SDKs read these.
    let mut host = c.doc["HostConfig"].clone();
    if !host.is_object() {
        host = serde_json::json!({});
    }
    // Lists come back as lists (clients send null for "none").
    for k in [
        "Binds",
        "CapAdd",
        "CapDrop",
        "DeviceCgroupRules",
        "DeviceRequests",
        "Devices",
        "Dns",
        "DnsOptions",
        "DnsSearch",
        "ExtraHosts",
        "GroupAdd",
        "Links",
        "MaskedPaths",
        "ReadonlyPaths",
        "SecurityOpt",
        "VolumesFrom",
        "Mounts",
        "Ulimits",
        "BlkioWeightDevice",
        "BlkioDeviceReadBps",
        "BlkioDeviceWriteBps",
        "BlkioDeviceReadIOps",
        "BlkioDeviceWriteIOps",
        "ConsoleSize",
    ] {
        if host[k].is_null() {
            host[k] = serde_json::json!([]);
        }
    }
    if host["ConsoleSize"].as_array().is_some_and(|a| a.len() != 2) {
        host["ConsoleSize"] = serde_json::json!([0, 0]);
    }
    // -1 ("the default") is not a swappiness: left out.
    if host["MemorySwappiness"]
        .as_i64()
        .is_none_or(|v| !(0..=100).contains(&v))
    {
        host.as_object_mut().map(|o| o.remove("MemorySwappiness"));
    }
    if !matches!(host["CgroupnsMode"].as_str(), Some("private" | "host")) {
        // Docker's defaults: a private cgroup namespace on v2 hosts, the host's on v1.
        let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        host["CgroupnsMode"] = if v2 { "private" } else { "host" }.into();
    }
    for (k, v) in [
        (
            "LogConfig",
            serde_json::json!({"Type": "json-file", "Config": {}}),
        ),
        ("NetworkMode", serde_json::json!("none")),
        (
            "RestartPolicy",
            serde_json::json!({"Name": "no", "MaximumRetryCount": 0}),
        ),
        ("AutoRemove", serde_json::json!(false)),
        ("Binds", serde_json::json!(null)),
        ("Privileged", serde_json::json!(false)),
    ] {
        if host.get(k).is_none_or(|x| {
            x.is_null() || (k == "LogConfig" && x["Type"].as_str().unwrap_or("").is_empty())
        }) {
            host[k] = v;
        }
    }
    Ok(Json(serde_json::json!({
        "Id": c.id,
        "Created": c.doc["Created"],
        "Path": c.doc["Path"],
        "Args": c.doc["Args"],
        "State": {
            "Status": state,
            "Running": state == "running" || state == "paused",
            "Paused": state == "paused",
            "Restarting": state == "restarting",
            "OOMKilled": c.doc["OOMKilled"].as_bool().unwrap_or(false) && state == "exited",
            "Dead": false,
            "Pid": if state == "running" { t.pid } else { 0 },
            "ExitCode": if state == "exited" || state == "restarting" { t.exit_status } else { 0 },
            "Error": "",
            "StartedAt": c.doc["StartedAt"].as_str().unwrap_or("0001-01-01T00:00:00Z"),
            "FinishedAt": if t.exited_at.is_empty() { "0001-01-01T00:00:00Z".to_string() } else { t.exited_at.clone() },
        },
        "Image": c.doc["Image"],
        "Name": c.name,
        "ExecIDs": d.execs.of(&c.id),
        "RestartCount": c.doc["RestartCount"].as_i64().unwrap_or(0),
        "Driver": "overlayfs",
        "Platform": "linux",
        "HostConfig": host,
        "Config": config,
        "LogPath": c.log_path,
        "Mounts": shown_mounts(&c.doc["Mounts"]),
        "NetworkSettings": network_settings(&c, matches!(state, "running" | "paused")),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_frames_signals() {
        assert!(valid_name("/web-1"));
        assert!(!valid_name("a"));
        assert!(!valid_name("-bad"));
        assert!(!valid_name("x/y"));
        assert_eq!(
            streams::frame(2, b"hi"),
            vec![2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']
        );
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("kill"), Some(9));
        assert_eq!(signal_number("bogus"), None);
    }
}
