//! `hoist load`: images from a docker-archive or OCI image layout (file, directory or stdin) into the store, like
//! `docker load`.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use hoist_archive::{LoadReport, load, load_path};

use super::images::{emit, fail, open_store};

/// Load images from a docker-archive or an OCI image layout (tar, compressed tar or directory).
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Read from this file or directory instead of stdin.
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,

    /// Print only the loaded references (or image IDs), without the "Loaded image" prefix.
    #[arg(short, long)]
    quiet: bool,
}

pub(crate) fn run(root: Option<&Path>, args: &LoadArgs) -> ExitCode {
    let store = match open_store(root) {
        Ok(store) => store,
        Err(error) => return fail(&error),
    };
    let result = match &args.input {
        Some(path) if path.as_os_str() != "-" => load_path(&store, path),
        _ => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                return fail(&io::Error::other(
                    "requested load from stdin, but stdin is empty (use -i FILE or pipe an archive)",
                ));
            }
            load(&store, stdin.lock())
        }
    };
    match result {
        Ok(report) => emit(&render(&report, args.quiet)),
        Err(error) => fail(&error),
    }
}

/// Docker's output: `Loaded image: NAME:TAG` per reference, `Loaded image ID: sha256:…` for an unnamed image.
fn render(report: &LoadReport, quiet: bool) -> String {
    let mut out = String::new();
    for image in &report.images {
        if image.references.is_empty() {
            if !quiet {
                out.push_str("Loaded image ID: ");
            }
            out.push_str(&image.id.to_string());
            out.push('\n');
        }
        for reference in &image.references {
            if !quiet {
                out.push_str("Loaded image: ");
            }
            out.push_str(&reference.to_string());
            out.push('\n');
        }
    }
    out
}
