//! runc-style logging: `--log FILE` (default stderr), `--log-format text|json`, `--debug`.
//! JSON lines carry `level`, `msg` and `time`, which containerd and conmon parse.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::cli::Global;

/// Where log lines go, shared by the tracing layer and the final error print.
pub struct Sink {
    json: bool,
    file: Option<Mutex<std::fs::File>>,
}

impl Sink {
    fn write(&self, level: &str, msg: &str) {
        let line = if self.json {
            let t = berth_runtime::state::now_rfc3339();
            format!(
                "{}\n",
                serde_json::json!({"level": level, "msg": msg, "time": t})
            )
        } else {
            format!("berth-runtime: {level}: {msg}\n")
        };
        match &self.file {
            Some(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}

struct SinkLayer(std::sync::Arc<Sink>, Level);

struct MsgVisitor(String);

impl Visit for MsgVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        } else {
            self.0.push_str(&format!(" {}={value}", field.name()));
        }
    }
}

impl<S: Subscriber> Layer<S> for SinkLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let lvl = *event.metadata().level();
        if lvl > self.1 {
            return;
        }
        let mut v = MsgVisitor(String::new());
        event.record(&mut v);
        self.0.write(&lvl.to_string().to_ascii_lowercase(), &v.0);
    }
}

/// Install the logger; returns the sink for the final error line.
pub fn init(g: &Global) -> std::sync::Arc<Sink> {
    let file = g.log.as_ref().and_then(|p| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
            .map(Mutex::new)
    });
    let sink = std::sync::Arc::new(Sink {
        json: g.log_format == "json",
        file,
    });
    let level = if g.debug { Level::DEBUG } else { Level::WARN };
    let _ = tracing_subscriber::registry()
        .with(SinkLayer(sink.clone(), level))
        .try_init();
    sink
}

/// Report the command's failure: to the log, and to stderr when the log is a file.
pub fn error(sink: &Sink, msg: &str) {
    sink.write("error", msg);
    if sink.file.is_some() {
        eprintln!("berth-runtime: {msg}");
    }
}
