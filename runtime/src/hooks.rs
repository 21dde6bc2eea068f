//! OCI hooks: run a program with the container state on its stdin, within its timeout.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};

/// Run `hooks` of kind `kind` in order; the first failure stops the rest.
pub fn run(kind: &'static str, hooks: Option<&Vec<Hook>>, state_json: &str) -> Result<()> {
    for h in hooks.into_iter().flatten() {
        run_one(kind, h, state_json)?;
    }
    Ok(())
}

/// Run every hook of `kind`, logging failures as warnings instead of stopping (poststart and
/// poststop: "the runtime MUST log a warning, but the remaining hooks and lifecycle continue").
pub fn run_warn(kind: &'static str, hooks: Option<&Vec<Hook>>, state_json: &str) {
    for h in hooks.into_iter().flatten() {
        if let Err(e) = run_one(kind, h, state_json) {
            tracing::warn!("{}", crate::error::chain(&e));
        }
    }
}

fn run_one(kind: &'static str, h: &Hook, state_json: &str) -> Result<()> {
    let fail = |why: String| Error::Hook {
        kind,
        path: h.path().clone(),
        why,
    };
    let args = h.args().clone().unwrap_or_default();
    let mut cmd = Command::new(h.path());
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1));
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| fail(format!("start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if status.success() {
                    return Ok(());
                }
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                let err = err.trim();
                return Err(fail(if err.is_empty() {
                    format!("{status}")
                } else {
                    format!("{status}, stderr: {err}")
                }));
            }
            Ok(None) => {}
            Err(e) => return Err(fail(format!("wait: {e}"))),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "timed out after {}s",
                h.timeout().unwrap_or(0)
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
