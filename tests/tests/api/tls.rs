//! The TCP listener and its TLS requirement.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::stack::*;
use berth_tests::*;

/// `-H tcp://`: served with TLS only. With --tlsverify the docker CLI connects with a client
/// certificate signed by the CA, and is refused without one; plain TCP is refused at start
/// unless forced.
#[test]
fn tcp_needs_tls() {
    if !need_root("tcp_needs_tls") {
        return;
    }
    let s = Stack::new("api-tls");
    let d = s.dir.path().join("tls");
    std::fs::create_dir_all(&d).unwrap();
    let sh = |script: &str| {
        let o = Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(&d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=test-ca 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout key.pem -out server.csr -subj /CN=127.0.0.1 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 2 -extfile server.ext 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout client-key.pem -out client.csr -subj /CN=client 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\\n' > client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out client.pem -days 2 -extfile client.ext 2>/dev/null");
    let port = free_port();
    let berthd = |extra: &[&str]| {
        Command::new(bin_dir().join("berthd"))
            .arg("--manager")
            .arg(s.dir.path().join("m.sock"))
            .arg("--config-file")
            .arg(s.dir.path().join("daemon.json"))
            .arg("--data-root")
            .arg(s.dir.path().join("data-tls"))
            .arg("-H")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Plain TCP is refused, naming the fix.
    let o = berthd(&[]).wait_with_output().unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("--tlsverify"),
        "{}",
        text(&o.stderr)
    );
    let p = |f: &str| d.join(f).display().to_string();
    let mut child = berthd(&[
        "--tlsverify",
        "--tlscacert",
        &p("ca.pem"),
        "--tlscert",
        &p("cert.pem"),
        "--tlskey",
        &p("key.pem"),
    ]);
    listening(port);
    let docker = |tls: &[String]| {
        Command::new("timeout")
            .args(["30", "docker"])
            .args(tls)
            .args([
                "-H",
                &format!("tcp://127.0.0.1:{port}"),
                "version",
                "-f",
                "{{.Server.Version}}",
            ])
            .env("DOCKER_CONFIG", s.dir.path().join("docker-config"))
            .output()
            .unwrap()
    };
    let with_cert: Vec<String> = vec![
        "--tlsverify".into(),
        format!("--tlscacert={}", p("ca.pem")),
        format!("--tlscert={}", p("client.pem")),
        format!("--tlskey={}", p("client-key.pem")),
    ];
    let o = docker(&with_cert);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), env!("CARGO_PKG_VERSION"));
    let o = docker(&["--tlsverify".into(), format!("--tlscacert={}", p("ca.pem"))]);
    assert!(
        !o.status.success(),
        "a client without a certificate is refused"
    );
    // Peers that connect and never start their handshake do not hold up a real client
    // (handshakes run side by side, each with its own deadline).
    let stalled: Vec<std::net::TcpStream> = (0..8)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let o = docker(&with_cert);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), env!("CARGO_PKG_VERSION"));
    drop(stalled);
    let _ = child.kill();
    let _ = child.wait();
    // --tls without --tlsverify: served, with dockerd's warning at start and in `info`.
    let mut child = berthd(&[
        "--tls",
        "--tlscert",
        &p("cert.pem"),
        "--tlskey",
        &p("key.pem"),
    ]);
    listening(port);
    let o = Command::new("timeout")
        .args(["30", "docker", "--tls"])
        .arg(format!("--tlscacert={}", p("ca.pem")))
        .args([
            "-H",
            &format!("tcp://127.0.0.1:{port}"),
            "info",
            "-f",
            "{{json .Warnings}}",
        ])
        .env("DOCKER_CONFIG", s.dir.path().join("docker-config"))
        .output()
        .unwrap();
    assert!(
        text(&o.stdout).contains("without TLS client verification"),
        "{} {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        text(&out.stderr).contains("without --tlsverify"),
        "{}",
        text(&out.stderr)
    );
}

fn listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "berthd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
}
