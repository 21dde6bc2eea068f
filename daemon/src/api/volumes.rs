//! `/volumes`: create, list (filters: name, label, dangling), inspect, remove, prune (how a
//! container's binds and mounts become volumes is `crate::containers::mounts`).

use std::collections::BTreeMap;

use axum::extract::{Path as AxPath, RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::url_pairs;
use super::{ApiError, State};
use crate::containers::mounts::users;
use crate::volumes::Volume;

pub fn routes() -> Router<State> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
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

fn random_name() -> String {
    crate::containers::new_id()
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
