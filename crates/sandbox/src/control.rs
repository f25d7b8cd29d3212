//! `hoist ps`, `stop`, `rm` and `logs` as library calls on recorded containers, each naming its containers as
//! Docker does (name, ID or unique ID prefix). The binary parses flags and prints; what a flag's absence means
//! (the image's stop signal, the container's stop timeout) and how a log is followed are decided here.

use std::io;
use std::str::FromStr;
use std::time::Duration;

use crate::containers::{
    ContainerError, ContainerRecord, ContainerState, ContainerStore, LogEntry, LogReader,
};

/// How often `logs -f` looks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// `hoist ps`: the containers, newest first, with their real state; only the running ones unless `all`.
pub fn list(
    containers: &ContainerStore,
    all: bool,
) -> Result<Vec<ContainerRecord>, ContainerError> {
    let mut records = containers.list()?;
    records.retain(|record| all || record.state == ContainerState::Running);
    Ok(records)
}

/// `hoist stop`: stops the container named `name` with `signal` (default: its image's `STOPSIGNAL`, else
/// SIGTERM), and SIGKILL `timeout` later (default: its `--stop-timeout`). A container that does not run is left
/// as it is.
pub fn stop(
    containers: &ContainerStore,
    name: &str,
    signal: Option<i32>,
    timeout: Option<Duration>,
) -> Result<(), ContainerError> {
    let record = containers.find(name)?;
    let timeout = timeout.unwrap_or(Duration::from_secs(record.stop_timeout));
    containers.stop(&record, signal.unwrap_or(record.stop_signal), timeout)
}

/// `hoist rm`: removes the container named `name` (record, log, writable layer); a running one only with `force`,
/// which kills it first.
pub fn remove(containers: &ContainerStore, name: &str, force: bool) -> Result<(), ContainerError> {
    let record = containers.find(name)?;
    if force {
        containers.kill(&record)?;
    }
    containers.remove(&record)
}

/// How much of a log `hoist logs` shows before following it (`-n`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tail {
    /// Every line (`all`).
    #[default]
    All,
    /// The last lines.
    Last(usize),
}

impl FromStr for Tail {
    type Err = LogError;

    fn from_str(text: &str) -> Result<Tail, LogError> {
        match text {
            "all" => Ok(Tail::All),
            count => count
                .parse()
                .map(Tail::Last)
                .map_err(|_| LogError::InvalidTail {
                    value: count.to_owned(),
                }),
        }
    }
}

/// Why a container's log could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `-n` is neither `all` nor a number.
    #[error("invalid --tail value {value:?}")]
    InvalidTail {
        /// The value as given.
        value: String,
    },
    /// The container could not be found, or its log opened.
    #[error(transparent)]
    Container(ContainerError),
    /// Reading the log failed.
    #[error(transparent)]
    Read(io::Error),
    /// The caller's `show` failed (a closed pipe, for instance), which ends the call.
    #[error(transparent)]
    Show(io::Error),
}

/// `hoist logs`: passes the log of the container named `name` to `show`, in batches of lines: the last `tail`
/// lines first, then, with `follow`, what is appended until the container ends. A container that never started, or
/// ran in the foreground without a log, shows nothing.
pub fn read_log(
    containers: &ContainerStore,
    name: &str,
    tail: Tail,
    follow: bool,
    mut show: impl FnMut(&[LogEntry]) -> io::Result<()>,
) -> Result<(), LogError> {
    let record = containers.find(name).map_err(LogError::Container)?;
    let path = containers.log_path(&record.id);
    if !path.exists() {
        return Ok(());
    }
    let mut reader = LogReader::open(&path).map_err(LogError::Container)?;
    let mut first = true;
    loop {
        // Checked before reading, so the last read sees everything a finished supervisor wrote.
        let running = follow && containers.is_supervised(&record.id);
        let mut entries = reader.read_new().map_err(LogError::Read)?;
        if let (true, Tail::Last(count)) = (first, tail) {
            entries.drain(..entries.len().saturating_sub(count));
        }
        first = false;
        show(&entries).map_err(LogError::Show)?;
        if !running {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_all_or_a_count() {
        assert_eq!("all".parse::<Tail>().unwrap(), Tail::All);
        assert_eq!("3".parse::<Tail>().unwrap(), Tail::Last(3));
        assert_eq!(
            "-1".parse::<Tail>().unwrap_err().to_string(),
            "invalid --tail value \"-1\""
        );
    }
}
