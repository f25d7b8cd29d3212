//! `hoist ps`: lists containers recorded by `hoist run -d` (or `--name`) in `docker ps`'s columns.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::Args;
use hoist_sandbox::ContainerStore;
use hoist_sandbox::control;

use super::images::{emit, fail, open_store, table};

/// List containers.
#[derive(Debug, Args)]
pub(crate) struct PsArgs {
    /// Show all containers (only running ones by default).
    #[arg(short, long)]
    all: bool,

    /// Only display container IDs.
    #[arg(short, long)]
    quiet: bool,
}

pub(crate) fn run(root: Option<&Path>, args: &PsArgs) -> ExitCode {
    let records = match open_store(root).map(|store| ContainerStore::open(store.root())) {
        Ok(Ok(containers)) => control::list(&containers, args.all),
        Ok(Err(error)) => return fail(&error),
        Err(error) => return fail(&error),
    };
    let records = match records {
        Ok(records) => records,
        Err(error) => return fail(&error),
    };
    let shown = records.iter();
    if args.quiet {
        let ids: String = shown
            .map(|record| format!("{}\n", record.short_id()))
            .collect();
        return emit(&ids);
    }
    let now = SystemTime::now();
    let mut rows = vec![
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    rows.extend(shown.map(|record| {
        vec![
            record.short_id().to_owned(),
            record.image.clone(),
            record.command_column(),
            record.created_column(now),
            record.status_column(now),
            record.ports_column(),
            record.name.clone(),
        ]
    }));
    emit(&table(&rows))
}
