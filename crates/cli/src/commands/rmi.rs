//! `hoist rmi IMAGE…`: remove references, like `docker rmi`.
//!
//! Removing a reference never deletes blobs: when an image loses its last reference it disappears from
//! `hoist images` (reported as `Deleted:`), and `hoist prune` frees its blobs. Removing by image ID removes all its
//! references, and asks for `--force` when they span several repositories, as Docker does.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::images::{emit, error_chain, open_store};

/// Remove one or more images (their references; `hoist prune` frees the space).
#[derive(Debug, Args)]
pub(crate) struct RmiArgs {
    /// Images to remove: references, image IDs or ID prefixes.
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<String>,

    /// Remove every reference of an image given by ID, even across repositories.
    #[arg(short, long)]
    force: bool,
}

pub(crate) fn run(root: Option<&Path>, args: &RmiArgs) -> ExitCode {
    let store = match open_store(root) {
        Ok(store) => store,
        Err(error) => return super::images::fail(&error),
    };
    let mut out = String::new();
    let mut errors = String::new();
    // Like docker: go on with the other images after a failure, and fail at the end.
    for image in &args.images {
        match store.remove_image(image, args.force) {
            Ok(removal) => {
                for reference in removal.untagged {
                    out.push_str(&format!("Untagged: {reference}\n"));
                }
                if let Some(id) = removal.deleted {
                    out.push_str(&format!("Deleted: {id}\n"));
                }
            }
            Err(error) => errors.push_str(&format!("error: {}\n", error_chain(&error))),
        }
    }
    let code = emit(&out);
    if errors.is_empty() {
        return code;
    }
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), errors.as_bytes());
    ExitCode::FAILURE
}
