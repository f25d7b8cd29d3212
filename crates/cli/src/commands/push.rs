//! `hoist push`: upload an image from the store to a registry, like `docker push`.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use hoist_registry::{ImageReference, PushOptions, Reporter};

use super::images::{emit, fail, open_store};
use super::pull::{LineReporter, RegistryArgs, runtime};

/// Upload an image to a registry.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// The image to push: a store reference (`NAME[:TAG]`), pushed to the registry its name names.
    #[arg(value_name = "NAME[:TAG]")]
    image: String,

    /// Push to these references instead (`REGISTRY/NAME[:TAG]`); may be repeated. The image's blobs are uploaded
    /// once per repository.
    #[arg(short, long = "tag", value_name = "REGISTRY/NAME[:TAG]")]
    tags: Vec<String>,

    /// Suppress progress output.
    #[arg(short, long)]
    quiet: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) fn run(root: Option<&Path>, args: &PushArgs) -> ExitCode {
    let targets: Result<Vec<ImageReference>, _> = if args.tags.is_empty() {
        vec![args.image.parse()].into_iter().collect()
    } else {
        args.tags.iter().map(|t| t.parse()).collect()
    };
    let targets = match targets {
        Ok(targets) => targets,
        Err(error) => return fail(&error),
    };
    // The store keeps Docker's short names (`golang:1.24`), so look the image up by that form.
    let source = match args.image.parse::<ImageReference>() {
        Ok(reference) if reference.digest().is_none() => reference.familiar(),
        _ => args.image.clone(),
    };
    let store = match open_store(root) {
        Ok(store) => Arc::new(store),
        Err(error) => return fail(&error),
    };
    let client = match args.registry.client() {
        Ok(client) => client,
        Err(error) => return fail(&error),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error),
    };
    if !args.quiet {
        for target in &targets {
            let _ = writeln!(
                io::stderr().lock(),
                "The push refers to repository [{}]",
                target.name()
            );
        }
    }
    let reporter: Arc<dyn Reporter> = Arc::new(LineReporter::pushing(args.quiet));
    let pushed =
        runtime.block_on(client.push(store, &source, &targets, &PushOptions::default(), reporter));
    match pushed {
        Ok(pushed) => {
            let mut out = String::new();
            for reference in &pushed.references {
                out.push_str(&format!("{reference}@{}\n", pushed.digest));
            }
            emit(&out)
        }
        Err(error) => fail(&error),
    }
}
