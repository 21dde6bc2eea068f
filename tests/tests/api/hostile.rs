//! Hostile requests against a live berthd: the seed corpus's bad query strings and bounded
//! randomized (proptest) query strings, paths and JSON bodies on the endpoints clients use.
//! Every answer is a client error or a success (never a 5xx, never a panic caught at the
//! service boundary), berthd keeps answering, and what the random bodies created is removed.
//! (The same parsers without a daemon: `daemon/tests/hostile_input.rs`.)

use std::io::{Read, Write};
use std::time::Duration;

use berth_tests::stack::*;
use berth_tests::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// One request on a new connection: (status, body).
fn request(s: &Stack, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut c = std::os::unix::net::UnixStream::connect(s.sock()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    let _ = c.write_all(body);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let out = text(&out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

fn check(s: &Stack, method: &str, path: &str, body: &[u8]) {
    let (status, out) = request(s, method, path, body);
    assert!(
        (200..500).contains(&status) && !out.contains("please report it"),
        "{method} {path} {}: {status}\n{out}",
        text(body)
    );
}

/// Pieces of a query string, escapes and arbitrary text.
fn query_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(vec![
                "=", "&", "all", "1", "0", "-1", "true", "filters", "%7B", "%7D", "%22", "%5B",
                "%5D", "%3A", "label", "status", "name", "tail", "since", "size", "limit",
                "before", "dangling", "%C3%A9", "%", "+", "reference", "force", "v", "t",
                "signal", "stdout", "timestamps", "until",
            ])
            .prop_map(String::from),
            1 => "%[0-9A-Fa-f]{0,2}",
            1 => "[a-z0-9.:/_-]{0,8}",
        ],
        0..20,
    )
    .prop_map(|v| v.concat())
}

/// A JSON value shaped like an Engine API body.
fn body_like() -> impl Strategy<Value = serde_json::Value> {
    let keys = vec![
        "Image",
        "Cmd",
        "Entrypoint",
        "Env",
        "Labels",
        "HostConfig",
        "Memory",
        "MemorySwap",
        "CpuShares",
        "NanoCpus",
        "PortBindings",
        "HostPort",
        "HostIp",
        "ExposedPorts",
        "Binds",
        "Mounts",
        "Type",
        "Source",
        "Target",
        "Tmpfs",
        "RestartPolicy",
        "Name",
        "MaximumRetryCount",
        "LogConfig",
        "Config",
        "Ulimits",
        "Soft",
        "Hard",
        "CapAdd",
        "Devices",
        "Sysctls",
        "NetworkMode",
        "User",
        "WorkingDir",
        "Healthcheck",
        "Test",
        "Interval",
        "StopSignal",
        "StopTimeout",
        "ShmSize",
        "Driver",
        "Options",
        "Internal",
        "AttachStdout",
        "AttachStderr",
        "Tty",
        "Privileged",
        "Detach",
        "DriverOpts",
        "ReadonlyRootfs",
        "Dns",
        "ExtraHosts",
        "PidsLimit",
        "OomScoreAdj",
        "BlkioWeight",
        "CgroupParent",
        "Ipc",
        "PidMode",
        "UsernsMode",
        "Init",
        "Runtime",
        "SecurityOpt",
        "Annotations",
        "Hostname",
        "Domainname",
        "MacAddress",
        "StorageOpt",
        "Platform",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(1e300)),
        prop::sample::select(vec![
            "busybox",
            "busybox:latest",
            "",
            "sh",
            "true",
            "80/tcp",
            "8080",
            "127.0.0.1",
            "/tmp",
            "/:/host",
            "bind",
            "volume",
            "tmpfs",
            "always",
            "on-failure",
            "json-file",
            "local",
            "none",
            "host",
            "bridge",
            "container:x",
            "1g",
            "max-size",
            "ALL",
            "seccomp=unconfined",
            "no-new-privileges",
            "a=b",
            "99999999999999999g",
            "nofile",
            "/dev/null",
            "SIGKILL",
            "CMD-SHELL",
            "\u{e9}\u{e9}",
            "../..",
            "0:0",
            "65536",
        ])
        .prop_map(serde_json::Value::from),
        "[\\PC]{0,10}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(prop::sample::select(keys.clone()), inner, 0..7).prop_map(
                |m| {
                    serde_json::Value::Object(
                        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                    )
                }
            ),
        ]
    })
}

/// Remove what the random bodies made (containers, networks, volumes) through the API.
fn remove_made(s: &Stack, keep: &str) {
    let ids = ok(&s.docker(&["ps", "-aq", "--no-trunc"]));
    for id in ids.lines().filter(|id| !id.is_empty() && *id != keep) {
        ok(&s.docker(&["rm", "-f", id]));
    }
    let nets = ok(&s.docker(&["network", "ls", "-q", "--filter", "type=custom"]));
    for n in nets.lines().filter(|n| !n.is_empty()) {
        ok(&s.docker(&["network", "rm", n]));
    }
    let _ = s.docker(&["volume", "prune", "-af"]);
}

/// The corpus's bad query strings on every list endpoint, then random queries, paths and
/// bodies: never a 5xx, berthd alive, nothing it made is left once removed.
#[test]
fn hostile_requests_get_client_errors() {
    if !need_root("hostile_requests_get_client_errors") {
        return;
    }
    let s = Stack::busybox("api-hostile");
    let running = ok(&s.docker(&["run", "-d", "busybox", "sleep", "1000"]))
        .trim()
        .to_string();
    let gets = [
        "/containers/json",
        "/images/json",
        "/networks",
        "/volumes",
        "/system/df",
        "/info",
    ];
    let corpus =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/tests/corpus/query");
    let until = format!("until={}", now_secs());
    for e in std::fs::read_dir(corpus).unwrap() {
        let q = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for g in gets {
            check(&s, "GET", &format!("{g}?{q}"), b"");
        }
        check(&s, "GET", &format!("/events?{q}&{until}"), b"");
        check(
            &s,
            "GET",
            &format!("/containers/{running}/logs?stdout=1&{q}"),
            b"",
        );
    }
    let mut runner = TestRunner::new(Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(query_like(), "[a-zA-Z0-9%./_-]{0,12}", 0..6usize),
            |(q, seg, which)| {
                match which {
                    0 => check(&s, "GET", &format!("/containers/json?{q}"), b""),
                    1 => check(&s, "GET", &format!("/images/json?{q}"), b""),
                    2 => check(&s, "GET", &format!("/containers/{seg}/json?{q}"), b""),
                    3 => check(
                        &s,
                        "GET",
                        &format!("/containers/{running}/logs?stdout=1&{q}"),
                        b"",
                    ),
                    4 => check(&s, "GET", &format!("/images/{seg}/json"), b""),
                    _ => check(&s, "GET", &format!("/networks/{seg}?{q}"), b""),
                }
                Ok(())
            },
        )
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(body_like(), 0..5usize, any::<bool>()),
            |(v, which, image)| {
                let mut v = v;
                // Half the creates name the image, so they get past the first check.
                if image && v.is_object() {
                    v["Image"] = "busybox".into();
                }
                let body = v.to_string();
                let b = body.as_bytes();
                match which {
                    0 | 1 => check(&s, "POST", "/containers/create", b),
                    2 => check(&s, "POST", &format!("/containers/{running}/exec"), b),
                    3 => check(&s, "POST", "/volumes/create", b),
                    _ => {
                        // No IPAM from random bodies: a subnet could shadow the host's routes.
                        if let Some(o) = v.as_object_mut() {
                            o.remove("IPAM");
                        }
                        check(&s, "POST", "/networks/create", v.to_string().as_bytes());
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    // Not JSON at all, and JSON of the wrong shape.
    for b in [
        &b"{"[..],
        b"[]",
        b"\"x\"",
        b"\xff\xfe",
        b"{\"Image\": 1}",
        b"null",
    ] {
        for p in ["/containers/create", "/networks/create", "/volumes/create"] {
            check(&s, "POST", p, b);
        }
    }
    assert_eq!(request(&s, "GET", "/_ping", b"").0, 200);
    remove_made(&s, &running);
    assert_eq!(
        ok(&s.docker(&["ps", "-aq", "--no-trunc"])).trim(),
        running,
        "only the container the test ran is left"
    );
    ok(&s.docker(&["rm", "-f", &running]));
    let log = std::fs::read_to_string(s.dir.path().join("berthd.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "berthd.log reports a panic");
}
