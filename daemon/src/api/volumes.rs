//! `/volumes`: create, list (filters: name, label, dangling), inspect, remove, prune; and
//! how a container's binds, mounts, image volumes and `--volumes-from` become mounts.

use std::collections::BTreeMap;

use axum::extract::{Path as AxPath, RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::containers::{all, find, strs};
use super::images::url_pairs;
use super::{ApiError, State};
use crate::volumes::{Error, Volume};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match &e {
            Error::BadName(_) | Error::Driver(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::InUse { .. } => StatusCode::CONFLICT,
            Error::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, format!("{:#}", anyhow::Error::new(e)))
    }
}

pub(super) fn to_json(v: &Volume, size: Option<u64>, refs: Option<usize>) -> Value {
    let mut j = serde_json::to_value(v).expect("json");
    if let Some(o) = j.as_object_mut() {
        o.remove("Anonymous");
        if v.anonymous {
            o.insert("Labels".into(), json!({"com.docker.volume.anonymous": ""}));
        }
        if let (Some(s), Some(r)) = (size, refs) {
            o.insert("UsageData".into(), json!({"Size": s, "RefCount": r}));
        }
    }
    j
}

/// Volume name → ids of the containers that mount it.
pub(super) async fn users(d: &State) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in all(d).await? {
        for mnt in c.doc["Mounts"].as_array().cloned().unwrap_or_default() {
            if mnt["Type"] == "volume" {
                if let Some(n) = mnt["Name"].as_str() {
                    m.entry(n.to_string()).or_default().push(c.id.clone());
                }
            }
        }
    }
    Ok(m)
}

fn random_name() -> String {
    super::containers::new_id()
}

async fn create(AxState(d): AxState<State>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let req: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    let name = req["Name"].as_str().filter(|n| !n.is_empty());
    let anonymous = name.is_none();
    let name = name.map(String::from).unwrap_or_else(random_name);
    let map = |k: &str| -> BTreeMap<String, String> {
        req[k]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (v, made) = d.volumes.create(
        &name,
        req["Driver"].as_str().unwrap_or(""),
        map("Labels"),
        map("DriverOpts"),
        anonymous,
    )?;
    if made {
        d.events
            .publish("volume", "create", &v.name, json!({"driver": "local"}));
    }
    Ok((StatusCode::CREATED, Json(to_json(&v, None, None))).into_response())
}

async fn list(AxState(d): AxState<State>, RawQuery(q): RawQuery) -> Result<Json<Value>, ApiError> {
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let filters = super::Filters::parse(&query)?;
    let get = |k: &str| filters.get(k);
    let used = users(&d).await?;
    let mut out = Vec::new();
    for v in d.volumes.list() {
        let names = get("name");
        if !names.is_empty() && !names.iter().any(|n| v.name.contains(n.as_str())) {
            continue;
        }
        if let Some(dang) = get("dangling").first() {
            let dangling = !used.contains_key(&v.name);
            if (dang == "true" || dang == "1") != dangling {
                continue;
            }
        }
        let labels = get("label");
        if !labels.iter().all(|l| match l.split_once('=') {
            Some((k, val)) => v.labels.get(k).map(String::as_str) == Some(val),
            None => v.labels.contains_key(l),
        }) {
            continue;
        }
        out.push(to_json(&v, None, None));
    }
    Ok(Json(json!({ "Volumes": out, "Warnings": [] })))
}

async fn inspect(
    AxState(d): AxState<State>,
    AxPath(name): AxPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(to_json(&d.volumes.get(&name)?, None, None)))
}

async fn remove(
    AxState(d): AxState<State>,
    AxPath(name): AxPath<String>,
) -> Result<Response, ApiError> {
    let used = users(&d).await?;
    let who = used.get(&name).cloned().unwrap_or_default();
    d.volumes.remove(&name, &who)?;
    d.events
        .publish("volume", "destroy", &name, json!({"driver": "local"}));
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(AxState(d): AxState<State>, RawQuery(q): RawQuery) -> Result<Json<Value>, ApiError> {
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    // Since API 1.42 only anonymous volumes, unless the `all` filter says otherwise.
    let all_too = super::Filters::parse(&query)?
        .get("all")
        .iter()
        .any(|v| v == "true" || v == "1");
    let used = users(&d).await?;
    let (mut deleted, mut space) = (Vec::new(), 0u64);
    for v in d.volumes.list() {
        if used.contains_key(&v.name) || (!v.anonymous && !all_too) {
            continue;
        }
        if let Ok(n) = d.volumes.remove(&v.name, &[]) {
            space += n;
            d.events
                .publish("volume", "destroy", &v.name, json!({"driver": "local"}));
            deleted.push(v.name);
        }
    }
    Ok(Json(
        json!({ "VolumesDeleted": deleted, "SpaceReclaimed": space }),
    ))
}

/// One mount a container asked for, before it becomes an OCI mount.
#[derive(Clone, Debug)]
pub(super) struct Want {
    /// "bind", "volume" or "tmpfs".
    pub kind: String,
    /// Host path (bind) or volume name ("" for a new anonymous volume).
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// Do not seed a new volume from the image.
    pub nocopy: bool,
    pub tmpfs_options: String,
}

/// Everything a container mounts besides the defaults: `Binds`, `Mounts`,
/// `--volumes-from`, then the image's and the config's `Volumes` not yet covered.
pub(super) async fn wants(
    d: &State,
    cfg: &Value,
    host: &Value,
    image_volumes: &[String],
) -> Result<Vec<Want>, ApiError> {
    let mut out: Vec<Want> = Vec::new();
    for b in strs(&host["Binds"]).unwrap_or_default() {
        let parts: Vec<&str> = b.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [s, t] => (*s, *t, ""),
            [s, t, m] => (*s, *t, *m),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid volume specification: '{b}'"
                )))
            }
        };
        if !dst.starts_with('/') {
            return Err(ApiError::bad_request(format!(
                "invalid mount config for type \"bind\": invalid mount path: '{dst}' mount path must be absolute"
            )));
        }
        let modes: Vec<&str> = mode.split(',').filter(|m| !m.is_empty()).collect();
        if let Some(bad) = modes.iter().find(|m| {
            !matches!(
                **m,
                "ro" | "rw"
                    | "z"
                    | "Z"
                    | "nocopy"
                    | "private"
                    | "rprivate"
                    | "shared"
                    | "rshared"
                    | "slave"
                    | "rslave"
            )
        }) {
            return Err(ApiError::bad_request(format!(
                "invalid mode: {bad} in volume specification '{b}'"
            )));
        }
        let kind = if src.starts_with('/') {
            "bind"
        } else {
            "volume"
        };
        if kind == "volume" && !crate::volumes::valid_name(src) {
            return Err(ApiError::bad_request(format!(
                "create {src}: \"{src}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            )));
        }
        out.push(Want {
            kind: kind.into(),
            source: src.into(),
            target: dst.into(),
            read_only: modes.contains(&"ro"),
            nocopy: modes.contains(&"nocopy"),
            tmpfs_options: String::new(),
        });
    }
    for m in host["Mounts"].as_array().cloned().unwrap_or_default() {
        let kind = m["Type"].as_str().unwrap_or("volume").to_string();
        let target = m["Target"].as_str().unwrap_or("").to_string();
        if !target.starts_with('/') {
            return Err(ApiError::bad_request(format!(
                "invalid mount config for type \"{kind}\": invalid mount path: '{target}' mount path must be absolute"
            )));
        }
        let source = m["Source"].as_str().unwrap_or("").to_string();
        match kind.as_str() {
            "bind" if !source.starts_with('/') => {
                return Err(ApiError::bad_request(format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute"
                )))
            }
            "bind" if !std::path::Path::new(&source).exists() => {
                return Err(ApiError::bad_request(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {source}"
                )))
            }
            "bind" | "volume" | "tmpfs" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "mount type {other:?} is not supported"
                )))
            }
        }
        let mut tmpfs_options = Vec::new();
        if let Some(sz) = m["TmpfsOptions"]["SizeBytes"].as_i64().filter(|s| *s > 0) {
            tmpfs_options.push(format!("size={sz}"));
        }
        if let Some(md) = m["TmpfsOptions"]["Mode"].as_u64().filter(|s| *s > 0) {
            tmpfs_options.push(format!("mode={md:o}"));
        }
        out.push(Want {
            kind,
            source,
            target,
            read_only: m["ReadOnly"].as_bool().unwrap_or(false),
            nocopy: m["VolumeOptions"]["NoCopy"].as_bool().unwrap_or(false),
            tmpfs_options: tmpfs_options.join(","),
        });
    }
    for from in strs(&host["VolumesFrom"]).unwrap_or_default() {
        let (name, mode) = from.split_once(':').unwrap_or((&from, ""));
        let other = find(d, name).await?;
        for m in other.doc["Mounts"].as_array().cloned().unwrap_or_default() {
            let target = m["Destination"].as_str().unwrap_or("").to_string();
            if out.iter().any(|w| w.target == target) {
                continue;
            }
            let kind = m["Type"].as_str().unwrap_or("").to_string();
            out.push(Want {
                source: if kind == "volume" {
                    m["Name"].as_str().unwrap_or("").to_string()
                } else {
                    m["Source"].as_str().unwrap_or("").to_string()
                },
                kind,
                target,
                read_only: match mode {
                    "ro" => true,
                    "rw" => false,
                    _ => !m["RW"].as_bool().unwrap_or(true),
                },
                nocopy: true,
                tmpfs_options: String::new(),
            });
        }
    }
    let mut declared: Vec<String> = image_volumes.to_vec();
    if let Some(v) = cfg["Volumes"].as_object() {
        declared.extend(v.keys().cloned());
    }
    for t in declared {
        if !t.starts_with('/')
            || out
                .iter()
                .any(|w| w.target.trim_end_matches('/') == t.trim_end_matches('/'))
        {
            continue;
        }
        out.push(Want {
            kind: "volume".into(),
            source: String::new(),
            target: t,
            read_only: false,
            nocopy: false,
            tmpfs_options: String::new(),
        });
    }
    Ok(out)
}

/// What [`realize`] makes: the records for the container document ("Mounts" as inspect
/// shows them), the spec's mount options, and (mount point, volume directory) pairs to seed
/// from the image.
type Realized = (
    Vec<Value>,
    Vec<berth_manager::oci::MountOpt>,
    Vec<(String, String)>,
);

/// Make the volumes `wants` needs.
pub(super) fn realize(d: &State, wants: &[Want]) -> Result<Realized, ApiError> {
    let (mut docs, mut opts, mut seeds) = (Vec::new(), Vec::new(), Vec::new());
    for w in wants {
        match w.kind.as_str() {
            "volume" => {
                let anonymous = w.source.is_empty();
                let name = if anonymous {
                    random_name()
                } else {
                    w.source.clone()
                };
                let (v, made) = d.volumes.create(
                    &name,
                    "local",
                    Default::default(),
                    Default::default(),
                    anonymous,
                )?;
                if made {
                    d.events
                        .publish("volume", "create", &v.name, json!({"driver": "local"}));
                }
                if !w.nocopy {
                    seeds.push((w.target.clone(), v.mountpoint.clone()));
                }
                docs.push(json!({
                    "Type": "volume", "Name": v.name, "Source": v.mountpoint,
                    "Destination": w.target, "Driver": "local", "Mode": if w.read_only { "ro" } else { "z" },
                    "RW": !w.read_only, "Propagation": "", "Anonymous": anonymous,
                }));
                opts.push(berth_manager::oci::MountOpt {
                    source: v.mountpoint.clone(),
                    destination: w.target.clone(),
                    kind: "bind".into(),
                    read_only: w.read_only,
                    options: vec![],
                });
            }
            "tmpfs" => {
                docs.push(json!({
                    "Type": "tmpfs", "Source": "", "Destination": w.target, "Mode": "",
                    "RW": !w.read_only, "Propagation": "",
                }));
                opts.push(berth_manager::oci::MountOpt {
                    source: "tmpfs".into(),
                    destination: w.target.clone(),
                    kind: "tmpfs".into(),
                    read_only: w.read_only,
                    options: w
                        .tmpfs_options
                        .split(',')
                        .filter(|o| !o.is_empty())
                        .map(String::from)
                        .collect(),
                });
            }
            _ => {
                docs.push(json!({
                    "Type": "bind", "Source": w.source, "Destination": w.target,
                    "Mode": if w.read_only { "ro" } else { "" }, "RW": !w.read_only,
                    "Propagation": "rprivate",
                }));
                opts.push(berth_manager::oci::MountOpt {
                    source: w.source.clone(),
                    destination: w.target.clone(),
                    kind: "bind".into(),
                    read_only: w.read_only,
                    options: vec![],
                });
            }
        }
    }
    Ok((docs, opts, seeds))
}

/// Remove a removed container's anonymous volumes (`rm -v`, `--rm`).
pub(super) async fn remove_anonymous(d: &State, mounts: &Value) {
    let used = users(d).await.unwrap_or_default();
    for m in mounts.as_array().cloned().unwrap_or_default() {
        if m["Type"] == "volume" && m["Anonymous"].as_bool().unwrap_or(false) {
            let name = m["Name"].as_str().unwrap_or("");
            if !used.contains_key(name) && d.volumes.remove(name, &[]).is_ok() {
                d.events
                    .publish("volume", "destroy", name, json!({"driver": "local"}));
            }
        }
    }
}
