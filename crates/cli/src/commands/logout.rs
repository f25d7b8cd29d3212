//! `hoist logout`: remove stored credentials for a registry, like `docker logout`.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::images::{emit, fail};
use super::login::server_host;
use super::pull::RegistryArgs;

/// Log out from a registry.
#[derive(Debug, Args)]
pub(crate) struct LogoutArgs {
    /// The registry (`HOST[:PORT]`); Docker Hub when omitted.
    #[arg(value_name = "SERVER")]
    server: Option<String>,

    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) fn run(_root: Option<&Path>, args: &LogoutArgs) -> ExitCode {
    let host = server_host(args.server.as_deref());
    let client = match args.registry.client() {
        Ok(client) => client,
        Err(error) => return fail(&error),
    };
    match client.docker_config().erase(&host) {
        Ok(true) => emit(&format!("Removing login credentials for {host}\n")),
        Ok(false) => emit(&format!("Not logged in to {host}\n")),
        Err(error) => fail(&error),
    }
}
