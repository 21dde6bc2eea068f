//! `POST /build`: the classic (non-BuildKit) builder the docker CLI uses with
//! `DOCKER_BUILDKIT=0` and docker-py uses always.
//!
//! The context tar is extracted into a private directory; the Dockerfile is parsed
//! ([`crate::dockerfile`]); every instruction makes an image: configuration-only ones (ENV, CMD, …)
//! an image with an `empty_layer` history entry, RUN the diff of a real container run through
//! the manager/shim/runtime (on the default bridge unless `networkmode` says host, none or
//! a user-defined network), COPY/ADD the diff of a snapshot the files were written into. A
//! step's cache key is its parent image, its instruction after substitution, the build args
//! it sees and, for COPY/ADD, a checksum of the source files' paths, modes, owners and
//! contents; hits are kept in `<data-root>/builder/cache.json`. Progress goes out as Docker's
//! JSON stream (`{"stream":"Step 1/3 : FROM busybox\n"}` … `Successfully built <id>`).

pub(super) mod files;
pub mod pattern;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use berth_manager::images::manifest::{History, RunConfig};
use berth_proto::manager as pb;
use tokio::sync::mpsc;

use super::containers::{find, status_err};
use super::images::{url_all, url_pairs};
use super::{ApiError, State};
use crate::dockerfile::{self, Instruction, Vars};
use crate::images::Resolved;

pub fn routes() -> Router<State> {
    Router::new()
        .route("/build", post(build))
        .route("/build/prune", post(prune))
}

/// What the request asks for (query parameters of `POST /build`).
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub dockerfile: String,
    pub tags: Vec<String>,
    pub build_args: BTreeMap<String, Option<String>>,
    pub nocache: bool,
    pub pull: bool,
    pub rm: bool,
    pub forcerm: bool,
    pub target: String,
    pub labels: BTreeMap<String, String>,
    pub network_mode: String,
    pub quiet: bool,
}

impl Options {
    fn from_query(raw: &str) -> Result<Options, ApiError> {
        let q = url_pairs(raw);
        let flag = |k: &str| {
            q.get(k)
                .is_some_and(|v| v == "1" || v == "true" || v == "True")
        };
        let json_map = |k: &str| -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
            match q.get(k).filter(|v| !v.is_empty()) {
                None => Ok(Default::default()),
                Some(v) => serde_json::from_str(v)
                    .map_err(|e| ApiError::bad_request(format!("{k}: invalid JSON: {e}"))),
            }
        };
        let build_args = json_map("buildargs")?
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map(String::from)))
            .collect();
        let labels = json_map("labels")?
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
            .collect();
        let mut tags = url_all(raw, "t");
        tags.retain(|t| !t.is_empty());
        for t in &tags {
            crate::reference::Reference::parse(t)
                .map_err(|e| ApiError::bad_request(format!("invalid tag {t:?}: {e}")))?;
        }
        // RUN steps join this network: the default bridge unless told (host, none, or a
        // user-defined network, checked when the first RUN creates its container).
        let network_mode = q.get("networkmode").cloned().unwrap_or_default();
        if network_mode.starts_with("container:") {
            return Err(ApiError::bad_request(format!(
                "networkmode {network_mode:?} is not supported for builds"
            )));
        }
        if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
            let host = format!(
                "linux/{}",
                berth_manager::images::host_platform().architecture
            );
            if !p.starts_with(&host) {
                return Err(ApiError::bad_request(format!(
                    "platform {p:?}: this daemon builds for {host} only"
                )));
            }
        }
        Ok(Options {
            dockerfile: q
                .get("dockerfile")
                .filter(|d| !d.is_empty())
                .cloned()
                .unwrap_or_else(|| "Dockerfile".into()),
            tags,
            build_args,
            nocache: flag("nocache"),
            pull: flag("pull"),
            rm: q.get("rm").is_none_or(|_| flag("rm")),
            forcerm: flag("forcerm"),
            target: q.get("target").cloned().unwrap_or_default(),
            labels,
            network_mode,
            quiet: flag("q"),
        })
    }
}

async fn build(
    AxState(d): AxState<State>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let opts = Options::from_query(q.as_deref().unwrap_or(""))?;
    // The body is the context whatever its Content-Type: a tar, plain or compressed.
    let work = d
        .data_root
        .join("tmp")
        .join(format!("build-{}", crate::images::unique()));
    let spooled = super::images::spool(&d, body).await?;
    let ctx = work.join("context");
    let (ctx2, spooled2) = (ctx.clone(), spooled.clone());
    let extracted = tokio::task::spawn_blocking(move || -> Result<(), String> {
        std::fs::create_dir_all(&ctx2).map_err(|e| format!("{}: {e}", ctx2.display()))?;
        let mut f = std::fs::File::open(&spooled2).map_err(|e| e.to_string())?;
        // A plain tar (what the docker CLI sends) holds its files' sizes: its contents fit in
        // a tmpfs of its size, where making hundreds of small files costs a tenth of what it
        // does on disk. Large or compressed contexts go to disk.
        let size = f.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        if size <= TMPFS_CONTEXT_MAX && is_plain_tar(&mut f) {
            let opts = format!("size={},mode=0700", size + (16 << 20));
            nix::mount::mount(
                Some("tmpfs"),
                &ctx2,
                Some("tmpfs"),
                nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                Some(opts.as_str()),
            )
            .map_err(|e| format!("mount a tmpfs for the build context: {e}"))?;
        }
        let r = berth_manager::images::layer::decompress(f).map_err(|e| e.to_string())?;
        berth_manager::images::layer::extract(r, &ctx2, &Default::default())
            .map(|_| ())
            .map_err(|e| format!("the build context is not a valid tar archive: {e}"))
    })
    .await
    .map_err(super::containers::internal)?;
    let _ = std::fs::remove_file(&spooled);
    if let Err(e) = extracted {
        remove_work(&work);
        return Err(ApiError::bad_request(e));
    }
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        let mut b = Builder {
            d: d.clone(),
            opts,
            ctx,
            work: work.clone(),
            out: tx.clone(),
            escape: '\\',
            ignore: Default::default(),
            cache: Cache::load(&d.data_root),
            step: 0,
            steps: 0,
            stages: Vec::new(),
            used_args: Default::default(),
        };
        match b.run().await {
            Ok(()) => {}
            Err(msg) => {
                let line = serde_json::json!({"errorDetail": {"message": msg}, "error": msg});
                let _ = tx.send(Bytes::from(format!("{line}\r\n")));
            }
        }
        b.cache.save(&d.data_root);
        let _ = tokio::task::spawn_blocking(move || remove_work(&work)).await;
    });
    let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
    let body = Body::from_stream(tokio_stream::StreamExt::map(
        stream,
        Ok::<_, std::io::Error>,
    ));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// Plain tar contexts up to this size are extracted into a tmpfs.
const TMPFS_CONTEXT_MAX: u64 = 256 << 20;

fn is_plain_tar(f: &mut std::fs::File) -> bool {
    use std::io::{Read, Seek};
    let mut head = [0u8; 512];
    let ok = f.read_exact(&mut head).is_ok() && &head[257..262] == b"ustar";
    let _ = f.rewind();
    ok
}

/// Remove a build's work directory (its context may be a tmpfs mount).
fn remove_work(work: &Path) {
    let _ = nix::mount::umount2(&work.join("context"), nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir_all(work);
}

/// What builds interrupted by a crash left in `DATA_ROOT/tmp` (called at start-up).
pub fn clean_leftovers(data_root: &Path) {
    let Ok(rd) = std::fs::read_dir(data_root.join("tmp")) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with("build-") {
            remove_work(&e.path());
        }
    }
}

/// `POST /build/prune` (`docker builder prune`): forget the step cache and remove the
/// intermediate images it kept (untagged, unused by containers; tagged ones stay).
async fn prune(AxState(d): AxState<State>) -> Result<Response, ApiError> {
    let cache = Cache::load(&d.data_root);
    let _ = std::fs::remove_file(Cache::path(&d.data_root));
    let ids: std::collections::BTreeSet<String> = cache.map.values().cloned().collect();
    let listed = super::images::by_id(&d.images).await?;
    let mut deleted = Vec::new();
    for id in ids {
        let tagged = listed
            .iter()
            .any(|(r, tags, _)| r.id() == id && !tags.is_empty());
        if tagged {
            continue;
        }
        if d.images.remove(&id, false).await.is_ok() {
            deleted.push(id);
        }
    }
    Ok(
        axum::Json(serde_json::json!({"CachesDeleted": deleted, "SpaceReclaimed": 0}))
            .into_response(),
    )
}

/// Step results remembered across builds: cache key → image ID.
#[derive(Default)]
struct Cache {
    map: BTreeMap<String, String>,
    dirty: bool,
}

impl Cache {
    fn path(root: &Path) -> PathBuf {
        root.join("builder").join("cache.json")
    }

    fn load(root: &Path) -> Cache {
        let map = std::fs::read(Self::path(root))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Cache { map, dirty: false }
    }

    fn save(&self, root: &Path) {
        if !self.dirty {
            return;
        }
        let p = Self::path(root);
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = crate::write_atomic(&p, &serde_json::to_vec(&self.map).expect("json"));
    }
}

/// A build stage: its image so far (None: `FROM scratch` before any step) and config.
#[derive(Clone)]
struct Stage {
    name: String,
    image: Option<Resolved>,
    config: RunConfig,
    /// ARGs declared in this stage, with their values.
    args: Vars,
    /// The image's author (MAINTAINER).
    author: String,
}

impl Stage {
    fn id(&self) -> String {
        self.image
            .as_ref()
            .map(|i| i.id().to_string())
            .unwrap_or_default()
    }

    /// Variables for substitution: ARGs, then ENV (ENV wins).
    fn vars(&self) -> Vars {
        let mut v = self.args.clone();
        for e in self.config.env.iter().flatten() {
            if let Some((k, val)) = e.split_once('=') {
                v.insert(k.to_string(), val.to_string());
            }
        }
        v
    }
}

struct Builder {
    d: State,
    opts: Options,
    ctx: PathBuf,
    work: PathBuf,
    out: mpsc::UnboundedSender<Bytes>,
    escape: char,
    ignore: pattern::Ignore,
    cache: Cache,
    step: usize,
    steps: usize,
    stages: Vec<Stage>,
    used_args: std::collections::BTreeSet<String>,
}

fn short(id: &str) -> &str {
    let h = id.trim_start_matches("sha256:");
    &h[..h.len().min(12)]
}

impl Builder {
    fn say(&self, text: &str) {
        if self.opts.quiet {
            return;
        }
        let line = serde_json::json!({ "stream": text });
        let _ = self.out.send(Bytes::from(format!("{line}\r\n")));
    }

    async fn run(&mut self) -> Result<(), String> {
        let df_rel = pattern::clean(&self.opts.dockerfile);
        if df_rel.is_empty() {
            return Err("dockerfile: empty path".into());
        }
        let text = files::read_in(&self.ctx, &df_rel).map_err(|_| {
            format!(
                "Cannot locate specified Dockerfile: {}",
                self.opts.dockerfile
            )
        })?;
        let text = String::from_utf8(text)
            .map_err(|_| format!("{}: not UTF-8 text", self.opts.dockerfile))?;
        if let Ok(ig) = files::read_in(&self.ctx, ".dockerignore") {
            self.ignore = pattern::Ignore::parse(&String::from_utf8_lossy(&ig));
        }
        let df = dockerfile::parse(&text)?;
        self.escape = df.escape;
        let all = df.instructions;
        let first_from = all
            .iter()
            .position(|i| i.cmd == "FROM")
            .ok_or_else(|| "no FROM instruction: a Dockerfile must start with FROM".to_string())?;
        // ARGs before the first FROM: visible in FROM lines (and to `ARG name` in stages).
        let mut meta = Vars::new();
        for i in &all[..first_from] {
            if i.cmd != "ARG" {
                return Err(dockerfile::err(
                    i.line,
                    format!("{} before the first FROM (only ARG may come first)", i.cmd),
                ));
            }
            for (k, v) in self.arg_values(i, &meta)? {
                meta.insert(k, v);
            }
        }
        // With --target, stop after that stage.
        let mut end = all.len();
        if !self.opts.target.is_empty() {
            let mut found = false;
            for (n, i) in all.iter().enumerate() {
                if i.cmd != "FROM" {
                    continue;
                }
                if found {
                    end = n;
                    break;
                }
                let w = dockerfile::words(&i.rest, &meta, self.escape)?;
                if w.len() == 3 && w[1].eq_ignore_ascii_case("as") && w[2] == self.opts.target {
                    found = true;
                }
            }
            if !found {
                return Err(format!(
                    "failed to reach build target {} in Dockerfile",
                    self.opts.target
                ));
            }
        }
        let todo = &all[first_from..end];
        self.steps = first_from + todo.len();
        self.step = first_from;
        for (n, i) in all[..first_from].iter().enumerate() {
            self.say(&format!("Step {}/{} : {}\n", n + 1, self.steps, i.original));
        }
        for i in todo {
            self.step += 1;
            self.say(&format!(
                "Step {}/{} : {}\n",
                self.step, self.steps, i.original
            ));
            self.instruction(i, &meta, false).await?;
        }
        let mut last = self.stages.pop().ok_or("no stage was built")?;
        if !self.opts.labels.is_empty() {
            let mut cfg = last.config.clone();
            let labels = cfg.labels.get_or_insert_with(Default::default);
            for (k, v) in &self.opts.labels {
                labels.insert(k.clone(), v.clone());
            }
            let text = format!(
                "LABEL {}",
                self.opts
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            self.config_step(&mut last, cfg, &text).await?;
        }
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            self.say(&format!(
                "[Warning] One or more build-args {unused:?} were not consumed\n"
            ));
        }
        let image = last
            .image
            .ok_or("the build produced no image (FROM scratch and nothing else)")?;
        let id = image.id().to_string();
        let aux = serde_json::json!({ "aux": { "ID": id } });
        let _ = self.out.send(Bytes::from(format!("{aux}\r\n")));
        if self.opts.quiet {
            let line = serde_json::json!({ "stream": format!("{id}\n") });
            let _ = self.out.send(Bytes::from(format!("{line}\r\n")));
        }
        self.say(&format!("Successfully built {}\n", short(&id)));
        for t in self.opts.tags.clone() {
            self.d
                .images
                .tag(&id, &t)
                .await
                .map_err(|e| format!("tag {t}: {e}"))?;
            // As the user wrote it, with the default tag made explicit (like dockerd).
            let has_tag = t.rsplit('/').next().is_some_and(|l| l.contains(':')) || t.contains('@');
            let shown = if has_tag {
                t.clone()
            } else {
                format!("{t}:latest")
            };
            self.say(&format!("Successfully tagged {shown}\n"));
        }
        Ok(())
    }

    /// Values an `ARG` instruction declares: build args win over defaults.
    fn arg_values(
        &mut self,
        i: &Instruction,
        vars: &Vars,
    ) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        for w in dockerfile::words(&i.rest, &Vars::new(), '\u{0}')? {
            let (name, default) = match w.split_once('=') {
                Some((k, _)) => (k.to_string(), Some(w[k.len() + 1..].to_string())),
                None => (w.clone(), None),
            };
            if name.is_empty() {
                return Err(dockerfile::err(i.line, "ARG requires a name"));
            }
            let default = match default {
                Some(d) => Some(
                    dockerfile::expand(&d, vars, self.escape)
                        .map_err(|e| dockerfile::err(i.line, e))?,
                ),
                None => None,
            };
            let value = match self.opts.build_args.get(&name) {
                Some(Some(v)) => {
                    self.used_args.insert(name.clone());
                    Some(v.clone())
                }
                Some(None) => {
                    self.used_args.insert(name.clone());
                    vars.get(&name).cloned().or(default)
                }
                None => default.or_else(|| vars.get(&name).cloned()),
            };
            out.push((name, value.unwrap_or_default()));
        }
        Ok(out)
    }

    fn cur(&mut self, line: usize) -> Result<&mut Stage, String> {
        self.stages
            .last_mut()
            .ok_or_else(|| dockerfile::err(line, "no FROM before this instruction"))
    }

    #[allow(clippy::too_many_lines)]
    async fn instruction(
        &mut self,
        i: &Instruction,
        meta: &Vars,
        trigger: bool,
    ) -> Result<(), String> {
        let line_err = |e: String| dockerfile::err(i.line, e);
        let allowed: &[&str] = match i.cmd.as_str() {
            "FROM" => &["platform"],
            "COPY" => &["from", "chown", "chmod"],
            "ADD" => &["chown", "chmod"],
            "HEALTHCHECK" => &[
                "interval",
                "timeout",
                "start-period",
                "start-interval",
                "retries",
            ],
            _ => &[],
        };
        for (k, _) in &i.flags {
            if !allowed.contains(&k.as_str()) {
                return Err(line_err(format!("unknown flag: --{k} for {}", i.cmd)));
            }
        }
        match i.cmd.as_str() {
            "FROM" => {
                if trigger {
                    return Err(line_err("FROM is not allowed as an ONBUILD trigger".into()));
                }
                self.from(i, meta).await
            }
            "RUN" => self.run_step(i).await,
            "WORKDIR" => self.workdir_step(i).await,
            "COPY" | "ADD" => self.copy_step(i).await,
            "ONBUILD" => {
                let inner = i.rest.trim();
                let kw = inner
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                if matches!(kw.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") || kw.is_empty() {
                    return Err(line_err(format!(
                        "{kw} isn't allowed as an ONBUILD trigger"
                    )));
                }
                let st = self.cur(i.line)?;
                let mut cfg = st.config.clone();
                cfg.on_build
                    .get_or_insert_with(Vec::new)
                    .push(inner.to_string());
                let mut st = st.clone();
                self.config_step(&mut st, cfg, &i.original).await?;
                *self.cur(i.line)? = st;
                Ok(())
            }
            "ARG" => {
                let vars = self.cur(i.line)?.vars();
                let mut metav = meta.clone();
                metav.extend(vars);
                let vals = self.arg_values(i, &metav)?;
                let st = self.cur(i.line)?;
                for (k, v) in vals {
                    st.args.insert(k, v);
                }
                let id = st.id();
                self.say(&format!(
                    " ---> {}\n",
                    if id.is_empty() { "" } else { short(&id) }
                ));
                Ok(())
            }
            _ => {
                let mut st = self.cur(i.line)?.clone();
                if i.cmd == "MAINTAINER" {
                    st.author = dockerfile::expand(i.rest.trim(), &st.vars(), self.escape)
                        .map_err(line_err)?;
                }
                let cfg = self.config_change(&st, i).map_err(line_err)?;
                self.config_step(&mut st, cfg, &i.original).await?;
                *self.cur(i.line)? = st;
                Ok(())
            }
        }
    }

    /// The new configuration a configuration-only instruction makes.
    fn config_change(&self, st: &Stage, i: &Instruction) -> Result<RunConfig, String> {
        let mut c = st.config.clone();
        let vars = st.vars();
        let e = self.escape;
        let exec_or_shell = |rest: &str| -> Vec<String> {
            dockerfile::json_form(rest).unwrap_or_else(|| {
                let mut sh = st
                    .config
                    .shell
                    .clone()
                    .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                sh.push(rest.trim().to_string());
                sh
            })
        };
        match i.cmd.as_str() {
            "ENV" => {
                let env = c.env.get_or_insert_with(Vec::new);
                for (k, v) in dockerfile::pairs(&i.rest, &vars, e)? {
                    crate::instructions::set_env(env, &format!("{k}={v}"));
                }
            }
            "LABEL" => {
                let l = c.labels.get_or_insert_with(Default::default);
                for (k, v) in dockerfile::pairs(&i.rest, &vars, e)? {
                    l.insert(k, v);
                }
            }
            "MAINTAINER" => {}
            "CMD" => c.cmd = Some(exec_or_shell(&i.rest)),
            "ENTRYPOINT" => {
                c.entrypoint = Some(exec_or_shell(&i.rest));
                // A new entrypoint drops an inherited CMD (Docker does the same).
                if st.config.entrypoint != c.entrypoint {
                    c.cmd = None;
                }
            }
            "EXPOSE" => {
                let p = c.exposed_ports.get_or_insert_with(Default::default);
                for w in dockerfile::words(&i.rest, &vars, e)? {
                    let (port, proto) = w.split_once('/').unwrap_or((&w, "tcp"));
                    let ok = port.split('-').all(|n| n.parse::<u16>().is_ok());
                    if !ok || !matches!(proto, "tcp" | "udp" | "sctp") {
                        return Err(format!("invalid containerPort: {w}"));
                    }
                    p.insert(format!("{port}/{proto}"), serde_json::json!({}));
                }
            }
            "USER" => {
                let u = dockerfile::expand(i.rest.trim(), &vars, e)?;
                if u.is_empty() {
                    return Err("USER requires an argument".into());
                }
                c.user = u;
            }
            "WORKDIR" => {
                let w = dockerfile::expand(i.rest.trim(), &vars, e)?;
                if w.is_empty() {
                    return Err("WORKDIR requires an argument".into());
                }
                c.working_dir = if w.starts_with('/') {
                    w
                } else {
                    format!(
                        "{}/{w}",
                        if c.working_dir.is_empty() {
                            ""
                        } else {
                            c.working_dir.trim_end_matches('/')
                        }
                    )
                };
            }
            "VOLUME" => {
                let v = c.volumes.get_or_insert_with(Default::default);
                let list = match dockerfile::json_form(&i.rest) {
                    Some(l) => l,
                    None => dockerfile::words(&i.rest, &vars, e)?,
                };
                if list.is_empty() || list.iter().any(|p| p.trim().is_empty()) {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                for p in list {
                    v.insert(p, serde_json::json!({}));
                }
            }
            "STOPSIGNAL" => {
                let s = dockerfile::expand(i.rest.trim(), &vars, e)?;
                berth_runtime::container::parse_signal(&s)
                    .map_err(|_| format!("invalid signal: {s}"))?;
                c.stop_signal = s;
            }
            "SHELL" => {
                let sh = dockerfile::json_form(&i.rest)
                    .filter(|s| !s.is_empty())
                    .ok_or("SHELL requires the arguments to be in JSON form")?;
                c.shell = Some(sh);
            }
            "HEALTHCHECK" => c.healthcheck = Some(healthcheck(i, &st.config)?),
            other => return Err(format!("{other} is not handled here")),
        }
        Ok(c)
    }

    /// Make (or find in the cache) the image of a configuration-only step.
    async fn config_step(
        &mut self,
        st: &mut Stage,
        cfg: RunConfig,
        text: &str,
    ) -> Result<(), String> {
        let key = self.key(
            st,
            &format!(
                "config {text} {}",
                serde_json::to_string(&cfg).expect("json")
            ),
        );
        if let Some(img) = self.cached(&key).await {
            self.say(" ---> Using cache\n");
            st.config = cfg;
            self.say(&format!(" ---> {}\n", short(img.id())));
            st.image = Some(img);
            return Ok(());
        }
        let img = self
            .commit(st, None, cfg.clone(), format!("/bin/sh -c #(nop)  {text}"))
            .await?;
        self.remember(&key, &img);
        st.config = cfg;
        self.say(&format!(" ---> {}\n", short(img.id())));
        st.image = Some(img);
        Ok(())
    }

    fn key(&self, st: &Stage, what: &str) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(st.id().as_bytes());
        h.update(b"\n");
        h.update(what.as_bytes());
        format!("{:x}", h.finalize())
    }

    async fn cached(&self, key: &str) -> Option<Resolved> {
        if self.opts.nocache {
            return None;
        }
        let id = self.cache.map.get(key)?;
        let img = self.d.images.find(id).await.ok()?;
        self.d.images.resolve_record(&img).await.ok()
    }

    fn remember(&mut self, key: &str, img: &Resolved) {
        self.cache.map.insert(key.to_string(), img.id().to_string());
        self.cache.dirty = true;
    }

    async fn commit(
        &self,
        st: &Stage,
        layer: Option<&Path>,
        run: RunConfig,
        created_by: String,
    ) -> Result<Resolved, String> {
        self.d
            .images
            .create_image(crate::images::NewImage {
                base: st.image.as_ref(),
                layer,
                run,
                history: History {
                    created: crate::images::now_rfc3339(),
                    created_by,
                    ..Default::default()
                },
                author: st.author.clone(),
                target: None,
                platform: None,
            })
            .await
            .map_err(|e| format!("commit the step's image: {e}"))
    }

    async fn from(&mut self, i: &Instruction, meta: &Vars) -> Result<(), String> {
        let w = dockerfile::words(&i.rest, meta, self.escape)
            .map_err(|e| dockerfile::err(i.line, e))?;
        let (name, alias) = match w.as_slice() {
            [n] => (n.clone(), String::new()),
            [n, a, s] if a.eq_ignore_ascii_case("as") => (n.clone(), s.to_ascii_lowercase()),
            _ => {
                return Err(dockerfile::err(
                    i.line,
                    "FROM requires either one or three arguments (FROM image [AS name])",
                ))
            }
        };
        if let Some((_, p)) = i.flags.iter().find(|(k, _)| k == "platform") {
            let p = dockerfile::expand(p, meta, self.escape)?;
            let host = format!("linux/{}", self.d.images.platform.architecture);
            if !p.is_empty() && !p.starts_with(&host) {
                return Err(dockerfile::err(
                    i.line,
                    format!("--platform={p}: this daemon builds for {host} only"),
                ));
            }
        }
        let lname = name.to_ascii_lowercase();
        let image = if lname == "scratch" {
            None
        } else if let Some(prev) = self
            .stages
            .iter()
            .find(|s| !s.name.is_empty() && s.name == lname)
        {
            Some(
                prev.image
                    .clone()
                    .ok_or_else(|| format!("stage {lname} has no image"))?,
            )
        } else {
            Some(self.base_image(&name).await?)
        };
        let config = image
            .as_ref()
            .and_then(|i| i.config.config.clone())
            .unwrap_or_default();
        self.say(&format!(
            " ---> {}\n",
            image.as_ref().map(|i| short(i.id())).unwrap_or("")
        ));
        let triggers: Vec<String> = config.on_build.clone().unwrap_or_default();
        let mut config = config;
        config.on_build = None;
        let author = image
            .as_ref()
            .map(|i| i.config.author.clone())
            .unwrap_or_default();
        self.stages.push(Stage {
            name: alias,
            image,
            config,
            args: Vars::new(),
            author,
        });
        if !triggers.is_empty() {
            self.say(&format!(
                "# Executing {} build trigger{}\n",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ));
            for t in triggers {
                let df = dockerfile::parse(t.as_str())
                    .map_err(|e| format!("ONBUILD trigger {t:?}: {e}"))?;
                for mut ti in df.instructions {
                    ti.line = i.line;
                    Box::pin(self.instruction(&ti, meta, true)).await?;
                }
            }
        }
        Ok(())
    }

    /// An image by name: local, or pulled (always with `pull=1`).
    async fn base_image(&self, name: &str) -> Result<Resolved, String> {
        if !self.opts.pull {
            if let Ok(img) = self.d.images.find(name).await {
                return self
                    .d
                    .images
                    .resolve_record(&img)
                    .await
                    .map_err(|e| e.to_string());
            }
        }
        self.say(&format!("Pulling from {name}\n"));
        let progress: crate::images::OnProgress = std::sync::Arc::new(|_| {});
        self.d
            .images
            .pull(name, progress)
            .await
            .map_err(|e| format!("pull access denied or image not found: {name}: {e}"))
    }

    async fn run_step(&mut self, i: &Instruction) -> Result<(), String> {
        let st = self.cur(i.line)?.clone();
        if st.image.is_none() {
            return Err(dockerfile::err(
                i.line,
                "RUN in a stage FROM scratch with nothing in it: there is no shell to run",
            ));
        }
        let json = dockerfile::json_form(&i.rest);
        let cmd: Vec<String> = match &json {
            Some(c) => c.clone(),
            None => {
                let mut sh = st
                    .config
                    .shell
                    .clone()
                    .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                sh.push(i.rest.trim().to_string());
                sh
            }
        };
        if cmd.is_empty() {
            return Err(dockerfile::err(
                i.line,
                "RUN requires at least one argument",
            ));
        }
        // Build args reach RUN as environment (not kept in the image).
        let env_names: std::collections::HashSet<String> = st
            .config
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.split_once('=').map(|(k, _)| k.to_string()))
            .collect();
        let arg_env: Vec<String> = st
            .args
            .iter()
            .filter(|(k, _)| !env_names.contains(*k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let created_by = if arg_env.is_empty() {
            cmd.join(" ")
        } else {
            format!("|{} {} {}", arg_env.len(), arg_env.join(" "), cmd.join(" "))
        };
        let key = self.key(&st, &format!("run {created_by}"));
        if let Some(img) = self.cached(&key).await {
            self.say(" ---> Using cache\n");
            self.say(&format!(" ---> {}\n", short(img.id())));
            self.cur(i.line)?.image = Some(img);
            return Ok(());
        }
        let mut env = st.config.env.clone().unwrap_or_default();
        env.extend(arg_env);
        let body = serde_json::json!({
            "Image": st.id(),
            "Cmd": cmd,
            "Entrypoint": [""],
            "Env": env,
            "WorkingDir": st.config.working_dir,
            "User": st.config.user,
            "Labels": {},
            "HostConfig": {
                "NetworkMode": match self.opts.network_mode.as_str() {
                    "" | "default" => "bridge",
                    m => m,
                },
            },
        });
        let id = self.create_container(body).await?;
        self.say(&format!(" ---> Running in {}\n", short(&id)));
        let run = self.run_container(&id).await;
        let remove = |me: &Self, id: String| {
            let d = me.d.clone();
            async move {
                let _ = super::containers::delete_container(&d, &id).await;
            }
        };
        let code = match run {
            Ok(c) => c,
            Err(e) => {
                remove(self, id.clone()).await;
                return Err(e);
            }
        };
        if code != 0 {
            if self.opts.rm && self.opts.forcerm {
                remove(self, id.clone()).await;
            }
            return Err(format!(
                "The command '{}' returned a non-zero code: {code}",
                cmd.join(" ")
            ));
        }
        let tmp = self.work.join(format!("layer-{}", crate::images::unique()));
        let diff = super::commit::write_diff(&self.d, &id, &tmp)
            .await
            .map_err(|e| e.message);
        let img = match diff {
            Ok(()) => {
                self.commit(&st, Some(&tmp), st.config.clone(), created_by)
                    .await
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&tmp);
        if self.opts.rm {
            remove(self, id.clone()).await;
            self.say(&format!("Removing intermediate container {}\n", short(&id)));
        }
        let img = img?;
        self.remember(&key, &img);
        self.say(&format!(" ---> {}\n", short(img.id())));
        self.cur(i.line)?.image = Some(img);
        Ok(())
    }

    async fn create_container(&self, body: serde_json::Value) -> Result<String, String> {
        let resp = super::containers::create(
            AxState(self.d.clone()),
            RawQuery(None),
            Bytes::from(body.to_string()),
        )
        .await
        .map_err(|e| e.message)?;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if !status.is_success() {
            return Err(v["message"].as_str().unwrap_or("create failed").to_string());
        }
        v["Id"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| "create: no Id in the answer".into())
    }

    /// Start the container, stream its output as build output, return its exit code.
    async fn run_container(&self, id: &str) -> Result<u32, String> {
        let c = find(&self.d, id).await.map_err(|e| e.message)?;
        let waiter = {
            let d = self.d.clone();
            let id = id.to_string();
            tokio::spawn(async move { super::containers::wait_exit(&d, &id).await })
        };
        super::containers::start_container(&self.d, &c)
            .await
            .map_err(|e| e.message)?;
        // Follow the json-file log while it runs.
        let path = PathBuf::from(&c.log_path);
        let mut offset = 0u64;
        let mut pending = String::new();
        let mut waiter = waiter;
        let code = loop {
            let done =
                tokio::time::timeout(std::time::Duration::from_millis(50), &mut waiter).await;
            self.pump_log(&path, &mut offset, &mut pending);
            if let Ok(r) = done {
                let st = r
                    .map_err(|e| e.to_string())?
                    .map_err(|e| status_err(e).message)?;
                self.pump_log(&path, &mut offset, &mut pending);
                break st.into_inner().exit_status;
            }
        };
        Ok(code)
    }

    fn pump_log(&self, path: &Path, offset: &mut u64, pending: &mut String) {
        use std::io::{Read, Seek};
        let Ok(mut f) = std::fs::File::open(path) else {
            return;
        };
        if f.seek(std::io::SeekFrom::Start(*offset)).is_err() {
            return;
        }
        let mut buf = String::new();
        let Ok(n) = f.read_to_string(&mut buf) else {
            return;
        };
        *offset += n as u64;
        pending.push_str(&buf);
        while let Some(p) = pending.find('\n') {
            let line: String = pending.drain(..=p).collect();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(t) = v["log"].as_str() {
                    self.say(t);
                }
            }
        }
    }

    async fn copy_step(&mut self, i: &Instruction) -> Result<(), String> {
        let st = self.cur(i.line)?.clone();
        let vars = st.vars();
        let e = self.escape;
        let line_err = |m: String| dockerfile::err(i.line, m);
        let mut list = match dockerfile::json_form(&i.rest) {
            Some(l) => l
                .into_iter()
                .map(|w| dockerfile::expand(&w, &vars, e))
                .collect::<Result<Vec<_>, _>>()?,
            None => dockerfile::words(&i.rest, &vars, e)?,
        };
        if list.len() < 2 {
            return Err(line_err(format!(
                "{} requires at least two arguments, but got {}",
                i.cmd,
                list.len()
            )));
        }
        let dest_raw = list.pop().expect("two or more");
        let flag = |k: &str| -> Result<Option<String>, String> {
            match i.flags.iter().find(|(f, _)| f == k) {
                Some((_, v)) => Ok(Some(dockerfile::expand(v, &vars, e)?)),
                None => Ok(None),
            }
        };
        let chmod = match flag("chmod")? {
            Some(m) => Some(
                u32::from_str_radix(&m, 8)
                    .map_err(|_| line_err(format!("invalid --chmod={m}: an octal mode")))?,
            ),
            None => None,
        };
        let chown = flag("chown")?;
        let from = flag("from")?;
        // Where the sources come from: the context, a stage, or an image.
        let (src_root, from_image) = match &from {
            None => (self.ctx.clone(), None),
            Some(f) => {
                let lf = f.to_ascii_lowercase();
                let img =
                    if let Some(s) = self.stages.iter().find(|s| s.name == lf && !lf.is_empty()) {
                        s.image.clone()
                    } else if let Ok(n) = lf.parse::<usize>() {
                        self.stages
                            .get(n)
                            .ok_or_else(|| line_err(format!("--from={f}: no stage {n}")))?
                            .image
                            .clone()
                    } else {
                        Some(self.base_image(f).await?)
                    };
                (PathBuf::new(), Some(img))
            }
        };
        let is_add = i.cmd == "ADD";
        let workdir = st.config.working_dir.clone();
        let dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!(
                "{}/{}",
                if workdir.is_empty() {
                    ""
                } else {
                    workdir.trim_end_matches('/')
                },
                dest_raw
            )
        };
        let dest_dir_hint = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        // Mount a view of the --from image to read from, if any.
        let view = match &from_image {
            Some(img) => Some(self.mount_view(img.as_ref()).await?),
            None => None,
        };
        let src_dir = match &view {
            Some((_, dir)) => dir.clone(),
            None => src_root,
        };
        let ignore = if from.is_none() {
            self.ignore.clone()
        } else {
            Default::default()
        };
        let work = self.work.clone();
        let sources = list.clone();
        let http = reqwest::Client::new();
        // Remote ADD sources are downloaded first (only ADD, only when the Dockerfile asks).
        let mut downloads = Vec::new();
        for s in &sources {
            if files::is_url(s) {
                if !is_add {
                    return Err(line_err(format!("source can't be a URL for COPY: {s}")));
                }
                self.say(&format!("Downloading {s}\n"));
                downloads.push((
                    s.clone(),
                    files::download(&http, s, &work).await.map_err(line_err)?,
                ));
            }
        }
        let plan = tokio::task::spawn_blocking(move || {
            files::plan(&src_dir, &sources, &downloads, &ignore, is_add)
        })
        .await
        .map_err(|e| e.to_string())?;
        let plan = match plan {
            Ok(p) => p,
            Err(m) => {
                if let Some((key, dir)) = &view {
                    self.drop_view(key, dir).await;
                }
                return Err(m);
            }
        };
        let key = self.key(
            &st,
            &format!(
                "{} {} chown={:?} chmod={:?} dest={dest} dir={dest_dir_hint} sum={}",
                i.cmd,
                list.join(" "),
                chown,
                chmod,
                plan.checksum
            ),
        );
        if let Some(img) = self.cached(&key).await {
            if let Some((k, dir)) = &view {
                self.drop_view(k, dir).await;
            }
            self.say(" ---> Using cache\n");
            self.say(&format!(" ---> {}\n", short(img.id())));
            self.cur(i.line)?.image = Some(img);
            return Ok(());
        }
        // Write into a snapshot of the current image, then commit its diff.
        let (dest2, plan) = (dest.clone(), plan);
        let tmp = self
            .in_snapshot(&st, move |root| {
                files::write(root, &plan, &dest2, dest_dir_hint, chown.as_deref(), chmod)
            })
            .await;
        if let Some((k, dir)) = &view {
            self.drop_view(k, dir).await;
        }
        let (r, tmp) = match tmp {
            Ok(t) => (Ok(()), t),
            Err(e) => (Err(e), PathBuf::new()),
        };
        let img = match r {
            Ok(()) => {
                self.commit(
                    &st,
                    Some(&tmp),
                    st.config.clone(),
                    format!("/bin/sh -c #(nop) {} {} in {dest} ", i.cmd, list.join(" ")),
                )
                .await
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&tmp);
        let img = img?;
        self.remember(&key, &img);
        self.say(&format!(" ---> {}\n", short(img.id())));
        self.cur(i.line)?.image = Some(img);
        Ok(())
    }

    /// Run `f` on a mounted writable snapshot of the stage's image; the diff it made, as a
    /// layer tar in the work directory (the snapshot is removed).
    async fn in_snapshot(
        &self,
        st: &Stage,
        f: impl FnOnce(&Path) -> Result<(), String> + Send + 'static,
    ) -> Result<PathBuf, String> {
        let snap = format!("build-{}", crate::images::unique());
        let mounts = self.prepare(st.image.as_ref(), &snap).await?;
        let mnt = self.work.join(format!("{snap}-root"));
        let written = tokio::task::spawn_blocking(move || -> Result<(), String> {
            berth_manager::images::snapshots::with_mounted(&mounts, &mnt, f)
                .map_err(|e| e.to_string())?
        })
        .await
        .map_err(|e| e.to_string())?;
        let tmp = self.work.join(format!("layer-{}", crate::images::unique()));
        let r = match written {
            Ok(()) => self.snapshot_diff(&snap, &tmp).await,
            Err(e) => Err(e),
        };
        let _ = self
            .d
            .images
            .mgr
            .snapshots
            .clone()
            .remove(pb::SnapshotRef { key: snap })
            .await;
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r.map(|()| tmp)
    }

    /// WORKDIR: the new working directory, created (owned by root) in a layer like
    /// dockerd's builder does.
    async fn workdir_step(&mut self, i: &Instruction) -> Result<(), String> {
        let st = self.cur(i.line)?.clone();
        let cfg = self
            .config_change(&st, i)
            .map_err(|e| dockerfile::err(i.line, e))?;
        let dir = cfg.working_dir.clone();
        let key = self.key(
            &st,
            &format!(
                "workdir {dir} {}",
                serde_json::to_string(&cfg).expect("json")
            ),
        );
        let mut st = st;
        if let Some(img) = self.cached(&key).await {
            self.say(" ---> Using cache\n");
            self.say(&format!(" ---> {}\n", short(img.id())));
            st.config = cfg;
            st.image = Some(img);
            *self.cur(i.line)? = st;
            return Ok(());
        }
        let d2 = dir.clone();
        let tmp = self
            .in_snapshot(&st, move |root| {
                let rootfd: OwnedFd = std::fs::File::open(root).map_err(|e| e.to_string())?.into();
                files::mkdir_p(&rootfd, &d2, None).map(|_| ())
            })
            .await?;
        let img = self
            .commit(
                &st,
                Some(&tmp),
                cfg.clone(),
                format!("/bin/sh -c #(nop) WORKDIR {dir}"),
            )
            .await;
        let _ = std::fs::remove_file(&tmp);
        let img = img?;
        self.remember(&key, &img);
        self.say(&format!(" ---> {}\n", short(img.id())));
        st.config = cfg;
        st.image = Some(img);
        *self.cur(i.line)? = st;
        Ok(())
    }

    /// A writable snapshot of `image` (empty for scratch) under `key`; its mounts.
    async fn prepare(
        &self,
        image: Option<&Resolved>,
        key: &str,
    ) -> Result<Vec<berth_manager::images::snapshots::Mount>, String> {
        let mgr = &self.d.images.mgr;
        let parent = match image {
            Some(img) => {
                mgr.images
                    .clone()
                    .unpack(pb::UnpackRequest {
                        name: img.record.name.clone(),
                        lease: String::new(),
                    })
                    .await
                    .map_err(|e| status_err(e).message)?
                    .into_inner()
                    .chain_id
            }
            None => String::new(),
        };
        Ok(mgr
            .snapshots
            .clone()
            .prepare(pb::PrepareSnapshotRequest {
                key: key.to_string(),
                parent,
                labels: Default::default(),
            })
            .await
            .map_err(|e| status_err(e).message)?
            .into_inner()
            .mounts
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Mount a snapshot of `image` read from by COPY --from: (snapshot key, mount point).
    async fn mount_view(&self, image: Option<&Resolved>) -> Result<(String, PathBuf), String> {
        let key = format!("build-from-{}", crate::images::unique());
        let mounts = self.prepare(image, &key).await?;
        let dir = self.work.join(format!("{key}-root"));
        let (m, d2) = (mounts, dir.clone());
        let r = tokio::task::spawn_blocking(move || -> Result<(), String> {
            std::fs::create_dir_all(&d2).map_err(|e| e.to_string())?;
            berth_manager::images::snapshots::mount_all(&m, &d2).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?;
        if let Err(e) = r {
            self.drop_view(&key, &dir).await;
            return Err(e);
        }
        Ok((key, dir))
    }

    async fn drop_view(&self, key: &str, dir: &Path) {
        let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(dir);
        let _ = self
            .d
            .images
            .mgr
            .snapshots
            .clone()
            .remove(pb::SnapshotRef {
                key: key.to_string(),
            })
            .await;
    }

    async fn snapshot_diff(&self, key: &str, path: &Path) -> Result<(), String> {
        use tokio::io::AsyncWriteExt;
        let mut s = self
            .d
            .images
            .mgr
            .snapshots
            .clone()
            .diff(pb::DiffRequest {
                key: key.to_string(),
                mount_points: Vec::new(),
            })
            .await
            .map_err(|e| status_err(e).message)?
            .into_inner();
        let mut f = tokio::fs::File::create(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        while let Some(chunk) = s.message().await.map_err(|e| status_err(e).message)? {
            f.write_all(&chunk.data).await.map_err(|e| e.to_string())?;
        }
        f.flush().await.map_err(|e| e.to_string())
    }
}

/// Build args Docker defines without an ARG (proxies); not warned about.
const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// `HEALTHCHECK [--interval=…] CMD …` or `HEALTHCHECK NONE`, as the image config's JSON.
fn healthcheck(i: &Instruction, _cur: &RunConfig) -> Result<serde_json::Value, String> {
    let rest = i.rest.trim();
    if rest.eq_ignore_ascii_case("none") {
        if !i.flags.is_empty() {
            return Err("HEALTHCHECK NONE takes no flags".into());
        }
        return Ok(serde_json::json!({ "Test": ["NONE"] }));
    }
    let (kw, cmd) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !kw.eq_ignore_ascii_case("cmd") || cmd.trim().is_empty() {
        return Err("HEALTHCHECK requires CMD <command> or NONE".into());
    }
    let test: Vec<String> = match dockerfile::json_form(cmd) {
        Some(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
        None => vec!["CMD-SHELL".into(), cmd.trim().into()],
    };
    let mut hc = serde_json::json!({ "Test": test });
    for (k, v) in &i.flags {
        let field = match k.as_str() {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => {
                let n: i64 = v.parse().map_err(|_| format!("--retries={v}: a number"))?;
                hc["Retries"] = n.into();
                continue;
            }
            _ => unreachable!("flags were checked"),
        };
        let ns = go_duration(v).ok_or_else(|| format!("--{k}={v}: not a duration (like 30s)"))?;
        hc[field] = ns.into();
    }
    Ok(hc)
}

/// Go duration text (`1m30s`, `500ms`) → nanoseconds.
fn go_duration(s: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    if s.is_empty() {
        return None;
    }
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_digit() || n == '.' {
                break;
            }
            unit.push(n);
            chars.next();
        }
        let v: f64 = num.parse().ok()?;
        num.clear();
        total += v * match unit.as_str() {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
    }
    if !num.is_empty() {
        return if num == "0" { Some(0) } else { None };
    }
    Some(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(go_duration("30s"), Some(30_000_000_000));
        assert_eq!(go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(go_duration("500ms"), Some(500_000_000));
        assert_eq!(go_duration("5"), None);
    }
}
