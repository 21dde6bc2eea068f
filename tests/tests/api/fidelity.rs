//! Engine API fidelity found by docker-py's own integration suite (tests/peer/docker-py.sh):
//! each behaviour here is one that suite's tests rely on, checked with docker-py (the
//! requests it sends, unmodified) or the docker CLI against a real berthd.

use std::process::Command;

use berth_tests::stack::*;
use berth_tests::*;

/// Run a docker-py script against the stack; it prints "ok" at its end.
fn py(s: &Stack, body: &str) {
    let script = format!(
        "import docker, io, socket, struct, tarfile, time, faulthandler\n\
         faulthandler.dump_traceback_later(120, exit=True)\n\
         api = docker.APIClient(base_url='unix://{sock}', version='auto')\n\
         c = docker.DockerClient(base_url='unix://{sock}', version='auto')\n{body}\nprint('ok')\n",
        sock = s.sock().display()
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(text(&o.stdout).trim(), "ok", "{}", text(&o.stderr));
}

/// Swarm endpoints answer as dockerd's do outside a swarm (docker-py's tear-downs call
/// `leave_swarm(force=True)`), creating a swarm or a plugin is refused by name, and
/// `info` carries `ExperimentalBuild` (docker-py's `requires_experimental` reads it).
#[test]
fn swarm_and_plugins_answer_like_dockerd() {
    if !need_root("swarm_and_plugins_answer_like_dockerd") {
        return;
    }
    let s = Stack::busybox("api-swarm");
    py(
        &s,
        r#"
assert api.leave_swarm(force=True) is True
for call in (api.inspect_swarm, api.nodes, api.services, api.tasks, api.secrets, api.configs):
    try:
        call()
        raise SystemExit(f"{call.__name__}: no error")
    except docker.errors.APIError as e:
        assert e.response.status_code == 503, (call.__name__, e)
        assert "not a swarm manager" in str(e), e
try:
    api.init_swarm(advertise_addr="127.0.0.1")
    raise SystemExit("init_swarm: no error")
except docker.errors.APIError as e:
    assert e.response.status_code == 501 and "swarm mode is not supported by Berth" in str(e), e
assert api.plugins() == []
try:
    api.inspect_plugin("vieux/sshfs:latest")
    raise SystemExit("inspect_plugin: no error")
except docker.errors.NotFound:
    pass
assert api.info()["ExperimentalBuild"] is False
assert api.version()["Experimental"] is False
"#,
    );
}

/// Streams as dockerd frames them: `attach(logs=True, stream=False)` returns what the
/// container wrote (every time: the bytes must not ride along with the 101 headers,
/// which docker-py's socket reader loses); an exec made with a terminal but started
/// without `Tty` is multiplexed (the start request decides), with `Tty` raw.
#[test]
fn attach_logs_and_exec_framing() {
    if !need_root("attach_logs_and_exec_framing") {
        return;
    }
    let s = Stack::busybox("api-frames");
    py(
        &s,
        r#"
for i in range(8):
    ct = api.create_container("busybox", "echo hello")
    api.start(ct); api.wait(ct, condition="not-running")
    out = api.attach(ct, stream=False, logs=True)
    assert out == b"hello\n", (i, out)
    assert api.attach(ct, stream=False, logs=False) == b""
    api.remove_container(ct)
ct = api.create_container("busybox", "cat", stdin_open=True, detach=True)
api.start(ct)
ex = api.exec_create(ct, ["printf", "line"], tty=True)
sock = api.exec_start(ex, socket=True)
raw = sock._sock if hasattr(sock, "_sock") else sock
head = b""
while len(head) < 8:
    head += raw.recv(8 - len(head))
kind, size = struct.unpack(">BxxxL", head)
assert (kind, size) == (1, 4), head
body = b""
while len(body) < size:
    body += raw.recv(size - len(body))
assert body == b"line", body
sock.close()
ex = api.exec_create(ct, ["printf", "raw"], tty=True)
assert api.exec_start(ex, tty=True) == b"raw"
api.remove_container(ct, force=True)
"#,
    );
}

/// Legacy links as dockerd makes them on the default bridge: `ALIAS_NAME`, `ALIAS_ENV_*`
/// and `ALIAS_PORT_*` in the linking container's environment (the target's own HOME and
/// PATH left out, the container's variables winning), refreshed at each start; and
/// `DELETE /containers/PARENT/ALIAS?link=1` removes a link.
#[test]
fn legacy_link_variables_and_link_removal() {
    if !need_root("legacy_link_variables_and_link_removal") {
        return;
    }
    let s = Stack::busybox("api-linkenv");
    ok(&s.docker(&[
        "run", "-d", "--name", "lt", "-e", "FOO=1", "--expose", "80", "--expose", "53/udp",
        "busybox", "sleep", "1000",
    ]));
    let ip = ok(&s.docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "lt"]))
        .trim()
        .to_string();
    ok(&s.docker(&[
        "create",
        "--name",
        "lc",
        "--link",
        "lt:my-db",
        "-e",
        "MY_DB_ENV_FOO=mine",
        "busybox",
        "env",
    ]));
    let env = ok(&s.docker(&["start", "-a", "lc"]));
    for want in [
        "MY_DB_NAME=/lc/my-db".to_string(),
        // (The lowest port number first, as dockerd sorts them.)
        format!("MY_DB_PORT=udp://{ip}:53"),
        format!("MY_DB_PORT_80_TCP=tcp://{ip}:80"),
        format!("MY_DB_PORT_80_TCP_ADDR={ip}"),
        "MY_DB_PORT_80_TCP_PORT=80".into(),
        "MY_DB_PORT_80_TCP_PROTO=tcp".into(),
        format!("MY_DB_PORT_53_UDP=udp://{ip}:53"),
        "MY_DB_ENV_FOO=mine".into(),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing:\n{env}");
    }
    assert!(!env.contains("MY_DB_ENV_PATH"), "{env}");
    assert_eq!(env.matches("MY_DB_ENV_FOO=").count(), 1, "{env}");
    // The target restarts on another address: the next start sees the new one.
    ok(&s.docker(&["rm", "-f", "lt"]));
    ok(&s.docker(&["run", "-d", "--name", "filler", "busybox", "sleep", "1000"]));
    ok(&s.docker(&[
        "run", "-d", "--name", "lt", "-e", "FOO=2", "busybox", "sleep", "1000",
    ]));
    let ip2 = ok(&s.docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "lt"]))
        .trim()
        .to_string();
    assert_ne!(ip, ip2);
    let env = ok(&s.docker(&["start", "-a", "lc"]));
    assert!(!env.contains("MY_DB_PORT="), "no ports exposed now:\n{env}");
    assert!(env.contains("MY_DB_NAME=/lc/my-db"), "{env}");
    let hosts = ok(&s.docker(&[
        "run",
        "--rm",
        "--link",
        "lt:db",
        "busybox",
        "cat",
        "/etc/hosts",
    ]));
    assert!(hosts.contains(&format!("{ip2}\tdb lt")), "{hosts}");
    let (code, resp) = s.curl("DELETE", "/containers/lc/my-db?link=1", None);
    assert_eq!(code, 204, "{resp}");
    assert_eq!(
        ok(&s.docker(&["inspect", "-f", "{{.HostConfig.Links}}", "lc"])).trim(),
        "[]"
    );
    let env = ok(&s.docker(&["start", "-a", "lc"]));
    assert!(!env.contains("MY_DB_NAME"), "the link is gone:\n{env}");
    assert!(
        env.contains("MY_DB_ENV_FOO=mine"),
        "its own variable stays:\n{env}"
    );
    let (code, _) = s.curl("DELETE", "/containers/lc/nope?link=1", None);
    assert_eq!(code, 404);
    let (code, _) = s.curl("DELETE", "/containers/lc/my-db", None);
    assert_eq!(
        code, 404,
        "without link=1 it names a container, which does not exist"
    );
    ok(&s.docker(&["rm", "-f", "lt", "lc", "filler"]));
}

/// What inspect shows of an endpoint as it was asked for (IPAMConfig with the static
/// address and link-local IPs, which are on the interface; DriverOpts; Links; the MAC of a
/// container not yet started); `stats` has the interfaces' counters; a stopped
/// container's volume is readable with `get_archive`; `prune` takes filters and says
/// what it freed; `diff` leaves out what the runtime made for its own mounts; a commit
/// names its parent; a broken archive to `load` is the client's error.
#[test]
fn docker_py_endpoints_stats_archive_prune() {
    if !need_root("docker_py_endpoints_stats_archive_prune") {
        return;
    }
    let s = Stack::busybox("api-pyfid");
    let k = std::process::id() % 200 + 20;
    py(
        &s,
        &format!(
            r#"
ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.{k}.0.0/16",
    iprange="10.{k}.5.0/24", gateway="10.{k}.5.254", aux_addresses={{"a": "10.{k}.5.1"}})])
net = api.create_network("pyfid", ipam=ipam)["Id"]
cfg = api.inspect_network(net)["IPAM"]["Config"]
assert cfg == [{{"Subnet": "10.{k}.0.0/16", "IPRange": "10.{k}.5.0/24", "Gateway": "10.{k}.5.254",
    "AuxiliaryAddresses": {{"a": "10.{k}.5.1"}}}}], cfg
ct = api.create_container("busybox", "ip -o addr show eth0",
    host_config=api.create_host_config(network_mode="pyfid"),
    networking_config=api.create_networking_config({{"pyfid": api.create_endpoint_config(
        ipv4_address="10.{k}.0.23", link_local_ips=["169.254.8.8"],
        driver_opt={{"com.example.opt": "on"}}, links=[("lt", "bar")])}}))
n = api.inspect_container(ct)["NetworkSettings"]["Networks"]["pyfid"]
assert n["IPAMConfig"] == {{"IPv4Address": "10.{k}.0.23", "LinkLocalIPs": ["169.254.8.8"]}}, n
assert n["DriverOpts"] == {{"com.example.opt": "on"}} and n["Links"] == ["lt:bar"], n
api.start(ct); api.wait(ct)
out = api.logs(ct).decode()
assert "10.{k}.0.23/16" in out and "169.254.8.8/16" in out, out
api.remove_container(ct)
# The first automatic address skips the auxiliary one.
ct = api.create_container("busybox", "true", host_config=api.create_host_config(network_mode="pyfid"))
api.start(ct); api.wait(ct)
ct2 = api.create_container("busybox", "sleep 100", host_config=api.create_host_config(network_mode="pyfid"))
api.start(ct2)
got = api.inspect_container(ct2)["NetworkSettings"]["Networks"]["pyfid"]["IPAddress"]
assert got.startswith("10.{k}.5.") and got not in ("10.{k}.5.1", "10.{k}.5.254"), got
st = api.stats(ct2, stream=False)
assert "eth0" in st["networks"] and "rx_bytes" in st["networks"]["eth0"], st.get("networks")
api.remove_container(ct2, force=True)
api.remove_container(ct)
made = api.create_container("busybox", "top")
api.connect_container_to_network(made, "pyfid", mac_address="02:42:ac:11:00:09")
assert api.inspect_container(made)["NetworkSettings"]["Networks"]["pyfid"]["MacAddress"] == "02:42:ac:11:00:09"
api.remove_container(made)
api.remove_network(net)
# A stopped container's volume, through the archive endpoint.
ct = api.create_container("busybox", "sh -c 'echo in-vol > /v/f'", volumes=["/v"],
    host_config=api.create_host_config(binds={{"pyfidvol": {{"bind": "/v", "mode": "rw"}}}}))
api.start(ct); api.wait(ct)
bits, stat = api.get_archive(ct, "/v/f")
with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as t:
    assert t.extractfile("f").read() == b"in-vol\n"
# diff: only what the command changed.
ct2 = api.create_container("busybox", "touch /test")
api.start(ct2); api.wait(ct2)
assert api.diff(ct2) == [{{"Path": "/test", "Kind": 1}}], api.diff(ct2)
# commit: the parent is the container's image.
img = api.commit(ct2)["Id"]
assert api.inspect_image(img)["Parent"] == api.inspect_image("busybox")["Id"]
api.remove_image(img)
# prune: filters, and the space the writable layers held.
ct3 = api.create_container("busybox", "sh -c 'head -c 100000 /dev/zero > /z'", labels={{"keep": "yes"}})
api.start(ct3); api.wait(ct3)
r = api.prune_containers(filters={{"label": "keep=no"}})
assert not r["ContainersDeleted"], r
r = api.prune_containers(filters={{"label!": "keep"}})
assert ct["Id"] in r["ContainersDeleted"] and ct2["Id"] in r["ContainersDeleted"], r
assert ct3["Id"] not in r["ContainersDeleted"], r
r = api.prune_containers(filters={{"until": "1h"}})
assert not r["ContainersDeleted"], "made less than an hour ago"
r = api.prune_containers(filters={{"label": "keep"}})
assert r["ContainersDeleted"] == [ct3["Id"]] and r["SpaceReclaimed"] >= 100000, r
try:
    api.prune_containers(filters={{"bogus": "x"}})
    raise SystemExit("bogus filter accepted")
except docker.errors.APIError as e:
    assert e.response.status_code == 400
api.remove_volume("pyfidvol")
try:
    c.images.load(b"abc")
    raise SystemExit("load of junk accepted")
except docker.errors.ImageLoadError as e:
    assert "not a tar file" in str(e), e
"#
        ),
    );
}

/// Pulling an image already present says so the way dockerd does, and fetches nothing.
#[test]
fn pull_of_present_image_is_up_to_date() {
    if !need_root("pull_of_present_image_is_up_to_date") {
        return;
    }
    let s = Stack::busybox("api-uptodate");
    let name = format!("127.0.0.1:{}/up/busy:1", s.registry);
    ok(&s.docker(&["tag", "busybox", &name]));
    ok(&s.docker(&["push", &name]));
    ok(&s.docker(&["rmi", &name]));
    let first = ok(&s.docker(&["pull", &name]));
    assert!(first.contains("Downloaded newer image"), "{first}");
    let again = ok(&s.docker(&["pull", &name]));
    assert!(again.contains("Image is up to date"), "{again}");
    assert!(!again.contains("Already exists"), "{again}");
}

/// The classic builder's options as docker-py sends them: `extrahosts` reach RUN steps,
/// a failed RUN's exit code is in `errorDetail.code`, stderr is marked red, `cachefrom`
/// limits the cache to steps of the named images, resources go to the RUN containers,
/// `squash` is refused (no experimental mode), a Dockerfile outside the context (sent twice
/// under `dockerfile`) is found, and `.dockerignore` exceptions inside an excluded
/// directory are kept while the Dockerfile and .dockerignore it names are left out.
#[test]
fn docker_py_build_options() {
    if !need_root("docker_py_build_options") {
        return;
    }
    let s = Stack::busybox("api-pybuild");
    py(
        &s,
        r#"
import os, tempfile
def run(**kw):
    return list(api.build(decode=True, **kw))
def df(text):
    return io.BytesIO(text.encode())
out = run(fileobj=df("FROM busybox\nRUN grep -q 'extra.test' /etc/hosts && ping -c1 -W1 extra.test\n"),
          extra_hosts={"extra.test": "127.0.0.1"}, tag="pyb1")
assert "errorDetail" not in out[-1], out
out = run(fileobj=df("FROM busybox\nRUN exit 7\n"), network_mode="none")
assert out[-1]["errorDetail"]["code"] == 7, out[-1]
out = run(fileobj=df("FROM busybox\nRUN echo to-stderr >&2\n"), nocache=True)
assert "\x1b[91mto-stderr\n\x1b[0m" in [o.get("stream") for o in out], out
script = "FROM busybox\nENV A=1\nRUN touch /a\nRUN touch /b\n"
run(fileobj=df(script), tag="pycache1")
hits = lambda out: sum("Using cache" in o.get("stream", "") for o in out)
assert hits(run(fileobj=df(script), tag="pycache2", cache_from=["pycache1"])) == 3
assert hits(run(fileobj=df(script), tag="pycache3", cache_from=["busybox"])) == 0
assert hits(run(fileobj=df(script), tag="pycache4")) == 3
out = run(fileobj=df("FROM busybox\nRUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max\n"),
          container_limits={"memory": 64 << 20}, nocache=True)
assert any(o.get("stream", "").strip() == str(64 << 20) for o in out), out
try:
    run(fileobj=df("FROM busybox\n"), squash=True)
    raise SystemExit("squash accepted")
except docker.errors.APIError as e:
    assert "experimental" in str(e), e
ctx = tempfile.mkdtemp(); other = tempfile.mkdtemp()
open(os.path.join(ctx, "file.txt"), "w").write("x")
os.makedirs(os.path.join(ctx, "ignored", "sub"))
for f in ("ignored/sub/keep", "ignored/sub/drop"):
    open(os.path.join(ctx, f), "w").write("x")
open(os.path.join(ctx, ".dockerignore"), "w").write("ignored\n!ignored/sub/keep\nDockerfile\n.dockerignore\n")
open(os.path.join(ctx, "Dockerfile"), "w").write("FROM busybox\nCOPY . /src\n")
out = run(path=ctx, tag="pyignore")
assert "Successfully tagged" in out[-1].get("stream", ""), out
ct = api.create_container("pyignore", "find /src -type f")
api.start(ct); api.wait(ct)
assert sorted(api.logs(ct).decode().split()) == ["/src/file.txt", "/src/ignored/sub/keep"], api.logs(ct)
open(os.path.join(other, "Dockerfile"), "w").write("FROM busybox\nCOPY file.txt /f\n")
out = run(path=ctx, dockerfile=os.path.join(other, "Dockerfile"), tag="pyoutside")
assert "Successfully tagged" in out[-1].get("stream", ""), out
"#,
    );
}
