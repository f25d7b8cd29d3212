//! `hoist stop`: stops running containers as `docker stop` does (the image's stop signal, then SIGKILL).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use hoist_sandbox::{ContainerStore, control, parse_signal};

use super::images::{fail, open_store};

/// Stop one or more running containers.
#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// Seconds to wait before killing the container (default: its --stop-timeout, 10).
    #[arg(short = 't', long = "time", value_name = "SECONDS")]
    time: Option<u64>,

    /// Signal to send instead of the image's STOPSIGNAL (default SIGTERM).
    #[arg(short, long, value_name = "SIGNAL")]
    signal: Option<String>,

    /// Containers, by name, ID or ID prefix.
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

pub(crate) fn run(root: Option<&Path>, args: &StopArgs) -> ExitCode {
    let containers = match open_store(root).map(|store| ContainerStore::open(store.root())) {
        Ok(Ok(containers)) => containers,
        Ok(Err(error)) => return fail(&error),
        Err(error) => return fail(&error),
    };
    let signal = match args.signal.as_deref().map(parse_signal).transpose() {
        Ok(signal) => signal,
        Err(error) => return fail(&error),
    };
    let mut code = ExitCode::SUCCESS;
    for name in &args.containers {
        let timeout = args.time.map(Duration::from_secs);
        match control::stop(&containers, name, signal, timeout) {
            Ok(()) => {
                let _ = writeln!(std::io::stdout().lock(), "{name}");
            }
            Err(error) => code = fail(&error),
        }
    }
    code
}
