//! `docker cp` into and out of containers.

use berth_tests::stack::*;
use berth_tests::*;

/// `docker cp` both ways, for running and stopped containers; a symlink planted in the
/// container cannot send a copy to the host (CVE-2018-15664 class).
#[test]
fn docker_cli_cp() {
    if !need_root("docker_cli_cp") {
        return;
    }
    let s = Stack::busybox("api-cp");
    let host = s.dir.path().join("cp");
    std::fs::create_dir_all(host.join("d/sub")).unwrap();
    std::fs::write(host.join("d/sub/f"), "deep\n").unwrap();
    std::fs::write(host.join("file"), "top\n").unwrap();
    ok(&s.docker(&["run", "-d", "--name", "c1", "busybox", "sleep", "1000"]));
    let h = |p: &str| host.join(p).display().to_string();
    ok(&s.docker(&["cp", &h("file"), "c1:/tmp/"]));
    ok(&s.docker(&["cp", &h("d"), "c1:/tmp/dd"]));
    assert_eq!(
        ok(&s.docker(&["exec", "c1", "cat", "/tmp/file", "/tmp/dd/sub/f"])),
        "top\ndeep\n"
    );
    ok(&s.docker(&["cp", "c1:/etc/passwd", &h("pw")]));
    assert!(std::fs::read_to_string(host.join("pw"))
        .unwrap()
        .starts_with("root:x:0:0"));
    ok(&s.docker(&["cp", "c1:/tmp/dd", &h("back")]));
    assert_eq!(
        std::fs::read_to_string(host.join("back/sub/f")).unwrap(),
        "deep\n"
    );
    let o = s.docker(&["cp", "c1:/nope", &h("x")]);
    assert!(!o.status.success() && text(&o.stderr).contains("Could not find the file /nope"));
    // Symlinks inside the container resolve inside it.
    let victim = s.dir.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    let v = victim.display().to_string();
    ok(&s.docker(&["exec", "c1", "ln", "-s", &v, "/tmp/evil"]));
    ok(&s.docker(&["exec", "c1", "ln", "-s", "/", "/tmp/root"]));
    ok(&s.docker(&["cp", &h("file"), "c1:/tmp/root/"]));
    ok(&s.docker(&["exec", "c1", "mkdir", "-p", &v]));
    ok(&s.docker(&["cp", &h("file"), "c1:/tmp/evil/"]));
    assert!(
        std::fs::read_dir(&victim).unwrap().next().is_none(),
        "nothing was written to the host through the container's symlink"
    );
    assert_eq!(
        ok(&s.docker(&["exec", "c1", "cat", "/file", &format!("{v}/file")])),
        "top\ntop\n"
    );
    ok(&s.docker(&["exec", "c1", "ln", "-s", "/etc/hostname", "/tmp/hn"]));
    ok(&s.docker(&["cp", "c1:/tmp/root/etc/passwd", &h("pw2")]));
    assert!(
        std::fs::read_to_string(host.join("pw2"))
            .unwrap()
            .contains("nobody:x:65534"),
        "the container's /etc/passwd, not the host's"
    );
    // Stopped: from and into its filesystem.
    ok(&s.docker(&["stop", "-t", "1", "c1"]));
    ok(&s.docker(&["cp", "c1:/tmp/file", &h("stopped")]));
    assert_eq!(
        std::fs::read_to_string(host.join("stopped")).unwrap(),
        "top\n"
    );
    ok(&s.docker(&["cp", &h("file"), "c1:/while-stopped"]));
    ok(&s.docker(&["start", "c1"]));
    assert_eq!(
        ok(&s.docker(&["exec", "c1", "cat", "/while-stopped"])),
        "top\n"
    );
    ok(&s.docker(&["rm", "-f", "c1"]));
    assert!(mounts_containing(&s.dir.path().display().to_string()).is_empty());
}
