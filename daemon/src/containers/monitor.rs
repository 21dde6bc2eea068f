//! Restart policies and what happens when a container's init exits: `die` events, `--rm`
//! removal, `always` / `unless-stopped` / `on-failure[:N]` restarts with Docker's backoff
//! (100 ms doubling, reset after 10 s of running). Exits are read from the manager's
//! event stream; on (re)connection every container is reconciled, so exits that happened
//! while berthd (or the manager) was down are handled once — each handled exit is recorded
//! in the container's record (`HandledExit`).

use std::time::Duration;

use berth_proto::manager as pb;

use super::doc::{ContainerDoc, RestartPolicy};
use super::{all, delete, find, mounts, start, state_name, task, update_doc, Error, Result};
use crate::clock::unix_time;
use crate::events;
use crate::state::State;

/// Check a RestartPolicy as Docker does.
pub fn validate_policy(p: &RestartPolicy, auto_remove: bool) -> Result<()> {
    let max = p.maximum_retry_count;
    match p.name.as_str() {
        "" | "no" => {}
        "always" | "unless-stopped" if max != 0 => {
            return Err(Error::Invalid(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                    .into(),
            ))
        }
        "always" | "unless-stopped" => {}
        "on-failure" if max < 0 => {
            return Err(Error::Invalid(
                "invalid restart policy: maximum retry count cannot be negative".into(),
            ))
        }
        "on-failure" => {}
        other => {
            return Err(Error::Invalid(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            )))
        }
    }
    if auto_remove && !matches!(p.name.as_str(), "" | "no") {
        return Err(Error::Invalid(
            "conflicting options: cannot specify both --restart and --rm".into(),
        ));
    }
    Ok(())
}

/// Whether an exit with `code` restarts under the container's policy.
pub(super) fn should_restart(doc: &ContainerDoc, code: u32) -> bool {
    if doc.manual_stop {
        return false;
    }
    let p = doc.host_config.restart_policy();
    match p.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            let max = p.maximum_retry_count;
            code != 0 && (max == 0 || doc.restart_count < max)
        }
        _ => false,
    }
}

/// Follow the manager's exits for as long as berthd runs.
pub fn spawn(d: State) {
    tokio::spawn(async move {
        let mut boot = true;
        loop {
            let sub = d
                .images
                .mgr
                .events
                .clone()
                .subscribe(pb::SubscribeRequest {
                    topics: vec!["/tasks/exit".into(), "/tasks/oom".into()],
                })
                .await;
            let mut stream = match sub {
                Ok(s) => s.into_inner(),
                Err(e) => {
                    tracing::debug!("manager events: {}; retrying", e.message());
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            reconcile(&d, boot).await;
            if boot {
                super::health::resume(&d).await;
            }
            boot = false;
            while let Ok(Some(e)) = stream.message().await {
                if !e.exec_id.is_empty() {
                    continue;
                }
                match e.topic.as_str() {
                    "/tasks/exit" => {
                        let d = d.clone();
                        tokio::spawn(async move { handle_exit(&d, &e.id).await });
                    }
                    "/tasks/oom" => {
                        if let Ok(c) = find(&d, &e.id).await {
                            let _ = update_doc(&d, &c.id, None, |doc| doc.oom_killed = true).await;
                            events::container(&d, &c, "oom");
                        }
                    }
                    _ => {}
                }
            }
            tracing::warn!("lost the manager's event stream; reconnecting");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// Handle every exit not handled yet; at daemon start also bring back `always` containers
/// and `unless-stopped` ones their user did not stop.
async fn reconcile(d: &State, boot: bool) {
    let Ok(list) = all(d).await else { return };
    for c in list {
        let t = task(d, &c.id).await;
        let state = state_name(t.as_ref());
        let exited_at = t.as_ref().map(|t| t.exited_at.clone()).unwrap_or_default();
        if state == "exited" && c.doc.handled_exit.as_deref() != Some(&exited_at) {
            handle_exit(d, &c.id).await;
        } else if state == "exited" && c.doc.restarting {
            // A restart was due when berthd stopped.
            let r = if c.doc.manual_stop {
                update_doc(d, &c.id, None, |doc| doc.restarting = false).await
            } else {
                start(d, &c).await.map(|_| ())
            };
            if let Err(e) = r {
                tracing::warn!(container_id = %c.id, "pending restart: {e}");
            }
        } else if boot && state == "exited" {
            let name = c.doc.host_config.restart_policy().name;
            if name == "always" || (name == "unless-stopped" && !c.doc.manual_stop) {
                if let Err(e) = start(d, &c).await {
                    tracing::warn!(container_id = %c.id, "restart at boot: {e}");
                }
            }
        }
    }
}

/// An exit of container `id`'s init: its event, network released, `--rm`, restart policy.
#[tracing::instrument(skip_all, fields(container_id = %container_id))]
pub async fn handle_exit(d: &State, container_id: &str) {
    let id = container_id;
    let _g = d.exit_lock.lock().await;
    // A start's record update in flight lands first (see `start`).
    drop(d.doc_lock.lock().await);
    let Ok(c) = find(d, id).await else { return };
    let Some(t) = task(d, id).await else { return };
    if state_name(Some(&t)) != "exited" || c.doc.handled_exit.as_deref() == Some(&t.exited_at) {
        return;
    }
    tracing::info!(exit_code = t.exit_status, "exited");
    events::container_with(d, &c, "die", &[("exitCode", t.exit_status.to_string())]);
    let auto_remove = c.doc.host_config.auto_remove();
    if !auto_remove {
        // Veths, namespace, addresses and published ports go at exit, like Docker's.
        d.net.release(id).await;
    } else if d.net.ports.unpublish(id).await {
        d.net.refresh_rules().await;
    }
    if auto_remove {
        if delete(d, &c.id).await.is_ok() {
            events::container(d, &c, "destroy");
            mounts::remove_anonymous(d, &c.doc.mounts).await;
        }
        return;
    }
    let restart = should_restart(&c.doc, t.exit_status);
    // Backoff: 100 ms doubling per quick restart, reset after 10 s of running.
    let started = unix_time(c.doc.started_at.as_deref().unwrap_or(""));
    let ran = unix_time(&t.exited_at) - started;
    let streak = if ran >= 10 {
        0
    } else {
        c.doc.restart_streak + 1
    };
    let exited_at = t.exited_at.clone();
    let _ = update_doc(d, &c.id, None, |doc| {
        doc.handled_exit = Some(exited_at);
        if restart {
            doc.restart_streak = streak;
            doc.restart_count += 1;
            doc.restarting = true;
        }
    })
    .await;
    if !restart {
        return;
    }
    let delay = Duration::from_millis(100u64 << streak.min(9)).min(Duration::from_secs(60));
    let (d, id) = (d.clone(), c.id.clone());
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let Ok(c) = find(&d, &id).await else { return };
        // The user may have stopped or started it meanwhile.
        if c.doc.manual_stop || state_name(task(&d, &id).await.as_ref()) != "exited" {
            let _ = update_doc(&d, &id, None, |doc| doc.restarting = false).await;
            return;
        }
        match start(&d, &c).await {
            Ok(_) => events::container(&d, &c, "restart"),
            Err(e) => {
                tracing::warn!(container_id = %id, "restart: {e}");
                let _ = update_doc(&d, &id, None, |doc| doc.restarting = false).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let doc = |name: &str, max: i64, count: i64, manual: bool| {
            let mut d = ContainerDoc::default();
            d.host_config.restart_policy = Some(RestartPolicy {
                name: name.into(),
                maximum_retry_count: max,
            });
            d.restart_count = count;
            d.manual_stop = manual;
            d
        };
        assert!(should_restart(&doc("on-failure", 2, 1, false), 1));
        assert!(!should_restart(&doc("on-failure", 2, 2, false), 1));
        assert!(!should_restart(&doc("on-failure", 2, 0, false), 0));
        assert!(should_restart(&doc("always", 0, 5, false), 0));
        assert!(!should_restart(&doc("always", 0, 5, true), 0));
        let p = |name: &str, max: i64| RestartPolicy {
            name: name.into(),
            maximum_retry_count: max,
        };
        assert!(validate_policy(&p("sometimes", 0), false).is_err());
        assert!(validate_policy(&p("always", 0), true).is_err());
        assert!(validate_policy(&p("always", 3), false).is_err());
        assert!(validate_policy(&p("on-failure", 3), false).is_ok());
    }
}
