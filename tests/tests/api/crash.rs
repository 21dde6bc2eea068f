//! kill -9 of berthd and the manager in the middle of operations that hold state on disk
//! (load, cp, commit): the next start removes what they left, resumes a container a commit
//! had paused, and the operation can be retried, with the store checked afterwards.
//! (Build: `build::build_interrupted_by_kill9_leaves_nothing_mounted`; pull:
//! `images::kill9_during_pull_is_reconciled`.)

use std::io::Write;
use std::process::{Child, Command, Stdio};

use berth_tests::stack::*;
use berth_tests::*;

/// A docker CLI command whose stdin is fed `first`, then held open.
fn half_fed(s: &Stack, first: &[u8], args: &[&str]) -> Child {
    let mut c = Command::new("docker")
        .args(args)
        .client_of(s)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    c.stdin.as_mut().unwrap().write_all(first).unwrap();
    c
}

fn tmp_entries(s: &Stack) -> Vec<String> {
    std::fs::read_dir(s.dir.path().join("data/tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn restart(s: &mut Stack, mut client: Child) {
    s.kill9_daemons();
    let _ = client.kill();
    let _ = client.wait();
    s.start_manager();
    s.start_berthd();
    let left = tmp_entries(s);
    assert!(left.is_empty(), "left in the data root's tmp: {left:?}");
    let tmp = s.dir.path().join("data/tmp");
    let mounted = mounts_containing(&tmp.display().to_string());
    assert!(mounted.is_empty(), "still mounted: {mounted:?}");
}

fn paused(s: &Stack, name: &str) -> bool {
    let (_, body) = s.curl("GET", &format!("/containers/{name}/json"), None);
    serde_json::from_str::<serde_json::Value>(&body)
        .map(|v| v["State"]["Paused"] == true)
        .unwrap_or(false)
}

#[test]
fn kill9_during_load_cp_and_commit_then_retry() {
    if !need_root("kill9_during_load_cp_and_commit_then_retry") {
        return;
    }
    let mut s = Stack::busybox("api-crash");
    let saved = s.dir.path().join("busybox.tar");
    ok(&s.docker(&["tag", "busybox", "again:1"]));
    ok(&s.docker(&["save", "-o", saved.to_str().unwrap(), "again:1"]));
    ok(&s.docker(&["rmi", "again:1"]));
    let archive = std::fs::read(&saved).unwrap();
    ok(&s.docker(&["run", "-d", "--name", "c1", "busybox", "sleep", "1000"]));

    // load: killed while the archive is received.
    let load = half_fed(&s, &archive[..archive.len() / 2], &["load"]);
    s.until("the load is spooled", || {
        tmp_entries(&s).iter().any(|n| n.starts_with("upload-"))
    });
    restart(&mut s, load);
    let o = s.docker_stdin_file(&saved, &["load"]);
    assert!(ok(&o).contains("again:1"), "{}", text(&o.stdout));
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "again:1", "cat", "/etc/group"])),
        "root:x:0:\nnogroup:x:65534:\n"
    );

    // cp: killed while the archive is received; the container lives on (live restore).
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let body = vec![b'y'; 4 << 20];
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, "copied", &body[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let cp = half_fed(&s, &tar[..1 << 20], &["cp", "-", "c1:/tmp"]);
    s.until("the copy is spooled", || {
        tmp_entries(&s).iter().any(|n| n.starts_with("upload-"))
    });
    restart(&mut s, cp);
    assert_eq!(ok(&s.docker(&["exec", "c1", "ls", "/tmp"])), "");
    let f = s.dir.path().join("copied.tar");
    std::fs::write(&f, &tar).unwrap();
    ok(&s.docker_stdin_file(&f, &["cp", "-", "c1:/tmp"]));
    assert_eq!(
        ok(&s.docker(&["exec", "c1", "wc", "-c", "/tmp/copied"]))
            .split_whitespace()
            .next(),
        Some("4194304")
    );

    // commit: killed while the container is paused for it; the next berthd resumes it.
    ok(&s.docker(&[
        "exec",
        "c1",
        "dd",
        "if=/dev/urandom",
        "of=/big",
        "bs=1M",
        "count=40",
    ]));
    let commit = Command::new("docker")
        .args(["commit", "c1", "big:1"])
        .client_of(&s)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut saw_pause = false;
    for _ in 0..400 {
        if paused(&s, "c1") {
            saw_pause = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    restart(&mut s, commit);
    assert!(
        !paused(&s, "c1"),
        "the container a commit paused was resumed"
    );
    assert_eq!(ok(&s.docker(&["exec", "c1", "echo", "alive"])), "alive\n");
    ok(&s.docker(&["commit", "c1", "big:1"]));
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "big:1", "wc", "-c", "/big"]))
            .split_whitespace()
            .next(),
        Some("41943040")
    );
    assert!(
        saw_pause,
        "the commit was over before it could be interrupted (make /big larger)"
    );
    ok(&s.docker(&["rm", "-f", "c1"]));
}
