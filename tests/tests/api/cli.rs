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

/// docker's command groups and the commands added with them: `container …` / `image …`
/// verbs and aliases, `container prune` with filters, `image prune -a`, `stats
/// --no-stream` (table and `--format`), `update`; an unknown verb is an error.
#[test]
fn berth_cli_groups_stats_update_prune() {
    if !need_root("berth_cli_groups_stats_update_prune") {
        return;
    }
    let s = Stack::busybox("api-berth-groups");
    ok(&s.berth(&[
        "container",
        "run",
        "-d",
        "--name",
        "g1",
        "busybox",
        "sleep",
        "1000",
    ]));
    let ls = ok(&s.berth(&["container", "ls"]));
    assert!(ls.starts_with("CONTAINER ID") && ls.contains("g1"), "{ls}");
    assert_eq!(
        ok(&s.berth(&["container", "list", "-q"])).lines().count(),
        1
    );
    let imgs = ok(&s.berth(&["image", "ls"]));
    assert!(
        imgs.starts_with("REPOSITORY") && imgs.contains("busybox"),
        "{imgs}"
    );
    let h = ok(&s.berth(&[
        "image",
        "history",
        "--format",
        "{{.ID}}|{{.CreatedBy}}",
        "busybox",
    ]));
    assert!(
        h.lines().all(|l| l.split('|').count() == 2) && h.lines().count() >= 1,
        "{h}"
    );
    ok(&s.berth(&["image", "tag", "busybox", "grouptag:1"]));
    ok(&s.berth(&["image", "rm", "grouptag:1"]));
    let st = ok(&s.berth(&["stats", "--no-stream"]));
    let head = st.lines().next().unwrap_or("");
    for col in [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "NET I/O",
        "PIDS",
    ] {
        assert!(head.contains(col), "{st}");
    }
    assert!(st.lines().nth(1).is_some_and(|l| l.contains("g1")), "{st}");
    let f = ok(&s.berth(&[
        "container",
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}}",
        "g1",
    ]));
    assert_eq!(f.trim(), "g1 1");
    assert_eq!(
        ok(&s.berth(&[
            "update",
            "--memory",
            "64m",
            "--restart",
            "on-failure:2",
            "g1"
        ]))
        .trim(),
        "g1"
    );
    let mem = ok(&s.docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}",
        "g1",
    ]));
    assert_eq!(mem.trim(), "67108864 on-failure");
    let o = s.berth(&["update", "g1"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("one or more flags"),
        "{}",
        text(&o.stderr)
    );
    // Prune: only the stopped one without the label, then the labelled one.
    ok(&s.berth(&["run", "--name", "g2", "busybox", "true"]));
    ok(&s.berth(&["run", "--name", "g3", "-l", "keep=1", "busybox", "true"]));
    let o = s.berth(&["container", "prune"]);
    assert_eq!(o.status.code(), Some(1), "without -f nothing goes");
    let p = ok(&s.berth(&["container", "prune", "-f", "--filter", "label!=keep"]));
    assert!(p.contains("Total reclaimed space"), "{p}");
    let all = ok(&s.berth(&["ps", "-a", "--format", "{{.Names}}"]));
    assert!(
        !all.contains("g2") && all.contains("g3") && all.contains("g1"),
        "{all}"
    );
    ok(&s.berth(&["container", "prune", "-f"]));
    assert!(!ok(&s.berth(&["ps", "-a"])).contains("g3"));
    // image prune -a: everything no container uses goes; busybox stays (g1 runs it).
    ok(&s.berth(&["image", "tag", "busybox", "pruneme:1"]));
    ok(&s.berth(&["commit", "g1", "unused:1"]));
    let p = ok(&s.berth(&["image", "prune", "-a", "-f"]));
    assert!(p.contains("unused:1") || p.contains("untagged"), "{p}");
    let imgs = ok(&s.berth(&["images"]));
    assert!(
        !imgs.contains("unused") && imgs.contains("busybox"),
        "{imgs}"
    );
    let o = s.berth(&["container", "frobnicate"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(text(&o.stderr).contains("'frobnicate' is not a berth container or image command"));
    ok(&s.berth(&["container", "rm", "-f", "g1"]));
}

/// `berth login` / `logout` against a registry that wants a password: a wrong password is
/// refused (401 from berthd's `POST /auth`, nothing stored), the right one is kept in the
/// client's config.json (mode 0600, docker's `auths` layout), `push` and `pull` carry it as
/// X-Registry-Auth (berthd itself has no credentials for this registry), and `logout`
/// removes it, after which a push is refused. The docker CLI's `login` uses the same
/// endpoint.
#[test]
fn berth_login_logout_and_authenticated_push() {
    if !need_root("berth_login_logout_and_authenticated_push") {
        return;
    }
    let s = Stack::busybox("api-login");
    let reg = Registry::start(s.dir.path(), Some(("berth", "s3cret")));
    let server = format!("127.0.0.1:{}", reg.port);
    let cfg = TempDir::new("api-login-cfg");
    let berth = |args: &[&str], input: &str| {
        use std::io::Write;
        let mut c = std::process::Command::new(bin_dir().join("berth"))
            .args(args)
            .env("BERTH_HOST", format!("unix://{}", s.sock().display()))
            .env("DOCKER_CONFIG", cfg.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    let o = berth(
        &["login", "-u", "berth", "--password-stdin", &server],
        "wrong\n",
    );
    assert!(!o.status.success(), "a wrong password logged in");
    assert!(
        text(&o.stderr).contains("login attempt to"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        !cfg.path().join("config.json").exists(),
        "nothing stored on failure"
    );
    let o = berth(
        &["login", "-u", "berth", "--password-stdin", &server],
        "s3cret\n",
    );
    assert_eq!(
        text(&o.stdout).trim(),
        "Login Succeeded",
        "{}",
        text(&o.stderr)
    );
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(
        stored["auths"][&server]["auth"], "YmVydGg6czNjcmV0",
        "{stored}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(cfg.path().join("config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let image = format!("{server}/me/busy:1");
    ok(&s.docker(&["tag", "busybox", &image]));
    let o = berth(&["push", &image], "");
    assert!(
        o.status.success(),
        "push with the stored login: {}",
        text(&o.stderr)
    );
    ok(&s.docker(&["rmi", &image]));
    let o = berth(&["pull", &image], "");
    assert!(
        o.status.success(),
        "pull with the stored login: {}",
        text(&o.stderr)
    );
    let o = berth(&["logout", &server], "");
    assert_eq!(
        text(&o.stdout).trim(),
        format!("Removing login credentials for {server}")
    );
    let o = berth(&["push", &image], "");
    assert!(!o.status.success(), "a push without credentials succeeded");
    // The docker CLI logs in through the same endpoint.
    let o = s.docker_in(
        "s3cret\n",
        &["login", "-u", "berth", "--password-stdin", &server],
    );
    assert!(
        text(&o.stdout).contains("Login Succeeded"),
        "{}",
        text(&o.stderr)
    );
}
