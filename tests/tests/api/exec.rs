//! Interactive containers and exec: terminals, attach and detach keys, exit codes.

use berth_tests::stack::*;
use berth_tests::*;

/// The seeds' interactive commands with the real CLI: `run -it` on a terminal (size
/// passed, exit code kept), ctrl-p ctrl-q detach and `attach` back, `exec` in all its
/// forms, `top`, `pause`/`unpause`, `rename`, `restart`.
#[test]
fn docker_cli_interactive_and_exec() {
    if !need_root("docker_cli_interactive_and_exec") {
        return;
    }
    let s = Stack::busybox("api-tty");
    let out = s.docker_tty(
        r"echo hello-$((6*7)); stty size\n|exit 5\n",
        &["run", "-it", "--name", "tty1", "busybox", "sh"],
    );
    assert!(out.contains("hello-42"), "{out}");
    assert!(
        out.contains("30 100"),
        "the terminal size reached the container: {out}"
    );
    assert!(out.contains("exit=5"), "{out}");
    // Detach with ctrl-p ctrl-q, the shell keeps running; attach again and leave it.
    let out = s.docker_tty(
        r"echo one\n|\x10\x11",
        &["run", "-it", "--name", "det", "busybox", "sh"],
    );
    assert!(out.contains("one") && out.contains("exit=0"), "{out}");
    assert_eq!(
        ok(&s.docker(&["inspect", "-f", "{{.State.Status}}", "det"])).trim(),
        "running"
    );
    let out = s.docker_tty(r"echo two\n|exit 4\n", &["attach", "det"]);
    assert!(out.contains("two") && out.contains("exit=4"), "{out}");
    assert_eq!(
        ok(&s.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "det"
        ]))
        .trim(),
        "exited 4"
    );
    // Piped stdin without a terminal: stdin closes at its end.
    let o = s.docker_in("piped\n", &["run", "--rm", "-i", "busybox", "cat"]);
    assert_eq!(text(&o.stdout), "piped\n", "{}", text(&o.stderr));

    // exec: output, exit codes, user, env, workdir, stdin, tty, detached, missing program.
    ok(&s.docker(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]));
    assert_eq!(ok(&s.docker(&["exec", "web", "echo", "hi"])), "hi\n");
    assert_eq!(
        s.docker(&["exec", "web", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    assert_eq!(
        ok(&s.docker(&["exec", "-u", "nobody", "web", "id", "-u"])).trim(),
        "65534"
    );
    assert_eq!(
        ok(&s.docker(&[
            "exec",
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            "web",
            "sh",
            "-c",
            "echo $FOO; pwd"
        ])),
        "bar\n/tmp\n"
    );
    let o = s.docker_in("to-stdin\n", &["exec", "-i", "web", "cat"]);
    assert_eq!(text(&o.stdout), "to-stdin\n");
    let out = s.docker_tty(r"tty; stty size\n|exit 3\n", &["exec", "-it", "web", "sh"]);
    assert!(
        out.contains("/dev/pts/") && out.contains("30 100") && out.contains("exit=3"),
        "{out}"
    );
    ok(&s.docker(&["exec", "-d", "web", "sh", "-c", "echo detached > /tmp/d"]));
    s.until("the detached exec", || {
        s.docker(&["exec", "web", "cat", "/tmp/d"]).status.success()
    });
    let o = s.docker(&["exec", "web", "no-such-program"]);
    assert_eq!(o.status.code(), Some(127), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("no-such-program"),
        "{}",
        text(&o.stderr)
    );
    // A user without privileges still gets the default seccomp profile (installed before
    // the uid changes).
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "-u", "65534:65534", "busybox", "id", "-g"])).trim(),
        "65534"
    );

    // top, pause/unpause, rename, restart.
    let top = ok(&s.docker(&["top", "web"]));
    assert!(top.contains("PID") && top.contains("sleep 1000"), "{top}");
    assert!(
        !top.contains("/sbin/init"),
        "only the container's processes: {top}"
    );
    ok(&s.docker(&["pause", "web"]));
    assert!(ok(&s.docker(&["ps"])).contains("(Paused)"));
    let o = s.docker(&["exec", "web", "true"]);
    assert!(!o.status.success() && text(&o.stderr).contains("paused"));
    ok(&s.docker(&["unpause", "web"]));
    ok(&s.docker(&["rename", "web", "web2"]));
    assert_eq!(
        ok(&s.docker(&["ps", "--format", "{{.Names}}"])).trim(),
        "web2"
    );
    let before = ok(&s.docker(&["inspect", "-f", "{{.State.Pid}}", "web2"]));
    ok(&s.docker(&["restart", "-t", "1", "web2"]));
    let after = ok(&s.docker(&["inspect", "-f", "{{.State.Pid}} {{.State.Status}}", "web2"]));
    assert!(
        after.ends_with("running\n") && !after.starts_with(before.trim()),
        "{after}"
    );
    ok(&s.docker(&["rm", "-f", "web2", "det", "tty1"]));
}

/// An exec whose program is missing exits 127, one whose program cannot run 126 (Docker's
/// codes, told apart by the shim's status code, not by berthd reading messages); a good one
/// exits with its own code.
#[test]
fn exec_exit_codes_of_programs_that_cannot_run() {
    if !need_root("exec_exit_codes_of_programs_that_cannot_run") {
        return;
    }
    let s = Stack::busybox("api-exec-codes");
    let id = ok(&s.docker(&["run", "-d", "busybox", "sleep", "1000"]))
        .trim()
        .to_string();
    let code = |args: &[&str]| {
        let mut a = vec!["exec", id.as_str()];
        a.extend_from_slice(args);
        s.docker(&a).status.code()
    };
    assert_eq!(code(&["/no/such/program"]), Some(127));
    assert_eq!(code(&["/etc/passwd"]), Some(126));
    assert_eq!(code(&["sh", "-c", "exit 5"]), Some(5));
    ok(&s.docker(&["rm", "-f", &id]));
}

/// `docker run` of a program that is missing exits 127, of one that cannot run 126, as with
/// dockerd: the create succeeds (the container is listed as created), the start is a 400
/// naming the program, and the container can be removed.
#[test]
fn run_exit_codes_of_programs_that_cannot_run() {
    if !need_root("run_exit_codes_of_programs_that_cannot_run") {
        return;
    }
    let s = Stack::busybox("api-run-codes");
    let o = s.docker(&["run", "--name", "missing", "busybox", "/no/such/program"]);
    assert_eq!(o.status.code(), Some(127), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("/no/such/program"),
        "{}",
        text(&o.stderr)
    );
    let o = s.docker(&["run", "--name", "noexec", "busybox", "/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126), "{}", text(&o.stderr));
    let (status, body) = s.curl("POST", "/containers/missing/start", None);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("/no/such/program"), "{body}");
    let o = ok(&s.docker(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]));
    assert!(o.contains("missing created"), "{o}");
    ok(&s.docker(&["rm", "missing", "noexec"]));
    assert_eq!(ok(&s.docker(&["ps", "-aq"])), "");
}

/// A hijacked exec whose client sends bytes the daemon never reads (no stdin attached):
/// after the output the client reads a clean end of stream, not a reset (closing a
/// socket with unread input resets the peer; the docker CLI then fails a finished
/// `exec -it` with "connection reset by peer").
#[test]
fn hijacked_stream_ends_cleanly_after_unread_input() {
    use std::io::{Read, Write};
    if !need_root("hijacked_stream_ends_cleanly_after_unread_input") {
        return;
    }
    let s = Stack::busybox("api-linger");
    ok(&s.docker(&["run", "-d", "--name", "lg", "busybox", "sleep", "1000"]));
    let (code, body) = s.curl(
        "POST",
        "/containers/lg/exec",
        Some(br#"{"Cmd": ["sh", "-c", "sleep 0.5; echo done-out"], "AttachStdout": true, "Tty": true}"#),
    );
    assert_eq!(code, 201, "{body}");
    let exec: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = exec["Id"].as_str().unwrap();
    let mut c = std::os::unix::net::UnixStream::connect(s.sock()).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let req_body = br#"{"Detach": false, "Tty": true}"#;
    write!(
        c,
        "POST /v1.45/exec/{id}/start HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {}\r\n\r\n",
        req_body.len()
    )
    .unwrap();
    c.write_all(req_body).unwrap();
    // The 101 first (bytes sent before it would sit in the HTTP server's buffer), then
    // input nobody reads, while the process still runs.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "no answer: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    c.write_all(b"unread input\n").unwrap();
    let end = loop {
        match c.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                // A client slower than the daemon's close (the CLI is): read the end of
                // stream only after it.
                if String::from_utf8_lossy(&got).contains("done-out") {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                }
            }
            Err(e) => break Err(e),
        }
    };
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 101"), "{got}");
    assert!(got.contains("done-out"), "{got}");
    assert!(end.is_ok(), "the stream ended with {end:?}, not EOF: {got}");
    let (_, inspect) = s.curl("GET", &format!("/exec/{id}/json"), None);
    assert!(inspect.contains(r#""ExitCode":0"#), "{inspect}");
}

/// 64 MiB through `docker exec cat` into a reader slower than the container: every byte
/// arrives, in order (an exec's output waits for its client instead of skipping ahead).
#[test]
fn exec_output_reaches_a_slow_reader_whole() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    if !need_root("exec_output_reaches_a_slow_reader_whole") {
        return;
    }
    let s = Stack::busybox("api-exec-slow");
    let dir = s.dir.path().join("big");
    std::fs::create_dir_all(&dir).unwrap();
    // Pseudo-random bytes (xorshift), so a skipped or repeated chunk cannot look right.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..(64usize << 20) / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    std::fs::write(dir.join("data"), &data).unwrap();
    let bind = format!("{}:/d:ro", dir.display());
    ok(&s.docker(&[
        "run", "-d", "--name", "big", "-v", &bind, "busybox", "sleep", "1000",
    ]));
    let mut child = Command::new("docker")
        .args(["exec", "big", "cat", "/d/data"])
        .client_of(&s)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut got = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        // Slow for the first 16 MiB: the container is far ahead meanwhile.
        if got.len() < (16 << 20) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "docker exec: {status}");
    assert_eq!(got.len(), data.len(), "bytes received");
    let first_bad = got.iter().zip(&data).position(|(a, b)| a != b);
    assert_eq!(first_bad, None, "the output differs from the file");
    ok(&s.docker(&["rm", "-f", "big"]));
}

/// Hijack `POST /containers/{name}/attach` (stdout, live): the connection, past the 101.
fn attach_raw(s: &Stack, name: &str) -> std::os::unix::net::UnixStream {
    use std::io::{Read, Write};
    let mut c = std::os::unix::net::UnixStream::connect(s.sock()).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        c,
        "POST /v1.45/containers/{name}/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: berth\r\n\
         Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            c.read(&mut b).unwrap(),
            1,
            "attach: the connection closed early"
        );
        head.push(b[0]);
    }
    assert!(text(&head).starts_with("HTTP/1.1 101"), "{}", text(&head));
    c
}

/// Two clients attached to a container writing 19 MiB (paced, so that a reading client
/// keeps up): one never reads, the other gets every byte in order; the stalled one does not
/// stop the container (it finishes), it is cut off instead of skipped past (its stream
/// ends short), and the log has everything. (A reader that is merely slower than the
/// container by more than the shim's queue is cut off too: see the issue 18 notes.)
#[test]
fn a_stalled_attach_client_does_not_cost_the_other_a_byte() {
    use std::io::Read;
    if !need_root("a_stalled_attach_client_does_not_cost_the_other_a_byte") {
        return;
    }
    let s = Stack::busybox("api-two-attach");
    ok(&s.docker(&[
        "create",
        "--name",
        "chatty",
        "busybox",
        "sh",
        "-c",
        "sleep 1; for i in $(seq 0 25); do seq $((i*100000+1)) $((i*100000+100000)); \
         sleep 0.2; done; echo end-of-output; sleep 1000",
    ]));
    let stalled = attach_raw(&s, "chatty");
    let mut reader = attach_raw(&s, "chatty");
    ok(&s.docker(&["start", "chatty"]));
    let mut out = Vec::new();
    let mut frame = [0u8; 8];
    while !out.ends_with(b"end-of-output\n") {
        if let Err(e) = reader.read_exact(&mut frame) {
            panic!("after {} bytes: {e}", out.len());
        }
        assert_eq!(frame[0], 1, "stdout frames only");
        let n = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
        let at = out.len();
        out.resize(at + n, 0);
        reader.read_exact(&mut out[at..]).expect("a frame body");
    }
    let mut want = Vec::new();
    for i in 1..=2_600_000u32 {
        want.extend_from_slice(format!("{i}\n").as_bytes());
    }
    want.extend_from_slice(b"end-of-output\n");
    assert!(want.len() > 18 << 20);
    assert!(
        out == want,
        "the reading client got {} of {} bytes, or out of order",
        out.len(),
        want.len()
    );
    let logs = s.docker(&["logs", "--tail", "1", "chatty"]);
    assert_eq!(ok(&logs), "end-of-output\n");
    // The stalled client was cut off, not fed a stream with a hole in it.
    let mut stalled = stalled;
    let mut all = Vec::new();
    stalled
        .read_to_end(&mut all)
        .expect("the stalled client's stream ends");
    assert!(
        all.len() < want.len(),
        "the stalled client was neither cut off nor held"
    );
    ok(&s.docker(&["rm", "-f", "chatty"]));
}
