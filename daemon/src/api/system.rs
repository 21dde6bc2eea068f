//! `/_ping`, `/version`, `/info`, `/system/df`.

use axum::extract::State as AxState;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::{ApiError, State, API_VERSION, MIN_API_VERSION};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/system/df", get(df))
        .route("/auth", axum::routing::post(auth))
}

/// `POST /auth` (`docker login`): the registry at `serveraddress` accepts `username` and
/// `password` (Docker Hub's `https://index.docker.io/v1/` when none is named). Nothing is
/// stored here: the client keeps the credentials, as dockerd's clients do.
async fn auth(
    AxState(d): AxState<State>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    #[derive(serde::Deserialize)]
    struct AuthConfig {
        #[serde(default)]
        username: String,
        #[serde(default)]
        password: String,
        #[serde(default)]
        serveraddress: String,
        #[serde(default, rename = "identitytoken")]
        identity_token: String,
    }
    let a: AuthConfig = super::decode(&body)?;
    if !a.identity_token.is_empty() {
        return Err(ApiError::bad_request(
            "identitytoken: identity tokens are not supported by Berth (log in with a username and password)",
        ));
    }
    if a.username.is_empty() {
        return Err(ApiError::bad_request("username is required"));
    }
    let host = crate::registry::normalize_host(&a.serveraddress);
    let mut creds = crate::registry::Credentials::new();
    creds.insert(host.clone(), (a.username, a.password));
    let reg = crate::registry::Registry::new(d.images.reg.cfg.clone(), creds);
    reg.login(&host).await.map_err(|e| match e {
        crate::registry::Error::Unauthorized { .. } => ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            format!("login attempt to {host} failed: {e}"),
        ),
        e => ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("login to {host}: {e}"),
        ),
    })?;
    Ok(Json(
        serde_json::json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}

async fn ping() -> Response {
    let mut r = "OK".into_response();
    let h = r.headers_mut();
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert("Pragma", HeaderValue::from_static("no-cache"));
    r
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn version() -> Json<serde_json::Value> {
    let v = env!("CARGO_PKG_VERSION");
    Json(serde_json::json!({
        "Platform": {"Name": "Berth"},
        "Components": [{"Name": "Engine", "Version": v, "Details": {
            "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": arch(),
            "KernelVersion": kernel(), "GitCommit": option_env!("BERTH_GIT_COMMIT").unwrap_or(""),
            "GoVersion": "n/a (Rust)", "Experimental": "false",
        }}],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": option_env!("BERTH_GIT_COMMIT").unwrap_or(""),
        "GoVersion": "n/a (Rust)",
        "Os": "linux",
        "Arch": arch(),
        "KernelVersion": kernel(),
        "BuildTime": "",
        "Experimental": false,
    }))
}

async fn info(AxState(d): AxState<State>) -> Result<Json<serde_json::Value>, ApiError> {
    let images = d
        .images
        .mgr
        .images()
        .await
        .map_err(crate::images::Error::from)?;
    let mut ids = std::collections::BTreeSet::new();
    for i in &images {
        if let Ok(r) = d.images.resolve_record(i).await {
            ids.insert(r.id().to_string());
        }
    }
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    let cfg = &d.images.reg.cfg;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let Json(ctrs) = super::containers::list(
        AxState(d.clone()),
        axum::extract::RawQuery(Some("all=1".into())),
    )
    .await?;
    let ctrs = ctrs.as_array().cloned().unwrap_or_default();
    let count = |s: &str| ctrs.iter().filter(|c| c["State"] == s).count();
    let (running, paused) = (count("running"), count("paused"));
    Ok(Json(serde_json::json!({
        "ID": "",
        "ExperimentalBuild": false,
        "Containers": ctrs.len(), "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": ctrs.len() - running - paused,
        "Images": ids.len(),
        "Driver": "overlayfs",
        "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
        "DockerRootDir": d.data_root.display().to_string(),
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Log": ["json-file"]},
        "MemoryLimit": true, "SwapLimit": true, "CpuCfsPeriod": true, "CpuCfsQuota": true,
        "CPUShares": true, "CPUSet": true, "PidsLimit": true, "IPv4Forwarding": true,
        "Debug": cfg.debug,
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() { "2" } else { "1" },
        "KernelVersion": kernel(),
        "OperatingSystem": os_name(),
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem,
        "Name": hostname,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "RegistryConfig": {
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {},
            "Mirrors": cfg.registry_mirrors,
        },
        "Runtimes": cfg
            .runtime_names()
            .into_iter()
            .map(|(n, p)| (n, serde_json::json!({ "path": p })))
            .collect::<serde_json::Map<String, serde_json::Value>>(),
        "DefaultRuntime": cfg.default_runtime.as_deref().unwrap_or("berth-runtime"),
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "SecurityOptions": security_options(cfg),
        "Warnings": d.warnings.lock().unwrap().clone(),
    })))
}

/// The security options in effect, as dockerd lists them.
fn security_options(cfg: &crate::config::Config) -> Vec<String> {
    let mut out = Vec::new();
    if std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
    {
        out.push("name=apparmor".to_string());
    }
    out.push(match cfg.seccomp_profile.as_deref() {
        None | Some("" | "builtin") => "name=seccomp,profile=builtin".to_string(),
        Some("unconfined") => "name=seccomp,profile=unconfined".to_string(),
        Some(_) => "name=seccomp,profile=custom".to_string(),
    });
    if cfg.no_new_privileges {
        out.push("name=no-new-privileges".into());
    }
    if cfg.default_cgroupns_mode.as_deref() == Some("private")
        || (cfg.default_cgroupns_mode.is_none()
            && nix::sys::statfs::statfs("/sys/fs/cgroup")
                .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC))
    {
        out.push("name=cgroupns".into());
    }
    out
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into())
}

/// `GET /system/df`: images, containers (their own layer's size), volumes, build cache.
async fn df(AxState(d): AxState<State>) -> Result<Json<serde_json::Value>, ApiError> {
    use axum::extract::RawQuery;
    let Json(images) = super::images::list(AxState(d.clone()), RawQuery(None)).await?;
    let Json(containers) =
        super::containers::list(AxState(d.clone()), RawQuery(Some("all=1".into()))).await?;
    let mut images = images.as_array().cloned().unwrap_or_default();
    let mut containers = containers.as_array().cloned().unwrap_or_default();
    let mut layers = 0i64;
    for i in &mut images {
        let id = i["Id"].as_str().unwrap_or("").to_string();
        let n = containers
            .iter()
            .filter(|c| c["ImageID"] == id.as_str())
            .count();
        i["Containers"] = n.into();
        i["SharedSize"] = 0.into();
        layers += i["Size"].as_i64().unwrap_or(0);
    }
    for c in &mut containers {
        let id = c["Id"].as_str().unwrap_or("").to_string();
        let rw = super::containers::rw_size(&d, &id).await as i64;
        let image_size = images
            .iter()
            .find(|i| i["Id"] == c["ImageID"])
            .and_then(|i| i["Size"].as_i64())
            .unwrap_or(0);
        c["SizeRw"] = rw.into();
        c["SizeRootFs"] = (rw + image_size).into();
    }
    let users = crate::containers::mounts::users(&d).await?;
    let volumes: Vec<serde_json::Value> = d
        .volumes
        .list()
        .iter()
        .map(|v| {
            let refs = users.get(&v.name).map(Vec::len).unwrap_or(0);
            super::volumes::to_json(v, Some(d.volumes.size(&v.name)), Some(refs))
        })
        .collect();
    Ok(Json(serde_json::json!({
        "LayersSize": layers,
        "Images": images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": [],
    })))
}
