//! The classic (non-BuildKit) builder the docker CLI uses with `DOCKER_BUILDKIT=0` and
//! docker-py uses always (`POST /build`, served by `api::build`).
//!
//! The context tar is extracted into a private directory; the Dockerfile is parsed
//! ([`dockerfile`]); every instruction makes an image ([`builder`]): configuration-only ones
//! (ENV, CMD, …) an image with an `empty_layer` history entry, RUN the diff of a real
//! container run through the container service (on the default bridge unless `networkmode`
//! says host, none or a user-defined network), COPY/ADD the diff of a snapshot the files
//! were written into ([`steps`], [`files`], [`pattern`] for .dockerignore). A step's cache
//! key is its parent image, its instruction after substitution, the build args it sees and,
//! for COPY/ADD, a checksum of the source files' paths, modes, owners and contents; hits are
//! kept in `<data-root>/builder/cache.json` ([`cache`]). Progress goes out as Docker's JSON
//! stream (`{"stream":"Step 1/3 : FROM busybox\n"}` … `Successfully built <id>`).
//! [`instructions`] applies Dockerfile instructions to an image config for `commit` and
//! `import --change`.

mod builder;
mod cache;
pub mod dockerfile;
pub mod files;
pub mod instructions;
pub mod pattern;
mod steps;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::body::Bytes;
use tokio::sync::mpsc;

use crate::state::State;
use builder::Builder;
use cache::Cache;

/// What a build fails with before its stream starts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The context is not a tar archive (plain or compressed).
    #[error("{0}")]
    BadContext(String),
    #[error(transparent)]
    Image(#[from] crate::images::Error),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> crate::error::Kind {
        match self {
            Error::BadContext(_) => crate::error::Kind::Invalid,
            Error::Image(e) => e.kind(),
            Error::Internal(_) => crate::error::Kind::Internal,
        }
    }
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
    /// `--add-host`s of the RUN steps' containers.
    pub extra_hosts: Vec<String>,
    /// Their resources (`--memory`, `--cpu-shares`, `--shm-size`, …) as HostConfig fields.
    pub resources: serde_json::Map<String, serde_json::Value>,
    /// `--cache-from`: when given, a cached step counts only if its image is part of one
    /// of these images (the classic builder's rule).
    pub cache_from: Vec<String>,
}

/// Build from the context tar at `context` (removed when read): extract it, then run the
/// Dockerfile in the background. Returns the progress stream (Docker's JSON lines).
pub async fn start(
    d: &State,
    opts: Options,
    context: PathBuf,
) -> Result<mpsc::Receiver<Bytes>, Error> {
    let work = d
        .data_root
        .join("tmp")
        .join(format!("build-{}", crate::images::unique()));
    let ctx = work.join("context");
    let (ctx2, spooled2, limits) = (ctx.clone(), context.clone(), d.archive_limits);
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
        let r = berth_fstree::layer::decompress(f).map_err(|e| e.to_string())?;
        berth_fstree::layer::extract(r, &ctx2, &limits)
            .map(|_| ())
            .map_err(|e| match e {
                e @ (berth_fstree::layer::Error::TooLarge { .. }
                | berth_fstree::layer::Error::TooManyEntries { .. }) => {
                    format!("the build context: {}", crate::archive::limit_hint(e))
                }
                e => format!("the build context is not a valid tar archive: {e}"),
            })
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    let _ = std::fs::remove_file(&context);
    if let Err(e) = extracted {
        remove_work(&work);
        return Err(Error::BadContext(e));
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let d = d.clone();
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
            exit_code: None,
        };
        match b.run().await {
            Ok(()) => {}
            Err(msg) => {
                let mut line = serde_json::json!({"errorDetail": {"message": msg}, "error": msg});
                // A failed RUN: its exit code, as dockerd reports it.
                if let Some(code) = b.exit_code {
                    line["errorDetail"]["code"] = code.into();
                }
                let _ = tx.send(Bytes::from(format!("{line}\r\n"))).await;
            }
        }
        b.cache.save(&d.data_root);
        let _ = tokio::task::spawn_blocking(move || remove_work(&work)).await;
    });
    Ok(rx)
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

/// What operations interrupted by a crash left in `DATA_ROOT/tmp` (called at start-up,
/// when none can be under way): build work (its context may be a tmpfs), a `cp`'s mount of
/// a container's root and its volumes, commit, save, load and upload spools. Everything
/// mounted there is unmounted first, deepest first; an entry that still holds a mount is
/// left alone (removing it would reach into a volume). The directory is made 0700.
pub fn clean_leftovers(data_root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = data_root.join("tmp");
    if std::fs::create_dir_all(&tmp).is_err() {
        return;
    }
    let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700));
    let under = |all: Vec<std::path::PathBuf>| -> Vec<std::path::PathBuf> {
        all.into_iter()
            .filter(|m| m.starts_with(&tmp) && *m != tmp)
            .collect()
    };
    let mut mounted = under(berth_fstree::mount::mount_points());
    mounted.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for m in &mounted {
        if let Err(e) = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!("unmount the leftover {}: {e}", m.display());
        }
    }
    let still = under(berth_fstree::mount::mount_points());
    let Ok(rd) = std::fs::read_dir(&tmp) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if still.iter().any(|m| m.starts_with(&p)) {
            tracing::warn!("{} still holds a mount: left in place", p.display());
            continue;
        }
        let r = match e.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
            _ => std::fs::remove_file(&p),
        };
        match r {
            Ok(()) => tracing::info!("removed the leftover {}", p.display()),
            Err(e) => tracing::warn!("remove the leftover {}: {e}", p.display()),
        }
    }
}

/// `docker builder prune`: forget the step cache and remove the intermediate images it
/// kept (untagged, unused by containers; tagged ones stay). The ids removed.
pub async fn prune(d: &State) -> Result<Vec<String>, Error> {
    let cache = Cache::load(&d.data_root);
    let _ = std::fs::remove_file(Cache::path(&d.data_root));
    let ids: std::collections::BTreeSet<String> = cache.map.values().cloned().collect();
    let listed = crate::images::by_id(&d.images).await?;
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
    Ok(deleted)
}
