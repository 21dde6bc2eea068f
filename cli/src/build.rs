//! `berth build`: send a context directory (as a tar) to `POST /build` and show the steps:
//! on a terminal a spinner with the current step and its time, the steps' output printed
//! above it; otherwise the daemon's lines as they come. `.dockerignore` is applied by the
//! daemon (files it excludes are still sent).

use std::path::{Path, PathBuf};

use hyper::Method;
use serde_json::Value;

use crate::client::{self, ApiError, Client};
use crate::{enc, term, Outcome};

#[derive(Debug, Default)]
pub struct BuildOpts {
    pub tags: Vec<String>,
    pub file: Option<String>,
    pub build_args: Vec<String>,
    pub no_cache: bool,
    pub pull: bool,
    pub rm: bool,
    pub force_rm: bool,
    pub target: Option<String>,
    pub labels: Vec<String>,
    pub network: Option<String>,
    pub quiet: bool,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError {
        status: None,
        message: message.into(),
    }
}

/// `k=v` list → JSON object (a bare `k` takes the value from our environment, like docker).
fn kv_json(items: &[String], from_env: bool) -> Value {
    let mut m = serde_json::Map::new();
    for i in items {
        match i.split_once('=') {
            Some((k, v)) => {
                m.insert(k.to_string(), v.into());
            }
            None if from_env => {
                if let Ok(v) = std::env::var(i) {
                    m.insert(i.clone(), v.into());
                }
            }
            None => {
                m.insert(i.clone(), "".into());
            }
        }
    }
    Value::Object(m)
}

/// The context directory as a tar archive (in memory), the Dockerfile added under
/// `.berth-dockerfile` when it lives outside the context.
fn context_tar(dir: &Path, dockerfile: Option<&Path>) -> Result<(Vec<u8>, String), String> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Deterministic);
    let mut names = Vec::new();
    walk(dir, dir, &mut names).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (rel, path) in &names {
        b.append_path_with_name(path, rel)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut df_name = "Dockerfile".to_string();
    if let Some(df) = dockerfile {
        match df.strip_prefix(dir) {
            Ok(rel) => df_name = rel.to_string_lossy().into_owned(),
            Err(_) => {
                df_name = ".berth-dockerfile".into();
                b.append_path_with_name(df, &df_name)
                    .map_err(|e| format!("{}: {e}", df.display()))?;
            }
        }
    }
    let data = b.into_inner().map_err(|e| e.to_string())?;
    Ok((data, df_name))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, PathBuf)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let rel = p.strip_prefix(root).expect("below root").to_path_buf();
        out.push((rel, p.clone()));
        if e.file_type()?.is_dir() {
            walk(root, &p, out)?;
        }
    }
    Ok(())
}

pub async fn build(c: &Client, context: &str, o: BuildOpts) -> Outcome {
    let dir = PathBuf::from(context);
    if !dir.is_dir() {
        return Err(bad(format!(
            "unable to prepare context: path {context:?} not found"
        )));
    }
    let df = o.file.as_ref().map(|f| {
        let p = PathBuf::from(f);
        if p.is_absolute() {
            p
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        }
    });
    let abs_dir = std::fs::canonicalize(&dir).map_err(|e| bad(format!("{context}: {e}")))?;
    let df = df
        .map(|p| std::fs::canonicalize(&p).map_err(|e| bad(format!("{}: {e}", p.display()))))
        .transpose()?;
    let (tar, df_name) = tokio::task::spawn_blocking(move || context_tar(&abs_dir, df.as_deref()))
        .await
        .map_err(|e| bad(e.to_string()))?
        .map_err(bad)?;
    if !o.quiet {
        eprintln!(
            "Sending build context to berthd  {}",
            crate::table::size(tar.len() as f64)
        );
    }
    let mut q = vec![
        format!("dockerfile={}", enc(&df_name)),
        format!("rm={}", o.rm as u8),
        format!("forcerm={}", o.force_rm as u8),
        format!("nocache={}", o.no_cache as u8),
        format!("pull={}", o.pull as u8),
        format!("q={}", o.quiet as u8),
    ];
    for t in &o.tags {
        q.push(format!("t={}", enc(t)));
    }
    if !o.build_args.is_empty() {
        q.push(format!(
            "buildargs={}",
            enc(&kv_json(&o.build_args, true).to_string())
        ));
    }
    if !o.labels.is_empty() {
        q.push(format!(
            "labels={}",
            enc(&kv_json(&o.labels, false).to_string())
        ));
    }
    if let Some(t) = &o.target {
        q.push(format!("target={}", enc(t)));
    }
    if let Some(n) = &o.network {
        q.push(format!("networkmode={}", enc(n)));
    }
    let body = http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(
        http_body_util::Full::new(bytes::Bytes::from(tar)),
        |never| match never {},
    ));
    let r = c
        .call(Method::POST, &format!("/build?{}", q.join("&")), body)
        .await?;
    let mut b = r.into_body();
    let spinner = (term::is_tty(2) && !o.quiet).then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("template"),
        );
        s.enable_steady_tick(std::time::Duration::from_millis(100));
        s
    });
    let show = |text: &str| match &spinner {
        Some(s) => {
            if text.starts_with("Step ") {
                s.set_message(text.trim_end().to_string());
            }
            s.println(text.trim_end_matches('\n'));
        }
        None => print!("{text}"),
    };
    let mut pending = Vec::new();
    let mut image_id = String::new();
    let mut failure = None;
    while let Some(chunk) = client::next_chunk(&mut b).await {
        pending.extend_from_slice(&chunk?);
        while let Some(i) = pending.iter().position(|x| *x == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if let Some(e) = v["errorDetail"]["message"].as_str().or(v["error"].as_str()) {
                failure = Some(e.to_string());
            } else if let Some(id) = v["aux"]["ID"].as_str() {
                image_id = id.to_string();
            } else if let Some(s) = v["stream"].as_str() {
                if !o.quiet {
                    show(s);
                }
            }
        }
    }
    if let Some(s) = &spinner {
        s.finish_and_clear();
    }
    if let Some(e) = failure {
        return Err(bad(e));
    }
    if o.quiet {
        println!("{image_id}");
    }
    Ok(0)
}
