//! `hoist run` as library calls: a [`RunRequest`] (what `docker run`'s flags ask for, as plain data) becomes a
//! container made from an image in the store and run in the foreground ([`run`]) or detached under a supervisor
//! ([`detach`], [`supervise`]), with Docker's exit codes for what goes wrong ([`LaunchError::exit_code`]).
//!
//! The binary only parses flags into a [`RunRequest`] and prints; everything a test may want to check (the command
//! from ENTRYPOINT and CMD, the environment's order, user and home, the network a port needs, bind mounts, the
//! container's record and log, 125/126/127) happens here.
//!
//! A detached container needs a process that outlives `hoist run -d`: [`detach`] records the container, writes
//! its request next to the record (`containers-v1/<id>/request.json`), starts the supervisor command it is given
//! (the `hoist` binary re-executed as `hoist __supervise ID`) with the container's ID as last argument, and waits
//! until the command has started or failed to. The supervisor calls [`supervise`], which reads the request back
//! and runs the container with its output going to the log.
//!
//! ```no_run
//! use hoist_oci::Store;
//! use hoist_sandbox::launch::{self, RunReporter, RunRequest};
//! use hoist_sandbox::Stdio;
//!
//! struct Quiet;
//! impl RunReporter for Quiet {
//!     fn on_warning(&self, _warning: &(dyn std::error::Error + 'static)) {}
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open("/var/lib/hoist")?;
//! let request = RunRequest {
//!     command: vec!["echo".into(), "hi".into()],
//!     ..RunRequest::new("busybox:latest")
//! };
//! match launch::run(&store, &request, Stdio::default(), &Quiet) {
//!     Ok(code) => println!("exited with {code}"),
//!     Err(error) => println!("{error} (exit {})", error.exit_code()),
//! }
//! # Ok(()) }
//! ```

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hoist_oci::oci_spec::image::Config;
use hoist_oci::{Image, Store, error_chain};
use serde::{Deserialize, Serialize};

use crate::container::{BindMount, Container, Network, Stdio};
use crate::containers::{
    ContainerError, ContainerRecord, ContainerState, ContainerStore, LogStream, LogWriter,
    NewContainer,
};
use crate::error::Error;
use crate::plan::DEFAULT_PATH;
use crate::proxy::PortMapping;
use crate::run_options::{OptionError, parse_signal, parse_volume, read_env_file};
use crate::snapshot::Snapshot;
use crate::terminal::Terminal;
use crate::user::resolve_user;

/// Exit code for failures of hoist itself, before the command ran (Docker's 125).
pub const EXIT_HOIST_FAILED: u8 = 125;
/// Exit code when the command exists but cannot be executed (Docker's 126).
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// Exit code when the command does not exist (Docker's 127).
pub const EXIT_COMMAND_NOT_FOUND: u8 = 127;

/// The file beside a container's record that holds its [`RunRequest`], for its supervisor.
const REQUEST_FILE: &str = "request.json";
/// The supervisor's own standard error, beside the record.
const SUPERVISOR_LOG: &str = "supervisor.log";
/// The signal `hoist stop` sends when the image has no `STOPSIGNAL` (SIGTERM).
const DEFAULT_STOP_SIGNAL: i32 = 15;

/// Which network the container gets (`--network`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The host's network, unless ports are published: then a private network namespace the ports are proxied
    /// into.
    #[default]
    Default,
    /// A private network namespace with only a loopback interface.
    None,
    /// The host's network namespace (no ports can be published).
    Host,
}

impl NetworkMode {
    /// The `--network` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::None => "none",
            Self::Host => "host",
        }
    }
}

/// What runs the container (`--runtime`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// hoist's own runtime (`--runtime hoist`).
    #[default]
    BuiltIn,
    /// An OCI runtime binary (`runc`, `crun`, or a path) given a generated bundle.
    Oci(PathBuf),
}

/// Everything `hoist run` was asked for, as plain data: the image, the command and the flags that change the
/// container. Values that need the image or the file system (`--env-file`, `-v`) are kept as given and checked when
/// the container is made, so their errors come in the same order as Docker's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRequest {
    /// The image (reference or ID).
    pub image: String,
    /// The command and its arguments (empty: the image's CMD).
    pub command: Vec<String>,
    /// `--entrypoint`: replaces the image's ENTRYPOINT and drops its CMD (an empty string clears it).
    pub entrypoint: Option<String>,
    /// `-e KEY=VALUE`, or `-e KEY` to copy it from this process's environment.
    pub env: Vec<String>,
    /// `--env-file`: read in order, before `env`.
    pub env_files: Vec<PathBuf>,
    /// `-v HOST:CONTAINER[:ro|rw]`.
    pub volumes: Vec<String>,
    /// `-w`: the working directory (default: the image's WORKDIR, else `/`).
    pub workdir: Option<String>,
    /// `-u`: `name`, `uid`, `name:group` or `uid:gid` (default: the image's USER, else root).
    pub user: Option<String>,
    /// `--network`.
    pub network: NetworkMode,
    /// `-p`: published ports.
    #[serde(with = "port_strings")]
    pub publish: Vec<PortMapping>,
    /// `--hostname` (default: 12 random hex digits, as Docker's).
    pub hostname: Option<String>,
    /// `-i`: keep standard input attached.
    pub interactive: bool,
    /// `-t`: give the command a pseudo-terminal.
    pub tty: bool,
    /// `--runtime`.
    pub runtime: Runtime,
    /// `--stop-timeout`: how long a forwarded SIGINT/SIGTERM (or `hoist stop`) waits before SIGKILL.
    pub stop_timeout: Duration,
    /// `--name`: the container is recorded (for `ps`, `stop`, `logs`, `rm`), also in the foreground.
    pub name: Option<String>,
    /// `--rm`: remove the container's record when it exits.
    pub remove: bool,
}

impl RunRequest {
    /// A request to run `image`'s own command with every flag at its default (`--stop-timeout 10`).
    pub fn new(image: impl Into<String>) -> RunRequest {
        RunRequest {
            image: image.into(),
            command: Vec::new(),
            entrypoint: None,
            env: Vec::new(),
            env_files: Vec::new(),
            volumes: Vec::new(),
            workdir: None,
            user: None,
            network: NetworkMode::Default,
            publish: Vec::new(),
            hostname: None,
            interactive: false,
            tty: false,
            runtime: Runtime::BuiltIn,
            stop_timeout: Duration::from_secs(10),
            name: None,
            remove: false,
        }
    }

    /// The `hoist run` arguments (after `run`, without `-d`) that ask for this request, as recorded in the
    /// container's record: `--flag=value` forms, so a value starting with `-` is never taken for a flag.
    pub fn to_args(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut flag = |name: &str, value: Option<&str>| {
            out.push(match value {
                Some(value) => format!("{name}={value}"),
                None => name.to_owned(),
            });
        };
        if self.remove {
            flag("--rm", None);
        }
        if let Some(name) = &self.name {
            flag("--name", Some(name));
        }
        for entry in &self.env {
            flag("--env", Some(entry));
        }
        for file in &self.env_files {
            flag("--env-file", Some(&file.to_string_lossy()));
        }
        for volume in &self.volumes {
            flag("--volume", Some(volume));
        }
        if let Some(dir) = &self.workdir {
            flag("--workdir", Some(dir));
        }
        if let Some(user) = &self.user {
            flag("--user", Some(user));
        }
        flag("--network", Some(self.network.as_str()));
        for port in &self.publish {
            flag("--publish", Some(&port.to_string()));
        }
        if let Some(entrypoint) = &self.entrypoint {
            flag("--entrypoint", Some(entrypoint));
        }
        if let Some(hostname) = &self.hostname {
            flag("--hostname", Some(hostname));
        }
        if self.interactive {
            flag("--interactive", None);
        }
        if self.tty {
            flag("--tty", None);
        }
        let runtime = match &self.runtime {
            Runtime::BuiltIn => "hoist".into(),
            Runtime::Oci(path) => path.to_string_lossy(),
        };
        flag("--runtime", Some(&runtime));
        flag(
            "--stop-timeout",
            Some(&self.stop_timeout.as_secs().to_string()),
        );
        out.push("--".into());
        out.push(self.image.clone());
        out.extend(self.command.iter().cloned());
        out
    }
}

/// Ports as `IP:HOST:CONTAINER/PROTOCOL` strings, which parse back to the same mappings.
mod port_strings {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::proxy::PortMapping;

    pub(super) fn serialize<S: Serializer>(
        ports: &[PortMapping],
        to: S,
    ) -> Result<S::Ok, S::Error> {
        to.collect_seq(ports.iter().map(ToString::to_string))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        from: D,
    ) -> Result<Vec<PortMapping>, D::Error> {
        Vec::<String>::deserialize(from)?
            .iter()
            .map(|port| port.parse().map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Hears about problems that do not stop a container: a record or log line that could not be written. The
/// binary prints them; nothing in this module does.
pub trait RunReporter: Sync {
    /// Something went wrong beside the container, which goes on.
    fn on_warning(&self, warning: &(dyn std::error::Error + 'static));
}

/// Why `hoist run` (or a container's supervisor) failed before or while starting the command; see
/// [`exit_code`](LaunchError::exit_code) for Docker's code for each.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The image could not be read from the store.
    #[error(transparent)]
    ReadImage(hoist_oci::Error),
    /// The container records could not be read or written (a name in use, a lock, the log).
    #[error(transparent)]
    Record(ContainerError),
    /// An `--env-file` could not be read or has a bad line.
    #[error(transparent)]
    EnvFile(OptionError),
    /// A `-v` is not a bind mount hoist can make.
    #[error(transparent)]
    Volume(OptionError),
    /// The image's `STOPSIGNAL` is not a signal.
    #[error(transparent)]
    StopSignal(OptionError),
    /// A `-v`'s missing host directory could not be created.
    #[error("create {}", path.display())]
    CreateVolume {
        /// The host path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The container's writable layer could not be made from the image's layers.
    #[error(transparent)]
    Snapshot(Error),
    /// The container could not be made from the image and the request (no command, unknown user, ports with
    /// `--network host`).
    #[error(transparent)]
    Prepare(Error),
    /// The pseudo-terminal for `-t` could not be opened or attached.
    #[error(transparent)]
    Terminal(Error),
    /// The command's standard streams could not be made (`/dev/null`, pipes).
    #[error("failed to {action}")]
    Stdio {
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The directory for the container's writable layer could not be created.
    #[error("failed to create {}", path.display())]
    Scratch {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The container failed to start or to run: 127 when its command does not exist, 126 when it cannot be
    /// executed.
    #[error(transparent)]
    Start(Error),
    /// `-d` with an external OCI runtime.
    #[error("-d needs the built-in runtime, not {}", runtime.display())]
    DetachNeedsBuiltIn {
        /// The runtime asked for.
        runtime: PathBuf,
    },
    /// The container's request could not be written beside its record.
    #[error("failed to write {}", path.display())]
    WriteRequest {
        /// The request file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The container's request could not be read back by its supervisor.
    #[error("failed to read {}", path.display())]
    ReadRequest {
        /// The request file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The supervisor's log could not be created.
    #[error("failed to create {}", path.display())]
    SupervisorLog {
        /// The log file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The supervisor could not be started.
    #[error("failed to start the container's supervisor {}", program.display())]
    SpawnSupervisor {
        /// The supervisor's program.
        program: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The supervisor ended before the container's command started, recording nothing.
    #[error("the container's supervisor exited before the container started ({status}); see {}", log.display())]
    SupervisorExited {
        /// How it ended.
        status: std::process::ExitStatus,
        /// Its standard error.
        log: PathBuf,
    },
    /// A detached container could not start; its supervisor recorded why and with which exit code.
    #[error("{message}")]
    Recorded {
        /// Docker's exit code for the failure.
        exit_code: u8,
        /// The recorded message (the error and its causes).
        message: String,
    },
}

impl LaunchError {
    /// Docker's exit code for this failure: 127 when the command does not exist, 126 when it cannot be executed,
    /// what the supervisor recorded for a detached container, 125 for every failure of hoist itself.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Start(Error::Exec { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                EXIT_COMMAND_NOT_FOUND
            }
            Self::Start(Error::Exec { .. }) => EXIT_CANNOT_EXECUTE,
            Self::Recorded { exit_code, .. } => *exit_code,
            _ => EXIT_HOIST_FAILED,
        }
    }
}

/// Runs `request` in the foreground to its end and returns the command's exit code (128 + the signal when it was
/// killed).
///
/// `stdio` replaces hoist's own standard output and error (`None`: inherited); standard input is `stdio.stdin`
/// only with `-i` (else `/dev/null`, as with Docker). With `-t` the command gets a new pseudo-terminal copied to
/// and from hoist's own terminal instead. A foreground run without a name keeps its writable layer under
/// `$TMPDIR/hoist-run/` and removes it at the end; with [`RunRequest::name`] the container is recorded (the
/// caller holds its supervisor lock, so `ps` shows it running) and its output is copied both to `stdio` and to
/// its log (not with `-t`).
pub fn run(
    store: &Store,
    request: &RunRequest,
    stdio: Stdio,
    reporter: &dyn RunReporter,
) -> Result<i32, LaunchError> {
    let image = store
        .read_image(&request.image)
        .map_err(LaunchError::ReadImage)?;
    if request.name.is_none() {
        let scratch = std::env::temp_dir().join("hoist-run");
        Snapshot::remove_stale(&scratch);
        return run_container(
            store,
            &image,
            request,
            &scratch,
            Output::Inherit(stdio),
            &mut |_| {},
            reporter,
        );
    }
    let (containers, record) = register(store, &image, request)?;
    let lock = containers.claim(&record.id).map_err(LaunchError::Record)?;
    let log = LogWriter::open(&containers.log_path(&record.id)).map_err(LaunchError::Record)?;
    // With -t the terminal is copied as usual and nothing is logged.
    let output = if request.tty {
        Output::Inherit(stdio)
    } else {
        Output::Tee(&log, stdio)
    };
    let result = run_recorded(store, &containers, &record.id, request, output, reporter);
    drop(lock);
    if result.is_err() && request.remove {
        // A --rm container that could not start (one that ran is removed on exit). Its start error was just
        // returned; a failure to remove it too would add nothing the caller can act on.
        let _ = containers.remove(&record);
    }
    result
}

/// `hoist run -d`: checks what can be checked here (so that the error comes from this call and no container is
/// recorded), records the container, starts `supervisor` with the container's ID as its last argument (in a
/// process group of its own, standard input and output on `/dev/null`, standard error in `supervisor.log`), waits
/// until the command has started (or failed to, with the recorded exit code), and returns the container's ID.
///
/// `supervisor` must end up calling [`supervise`] with that ID and the same store.
pub fn detach(
    store: &Store,
    request: &RunRequest,
    mut supervisor: Command,
) -> Result<String, LaunchError> {
    store
        .read_image(&request.image)
        .map_err(LaunchError::ReadImage)
        .and_then(|image| {
            if let Runtime::Oci(runtime) = &request.runtime {
                return Err(LaunchError::DetachNeedsBuiltIn {
                    runtime: runtime.clone(),
                });
            }
            for file in &request.env_files {
                read_env_file(file).map_err(LaunchError::EnvFile)?;
            }
            bind_mounts(&request.volumes)?;
            Ok(image)
        })
        .and_then(|image| {
            let (containers, record) = register(store, &image, request)?;
            start_supervisor(&containers, &record, &mut supervisor)
        })
}

/// Starts the supervisor of a recorded container and waits for its command to start.
fn start_supervisor(
    containers: &ContainerStore,
    record: &ContainerRecord,
    supervisor: &mut Command,
) -> Result<String, LaunchError> {
    let log_path = containers.container_dir(&record.id).join(SUPERVISOR_LOG);
    let log = File::create(&log_path).map_err(|source| LaunchError::SupervisorLog {
        path: log_path.clone(),
        source,
    })?;
    // A process group of its own: a Ctrl-C or hang-up at this terminal does not reach the supervisor, which
    // outlives this process.
    let mut child = supervisor
        .process_group(0)
        .arg(&record.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|source| LaunchError::SpawnSupervisor {
            program: PathBuf::from(supervisor.get_program()),
            source,
        })?;
    loop {
        match containers.find(&record.id) {
            // A --rm container that already ran to its end.
            Err(ContainerError::NotFound { .. }) => break,
            Err(error) => return Err(LaunchError::Record(error)),
            Ok(current) => {
                if let Some(message) = current
                    .error
                    .clone()
                    .filter(|_| current.started_at.is_none())
                {
                    if record.auto_remove {
                        // The start error is what matters; the record of a --rm container goes either way.
                        let _ = containers.remove(&current);
                    }
                    let code = current.exit_code.and_then(|code| u8::try_from(code).ok());
                    return Err(LaunchError::Recorded {
                        exit_code: code.unwrap_or(EXIT_HOIST_FAILED),
                        message,
                    });
                }
                if current.state != ContainerState::Created {
                    break;
                }
            }
        }
        if let Ok(Some(status)) = child.try_wait()
            && containers
                .find(&record.id)
                .is_ok_and(|current| current.state == ContainerState::Created)
        {
            return Err(LaunchError::SupervisorExited {
                status,
                log: log_path,
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(record.id.clone())
}

/// What a detached container's supervisor does: takes the container's supervisor lock, reads its request, runs
/// it with its output going to its log, records its exit (or why it could not start), and returns the command's
/// exit code. The record is `running` from the moment the command has been executed.
pub fn supervise(store: &Store, id: &str, reporter: &dyn RunReporter) -> Result<i32, LaunchError> {
    let containers = ContainerStore::open(store.root()).map_err(LaunchError::Record)?;
    let lock = containers.claim(id).map_err(LaunchError::Record)?;
    // Known from now on, so that `rm -f` can end a supervisor still preparing the container.
    containers
        .update(id, |record| {
            record.supervisor_pid = Some(std::process::id())
        })
        .map_err(LaunchError::Record)?;
    let prepared = read_request(&containers, id).and_then(|request| {
        LogWriter::open(&containers.log_path(id))
            .map(|log| (request, log))
            .map_err(LaunchError::Record)
    });
    let (request, log) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            record_failure(&containers, id, &error, reporter);
            return Err(error);
        }
    };
    let result = run_recorded(
        store,
        &containers,
        id,
        &request,
        Output::Log(&log),
        reporter,
    );
    drop(lock);
    result
}

/// Records that the container could not start, with the failure's exit code and message.
fn record_failure(
    containers: &ContainerStore,
    id: &str,
    error: &LaunchError,
    reporter: &dyn RunReporter,
) {
    let recorded = containers.mark_exited(id, error.exit_code().into(), Some(error_chain(error)));
    if let Err(warning) = recorded {
        reporter.on_warning(&warning);
    }
}

fn read_request(containers: &ContainerStore, id: &str) -> Result<RunRequest, LaunchError> {
    let path = containers.container_dir(id).join(REQUEST_FILE);
    let read_error = |source| LaunchError::ReadRequest {
        path: path.clone(),
        source,
    };
    let text = fs::read(&path).map_err(read_error)?;
    serde_json::from_slice(&text).map_err(|error| read_error(error.into()))
}

/// Where the command's output goes.
enum Output<'a> {
    /// The caller's streams (`None`: hoist's own), and hoist's terminal with `-t`.
    Inherit(Stdio),
    /// A detached container's log.
    Log(&'a LogWriter),
    /// A named foreground container's log and the caller's standard output and error (`None`: hoist's);
    /// standard input as with `Inherit`.
    Tee(&'a LogWriter, Stdio),
}

/// Where a copier thread writes what it reads from the command.
enum Sink<'a> {
    /// The log only.
    Log(&'a LogWriter),
    /// The log, and a copy to a stream as it comes.
    Mirrored(&'a LogWriter, Box<dyn Write + Send>),
}

/// Runs a recorded container to its end (the caller holds its supervisor lock): `running` once started, then its
/// exit code, or the reason it could not start, in its record.
fn run_recorded(
    store: &Store,
    containers: &ContainerStore,
    id: &str,
    request: &RunRequest,
    output: Output<'_>,
    reporter: &dyn RunReporter,
) -> Result<i32, LaunchError> {
    let scratch = containers.scratch_dir(id);
    let image = match store.read_image(&request.image) {
        Ok(image) => image,
        Err(error) => {
            let error = LaunchError::ReadImage(error);
            record_failure(containers, id, &error, reporter);
            return Err(error);
        }
    };
    let mut started = |pid| {
        if let Err(warning) = containers.mark_running(id, pid) {
            reporter.on_warning(&warning);
        }
    };
    let result = fs::create_dir_all(&scratch)
        .map_err(|source| LaunchError::Scratch {
            path: scratch.clone(),
            source,
        })
        .and_then(|()| {
            run_container(
                store,
                &image,
                request,
                &scratch,
                output,
                &mut started,
                reporter,
            )
        });
    match &result {
        Ok(code) => {
            if let Err(warning) = containers.mark_exited(id, *code, None) {
                reporter.on_warning(&warning);
            }
        }
        Err(error) => record_failure(containers, id, error, reporter),
    }
    result
}

/// Makes the container's writable layer under `scratch`, runs the container with `output`, and returns its exit
/// code. `started` gets the host pid of its PID 1.
fn run_container(
    store: &Store,
    image: &Image,
    request: &RunRequest,
    scratch: &Path,
    output: Output<'_>,
    started: &mut dyn FnMut(u32),
    reporter: &dyn RunReporter,
) -> Result<i32, LaunchError> {
    let config = image.config.config().clone().unwrap_or_default();
    let snapshot = Snapshot::new(store, image, scratch).map_err(LaunchError::Snapshot)?;
    let container = container_for(request, &config, &snapshot)?;
    let mut attached = None;
    let mut copiers: Vec<(LogStream, File, Sink<'_>)> = Vec::new();
    // Keeps standard input open (and empty) for a detached `-i` command, as Docker's open stdin does.
    let mut held_stdin = None;
    let stdio = match output {
        Output::Inherit(_) if request.tty => {
            let terminal = Terminal::open().map_err(LaunchError::Terminal)?;
            let stdio = terminal.stdio().map_err(LaunchError::Terminal)?;
            attached = Some(
                terminal
                    .attach(request.interactive)
                    .map_err(LaunchError::Terminal)?,
            );
            stdio
        }
        Output::Inherit(given) if request.interactive => given,
        Output::Inherit(given) => Stdio {
            stdin: Some(dev_null()?),
            ..given
        },
        Output::Log(log) if request.tty => {
            // The terminal's output, CR LF line ends included, is the log's stdout (as Docker's with -t); the
            // controlling side, held by the copier, keeps the terminal open for the command's input.
            let terminal = Terminal::open().map_err(LaunchError::Terminal)?;
            let stdio = terminal.stdio().map_err(LaunchError::Terminal)?;
            copiers.push((
                LogStream::Stdout,
                File::from(terminal.into_controller()),
                Sink::Log(log),
            ));
            stdio
        }
        Output::Log(log) => {
            let stdin = if request.interactive {
                let (read, write) = pipe()?;
                held_stdin = Some(write);
                read
            } else {
                dev_null()?
            };
            let (out_read, out_write) = pipe()?;
            let (err_read, err_write) = pipe()?;
            copiers.push((LogStream::Stdout, File::from(out_read), Sink::Log(log)));
            copiers.push((LogStream::Stderr, File::from(err_read), Sink::Log(log)));
            Stdio {
                stdin: Some(stdin),
                stdout: Some(out_write),
                stderr: Some(err_write),
            }
        }
        Output::Tee(log, given) => {
            let stdin = if request.interactive {
                given.stdin
            } else {
                Some(dev_null()?)
            };
            let mirror = |fd: Option<OwnedFd>, own: Box<dyn Write + Send>| match fd {
                Some(fd) => Box::new(File::from(fd)) as Box<dyn Write + Send>,
                None => own,
            };
            let (out_read, out_write) = pipe()?;
            let (err_read, err_write) = pipe()?;
            copiers.push((
                LogStream::Stdout,
                File::from(out_read),
                Sink::Mirrored(log, mirror(given.stdout, Box::new(io::stdout()))),
            ));
            copiers.push((
                LogStream::Stderr,
                File::from(err_read),
                Sink::Mirrored(log, mirror(given.stderr, Box::new(io::stderr()))),
            ));
            Stdio {
                stdin,
                stdout: Some(out_write),
                stderr: Some(err_write),
            }
        }
    };
    let status = std::thread::scope(|scope| {
        for (stream, read, sink) in copiers.drain(..) {
            scope.spawn(move || {
                let copied = match sink {
                    Sink::Log(log) => log.copy(stream, read),
                    Sink::Mirrored(log, mirror) => log.copy_mirrored(stream, read, mirror),
                };
                if let Err(warning) = copied {
                    reporter.on_warning(&warning);
                }
            });
        }
        match &request.runtime {
            Runtime::BuiltIn => container.run_and_notify(stdio, started),
            Runtime::Oci(runtime) => container.run_with_runtime(runtime, stdio),
        }
    });
    drop(held_stdin);
    if let Some(attached) = attached {
        attached.finish();
    }
    drop(snapshot);
    status
        .map(|status| status.code())
        .map_err(LaunchError::Start)
}

fn dev_null() -> Result<OwnedFd, LaunchError> {
    File::open("/dev/null")
        .map(Into::into)
        .map_err(|source| LaunchError::Stdio {
            action: "open /dev/null",
            source,
        })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), LaunchError> {
    io::pipe()
        .map(|(read, write)| (read.into(), write.into()))
        .map_err(|source| LaunchError::Stdio {
            action: "create a pipe",
            source,
        })
}

/// Records a new container for `request` (its name checked, its command and stop signal from the image) and
/// writes the request beside the record.
fn register(
    store: &Store,
    image: &Image,
    request: &RunRequest,
) -> Result<(ContainerStore, ContainerRecord), LaunchError> {
    let containers = ContainerStore::open(store.root()).map_err(LaunchError::Record)?;
    let config = image.config.config().clone().unwrap_or_default();
    let stop_signal = match config.stop_signal() {
        Some(signal) => parse_signal(signal).map_err(LaunchError::StopSignal)?,
        None => DEFAULT_STOP_SIGNAL,
    };
    let command = command_for(request, &config).map_err(LaunchError::Prepare)?;
    let record = containers
        .create(NewContainer {
            name: request.name.clone(),
            image: request.image.clone(),
            image_id: image.id.to_string(),
            command,
            ports: request.publish.clone(),
            stop_signal,
            stop_timeout: request.stop_timeout.as_secs(),
            auto_remove: request.remove,
            run_args: request.to_args(),
        })
        .map_err(LaunchError::Record)?;
    let path = containers.container_dir(&record.id).join(REQUEST_FILE);
    let json = serde_json::to_vec_pretty(request).expect("a run request always serializes");
    if let Err(source) = fs::write(&path, json) {
        // Without its request the container could never be run: it is not kept.
        let _ = containers.remove(&record);
        return Err(LaunchError::WriteRequest { path, source });
    }
    Ok((containers, record))
}

/// The command `docker run` would run: the entrypoint (or `--entrypoint`) and the arguments (or the image's CMD).
fn command_for(request: &RunRequest, config: &Config) -> Result<Vec<String>, Error> {
    let entrypoint: Vec<String> = match &request.entrypoint {
        Some(entrypoint) if entrypoint.is_empty() => Vec::new(),
        Some(entrypoint) => vec![entrypoint.clone()],
        None => config.entrypoint().clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = if !request.command.is_empty() {
        request.command.clone()
    } else if request.entrypoint.is_some() {
        // Docker drops the image's CMD when --entrypoint is given.
        Vec::new()
    } else {
        config.cmd().clone().unwrap_or_default()
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(Error::NoCommand);
    }
    Ok(argv)
}

/// The container `docker run` would create: entrypoint + cmd, environment, working directory and user from the
/// image config, overridden by the request.
fn container_for(
    request: &RunRequest,
    config: &Config,
    snapshot: &Snapshot,
) -> Result<Container, LaunchError> {
    let argv = command_for(request, config).map_err(LaunchError::Prepare)?;

    let user_spec = request
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
    .map_err(LaunchError::Prepare)?;
    let hostname = request.hostname.clone().unwrap_or_else(random_hostname);

    let mut env: Vec<String> = config.env().clone().unwrap_or_default();
    let mut set = |entry: String| {
        let key = entry.split('=').next().unwrap_or_default().to_owned();
        env.retain(|existing| existing.split('=').next() != Some(key.as_str()));
        env.push(entry);
    };
    // As Docker: the files' variables first, then -e, each overriding the image's and the ones before.
    for file in &request.env_files {
        for entry in read_env_file(file).map_err(LaunchError::EnvFile)? {
            set(entry);
        }
    }
    for entry in &request.env {
        if entry.contains('=') {
            set(entry.clone());
        } else if let Ok(value) = std::env::var(entry) {
            set(format!("{entry}={value}"));
        }
    }
    let has = |env: &[String], key: &str| env.iter().any(|e| e.starts_with(&format!("{key}=")));
    if !has(&env, "PATH") {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&env, "HOSTNAME") {
        env.insert(1, format!("HOSTNAME={hostname}"));
    }
    resolved.set_home_if_unset(&mut env);

    let network = match (request.network, request.publish.is_empty()) {
        (NetworkMode::Host, false) => {
            return Err(LaunchError::Prepare(Error::InvalidPort {
                spec: format!(
                    "{} (ports cannot be published with --network host)",
                    request.publish[0]
                ),
            }));
        }
        (NetworkMode::Host, true) | (NetworkMode::Default, true) => Network::Host,
        (NetworkMode::None, _) | (NetworkMode::Default, false) => Network::None,
    };
    let cwd = request
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
        mounts: bind_mounts(&request.volumes)?,
        ports: request.publish.clone(),
        stop_timeout: request.stop_timeout,
        terminal: request.tty,
        ..Container::default()
    })
}

/// The `-v` mounts, with missing host paths created as directories (as Docker does for a bind).
fn bind_mounts(volumes: &[String]) -> Result<Vec<BindMount>, LaunchError> {
    let mounts = volumes
        .iter()
        .map(|spec| parse_volume(spec))
        .collect::<Result<Vec<_>, _>>()
        .map_err(LaunchError::Volume)?;
    for mount in &mounts {
        if !mount.source.exists() {
            fs::create_dir_all(&mount.source).map_err(|source| LaunchError::CreateVolume {
                path: mount.source.clone(),
                source,
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
    use hoist_oci::oci_spec::image::ConfigBuilder;

    use super::*;

    fn config(entrypoint: &[&str], cmd: &[&str]) -> Config {
        let strings = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        ConfigBuilder::default()
            .entrypoint(strings(entrypoint))
            .cmd(strings(cmd))
            .build()
            .expect("a config with only entrypoint and cmd builds")
    }

    #[test]
    fn the_command_is_entrypoint_then_cmd_with_dockers_overrides() {
        let image = config(&["/entry", "-x"], &["default", "args"]);
        let request = RunRequest::new("img");
        assert_eq!(
            command_for(&request, &image).unwrap(),
            ["/entry", "-x", "default", "args"]
        );
        let arguments = RunRequest {
            command: vec!["mine".into()],
            ..RunRequest::new("img")
        };
        assert_eq!(
            command_for(&arguments, &image).unwrap(),
            ["/entry", "-x", "mine"]
        );
        // --entrypoint drops the image's CMD; an empty one clears the entrypoint.
        let entrypoint = RunRequest {
            entrypoint: Some("/other".into()),
            ..RunRequest::new("img")
        };
        assert_eq!(command_for(&entrypoint, &image).unwrap(), ["/other"]);
        let cleared = RunRequest {
            entrypoint: Some(String::new()),
            command: vec!["sh".into()],
            ..RunRequest::new("img")
        };
        assert_eq!(command_for(&cleared, &image).unwrap(), ["sh"]);
        let nothing = RunRequest {
            entrypoint: Some(String::new()),
            ..RunRequest::new("img")
        };
        assert!(matches!(
            command_for(&nothing, &image),
            Err(Error::NoCommand)
        ));
    }

    #[test]
    fn start_failures_get_dockers_exit_codes() {
        let exec = |kind: io::ErrorKind| {
            LaunchError::Start(Error::Exec {
                program: "x".into(),
                source: io::Error::from(kind),
            })
        };
        assert_eq!(exec(io::ErrorKind::NotFound).exit_code(), 127);
        assert_eq!(exec(io::ErrorKind::PermissionDenied).exit_code(), 126);
        assert_eq!(LaunchError::Prepare(Error::NoCommand).exit_code(), 125);
        let recorded = LaunchError::Recorded {
            exit_code: 127,
            message: "failed to execute".into(),
        };
        assert_eq!(recorded.exit_code(), 127);
    }

    #[test]
    fn a_request_survives_its_json_form() {
        let request = RunRequest {
            command: vec!["sh".into(), "-c".into(), "--not-a-flag".into()],
            publish: vec![
                "127.0.0.1:8080:80".parse().unwrap(),
                "53:53/udp".parse().unwrap(),
            ],
            runtime: Runtime::Oci("/usr/bin/runc".into()),
            network: NetworkMode::None,
            name: Some("web".into()),
            ..RunRequest::new("bb:1")
        };
        let json = serde_json::to_string(&request).unwrap();
        assert!(json.contains("\"127.0.0.1:8080:80/tcp\""), "{json}");
        assert_eq!(serde_json::from_str::<RunRequest>(&json).unwrap(), request);
    }
}
