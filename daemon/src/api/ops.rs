//! Container operations beyond the lifecycle: top, pause/unpause, rename, restart, update,
//! stats, prune.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as AxPath, RawQuery, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_proto::manager as pb;

use super::url_pairs;
use super::{internal, ApiError, State};
use crate::clock::unix_time;
use crate::containers::{self as service, find, running, state_name, task};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/update", post(update))
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/prune", post(prune))
}

/// `ps` on the host (dockerd does the same), keeping the container's processes.
async fn top(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (c, _) = running(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let args = query
        .get("ps_args")
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(|| "-ef".into());
    let pids: std::collections::HashSet<u32> = d
        .images
        .mgr
        .tasks
        .clone()
        .pids(pb::ContainerRef { id: c.id.clone() })
        .await?
        .into_inner()
        .processes
        .into_iter()
        .map(|p| p.pid)
        .collect();
    let out = tokio::process::Command::new("ps")
        .args(args.split_whitespace())
        .output()
        .await
        .map_err(|e| internal(format!("run ps: {e}")))?;
    if !out.status.success() {
        return Err(internal(format!(
            "ps {args}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let (titles, rows) = parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
        .map_err(|m| internal(format!("ps {args}: {m}")))?;
    Ok(Json(
        serde_json::json!({ "Titles": titles, "Processes": rows }),
    ))
}

/// Split `ps` output into titles and the rows whose PID is in `pids`; the last column
/// (the command) keeps its spaces.
fn parse_ps(
    text: &str,
    pids: &std::collections::HashSet<u32>,
) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut lines = text.lines();
    let titles: Vec<String> = lines
        .next()
        .ok_or("no output")?
        .split_whitespace()
        .map(String::from)
        .collect();
    let col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or("no PID column (give ps_args that print it)")?;
    let mut rows = Vec::new();
    for l in lines {
        let mut fields: Vec<String> = Vec::new();
        let mut rest = l.trim_start();
        while fields.len() + 1 < titles.len() {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
        fields.push(rest.to_string());
        if fields
            .get(col)
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| pids.contains(&p))
        {
            rows.push(fields);
        }
    }
    Ok((titles, rows))
}

async fn pause(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
) -> Result<Response, ApiError> {
    set_paused(&d, &what, true).await
}

async fn unpause(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
) -> Result<Response, ApiError> {
    set_paused(&d, &what, false).await
}

/// Freeze or thaw a running container, refusing (409) when it already is so.
async fn set_paused(d: &State, what: &str, pause: bool) -> Result<Response, ApiError> {
    service::pause(d, what, pause).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn rename(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let c = find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let new = query.get("name").cloned().unwrap_or_default();
    service::rename(&d, &c, &new).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn restart(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let c = find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let secs = query.get("t").and_then(|t| t.parse::<i64>().ok());
    service::restart(&d, &c, secs).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `docker update`: resources go to the running task (and are kept for later starts),
/// the restart policy to the stored HostConfig.
async fn update(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = find(&d, &what).await?;
    let u: service::UpdateRequest = super::decode(&body)?;
    service::update(&d, &c, u).await?;
    Ok(Json(serde_json::json!({ "Warnings": [] })))
}

fn system_cpu_ns() -> u64 {
    let tick = 100u64; // USER_HZ on Linux
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let l = s.lines().next()?.to_string();
            let total: u64 = l
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum();
            Some(total * (1_000_000_000 / tick))
        })
        .unwrap_or(0)
}

fn online_cpus() -> u64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
}

async fn sample(d: &State, id: &str) -> serde_json::Value {
    let s = d
        .images
        .mgr
        .tasks
        .clone()
        .stats(pb::ContainerRef { id: id.to_string() })
        .await
        .map(|r| r.into_inner())
        .unwrap_or_default();
    let raw: serde_json::Value = serde_json::from_str(&s.json).unwrap_or_default();
    let cpu = &raw["cpu"]["usage"];
    serde_json::json!({
        "read": crate::clock::now_rfc3339(),
        "pids_stats": {"current": s.pids_current},
        "memory_stats": {
            "usage": s.memory_usage,
            "limit": if s.memory_limit == 0 { host_memory() } else { s.memory_limit },
            "stats": raw["memory"]["raw"],
        },
        "cpu_stats": {
            "cpu_usage": {
                "total_usage": s.cpu_usage_ns,
                "usage_in_kernelmode": cpu["kernel"],
                "usage_in_usermode": cpu["user"],
            },
            "system_cpu_usage": system_cpu_ns(),
            "online_cpus": online_cpus(),
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        },
        "blkio_stats": {},
        "networks": networks(d, id).await,
        "storage_stats": {},
        "num_procs": 0,
    })
}

/// Per interface of the container (`eth0`, …), as the container sees it: what the host
/// end of its veth sent is what the container received.
async fn networks(d: &State, id: &str) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for e in d.net.endpoints_of(id).await {
        let stat = |k: &str| -> u64 {
            std::fs::read_to_string(format!("/sys/class/net/{}/statistics/{k}", e.veth))
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let name = if e.ifname.is_empty() {
            "eth0".to_string()
        } else {
            e.ifname.clone()
        };
        out.insert(
            name,
            serde_json::json!({
                "rx_bytes": stat("tx_bytes"), "rx_packets": stat("tx_packets"),
                "rx_errors": stat("tx_errors"), "rx_dropped": stat("tx_dropped"),
                "tx_bytes": stat("rx_bytes"), "tx_packets": stat("rx_packets"),
                "tx_errors": stat("rx_errors"), "tx_dropped": stat("rx_dropped"),
            }),
        );
    }
    serde_json::Value::Object(out)
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let l = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
            l.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// `GET /containers/{id}/stats`: one sample (`stream=false`) or one per second.
async fn stats(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let c = find(&d, &what).await?;
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let stream = query.get("stream").is_none_or(|v| v == "1" || v == "true");
    let one_shot = query
        .get("one-shot")
        .is_some_and(|v| v == "1" || v == "true");
    let running = matches!(
        state_name(task(&d, &c.id).await.as_ref()),
        "running" | "paused"
    );
    let base = serde_json::json!({"name": c.name, "id": c.id});
    let merge = move |mut cur: serde_json::Value, pre: &serde_json::Value| {
        if let (Some(o), Some(b)) = (cur.as_object_mut(), base.as_object()) {
            for (k, v) in b {
                o.insert(k.clone(), v.clone());
            }
            o.insert("precpu_stats".into(), pre["cpu_stats"].clone());
            o.insert("preread".into(), pre["read"].clone());
        }
        cur
    };
    let empty = serde_json::json!({"cpu_stats": {}, "read": "0001-01-01T00:00:00Z"});
    if !stream {
        let doc = if running {
            let first = sample(&d, &c.id).await;
            if one_shot {
                merge(first, &empty)
            } else {
                // Like dockerd: two samples a second apart, so CPU % can be computed.
                tokio::time::sleep(Duration::from_secs(1)).await;
                merge(sample(&d, &c.id).await, &first)
            }
        } else {
            merge(serde_json::json!({"read": "0001-01-01T00:00:00Z"}), &empty)
        };
        return Ok(Json(doc).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut pre = empty;
        loop {
            let running = matches!(
                state_name(task(&d, &c.id).await.as_ref()),
                "running" | "paused"
            );
            let cur = if running {
                sample(&d, &c.id).await
            } else {
                serde_json::json!({"read": "0001-01-01T00:00:00Z"})
            };
            let doc = merge(cur.clone(), &pre);
            pre = cur;
            if tx.send(Ok(format!("{doc}\n"))).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .expect("response"))
}

/// `POST /containers/prune?filters=`: stopped containers, narrowed by `until` (a time or
/// a duration ago) and `label` / `label!` (`k`, `k=v`); SpaceReclaimed is what their
/// writable layers held.
async fn prune(
    AxState(d): AxState<State>,
    RawQuery(q): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let f = super::Filters::parse(&query)?;
    if let Some(k) = f
        .keys()
        .find(|k| !matches!(k.as_str(), "until" | "label" | "label!"))
    {
        return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
    }
    let until = match f.get("until").first() {
        Some(u) => Some(crate::clock::parse_since(u).ok_or_else(|| {
            ApiError::bad_request(format!("invalid until {u:?}: want a time or a duration"))
        })?),
        None => None,
    };
    let has = |labels: &std::collections::BTreeMap<String, String>, l: &str| match l.split_once('=')
    {
        Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
        None => labels.contains_key(l),
    };
    let (with, without) = (f.get("label"), f.get("label!"));
    let pick = move |c: &service::Container| {
        let labels = c.doc.config.labels.clone().unwrap_or_default();
        until.is_none_or(|u| unix_time(&c.doc.created) < u)
            && with.iter().all(|l| has(&labels, l))
            && !without.iter().any(|l| has(&labels, l))
    };
    let mut space = 0u64;
    let mut deleted = Vec::new();
    for c in service::all(&d).await? {
        if !matches!(
            state_name(task(&d, &c.id).await.as_ref()),
            "exited" | "created"
        ) || !pick(&c)
        {
            continue;
        }
        let rw = super::containers::rw_size(&d, &c.id).await;
        service::remove(&d, &c, false, false).await?;
        space += rw;
        deleted.push(c.id);
    }
    Ok(Json(
        serde_json::json!({ "ContainersDeleted": deleted, "SpaceReclaimed": space }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_output_is_filtered_by_pid() {
        let text = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 /sbin/init splash\nroot 42 1 0 10:01 ? 00:00:00 sleep 1000\n";
        let (t, rows) = parse_ps(text, &[42].into_iter().collect()).unwrap();
        assert_eq!(t.len(), 8);
        assert_eq!(
            rows,
            vec![vec![
                "root",
                "42",
                "1",
                "0",
                "10:01",
                "?",
                "00:00:00",
                "sleep 1000"
            ]]
        );
        assert!(parse_ps("USER COMMAND\n", &Default::default()).is_err());
    }
}
