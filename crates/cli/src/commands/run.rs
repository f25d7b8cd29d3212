//! `hoist run`: runs a command in a new container from an image, like `docker run`, in hoist's own sandbox (no
//! daemon, no external runtime). The container's writable layer is a scratch overlay upper directory, deleted when
//! the command ends.

use std::fs::File;
use std::io;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use hoist_oci::oci_spec::image::Config;
use hoist_sandbox::{Container, Network, PortMapping, Snapshot, Stdio, Terminal, resolve_user};

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
    /// Remove the container when it exits (always the case: hoist keeps no stopped containers).
    #[arg(long)]
    rm: bool,

    /// Set an environment variable (`KEY=VALUE`, or `KEY` to copy it from hoist's environment).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,

    /// Working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,

    /// User to run as: `name`, `uid`, `name:group` or `uid:gid`.
    #[arg(short, long, value_name = "USER[:GROUP]")]
    user: Option<String>,

    /// Network mode.
    #[arg(long, value_enum, default_value = "default")]
    network: NetworkMode,

    /// Publish a container TCP port on the host: `[IP:]HOST_PORT:CONTAINER_PORT`.
    #[arg(short, long = "publish", value_name = "[IP:]HOST:CONTAINER", value_parser = parse_port)]
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
    image: String,

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

/// Reports an error of hoist itself and exits with 125.
fn hoist_failed(error: &dyn std::error::Error) -> ExitCode {
    report(error);
    ExitCode::from(EXIT_HOIST_FAILED)
}

fn report(error: &dyn std::error::Error) {
    use std::io::Write;
    let _ = writeln!(io::stderr().lock(), "hoist: {}", error_chain(error));
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
    let scratch = std::env::temp_dir().join("hoist-run");
    Snapshot::remove_stale(&scratch);
    let snapshot = match Snapshot::new(&store, &image, &scratch) {
        Ok(snapshot) => snapshot,
        Err(error) => return hoist_failed(&error),
    };
    let config = image.config.config().clone().unwrap_or_default();
    let container = match container_for(args, &config, &snapshot) {
        Ok(container) => container,
        Err(error) => return hoist_failed(&error),
    };
    let mut attached = None;
    let stdio = if args.tty {
        let terminal = match Terminal::open() {
            Ok(terminal) => terminal,
            Err(error) => return hoist_failed(&error),
        };
        let stdio = terminal.stdio();
        match (stdio, terminal.attach(args.interactive)) {
            (Ok(stdio), Ok(copying)) => {
                attached = Some(copying);
                stdio
            }
            (Err(error), _) | (_, Err(error)) => return hoist_failed(&error),
        }
    } else if args.interactive {
        Stdio::default()
    } else {
        match File::open("/dev/null") {
            Ok(file) => Stdio {
                stdin: Some(file.into()),
                ..Stdio::default()
            },
            Err(error) => return hoist_failed(&error),
        }
    };
    let status = if args.runtime == "hoist" {
        container.run(stdio)
    } else {
        container.run_with_runtime(Path::new(&args.runtime), stdio)
    };
    if let Some(attached) = attached {
        attached.finish();
    }
    drop(snapshot);
    match status {
        Ok(status) => ExitCode::from(u8::try_from(status.code() & 0xff).unwrap_or(1)),
        Err(error @ hoist_sandbox::Error::Exec { .. }) => {
            report(&error);
            let not_found = matches!(&error, hoist_sandbox::Error::Exec { source, .. }
                if source.kind() == io::ErrorKind::NotFound);
            // Docker's codes: 127 when the command does not exist, 126 when it cannot be run.
            ExitCode::from(if not_found { 127 } else { 126 })
        }
        Err(error) => hoist_failed(&error),
    }
}

/// The container `docker run` would create: entrypoint + cmd, environment, working directory and user from the
/// image config, overridden by the flags.
fn container_for(
    args: &RunArgs,
    config: &Config,
    snapshot: &Snapshot,
) -> Result<Container, hoist_sandbox::Error> {
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
    )?;
    let hostname = args.hostname.clone().unwrap_or_else(random_hostname);

    let mut env: Vec<String> = config.env().clone().unwrap_or_default();
    let mut set = |entry: String| {
        let key = entry.split('=').next().unwrap_or_default().to_owned();
        env.retain(|existing| existing.split('=').next() != Some(key.as_str()));
        env.push(entry);
    };
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
            return Err(hoist_sandbox::Error::InvalidPort {
                spec: format!(
                    "{} (ports cannot be published with --network host)",
                    args.publish[0]
                ),
            });
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
        ports: args.publish.clone(),
        stop_timeout: Duration::from_secs(args.stop_timeout),
        terminal: args.tty,
        ..Container::default()
    })
}

/// Twelve hex digits, like Docker's short container IDs, from the standard library's randomly keyed hasher.
fn random_hostname() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}
