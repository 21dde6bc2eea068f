//! Files in and out of containers: `cp` (either direction, tar streams through the Engine
//! API's archive endpoint) and `export` (the whole root filesystem as a tar).

use hyper::Method;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::client::{self, Client};
use crate::containers::bad;
use crate::{enc, term, Outcome};

/// `CONTAINER:PATH` → (container, path).
fn split_ref(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('/') || s.starts_with('.') || s == "-" {
        return None;
    }
    s.split_once(':')
}

pub async fn cp(c: &Client, src: &str, dst: &str) -> Outcome {
    match (split_ref(src), split_ref(dst)) {
        (Some((ctr, path)), None) => cp_out(c, ctr, path, dst).await,
        (None, Some((ctr, path))) => cp_in(c, src, ctr, path).await,
        _ => Err(bad(
            "copying between containers, or local to local, is not supported: one side must be CONTAINER:PATH",
        )),
    }
}

async fn cp_out(c: &Client, ctr: &str, path: &str, dst: &str) -> Outcome {
    let r = c
        .call(
            Method::GET,
            &format!("/containers/{}/archive?path={}", enc(ctr), enc(path)),
            client::empty(),
        )
        .await?;
    let stat: Value = r
        .headers()
        .get("X-Docker-Container-Path-Stat")
        .and_then(|h| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(h.as_bytes())
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut body = r.into_body();
    let mut tarball = Vec::new();
    while let Some(chunk) = client::next_chunk(&mut body).await {
        tarball.extend_from_slice(&chunk?);
    }
    if dst == "-" {
        tokio::io::stdout()
            .write_all(&tarball)
            .await
            .map_err(|e| bad(e.to_string()))?;
        return Ok(0);
    }
    let name = stat["name"].as_str().unwrap_or("");
    // Into an existing directory under its own name, else as `dst`.
    let dst_path = std::path::Path::new(dst);
    let (dir, rename) = if dst_path.is_dir() {
        (dst_path.to_path_buf(), None)
    } else {
        (
            dst_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| p.to_path_buf())
                .unwrap_or_else(|| ".".into()),
            dst_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
        )
    };
    let tmp = dir.join(format!(".berth-cp-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| bad(format!("{}: {e}", tmp.display())))?;
    let out = std::process::Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&tmp)
        .arg("--no-same-owner")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            use std::io::Write;
            ch.stdin.take().expect("stdin").write_all(&tarball)?;
            ch.wait()
        });
    let r = match out {
        Ok(st) if st.success() => {
            let from = tmp.join(name);
            let to = dir.join(rename.as_deref().unwrap_or(name));
            if to.is_dir() && from.is_dir() {
                let _ = std::fs::remove_dir_all(&to);
            }
            std::fs::rename(&from, &to).map_err(|e| bad(format!("{}: {e}", to.display())))
        }
        Ok(st) => Err(bad(format!("extracting the archive: tar {st}"))),
        Err(e) => Err(bad(format!("extracting the archive: {e}"))),
    };
    let _ = std::fs::remove_dir_all(&tmp);
    r.map(|()| 0)
}

async fn cp_in(c: &Client, src: &str, ctr: &str, path: &str) -> Outcome {
    // Into an existing directory as itself, else under the new name in its parent.
    let stat = c
        .call(
            Method::HEAD,
            &format!("/containers/{}/archive?path={}", enc(ctr), enc(path)),
            client::empty(),
        )
        .await;
    let is_dir = stat
        .as_ref()
        .ok()
        .and_then(|r| r.headers().get("X-Docker-Container-Path-Stat"))
        .and_then(|h| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(h.as_bytes())
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|v| v["mode"].as_u64().unwrap_or(0) & (1 << 31) != 0);
    let src_path = std::path::Path::new(src);
    let base = src_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| bad(format!("{src}: not a file or directory")))?;
    let (target, name) = if is_dir {
        (path.to_string(), base.clone())
    } else {
        let p = std::path::Path::new(path);
        (
            p.parent()
                .map(|x| x.display().to_string())
                .filter(|x| !x.is_empty())
                .unwrap_or_else(|| "/".into()),
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(base.clone()),
        )
    };
    let parent = src_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| ".".into());
    let mut tar = std::process::Command::new("tar");
    tar.arg("-c").arg("-C").arg(&parent);
    if name != base {
        tar.arg("--transform").arg(format!(
            "s|^{}|{}|",
            regex_escape(&base),
            sed_replacement(&name)
        ));
    }
    let out = tar
        .arg(&base)
        .output()
        .map_err(|e| bad(format!("tar: {e}")))?;
    if !out.status.success() {
        return Err(bad(format!(
            "archiving {src}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    c.call(
        Method::PUT,
        &format!("/containers/{}/archive?path={}", enc(ctr), enc(&target)),
        http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(
            http_body_util::Full::new(bytes::Bytes::from(out.stdout)),
            |never| match never {},
        )),
    )
    .await?;
    Ok(0)
}

fn sed_replacement(s: &str) -> String {
    let mut o = String::new();
    for ch in s.chars() {
        if "\\&|".contains(ch) {
            o.push('\\');
        }
        o.push(ch);
    }
    o
}

fn regex_escape(s: &str) -> String {
    let mut o = String::new();
    for ch in s.chars() {
        if "\\^$.*[]|&".contains(ch) {
            o.push('\\');
        }
        o.push(ch);
    }
    o
}

pub async fn export(c: &Client, id: &str, output: Option<&str>) -> Outcome {
    let r = c
        .call(
            Method::GET,
            &format!("/containers/{}/export", enc(id)),
            client::empty(),
        )
        .await?;
    let mut body = r.into_body();
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin> = match output {
        Some(p) => Box::new(
            tokio::fs::File::create(p)
                .await
                .map_err(|e| bad(format!("{p}: {e}")))?,
        ),
        None => {
            if term::is_tty(1) {
                return Err(bad(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect",
                ));
            }
            Box::new(tokio::io::stdout())
        }
    };
    while let Some(chunk) = client::next_chunk(&mut body).await {
        out.write_all(&chunk?)
            .await
            .map_err(|e| bad(e.to_string()))?;
    }
    out.flush().await.map_err(|e| bad(e.to_string()))?;
    Ok(0)
}
