//! The `berth.shim.v1.Shim` service: a table of processes (the init under exec id "", execs
//! under theirs), each with its stdio ends, output fan-out, state and exit status.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_proto::shim as pb;
use berth_proto::shim::shim_server::Shim;
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, watch};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::driver::Driver;
use crate::jsonlog::{JsonLog, Stream as LogStream};
use crate::reaper::Reaper;
use crate::stdio::{self, ConsoleSocket, ShimEnds};
use crate::{files, sys};

mod pump;
use pump::pump;

/// How long an exit waits for the process's output to drain before it is published (a
/// daemonized grandchild may hold stdout open forever).
const IO_DRAIN: Duration = Duration::from_secs(2);
/// Output chunk size and how many chunks an attach may fall behind before it skips.
const CHUNK: usize = 4096;
const FANOUT: usize = 64;
/// The init's clients may fall this many chunks behind (its log has everything); past it
/// a client is cut off, said in the shim's log, instead of slowing the container.
const FANOUT_INIT: usize = 1024;

type Output = (pb::StreamKind, Vec<u8>);

#[derive(Clone, Debug, PartialEq)]
enum PState {
    Created,
    Running,
    Stopped { status: u32, at: String },
}

struct Proc {
    exec_id: String,
    terminal: bool,
    stdin_open: bool,
    /// OCI process JSON, for an exec.
    spec: Vec<u8>,
    pid: AtomicU32,
    state: watch::Sender<PState>,
    stdin: tokio::sync::Mutex<Option<tokio::net::unix::pipe::Sender>>,
    pty: Mutex<Option<OwnedFd>>,
    /// The attached clients' queues (None once the output has ended).
    output: Mutex<Option<Vec<tokio::sync::mpsc::Sender<Output>>>>,
    io_done: watch::Sender<bool>,
}

impl Proc {
    fn new(exec_id: &str, terminal: bool, stdin_open: bool, spec: Vec<u8>) -> Arc<Proc> {
        Arc::new(Proc {
            exec_id: exec_id.to_string(),
            terminal,
            stdin_open,
            spec,
            pid: AtomicU32::new(0),
            state: watch::channel(PState::Created).0,
            stdin: tokio::sync::Mutex::new(None),
            pty: Mutex::new(None),
            output: Mutex::new(Some(Vec::new())),
            io_done: watch::channel(false).0,
        })
    }

    fn stopped(&self) -> Option<(u32, String)> {
        match &*self.state.borrow() {
            PState::Stopped { status, at } => Some((*status, at.clone())),
            _ => None,
        }
    }

    async fn write_stdin(&self, data: &[u8]) -> Result<(), Status> {
        let mut stdin = self.stdin.lock().await;
        let Some(w) = stdin.as_mut() else {
            return Err(Status::failed_precondition(format!(
                "process {:?}: stdin is closed",
                self.exec_id
            )));
        };
        w.write_all(data)
            .await
            .map_err(|e| Status::internal(format!("process {:?}: write stdin: {e}", self.exec_id)))
    }

    async fn close_stdin(&self) {
        let mut stdin = self.stdin.lock().await;
        if let Some(mut w) = stdin.take() {
            if self.terminal {
                // A terminal has no EOF of its own: send the EOF character.
                let _ = w.write_all(&[4]).await;
            }
        }
    }

    fn resize(&self, width: u32, height: u32) -> Result<(), Status> {
        let pty = self.pty.lock().unwrap();
        let Some(m) = pty.as_ref() else {
            return Err(Status::failed_precondition(format!(
                "process {:?} has no terminal",
                self.exec_id
            )));
        };
        sys::set_winsize(m.as_fd(), width as u16, height as u16)
            .map_err(|e| Status::internal(format!("resize terminal of {:?}: {e}", self.exec_id)))
    }
}

/// The service state, shared by every request.
pub struct Service {
    dir: PathBuf,
    reaper: Reaper,
    id: Mutex<String>,
    bundle: Mutex<String>,
    driver: Mutex<Option<Arc<Driver>>>,
    procs: Mutex<HashMap<String, Arc<Proc>>>,
    log: Arc<Mutex<Option<JsonLog>>>,
    log_failing: Arc<AtomicBool>,
    paused: AtomicBool,
    /// An OOM kill was seen in the container's cgroup (Docker's State.OOMKilled).
    oom_killed: AtomicBool,
    events: broadcast::Sender<pb::Event>,
    console_seq: AtomicU32,
    /// Set when the shim should exit (after the init is deleted).
    pub shutdown: watch::Sender<bool>,
}

pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn internal(e: &dyn std::error::Error) -> Status {
    Status::internal(chain(e))
}

fn valid_exec_id(id: &str) -> Result<(), Status> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "exec id {id:?}: use 1-64 of [A-Za-z0-9_.-], not starting with '.'"
        )))
    }
}

impl Service {
    pub fn new(dir: &Path, reaper: Reaper) -> Service {
        Service {
            dir: dir.to_path_buf(),
            reaper,
            id: Mutex::new(String::new()),
            bundle: Mutex::new(String::new()),
            driver: Mutex::new(None),
            procs: Mutex::new(HashMap::new()),
            log: Arc::new(Mutex::new(None)),
            log_failing: Arc::new(AtomicBool::new(false)),
            paused: AtomicBool::new(false),
            oom_killed: AtomicBool::new(false),
            events: broadcast::channel(32).0,
            console_seq: AtomicU32::new(0),
            shutdown: watch::channel(false).0,
        }
    }

    fn id(&self) -> String {
        self.id.lock().unwrap().clone()
    }

    fn driver(&self) -> Result<Arc<Driver>, Status> {
        self.driver
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| Status::failed_precondition("no container: call Create first"))
    }

    fn proc(&self, exec_id: &str) -> Result<Arc<Proc>, Status> {
        self.procs
            .lock()
            .unwrap()
            .get(exec_id)
            .cloned()
            .ok_or_else(|| {
                if exec_id.is_empty() {
                    Status::not_found("no container: call Create first")
                } else {
                    Status::not_found(format!("exec {exec_id:?} not found"))
                }
            })
    }

    fn publish(&self, kind: pb::EventKind, p: Option<&Proc>, exit_status: u32, error: &str) {
        let _ = self.events.send(pb::Event {
            kind: kind as i32,
            id: self.id(),
            exec_id: p.map(|p| p.exec_id.clone()).unwrap_or_default(),
            pid: p.map(|p| p.pid.load(Ordering::SeqCst)).unwrap_or(0),
            exit_status,
            timestamp: berth_runtime::state::now_rfc3339(),
            error: error.to_string(),
        });
    }

    fn console_path(&self) -> PathBuf {
        let n = self.console_seq.fetch_add(1, Ordering::SeqCst);
        self.dir.join(format!("c{n}.sock"))
    }

    /// Run a runtime command that makes a process (create / exec), with stdio for `p`.
    /// Returns the shim's ends.
    async fn spawn_with_stdio(
        &self,
        driver: &Driver,
        p: &Proc,
        args: Vec<String>,
    ) -> Result<ShimEnds, Status> {
        // A failure says what the process could not do (its program is missing, or may not
        // be run), for the container's first process as for an exec's.
        let failed = |e: crate::driver::Error| e.exec_status();
        if p.terminal {
            let sock_path = self.console_path();
            let sock = ConsoleSocket::bind(&sock_path).map_err(|e| {
                Status::internal(format!("console socket {}: {e}", sock_path.display()))
            })?;
            let mut args = args;
            let at = args.len() - 1;
            args.insert(at, "--console-socket".into());
            args.insert(at + 1, sock_path.display().to_string());
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let null = stdio::null_stdio().map_err(|e| internal(&e))?;
            let run = driver.run_with_stdio(&argv, null);
            tokio::pin!(run);
            let master = tokio::select! {
                r = &mut run => {
                    r.map_err(failed)?;
                    tokio::time::timeout(Duration::from_secs(5), sock.receive())
                        .await
                        .map_err(|_| Status::internal(format!(
                            "runtime {:?} did not send a terminal on the console socket",
                            driver.runtime
                        )))?
                        .map_err(|e| internal(&e))?
                }
                m = sock.receive() => {
                    let m = m.map_err(|e| internal(&e))?;
                    run.await.map_err(failed)?;
                    m
                }
            };
            stdio::pty_ends(master, p.stdin_open).map_err(|e| internal(&e))
        } else {
            let (child, ends) = stdio::pipes(p.stdin_open).map_err(|e| internal(&e))?;
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            driver.run_with_stdio(&argv, child).await.map_err(failed)?;
            Ok(ends)
        }
    }

    /// Take over a started process: its stdio ends, output pumps, and exit watcher.
    fn adopt(self: &Arc<Self>, p: &Arc<Proc>, ends: ShimEnds, pid: u32) -> Result<(), Status> {
        p.pid.store(pid, Ordering::SeqCst);
        let exited = self.reaper.watch(pid as i32);
        if let Some(w) = ends.stdin {
            sys::set_nonblocking(w.as_fd()).map_err(|e| internal(&e))?;
            let tx = tokio::net::unix::pipe::Sender::from_owned_fd_unchecked(w)
                .map_err(|e| internal(&e))?;
            // Not contended yet: nobody else knows this process.
            *p.stdin.try_lock().expect("new process") = Some(tx);
        }
        *p.pty.lock().unwrap() = ends.pty;
        let open = Arc::new(AtomicU32::new(ends.outputs.len() as u32));
        if ends.outputs.is_empty() {
            p.io_done.send_replace(true);
            p.output.lock().unwrap().take();
        }
        for (stream, fd) in ends.outputs {
            sys::set_nonblocking(fd.as_fd()).map_err(|e| internal(&e))?;
            let rx = tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(fd)
                .map_err(|e| internal(&e))?;
            let log = if p.exec_id.is_empty() {
                Some(self.log.clone())
            } else {
                None
            };
            tokio::spawn(pump(self.clone(), p.clone(), stream, rx, log, open.clone()));
        }
        let svc = self.clone();
        let p = p.clone();
        tokio::spawn(async move {
            let status = exited.await.unwrap_or(255);
            let at = berth_runtime::state::now_rfc3339();
            let mut done = p.io_done.subscribe();
            let _ = tokio::time::timeout(IO_DRAIN, done.wait_for(|d| *d)).await;
            if p.exec_id.is_empty() {
                let rec = serde_json::json!({
                    "pid": pid,
                    "exit_status": status,
                    "exited_at": at,
                    "oom_killed": svc.oom_killed.load(Ordering::SeqCst),
                });
                if let Err(e) = berth_fstree::write_atomic_until_reboot(
                    &svc.dir.join(files::EXIT),
                    rec.to_string().as_bytes(),
                    0o644,
                ) {
                    tracing::error!("record exit status: {e}");
                }
            }
            p.stdin.lock().await.take();
            p.state.send_replace(PState::Stopped { status, at });
            svc.publish(pb::EventKind::EventExit, Some(&p), status, "");
        });
        Ok(())
    }

    /// Publish EVENT_OOM for every OOM kill in the init's memory cgroup, until the cgroup goes.
    fn watch_oom(self: &Arc<Self>, init: &Arc<Proc>) {
        let pid = init.pid.load(Ordering::SeqCst) as i32;
        let cgroup = berth_runtime::cgroups::Layout::detect()
            .and_then(|l| berth_runtime::cgroups::Cgroup::of_pid(&l, pid));
        let dir = match &cgroup {
            Ok(cg) => cg.memory_dir().map(|(d, v2)| (d.to_path_buf(), v2)),
            Err(e) => {
                tracing::warn!("no OOM events: cgroup of pid {pid}: {e}");
                None
            }
        };
        let Some((dir, v2)) = dir else { return };
        let svc = self.clone();
        let init = init.clone();
        tokio::spawn(async move {
            let r = crate::oom::watch(&dir, v2, || {
                svc.oom_killed.store(true, Ordering::SeqCst);
                svc.publish(pb::EventKind::EventOom, Some(&init), 0, "");
            })
            .await;
            if let Err(e) = r {
                tracing::warn!("{}", chain(&e));
            }
        });
    }

    async fn start_exec(self: &Arc<Self>, p: &Arc<Proc>) -> Result<u32, Status> {
        let driver = self.driver()?;
        let spec_path = self.dir.join(format!("exec-{}.json", p.exec_id));
        let pid_path = self.dir.join(format!("exec-{}.pid", p.exec_id));
        std::fs::write(&spec_path, &p.spec)
            .map_err(|e| Status::internal(format!("write {}: {e}", spec_path.display())))?;
        let _ = std::fs::remove_file(&pid_path);
        let args = vec![
            "exec".to_string(),
            "--detach".into(),
            "--pid-file".into(),
            pid_path.display().to_string(),
            "--process".into(),
            spec_path.display().to_string(),
            driver.id.clone(),
        ];
        let r = self.spawn_with_stdio(&driver, p, args).await;
        let _ = std::fs::remove_file(&spec_path);
        let ends = r?;
        let pid = read_pid(&pid_path)?;
        let _ = std::fs::remove_file(&pid_path);
        p.state.send_replace(PState::Running);
        self.adopt(p, ends, pid)?;
        self.publish(pb::EventKind::EventExecStarted, Some(p), 0, "");
        Ok(pid)
    }
}

fn read_pid(path: &Path) -> Result<u32, Status> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Status::internal(format!("runtime wrote no pid to {}", path.display())))
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The gRPC face of [`Service`].
#[derive(Clone)]
pub struct ShimService(pub Arc<Service>);

#[tonic::async_trait]
impl Shim for ShimService {
    async fn info(&self, _: Request<pb::Empty>) -> Result<Response<pb::InfoResponse>, Status> {
        let task_pid = self
            .0
            .procs
            .lock()
            .unwrap()
            .get("")
            .map(|p| p.pid.load(Ordering::SeqCst))
            .unwrap_or(0);
        Ok(Response::new(pb::InfoResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn create(
        &self,
        req: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::CreateResponse>, Status> {
        let svc = &self.0;
        let r = req.into_inner();
        if r.id.is_empty() || r.bundle.is_empty() {
            return Err(Status::invalid_argument(
                "create: id and bundle are required",
            ));
        }
        {
            let mut procs = svc.procs.lock().unwrap();
            if procs.contains_key("") {
                return Err(Status::already_exists(format!(
                    "container {:?} already created by this shim",
                    svc.id()
                )));
            }
            procs.insert(
                String::new(),
                Proc::new("", r.terminal, r.stdin, Vec::new()),
            );
        }
        let p = svc.proc("")?;
        *svc.id.lock().unwrap() = r.id.clone();
        *svc.bundle.lock().unwrap() = r.bundle.clone();
        let runtime = if r.runtime.is_empty() {
            "berth-runtime".to_string()
        } else {
            r.runtime.clone()
        };
        let driver = Arc::new(Driver {
            runtime,
            root: (!r.runtime_root.is_empty()).then(|| PathBuf::from(&r.runtime_root)),
            log: svc.dir.join(files::RUNTIME_LOG),
            id: r.id.clone(),
            reaper: svc.reaper.clone(),
        });
        let result = async {
            if !r.log_path.is_empty() {
                let forward = match r.log_forward.as_str() {
                    "" => None,
                    name => {
                        let o = r.log_options.clone().into_iter().collect();
                        Some(
                            crate::logfwd::Forward::open(name, &o)
                                .map_err(|e| Status::invalid_argument(chain(&e)))?,
                        )
                    }
                };
                let format = match r.log_format.as_str() {
                    "" | "json-file" => crate::jsonlog::Format::Json,
                    "local" => crate::jsonlog::Format::Local,
                    f => {
                        return Err(Status::invalid_argument(format!(
                            "log format {f:?} is not known (json-file or local)"
                        )))
                    }
                };
                let log = JsonLog::open_with(
                    Path::new(&r.log_path),
                    crate::jsonlog::Options {
                        format,
                        max_size: r.log_max_size,
                        max_files: r.log_max_files,
                        compress: r.log_compress,
                        forward,
                    },
                )
                .map_err(|e| Status::invalid_argument(chain(&e)))?;
                *svc.log.lock().unwrap() = Some(log);
            }
            let pid_path = svc.dir.join(files::INIT_PID);
            let _ = std::fs::remove_file(&pid_path);
            let mut args = vec![
                "create".to_string(),
                "--bundle".into(),
                r.bundle.clone(),
                "--pid-file".into(),
                pid_path.display().to_string(),
            ];
            if r.no_pivot {
                args.push("--no-pivot".into());
            }
            args.push(r.id.clone());
            let ends = svc.spawn_with_stdio(&driver, &p, args).await?;
            let pid = read_pid(&pid_path)?;
            svc.adopt(&p, ends, pid)?;
            Ok::<u32, Status>(pid)
        }
        .await;
        match result {
            Ok(pid) => {
                *svc.driver.lock().unwrap() = Some(driver);
                svc.publish(pb::EventKind::EventCreate, Some(&p), 0, "");
                svc.watch_oom(&p);
                Ok(Response::new(pb::CreateResponse { pid }))
            }
            Err(e) => {
                svc.procs.lock().unwrap().remove("");
                svc.log.lock().unwrap().take();
                Err(e)
            }
        }
    }

    async fn start(
        &self,
        req: Request<pb::StartRequest>,
    ) -> Result<Response<pb::StartResponse>, Status> {
        let svc = &self.0;
        let exec_id = req.into_inner().exec_id;
        let p = svc.proc(&exec_id)?;
        if *p.state.borrow() != PState::Created {
            return Err(Status::failed_precondition(format!(
                "process {exec_id:?} is not in the created state"
            )));
        }
        let pid = if exec_id.is_empty() {
            let d = svc.driver()?;
            d.run(&["start", &d.id], None)
                .await
                .map_err(|e| internal(&e))?;
            // The init may already have exited (and been marked so): keep that.
            p.state.send_if_modified(|s| {
                if *s == PState::Created {
                    *s = PState::Running;
                    true
                } else {
                    false
                }
            });
            svc.publish(pb::EventKind::EventStart, Some(&p), 0, "");
            p.pid.load(Ordering::SeqCst)
        } else {
            if svc.proc("")?.stopped().is_some() {
                return Err(Status::failed_precondition("container is not running"));
            }
            svc.start_exec(&p).await?
        };
        Ok(Response::new(pb::StartResponse { pid }))
    }

    async fn exec(&self, req: Request<pb::ExecRequest>) -> Result<Response<pb::Empty>, Status> {
        let svc = &self.0;
        let r = req.into_inner();
        valid_exec_id(&r.exec_id)?;
        serde_json::from_slice::<serde_json::Value>(&r.process).map_err(|e| {
            Status::invalid_argument(format!("exec {:?}: process JSON: {e}", r.exec_id))
        })?;
        svc.driver()?;
        let p = {
            let mut procs = svc.procs.lock().unwrap();
            if procs.contains_key(&r.exec_id) {
                return Err(Status::already_exists(format!(
                    "exec {:?} already exists",
                    r.exec_id
                )));
            }
            let p = Proc::new(&r.exec_id, r.terminal, r.stdin, r.process);
            procs.insert(r.exec_id.clone(), p.clone());
            p
        };
        svc.publish(pb::EventKind::EventExecAdded, Some(&p), 0, "");
        Ok(Response::new(pb::Empty {}))
    }

    async fn state(
        &self,
        req: Request<pb::StateRequest>,
    ) -> Result<Response<pb::StateResponse>, Status> {
        let svc = &self.0;
        let exec_id = req.into_inner().exec_id;
        let p = svc.proc(&exec_id)?;
        let st = p.state.borrow().clone();
        let (status, exit_status, exited_at) = match st {
            PState::Created => (pb::Status::Created, 0, String::new()),
            PState::Running if svc.paused.load(Ordering::SeqCst) => {
                (pb::Status::Paused, 0, String::new())
            }
            PState::Running => (pb::Status::Running, 0, String::new()),
            PState::Stopped { status, at } => (pb::Status::Stopped, status, at),
        };
        Ok(Response::new(pb::StateResponse {
            id: svc.id(),
            exec_id,
            pid: p.pid.load(Ordering::SeqCst),
            status: status as i32,
            exit_status,
            exited_at,
            terminal: p.terminal,
            stdin: p.stdin_open,
            bundle: svc.bundle.lock().unwrap().clone(),
        }))
    }

    async fn kill(&self, req: Request<pb::KillRequest>) -> Result<Response<pb::Empty>, Status> {
        let svc = &self.0;
        let r = req.into_inner();
        let d = svc.driver()?;
        let sig = r.signal.to_string();
        if r.all {
            d.run(&["kill", "--all", &d.id, &sig], None)
                .await
                .map_err(|e| internal(&e))?;
            return Ok(Response::new(pb::Empty {}));
        }
        let p = svc.proc(&r.exec_id)?;
        if p.stopped().is_some() {
            return Err(Status::not_found(format!(
                "process {:?}: already finished",
                r.exec_id
            )));
        }
        if r.exec_id.is_empty() {
            d.run(&["kill", &d.id, &sig], None)
                .await
                .map_err(|e| internal(&e))?;
        } else {
            let pid = p.pid.load(Ordering::SeqCst) as i32;
            if pid <= 0 {
                return Err(Status::failed_precondition(format!(
                    "exec {:?} has not started",
                    r.exec_id
                )));
            }
            // Not reaped yet (checked above with no await since): the pid is still ours.
            let signal = nix::sys::signal::Signal::try_from(r.signal as i32)
                .map_err(|_| Status::invalid_argument(format!("signal {}", r.signal)))?;
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
                .map_err(|e| Status::internal(format!("kill exec {:?}: {e}", r.exec_id)))?;
        }
        Ok(Response::new(pb::Empty {}))
    }

    async fn wait(
        &self,
        req: Request<pb::WaitRequest>,
    ) -> Result<Response<pb::WaitResponse>, Status> {
        let exec_id = req.into_inner().exec_id;
        let p = self.0.proc(&exec_id)?;
        let mut rx = p.state.subscribe();
        let st = rx
            .wait_for(|s| matches!(s, PState::Stopped { .. }))
            .await
            .map_err(|_| Status::unavailable("shim is shutting down"))?
            .clone();
        let PState::Stopped { status, at } = st else {
            unreachable!("waited for Stopped")
        };
        Ok(Response::new(pb::WaitResponse {
            exit_status: status,
            exited_at: at,
        }))
    }

    async fn pids(&self, _: Request<pb::Empty>) -> Result<Response<pb::PidsResponse>, Status> {
        let svc = &self.0;
        let d = svc.driver()?;
        let out = d
            .run(&["ps", "--format", "json", &d.id], None)
            .await
            .map_err(|e| internal(&e))?;
        let pids: Vec<u32> = serde_json::from_slice::<Option<Vec<u32>>>(&out)
            .map_err(|e| Status::internal(format!("runtime {:?} ps: bad JSON: {e}", d.runtime)))?
            .unwrap_or_default();
        let by_pid: HashMap<u32, String> = svc
            .procs
            .lock()
            .unwrap()
            .values()
            .map(|p| (p.pid.load(Ordering::SeqCst), p.exec_id.clone()))
            .collect();
        let processes = pids
            .into_iter()
            .map(|pid| pb::ProcessInfo {
                pid,
                exec_id: by_pid.get(&pid).cloned().unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::PidsResponse { processes }))
    }

    async fn pause(&self, _: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        let svc = &self.0;
        let d = svc.driver()?;
        d.run(&["pause", &d.id], None)
            .await
            .map_err(|e| internal(&e))?;
        svc.paused.store(true, Ordering::SeqCst);
        svc.publish(
            pb::EventKind::EventPaused,
            svc.proc("").ok().as_deref(),
            0,
            "",
        );
        Ok(Response::new(pb::Empty {}))
    }

    async fn resume(&self, _: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        let svc = &self.0;
        let d = svc.driver()?;
        d.run(&["resume", &d.id], None)
            .await
            .map_err(|e| internal(&e))?;
        svc.paused.store(false, Ordering::SeqCst);
        svc.publish(
            pb::EventKind::EventResumed,
            svc.proc("").ok().as_deref(),
            0,
            "",
        );
        Ok(Response::new(pb::Empty {}))
    }

    async fn stats(&self, _: Request<pb::Empty>) -> Result<Response<pb::StatsResponse>, Status> {
        let p = self.0.proc("")?;
        if p.stopped().is_some() {
            return Err(Status::failed_precondition("container is not running"));
        }
        let pid = p.pid.load(Ordering::SeqCst) as i32;
        let layout = berth_runtime::cgroups::Layout::detect().map_err(|e| internal(&e))?;
        let cg = berth_runtime::cgroups::Cgroup::of_pid(&layout, pid).map_err(|e| internal(&e))?;
        let v = cg.stats();
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        let limit = n(&v["memory"]["usage"]["limit"]);
        Ok(Response::new(pb::StatsResponse {
            memory_usage: n(&v["memory"]["usage"]["usage"]),
            // v1 reports "no limit" as a huge page-aligned number.
            memory_limit: if limit >= i64::MAX as u64 / 2 {
                0
            } else {
                limit
            },
            cpu_usage_ns: n(&v["cpu"]["usage"]["total"]),
            pids_current: n(&v["pids"]["current"]),
            json: v.to_string(),
        }))
    }

    async fn update(&self, req: Request<pb::UpdateRequest>) -> Result<Response<pb::Empty>, Status> {
        let svc = &self.0;
        let r = req.into_inner();
        serde_json::from_slice::<serde_json::Value>(&r.resources)
            .map_err(|e| Status::invalid_argument(format!("update: resources JSON: {e}")))?;
        let d = svc.driver()?;
        d.run(&["update", "--resources", "-", &d.id], Some(&r.resources))
            .await
            .map_err(|e| internal(&e))?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn resize_pty(
        &self,
        req: Request<pb::ResizeRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        self.0.proc(&r.exec_id)?.resize(r.width, r.height)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn close_stdin(
        &self,
        req: Request<pb::CloseStdinRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.0.proc(&req.into_inner().exec_id)?.close_stdin().await;
        Ok(Response::new(pb::Empty {}))
    }

    type AttachStream = BoxStream<pb::AttachOutput>;

    async fn attach(
        &self,
        req: Request<Streaming<pb::AttachInput>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        use pb::attach_input::Input;
        let mut input = req.into_inner();
        let first = input
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("attach: no start message"))?;
        let Some(Input::Start(start)) = first.input else {
            return Err(Status::invalid_argument(
                "attach: the first message must be `start`",
            ));
        };
        let p = self.0.proc(&start.exec_id)?;
        let rx = p.output.lock().unwrap().as_mut().map(|subs| {
            let (tx, rx) = tokio::sync::mpsc::channel(if p.exec_id.is_empty() {
                FANOUT_INIT
            } else {
                FANOUT
            });
            subs.push(tx);
            rx
        });
        let pin = p.clone();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = input.message().await {
                match msg.input {
                    Some(Input::Stdin(data)) => {
                        // Stdin closed or the process gone: the input is dropped.
                        let _ = pin.write_stdin(&data).await;
                    }
                    Some(Input::Resize(r)) => {
                        let _ = pin.resize(r.width, r.height);
                    }
                    Some(Input::CloseStdin(true)) => pin.close_stdin().await,
                    _ => {}
                }
            }
        });
        let (want_out, want_err) = (start.stdout, start.stderr);
        let stream: Self::AttachStream = match rx {
            None => Box::pin(tokio_stream::empty()),
            Some(rx) => Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx).filter_map(
                move |(kind, data)| {
                    let want = match kind {
                        pb::StreamKind::StreamStdout => want_out,
                        pb::StreamKind::StreamStderr => want_err,
                    };
                    want.then(|| {
                        Ok(pb::AttachOutput {
                            stream: kind as i32,
                            data,
                        })
                    })
                },
            )),
        };
        Ok(Response::new(stream))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let svc = &self.0;
        let exec_id = req.into_inner().exec_id;
        if !exec_id.is_empty() {
            let p = svc.proc(&exec_id)?;
            let (status, at) = match p.stopped() {
                Some(s) => s,
                None if *p.state.borrow() == PState::Created => (0, String::new()),
                None => {
                    return Err(Status::failed_precondition(format!(
                        "exec {exec_id:?} is running"
                    )))
                }
            };
            svc.procs.lock().unwrap().remove(&exec_id);
            svc.publish(pb::EventKind::EventDelete, Some(&p), status, "");
            return Ok(Response::new(pb::DeleteResponse {
                pid: p.pid.load(Ordering::SeqCst),
                exit_status: status,
                exited_at: at,
            }));
        }
        let Ok(p) = svc.proc("") else {
            // Nothing was created: just go.
            svc.shutdown.send_replace(true);
            return Ok(Response::new(pb::DeleteResponse::default()));
        };
        let d = svc.driver()?;
        let created = *p.state.borrow() == PState::Created;
        if !created && p.stopped().is_none() {
            return Err(Status::failed_precondition(format!(
                "container {:?} is running: kill it first",
                d.id
            )));
        }
        if created {
            d.run(&["delete", "--force", &d.id], None)
                .await
                .map_err(|e| internal(&e))?;
            let mut rx = p.state.subscribe();
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                rx.wait_for(|s| matches!(s, PState::Stopped { .. })),
            )
            .await;
        } else {
            d.run(&["delete", &d.id], None)
                .await
                .map_err(|e| internal(&e))?;
        }
        let (status, at) = p.stopped().unwrap_or((255, String::new()));
        svc.publish(pb::EventKind::EventDelete, Some(&p), status, "");
        svc.shutdown.send_replace(true);
        Ok(Response::new(pb::DeleteResponse {
            pid: p.pid.load(Ordering::SeqCst),
            exit_status: status,
            exited_at: at,
        }))
    }

    type SubscribeStream = BoxStream<pb::Event>;

    async fn subscribe(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let mut rx = self.0.events.subscribe();
        let mut stop = self.0.shutdown.subscribe();
        // The stream ends when the shim shuts down (after what was published before), so
        // the subscriber's connection can close at once instead of holding the exit up.
        let (tx, out) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    e = rx.recv() => match e {
                        Ok(e) => {
                            if tx.send(Ok(e)).await.is_err() {
                                return;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return,
                    },
                    _ = async { drop(stop.wait_for(|s| *s).await) } => {
                        while let Ok(e) = rx.try_recv() {
                            let _ = tx.send(Ok(e)).await;
                        }
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }
}
