//! `berth`: the command line a docker user already knows, over berthd's Docker Engine API
//! (or any Engine API: `-H`, `BERTH_HOST`, `DOCKER_HOST`). Tables, `-q` and `--format` print
//! like docker's; exit codes follow docker's (125 for daemon errors, the container's own
//! code for `run`, `start -a` and `exec`).

pub mod build;
pub mod client;
pub mod containers;
pub mod copy;
pub mod groups;
pub mod images;
pub mod login;
pub mod network;
pub mod stats;
pub mod stream;
pub mod system;
pub mod table;
pub mod term;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Run and manage containers with Berth"
)]
pub struct Cli {
    /// Daemon socket to connect to.
    #[arg(
        short = 'H',
        long = "host",
        global = true,
        env = "BERTH_HOST",
        default_value = ""
    )]
    pub host: String,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Args, Clone, Default)]
pub struct RunOpts {
    /// Keep STDIN open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    pub tty: bool,
    /// Assign a name.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables.
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Bind mount a volume (src:dst[:ro], name:dst, or /dst).
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount (type=bind|volume|tmpfs,source=…,target=…[,readonly]).
    #[arg(long)]
    pub mount: Vec<String>,
    /// Publish a container's port(s) to the host ([ip:][hostPort:]containerPort[/proto]).
    #[arg(short, long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random host ports.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Expose a port or a range of ports.
    #[arg(long)]
    pub expose: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip).
    #[arg(long)]
    pub add_host: Vec<String>,
    /// Set custom DNS servers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Restart policy (no, always, unless-stopped, on-failure[:N]).
    #[arg(long)]
    pub restart: Option<String>,
    /// Memory limit (e.g. 64m).
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Number of CPUs.
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight).
    #[arg(long)]
    pub cpu_shares: Option<i64>,
    /// Tune container pids limit.
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Add Linux capabilities.
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container.
    #[arg(long)]
    pub privileged: bool,
    /// Mount the container's root filesystem as read only.
    #[arg(long)]
    pub read_only: bool,
    /// Mount a tmpfs directory.
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Container host name.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Set metadata on a container.
    #[arg(short, long = "label")]
    pub label: Vec<String>,
    /// Mount volumes from the specified container(s).
    #[arg(long)]
    pub volumes_from: Vec<String>,
    /// Signal to stop the container.
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Connect a container to a network (default bridge, none, host, container:NAME).
    #[arg(long)]
    pub network: Option<String>,
    /// Network-scoped aliases for the container.
    #[arg(long)]
    pub network_alias: Vec<String>,
    /// Add a link to another container (NAME[:ALIAS]).
    #[arg(long)]
    pub link: Vec<String>,
    /// IPv4 address (user-defined networks).
    #[arg(long)]
    pub ip: Option<String>,
    /// Container MAC address.
    #[arg(long)]
    pub mac_address: Option<String>,
    /// Ulimit options (name=soft[:hard]).
    #[arg(long)]
    pub ulimit: Vec<String>,
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Create and run a new container from an image.
    Run {
        /// Run in the background and print the container ID.
        #[arg(short, long)]
        detach: bool,
        /// Remove the container when it exits.
        #[arg(long)]
        rm: bool,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Create a new container.
    Create {
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Start stopped containers.
    Start {
        /// Attach STDOUT/STDERR.
        #[arg(short, long)]
        attach: bool,
        /// Attach STDIN.
        #[arg(short, long)]
        interactive: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop running containers.
    Stop {
        /// Seconds to wait before killing.
        #[arg(short, long)]
        time: Option<i64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart containers.
    Restart {
        #[arg(short, long)]
        time: Option<i64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Kill running containers.
    Kill {
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Force the removal of a running container.
        #[arg(short, long)]
        force: bool,
        /// Remove anonymous volumes associated with the container.
        #[arg(short, long)]
        volumes: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers.
    Ps {
        /// Show all containers.
        #[arg(short, long)]
        all: bool,
        /// Only display container IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Show the latest created container.
        #[arg(short, long)]
        latest: bool,
        /// Show n last created containers.
        #[arg(short = 'n', long)]
        last: Option<usize>,
        /// Don't truncate output.
        #[arg(long)]
        no_trunc: bool,
        /// Filter output (status=, name=, label=, id=).
        #[arg(short, long)]
        filter: Vec<String>,
        /// Format output using a template.
        #[arg(long)]
        format: Option<String>,
    },
    /// Fetch the logs of a container.
    Logs {
        #[arg(short, long)]
        follow: bool,
        /// Number of lines to show from the end of the logs.
        #[arg(short = 'n', long)]
        tail: Option<String>,
        #[arg(short, long)]
        timestamps: bool,
        container: String,
    },
    /// Execute a command in a running container.
    Exec {
        #[arg(short, long)]
        interactive: bool,
        #[arg(short, long)]
        tty: bool,
        #[arg(short, long)]
        detach: bool,
        #[arg(short, long = "env")]
        env: Vec<String>,
        #[arg(short, long)]
        user: Option<String>,
        #[arg(short, long)]
        workdir: Option<String>,
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Attach to a running container (ctrl-p ctrl-q detaches).
    Attach {
        #[arg(long)]
        no_stdin: bool,
        container: String,
    },
    /// Display the running processes of a container.
    Top {
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Return low-level information on containers, images or volumes.
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        objects: Vec<String>,
    },
    /// Copy files between a container and the local filesystem.
    Cp { src: String, dst: String },
    /// Export a container's filesystem as a tar archive.
    Export {
        #[arg(short, long)]
        output: Option<String>,
        container: String,
    },
    /// Import a tarball to create an image.
    Import {
        /// Dockerfile instruction to apply.
        #[arg(short, long)]
        change: Vec<String>,
        file: String,
        reference: Option<String>,
    },
    /// Build an image from a Dockerfile and a context directory.
    Build {
        /// Name and optionally a tag (name:tag); repeatable.
        #[arg(short, long)]
        tag: Vec<String>,
        /// The Dockerfile (default: PATH/Dockerfile).
        #[arg(short, long)]
        file: Option<String>,
        /// Build-time variables (KEY=VALUE, or KEY to take it from the environment).
        #[arg(long = "build-arg")]
        build_arg: Vec<String>,
        /// Do not use the cache.
        #[arg(long)]
        no_cache: bool,
        /// Always pull the base images.
        #[arg(long)]
        pull: bool,
        /// Remove intermediate containers after a successful build.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        rm: bool,
        /// Always remove intermediate containers.
        #[arg(long)]
        force_rm: bool,
        /// The build stage to stop at.
        #[arg(long)]
        target: Option<String>,
        /// Metadata for the image (KEY=VALUE).
        #[arg(long)]
        label: Vec<String>,
        /// Networking for RUN: default (the bridge), host, none or a network's name.
        #[arg(long)]
        network: Option<String>,
        /// Print only the image ID.
        #[arg(short, long)]
        quiet: bool,
        /// The context directory.
        path: String,
    },
    /// List port mappings of a container.
    Port {
        container: String,
        /// A private port (PORT[/PROTO]) to show.
        private: Option<String>,
    },
    /// Create a new image from a container's changes.
    Commit {
        #[arg(short, long)]
        change: Vec<String>,
        #[arg(short, long)]
        message: Option<String>,
        #[arg(short, long)]
        author: Option<String>,
        container: String,
        reference: Option<String>,
    },
    /// Inspect changes to files on a container's filesystem.
    Diff { container: String },
    /// Block until containers stop, then print their exit codes.
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Pause all processes within containers.
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within containers.
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Rename a container.
    Rename { container: String, name: String },
    /// List images.
    Images {
        #[arg(short, long)]
        quiet: bool,
        #[arg(short, long)]
        all: bool,
        #[arg(long)]
        format: Option<String>,
    },
    /// Download an image from a registry.
    Pull {
        #[arg(short, long)]
        quiet: bool,
        image: String,
    },
    /// Upload an image to a registry.
    Push {
        #[arg(short, long)]
        quiet: bool,
        image: String,
    },
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag { source: String, target: String },
    /// Remove images.
    Rmi {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Save images to a tar archive.
    Save {
        #[arg(short, long)]
        output: Option<String>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Load an image from a tar archive.
    Load {
        #[arg(short, long)]
        input: Option<String>,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show the history of an image.
    History {
        #[arg(long)]
        no_trunc: bool,
        /// Format output using a Go-template-like string ({{.ID}}, {{.CreatedBy}}, …).
        #[arg(long)]
        format: Option<String>,
        image: String,
    },
    /// Manage volumes.
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage Berth.
    #[command(subcommand)]
    System(SystemCmd),
    /// Display system-wide information.
    Info {
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Show the Berth version information.
    Version {
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Get real time events from the server.
    Events {
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(short, long)]
        filter: Vec<String>,
        #[arg(long)]
        format: Option<String>,
    },
    /// Manage containers (`berth container ls|run|rm|prune|…`: docker's verbs).
    #[command(disable_help_flag = true)]
    Container {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Manage images (`berth image ls|pull|rm|prune|…`).
    #[command(disable_help_flag = true)]
    Image {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Remove all stopped containers.
    #[command(name = "container-prune", hide = true)]
    ContainerPrune {
        #[arg(short, long)]
        force: bool,
        /// Provide filter values (e.g. 'until=24h', 'label=k=v').
        #[arg(long)]
        filter: Vec<String>,
    },
    /// Remove unused images.
    #[command(name = "image-prune", hide = true)]
    ImagePrune {
        #[arg(short, long)]
        force: bool,
        /// Remove all images no container uses, not just dangling ones.
        #[arg(short, long)]
        all: bool,
    },
    /// Display a live stream of container resource usage statistics.
    Stats {
        /// Show all containers (default shows just running).
        #[arg(short, long)]
        all: bool,
        /// Disable streaming stats and only pull the first result.
        #[arg(long)]
        no_stream: bool,
        /// Format output using a Go-template-like string ({{.Name}}, {{.CPUPerc}}, …).
        #[arg(long)]
        format: Option<String>,
        containers: Vec<String>,
    },
    /// Update configuration of one or more containers.
    Update {
        /// Memory limit (e.g. 512m).
        #[arg(short, long)]
        memory: Option<String>,
        /// Swap limit equal to memory plus swap: -1 for unlimited.
        #[arg(long)]
        memory_swap: Option<String>,
        /// Number of CPUs.
        #[arg(long)]
        cpus: Option<f64>,
        /// CPU shares (relative weight).
        #[arg(short, long)]
        cpu_shares: Option<i64>,
        /// Tune container pids limit (-1 for unlimited).
        #[arg(long)]
        pids_limit: Option<i64>,
        /// Restart policy to apply when a container exits.
        #[arg(long)]
        restart: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Log in to a registry (the credentials go to config.json, as docker keeps them).
    Login {
        #[arg(short, long)]
        username: Option<String>,
        #[arg(short, long)]
        password: Option<String>,
        /// Take the password from stdin.
        #[arg(long)]
        password_stdin: bool,
        server: Option<String>,
    },
    /// Log out from a registry.
    Logout { server: Option<String> },
    /// Search registries for images (their catalogs: Berth never asks Docker Hub's index).
    Search {
        /// Max number of search results.
        #[arg(long)]
        limit: Option<u32>,
        /// Format output using a Go-template-like string ({{.Name}}, {{.Description}}, …).
        #[arg(long)]
        format: Option<String>,
        term: String,
    },
}

/// `ls` of volumes and networks.
#[derive(clap::Args)]
pub struct ListArgs {
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(short, long)]
    pub filter: Vec<String>,
    #[arg(long)]
    pub format: Option<String>,
}

/// `inspect` of volumes and networks.
#[derive(clap::Args)]
pub struct InspectArgs {
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a network (bridge).
    Create {
        #[arg(short, long)]
        driver: Option<String>,
        #[arg(long)]
        subnet: Option<String>,
        #[arg(long)]
        gateway: Option<String>,
        #[arg(long)]
        ip_range: Option<String>,
        /// Restrict external access to the network.
        #[arg(long)]
        internal: bool,
        #[arg(long)]
        label: Vec<String>,
        /// Driver options (e.g. com.docker.network.driver.mtu=1400).
        #[arg(short, long)]
        opt: Vec<String>,
        name: String,
    },
    /// List networks.
    Ls(ListArgs),
    /// Display detailed information on networks.
    Inspect(InspectArgs),
    /// Remove networks.
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove all unused networks.
    Prune {
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a container to a network.
    Connect {
        #[arg(long)]
        alias: Vec<String>,
        #[arg(long)]
        ip: Option<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect { network: String, container: String },
}

#[derive(Subcommand)]
pub enum VolumeCmd {
    /// Create a volume.
    Create {
        #[arg(short, long = "label")]
        label: Vec<String>,
        name: Option<String>,
    },
    /// List volumes.
    Ls(ListArgs),
    /// Display detailed information on volumes.
    Inspect(InspectArgs),
    /// Remove volumes.
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove unused volumes (anonymous ones; -a for all).
    Prune {
        #[arg(short, long)]
        all: bool,
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub enum SystemCmd {
    /// Show disk usage.
    Df {
        #[arg(short, long)]
        verbose: bool,
    },
    /// Remove stopped containers, unused volumes (with --volumes) and dangling images.
    Prune {
        #[arg(short, long)]
        force: bool,
        #[arg(long)]
        volumes: bool,
    },
    /// Display system-wide information.
    Info,
    /// Get real time events from the server.
    Events {
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
    },
}

/// What a command ends with: an exit code, or an error printed as docker prints it.
pub type Outcome = Result<i32, client::ApiError>;

fn host(cli: &Cli) -> String {
    if !cli.host.is_empty() {
        return cli.host.clone();
    }
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///run/berth/berth.sock".into())
}

pub fn main() -> i32 {
    let cli = Cli::parse_from(groups::expand(std::env::args_os().collect()));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: {e}");
            return 1;
        }
    };
    let client = match client::Client::new(&host(&cli)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let r = rt.block_on(dispatch(&client, cli.cmd));
    // A thread may still be blocked reading stdin: do not wait for it.
    rt.shutdown_background();
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            // Docker's code for errors of the daemon or the client itself.
            125
        }
    }
}

async fn dispatch(c: &client::Client, cmd: Cmd) -> Outcome {
    use containers as k;
    match cmd {
        Cmd::Run { detach, rm, opts } => k::run(c, opts, detach, rm).await,
        Cmd::Create { opts } => k::create_cmd(c, opts).await,
        Cmd::Start {
            attach,
            interactive,
            containers,
        } => k::start(c, &containers, attach, interactive).await,
        Cmd::Stop { time, containers } => k::each(c, &containers, "stop", time).await,
        Cmd::Restart { time, containers } => k::each(c, &containers, "restart", time).await,
        Cmd::Kill { signal, containers } => k::kill(c, &containers, &signal).await,
        Cmd::Rm {
            force,
            volumes,
            containers,
        } => k::rm(c, &containers, force, volumes).await,
        Cmd::Ps {
            all,
            quiet,
            latest,
            last,
            no_trunc,
            filter,
            format,
        } => {
            let last = if latest { Some(1) } else { last };
            k::ps(c, all, quiet, last, no_trunc, &filter, format.as_deref()).await
        }
        Cmd::Logs {
            follow,
            tail,
            timestamps,
            container,
        } => k::logs(c, &container, follow, tail.as_deref(), timestamps).await,
        Cmd::Exec {
            interactive,
            tty,
            detach,
            env,
            user,
            workdir,
            container,
            command,
        } => {
            let o = k::ExecOpts {
                interactive,
                tty,
                detach,
                env,
                user,
                workdir,
            };
            k::exec(c, &container, command, o).await
        }
        Cmd::Attach {
            no_stdin,
            container,
        } => k::attach(c, &container, !no_stdin).await,
        Cmd::Top { container, ps_args } => k::top(c, &container, &ps_args).await,
        Cmd::Inspect { format, objects } => system::inspect(c, &objects, format.as_deref()).await,
        Cmd::Cp { src, dst } => copy::cp(c, &src, &dst).await,
        Cmd::Export { output, container } => copy::export(c, &container, output.as_deref()).await,
        Cmd::Import {
            change,
            file,
            reference,
        } => images::import(c, &file, reference.as_deref(), &change).await,
        Cmd::Commit {
            change,
            message,
            author,
            container,
            reference,
        } => {
            k::commit(
                c,
                &container,
                reference.as_deref(),
                &change,
                message.as_deref(),
                author.as_deref(),
            )
            .await
        }
        Cmd::Build {
            tag,
            file,
            build_arg,
            no_cache,
            pull,
            rm,
            force_rm,
            target,
            label,
            network,
            quiet,
            path,
        } => {
            let o = build::BuildOpts {
                tags: tag,
                file,
                build_args: build_arg,
                no_cache,
                pull,
                rm,
                force_rm,
                target,
                labels: label,
                network,
                quiet,
            };
            build::build(c, &path, o).await
        }
        Cmd::Port { container, private } => k::port(c, &container, private.as_deref()).await,
        Cmd::Diff { container } => k::diff(c, &container).await,
        Cmd::Wait { containers } => k::wait(c, &containers).await,
        Cmd::Pause { containers } => k::each(c, &containers, "pause", None).await,
        Cmd::Unpause { containers } => k::each(c, &containers, "unpause", None).await,
        Cmd::Rename { container, name } => k::rename(c, &container, &name).await,
        Cmd::Images { quiet, all, format } => images::list(c, quiet, all, format.as_deref()).await,
        Cmd::Pull { quiet, image } => images::pull(c, &image, quiet).await,
        Cmd::Push { quiet, image } => images::push(c, &image, quiet).await,
        Cmd::Tag { source, target } => images::tag(c, &source, &target).await,
        Cmd::Rmi { force, images: i } => images::rmi(c, &i, force).await,
        Cmd::Save { output, images: i } => images::save(c, &i, output.as_deref()).await,
        Cmd::Load { input, quiet } => images::load(c, input.as_deref(), quiet).await,
        Cmd::History {
            no_trunc,
            format,
            image,
        } => images::history(c, &image, no_trunc, format.as_deref()).await,
        Cmd::Volume(v) => system::volume(c, v).await,
        Cmd::Network(n) => network::network(c, n).await,
        Cmd::System(SystemCmd::Df { verbose }) => system::df(c, verbose).await,
        Cmd::System(SystemCmd::Prune { force, volumes }) => system::prune(c, force, volumes).await,
        Cmd::System(SystemCmd::Info) => system::info(c, None).await,
        Cmd::System(SystemCmd::Events { since, until }) => {
            system::events(c, since.as_deref(), until.as_deref(), &[], None).await
        }
        Cmd::Container { args } | Cmd::Image { args } if !args.is_empty() && !args[0].starts_with('-') => {
            Err(client::ApiError {
                status: None,
                message: format!("berth: '{}' is not a berth container or image command.\nSee 'berth container --help' and 'berth image --help'", args[0]),
            })
        }
        Cmd::Container { .. } => {
            print!("{}", groups::help("container"));
            Ok(0)
        }
        Cmd::Image { .. } => {
            print!("{}", groups::help("image"));
            Ok(0)
        }
        Cmd::ContainerPrune { force, filter } => k::prune(c, force, &filter).await,
        Cmd::ImagePrune { force, all } => images::prune(c, force, all).await,
        Cmd::Stats {
            all,
            no_stream,
            format,
            containers,
        } => stats::stats(c, &containers, all, no_stream, format.as_deref()).await,
        Cmd::Update {
            memory,
            memory_swap,
            cpus,
            cpu_shares,
            pids_limit,
            restart,
            containers,
        } => {
            let o = k::UpdateOpts {
                memory,
                memory_swap,
                cpus,
                cpu_shares,
                pids_limit,
                restart,
            };
            k::update(c, &containers, o).await
        }
        Cmd::Search {
            limit,
            format,
            term,
        } => images::search(c, &term, limit, format.as_deref()).await,
        Cmd::Login {
            username,
            password,
            password_stdin,
            server,
        } => {
            login::login(
                c,
                server.as_deref(),
                username.as_deref(),
                password.as_deref(),
                password_stdin,
            )
            .await
        }
        Cmd::Logout { server } => login::logout(server.as_deref()).await,
        Cmd::Info { format } => system::info(c, format.as_deref()).await,
        Cmd::Version { format } => system::version(c, format.as_deref()).await,
        Cmd::Events {
            since,
            until,
            filter,
            format,
        } => {
            system::events(
                c,
                since.as_deref(),
                until.as_deref(),
                &filter,
                format.as_deref(),
            )
            .await
        }
    }
}

/// Percent-encode a query value or path segment (names keep their `:`, `/` and `@`, as
/// docker sends them).
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~:@/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `key=value` filters as the API's JSON map.
/// `inspect` of named objects under `base` (`/volumes`, `/networks`): each rendered with
/// `--format`, or all as a pretty JSON array.
pub async fn inspect_each(c: &client::Client, base: &str, a: &InspectArgs) -> Outcome {
    let mut all = Vec::new();
    for n in &a.names {
        all.push(c.get(&format!("{base}/{}", enc(n))).await?);
    }
    match &a.format {
        Some(f) => all.iter().for_each(|v| println!("{}", table::render(f, v))),
        None => println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default()),
    }
    Ok(0)
}

/// `path?filters=…` when there are `--filter`s, else `path`.
pub fn with_filters(path: &str, filters: &[String]) -> String {
    if filters.is_empty() {
        path.to_string()
    } else {
        format!("{path}?filters={}", enc(&filters_json(filters)))
    }
}

pub fn filters_json(list: &[String]) -> String {
    let mut m: serde_json::Map<String, serde_json::Value> = Default::default();
    for f in list {
        let (k, v) = f.split_once('=').unwrap_or((f, ""));
        let e = m
            .entry(k.to_string())
            .or_insert_with(|| serde_json::json!({}));
        e[v] = true.into();
    }
    serde_json::Value::Object(m).to_string()
}
