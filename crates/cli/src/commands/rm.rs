//! `hoist rm`: removes containers (their record, log and writable layer), as `docker rm` does.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use hoist_sandbox::{ContainerStore, control};

use super::images::{fail, open_store};

/// Remove one or more containers.
#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// Kill and remove running containers too.
    #[arg(short, long)]
    force: bool,

    /// Containers, by name, ID or ID prefix.
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

pub(crate) fn run(root: Option<&Path>, args: &RmArgs) -> ExitCode {
    let containers = match open_store(root).map(|store| ContainerStore::open(store.root())) {
        Ok(Ok(containers)) => containers,
        Ok(Err(error)) => return fail(&error),
        Err(error) => return fail(&error),
    };
    let mut code = ExitCode::SUCCESS;
    for name in &args.containers {
        match control::remove(&containers, name, args.force) {
            Ok(()) => {
                let _ = writeln!(std::io::stdout().lock(), "{name}");
            }
            Err(error) => code = fail(&error),
        }
    }
    code
}
