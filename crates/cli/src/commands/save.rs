//! `hoist save`: images from the store into a docker-archive or an OCI image layout, like `docker save`.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use hoist_archive::{SaveFormat, save_archive, save_archive_file, save_oci_dir};

use super::images::{fail, open_store};

/// Save images to a tar archive (docker-archive or OCI layout) or an OCI layout directory.
#[derive(Debug, Args)]
pub(crate) struct SaveArgs {
    /// Images to save: references (`name[:tag]`) or image IDs.
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<String>,

    /// Write to this file instead of stdout. With `--format oci`, a path ending in `/` is written as a directory.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Docker)]
    format: OutputFormat,
}

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// docker-archive, as `docker save` writes (and `docker load` reads).
    Docker,
    /// OCI image layout in a tar archive (a directory if the output path ends in `/`).
    Oci,
    /// OCI image layout in a directory.
    OciDir,
}

pub(crate) fn run(root: Option<&Path>, args: &SaveArgs) -> ExitCode {
    let store = match open_store(root) {
        Ok(store) => store,
        Err(error) => return fail(&error),
    };
    let as_dir = args.format == OutputFormat::OciDir
        || (args.format == OutputFormat::Oci
            && args
                .output
                .as_ref()
                .is_some_and(|p| p.as_os_str().to_string_lossy().ends_with('/')));
    let format = match args.format {
        OutputFormat::Docker => SaveFormat::Docker,
        OutputFormat::Oci | OutputFormat::OciDir => SaveFormat::Oci,
    };
    let result = match &args.output {
        Some(dir) if as_dir => save_oci_dir(&store, &args.images, dir),
        Some(path) if path.as_os_str() != "-" => {
            save_archive_file(&store, &args.images, format, path)
        }
        _ if as_dir => {
            return fail(&io::Error::other(
                "--format oci-dir needs an output directory (-o DIR)",
            ));
        }
        _ => {
            let stdout = io::stdout();
            if stdout.is_terminal() {
                return fail(&io::Error::other(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect",
                ));
            }
            save_archive(
                &store,
                &args.images,
                format,
                io::BufWriter::new(stdout.lock()),
            )
        }
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}
