//! cgroup v2 ("unified") mode. On a hybrid host the test gives berth-runtime a private mount
//! namespace where /sys/fs/cgroup is the cgroup2 hierarchy, so it runs exactly its pure-v2 code
//! paths: CLONE_INTO_CGROUP, cgroup.freeze, the eBPF device filter, cgroup2 mounts. (That
//! hierarchy has no controllers here, so memory/cpu/pids limits are not exercised.)

use std::path::Path;

use berth_tests::*;
use serde_json::json;

fn unified_root() -> Option<&'static Path> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(Path::new)
        .find(|p| {
            std::fs::read_to_string("/proc/mounts")
                .unwrap_or_default()
                .lines()
                .any(|l| {
                    l.split(' ').nth(1) == p.to_str() && l.split(' ').nth(2) == Some("cgroup2")
                })
        })
}

#[test]
fn lifecycle_and_device_filter_on_cgroup_v2() {
    if !need_root("lifecycle_and_device_filter_on_cgroup_v2") {
        return;
    }
    let Some(unified) = unified_root() else {
        eprintln!("skipping: no cgroup2 hierarchy mounted");
        return;
    };
    let mut b = Bundle::new(&["sleep", "1000"]);
    for set in ["bounding", "effective", "permitted"] {
        b.push(&format!("/process/capabilities/{set}"), json!("CAP_MKNOD"));
    }
    let c = Ctr::new(Runtime::BerthV2, "v2");
    assert!(
        c.create(&b).success(),
        "{}",
        std::fs::read_to_string(b.path().join("ctr.err")).unwrap()
    );
    let host_dir = unified.join(&c.id);
    assert!(
        host_dir.join("cgroup.procs").exists(),
        "container cgroup in the unified hierarchy"
    );
    let pid = c.state()["pid"].as_i64().unwrap();
    let procs = std::fs::read_to_string(host_dir.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "init born in its cgroup: {procs}"
    );
    ok(&c.verb("start", &[], &[]));

    // Inside: its own cgroup namespace root, a cgroup2 mount, and the device filter.
    let out = ok(&c.sh("cat /proc/self/cgroup | grep '^0::'; grep ' /sys/fs/cgroup ' /proc/mounts | cut -d' ' -f3; echo x > /dev/null && echo null-ok; mknod /tmp/blk b 8 0 2>&1 || true; mknod /tmp/chr c 1 3 && echo mknod-null-allowed"));
    assert!(out.contains("0::/\n"), "{out}");
    assert!(out.contains("cgroup2"), "{out}");
    assert!(out.contains("null-ok"), "{out}");
    assert!(
        out.contains("Operation not permitted"),
        "block device creation must be denied: {out}"
    );
    assert!(
        out.contains("mknod-null-allowed"),
        "allowed device may be created: {out}"
    );

    // Pause/resume through cgroup.freeze.
    ok(&c.verb("pause", &[], &[]));
    assert_eq!(c.status(), "paused");
    assert_eq!(
        std::fs::read_to_string(host_dir.join("cgroup.freeze"))
            .unwrap()
            .trim(),
        "1"
    );
    ok(&c.verb("resume", &[], &[]));
    assert_eq!(c.status(), "running");

    ok(&c.verb("kill", &["--all"], &["KILL"]));
    c.wait_status("stopped");
    ok(&c.verb("delete", &[], &[]));
    assert!(!host_dir.exists(), "cgroup removed");
}
