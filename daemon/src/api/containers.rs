//! Container endpoints: create, start, wait, kill, stop, remove, list, inspect (attach,
//! resize and logs are in [`super::streams`]; top, pause, rename, restart, update, stats
//! and prune in [`super::ops`]). Handlers decode, call [`crate::containers`], encode.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as AxPath, RawQuery, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_proto::manager as pb;
use serde_json::{json, Value};

use super::url_pairs;
use super::{is_true, streams, ApiError, State};
use crate::clock::{human, now_unix, unix_time};
use crate::containers::{self as service, doc::MountPoint, Container, CreateRequest};

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
        .route("/containers/{id}/{alias}", delete(remove_link))
}

/// `DELETE /containers/PARENT/ALIAS?link=1`: remove a legacy `--link` from `PARENT` (its
/// next start writes neither the /etc/hosts line nor the variables).
async fn remove_link(
    AxState(d): AxState<State>,
    AxPath((parent, alias)): AxPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    if !is_true(&query, "link") {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("No such container: {parent}/{alias}"),
        ));
    }
    let c = service::find(&d, &parent).await?;
    let links = c.doc.host_config.links.clone().unwrap_or_default();
    let keep: Vec<String> = links
        .iter()
        .filter(|l| crate::network::parse_link(l).map_or(true, |(_, a)| a != alias))
        .cloned()
        .collect();
    if keep.len() == links.len() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Could not find link {alias} of container {parent}"),
        ));
    }
    service::update_doc(&d, &c.id, None, |doc| doc.host_config.links = Some(keep)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn create(
    AxState(d): AxState<State>,
    RawQuery(q): RawQuery,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body = super::decode(&body)?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let id = service::create(
        &d,
        CreateRequest {
            name: query.get("name").cloned(),
            body,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": id, "Warnings": [] })),
    )
        .into_response())
}

fn done(changed: bool) -> Response {
    if changed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_MODIFIED.into_response()
    }
}

async fn start(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
) -> Result<Response, ApiError> {
    let c = service::find(&d, &what).await?;
    Ok(done(service::start(&d, &c).await?))
}

async fn wait(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let c = service::find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let condition = query
        .get("condition")
        .cloned()
        .unwrap_or_else(|| "not-running".into());
    // Like dockerd: the headers go out at once (the CLI starts the container only after
    // they arrive), the body when the condition is met.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        let (code, error) = match service::wait_exit(&d, &c.id).await {
            Ok(s) => (s.exit_status as i64, None),
            Err(s) if s.code() == tonic::Code::NotFound => (0, None),
            Err(s) => (-1, Some(s.message().to_string())),
        };
        if condition == "removed" {
            // Woken by the container's "destroy" event; checked again every 250 ms (and
            // first, as it may be gone already).
            let mut events = d.events.subscribe();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while service::find(&d, &c.id).await.is_ok() && tokio::time::Instant::now() < deadline {
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
        let v = json!({
            "StatusCode": code,
            "Error": error.map(|m| json!({ "Message": m })),
        });
        let _ = tx.send(Ok(axum::body::Bytes::from(format!("{v}\n")))).await;
    });
    let body = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .expect("response"))
}

async fn kill(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let c = service::find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let sig = query.get("signal").map(String::as_str).unwrap_or("KILL");
    service::kill(&d, &c, sig).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn stop(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let c = service::find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let secs = query.get("t").and_then(|t| t.parse::<i64>().ok());
    Ok(done(service::stop(&d, &c, secs).await?))
}

async fn remove(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let c = service::find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    service::remove(&d, &c, is_true(&query, "force"), is_true(&query, "v")).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The container's config over its image's (Env merged by key, Labels merged), with every
/// list Docker's schema declares present.
async fn effective_config(d: &State, c: &Container) -> Value {
    let mut cfg = serde_json::to_value(&c.doc.config).unwrap_or_else(|_| json!({}));
    let image = match d.images.find(&c.doc.image).await {
        Ok(img) => d.images.resolve_record(&img).await.ok(),
        Err(_) => None,
    };
    let mut run = image
        .and_then(|r| r.config.config.clone())
        .unwrap_or_default();
    crate::build::instructions::overlay(&mut run, &cfg);
    let merged = serde_json::to_value(&run).unwrap_or_default();
    for k in [
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "Labels",
        "ExposedPorts",
        "Volumes",
        "StopSignal",
    ] {
        if !merged[k].is_null() {
            cfg[k] = merged[k].clone();
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
        cfg["Labels"] = json!({});
    }
    cfg
}

/// A container's mounts as inspect shows them (without berth's `Anonymous` mark).
fn shown_mounts(m: &[MountPoint]) -> Value {
    m.iter()
        .map(|x| {
            let mut v = serde_json::to_value(x).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.remove("Anonymous");
            }
            v
        })
        .collect::<Vec<_>>()
        .into()
}

/// The `Ports` of a container list entry (published ones while it runs, exposed ones).
fn list_ports(c: &Container, running: bool) -> Value {
    let mut out = Vec::new();
    let published = Some(&c.doc.published_ports).filter(|_| running);
    for k in c.doc.config.exposed() {
        if published.is_some_and(|p| p.contains_key(&k)) {
            continue;
        }
        let (p, proto) = k.split_once('/').unwrap_or((&k, "tcp"));
        out.push(json!({"PrivatePort": p.parse::<u16>().unwrap_or(0), "Type": proto}));
    }
    for (k, list) in published.into_iter().flatten() {
        let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        for b in list {
            out.push(json!({
                "IP": b.host_ip,
                "PrivatePort": p.parse::<u16>().unwrap_or(0),
                "PublicPort": b.host_port.parse::<u16>().unwrap_or(0),
                "Type": proto,
            }));
        }
    }
    out.into()
}

/// `NetworkSettings` as inspect shows it.
pub(super) fn network_settings(c: &Container, running: bool) -> Value {
    let mut ports = serde_json::Map::new();
    for k in c.doc.config.exposed() {
        ports.insert(k, Value::Null);
    }
    if running {
        for (k, v) in &c.doc.published_ports {
            ports.insert(k.clone(), serde_json::to_value(v).unwrap_or_default());
        }
    }
    let net = &c.doc.net;
    let name = match net.mode() {
        "default" => "bridge",
        m => m,
    };
    // Addresses are the running container's: released at exit, like Docker's.
    let live = |v: Option<&str>| -> String {
        if running {
            v.unwrap_or("").to_string()
        } else {
            String::new()
        }
    };
    let ep = net.endpoint.as_ref();
    // One entry per endpoint (EndpointSettings): the first network's, then connected ones.
    let entry = |e: Option<&crate::network::Endpoint>| {
        // What the endpoint was asked for (dockerd shows it whether or not it runs).
        let ipam = e.and_then(|e| {
            let mut m = serde_json::Map::new();
            if e.static_ip {
                m.insert("IPv4Address".into(), e.ip.clone().into());
            }
            if e.static_ip6 {
                m.insert("IPv6Address".into(), e.ip6.clone().into());
            }
            if !e.link_local_ips.is_empty() {
                m.insert("LinkLocalIPs".into(), json!(e.link_local_ips));
            }
            (!m.is_empty()).then_some(Value::Object(m))
        });
        let links: Vec<String> = e
            .map(|e| e.links.iter().map(|(n, a)| format!("{n}:{a}")).collect())
            .unwrap_or_default();
        let mac = match e {
            Some(e) if e.static_mac => e.mac.clone(),
            _ => live(e.map(|e| e.mac.as_str())),
        };
        json!({
            "IPAMConfig": ipam,
            "Links": if links.is_empty() { Value::Null } else { json!(links) },
            "Aliases": e.map(|e| e.aliases.clone()).filter(|a| !a.is_empty()),
            "MacAddress": mac,
            "NetworkID": e.map(|e| e.network_id.as_str()).unwrap_or(""),
            "EndpointID": live(e.map(|e| e.id.as_str())),
            "Gateway": live(e.map(|e| e.gateway.as_str())),
            "IPAddress": live(e.map(|e| e.ip.as_str())),
            "IPPrefixLen": if running { e.map(|e| e.prefix).unwrap_or(0) } else { 0 },
            "IPv6Gateway": live(e.map(|e| e.gateway6.as_str())),
            "GlobalIPv6Address": live(e.map(|e| e.ip6.as_str())),
            "GlobalIPv6PrefixLen": if running { e.map(|e| e.prefix6).unwrap_or(0) } else { 0 },
            "DriverOpts": e.filter(|e| !e.driver_opts.is_empty()).map(|e| json!(e.driver_opts)),
            "DNSNames": [],
        })
    };
    let mut networks = serde_json::Map::new();
    match ep {
        // The first endpoint, under its network's name (a connect after a disconnect from
        // the creation network may have put it on another one).
        Some(e) => {
            networks.insert(e.network.clone(), entry(Some(e)));
        }
        None if matches!(name, "host" | "none") => {
            networks.insert(name.to_string(), entry(None));
        }
        // container: mode, or disconnected from the network it was created on.
        None => {}
    }
    for e in &net.extra {
        networks.insert(e.network.clone(), entry(Some(e)));
    }
    json!({
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": "",
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": live(ep.map(|e| e.id.as_str())),
        "Gateway": live(ep.map(|e| e.gateway.as_str())),
        "GlobalIPv6Address": live(ep.map(|e| e.ip6.as_str())),
        "GlobalIPv6PrefixLen": if running { ep.map(|e| e.prefix6).unwrap_or(0) } else { 0 },
        "IPAddress": live(ep.map(|e| e.ip.as_str())),
        "IPPrefixLen": if running { ep.map(|e| e.prefix).unwrap_or(0) } else { 0 },
        "IPv6Gateway": live(ep.map(|e| e.gateway6.as_str())),
        "MacAddress": live(ep.map(|e| e.mac.as_str())),
        "Networks": networks,
    })
}

/// `GET /containers/json`.
pub(super) async fn list(
    AxState(d): AxState<State>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let filters = super::Filters::parse(&query)?;
    let want = |k: &str| filters.get(k);
    for k in filters.keys() {
        if !matches!(
            k.as_str(),
            "status" | "name" | "id" | "label" | "ancestor" | "exited" | "volume" | "health"
        ) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    // A status filter shows stopped containers too, as with --all.
    let show_all = is_true(&query, "all") || !want("status").is_empty();
    let mut rows = Vec::new();
    for c in service::all(&d).await? {
        let t = service::task(&d, &c.id).await;
        let state = c.shown_state(t.as_ref());
        if !show_all && state != "running" && state != "paused" {
            continue;
        }
        let any = |k: &str, f: &dyn Fn(&str) -> bool| {
            let w = want(k);
            w.is_empty() || w.iter().any(|x| f(x))
        };
        let labels = c.doc.config.labels.clone().unwrap_or_default();
        let health = crate::containers::health::status_of(&c);
        for w in want("health") {
            if !matches!(w.as_str(), "starting" | "healthy" | "unhealthy" | "none") {
                return Err(ApiError::bad_request(format!(
                    "Unrecognised filter value for health: {w}"
                )));
            }
        }
        let keep = any("status", &|w| w == state)
            && any("health", &|w| w == health)
            && any("name", &|w| {
                c.name
                    .trim_start_matches('/')
                    .contains(w.trim_start_matches('/'))
            })
            && any("id", &|w| c.id.starts_with(w))
            && any("ancestor", &|w| {
                c.doc.image_name == w
                    || c.doc
                        .image
                        .trim_start_matches("sha256:")
                        .starts_with(w.trim_start_matches("sha256:"))
            })
            && any("exited", &|w| {
                state == "exited" && t.as_ref().is_some_and(|t| t.exit_status.to_string() == w)
            })
            && any("volume", &|w| {
                c.doc
                    .mounts
                    .iter()
                    .any(|m| m.name.as_deref() == Some(w) || m.destination == w)
            })
            && want("label").iter().all(|l| match l.split_once('=') {
                Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
                None => labels.contains_key(l.as_str()),
            });
        if !keep {
            continue;
        }
        let created = unix_time(&c.doc.created);
        // "Up …" counts from the last start, as Docker's.
        let up = c
            .doc
            .started_at
            .as_deref()
            .map(unix_time)
            .filter(|s| *s > 0)
            .unwrap_or(created);
        let status = match (state, &t) {
            ("exited", Some(t)) => format!(
                "Exited ({}) {} ago",
                t.exit_status,
                human(now_unix() - unix_time(&t.exited_at))
            ),
            ("running", _) => match health {
                "none" => format!("Up {}", human(now_unix() - up)),
                "starting" => format!("Up {} (health: starting)", human(now_unix() - up)),
                h => format!("Up {} ({h})", human(now_unix() - up)),
            },
            ("paused", _) => format!("Up {} (Paused)", human(now_unix() - up)),
            ("restarting", Some(t)) => format!(
                "Restarting ({}) {} ago",
                t.exit_status,
                human(now_unix() - unix_time(&t.exited_at))
            ),
            _ => "Created".into(),
        };
        let cmd: Vec<&str> = std::iter::once(c.doc.path.as_str())
            .chain(c.doc.args.iter().map(String::as_str))
            .collect();
        let running = state == "running" || state == "paused";
        let mode = c.doc.host_config.network_mode();
        rows.push(json!({
            "Id": c.id,
            "Names": [c.name],
            "Image": c.doc.image_name,
            "ImageID": c.doc.image,
            "Command": cmd.join(" "),
            "Created": created,
            "State": state,
            "Status": status,
            "Ports": list_ports(&c, running),
            "Labels": labels,
            "HostConfig": {"NetworkMode": if mode.is_empty() { "default" } else { mode }},
            "NetworkSettings": {"Networks": network_settings(&c, running)["Networks"]},
            "Mounts": shown_mounts(&c.doc.mounts),
        }));
        if is_true(&query, "size") {
            let (rw, rootfs) = sizes(&d, &c).await;
            let row = rows.last_mut().expect("just pushed");
            row["SizeRw"] = rw.into();
            row["SizeRootFs"] = rootfs.into();
        }
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

/// HostConfig as inspect shows it: what the client sent, with Docker's defaults for what
/// it left out (SDKs read these).
fn shown_host_config(c: &Container) -> Value {
    let mut host = serde_json::to_value(&c.doc.host_config).unwrap_or_else(|_| json!({}));
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
            host[k] = json!([]);
        }
    }
    if host["ConsoleSize"].as_array().is_some_and(|a| a.len() != 2) {
        host["ConsoleSize"] = json!([0, 0]);
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
        ("LogConfig", json!({"Type": "json-file", "Config": {}})),
        ("NetworkMode", json!("none")),
        (
            "RestartPolicy",
            json!({"Name": "no", "MaximumRetryCount": 0}),
        ),
        ("AutoRemove", json!(false)),
        ("Binds", json!(null)),
        ("Privileged", json!(false)),
    ] {
        if host.get(k).is_none_or(|x| {
            x.is_null() || (k == "LogConfig" && x["Type"].as_str().unwrap_or("").is_empty())
        }) {
            host[k] = v;
        }
    }
    host
}

/// The bytes in container `id`'s writable layer (0 when unknown).
pub(super) async fn rw_size(d: &State, id: &str) -> u64 {
    d.images
        .mgr
        .snapshots
        .clone()
        .usage(pb::SnapshotRef {
            key: id.to_string(),
        })
        .await
        .map(|u| u.into_inner().size)
        .unwrap_or(0)
}

/// `?size=1` of list and inspect: the bytes of the container's writable layer, and those
/// plus its image's (Docker's SizeRw and SizeRootFs).
pub(super) async fn sizes(d: &State, c: &Container) -> (i64, i64) {
    let rw = rw_size(d, &c.id).await as i64;
    let image = match d.images.resolve(&c.doc.image).await {
        Ok(r) => super::images::size_of(&r) as i64,
        Err(_) => 0,
    };
    (rw, rw + image)
}

/// `GET /containers/{id}/json`.
async fn inspect(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let c = service::find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let sized = if is_true(&query, "size") {
        Some(sizes(&d, &c).await)
    } else {
        None
    };
    let t = service::task(&d, &c.id).await;
    let state = c.shown_state(t.as_ref());
    let t: pb::Task = t.unwrap_or_default();
    // The effective config, as Docker shows it: the image's, then the container's.
    let mut config = effective_config(&d, &c).await;
    if config["Cmd"].is_null() {
        config["Cmd"] = c.doc.args.clone().into();
    }
    let finished = if t.exited_at.is_empty() {
        "0001-01-01T00:00:00Z".to_string()
    } else {
        t.exited_at.clone()
    };
    let mut out = json!({
        "Id": c.id,
        "Created": c.doc.created,
        "Path": c.doc.path,
        "Args": c.doc.args,
        "State": {
            "Status": state,
            "Running": state == "running" || state == "paused",
            "Paused": state == "paused",
            "Restarting": state == "restarting",
            "OOMKilled": c.doc.oom_killed && state == "exited",
            "Dead": false,
            "Pid": if state == "running" { t.pid } else { 0 },
            "ExitCode": if state == "exited" || state == "restarting" { t.exit_status } else { 0 },
            "Error": "",
            "StartedAt": c.doc.started_at.as_deref().unwrap_or("0001-01-01T00:00:00Z"),
            "FinishedAt": finished,
            "Health": crate::containers::health::shown(&c),
        },
        "Image": c.doc.image,
        "Name": c.name,
        "ExecIDs": d.execs.of(&c.id),
        "RestartCount": c.doc.restart_count,
        "Driver": "overlayfs",
        "Platform": "linux",
        "HostConfig": shown_host_config(&c),
        "Config": config,
        "LogPath": c.log_path,
        "Mounts": shown_mounts(&c.doc.mounts),
        "NetworkSettings": network_settings(&c, matches!(state, "running" | "paused")),
    });
    if let Some((rw, rootfs)) = sized {
        out["SizeRw"] = rw.into();
        out["SizeRootFs"] = rootfs.into();
    }
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    #[test]
    fn frames() {
        assert_eq!(
            super::streams::frame(2, b"hi"),
            vec![2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']
        );
    }
}
