//! `hoist logs`: prints a container's output from its log, as `docker logs` does (stdout lines to stdout, stderr
//! lines to stderr); `-f` keeps printing until the container ends.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use hoist_sandbox::control::{self, LogError, Tail};
use hoist_sandbox::{ContainerStore, LogEntry, LogStream};

use super::images::{fail, open_store};

/// Fetch the logs of a container.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// Follow the output until the container ends.
    #[arg(short, long)]
    follow: bool,

    /// Number of lines to show from the end of the log (`all` for every line).
    #[arg(short = 'n', long, value_name = "N", default_value = "all")]
    tail: String,

    /// Show each line's time (RFC 3339 with nanoseconds) before it.
    #[arg(short, long)]
    timestamps: bool,

    /// The container, by name, ID or ID prefix.
    #[arg(value_name = "CONTAINER")]
    container: String,
}

pub(crate) fn run(root: Option<&Path>, args: &LogsArgs) -> ExitCode {
    let containers = match open_store(root).map(|store| ContainerStore::open(store.root())) {
        Ok(Ok(containers)) => containers,
        Ok(Err(error)) => return fail(&error),
        Err(error) => return fail(&error),
    };
    let tail = match args.tail.parse::<Tail>() {
        Ok(tail) => tail,
        Err(error) => return fail(&error),
    };
    let shown = control::read_log(&containers, &args.container, tail, args.follow, |entries| {
        print(entries, args.timestamps)
    });
    match shown {
        Ok(()) => ExitCode::SUCCESS,
        Err(LogError::Show(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error),
    }
}

fn print(entries: &[LogEntry], timestamps: bool) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    let mut stderr = io::stderr().lock();
    for entry in entries {
        let out: &mut dyn Write = match entry.stream {
            LogStream::Stdout => &mut stdout,
            LogStream::Stderr => &mut stderr,
        };
        if timestamps {
            write!(out, "{} ", entry.time)?;
        }
        out.write_all(entry.log.as_bytes())?;
    }
    stdout.flush()?;
    stderr.flush()
}
