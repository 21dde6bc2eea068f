//! Every response checked against the Engine API schema (v1.45 Swagger).

use std::process::Command;

use berth_tests::stack::*;
use berth_tests::*;

/// berthd's answers have the shapes the Engine API's Swagger spec declares (v1.45, in
/// tests/schemas): containers, images, volumes, exec, system, events.
#[test]
fn api_responses_match_the_engine_schema() {
    if !need_root("api_responses_match_the_engine_schema") {
        return;
    }
    let s = Stack::busybox("api-schema");
    ok(&s.docker(&["volume", "create", "sv"]));
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "sc",
        "-v",
        "sv:/data",
        "-e",
        "A=1",
        "-p",
        "8080:80",
        "--restart",
        "on-failure:2",
        "--memory",
        "64m",
        "busybox",
        "sleep",
        "1000",
    ]));
    ok(&s.docker(&["exec", "sc", "touch", "/new"]));
    ok(&s.docker(&["create", "--name", "stopped", "busybox", "true"]));
    let (code, exec) = s.curl(
        "POST",
        "/containers/sc/exec",
        Some(br#"{"Cmd": ["true"], "AttachStdout": true}"#),
    );
    assert_eq!(code, 201, "{exec}");
    let exec_id = serde_json::from_str::<serde_json::Value>(&exec).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let since = now_secs().saturating_sub(600).to_string();
    let until = (now_secs() + 1).to_string();
    let checks: Vec<(String, &str)> = vec![
        ("/containers/json?all=1".into(), "ContainerSummary[]"),
        (
            "/containers/sc/json".into(),
            "GET /containers/{id}/json 200",
        ),
        (
            "/containers/stopped/json".into(),
            "GET /containers/{id}/json 200",
        ),
        ("/containers/sc/top".into(), "GET /containers/{id}/top 200"),
        (
            "/containers/sc/changes".into(),
            "GET /containers/{id}/changes 200",
        ),
        (
            "/containers/sc/stats?stream=false&one-shot=true".into(),
            "GET /containers/{id}/stats 200",
        ),
        ("/images/json".into(), "ImageSummary[]"),
        ("/images/busybox/json".into(), "ImageInspect"),
        (
            "/images/busybox/history".into(),
            "GET /images/{name}/history 200",
        ),
        ("/volumes".into(), "VolumeListResponse"),
        ("/volumes/sv".into(), "Volume"),
        (format!("/exec/{exec_id}/json"), "GET /exec/{id}/json 200"),
        ("/info".into(), "SystemInfo"),
        ("/version".into(), "SystemVersion"),
        ("/system/df".into(), "GET /system/df 200"),
    ];
    let mut failures = Vec::new();
    for (path, what) in &checks {
        let (code, body) = s.curl("GET", path, None);
        assert_eq!(code, 200, "{path}: {body}");
        if let Err(why) = validate_engine(what, &body) {
            failures.push(format!("{path} as {what}:\n{why}"));
        }
    }
    // Events: one JSON object per line.
    let (_, events) = s.curl("GET", &format!("/events?since={since}&until={until}"), None);
    assert!(events.lines().count() >= 4, "{events}");
    for line in events.lines() {
        if let Err(why) = validate_engine("EventMessage", line) {
            failures.push(format!("event {line}:\n{why}"));
        }
    }
    let (code, created) = s.curl(
        "POST",
        "/containers/create",
        Some(br#"{"Image": "busybox"}"#),
    );
    assert_eq!(code, 201);
    if let Err(why) = validate_engine("ContainerCreateResponse", &created) {
        failures.push(format!("create: {why}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    ok(&s.docker(&["rm", "-f", "sc", "stopped"]));
    ok(&s.docker(&["container", "prune", "-f"]));
}

fn validate_engine(what: &str, json: &str) -> Result<(), String> {
    let o = run_with_input(
        Command::new("python3")
            .arg(schema_dir().join("engine_validate.py"))
            .arg(schema_dir().join("docker-engine-api-v1.45.yaml"))
            .arg(what),
        json.as_bytes(),
    );
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", text(&o.stdout), text(&o.stderr)))
    }
}

// ---- Builds: POST /build with `DOCKER_BUILDKIT=0 docker build` and docker-py ----
