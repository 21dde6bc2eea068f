//! Exec instances as Docker reports them (`GET /exec/{id}/json`), kept in memory like
//! dockerd's; forgotten with their container, or, as dockerd's exec GC does, once they have
//! not run for two sweeps five minutes apart (finished, or never started).

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
    /// Seen not running by the last sweep: the next one forgets it.
    pub idle_seen: bool,
}

/// How often exec records are swept (dockerd's exec GC interval).
const SWEEP: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Default)]
pub struct Execs(std::sync::Mutex<HashMap<String, Exec>>, Sweep);

/// When the records were last swept.
struct Sweep(std::sync::Mutex<std::time::Instant>);

impl Default for Sweep {
    fn default() -> Self {
        Sweep(std::sync::Mutex::new(std::time::Instant::now()))
    }
}

impl Execs {
    /// Register a new exec (and, every five minutes, sweep the old ones).
    pub fn insert(&self, e: Exec) {
        let mut m = self.0.lock().unwrap();
        let due = {
            let mut last = self.1 .0.lock().unwrap();
            let due = last.elapsed() >= SWEEP;
            if due {
                *last = std::time::Instant::now();
            }
            due
        };
        if due {
            sweep(&mut m);
        }
        m.insert(e.id.clone(), e);
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

/// One sweep: forget what was idle at the last one, mark what is idle now.
fn sweep(m: &mut HashMap<String, Exec>) {
    m.retain(|_, e| e.running || !e.idle_seen);
    for e in m.values_mut() {
        e.idle_seen = !e.running;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_execs_go_after_two_sweeps_running_ones_stay() {
        let mut m = HashMap::new();
        for (id, running) in [("run", true), ("done", false)] {
            m.insert(
                id.to_string(),
                Exec {
                    id: id.into(),
                    running,
                    ..Default::default()
                },
            );
        }
        sweep(&mut m);
        assert_eq!(m.len(), 2, "one sweep marks only");
        m.insert(
            "new".into(),
            Exec {
                id: "new".into(),
                ..Default::default()
            },
        );
        sweep(&mut m);
        let mut left: Vec<&str> = m.keys().map(String::as_str).collect();
        left.sort();
        assert_eq!(left, ["new", "run"]);
        sweep(&mut m);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["run"]);
    }
}
