//! `hoist __supervise ID` (hidden): the process that holds a detached container. `hoist run -d` records the
//! container and starts this in a process group of its own; it takes the container's supervisor lock, parses the
//! recorded `run` arguments again, runs the container with its output going to the container's log, records its
//! exit, and ends with it. `docs/sandbox.md` explains the design.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Parser};
use hoist_sandbox::{ContainerStore, LogWriter};

use super::images::open_store;
use super::run::{Failure, Output, RunArgs, run_recorded};

/// Hold a detached container (started by `hoist run -d`).
#[derive(Debug, Args)]
pub(crate) struct SuperviseArgs {
    /// The container's ID.
    #[arg(value_name = "ID")]
    id: String,
}

/// The recorded `hoist run` arguments.
#[derive(Debug, Parser)]
#[command(name = "run")]
struct RunLine {
    #[command(flatten)]
    args: RunArgs,
}

pub(crate) fn run(root: Option<&Path>, args: &SuperviseArgs) -> ExitCode {
    supervise(root, &args.id).unwrap_or_else(Failure::exit)
}

fn supervise(root: Option<&Path>, id: &str) -> Result<ExitCode, Failure> {
    let hoist = |error: &dyn std::error::Error| Failure::hoist(error);
    let store = open_store(root).map_err(|error| hoist(&error))?;
    let containers = ContainerStore::open(store.root()).map_err(|error| hoist(&error))?;
    let lock = containers.claim(id).map_err(|error| hoist(&error))?;
    // Known from now on, so that `rm -f` can end a supervisor still preparing the container.
    containers
        .update(id, |record| {
            record.supervisor_pid = Some(std::process::id())
        })
        .map_err(|error| hoist(&error))?;
    let record = containers.find(id).map_err(|error| hoist(&error))?;
    let line = std::iter::once("run".to_owned()).chain(record.run_args.iter().cloned());
    let parsed = RunLine::try_parse_from(line)
        .map_err(|error| hoist(&error))
        .and_then(|line| {
            LogWriter::open(&containers.log_path(id))
                .map(|log| (line, log))
                .map_err(|error| hoist(&error))
        });
    let (line, log) = match parsed {
        Ok(parsed) => parsed,
        Err(failure) => {
            let _ = containers.mark_exited(
                id,
                failure.code().into(),
                Some(failure.message().to_owned()),
            );
            return Err(failure);
        }
    };
    let result = run_recorded(&store, &containers, id, &line.args, Output::Log(&log));
    drop(lock);
    result
}
