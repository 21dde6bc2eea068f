//! The classic builder: the docker CLI with DOCKER_BUILDKIT=0, docker-py, berth build; cache, multi-stage, errors, kill -9 mid-build.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use berth_tests::stack::*;
use berth_tests::*;

/// Write `files` (path, content) under a new context directory.
fn context(s: &Stack, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = s.dir.path().join(name);
    for (p, c) in files {
        let f = d.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, c).unwrap();
    }
    d
}

/// The seeds' example (WORKDIR, COPY, RUN, CMD) with build args, ENV, LABEL, .dockerignore
/// and ADD of a local tar: the image runs, has the config the Dockerfile says, and a rebuild
/// comes from the cache until a file changes — then exactly the steps from its COPY on run.
#[test]
fn docker_build_classic_builder_and_cache() {
    if !need_root("docker_build_classic_builder_and_cache") {
        return;
    }
    let s = Stack::busybox("api-build");
    let ctx = context(
        &s,
        "ctx",
        &[
            ("app/hello.txt", "hello\n"),
            ("app/secret.log", "must not be sent\n"),
            (".dockerignore", "**/*.log\n"),
            (
                "Dockerfile",
                "# syntax=docker/dockerfile:1\n\
                 ARG BASE=busybox\n\
                 FROM $BASE\n\
                 ARG VER=1.0\n\
                 ENV APP=/srv/app \\\n    MODE=\"prod mode\"\n\
                 WORKDIR $APP\n\
                 COPY app/ ./\n\
                 ADD files.tar /opt/\n\
                 RUN echo \"built $VER in $MODE\" > built.txt && ls\n\
                 LABEL version=$VER\n\
                 EXPOSE 8080/tcp\n\
                 USER 65534:65534\n\
                 CMD [\"cat\", \"built.txt\", \"hello.txt\"]\n",
            ),
        ],
    );
    let tarball = Command::new("tar")
        .args(["-C", s.dir.path().to_str().unwrap(), "-cf"])
        .arg(ctx.join("files.tar"))
        .arg("ctx/app/hello.txt")
        .output()
        .unwrap();
    ok(&tarball);
    let o = s.build(&ctx, &["-t", "seed:1", "--build-arg", "VER=2.5"]);
    let out = ok(&o);
    assert!(out.contains("Step 1/12 : ARG BASE=busybox"), "{out}");
    assert!(out.contains("Step 8/12 : RUN"), "{out}");
    assert!(out.contains(" ---> Running in "), "{out}");
    assert!(out.contains("Successfully built "), "{out}");
    assert!(out.contains("Successfully tagged seed:1"), "{out}");
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "seed:1"])),
        "built 2.5 in prod mode\nhello\n"
    );
    let ls = ok(&s.docker(&["run", "--rm", "seed:1", "ls", "/srv/app", "/opt/ctx/app"]));
    assert!(
        !ls.contains("secret.log"),
        ".dockerignore'd file was copied: {ls}"
    );
    assert!(ls.contains("hello.txt"), "ADD extracts a local tar: {ls}");
    let cfg = ok(&s.docker(&["inspect", "-f", "{{json .Config}}", "seed:1"]));
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["WorkingDir"], "/srv/app");
    assert_eq!(cfg["User"], "65534:65534");
    assert_eq!(cfg["Labels"]["version"], "2.5");
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object());
    assert!(cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "MODE=prod mode"));
    // A build arg is not kept in the image's environment.
    assert!(!cfg["Env"].to_string().contains("VER="));
    let hist = ok(&s.docker(&["history", "--no-trunc", "seed:1"]));
    assert!(hist.contains("|1 VER=2.5 /bin/sh -c echo"), "{hist}");

    // Unchanged: every step after FROM from the cache, same image.
    let id1 = ok(&s.docker(&["images", "-q", "seed:1"]));
    let out = ok(&s.build(&ctx, &["-t", "seed:2", "--build-arg", "VER=2.5"]));
    assert_eq!(out.matches("Using cache").count(), 9, "{out}");
    assert_eq!(ok(&s.docker(&["images", "-q", "seed:2"])), id1);
    // A changed file: its COPY and every later step run again, the ones before come cached.
    std::fs::write(ctx.join("app/hello.txt"), "changed\n").unwrap();
    let out = ok(&s.build(&ctx, &["-t", "seed:3", "--build-arg", "VER=2.5"]));
    assert_eq!(
        out.matches("Using cache").count(),
        2,
        "ENV, WORKDIR cached: {out}"
    );
    assert!(out.contains(" ---> Running in "), "RUN ran again: {out}");
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "seed:3"])),
        "built 2.5 in prod mode\nchanged\n"
    );
    // --no-cache runs everything.
    let out = ok(&s.build(&ctx, &["--no-cache", "-q", "--build-arg", "VER=2.5"]));
    assert!(out.trim().starts_with("sha256:"), "-q prints the ID: {out}");
    // `docker builder prune`: the cache is gone, tagged images stay.
    let pruned = ok(&s.docker(&["builder", "prune", "-f"]));
    assert!(pruned.contains("sha256:"), "{pruned}");
    let out = ok(&s.build(&ctx, &["-t", "seed:4", "--build-arg", "VER=2.5"]));
    assert_eq!(out.matches("Using cache").count(), 0, "{out}");
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "seed:1"])),
        "built 2.5 in prod mode\nhello\n"
    );
}

/// Multi-stage builds, --target, COPY --from with --chown/--chmod, ONBUILD, SHELL,
/// HEALTHCHECK; a two-service image like the seeds' ssh+nginx one (here busybox httpd and
/// telnetd started by a script) runs both services.
#[test]
fn docker_build_multi_stage_and_services() {
    if !need_root("docker_build_multi_stage_and_services") {
        return;
    }
    let s = Stack::busybox("api-build2");
    let ctx = context(
        &s,
        "ms",
        &[
            (
                "start.sh",
                "#!/bin/sh\nhttpd -p 127.0.0.1:$HTTP_PORT -h /www\ntelnetd -p $TELNET_PORT -b 127.0.0.1 -l /bin/sh\nexec sleep 1000\n",
            ),
            (
                "Dockerfile",
                "FROM busybox AS builder\n\
                 RUN mkdir /out && echo compiled > /out/app && chmod 600 /out/app\n\
                 ONBUILD RUN echo triggered > /trigger\n\
                 FROM builder AS child\n\
                 RUN test -f /trigger\n\
                 FROM busybox AS final\n\
                 MAINTAINER Berth Tests <tests@berth>\n\
                 WORKDIR /srv/www\n\
                 SHELL [\"/bin/sh\", \"-ec\"]\n\
                 COPY --from=builder --chown=65534:65534 --chmod=640 /out/app /app/bin\n\
                 RUN test \"$(stat -c '%u:%g %a' /app/bin)\" = '65534:65534 640'\n\
                 RUN ip -o -4 addr show eth0 | grep -q inet\n\
                 COPY start.sh /start.sh\n\
                 RUN chmod +x /start.sh && mkdir /www && echo served > /www/index.html\n\
                 EXPOSE 22 80\n\
                 HEALTHCHECK --interval=5s --retries=2 CMD wget -q -O- http://127.0.0.1:$HTTP_PORT/\n\
                 CMD [\"/start.sh\"]\n\
                 FROM final AS extra\n\
                 RUN echo never\n",
            ),
        ],
    );
    let out = ok(&s.build(&ctx, &["-t", "svc", "--target", "final"]));
    assert!(out.contains("# Executing 1 build trigger"), "{out}");
    assert!(!out.contains("never"), "--target stops at its stage: {out}");
    assert_eq!(
        ok(&s.docker(&["inspect", "-f", "{{.Author}}", "svc"])).trim(),
        "Berth Tests <tests@berth>"
    );
    // WORKDIR made the directory in the image (no later step created it).
    assert_eq!(ok(&s.docker(&["run", "--rm", "svc", "pwd"])), "/srv/www\n");
    // And `docker run -w` of a missing directory creates it, as dockerd does.
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "-w", "/made/by/run", "busybox", "pwd"])),
        "/made/by/run\n"
    );
    let hc = ok(&s.docker(&["inspect", "-f", "{{json .Config.Healthcheck}}", "svc"]));
    let hc: serde_json::Value = serde_json::from_str(&hc).unwrap();
    assert_eq!(hc["Test"][0], "CMD-SHELL");
    assert_eq!(hc["Interval"], 5_000_000_000u64);
    assert_eq!(hc["Retries"], 2);
    // On the host's network (ports from the environment), both services on free loopback
    // ports the host reaches directly.
    let (http, telnet) = (free_port(), free_port());
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "svc1",
        "--network",
        "host",
        "-e",
        &format!("HTTP_PORT={http}"),
        "-e",
        &format!("TELNET_PORT={telnet}"),
        "svc",
    ]));
    s.until("both services up", || {
        let ps = text(&s.docker(&["exec", "svc1", "ps"]).stdout);
        ps.contains("httpd") && ps.contains("telnetd")
    });
    let url = format!("http://127.0.0.1:{http}/");
    assert_eq!(
        ok(&s.docker(&["exec", "svc1", "wget", "-q", "-O-", &url])),
        "served\n"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", telnet)).is_ok(),
        "telnetd listens"
    );
    ok(&s.docker(&["rm", "-f", "svc1"]));
}

/// Bad Dockerfiles and failing steps: errors that name the line or the command, a non-zero
/// exit, and (with --force-rm; without it Docker keeps a failed step's container) no
/// container left behind.
#[test]
fn docker_build_errors() {
    if !need_root("docker_build_errors") {
        return;
    }
    let s = Stack::busybox("api-build3");
    let cases: &[(&str, &str)] = &[
        (
            "FROM busybox\nRUN true\nFROBNICATE x\n",
            "line 3: unknown instruction: FROBNICATE",
        ),
        ("RUN true\n", "FROM"),
        ("FROM busybox\nCOPY missing.txt /x\n", "missing.txt"),
        (
            "FROM busybox\nCOPY ../outside /x\n",
            "outside the build context",
        ),
        ("FROM busybox\nRUN exit 3\n", "returned a non-zero code: 3"),
        ("FROM busybox\nENV A=\"unterminated\n", "double-quote"),
        ("FROM no-such-image-here\n", "no-such-image-here"),
        (
            "FROM busybox\nCOPY --bogus=1 a b\n",
            "unknown flag: --bogus",
        ),
    ];
    for (n, (df, want)) in cases.iter().enumerate() {
        let ctx = context(&s, &format!("bad{n}"), &[("Dockerfile", df)]);
        let o = s.build(&ctx, &["--force-rm"]);
        let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
        assert!(!o.status.success(), "{df:?} built: {all}");
        assert!(all.contains(want), "{df:?}: wanted {want:?} in {all}");
    }
    assert_eq!(
        ok(&s.docker(&["ps", "-aq"])),
        "",
        "with --force-rm a failed RUN leaves no container"
    );
}

/// docker-py's images.build: the image and the streamed log it returns.
#[test]
fn docker_py_build() {
    if !need_root("docker_py_build") {
        return;
    }
    let s = Stack::busybox("api-pybuild");
    let ctx = context(
        &s,
        "py",
        &[
            ("msg", "from py\n"),
            ("Dockerfile", "FROM busybox\nARG WHO=nobody\nCOPY msg /msg\nRUN echo \"$WHO\" >> /msg\nCMD [\"cat\", \"/msg\"]\n"),
        ],
    );
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="unix://{sock}", version="auto")
img, logs = c.images.build(path="{ctx}", tag="pyimg:1", buildargs={{"WHO": "docker-py"}}, rm=True)
text = "".join(l.get("stream", "") for l in logs)
assert "Successfully built" in text, text
assert "pyimg:1" in img.tags, img.tags
out = c.containers.run("pyimg:1", remove=True)
assert out == b"from py\ndocker-py\n", out
print("ok")
"#,
        sock = s.sock().display(),
        ctx = ctx.display()
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(text(&o.stdout).trim(), "ok", "{}", text(&o.stderr));
}

/// `berth build`: tags, build args, a Dockerfile outside the context, --target, -q.
#[test]
fn berth_cli_build() {
    if !need_root("berth_cli_build") {
        return;
    }
    let s = Stack::busybox("api-bbuild");
    let ctx = context(&s, "bctx", &[("data.txt", "payload\n")]);
    let df = s.dir.path().join("Other.dockerfile");
    std::fs::write(
        &df,
        "FROM busybox AS one\nARG GREETING=hi\nCOPY data.txt /data.txt\nRUN echo \"$GREETING\" >> /data.txt\nCMD [\"cat\", \"/data.txt\"]\nFROM one AS two\nRUN false\n",
    )
    .unwrap();
    let out = ok(&s.berth(&[
        "build",
        "-t",
        "cli:1",
        "-t",
        "cli:2",
        "-f",
        df.to_str().unwrap(),
        "--build-arg",
        "GREETING=hello",
        "--target",
        "one",
        ctx.to_str().unwrap(),
    ]));
    assert!(out.contains("Step 1/5 : FROM busybox AS one"), "{out}");
    assert!(out.contains("Successfully tagged cli:2"), "{out}");
    assert_eq!(ok(&s.berth(&["run", "--rm", "cli:2"])), "payload\nhello\n");
    let q = ok(&s.berth(&[
        "build",
        "-q",
        "-f",
        df.to_str().unwrap(),
        "--target",
        "one",
        ctx.to_str().unwrap(),
    ]));
    assert!(q.trim().starts_with("sha256:"), "{q}");
    // A failing step: non-zero exit and the daemon's message.
    let o = s.berth(&["build", "-f", df.to_str().unwrap(), ctx.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("returned a non-zero code: 1"),
        "{}",
        text(&o.stderr)
    );
}

/// kill -9 of the daemons in the middle of a build: the next berthd removes what the build
/// had (its tmpfs context mount and work directory); the step's container is an ordinary
/// container that can be removed (dockerd leaves it too).
#[test]
fn build_interrupted_by_kill9_leaves_nothing_mounted() {
    if !need_root("build_interrupted_by_kill9_leaves_nothing_mounted") {
        return;
    }
    let mut s = Stack::busybox("api-build-k9");
    let ctx = context(
        &s,
        "k9",
        &[
            ("f", "x\n"),
            ("Dockerfile", "FROM busybox\nCOPY f /f\nRUN sleep 30\n"),
        ],
    );
    let mut build = Command::new("docker")
        .args(["build", ctx.to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .client_of(&s)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    s.until("the RUN step's container runs", || {
        !text(&s.docker(&["ps", "-q"]).stdout).trim().is_empty()
    });
    let data = s.dir.path().join("data");
    let mounted = || {
        std::fs::read_to_string("/proc/mounts")
            .unwrap()
            .lines()
            .filter(|l| l.contains(data.to_str().unwrap()) && l.contains("/build-"))
            .count()
    };
    assert_eq!(mounted(), 1, "the context is on a tmpfs while building");
    s.kill9_daemons();
    let _ = build.wait();
    s.start_manager();
    s.start_berthd();
    assert_eq!(
        mounted(),
        0,
        "the new berthd unmounted the old build's context"
    );
    let left: Vec<_> = std::fs::read_dir(data.join("tmp"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|n| n.to_string_lossy().starts_with("build-")),
        "{left:?}"
    );
    let ids = ok(&s.docker(&["ps", "-aq"]));
    for id in ids.split_whitespace() {
        ok(&s.docker(&["rm", "-f", id]));
    }
}

/// What other operations leave in DATA_ROOT/tmp when berthd dies (a `cp`'s mount of a
/// container's root with a volume bound in it, load, commit, upload and save spools): the
/// next berthd unmounts and removes it, the volume's files untouched, and the directory is
/// 0700; a container a commit had paused is resumed.
#[test]
fn leftovers_of_interrupted_operations_are_cleaned_at_start() {
    use std::os::unix::fs::PermissionsExt;
    if !need_root("leftovers_of_interrupted_operations_are_cleaned_at_start") {
        return;
    }
    let mut s = Stack::busybox("api-leftovers");
    let tmp = s.dir.path().join("data").join("tmp");
    let vol = s.dir.path().join("a-volume");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("keep"), "kept\n").unwrap();
    let cp = tmp.join("cp-leftover");
    std::fs::create_dir_all(cp.join("root/data")).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &cp.join("root"),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    std::fs::create_dir_all(cp.join("root/data")).unwrap();
    nix::mount::mount(
        Some(&vol),
        &cp.join("root/data"),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    for d in ["load-leftover", "commit-leftover"] {
        std::fs::create_dir_all(tmp.join(d).join("x")).unwrap();
    }
    for f in ["upload-leftover", "save-leftover.tar"] {
        std::fs::write(tmp.join(f), "spool").unwrap();
    }
    s.kill9_daemons();
    s.start_manager();
    s.start_berthd();
    let mounted: Vec<String> = std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .filter(|l| l.contains(tmp.to_str().unwrap()))
        .map(String::from)
        .collect();
    if !mounted.is_empty() {
        // (Clean up for the assertion's sake: never leave a bind of the volume behind.)
        let _ = nix::mount::umount2(&cp.join("root/data"), nix::mount::MntFlags::MNT_DETACH);
        let _ = nix::mount::umount2(&cp.join("root"), nix::mount::MntFlags::MNT_DETACH);
    }
    assert!(mounted.is_empty(), "still mounted: {mounted:?}");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left: {left:?}");
    assert_eq!(std::fs::read_to_string(vol.join("keep")).unwrap(), "kept\n");
    assert_eq!(
        std::fs::metadata(&tmp).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // And the daemon works.
    ok(&s.docker(&["run", "--rm", "busybox", "true"]));
    // A container a commit had paused when berthd died (its marker written, then paused)
    // is resumed by the next berthd; one the user paused stays paused.
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "committed",
        "busybox",
        "sleep",
        "1000",
    ]));
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "user-paused",
        "busybox",
        "sleep",
        "1000",
    ]));
    let id = ok(&s.docker(&["inspect", "-f", "{{.Id}}", "committed"]))
        .trim()
        .to_string();
    let markers = s.dir.path().join("data").join("paused-by-commit");
    std::fs::create_dir_all(&markers).unwrap();
    std::fs::write(markers.join(&id), "commit").unwrap();
    ok(&s.docker(&["pause", "committed", "user-paused"]));
    s.kill9_daemons();
    s.start_manager();
    s.start_berthd();
    let status = |n: &str| {
        ok(&s.docker(&["inspect", "-f", "{{.State.Status}}", n]))
            .trim()
            .to_string()
    };
    assert_eq!(status("committed"), "running");
    assert_eq!(status("user-paused"), "paused");
    assert!(!markers.join(&id).exists());
    // (rm -f of a paused container ends it: it is thawed after the SIGKILL.)
    ok(&s.docker(&["rm", "-f", "committed", "user-paused"]));
    assert_eq!(ok(&s.docker(&["ps", "-aq"])).trim(), "");
}

// ---- Networking: the default bridge, none, host, container:, published ports ----
