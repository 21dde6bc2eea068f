//! System commands: version, info, events, system df/prune, inspect, volume ….

use hyper::Method;
use serde_json::{json, Value};

use crate::client::{self, Client};
use crate::{enc, filters_json, table, ListArgs, Outcome, VolumeCmd};

pub async fn version(c: &Client, format: Option<&str>) -> Outcome {
    let server = c.get("/version").await?;
    let v = json!({
        "Client": {"Version": env!("CARGO_PKG_VERSION"), "ApiVersion": "1.45", "Os": "linux"},
        "Server": server,
    });
    if let Some(f) = format {
        println!("{}", table::render(f, &v));
        return Ok(0);
    }
    println!(
        "Client:\n Version:      {}\n API version:  1.45",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "\nServer: {}\n Engine:\n  Version:      {}\n  API version:  {} (minimum version {})\n  OS/Arch:      {}/{}\n  Kernel:       {}",
        server["Platform"]["Name"].as_str().unwrap_or(""),
        server["Version"].as_str().unwrap_or(""),
        server["ApiVersion"].as_str().unwrap_or(""),
        server["MinAPIVersion"].as_str().unwrap_or(""),
        server["Os"].as_str().unwrap_or(""),
        server["Arch"].as_str().unwrap_or(""),
        server["KernelVersion"].as_str().unwrap_or(""),
    );
    Ok(0)
}

pub async fn info(c: &Client, format: Option<&str>) -> Outcome {
    let i = c.get("/info").await?;
    if let Some(f) = format {
        println!("{}", table::render(f, &i));
        return Ok(0);
    }
    let s = |k: &str| match &i[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    };
    println!("Server:");
    println!(" Containers: {}", s("Containers"));
    println!("  Running: {}", s("ContainersRunning"));
    println!("  Paused: {}", s("ContainersPaused"));
    println!("  Stopped: {}", s("ContainersStopped"));
    println!(" Images: {}", s("Images"));
    println!(" Server Version: {}", s("ServerVersion"));
    println!(" Storage Driver: {}", s("Driver"));
    println!(" Cgroup Driver: {}", s("CgroupDriver"));
    println!(" Cgroup Version: {}", s("CgroupVersion"));
    println!(" Kernel Version: {}", s("KernelVersion"));
    println!(" Operating System: {}", s("OperatingSystem"));
    println!(" CPUs: {}", s("NCPU"));
    println!(
        " Total Memory: {}",
        table::size(i["MemTotal"].as_f64().unwrap_or(0.0))
    );
    println!(" Docker Root Dir: {}", s("DockerRootDir"));
    Ok(0)
}

pub async fn events(
    c: &Client,
    since: Option<&str>,
    until: Option<&str>,
    filters: &[String],
    format: Option<&str>,
) -> Outcome {
    let mut q = "/events?".to_string();
    if let Some(s) = since {
        q.push_str(&format!("since={}&", enc(s)));
    }
    if let Some(u) = until {
        q.push_str(&format!("until={}&", enc(u)));
    }
    if !filters.is_empty() {
        q.push_str(&format!("filters={}", enc(&filters_json(filters))));
    }
    let r = c.call(Method::GET, &q, client::empty()).await?;
    let mut body = r.into_body();
    let mut pending = Vec::new();
    while let Some(chunk) = client::next_chunk(&mut body).await {
        pending.extend_from_slice(&chunk?);
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            let Ok(e) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            match format {
                Some(f) => println!("{}", table::render(f, &e)),
                None => {
                    let attrs: Vec<String> = e["Actor"]["Attributes"]
                        .as_object()
                        .map(|o| {
                            o.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                                .collect()
                        })
                        .unwrap_or_default();
                    let t = e["time"].as_i64().unwrap_or(0);
                    println!(
                        "{} {} {} {} ({})",
                        berth_time(t),
                        e["Type"].as_str().unwrap_or(""),
                        e["Action"].as_str().unwrap_or(""),
                        e["Actor"]["ID"].as_str().unwrap_or(""),
                        attrs.join(", ")
                    );
                }
            }
        }
    }
    Ok(0)
}

/// Seconds since the epoch as RFC 3339 UTC (whole seconds).
fn berth_time(t: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

pub async fn df(c: &Client, verbose: bool) -> Outcome {
    let d = c.get("/system/df").await?;
    let arr = |k: &str| d[k].as_array().cloned().unwrap_or_default();
    let (images, ctrs, vols) = (arr("Images"), arr("Containers"), arr("Volumes"));
    let img_size: f64 = images.iter().filter_map(|i| i["Size"].as_f64()).sum();
    let img_active = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
        .count();
    let img_unused: f64 = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) == 0)
        .filter_map(|i| i["Size"].as_f64())
        .sum();
    let ctr_size: f64 = ctrs.iter().filter_map(|c| c["SizeRw"].as_f64()).sum();
    let ctr_active = ctrs.iter().filter(|c| c["State"] == "running").count();
    let ctr_stopped: f64 = ctrs
        .iter()
        .filter(|c| c["State"] != "running")
        .filter_map(|c| c["SizeRw"].as_f64())
        .sum();
    let vol_size: f64 = vols
        .iter()
        .filter_map(|v| v["UsageData"]["Size"].as_f64())
        .sum();
    let vol_active = vols
        .iter()
        .filter(|v| v["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0)
        .count();
    let vol_unused: f64 = vols
        .iter()
        .filter(|v| v["UsageData"]["RefCount"].as_i64().unwrap_or(0) == 0)
        .filter_map(|v| v["UsageData"]["Size"].as_f64())
        .sum();
    let pct = |part: f64, all: f64| {
        if all > 0.0 {
            format!("{} ({:.0}%)", table::size(part), part * 100.0 / all)
        } else {
            "0B".into()
        }
    };
    table::print(
        &["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        &[
            vec![
                "Images".into(),
                images.len().to_string(),
                img_active.to_string(),
                table::size(img_size),
                pct(img_unused, img_size),
            ],
            vec![
                "Containers".into(),
                ctrs.len().to_string(),
                ctr_active.to_string(),
                table::size(ctr_size),
                pct(ctr_stopped, ctr_size),
            ],
            vec![
                "Local Volumes".into(),
                vols.len().to_string(),
                vol_active.to_string(),
                table::size(vol_size),
                pct(vol_unused, vol_size),
            ],
            vec![
                "Build Cache".into(),
                "0".into(),
                "0".into(),
                "0B".into(),
                "0B".into(),
            ],
        ],
    );
    if verbose {
        println!("\nLocal Volumes space usage:\n");
        let rows: Vec<Vec<String>> = vols
            .iter()
            .map(|v| {
                vec![
                    v["Name"].as_str().unwrap_or("").to_string(),
                    v["UsageData"]["RefCount"].to_string(),
                    table::size(v["UsageData"]["Size"].as_f64().unwrap_or(0.0)),
                ]
            })
            .collect();
        table::print(&["VOLUME NAME", "LINKS", "SIZE"], &rows);
    }
    Ok(0)
}

pub async fn prune(c: &Client, force: bool, volumes: bool) -> Outcome {
    if !force {
        eprintln!("WARNING! This will remove all stopped containers and dangling images{}. Use -f to confirm.", if volumes { ", and anonymous volumes not used by at least one container" } else { "" });
        return Ok(1);
    }
    let r = c.post("/containers/prune", None).await?;
    for id in r["ContainersDeleted"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        println!("Deleted Container: {}", id.as_str().unwrap_or(""));
    }
    if volumes {
        let r = c.post("/volumes/prune", None).await?;
        for v in r["VolumesDeleted"].as_array().cloned().unwrap_or_default() {
            println!("Deleted Volume: {}", v.as_str().unwrap_or(""));
        }
    }
    let r = c.post("/images/prune", None).await?;
    for i in r["ImagesDeleted"].as_array().cloned().unwrap_or_default() {
        if let Some(d) = i["Deleted"].as_str() {
            println!("Deleted Image: {d}");
        }
    }
    Ok(0)
}

/// Containers first, then images, then volumes, like docker's untyped inspect.
pub async fn inspect(c: &Client, objects: &[String], format: Option<&str>) -> Outcome {
    let mut out = Vec::new();
    let mut code = 0;
    for o in objects {
        let mut found = None;
        for path in [
            format!("/containers/{}/json", enc(o)),
            format!("/images/{}/json", enc(o)),
            format!("/volumes/{}", enc(o)),
        ] {
            match c.get(&path).await {
                Ok(v) => {
                    found = Some(v);
                    break;
                }
                Err(e) if e.status == Some(hyper::StatusCode::NOT_FOUND) => continue,
                Err(e) => return Err(e),
            }
        }
        match found {
            Some(v) => out.push(v),
            None => {
                eprintln!("Error: No such object: {o}");
                code = 1;
            }
        }
    }
    match format {
        Some(f) => {
            for v in &out {
                println!("{}", table::render(f, v));
            }
        }
        None => println!(
            "{}",
            serde_json::to_string_pretty(&Value::from(out)).unwrap_or_default()
        ),
    }
    Ok(code)
}

pub async fn volume(c: &Client, cmd: VolumeCmd) -> Outcome {
    match cmd {
        VolumeCmd::Create { label, name } => {
            let mut labels = serde_json::Map::new();
            for l in &label {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                labels.insert(k.into(), v.into());
            }
            let r = c
                .post(
                    "/volumes/create",
                    Some(json!({"Name": name.unwrap_or_default(), "Labels": labels})),
                )
                .await?;
            println!("{}", r["Name"].as_str().unwrap_or(""));
            Ok(0)
        }
        VolumeCmd::Ls(ListArgs {
            quiet,
            filter,
            format,
        }) => {
            let r = c.get(&crate::with_filters("/volumes", &filter)).await?;
            let vols = r["Volumes"].as_array().cloned().unwrap_or_default();
            if quiet {
                for v in &vols {
                    println!("{}", v["Name"].as_str().unwrap_or(""));
                }
            } else if let Some(f) = format {
                let header = json!({"Driver": "DRIVER", "Name": "VOLUME NAME"});
                table::print_format(&f, &header, &vols);
            } else {
                let rows: Vec<Vec<String>> = vols
                    .iter()
                    .map(|v| {
                        vec![
                            v["Driver"].as_str().unwrap_or("").to_string(),
                            v["Name"].as_str().unwrap_or("").to_string(),
                        ]
                    })
                    .collect();
                table::print(&["DRIVER", "VOLUME NAME"], &rows);
            }
            Ok(0)
        }
        VolumeCmd::Inspect(args) => crate::inspect_each(c, "/volumes", &args).await,
        VolumeCmd::Rm { force, volumes } => {
            let mut code = 0;
            for v in &volumes {
                match c
                    .json(
                        Method::DELETE,
                        &format!("/volumes/{}?force={}", enc(v), force as u8),
                        None,
                    )
                    .await
                {
                    Ok(_) => println!("{v}"),
                    Err(e) => {
                        eprintln!("{e}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        VolumeCmd::Prune { all, force } => {
            if !force {
                eprintln!("WARNING! This will remove anonymous local volumes not used by at least one container. Use -f to confirm.");
                return Ok(1);
            }
            let q = if all {
                format!("/volumes/prune?filters={}", enc(r#"{"all":["true"]}"#))
            } else {
                "/volumes/prune".into()
            };
            let r = c.post(&q, None).await?;
            println!("Deleted Volumes:");
            for v in r["VolumesDeleted"].as_array().cloned().unwrap_or_default() {
                println!("{}", v.as_str().unwrap_or(""));
            }
            println!(
                "\nTotal reclaimed space: {}",
                table::size(r["SpaceReclaimed"].as_f64().unwrap_or(0.0))
            );
            Ok(0)
        }
    }
}
