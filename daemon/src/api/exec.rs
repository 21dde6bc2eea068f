//! Exec: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (hijacked, or detached),
//! `POST /exec/{id}/resize`, `GET /exec/{id}/json`.
//!
//! An exec is registered with the manager only when it starts (the output is subscribed to
//! before the process runs, so nothing is missed); its exit code is recorded here before
//! the session closes — the CLI reads it from `/exec/{id}/json` right after — and the
//! process is then removed from the shim.

use axum::extract::{Path as AxPath, RawQuery, Request, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_proto::manager as pb;

use super::streams::{detach_keys, open_attach, resize_process, switching, Session};
use super::{ApiError, State};
use crate::containers::execs::{Exec, ExecConfig};
use crate::containers::{find, new_id, state_name, task};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

/// `POST /exec/{id}/start`'s body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartOptions {
    #[serde(default)]
    detach: Option<bool>,
    #[serde(default)]
    tty: Option<bool>,
}

#[tracing::instrument(skip_all, fields(container = %what))]
async fn create(
    AxState(d): AxState<State>,
    AxPath(what): AxPath<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let cfg: ExecConfig = super::decode(&body)?;
    let c = find(&d, &what).await?;
    let cmd = cfg.cmd().to_vec();
    if cmd.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    match state_name(task(&d, &c.id).await.as_ref()) {
        "running" => {}
        "paused" => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "Container {} is paused, unpause the container before exec",
                    c.id
                ),
            ))
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("Container {} is not running", c.id),
            ))
        }
    }
    if let Some(k) = cfg.detach_keys() {
        detach_keys(k)?;
    }
    let id = new_id();
    crate::events::container_with(
        &d,
        &c,
        &format!("exec_create: {}", cmd.join(" ")),
        &[("execID", id.clone())],
    );
    d.execs.insert(Exec {
        id: id.clone(),
        container: c.id,
        config: cfg,
        ..Default::default()
    });
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "Id": id }))).into_response())
}

/// The OCI process overlay for an exec (the manager fills the rest from the container).
fn process(d: &State, e: &Exec, init_pid: u32) -> Result<serde_json::Value, ApiError> {
    let cfg = &e.config;
    let mut p = serde_json::json!({ "args": cfg.cmd() });
    if let Some(env) = cfg.env.as_ref().filter(|v| !v.is_empty()) {
        p["env"] = env.clone().into();
    }
    if let Some(w) = cfg.working_dir.as_deref().filter(|w| !w.is_empty()) {
        if !w.starts_with('/') {
            return Err(ApiError::bad_request(format!(
                "the working directory '{w}' is invalid, it needs to be an absolute path"
            )));
        }
        p["cwd"] = w.into();
    }
    if let Some(u) = cfg.user.as_deref().filter(|u| !u.is_empty()) {
        // Names are resolved in the container's own /etc/passwd and /etc/group.
        let root = std::path::PathBuf::from(format!("/proc/{init_pid}/root"));
        let passwd = berth_fstree::users::read_in_root(&root, "/etc/passwd");
        let group = berth_fstree::users::read_in_root(&root, "/etc/group");
        let id = berth_fstree::users::resolve(u, &passwd, &group)
            .map_err(|m| ApiError::bad_request(format!("exec {}: user {u:?}: {m}", e.id)))?;
        p["user"] = serde_json::json!({
            "uid": id.uid, "gid": id.gid, "additionalGids": id.additional_gids,
        });
    }
    let _ = d;
    Ok(p)
}

#[tracing::instrument(skip_all, fields(exec_id = %id))]
async fn start(
    AxState(d): AxState<State>,
    AxPath(id): AxPath<String>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?;
    let opts: StartOptions = super::decode(&body)?;
    let e = d.execs.get(&id)?;
    if e.started {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("exec {id} has already been started"),
        ));
    }
    let t = task(&d, &e.container).await;
    if state_name(t.as_ref()) != "running" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Container {} is not running", e.container),
        ));
    }
    let cfg = e.config.clone();
    // As in dockerd: the exec's own Tty gives it a terminal; the start request's Tty alone
    // says whether the stream is raw (true) or multiplexed with stdcopy headers.
    let terminal = cfg.tty.unwrap_or(false);
    let tty = opts.tty.unwrap_or(false);
    let detach = opts.detach.unwrap_or(false);
    let stdin = cfg.attach_stdin.unwrap_or(false) && !detach;
    let p = process(&d, &e, t.map(|t| t.pid).unwrap_or(0))?;
    let tasks = d.images.mgr.tasks.clone();
    tasks
        .clone()
        .exec(pb::ExecRequest {
            container_id: e.container.clone(),
            exec_id: id.clone(),
            process: serde_json::to_vec(&p).expect("json"),
            terminal,
            stdin,
            inherit: true,
        })
        .await?;
    d.execs.update(&id, |x| x.started = true);
    // Subscribe before the process runs.
    let attached = if detach {
        None
    } else {
        Some(
            open_attach(
                &d,
                &e.container,
                &id,
                cfg.attach_stdout.unwrap_or(true),
                cfg.attach_stderr.unwrap_or(true),
            )
            .await?,
        )
    };
    // Start it: now when detached or not hijacked, after the upgrade when hijacked.
    let start_exec = {
        let (d, tasks, container, id) = (d.clone(), tasks.clone(), e.container.clone(), id.clone());
        async move {
            let r = tasks
                .clone()
                .start(pb::ProcessRef {
                    container_id: container.clone(),
                    exec_id: id.clone(),
                })
                .await;
            match r {
                Ok(t) => {
                    let pid = t.into_inner().pid;
                    d.execs.update(&id, |x| {
                        x.running = true;
                        x.pid = pid;
                    });
                    Ok(())
                }
                Err(s) => {
                    let _ = tasks
                        .clone()
                        .delete(pb::ProcessRef {
                            container_id: container,
                            exec_id: id.clone(),
                        })
                        .await;
                    // Docker's codes: 127 when the program is missing, else 126 (the shim
                    // says which by the status code).
                    let m = s.message().to_string();
                    let code = if s.code() == tonic::Code::NotFound {
                        127
                    } else {
                        126
                    };
                    d.execs.update(&id, |x| x.exit_code = Some(code));
                    Err(format!("OCI runtime exec failed: {m}"))
                }
            }
        }
    };
    let finish = reap(d.clone(), e.container.clone(), id.clone());
    match (attached, upgrade) {
        (None, _) => {
            start_exec
                .await
                .map_err(|m| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m))?;
            tokio::spawn(finish);
            Ok(StatusCode::OK.into_response())
        }
        (Some((out, in_tx)), Some(upgrade)) => {
            let session = Session {
                tty,
                stdin,
                close_stdin: true,
                detach: detach_keys(cfg.detach_keys().unwrap_or("ctrl-p,ctrl-q"))?,
            };
            let before = async move { start_exec.await.map(|_| None) };
            session.spawn(upgrade, out, in_tx, before, finish);
            Ok(switching(tty))
        }
        (Some((mut out, _in)), None) => {
            start_exec
                .await
                .map_err(|m| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m))?;
            // Not hijacked: the output as the response body, the exit recorded at its end.
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(16);
            tokio::spawn(async move {
                while let Ok(Some(o)) = out.message().await {
                    let b = super::streams::encode(o, tty);
                    if tx.send(Ok(b)).await.is_err() {
                        break;
                    }
                }
                finish.await;
            });
            Ok(Response::builder()
                .header(
                    axum::http::header::CONTENT_TYPE,
                    super::streams::content_type(tty),
                )
                .body(axum::body::Body::from_stream(
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                ))
                .expect("response"))
        }
    }
}

/// Wait for the exec to exit, record its code, remove it from the shim.
async fn reap(d: State, container: String, id: String) {
    let r = pb::ProcessRef {
        container_id: container,
        exec_id: id.clone(),
    };
    let code = match d.images.mgr.tasks.clone().wait(r.clone()).await {
        Ok(s) => s.into_inner().exit_status as i64,
        Err(_) => 255,
    };
    d.execs.update(&id, |x| {
        x.running = false;
        x.exit_code = Some(code);
    });
    if let Ok(c) = find(&d, &r.container_id).await {
        crate::events::container_with(
            &d,
            &c,
            "exec_die",
            &[("execID", id.clone()), ("exitCode", code.to_string())],
        );
    }
    let _ = d.images.mgr.tasks.clone().delete(r).await;
}

async fn resize(
    AxState(d): AxState<State>,
    AxPath(id): AxPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let e = d.execs.get(&id)?;
    if !e.running {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("exec {id} is not running"),
        ));
    }
    resize_process(&d, &e.container, &id, q.as_deref()).await
}

async fn inspect(
    AxState(d): AxState<State>,
    AxPath(id): AxPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let e = d.execs.get(&id)?;
    let c = &e.config;
    let cmd = c.cmd();
    Ok(Json(serde_json::json!({
        "ID": e.id,
        "ContainerID": e.container,
        "Running": e.running,
        // Docker's schema: an integer (0 until the process has exited).
        "ExitCode": e.exit_code.unwrap_or(0),
        "Pid": e.pid,
        "OpenStdin": c.attach_stdin.unwrap_or(false),
        "OpenStdout": c.attach_stdout.unwrap_or(false),
        "OpenStderr": c.attach_stderr.unwrap_or(false),
        "CanRemove": false,
        "DetachKeys": c.detach_keys.as_deref().unwrap_or(""),
        "ProcessConfig": {
            "tty": c.tty.unwrap_or(false),
            "entrypoint": cmd.first().cloned().unwrap_or_default(),
            "arguments": cmd.get(1..).unwrap_or_default(),
            "privileged": c.privileged.unwrap_or(false),
            "user": c.user.as_deref().unwrap_or(""),
        },
    })))
}
