//! `hoist import`: a root filesystem tarball (file or stdin; plain, gzip or zstd) becomes a one-layer image, like
//! `docker import`.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use hoist_archive::{ImportOptions, import};
use hoist_oci::{ImagePlatform, Reference};

use super::images::{emit, fail, open_store, parse_reference};

/// Create an image from a root filesystem tarball.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The tarball, or `-` for stdin.
    #[arg(value_name = "FILE|-")]
    source: PathBuf,

    /// Name the image (as `docker import FILE NAME[:TAG]`).
    #[arg(value_name = "REPOSITORY[:TAG]", value_parser = parse_reference)]
    reference: Option<Reference>,

    /// Name the image; may be repeated.
    #[arg(short, long = "tag", value_name = "NAME[:TAG]", value_parser = parse_reference)]
    tags: Vec<Reference>,

    /// Apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER,
    /// VOLUME, WORKDIR); may be repeated.
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,

    /// History comment (default: "Imported from -").
    #[arg(short, long)]
    message: Option<String>,

    /// Platform recorded in the config, `os/arch[/variant]` (default: the host's).
    #[arg(long, value_parser = parse_platform)]
    platform: Option<ImagePlatform>,
}

pub(crate) fn run(root: Option<&Path>, args: &ImportArgs) -> ExitCode {
    let created = match created_time() {
        Ok(created) => created,
        Err(message) => return fail(&io::Error::other(message)),
    };
    let options = ImportOptions {
        references: args.reference.iter().chain(&args.tags).cloned().collect(),
        changes: args.changes.clone(),
        message: args.message.clone(),
        created,
        platform: args.platform.clone().unwrap_or_else(ImagePlatform::host),
        ..ImportOptions::default()
    };
    let store = match open_store(root) {
        Ok(store) => store,
        Err(error) => return fail(&error),
    };
    let input: Box<dyn Read> = if args.source.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        match File::open(&args.source) {
            Ok(file) => Box::new(file),
            Err(error) => {
                return fail(&io::Error::new(
                    error.kind(),
                    format!("failed to open {}: {error}", args.source.display()),
                ));
            }
        }
    };
    match import(&store, input, &options) {
        Ok(image) => emit(&format!("{}\n", image.id)),
        Err(error) => fail(&error),
    }
}

/// `SOURCE_DATE_EPOCH` (seconds) when set, for reproducible images; otherwise now.
fn created_time() -> Result<SystemTime, String> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) if !text.is_empty() => text
            .parse::<u64>()
            .map(|seconds| UNIX_EPOCH + Duration::from_secs(seconds))
            .map_err(|_| {
                format!("invalid SOURCE_DATE_EPOCH {text:?}: expected seconds since 1970")
            }),
        _ => Ok(SystemTime::now()),
    }
}

/// `linux/arm64`, `linux/arm/v7`.
fn parse_platform(text: &str) -> Result<ImagePlatform, String> {
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [os, architecture] | [os, architecture, _]
            if !os.is_empty() && !architecture.is_empty() =>
        {
            Ok(ImagePlatform {
                os: (*os).to_owned(),
                architecture: (*architecture).to_owned(),
                variant: parts
                    .get(2)
                    .filter(|v| !v.is_empty())
                    .map(|v| (*v).to_owned()),
            })
        }
        _ => Err(format!(
            "invalid platform {text:?}: expected os/arch[/variant]"
        )),
    }
}
