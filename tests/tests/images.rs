//! Images end to end: berthd (image commands) + berth-manager (content store, snapshots)
//! against Debian's docker-registry started by each test on 127.0.0.1 with a free port.
//! Test images are made offline: the busybox-static rootfs as a tarball, imported.
//! No test talks to anything but loopback; a mirror test proves docker.io names resolve on the
//! mirror with Docker Hub fallback off.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::*;

/// A manager (own root/state/socket) and the berthd command line for it.
struct Env {
    dir: TempDir,
    mgr: Option<Child>,
    cg: String,
}

impl Env {
    fn new(tag: &str) -> Env {
        let dir = TempDir::new(tag);
        let mut e = Env {
            dir,
            mgr: None,
            cg: unique_id("cg"),
        };
        e.start_manager();
        e
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("m.sock")
    }

    fn start_manager(&mut self) {
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("manager.log"))
            .unwrap();
        let _ = std::fs::remove_file(self.sock());
        let child = Command::new(bin_dir().join("berth-manager"))
            .arg("--address")
            .arg(self.sock())
            .arg("--root")
            .arg(d.join("root"))
            .arg("--state")
            .arg(d.join("st"))
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.mgr = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.sock().exists() {
            assert!(Instant::now() < deadline, "manager did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn daemon_json(&self, v: serde_json::Value) {
        std::fs::write(self.dir.path().join("daemon.json"), v.to_string()).unwrap();
    }

    fn docker_login(&self, host: &str, user: &str, pass: &str) {
        let d = self.dir.path().join("docker");
        std::fs::create_dir_all(&d).unwrap();
        let auth = base64(&format!("{user}:{pass}"));
        std::fs::write(
            d.join("config.json"),
            serde_json::json!({"auths": {host: {"auth": auth}}}).to_string(),
        )
        .unwrap();
    }

    fn berthd_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.arg("120")
            .arg(bin_dir().join("berthd"))
            .arg("--manager")
            .arg(self.sock())
            .arg("--config-file")
            .arg(self.dir.path().join("daemon.json"))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .stdin(Stdio::null());
        c
    }

    fn berthd(&self, args: &[&str]) -> Output {
        self.berthd_cmd(args).output().unwrap()
    }

    fn mgr(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("60")
            .arg(bin_dir().join("berth-manager"))
            .arg("--address")
            .arg(self.sock())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A one-layer image of the busybox rootfs, named `name`; returns its ID.
    fn busybox_image(&self, name: &str) -> String {
        let rootfs = self.dir.path().join("rootfs");
        if !rootfs.exists() {
            make_rootfs(&rootfs);
        }
        let tar = self.dir.path().join("rootfs.tar");
        if !tar.exists() {
            let o = Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg(".")
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", text(&o.stderr));
        }
        let t = tar.display().to_string();
        ok(&self.berthd(&["image", "import", &t, name, "--cmd", "sh"]))
            .trim()
            .to_string()
    }

    fn blobs(&self) -> Vec<String> {
        std::fs::read_dir(self.root().join("content/blobs/sha256"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn ingests(&self) -> usize {
        std::fs::read_dir(self.root().join("content/ingest"))
            .map(|rd| rd.count())
            .unwrap_or(0)
    }

    fn snapshot_dirs(&self) -> usize {
        std::fs::read_dir(self.root().join("snapshots"))
            .map(|rd| rd.count())
            .unwrap_or(0)
    }

    fn inspect(&self, name: &str) -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&self.berthd(&["image", "inspect", name]))).unwrap();
        v[0].clone()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut c) = self.mgr.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        kill_task_processes(&self.dir.path().join("st/tasks"), None);
        std::thread::sleep(Duration::from_millis(100));
        remove_cgroup_tree(&self.cg);
    }
}

fn base64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// make image → push → remove locally (and collect) → pull → run: same manifest digest and
/// image ID, the container runs from the pulled layers, its writes land in its own layer.
#[test]
fn push_pull_run_round_trip() {
    if !need_root("push_pull_run_round_trip") {
        return;
    }
    let env = Env::new("img-rt");
    let reg = Registry::start(env.dir.path(), None);
    let name = format!("{}/test/busybox:1", reg.host());
    let id = env.busybox_image(&name);
    assert!(id.starts_with("sha256:"), "{id}");
    let push = ok(&env.berthd(&["image", "push", &name]));
    let pushed = push
        .lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .unwrap_or_else(|| panic!("no digest in push output: {push}"))
        .trim()
        .to_string();
    let rm = ok(&env.berthd(&["image", "rm", &name]));
    assert!(rm.contains("Untagged") && rm.contains("Deleted"), "{rm}");
    // Nothing of the image is left in the store.
    assert!(env.blobs().is_empty(), "blobs left: {:?}", env.blobs());
    assert_eq!(env.snapshot_dirs(), 0);
    let pull = ok(&env.berthd(&["image", "pull", &name]));
    assert!(pull.contains(&format!("Digest: {pushed}")), "{pull}");
    let info = env.inspect(&name);
    assert_eq!(
        info["Id"],
        id.as_str(),
        "same image ID after the round trip"
    );
    let history = ok(&env.berthd(&["image", "history", &name]));
    assert!(
        history.contains("berth import") && history.contains(&id[7..19]),
        "{history}"
    );
    assert_eq!(
        info["RepoDigests"][0],
        format!("{}/test/busybox@{pushed}", reg.host()).as_str()
    );
    // Run it: the image's Cmd is sh; our args replace it.
    let cg = format!("/{}/c1", env.cg);
    let o = env.mgr(&[
        "run",
        "--image",
        &name,
        "--cgroup",
        &cg,
        "c1",
        "sh",
        "-c",
        "echo from-image > /made-here; cat /made-here; ls /bin/busybox",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "from-image\n/bin/busybox\n");
    // The write is in the container's own snapshot, not in the shared image layer.
    let written: Vec<PathBuf> = std::fs::read_dir(env.root().join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("fs/made-here"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(
        std::fs::read_to_string(&written[0]).unwrap(),
        "from-image\n"
    );
    ok(&env.mgr(&["rm", "c1"]));
    assert!(
        !written[0].exists(),
        "the container layer goes with the container"
    );
    assert!(
        mounts_containing(&env.dir.path().display().to_string()).is_empty(),
        "rootfs unmounted"
    );
}

/// daemon.json registry-mirrors with registry-fallback false: `busybox` is
/// docker.io/library/busybox:latest, fetched from the loopback mirror; a name the mirror lacks
/// fails fast and says so, without reaching for Docker Hub.
#[test]
fn mirror_serves_docker_hub_names_offline() {
    if !need_root("mirror_serves_docker_hub_names_offline") {
        return;
    }
    let env = Env::new("img-mirror");
    let reg = Registry::start(env.dir.path(), None);
    let on_mirror = format!("{}/library/busybox:latest", reg.host());
    env.busybox_image(&on_mirror);
    ok(&env.berthd(&["image", "push", &on_mirror]));
    ok(&env.berthd(&["image", "rm", &on_mirror]));
    env.daemon_json(serde_json::json!({
        "registry-mirrors": [format!("http://{}", reg.host())],
        "registry-fallback": false,
    }));
    let pull = ok(&env.berthd(&["image", "pull", "busybox"]));
    assert!(pull.contains("docker.io/library/busybox:latest"), "{pull}");
    let info = env.inspect("busybox");
    assert_eq!(info["RepoTags"][0], "busybox:latest");
    let t = Instant::now();
    let o = env.berthd(&["image", "pull", "busybox:no-such-tag"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("no-such-tag") && err.contains(&reg.host()),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "failed fast");
    // With no mirror and no fallback, nothing is contacted at all.
    env.daemon_json(serde_json::json!({"registry-fallback": false}));
    let o = env.berthd(&["image", "pull", "alpine"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("registry-fallback"),
        "{}",
        text(&o.stderr)
    );
}

/// A registry with htpasswd basic auth: refused without credentials (named), works with the
/// docker config's `auths`.
#[test]
fn basic_auth_registry() {
    if !need_root("basic_auth_registry") {
        return;
    }
    let env = Env::new("img-auth");
    let reg = Registry::start(env.dir.path(), Some(("berth", "s3cret")));
    let name = format!("{}/private/busybox:1", reg.host());
    env.busybox_image(&name);
    let o = env.berthd(&["image", "push", &name]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("unauthorized"),
        "{}",
        text(&o.stderr)
    );
    env.docker_login(&reg.host(), "berth", "wrong");
    let o = env.berthd(&["image", "push", &name]);
    assert!(!o.status.success(), "wrong password refused");
    env.docker_login(&reg.host(), "berth", "s3cret");
    ok(&env.berthd(&["image", "push", &name]));
    ok(&env.berthd(&["image", "rm", &name]));
    ok(&env.berthd(&["image", "pull", &name]));
}

fn curl(args: &[&str]) -> String {
    let o = Command::new("curl")
        .args(["-sS", "-f"])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "curl {args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

fn sha256_hex(data: &[u8]) -> String {
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    c.wait().unwrap();
    out.split_whitespace().next().unwrap().to_string()
}

/// Put a blob into a repository with the distribution API (monolithic upload).
fn upload_blob(host: &str, repo: &str, data: &[u8], dir: &Path) -> String {
    let digest = format!("sha256:{}", sha256_hex(data));
    let f = dir.join("blob.tmp");
    std::fs::write(&f, data).unwrap();
    let hdrs = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-X",
        "POST",
        &format!("http://{host}/v2/{repo}/blobs/uploads/"),
    ]);
    let loc = hdrs
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap()
        .trim()
        .to_string();
    let loc = if loc.starts_with("http") {
        loc
    } else {
        format!("http://{host}{loc}")
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", f.display()),
        &format!("{loc}{sep}digest={digest}"),
    ]);
    digest
}

/// A multi-platform index whose other entries are a foreign architecture and an attestation:
/// the pull takes this host's manifest and the image runs.
#[test]
fn multi_platform_index_picks_this_host() {
    if !need_root("multi_platform_index_picks_this_host") {
        return;
    }
    let env = Env::new("img-multi");
    let reg = Registry::start(env.dir.path(), None);
    let host = reg.host();
    let amd = format!("{host}/multi/busybox:amd64");
    env.busybox_image(&amd);
    ok(&env.berthd(&["image", "push", &amd]));
    let amd_manifest = curl(&[
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &format!("http://{host}/v2/multi/busybox/manifests/amd64"),
    ]);
    // A foreign (s390x) image: a tiny layer and config.
    let mut layer = Vec::new();
    {
        let f = env.dir.path().join("foreign");
        std::fs::create_dir_all(&f).unwrap();
        std::fs::write(f.join("hello"), "s390x\n").unwrap();
        let o = Command::new("tar")
            .arg("-C")
            .arg(&f)
            .args(["-cf", "-", "hello"])
            .output()
            .unwrap();
        layer.extend_from_slice(&o.stdout);
    }
    let layer_digest = upload_blob(&host, "multi/busybox", &layer, env.dir.path());
    let cfg = serde_json::json!({
        "architecture": "s390x", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string();
    let cfg_digest = upload_blob(&host, "multi/busybox", cfg.as_bytes(), env.dir.path());
    let foreign = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string();
    let put = |tag: &str, mt: &str, body: &str| {
        let f = env.dir.path().join(format!("{tag}.json"));
        std::fs::write(&f, body).unwrap();
        curl(&[
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {mt}"),
            "--data-binary",
            &format!("@{}", f.display()),
            &format!("http://{host}/v2/multi/busybox/manifests/{tag}"),
        ]);
        format!("sha256:{}", sha256_hex(body.as_bytes()))
    };
    let oci_manifest = "application/vnd.oci.image.manifest.v1+json";
    let foreign_digest = put("s390x", oci_manifest, &foreign);
    let amd_digest = format!("sha256:{}", sha256_hex(amd_manifest.as_bytes()));
    // Attestations come first in real indexes: it must be skipped, not chosen.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": oci_manifest, "digest": foreign_digest, "size": foreign.len(),
             "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                             "vnd.docker.reference.digest": amd_digest}},
            {"mediaType": oci_manifest, "digest": foreign_digest, "size": foreign.len(),
             "platform": {"os": "linux", "architecture": "s390x"}},
            {"mediaType": oci_manifest, "digest": amd_digest, "size": amd_manifest.len(),
             "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    })
    .to_string();
    put("multi", "application/vnd.oci.image.index.v1+json", &index);
    ok(&env.berthd(&["image", "rm", &amd]));
    let name = format!("{host}/multi/busybox:multi");
    ok(&env.berthd(&["image", "pull", &name]));
    let info = env.inspect(&name);
    assert_eq!(info["Architecture"], "amd64");
    // The foreign layer was not fetched.
    assert!(!env.blobs().contains(&layer_digest[7..].to_string()));
    let cg = format!("/{}/m1", env.cg);
    let o = env.mgr(&[
        "run", "--image", &name, "--cgroup", &cg, "--rm", "m1", "echo", "ran",
    ]);
    assert_eq!(text(&o.stdout), "ran\n", "{}", text(&o.stderr));
}

/// A registry serving bytes that do not match the digest: the pull fails naming both digests,
/// and nothing is kept (no blob, no ingest, no image).
#[test]
fn wrong_digest_from_registry_is_rejected() {
    if !need_root("wrong_digest_from_registry_is_rejected") {
        return;
    }
    let env = Env::new("img-digest");
    let reg = Registry::start(env.dir.path(), None);
    let name = format!("{}/bad/busybox:1", reg.host());
    env.busybox_image(&name);
    ok(&env.berthd(&["image", "push", &name]));
    let info = env.inspect(&name);
    let layer = info["Descriptor"]["digest"].as_str().unwrap().to_string();
    // The layer digest: read the manifest from the store.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.root().join("content/blobs/sha256").join(&layer[7..])).unwrap(),
    )
    .unwrap();
    let layer_digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&env.berthd(&["image", "rm", &name]));
    // Same size, other bytes.
    let f = reg.blob_file(&layer_digest);
    let mut data = std::fs::read(&f).unwrap();
    let n = data.len();
    data[n / 2] ^= 0xff;
    std::fs::write(&f, &data).unwrap();
    let o = env.berthd(&["image", "pull", &name]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains(&layer_digest) && err.contains("digest"),
        "{err}"
    );
    assert!(
        !env.blobs().contains(&layer_digest[7..].to_string()),
        "bad blob not kept"
    );
    ok(&env.berthd(&["image", "prune"]));
    assert_eq!(env.ingests(), 0);
    assert!(env.blobs().is_empty(), "{:?}", env.blobs());
    assert!(!env.berthd(&["image", "inspect", &name]).status.success());
}

/// Malformed references are refused by name, before anything is contacted.
#[test]
fn bad_references_are_named() {
    if !need_root("bad_references_are_named") {
        return;
    }
    let env = Env::new("img-ref");
    for r in [
        "Busybox",
        "busybox:",
        "a//b",
        "busybox@sha256:123",
        "localhost:port/x",
    ] {
        let o = env.berthd(&["image", "pull", r]);
        assert!(!o.status.success(), "{r}");
        let err = text(&o.stderr);
        assert!(
            err.contains("invalid reference") && err.contains(r),
            "{r}: {err}"
        );
    }
}

/// kill -9 of berthd in the middle of a pull: the next berthd drops the dead pull's lease, a
/// prune collects the partial data, and pulling again works.
#[test]
fn kill9_during_pull_is_reconciled() {
    if !need_root("kill9_during_pull_is_reconciled") {
        return;
    }
    let env = Env::new("img-kill");
    let reg = Registry::start(env.dir.path(), None);
    // A big layer (random bytes do not compress) so the pull takes a while.
    let big = env.dir.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    let mut data = vec![0u8; 24 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(big.join("random"), &data).unwrap();
    let tar = env.dir.path().join("big.tar");
    let o = Command::new("tar")
        .arg("-C")
        .arg(&big)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success());
    let name = format!("{}/big/data:1", reg.host());
    let t = tar.display().to_string();
    ok(&env.berthd(&["image", "import", &t, &name]));
    ok(&env.berthd(&["image", "push", &name]));
    ok(&env.berthd(&["image", "rm", &name]));
    assert!(env.blobs().is_empty());
    // Pull through a proxy that stalls the big layer after 1 MiB: berthd is killed while
    // that download is in progress, deterministically.
    let proxy = Proxy::start(reg.port);
    proxy.state.lock().unwrap().stall_blobs_after = Some(1 << 20);
    let via = format!("127.0.0.1:{}/big/data:1", proxy.port);
    let mut pull = env
        .berthd_cmd(&["image", "pull", &via])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let ingest_data = || {
        std::fs::read_dir(env.root().join("content/ingest"))
            .map(|rd| {
                rd.flatten().any(|e| {
                    e.path()
                        .join("data")
                        .metadata()
                        .map(|m| m.len() >= 1 << 20)
                        .unwrap_or(false)
                })
            })
            .unwrap_or(false)
    };
    while !ingest_data() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // `timeout` runs berthd as its child: kill -9 the berthd itself.
    let berthd_pid =
        std::fs::read_to_string(format!("/proc/{}/task/{}/children", pull.id(), pull.id()))
            .unwrap_or_default()
            .trim()
            .to_string();
    assert!(!berthd_pid.is_empty(), "berthd is running");
    let _ = Command::new("kill").args(["-9", &berthd_pid]).status();
    let _ = pull.wait();
    assert!(env.ingests() > 0, "killed with a download in progress");
    // The next berthd reconciles: the dead pull's lease goes, prune collects its data.
    let prune = ok(&env.berthd(&["image", "prune"]));
    assert_eq!(env.ingests(), 0, "{prune}");
    assert!(env.blobs().is_empty(), "{:?}", env.blobs());
    ok(&env.berthd(&["image", "pull", &name]));
    assert_eq!(env.inspect(&name)["RepoTags"][0], name.as_str());
}

/// save → rm → load gives the same image ID; the archive loads into podman (a Docker/OCI
/// reader we did not write) with the same ID, and podman's Docker and OCI archives load here.
#[test]
fn save_load_round_trip_and_podman_archives() {
    if !need_root("save_load_round_trip_and_podman_archives") {
        return;
    }
    let env = Env::new("img-save");
    let name = "localhost/saved/busybox:1";
    let id = env.busybox_image(name);
    let archive = env.dir.path().join("saved.tar");
    let a = archive.display().to_string();
    ok(&env.berthd(&["image", "save", "-o", &a, name]));
    ok(&env.berthd(&["image", "rm", name]));
    assert!(env.blobs().is_empty());
    let out = ok(&env.berthd(&["image", "load", "-i", &a]));
    assert!(out.contains(&format!("Loaded image: {name}")), "{out}");
    assert_eq!(env.inspect(name)["Id"], id.as_str());
    if !have("podman") {
        return;
    }
    let pod = env.dir.path().join("podman");
    let podman = |args: &[&str]| {
        Command::new("podman")
            .arg("--root")
            .arg(pod.join("root"))
            .arg("--runroot")
            .arg(pod.join("run"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    ok(&podman(&["load", "-i", &a]));
    let pid = ok(&podman(&["image", "inspect", "--format", "{{.Id}}", name]));
    assert_eq!(
        pid.trim(),
        id.trim_start_matches("sha256:"),
        "podman sees the same ID"
    );
    for format in ["docker-archive", "oci-archive"] {
        let f = env.dir.path().join(format!("{format}.tar"));
        let fs = f.display().to_string();
        ok(&podman(&["save", "--format", format, "-o", &fs, name]));
        ok(&env.berthd(&["image", "rm", name]));
        let out = ok(&env.berthd(&["image", "load", "-i", &fs]));
        assert!(out.contains("Loaded image"), "{format}: {out}");
        assert_eq!(env.inspect(name)["Id"], id.as_str(), "{format}");
        let cg = format!("/{}/{format}", env.cg);
        let o = env.mgr(&[
            "run", "--image", name, "--cgroup", &cg, "--rm", format, "echo", "ok",
        ]);
        assert_eq!(text(&o.stdout), "ok\n", "{format}: {}", text(&o.stderr));
    }
    let _ = podman(&["rmi", "-af"]);
    let _ = Command::new("umount").arg("-R").arg(&pod).output();
}

/// Write an OCI image-layout archive at `out` holding one image `name` whose layers are the
/// given uncompressed tar files (bottom first); returns the config digest (the image ID).
fn oci_archive(dir: &Path, out: &Path, name: &str, layers: &[PathBuf], cmd: &[&str]) -> String {
    let lay = dir.join(format!("layout-{}", unique_id("l")));
    let blobs = lay.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let data = std::fs::read(l).unwrap();
        let hex = sha256_hex(&data);
        std::fs::write(blobs.join(&hex), &data).unwrap();
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{hex}"), "size": data.len(),
        }));
        diff_ids.push(format!("sha256:{hex}"));
    }
    let cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let cfg_hex = sha256_hex(cfg.as_bytes());
    std::fs::write(blobs.join(&cfg_hex), &cfg).unwrap();
    let man = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{cfg_hex}"), "size": cfg.len()},
        "layers": descs,
    })
    .to_string();
    let man_hex = sha256_hex(man.as_bytes());
    std::fs::write(blobs.join(&man_hex), &man).unwrap();
    std::fs::write(lay.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": format!("sha256:{man_hex}"), "size": man.len(),
                       "annotations": {"io.containerd.image.name": name}}],
    });
    std::fs::write(lay.join("index.json"), index.to_string()).unwrap();
    let o = Command::new("tar")
        .arg("-C")
        .arg(&lay)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let _ = std::fs::remove_dir_all(&lay);
    format!("sha256:{cfg_hex}")
}

/// 128 layers on busybox: every layer is unpacked once, the container's overlay mounts
/// although its lowerdir list is far longer than a page (lowerdir+ through fsconfig), and a
/// file from every layer is visible; a whiteout in the top layer hides a lower file.
#[test]
fn deep_image_with_128_layers_runs() {
    if !need_root("deep_image_with_128_layers_runs") {
        return;
    }
    let env = Env::new("img-deep");
    let rootfs = env.dir.path().join("rootfs");
    make_rootfs(&rootfs);
    let mut layers = Vec::new();
    let base = env.dir.path().join("base.tar");
    let o = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&base)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success());
    layers.push(base);
    for i in 0..128 {
        let d = env.dir.path().join(format!("l{i}"));
        std::fs::create_dir_all(d.join("layers")).unwrap();
        std::fs::write(d.join("layers").join(format!("l{i}")), format!("{i}\n")).unwrap();
        if i == 127 {
            // Hide layer 0's file.
            std::fs::write(d.join("layers/.wh.l0"), "").unwrap();
        }
        let t = env.dir.path().join(format!("l{i}.tar"));
        let o = Command::new("tar")
            .arg("-C")
            .arg(&d)
            .arg("-cf")
            .arg(&t)
            .arg("layers")
            .output()
            .unwrap();
        assert!(o.status.success());
        layers.push(t);
    }
    let archive = env.dir.path().join("deep.tar");
    let id = oci_archive(
        env.dir.path(),
        &archive,
        "localhost/deep:1",
        &layers,
        &["sh"],
    );
    let a = archive.display().to_string();
    ok(&env.berthd(&["image", "load", "-i", &a]));
    assert_eq!(env.inspect("localhost/deep:1")["Id"], id.as_str());
    // 129 committed layer snapshots.
    assert_eq!(env.snapshot_dirs(), 129);
    let cg = format!("/{}/deep", env.cg);
    let o = env.mgr(&[
        "run",
        "--image",
        "localhost/deep:1",
        "--cgroup",
        &cg,
        "--rm",
        "deep",
        "sh",
        "-c",
        "ls /layers | wc -l; cat /layers/l127; test -e /layers/l0 || echo l0-hidden",
    ]);
    assert_eq!(
        text(&o.stdout),
        "127\n127\nl0-hidden\n",
        "{}",
        text(&o.stderr)
    );
}

/// A name that moves to another image leaves the old one dangling (<none>); prune removes it
/// and its blobs and snapshots, and keeps everything the named image needs.
#[test]
fn dangling_images_are_pruned() {
    if !need_root("dangling_images_are_pruned") {
        return;
    }
    let env = Env::new("img-dangling");
    let first = env.busybox_image("localhost/app:1");
    let extra = env.dir.path().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("v2"), "two\n").unwrap();
    let t = env.dir.path().join("v2.tar");
    let o = Command::new("tar")
        .arg("-C")
        .arg(&extra)
        .arg("-cf")
        .arg(&t)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success());
    let ts = t.display().to_string();
    let second = ok(&env.berthd(&["image", "import", &ts, "localhost/app:1"]))
        .trim()
        .to_string();
    assert_ne!(first, second);
    let ls = ok(&env.berthd(&["image", "ls"]));
    assert!(ls.contains("<none>") && ls.contains(&first[7..19]), "{ls}");
    let before = env.blobs().len();
    let prune = ok(&env.berthd(&["image", "prune"]));
    assert!(prune.contains(&first), "{prune}");
    let ls = ok(&env.berthd(&["image", "ls"]));
    assert!(!ls.contains("<none>"), "{ls}");
    assert_eq!(
        env.blobs().len(),
        before - 3,
        "manifest, config and layer of the old image"
    );
    assert_eq!(env.inspect("localhost/app:1")["Id"], second.as_str());
    // What is left still runs.
    let cg = format!("/{}/app", env.cg);
    let o = env.mgr(&[
        "run",
        "--image",
        "localhost/app:1",
        "--cgroup",
        &cg,
        "--rm",
        "app",
        "/bin/sh",
        "-c",
        "true",
    ]);
    // The v2 image has no shell: the run fails to exec, which proves its own layer is used.
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o.stderr).contains("sh"), "{}", text(&o.stderr));
}

/// One request the proxy saw.
#[derive(Clone, Debug)]
struct Seen {
    host: String,
    method: String,
    path: String,
    range: Option<String>,
    authorization: bool,
}

#[derive(Default)]
struct ProxyState {
    seen: Vec<Seen>,
    /// Cut the body of the first full GET of this blob after half of it.
    cut_blob: Option<String>,
    cut_done: bool,
    /// Answer blob GETs on 127.0.0.1 with a redirect to http://localhost:<port> (another
    /// host), where this header is added before forwarding (a signed storage URL).
    redirect_with_auth: Option<String>,
    /// Send blob bodies larger than this only so far, then stall (a hung download).
    stall_blobs_after: Option<usize>,
}

/// A one-request-per-connection HTTP proxy in front of a registry, for fault injection.
struct Proxy {
    port: u16,
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        // Also listen on ::1? No: "localhost" resolves to 127.0.0.1 first here.
        let state = std::sync::Arc::new(std::sync::Mutex::new(ProxyState::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { break };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = proxy_one(c, upstream, port, &st);
                });
            }
        });
        Proxy { port, state }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

fn proxy_one(
    mut c: TcpStream,
    upstream: u16,
    port: u16,
    st: &std::sync::Mutex<ProxyState>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if c.read(&mut b)? == 0 {
            return Ok(());
        }
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("").to_string();
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone());
    let host = get("host").unwrap_or_default();
    let seen = Seen {
        host: host.clone(),
        method: method.clone(),
        path: path.clone(),
        range: get("range"),
        authorization: get("authorization").is_some(),
    };
    let (cut, redirect_auth, stall) = {
        let mut s = st.lock().unwrap();
        s.seen.push(seen.clone());
        let cut = match &s.cut_blob {
            Some(d)
                if !s.cut_done
                    && method == "GET"
                    && path.contains(&format!("/blobs/{d}"))
                    && seen.range.is_none() =>
            {
                s.cut_done = true;
                true
            }
            _ => false,
        };
        let stall = s
            .stall_blobs_after
            .filter(|_| method == "GET" && path.contains("/blobs/sha256:"));
        (cut, s.redirect_with_auth.clone(), stall)
    };
    let mut extra_auth = None;
    if let Some(auth) = &redirect_auth {
        if method == "GET" && path.contains("/blobs/sha256:") {
            if host.starts_with("127.0.0.1") {
                let resp = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://localhost:{port}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                return c.write_all(resp.as_bytes());
            }
            extra_auth = Some(auth.clone());
        }
    }
    // Forward with Connection: close (one request per connection).
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut req = format!("{first}\r\n");
    for (k, v) in &headers {
        if k == "connection" || (k == "authorization" && extra_auth.is_some()) {
            continue;
        }
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(a) = &extra_auth {
        req.push_str(&format!("authorization: {a}\r\n"));
    }
    req.push_str("connection: close\r\n\r\n");
    up.write_all(req.as_bytes())?;
    if let Some(len) = get("content-length").and_then(|l| l.parse::<u64>().ok()) {
        std::io::copy(&mut (&mut c).take(len), &mut up)?;
    }
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    if let Some(n) = stall {
        if let Some(i) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            if resp.len() - (i + 4) > n {
                c.write_all(&resp[..i + 4 + n])?;
                std::thread::sleep(Duration::from_secs(60));
                return Ok(());
            }
        }
    }
    if cut {
        if let Some(i) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            let body = resp.len() - (i + 4);
            c.write_all(&resp[..i + 4 + body / 2])?;
            return Ok(()); // drop the connection mid-body
        }
    }
    c.write_all(&resp)
}

/// A connection broken in the middle of a layer: the pull resumes with a Range request from
/// where the ingest stands and completes, verified.
#[test]
fn truncated_download_resumes() {
    if !need_root("truncated_download_resumes") {
        return;
    }
    let env = Env::new("img-trunc");
    let reg = Registry::start(env.dir.path(), None);
    let name = format!("{}/trunc/busybox:1", reg.host());
    env.busybox_image(&name);
    ok(&env.berthd(&["image", "push", &name]));
    let mdigest = env.inspect(&name)["Descriptor"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.root().join("content/blobs/sha256").join(&mdigest[7..])).unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&env.berthd(&["image", "rm", &name]));
    let proxy = Proxy::start(reg.port);
    proxy.state.lock().unwrap().cut_blob = Some(layer.clone());
    let via = format!("127.0.0.1:{}/trunc/busybox:1", proxy.port);
    ok(&env.berthd(&["image", "pull", &via]));
    let gets: Vec<Seen> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.contains(&format!("/blobs/{layer}")))
        .collect();
    assert!(gets.len() >= 2, "{gets:?}");
    let resumed = gets[1].range.clone().unwrap_or_default();
    assert!(
        resumed.starts_with("bytes=") && !resumed.starts_with("bytes=0-"),
        "resumed from the ingest's offset: {gets:?}"
    );
    assert_eq!(env.ingests(), 0);
    assert!(env.blobs().contains(&layer[7..].to_string()));
}

/// Credentials are not sent to another host when the registry redirects a blob download
/// (to storage, as registries do).
#[test]
fn credentials_do_not_follow_redirects_to_other_hosts() {
    if !need_root("credentials_do_not_follow_redirects_to_other_hosts") {
        return;
    }
    let env = Env::new("img-redirect");
    let reg = Registry::start(env.dir.path(), Some(("berth", "s3cret")));
    let proxy = Proxy::start(reg.port);
    let via = format!("127.0.0.1:{}", proxy.port);
    env.docker_login(&via, "berth", "s3cret");
    let name = format!("{via}/redir/busybox:1");
    env.busybox_image(&name);
    ok(&env.berthd(&["image", "push", &name]));
    ok(&env.berthd(&["image", "rm", &name]));
    proxy.state.lock().unwrap().redirect_with_auth =
        Some(format!("Basic {}", base64("berth:s3cret")));
    ok(&env.berthd(&["image", "pull", &name]));
    let seen = proxy.seen();
    let redirected: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.host.starts_with("localhost"))
        .collect();
    assert!(
        !redirected.is_empty(),
        "blob downloads were redirected: {seen:?}"
    );
    assert!(
        redirected.iter().all(|s| !s.authorization),
        "credentials went to another host: {redirected:?}"
    );
    assert!(
        seen.iter()
            .any(|s| s.host.starts_with("127.0.0.1") && s.authorization),
        "credentials were used on the registry itself"
    );
}

/// A raw ustar header + data (names the tar tool would refuse).
fn raw_tar_entry(name: &str, kind: u8, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[148..156].copy_from_slice(b"        ");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// Images whose layers try to escape are refused at unpack, by name, and leave nothing: no
/// image record, no snapshot, nothing outside the store; a prune then removes their blobs.
#[test]
fn malicious_layers_are_refused_end_to_end() {
    if !need_root("malicious_layers_are_refused_end_to_end") {
        return;
    }
    let env = Env::new("img-evil");
    let victim = env.dir.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    let v = victim.display().to_string();
    let cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
        (
            "dotdot",
            vec![raw_tar_entry(
                "../../../../../../../../tmp/evil",
                b'0',
                "",
                b"x",
            )],
            "..",
        ),
        (
            "absolute",
            vec![raw_tar_entry("/etc/evil", b'0', "", b"x")],
            "absolute",
        ),
        (
            "symlink-then-write",
            vec![
                raw_tar_entry("out", b'2', &v, b""),
                raw_tar_entry("out/evil", b'0', "", b"x"),
            ],
            "",
        ),
        (
            "hardlink-out",
            vec![raw_tar_entry("h", b'1', "../../../../etc/passwd", b"")],
            "hard link",
        ),
        (
            "device",
            vec![raw_tar_entry("usr/kmsg", b'3', "", b"")],
            "device",
        ),
        (
            "whiteout-escape",
            vec![raw_tar_entry("a/.wh..", b'0', "", b"")],
            "whiteout",
        ),
    ];
    for (tag, entries, needle) in cases {
        let layer = env.dir.path().join(format!("{tag}.tar"));
        let mut t: Vec<u8> = entries.concat();
        t.extend_from_slice(&[0u8; 1024]);
        std::fs::write(&layer, t).unwrap();
        let archive = env.dir.path().join(format!("{tag}-image.tar"));
        let name = format!("localhost/evil/{tag}:1");
        oci_archive(env.dir.path(), &archive, &name, &[layer], &["sh"]);
        let a = archive.display().to_string();
        let o = env.berthd(&["image", "load", "-i", &a]);
        let err = text(&o.stderr);
        if needle.is_empty() {
            // Contained rather than refused: whatever happened stayed inside the layer.
            let _ = env.berthd(&["image", "rm", &name]);
        } else {
            assert!(!o.status.success(), "{tag}: loaded");
            assert!(
                err.contains(needle) && err.contains("layer"),
                "{tag}: {err}"
            );
            assert!(
                !env.berthd(&["image", "inspect", &name]).status.success(),
                "{tag}: image kept"
            );
        }
        assert_eq!(
            std::fs::read_dir(&victim).unwrap().count(),
            0,
            "{tag}: wrote outside"
        );
        assert!(
            !Path::new("/tmp/evil").exists() && !Path::new("/etc/evil").exists(),
            "{tag}"
        );
    }
    ok(&env.berthd(&["image", "prune"]));
    assert!(env.blobs().is_empty(), "{:?}", env.blobs());
    assert_eq!(env.snapshot_dirs(), 0);
    assert_eq!(env.ingests(), 0);
}

/// Pushing an image to a second repository of the same registry mounts its blobs from the
/// first instead of uploading them again.
#[test]
fn push_mounts_blobs_across_repositories() {
    if !need_root("push_mounts_blobs_across_repositories") {
        return;
    }
    let env = Env::new("img-mount");
    let reg = Registry::start(env.dir.path(), None);
    let a = format!("{}/one/busybox:1", reg.host());
    let b = format!("{}/two/busybox:1", reg.host());
    env.busybox_image(&a);
    ok(&env.berthd(&["image", "push", &a]));
    ok(&env.berthd(&["image", "tag", &a, &b]));
    let out = ok(&env.berthd(&["image", "push", &b]));
    assert!(
        out.contains("Mounted from one/busybox")
            || out.contains(&format!("Mounted from {}/one/busybox", reg.host())),
        "{out}"
    );
    assert!(!out.contains(": Pushed"), "{out}");
    ok(&env.berthd(&["image", "rm", &a]));
    ok(&env.berthd(&["image", "rm", &b]));
    ok(&env.berthd(&["image", "pull", &b]));
}

/// `export`: the container's filesystem as a tar (image layers plus its own changes, deletions
/// applied), from a stopped container (a read-only view of its snapshot) and from a running
/// one (its live rootfs); the export imports as an image that runs with the same files.
#[test]
fn export_container_filesystem() {
    if !need_root("export_container_filesystem") {
        return;
    }
    let env = Env::new("img-export");
    env.busybox_image("localhost/base:1");
    let cg = format!("/{}/e1", env.cg);
    let o = env.mgr(&[
        "run",
        "--image",
        "localhost/base:1",
        "--cgroup",
        &cg,
        "e1",
        "sh",
        "-c",
        "echo mine > /exported; rm /etc/group",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // Entry names, one a line, without a leading "./".
    let list = |tar: &Path| -> String {
        let o = Command::new("tar").arg("-tf").arg(tar).output().unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
            .lines()
            .map(|l| format!("{}\n", l.trim_start_matches("./")))
            .collect()
    };
    let stopped = env.dir.path().join("stopped.tar");
    let s = stopped.display().to_string();
    ok(&env.mgr(&["export", "-o", &s, "e1"]));
    let l = list(&stopped);
    assert!(
        l.contains("\nexported\n") && l.contains("\nbin/busybox\n"),
        "{l}"
    );
    assert!(
        l.contains("\netc/passwd\n") && !l.contains("etc/group"),
        "deletion applied: {l}"
    );
    assert!(
        mounts_containing(&env.dir.path().display().to_string()).is_empty(),
        "view unmounted"
    );
    // Running: from the live rootfs.
    let cg2 = format!("/{}/e2", env.cg);
    ok(&env.mgr(&[
        "run",
        "-d",
        "--image",
        "localhost/base:1",
        "--cgroup",
        &cg2,
        "e2",
        "sh",
        "-c",
        "echo live > /live; sleep 1000",
    ]));
    let running = env.dir.path().join("running.tar");
    let r = running.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        ok(&env.mgr(&["export", "-o", &r, "e2"]));
        if list(&running).contains("\nlive\n") || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(list(&running).contains("\nlive\n"));
    ok(&env.mgr(&["rm", "-f", "e2"]));
    // The export is an image again.
    ok(&env.berthd(&["image", "import", &s, "localhost/exported:1"]));
    let cg3 = format!("/{}/e3", env.cg);
    let o = env.mgr(&[
        "run",
        "--image",
        "localhost/exported:1",
        "--cgroup",
        &cg3,
        "--rm",
        "e3",
        "sh",
        "-c",
        "cat /exported; test -e /etc/group || echo no-group",
    ]);
    assert_eq!(text(&o.stdout), "mine\nno-group\n", "{}", text(&o.stderr));
    ok(&env.mgr(&["rm", "e1"]));
}

fn base64url(data: &[u8]) -> String {
    let mut out = String::new();
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn base64_std(data: &[u8]) -> String {
    let mut s = base64url(data).replace('-', "+").replace('_', "/");
    while !s.len().is_multiple_of(4) {
        s.push('=');
    }
    s
}

/// A token server for docker-registry's `auth: token`: checks basic credentials, grants the
/// requested scopes, signs RS256 JWTs (x5c: a self-signed certificate) with openssl.
struct TokenServer {
    port: u16,
    dir: PathBuf,
    requests: std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>,
}

impl TokenServer {
    fn start(dir: &Path, user: &'static str, pass: &'static str) -> TokenServer {
        let dir = dir.join("token");
        std::fs::create_dir_all(&dir).unwrap();
        let o = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=berth-test-token",
            ])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl: {}", text(&o.stderr));
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(dir.join("cert.pem"))
            .output()
            .unwrap()
            .stdout;
        let x5c = base64_std(&der);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (reqs, key) = (requests.clone(), dir.join("key.pem"));
        let good = format!("Basic {}", base64(&format!("{user}:{pass}")));
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { break };
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if c.read(&mut b).unwrap_or(0) == 0 {
                        break;
                    }
                    head.push(b[0]);
                }
                let h = String::from_utf8_lossy(&head).into_owned();
                let path = h.split(' ').nth(1).unwrap_or("").to_string();
                let authed = h.lines().any(|l| {
                    l.to_ascii_lowercase().starts_with("authorization:") && l[14..].trim() == good
                });
                reqs.lock().unwrap().push((path.clone(), authed));
                if !authed {
                    let _ = c.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
                let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
                let mut access = Vec::new();
                for kv in query.split('&') {
                    if let Some(v) = kv.strip_prefix("scope=") {
                        let v = v
                            .replace("%3A", ":")
                            .replace("%2C", ",")
                            .replace("%2F", "/");
                        let parts: Vec<&str> = v.splitn(3, ':').collect();
                        if parts.len() == 3 {
                            access.push(serde_json::json!({
                                "type": parts[0], "name": parts[1],
                                "actions": parts[2].split(',').collect::<Vec<_>>(),
                            }));
                        }
                    }
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
                let claims = serde_json::json!({
                    "iss": "berth-test", "sub": user, "aud": "berth-registry",
                    "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()),
                    "access": access,
                });
                let signing = format!(
                    "{}.{}",
                    base64url(header.to_string().as_bytes()),
                    base64url(claims.to_string().as_bytes())
                );
                let mut sign = Command::new("openssl")
                    .args(["dgst", "-sha256", "-sign"])
                    .arg(&key)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                sign.stdin
                    .take()
                    .unwrap()
                    .write_all(signing.as_bytes())
                    .unwrap();
                let sig = sign.wait_with_output().unwrap().stdout;
                let token = format!("{signing}.{}", base64url(&sig));
                let body = serde_json::json!({"token": token, "expires_in": 300}).to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = c.write_all(resp.as_bytes());
            }
        });
        TokenServer {
            port,
            dir,
            requests,
        }
    }
}

/// A registry behind bearer tokens (the WWW-Authenticate challenge flow): the token server
/// gets the basic credentials from the docker config, the registry only ever sees tokens.
#[test]
fn bearer_token_registry() {
    if !need_root("bearer_token_registry") {
        return;
    }
    let env = Env::new("img-bearer");
    let ts = TokenServer::start(env.dir.path(), "berth", "t0ken");
    let port = free_port();
    let storage = env.dir.path().join("registry-bearer");
    std::fs::create_dir_all(&storage).unwrap();
    let cfg = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: berth-registry\n    issuer: berth-test\n    rootcertbundle: {}\n",
        storage.display(),
        ts.port,
        ts.dir.join("cert.pem").display()
    );
    std::fs::write(storage.join("config.yml"), cfg).unwrap();
    let mut reg = Command::new("docker-registry")
        .arg("serve")
        .arg(storage.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(storage.join("registry.log")).unwrap())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _k = Kill(&mut reg);
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "registry did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let host = format!("127.0.0.1:{port}");
    let name = format!("{host}/tok/busybox:1");
    env.busybox_image(&name);
    let o = env.berthd(&["image", "push", &name]);
    assert!(!o.status.success(), "pushed without credentials");
    assert!(
        text(&o.stderr).contains("unauthorized"),
        "{}",
        text(&o.stderr)
    );
    env.docker_login(&host, "berth", "t0ken");
    ok(&env.berthd(&["image", "push", &name]));
    ok(&env.berthd(&["image", "rm", &name]));
    ok(&env.berthd(&["image", "pull", &name]));
    let reqs = ts.requests.lock().unwrap().clone();
    assert!(
        reqs.iter().any(|(p, a)| *a
            && (p.contains("scope=repository%3Atok%2Fbusybox%3Apull%2Cpush")
                || p.contains("repository:tok/busybox:pull,push"))),
        "{reqs:?}"
    );
    let _ = std::fs::read_to_string(storage.join("registry.log"));
}
