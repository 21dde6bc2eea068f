//! Exec instances as Docker reports them (`GET /exec/{id}/json`), kept in memory like
//! dockerd's; forgotten with their container.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Error;

/// `POST /containers/{id}/exec`'s body: the fields berthd acts on, the rest as sent.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecConfig {
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub tty: Option<bool>,
    #[serde(default)]
    pub attach_stdin: Option<bool>,
    #[serde(default)]
    pub attach_stdout: Option<bool>,
    #[serde(default)]
    pub attach_stderr: Option<bool>,
    /// (docker-py sends `detachKeys`: dockerd's JSON decoding ignores case.)
    #[serde(default, alias = "detachKeys")]
    pub detach_keys: Option<String>,
    #[serde(default)]
    pub privileged: Option<bool>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl ExecConfig {
    pub fn cmd(&self) -> &[String] {
        self.cmd.as_deref().unwrap_or_default()
    }

    /// The detach keys asked for, if any.
    pub fn detach_keys(&self) -> Option<&str> {
        self.detach_keys.as_deref().filter(|k| !k.is_empty())
    }
}

/// An exec as Docker reports it.
#[derive(Clone, Debug, Default)]
pub struct Exec {
    pub id: String,
    pub container: String,
    pub config: ExecConfig,
    pub running: bool,
    pub started: bool,
    pub exit_code: Option<i64>,
    pub pid: u32,
}

#[derive(Default)]
pub struct Execs(std::sync::Mutex<HashMap<String, Exec>>);

impl Execs {
    /// Register a new exec.
    pub fn insert(&self, e: Exec) {
        self.0.lock().unwrap().insert(e.id.clone(), e);
    }

    pub fn get(&self, id: &str) -> Result<Exec, Error> {
        self.0
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NoSuchExec(id.to_string()))
    }

    /// Change an exec's record (nothing if it is gone).
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Exec)) {
        if let Some(e) = self.0.lock().unwrap().get_mut(id) {
            f(e);
        }
    }

    /// The execs of a container (for inspect's ExecIDs), and forget them with it.
    pub fn of(&self, container: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.container == container)
            .map(|e| e.id.clone())
            .collect()
    }

    pub fn forget_container(&self, container: &str) {
        self.0
            .lock()
            .unwrap()
            .retain(|_, e| e.container != container);
    }
}
