//! Berth's own CLI against berthd, end to end.

use berth_tests::stack::*;
use berth_tests::*;

/// The `berth` CLI through the whole stack: run (attached, -d, --rm, -it on a terminal with
/// detach), ps, logs, exec, cp, commit, diff, images, tag, push, rmi, pull, volumes, df,
/// inspect, stop, rm; errors exit 125 with the daemon's message.
#[test]
fn berth_cli_through_the_stack() {
    if !need_root("berth_cli_through_the_stack") {
        return;
    }
    let s = Stack::busybox("api-berth");
    let o = s.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(text(&o.stdout), "out\n");
    assert_eq!(text(&o.stderr), "err\n");
    let id = ok(&s.berth(&[
        "run",
        "-d",
        "--name",
        "b1",
        "-e",
        "X=1",
        "busybox",
        "sh",
        "-c",
        "echo up $X; exec sleep 1000",
    ]));
    assert_eq!(id.trim().len(), 64);
    let ps = ok(&s.berth(&["ps"]));
    assert!(
        ps.starts_with("CONTAINER ID   IMAGE") && ps.contains(" b1\n"),
        "{ps}"
    );
    assert_eq!(ok(&s.berth(&["ps", "-q"])).trim(), &id.trim()[..12]);
    assert_eq!(
        ok(&s.berth(&["ps", "--format", "{{.Names}} {{.State}}"])).trim(),
        "b1 running"
    );
    s.until("the log", || ok(&s.berth(&["logs", "b1"])) == "up 1\n");
    let o = s.berth(&["exec", "b1", "sh", "-c", "echo in; exit 4"]);
    assert_eq!(
        (o.status.code(), text(&o.stdout).as_str()),
        (Some(4), "in\n")
    );
    let f = s.dir.path().join("f.txt");
    std::fs::write(&f, "to-container\n").unwrap();
    ok(&s.berth(&["cp", &f.display().to_string(), "b1:/tmp/"]));
    assert_eq!(
        ok(&s.berth(&["exec", "b1", "cat", "/tmp/f.txt"])),
        "to-container\n"
    );
    let back = s.dir.path().join("back.txt");
    ok(&s.berth(&["cp", "b1:/tmp/f.txt", &back.display().to_string()]));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "to-container\n");
    assert!(ok(&s.berth(&["diff", "b1"])).contains("A /tmp/f.txt"));
    let img = ok(&s.berth(&["commit", "-c", "CMD cat /tmp/f.txt", "b1", "bcommit:v1"]));
    assert!(img.starts_with("sha256:"));
    assert_eq!(
        ok(&s.berth(&["run", "--rm", "bcommit:v1"])),
        "to-container\n"
    );
    // Interactive on a terminal, detach, attach.
    let out = s.berth_tty(
        r"echo hi-$((1+2))\n|\x10\x11",
        &["run", "-it", "--name", "b2", "busybox", "sh"],
    );
    assert!(out.contains("hi-3") && out.contains("exit=0"), "{out}");
    assert_eq!(
        ok(&s.berth(&["inspect", "-f", "{{.State.Status}}", "b2"])).trim(),
        "running"
    );
    let out = s.berth_tty(r"stty size\n|exit 6\n", &["attach", "b2"]);
    assert!(out.contains("30 100") && out.contains("exit=6"), "{out}");
    // Images to and from the registry.
    let reference = format!("127.0.0.1:{}/bcommit:v1", s.registry);
    ok(&s.berth(&["tag", "bcommit:v1", &reference]));
    ok(&s.berth(&["push", &reference]));
    ok(&s.berth(&["rmi", &reference]));
    let pulled = ok(&s.berth(&["pull", &reference]));
    assert!(
        pulled.contains("Pull complete") || pulled.contains("Already exists"),
        "{pulled}"
    );
    let images = ok(&s.berth(&["images"]));
    assert!(
        images.starts_with("REPOSITORY") && images.contains("bcommit"),
        "{images}"
    );
    // Volumes and df.
    ok(&s.berth(&["volume", "create", "bv"]));
    ok(&s.berth(&[
        "run",
        "--rm",
        "-v",
        "bv:/v",
        "busybox",
        "sh",
        "-c",
        "echo x > /v/x",
    ]));
    assert_eq!(ok(&s.berth(&["volume", "ls", "-q"])).trim(), "bv");
    assert!(ok(&s.berth(&["system", "df"])).contains("Local Volumes   1"));
    // Errors: docker's exit code and message.
    let o = s.berth(&["stop", "nope"]);
    assert!(
        text(&o.stderr).contains("No such container: nope"),
        "{}",
        text(&o.stderr)
    );
    let o = s.berth(&["run", "-p", "80:http", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(text(&o.stderr).contains("invalid port specification"));
    ok(&s.berth(&["rm", "-f", "b1", "b2"]));
    ok(&s.berth(&["volume", "rm", "bv"]));
    assert_eq!(ok(&s.berth(&["ps", "-aq"])).trim(), "");
}
