//! Images on the manager's side (the containerd role): the content store ([`content`]),
//! image records (name → descriptor), the overlayfs snapshotter ([`snapshots`]), applying
//! layers ([`layer`]), unpacking an image into a chain of snapshots, leases, and garbage
//! collection of whatever no image, container or live lease references.
//!
//! Registries, references and archives are the daemon's business: it fills the content store
//! (under a lease), records the image, and asks for an unpack.

pub mod content;
pub use berth_fstree::{diff, layer};
pub mod grpc;
pub mod manifest;
pub mod snapshots;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{Store, IMAGES, LEASES};
use content::ContentStore;
use snapshots::{Kind, Snapshotter};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("content {0} not found")]
    ContentNotFound(String),
    #[error("invalid digest {0:?}: want sha256:<64 hex digits>")]
    BadDigest(String),
    #[error("content {expected}: data has digest {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("content {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("image {0:?} not found")]
    ImageNotFound(String),
    #[error("image {0:?} already exists")]
    ImageExists(String),
    #[error("snapshot {0:?} not found")]
    SnapshotNotFound(String),
    #[error("snapshot {0:?} already exists")]
    SnapshotExists(String),
    #[error("lease {0:?} not found")]
    LeaseNotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("manifest {digest}: {reason}")]
    BadManifest { digest: String, reason: String },
    #[error("image {image}: no manifest for platform {platform}")]
    NoPlatform { image: String, platform: String },
    #[error("layer {digest} of image {image}")]
    Layer {
        image: String,
        digest: String,
        #[source]
        err: layer::Error,
    },
    #[error("layer {digest}: its content has diff id {actual}, the image config says {expected}")]
    DiffIdMismatch {
        digest: String,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Mount(#[from] berth_fstree::mount::Error),
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        err: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::error::Error),
}

impl Error {
    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            Error::ContentNotFound(_)
            | Error::ImageNotFound(_)
            | Error::SnapshotNotFound(_)
            | Error::LeaseNotFound(_) => Code::NotFound,
            Error::ImageExists(_) | Error::SnapshotExists(_) => Code::AlreadyExists,
            Error::BadDigest(_) | Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::DigestMismatch { .. }
            | Error::SizeMismatch { .. }
            | Error::FailedPrecondition(_)
            | Error::BadManifest { .. }
            | Error::NoPlatform { .. }
            | Error::Layer { .. }
            | Error::DiffIdMismatch { .. } => Code::FailedPrecondition,
            Error::Store(e) => e.code(),
            Error::Mount(_) | Error::Io { .. } => Code::Internal,
        }
    }
}

/// An OCI content descriptor.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// A named image: what its name points at.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    pub name: String,
    pub target: Descriptor,
    pub labels: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A lease keeps whatever was made under it from the garbage collector until it is deleted
/// or expires: ingests that name it, blobs and snapshots listed in it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Lease {
    pub id: String,
    pub created_at: String,
    /// Seconds since the epoch; 0 = never.
    pub expires_at: u64,
    pub content: Vec<String>,
    pub snapshots: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// RFC 3339 UTC, as every record here stores times.
pub fn now_rfc3339() -> String {
    berth_runtime::state::now_rfc3339()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Lease {
    fn live(&self) -> bool {
        self.expires_at == 0 || self.expires_at > now_secs()
    }
}

/// What a garbage collection removed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Collected {
    pub blobs: Vec<String>,
    pub snapshots: Vec<String>,
    pub ingests: usize,
    pub bytes: u64,
}

/// The platform this manager runs containers for, as OCI names it.
pub fn host_platform() -> manifest::Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    manifest::Platform {
        os: "linux".into(),
        architecture: arch.into(),
        variant: if arch == "arm64" {
            "v8".into()
        } else {
            String::new()
        },
    }
}

/// The chain ID of a layer stack (OCI image spec: ChainID(L0|…|Ln)).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!("sha256:{:x}", Sha256::digest(format!("{prev} {d}"))),
        };
        out.push(next);
    }
    out
}

/// Content store, image records, snapshots and leases together.
#[derive(Clone)]
pub struct Images {
    pub content: ContentStore,
    pub snapshots: Snapshotter,
    store: Arc<Store>,
    /// Caps on each layer's uncompressed content.
    pub limits: layer::Limits,
}

impl Images {
    /// Open under `root` (the manager's --root): `content/`, `snapshots/`.
    pub fn open(root: &Path, store: Arc<Store>) -> Result<Images, Error> {
        Ok(Images {
            content: ContentStore::open(&root.join("content"))?,
            snapshots: Snapshotter::open(&root.join("snapshots"), store.clone())?,
            store,
            limits: layer::Limits::default(),
        })
    }

    // --- image records

    pub fn create_image(&self, mut img: ImageRecord, replace: bool) -> Result<ImageRecord, Error> {
        if img.name.is_empty() {
            return Err(Error::InvalidArgument("image name is empty".into()));
        }
        content::parse_digest(&img.target.digest)?;
        if self.content.info(&img.target.digest)?.is_none() {
            return Err(Error::ContentNotFound(img.target.digest.clone()));
        }
        let now = berth_runtime::state::now_rfc3339();
        let old = self.store.get::<ImageRecord>(IMAGES, &img.name)?;
        img.created_at = old
            .as_ref()
            .map(|o| o.created_at.clone())
            .unwrap_or_else(|| now.clone());
        img.updated_at = now;
        if replace {
            self.store.put(IMAGES, &img.name, &img)?;
        } else if !self.store.insert_new(IMAGES, &img.name, &img)? {
            return Err(Error::ImageExists(img.name));
        }
        Ok(img)
    }

    pub fn image(&self, name: &str) -> Result<ImageRecord, Error> {
        self.store
            .get::<ImageRecord>(IMAGES, name)?
            .ok_or_else(|| Error::ImageNotFound(name.to_string()))
    }

    pub fn images(&self) -> Result<Vec<ImageRecord>, Error> {
        Ok(self.store.all::<ImageRecord>(IMAGES)?)
    }

    pub fn delete_image(&self, name: &str) -> Result<(), Error> {
        if !self.store.delete(IMAGES, name)? {
            return Err(Error::ImageNotFound(name.to_string()));
        }
        Ok(())
    }

    // --- leases

    pub fn create_lease(&self, id: &str, ttl_secs: u64) -> Result<Lease, Error> {
        if id.is_empty() {
            return Err(Error::InvalidArgument("lease id is empty".into()));
        }
        let l = Lease {
            id: id.to_string(),
            created_at: berth_runtime::state::now_rfc3339(),
            expires_at: if ttl_secs == 0 {
                0
            } else {
                now_secs() + ttl_secs
            },
            ..Default::default()
        };
        self.store.put(LEASES, id, &l)?;
        Ok(l)
    }

    pub fn delete_lease(&self, id: &str) -> Result<(), Error> {
        if !self.store.delete(LEASES, id)? {
            return Err(Error::LeaseNotFound(id.to_string()));
        }
        Ok(())
    }

    pub fn leases(&self) -> Result<Vec<Lease>, Error> {
        Ok(self.store.all::<Lease>(LEASES)?)
    }

    fn lease_add(
        &self,
        id: &str,
        content: Option<&str>,
        snapshot: Option<&str>,
    ) -> Result<(), Error> {
        if id.is_empty() {
            return Ok(());
        }
        let mut l = self
            .store
            .get::<Lease>(LEASES, id)?
            .ok_or_else(|| Error::LeaseNotFound(id.to_string()))?;
        if let Some(c) = content {
            l.content.push(c.to_string());
        }
        if let Some(s) = snapshot {
            l.snapshots.push(s.to_string());
        }
        self.store.put(LEASES, id, &l)?;
        Ok(())
    }

    /// Record a committed blob in `lease` (if any).
    pub fn lease_content(&self, lease: &str, digest: &str) -> Result<(), Error> {
        self.lease_add(lease, Some(digest), None)
    }

    // --- unpacking

    /// The manifest of `image` for `platform`, and its config.
    pub fn resolve(
        &self,
        name: &str,
        platform: &manifest::Platform,
    ) -> Result<(manifest::Manifest, manifest::ImageConfig), Error> {
        let img = self.image(name)?;
        let m = manifest::select(&self.content, &img.target, platform, name)?;
        let cfg_bytes = self.content.read(&m.config.digest)?;
        let cfg: manifest::ImageConfig =
            serde_json::from_slice(&cfg_bytes).map_err(|e| Error::BadManifest {
                digest: m.config.digest.clone(),
                reason: format!("image config: {e}"),
            })?;
        if cfg.rootfs.diff_ids.len() != m.layers.len() {
            return Err(Error::BadManifest {
                digest: m.config.digest.clone(),
                reason: format!(
                    "{} layers but {} diff ids in the config",
                    m.layers.len(),
                    cfg.rootfs.diff_ids.len()
                ),
            });
        }
        Ok((m, cfg))
    }

    /// Unpack `image` (for the host platform) into committed snapshots, one per layer, named
    /// by chain ID; layers already unpacked are shared. Returns the top chain ID ("" for an
    /// image without layers).
    #[tracing::instrument(level = "info", skip_all, fields(image = %name))]
    pub fn unpack(&self, name: &str, lease: &str) -> Result<String, Error> {
        let (m, cfg) = self.resolve(name, &host_platform())?;
        let chain = chain_ids(&cfg.rootfs.diff_ids);
        // Layers apply into their own directories (overlay form), independent of each other:
        // extract the missing ones in parallel, then commit them bottom-up with their parents.
        let mut todo = Vec::new(); // (layer index, extract snapshot)
        let cleanup = |todo: &[(usize, snapshots::Snapshot)]| {
            for (_, s) in todo {
                let _ = self.snapshots.remove(&s.key);
            }
        };
        for (i, id) in chain.iter().enumerate() {
            if self.snapshots.stat(id)?.is_some() {
                continue;
            }
            let key = format!(
                "extract-{}-{}-{}",
                std::process::id(),
                &id[7..19],
                self.store.next_id("extract")?
            );
            match self
                .snapshots
                .create(&key, "", Kind::Active, BTreeMap::new())
            {
                Ok(s) => todo.push((i, s)),
                Err(e) => {
                    cleanup(&todo);
                    return Err(e);
                }
            }
        }
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(todo.len())
            .max(1);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<Mutex<Option<Result<(), Error>>>> =
            todo.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|sc| {
            for _ in 0..workers {
                sc.spawn(|| loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some((i, snap)) = todo.get(k) else { break };
                    let r = self.apply_layer(name, &m.layers[*i], &cfg.rootfs.diff_ids[*i], snap);
                    let failed = r.is_err();
                    *results[k].lock().unwrap() = Some(r);
                    if failed {
                        // Stop handing out work; the others finish what they hold.
                        next.store(todo.len(), std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        for r in results {
            if let Some(Err(e)) = r.into_inner().unwrap() {
                cleanup(&todo);
                return Err(e);
            }
        }
        for (i, snap) in &todo {
            let parent = if *i == 0 {
                String::new()
            } else {
                chain[i - 1].clone()
            };
            match self.snapshots.commit_onto(&chain[*i], &snap.key, &parent) {
                Ok(_) => {}
                // Someone unpacked the same layer meanwhile: use theirs.
                Err(Error::SnapshotExists(_)) => {
                    let _ = self.snapshots.remove(&snap.key);
                }
                Err(e) => {
                    cleanup(&todo);
                    return Err(e);
                }
            }
            self.lease_add(lease, None, Some(&chain[*i])).ok();
        }
        Ok(chain.last().cloned().unwrap_or_default())
    }

    fn apply_layer(
        &self,
        image: &str,
        l: &Descriptor,
        diff_id: &str,
        snap: &snapshots::Snapshot,
    ) -> Result<(), Error> {
        let blob = self.content.open_blob(&l.digest)?;
        let applied =
            layer::apply(blob, &self.snapshots.fs_dir(snap), &self.limits).map_err(|err| {
                Error::Layer {
                    image: image.to_string(),
                    digest: l.digest.clone(),
                    err,
                }
            })?;
        if applied.diff_id != diff_id {
            return Err(Error::DiffIdMismatch {
                digest: l.digest.clone(),
                expected: diff_id.to_string(),
                actual: applied.diff_id,
            });
        }
        Ok(())
    }

    // --- garbage collection

    /// Snapshot keys that containers use as their root filesystem.
    pub fn container_snapshots(&self) -> Vec<String> {
        self.store
            .containers()
            .map(|cs| {
                cs.into_iter()
                    .map(|c| c.snapshot_key)
                    .filter(|k| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Remove blobs, snapshots and ingests that no image, container snapshot (`keep_snapshots`)
    /// or live lease references. Expired leases are removed first.
    pub fn collect(&self, keep_snapshots: &[String]) -> Result<Collected, Error> {
        let mut leases = Vec::new();
        for l in self.leases()? {
            if l.live() {
                leases.push(l);
            } else {
                let _ = self.store.delete(LEASES, &l.id);
            }
        }
        let live_leases: HashSet<&str> = leases.iter().map(|l| l.id.as_str()).collect();
        // Mark content.
        let mut blobs: HashSet<String> = HashSet::new();
        let mut stack: Vec<String> = self
            .images()?
            .into_iter()
            .map(|i| i.target.digest)
            .collect();
        for l in &leases {
            stack.extend(l.content.iter().cloned());
        }
        let mut snaps: HashSet<String> = keep_snapshots.iter().cloned().collect();
        for l in &leases {
            snaps.extend(l.snapshots.iter().cloned());
        }
        while let Some(d) = stack.pop() {
            if !blobs.insert(d.clone()) {
                continue;
            }
            let Ok(Some(info)) = self.content.info(&d) else {
                continue;
            };
            if info.size > 16 << 20 {
                continue; // a layer, not JSON
            }
            let Ok(bytes) = self.content.read(&d) else {
                continue;
            };
            let refs = manifest::references(&bytes);
            if let Some(diff_ids) = refs.diff_ids {
                snaps.extend(chain_ids(&diff_ids));
            }
            stack.extend(refs.children);
        }
        // Mark snapshot parents.
        let all = self.snapshots.list()?;
        let by_key: std::collections::HashMap<&str, &snapshots::Snapshot> =
            all.iter().map(|s| (s.key.as_str(), s)).collect();
        let mut keep: HashSet<String> = HashSet::new();
        for k in &snaps {
            let mut cur = by_key.get(k.as_str()).copied();
            while let Some(s) = cur {
                if !keep.insert(s.key.clone()) {
                    break;
                }
                cur = by_key.get(s.parent.as_str()).copied();
            }
        }
        let mut out = Collected::default();
        // Sweep snapshots, children first.
        // Layers this manager is unpacking right now are in use; extractions left by an
        // earlier manager (killed mid-unpack) are not.
        let ours = format!("extract-{}-", std::process::id());
        let mut doomed: Vec<&snapshots::Snapshot> = all
            .iter()
            .filter(|s| !keep.contains(&s.key) && !s.key.starts_with(&ours))
            .collect();
        loop {
            let before = doomed.len();
            doomed.retain(|s| {
                let has_child = all.iter().any(|c| {
                    c.parent == s.key && self.snapshots.stat(&c.key).ok().flatten().is_some()
                });
                if has_child {
                    return true;
                }
                if self.snapshots.remove(&s.key).is_ok() {
                    out.snapshots.push(s.key.clone());
                }
                false
            });
            if doomed.is_empty() || doomed.len() == before {
                break;
            }
        }
        self.snapshots.reconcile()?;
        // Sweep blobs.
        for b in self.content.list()? {
            if !blobs.contains(&b.digest) && self.content.delete(&b.digest)? {
                out.bytes += b.size;
                out.blobs.push(b.digest);
            }
        }
        // Sweep ingests not held by a live lease.
        for i in self.content.ingests()? {
            if i.lease.is_empty() || !live_leases.contains(i.lease.as_str()) {
                if i.reference.is_empty() {
                    continue;
                }
                self.content.abort(&i.reference)?;
                out.ingests += 1;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = "sha256:aa".to_string();
        let b = "sha256:bb".to_string();
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(
            c[1],
            format!("sha256:{:x}", Sha256::digest("sha256:aa sha256:bb"))
        );
    }
}
