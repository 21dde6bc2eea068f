//! Image operations on top of the manager's content store: pull ([`pull`]), push
//! ([`push`]), import and commit ([`import`]), and here naming, tag, remove, find, resolve,
//! prune. Blobs go into the store under a lease (so a collection running meanwhile keeps
//! them), the image is recorded, unpacked, and the lease dropped.

mod import;
mod pull;
mod push;

use std::sync::Arc;

use berth_manager::images::manifest::{self, Index, Manifest, Platform};
use berth_manager::images::{host_platform, Descriptor};
use berth_proto::manager as pb;
use sha2::{Digest, Sha256};

use crate::manager::Mgr;
use crate::reference::Reference;
use crate::registry::{self, Registry};

pub use import::{write_stream, NewImage};

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
    /// A blob's download broke off (retried, resuming where it stopped).
    #[error("interrupted download of {digest}: {reason}")]
    Interrupted { digest: String, reason: String },
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
pub(super) fn reporter<'a>(
    progress: &'a OnProgress,
    d: &'a Descriptor,
) -> impl Fn(&str, u64) + Sync + 'a {
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

pub(super) fn content_err(digest: &str, reason: impl Into<String>) -> Error {
    Error::Content {
        digest: digest.to_string(),
        reason: reason.into(),
    }
}

pub(super) fn sha256_of(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// The record label naming a committed image's parent (the image its container ran).
pub const PARENT_LABEL: &str = "berth.parent";

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
}

impl Images {
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
}

pub(crate) fn unique() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{t:x}")
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
