//! `hoist check`: verify the store (every blob's digest, every reference, the build cache index), like `git fsck`.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use hoist_oci::{CheckOptions, units};

use super::images::{emit, fail, open_store};

/// Verify the store: re-hash every blob, follow every reference to its manifest, config and layers, and read every
/// build cache entry. Exits 1 when something is wrong.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Skip re-hashing blob contents: check names, sizes, the reference graph and the cache index only.
    #[arg(long)]
    quick: bool,
}

pub(crate) fn run(root: Option<&Path>, args: &CheckArgs) -> ExitCode {
    let store = match open_store(root) {
        Ok(store) => store,
        Err(error) => return fail(&error),
    };
    let options = CheckOptions {
        verify_content: !args.quick,
    };
    let report = match store.check(&options) {
        Ok(report) => report,
        Err(error) => return fail(&error),
    };
    let cache = match hoist_engine::check_cache(&store) {
        Ok(cache) => cache,
        Err(error) => return fail(&error),
    };
    let mut out = String::new();
    for problem in &report.problems {
        out.push_str(&format!("error: {problem}\n"));
    }
    for key in &cache.broken {
        out.push_str(&format!(
            "error: build cache entry {key} has no readable result\n"
        ));
    }
    let verified = if args.quick {
        "not re-hashed".to_owned()
    } else {
        format!("{} re-hashed", units::human_size(report.verified_bytes))
    };
    out.push_str(&format!(
        "{} blobs ({verified}), {} references, {} build cache entries ({} stale), {} leftovers of interrupted writes\n",
        report.blobs, report.references, cache.entries, cache.stale, report.leftovers
    ));
    let problems = report.problems.len() + cache.broken.len();
    if problems == 0 {
        out.push_str("store ok\n");
        emit(&out)
    } else {
        out.push_str(&format!("store damaged: {problems} problems\n"));
        let _ = emit(&out);
        ExitCode::FAILURE
    }
}
