//! Container commands: run, create, start, stop, restart, kill, rm, ps, logs, exec, attach,
//! top, commit, diff, wait, pause, unpause, rename (cp and export are in [`crate::copy`]).

use hyper::Method;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::client::{self, ApiError, Client};
use crate::{enc, filters_json, stream, table, Outcome, RunOpts};

pub(crate) fn bad(message: impl Into<String>) -> ApiError {
    ApiError {
        status: None,
        message: message.into(),
    }
}

/// "64m" → bytes.
pub fn parse_bytes(s: &str) -> Result<i64, ApiError> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<f64>()
        .ok()
        .filter(|n| *n >= 0.0)
        .map(|n| (n * mult as f64) as i64)
        .ok_or_else(|| bad(format!("invalid size: '{s}'")))
}

/// `--restart NAME[:MAX]` as the API's RestartPolicy.
fn restart_policy(r: &str) -> Result<Value, ApiError> {
    let (name, n) = r.split_once(':').unwrap_or((r, "0"));
    let n: i64 = n
        .parse()
        .map_err(|_| bad(format!("invalid restart policy {r}")))?;
    Ok(json!({"Name": name, "MaximumRetryCount": n}))
}

/// The container create body for `opts`.
pub fn create_body(o: &RunOpts) -> Result<Value, ApiError> {
    let mut host = json!({});
    let mut cfg = json!({
        "Image": o.image,
        "Tty": o.tty,
        "OpenStdin": o.interactive,
        "StdinOnce": o.interactive,
        "AttachStdin": o.interactive,
        "AttachStdout": true,
        "AttachStderr": true,
        "Env": o.env,
    });
    if !o.command.is_empty() {
        cfg["Cmd"] = json!(o.command);
    }
    if let Some(e) = &o.entrypoint {
        cfg["Entrypoint"] = json!([e]);
    }
    if let Some(w) = &o.workdir {
        cfg["WorkingDir"] = w.clone().into();
    }
    if let Some(u) = &o.user {
        cfg["User"] = u.clone().into();
    }
    if let Some(h) = &o.hostname {
        cfg["Hostname"] = h.clone().into();
    }
    if let Some(s) = &o.stop_signal {
        cfg["StopSignal"] = s.clone().into();
    }
    let mut labels = serde_json::Map::new();
    for l in &o.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.into(), v.into());
    }
    cfg["Labels"] = labels.into();
    // -v: a bare /path is an anonymous volume; anything else a bind or named volume.
    let mut binds = Vec::new();
    let mut volumes = serde_json::Map::new();
    for v in &o.volume {
        if v.starts_with('/') && !v.contains(':') {
            volumes.insert(v.clone(), json!({}));
        } else {
            binds.push(v.clone());
        }
    }
    if !volumes.is_empty() {
        cfg["Volumes"] = volumes.into();
    }
    host["Binds"] = json!(binds);
    let mut mounts = Vec::new();
    for m in &o.mount {
        let mut mj = json!({"Type": "volume"});
        for kv in m.split(',') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, "true"));
            match k {
                "type" => mj["Type"] = v.into(),
                "source" | "src" => mj["Source"] = v.into(),
                "target" | "destination" | "dst" => mj["Target"] = v.into(),
                "readonly" | "ro" => mj["ReadOnly"] = (v == "true" || v == "1").into(),
                "volume-nocopy" => mj["VolumeOptions"] = json!({"NoCopy": v == "true"}),
                "tmpfs-size" => mj["TmpfsOptions"]["SizeBytes"] = parse_bytes(v)?.into(),
                other => return Err(bad(format!("invalid field '{other}' in --mount {m}"))),
            }
        }
        mounts.push(mj);
    }
    host["Mounts"] = json!(mounts);
    let mut ports = serde_json::Map::new();
    let mut exposed = serde_json::Map::new();
    for p in &o.publish {
        // [ip:]host:container[/proto] or container[/proto]
        let (spec, proto) = p.rsplit_once('/').unwrap_or((p, "tcp"));
        let parts: Vec<&str> = spec.split(':').collect();
        let (ip, hp, cp) = match parts.as_slice() {
            [c] => ("", "", *c),
            [h, c] => ("", *h, *c),
            [i, h, c] => (*i, *h, *c),
            _ => return Err(bad(format!("invalid port specification: \"{p}\""))),
        };
        if cp.parse::<u16>().is_err() || (!hp.is_empty() && hp.parse::<u16>().is_err()) {
            return Err(bad(format!("invalid port specification: \"{p}\"")));
        }
        let key = format!("{cp}/{proto}");
        exposed.insert(key.clone(), json!({}));
        ports
            .entry(key)
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("array")
            .push(json!({"HostIp": ip, "HostPort": hp}));
    }
    for e in &o.expose {
        let (p, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        if p.parse::<u16>().is_err() {
            return Err(bad(format!("invalid range format for --expose: {e}")));
        }
        exposed.insert(format!("{p}/{proto}"), json!({}));
    }
    if !exposed.is_empty() {
        cfg["ExposedPorts"] = exposed.into();
    }
    host["PortBindings"] = ports.into();
    host["PublishAllPorts"] = o.publish_all.into();
    host["ExtraHosts"] = json!(o.add_host);
    host["Links"] = json!(o.link);
    host["Dns"] = json!(o.dns);
    if let Some(r) = &o.restart {
        host["RestartPolicy"] = restart_policy(r)?;
    }
    if let Some(m) = &o.memory {
        host["Memory"] = parse_bytes(m)?.into();
    }
    if let Some(c) = o.cpus {
        host["NanoCpus"] = ((c * 1e9) as i64).into();
    }
    if let Some(s) = o.cpu_shares {
        host["CpuShares"] = s.into();
    }
    if let Some(p) = o.pids_limit {
        host["PidsLimit"] = p.into();
    }
    host["CapAdd"] = json!(o.cap_add);
    host["CapDrop"] = json!(o.cap_drop);
    host["Privileged"] = o.privileged.into();
    host["ReadonlyRootfs"] = o.read_only.into();
    let mut tmpfs = serde_json::Map::new();
    for t in &o.tmpfs {
        let (p, opts) = t.split_once(':').unwrap_or((t, ""));
        tmpfs.insert(p.into(), opts.into());
    }
    host["Tmpfs"] = tmpfs.into();
    host["VolumesFrom"] = json!(o.volumes_from);
    if let Some(n) = &o.network {
        host["NetworkMode"] = n.clone().into();
        let mut ec = json!({"Aliases": o.network_alias});
        if let Some(ip) = &o.ip {
            ec["IPAMConfig"] = json!({"IPv4Address": ip});
        }
        if let Some(m) = &o.mac_address {
            ec["MacAddress"] = m.clone().into();
        }
        let mut eps = serde_json::Map::new();
        eps.insert(n.clone(), ec);
        cfg["NetworkingConfig"] = json!({"EndpointsConfig": eps});
    }
    if let Some(m) = &o.mac_address {
        cfg["MacAddress"] = m.clone().into();
    }
    let mut ulimits = Vec::new();
    for u in &o.ulimit {
        let (name, v) = u
            .split_once('=')
            .ok_or_else(|| bad(format!("invalid ulimit argument: {u}")))?;
        let (soft, hard) = v.split_once(':').unwrap_or((v, v));
        let num = |x: &str| {
            x.parse::<i64>()
                .map_err(|_| bad(format!("invalid ulimit argument: {u}")))
        };
        ulimits.push(json!({"Name": name, "Soft": num(soft)?, "Hard": num(hard)?}));
    }
    host["Ulimits"] = json!(ulimits);
    cfg["HostConfig"] = host;
    Ok(cfg)
}

/// Create, pulling the image first if the daemon does not have it (like docker).
async fn create(c: &Client, o: &RunOpts, auto_remove: bool) -> Result<String, ApiError> {
    let mut body = create_body(o)?;
    body["HostConfig"]["AutoRemove"] = auto_remove.into();
    let path = match &o.name {
        Some(n) => format!("/containers/create?name={}", enc(n)),
        None => "/containers/create".into(),
    };
    let r = match c.post(&path, Some(body.clone())).await {
        Err(e) if e.status == Some(hyper::StatusCode::NOT_FOUND) => {
            eprintln!("Unable to find image '{}' locally", o.image);
            crate::images::pull_with_progress(c, &o.image, false).await?;
            c.post(&path, Some(body)).await?
        }
        r => r?,
    };
    for w in r["Warnings"].as_array().cloned().unwrap_or_default() {
        if let Some(w) = w.as_str() {
            eprintln!("WARNING: {w}");
        }
    }
    r["Id"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| bad("the daemon returned no container ID"))
}

pub async fn create_cmd(c: &Client, o: RunOpts) -> Outcome {
    println!("{}", create(c, &o, false).await?);
    Ok(0)
}

pub async fn run(c: &Client, o: RunOpts, detach: bool, rm: bool) -> Outcome {
    let id = create(c, &o, rm).await?;
    if detach {
        c.post(&format!("/containers/{id}/start"), None).await?;
        println!("{id}");
        return Ok(0);
    }
    let io = c
        .hijack(
            &format!(
                "/containers/{id}/attach?stream=1&stdout=1&stderr=1&stdin={}",
                o.interactive as u8
            ),
            None,
        )
        .await?;
    // The wait's headers arrive before the start, so no exit is missed.
    let condition = if rm { "removed" } else { "next-exit" };
    let wait = c
        .call(
            Method::POST,
            &format!("/containers/{id}/wait?condition={condition}"),
            client::empty(),
        )
        .await?;
    c.post(&format!("/containers/{id}/start"), None).await?;
    if o.tty {
        stream::follow_resizes(c, format!("/containers/{id}/resize"));
    }
    if stream::session(io, o.tty, o.interactive).await? {
        return Ok(0); // detached: the container runs on
    }
    let mut body = wait.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = client::next_chunk(&mut body).await {
        bytes.extend_from_slice(&chunk?);
    }
    let st: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    Ok(st["StatusCode"].as_i64().unwrap_or(0) as i32)
}

pub async fn start(c: &Client, ids: &[String], attach: bool, interactive: bool) -> Outcome {
    if attach || interactive {
        let id = &ids[0];
        let info = c.get(&format!("/containers/{}/json", enc(id))).await?;
        let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
        let io = c
            .hijack(
                &format!(
                    "/containers/{}/attach?stream=1&stdout=1&stderr=1&stdin={}",
                    enc(id),
                    interactive as u8
                ),
                None,
            )
            .await?;
        c.post(&format!("/containers/{}/start", enc(id)), None)
            .await?;
        stream::session(io, tty, interactive).await?;
        let st = c
            .post(&format!("/containers/{}/wait", enc(id)), None)
            .await?;
        return Ok(st["StatusCode"].as_i64().unwrap_or(0) as i32);
    }
    each(c, ids, "start", None).await
}

/// POST /containers/{id}/{action} for each; print the names like docker.
pub async fn each(c: &Client, ids: &[String], action: &str, t: Option<i64>) -> Outcome {
    let q = t.map(|t| format!("?t={t}")).unwrap_or_default();
    post_each(c, ids, &format!("{action}{q}"), None).await
}

/// POST /containers/{id}/{tail} with `body` for each container; its name printed on
/// success, the error on failure (exit 1 if any failed), as docker does.
async fn post_each(c: &Client, ids: &[String], tail: &str, body: Option<Value>) -> Outcome {
    let mut code = 0;
    for id in ids {
        match c
            .post(&format!("/containers/{}/{tail}", enc(id)), body.clone())
            .await
        {
            Ok(_) => println!("{id}"),
            Err(e) => {
                eprintln!("{e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub async fn kill(c: &Client, ids: &[String], signal: &str) -> Outcome {
    let mut code = 0;
    for id in ids {
        match c
            .post(
                &format!("/containers/{}/kill?signal={}", enc(id), enc(signal)),
                None,
            )
            .await
        {
            Ok(_) => println!("{id}"),
            Err(e) => {
                eprintln!("{e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub async fn rm(c: &Client, ids: &[String], force: bool, volumes: bool) -> Outcome {
    let mut code = 0;
    for id in ids {
        let path = format!(
            "/containers/{}?force={}&v={}",
            enc(id),
            force as u8,
            volumes as u8
        );
        match c.json(Method::DELETE, &path, None).await {
            Ok(_) => println!("{id}"),
            Err(e) => {
                eprintln!("{e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn short(id: &str, no_trunc: bool) -> String {
    let id = id.trim_start_matches("sha256:");
    if no_trunc {
        id.to_string()
    } else {
        id.chars().take(12).collect()
    }
}

pub async fn ps(
    c: &Client,
    all: bool,
    quiet: bool,
    last: Option<usize>,
    no_trunc: bool,
    filters: &[String],
    format: Option<&str>,
) -> Outcome {
    let mut q = format!("/containers/json?all={}", (all || last.is_some()) as u8);
    if let Some(n) = last {
        q.push_str(&format!("&limit={n}"));
    }
    if !filters.is_empty() {
        q.push_str(&format!("&filters={}", enc(&filters_json(filters))));
    }
    let list = c.get(&q).await?;
    let mut rows: Vec<Value> = list.as_array().cloned().unwrap_or_default();
    // Filters the daemon may not apply itself.
    for f in filters {
        let (k, v) = f.split_once('=').unwrap_or((f, ""));
        rows.retain(|r| match k {
            "status" => r["State"] == v,
            "name" => r["Names"]
                .as_array()
                .is_some_and(|n| n.iter().any(|x| x.as_str().unwrap_or("").contains(v))),
            "id" => r["Id"].as_str().unwrap_or("").starts_with(v),
            "label" => match v.split_once('=') {
                Some((lk, lv)) => r["Labels"][lk] == lv,
                None => !r["Labels"][v].is_null(),
            },
            "ancestor" => r["Image"] == v,
            _ => true,
        });
    }
    if quiet {
        for r in &rows {
            println!("{}", short(r["Id"].as_str().unwrap_or(""), no_trunc));
        }
        return Ok(0);
    }
    let view: Vec<Value> = rows
        .iter()
        .map(|r| {
            let cmd = r["Command"].as_str().unwrap_or("");
            let cmd = if no_trunc || cmd.chars().count() <= 20 {
                cmd.to_string()
            } else {
                format!("{}…", cmd.chars().take(19).collect::<String>())
            };
            json!({
                "ID": short(r["Id"].as_str().unwrap_or(""), no_trunc),
                "Image": r["Image"],
                "Command": format!("\"{cmd}\""),
                "CreatedAt": r["Created"],
                "RunningFor": table::ago(r["Created"].as_i64().unwrap_or(0)),
                "Status": r["Status"],
                "State": r["State"],
                "Ports": ports_text(&r["Ports"]),
                "Names": r["Names"][0].as_str().unwrap_or("").trim_start_matches('/'),
                "Labels": r["Labels"],
            })
        })
        .collect();
    if let Some(f) = format {
        let header = json!({"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
            "RunningFor": "CREATED", "Status": "STATUS", "State": "STATE", "Ports": "PORTS", "Names": "NAMES"});
        table::print_format(f, &header, &view);
        return Ok(0);
    }
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let rows: Vec<Vec<String>> = view
        .iter()
        .map(|v| {
            vec![
                s(v, "ID"),
                s(v, "Image"),
                s(v, "Command"),
                s(v, "RunningFor"),
                s(v, "Status"),
                s(v, "Ports"),
                s(v, "Names"),
            ]
        })
        .collect();
    table::print(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ],
        &rows,
    );
    Ok(0)
}

pub async fn logs(
    c: &Client,
    id: &str,
    follow: bool,
    tail: Option<&str>,
    timestamps: bool,
) -> Outcome {
    let info = c.get(&format!("/containers/{}/json", enc(id))).await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let mut q = format!(
        "/containers/{}/logs?stdout=1&stderr=1&follow={}&timestamps={}",
        enc(id),
        follow as u8,
        timestamps as u8
    );
    if let Some(t) = tail {
        q.push_str(&format!("&tail={}", enc(t)));
    }
    let r = c.call(Method::GET, &q, client::empty()).await?;
    let mut body = r.into_body();
    let (tx, rx) = tokio::io::duplex(64 << 10);
    let pump = tokio::spawn(async move {
        let mut tx = tx;
        while let Some(chunk) = client::next_chunk(&mut body).await {
            let Ok(chunk) = chunk else { break };
            if tx.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    stream::output(rx, tty)
        .await
        .map_err(|e| bad(format!("logs: {e}")))?;
    let _ = pump.await;
    Ok(0)
}

pub struct ExecOpts {
    pub interactive: bool,
    pub tty: bool,
    pub detach: bool,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
}

pub async fn exec(c: &Client, id: &str, cmd: Vec<String>, o: ExecOpts) -> Outcome {
    let mut body = json!({
        "Cmd": cmd, "Tty": o.tty, "AttachStdin": o.interactive && !o.detach,
        "AttachStdout": !o.detach, "AttachStderr": !o.detach, "Env": o.env,
    });
    if let Some(u) = &o.user {
        body["User"] = u.clone().into();
    }
    if let Some(w) = &o.workdir {
        body["WorkingDir"] = w.clone().into();
    }
    let r = c
        .post(&format!("/containers/{}/exec", enc(id)), Some(body))
        .await?;
    let exec_id = r["Id"].as_str().unwrap_or("").to_string();
    if o.detach {
        c.post(
            &format!("/exec/{exec_id}/start"),
            Some(json!({"Detach": true, "Tty": o.tty})),
        )
        .await?;
        return Ok(0);
    }
    let io = c
        .hijack(
            &format!("/exec/{exec_id}/start"),
            Some(json!({"Detach": false, "Tty": o.tty})),
        )
        .await?;
    if o.tty {
        stream::follow_resizes(c, format!("/exec/{exec_id}/resize"));
    }
    stream::session(io, o.tty, o.interactive).await?;
    let st = c.get(&format!("/exec/{exec_id}/json")).await?;
    Ok(st["ExitCode"].as_i64().unwrap_or(0) as i32)
}

pub async fn attach(c: &Client, id: &str, stdin: bool) -> Outcome {
    let info = c.get(&format!("/containers/{}/json", enc(id))).await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let io = c
        .hijack(
            &format!(
                "/containers/{}/attach?stream=1&stdout=1&stderr=1&stdin={}",
                enc(id),
                stdin as u8
            ),
            None,
        )
        .await?;
    if tty {
        stream::follow_resizes(c, format!("/containers/{}/resize", enc(id)));
    }
    if stream::session(io, tty, stdin).await? {
        return Ok(0);
    }
    let now = c.get(&format!("/containers/{}/json", enc(id))).await?;
    if now["State"]["Running"].as_bool().unwrap_or(false) {
        return Ok(0); // detached
    }
    Ok(now["State"]["ExitCode"].as_i64().unwrap_or(0) as i32)
}

pub async fn top(c: &Client, id: &str, ps_args: &[String]) -> Outcome {
    let mut q = format!("/containers/{}/top", enc(id));
    if !ps_args.is_empty() {
        q.push_str(&format!("?ps_args={}", enc(&ps_args.join(" "))));
    }
    let r = c.get(&q).await?;
    let titles: Vec<String> = r["Titles"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = r["Processes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    p.as_array()
                        .map(|c| {
                            c.iter()
                                .map(|x| x.as_str().unwrap_or("").to_string())
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    let head: Vec<&str> = titles.iter().map(String::as_str).collect();
    table::print(&head, &rows);
    Ok(0)
}

pub async fn commit(
    c: &Client,
    id: &str,
    reference: Option<&str>,
    changes: &[String],
    message: Option<&str>,
    author: Option<&str>,
) -> Outcome {
    let mut q = format!("/commit?container={}", enc(id));
    if let Some(r) = reference {
        let (repo, tag) = match r.rsplit_once(':') {
            Some((a, b)) if !b.contains('/') => (a, Some(b)),
            _ => (r, None),
        };
        q.push_str(&format!("&repo={}", enc(repo)));
        if let Some(t) = tag {
            q.push_str(&format!("&tag={}", enc(t)));
        }
    }
    for ch in changes {
        q.push_str(&format!("&changes={}", enc(ch)));
    }
    if let Some(m) = message {
        q.push_str(&format!("&comment={}", enc(m)));
    }
    if let Some(a) = author {
        q.push_str(&format!("&author={}", enc(a)));
    }
    let r = c.post(&q, None).await?;
    println!("{}", r["Id"].as_str().unwrap_or(""));
    Ok(0)
}

/// A container list entry's ports as docker's PORTS column shows them.
fn ports_text(ports: &Value) -> String {
    let mut out: Vec<String> = ports
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let private = format!(
                "{}/{}",
                p["PrivatePort"],
                p["Type"].as_str().unwrap_or("tcp")
            );
            match p["PublicPort"].as_u64() {
                Some(public) => format!("{}:{public}->{private}", p["IP"].as_str().unwrap_or("")),
                None => private,
            }
        })
        .collect();
    out.sort();
    out.join(", ")
}

/// `port CONTAINER [PRIVATE]`: the published ports, as docker prints them.
pub async fn port(c: &Client, container: &str, private: Option<&str>) -> Outcome {
    let v = c
        .get(&format!("/containers/{}/json", enc(container)))
        .await?;
    let want = private.map(|p| {
        if p.contains('/') {
            p.to_string()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut found = false;
    for (k, list) in v["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        if want.as_ref().is_some_and(|w| *w != k) {
            continue;
        }
        for b in list.as_array().cloned().unwrap_or_default() {
            found = true;
            let addr = format!(
                "{}:{}",
                b["HostIp"].as_str().unwrap_or(""),
                b["HostPort"].as_str().unwrap_or("")
            );
            match &want {
                Some(_) => println!("{addr}"),
                None => println!("{k} -> {addr}"),
            }
        }
    }
    if let (Some(p), false) = (private, found) {
        return Err(bad(format!(
            "Error: No public port '{p}' published for {container}"
        )));
    }
    Ok(0)
}

pub async fn diff(c: &Client, id: &str) -> Outcome {
    let r = c.get(&format!("/containers/{}/changes", enc(id))).await?;
    for ch in r.as_array().cloned().unwrap_or_default() {
        let k = match ch["Kind"].as_u64() {
            Some(1) => "A",
            Some(2) => "D",
            _ => "C",
        };
        println!("{k} {}", ch["Path"].as_str().unwrap_or(""));
    }
    Ok(0)
}

pub async fn wait(c: &Client, ids: &[String]) -> Outcome {
    for id in ids {
        let r = c
            .post(&format!("/containers/{}/wait", enc(id)), None)
            .await?;
        println!("{}", r["StatusCode"].as_i64().unwrap_or(-1));
    }
    Ok(0)
}

pub async fn rename(c: &Client, id: &str, name: &str) -> Outcome {
    c.post(
        &format!("/containers/{}/rename?name={}", enc(id), enc(name)),
        None,
    )
    .await?;
    Ok(0)
}

/// `berth container prune [--filter k=v]`.
pub async fn prune(c: &Client, force: bool, filters: &[String]) -> Outcome {
    if !force {
        eprintln!("WARNING! This will remove all stopped containers. Use -f to confirm.");
        return Ok(1);
    }
    let r = c
        .post(&crate::with_filters("/containers/prune", filters), None)
        .await?;
    let ids = r["ContainersDeleted"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !ids.is_empty() {
        println!("Deleted Containers:");
        for id in ids {
            println!("{}", id.as_str().unwrap_or(""));
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        table::size(r["SpaceReclaimed"].as_f64().unwrap_or(0.0))
    );
    Ok(0)
}

/// What `berth update` changes.
pub struct UpdateOpts {
    pub memory: Option<String>,
    pub memory_swap: Option<String>,
    pub cpus: Option<f64>,
    pub cpu_shares: Option<i64>,
    pub pids_limit: Option<i64>,
    pub restart: Option<String>,
}

/// `berth update`: resources and the restart policy, for each container (its name printed
/// as docker does).
pub async fn update(c: &Client, ids: &[String], o: UpdateOpts) -> Outcome {
    let mut body = json!({});
    if let Some(m) = &o.memory {
        body["Memory"] = parse_bytes(m)?.into();
    }
    if let Some(m) = &o.memory_swap {
        body["MemorySwap"] = if m == "-1" { -1 } else { parse_bytes(m)? }.into();
    }
    if let Some(n) = o.cpus {
        body["NanoCpus"] = ((n * 1e9) as i64).into();
    }
    if let Some(s) = o.cpu_shares {
        body["CpuShares"] = s.into();
    }
    if let Some(p) = o.pids_limit {
        body["PidsLimit"] = p.into();
    }
    if let Some(r) = &o.restart {
        body["RestartPolicy"] = restart_policy(r)?;
    }
    if body.as_object().is_some_and(|m| m.is_empty()) {
        return Err(bad(
            "you must provide one or more flags when using this command",
        ));
    }
    post_each(c, ids, "update", Some(body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_flags_become_the_create_body() {
        let o = RunOpts {
            image: "busybox".into(),
            command: vec!["sh".into()],
            volume: vec!["/anon".into(), "/h:/c:ro".into(), "named:/n".into()],
            publish: vec!["8080:80".into(), "127.0.0.1:53:53/udp".into()],
            memory: Some("64m".into()),
            cpus: Some(1.5),
            restart: Some("on-failure:3".into()),
            ..Default::default()
        };
        let b = create_body(&o).unwrap();
        assert_eq!(b["Volumes"], json!({"/anon": {}}));
        assert_eq!(b["HostConfig"]["Binds"], json!(["/h:/c:ro", "named:/n"]));
        assert_eq!(b["HostConfig"]["Memory"], 64 << 20);
        assert_eq!(b["HostConfig"]["NanoCpus"], 1_500_000_000i64);
        assert_eq!(
            b["HostConfig"]["PortBindings"]["53/udp"],
            json!([{"HostIp": "127.0.0.1", "HostPort": "53"}])
        );
        assert_eq!(b["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
        let bad_port = RunOpts {
            publish: vec!["80:http".into()],
            ..o
        };
        assert!(create_body(&bad_port).is_err());
        assert!(parse_bytes("12x").is_err());
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
    }
}
