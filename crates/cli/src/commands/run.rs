//! `hoist run`: runs a command in a new container from an image, like `docker run`, in hoist's own sandbox (no
//! daemon, no external runtime). The flags become a [`RunRequest`]; `hoist_sandbox::launch` does the rest: in the
//! foreground the container's writable layer is a scratch overlay upper directory, deleted when the command ends;
//! with `-d` the container runs under a supervisor (`hoist __supervise`, see `supervise.rs`) and is recorded in the
//! store's containers directory for `ps`, `stop`, `logs` and `rm`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use hoist_sandbox::launch::{
    self, EXIT_HOIST_FAILED, LaunchError, RunReporter, RunRequest, Runtime,
};
use hoist_sandbox::{PortMapping, Stdio};

use super::images::{emit, error_chain, open_store};

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
    #[arg(long, value_name = "RUNTIME", default_value = "hoist", value_parser = parse_runtime)]
    runtime: Runtime,

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

fn parse_runtime(text: &str) -> Result<Runtime, String> {
    Ok(match text {
        "hoist" => Runtime::BuiltIn,
        path => Runtime::Oci(PathBuf::from(path)),
    })
}

impl RunArgs {
    /// The request these flags make (`-d` aside: it chooses [`launch::detach`] over [`launch::run`]).
    pub(crate) fn request(&self) -> RunRequest {
        RunRequest {
            image: self.image.clone(),
            command: self.command.clone(),
            entrypoint: self.entrypoint.clone(),
            env: self.env.clone(),
            env_files: self.env_file.clone(),
            volumes: self.volume.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            network: match self.network {
                NetworkMode::Default => launch::NetworkMode::Default,
                NetworkMode::None => launch::NetworkMode::None,
                NetworkMode::Host => launch::NetworkMode::Host,
            },
            publish: self.publish.clone(),
            hostname: self.hostname.clone(),
            interactive: self.interactive,
            tty: self.tty,
            runtime: self.runtime.clone(),
            stop_timeout: Duration::from_secs(self.stop_timeout),
            name: self.name.clone(),
            remove: self.rm,
        }
    }
}

/// Prints the warnings of a running container (a record or log line that could not be written) on stderr.
pub(crate) struct StderrReporter;

impl RunReporter for StderrReporter {
    fn on_warning(&self, warning: &(dyn std::error::Error + 'static)) {
        let _ = writeln!(io::stderr().lock(), "hoist: {}", error_chain(warning));
    }
}

/// Reports a failure of hoist itself (a store that cannot be opened) and exits with 125.
pub(crate) fn hoist_failed(error: &dyn std::error::Error) -> ExitCode {
    let _ = writeln!(io::stderr().lock(), "hoist: {}", error_chain(error));
    ExitCode::from(EXIT_HOIST_FAILED)
}

/// Reports why the container could not run and exits with Docker's code for it (125, 126, 127).
pub(crate) fn launch_failed(error: &LaunchError) -> ExitCode {
    let _ = writeln!(io::stderr().lock(), "hoist: {}", error_chain(error));
    ExitCode::from(error.exit_code())
}

/// The command's exit code as this process's (the low 8 bits, as a shell sees them).
pub(crate) fn exit_with(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))
}

pub(crate) fn run(root: Option<&Path>, args: &RunArgs) -> ExitCode {
    let store = match open_store(root) {
        Ok(store) => store,
        Err(error) => return hoist_failed(&error),
    };
    let request = args.request();
    if args.detach {
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(error) => return hoist_failed(&error),
        };
        let mut supervisor = std::process::Command::new(exe);
        supervisor
            .arg("--root")
            .arg(store.root())
            .arg("__supervise");
        return match launch::detach(&store, &request, supervisor) {
            Ok(id) => emit(&format!("{id}\n")),
            Err(error) => launch_failed(&error),
        };
    }
    match launch::run(&store, &request, Stdio::default(), &StderrReporter) {
        Ok(code) => exit_with(code),
        Err(error) => launch_failed(&error),
    }
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
        let recorded = first.request().to_args();
        let again = Line::parse_from(std::iter::once("run".to_owned()).chain(recorded)).args;
        assert!(
            !again.detach,
            "the recorded arguments run in the foreground"
        );
        assert_eq!(first.request(), again.request());
        assert_eq!(again.request().env, ["-dash=x"]);
        assert_eq!(again.request().command, ["sh", "-c", "--not-a-flag"]);
    }
}
