//! `POST /build` and `POST /build/prune`: the query as [`crate::build::Options`], the body
//! (the context tar, whatever its Content-Type) spooled to a file, the builder's progress
//! streamed back.

use axum::body::Body;
use axum::extract::{RawQuery, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::{url_all, url_pairs};
use super::{ApiError, State};
use crate::build::Options;

pub fn routes() -> Router<State> {
    Router::new()
        .route("/build", post(build))
        .route("/build/prune", post(prune))
}

impl From<crate::build::Error> for ApiError {
    fn from(e: crate::build::Error) -> ApiError {
        ApiError::new(
            super::status_of(e.kind()),
            format!("{:#}", anyhow::Error::new(e)),
        )
    }
}

/// The build's options from `POST /build`'s query.
fn options(raw: &str) -> Result<Options, ApiError> {
    let q = url_pairs(raw);
    let flag = |k: &str| {
        q.get(k)
            .is_some_and(|v| v == "1" || v == "true" || v == "True")
    };
    let json_map = |k: &str| -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(Default::default()),
            Some(v) => serde_json::from_str(v)
                .map_err(|e| ApiError::bad_request(format!("{k}: invalid JSON: {e}"))),
        }
    };
    let build_args = json_map("buildargs")?
        .into_iter()
        .map(|(k, v)| (k, v.as_str().map(String::from)))
        .collect();
    let labels = json_map("labels")?
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
        .collect();
    let mut tags = url_all(raw, "t");
    tags.retain(|t| !t.is_empty());
    for t in &tags {
        crate::reference::Reference::parse(t)
            .map_err(|e| ApiError::bad_request(format!("invalid tag {t:?}: {e}")))?;
    }
    // RUN steps join this network: the default bridge unless told (host, none, or a
    // user-defined network, checked when the first RUN creates its container).
    let network_mode = q.get("networkmode").cloned().unwrap_or_default();
    if network_mode.starts_with("container:") {
        return Err(ApiError::bad_request(format!(
            "networkmode {network_mode:?} is not supported for builds"
        )));
    }
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        let host = format!(
            "linux/{}",
            berth_manager::images::host_platform().architecture
        );
        if !p.starts_with(&host) {
            return Err(ApiError::bad_request(format!(
                "platform {p:?}: this daemon builds for {host} only"
            )));
        }
    }
    if flag("squash") {
        return Err(ApiError::bad_request(
            "squash is only supported with experimental mode, which Berth does not have",
        ));
    }
    // The RUN containers' resources (the CLI sends them all, zero when unset).
    let mut resources = serde_json::Map::new();
    for (k, field, numeric) in [
        ("memory", "Memory", true),
        ("memswap", "MemorySwap", true),
        ("cpushares", "CpuShares", true),
        ("cpuperiod", "CpuPeriod", true),
        ("cpuquota", "CpuQuota", true),
        ("shmsize", "ShmSize", true),
        ("cpusetcpus", "CpusetCpus", false),
        ("cpusetmems", "CpusetMems", false),
    ] {
        let Some(v) = q.get(k).filter(|v| !matches!(v.as_str(), "" | "0")) else {
            continue;
        };
        let val = if numeric {
            serde_json::Value::from(v.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("build option {k}: {v:?} is not a number"))
            })?)
        } else {
            serde_json::Value::from(v.clone())
        };
        resources.insert(field.into(), val);
    }
    // What Berth's builder cannot do: refused when set.
    for k in ["isolation", "remote", "outputs", "session"] {
        if q.get(k)
            .is_some_and(|v| !matches!(v.as_str(), "" | "default" | "null"))
        {
            return Err(ApiError::bad_request(format!(
                "build option {k} is not supported by Berth's builder"
            )));
        }
    }
    if q.get("ulimits")
        .is_some_and(|v| !matches!(v.as_str(), "" | "null" | "[]"))
    {
        return Err(ApiError::bad_request(
            "build option ulimits is not supported by Berth's builder",
        ));
    }
    let cache_from: Vec<String> = match q.get("cachefrom").filter(|v| !v.is_empty() && *v != "null")
    {
        Some(v) => serde_json::from_str(v)
            .map_err(|e| ApiError::bad_request(format!("cachefrom: invalid JSON: {e}")))?,
        None => Vec::new(),
    };
    let extra_hosts: Vec<String> = url_all(raw, "extrahosts")
        .into_iter()
        .filter(|h| !h.is_empty())
        .collect();
    Ok(Options {
        resources,
        extra_hosts,
        cache_from,
        dockerfile: q
            .get("dockerfile")
            .filter(|d| !d.is_empty())
            .cloned()
            .unwrap_or_else(|| "Dockerfile".into()),
        tags,
        build_args,
        nocache: flag("nocache"),
        pull: flag("pull"),
        rm: q.get("rm").is_none_or(|_| flag("rm")),
        forcerm: flag("forcerm"),
        target: q.get("target").cloned().unwrap_or_default(),
        labels,
        network_mode,
        quiet: flag("q"),
    })
}

async fn build(
    AxState(d): AxState<State>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let opts = options(q.as_deref().unwrap_or(""))?;
    let spooled = super::request::spool(&d, body).await?;
    let rx = crate::build::start(&d, opts, spooled).await?;
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let body = Body::from_stream(tokio_stream::StreamExt::map(
        stream,
        Ok::<_, std::io::Error>,
    ));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// `POST /build/prune` (`docker builder prune`).
async fn prune(AxState(d): AxState<State>) -> Result<Response, ApiError> {
    let deleted = crate::build::prune(&d).await?;
    Ok(
        axum::Json(serde_json::json!({"CachesDeleted": deleted, "SpaceReclaimed": 0}))
            .into_response(),
    )
}
