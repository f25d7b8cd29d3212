//! `hoist prune`: free the space of everything no reference needs, like `docker system prune` for the store.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use hoist_oci::{PruneOptions, units};

use super::images::{emit, fail, open_store};

/// Remove unreferenced blobs, unused snapshots and build cache, and leftovers of interrupted writes.
#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Keep this much snapshot and build cache, most recently used first (e.g. `10GB`, `512MiB`; binary units,
    /// as Docker's `--keep-storage`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    keep_storage: Option<u64>,
}

fn parse_size(text: &str) -> Result<u64, String> {
    units::parse_size(text).map_err(|error| error.to_string())
}

pub(crate) fn run(root: Option<&Path>, args: &PruneArgs) -> ExitCode {
    let options = PruneOptions {
        keep_storage: args.keep_storage.unwrap_or(0),
    };
    let report = match open_store(root).and_then(|store| store.prune(&options)) {
        Ok(report) => report,
        Err(error) => return fail(&error),
    };
    let snapshots = report
        .entries
        .iter()
        .filter(|(area, _)| *area == hoist_oci::Area::Snapshots)
        .count();
    let mut out = String::new();
    for (what, count) in [
        ("Deleted unreferenced blobs", report.blobs.len()),
        ("Deleted snapshots", snapshots),
        (
            "Deleted build cache entries",
            report.entries.len() - snapshots,
        ),
        ("Deleted leftovers of interrupted writes", report.leftovers),
    ] {
        if count > 0 {
            out.push_str(&format!("{what}: {count}\n"));
        }
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        units::human_size(report.reclaimed)
    ));
    emit(&out)
}
