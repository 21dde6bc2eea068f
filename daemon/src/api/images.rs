//! Image endpoints: list, create (pull / import), inspect, history, tag, push, delete, get
//! (save), load, prune. Pull and push answer with Docker's JSON progress stream.

use crate::clock::unix_time;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, RawQuery, Request, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;

use super::request::spool;
use super::{url_all, url_pairs, ApiError, State};
use crate::images::{Images, OnProgress, Progress, Resolved};
use crate::reference::Reference;
use crate::registry::Registry;

pub fn routes() -> Router<State> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/get", get(save_many))
        .route("/images/load", post(load))
        .route("/images/prune", post(prune))
        .route("/images/search", get(search))
        .route("/images/{*rest}", any(by_name))
}

/// Images with the credentials of an X-Registry-Auth header, if the client sent one.
fn with_auth(d: &State, headers: &HeaderMap) -> Arc<Images> {
    let Some(v) = headers.get("x-registry-auth").and_then(|v| v.to_str().ok()) else {
        return Arc::new(Images::new(d.images.mgr.clone(), d.images.reg.clone()));
    };
    let decoded = base64::engine::general_purpose::URL_SAFE
        .decode(v.trim())
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(v.trim()))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.trim()))
        .unwrap_or_default();
    let a: serde_json::Value = serde_json::from_slice(&decoded).unwrap_or_default();
    let (Some(u), Some(p)) = (a["username"].as_str(), a["password"].as_str()) else {
        return Arc::new(Images::new(d.images.mgr.clone(), d.images.reg.clone()));
    };
    let host = crate::registry::normalize_host(a["serveraddress"].as_str().unwrap_or(""));
    let mut creds = crate::registry::docker_credentials();
    creds.insert(host, (u.to_string(), p.to_string()));
    let reg = Arc::new(Registry::new(d.images.reg.cfg.clone(), creds));
    Arc::new(Images::new(d.images.mgr.clone(), reg))
}

fn progress_line(p: &Progress) -> serde_json::Value {
    if p.id.is_empty() {
        return serde_json::json!({ "status": p.status });
    }
    let mut v = serde_json::json!({ "status": p.status, "id": p.id, "progressDetail": {} });
    if p.status == "Downloading" || p.status == "Pushing" {
        v["progressDetail"] = serde_json::json!({ "current": p.current, "total": p.total });
        let width = 50u64;
        let done = (p.current * width)
            .checked_div(p.total)
            .unwrap_or(0)
            .min(width);
        v["progress"] = format!(
            "[{}>{}] {:.1}MB/{:.1}MB",
            "=".repeat(done as usize),
            " ".repeat((width - done) as usize),
            p.current as f64 / 1e6,
            p.total as f64 / 1e6
        )
        .into();
    }
    v
}

fn error_line(e: &str) -> serde_json::Value {
    serde_json::json!({ "errorDetail": { "message": e }, "error": e })
}

/// The lines of a progress response on their way to the client. Bounded without blocking
/// the pull or push: a byte-count update (`progressDetail`) replaces the one still queued
/// for the same layer, so a slow client gets every status change and the latest counts,
/// and the queue holds at most a few lines per layer.
struct ProgressQueue {
    q: std::sync::Mutex<std::collections::VecDeque<serde_json::Value>>,
    more: tokio::sync::Notify,
    done: std::sync::atomic::AtomicBool,
}

/// The producing side of a [`ProgressQueue`]; the response ends when it is dropped.
#[derive(Clone)]
struct Lines(Arc<ProgressQueue>);

impl Lines {
    fn send(&self, v: serde_json::Value) {
        {
            let mut q = self.0.q.lock().unwrap_or_else(|p| p.into_inner());
            let counts = |l: &serde_json::Value| l["progressDetail"]["total"].is_u64();
            if counts(&v) {
                if let Some(old) = q
                    .iter_mut()
                    .find(|l| counts(l) && l["id"] == v["id"] && l["status"] == v["status"])
                {
                    *old = v;
                    return;
                }
            }
            q.push_back(v);
        }
        self.0.more.notify_one();
    }
}

/// Ends the response once the work (every holder of a `Lines`) is done.
struct Finish(Arc<ProgressQueue>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.done.store(true, std::sync::atomic::Ordering::SeqCst);
        self.0.more.notify_one();
    }
}

/// A JSON-lines progress response fed by `work`, which gets the sender.
fn stream_response<F, Fut>(work: F) -> Response
where
    F: FnOnce(Lines) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let queue = Arc::new(ProgressQueue {
        q: Default::default(),
        more: tokio::sync::Notify::new(),
        done: false.into(),
    });
    let fut = work(Lines(queue.clone()));
    let finish = Finish(queue.clone());
    tokio::spawn(async move {
        fut.await;
        drop(finish);
    });
    let body = futures_util::stream::unfold(queue, |q| async move {
        loop {
            let next = q.q.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            if let Some(v) = next {
                return Some((Ok::<_, std::io::Error>(Bytes::from(format!("{v}\r\n"))), q));
            }
            if q.done.load(std::sync::atomic::Ordering::SeqCst) {
                return None;
            }
            q.more.notified().await;
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .body(Body::from_stream(body))
        .expect("response")
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CreateQuery {
    from_image: Option<String>,
    from_src: Option<String>,
    repo: Option<String>,
    tag: Option<String>,
    platform: Option<String>,
}

async fn create(
    AxState(d): AxState<State>,
    Query(q): Query<CreateQuery>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(src) = q.from_src.as_deref() {
        let changes = raw
            .as_deref()
            .map(|r| url_all(r, "changes"))
            .unwrap_or_default();
        return import(d, src, q.repo.as_deref(), q.tag.as_deref(), &changes, body).await;
    }
    let Some(image) = q.from_image.filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad_request("fromImage or fromSrc is required"));
    };
    if let Some(p) = q.platform.as_deref().filter(|p| !p.is_empty()) {
        let host = format!("linux/{}", d.images.platform.architecture);
        if p != host && !host.starts_with(p) {
            return Err(ApiError::bad_request(format!(
                "platform {p:?}: this daemon pulls for {host} only"
            )));
        }
    }
    let reference = match q.tag.as_deref().filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{image}@{t}"),
        Some(t) => format!("{image}:{t}"),
        None if image.contains('@')
            || image.rsplit('/').next().is_some_and(|l| l.contains(':')) =>
        {
            image
        }
        // `docker pull -a` is not supported: no tag means latest, like the CLI's default.
        None => format!("{image}:latest"),
    };
    let r = Reference::parse(&reference)?;
    let images = with_auth(&d, &headers);
    let events = d.clone();
    Ok(stream_response(move |tx| async move {
        tx.send(serde_json::json!({
            "status": format!("Pulling from {}", r.familiar_repository()),
            "id": r.tag.clone().or(r.digest.clone()).unwrap_or_default(),
        }));
        let ptx = tx.clone();
        let progress: OnProgress = Arc::new(move |p: Progress| {
            ptx.send(progress_line(&p));
        });
        let before = images
            .resolve(&r.to_string())
            .await
            .ok()
            .and_then(|i| i.record.target)
            .map(|t| t.digest);
        match images.pull(&reference, progress).await {
            Ok(new) if new.record.target.as_ref().map(|t| &t.digest) == before.as_ref() => {
                tx.send(serde_json::json!({
                    "status": format!("Status: Image is up to date for {}", r.familiar()),
                }));
            }
            Ok(_) => {
                events.events.publish(
                    "image",
                    "pull",
                    &r.familiar(),
                    serde_json::json!({"name": r.familiar()}),
                );
                tx.send(serde_json::json!({
                    "status": format!("Status: Downloaded newer image for {}", r.familiar()),
                }));
            }
            Err(e) => {
                tx.send(error_line(&format!("{:#}", anyhow::Error::new(e))));
            }
        }
    }))
}

async fn import(
    d: State,
    src: &str,
    repo: Option<&str>,
    tag: Option<&str>,
    changes: &[String],
    body: Body,
) -> Result<Response, ApiError> {
    if src != "-" {
        return Err(ApiError::bad_request(
            "fromSrc: only \"-\" (the request body) is supported",
        ));
    }
    let name = match (
        repo.filter(|r| !r.is_empty()),
        tag.filter(|t| !t.is_empty()),
    ) {
        (Some(r), Some(t)) => Some(format!("{r}:{t}")),
        (Some(r), None) => Some(r.to_string()),
        _ => None,
    };
    if let Some(n) = &name {
        Reference::parse(n)?;
    }
    let mut run = berth_manager::images::manifest::RunConfig {
        env: Some(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ]),
        ..Default::default()
    };
    for c in changes {
        crate::build::instructions::apply(&mut run, c).map_err(ApiError::bad_request)?;
    }
    let tmp = spool(&d, body).await?;
    let r = d
        .images
        .create_image(crate::images::NewImage {
            base: None,
            layer: Some(&tmp),
            run,
            history: berth_manager::images::manifest::History {
                created: crate::clock::now_rfc3339(),
                created_by: "berth import".into(),
                comment: "Imported from tarball".into(),
                ..Default::default()
            },
            author: String::new(),
            target: name.as_deref(),
            platform: None,
        })
        .await;
    let _ = std::fs::remove_file(&tmp);
    let r = r?;
    d.events.publish(
        "image",
        "import",
        r.id(),
        serde_json::json!({"name": name.clone().unwrap_or_default()}),
    );
    Ok(Json(serde_json::json!({ "status": r.id() })).into_response())
}

pub(super) fn size_of(r: &Resolved) -> u64 {
    r.manifest.layers.iter().map(|l| l.size).sum()
}

pub(super) async fn list(
    AxState(d): AxState<State>,
    RawQuery(q): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let f = super::Filters::parse(&query)?;
    let dangling = f.get("dangling").first().map(|v| v == "true" || v == "1");
    let refs = f.get("reference");
    let want_labels = f.get("label");
    let mut rows = Vec::new();
    for (r, mut tags, digests) in crate::images::by_id(&d.images).await? {
        if dangling.is_some_and(|dg| dg != tags.is_empty()) {
            continue;
        }
        if !refs.is_empty() {
            // Only the tags that match are shown (`docker images busybox:1`).
            tags.retain(|t| refs.iter().any(|p| reference_matches(p, t)));
            if tags.is_empty() {
                continue;
            }
        }
        let labels = r
            .config
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let has_label = |want: &String| match want.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(want),
        };
        if !want_labels.iter().all(has_label) {
            continue;
        }
        rows.push(serde_json::json!({
            "Id": r.id(),
            "ParentId": "",
            "RepoTags": if tags.is_empty() { vec!["<none>:<none>".to_string()] } else { tags },
            "RepoDigests": digests,
            "Created": unix_time(&r.config.created),
            "Size": size_of(&r),
            "SharedSize": -1,
            "Labels": labels,
            "Containers": -1,
        }));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r["Created"].as_i64().unwrap_or(0)));
    Ok(Json(rows.into()))
}

/// Docker's `reference` filter: a path pattern over `name:tag`, or over the name alone when
/// the pattern has no tag.
fn reference_matches(pattern: &str, tag: &str) -> bool {
    let has_tag = pattern.rsplit('/').next().is_some_and(|l| l.contains(':'));
    let subject = if has_tag {
        tag
    } else {
        tag.rsplit_once(':').map_or(tag, |(n, _)| n)
    };
    crate::build::pattern::path_matches(pattern, subject)
}

fn inspect_json(r: &Resolved, tags: Vec<String>, digests: Vec<String>) -> serde_json::Value {
    serde_json::json!({
        "Id": r.id(),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": r.record.labels.get(crate::images::PARENT_LABEL).cloned().unwrap_or_default(),
        "Comment": r.config.history.last().map(|h| h.comment.clone()).unwrap_or_default(),
        "Created": r.config.created,
        "DockerVersion": "",
        "Author": r.config.author,
        "Config": r.config.config,
        "Architecture": r.config.architecture,
        "Variant": if r.config.variant.is_empty() { None } else { Some(&r.config.variant) },
        "Os": r.config.os,
        "Size": size_of(r),
        "GraphDriver": {"Name": "overlayfs", "Data": {}},
        "RootFS": {"Type": r.config.rootfs.kind, "Layers": r.config.rootfs.diff_ids},
        "Metadata": {"LastTagTime": r.record.updated_at},
        "Descriptor": r.record.target.as_ref().map(|t| serde_json::json!({
            "mediaType": t.media_type, "digest": t.digest, "size": t.size,
        })),
    })
}

/// `/images/{name}/…`: the name may hold slashes, so the action is the last segment.
async fn by_name(
    AxState(d): AxState<State>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    req: Request,
) -> Result<Response, ApiError> {
    let path = req.uri().path().to_string();
    let rest = path.trim_start_matches("/images/");
    let query: BTreeMap<String, String> = q.as_deref().map(url_pairs).unwrap_or_default();
    let flag = |k: &str| {
        query
            .get(k)
            .is_some_and(|v| v == "1" || v == "true" || v == "True")
    };
    if method == Method::DELETE {
        let out = d.images.remove(rest, flag("force")).await?;
        let body: Vec<serde_json::Value> = out
            .into_iter()
            .map(|(what, x)| serde_json::json!({ what: x }))
            .collect();
        return Ok(Json(body).into_response());
    }
    let (name, action) = rest.rsplit_once('/').unwrap_or((rest, ""));
    match (method, action) {
        (Method::GET, "json") => {
            let r = d.images.resolve(name).await?;
            let (tags, digests) = crate::images::by_id(&d.images)
                .await?
                .into_iter()
                .find(|e| e.0.id() == r.id())
                .map(|e| (e.1, e.2))
                .unwrap_or_default();
            Ok(Json(inspect_json(&r, tags, digests)).into_response())
        }
        (Method::GET, "history") => {
            let r = d.images.resolve(name).await?;
            let mut layers = r.manifest.layers.iter().rev();
            let n = r.config.history.len();
            let rows: Vec<serde_json::Value> = r
                .config
                .history
                .iter()
                .rev()
                .enumerate()
                .map(|(i, h)| {
                    let size = if h.empty_layer {
                        0
                    } else {
                        layers.next().map(|l| l.size).unwrap_or(0)
                    };
                    serde_json::json!({
                        "Id": if i == 0 { r.id().to_string() } else { "<missing>".into() },
                        "Created": unix_time(&h.created),
                        "CreatedBy": h.created_by,
                        "Tags": if i == 0 { Some(vec![r.record.name.clone()]) } else { None },
                        "Size": size,
                        "Comment": h.comment,
                    })
                })
                .collect();
            let _ = n;
            Ok(Json(rows).into_response())
        }
        (Method::POST, "tag") => {
            let repo = query
                .get("repo")
                .filter(|r| !r.is_empty())
                .ok_or_else(|| ApiError::bad_request("repo is required"))?;
            let target = match query.get("tag").filter(|t| !t.is_empty()) {
                Some(t) => format!("{repo}:{t}"),
                None => repo.clone(),
            };
            d.images.tag(name, &target).await?;
            d.events
                .publish("image", "tag", name, serde_json::json!({"name": target}));
            Ok(StatusCode::CREATED.into_response())
        }
        (Method::POST, "push") => {
            let reference = match query.get("tag").filter(|t| !t.is_empty()) {
                Some(t) => format!("{name}:{t}"),
                None => name.to_string(),
            };
            let r = Reference::parse(&reference)?;
            let images = with_auth(&d, &headers);
            // Unknown images are a 404 before any stream starts.
            images.find(&r.to_string()).await?;
            Ok(stream_response(move |tx| async move {
                tx.send(serde_json::json!({
                    "status": format!("The push refers to repository [{}]", r.repository()),
                }));
                let ptx = tx.clone();
                let progress: OnProgress = Arc::new(move |p: Progress| {
                    ptx.send(progress_line(&p));
                });
                if let Err(e) = images.push(&reference, progress).await {
                    tx.send(error_line(&format!("{:#}", anyhow::Error::new(e))));
                }
            }))
        }
        (Method::GET, "get") => save(&d, &[name.to_string()]).await,
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("page not found: {path}"),
        )),
    }
}

async fn save(d: &State, names: &[String]) -> Result<Response, ApiError> {
    for n in names {
        d.images.find(n).await?;
    }
    let dir = d.data_root.join("tmp");
    std::fs::create_dir_all(&dir).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}", dir.display()),
        )
    })?;
    let path = dir.join(format!("save-{}.tar", crate::images::unique()));
    crate::archive::save(&d.images, names, &path).await?;
    let f = tokio::fs::File::open(&path).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}", path.display()),
        )
    })?;
    // The open file keeps the data; the name can go now.
    let _ = std::fs::remove_file(&path);
    let body = Body::from_stream(tokio_util_stream(f));
    Ok(Response::builder()
        .header("Content-Type", "application/x-tar")
        .body(body)
        .expect("response"))
}

fn tokio_util_stream(
    f: tokio::fs::File,
) -> impl tokio_stream::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    use tokio::io::AsyncReadExt;
    futures_unfold(f, |mut f| async move {
        let mut buf = vec![0u8; 256 << 10];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
}

/// A stream from repeated async steps (like futures' `unfold`).
fn futures_unfold<S, F, Fut, T>(state: S, f: F) -> impl tokio_stream::Stream<Item = T> + Send
where
    S: Send + 'static,
    T: Send + 'static,
    F: Fn(S) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<(T, S)>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<T>(2);
    tokio::spawn(async move {
        let mut s = state;
        while let Some((item, next)) = f(s).await {
            if tx.send(item).await.is_err() {
                break;
            }
            s = next;
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

async fn save_many(
    AxState(d): AxState<State>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let names = url_all(q.as_deref().unwrap_or(""), "names");
    if names.is_empty() {
        return Err(ApiError::bad_request("names is required"));
    }
    save(&d, &names).await
}

async fn load(AxState(d): AxState<State>, body: Body) -> Result<Response, ApiError> {
    let tmp = spool(&d, body).await?;
    let r = crate::archive::load(&d.images, &tmp, &d.data_root.join("tmp")).await;
    let _ = std::fs::remove_file(&tmp);
    // As dockerd: the answer is a stream, so a bad archive is its last line (docker-py
    // raises ImageLoadError on it, the CLI prints it and fails).
    let lines = match r {
        Ok(l) => l,
        Err(e) => {
            let line = error_line(&format!("{:#}", anyhow::Error::new(e)));
            return Ok(Response::builder()
                .header("Content-Type", "application/json")
                .body(Body::from(format!("{line}\r\n")))
                .expect("response"));
        }
    };
    d.events.publish("image", "load", "", serde_json::json!({}));
    let text: String = lines
        .iter()
        .map(|l| format!("{}\r\n", serde_json::json!({ "stream": format!("{l}\n") })))
        .collect();
    Ok(Response::builder()
        .header("Content-Type", "application/json")
        .body(Body::from(text))
        .expect("response"))
}

/// `POST /images/prune?filters=`: untagged images (`dangling=true`, the default), or with
/// `dangling=false` (`docker image prune -a`) every image no container uses.
async fn prune(
    AxState(d): AxState<State>,
    RawQuery(q): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let f = super::Filters::parse(&query)?;
    if let Some(k) = f.keys().find(|k| k.as_str() != "dangling") {
        return Err(ApiError::bad_request(format!(
            "image prune filter {k:?} is not supported by Berth (dangling)"
        )));
    }
    let all = match f.get("dangling").first().map(String::as_str) {
        None | Some("true") | Some("1") => false,
        Some("false") | Some("0") => true,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'dangling={v}'"
            )))
        }
    };
    let mut removed: Vec<serde_json::Value> = Vec::new();
    if all {
        let used: std::collections::HashSet<String> = crate::containers::all(&d)
            .await?
            .into_iter()
            .map(|c| c.doc.image)
            .collect();
        for img in d
            .images
            .mgr
            .images()
            .await
            .map_err(crate::images::Error::from)?
        {
            let Ok(r) = d.images.resolve_record(&img).await else {
                continue;
            };
            if !used.contains(r.id()) {
                // (Another name of the same image may have taken it already.)
                for (kind, what) in d.images.remove(&img.name, false).await.unwrap_or_default() {
                    removed.push(serde_json::json!({ kind: what }));
                }
            }
        }
    }
    let (dangling, gc) = d.images.prune().await?;
    let mut deleted = removed;
    deleted.extend(
        dangling
            .iter()
            .map(|id| serde_json::json!({ "Deleted": id })),
    );
    Ok(Json(serde_json::json!({
        "ImagesDeleted": if deleted.is_empty() { None } else { Some(deleted) },
        "SpaceReclaimed": gc.bytes,
    })))
}

/// `GET /images/search?term=&limit=`: registries keep no search index offline, so this
/// lists repositories from registry catalogs (`/v2/_catalog`) whose name contains the term:
/// the registry named by the term (`127.0.0.1:5000/busy`), or the mirrors for Docker Hub
/// names. Docker Hub's own search service is not used.
async fn search(
    AxState(d): AxState<State>,
    RawQuery(q): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = q.as_deref().map(url_pairs).unwrap_or_default();
    let term = query
        .get("term")
        .filter(|t| !t.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad_request("search: term is required"))?;
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(25);
    let (first, rest) = term.split_once('/').unwrap_or(("", term.as_str()));
    let is_host = first.contains('.') || first.contains(':') || first == "localhost";
    let (endpoints, prefix, needle) = if is_host {
        let r = Reference::parse(&format!("{first}/x"))?;
        let eps = d
            .images
            .reg
            .endpoints(&r)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        (eps, format!("{first}/"), rest.to_string())
    } else {
        let eps: Vec<_> = d
            .images
            .reg
            .cfg
            .registry_mirrors
            .iter()
            .map(|m| {
                let base = m.trim_end_matches('/').to_string();
                let host = base.split("://").nth(1).unwrap_or(&base).to_string();
                crate::registry::Endpoint {
                    base,
                    host,
                    mirror: true,
                }
            })
            .collect();
        if eps.is_empty() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("search {term:?}: no registry mirror to search (Docker Hub's search service is not used)"),
            ));
        }
        (eps, String::new(), term.clone())
    };
    let mut names = std::collections::BTreeSet::new();
    let mut last_err = None;
    for ep in &endpoints {
        match d.images.reg.catalog(ep).await {
            Ok(list) => {
                for r in list {
                    let shown = r.strip_prefix("library/").unwrap_or(&r).to_string();
                    if shown.contains(&needle) {
                        names.insert(format!("{prefix}{shown}"));
                    }
                }
            }
            Err(e) => last_err = Some(e),
        }
    }
    if names.is_empty() {
        if let Some(e) = last_err {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("search {term:?}: {:#}", anyhow::Error::new(e)),
            ));
        }
    }
    let rows: Vec<serde_json::Value> = names
        .into_iter()
        .take(limit)
        .map(|n| {
            serde_json::json!({
                "name": n, "description": "", "star_count": 0,
                "is_official": false, "is_automated": false,
            })
        })
        .collect();
    Ok(Json(rows.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that reads nothing while a layer downloads holds one count line per layer,
    /// not one per chunk; status changes are all kept, in order.
    #[tokio::test]
    async fn progress_queue_is_bounded_and_keeps_status() {
        let resp = stream_response(|tx| async move {
            for layer in ["a", "b"] {
                tx.send(serde_json::json!({"status": "Pulling fs layer", "id": layer}));
            }
            for i in 0..10_000u64 {
                for layer in ["a", "b"] {
                    tx.send(progress_line(&Progress {
                        id: layer.into(),
                        status: "Downloading".into(),
                        current: i,
                        total: 10_000,
                    }));
                }
            }
            tx.send(serde_json::json!({"status": "Pull complete", "id": "a"}));
        });
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let lines: Vec<serde_json::Value> = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let statuses: Vec<&str> = lines
            .iter()
            .map(|l| l["status"].as_str().unwrap())
            .collect();
        assert!(lines.len() <= 5, "{} lines queued", lines.len());
        assert_eq!(statuses.first(), Some(&"Pulling fs layer"));
        assert_eq!(statuses.last(), Some(&"Pull complete"));
        let last_a = lines
            .iter()
            .rfind(|l| l["id"] == "a" && l["status"] == "Downloading")
            .unwrap();
        assert_eq!(last_a["progressDetail"]["current"], 9_999);
    }
}
