//! The event bus: what happened to containers, images, volumes and networks, in Docker's
//! event format. Recent events are kept (a bounded ring) for `GET /events?since=`.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::containers::Container;
use crate::state::Daemon;

const KEEP: usize = 1024;

pub struct Events {
    tx: tokio::sync::broadcast::Sender<Value>,
    /// The last events, oldest first (for `since`).
    pub recent: Mutex<VecDeque<Value>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: tokio::sync::broadcast::channel(256).0,
            recent: Mutex::new(VecDeque::with_capacity(KEEP)),
        }
    }
}

impl Events {
    /// Every event published from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Value> {
        self.tx.subscribe()
    }

    pub fn publish(&self, kind: &str, action: &str, id: &str, attrs: Value) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut e = json!({
            "Type": kind,
            "Action": action,
            "Actor": {"ID": id, "Attributes": attrs},
            "scope": "local",
            "time": now.as_secs(),
            "timeNano": now.as_nanos() as u64,
        });
        if kind == "container" || kind == "image" {
            // The deprecated fields older clients read.
            e["status"] = action.into();
            e["id"] = id.into();
            if let Some(f) = e["Actor"]["Attributes"]["image"].as_str().map(String::from) {
                e["from"] = f.into();
            }
        }
        {
            let mut r = self.recent.lock().unwrap();
            if r.len() == KEEP {
                r.pop_front();
            }
            r.push_back(e.clone());
        }
        let _ = self.tx.send(e);
    }
}

fn attrs_of(c: &Container, extra: &[(&str, String)]) -> Value {
    let mut a = json!({
        "name": c.name.trim_start_matches('/'),
        "image": c.doc.image_name,
    });
    for (k, v) in c.doc.config.labels.iter().flatten() {
        a[k] = v.as_str().into();
    }
    for (k, v) in extra {
        a[*k] = v.clone().into();
    }
    a
}

/// A container event, its labels among the attributes.
pub fn container(d: &Daemon, c: &Container, action: &str) {
    container_with(d, c, action, &[]);
}

pub fn container_with(d: &Daemon, c: &Container, action: &str, extra: &[(&str, String)]) {
    d.events
        .publish("container", action, &c.id, attrs_of(c, extra));
}

/// A network event.
pub fn publish_network(d: &Daemon, action: &str, id: &str, name: &str) {
    d.events.publish(
        "network",
        action,
        id,
        serde_json::json!({ "name": name, "type": "bridge" }),
    );
}
