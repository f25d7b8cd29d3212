//! `hoist tag SOURCE TARGET`: point a new reference at an existing image, like `docker tag`.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use hoist_oci::Reference;

use super::images::{fail, open_store, parse_reference};

/// Create a reference TARGET that refers to the image SOURCE.
#[derive(Debug, Args)]
pub(crate) struct TagArgs {
    /// An existing image: reference, image ID or ID prefix.
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    source: String,

    /// The new reference (`name[:tag]`, tag defaults to `latest`).
    #[arg(value_name = "TARGET_IMAGE[:TAG]", value_parser = parse_reference)]
    target: Reference,
}

pub(crate) fn run(root: Option<&Path>, args: &TagArgs) -> ExitCode {
    match open_store(root).and_then(|store| store.tag_existing(&args.source, &args.target)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}
