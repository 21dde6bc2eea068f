//! Image commands: images, pull and push (a progress bar per layer on a terminal), tag, rmi,
//! save, load, history, import.

use std::collections::HashMap;

use hyper::Method;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::client::{self, ApiError, Client};
use crate::{enc, table, term, Outcome};

fn bad(message: impl Into<String>) -> ApiError {
    ApiError {
        status: None,
        message: message.into(),
    }
}

/// Split `name[:tag]` (a port's colon is not a tag).
fn split_tag(r: &str) -> (&str, Option<&str>) {
    match r.rsplit_once(':') {
        Some((a, b)) if !b.contains('/') && !r.contains('@') => (a, Some(b)),
        _ => (r, None),
    }
}

/// Follow a JSON progress stream: per-layer bars on a terminal, lines otherwise.
async fn progress(body: &mut hyper::body::Incoming, quiet: bool) -> Result<(), ApiError> {
    let bars = term::is_tty(2).then(indicatif::MultiProgress::new);
    let mut by_id: HashMap<String, indicatif::ProgressBar> = HashMap::new();
    let style = indicatif::ProgressStyle::with_template(
        "{prefix}: {msg:12} [{bar:40}] {bytes}/{total_bytes}",
    )
    .expect("template")
    .progress_chars("=> ");
    let mut pending = Vec::new();
    while let Some(chunk) = client::next_chunk(body).await {
        pending.extend_from_slice(&chunk?);
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if let Some(e) = v["error"].as_str().or(v["errorDetail"]["message"].as_str()) {
                return Err(ApiError {
                    status: Some(hyper::StatusCode::INTERNAL_SERVER_ERROR),
                    message: e.to_string(),
                });
            }
            if quiet {
                continue;
            }
            let status = v["status"].as_str().unwrap_or("");
            let id = v["id"].as_str().unwrap_or("");
            match (&bars, id.is_empty()) {
                (_, true) => match &bars {
                    Some(m) => {
                        let _ = m.println(status);
                    }
                    None => println!("{status}"),
                },
                (Some(m), false) => {
                    let bar = by_id.entry(id.to_string()).or_insert_with(|| {
                        let b = m.add(indicatif::ProgressBar::new(0));
                        b.set_style(style.clone());
                        b.set_prefix(id.to_string());
                        b
                    });
                    let (cur, total) = (
                        v["progressDetail"]["current"].as_u64(),
                        v["progressDetail"]["total"].as_u64(),
                    );
                    if let Some(t) = total {
                        bar.set_length(t);
                    }
                    if let Some(c) = cur {
                        bar.set_position(c);
                    }
                    bar.set_message(status.to_string());
                    if status.starts_with("Pull complete")
                        || status.starts_with("Already exists")
                        || status.starts_with("Pushed")
                        || status.starts_with("Layer already exists")
                        || status.starts_with("Mounted")
                    {
                        if let Some(l) = bar.length() {
                            bar.set_position(l);
                        }
                        bar.finish_with_message(status.to_string());
                    }
                }
                (None, false) => {
                    if status != "Downloading" && status != "Pushing" && status != "Extracting" {
                        println!("{id}: {status}");
                    }
                }
            }
        }
    }
    Ok(())
}

pub async fn pull_with_progress(c: &Client, image: &str, quiet: bool) -> Result<(), ApiError> {
    let (name, tag) = split_tag(image);
    let q = format!(
        "/images/create?fromImage={}&tag={}",
        enc(name),
        enc(tag.unwrap_or("latest"))
    );
    let auth = crate::login::registry_auth(image);
    let r = c
        .call_with(Method::POST, &q, client::empty(), &auth)
        .await?;
    let mut body = r.into_body();
    progress(&mut body, quiet).await
}

pub async fn pull(c: &Client, image: &str, quiet: bool) -> Outcome {
    pull_with_progress(c, image, quiet).await?;
    if quiet {
        println!("{image}");
    }
    Ok(0)
}

pub async fn push(c: &Client, image: &str, quiet: bool) -> Outcome {
    let (name, tag) = split_tag(image);
    let mut q = format!("/images/{}/push", enc(name));
    if let Some(t) = tag {
        q.push_str(&format!("?tag={}", enc(t)));
    }
    let auth = crate::login::registry_auth(image);
    let r = c
        .call_with(Method::POST, &q, client::empty(), &auth)
        .await?;
    let mut body = r.into_body();
    progress(&mut body, quiet).await?;
    Ok(0)
}

pub async fn list(c: &Client, quiet: bool, all: bool, format: Option<&str>) -> Outcome {
    let r = c.get(&format!("/images/json?all={}", all as u8)).await?;
    let mut rows = Vec::new();
    let mut view = Vec::new();
    for i in r.as_array().cloned().unwrap_or_default() {
        let id = i["Id"].as_str().unwrap_or("");
        let short: String = id.trim_start_matches("sha256:").chars().take(12).collect();
        let tags: Vec<String> = i["RepoTags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let tags = if tags.is_empty() {
            vec!["<none>:<none>".to_string()]
        } else {
            tags
        };
        for t in tags {
            let (repo, tag) = t.rsplit_once(':').unwrap_or((&t, "<none>"));
            let created = table::ago(i["Created"].as_i64().unwrap_or(0));
            let size = table::size(i["Size"].as_f64().unwrap_or(0.0));
            view.push(serde_json::json!({
                "Repository": repo, "Tag": tag, "ID": short, "CreatedSince": created, "Size": size,
            }));
            rows.push(vec![
                repo.to_string(),
                tag.to_string(),
                short.clone(),
                created,
                size,
            ]);
        }
    }
    if quiet {
        let mut seen = std::collections::BTreeSet::new();
        for r in &rows {
            if seen.insert(r[2].clone()) {
                println!("{}", r[2]);
            }
        }
        return Ok(0);
    }
    if let Some(f) = format {
        let header = serde_json::json!({"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID",
            "CreatedSince": "CREATED", "Size": "SIZE"});
        table::print_format(f, &header, &view);
        return Ok(0);
    }
    table::print(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows);
    Ok(0)
}

pub async fn tag(c: &Client, source: &str, target: &str) -> Outcome {
    let (repo, tag) = split_tag(target);
    let mut q = format!("/images/{}/tag?repo={}", enc(source), enc(repo));
    if let Some(t) = tag {
        q.push_str(&format!("&tag={}", enc(t)));
    }
    c.post(&q, None).await?;
    Ok(0)
}

pub async fn rmi(c: &Client, images: &[String], force: bool) -> Outcome {
    let mut code = 0;
    for i in images {
        match c
            .json(
                Method::DELETE,
                &format!("/images/{}?force={}", enc(i), force as u8),
                None,
            )
            .await
        {
            Ok(r) => {
                for e in r.as_array().cloned().unwrap_or_default() {
                    if let Some(u) = e["Untagged"].as_str() {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = e["Deleted"].as_str() {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) => {
                eprintln!("{e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub async fn save(c: &Client, images: &[String], output: Option<&str>) -> Outcome {
    let names: Vec<String> = images.iter().map(|i| format!("names={}", enc(i))).collect();
    let r = c
        .call(
            Method::GET,
            &format!("/images/get?{}", names.join("&")),
            client::empty(),
        )
        .await?;
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin> = match output {
        Some(p) => Box::new(
            tokio::fs::File::create(p)
                .await
                .map_err(|e| bad(format!("{p}: {e}")))?,
        ),
        None if term::is_tty(1) => {
            return Err(bad(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect",
            ))
        }
        None => Box::new(tokio::io::stdout()),
    };
    let mut body = r.into_body();
    while let Some(chunk) = client::next_chunk(&mut body).await {
        out.write_all(&chunk?)
            .await
            .map_err(|e| bad(e.to_string()))?;
    }
    out.flush().await.map_err(|e| bad(e.to_string()))?;
    Ok(0)
}

pub async fn load(c: &Client, input: Option<&str>, quiet: bool) -> Outcome {
    let body = match input {
        Some(p) => client::reader_body(
            tokio::fs::File::open(p)
                .await
                .map_err(|e| bad(format!("{p}: {e}")))?,
        ),
        None => client::reader_body(tokio::io::stdin()),
    };
    let r = c
        .call(
            Method::POST,
            &format!("/images/load?quiet={}", quiet as u8),
            body,
        )
        .await?;
    let mut b = r.into_body();
    progress(&mut b, false).await?;
    Ok(0)
}

pub async fn history(c: &Client, image: &str, no_trunc: bool, format: Option<&str>) -> Outcome {
    let r = c.get(&format!("/images/{}/history", enc(image))).await?;
    let mut rows = Vec::new();
    let mut view = Vec::new();
    for h in r.as_array().cloned().unwrap_or_default() {
        let id = h["Id"].as_str().unwrap_or("<missing>");
        let id = if id.starts_with("sha256:") && !no_trunc {
            id.trim_start_matches("sha256:").chars().take(12).collect()
        } else {
            id.to_string()
        };
        let by = h["CreatedBy"].as_str().unwrap_or("");
        let by = if no_trunc || by.chars().count() <= 45 {
            by.to_string()
        } else {
            format!("{}…", by.chars().take(44).collect::<String>())
        };
        let row = vec![
            id,
            table::ago(h["Created"].as_i64().unwrap_or(0)),
            by,
            table::size(h["Size"].as_f64().unwrap_or(0.0)),
            h["Comment"].as_str().unwrap_or("").to_string(),
        ];
        view.push(serde_json::json!({
            "ID": row[0], "CreatedSince": row[1], "CreatedBy": row[2], "Size": row[3],
            "Comment": row[4], "CreatedAt": crate::table::rfc3339(h["Created"].as_i64().unwrap_or(0)),
        }));
        rows.push(row);
    }
    const HEADER: [&str; 5] = ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"];
    match format {
        Some(f) => {
            let header = serde_json::json!({"ID": "IMAGE", "CreatedSince": "CREATED",
                "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT", "CreatedAt": "CREATED AT"});
            table::print_format(f, &header, &view);
        }
        None => table::print(&HEADER, &rows),
    }
    Ok(0)
}

pub async fn import(
    c: &Client,
    file: &str,
    reference: Option<&str>,
    changes: &[String],
) -> Outcome {
    let body = if file == "-" {
        client::reader_body(tokio::io::stdin())
    } else {
        client::reader_body(
            tokio::fs::File::open(file)
                .await
                .map_err(|e| bad(format!("{file}: {e}")))?,
        )
    };
    let mut q = "/images/create?fromSrc=-".to_string();
    if let Some(r) = reference {
        let (repo, tag) = split_tag(r);
        q.push_str(&format!("&repo={}", enc(repo)));
        if let Some(t) = tag {
            q.push_str(&format!("&tag={}", enc(t)));
        }
    }
    for ch in changes {
        q.push_str(&format!("&changes={}", enc(ch)));
    }
    let r = c.call(Method::POST, &q, body).await?;
    let mut b = r.into_body();
    let mut all = Vec::new();
    while let Some(chunk) = client::next_chunk(&mut b).await {
        all.extend_from_slice(&chunk?);
    }
    for line in all.split(|x| *x == b'\n') {
        if let Ok(v) = serde_json::from_slice::<Value>(line) {
            if let Some(e) = v["error"].as_str() {
                return Err(bad(e.to_string()));
            }
            if let Some(s) = v["status"].as_str() {
                println!("{s}");
            }
        }
    }
    Ok(0)
}

/// `berth image prune [-a]`.
pub async fn prune(c: &Client, force: bool, all: bool) -> Outcome {
    if !force {
        eprintln!(
            "WARNING! This will remove all {} images. Use -f to confirm.",
            if all {
                "images without at least one container associated to them"
            } else {
                "dangling"
            }
        );
        return Ok(1);
    }
    let path = if all {
        format!("/images/prune?filters={}", enc(r#"{"dangling":["false"]}"#))
    } else {
        "/images/prune".to_string()
    };
    let r = c.post(&path, None).await?;
    let list = r["ImagesDeleted"].as_array().cloned().unwrap_or_default();
    if !list.is_empty() {
        println!("Deleted Images:");
        for i in list {
            for (k, v) in i.as_object().into_iter().flatten() {
                println!("{}: {}", k.to_lowercase(), v.as_str().unwrap_or(""));
            }
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        table::size(r["SpaceReclaimed"].as_f64().unwrap_or(0.0))
    );
    Ok(0)
}

/// `berth search TERM`: docker's table of the repositories berthd finds.
pub async fn search(c: &Client, term: &str, limit: Option<u32>, format: Option<&str>) -> Outcome {
    let mut path = format!("/images/search?term={}", enc(term));
    if let Some(n) = limit {
        path.push_str(&format!("&limit={n}"));
    }
    let r = c.get(&path).await?;
    let rows: Vec<Vec<String>> = r
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|x| {
            vec![
                x["name"].as_str().unwrap_or("").to_string(),
                x["description"].as_str().unwrap_or("").to_string(),
                x["star_count"].as_i64().unwrap_or(0).to_string(),
                if x["is_official"].as_bool().unwrap_or(false) {
                    "[OK]"
                } else {
                    ""
                }
                .to_string(),
            ]
        })
        .collect();
    match format {
        Some(f) => {
            let view: Vec<Value> = rows
                .iter()
                .map(|r| serde_json::json!({"Name": r[0], "Description": r[1], "StarCount": r[2], "IsOfficial": r[3]}))
                .collect();
            let header = serde_json::json!({"Name": "NAME", "Description": "DESCRIPTION",
                "StarCount": "STARS", "IsOfficial": "OFFICIAL"});
            table::print_format(f, &header, &view);
        }
        None => table::print(&["NAME", "DESCRIPTION", "STARS", "OFFICIAL"], &rows),
    }
    Ok(0)
}
