//! The builder: a Dockerfile's stages and instructions, run one by one. Configuration-only
//! instructions make images of their own ([`Builder::config_step`]); RUN, COPY/ADD and
//! WORKDIR are in [`super::steps`].

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use berth_manager::images::manifest::{History, RunConfig};
use tokio::sync::mpsc;

use super::cache::Cache;
use super::dockerfile::{self, Instruction, Vars};
use super::{files, pattern, Options};
use crate::images::Resolved;
use crate::state::State;

/// A build stage: its image so far (None: `FROM scratch` before any step) and config.
#[derive(Clone)]
pub(super) struct Stage {
    pub(super) name: String,
    pub(super) image: Option<Resolved>,
    pub(super) config: RunConfig,
    /// ARGs declared in this stage, with their values.
    pub(super) args: Vars,
    /// The image's author (MAINTAINER).
    pub(super) author: String,
}

impl Stage {
    pub(super) fn id(&self) -> String {
        self.image
            .as_ref()
            .map(|i| i.id().to_string())
            .unwrap_or_default()
    }

    /// Variables for substitution: ARGs, then ENV (ENV wins).
    pub(super) fn vars(&self) -> Vars {
        let mut v = self.args.clone();
        for e in self.config.env.iter().flatten() {
            if let Some((k, val)) = e.split_once('=') {
                v.insert(k.to_string(), val.to_string());
            }
        }
        v
    }
}

pub(super) struct Builder {
    pub(super) d: State,
    pub(super) opts: Options,
    pub(super) ctx: PathBuf,
    pub(super) work: PathBuf,
    /// Build output to the client: bounded, so a client that does not read slows the build
    /// down instead of growing berthd.
    pub(super) out: mpsc::Sender<Bytes>,
    pub(super) escape: char,
    pub(super) ignore: pattern::Ignore,
    pub(super) cache: Cache,
    pub(super) step: usize,
    pub(super) steps: usize,
    pub(super) stages: Vec<Stage>,
    pub(super) used_args: std::collections::BTreeSet<String>,
    /// The exit code of the RUN that failed the build.
    pub(super) exit_code: Option<u32>,
}

pub(super) fn short(id: &str) -> &str {
    let h = id.trim_start_matches("sha256:");
    &h[..h.len().min(12)]
}

impl Builder {
    pub(super) async fn say(&self, text: &str) {
        if self.opts.quiet {
            return;
        }
        let line = serde_json::json!({ "stream": text });
        // (An error: the client went away; the build goes on and is cached.)
        let _ = self.out.send(Bytes::from(format!("{line}\r\n"))).await;
    }

    pub(super) async fn run(&mut self) -> Result<(), String> {
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
            self.say(&format!("Step {}/{} : {}\n", n + 1, self.steps, i.original))
                .await;
        }
        for i in todo {
            self.step += 1;
            self.say(&format!(
                "Step {}/{} : {}\n",
                self.step, self.steps, i.original
            ))
            .await;
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
            ))
            .await;
        }
        let image = last
            .image
            .ok_or("the build produced no image (FROM scratch and nothing else)")?;
        let id = image.id().to_string();
        let aux = serde_json::json!({ "aux": { "ID": id } });
        let _ = self.out.send(Bytes::from(format!("{aux}\r\n"))).await;
        if self.opts.quiet {
            let line = serde_json::json!({ "stream": format!("{id}\n") });
            let _ = self.out.send(Bytes::from(format!("{line}\r\n"))).await;
        }
        self.say(&format!("Successfully built {}\n", short(&id)))
            .await;
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
            self.say(&format!("Successfully tagged {shown}\n")).await;
        }
        Ok(())
    }

    /// Values an `ARG` instruction declares: build args win over defaults.
    pub(super) fn arg_values(
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

    pub(super) fn cur(&mut self, line: usize) -> Result<&mut Stage, String> {
        self.stages
            .last_mut()
            .ok_or_else(|| dockerfile::err(line, "no FROM before this instruction"))
    }

    #[allow(clippy::too_many_lines)]
    pub(super) async fn instruction(
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
                ))
                .await;
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
    pub(super) fn config_change(&self, st: &Stage, i: &Instruction) -> Result<RunConfig, String> {
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
                    crate::build::instructions::set_env(env, &format!("{k}={v}"));
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
                crate::containers::signal_number(&s)
                    .ok_or_else(|| format!("invalid signal: {s}"))?;
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
    pub(super) async fn config_step(
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
            self.say(" ---> Using cache\n").await;
            st.config = cfg;
            self.say(&format!(" ---> {}\n", short(img.id()))).await;
            st.image = Some(img);
            return Ok(());
        }
        let img = self
            .commit(st, None, cfg.clone(), format!("/bin/sh -c #(nop)  {text}"))
            .await?;
        self.remember(&key, &img);
        st.config = cfg;
        self.say(&format!(" ---> {}\n", short(img.id()))).await;
        st.image = Some(img);
        Ok(())
    }

    pub(super) fn key(&self, st: &Stage, what: &str) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(st.id().as_bytes());
        h.update(b"\n");
        h.update(what.as_bytes());
        format!("{:x}", h.finalize())
    }

    pub(super) async fn cached(&self, key: &str) -> Option<Resolved> {
        if self.opts.nocache {
            return None;
        }
        let id = self.cache.map.get(key)?;
        let img = self.d.images.find(id).await.ok()?;
        let r = self.d.images.resolve_record(&img).await.ok()?;
        if self.opts.cache_from.is_empty() {
            return Some(r);
        }
        // With --cache-from: only a step image that one of those images was built on (its
        // layers and history a prefix of theirs).
        for name in &self.opts.cache_from {
            let Ok(c) = self.d.images.find(name).await else {
                continue;
            };
            let Ok(c) = self.d.images.resolve_record(&c).await else {
                continue;
            };
            let (rl, cl) = (&r.config.rootfs.diff_ids, &c.config.rootfs.diff_ids);
            let (rh, ch) = (&r.config.history, &c.config.history);
            let same = |a: &History, b: &History| {
                a.created_by == b.created_by && a.empty_layer == b.empty_layer
            };
            if rl.len() <= cl.len()
                && rl[..] == cl[..rl.len()]
                && rh.len() <= ch.len()
                && rh.iter().zip(ch.iter()).all(|(a, b)| same(a, b))
            {
                return Some(r);
            }
        }
        None
    }

    pub(super) fn remember(&mut self, key: &str, img: &Resolved) {
        self.cache.map.insert(key.to_string(), img.id().to_string());
        self.cache.dirty = true;
    }

    pub(super) async fn commit(
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
                    created: crate::clock::now_rfc3339(),
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

    pub(super) async fn from(&mut self, i: &Instruction, meta: &Vars) -> Result<(), String> {
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
        ))
        .await;
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
            ))
            .await;
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
    pub(super) async fn base_image(&self, name: &str) -> Result<Resolved, String> {
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
        self.say(&format!("Pulling from {name}\n")).await;
        let progress: crate::images::OnProgress = std::sync::Arc::new(|_| {});
        self.d
            .images
            .pull(name, progress)
            .await
            .map_err(|e| format!("pull access denied or image not found: {name}: {e}"))
    }
}

/// Build args Docker defines without an ARG (proxies); not warned about.
pub(super) const PREDEFINED_ARGS: &[&str] = &[
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
pub(super) fn healthcheck(i: &Instruction, _cur: &RunConfig) -> Result<serde_json::Value, String> {
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
