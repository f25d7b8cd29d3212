//! One module per subcommand; each turns its clap arguments into a library call and renders the result.

use std::process::ExitCode;

use crate::{Cli, Command};

/// Runs the chosen subcommand and maps its outcome to the process exit code.
pub(crate) fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {}
}
