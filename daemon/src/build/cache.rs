//! The step cache: cache key → image id, kept across builds in
//! `<data-root>/builder/cache.json` (written atomically).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Step results remembered across builds: cache key → image ID.
#[derive(Default)]
pub(super) struct Cache {
    pub(super) map: BTreeMap<String, String>,
    pub(super) dirty: bool,
}

impl Cache {
    pub(super) fn path(root: &Path) -> PathBuf {
        root.join("builder").join("cache.json")
    }

    pub(super) fn load(root: &Path) -> Cache {
        let map = std::fs::read(Self::path(root))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Cache { map, dirty: false }
    }

    pub(super) fn save(&self, root: &Path) {
        if !self.dirty {
            return;
        }
        let p = Self::path(root);
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ =
            berth_fstree::write_atomic(&p, &serde_json::to_vec(&self.map).expect("json"), 0o644);
    }
}
