//! What a container changed: `POST /commit` (a new image of its image plus its changes),
//! `GET /containers/{id}/changes` and `GET /containers/{id}/export`.

use axum::body::Body;
use axum::extract::{Path as AxPath, RawQuery, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_proto::manager as pb;
use tokio_stream::StreamExt;

use super::is_true;
use super::{url_all, url_pairs};
use super::{ApiError, State};
use crate::containers::{find, state_name, task};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/commit", post(commit))
        .route("/containers/{id}/changes", get(changes))
        .route("/containers/{id}/export", get(export))
}

async fn changes(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = find(&d, &what).await?;
    let list = d
        .images
        .mgr
        .snapshots
        .clone()
        .changes(pb::DiffRequest {
            key: c.id.clone(),
            mount_points: crate::containers::changes::mount_points(&d, &c.id).await?,
        })
        .await?
        .into_inner()
        .changes;
    Ok(Json(
        list.into_iter()
            .map(|c| serde_json::json!({ "Path": c.path, "Kind": c.kind }))
            .collect::<Vec<_>>()
            .into(),
    ))
}

/// Where the container's spec mounts things (the runtime creates these in its layer).
async fn export(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
) -> Result<Response, ApiError> {
    let c = find(&d, &what).await?;
    let mut s = d
        .images
        .mgr
        .containers
        .clone()
        .export(pb::ContainerRef { id: c.id.clone() })
        .await?
        .into_inner();
    // The first chunk (or error) before the headers, so a failure is a clean status.
    let first = s.message().await?;
    let rest = async_stream_of(s);
    let body = tokio_stream::iter(first.map(|c| Ok::<_, std::io::Error>(c.data))).chain(rest);
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(Body::from_stream(body))
        .expect("response"))
}

fn async_stream_of(
    s: tonic::Streaming<pb::DataChunk>,
) -> impl tokio_stream::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    s.map(|r| {
        r.map(|c| c.data)
            .map_err(|e| std::io::Error::other(e.message().to_string()))
    })
}

async fn commit(
    AxState(d): AxState<State>,
    RawQuery(q): RawQuery,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let raw = q.unwrap_or_default();
    let query = url_pairs(&raw);
    let what = query
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("commit: container is required"))?;
    let c = find(&d, what).await?;
    let body_cfg: serde_json::Value = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    let target = match (
        query.get("repo").filter(|r| !r.is_empty()),
        query.get("tag").filter(|t| !t.is_empty()),
    ) {
        (Some(r), Some(t)) => Some(format!("{r}:{t}")),
        (Some(r), None) => Some(r.clone()),
        (None, Some(_)) => return Err(ApiError::bad_request("commit: a tag needs a repo")),
        (None, None) => None,
    };
    if let Some(t) = &target {
        crate::reference::Reference::parse(t)?;
    }
    // The image's config, then the container's, then the request's, then the changes.
    let base_id = c.doc.image.clone();
    let base_img = d.images.find(&base_id).await.map_err(|_| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("commit {}: its image {base_id} is gone", c.id),
        )
    })?;
    let base = d.images.resolve_record(&base_img).await?;
    let mut run = base.config.config.clone().unwrap_or_default();
    crate::build::instructions::overlay(
        &mut run,
        &serde_json::to_value(&c.doc.config).unwrap_or_default(),
    );
    if body_cfg.is_object() {
        crate::build::instructions::overlay(&mut run, &body_cfg);
    }
    for ch in url_all(&raw, "changes") {
        for line in ch.lines() {
            crate::build::instructions::apply(&mut run, line).map_err(ApiError::bad_request)?;
        }
    }
    // Pause while reading the changes (the default), so the layer is consistent.
    let tasks = d.images.mgr.tasks.clone();
    let pause = query.get("pause").is_none_or(|_| is_true(&query, "pause"))
        && state_name(task(&d, &c.id).await.as_ref()) == "running";
    let marker = paused_marker(&d.data_root, &c.id);
    if pause {
        // Recorded first: if berthd dies before resuming, the next one resumes it.
        if let Some(dir) = marker.parent() {
            std::fs::create_dir_all(dir).map_err(super::internal)?;
        }
        berth_fstree::write_atomic(&marker, b"commit", 0o600).map_err(super::internal)?;
        if let Err(e) = tasks
            .clone()
            .pause(pb::ContainerRef { id: c.id.clone() })
            .await
        {
            let _ = std::fs::remove_file(&marker);
            return Err(e.into());
        }
    }
    let tmp = d
        .data_root
        .join("tmp")
        .join(format!("commit-{}", crate::images::unique()));
    let layer = crate::containers::changes::write_diff(&d, &c.id, &tmp).await;
    if pause {
        let _ = tasks
            .clone()
            .resume(pb::ContainerRef { id: c.id.clone() })
            .await;
        let _ = std::fs::remove_file(&marker);
    }
    let r = match layer {
        Ok(()) => {
            let cmd: Vec<String> = std::iter::once(c.doc.path.clone())
                .chain(c.doc.args.iter().cloned())
                .collect();
            d.images
                .create_image(crate::images::NewImage {
                    base: Some(&base),
                    layer: Some(&tmp),
                    run,
                    history: berth_manager::images::manifest::History {
                        created: crate::clock::now_rfc3339(),
                        created_by: cmd.join(" "),
                        comment: query.get("comment").cloned().unwrap_or_default(),
                        ..Default::default()
                    },
                    author: query.get("author").cloned().unwrap_or_default(),
                    target: target.as_deref(),
                    platform: None,
                })
                .await
                .map_err(ApiError::from)
        }
        Err(e) => Err(e.into()),
    };
    let _ = tokio::fs::remove_file(&tmp).await;
    let r = r?;
    // Docker's Parent: the image the container ran (local only, like dockerd's).
    let mut rec = r.record.clone();
    rec.labels
        .insert(crate::images::PARENT_LABEL.into(), base.id().to_string());
    d.images.set_name(rec).await?;
    crate::events::container_with(&d, &c, "commit", &[("imageID", r.id().to_string())]);
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "Id": r.id() })),
    )
        .into_response())
}

/// `DATA_ROOT/paused-by-commit/<id>`: container `id` is paused by a commit under way.
fn paused_marker(data_root: &std::path::Path, id: &str) -> std::path::PathBuf {
    data_root.join("paused-by-commit").join(id)
}

/// At start: resume the containers a commit paused when berthd died before it could
/// resume them (a container the user paused has no marker and stays paused).
pub async fn resume_interrupted(d: &State) {
    let dir = d.data_root.join("paused-by-commit");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in rd.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        let r = d
            .images
            .mgr
            .tasks
            .clone()
            .resume(pb::ContainerRef { id: id.clone() })
            .await;
        match r {
            Ok(_) => tracing::info!(container_id = %id, "resumed: a commit paused it"),
            // (The manager not reachable yet: the marker stays for the next start.)
            Err(s) if s.code() == tonic::Code::Unavailable => {
                tracing::warn!(container_id = %id, "not resumed yet: {}", s.message());
                continue;
            }
            Err(s) => tracing::info!(container_id = %id, "not resumed: {}", s.message()),
        }
        let _ = std::fs::remove_file(e.path());
    }
}
