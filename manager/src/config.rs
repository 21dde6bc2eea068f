//! Where the manager listens and keeps state, and which binaries it runs. Flags override the
//! `--config` JSON file, which overrides the defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_ADDRESS: &str = "/run/berth-manager/manager.sock";
pub const DEFAULT_ROOT: &str = "/var/lib/berth-manager";
pub const DEFAULT_STATE: &str = "/run/berth-manager";

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Unix socket the gRPC server listens on.
    pub address: PathBuf,
    /// Persistent data: metadata store, container logs.
    pub root: PathBuf,
    /// Runtime state (tmpfs): shim directories, bundles, runtime roots.
    pub state: PathBuf,
    /// The shim binary; default: `berth-shim` beside this binary, else in PATH.
    pub shim: Option<PathBuf>,
    /// Runtime for containers that name none.
    pub default_runtime: String,
    /// Extra runtime names → binaries.
    pub runtimes: BTreeMap<String, PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            address: DEFAULT_ADDRESS.into(),
            root: DEFAULT_ROOT.into(),
            state: DEFAULT_STATE.into(),
            shim: None,
            default_runtime: "berth-runtime".into(),
            runtimes: BTreeMap::new(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("read config {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))
    }

    pub fn shim_binary(&self) -> PathBuf {
        self.shim
            .clone()
            .unwrap_or_else(|| sibling("berth-shim").unwrap_or_else(|| "berth-shim".into()))
    }

    /// A runtime name → the binary to run: configured names, `berth-runtime` (beside us if
    /// there), anything else as given (a name in PATH such as runc or crun, or a path).
    pub fn runtime_binary(&self, name: &str) -> String {
        if let Some(p) = self.runtimes.get(name) {
            return p.display().to_string();
        }
        if name == "berth-runtime" {
            if let Some(p) = sibling("berth-runtime") {
                return p.display().to_string();
            }
        }
        name.to_string()
    }
}

/// A binary in the same directory as the running one.
fn sibling(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join(name);
    p.is_file().then_some(p)
}
