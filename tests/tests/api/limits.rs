//! The archive bounds of daemon.json (`archive-max-size`, `archive-max-entries`): every way a
//! client hands berthd an archive or a download is refused past them, with an error naming
//! the setting, and leaves nothing behind.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use berth_tests::stack::*;
use berth_tests::*;

/// A tar of `n` empty files under `dir/`.
fn many_files(n: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..n {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, format!("dir/f{i}"), std::io::empty())
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// A tar holding one file of `mib` MiB of zeros.
fn big_file(mib: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size((mib << 20) as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, "zeros", std::io::repeat(0).take((mib << 20) as u64))
        .unwrap();
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The docker CLI with `input` on its stdin.
fn docker_stdin(s: &Stack, input: &[u8], args: &[&str]) -> std::process::Output {
    let mut c = Command::new("timeout")
        .arg("60")
        .arg("docker")
        .args(args)
        .client_of(s)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // (berthd may refuse before it has read everything.)
    let _ = c.stdin.take().unwrap().write_all(input);
    c.wait_with_output().unwrap()
}

/// Serve `body` once per connection on a loopback port, for `ADD <url>`.
fn serve(body: Vec<u8>) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten().take(4) {
            let mut c = c;
            let mut req = [0u8; 4096];
            let _ = c.read(&mut req);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = c.write_all(&body);
        }
    });
    port
}

fn leftovers(s: &Stack) -> Vec<String> {
    let tmp = s.dir.path().join("data/tmp");
    let mut left: Vec<String> = std::fs::read_dir(&tmp)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    left.extend(mounts_containing(&tmp.display().to_string()));
    left
}

/// With a 6 MiB / 1000-entry bound: import, load, cp and build contexts past either bound
/// are refused naming the setting; a gzip bomb (8 MiB of zeros in a few KiB) is caught
/// while it is inflated; `ADD <url>` of a larger body is refused; the container and the
/// image store are unchanged and nothing is left in the data root's tmp.
#[test]
fn archive_limits_refuse_and_leave_nothing() {
    if !need_root("archive_limits_refuse_and_leave_nothing") {
        return;
    }
    let s = Stack::with_config(
        "api-limits",
        r#"{"registry-fallback": false, "archive-max-size": "6m", "archive-max-entries": 1000}"#,
    );
    // Within the bounds: busybox (about 400 entries, 2 MiB) imports.
    s.import_busybox();
    let images_before = ok(&s.docker(&["images", "-q", "--no-trunc"]));
    let bomb = gzip(&big_file(8));
    assert!(bomb.len() < 64 << 10, "the bomb is small compressed");
    let many = many_files(1500);

    // import: inflated past the size bound, and past the entry bound.
    let o = docker_stdin(&s, &bomb, &["import", "-", "bomb:1"]);
    refused(&o, "archive-max-size");
    let o = docker_stdin(&s, &many, &["import", "-", "many:1"]);
    refused(&o, "archive-max-entries");

    // load: a large archive is refused while it is received, a many-entry one unpacking.
    let o = docker_stdin(&s, &big_file(8), &["load"]);
    refused(&o, "archive-max-size");
    let o = docker_stdin(&s, &many, &["load"]);
    refused(&o, "archive-max-entries");
    assert_eq!(
        ok(&s.docker(&["images", "-q", "--no-trunc"])),
        images_before
    );

    // cp into a running container: the bomb and the many-entry tar; /tmp is left as it was.
    ok(&s.docker(&["run", "-d", "--name", "c1", "busybox", "sleep", "1000"]));
    ok(&s.docker(&["exec", "c1", "touch", "/tmp/kept"]));
    let o = docker_stdin(&s, &bomb, &["cp", "-", "c1:/tmp"]);
    refused(&o, "archive-max-size");
    let o = docker_stdin(&s, &many, &["cp", "-", "c1:/tmp"]);
    refused(&o, "archive-max-entries");
    assert_eq!(ok(&s.docker(&["exec", "c1", "ls", "/tmp"])), "kept\n");
    // And a copy within the bounds still works.
    let o = docker_stdin(&s, &many_files(10), &["cp", "-", "c1:/tmp"]);
    ok(&o);
    assert_eq!(
        ok(&s.docker(&["exec", "c1", "ls", "/tmp/dir"]))
            .lines()
            .count(),
        10
    );

    // build: a context of too many files; ADD of a download larger than the bound.
    let ctx = s.dir.path().join("ctx-many");
    std::fs::create_dir_all(ctx.join("d")).unwrap();
    for i in 0..1200 {
        std::fs::write(ctx.join(format!("d/f{i}")), "").unwrap();
    }
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY d /d\n").unwrap();
    let o = s.build(&ctx, &["-t", "many:ctx"]);
    refused(&o, "archive-max-entries");
    let port = serve(vec![b'x'; 7 << 20]);
    let ctx = s.dir.path().join("ctx-add");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox\nADD http://127.0.0.1:{port}/big /big\n"),
    )
    .unwrap();
    let o = s.build(&ctx, &["-t", "add:big"]);
    assert!(!o.status.success(), "the ADD of 7 MiB was accepted");
    let out = text(&o.stdout) + &text(&o.stderr);
    assert!(out.contains("archive-max-size"), "{out}");
    assert_eq!(
        ok(&s.docker(&["images", "-q", "--no-trunc"])),
        images_before
    );

    let left = leftovers(&s);
    assert!(left.is_empty(), "left in the data root's tmp: {left:?}");
    ok(&s.docker(&["rm", "-f", "c1"]));
}
