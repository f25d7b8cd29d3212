//! The `hoist` binary: parses the command line into plain data, calls the library crates, renders their results.
//! Nothing here holds logic that a library test cannot reach.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod diagnostics;
mod progress;

/// A fast, daemonless container image builder.
#[derive(Debug, Parser)]
#[command(name = "hoist", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Root directory of the image store (default: $XDG_DATA_HOME/hoist, or /var/lib/hoist as root).
    #[arg(long, global = true, env = "HOIST_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List images in the store.
    Images(commands::images::ImagesArgs),
    /// Create a reference TARGET that refers to the image SOURCE.
    Tag(commands::tag::TagArgs),
    /// Remove one or more images (their references; `hoist prune` frees the space).
    Rmi(commands::rmi::RmiArgs),
    /// Show details of one or more images.
    Inspect(commands::inspect::InspectArgs),
    /// Remove unreferenced blobs, unused snapshots and build cache.
    Prune(commands::prune::PruneArgs),
    /// Verify the store: blob digests, references, the build cache index.
    Check(commands::check::CheckArgs),
    /// Create an image from a root filesystem tarball.
    Import(commands::import::ImportArgs),
    /// Save images to a docker-archive or an OCI image layout.
    Save(commands::save::SaveArgs),
    /// Load images from a docker-archive or an OCI image layout.
    Load(commands::load::LoadArgs),
    /// Check a Dockerfile with BuildKit's build checks and hoist's own.
    Lint(commands::lint::LintArgs),
    /// Build an image from a Dockerfile.
    Build(commands::build::BuildArgs),
    /// Run a command in a new container from an image.
    Run(commands::run::RunArgs),
    /// List containers.
    Ps(commands::ps::PsArgs),
    /// Stop one or more running containers.
    Stop(commands::stop::StopArgs),
    /// Fetch the logs of a container.
    Logs(commands::logs::LogsArgs),
    /// Remove one or more containers.
    Rm(commands::rm::RmArgs),
    /// Hold a detached container (started by `hoist run -d`).
    #[command(name = "__supervise", hide = true)]
    Supervise(commands::supervise::SuperviseArgs),
    /// Download an image from a registry.
    Pull(commands::pull::PullArgs),
    /// Upload an image to a registry.
    Push(commands::push::PushArgs),
    /// Log in to a registry.
    Login(commands::login::LoginArgs),
    /// Log out from a registry.
    Logout(commands::logout::LogoutArgs),
    /// Run a Lambda function locally behind the Runtime Interface Emulator (like aws-lambda-rie).
    Lambda(commands::lambda::LambdaArgs),
    /// Show image sizes per build target or per image, with the biggest layers and what made them.
    Sizes(commands::sizes::SizesArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    commands::dispatch(cli)
}
