//! `berth login` / `berth logout` and the credentials they keep: the same `config.json`
//! the docker CLI uses (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`),
//! `auths.<server>.auth` = base64("user:password"), written atomically with mode 0600.
//! `pull` and `push` send the matching entry as `X-Registry-Auth`, as docker does.

use std::path::PathBuf;

use base64::Engine;
use serde_json::{json, Value};

use crate::client::{ApiError, Client};
use crate::Outcome;

/// Docker Hub's key in config.json.
const HUB: &str = "https://index.docker.io/v1/";

fn bad(message: impl Into<String>) -> ApiError {
    ApiError {
        status: None,
        message: message.into(),
    }
}

fn config_path() -> Result<PathBuf, ApiError> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .ok_or_else(|| bad("neither DOCKER_CONFIG nor HOME is set: no config.json to use"))?;
    Ok(dir.join("config.json"))
}

fn load() -> Result<Value, ApiError> {
    let p = config_path()?;
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| bad(format!("{}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(bad(format!("{}: {e}", p.display()))),
    }
}

/// Write config.json whole: a temporary file beside it, then a rename.
fn store(v: &Value) -> Result<(), ApiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let p = config_path()?;
    let dir = p.parent().expect("config.json has a directory");
    std::fs::create_dir_all(dir).map_err(|e| bad(format!("{}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(
            serde_json::to_string_pretty(v)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        f.sync_all()?;
        std::fs::rename(&tmp, &p)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        bad(format!("{}: {e}", p.display()))
    })
}

/// The config.json key for a server as docker writes it (Docker Hub's URL for none).
fn key(server: Option<&str>) -> String {
    match server.map(str::trim).filter(|s| !s.is_empty()) {
        None | Some("docker.io") | Some("index.docker.io") => HUB.to_string(),
        Some(s) => s
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    }
}

/// `berth login [-u USER] [-p PASS | --password-stdin] [SERVER]`.
pub async fn login(
    c: &Client,
    server: Option<&str>,
    user: Option<&str>,
    password: Option<&str>,
    password_stdin: bool,
) -> Outcome {
    let user = user
        .map(String::from)
        .ok_or_else(|| bad("username is required (-u USER)"))?;
    let password = match (password, password_stdin) {
        (Some(_), true) => {
            return Err(bad(
                "--password and --password-stdin are mutually exclusive",
            ))
        }
        (Some(p), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p.to_string()
        }
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_line(&mut s)
                .map_err(|e| bad(format!("read the password from stdin: {e}")))?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => return Err(bad("password is required (--password-stdin or -p)")),
    };
    let k = key(server);
    let r = c
        .post(
            "/auth",
            Some(json!({"username": user, "password": password, "serveraddress": k})),
        )
        .await?;
    let mut cfg = load()?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    if !cfg["auths"].is_object() {
        cfg["auths"] = json!({});
    }
    cfg["auths"][&k] = json!({ "auth": auth });
    store(&cfg)?;
    println!("{}", r["Status"].as_str().unwrap_or("Login Succeeded"));
    Ok(0)
}

/// `berth logout [SERVER]`.
pub async fn logout(server: Option<&str>) -> Outcome {
    let k = key(server);
    let mut cfg = load()?;
    let removed = cfg["auths"]
        .as_object_mut()
        .and_then(|a| a.remove(&k))
        .is_some();
    if removed {
        store(&cfg)?;
        println!("Removing login credentials for {k}");
    } else {
        println!("Not logged in to {k}");
    }
    Ok(0)
}

/// The `X-Registry-Auth` header for an image reference, from config.json (none when no
/// credentials are kept for its registry).
pub fn registry_auth(image: &str) -> Vec<(&'static str, String)> {
    let first = image.split('/').next().unwrap_or("");
    let server = if image.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        key(Some(first))
    } else {
        HUB.to_string()
    };
    let Ok(cfg) = load() else { return Vec::new() };
    let Some(a) = cfg["auths"][&server]["auth"].as_str() else {
        return Vec::new();
    };
    let Ok(dec) = base64::engine::general_purpose::STANDARD.decode(a) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&dec).into_owned();
    let Some((u, p)) = text.split_once(':') else {
        return Vec::new();
    };
    let v = json!({"username": u, "password": p, "serveraddress": server});
    vec![(
        "X-Registry-Auth",
        base64::engine::general_purpose::URL_SAFE.encode(v.to_string()),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_keys_as_docker_writes_them() {
        assert_eq!(key(None), HUB);
        assert_eq!(key(Some("docker.io")), HUB);
        assert_eq!(key(Some("https://127.0.0.1:5000/")), "127.0.0.1:5000");
        assert_eq!(key(Some("registry.example:443")), "registry.example:443");
    }
}
