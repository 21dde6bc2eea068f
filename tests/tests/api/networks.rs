//! Networking: the default bridge, user-defined networks, published ports, links, DNS, firewall backends (nftables and iptables), address pools.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use berth_tests::stack::*;
use berth_tests::*;

/// The seeds' networking with the docker CLI: each container on the default bridge has its
/// own stack (eth0 in the bridge's subnet, /etc/hosts and resolv.conf); `-p ip:port:port`,
/// `-P` and udp reach it from the host's loopback; `docker port`; `--network none` has only
/// lo, `host` the host's interfaces, `container:` shares a stack; a port in use is refused
/// with nothing half-made; published ports survive a berthd restart (live restore); and
/// removing the containers removes their interfaces, namespaces and rules.
#[test]
fn docker_cli_networking() {
    if !need_root("docker_cli_networking") {
        return;
    }
    let mut s = Stack::busybox("api-net");
    let bridge = s.bridge();
    let (p1, p3) = (free_port(), free_port());
    let web = "mkdir -p /www && echo hello-web > /www/index.html && exec httpd -f -p 80 -h /www";
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "webhost",
        "--add-host",
        "db.example:10.9.9.9",
        "-p",
        &format!("127.0.0.1:{p1}:80"),
        "--expose",
        "8080",
        "-P",
        "busybox",
        "sh",
        "-c",
        web,
    ]));
    s.until("httpd answers on the published port", || {
        http_get(p1).is_some_and(|r| r.contains("hello-web"))
    });
    // The container's own stack, on the stack's bridge subnet.
    let ip = ok(&s.docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]));
    let ip = ip.trim().to_string();
    let prefix = s.subnet_prefix();
    assert!(
        ip.starts_with(&format!("{prefix}.")),
        "{ip} in {prefix}.0/24"
    );
    let addr = ok(&s.docker(&["exec", "web", "ip", "-o", "-4", "addr", "show", "eth0"]));
    assert!(addr.contains(&format!("{ip}/24")), "{addr}");
    let hosts = ok(&s.docker(&["exec", "web", "cat", "/etc/hosts", "/etc/hostname"]));
    assert!(hosts.contains(&format!("{ip}\twebhost")), "{hosts}");
    assert!(hosts.contains("10.9.9.9\tdb.example"), "{hosts}");
    assert!(hosts.ends_with("webhost\n"), "{hosts}");
    let resolv = ok(&s.docker(&["exec", "web", "cat", "/etc/resolv.conf"]));
    assert!(
        !resolv.contains("nameserver 127."),
        "loopback resolvers are dropped: {resolv}"
    );
    // -P published the exposed 8080 on a random port; docker port shows both.
    let ports = ok(&s.docker(&["port", "web"]));
    assert!(
        ports.contains(&format!("80/tcp -> 127.0.0.1:{p1}")),
        "{ports}"
    );
    assert!(ports.contains("8080/tcp -> 0.0.0.0:"), "{ports}");
    let ps = ok(&s.docker(&["ps", "--format", "{{.Ports}}"]));
    assert!(ps.contains(&format!("127.0.0.1:{p1}->80/tcp")), "{ps}");
    // The NAT rules are in Berth's own table.
    let table = ok(&Command::new("nft")
        .args(["list", "table", "ip", &format!("berth_{bridge}")])
        .output()
        .unwrap());
    assert!(
        table.contains(&format!("tcp dport {p1} dnat to {ip}:80")),
        "{table}"
    );

    // udp: an echo server in the container's namespace, reached through the published port.
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "udp",
        "-p",
        &format!("127.0.0.1:{p3}:7/udp"),
        "busybox",
        "sleep",
        "1000",
    ]));
    let pid = ok(&s.docker(&["inspect", "-f", "{{.State.Pid}}", "udp"]));
    let mut echo = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", pid.trim()))
        .args(["python3", "-c", "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',7))\nd,a=s.recvfrom(100)\ns.sendto(d.upper(),a)"])
        .spawn()
        .unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut got = String::new();
    for _ in 0..20 {
        sock.send_to(b"ping-udp", ("127.0.0.1", p3)).unwrap();
        let mut b = [0u8; 64];
        if let Ok((n, _)) = sock.recv_from(&mut b) {
            got = String::from_utf8_lossy(&b[..n]).into_owned();
            break;
        }
    }
    let _ = echo.kill();
    let _ = echo.wait();
    assert_eq!(got, "PING-UDP");

    // none: only lo (and it is up); host: the host's interfaces; container: shares web's.
    let none = ok(&s.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]));
    assert_eq!(none.lines().count(), 1, "{none}");
    assert!(none.contains("lo:") && none.contains("UP"), "{none}");
    let host_links = text(
        &Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap()
            .stdout,
    );
    let hl = ok(&s.docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ip",
        "-o",
        "link",
    ]));
    assert!(
        hl.contains(&format!(": {bridge}:")),
        "the host's bridge is visible: {hl}"
    );
    assert!(host_links.lines().count() >= 2);
    let host_name = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_eq!(
        ok(&s.docker(&["run", "--rm", "--network", "host", "busybox", "hostname"])).trim(),
        host_name,
        "the host's name on the host's network"
    );
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "--network",
            "container:web",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://127.0.0.1/"
        ])),
        "hello-web\n"
    );
    // From one container to another over the bridge.
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "busybox",
            "wget",
            "-q",
            "-O-",
            &format!("http://{ip}/")
        ])),
        "hello-web\n"
    );

    // --link on the default bridge: the alias and the name in /etc/hosts.
    let linked = ok(&s.docker(&[
        "run",
        "--rm",
        "--link",
        "web:site",
        "busybox",
        "sh",
        "-c",
        "grep site /etc/hosts; wget -q -O- http://site/",
    ]));
    assert_eq!(linked, format!("{ip}\tsite web\nhello-web\n"));
    let o = s.docker(&["run", "--rm", "--link", "nosuch:x", "busybox", "true"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("could not get container for nosuch"),
        "{}",
        text(&o.stderr)
    );

    // A port in use: a clear error, the container stays created, nothing bound or ruled.
    let o = s.docker(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("127.0.0.1:{p1}:80"),
        "busybox",
        "sleep",
        "100",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("port is already allocated"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        ok(&s.docker(&["inspect", "-f", "{{.State.Status}}", "clash"])).trim(),
        "created"
    );
    ok(&s.docker(&["rm", "clash"]));
    assert!(
        http_get(p1).is_some_and(|r| r.contains("hello-web")),
        "web still serves"
    );

    // Live restore: berthd and the manager killed and started again; the port still answers.
    s.kill9_daemons();
    s.start_manager();
    s.start_berthd();
    s.until("the published port answers again", || {
        http_get(p1).is_some_and(|r| r.contains("hello-web"))
    });

    // A user-defined network: containers reach each other by name and by alias (the
    // embedded DNS); it cannot be removed while in use; network ls/inspect show it.
    let base = prefix.replace("10.2", "10.1");
    let sub = format!("{base}.0/24");
    let range = format!("{base}.128/25");
    ok(&s.docker(&[
        "network",
        "create",
        "--subnet",
        &sub,
        "--ip-range",
        &range,
        "-o",
        "com.docker.network.driver.mtu=1400",
        "--label",
        "purpose=test",
        "appnet",
    ]));
    // --ip and --mac-address on it; --ip on the default bridge is refused like Docker.
    let fixed = format!("{base}.10");
    let eth = ok(&s.docker(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "--ip",
        &fixed,
        "--mac-address",
        "02:42:ac:11:00:99",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0; ip -o link show eth0",
    ]));
    assert!(eth.contains(&format!("{fixed}/24")), "{eth}");
    assert!(eth.contains("02:42:ac:11:00:99"), "{eth}");
    assert!(eth.contains("mtu 1400"), "{eth}");
    let o = s.docker(&["run", "--rm", "--ip", &fixed, "busybox", "true"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("user defined networks only"),
        "{}",
        text(&o.stderr)
    );
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "api",
        "--network",
        "appnet",
        "--network-alias",
        "backend",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo from-api > /www/index.html && exec httpd -f -p 80 -h /www",
    ]));
    s.until("api serves on appnet", || {
        s.docker(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://api/",
        ])
        .stdout
            == b"from-api\n"
    });
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://backend/"
        ])),
        "from-api\n"
    );
    // --link on a user-defined network: a name only the linking container resolves.
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            "--link",
            "api:apilink",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://apilink/"
        ])),
        "from-api\n"
    );
    assert!(!s.reaches("appnet", "apilink"));
    let ls = ok(&s.docker(&[
        "network",
        "ls",
        "--filter",
        "label=purpose=test",
        "--format",
        "{{.Name}} {{.Driver}}",
    ]));
    assert_eq!(ls.trim(), "appnet bridge");
    let members = ok(&s.docker(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        "appnet",
    ]));
    assert_eq!(members.trim(), "api");
    // network connect: web (on the default bridge) gets eth1 on appnet and its name (and
    // the alias given) resolves there; disconnect takes both away.
    ok(&s.docker(&["network", "connect", "--alias", "front", "appnet", "web"]));
    let eth1 = ok(&s.docker(&["exec", "web", "ip", "-o", "-4", "addr", "show", "eth1"]));
    assert!(eth1.contains(&format!(" {base}.")), "{eth1}");
    for name in ["web", "front"] {
        assert_eq!(
            ok(&s.docker(&[
                "run",
                "--rm",
                "--network",
                "appnet",
                "busybox",
                "wget",
                "-q",
                "-O-",
                &format!("http://{name}/"),
            ])),
            "hello-web\n"
        );
    }
    let nets = ok(&s.docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "web",
    ]));
    assert_eq!(nets.trim(), "appnet bridge", "{nets}");
    ok(&s.docker(&["network", "disconnect", "appnet", "web"]));
    assert!(!s
        .docker(&["exec", "web", "ip", "link", "show", "eth1"])
        .status
        .success());
    assert!(!s.reaches("appnet", "web"));
    // Automatic addresses come from the --ip-range.
    let api_ip = ok(&s.docker(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.appnet.IPAddress}}",
        "api",
    ]));
    assert_eq!(api_ip.trim(), format!("{base}.128"));
    // Isolation: another network's containers and an internal network's reach nothing
    // across bridges (web, on the default bridge, answers its own bridge only).
    let (b1, third) = base.rsplit_once('.').unwrap();
    let sealed = format!("{b1}.{}.0/24", (third.parse::<u32>().unwrap() + 128) % 256);
    ok(&s.docker(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        &sealed,
        "sealed",
    ]));
    assert!(s.reaches("bridge", &ip), "web answers on its own bridge");
    for net in ["sealed", "appnet"] {
        assert!(
            !s.reaches(net, &ip),
            "{net} reached the default bridge's web"
        );
    }
    ok(&s.docker(&["network", "rm", "sealed"]));
    let o = s.docker(&["network", "rm", "appnet"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("active endpoints"),
        "{}",
        text(&o.stderr)
    );
    ok(&s.docker(&["rm", "-f", "api"]));
    ok(&s.docker(&["network", "rm", "appnet"]));
    let o = s.docker(&["run", "--rm", "--network", "nosuchnet", "busybox", "true"]);
    assert!(!o.status.success());

    // Removal: proxies closed, rules, veths and namespaces gone.
    ok(&s.docker(&["rm", "-f", "web", "udp"]));
    assert!(http_get(p1).is_none(), "the port is closed after rm");
    let table = text(
        &Command::new("nft")
            .args(["list", "table", "ip", &format!("berth_{bridge}")])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(!table.contains("dnat"), "no DNAT rule left: {table}");
    // (The host ends are deleted in the background: unregistering waits for RCU.)
    s.until("no veth left on the bridge", || {
        text(
            &Command::new("ip")
                .args(["-o", "link", "show", "master", &bridge])
                .output()
                .unwrap()
                .stdout,
        )
        .trim()
        .is_empty()
    });
    let ns = std::fs::read_dir(s.dir.path().join("exec").join("netns"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(ns, 0, "no namespace left");
}

/// `berth run -p/-P/--expose/--add-host` and `berth port`.
#[test]
fn berth_cli_ports() {
    if !need_root("berth_cli_ports") {
        return;
    }
    let s = Stack::busybox("api-bports");
    let p = free_port();
    let web = "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 80 -h /www";
    ok(&s.berth(&[
        "run",
        "-d",
        "--name",
        "ww",
        "-p",
        &format!("127.0.0.1:{p}:80"),
        "--expose",
        "81",
        "-P",
        "--add-host",
        "x.test:10.1.2.3",
        "busybox",
        "sh",
        "-c",
        web,
    ]));
    s.until("httpd answers", || {
        http_get(p).is_some_and(|r| r.contains("hi"))
    });
    assert_eq!(
        ok(&s.berth(&["port", "ww", "80"])).trim(),
        format!("127.0.0.1:{p}")
    );
    let ps = ok(&s.berth(&["ps", "--format", "{{.Ports}}"]));
    assert!(ps.contains(&format!("127.0.0.1:{p}->80/tcp")), "{ps}");
    let all = ok(&s.berth(&["port", "ww"]));
    assert!(all.contains("81/tcp -> 0.0.0.0:"), "{all}");
    assert!(ok(&s.berth(&["exec", "ww", "cat", "/etc/hosts"])).contains("10.1.2.3\tx.test"));
    let o = s.berth(&["port", "ww", "9999"]);
    assert!(!o.status.success());
    let linked = ok(&s.berth(&[
        "run",
        "--rm",
        "--link",
        "ww:w2",
        "busybox",
        "grep",
        "w2 ww",
        "/etc/hosts",
    ]));
    assert_eq!(linked.lines().count(), 1, "{linked}");
    ok(&s.berth(&["rm", "-f", "ww"]));

    // 8 MiB through the proxy (spliced): every byte arrives, and the client's EOF reaches
    // the container (nc ends, the checksum is written).
    let p2 = free_port();
    ok(&s.berth(&[
        "run",
        "-d",
        "--name",
        "sink",
        "-p",
        &format!("127.0.0.1:{p2}:9000"),
        "busybox",
        "sh",
        "-c",
        "nc -l -p 9000 | md5sum > /tmp/sum; sleep 1000",
    ]));
    let data: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut sent = false;
    for _ in 0..50 {
        use std::io::Write;
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", p2)) {
            c.write_all(&data).unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            sent = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sent);
    let want = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&data)?;
            c.wait_with_output()
        })
        .unwrap();
    let want = text(&want.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    s.until("the container's checksum of what it got", || {
        s.berth(&["exec", "sink", "cat", "/tmp/sum"])
            .stdout
            .starts_with(want.as_bytes())
    });
    ok(&s.berth(&["rm", "-f", "sink"]));
}

/// `berth network create/ls/inspect/connect/disconnect/rm/prune` and `berth run --network
/// --network-alias --ip`.
#[test]
fn berth_cli_networks() {
    if !need_root("berth_cli_networks") {
        return;
    }
    let s = Stack::busybox("api-bnet");
    let base = s.subnet_prefix().replace("10.2", "10.1");
    ok(&s.berth(&[
        "network",
        "create",
        "--subnet",
        &format!("{base}.0/24"),
        "--label",
        "k=v",
        "bn1",
    ]));
    ok(&s.berth(&["network", "create", "bn2"]));
    let ls = ok(&s.berth(&["network", "ls", "--format", "{{.Name}}"]));
    for n in ["bridge", "host", "none", "bn1", "bn2"] {
        assert!(ls.lines().any(|l| l == n), "{n} in {ls}");
    }
    let web = "mkdir -p /www && echo via-alias > /www/index.html && exec httpd -f -p 80 -h /www";
    ok(&s.berth(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--network",
        "bn1",
        "--network-alias",
        "alias1",
        "--ip",
        &format!("{base}.50"),
        "busybox",
        "sh",
        "-c",
        web,
    ]));
    assert_eq!(
        ok(&s.berth(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.bn1.IPAddress}}",
            "svc"
        ]))
        .trim(),
        format!("{base}.50")
    );
    s.until("svc answers by alias", || {
        s.berth(&[
            "run",
            "--rm",
            "--network",
            "bn1",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://alias1/",
        ])
        .stdout
            == b"via-alias\n"
    });
    // Connected to bn2 too: reachable by name from there; disconnected: not any more.
    ok(&s.berth(&["network", "connect", "bn2", "svc"]));
    assert_eq!(
        ok(&s.berth(&[
            "run",
            "--rm",
            "--network",
            "bn2",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://svc/"
        ])),
        "via-alias\n"
    );
    let inspected: serde_json::Value =
        serde_json::from_str(&ok(&s.berth(&["network", "inspect", "bn2"]))).unwrap();
    let names: Vec<&str> = inspected[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|c| c["Name"].as_str())
        .collect();
    assert_eq!(names, ["svc"]);
    ok(&s.berth(&["network", "disconnect", "bn2", "svc"]));
    assert!(!s
        .berth(&["exec", "svc", "ip", "link", "show", "eth1"])
        .status
        .success());
    assert!(
        !s.berth(&["network", "rm", "bn1"]).status.success(),
        "in use"
    );
    ok(&s.berth(&["rm", "-f", "svc"]));
    let pruned = ok(&s.berth(&["network", "prune", "-f"]));
    assert!(pruned.contains("bn1") && pruned.contains("bn2"), "{pruned}");
    let ls = ok(&s.berth(&["network", "ls", "-q"]));
    assert_eq!(ls.lines().count(), 3, "bridge, host, none: {ls}");
}

/// A container's network lives while it runs, like Docker's: at stop its veths, namespace,
/// published ports and DNAT rules go and its addresses are free for others; at start they
/// come back (the same address when still free, a new one written into /etc/hosts when
/// not), with the networks connected meanwhile; a container that died while berthd was
/// down is cleaned up when berthd starts again.
#[test]
fn network_released_at_stop() {
    if !need_root("network_released_at_stop") {
        return;
    }
    let mut s = Stack::busybox("api-netrel");
    let bridge = s.bridge();
    let base = s.subnet_prefix().replace("10.2", "10.1");
    ok(&s.docker(&[
        "network",
        "create",
        "--subnet",
        &format!("{base}.0/24"),
        "relnet",
    ]));
    let relbr = format!(
        "br-{}",
        &ok(&s.docker(&["network", "inspect", "-f", "{{.Id}}", "relnet"])).trim()[..12]
    );
    let port = free_port();
    let web = "mkdir -p /www && echo kept > /www/index.html && exec httpd -f -p 80 -h /www";
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "keep",
        "--network",
        "relnet",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "busybox",
        "sh",
        "-c",
        web,
    ]));
    ok(&s.docker(&["network", "connect", "bridge", "keep"]));
    s.until("keep serves", || {
        http_get(port).is_some_and(|r| r.contains("kept"))
    });
    let ip_of = |s: &Stack, net: &str| {
        ok(&s.docker(&[
            "inspect",
            "-f",
            &format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}"),
            "keep",
        ]))
        .trim()
        .to_string()
    };
    let ip = ip_of(&s, "relnet");
    assert!(ip.starts_with(&format!("{base}.")), "{ip}");
    assert_eq!((ports_on(&relbr), ports_on(&bridge)), (1, 1));
    let netns = s.dir.path().join("exec").join("netns");
    let count = |p: &Path| std::fs::read_dir(p).map(|r| r.count()).unwrap_or(0);
    assert_eq!(count(&netns), 1);
    let table = || {
        text(
            &Command::new("nft")
                .args(["list", "table", "ip", &format!("berth_{bridge}")])
                .output()
                .unwrap()
                .stdout,
        )
    };
    assert!(table().contains(&format!("dnat to {ip}:80")), "{}", table());

    // Stopped: nothing of its network is left on the host; its address is free.
    ok(&s.docker(&["stop", "-t", "1", "keep"]));
    assert!(http_get(port).is_none(), "the port is closed at stop");
    assert_eq!(count(&netns), 0, "its namespace is gone at stop");
    assert!(!table().contains("dnat"), "{}", table());
    s.until("its veths are gone", || {
        ports_on(&relbr) == 0 && ports_on(&bridge) == 0
    });
    assert_eq!(
        ip_of(&s, "relnet"),
        "",
        "a stopped container shows no address"
    );
    let took = ok(&s.docker(&[
        "run",
        "--rm",
        "--network",
        "relnet",
        "--ip",
        &ip,
        "busybox",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]));
    assert!(took.contains(&format!("{ip}/24")), "{took}");
    // Connected while stopped: plugged in at the next start.
    ok(&s.docker(&["network", "create", "late"]));
    ok(&s.docker(&["network", "connect", "late", "keep"]));

    // Started again: the same address, its port, eth1 (bridge) and eth2 (late), its name.
    ok(&s.docker(&["start", "keep"]));
    s.until("keep serves again", || {
        http_get(port).is_some_and(|r| r.contains("kept"))
    });
    assert_eq!(ip_of(&s, "relnet"), ip);
    let links = ok(&s.docker(&["exec", "keep", "ip", "-o", "link"]));
    for i in ["eth0", "eth1", "eth2"] {
        assert!(links.contains(&format!(": {i}@")), "{i}: {links}");
    }
    assert!(!ip_of(&s, "late").is_empty());
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "--network",
            "late",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://keep/"
        ])),
        "kept\n"
    );

    // Its address taken while it was stopped: a new one, in inspect and /etc/hosts.
    ok(&s.docker(&["stop", "-t", "1", "keep"]));
    ok(&s.docker(&[
        "run",
        "-d",
        "--name",
        "squat",
        "--network",
        "relnet",
        "--ip",
        &ip,
        "busybox",
        "sleep",
        "1000",
    ]));
    ok(&s.docker(&["start", "keep"]));
    let ip2 = ip_of(&s, "relnet");
    assert!(ip2.starts_with(&format!("{base}.")) && ip2 != ip, "{ip2}");
    let hosts = ok(&s.docker(&["exec", "keep", "cat", "/etc/hosts"]));
    assert!(
        hosts.contains(&format!("{ip2}\t")) && !hosts.contains(&format!("{ip}\t")),
        "{hosts}"
    );
    ok(&s.docker(&["rm", "-f", "squat"]));

    // It dies while berthd and the manager are down: berthd's next start releases it all.
    let pid = ok(&s.docker(&["inspect", "-f", "{{.State.Pid}}", "keep"]));
    s.kill9_daemons();
    let _ = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    s.start_manager();
    s.start_berthd();
    s.until("the dead container's network is released", || {
        count(&netns) == 0
            && ports_on(&relbr) == 0
            && ports_on(&bridge) == 0
            && !table().contains("dnat")
    });
    ok(&s.docker(&["start", "keep"]));
    s.until("keep serves after the crash", || {
        http_get(port).is_some_and(|r| r.contains("kept"))
    });

    // Disconnected from the network it was created on (docker-compose does this to every
    // container it makes): eth0, its address and the default route go; connected again,
    // they come back.
    ok(&s.docker(&["network", "disconnect", "relnet", "keep"]));
    let links = ok(&s.docker(&["exec", "keep", "ip", "-o", "link"]));
    assert!(!links.contains(": eth0@"), "{links}");
    let nets = ok(&s.docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "keep",
    ]));
    assert_eq!(nets.trim(), "bridge late", "{nets}");
    ok(&s.docker(&[
        "network",
        "connect",
        "--alias",
        "kept-again",
        "relnet",
        "keep",
    ]));
    let ip3 = ip_of(&s, "relnet");
    let route = ok(&s.docker(&["exec", "keep", "ip", "route", "show", "default"]));
    assert!(route.contains(&format!("via {base}.1 dev eth0")), "{route}");
    let hosts = ok(&s.docker(&["exec", "keep", "cat", "/etc/hosts"]));
    assert!(hosts.contains(&format!("{ip3}\t")), "{hosts}");
    assert_eq!(
        ok(&s.docker(&[
            "run",
            "--rm",
            "--network",
            "relnet",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://kept-again/"
        ])),
        "kept\n"
    );
    ok(&s.docker(&["rm", "-f", "keep"]));
    for n in ["relnet", "late"] {
        ok(&s.docker(&["network", "rm", n]));
    }
}

/// A network namespace standing for another host: a veth from the host
/// (`HOST_ADDR/30`) to its `eth0` (`PEER_ADDR/30`, default route back). Removed on drop.
struct Outside {
    ns: String,
    link: String,
    host: String,
    peer: String,
}

impl Outside {
    fn new() -> Outside {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("{}x{seq}", std::process::id() % 100_000);
        let n = (std::process::id() as usize * 3 + seq) % 250;
        let o = Outside {
            ns: format!("bo{tag}"),
            link: format!("vo{tag}"),
            host: format!("10.254.{n}.1"),
            peer: format!("10.254.{n}.2"),
        };
        let ip = |args: &[&str]| ok(&Command::new("ip").args(args).output().unwrap());
        ip(&["netns", "add", &o.ns]);
        ip(&[
            "link", "add", &o.link, "type", "veth", "peer", "name", "eth0", "netns", &o.ns,
        ]);
        ip(&["addr", "add", &format!("{}/30", o.host), "dev", &o.link]);
        ip(&["link", "set", &o.link, "up"]);
        for args in [
            vec!["addr", "add", &*format!("{}/30", o.peer), "dev", "eth0"],
            vec!["link", "set", "eth0", "up"],
            vec!["link", "set", "lo", "up"],
            vec!["route", "add", "default", "via", &o.host],
        ] {
            let mut a = vec!["-n", &o.ns];
            a.extend(args);
            ip(&a);
        }
        o
    }

    /// Run python `code` in the namespace.
    fn python(&self, code: &str) -> Output {
        Command::new("timeout")
            .args(["20", "ip", "netns", "exec", &self.ns, "python3", "-c", code])
            .output()
            .unwrap()
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// iptables-nft makes the nat and filter tables it needs: on drop (even after a failure),
/// they go again if they were not there before and hold no rules (Berth's chains and jumps
/// go with its stack).
struct XtablesTables(String);

impl XtablesTables {
    fn remember() -> XtablesTables {
        XtablesTables(text(
            &Command::new("nft")
                .args(["list", "tables"])
                .output()
                .unwrap()
                .stdout,
        ))
    }
}

impl Drop for XtablesTables {
    fn drop(&mut self) {
        for t in ["nat", "filter"] {
            if self.0.contains(&format!("table ip {t}\n")) {
                continue;
            }
            let rules = Command::new("iptables")
                .args(["-t", t, "-S"])
                .output()
                .map(|o| text(&o.stdout))
                .unwrap_or_default();
            if rules.lines().all(|l| l.starts_with("-P ")) {
                let _ = Command::new("nft")
                    .args(["delete", "table", "ip", t])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// A TCP server that answers each connection with the address it came from.
const WHO_SERVER: &str = "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',PORT))\ns.listen(5)\nfor _ in range(COUNT):\n c,a=s.accept()\n c.sendall(a[0].encode())\n c.close()";

fn who_client(addr: &str, port: u16) -> String {
    format!("import socket,time\nfor i in range(50):\n try:\n  c=socket.create_connection(('{addr}',{port}),timeout=2)\n  print(c.recv(100).decode())\n  break\n except OSError:\n  time.sleep(0.1)")
}

/// Berth's firewall rules, both backends (daemon.json `firewall-backend`), seen from
/// another "host" (a namespace this test makes): its connection to a published port on
/// the host's address is DNATed straight to the container (the server sees the outside
/// address, not the proxy's); the container's own connections out are masqueraded (the
/// outside sees the host's address); containers on two networks cannot reach each other
/// (a positive control on the same network); the rules are where the backend keeps them.
#[test]
fn firewall_backends_nat_and_isolation() {
    if !need_root("firewall_backends_nat_and_isolation") {
        return;
    }
    let _tables = XtablesTables::remember();
    for backend in ["nftables", "iptables"] {
        let s = Stack::with_config(
            &format!("api-fw-{backend}"),
            &format!(r#"{{"registry-fallback": false, "firewall-backend": "{backend}"}}"#),
        );
        s.import_busybox();
        let out = Outside::new();
        let port = free_port();
        ok(&s.docker(&[
            "run",
            "-d",
            "--name",
            "who",
            "-p",
            &format!("{port}:80"),
            "busybox",
            "sleep",
            "1000",
        ]));
        let pid = ok(&s.docker(&["inspect", "-f", "{{.State.Pid}}", "who"]));
        let mut server = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", pid.trim()))
            .args([
                "python3",
                "-c",
                &WHO_SERVER.replace("PORT", "80").replace("COUNT", "1"),
            ])
            .spawn()
            .unwrap();
        let seen = out.python(&who_client(&out.host, port));
        let _ = server.kill();
        let _ = server.wait();
        assert_eq!(
            text(&seen.stdout).trim(),
            out.peer,
            "{backend}: DNAT: {}",
            text(&seen.stderr)
        );

        // Out: the container's connection reaches the outside from the host's address.
        let oport = free_port();
        let mut outside_server = Command::new("ip")
            .args(["netns", "exec", &out.ns, "python3", "-c"])
            .arg(
                WHO_SERVER
                    .replace("PORT", &oport.to_string())
                    .replace("COUNT", "1"),
            )
            .spawn()
            .unwrap();
        let mut seen = String::new();
        for _ in 0..50 {
            let o = s.docker(&[
                "exec",
                "who",
                "sh",
                "-c",
                &format!("nc {} {oport} </dev/null", out.peer),
            ]);
            seen = text(&o.stdout);
            if !seen.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = outside_server.kill();
        let _ = outside_server.wait();
        assert_eq!(seen.trim(), out.host, "{backend}: masquerade");

        // Isolation between networks, with a positive control.
        let base = s.subnet_prefix().replace("10.2", "10.1");
        ok(&s.docker(&[
            "network",
            "create",
            "--subnet",
            &format!("{base}.0/24"),
            "fwa",
        ]));
        ok(&s.docker(&["network", "create", "fwb"]));
        ok(&s.docker(&[
            "run",
            "-d",
            "--name",
            "ina",
            "--network",
            "fwa",
            "busybox",
            "sleep",
            "1000",
        ]));
        let ina = ok(&s.docker(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.fwa.IPAddress}}",
            "ina",
        ]));
        assert!(s.reaches("fwa", ina.trim()), "{backend}: same network");
        assert!(!s.reaches("fwb", ina.trim()), "{backend}: across networks");

        let bridge = s.bridge();
        match backend {
            "nftables" => {
                let t = ok(&Command::new("nft")
                    .args(["list", "table", "ip", &format!("berth_{bridge}")])
                    .output()
                    .unwrap());
                assert!(t.contains("dnat to"), "{t}");
            }
            _ => {
                let nat = ok(&Command::new("iptables")
                    .args(["-t", "nat", "-S"])
                    .output()
                    .unwrap());
                assert!(
                    nat.contains(&format!(
                        "-A BERTH-{bridge}-PUB -p tcp -m tcp --dport {port} -j DNAT"
                    )),
                    "{nat}"
                );
                assert!(
                    nat.contains(&format!("-A POSTROUTING -j BERTH-{bridge}-NAT")),
                    "{nat}"
                );
                let filter = ok(&Command::new("iptables")
                    .args(["-S", "FORWARD"])
                    .output()
                    .unwrap());
                assert!(
                    filter.contains(&format!("-j BERTH-{bridge}-FWD")),
                    "{filter}"
                );
                assert!(
                    Command::new("nft")
                        .args(["list", "table", "ip", &format!("berth_{bridge}")])
                        .output()
                        .map(|o| !o.status.success())
                        .unwrap_or(true),
                    "no nftables table with the iptables backend"
                );
            }
        }
        ok(&s.docker(&["rm", "-f", "who", "ina"]));
        let nat = text(
            &Command::new("iptables")
                .args(["-t", "nat", "-S"])
                .output()
                .unwrap()
                .stdout,
        );
        assert!(
            !nat.contains(&format!("--dport {port} ")),
            "{backend}: DNAT rule left: {nat}"
        );
        ok(&s.docker(&["network", "rm", "fwa", "fwb"]));
    }
}

/// A link (a veth pair: this kernel may lack `dummy`) with an address: a route of the
/// host's (removed on drop).
struct Dummy(String);

impl Drop for Dummy {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// daemon.json `default-address-pools` gives the default bridge (without `bip`) and new
/// networks their subnets, skipping one the host already routes (like docker0 clashing
/// with a LAN) and the ones taken; a pool used up is a clear error.
#[test]
fn default_address_pools_skip_host_routes() {
    if !need_root("default_address_pools_skip_host_routes") {
        return;
    }
    let k = std::process::id() % 250;
    let base = format!("10.253.{k}");
    let dummy = Dummy(format!("bd{}", std::process::id() % 100_000));
    for args in [
        vec![
            "link",
            "add",
            &dummy.0,
            "type",
            "veth",
            "peer",
            "name",
            &*format!("{}p", dummy.0),
        ],
        vec!["addr", "add", &*format!("{base}.1/26"), "dev", &dummy.0],
        vec!["link", "set", &*format!("{}p", dummy.0), "up"],
        vec!["link", "set", &dummy.0, "up"],
    ] {
        ok(&Command::new("ip").args(&args).output().unwrap());
    }
    let s = Stack::with_config(
        "api-pools",
        &format!(
            r#"{{"registry-fallback": false, "bip": null,
                "default-address-pools": [{{"base": "{base}.0/24", "size": 26}}]}}"#
        ),
    );
    s.import_busybox();
    let subnet_of = |net: &str| {
        ok(&s.docker(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
            net,
        ]))
        .trim()
        .to_string()
    };
    assert_eq!(subnet_of("bridge"), format!("{base}.64/26"));
    let addr = ok(&s.docker(&[
        "run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0",
    ]));
    assert!(addr.contains(&format!(" {base}.66/26")), "{addr}");
    ok(&s.docker(&["network", "create", "pool1"]));
    ok(&s.docker(&["network", "create", "pool2"]));
    assert_eq!(subnet_of("pool1"), format!("{base}.128/26"));
    assert_eq!(subnet_of("pool2"), format!("{base}.192/26"));
    let o = s.docker(&["network", "create", "pool3"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("non-overlapping"),
        "{}",
        text(&o.stderr)
    );
    ok(&s.docker(&["network", "rm", "pool1", "pool2"]));
    drop(s);
    drop(dummy);
}

/// Dual stack with the docker CLI, for both firewall backends: daemon.json `ipv6` and
/// `fixed-cidr-v6` give the default bridge an IPv6 subnet; `network create --ipv6` a user
/// network one (given or a unique local /64); containers get addresses (`--ip6` too),
/// a default route, /etc/hosts lines and AAAA answers from the embedded DNS; a published
/// port answers on [::1]; two IPv6 networks are isolated (a positive control on one);
/// the masquerade rule is where the backend keeps it; bad requests are refused by name;
/// and removing everything leaves no address, bridge or rule behind.
#[test]
fn ipv6_dual_stack() {
    if !need_root("ipv6_dual_stack") {
        return;
    }
    let k = std::process::id() % 0xfff0;
    for backend in ["nftables", "iptables"] {
        let s = Stack::with_config(
            "api-ipv6",
            &format!(
                r#"{{"registry-fallback": false, "firewall-backend": "{backend}", "ipv6": true,
                    "fixed-cidr-v6": "fd00:{k:x}:1::/64"}}"#
            ),
        );
        s.import_busybox();
        let inspect = |what: &str, f: &str| {
            ok(&s.docker(&["inspect", "-f", f, what]))
                .trim()
                .to_string()
        };
        // The default bridge.
        let out = ok(&s.docker(&[
            "run", "--rm", "busybox", "ip", "-o", "-6", "addr", "show", "eth0",
        ]));
        assert!(out.contains(&format!("fd00:{k:x}:1::2/64")), "{out}");
        assert_eq!(
            ok(&s.docker(&["network", "inspect", "-f", "{{.EnableIPv6}}", "bridge"])).trim(),
            "true"
        );
        // User networks.
        let o = s.docker(&[
            "network",
            "create",
            "--subnet",
            &format!("fd00:{k:x}:2::/64"),
            "nov6",
        ]);
        refused(&o, "not IPv6-enabled");
        ok(&s.docker(&[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            &format!("fd00:{k:x}:2::/64"),
            "six",
        ]));
        let o = s.docker(&[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            &format!("fd00:{k:x}:2:0:1::/80"),
            "clash",
        ]);
        refused(&o, "overlaps");
        ok(&s.docker(&["network", "create", "--ipv6", "other6"]));
        let ula = ok(&s.docker(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
            "other6",
        ]));
        assert!(
            ula.split_whitespace()
                .any(|n| n.starts_with("fd") && n.ends_with("::/64")),
            "{ula}"
        );
        ok(&s.docker(&[
            "run",
            "-d",
            "--name",
            "web6",
            "--network",
            "six",
            "--ip6",
            &format!("fd00:{k:x}:2::80"),
            "-p",
            "127.0.0.1::80",
            "-p",
            "[::1]::80",
            "-p",
            "80",
            "busybox",
            "sh",
            "-c",
            "echo hi6 > /i; exec httpd -f -vv -p 80 -h /",
        ]));
        assert_eq!(
            inspect(
                "web6",
                "{{.NetworkSettings.Networks.six.GlobalIPv6Address}}"
            ),
            format!("fd00:{k:x}:2::80")
        );
        assert_eq!(
            inspect("web6", "{{.NetworkSettings.Networks.six.IPv6Gateway}}"),
            format!("fd00:{k:x}:2::1")
        );
        let probe = ok(&s.docker(&[
            "run", "--rm", "--network", "six", "busybox", "sh", "-c",
            "ip -6 route show default; nslookup -type=AAAA web6 127.0.0.11; wget -qO- http://[$(nslookup -type=AAAA web6 127.0.0.11 | awk '/^Address: fd/{print $2}')]/i; tail -1 /etc/hosts",
        ]));
        assert!(
            probe.contains(&format!("default via fd00:{k:x}:2::1")),
            "{probe}"
        );
        assert!(
            probe.contains(&format!("Address: fd00:{k:x}:2::80")),
            "{probe}"
        );
        assert!(probe.contains("hi6"), "{probe}");
        assert!(
            probe
                .lines()
                .last()
                .unwrap_or("")
                .starts_with(&format!("fd00:{k:x}:2::")),
            "{probe}"
        );
        let port6 = ok(&s.docker(&["port", "web6", "80"]));
        let p6 = port6
            .lines()
            .find(|l| l.starts_with("[::1]:"))
            .and_then(|l| l.rsplit(':').next())
            .unwrap_or_else(|| panic!("no [::1] binding: {port6}"))
            .to_string();
        let got = Command::new("curl")
            .args([
                "-s",
                "-6",
                "--max-time",
                "5",
                &format!("http://[::1]:{p6}/i"),
            ])
            .output()
            .unwrap();
        assert_eq!(text(&got.stdout).trim(), "hi6");
        // IPv6 to a host address (the default bridge's) on the port published on all
        // addresses: DNATed to the container's IPv6 address, so the server sees an IPv6
        // peer (through the proxy it would see its IPv4 gateway).
        let pall = port6
            .lines()
            .find(|l| l.starts_with("0.0.0.0:"))
            .and_then(|l| l.rsplit(':').next())
            .unwrap_or_else(|| panic!("no 0.0.0.0 binding: {port6}"))
            .to_string();
        let got = Command::new("curl")
            .args([
                "-s",
                "-6",
                "--max-time",
                "5",
                &format!("http://[fd00:{k:x}:1::1]:{pall}/i"),
            ])
            .output()
            .unwrap();
        assert_eq!(text(&got.stdout).trim(), "hi6", "{backend}");
        let log = s.docker(&["logs", "web6"]);
        let log = format!("{}{}", text(&log.stdout), text(&log.stderr));
        // (The host's source address is one of its own on either bridge.)
        assert!(
            log.contains(&format!("[fd00:{k:x}:1::1]:"))
                || log.contains(&format!("[fd00:{k:x}:2::1]:")),
            "{backend}: not DNATed over IPv6: {log}"
        );
        // Isolation: not from another IPv6 network, but within its own.
        let cross = s.docker(&[
            "run",
            "--rm",
            "--network",
            "other6",
            "busybox",
            "ping6",
            "-c1",
            "-W2",
            &format!("fd00:{k:x}:2::80"),
        ]);
        assert!(!cross.status.success(), "other6 reached six over IPv6");
        ok(&s.docker(&[
            "run",
            "--rm",
            "--network",
            "six",
            "busybox",
            "ping6",
            "-c1",
            "-W2",
            &format!("fd00:{k:x}:2::80"),
        ]));
        let rules = match backend {
            "nftables" => ok(&Command::new("nft")
                .args(["list", "ruleset", "ip6"])
                .output()
                .unwrap()),
            _ => ok(&Command::new("ip6tables-save").output().unwrap()),
        };
        assert!(
            rules.contains(&format!("fd00:{k:x}:2::/64")),
            "{backend}: {rules}"
        );
        let o = s.docker(&[
            "run",
            "--rm",
            "--network",
            "six",
            "--ip6",
            "2001:db8::5",
            "busybox",
            "true",
        ]);
        refused(&o, "not a usable address");
        ok(&s.docker(&["rm", "-f", "web6"]));
        ok(&s.docker(&["network", "rm", "six", "other6"]));
        let rules = match backend {
            "nftables" => ok(&Command::new("nft")
                .args(["list", "ruleset", "ip6"])
                .output()
                .unwrap()),
            _ => ok(&Command::new("ip6tables-save").output().unwrap()),
        };
        assert!(
            !rules.contains(&format!("fd00:{k:x}:2::")),
            "{backend}: left behind: {rules}"
        );
        drop(s);
        let addrs = ok(&Command::new("ip").args(["-6", "addr"]).output().unwrap());
        assert!(
            !addrs.contains(&format!("fd00:{k:x}:")),
            "addresses left: {addrs}"
        );
    }
}
