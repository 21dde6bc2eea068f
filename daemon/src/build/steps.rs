//! The steps that change files: RUN (a real container run through the manager, shim and
//! runtime; its diff), COPY/ADD (files written into a snapshot; its diff) and WORKDIR.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use berth_proto::manager as pb;

use super::builder::{short, Builder, Stage};
use super::dockerfile::{self, Instruction};
use super::files;
use crate::containers::find;
use crate::images::Resolved;

impl Builder {
    pub(super) async fn run_step(&mut self, i: &Instruction) -> Result<(), String> {
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
            self.say(" ---> Using cache\n").await;
            self.say(&format!(" ---> {}\n", short(img.id()))).await;
            self.cur(i.line)?.image = Some(img);
            return Ok(());
        }
        let mut env = st.config.env.clone().unwrap_or_default();
        env.extend(arg_env);
        let mut body = serde_json::json!({
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
                "ExtraHosts": self.opts.extra_hosts,
            },
        });
        for (k, v) in &self.opts.resources {
            body["HostConfig"][k] = v.clone();
        }
        let id = self.create_container(body).await?;
        self.say(&format!(" ---> Running in {}\n", short(&id)))
            .await;
        let run = self.run_container(&id).await;
        let remove = |me: &Self, id: String| {
            let d = me.d.clone();
            async move {
                let _ = crate::containers::delete(&d, &id).await;
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
            self.exit_code = Some(code);
            if self.opts.rm && self.opts.forcerm {
                remove(self, id.clone()).await;
            }
            return Err(format!(
                "The command '{}' returned a non-zero code: {code}",
                cmd.join(" ")
            ));
        }
        let tmp = self.work.join(format!("layer-{}", crate::images::unique()));
        let diff = crate::containers::changes::write_diff(&self.d, &id, &tmp)
            .await
            .map_err(|e| e.to_string());
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
            self.say(&format!("Removing intermediate container {}\n", short(&id)))
                .await;
        }
        let img = img?;
        self.remember(&key, &img);
        self.say(&format!(" ---> {}\n", short(img.id()))).await;
        self.cur(i.line)?.image = Some(img);
        Ok(())
    }

    pub(super) async fn create_container(&self, body: serde_json::Value) -> Result<String, String> {
        let body = serde_json::from_value(body).map_err(|e| format!("create: {e}"))?;
        crate::containers::create(
            &self.d,
            crate::containers::CreateRequest { name: None, body },
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Start the container, stream its output as build output, return its exit code.
    pub(super) async fn run_container(&self, id: &str) -> Result<u32, String> {
        let c = find(&self.d, id).await.map_err(|e| e.to_string())?;
        let waiter = {
            let d = self.d.clone();
            let id = id.to_string();
            tokio::spawn(async move { crate::containers::wait_exit(&d, &id).await })
        };
        crate::containers::start(&self.d, &c)
            .await
            .map_err(|e| e.to_string())?;
        // Follow the json-file log while it runs.
        let path = PathBuf::from(&c.log_path);
        let mut offset = 0u64;
        let mut pending = Vec::new();
        let mut waiter = waiter;
        let code = loop {
            let done =
                tokio::time::timeout(std::time::Duration::from_millis(50), &mut waiter).await;
            self.pump_log(&path, &mut offset, &mut pending).await;
            if let Ok(r) = done {
                let st = r
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.message().to_string())?;
                self.pump_log(&path, &mut offset, &mut pending).await;
                break st.exit_status;
            }
        };
        Ok(code)
    }

    /// Pass the container's new log lines on as build output, from `offset` to the end of
    /// the file, in bounded reads (a chatty RUN waits for the client, it is not buffered).
    pub(super) async fn pump_log(&self, path: &Path, offset: &mut u64, pending: &mut Vec<u8>) {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let Ok(mut f) = tokio::fs::File::open(path).await else {
            return;
        };
        if f.seek(std::io::SeekFrom::Start(*offset)).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match f.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            *offset += n as u64;
            pending.extend_from_slice(&buf[..n]);
            let mut start = 0;
            while let Some(p) = pending[start..].iter().position(|b| *b == b'\n') {
                let line = &pending[start..start + p];
                start += p + 1;
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
                    continue;
                };
                if let Some(t) = v["log"].as_str() {
                    // stderr in red, as dockerd's classic builder marks it.
                    if v["stream"] == "stderr" {
                        self.say(&format!("\x1b[91m{t}\x1b[0m")).await;
                    } else {
                        self.say(t).await;
                    }
                }
            }
            pending.drain(..start);
        }
    }

    pub(super) async fn copy_step(&mut self, i: &Instruction) -> Result<(), String> {
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
                self.say(&format!("Downloading {s}\n")).await;
                downloads.push((
                    s.clone(),
                    files::download(&http, s, &work, self.d.archive_limits.max_bytes)
                        .await
                        .map_err(line_err)?,
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
            self.say(" ---> Using cache\n").await;
            self.say(&format!(" ---> {}\n", short(img.id()))).await;
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
        self.say(&format!(" ---> {}\n", short(img.id()))).await;
        self.cur(i.line)?.image = Some(img);
        Ok(())
    }

    /// Run `f` on a mounted writable snapshot of the stage's image; the diff it made, as a
    /// layer tar in the work directory (the snapshot is removed).
    pub(super) async fn in_snapshot(
        &self,
        st: &Stage,
        f: impl FnOnce(&Path) -> Result<(), String> + Send + 'static,
    ) -> Result<PathBuf, String> {
        let snap = format!("build-{}", crate::images::unique());
        let mounts = self.prepare(st.image.as_ref(), &snap).await?;
        let mnt = self.work.join(format!("{snap}-root"));
        let written = tokio::task::spawn_blocking(move || -> Result<(), String> {
            berth_fstree::mount::with_mounted(&mounts, &mnt, f).map_err(|e| e.to_string())?
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
    pub(super) async fn workdir_step(&mut self, i: &Instruction) -> Result<(), String> {
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
            self.say(" ---> Using cache\n").await;
            self.say(&format!(" ---> {}\n", short(img.id()))).await;
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
        self.say(&format!(" ---> {}\n", short(img.id()))).await;
        st.config = cfg;
        st.image = Some(img);
        *self.cur(i.line)? = st;
        Ok(())
    }

    /// A writable snapshot of `image` (empty for scratch) under `key`; its mounts.
    pub(super) async fn prepare(
        &self,
        image: Option<&Resolved>,
        key: &str,
    ) -> Result<Vec<berth_fstree::mount::Mount>, String> {
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
                    .map_err(|e| e.message().to_string())?
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
            .map_err(|e| e.message().to_string())?
            .into_inner()
            .mounts
            .into_iter()
            .map(berth_manager::images::grpc::mount_of)
            .collect())
    }

    /// Mount a snapshot of `image` read from by COPY --from: (snapshot key, mount point).
    pub(super) async fn mount_view(
        &self,
        image: Option<&Resolved>,
    ) -> Result<(String, PathBuf), String> {
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

    pub(super) async fn drop_view(&self, key: &str, dir: &Path) {
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

    pub(super) async fn snapshot_diff(&self, key: &str, path: &Path) -> Result<(), String> {
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
            .map_err(|e| e.message().to_string())?
            .into_inner();
        let mut f = tokio::fs::File::create(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        while let Some(chunk) = s.message().await.map_err(|e| e.message().to_string())? {
            f.write_all(&chunk.data).await.map_err(|e| e.to_string())?;
        }
        f.flush().await.map_err(|e| e.to_string())
    }
}
