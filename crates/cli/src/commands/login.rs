//! `hoist login`: check credentials against a registry and store them in `~/.docker/config.json` (or its
//! credential helper), like `docker login`.

use std::io::{self, BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use hoist_registry::{Credentials, DOCKER_HUB};

use super::images::{emit, fail};
use super::pull::{RegistryArgs, runtime};

/// Log in to a registry.
#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// The registry (`HOST[:PORT]`); Docker Hub when omitted.
    #[arg(value_name = "SERVER")]
    server: Option<String>,

    /// User name.
    #[arg(short, long)]
    username: Option<String>,

    /// Password (prefer --password-stdin: a password on the command line is visible to other users).
    #[arg(short, long)]
    password: Option<String>,

    /// Read the password from stdin.
    #[arg(long)]
    password_stdin: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

/// `https://host/` → `host`; Docker Hub's names → `docker.io`.
pub(crate) fn server_host(server: Option<&str>) -> String {
    let server = server.unwrap_or(DOCKER_HUB);
    let server = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = server.split('/').next().unwrap_or(server);
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_owned(),
        other => other.to_owned(),
    }
}

pub(crate) fn run(_root: Option<&Path>, args: &LoginArgs) -> ExitCode {
    let host = server_host(args.server.as_deref());
    let Some(username) = args.username.clone() else {
        return fail(&io::Error::other(
            "a user name is required: pass --username (interactive login is not supported)",
        ));
    };
    let password = match (&args.password, args.password_stdin) {
        (Some(_), true) => {
            return fail(&io::Error::other(
                "--password and --password-stdin are mutually exclusive",
            ));
        }
        (Some(password), false) => password.clone(),
        (None, true) => {
            let mut line = String::new();
            if let Err(error) = io::stdin().lock().read_line(&mut line) {
                return fail(&error);
            }
            line.trim_end_matches(['\n', '\r']).to_owned()
        }
        (None, false) => {
            return fail(&io::Error::other(
                "a password is required: pass --password-stdin (or --password)",
            ));
        }
    };
    if password.is_empty() {
        return fail(&io::Error::other("the password is empty"));
    }
    let client = match args.registry.client() {
        Ok(client) => client,
        Err(error) => return fail(&error),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error),
    };
    let credentials = Credentials { username, password };
    let endpoint = client.config().push_endpoint(&host, "");
    client.set_credentials(&endpoint.host, credentials.clone());
    if let Err(error) = runtime.block_on(client.check(&endpoint)) {
        return fail(&error);
    }
    if let Err(error) = client.docker_config().store(&host, &credentials) {
        return fail(&error);
    }
    let _ = writeln!(
        io::stderr().lock(),
        "Credentials stored in {}",
        client.docker_config().path().display()
    );
    emit("Login Succeeded\n")
}
