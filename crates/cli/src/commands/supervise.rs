//! `hoist __supervise ID` (hidden): the process that holds a detached container. `hoist run -d` records the
//! container and starts this in a process group of its own; `hoist_sandbox::launch::supervise` takes the
//! container's supervisor lock, reads its recorded request, runs it with its output going to the container's log,
//! records its exit, and ends with it. `docs/sandbox.md` explains the design.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use hoist_sandbox::launch;

use super::images::open_store;
use super::run::{StderrReporter, exit_with, hoist_failed, launch_failed};

/// Hold a detached container (started by `hoist run -d`).
#[derive(Debug, Args)]
pub(crate) struct SuperviseArgs {
    /// The container's ID.
    #[arg(value_name = "ID")]
    id: String,
}

pub(crate) fn run(root: Option<&Path>, args: &SuperviseArgs) -> ExitCode {
    let store = match open_store(root) {
        Ok(store) => store,
        Err(error) => return hoist_failed(&error),
    };
    match launch::supervise(&store, &args.id, &StderrReporter) {
        Ok(code) => exit_with(code),
        Err(error) => launch_failed(&error),
    }
}
