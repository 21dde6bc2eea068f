//! Restart policies and what happens when a container's init exits: `die` events, `--rm`
//! removal, `always` / `unless-stopped` / `on-failure[:N]` restarts with Docker's backoff
//! (100 ms doubling, reset after 10 s of running). Exits are read from the manager's
//! event stream; on (re)connection every container is reconciled, so exits that happened
//! while berthd (or the manager) was down are handled once — each handled exit is recorded
//! in the container's document (`HandledExit`).

use std::time::Duration;

use berth_proto::manager as pb;
use serde_json::Value;

use super::containers::{
    all, delete_container, find, start_container, state_name, task, update_doc,
};
use super::{ApiError, State};

/// Check a RestartPolicy as Docker does.
pub fn validate(p: &Value, auto_remove: bool) -> Result<(), ApiError> {
    let name = p["Name"].as_str().unwrap_or("");
    let max = p["MaximumRetryCount"].as_i64().unwrap_or(0);
    match name {
        "" | "no" => {}
        "always" | "unless-stopped" if max != 0 => {
            return Err(ApiError::bad_request(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'",
            ))
        }
        "always" | "unless-stopped" => {}
        "on-failure" if max < 0 => {
            return Err(ApiError::bad_request(
                "invalid restart policy: maximum retry count cannot be negative",
            ))
        }
        "on-failure" => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            )))
        }
    }
    if auto_remove && !matches!(name, "" | "no") {
        return Err(ApiError::bad_request(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    Ok(())
}

/// Whether an exit with `code` restarts under the container's policy.
fn should_restart(doc: &Value, code: u32) -> bool {
    if doc["ManualStop"].as_bool().unwrap_or(false) {
        return false;
    }
    let p = &doc["HostConfig"]["RestartPolicy"];
    let count = doc["RestartCount"].as_i64().unwrap_or(0);
    match p["Name"].as_str().unwrap_or("") {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            let max = p["MaximumRetryCount"].as_i64().unwrap_or(0);
            code != 0 && (max == 0 || count < max)
        }
        _ => false,
    }
}

/// Follow the manager's exits for as long as berthd runs.
pub fn spawn_monitor(d: State) {
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
                            let _ =
                                update_doc(&d, &c.id, None, |doc| doc["OOMKilled"] = true.into())
                                    .await;
                            super::events::container(&d, &c, "oom");
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
        if state == "exited" && c.doc["HandledExit"].as_str() != Some(&exited_at) {
            handle_exit(d, &c.id).await;
        } else if state == "exited" && c.doc["Restarting"].as_bool().unwrap_or(false) {
            // A restart was due when berthd stopped.
            let manual = c.doc["ManualStop"].as_bool().unwrap_or(false);
            let r = if manual {
                update_doc(d, &c.id, None, |doc| doc["Restarting"] = false.into()).await
            } else {
                start_container(d, &c).await.map(|_| ())
            };
            if let Err(e) = r {
                tracing::warn!(container = %c.id, "pending restart: {}", e.message);
            }
        } else if boot && state == "exited" {
            let name = c.doc["HostConfig"]["RestartPolicy"]["Name"]
                .as_str()
                .unwrap_or("");
            let manual = c.doc["ManualStop"].as_bool().unwrap_or(false);
            if name == "always" || (name == "unless-stopped" && !manual) {
                if let Err(e) = start_container(d, &c).await {
                    tracing::warn!(container = %c.id, "restart at boot: {}", e.message);
                }
            }
        }
    }
}

pub(super) async fn handle_exit(d: &State, id: &str) {
    let _g = d.exit_lock.lock().await;
    // A start's document update in flight lands first (see start_container).
    drop(d.doc_lock.lock().await);
    let Ok(c) = find(d, id).await else { return };
    let Some(t) = task(d, id).await else { return };
    if state_name(Some(&t)) != "exited" || c.doc["HandledExit"].as_str() == Some(&t.exited_at) {
        return;
    }
    super::events::container_with(d, &c, "die", &[("exitCode", t.exit_status.to_string())]);
    let auto_remove = c.doc["HostConfig"]["AutoRemove"].as_bool().unwrap_or(false);
    if !auto_remove {
        // Veths, namespace, addresses and published ports go at exit, like Docker's.
        d.net.release(id).await;
    } else if d.net.ports.unpublish(id).await {
        d.net.refresh_rules().await;
    }
    if auto_remove {
        if delete_container(d, &c.id).await.is_ok() {
            super::events::container(d, &c, "destroy");
            super::volumes::remove_anonymous(d, &c.doc["Mounts"]).await;
        }
        return;
    }
    let restart = should_restart(&c.doc, t.exit_status);
    // Backoff: 100 ms doubling per quick restart, reset after 10 s of running.
    let started = super::images::unix_time(c.doc["StartedAt"].as_str().unwrap_or(""));
    let ran = super::images::unix_time(&t.exited_at) - started;
    let streak = if ran >= 10 {
        0
    } else {
        c.doc["RestartStreak"].as_u64().unwrap_or(0) + 1
    };
    let exited_at = t.exited_at.clone();
    let _ = update_doc(d, &c.id, None, |doc| {
        doc["HandledExit"] = exited_at.into();
        if restart {
            doc["RestartStreak"] = streak.into();
            doc["RestartCount"] = (doc["RestartCount"].as_i64().unwrap_or(0) + 1).into();
            doc["Restarting"] = true.into();
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
        if c.doc["ManualStop"].as_bool().unwrap_or(false)
            || state_name(task(&d, &id).await.as_ref()) != "exited"
        {
            let _ = update_doc(&d, &id, None, |doc| doc["Restarting"] = false.into()).await;
            return;
        }
        match start_container(&d, &c).await {
            Ok(_) => super::events::container(&d, &c, "restart"),
            Err(e) => {
                tracing::warn!(container = %id, "restart: {}", e.message);
                let _ = update_doc(&d, &id, None, |doc| doc["Restarting"] = false.into()).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let doc = |p: Value, count: i64, manual: bool| serde_json::json!({"HostConfig": {"RestartPolicy": p}, "RestartCount": count, "ManualStop": manual});
        let on_failure = serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 2});
        assert!(should_restart(&doc(on_failure.clone(), 1, false), 1));
        assert!(!should_restart(&doc(on_failure.clone(), 2, false), 1));
        assert!(!should_restart(&doc(on_failure, 0, false), 0));
        let always = serde_json::json!({"Name": "always"});
        assert!(should_restart(&doc(always.clone(), 5, false), 0));
        assert!(!should_restart(&doc(always, 5, true), 0));
        assert!(validate(&serde_json::json!({"Name": "sometimes"}), false).is_err());
        assert!(validate(&serde_json::json!({"Name": "always"}), true).is_err());
        assert!(validate(
            &serde_json::json!({"Name": "always", "MaximumRetryCount": 3}),
            false
        )
        .is_err());
        assert!(validate(
            &serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 3}),
            false
        )
        .is_ok());
    }
}
