//! Container options honoured or refused, never silently ignored: the schema walk of every
//! `ContainerConfig` and `HostConfig` field, namespaces, sysctls, devices, groups,
//! security options, `--init`, resources and health checks, through the real docker CLI
//! (and the raw API where the CLI checks for itself).

use std::path::Path;
use std::time::{Duration, Instant};

use berth_daemon::containers::fields::{HONOURED_CONFIG, HONOURED_HOST};
use berth_tests::stack::*;
use berth_tests::*;
use serde_json::{json, Value};

/// The Engine API v1.45 reference the repository carries (see tests/schemas/README.md).
fn reference() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/docker-engine-api-v1.45.yaml")
}

/// The schema's properties of `name` (following `allOf`), each with its own schema.
fn properties(defs: &Value, name: &str) -> Vec<(String, Value)> {
    let d = &defs[name];
    let mut out = Vec::new();
    for part in d["allOf"].as_array().into_iter().flatten() {
        match part["$ref"].as_str() {
            Some(r) => out.extend(properties(defs, r.rsplit('/').next().unwrap())),
            None => out.extend(own(&part["properties"])),
        }
    }
    out.extend(own(&d["properties"]));
    out
}

fn own(props: &Value) -> Vec<(String, Value)> {
    props
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A value of the schema's type that is not its zero value.
fn some_value(s: &Value) -> Value {
    match s["type"].as_str() {
        Some("string") => json!("berth-walk"),
        Some("integer") | Some("number") => json!(7),
        Some("boolean") => json!(true),
        Some("array") => json!([some_value(&s["items"])]),
        _ => json!({"BerthWalk": 1}),
    }
}

/// Item 1's rule: every field of the v1.45 ContainerConfig and HostConfig is either in
/// berthd's honoured lists (each exercised by a test of its own below or elsewhere) or,
/// when set, refused with 400 naming the field. A field added to the schema later and not
/// handled fails here.
#[test]
fn every_create_field_is_honoured_or_refused() {
    if !need_root("every_create_field_is_honoured_or_refused") {
        return;
    }
    let yaml = std::fs::read_to_string(reference()).expect("the Engine API reference");
    let doc: Value = serde_norway::from_str(&yaml).expect("the reference parses");
    let defs = &doc["definitions"];
    let config = properties(defs, "ContainerConfig");
    let host = properties(defs, "HostConfig");
    assert!(config.len() > 20 && host.len() > 60, "the schema was read");
    for f in HONOURED_CONFIG {
        assert!(
            config.iter().any(|(k, _)| k == f),
            "Config.{f} is not in the schema"
        );
    }
    for f in HONOURED_HOST {
        assert!(
            host.iter().any(|(k, _)| k == f),
            "HostConfig.{f} is not in the schema"
        );
    }
    let s = Stack::busybox("api-walk");
    let mut refused = 0;
    for (section, props, honoured) in [
        ("Config", &config, HONOURED_CONFIG),
        ("HostConfig", &host, HONOURED_HOST),
    ] {
        for (field, schema) in props.iter() {
            if honoured.contains(&field.as_str()) {
                continue;
            }
            let mut body = json!({"Image": "busybox", "Cmd": ["true"], "HostConfig": {}});
            if section == "Config" {
                body[field] = some_value(schema);
            } else {
                body["HostConfig"][field] = some_value(schema);
            }
            let (code, resp) = s.curl(
                "POST",
                "/containers/create",
                Some(body.to_string().as_bytes()),
            );
            assert_eq!(code, 400, "{section}.{field} was accepted: {resp}");
            assert!(
                resp.contains(&format!("{section}.{field}")) && resp.contains("not supported"),
                "{section}.{field}: {resp}"
            );
            refused += 1;
        }
    }
    assert!(refused >= 5, "some fields are refused ({refused})");
    // Nothing was created on the way.
    assert_eq!(ok(&s.docker(&["ps", "-aq"])).trim(), "");
    // Zero values, as the docker CLI sends for every option not given, ask for nothing.
    let o = s.docker(&["run", "--rm", "busybox", "true"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

fn ns_of(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

fn inspect(s: &Stack, id: &str, f: &str) -> String {
    ok(&s.docker(&["inspect", "-f", f, id])).trim().to_string()
}

/// PidMode, IpcMode, UTSMode, CgroupnsMode: host, container:X (with Docker's errors), none,
/// shareable; what the container sees of each.
#[test]
fn namespace_modes() {
    if !need_root("namespace_modes") {
        return;
    }
    let s = Stack::busybox("api-ns");
    let run = |args: &[&str]| -> String {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        ok(&s.docker(&a)).trim().to_string()
    };
    let me = std::process::id().to_string();
    // PID: private by default, the host's with --pid host.
    assert_eq!(run(&["busybox", "sh", "-c", "echo $$"]), "1");
    assert_eq!(
        run(&[
            "--pid",
            "host",
            "busybox",
            "sh",
            "-c",
            &format!("test -d /proc/{me} && echo seen")
        ]),
        "seen"
    );
    assert_eq!(
        run(&[
            "busybox",
            "sh",
            "-c",
            &format!("test -d /proc/{me} || echo hidden")
        ]),
        "hidden"
    );
    // UTS: the host's name with --uts host; a hostname with it is refused.
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        run(&["--uts", "host", "busybox", "hostname"]),
        host_name.trim()
    );
    let o = s.docker(&[
        "run",
        "--rm",
        "--uts",
        "host",
        "--hostname",
        "x",
        "busybox",
        "true",
    ]);
    refused(&o, "hostname and the UTS mode");
    // IPC: the host's namespace; none (no /dev/shm); private by default, shown by inspect.
    let ipc = run(&["--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc"]);
    assert_eq!(ipc, ns_of("self", "ipc"));
    assert_ne!(
        run(&["busybox", "readlink", "/proc/self/ns/ipc"]),
        ns_of("self", "ipc")
    );
    assert_eq!(
        run(&[
            "--ipc",
            "none",
            "busybox",
            "sh",
            "-c",
            "grep -c ' /dev/shm ' /proc/mounts || true"
        ]),
        "0"
    );
    // A shareable container's IPC and /dev/shm are joined by container:X; a private one's
    // are not; a stopped one's are not.
    let x = ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "xs",
        "--ipc",
        "shareable",
        "busybox",
        "sleep",
        "1000",
    ]));
    let x = x.trim();
    let p = ok(&s.docker(&["run", "-d", "--name", "pv", "busybox", "sleep", "1000"]));
    assert_eq!(inspect(&s, p.trim(), "{{.HostConfig.IpcMode}}"), "private");
    assert_eq!(inspect(&s, x, "{{.HostConfig.IpcMode}}"), "shareable");
    let xpid = inspect(&s, x, "{{.State.Pid}}");
    let joined = run(&[
        "--ipc",
        "container:xs",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/ipc; echo hi > /dev/shm/from-joiner",
    ]);
    assert_eq!(joined, ns_of(&xpid, "ipc"));
    assert_eq!(
        ok(&s.docker(&["exec", "xs", "cat", "/dev/shm/from-joiner"])).trim(),
        "hi"
    );
    let o = s.docker(&["run", "--rm", "--ipc", "container:pv", "busybox", "true"]);
    refused(&o, "not shareable");
    // PID: container:X sees X's processes.
    let seen = run(&[
        "--pid",
        "container:xs",
        "busybox",
        "sh",
        "-c",
        "ps -o comm | grep -c '^sleep'",
    ]);
    assert_eq!(seen, "1");
    ok(&s.docker(&["stop", "-t", "0", "pv"]));
    let o = s.docker(&["run", "--rm", "--pid", "container:pv", "busybox", "true"]);
    refused(&o, "non running container");
    // Cgroup namespace: private and host.
    assert_ne!(
        run(&[
            "--cgroupns",
            "private",
            "busybox",
            "readlink",
            "/proc/self/ns/cgroup"
        ]),
        ns_of("self", "cgroup")
    );
    assert_eq!(
        run(&[
            "--cgroupns",
            "host",
            "busybox",
            "readlink",
            "/proc/self/ns/cgroup"
        ]),
        ns_of("self", "cgroup")
    );
    // The shareable /dev/shm is a mount berthd made: gone with its container.
    ok(&s.docker(&["rm", "-f", "xs", "pv"]));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(x),
        "the shareable /dev/shm of {x} is still mounted"
    );
}

/// Sysctls with Docker's validation, devices with their cgroup permissions, device cgroup
/// rules, supplementary groups by number and by name.
#[test]
fn sysctls_devices_and_groups() {
    if !need_root("sysctls_devices_and_groups") {
        return;
    }
    let s = Stack::busybox("api-sysctl");
    let run = |args: &[&str]| s.docker(&[&["run", "--rm"][..], args].concat());
    let o = run(&[
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--sysctl",
        "kernel.shmmni=1000",
        "busybox",
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni",
    ]);
    assert_eq!(ok(&o), "1\n1000\n");
    // Refused by berthd itself (the raw API: the CLI checks some of these on its own).
    for (sysctl, net, want) in [
        ("vm.swappiness", "default", "only namespaced sysctls"),
        (
            "net.ipv4.ip_forward",
            "host",
            "not allowed in host network namespace",
        ),
    ] {
        let body = json!({"Image": "busybox", "Cmd": ["true"],
            "HostConfig": {"NetworkMode": net, "Sysctls": {sysctl: "1"}}});
        let (code, resp) = s.curl(
            "POST",
            "/containers/create",
            Some(body.to_string().as_bytes()),
        );
        assert_eq!(code, 400, "{resp}");
        assert!(resp.contains(want) && resp.contains(sysctl), "{resp}");
    }
    // A device under another path.
    let o = run(&[
        "--device",
        "/dev/zero:/dev/xzero",
        "busybox",
        "sh",
        "-c",
        "test -c /dev/xzero && head -c 3 /dev/xzero | wc -c",
    ]);
    assert_eq!(ok(&o).trim(), "3");
    // Read-only by its cgroup permissions (a loop device: not one every container has).
    if Path::new("/dev/loop0").exists() {
        let script =
            "head -c 1 /dev/xloop > /dev/null && echo read; (echo > /dev/xloop) 2>&1; true";
        let out = ok(&run(&[
            "--device",
            "/dev/loop0:/dev/xloop:r",
            "busybox",
            "sh",
            "-c",
            script,
        ]));
        assert!(
            out.contains("read") && out.contains("not permitted"),
            "{out}"
        );
        let out = ok(&run(&[
            "--device",
            "/dev/loop0:/dev/xloop:rw",
            "busybox",
            "sh",
            "-c",
            script,
        ]));
        assert!(!out.contains("not permitted"), "{out}");
    } else {
        eprintln!("sysctls_devices_and_groups: no /dev/loop0 here: cgroup permissions not checked");
    }
    // A device cgroup rule lets a node made inside (mknod is allowed, as in Docker) be
    // opened; without it, it cannot be. (A loop device: ENXIO where no loop driver is.)
    let script = "mknod /tmp/l b 7 0 && (head -c1 /tmp/l > /dev/null && echo opened) 2>&1; true";
    let without = ok(&run(&["busybox", "sh", "-c", script]));
    assert!(without.contains("not permitted"), "{without}");
    let with = ok(&run(&[
        "--device-cgroup-rule",
        "b 7:* r",
        "busybox",
        "sh",
        "-c",
        script,
    ]));
    assert!(!with.contains("not permitted"), "{with}");
    // (The CLI checks rules itself: berthd's own check, through the API.)
    let body = json!({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"DeviceCgroupRules": ["c 1:7 rwx"]}});
    let (code, resp) = s.curl(
        "POST",
        "/containers/create",
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(code, 400, "{resp}");
    assert!(resp.contains("device cgroup rule"), "{resp}");
    let o = run(&["--device", "/etc/hostname", "busybox", "true"]);
    refused(&o, "not a device");
    // Groups: a number and a name of the image's /etc/group.
    let ids = ok(&run(&[
        "--group-add",
        "10",
        "--group-add",
        "nogroup",
        "busybox",
        "id",
        "-G",
    ]));
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert!(ids.contains(&"10") && ids.contains(&"65534"), "{ids:?}");
    let o = run(&["--group-add", "nosuchgroup", "busybox", "true"]);
    refused(&o, "nosuchgroup");
    assert_eq!(
        ok(&s.docker(&["ps", "-aq"])).trim(),
        "",
        "failed creates left nothing"
    );
}

/// no-new-privileges, seccomp unconfined and a profile file (the CLI sends its content),
/// AppArmor and SELinux options refused clearly where they cannot apply, systempaths.
#[test]
fn security_options() {
    if !need_root("security_options") {
        return;
    }
    let s = Stack::busybox("api-sec");
    let status = |args: &[&str], key: &str| -> String {
        let cmd = format!("grep '^{key}:' /proc/self/status | cut -f2");
        ok(&s.docker(&[&["run", "--rm"][..], args, &["busybox", "sh", "-c", &cmd]].concat()))
            .trim()
            .to_string()
    };
    assert_eq!(status(&[], "NoNewPrivs"), "0");
    assert_eq!(
        status(&["--security-opt", "no-new-privileges"], "NoNewPrivs"),
        "1"
    );
    assert_eq!(
        status(&["--security-opt", "no-new-privileges:true"], "NoNewPrivs"),
        "1"
    );
    assert_eq!(
        status(&["--security-opt", "no-new-privileges=false"], "NoNewPrivs"),
        "0"
    );
    assert_eq!(status(&[], "Seccomp"), "2");
    assert_eq!(
        status(&["--security-opt", "seccomp=unconfined"], "Seccomp"),
        "0"
    );
    // A profile that denies mkdir.
    let prof = s.dir.path().join("no-mkdir.json");
    std::fs::write(
        &prof,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", prof.display());
    let o = s.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "sh",
        "-c",
        "mkdir /tmp/d 2>&1; echo made > /tmp/f; cat /tmp/f",
    ]);
    let out = ok(&o);
    assert!(
        out.contains("not permitted") && out.contains("made"),
        "{out}"
    );
    assert!(ok(&s.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mkdir /tmp/d && echo ok"
    ]))
    .contains("ok"));
    // systempaths=unconfined: /proc/interrupts is not masked.
    let masked = "grep -c ' /proc/interrupts ' /proc/mounts || true";
    assert_ne!(
        ok(&s.docker(&["run", "--rm", "busybox", "sh", "-c", masked])).trim(),
        "0"
    );
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "--security-opt",
            "systempaths=unconfined",
            "busybox",
            "sh",
            "-c",
            masked
        ]))
        .trim(),
        "0"
    );
    // Refused with the option named.
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    let mut refused = vec![
        ("label=type:svirt_t", "SELinux"),
        ("bogus=1", "Invalid --security-opt"),
    ];
    if !apparmor {
        refused.push(("apparmor=docker-default", "AppArmor is not enabled"));
    }
    for (opt, want) in refused {
        let o = s.docker(&["run", "--rm", "--security-opt", opt, "busybox", "true"]);
        assert!(!o.status.success(), "{opt} was accepted");
        assert!(text(&o.stderr).contains(want), "{opt}: {}", text(&o.stderr));
    }
    // label=disable asks for nothing SELinux could give here: accepted.
    ok(&s.docker(&[
        "run",
        "--rm",
        "--security-opt",
        "label=disable",
        "busybox",
        "true",
    ]));
    let info = ok(&s.docker(&["info", "-f", "{{json .SecurityOptions}}"]));
    assert!(info.contains("name=seccomp,profile=builtin"), "{info}");
}

/// daemon.json's container defaults: no-new-privileges, seccomp-profile, default-shm-size,
/// default-ipc-mode, default-cgroupns-mode; and what berthd cannot do refused at start.
#[test]
fn daemon_json_security_defaults() {
    if !need_root("daemon_json_security_defaults") {
        return;
    }
    let d = TempDir::new("api-secdef-prof");
    let prof = d.path().join("p.json");
    std::fs::write(&prof, r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#).unwrap();
    let cfg = json!({
        "registry-fallback": false, "no-new-privileges": true,
        "seccomp-profile": prof.display().to_string(), "default-shm-size": "8M",
        "default-ipc-mode": "shareable", "default-cgroupns-mode": "private",
    });
    let s = Stack::with_config("api-secdef", &cfg.to_string());
    s.import_busybox();
    let out = ok(&s.docker(&["run", "-d", "--name", "cd", "busybox", "sh", "-c", "grep NoNewPrivs /proc/self/status; df -k /dev/shm | tail -1; mkdir /tmp/d 2>&1; exec sleep 1000"]));
    let id = out.trim();
    let mut logs = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logs.contains("not permitted") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        logs = text(&s.docker(&["logs", id]).stdout);
    }
    assert!(logs.contains("NoNewPrivs:\t1"), "{logs}");
    assert!(logs.contains(" 8192 "), "an 8M /dev/shm: {logs}");
    assert!(
        logs.contains("not permitted"),
        "the daemon's seccomp profile: {logs}"
    );
    assert_eq!(inspect(&s, id, "{{.HostConfig.IpcMode}}"), "shareable");
    assert_eq!(inspect(&s, id, "{{.HostConfig.CgroupnsMode}}"), "private");
    let info = ok(&s.docker(&["info", "-f", "{{json .SecurityOptions}}"]));
    for want in [
        "name=seccomp,profile=custom",
        "name=no-new-privileges",
        "name=cgroupns",
    ] {
        assert!(info.contains(want), "{want}: {info}");
    }
    ok(&s.docker(&["rm", "-f", id]));
    drop(s);
    // What berthd cannot honour stops it at start, naming the key.
    for (key, value) in [
        ("userns-remap", json!("default")),
        ("icc", json!(false)),
        ("default-ipc-mode", json!("sometimes")),
    ] {
        let dir = TempDir::new("api-secdef-bad");
        let f = dir.path().join("daemon.json");
        std::fs::write(&f, json!({ key: value }).to_string()).unwrap();
        let o = std::process::Command::new(bin_dir().join("berthd"))
            .arg("--config-file")
            .arg(&f)
            .arg("--validate")
            .output()
            .unwrap();
        assert!(!o.status.success(), "{key} was accepted");
        assert!(text(&o.stderr).contains(key), "{key}: {}", text(&o.stderr));
    }
}

/// `--init`: pid 1 is the init, the command's exit status comes back, `docker stop`
/// returns at once (the init forwards SIGTERM), orphans are reaped (a positive control
/// without the init keeps its zombie).
#[test]
fn init_reaps_forwards_and_exits() {
    if !need_root("init_reaps_forwards_and_exits") {
        return;
    }
    // daemon.json's init: every container gets it unless it says --init=false.
    let cfg = json!({"registry-fallback": false, "init": true,
        "init-path": static_init().display().to_string()});
    let s = Stack::with_config("api-init", &cfg.to_string());
    s.import_busybox();
    let pid1 = |args: &[&str]| -> String {
        let a = [
            &["run", "--rm"][..],
            args,
            &["busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"],
        ]
        .concat();
        ok(&s.docker(&a))
    };
    assert!(
        pid1(&[]).starts_with("/sbin/docker-init -- sh"),
        "{}",
        pid1(&[])
    );
    assert!(
        pid1(&["--init=false"]).starts_with("sh -c"),
        "{}",
        pid1(&["--init=false"])
    );
    let o = s.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o.stderr));
    let o = s.docker(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert!(
        ok(&o).starts_with("/sbin/docker-init -- sh"),
        "{}",
        text(&o.stdout)
    );
    // Killed by a signal: 128 + the signal.
    let o = s.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "kill -9 $$"]);
    assert_eq!(o.status.code(), Some(137), "{}", text(&o.stderr));
    // Orphans: `(sleep 0.1 &)` leaves a sleep whose parent exits at once.
    let zombies = |init: bool| -> usize {
        let mut a = vec!["run", "-d", if init { "--init" } else { "--init=false" }];
        a.extend(["busybox", "sh", "-c", "(sleep 0.1 &); exec sleep 1000"]);
        let id = ok(&s.docker(&a)).trim().to_string();
        std::thread::sleep(Duration::from_millis(800));
        let ps = ok(&s.docker(&["exec", &id, "ps", "-o", "stat"]));
        ok(&s.docker(&["rm", "-f", &id]));
        ps.lines()
            .filter(|l| l.trim_start().starts_with('Z'))
            .count()
    };
    assert!(
        zombies(false) >= 1,
        "the positive control: sleep as pid 1 reaps nothing"
    );
    assert_eq!(zombies(true), 0, "the init reaps the orphan");
    // docker stop: the init forwards SIGTERM to sleep, which dies at once.
    let id = ok(&s.docker(&["run", "-d", "--init", "busybox", "sleep", "1000"]))
        .trim()
        .to_string();
    assert_eq!(
        inspect(&s, &id, "{{.Path}}"),
        "sleep",
        "inspect shows the command"
    );
    let t = Instant::now();
    ok(&s.docker(&["stop", "-t", "20", &id]));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(inspect(&s, &id, "{{.State.ExitCode}}"), "143");
}

/// Resources and process fields that go straight to the spec: seen from inside the
/// container and in its cgroup.
#[test]
fn resources_and_process_fields() {
    if !need_root("resources_and_process_fields") {
        return;
    }
    let s = Stack::busybox("api-res");
    let id = ok(&s.docker(&[
        "run", "-d", "--oom-score-adj", "123", "--shm-size", "4m", "--domainname", "example.org",
        "--memory", "64m", "--memory-reservation", "32m", "--cpu-quota", "50000",
        "--cpu-period", "100000", "--cpuset-cpus", "0", "--cpuset-mems", "0", "--pids-limit", "50",
        "--memory-swappiness", "10", "--oom-kill-disable",
        "busybox", "sh", "-c", "cat /proc/self/oom_score_adj; df -k /dev/shm | tail -1; cat /proc/sys/kernel/domainname; exec sleep 1000",
    ]))
    .trim()
    .to_string();
    let mut logs = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logs.contains("example.org") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        logs = text(&s.docker(&["logs", &id]).stdout);
    }
    assert!(logs.starts_with("123\n"), "{logs}");
    assert!(logs.contains(" 4096 "), "a 4M /dev/shm: {logs}");
    assert!(logs.contains("example.org"), "{logs}");
    let pid = inspect(&s, &id, "{{.State.Pid}}");
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v1 = |ctrl: &str, file: &str| -> Option<String> {
        let line = cg.lines().find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|x| x == ctrl))
        })?;
        let path = line.splitn(3, ':').nth(2)?;
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}{path}/{file}"))
            .ok()
            .map(|s| s.trim().to_string())
    };
    if let Some(soft) = v1("memory", "memory.soft_limit_in_bytes") {
        assert_eq!(soft, (32u64 << 20).to_string());
        assert_eq!(v1("cpu", "cpu.cfs_quota_us").unwrap(), "50000");
        assert_eq!(v1("cpuset", "cpuset.cpus").unwrap(), "0");
        assert_eq!(v1("cpuset", "cpuset.mems").unwrap(), "0");
        assert_eq!(v1("memory", "memory.swappiness").unwrap(), "10");
        assert!(v1("memory", "memory.oom_control")
            .unwrap()
            .contains("oom_kill_disable 1"));
    } else {
        // A cgroup v2 host.
        let path = cg.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        let f = |n: &str| std::fs::read_to_string(format!("/sys/fs/cgroup{path}/{n}")).unwrap();
        assert_eq!(f("memory.low").trim(), (32u64 << 20).to_string());
        assert_eq!(f("cpu.max").trim(), "50000 100000");
    }
    // Block I/O weight: applied where the kernel has it, refused by name where not.
    let weight = ["blkio.weight", "blkio.bfq.weight"]
        .iter()
        .find(|f| Path::new("/sys/fs/cgroup/blkio").join(f).exists());
    if let Some(f) = weight {
        let cat = format!("cat /sys/fs/cgroup/blkio/{f}");
        let o = s.docker(&[
            "run",
            "--rm",
            "--cgroupns",
            "private",
            "--blkio-weight",
            "300",
            "busybox",
            "sh",
            "-c",
            &cat,
        ]);
        assert_eq!(ok(&o).trim(), "300");
    } else if Path::new("/sys/fs/cgroup/blkio").exists() {
        refused(
            &s.docker(&["run", "--rm", "--blkio-weight", "300", "busybox", "true"]),
            "HostConfig.BlkioWeight",
        );
    }
    // Docker's range checks.
    for (args, want) in [
        (vec!["--oom-score-adj", "5000"], "oom score adj"),
        (vec!["--cpu-period", "10"], "CPU cfs period"),
        (
            vec!["--memory", "16m", "--memory-reservation", "32m"],
            "memory reservation",
        ),
        (
            vec!["--memory", "1k"],
            "Minimum memory limit allowed is 6MB",
        ),
        (
            vec!["--cpus", "0.5", "--cpu-period", "50000"],
            "Nano CPUs and CPU Period",
        ),
        (
            vec!["--cpus", "0.5", "--cpu-quota", "50000"],
            "Nano CPUs and CPU Quota",
        ),
        (vec!["--cpus", "4096"], "Range of CPUs"),
    ] {
        let o = s.docker(&[&["run", "--rm"][..], &args, &["busybox", "true"]].concat());
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(
            text(&o.stderr).contains(want),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
    // `--cpus` alone (the docker CLI sends zero period and quota with it): a quota of
    // half the default period.
    let cfs = match v1("cpu", "cpu.cfs_quota_us") {
        Some(_) => "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us",
        None => "cat /sys/fs/cgroup/cpu.max",
    };
    let o = ok(&s.docker(&[
        "run",
        "--rm",
        "--cgroupns",
        "private",
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        cfs,
    ]));
    assert!(
        o.split_whitespace().collect::<Vec<_>>() == ["50000", "100000"],
        "--cpus 0.5: {o}"
    );
    // Annotations reach the bundle's config; ConsoleSize the terminal (the API only).
    let body = json!({"Image": "busybox", "Cmd": ["/bin/busybox", "stty", "size"], "Tty": true,
        "HostConfig": {"Annotations": {"org.example/note": "kept"}, "ConsoleSize": [30, 100]}});
    let (code, resp) = s.curl(
        "POST",
        "/containers/create?name=tty",
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(code, 201, "{resp}");
    let tid = inspect(&s, "tty", "{{.Id}}");
    let bundle: Value = serde_json::from_str(
        &std::fs::read_to_string(s.state.path().join("tasks").join(&tid).join("config.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        bundle["annotations"]["org.example/note"], "kept",
        "{}",
        bundle["annotations"]
    );
    ok(&s.docker(&["start", "tty"]));
    s.until("the tty container's exit", || {
        inspect(&s, "tty", "{{.State.Status}}") == "exited"
    });
    assert_eq!(text(&s.docker(&["logs", "tty"]).stdout).trim(), "30 100");
    // NetworkDisabled (the API only): no interface but lo.
    let body = json!({"Image": "busybox", "Cmd": ["sh", "-c", "ls /sys/class/net"], "NetworkDisabled": true});
    let (code, resp) = s.curl(
        "POST",
        "/containers/create?name=nonet",
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(code, 201, "{resp}");
    ok(&s.docker(&["start", "-a", "nonet"]));
    assert_eq!(text(&s.docker(&["logs", "nonet"]).stdout).trim(), "lo");
    // MaskedPaths and ReadonlyPaths (the API only) replace the defaults.
    let body = json!({"Image": "busybox", "Cmd": ["sh", "-c", "mount | grep -c ' /etc/hostname .*ro,' ; test -w /proc/sys/kernel && echo rw"],
        "HostConfig": {"MaskedPaths": [], "ReadonlyPaths": ["/etc/hostname"]}});
    let (code, resp) = s.curl(
        "POST",
        "/containers/create?name=paths",
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(code, 201, "{resp}");
    ok(&s.docker(&["start", "-a", "paths"]));
    let out = text(&s.docker(&["logs", "paths"]).stdout);
    assert!(out.starts_with("1\n"), "/etc/hostname read-only: {out}");
}

/// Health checks: `--health-*` options and an image's HEALTHCHECK, State.Health, `ps`'s
/// status and filter, health_status events, probes that resume after berthd is killed and
/// started again, and the opt-in restart of an unhealthy container.
#[test]
fn health_checks() {
    if !need_root("health_checks") {
        return;
    }
    let mut s = Stack::busybox("api-health");
    let since = now_secs().to_string();
    // Unhealthy until /tmp/ok exists (after ~3 s), then healthy.
    let id = ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -e /tmp/ok && echo fine",
        "--health-interval",
        "500ms",
        "--health-retries",
        "2",
        "--health-timeout",
        "2s",
        "busybox",
        "sh",
        "-c",
        "sleep 3; touch /tmp/ok; exec sleep 1000",
    ]))
    .trim()
    .to_string();
    let status = |s: &Stack| inspect(s, &id, "{{.State.Health.Status}}");
    assert_eq!(status(&s), "starting");
    s.until("unhealthy", || status(&s) == "unhealthy");
    let h: Value = serde_json::from_str(&inspect(&s, &id, "{{json .State.Health}}")).unwrap();
    assert!(h["FailingStreak"].as_i64().unwrap() >= 2, "{h}");
    assert_eq!(h["Log"][0]["ExitCode"], 1, "{h}");
    assert!(ok(&s.docker(&["ps", "--format", "{{.Status}}"])).contains("(unhealthy)"));
    s.until("healthy", || status(&s) == "healthy");
    let h: Value = serde_json::from_str(&inspect(&s, &id, "{{json .State.Health}}")).unwrap();
    let log = h["Log"].as_array().unwrap();
    assert!(log.len() <= 5, "{h}");
    assert_eq!(log.last().unwrap()["Output"], "fine\n", "{h}");
    assert_eq!(h["FailingStreak"], 0);
    assert!(ok(&s.docker(&["ps", "--format", "{{.Status}}"])).contains("(healthy)"));
    assert_eq!(
        ok(&s.docker(&["ps", "-q", "--filter", "health=healthy"])).trim(),
        &id[..12]
    );
    assert_eq!(
        ok(&s.docker(&["ps", "-q", "--filter", "health=unhealthy"])).trim(),
        ""
    );
    let until = (now_secs() + 1).to_string();
    let ev = ok(&s.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=hc",
        "--format",
        "{{.Status}}",
    ]));
    assert!(
        ev.contains("health_status: unhealthy") && ev.contains("health_status: healthy"),
        "{ev}"
    );
    // berthd and the manager killed and started again: the probes go on.
    let ends = |s: &Stack| -> Vec<String> {
        let h: Value = serde_json::from_str(&inspect(s, &id, "{{json .State.Health}}")).unwrap();
        h["Log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["End"].as_str().unwrap().to_string())
            .collect()
    };
    s.kill9_daemons();
    s.start_manager();
    s.start_berthd();
    let before = ends(&s);
    s.until("a probe after the restart", || {
        ends(&s).last() != before.last()
    });
    assert_eq!(status(&s), "healthy");
    // An image's HEALTHCHECK; --no-healthcheck turns it off.
    let ctx = TempDir::new("api-health-ctx");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nHEALTHCHECK --interval=1s CMD true\n",
    )
    .unwrap();
    ok(&s.build(ctx.path(), &["-t", "checked"]));
    let c = ok(&s.docker(&["run", "-d", "checked", "sleep", "1000"]))
        .trim()
        .to_string();
    s.until("the image's check", || {
        inspect(&s, &c, "{{.State.Health.Status}}") == "healthy"
    });
    let n = ok(&s.docker(&["run", "-d", "--no-healthcheck", "checked", "sleep", "1000"]))
        .trim()
        .to_string();
    assert_eq!(inspect(&s, &n, "{{json .State.Health}}"), "null");
    assert_eq!(
        ok(&s.docker(&["ps", "-q", "--filter", "health=none"])).trim(),
        &n[..12]
    );
    // Beyond Docker: restarted when unhealthy, by label.
    let r = ok(&s.docker(&[
        "run",
        "-d",
        "--label",
        "berth.restart-on-unhealthy=true",
        "--health-cmd",
        "false",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "--stop-timeout",
        "1",
        "busybox",
        "sleep",
        "1000",
    ]))
    .trim()
    .to_string();
    let started = inspect(&s, &r, "{{.State.StartedAt}}");
    s.until("the restart", || {
        inspect(&s, &r, "{{.State.StartedAt}}") != started
    });
    assert_eq!(inspect(&s, &r, "{{.State.Status}}"), "running");
    // Without the label an unhealthy container keeps running.
    let u = ok(&s.docker(&[
        "run",
        "-d",
        "--health-cmd",
        "false",
        "--health-interval",
        "300ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "1000",
    ]))
    .trim()
    .to_string();
    s.until("unhealthy", || {
        inspect(&s, &u, "{{.State.Health.Status}}") == "unhealthy"
    });
    let started = inspect(&s, &u, "{{.State.StartedAt}}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(inspect(&s, &u, "{{.State.StartedAt}}"), started);
    // Bad checks are refused.
    let o = s.docker(&[
        "run",
        "--rm",
        "--health-cmd",
        "true",
        "--health-interval",
        "10us",
        "busybox",
        "true",
    ]);
    refused(&o, "Interval");
}

/// HostConfig.Runtime (and docker-py's top-level Runtime): the shim drives the runtime
/// named; unknown ones are refused with dockerd's message. VolumeDriver: only the local
/// driver makes volumes; with no volume to make it asks for nothing.
#[test]
fn runtime_and_volume_driver() {
    if !need_root("runtime_and_volume_driver") {
        return;
    }
    let s = Stack::busybox("api-runtime");
    if have("runc") {
        let id = ok(&s.docker(&["run", "-d", "--runtime", "runc", "busybox", "sleep", "1000"]))
            .trim()
            .to_string();
        assert_eq!(inspect(&s, &id, "{{.HostConfig.Runtime}}"), "runc");
        let runc_state = s
            .state
            .path()
            .join("runtime/runc")
            .join(&id)
            .join("state.json");
        assert!(
            runc_state.exists(),
            "runc keeps the container: {}",
            runc_state.display()
        );
        ok(&s.docker(&["rm", "-f", &id]));
        // docker-py's create_container(runtime="runc") puts Runtime beside Config's fields.
        let body = json!({"Image": "busybox", "Cmd": ["true"], "Runtime": "runc"});
        let (code, resp) = s.curl(
            "POST",
            "/containers/create?name=pyrt",
            Some(body.to_string().as_bytes()),
        );
        assert_eq!(code, 201, "{resp}");
        assert_eq!(inspect(&s, "pyrt", "{{.HostConfig.Runtime}}"), "runc");
    }
    let id = ok(&s.docker(&["create", "busybox", "true"]))
        .trim()
        .to_string();
    assert_eq!(inspect(&s, &id, "{{.HostConfig.Runtime}}"), "berth-runtime");
    let o = s.docker(&["run", "--rm", "--runtime", "nope", "busybox", "true"]);
    refused(&o, "Unknown runtime specified nope");
    let id = ok(&s.docker(&["create", "--volume-driver", "foo", "busybox", "true"]))
        .trim()
        .to_string();
    assert_eq!(inspect(&s, &id, "{{.HostConfig.VolumeDriver}}"), "foo");
    let o = s.docker(&[
        "run",
        "--rm",
        "--volume-driver",
        "foo",
        "-v",
        "/data",
        "busybox",
        "true",
    ]);
    refused(&o, "volume plugin foo");
}

/// Bind options: `-v SRC:DST:rshared` and `--mount …,bind-propagation=rslave` take effect
/// (inspect and the mount table inside say so), `bind-nonrecursive` leaves sub-mounts out,
/// `bind-create-src` (CreateMountpoint) makes the source; nested `--mount` options berthd
/// lacks are refused by name.
#[test]
fn bind_propagation_and_mount_options() {
    if !need_root("bind_propagation_and_mount_options") {
        return;
    }
    let s = Stack::busybox("api-binds");
    let src = TempDir::new("api-binds-src");
    let sub = src.path().join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    // The source must itself propagate for rshared: make it a shared mount of its own.
    let sh = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mount --bind {0} {0} && mount --make-shared {0}",
            src.path().display()
        ))
        .status()
        .unwrap();
    assert!(sh.success());
    // A mount under the source: seen through a recursive bind, not a non-recursive one.
    let m = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&sub)
        .status()
        .unwrap();
    assert!(m.success());
    std::fs::write(sub.join("in-tmpfs"), "x").unwrap();
    let v = format!("{}:/data:rshared", src.path().display());
    let id = ok(&s.docker(&["run", "-d", "-v", &v, "busybox", "sleep", "1000"]))
        .trim()
        .to_string();
    assert_eq!(
        inspect(&s, &id, "{{(index .Mounts 0).Propagation}}"),
        "rshared"
    );
    let info = ok(&s.docker(&["exec", &id, "grep", " /data ", "/proc/self/mountinfo"]));
    assert!(info.contains("shared:"), "{info}");
    ok(&s.docker(&["rm", "-f", &id]));
    let rec = format!("type=bind,src={},dst=/data", src.path().display());
    let out = ok(&s.docker(&["run", "--rm", "--mount", &rec, "busybox", "ls", "/data/sub"]));
    assert_eq!(out.trim(), "in-tmpfs");
    let nonrec = format!("{rec},bind-nonrecursive");
    let out = ok(&s.docker(&[
        "run",
        "--rm",
        "--mount",
        &nonrec,
        "busybox",
        "ls",
        "/data/sub",
    ]));
    assert_eq!(out.trim(), "", "the tmpfs under the source is not bound");
    let made = src.path().join("made-by-berthd");
    // (CreateMountpoint: the API only.)
    let body = json!({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Mounts": [
        {"Type": "bind", "Source": made.display().to_string(), "Target": "/m",
         "BindOptions": {"CreateMountpoint": true}}]}});
    let (code, resp) = s.curl(
        "POST",
        "/containers/create",
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(code, 201, "{resp}");
    assert!(made.is_dir());
    let body = json!({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Mounts": [
        {"Type": "bind", "Source": "/tmp", "Target": "/m", "BindOptions": {"ReadOnlyForceRecursive": true}}]}});
    let (code, resp) = s.curl(
        "POST",
        "/containers/create",
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(code, 400, "{resp}");
    assert!(
        resp.contains("HostConfig.Mounts[0].BindOptions.ReadOnlyForceRecursive"),
        "{resp}"
    );
    // A private source cannot be rshared (Docker's check).
    let private = TempDir::new("api-binds-private");
    let mk = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mount --bind {0} {0} && mount --make-private {0}",
            private.path().display()
        ))
        .status()
        .unwrap();
    assert!(mk.success());
    let v = format!("{}:/p:rshared", private.path().display());
    let o = s.docker(&["run", "--rm", "-v", &v, "busybox", "true"]);
    refused(&o, "not a shared mount");
    // Nested options berthd lacks, named.
    for (m, want) in [
        (
            "type=volume,src=v1,dst=/v,volume-driver=other",
            "VolumeOptions.DriverConfig",
        ),
        ("type=tmpfs,dst=/t,tmpfs-mode=1777", ""),
    ] {
        let o = s.docker(&["run", "--rm", "--mount", m, "busybox", "true"]);
        if want.is_empty() {
            assert!(o.status.success(), "{m}: {}", text(&o.stderr));
        } else {
            assert!(
                !o.status.success() && text(&o.stderr).contains(want),
                "{m}: {}",
                text(&o.stderr)
            );
        }
    }
    for p in [sub.as_path(), src.path(), private.path()] {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// `VolumeOptions.Subpath` (`--mount …,volume-subpath=`): a directory or file inside a
/// volume, pinned at create so that a container swapping it for a symlink afterwards, or a
/// symlink out of the volume from the start, cannot expose the host.
#[test]
fn volume_subpaths() {
    if !need_root("volume_subpaths") {
        return;
    }
    let s = Stack::busybox("api-subpath");
    ok(&s.docker(&["volume", "create", "sp"]));
    ok(&s.docker(&[
        "run", "--rm", "-v", "sp:/vol", "busybox", "sh", "-c",
        "mkdir -p /vol/sub/deep && echo inside > /vol/sub/f && echo leaf > /vol/sub/deep/g && ln -s /etc /vol/esc && ln -s sub/deep /vol/rel",
    ]));
    let out = ok(&s.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=sp,dst=/m,volume-subpath=sub,readonly",
        "busybox",
        "sh",
        "-c",
        "cat /m/f; touch /m/x 2>/dev/null && echo writable || echo read-only",
    ]));
    assert_eq!(out.trim(), "inside\nread-only", "{out}");
    // A symlink that stays inside the volume is followed; one that leaves it is refused.
    let out = ok(&s.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=sp,dst=/m,volume-subpath=rel",
        "busybox",
        "cat",
        "/m/g",
    ]));
    assert_eq!(out.trim(), "leaf");
    let o = s.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=sp,dst=/m,volume-subpath=esc",
        "busybox",
        "ls",
        "/m",
    ]);
    refused(&o, "leads out of the volume");
    let o = s.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=sp,dst=/m,volume-subpath=../x",
        "busybox",
        "true",
    ]);
    refused(&o, "Subpath");
    let o = s.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=sp,dst=/m,volume-subpath=missing",
        "busybox",
        "true",
    ]);
    refused(&o, "no such file or directory in the volume");
    // Swapped for a symlink to /etc between create and start: the pinned directory wins.
    let id = ok(&s.docker(&[
        "create",
        "--mount",
        "type=volume,src=sp,dst=/m,volume-subpath=sub",
        "busybox",
        "ls",
        "/m",
    ]));
    ok(&s.docker(&[
        "run",
        "--rm",
        "-v",
        "sp:/vol",
        "busybox",
        "sh",
        "-c",
        "mv /vol/sub /vol/old && ln -s /etc /vol/sub",
    ]));
    ok(&s.docker(&["start", "-a", id.trim()]))
        .lines()
        .for_each(|l| assert_ne!(l, "passwd", "the host's /etc showed through"));
    let out = ok(&s.docker(&["logs", id.trim()]));
    assert!(out.contains("deep") && out.contains('f'), "{out}");
    ok(&s.docker(&["rm", id.trim()]));
    let left: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains("/subpaths/"))
        .map(String::from)
        .collect();
    assert!(left.is_empty(), "pinned subpaths left mounted: {left:?}");
}
