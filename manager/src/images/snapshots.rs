//! The overlayfs snapshotter: each snapshot is a directory `ROOT/snapshots/<n>/fs` (plus
//! `work` for overlay), its record (key, parent, kind) in the metadata store.
//!
//! Committed snapshots are image layers, named by chain ID, unpacked once and shared by every
//! image and container above them. An active snapshot is writable (a container's layer, or a
//! layer being unpacked); a view is read-only. Directories are made before their record is
//! written and removed after it is deleted, so a crash leaves at most an orphan directory,
//! which [`Snapshotter::reconcile`] removes.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use berth_fstree::mount::{mount_all, with_mounted, Mount};

use super::Error;
use crate::store::{Store, SNAPSHOTS};

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Active,
    View,
    Committed,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub key: String,
    pub id: u64,
    /// Key of the parent (a committed snapshot), "" for none.
    pub parent: String,
    pub kind: Kind,
    pub labels: BTreeMap<String, String>,
    pub created_at: String,
}

/// Disk usage of one snapshot's own directory.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub size: u64,
    pub inodes: u64,
}

#[derive(Clone)]
pub struct Snapshotter {
    root: PathBuf,
    store: Arc<Store>,
}

impl Snapshotter {
    pub fn open(root: &Path, store: Arc<Store>) -> Result<Snapshotter, Error> {
        std::fs::create_dir_all(root).map_err(|err| Error::Io {
            what: "create directory",
            path: root.display().to_string(),
            err,
        })?;
        Ok(Snapshotter {
            root: root.to_path_buf(),
            store,
        })
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join(id.to_string())
    }

    /// The directory holding a snapshot's files (for a layer being unpacked).
    pub fn fs_dir(&self, s: &Snapshot) -> PathBuf {
        self.dir(s.id).join("fs")
    }

    pub fn get(&self, key: &str) -> Result<Snapshot, Error> {
        self.store
            .get::<Snapshot>(SNAPSHOTS, key)?
            .ok_or_else(|| Error::SnapshotNotFound(key.to_string()))
    }

    pub fn stat(&self, key: &str) -> Result<Option<Snapshot>, Error> {
        Ok(self.store.get::<Snapshot>(SNAPSHOTS, key)?)
    }

    pub fn list(&self) -> Result<Vec<Snapshot>, Error> {
        Ok(self.store.all::<Snapshot>(SNAPSHOTS)?)
    }

    /// A new writable snapshot on top of the committed `parent` ("" for an empty one).
    pub fn prepare(&self, key: &str, parent: &str) -> Result<Vec<Mount>, Error> {
        self.create(key, parent, Kind::Active, BTreeMap::new())?;
        self.mounts(key)
    }

    /// A read-only view of the committed `parent`.
    pub fn view(&self, key: &str, parent: &str) -> Result<Vec<Mount>, Error> {
        self.create(key, parent, Kind::View, BTreeMap::new())?;
        self.mounts(key)
    }

    pub fn create(
        &self,
        key: &str,
        parent: &str,
        kind: Kind,
        labels: BTreeMap<String, String>,
    ) -> Result<Snapshot, Error> {
        if key.is_empty() {
            return Err(Error::InvalidArgument("snapshot key is empty".into()));
        }
        if !parent.is_empty() {
            let p = self.get(parent)?;
            if p.kind != Kind::Committed {
                return Err(Error::FailedPrecondition(format!(
                    "snapshot parent {parent:?} is not committed"
                )));
            }
        }
        let id = self.store.next_id("snapshot")?;
        let dir = self.dir(id);
        for sub in ["fs", "work"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|err| Error::Io {
                what: "create snapshot directory",
                path: d.display().to_string(),
                err,
            })?;
        }
        // Container layers start as the image's root: 0755.
        let _ = std::fs::set_permissions(
            dir.join("fs"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        );
        let s = Snapshot {
            key: key.to_string(),
            id,
            parent: parent.to_string(),
            kind,
            labels,
            created_at: berth_runtime::state::now_rfc3339(),
        };
        if !self.store.insert_new(SNAPSHOTS, key, &s)? {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(Error::SnapshotExists(key.to_string()));
        }
        Ok(s)
    }

    /// Turn the active snapshot `key` into the committed snapshot `name`.
    pub fn commit(&self, name: &str, key: &str) -> Result<Snapshot, Error> {
        let mut s = self.get(key)?;
        if s.kind != Kind::Active {
            return Err(Error::FailedPrecondition(format!(
                "snapshot {key:?} is not active"
            )));
        }
        s.kind = Kind::Committed;
        s.key = name.to_string();
        if !self.store.rename(SNAPSHOTS, key, name, &s)? {
            return Err(Error::SnapshotExists(name.to_string()));
        }
        Ok(s)
    }

    /// Commit `key` as `name` on top of the committed `parent` (a layer extracted on its own,
    /// in parallel with its parents).
    pub fn commit_onto(&self, name: &str, key: &str, parent: &str) -> Result<Snapshot, Error> {
        let mut s = self.get(key)?;
        if s.kind != Kind::Active {
            return Err(Error::FailedPrecondition(format!(
                "snapshot {key:?} is not active"
            )));
        }
        if !parent.is_empty() && self.get(parent)?.kind != Kind::Committed {
            return Err(Error::FailedPrecondition(format!(
                "snapshot parent {parent:?} is not committed"
            )));
        }
        s.kind = Kind::Committed;
        s.key = name.to_string();
        s.parent = parent.to_string();
        if !self.store.rename(SNAPSHOTS, key, name, &s)? {
            return Err(Error::SnapshotExists(name.to_string()));
        }
        Ok(s)
    }

    /// Remove a snapshot that no other snapshot is based on.
    pub fn remove(&self, key: &str) -> Result<(), Error> {
        let s = self.get(key)?;
        if let Some(child) = self.list()?.into_iter().find(|c| c.parent == key) {
            return Err(Error::FailedPrecondition(format!(
                "snapshot {key:?} has a child {:?}",
                child.key
            )));
        }
        self.store.delete(SNAPSHOTS, key)?;
        let dir = self.dir(s.id);
        std::fs::remove_dir_all(&dir).map_err(|err| Error::Io {
            what: "remove snapshot directory",
            path: dir.display().to_string(),
            err,
        })
    }

    /// Keys from `key` down to the bottom layer.
    pub fn chain(&self, key: &str) -> Result<Vec<Snapshot>, Error> {
        let mut out = Vec::new();
        let mut k = key.to_string();
        while !k.is_empty() {
            let s = self.get(&k)?;
            k = s.parent.clone();
            out.push(s);
            if out.len() > 4096 {
                return Err(Error::FailedPrecondition(format!(
                    "snapshot {key:?}: parent chain loops"
                )));
            }
        }
        Ok(out)
    }

    /// How to mount the snapshot: a bind for a single directory, else overlay.
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>, Error> {
        let chain = self.chain(key)?;
        let s = &chain[0];
        let fs = |s: &Snapshot| self.fs_dir(s).display().to_string();
        let ro = s.kind != Kind::Active;
        if chain.len() == 1 || (ro && chain.len() == 2) {
            let src = if ro && chain.len() == 2 { &chain[1] } else { s };
            return Ok(vec![Mount {
                kind: "bind".into(),
                source: fs(src),
                options: vec![if ro { "ro" } else { "rw" }.into(), "rbind".into()],
            }]);
        }
        // The parents, top first (a view's own directory is unused).
        let lower: Vec<String> = chain[1..].iter().map(fs).collect();
        let mut options = Vec::new();
        if !ro {
            options.push(format!("workdir={}", self.dir(s.id).join("work").display()));
            options.push(format!("upperdir={}", fs(s)));
        }
        options.push(format!("lowerdir={}", lower.join(":")));
        Ok(vec![Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options,
        }])
    }

    pub fn usage(&self, key: &str) -> Result<Usage, Error> {
        let s = self.get(key)?;
        let mut u = Usage::default();
        du(&self.fs_dir(&s), &mut u, &mut HashSet::new());
        Ok(u)
    }

    /// Remove snapshot directories that have no record (a create or remove cut short).
    pub fn reconcile(&self) -> Result<usize, Error> {
        let known: HashSet<u64> = self.list()?.iter().map(|s| s.id).collect();
        let mut removed = 0;
        if let Ok(rd) = std::fs::read_dir(&self.root) {
            for e in rd.flatten() {
                let Some(id) = e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
                    continue;
                };
                if !known.contains(&id) && std::fs::remove_dir_all(e.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

fn du(dir: &Path, u: &mut Usage, seen: &mut HashSet<(u64, u64)>) {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(m) = e.path().symlink_metadata() else {
            continue;
        };
        if seen.insert((m.dev(), m.ino())) {
            u.size += m.blocks() * 512;
            u.inodes += 1;
        }
        if m.is_dir() {
            du(&e.path(), u, seen);
        }
    }
}
