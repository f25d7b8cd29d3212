//! `hoist run`: runs a command in a new container from an image, like `docker run`, in hoist's own sandbox (no
//! daemon, no external runtime). In the foreground the container's writable layer is a scratch overlay upper
//! directory, deleted when the command ends. With `-d` the container runs under a supervisor (`hoist __supervise`,
//! see `supervise.rs`) and is recorded in the store's containers directory for `ps`, `stop`, `logs` and `rm`.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use hoist_oci::Store;
use hoist_oci::oci_spec::image::Config;
use hoist_sandbox::{
    BindMount, Container, ContainerState, ContainerStore, Network, NewContainer, PortMapping,
    Snapshot, Stdio, Terminal, parse_signal, read_env_file, resolve_user,
};

use super::images::{error_chain, open_store};

/// Exit code for failures of hoist itself, before the command ran (Docker's 125).
const EXIT_HOIST_FAILED: u8 = 125;

/// Which network the container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum NetworkMode {
    /// The host's network, unless ports are published: then a private network namespace the ports are proxied
    /// into.
    Default,
    /// A private network namespace with only a loopback interface.
    None,
    /// The host's network namespace.
    Host,
}

/// Run a command in a new container.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Remove the container when it exits (a foreground run without `--name` is never kept).
    #[arg(long)]
    pub(crate) rm: bool,

    /// Run in the background under a supervisor and print the container ID.
    #[arg(short, long)]
    pub(crate) detach: bool,

    /// Name the container (it is then recorded, also in the foreground, for `hoist ps`, `stop`, `logs`, `rm`).
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,

    /// Set an environment variable (`KEY=VALUE`, or `KEY` to copy it from hoist's environment).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,

    /// Read environment variables from a file (`KEY=VALUE` lines, `#` comments, a bare `KEY` copied from hoist's
    /// environment); `-e` overrides them.
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,

    /// Bind-mount a host directory or file: `HOST:CONTAINER[:ro|rw]` (absolute paths; no named volumes).
    #[arg(short, long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    volume: Vec<String>,

    /// Working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,

    /// User to run as: `name`, `uid`, `name:group` or `uid:gid`.
    #[arg(short, long, value_name = "USER[:GROUP]")]
    user: Option<String>,

    /// Network mode.
    #[arg(long, value_enum, default_value = "default")]
    network: NetworkMode,

    /// Publish a container port on the host: `[IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`.
    #[arg(short, long = "publish", value_name = "[IP:]HOST:CONTAINER[/udp]", value_parser = parse_port)]
    publish: Vec<PortMapping>,

    /// Override the image's ENTRYPOINT (an empty string clears it).
    #[arg(long, value_name = "COMMAND")]
    entrypoint: Option<String>,

    /// The container's host name (default: a random 12-digit hex name, as Docker).
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,

    /// Keep standard input attached (without it the command reads /dev/null).
    #[arg(short, long)]
    interactive: bool,

    /// Allocate a pseudo-terminal for the command.
    #[arg(short, long)]
    tty: bool,

    /// The runtime: `hoist` (built in), or an OCI runtime binary (`runc`, `crun`, or a path) given a generated
    /// bundle. Published ports and rootless runs need the built-in runtime.
    #[arg(long, value_name = "RUNTIME", default_value = "hoist")]
    runtime: String,

    /// Seconds to wait after forwarding SIGINT/SIGTERM before killing the container.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    stop_timeout: u64,

    /// The image (reference or ID).
    #[arg(value_name = "IMAGE")]
    pub(crate) image: String,

    /// The command and its arguments (default: the image's CMD).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
}

fn parse_port(text: &str) -> Result<PortMapping, String> {
    text.parse()
        .map_err(|error: hoist_sandbox::Error| error.to_string())
}

impl RunArgs {
    /// The arguments after `run` that parse back to these (without `-d`): what the supervisor is started with.
    pub(crate) fn to_args(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = Vec::new();
        // `--flag=value`, so a value starting with `-` is never taken for a flag.
        let mut flag = |name: &str, value: Option<OsString>| {
            let mut arg = OsString::from(name);
            if let Some(value) = value {
                arg.push("=");
                arg.push(value);
            }
            out.push(arg);
        };
        if self.rm {
            flag("--rm", None);
        }
        if let Some(name) = &self.name {
            flag("--name", Some(name.into()));
        }
        for entry in &self.env {
            flag("--env", Some(entry.into()));
        }
        for file in &self.env_file {
            flag("--env-file", Some(file.into()));
        }
        for volume in &self.volume {
            flag("--volume", Some(volume.into()));
        }
        if let Some(dir) = &self.workdir {
            flag("--workdir", Some(dir.into()));
        }
        if let Some(user) = &self.user {
            flag("--user", Some(user.into()));
        }
        let network = match self.network {
            NetworkMode::Default => "default",
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
        };
        flag("--network", Some(network.into()));
        for port in &self.publish {
            flag("--publish", Some(port.to_string().into()));
        }
        if let Some(entrypoint) = &self.entrypoint {
            flag("--entrypoint", Some(entrypoint.into()));
        }
        if let Some(hostname) = &self.hostname {
            flag("--hostname", Some(hostname.into()));
        }
        if self.interactive {
            flag("--interactive", None);
        }
        if self.tty {
            flag("--tty", None);
        }
        flag("--runtime", Some(self.runtime.clone().into()));
        flag("--stop-timeout", Some(self.stop_timeout.to_string().into()));
        out.push("--".into());
        out.push(self.image.clone().into());
        out.extend(self.command.iter().map(OsString::from));
        out
    }
}

/// Reports an error of hoist itself and exits with 125.
fn hoist_failed(error: &dyn std::error::Error) -> ExitCode {
    report(error);
    ExitCode::from(EXIT_HOIST_FAILED)
}

fn report(error: &dyn std::error::Error) {
    use std::io::Write;
    let _ = writeln!(io::stderr().lock(), "hoist: {}", error_chain(error));
}

/// A failure of `hoist run` itself or of starting the command, with Docker's exit code for it.
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// A failure of hoist itself (125).
    pub(crate) fn hoist(error: &dyn std::error::Error) -> Failure {
        Failure {
            code: EXIT_HOIST_FAILED,
            message: error_chain(error),
        }
    }

    /// What the container's start failed with: 127 when the command does not exist, 126 when it cannot be run,
    /// 125 otherwise (Docker's codes).
    pub(crate) fn start(error: &hoist_sandbox::Error) -> Failure {
        let code = match error {
            hoist_sandbox::Error::Exec { source, .. }
                if source.kind() == io::ErrorKind::NotFound =>
            {
                127
            }
            hoist_sandbox::Error::Exec { .. } => 126,
            _ => EXIT_HOIST_FAILED,
        };
        Failure {
            code,
            message: error_chain(error),
        }
    }

    pub(crate) fn code(&self) -> u8 {
        self.code
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// Reports the failure on stderr and returns its exit code.
    pub(crate) fn exit(self) -> ExitCode {
        report_message(&self.message);
        ExitCode::from(self.code)
    }
}

fn report_message(message: &str) {
    use std::io::Write;
    let _ = writeln!(io::stderr().lock(), "hoist: {message}");
}

pub(crate) fn run(root: Option<&Path>, args: &RunArgs) -> ExitCode {
    let store = match open_store(root) {
        Ok(store) => store,
        Err(error) => return hoist_failed(&error),
    };
    let image = match store.read_image(&args.image) {
        Ok(image) => image,
        Err(error) => return hoist_failed(&error),
    };
    let config = image.config.config().clone().unwrap_or_default();
    let outcome = if args.detach {
        detach(&store, &image, &config, args)
    } else if args.name.is_some() {
        register(&store, &image, &config, args).and_then(|(containers, record)| {
            let lock = containers
                .claim(&record.id)
                .map_err(|error| Failure::hoist(&error))?;
            let log = hoist_sandbox::LogWriter::open(&containers.log_path(&record.id))
                .map_err(|error| Failure::hoist(&error))?;
            // With -t the terminal is copied as usual and nothing is logged.
            let output = if args.tty {
                Output::Inherit
            } else {
                Output::Tee(&log)
            };
            let result = run_recorded(&store, &containers, &record.id, args, output);
            drop(lock);
            if result.is_err() && args.rm {
                // A --rm container that could not start (one that ran is removed on exit).
                let _ = containers.remove(&record);
            }
            result
        })
    } else {
        let scratch = std::env::temp_dir().join("hoist-run");
        Snapshot::remove_stale(&scratch);
        run_container(
            &store,
            &config,
            args,
            &scratch,
            Output::Inherit,
            &mut |_| {},
        )
        .map(|status| ExitCode::from(u8::try_from(status & 0xff).unwrap_or(1)))
    };
    outcome.unwrap_or_else(Failure::exit)
}

/// Where the command's output goes.
#[derive(Clone, Copy)]
pub(crate) enum Output<'a> {
    /// hoist's own standard streams (and its terminal with `-t`).
    Inherit,
    /// A detached container's log.
    Log(&'a hoist_sandbox::LogWriter),
    /// A named foreground container's log and hoist's own standard output and error (standard input as with
    /// `Inherit`).
    Tee(&'a hoist_sandbox::LogWriter),
}

/// Runs a recorded container to its end (the caller holds its supervisor lock): `running` once started, then its
/// exit code, or the reason it could not start, in its record.
pub(crate) fn run_recorded(
    store: &Store,
    containers: &ContainerStore,
    id: &str,
    args: &RunArgs,
    output: Output<'_>,
) -> Result<ExitCode, Failure> {
    let scratch = containers.scratch_dir(id);
    let config = match store.read_image(&args.image) {
        Ok(image) => image.config.config().clone().unwrap_or_default(),
        Err(error) => {
            let failure = Failure::hoist(&error);
            let _ = containers.mark_exited(id, failure.code.into(), Some(failure.message.clone()));
            return Err(failure);
        }
    };
    let mut started = |pid| {
        if let Err(error) = containers.mark_running(id, pid) {
            report(&error);
        }
    };
    let result = std::fs::create_dir_all(&scratch)
        .map_err(|error| Failure::hoist(&error))
        .and_then(|()| run_container(store, &config, args, &scratch, output, &mut started));
    let recorded = match &result {
        Ok(code) => containers.mark_exited(id, *code, None),
        Err(failure) => {
            containers.mark_exited(id, failure.code.into(), Some(failure.message.clone()))
        }
    };
    if let Err(error) = recorded {
        report(&error);
    }
    result.map(|code| ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)))
}

/// Makes the container's writable layer under `scratch`, runs the container with `output`, and returns its exit
/// code. `started` gets the host pid of its PID 1.
fn run_container(
    store: &Store,
    config: &Config,
    args: &RunArgs,
    scratch: &Path,
    output: Output<'_>,
    started: &mut dyn FnMut(u32),
) -> Result<i32, Failure> {
    let image = store
        .read_image(&args.image)
        .map_err(|error| Failure::hoist(&error))?;
    let snapshot = Snapshot::new(store, &image, scratch).map_err(|error| Failure::hoist(&error))?;
    let container = container_for(args, config, &snapshot)?;
    let mut attached = None;
    let mut copiers = Vec::new();
    // Keeps standard input open (and empty) for a detached `-i` command, as Docker's open stdin does.
    let mut held_stdin = None;
    let stdio = match output {
        Output::Inherit if args.tty => {
            let terminal = Terminal::open().map_err(|error| Failure::hoist(&error))?;
            let stdio = terminal.stdio().map_err(|error| Failure::hoist(&error))?;
            attached = Some(
                terminal
                    .attach(args.interactive)
                    .map_err(|error| Failure::hoist(&error))?,
            );
            stdio
        }
        Output::Inherit if args.interactive => Stdio::default(),
        Output::Inherit => Stdio {
            stdin: Some(dev_null()?),
            ..Stdio::default()
        },
        Output::Log(_) if args.tty => {
            // The terminal's output, CR LF line ends included, is the log's stdout (as Docker's with -t); the
            // controlling side, held by the copier, keeps the terminal open for the command's input.
            let terminal = Terminal::open().map_err(|error| Failure::hoist(&error))?;
            let stdio = terminal.stdio().map_err(|error| Failure::hoist(&error))?;
            copiers.push((
                hoist_sandbox::LogStream::Stdout,
                File::from(terminal.into_controller()),
            ));
            stdio
        }
        Output::Log(_) | Output::Tee(_) => {
            let stdin = match output {
                Output::Tee(_) if args.interactive => None,
                Output::Tee(_) => Some(dev_null()?),
                _ if args.interactive => {
                    let (read, write) = pipe()?;
                    held_stdin = Some(write);
                    Some(read)
                }
                _ => Some(dev_null()?),
            };
            let (out_read, out_write) = pipe()?;
            let (err_read, err_write) = pipe()?;
            for (stream, read) in [
                (hoist_sandbox::LogStream::Stdout, out_read),
                (hoist_sandbox::LogStream::Stderr, err_read),
            ] {
                copiers.push((stream, File::from(read)));
            }
            Stdio {
                stdin,
                stdout: Some(out_write),
                stderr: Some(err_write),
            }
        }
    };
    let status = std::thread::scope(|scope| {
        for (stream, read) in copiers.drain(..) {
            scope.spawn(move || {
                let copied = match (output, stream) {
                    (Output::Tee(log), hoist_sandbox::LogStream::Stdout) => {
                        log.copy_mirrored(stream, read, io::stdout())
                    }
                    (Output::Tee(log), hoist_sandbox::LogStream::Stderr) => {
                        log.copy_mirrored(stream, read, io::stderr())
                    }
                    (Output::Log(log), _) => log.copy(stream, read),
                    (Output::Inherit, _) => Ok(()),
                };
                if let Err(error) = copied {
                    report(&error);
                }
            });
        }
        if args.runtime == "hoist" {
            container.run_and_notify(stdio, started)
        } else {
            container.run_with_runtime(Path::new(&args.runtime), stdio)
        }
    });
    drop(held_stdin);
    if let Some(attached) = attached {
        attached.finish();
    }
    drop(snapshot);
    status
        .map(|status| status.code())
        .map_err(|error| Failure::start(&error))
}

fn dev_null() -> Result<std::os::fd::OwnedFd, Failure> {
    File::open("/dev/null")
        .map(Into::into)
        .map_err(|error| Failure::hoist(&error))
}

fn pipe() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd), Failure> {
    io::pipe()
        .map(|(read, write)| (read.into(), write.into()))
        .map_err(|error| Failure::hoist(&error))
}

/// Records a new container for `args` (its name checked, its command and stop signal from the image).
fn register(
    store: &Store,
    image: &hoist_oci::Image,
    config: &Config,
    args: &RunArgs,
) -> Result<(ContainerStore, hoist_sandbox::ContainerRecord), Failure> {
    let containers = ContainerStore::open(store.root()).map_err(|error| Failure::hoist(&error))?;
    let stop_signal = match config.stop_signal() {
        Some(signal) => parse_signal(signal).map_err(|error| Failure::hoist(&error))?,
        None => 15,
    };
    let command = command_for(args, config).map_err(|error| Failure::hoist(&error))?;
    let record = containers
        .create(NewContainer {
            name: args.name.clone(),
            image: args.image.clone(),
            image_id: image.id.to_string(),
            command,
            ports: args.publish.clone(),
            stop_signal,
            stop_timeout: args.stop_timeout,
            auto_remove: args.rm,
            run_args: args
                .to_args()
                .iter()
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect(),
        })
        .map_err(|error| Failure::hoist(&error))?;
    Ok((containers, record))
}

/// `hoist run -d`: records the container, starts its supervisor, waits until the command has started (or failed
/// to), and prints the container's ID.
fn detach(
    store: &Store,
    image: &hoist_oci::Image,
    config: &Config,
    args: &RunArgs,
) -> Result<ExitCode, Failure> {
    if args.runtime != "hoist" {
        return Err(Failure {
            code: EXIT_HOIST_FAILED,
            message: format!("-d needs the built-in runtime, not {}", args.runtime),
        });
    }
    // What can be checked here is, so that the error comes from `hoist run` and no container is recorded.
    for file in &args.env_file {
        read_env_file(file).map_err(|error| Failure::hoist(&error))?;
    }
    bind_mounts(&args.volume)?;
    let (containers, record) = register(store, image, config, args)?;
    let dir = containers.container_dir(&record.id);
    let log = File::create(dir.join("supervisor.log")).map_err(|error| Failure::hoist(&error))?;
    let exe = std::env::current_exe().map_err(|error| Failure::hoist(&error))?;
    // A process group of its own: a Ctrl-C or hang-up at this terminal does not reach the supervisor, which
    // outlives this process.
    let mut supervisor = std::process::Command::new(exe)
        .process_group(0)
        .arg("--root")
        .arg(store.root())
        .arg("__supervise")
        .arg(&record.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|error| Failure::hoist(&error))?;
    loop {
        let current = containers.find(&record.id);
        match current {
            // A --rm container that already ran to its end.
            Err(hoist_sandbox::ContainerError::NotFound { .. }) => break,
            Err(error) => return Err(Failure::hoist(&error)),
            Ok(current) => {
                if let Some(error) = current
                    .error
                    .clone()
                    .filter(|_| current.started_at.is_none())
                {
                    if record.auto_remove {
                        let _ = containers.remove(&current);
                    }
                    let code = current.exit_code.and_then(|code| u8::try_from(code).ok());
                    return Err(Failure {
                        code: code.unwrap_or(EXIT_HOIST_FAILED),
                        message: error,
                    });
                }
                if current.state != ContainerState::Created {
                    break;
                }
            }
        }
        if let Ok(Some(status)) = supervisor.try_wait()
            && containers
                .find(&record.id)
                .is_ok_and(|current| current.state == ContainerState::Created)
        {
            return Err(Failure {
                code: EXIT_HOIST_FAILED,
                message: format!(
                    "the container's supervisor exited before the container started ({status}); see {}",
                    dir.join("supervisor.log").display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(super::images::emit(&format!("{}\n", record.id)))
}

/// The command `docker run` would run: the entrypoint (or `--entrypoint`) and the arguments (or the image's CMD).
fn command_for(args: &RunArgs, config: &Config) -> Result<Vec<String>, hoist_sandbox::Error> {
    let entrypoint: Vec<String> = match &args.entrypoint {
        Some(entrypoint) if entrypoint.is_empty() => Vec::new(),
        Some(entrypoint) => vec![entrypoint.clone()],
        None => config.entrypoint().clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = if !args.command.is_empty() {
        args.command.clone()
    } else if args.entrypoint.is_some() {
        // Docker drops the image's CMD when --entrypoint is given.
        Vec::new()
    } else {
        config.cmd().clone().unwrap_or_default()
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(hoist_sandbox::Error::NoCommand);
    }
    Ok(argv)
}

/// The container `docker run` would create: entrypoint + cmd, environment, working directory and user from the
/// image config, overridden by the flags.
fn container_for(
    args: &RunArgs,
    config: &Config,
    snapshot: &Snapshot,
) -> Result<Container, Failure> {
    let sandbox = |error: hoist_sandbox::Error| Failure::hoist(&error);
    let argv = command_for(args, config).map_err(sandbox)?;

    let user_spec = args
        .user
        .clone()
        .or_else(|| config.user().clone())
        .unwrap_or_default();
    let read_text = |path: &str| {
        String::from_utf8_lossy(&snapshot.read_file(path).unwrap_or_default()).into_owned()
    };
    let resolved = resolve_user(
        &user_spec,
        &read_text("/etc/passwd"),
        &read_text("/etc/group"),
    )
    .map_err(sandbox)?;
    let hostname = args.hostname.clone().unwrap_or_else(random_hostname);

    let mut env: Vec<String> = config.env().clone().unwrap_or_default();
    let mut set = |entry: String| {
        let key = entry.split('=').next().unwrap_or_default().to_owned();
        env.retain(|existing| existing.split('=').next() != Some(key.as_str()));
        env.push(entry);
    };
    // As Docker: the files' variables first, then -e, each overriding the image's and the ones before.
    for file in &args.env_file {
        for entry in read_env_file(file).map_err(|error| Failure::hoist(&error))? {
            set(entry);
        }
    }
    for entry in &args.env {
        if entry.contains('=') {
            set(entry.clone());
        } else if let Ok(value) = std::env::var(entry) {
            set(format!("{entry}={value}"));
        }
    }
    let has = |env: &[String], key: &str| env.iter().any(|e| e.starts_with(&format!("{key}=")));
    if !has(&env, "PATH") {
        env.insert(0, format!("PATH={}", hoist_sandbox::DEFAULT_PATH));
    }
    if !has(&env, "HOSTNAME") {
        env.insert(1, format!("HOSTNAME={hostname}"));
    }
    resolved.set_home_if_unset(&mut env);

    let network = match (args.network, args.publish.is_empty()) {
        (NetworkMode::Host, false) => {
            return Err(sandbox(hoist_sandbox::Error::InvalidPort {
                spec: format!(
                    "{} (ports cannot be published with --network host)",
                    args.publish[0]
                ),
            }));
        }
        (NetworkMode::Host, true) | (NetworkMode::Default, true) => Network::Host,
        (NetworkMode::None, _) | (NetworkMode::Default, false) => Network::None,
    };
    let cwd = args
        .workdir
        .clone()
        .or_else(|| config.working_dir().clone())
        .filter(|dir| !dir.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    Ok(Container {
        rootfs: snapshot.rootfs(),
        args: argv,
        env,
        cwd,
        user: resolved.user,
        hostname,
        network,
        mounts: bind_mounts(&args.volume)?,
        ports: args.publish.clone(),
        stop_timeout: Duration::from_secs(args.stop_timeout),
        terminal: args.tty,
        ..Container::default()
    })
}

/// The `-v` mounts, with missing host paths created as directories (as Docker does for a bind).
fn bind_mounts(volumes: &[String]) -> Result<Vec<BindMount>, Failure> {
    let mounts = volumes
        .iter()
        .map(|spec| hoist_sandbox::parse_volume(spec))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Failure::hoist(&error))?;
    for mount in &mounts {
        if !mount.source.exists() {
            std::fs::create_dir_all(&mount.source).map_err(|error| Failure {
                code: EXIT_HOIST_FAILED,
                message: format!("create {}: {error}", mount.source.display()),
            })?;
        }
    }
    Ok(mounts)
}

/// Twelve hex digits, like Docker's short container IDs, from the standard library's randomly keyed hasher.
fn random_hostname() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Line {
        #[command(flatten)]
        args: RunArgs,
    }

    #[test]
    fn recorded_arguments_parse_back_to_the_same_run() {
        let argv = [
            "run",
            "--rm",
            "-d",
            "--name",
            "web",
            "--env=-dash=x",
            "--env-file",
            "vars.env",
            "-v",
            "/srv:/data:ro",
            "-w",
            "/app",
            "-u",
            "1000:1000",
            "--network",
            "none",
            "-p",
            "127.0.0.1:8080:80",
            "-p",
            "53:53/udp",
            "--entrypoint",
            "",
            "--hostname",
            "box",
            "-it",
            "--stop-timeout",
            "3",
            "bb:1",
            "sh",
            "-c",
            "--not-a-flag",
        ];
        let first = Line::parse_from(argv).args;
        assert!(first.detach);
        let again =
            Line::parse_from(std::iter::once(OsString::from("run")).chain(first.to_args())).args;
        assert!(!again.detach, "the supervisor runs in the foreground");
        let without_detach = RunArgs {
            detach: false,
            ..first
        };
        assert_eq!(format!("{without_detach:?}"), format!("{again:?}"));
    }
}
