//! Metadata in redb (one file under `--root`, transactional and crash-safe): containers, and
//! the tasks the manager has started (so a restarted manager knows what to look for, even
//! after /run is lost).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");
const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
/// Image records, snapshots and leases (see `images`).
pub(crate) const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
pub(crate) const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
pub(crate) const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// A container: metadata only (what to run), no process.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ContainerRecord {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    /// The OCI runtime config, JSON.
    pub spec: serde_json::Value,
    pub rootfs: String,
    /// Runtime name or path; "" means berth-runtime.
    pub runtime: String,
    pub runtime_root: String,
    pub log_path: String,
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// No log at all (Docker's `--log-driver none`).
    #[serde(default)]
    pub log_disabled: bool,
    /// The log's format, compression and forwarder (see the proto's LogConfig).
    #[serde(default)]
    pub log_format: String,
    #[serde(default)]
    pub log_compress: bool,
    #[serde(default)]
    pub log_forward: String,
    #[serde(default)]
    pub log_options: std::collections::BTreeMap<String, String>,
    pub image: String,
    /// A snapshot mounted as the root filesystem for each task ("" for `rootfs`).
    #[serde(default)]
    pub snapshot_key: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A task the manager started: where its shim lives and what became of it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskRecord {
    pub id: String,
    /// The shim's state directory (also the bundle).
    pub dir: PathBuf,
    pub pid: u32,
    pub shim_pid: u32,
    pub terminal: bool,
    pub stdin: bool,
    /// Resolved runtime binary and its --root, for cleanup without the shim.
    pub runtime: String,
    pub runtime_root: String,
    /// Set once the init is known to have exited.
    pub exited: bool,
    pub exit_status: u32,
    pub exited_at: String,
}

pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        }
        let db = Database::create(path).map_err(|e| store_err(path, e))?;
        let s = Store {
            db,
            path: path.to_path_buf(),
        };
        // Make both tables exist so readers never see "table does not exist".
        let tx = s.db.begin_write().map_err(|e| s.err(e))?;
        tx.open_table(CONTAINERS).map_err(|e| s.err(e))?;
        tx.open_table(TASKS).map_err(|e| s.err(e))?;
        for t in [IMAGES, SNAPSHOTS, LEASES] {
            tx.open_table(t).map_err(|e| s.err(e))?;
        }
        tx.open_table(COUNTERS).map_err(|e| s.err(e))?;
        tx.commit().map_err(|e| s.err(e))?;
        Ok(s)
    }

    fn err(&self, e: impl Into<redb::Error>) -> Error {
        store_err(&self.path, e)
    }

    /// Insert a container; fails if the id is taken.
    pub fn create_container(&self, c: &ContainerRecord) -> Result<()> {
        if !self.insert_new(CONTAINERS, &c.id, c)? {
            return Err(Error::ContainerExists(c.id.clone()));
        }
        Ok(())
    }

    pub fn put_container(&self, c: &ContainerRecord) -> Result<()> {
        self.put(CONTAINERS, &c.id, c)
    }

    pub fn container(&self, id: &str) -> Result<ContainerRecord> {
        self.get(CONTAINERS, id)?
            .ok_or_else(|| Error::ContainerNotFound(id.to_string()))
    }

    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        self.all(CONTAINERS)
    }

    pub fn delete_container(&self, id: &str) -> Result<()> {
        if !self.delete(CONTAINERS, id)? {
            return Err(Error::ContainerNotFound(id.to_string()));
        }
        Ok(())
    }

    /// Insert a task record; fails if the container already has one.
    pub fn create_task(&self, t: &TaskRecord) -> Result<()> {
        if !self.insert_new(TASKS, &t.id, t)? {
            return Err(Error::TaskExists(t.id.clone()));
        }
        Ok(())
    }

    pub fn put_task(&self, t: &TaskRecord) -> Result<()> {
        self.put(TASKS, &t.id, t)
    }

    pub fn task(&self, id: &str) -> Result<Option<TaskRecord>> {
        self.get(TASKS, id)
    }

    pub fn tasks(&self) -> Result<Vec<TaskRecord>> {
        self.all(TASKS)
    }

    pub fn delete_task(&self, id: &str) -> Result<bool> {
        self.delete(TASKS, id)
    }

    /// The next value of a named counter (1, 2, …), persisted.
    pub(crate) fn next_id(&self, name: &str) -> Result<u64> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let n = {
            let mut t = tx.open_table(COUNTERS).map_err(|e| self.err(e))?;
            let n = t
                .get(name)
                .map_err(|e| self.err(e))?
                .map(|v| v.value())
                .unwrap_or(0)
                + 1;
            t.insert(name, n).map_err(|e| self.err(e))?;
            n
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// In one transaction: insert `new_id` (refused, false, if taken) and remove `old_id`.
    pub(crate) fn rename<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        old_id: &str,
        new_id: &str,
        v: &T,
    ) -> Result<bool> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(table).map_err(|e| self.err(e))?;
            if t.get(new_id).map_err(|e| self.err(e))?.is_some() {
                return Ok(false);
            }
            let v = serde_json::to_vec(v).expect("record serializes");
            t.insert(new_id, v.as_slice()).map_err(|e| self.err(e))?;
            t.remove(old_id).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(true)
    }

    /// Insert `v` under `id` in one transaction unless the id is taken; false if it was.
    pub(crate) fn insert_new<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        id: &str,
        v: &T,
    ) -> Result<bool> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(table).map_err(|e| self.err(e))?;
            if t.get(id).map_err(|e| self.err(e))?.is_some() {
                return Ok(false);
            }
            let v = serde_json::to_vec(v).expect("record serializes");
            t.insert(id, v.as_slice()).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(true)
    }

    pub(crate) fn put<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        id: &str,
        v: &T,
    ) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(table).map_err(|e| self.err(e))?;
            let v = serde_json::to_vec(v).expect("record serializes");
            t.insert(id, v.as_slice()).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    pub(crate) fn get<T: for<'de> Deserialize<'de>>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        id: &str,
    ) -> Result<Option<T>> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(table).map_err(|e| self.err(e))?;
        let Some(v) = t.get(id).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(v.value()).ok())
    }

    pub(crate) fn all<T: for<'de> Deserialize<'de>>(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<T>> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(table).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (_, v) = item.map_err(|e| self.err(e))?;
            if let Ok(r) = serde_json::from_slice(v.value()) {
                out.push(r);
            }
        }
        Ok(out)
    }

    pub(crate) fn delete(&self, table: TableDefinition<&str, &[u8]>, id: &str) -> Result<bool> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let existed = {
            let mut t = tx.open_table(table).map_err(|e| self.err(e))?;
            let r = t.remove(id).map_err(|e| self.err(e))?;
            r.is_some()
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(existed)
    }
}

fn store_err(path: &Path, e: impl Into<redb::Error>) -> Error {
    Error::Store {
        path: path.display().to_string(),
        err: Box::new(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_and_tasks_round_trip_and_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("berth-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("meta.redb");
        {
            let s = Store::open(&path).unwrap();
            let c = ContainerRecord {
                id: "a".into(),
                spec: serde_json::json!({"ociVersion": "1.0.2"}),
                ..Default::default()
            };
            s.create_container(&c).unwrap();
            assert!(matches!(
                s.create_container(&c),
                Err(Error::ContainerExists(_))
            ));
            s.create_task(&TaskRecord {
                id: "a".into(),
                pid: 7,
                ..Default::default()
            })
            .unwrap();
            assert!(matches!(
                s.create_task(&TaskRecord {
                    id: "a".into(),
                    ..Default::default()
                }),
                Err(Error::TaskExists(_))
            ));
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.container("a").unwrap().spec["ociVersion"], "1.0.2");
        assert_eq!(s.task("a").unwrap().unwrap().pid, 7);
        assert_eq!(s.containers().unwrap().len(), 1);
        assert!(s.delete_task("a").unwrap());
        assert!(!s.delete_task("a").unwrap());
        s.delete_container("a").unwrap();
        assert!(matches!(s.container("a"), Err(Error::ContainerNotFound(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
