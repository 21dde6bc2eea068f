//! Local volumes: `DATA_ROOT/volumes/<name>/_data` with a `meta.json` beside it (written
//! atomically). Named volumes are made on request or on first use; anonymous ones (64 hex
//! digits) for an image's `VOLUME` paths and `-v /path`. A new, empty volume is seeded with
//! what the image has at its mount point, like Docker's copy-up.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid volume name {0:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+")]
    BadName(String),
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error("remove {name}: volume is in use - [{users}]")]
    InUse { name: String, users: String },
    #[error("volume {name}: {what} {path}")]
    Io {
        name: String,
        what: &'static str,
        path: String,
        #[source]
        err: std::io::Error,
    },
    #[error("volume driver {0:?} is not supported (only \"local\")")]
    Driver(String),
}

impl Error {
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            Error::BadName(_) | Error::Driver(_) => Kind::Invalid,
            Error::NotFound(_) => Kind::NotFound,
            Error::InUse { .. } => Kind::Conflict,
            Error::Io { .. } => Kind::Internal,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Volume {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "Mountpoint")]
    pub mountpoint: String,
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    #[serde(rename = "Labels")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(rename = "Options")]
    pub options: std::collections::BTreeMap<String, String>,
    #[serde(rename = "Scope")]
    pub scope: String,
    /// Made for one container (removed with it by `rm -v`, by `--rm`, and by prune).
    #[serde(rename = "Anonymous", default)]
    pub anonymous: bool,
}

pub struct Volumes {
    dir: PathBuf,
}

pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl Volumes {
    pub fn new(data_root: &Path) -> Volumes {
        Volumes {
            dir: data_root.join("volumes"),
        }
    }

    fn io(name: &str, what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
        let (name, path) = (name.to_string(), path.display().to_string());
        move |err| Error::Io {
            name,
            what,
            path,
            err,
        }
    }

    /// The volume, made if missing. The second value says whether it was made now.
    pub fn create(
        &self,
        name: &str,
        driver: &str,
        labels: std::collections::BTreeMap<String, String>,
        options: std::collections::BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<(Volume, bool), Error> {
        if !valid_name(name) {
            return Err(Error::BadName(name.to_string()));
        }
        if !driver.is_empty() && driver != "local" {
            return Err(Error::Driver(driver.to_string()));
        }
        if let Ok(v) = self.get(name) {
            return Ok((v, false));
        }
        let dir = self.dir.join(name);
        let data = dir.join("_data");
        std::fs::create_dir_all(&data).map_err(Self::io(name, "create", &data))?;
        let v = Volume {
            name: name.to_string(),
            driver: "local".into(),
            mountpoint: data.display().to_string(),
            created_at: crate::clock::now_rfc3339(),
            labels,
            options,
            scope: "local".into(),
            anonymous,
        };
        let meta = dir.join("meta.json");
        berth_fstree::write_atomic(&meta, &serde_json::to_vec(&v).expect("json"), 0o644)
            .map_err(Self::io(name, "write", &meta))?;
        Ok((v, true))
    }

    pub fn get(&self, name: &str) -> Result<Volume, Error> {
        if !valid_name(name) {
            return Err(Error::NotFound(name.to_string()));
        }
        let meta = self.dir.join(name).join("meta.json");
        let bytes = std::fs::read(&meta).map_err(|_| Error::NotFound(name.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|_| Error::NotFound(name.to_string()))
    }

    pub fn list(&self) -> Vec<Volume> {
        let mut out: Vec<Volume> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| self.get(&e.file_name().to_string_lossy()).ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Remove a volume nobody uses (`users`: ids of containers that mount it).
    pub fn remove(&self, name: &str, users: &[String]) -> Result<u64, Error> {
        self.get(name)?;
        if !users.is_empty() {
            return Err(Error::InUse {
                name: name.to_string(),
                users: users.join(", "),
            });
        }
        let dir = self.dir.join(name);
        let size = du(&dir.join("_data"));
        // Out of sight first (atomic), then removed.
        let gone = self.dir.join(format!(".removing-{name}"));
        std::fs::rename(&dir, &gone).map_err(Self::io(name, "remove", &dir))?;
        std::fs::remove_dir_all(&gone).map_err(Self::io(name, "remove", &gone))?;
        Ok(size)
    }

    pub fn size(&self, name: &str) -> u64 {
        du(&self.dir.join(name).join("_data"))
    }
}

/// Bytes in regular files below `p` (not following links).
pub fn du(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if md.is_dir() {
        std::fs::read_dir(p)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| du(&e.path())).sum())
            .unwrap_or(0)
    } else if md.is_file() {
        md.len()
    } else {
        0
    }
}

/// Copy what the image has at `target` (inside `root`, the mounted image) into an empty
/// volume directory. Links in the image resolve inside `root`; nothing outside is read or
/// written.
pub fn seed(root: &Path, target: &str, volume_data: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    if std::fs::read_dir(volume_data)?.next().is_some() {
        return Ok(());
    }
    let rootfd = std::fs::File::open(root)?;
    let Ok(src) = berth_fstree::open_in_root(
        rootfd.as_raw_fd(),
        Path::new(target),
        libc::O_PATH | libc::O_DIRECTORY,
    ) else {
        return Ok(()); // nothing there to copy
    };
    let (mut rd, mut wr) = std::io::pipe()?;
    let writer = std::thread::spawn(move || {
        let r = berth_fstree::diff::write_tree(
            src.as_raw_fd(),
            std::ffi::OsStr::new("."),
            Path::new("."),
            &mut wr,
        );
        drop(wr);
        r
    });
    let r = berth_fstree::layer::extract(&mut rd, volume_data, &Default::default());
    drop(rd);
    let w = writer
        .join()
        .map_err(|_| std::io::Error::other("seeding thread panicked"))?;
    r.map_err(std::io::Error::other)?;
    w
}
