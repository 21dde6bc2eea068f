//! Log drivers through the docker CLI: json-file rotation with compression, `local`
//! (framed records, rotated and compressed), syslog to loopback servers the test runs (UDP,
//! TCP, a unix socket; RFC 3164 and 5424, tags, facilities) with `docker logs` reading the
//! local copy, journald refused where the host has no journal, daemon.json defaults.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use berth_tests::stack::*;
use berth_tests::*;

fn inspect(s: &Stack, id: &str, f: &str) -> String {
    ok(&s.docker(&["inspect", "-f", f, id])).trim().to_string()
}

/// Run `script` to its end in a container with `args`; its id.
fn run_to_end(s: &Stack, args: &[&str], script: &str) -> String {
    let id = ok(&s.docker(&[&["run", "-d"][..], args, &["busybox", "sh", "-c", script]].concat()))
        .trim()
        .to_string();
    s.until("the container's exit", || {
        inspect(s, &id, "{{.State.Status}}") == "exited"
    });
    id
}

fn numbered(log: &str, n: u32, ext: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{log}.{n}{ext}"))
}

/// The lines `docker logs` shows are the newest ones, in order, none lost between files.
fn contiguous_tail(out: &str, last: usize) {
    let nums: Vec<usize> = out
        .lines()
        .map(|l| l.trim_start_matches("line ").parse().unwrap())
        .collect();
    assert_eq!(*nums.last().unwrap(), last, "{out}");
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a gap in {nums:?}");
    }
}

#[test]
fn json_file_and_local_rotate_compress_and_read_back() {
    if !need_root("json_file_and_local_rotate_compress_and_read_back") {
        return;
    }
    let s = Stack::busybox("api-logs");
    let script = "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done";
    // json-file: rotated at 2 KiB, three files, the rotated ones gzip'd.
    let id = run_to_end(
        &s,
        &[
            "--log-opt",
            "max-size=2k",
            "--log-opt",
            "max-file=3",
            "--log-opt",
            "compress=true",
        ],
        script,
    );
    let log = inspect(&s, &id, "{{.LogPath}}");
    assert!(log.ends_with("-json.log"), "{log}");
    assert!(numbered(&log, 1, ".gz").exists() && numbered(&log, 2, ".gz").exists());
    assert!(!numbered(&log, 1, "").exists() && !numbered(&log, 3, ".gz").exists());
    assert!(std::fs::metadata(&log).unwrap().len() <= 2048);
    let out = ok(&s.docker(&["logs", &id]));
    contiguous_tail(&out, 299);
    assert!(
        out.lines().count() > 40,
        "the compressed files are read too: {out}"
    );
    // local: Docker's framed records, its defaults (compressed), rotation by max-size.
    let id = run_to_end(
        &s,
        &[
            "--log-driver",
            "local",
            "--log-opt",
            "max-size=2k",
            "--log-opt",
            "max-file=2",
        ],
        &format!("{script}; echo oops >&2"),
    );
    assert_eq!(inspect(&s, &id, "{{.HostConfig.LogConfig.Type}}"), "local");
    let log = inspect(&s, &id, "{{.LogPath}}");
    let head = std::fs::read(&log).unwrap();
    assert!(
        head.len() > 8 && head[0] != b'{',
        "framed records, not JSON"
    );
    assert!(numbered(&log, 1, ".gz").exists() && !numbered(&log, 2, ".gz").exists());
    let o = s.docker(&["logs", &id]);
    assert_eq!(text(&o.stderr), "oops\n");
    contiguous_tail(&text(&o.stdout), 299);
    let o = s.docker(&["logs", "--timestamps", "--tail", "2", &id]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(
        out.ends_with("Z line 299\n") && err.ends_with("Z oops\n"),
        "{out}{err}"
    );
}

#[test]
fn syslog_to_loopback_servers_with_a_local_copy() {
    if !need_root("syslog_to_loopback_servers_with_a_local_copy") {
        return;
    }
    let s = Stack::busybox("api-syslog");
    // UDP, RFC 5424, the container's name as tag, facility local3.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let addr = format!("syslog-address=udp://{}", udp.local_addr().unwrap());
    let id = run_to_end(
        &s,
        &[
            "--name",
            "talker",
            "--log-driver",
            "syslog",
            "--log-opt",
            &addr,
            "--log-opt",
            "syslog-format=rfc5424",
            "--log-opt",
            "tag={{.Name}}",
            "--log-opt",
            "syslog-facility=local3",
        ],
        "echo hello; echo bad >&2",
    );
    let mut got = Vec::new();
    let mut b = [0u8; 2048];
    while got.len() < 2 {
        let n = udp.recv(&mut b).expect("a syslog message");
        got.push(String::from_utf8_lossy(&b[..n]).into_owned());
    }
    got.sort();
    // local3 = 19: 19*8+3 (err) = 155, 19*8+6 (info) = 158.
    assert!(
        got[0].starts_with("<155>1 ") && got[0].ends_with(" talker - bad"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("<158>1 ")
            && got[1].contains(" talker ")
            && got[1].ends_with(" - hello"),
        "{got:?}"
    );
    // docker logs reads the local copy.
    let o = s.docker(&["logs", &id]);
    assert_eq!(
        (text(&o.stdout).as_str(), text(&o.stderr).as_str()),
        ("hello\n", "bad\n")
    );
    // TCP: one message a line, RFC 3164 by default.
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("syslog-address=tcp://{}", tcp.local_addr().unwrap());
    let reader = std::thread::spawn(move || {
        let (conn, _) = tcp.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut line = String::new();
        BufReader::new(conn).read_line(&mut line).unwrap();
        line
    });
    let tid = run_to_end(
        &s,
        &["--log-driver", "syslog", "--log-opt", &addr],
        "echo over tcp",
    );
    let line = reader.join().unwrap();
    // <PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG, the tag the container's short id.
    assert!(
        line.starts_with("<30>") && line.ends_with(": over tcp\n"),
        "{line:?}"
    );
    assert!(line.contains(&format!(" {}[", &tid[..12])), "{line:?}");
    // A unix datagram socket.
    let dir = TempDir::new("api-syslog-sock");
    let sock = dir.path().join("log");
    let server = UnixDatagram::bind(&sock).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = format!("syslog-address=unixgram://{}", sock.display());
    let uid = run_to_end(
        &s,
        &["--log-driver", "syslog", "--log-opt", &addr],
        "echo via unix",
    );
    let n = server.recv(&mut b).unwrap();
    let m = String::from_utf8_lossy(&b[..n]).into_owned();
    assert!(
        m.starts_with("<30>")
            && m.contains(&format!(" {}[", &uid[..12]))
            && m.ends_with("]: via unix"),
        "{m}"
    );
    // Refused, named: a bad format, address, facility, or an option berthd lacks.
    for (opt, want) in [
        ("syslog-format=rfc9999", "Invalid syslog format"),
        ("syslog-address=ftp://x", "unsupported scheme"),
        ("syslog-facility=local9", "invalid syslog facility"),
        ("syslog-tls-cert=/x", "not supported"),
    ] {
        let o = s.docker(&[
            "run",
            "--rm",
            "--log-driver",
            "syslog",
            "--log-opt",
            opt,
            "busybox",
            "true",
        ]);
        assert!(!o.status.success(), "{opt} was accepted");
        assert!(text(&o.stderr).contains(want), "{opt}: {}", text(&o.stderr));
    }
    if !Path::new("/run/systemd/journal/socket").exists() {
        let o = s.docker(&["run", "--rm", "--log-driver", "journald", "busybox", "true"]);
        refused(&o, "journald is not enabled on this host");
    }
}

#[test]
fn daemon_json_log_driver_local_is_the_default() {
    if !need_root("daemon_json_log_driver_local_is_the_default") {
        return;
    }
    let s = Stack::with_config(
        "api-logdef",
        r#"{"registry-fallback": false, "log-driver": "local", "log-opts": {"max-size": "1k", "max-file": "2"}}"#,
    );
    s.import_busybox();
    let id = run_to_end(
        &s,
        &[],
        "i=0; while [ $i -lt 100 ]; do echo line $i; i=$((i+1)); done",
    );
    assert_eq!(inspect(&s, &id, "{{.HostConfig.LogConfig.Type}}"), "local");
    let log = inspect(&s, &id, "{{.LogPath}}");
    assert!(
        numbered(&log, 1, ".gz").exists(),
        "the daemon's max-size applies"
    );
    contiguous_tail(&ok(&s.docker(&["logs", &id])), 99);
    // A container naming another driver does not get the daemon's options for it.
    let id = run_to_end(&s, &["--log-driver", "json-file"], "echo plain");
    assert_eq!(ok(&s.docker(&["logs", &id])), "plain\n");
    assert!(!numbered(&inspect(&s, &id, "{{.LogPath}}"), 1, "").exists());
}
