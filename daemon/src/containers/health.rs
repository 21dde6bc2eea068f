//! Health checks: the image's `HEALTHCHECK` under the container's `--health-*` options,
//! probes run as execs in the container, and `State.Health` (status, failing streak, the
//! last five results) kept in the container's record, so it survives berthd restarts and
//! the probes resume after one (see [`resume`]).
//!
//! Beyond Docker: a container labelled `berth.restart-on-unhealthy=true` (or every one,
//! with daemon.json's `restart-on-unhealthy`) is restarted when it turns unhealthy.

use std::time::Duration;

use berth_proto::manager as pb;
use serde::{Deserialize, Serialize};

use super::doc::{Config, Healthcheck};
use super::{find, state_name, task, update_doc, Container, Error, Result};
use crate::events;
use crate::state::State;

/// The label that opts a container into a restart when it turns unhealthy.
pub const RESTART_LABEL: &str = "berth.restart-on-unhealthy";

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// Docker keeps this much of a probe's output.
const MAX_OUTPUT: usize = 4096;
const MAX_LOG: usize = 5;

/// `State.Health`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// "starting", "healthy" or "unhealthy".
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<Probe>,
}

/// One probe's result.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// Docker's checks of a create body's Healthcheck.
pub fn validate(cfg: &Config) -> Result<()> {
    let Some(h) = &cfg.healthcheck else {
        return Ok(());
    };
    for (name, v) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        if let Some(v) = v.filter(|v| *v != 0) {
            if v < 1_000_000 {
                return Err(Error::Invalid(format!(
                    "{name} in Healthcheck cannot be less than 1ms"
                )));
            }
        }
    }
    if h.retries.is_some_and(|r| r < 0) {
        return Err(Error::Invalid(
            "Retries in Healthcheck cannot be negative".into(),
        ));
    }
    match h.test.as_deref() {
        None | Some([]) => {}
        Some([kind, ..]) if kind == "NONE" || kind == "CMD" || kind == "CMD-SHELL" => {
            if kind != "NONE" && h.test.as_ref().is_some_and(|t| t.len() < 2) {
                return Err(Error::Invalid(format!(
                    "Healthcheck.Test {kind} needs a command"
                )));
            }
        }
        Some([kind, ..]) => {
            return Err(Error::Invalid(format!(
                "Healthcheck.Test must start with NONE, CMD or CMD-SHELL, not {kind:?}"
            )))
        }
    }
    Ok(())
}

/// The container's Healthcheck over the image's: an empty Test and zero durations inherit.
pub fn merge(
    container: Option<Healthcheck>,
    image: Option<&serde_json::Value>,
) -> Option<Healthcheck> {
    let image: Option<Healthcheck> = image.and_then(|v| serde_json::from_value(v.clone()).ok());
    let (c, i) = match (container, image) {
        (None, None) => return None,
        (Some(c), None) => (c, Healthcheck::default()),
        (None, Some(i)) => (Healthcheck::default(), i),
        (Some(c), Some(i)) => (c, i),
    };
    let pick = |a: Option<i64>, b: Option<i64>| a.filter(|v| *v != 0).or(b.filter(|v| *v != 0));
    Some(Healthcheck {
        test: c.test.filter(|t| !t.is_empty()).or(i.test),
        interval: pick(c.interval, i.interval),
        timeout: pick(c.timeout, i.timeout),
        retries: pick(c.retries, i.retries),
        start_period: pick(c.start_period, i.start_period),
        start_interval: pick(c.start_interval, i.start_interval),
    })
}

/// The command a probe runs, if the container has a check that is not disabled.
fn probe_command(h: &Healthcheck) -> Option<Vec<String>> {
    match h.test.as_deref()? {
        [kind, cmd] if kind == "CMD-SHELL" => {
            Some(vec!["/bin/sh".into(), "-c".into(), cmd.clone()])
        }
        [kind, rest @ ..] if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        _ => None,
    }
}

/// Whether `c` has a health check that runs.
pub fn has_check(c: &Container) -> bool {
    c.doc
        .config
        .healthcheck
        .as_ref()
        .and_then(probe_command)
        .is_some()
}

/// `ps --filter health=`: "none", "starting", "healthy" or "unhealthy".
pub fn status_of(c: &Container) -> &str {
    if !has_check(c) {
        return "none";
    }
    c.doc
        .health
        .as_ref()
        .map(|h| h.status.as_str())
        .unwrap_or("starting")
}

/// `State.Health` as inspect shows it (absent without a check).
pub fn shown(c: &Container) -> Option<serde_json::Value> {
    if !has_check(c) {
        return None;
    }
    let h = c.doc.health.clone().unwrap_or_else(|| Health {
        status: "starting".into(),
        ..Default::default()
    });
    serde_json::to_value(h).ok()
}

fn ns(v: Option<i64>, default: Duration) -> Duration {
    v.filter(|v| *v > 0)
        .map(|v| Duration::from_nanos(v as u64))
        .unwrap_or(default)
}

/// Run one probe: an exec of `cmd`, its output (first 4 KiB) and exit code; 255 and "timed
/// out" past `timeout`, as Docker reports it (-1 for a probe that could not run).
async fn probe(d: &State, c: &Container, n: u64, cmd: &[String], timeout: Duration) -> Probe {
    let start = crate::clock::now_rfc3339();
    let exec_id = format!("health-{n}-{}", &super::new_id()[..12]);
    let r = pb::ProcessRef {
        container_id: c.id.clone(),
        exec_id: exec_id.clone(),
    };
    let tasks = d.images.mgr.tasks.clone();
    let run = async {
        tasks
            .clone()
            .exec(pb::ExecRequest {
                container_id: c.id.clone(),
                exec_id: exec_id.clone(),
                process: serde_json::to_vec(&serde_json::json!({ "args": cmd })).expect("json"),
                terminal: false,
                stdin: false,
                inherit: true,
            })
            .await?;
        // Subscribe to its output before it runs.
        let (in_tx, in_rx) = tokio::sync::mpsc::channel::<pb::AttachInput>(1);
        let _ = in_tx
            .send(pb::AttachInput {
                input: Some(pb::attach_input::Input::Start(pb::AttachStart {
                    container_id: c.id.clone(),
                    exec_id: exec_id.clone(),
                    stdout: true,
                    stderr: true,
                })),
            })
            .await;
        let mut out = tasks
            .clone()
            .attach(tokio_stream::wrappers::ReceiverStream::new(in_rx))
            .await?
            .into_inner();
        tasks.clone().start(r.clone()).await?;
        let mut output = Vec::new();
        while let Ok(Some(o)) = out.message().await {
            if output.len() < MAX_OUTPUT {
                output.extend_from_slice(&o.data);
            }
        }
        drop(in_tx);
        let code = tasks
            .clone()
            .wait(r.clone())
            .await?
            .into_inner()
            .exit_status as i64;
        Ok::<_, tonic::Status>((code, output))
    };
    let (exit_code, output) = match tokio::time::timeout(timeout, run).await {
        Ok(Ok((code, mut out))) => {
            out.truncate(MAX_OUTPUT);
            (code, String::from_utf8_lossy(&out).into_owned())
        }
        Ok(Err(s)) => (
            -1,
            format!("the health check could not run: {}", s.message()),
        ),
        Err(_) => {
            let _ = tasks
                .clone()
                .kill(pb::KillRequest {
                    container_id: c.id.clone(),
                    exec_id: exec_id.clone(),
                    signal: 9,
                    all: false,
                })
                .await;
            (
                -1,
                format!("Health check exceeded timeout ({}s)", timeout.as_secs_f64()),
            )
        }
    };
    let _ = tasks.clone().delete(r).await;
    Probe {
        start,
        end: crate::clock::now_rfc3339(),
        exit_code,
        output,
    }
}

/// Reset `State.Health` at a start and run the probes for as long as this run of the
/// container lasts.
pub fn starting(d: &State, c: &Container) {
    if !has_check(c) {
        return;
    }
    let (d, id) = (d.clone(), c.id.clone());
    tokio::spawn(async move {
        let _ = update_doc(&d, &id, None, |doc| {
            let log = doc.health.take().map(|h| h.log).unwrap_or_default();
            doc.health = Some(Health {
                status: "starting".into(),
                failing_streak: 0,
                log,
            });
        })
        .await;
        watch(d, id).await;
    });
}

/// After a berthd restart: the probes of every running container with a check.
pub async fn resume(d: &State) {
    let Ok(list) = super::all(d).await else {
        return;
    };
    for c in list {
        if has_check(&c) && state_name(task(d, &c.id).await.as_ref()) == "running" {
            tokio::spawn(watch(d.clone(), c.id.clone()));
        }
    }
}

/// The probe loop of one run of container `id` (it ends when that run does).
async fn watch(d: State, id: String) {
    let Ok(c) = find(&d, &id).await else { return };
    let Some(h) = c.doc.config.healthcheck.clone() else {
        return;
    };
    let Some(cmd) = probe_command(&h) else { return };
    let run = c.doc.started_at.clone();
    let interval = ns(h.interval, DEFAULT_INTERVAL);
    let timeout = ns(h.timeout, DEFAULT_TIMEOUT);
    let start_interval = ns(h.start_interval, DEFAULT_START_INTERVAL);
    let start_period = ns(h.start_period, Duration::ZERO);
    let retries = h.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES);
    let began = std::time::Instant::now();
    let mut in_start_period = !start_period.is_zero();
    for n in 1u64.. {
        let wait = if in_start_period && began.elapsed() < start_period {
            start_interval
        } else {
            in_start_period = false;
            interval
        };
        tokio::time::sleep(wait).await;
        let Ok(c) = find(&d, &id).await else { return };
        if c.doc.started_at != run || state_name(task(&d, &id).await.as_ref()) != "running" {
            return;
        }
        let p = probe(&d, &c, n, &cmd, timeout).await;
        let ok = p.exit_code == 0;
        // A failure within the start period does not count, a success ends it.
        let counts = !(in_start_period && began.elapsed() < start_period);
        if ok {
            in_start_period = false;
        }
        let mut changed = None;
        let r = update_doc(&d, &id, None, |doc| {
            if doc.started_at != run {
                return;
            }
            let h = doc.health.get_or_insert_with(|| Health {
                status: "starting".into(),
                ..Default::default()
            });
            let before = h.status.clone();
            if ok {
                h.failing_streak = 0;
                h.status = "healthy".into();
            } else if counts {
                h.failing_streak += 1;
                if h.failing_streak >= retries {
                    h.status = "unhealthy".into();
                }
            }
            h.log.push(p);
            let extra = h.log.len().saturating_sub(MAX_LOG);
            h.log.drain(..extra);
            if h.status != before {
                changed = Some(h.status.clone());
            }
        })
        .await;
        if r.is_err() {
            return;
        }
        if let Some(status) = changed {
            tracing::info!(container_id = %id, status = %status, "health");
            events::container(&d, &c, &format!("health_status: {status}"));
            if status == "unhealthy" && restarts_when_unhealthy(&d, &c) {
                tracing::info!(container_id = %id, "restarting an unhealthy container");
                if let Err(e) = super::restart(&d, &c, None).await {
                    tracing::warn!(container_id = %id, "restart when unhealthy: {e}");
                }
                return;
            }
        }
    }
}

fn restarts_when_unhealthy(d: &State, c: &Container) -> bool {
    let label = c
        .doc
        .config
        .labels
        .as_ref()
        .and_then(|l| l.get(RESTART_LABEL))
        .map(|v| v == "true" || v == "1");
    label.unwrap_or(d.images.reg.cfg.restart_on_unhealthy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_container_overrides_the_image_field_by_field() {
        let image = json!({"Test": ["CMD-SHELL", "true"], "Interval": 5, "Retries": 2});
        let c = Healthcheck {
            interval: Some(7),
            ..Default::default()
        };
        let m = merge(Some(c), Some(&image)).unwrap();
        assert_eq!(
            m.test,
            Some(vec!["CMD-SHELL".to_string(), "true".to_string()])
        );
        assert_eq!((m.interval, m.retries), (Some(7), Some(2)));
        let none = Healthcheck {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        };
        assert_eq!(
            probe_command(&merge(Some(none), Some(&image)).unwrap()),
            None
        );
        assert_eq!(
            probe_command(&merge(None, Some(&image)).unwrap()),
            Some(vec!["/bin/sh".to_string(), "-c".into(), "true".into()])
        );
    }

    #[test]
    fn bad_checks_are_refused() {
        let cfg = |h: Healthcheck| Config {
            healthcheck: Some(h),
            ..Default::default()
        };
        assert!(validate(&cfg(Healthcheck {
            interval: Some(10),
            ..Default::default()
        }))
        .is_err());
        assert!(validate(&cfg(Healthcheck {
            test: Some(vec!["RUN".into(), "x".into()]),
            ..Default::default()
        }))
        .is_err());
        assert!(validate(&cfg(Healthcheck {
            retries: Some(-1),
            ..Default::default()
        }))
        .is_err());
    }
}
