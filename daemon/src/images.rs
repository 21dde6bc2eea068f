//! Image operations on top of the manager's content store: pull, push, import, tag, remove,
//! list, inspect, history. Blobs go into the store under a lease (so a collection running
//! meanwhile keeps them), the image is recorded, unpacked, and the lease dropped.

use crate::clock::now_rfc3339;
use std::sync::Arc;
use std::time::Duration;

use berth_manager::images::manifest::{self, Index, Manifest, Platform};
use berth_manager::images::{host_platform, Descriptor};
use berth_proto::manager as pb;
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;

use crate::manager::Mgr;
use crate::reference::Reference;
use crate::registry::{self, Endpoint, Registry};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] crate::reference::Error),
    #[error("pull {reference}")]
    Pull {
        reference: String,
        #[source]
        err: Box<Error>,
    },
    #[error("push {reference}")]
    Push {
        reference: String,
        #[source]
        err: Box<Error>,
    },
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Manager(#[from] crate::manager::Error),
    #[error("{digest}: {reason}")]
    Content { digest: String, reason: String },
    /// dockerd's exact words, capital N included: docker-py before 7 recognises a missing
    /// image (ImageNotFound rather than NotFound) by this text.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("{0}")]
    Invalid(String),
    /// Another image or name stands in the way (dockerd's 409).
    #[error("{0}")]
    Conflict(String),
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        err: std::io::Error,
    },
}

impl Error {
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            Error::NoSuchImage(_) => Kind::NotFound,
            Error::Reference(_) | Error::Invalid(_) => Kind::Invalid,
            Error::Conflict(_) => Kind::Conflict,
            Error::Registry(registry::Error::NotFound { .. }) => Kind::NotFound,
            Error::Registry(registry::Error::Unauthorized { .. }) => Kind::Unauthorized,
            Error::Pull { err, .. } | Error::Push { err, .. }
                if matches!(**err, Error::Registry(registry::Error::NotFound { .. })) =>
            {
                Kind::NotFound
            }
            _ => Kind::Internal,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::Manager(s.into())
    }
}

/// A progress report, one per layer step (Docker's pull/push progress).
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Short id (12 hex digits of the digest), or "" for the image as a whole.
    pub id: String,
    pub status: String,
    pub current: u64,
    pub total: u64,
}

pub type OnProgress = Arc<dyn Fn(Progress) + Send + Sync>;

/// Progress reports for one blob: `report(status, bytes so far)`.
fn reporter<'a>(progress: &'a OnProgress, d: &'a Descriptor) -> impl Fn(&str, u64) + Sync + 'a {
    let id = short(&d.digest);
    move |status: &str, current: u64| {
        progress(Progress {
            id: id.clone(),
            status: status.to_string(),
            current,
            total: d.size,
        })
    }
}

pub fn short(digest: &str) -> String {
    digest
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

fn content_err(digest: &str, reason: impl Into<String>) -> Error {
    Error::Content {
        digest: digest.to_string(),
        reason: reason.into(),
    }
}

fn sha256_of(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// What one image is, resolved locally.
#[derive(Clone)]
pub struct Resolved {
    pub record: pb::Image,
    pub manifest_digest: String,
    pub manifest: Manifest,
    pub config_bytes: Vec<u8>,
    pub config: manifest::ImageConfig,
}

impl Resolved {
    /// Docker's image ID: the config digest.
    pub fn id(&self) -> &str {
        &self.manifest.config.digest
    }
}

pub struct Images {
    pub mgr: Mgr,
    pub reg: Arc<Registry>,
    pub platform: Platform,
}

impl Images {
    pub fn new(mgr: Mgr, reg: Arc<Registry>) -> Images {
        Images {
            mgr,
            reg,
            platform: host_platform(),
        }
    }

    /// Drop leases of berthd processes that are gone (killed mid-pull, say), so that the next
    /// collection removes what they left half-written.
    pub async fn reconcile(&self) -> Result<usize, Error> {
        let leases = self
            .mgr
            .leases
            .clone()
            .list(pb::Empty {})
            .await?
            .into_inner()
            .leases;
        let mut dropped = 0;
        for l in leases {
            let mut parts = l.id.splitn(3, '-');
            let (Some(kind), Some(pid)) = (parts.next(), parts.next()) else {
                continue;
            };
            if !matches!(kind, "pull" | "import" | "load") {
                continue;
            }
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            let alive = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("berthd"))
                .unwrap_or(false);
            if !alive {
                self.mgr.drop_lease(&l.id).await;
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    // ---- pull

    pub async fn pull(&self, reference: &str, progress: OnProgress) -> Result<Resolved, Error> {
        let r = Reference::parse(reference)?;
        let lease = format!("pull-{}-{}", std::process::id(), unique());
        self.mgr.lease(&lease, 24 * 3600).await?;
        let res = self.pull_leased(&r, &lease, &progress).await;
        self.mgr.drop_lease(&lease).await;
        res.map_err(|err| Error::Pull {
            reference: r.to_string(),
            err: Box::new(err),
        })
    }

    async fn pull_leased(
        &self,
        r: &Reference,
        lease: &str,
        progress: &OnProgress,
    ) -> Result<Resolved, Error> {
        let mut last = None;
        for ep in self.reg.endpoints(r)? {
            match self.reg.get_manifest(&ep, &r.path, r.object()).await {
                Ok(m) => {
                    return self.pull_from(r, &ep, m, lease, progress).await;
                }
                Err(e) if ep.mirror => {
                    tracing::info!("mirror {}: {e}", ep.base);
                    last = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .map(Error::from)
            .unwrap_or_else(|| Error::Invalid(format!("no endpoint for {r}"))))
    }

    async fn pull_from(
        &self,
        r: &Reference,
        ep: &Endpoint,
        (body, media_type, reported): (Vec<u8>, String, Option<String>),
        lease: &str,
        progress: &OnProgress,
    ) -> Result<Resolved, Error> {
        let digest = sha256_of(&body);
        if let Some(want) = &r.digest {
            if *want != digest {
                return Err(content_err(
                    want,
                    format!("the registry sent a manifest with digest {digest}"),
                ));
            }
        }
        if let Some(rep) = reported.filter(|d| d.starts_with("sha256:")) {
            if rep != digest {
                return Err(content_err(
                    &rep,
                    format!("the registry's manifest has digest {digest}"),
                ));
            }
        }
        let mt = if media_type.is_empty() || media_type == "application/json" {
            manifest::sniff(&body)
        } else {
            media_type
        };
        let top = Descriptor {
            media_type: mt.clone(),
            digest: digest.clone(),
            size: body.len() as u64,
        };
        let (m_digest, m_bytes) = if manifest::is_index(&mt) {
            let idx = manifest::parse_index(&body, &digest)
                .map_err(|e| content_err(&digest, e.to_string()))?;
            let e = manifest::choose(&idx, &self.platform).ok_or_else(|| {
                Error::Invalid(format!("{r}: no manifest for platform {}", self.platform))
            })?;
            let (b, _, _) = self.reg.get_manifest(ep, &r.path, &e.digest).await?;
            if sha256_of(&b) != e.digest {
                return Err(content_err(
                    &e.digest,
                    "the registry sent a manifest with another digest",
                ));
            }
            self.mgr.put(b.clone(), lease).await?;
            (e.digest.clone(), b)
        } else if manifest::is_manifest(&mt) {
            (digest.clone(), body.clone())
        } else {
            return Err(content_err(
                &digest,
                format!("media type {mt:?} is not an image manifest"),
            ));
        };
        let m = manifest::parse_manifest(&m_bytes, &m_digest)
            .map_err(|e| content_err(&m_digest, e.to_string()))?;
        self.mgr.put(body, lease).await?;
        // Config and layers, up to max-concurrent-downloads at a time.
        let mut blobs = vec![m.config.clone()];
        blobs.extend(m.layers.iter().cloned());
        let limit = Arc::new(tokio::sync::Semaphore::new(
            self.reg.cfg.max_concurrent_downloads.max(1),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for d in blobs {
            let (mgr, reg, ep, repo, lease, progress, limit) = (
                self.mgr.clone(),
                self.reg.clone(),
                ep.clone(),
                r.path.clone(),
                lease.to_string(),
                progress.clone(),
                limit.clone(),
            );
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore");
                download(&mgr, &reg, &ep, &repo, &d, &lease, &progress).await
            });
        }
        while let Some(res) = tasks.join_next().await {
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tasks.abort_all();
                    return Err(e);
                }
                Err(e) => return Err(Error::Invalid(format!("download task: {e}"))),
            }
        }
        let name = r.to_string();
        let record = pb::Image {
            name: name.clone(),
            target: Some(pb::Descriptor {
                media_type: top.media_type.clone(),
                digest: top.digest.clone(),
                size: top.size,
            }),
            labels: [(
                "berth.repo-digest".to_string(),
                format!("{}@{}", r.repository(), top.digest),
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        self.set_name(record).await?;
        progress(Progress {
            id: String::new(),
            status: "Extracting".into(),
            current: 0,
            total: 0,
        });
        self.unpack_or_forget(&name, lease).await?;
        progress(Progress {
            id: String::new(),
            status: format!("Digest: {}", top.digest),
            current: 0,
            total: 0,
        });
        self.resolve(&name).await
    }

    /// Unpack `name`; if that fails (a hostile or corrupt layer), the name is removed again
    /// so no image is left that cannot run; its content goes with the next collection.
    pub async fn unpack_or_forget(&self, name: &str, lease: &str) -> Result<(), Error> {
        let r = self
            .mgr
            .images
            .clone()
            .unpack(pb::UnpackRequest {
                name: name.to_string(),
                lease: lease.to_string(),
            })
            .await;
        if let Err(e) = r {
            let _ = self
                .mgr
                .images
                .clone()
                .delete(pb::ImageRef {
                    name: name.to_string(),
                })
                .await;
            return Err(e.into());
        }
        Ok(())
    }

    // ---- local images

    /// Record `img` under its name. A name that moves to another image leaves the old image
    /// dangling (`<none>:<none>`, kept under its ID) unless another name still holds it.
    pub async fn set_name(&self, img: pb::Image) -> Result<(), Error> {
        if let Some(old) = self.mgr.image(&img.name).await? {
            let moved =
                old.target.as_ref().map(|t| &t.digest) != img.target.as_ref().map(|t| &t.digest);
            if moved && !img.name.starts_with("sha256:") {
                if let Ok(res) = self.resolve_record(&old).await {
                    let id = res.id().to_string();
                    let mut held = false;
                    for other in self.mgr.images().await? {
                        if other.name == old.name {
                            continue;
                        }
                        if self
                            .resolve_record(&other)
                            .await
                            .map(|o| o.id() == id)
                            .unwrap_or(false)
                        {
                            held = true;
                            break;
                        }
                    }
                    if !held {
                        let mut dangling = old.clone();
                        dangling.name = id;
                        dangling.labels.remove("berth.repo-digest");
                        self.mgr
                            .images
                            .clone()
                            .create(pb::CreateImageRequest {
                                image: Some(dangling),
                                replace: true,
                            })
                            .await?;
                    }
                }
            }
        }
        // An ID-only record of the same image is no longer needed once it has a name.
        if !img.name.starts_with("sha256:") {
            if let Ok(res) = self.resolve_record(&img).await {
                let _ = self
                    .mgr
                    .images
                    .clone()
                    .delete(pb::ImageRef {
                        name: res.id().to_string(),
                    })
                    .await;
            }
        }
        self.mgr
            .images
            .clone()
            .create(pb::CreateImageRequest {
                image: Some(img),
                replace: true,
            })
            .await?;
        Ok(())
    }

    /// `docker image prune`: remove dangling images, then collect what nothing references.
    pub async fn prune(&self) -> Result<(Vec<String>, pb::GarbageCollectResponse), Error> {
        let mut removed = Vec::new();
        for img in self.mgr.images().await? {
            if img.name.starts_with("sha256:") {
                self.mgr
                    .images
                    .clone()
                    .delete(pb::ImageRef {
                        name: img.name.clone(),
                    })
                    .await?;
                removed.push(img.name);
            }
        }
        let gc = self
            .mgr
            .images
            .clone()
            .garbage_collect(pb::Empty {})
            .await?
            .into_inner();
        Ok((removed, gc))
    }

    /// Find a local image by reference, full or short ID (config digest), or digest.
    pub async fn find(&self, what: &str) -> Result<pb::Image, Error> {
        if let Ok(r) = Reference::parse(what) {
            if let Some(i) = self.mgr.image(&r.to_string()).await? {
                return Ok(i);
            }
        }
        let hex = what.trim_start_matches("sha256:");
        // Images made here (imports, commits, build steps) have a record named by their ID.
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Some(i) = self.mgr.image(&format!("sha256:{hex}")).await? {
                return Ok(i);
            }
        }
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = None;
            for img in self.mgr.images().await? {
                let id = match self.resolve_record(&img).await {
                    Ok(r) => r.id().to_string(),
                    Err(_) => continue,
                };
                if id.trim_start_matches("sha256:").starts_with(hex) {
                    found = Some(img);
                    break;
                }
            }
            if let Some(i) = found {
                return Ok(i);
            }
        }
        Err(Error::NoSuchImage(what.to_string()))
    }

    pub async fn resolve(&self, name: &str) -> Result<Resolved, Error> {
        let img = self.find(name).await?;
        self.resolve_record(&img).await
    }

    pub async fn resolve_record(&self, img: &pb::Image) -> Result<Resolved, Error> {
        let target = img.target.clone().unwrap_or_default();
        let mut digest = target.digest.clone();
        let mut mt = target.media_type.clone();
        for _ in 0..4 {
            let bytes = self.mgr.read(&digest).await?;
            if mt.is_empty() {
                mt = manifest::sniff(&bytes);
            }
            if manifest::is_index(&mt) {
                let idx: Index = manifest::parse_index(&bytes, &digest)
                    .map_err(|e| content_err(&digest, e.to_string()))?;
                let e = manifest::choose(&idx, &self.platform).ok_or_else(|| {
                    Error::Invalid(format!(
                        "image {}: no manifest for platform {}",
                        img.name, self.platform
                    ))
                })?;
                digest = e.digest.clone();
                mt = e.media_type.clone();
                continue;
            }
            let m = manifest::parse_manifest(&bytes, &digest)
                .map_err(|e| content_err(&digest, e.to_string()))?;
            let config_bytes = self.mgr.read(&m.config.digest).await?;
            let config: manifest::ImageConfig = serde_json::from_slice(&config_bytes)
                .map_err(|e| content_err(&m.config.digest, format!("image config: {e}")))?;
            return Ok(Resolved {
                record: img.clone(),
                manifest_digest: digest,
                manifest: m,
                config_bytes,
                config,
            });
        }
        Err(content_err(&target.digest, "indexes nest too deep"))
    }

    /// `docker tag SOURCE TARGET`.
    pub async fn tag(&self, source: &str, target: &str) -> Result<String, Error> {
        let src = self.find(source).await?;
        let t = Reference::parse(target)?;
        if t.digest.is_some() {
            return Err(Error::Invalid(format!(
                "tag {target:?}: a tag cannot carry a digest"
            )));
        }
        let mut rec = src.clone();
        rec.name = t.to_string();
        rec.labels.remove("berth.repo-digest");
        self.set_name(rec).await?;
        Ok(t.to_string())
    }

    /// `docker rmi`: untag a reference; when an ID is given (or the last name goes), the image
    /// goes, and its content with the next collection. Returns ("Untagged"|"Deleted", what).
    pub async fn remove(&self, what: &str, force: bool) -> Result<Vec<(String, String)>, Error> {
        let img = self.find(what).await?;
        let res = self.resolve_record(&img).await?;
        let id = res.id().to_string();
        let by_name = Reference::parse(what)
            .map(|r| r.to_string() == img.name)
            .unwrap_or(false);
        let mut same = Vec::new();
        for other in self.mgr.images().await? {
            if let Ok(o) = self.resolve_record(&other).await {
                if o.id() == id {
                    same.push(other.name.clone());
                }
            }
        }
        let mut out = Vec::new();
        let names: Vec<String> = if by_name {
            vec![img.name.clone()]
        } else {
            if same.len() > 1 && !force {
                return Err(Error::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    short(&id)
                )));
            }
            same.clone()
        };
        for n in &names {
            self.mgr
                .images
                .clone()
                .delete(pb::ImageRef { name: n.clone() })
                .await?;
            let shown = Reference::parse(n)
                .map(|r| r.familiar())
                .unwrap_or_else(|_| n.clone());
            out.push(("Untagged".to_string(), shown));
        }
        if names.len() == same.len() {
            out.push(("Deleted".to_string(), id));
            self.mgr
                .images
                .clone()
                .garbage_collect(pb::Empty {})
                .await?;
        }
        Ok(out)
    }

    // ---- push

    pub async fn push(&self, reference: &str, progress: OnProgress) -> Result<String, Error> {
        let r = Reference::parse(reference)?;
        self.push_inner(&r, &progress)
            .await
            .map_err(|err| Error::Push {
                reference: r.to_string(),
                err: Box::new(err),
            })
    }

    async fn push_inner(&self, r: &Reference, progress: &OnProgress) -> Result<String, Error> {
        let img = self
            .mgr
            .image(&r.to_string())
            .await?
            .ok_or_else(|| Error::NoSuchImage(r.familiar()))?;
        let target = img.target.clone().unwrap_or_default();
        let ep = self
            .reg
            .endpoints(r)?
            .into_iter()
            .find(|e| !e.mirror)
            .ok_or_else(|| Error::Invalid(format!("no registry to push {r} to")))?;
        let top = self.mgr.read(&target.digest).await?;
        let mt = if target.media_type.is_empty() {
            manifest::sniff(&top)
        } else {
            target.media_type.clone()
        };
        let mut to_put: Vec<(String, String, Vec<u8>)> = Vec::new(); // (object, media type, bytes)
        let mut manifests: Vec<(String, Vec<u8>)> = Vec::new();
        if manifest::is_index(&mt) {
            let idx = manifest::parse_index(&top, &target.digest)
                .map_err(|e| content_err(&target.digest, e.to_string()))?;
            let mut all = true;
            for e in &idx.manifests {
                if self.mgr.has(&e.digest).await? {
                    manifests.push((e.digest.clone(), self.mgr.read(&e.digest).await?));
                } else {
                    all = false;
                }
            }
            if all {
                for (d, b) in &manifests {
                    to_put.push((d.clone(), manifest::sniff(b), b.clone()));
                }
                to_put.push((r.object().to_string(), mt.clone(), top.clone()));
            } else {
                // Only some platforms are here: push this platform's manifest under the tag.
                let res = self.resolve_record(&img).await?;
                let b = self.mgr.read(&res.manifest_digest).await?;
                manifests = vec![(res.manifest_digest.clone(), b.clone())];
                to_put.push((r.object().to_string(), manifest::sniff(&b), b));
            }
        } else {
            manifests.push((target.digest.clone(), top.clone()));
            to_put.push((r.object().to_string(), mt.clone(), top.clone()));
        }
        for (d, b) in &manifests {
            let m = manifest::parse_manifest(b, d).map_err(|e| content_err(d, e.to_string()))?;
            let mut blobs = m.layers.clone();
            blobs.push(m.config.clone());
            for blob in blobs {
                self.push_blob(&ep, r, &blob, progress).await?;
            }
        }
        let mut pushed = String::new();
        for (object, media_type, bytes) in to_put {
            let digest = sha256_of(&bytes);
            self.reg
                .put_manifest(&ep, &r.path, &object, &media_type, bytes)
                .await?;
            pushed = digest;
        }
        progress(Progress {
            id: String::new(),
            status: format!("{}: digest: {pushed}", r.tag.as_deref().unwrap_or("latest")),
            current: 0,
            total: 0,
        });
        Ok(pushed)
    }

    async fn push_blob(
        &self,
        ep: &Endpoint,
        r: &Reference,
        d: &Descriptor,
        progress: &OnProgress,
    ) -> Result<(), Error> {
        let report = reporter(progress, d);
        if self.reg.has_blob(ep, &r.path, &d.digest).await? {
            report("Layer already exists", d.size);
            return Ok(());
        }
        // Cross-repository mount from another repository of ours on the same registry.
        for img in self.mgr.images().await? {
            let Ok(other) = Reference::parse(&img.name) else {
                continue;
            };
            if other.domain != r.domain || other.path == r.path {
                continue;
            }
            let Ok(res) = self.resolve_record(&img).await else {
                continue;
            };
            if !res.manifest.layers.iter().any(|l| l.digest == d.digest)
                && res.manifest.config.digest != d.digest
            {
                continue;
            }
            if !self
                .reg
                .has_blob(ep, &other.path, &d.digest)
                .await
                .unwrap_or(false)
            {
                continue;
            }
            if self
                .reg
                .start_upload(ep, &r.path, Some((&d.digest, &other.path)))
                .await?
                .is_none()
            {
                report(
                    &format!("Mounted from {}", other.familiar_repository()),
                    d.size,
                );
                return Ok(());
            }
            break;
        }
        let mut loc = self
            .reg
            .start_upload(ep, &r.path, None)
            .await?
            .ok_or_else(|| Error::Invalid("upload mounted without asking".into()))?;
        let mut s = self
            .mgr
            .content
            .clone()
            .read(pb::ReadContentRequest {
                digest: d.digest.clone(),
                offset: 0,
            })
            .await?
            .into_inner();
        const CHUNK: usize = 8 << 20;
        let mut buf = Vec::with_capacity(CHUNK);
        let mut sent = 0u64;
        while let Some(c) = s.message().await? {
            buf.extend_from_slice(&c.data);
            if buf.len() >= CHUNK {
                let chunk = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK));
                let n = chunk.len() as u64;
                loc = self
                    .reg
                    .upload_chunk(ep, &r.path, &loc, sent, chunk)
                    .await?;
                sent += n;
                report("Pushing", sent);
            }
        }
        if !buf.is_empty() {
            let n = buf.len() as u64;
            loc = self.reg.upload_chunk(ep, &r.path, &loc, sent, buf).await?;
            sent += n;
        }
        self.reg.finish_upload(ep, &r.path, &loc, &d.digest).await?;
        report("Pushed", sent);
        Ok(())
    }

    // ---- import

    /// Import a root filesystem tarball (plain or gzip) as a one-layer image named `name`
    /// (None: only its ID). `cmd` becomes the image's Cmd.
    pub async fn import(
        &self,
        tarball: &std::path::Path,
        name: Option<&str>,
        cmd: Vec<String>,
        platform: Option<Platform>,
    ) -> Result<Resolved, Error> {
        let now = now_rfc3339();
        self.create_image(NewImage {
            base: None,
            layer: Some(tarball),
            run: manifest::RunConfig {
                env: Some(vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ]),
                cmd: (!cmd.is_empty()).then_some(cmd),
                ..Default::default()
            },
            history: manifest::History {
                created: now,
                created_by: "berth import".into(),
                comment: "Imported from tarball".into(),
                ..Default::default()
            },
            author: String::new(),
            target: name,
            platform,
        })
        .await
    }

    /// Make an image of `base`'s layers (none for an import) and one more read from a tar
    /// file (plain or compressed), with `run` as its configuration; name it `target` (None:
    /// only its ID) and unpack it.
    pub async fn create_image(&self, n: NewImage<'_>) -> Result<Resolved, Error> {
        let target = match n.target {
            Some(t) => Some(Reference::parse(t)?),
            None => None,
        };
        let lease = format!("image-{}-{}", std::process::id(), unique());
        self.mgr.lease(&lease, 3600).await?;
        let res = self.create_leased(n, target.as_ref(), &lease).await;
        self.mgr.drop_lease(&lease).await;
        res
    }

    async fn create_leased(
        &self,
        n: NewImage<'_>,
        target: Option<&Reference>,
        lease: &str,
    ) -> Result<Resolved, Error> {
        let p = n.platform.clone().unwrap_or_else(|| self.platform.clone());
        let (mut layers, mut diff_ids, mut history) = match n.base {
            Some(b) => (
                b.manifest.layers.clone(),
                b.config.rootfs.diff_ids.clone(),
                b.config.history.clone(),
            ),
            None => Default::default(),
        };
        let mut hist = n.history;
        match n.layer {
            Some(path) => {
                let (layer, diff_id) = self.store_layer(path, lease).await?;
                layers.push(layer);
                diff_ids.push(diff_id);
            }
            // A configuration-only step (ENV, CMD, … in a build).
            None => hist.empty_layer = true,
        }
        let created = hist.created.clone();
        history.push(hist);
        self.finish_image(
            p,
            n.author,
            n.run,
            (created, layers, diff_ids, history),
            target,
            lease,
        )
        .await
    }

    /// Store a layer tar (plain or compressed) as a gzip blob: (descriptor, diff id).
    async fn store_layer(
        &self,
        layer: &std::path::Path,
        lease: &str,
    ) -> Result<(Descriptor, String), Error> {
        let path = layer.to_path_buf();
        // Compress (gzip) while hashing both forms, on a blocking thread.
        let (gz, diff_id) =
            tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, String), Error> {
                use std::io::{Read, Write};
                let io = |what: &'static str| {
                    let path = path.display().to_string();
                    move |err| Error::Io { what, path, err }
                };
                let f = std::fs::File::open(&path).map_err(io("open"))?;
                let mut r = berth_manager::images::layer::decompress(f).map_err(io("read"))?;
                let mut h = Sha256::new();
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = r.read(&mut buf).map_err(io("read"))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    enc.write_all(&buf[..n]).expect("write to memory");
                }
                Ok((
                    enc.finish().expect("memory"),
                    format!("sha256:{:x}", h.finalize()),
                ))
            })
            .await
            .map_err(|e| Error::Invalid(format!("layer worker: {e}")))??;
        let layer = Descriptor {
            media_type: manifest::OCI_LAYER_GZIP.into(),
            digest: sha256_of(&gz),
            size: gz.len() as u64,
        };
        write_stream(&self.mgr, &layer, lease, gz).await?;
        Ok((layer, diff_id))
    }

    #[allow(clippy::type_complexity)]
    async fn finish_image(
        &self,
        p: Platform,
        author: String,
        run: manifest::RunConfig,
        (created, layers, diff_ids, history): (
            String,
            Vec<Descriptor>,
            Vec<String>,
            Vec<manifest::History>,
        ),
        target: Option<&Reference>,
        lease: &str,
    ) -> Result<Resolved, Error> {
        let config = manifest::ImageConfig {
            created,
            author,
            architecture: p.architecture.clone(),
            os: p.os.clone(),
            variant: p.variant.clone(),
            config: Some(run),
            rootfs: manifest::RootFs {
                kind: "layers".into(),
                diff_ids,
            },
            history,
        };
        let cfg_bytes = serde_json::to_vec(&config).expect("json");
        let cfg_digest = self.mgr.put(cfg_bytes.clone(), lease).await?;
        let m = Manifest {
            schema_version: 2,
            media_type: manifest::OCI_MANIFEST.into(),
            config: Descriptor {
                media_type: manifest::OCI_CONFIG.into(),
                digest: cfg_digest.clone(),
                size: cfg_bytes.len() as u64,
            },
            layers,
            annotations: Default::default(),
        };
        let m_bytes = serde_json::to_vec(&m).expect("json");
        let m_digest = self.mgr.put(m_bytes.clone(), lease).await?;
        let name = target
            .map(|t| t.to_string())
            .unwrap_or_else(|| format!("sha256:{}", cfg_digest.trim_start_matches("sha256:")));
        let record = pb::Image {
            name: name.clone(),
            target: Some(pb::Descriptor {
                media_type: manifest::OCI_MANIFEST.into(),
                digest: m_digest,
                size: m_bytes.len() as u64,
            }),
            ..Default::default()
        };
        self.set_name(record).await?;
        if p == self.platform
            || (p.os == self.platform.os && p.architecture == self.platform.architecture)
        {
            self.unpack_or_forget(&name, lease).await?;
        }
        Ok(Resolved {
            record: self.mgr.image(&name).await?.unwrap_or_default(),
            manifest_digest: sha256_of(&m_bytes),
            manifest: m,
            config_bytes: cfg_bytes,
            config,
        })
    }
}

/// What [`Images::create_image`] makes an image of.
pub struct NewImage<'a> {
    pub base: Option<&'a Resolved>,
    /// The new layer; None for a configuration-only image (an `empty_layer` history entry).
    pub layer: Option<&'a std::path::Path>,
    pub run: manifest::RunConfig,
    pub history: manifest::History,
    pub author: String,
    pub target: Option<&'a str>,
    pub platform: Option<Platform>,
}

pub(crate) fn unique() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{t:x}")
}

/// Write a blob held in memory through a streamed ingest.
pub async fn write_stream(
    mgr: &Mgr,
    d: &Descriptor,
    lease: &str,
    data: Vec<u8>,
) -> Result<(), Error> {
    if mgr.has(&d.digest).await? {
        return Ok(());
    }
    let mut msgs: Vec<pb::WriteContentRequest> = data
        .chunks(1 << 20)
        .map(|chunk| pb::WriteContentRequest {
            data: chunk.to_vec(),
            ..Default::default()
        })
        .collect();
    msgs.push(pb::WriteContentRequest {
        commit: true,
        expected: d.digest.clone(),
        size: d.size,
        ..Default::default()
    });
    // The first message names the ingest.
    msgs[0].r#ref = format!("{lease}/{}", d.digest);
    msgs[0].lease = lease.to_string();
    mgr.content.clone().write(tokio_stream::iter(msgs)).await?;
    Ok(())
}

/// Fetch one blob into the content store, resuming after broken connections (up to 5 tries,
/// backing off), verified by the store on commit.
async fn download(
    mgr: &Mgr,
    reg: &Registry,
    ep: &Endpoint,
    repo: &str,
    d: &Descriptor,
    lease: &str,
    progress: &OnProgress,
) -> Result<(), Error> {
    let report = reporter(progress, d);
    if mgr.has(&d.digest).await? {
        report("Already exists", d.size);
        return Ok(());
    }
    let reference = format!("{lease}/{}", d.digest);
    let mut attempt = 0u32;
    loop {
        let offset = mgr.ingest_offset(&reference).await?;
        let result = download_once(mgr, reg, ep, repo, d, lease, &reference, offset, &report).await;
        match result {
            Ok(()) => {
                report("Download complete", d.size);
                return Ok(());
            }
            Err(e) if attempt < 5 && retryable(&e) => {
                attempt += 1;
                tracing::info!("{}: {e}; retrying ({attempt}/5)", d.digest);
                tokio::time::sleep(Duration::from_millis(200 * (1 << attempt))).await;
            }
            Err(e) => {
                let _ = mgr
                    .content
                    .clone()
                    .abort(pb::IngestRef { r#ref: reference })
                    .await;
                return Err(e);
            }
        }
    }
}

fn retryable(e: &Error) -> bool {
    match e {
        Error::Registry(r) => r.transient(),
        Error::Invalid(m) => m.starts_with("interrupted"),
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
async fn download_once(
    mgr: &Mgr,
    reg: &Registry,
    ep: &Endpoint,
    repo: &str,
    d: &Descriptor,
    lease: &str,
    reference: &str,
    offset: u64,
    report: &(dyn Fn(&str, u64) + Sync),
) -> Result<(), Error> {
    if offset > d.size {
        return Err(content_err(
            &d.digest,
            format!(
                "ingest holds {offset} bytes, more than the {} expected",
                d.size
            ),
        ));
    }
    let resp = reg.get_blob(ep, repo, &d.digest, offset).await?;
    // A registry that ignores Range sends everything: start over.
    let start = if offset > 0 && resp.status() == reqwest::StatusCode::PARTIAL_CONTENT {
        offset
    } else {
        0
    };
    let (tx, writer) = mgr.writer();
    let _ = tx
        .send(pb::WriteContentRequest {
            r#ref: reference.to_string(),
            lease: lease.to_string(),
            offset: start,
            ..Default::default()
        })
        .await;
    let mut got = start;
    let mut body = resp.bytes_stream();
    let mut broken = None;
    let mut last_report = 0u64;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(b) => {
                got += b.len() as u64;
                if got > d.size {
                    broken = Some(content_err(
                        &d.digest,
                        format!("the registry sent more than the {} bytes expected", d.size),
                    ));
                    break;
                }
                let m = pb::WriteContentRequest {
                    data: b.to_vec(),
                    ..Default::default()
                };
                if tx.send(m).await.is_err() {
                    break;
                }
                if got - last_report > 1 << 20 {
                    report("Downloading", got);
                    last_report = got;
                }
            }
            Err(e) => {
                broken = Some(Error::Invalid(format!(
                    "interrupted download of {}: {e}",
                    d.digest
                )));
                break;
            }
        }
    }
    if broken.is_none() {
        let _ = tx
            .send(pb::WriteContentRequest {
                commit: true,
                expected: d.digest.clone(),
                size: d.size,
                ..Default::default()
            })
            .await;
    }
    drop(tx);
    let w = writer
        .await
        .map_err(|e| Error::Invalid(format!("content writer: {e}")))?;
    if let Some(e) = broken {
        return Err(e);
    }
    let w = w?.into_inner();
    if w.digest.is_empty() {
        return Err(Error::Invalid(format!(
            "interrupted download of {}: not committed",
            d.digest
        )));
    }
    Ok(())
}

/// Group the store's names by image ID.
pub async fn by_id(images: &Images) -> Result<Vec<(Resolved, Vec<String>, Vec<String>)>, Error> {
    let mut out: Vec<(Resolved, Vec<String>, Vec<String>)> = Vec::new();
    for img in images.mgr.images().await? {
        let Ok(r) = images.resolve_record(&img).await else {
            continue;
        };
        let (tag, digest) = if img.name.starts_with("sha256:") {
            (None, None)
        } else {
            let rf = Reference::parse(&img.name).ok();
            (
                rf.as_ref()
                    .filter(|r| r.tag.is_some())
                    .map(|r| r.familiar()),
                img.labels.get("berth.repo-digest").and_then(|d| {
                    let r = Reference::parse(d).ok()?;
                    Some(format!("{}@{}", r.familiar_repository(), r.digest?))
                }),
            )
        };
        if let Some(e) = out.iter_mut().find(|e| e.0.id() == r.id()) {
            e.1.extend(tag);
            e.2.extend(digest);
        } else {
            out.push((r, tag.into_iter().collect(), digest.into_iter().collect()));
        }
    }
    for e in &mut out {
        e.1.sort();
        e.1.dedup();
        e.2.sort();
        e.2.dedup();
    }
    Ok(out)
}
