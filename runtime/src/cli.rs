//! runc-compatible command-line definitions and their dispatch to the library.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_runtime::container::{self, CreateOpts};
use berth_runtime::exec::{self, ExecOpts};
use berth_runtime::state::Status;
use clap::{Args, Parser, Subcommand};
use oci_spec::runtime::{LinuxResources, Process};

#[derive(Parser, Debug)]
#[command(
    name = "berth-runtime",
    version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: 1.2.0"),
    about = "Run OCI containers (runc-compatible command line)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Args, Debug)]
pub struct Global {
    /// Directory for container state (tmpfs recommended)
    #[arg(long, global = true, default_value = berth_runtime::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Log file (default: stderr)
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Enable debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups (not supported)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility; ignored
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a container (the process waits for `start`)
    Create(CreateArgs),
    /// Start a created container
    Start { id: String },
    /// Create and start a container, waiting for it unless --detach
    Run(RunArgs),
    /// Print the state of a container as JSON
    State { id: String },
    /// List containers
    #[command(alias = "ls")]
    List {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Send a signal to the container's init (or all its processes)
    Kill {
        id: String,
        #[arg(default_value = "SIGTERM", allow_hyphen_values = true)]
        signal: String,
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container and its resources
    #[command(alias = "rm")]
    Delete {
        id: String,
        #[arg(short, long)]
        force: bool,
    },
    /// Run a new process inside a container
    Exec(ExecArgs),
    /// List the processes of a container
    Ps {
        id: String,
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Options passed to ps(1)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Change the resource limits of a container
    Update(UpdateArgs),
    /// Print container events and statistics as JSON
    Events {
        id: String,
        #[arg(long)]
        stats: bool,
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Write a default config.json
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Print the features this runtime implements (OCI features.md)
    Features,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    pub id: String,
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    #[arg(short, long)]
    pub tty: bool,
    /// uid[:gid]
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Path to a process.json
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    #[arg(long)]
    pub apparmor: Option<String>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    #[arg(short, long = "cap")]
    pub cap: Vec<String>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    pub id: String,
    /// Resources JSON file, or - for stdin
    #[arg(short, long)]
    pub resources: Option<String>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    #[arg(long = "kernel-memory", hide = true)]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", hide = true)]
    pub kernel_memory_tcp: Option<String>,
}

pub fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    if g.systemd_cgroup {
        bail!("--systemd-cgroup is not supported by berth-runtime: it manages cgroupfs directly (drop the flag, or use cgroup_manager=cgroupfs)");
    }
    let root = &g.root;
    match cli.cmd {
        Cmd::Create(a) => {
            let id = a.id.clone();
            container::create(root, &create_opts(a)).with_context(|| format!("create {id}"))?;
            Ok(0)
        }
        Cmd::Start { id } => {
            container::start(root, &id).with_context(|| format!("start {id}"))?;
            Ok(0)
        }
        Cmd::Run(a) => run_container(root, a),
        Cmd::State { id } => {
            let (_dir, st, status) = container::load(root, &id)?;
            let v = container::oci_state(&st, status);
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        Cmd::List { format, quiet } => list(root, &format, quiet),
        Cmd::Kill { id, signal, all } => {
            let sig = container::parse_signal(&signal)?;
            container::kill(root, &id, sig, all).with_context(|| format!("kill {id}"))?;
            Ok(0)
        }
        Cmd::Delete { id, force } => {
            match container::delete(root, &id, force) {
                Ok(()) => Ok(0),
                // runc: deleting a missing container with --force is not an error.
                Err(berth_runtime::Error::NotFound(_)) if force => Ok(0),
                Err(e) => Err(anyhow::Error::new(e).context(format!("delete {id}"))),
            }
        }
        Cmd::Exec(a) => exec_cmd(root, a),
        Cmd::Ps {
            id,
            format,
            ps_args,
        } => ps(root, &id, &format, &ps_args),
        Cmd::Pause { id } => {
            container::set_paused(root, &id, true).with_context(|| format!("pause {id}"))?;
            Ok(0)
        }
        Cmd::Resume { id } => {
            container::set_paused(root, &id, false).with_context(|| format!("resume {id}"))?;
            Ok(0)
        }
        Cmd::Update(a) => update(root, a),
        Cmd::Events {
            id,
            stats,
            interval,
        } => events(root, &id, stats, &interval),
        Cmd::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} already exists; remove it first", path.display());
            }
            let spec = berth_runtime::spec::default_spec(rootless);
            let text = serde_json::to_string_pretty(&spec)?;
            std::fs::write(&path, text + "\n")
                .with_context(|| format!("write {}", path.display()))?;
            Ok(0)
        }
        Cmd::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&berth_runtime::features::features())?
            );
            Ok(0)
        }
    }
}

fn create_opts(a: CreateArgs) -> CreateOpts {
    CreateOpts {
        id: a.id,
        bundle: a.bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        console_fd: None,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
    }
}

fn run_container(root: &std::path::Path, a: RunArgs) -> Result<u8> {
    let detach = a.detach;
    let keep = a.keep;
    let mut opts = create_opts(a.create);
    let id = opts.id.clone();
    // A terminal without a console socket: receive the pty ourselves (foreground only).
    let mut ours = None;
    if opts.console_socket.is_none() {
        let bundle = berth_runtime::spec::load_bundle(&opts.bundle).context("run")?;
        if bundle.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true) {
            if detach {
                bail!("run: process.terminal is true: --detach needs --console-socket");
            }
            let (a, b) = berth_runtime::tty::console_pair()?;
            opts.console_fd = Some(std::os::fd::AsRawFd::as_raw_fd(&b));
            ours = Some((a, b));
        }
    }
    let mask = exec::forward_mask();
    if !detach {
        mask.thread_block().context("block signals")?;
    }
    let pid = container::create(root, &opts).with_context(|| format!("run {id}"))?;
    let mut pty = None;
    if let Some((a, b)) = ours {
        drop(b);
        match berth_runtime::tty::recv_master(&a) {
            Ok(m) => pty = Some(m),
            Err(e) => {
                let _ = container::delete(root, &id, true);
                return Err(anyhow::Error::new(e).context("run"));
            }
        }
    }
    let _mode = pty.as_ref().map(|_| berth_runtime::tty::RawMode::enter());
    let raw = pty.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    let out = match pty {
        Some(m) => {
            berth_runtime::tty::sync_size(std::os::fd::AsRawFd::as_raw_fd(&m));
            Some(berth_runtime::tty::proxy(m)?)
        }
        None => None,
    };
    if let Err(e) = container::start(root, &id) {
        let _ = container::delete(root, &id, true);
        return Err(anyhow::Error::new(e).context(format!("start {id}")));
    }
    if detach {
        return Ok(0);
    }
    let code = exec::wait_forwarding(pid, &mask, raw)?;
    if let Some(out) = out {
        berth_runtime::tty::finish(out);
    }
    if !keep {
        container::delete(root, &id, true).with_context(|| format!("delete {id}"))?;
    }
    Ok(code.clamp(0, 255) as u8)
}

fn list(root: &std::path::Path, format: &str, quiet: bool) -> Result<u8> {
    let all = container::list(root)?;
    if quiet {
        for (st, _) in &all {
            println!("{}", st.id);
        }
        return Ok(0);
    }
    if format == "json" {
        let v: Vec<_> = all
            .iter()
            .map(|(st, status)| container::oci_state(st, *status))
            .collect();
        println!("{}", serde_json::to_string(&v)?);
        return Ok(0);
    }
    // Columns as wide as their widest cell, like runc's tabwriter output.
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
    for (st, status) in &all {
        let pid = if *status == Status::Stopped {
            0
        } else {
            st.pid
        };
        let owner = container::oci_state(st, *status)["owner"]
            .as_str()
            .unwrap_or("")
            .to_string();
        rows.push([
            st.id.clone(),
            pid.to_string(),
            status.to_string(),
            st.bundle.display().to_string(),
            st.created.clone(),
            owner,
        ]);
    }
    let mut width = [0usize; 6];
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    for r in &rows {
        let mut line = String::new();
        for (k, cell) in r.iter().enumerate() {
            if k + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = width[k]));
            }
        }
        println!("{line}");
    }
    Ok(0)
}

fn exec_cmd(root: &std::path::Path, a: ExecArgs) -> Result<u8> {
    let (dir, _st, status) = container::load(root, &a.id)?;
    if status == Status::Paused && !a.ignore_paused {
        bail!(
            "container {} is paused: resume it first (or use --ignore-paused)",
            a.id
        );
    }
    let process: Process = match &a.process {
        Some(p) => {
            let text = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
            berth_runtime::spec::read_json(p, &text)?
        }
        None => {
            if a.command.is_empty() {
                bail!("exec needs a command (or --process FILE)");
            }
            let spec = dir.load_config()?;
            let mut p = spec.process().clone().unwrap_or_default();
            p.set_args(Some(a.command.clone()));
            p.set_terminal(Some(a.tty));
            p.set_console_size(None);
            let mut env = p.env().clone().unwrap_or_default();
            for e in &a.env {
                let key = e.split('=').next().unwrap_or("");
                env.retain(|x| x.split('=').next() != Some(key));
                env.push(e.clone());
            }
            p.set_env(Some(env));
            if let Some(cwd) = &a.cwd {
                p.set_cwd(cwd.clone());
            }
            if let Some(u) = &a.user {
                let (uid, gid) = match u.split_once(':') {
                    Some((u, g)) => (u.parse()?, Some(g.parse()?)),
                    None => (u.parse().context("--user must be uid[:gid]")?, None),
                };
                let mut user = p.user().clone();
                user.set_uid(uid);
                if let Some(g) = gid {
                    user.set_gid(g);
                }
                if !a.additional_gids.is_empty() {
                    user.set_additional_gids(Some(a.additional_gids.clone()));
                }
                p.set_user(user);
            }
            if a.no_new_privs {
                p.set_no_new_privileges(Some(true));
            }
            if let Some(l) = &a.apparmor {
                p.set_apparmor_profile(Some(l.clone()));
            }
            if let Some(l) = &a.process_label {
                p.set_selinux_label(Some(l.clone()));
            }
            if !a.cap.is_empty() {
                berth_runtime::process::parse_caps(&a.cap)?;
                let mut caps = p.capabilities().clone().unwrap_or_default();
                let add = |set: Option<oci_spec::runtime::Capabilities>| -> Result<oci_spec::runtime::Capabilities> {
                    let mut s = set.unwrap_or_default();
                    for c in &a.cap {
                        let name = c.to_ascii_uppercase();
                        let name = if name.starts_with("CAP_") { name } else { format!("CAP_{name}") };
                        let cap: oci_spec::runtime::Capability = serde_json::from_value(serde_json::Value::String(name))
                            .with_context(|| format!("unknown capability {c}"))?;
                        s.insert(cap);
                    }
                    Ok(s)
                };
                caps.set_bounding(Some(add(caps.bounding().clone())?));
                caps.set_effective(Some(add(caps.effective().clone())?));
                caps.set_permitted(Some(add(caps.permitted().clone())?));
                p.set_capabilities(Some(caps));
            }
            p
        }
    };
    let opts = ExecOpts {
        id: a.id.clone(),
        process,
        console_socket: a.console_socket,
        detach: a.detach,
        pid_file: a.pid_file,
        preserve_fds: a.preserve_fds,
        proxy_tty: true,
        ignore_paused: a.ignore_paused,
    };
    let code = exec::exec(root, &opts).with_context(|| format!("exec in {}", a.id))?;
    Ok(code.clamp(0, 255) as u8)
}

fn ps(root: &std::path::Path, id: &str, format: &str, ps_args: &[String]) -> Result<u8> {
    let pids = container::pids(root, id)?;
    if format == "json" {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for l in lines {
        let pid: Option<i32> = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{l}");
        }
    }
    Ok(0)
}

fn parse_size(s: &str) -> Result<i64> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.to_ascii_lowercase();
    let (num, mult) = match lower.trim_end_matches('b').chars().last() {
        Some('k') => (&lower[..lower.find('k').unwrap()], 1024),
        Some('m') => (&lower[..lower.find('m').unwrap()], 1024 * 1024),
        Some('g') => (&lower[..lower.find('g').unwrap()], 1024 * 1024 * 1024),
        _ => (lower.trim_end_matches('b'), 1),
    };
    let n: i64 = num
        .trim()
        .parse()
        .with_context(|| format!("invalid size {s:?}"))?;
    Ok(n * mult)
}

fn update(root: &std::path::Path, a: UpdateArgs) -> Result<u8> {
    let mut res: LinuxResources = match a.resources.as_deref() {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            berth_runtime::spec::read_json(std::path::Path::new("<stdin>"), text.as_bytes())?
        }
        Some(path) => {
            let text = std::fs::read(path).with_context(|| format!("read {path}"))?;
            berth_runtime::spec::read_json(std::path::Path::new(path), &text)?
        }
        None => LinuxResources::default(),
    };
    res.set_devices(None);
    let mut mem = (*res.memory()).unwrap_or_default();
    let mut mem_set = res.memory().is_some();
    if let Some(m) = &a.memory {
        mem.set_limit(Some(parse_size(m)?));
        mem_set = true;
    }
    if let Some(m) = &a.memory_reservation {
        mem.set_reservation(Some(parse_size(m)?));
        mem_set = true;
    }
    if let Some(m) = &a.memory_swap {
        mem.set_swap(Some(parse_size(m)?));
        mem_set = true;
    }
    if mem_set {
        res.set_memory(Some(mem));
    }
    let mut cpu = res.cpu().clone().unwrap_or_default();
    let mut cpu_set = res.cpu().is_some();
    if let Some(v) = a.cpu_share {
        cpu.set_shares(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_quota {
        cpu.set_quota(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_period {
        cpu.set_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_rt_period {
        cpu.set_realtime_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_rt_runtime {
        cpu.set_realtime_runtime(Some(v));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
        cpu_set = true;
    }
    if cpu_set {
        res.set_cpu(Some(cpu));
    }
    if let Some(v) = a.pids_limit {
        let mut p = oci_spec::runtime::LinuxPids::default();
        p.set_limit(v);
        res.set_pids(Some(p));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = res.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        res.set_block_io(Some(b));
    }
    container::update(root, &a.id, &res).with_context(|| format!("update {}", a.id))?;
    Ok(0)
}

fn parse_interval(s: &str) -> Result<std::time::Duration> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid interval unit in {s:?}"),
    };
    if secs <= 0.0 {
        bail!("interval {s:?} must be positive");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn events(root: &std::path::Path, id: &str, stats: bool, interval: &str) -> Result<u8> {
    let every = parse_interval(interval)?;
    let emit = |typ: &str, data: serde_json::Value| {
        println!(
            "{}",
            serde_json::json!({"type": typ, "id": id, "data": data})
        );
    };
    if stats {
        emit("stats", container::stats(root, id)?);
        return Ok(0);
    }
    let mut ooms = container::oom_kills(root, id)?;
    let mut last = std::time::Instant::now() - every;
    loop {
        let status = match container::load(root, id) {
            Ok((_d, _st, status)) => Some(status),
            Err(berth_runtime::Error::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        // Check for OOM kills before leaving too: the kill may be what stopped it.
        let now = container::oom_kills(root, id).unwrap_or(ooms);
        if now > ooms {
            emit("oom", serde_json::Value::Null);
            ooms = now;
        }
        if matches!(status, None | Some(Status::Stopped)) {
            return Ok(0);
        }
        if last.elapsed() >= every {
            if let Ok(s) = container::stats(root, id) {
                emit("stats", s);
            }
            last = std::time::Instant::now();
        }
        std::thread::sleep(std::time::Duration::from_millis(100).min(every));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_intervals() {
        assert_eq!(parse_size("1k").unwrap(), 1024);
        assert_eq!(parse_size("10M").unwrap(), 10 << 20);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("abc").is_err());
        assert_eq!(
            parse_interval("5s").unwrap(),
            std::time::Duration::from_secs(5)
        );
        assert_eq!(
            parse_interval("100ms").unwrap(),
            std::time::Duration::from_millis(100)
        );
        assert!(parse_interval("0s").is_err());
    }

    #[test]
    fn cli_parses_containerd_style_arguments() {
        let c = Cli::try_parse_from([
            "berth-runtime",
            "--root",
            "/run/x",
            "--log",
            "/tmp/l.json",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "id1",
        ])
        .unwrap();
        assert_eq!(c.global.log_format, "json");
        assert!(
            matches!(c.cmd, Cmd::Create(ref a) if a.id == "id1" && a.bundle == std::path::Path::new("/b"))
        );
        let c = Cli::try_parse_from(["berth-runtime", "kill", "--all", "id1", "9"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Kill { ref signal, all: true, .. } if signal == "9"));
        let c = Cli::try_parse_from(["berth-runtime", "exec", "-t", "id1", "sh", "-c", "echo hi"])
            .unwrap();
        assert!(matches!(c.cmd, Cmd::Exec(ref a) if a.command == ["sh", "-c", "echo hi"] && a.tty));
    }
}
