//! Drives a runc-compatible runtime binary by its command line: `create`, `start`,
//! `exec --detach`, `kill`, `delete`, `pause`, `resume`, `ps`, `update`. Every call passes
//! `--log <dir>/runtime.log --log-format json`; a failure is returned with the runtime's name,
//! the command, its exit status and the error lines it logged (or its stderr).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tokio::io::AsyncReadExt;

use crate::reaper::Reaper;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("runtime {runtime:?}: cannot run it ({hint})")]
    Spawn {
        runtime: String,
        hint: String,
        #[source]
        err: std::io::Error,
    },
    #[error("runtime {runtime:?} {command} {id}: {status}: {message}")]
    Failed {
        runtime: String,
        command: String,
        id: String,
        status: String,
        message: String,
    },
    #[error("runtime {runtime:?} {command} {id}: {what}")]
    Io {
        runtime: String,
        command: String,
        id: String,
        what: String,
        #[source]
        err: std::io::Error,
    },
}

impl Error {
    /// A failed `exec` as a gRPC status whose code says what the process could not do: its
    /// program is not there (`NotFound`, Docker's exit code 127) or could not be run
    /// (`PermissionDenied`, 126); anything else is `Internal`. This reads the runtime's own
    /// words (runc's, crun's, berth-runtime's): the one place they are interpreted.
    pub fn exec_status(&self) -> tonic::Status {
        let text = crate::service::chain(self);
        let code = match self {
            Error::Failed { message, .. } => {
                let m = message.to_ascii_lowercase();
                if m.contains("permission denied") {
                    tonic::Code::PermissionDenied
                } else if m.contains("not found") || m.contains("no such file") {
                    tonic::Code::NotFound
                } else {
                    tonic::Code::Internal
                }
            }
            _ => tonic::Code::Internal,
        };
        tonic::Status::new(code, text)
    }
}

/// The stdio a runtime command gets (the container's, for create and exec).
pub struct ChildStdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

pub struct Driver {
    pub runtime: String,
    pub root: Option<PathBuf>,
    pub log: PathBuf,
    pub id: String,
    pub reaper: Reaper,
}

impl Driver {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.runtime);
        if let Some(root) = &self.root {
            c.arg("--root").arg(root);
        }
        c.arg("--log").arg(&self.log).args(["--log-format", "json"]);
        c.args(args);
        c
    }

    /// Run `args` (which name the container), capturing stdout and stderr, feeding
    /// `input` on stdin. Returns stdout.
    pub async fn run(&self, args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>, Error> {
        let mut c = self.command(args);
        c.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let log_start = log_len(&self.log);
        let mut child = c.spawn().map_err(|err| self.spawn_error(err))?;
        let status = self.reaper.watch(child.id() as i32);
        let io = |what: &str, err| Error::Io {
            runtime: self.runtime.clone(),
            command: args[0].to_string(),
            id: self.id.clone(),
            what: what.to_string(),
            err,
        };
        let out =
            pipe_reader(child.stdout.take().map(OwnedFd::from)).map_err(|e| io("stdout", e))?;
        let err =
            pipe_reader(child.stderr.take().map(OwnedFd::from)).map_err(|e| io("stderr", e))?;
        if let (Some(data), Some(stdin)) = (input, child.stdin.take()) {
            // Small inputs (a resources JSON): a blocking write fits the pipe buffer.
            use std::io::Write;
            let mut stdin = stdin;
            stdin.write_all(data).map_err(|e| io("write stdin", e))?;
        }
        let (stdout, stderr) = tokio::join!(read_all(out), read_all(err));
        let code = status.await.unwrap_or(255);
        if code != 0 {
            return Err(self.failed(args[0], code, &stderr, log_start));
        }
        Ok(stdout)
    }

    /// Run `args` with the container's stdio (create, exec): the runtime passes it on to the
    /// process it makes. Errors come from the runtime's log.
    pub async fn run_with_stdio(&self, args: &[&str], stdio: ChildStdio) -> Result<(), Error> {
        let mut c = self.command(args);
        c.stdin(Stdio::from(stdio.stdin))
            .stdout(Stdio::from(stdio.stdout))
            .stderr(Stdio::from(stdio.stderr));
        let log_start = log_len(&self.log);
        let child = c.spawn().map_err(|err| self.spawn_error(err))?;
        // Drop our copies of the child's ends now (they were moved into `c`).
        drop(c);
        let status = self.reaper.watch(child.id() as i32);
        let code = status.await.unwrap_or(255);
        if code != 0 {
            return Err(self.failed(args[0], code, b"", log_start));
        }
        Ok(())
    }

    fn spawn_error(&self, err: std::io::Error) -> Error {
        let hint = if err.kind() == std::io::ErrorKind::NotFound {
            if self.runtime.contains('/') {
                "no such file".to_string()
            } else {
                "not found in PATH".to_string()
            }
        } else {
            err.to_string()
        };
        Error::Spawn {
            runtime: self.runtime.clone(),
            hint,
            err,
        }
    }

    fn failed(&self, command: &str, code: u32, stderr: &[u8], log_start: u64) -> Error {
        let mut message = log_errors(&self.log, log_start);
        if message.is_empty() {
            message = String::from_utf8_lossy(stderr).trim().to_string();
        }
        if message.is_empty() {
            message = "(no error message)".to_string();
        }
        Error::Failed {
            runtime: self.runtime.clone(),
            command: command.to_string(),
            id: self.id.clone(),
            status: if code > 128 {
                format!("killed by signal {}", code - 128)
            } else {
                format!("exit status {code}")
            },
            message,
        }
    }
}

fn log_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Error messages the runtime logged since `start` (runc/crun/berth JSON log lines with a
/// level of error or fatal; other lines quoted as they are).
pub fn log_errors(p: &Path, start: u64) -> String {
    let Ok(data) = std::fs::read(p) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(data.get(start as usize..).unwrap_or_default());
    let mut msgs = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => {
                let level = v["level"].as_str().unwrap_or("");
                if matches!(level, "error" | "fatal" | "panic") {
                    if let Some(m) = v["msg"].as_str() {
                        msgs.push(m.trim().to_string());
                    }
                }
            }
            Err(_) => msgs.push(line.trim().to_string()),
        }
    }
    msgs.join("; ")
}

fn pipe_reader(fd: Option<OwnedFd>) -> std::io::Result<Option<tokio::net::unix::pipe::Receiver>> {
    fd.map(tokio::net::unix::pipe::Receiver::from_owned_fd)
        .transpose()
}

async fn read_all(r: Option<tokio::net::unix::pipe::Receiver>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut r) = r {
        let _ = r.read_to_end(&mut buf).await;
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_errors_quotes_error_lines_only() {
        let p = std::env::temp_dir().join(format!("berth-driver-log-{}", std::process::id()));
        std::fs::write(
            &p,
            "{\"level\":\"info\",\"msg\":\"old\"}\n{\"level\":\"error\",\"msg\":\"before\"}\n",
        )
        .unwrap();
        let start = log_len(&p);
        let mut more = std::fs::read(&p).unwrap();
        more.extend_from_slice(
            b"{\"level\":\"warning\",\"msg\":\"w\"}\n{\"level\":\"error\",\"msg\":\"no such file\"}\nplain text\n",
        );
        std::fs::write(&p, more).unwrap();
        assert_eq!(log_errors(&p, start), "no such file; plain text");
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn exec_failures_say_what_the_program_could_not_do() {
        let failed = |message: &str| Error::Failed {
            runtime: "runc".into(),
            command: "exec".into(),
            id: "c".into(),
            status: "exit status 1".into(),
            message: message.into(),
        };
        let code = |m: &str| failed(m).exec_status().code();
        // runc's, crun's and berth-runtime's words.
        assert_eq!(
            code(r#"exec: "nope": executable file not found in $PATH"#),
            tonic::Code::NotFound
        );
        assert_eq!(
            code("executable file `nope` not found in $PATH: No such file or directory"),
            tonic::Code::NotFound
        );
        assert_eq!(
            code(r#"exec "/etc/passwd": permission denied"#),
            tonic::Code::PermissionDenied
        );
        assert_eq!(code("cgroup went away"), tonic::Code::Internal);
    }
}
