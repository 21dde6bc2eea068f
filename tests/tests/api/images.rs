//! The image endpoints through the docker CLI and docker-py: import, tag, push, pull, save, load, history, remove.

use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::stack::*;
use berth_tests::*;

/// The docker CLI's image commands against berthd: version, info, import, images, tag,
/// push, rmi, pull, inspect, history, save, load, image prune; errors as Docker reports them.
#[test]
fn docker_cli_image_commands() {
    if !need_root("docker_cli_image_commands") {
        return;
    }
    assert!(have("docker"), "the docker CLI (v28) is expected on PATH");
    let s = Stack::new("api-cli");
    let v = ok(&s.docker(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ]));
    assert_eq!(v.trim(), "1.45 linux");
    let info = ok(&s.docker(&["info", "--format", "{{.OSType}} {{.Images}}"]));
    assert_eq!(info.trim(), "linux 0");
    let name = format!("127.0.0.1:{}/cli/busybox:1", s.registry);
    let tar = s.rootfs_tar().display().to_string();
    let id = ok(&s.docker(&["import", &tar, &name])).trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    let images = ok(&s.docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]));
    assert!(
        images.contains(&format!(
            "127.0.0.1:{}/cli/busybox:1 {}",
            s.registry,
            &id[7..19]
        )),
        "{images}"
    );
    ok(&s.docker(&["tag", &name, "mybox:latest"]));
    let push = ok(&s.docker(&["push", &name]));
    assert!(push.contains("digest: sha256:"), "{push}");
    // search lists the registry's catalog entries that contain the term.
    let found = ok(&s.docker(&[
        "search",
        "--format",
        "{{.Name}}",
        &format!("127.0.0.1:{}/busy", s.registry),
    ]));
    assert_eq!(
        found.trim(),
        format!("127.0.0.1:{}/cli/busybox", s.registry)
    );
    let none = ok(&s.docker(&[
        "search",
        &format!("127.0.0.1:{}/nothing-like-it", s.registry),
    ]));
    assert_eq!(none.lines().count(), 1, "only the header: {none}");
    let rmi = ok(&s.docker(&["rmi", &name, "mybox"]));
    assert!(
        rmi.contains("Untagged: mybox:latest") && rmi.contains(&format!("Deleted: {id}")),
        "{rmi}"
    );
    let pull = ok(&s.docker(&["pull", &name]));
    assert!(pull.contains("Status: Downloaded newer image"), "{pull}");
    let insp = ok(&s.docker(&[
        "image",
        "inspect",
        &name,
        "--format",
        "{{.Id}} {{.Os}} {{index .RepoDigests 0}}",
    ]));
    assert!(
        insp.starts_with(&format!(
            "{id} linux 127.0.0.1:{}/cli/busybox@sha256:",
            s.registry
        )),
        "{insp}"
    );
    let hist = ok(&s.docker(&["history", &name, "--format", "{{.CreatedBy}}"]));
    assert_eq!(hist.trim(), "berth import");
    let saved = s.dir.path().join("saved.tar");
    let sv = saved.display().to_string();
    ok(&s.docker(&["save", "-o", &sv, &name]));
    ok(&s.docker(&["rmi", &name]));
    let load = ok(&s.docker(&["load", "-i", &sv]));
    assert!(load.contains(&format!("Loaded image: {name}")), "{load}");
    assert_eq!(
        ok(&s.docker(&["image", "inspect", &name, "--format", "{{.Id}}"])).trim(),
        id
    );
    ok(&s.docker(&["image", "prune", "-f"]));
    // Errors: unknown image 404 named, bad reference 400 named, missing repository named.
    let o = s.docker(&["rmi", "nope"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("No such image: nope"),
        "{}",
        text(&o.stderr)
    );
    let o = s.docker(&["image", "inspect", "nope"]);
    assert!(!o.status.success());
    let o = s.docker(&["pull", &format!("127.0.0.1:{}/missing:1", s.registry)]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("not found"),
        "{}",
        text(&o.stderr)
    );
    // Docker Hub is never contacted: no mirror and fallback off fails at once, naming why.
    let t = Instant::now();
    let o = s.docker(&["pull", "busybox"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("registry-fallback"),
        "{}",
        text(&o.stderr)
    );
    assert!(t.elapsed() < Duration::from_secs(10));
}

/// docker-py (the SDK) against berthd: ping, version, pull, list, tag, inspect, remove.
#[test]
fn docker_py_image_calls() {
    if !need_root("docker_py_image_calls") {
        return;
    }
    let s = Stack::new("api-py");
    let name = format!("127.0.0.1:{}/py/busybox", s.registry);
    let tar = s.rootfs_tar().display().to_string();
    // Seed the registry through the CLI-free path: berthd's own import and push.
    let berthd = |args: &[&str]| {
        Command::new(bin_dir().join("berthd"))
            .arg("--manager")
            .arg(s.dir.path().join("m.sock"))
            .arg("--config-file")
            .arg(s.dir.path().join("daemon.json"))
            .args(args)
            .output()
            .unwrap()
    };
    ok(&berthd(&["image", "import", &tar, &format!("{name}:1")]));
    ok(&berthd(&["image", "push", &format!("{name}:1")]));
    ok(&berthd(&["image", "rm", &format!("{name}:1")]));
    let script = format!(
        r#"
import docker, sys
c = docker.DockerClient(base_url="unix://{sock}", version="auto")
assert c.ping() is True
assert c.version()["ApiVersion"] == "1.45"
img = c.images.pull("{name}", tag="1")
assert img.id.startswith("sha256:"), img.id
assert "{name}:1" in img.tags, img.tags
assert any(i.id == img.id for i in c.images.list())
img.tag("py/other", "v2")
assert "py/other:v2" in c.images.get("py/other:v2").tags
assert c.images.get(img.id).attrs["Os"] == "linux"
c.images.remove("py/other:v2")
try:
    c.images.get("does-not-exist")
    sys.exit("expected ImageNotFound")
except docker.errors.ImageNotFound:
    pass
print("ok")
"#,
        sock = s.sock().display(),
        name = name
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(text(&o.stdout).trim(), "ok", "{}", text(&o.stderr));
}
