//! docker-compose up and down against berthd.

use std::process::Command;

use berth_tests::stack::*;
use berth_tests::*;

/// docker-compose (Debian's 1.29) brings a project up and down against berthd: its own
/// network (with a bridge name from driver_opts) where services reach each other by
/// service name and alias, a published port, a named volume, environment, depends_on;
/// `exec`, `ps`, `logs`, `restart` (names still resolve after it); `down -v` removes the
/// containers, the network, its bridge and the volume.
#[test]
fn docker_compose_up_and_down() {
    if !need_root("docker_compose_up_and_down") {
        return;
    }
    let s = Stack::busybox("api-compose");
    let port = free_port();
    let proj = s.dir.path().join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    let bridge = format!("bc{}", std::process::id() % 100_000);
    let base = s.subnet_prefix().replace("10.2", "10.1");
    std::fs::write(
        proj.join("docker-compose.yml"),
        format!(
            r#"version: "3.8"
services:
  web:
    image: busybox
    command: sh -c 'mkdir -p /www && echo "hello $$GREETING" > /www/index.html && exec httpd -f -p 80 -h /www'
    environment:
      GREETING: compose
    ports:
      - "127.0.0.1:{port}:80"
    networks:
      app:
        aliases: [frontend]
  client:
    image: busybox
    command: sh -c 'echo started > /data/mark; exec sleep 1000'
    depends_on: [web]
    volumes:
      - data:/data
    networks: [app]
networks:
  app:
    driver_opts:
      com.docker.network.bridge.name: {bridge}
    ipam:
      config:
        - subnet: {base}.0/24
volumes:
  data: {{}}
"#
        ),
    )
    .unwrap();
    let p = "bcp";
    let up = s.compose(&proj, &["-p", p, "up", "-d"]);
    assert!(up.status.success(), "up: {}", text(&up.stderr));
    s.until("web answers on its published port", || {
        http_get(port).is_some_and(|r| r.contains("hello compose"))
    });
    let fetch = |name: &str| {
        let o = s.compose(
            &proj,
            &[
                "-p",
                p,
                "exec",
                "-T",
                "client",
                "wget",
                "-q",
                "-O-",
                &format!("http://{name}/"),
            ],
        );
        text(&o.stdout)
    };
    assert_eq!(fetch("web"), "hello compose\n");
    assert_eq!(fetch("frontend"), "hello compose\n");
    let ps = s.compose(&proj, &["-p", p, "ps"]);
    let ps = text(&ps.stdout);
    assert!(
        ps.contains("bcp_web_1") && ps.contains("bcp_client_1"),
        "{ps}"
    );
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    let addr = ok(&s.docker(&[
        "exec",
        "bcp_web_1",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]));
    assert!(addr.contains(&format!(" {base}.")), "{addr}");
    assert_eq!(ports_on(&bridge), 2, "both services on the {bridge} bridge");
    let vol = ok(&s.docker(&[
        "run",
        "--rm",
        "-v",
        "bcp_data:/d",
        "busybox",
        "cat",
        "/d/mark",
    ]));
    assert_eq!(vol, "started\n");
    let restart = s.compose(&proj, &["-p", p, "restart", "-t", "1", "web"]);
    assert!(restart.status.success(), "{}", text(&restart.stderr));
    s.until("web answers by name after its restart", || {
        fetch("web") == "hello compose\n"
    });
    assert!(http_get(port).is_some_and(|r| r.contains("hello compose")));

    let down = s.compose(&proj, &["-p", p, "down", "-v", "-t", "1"]);
    assert!(down.status.success(), "down: {}", text(&down.stderr));
    assert_eq!(ok(&s.docker(&["ps", "-aq"])).trim(), "");
    let nets = ok(&s.docker(&["network", "ls", "--format", "{{.Name}}"]));
    assert!(!nets.contains("bcp_app"), "{nets}");
    assert!(!ok(&s.docker(&["volume", "ls", "-q"])).contains("bcp_data"));
    assert!(
        !Command::new("ip")
            .args(["link", "show", &bridge])
            .output()
            .unwrap()
            .status
            .success(),
        "the network's bridge is gone"
    );
    assert!(http_get(port).is_none());
}
