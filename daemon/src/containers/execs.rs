//! Exec instances as Docker reports them (`GET /exec/{id}/json`), kept in memory like
//! dockerd's; forgotten with their container.

use std::collections::HashMap;

use super::Error;

/// An exec as Docker reports it.
#[derive(Clone, Debug, Default)]
pub struct Exec {
    pub id: String,
    pub container: String,
    pub config: serde_json::Value,
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
