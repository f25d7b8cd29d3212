//! `hoist logs`: prints a container's output from its log, as `docker logs` does (stdout lines to stdout, stderr
//! lines to stderr); `-f` keeps printing until the container ends.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use hoist_sandbox::{ContainerStore, LogEntry, LogReader, LogStream};

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
    let record = match containers.find(&args.container) {
        Ok(record) => record,
        Err(error) => return fail(&error),
    };
    let tail = match args.tail.as_str() {
        "all" => None,
        count => match count.parse::<usize>() {
            Ok(count) => Some(count),
            Err(_) => {
                let error = std::io::Error::other(format!("invalid --tail value {count:?}"));
                return fail(&error);
            }
        },
    };
    let path = containers.log_path(&record.id);
    if !path.exists() {
        // Never started, or run in the foreground: nothing was logged.
        return ExitCode::SUCCESS;
    }
    let mut reader = match LogReader::open(&path) {
        Ok(reader) => reader,
        Err(error) => return fail(&error),
    };
    let mut first = true;
    loop {
        // Checked before reading, so the last read sees everything a finished supervisor wrote.
        let running = args.follow && containers.is_supervised(&record.id);
        match reader.read_new() {
            Ok(mut entries) => {
                if let Some(count) = tail.filter(|_| first) {
                    entries.drain(..entries.len().saturating_sub(count));
                }
                first = false;
                if let Err(error) = print(&entries, args.timestamps) {
                    if error.kind() == io::ErrorKind::BrokenPipe {
                        return ExitCode::SUCCESS;
                    }
                    return fail(&error);
                }
            }
            Err(error) => return fail(&error),
        }
        if !running {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(100));
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
