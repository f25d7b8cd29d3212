//! Build progress, rendered from the engine's [`Reporter`] events: `--progress=plain` (BuildKit's `#N` lines),
//! `tty` (a live view, [`tty`]), `rawjson` (BuildKit's `SolveStatus` objects, one per line), `quiet` (nothing), and
//! `auto` (`tty` when stderr is a terminal, else `plain`). Everything goes to stderr.

mod plain;
mod rawjson;
mod tty;

use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::sync::Arc;

use hoist_engine::Reporter;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Plain,
    Tty,
    RawJson,
    Quiet,
}

impl Mode {
    /// The mode `--progress VALUE` (or `-q`) asks for; `auto` looks at stderr.
    pub(crate) fn choose(progress: &str, quiet: bool) -> Mode {
        match progress {
            _ if quiet => Mode::Quiet,
            "quiet" => Mode::Quiet,
            "plain" => Mode::Plain,
            "tty" => Mode::Tty,
            "rawjson" => Mode::RawJson,
            _ if std::io::stderr().is_terminal() => Mode::Tty,
            _ => Mode::Plain,
        }
    }
}

/// A progress renderer: the engine's reporter, plus what the build command needs around it.
pub(crate) trait Display: Reporter + Send {
    /// The last log lines of vertex `op`, for the failure summary.
    fn tail(&self, op: usize) -> Vec<String>;
    /// A message outside any vertex (planner warnings), written without disturbing a live view.
    fn message(&self, text: &str);
    /// Build warnings (the checks' findings) as BuildKit reports them: `rawjson` sends them as `warnings`; the
    /// others leave them to the summary printed after the build.
    fn warnings(&self, _warnings: &[Warning]) {}
    /// The build is over: a live view draws its final state.
    fn finish(&self) {}
    /// The plan's edges, each op's inputs by op index, once the plan is known: `rawjson` lists them as a
    /// vertex's `inputs`.
    fn graph(&self, _inputs: HashMap<usize, Vec<usize>>) {}
}

/// A build check's finding, as progress carries it.
pub(crate) struct Warning {
    /// The vertex it belongs to (the Dockerfile's).
    pub(crate) vertex: hoist_engine::Vertex,
    /// `Rule: message (line N)`.
    pub(crate) short: String,
    /// The rule's documentation.
    pub(crate) url: String,
}

/// The renderer for `mode`.
pub(crate) fn display(mode: Mode) -> Arc<dyn Display> {
    match mode {
        Mode::Plain => Arc::new(plain::Plain::new(false)),
        Mode::Quiet => Arc::new(plain::Plain::new(true)),
        Mode::Tty => Arc::new(tty::Tty::new()),
        Mode::RawJson => Arc::new(rawjson::RawJson::new()),
    }
}

/// How many log lines of a failed step the summary repeats (BuildKit shows the last few).
const FAILURE_LOG_LINES: usize = 10;

/// Splits each vertex's log output into lines and keeps the last few of each.
#[derive(Default)]
struct Logs {
    partial: HashMap<usize, Vec<u8>>,
    tail: HashMap<usize, VecDeque<String>>,
}

impl Logs {
    /// Adds output of vertex `op`, `since` seconds after it started; returns the lines it completed. The tail keeps
    /// them as BuildKit's failure summary shows them, after that time (`0.512 output`).
    fn push(&mut self, op: usize, data: &[u8], since: f64) -> Vec<String> {
        let buffer = self.partial.entry(op).or_default();
        buffer.extend_from_slice(data);
        let mut lines = Vec::new();
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        for line in &lines {
            self.remember(op, format!("{since:.3} {line}"));
        }
        lines
    }

    /// The unterminated rest of vertex `op`'s output, if any (the vertex ended).
    fn flush(&mut self, op: usize, since: f64) -> Option<String> {
        let rest = self.partial.remove(&op)?;
        if rest.is_empty() {
            return None;
        }
        let line = String::from_utf8_lossy(&rest).into_owned();
        self.remember(op, format!("{since:.3} {line}"));
        Some(line)
    }

    fn remember(&mut self, op: usize, line: String) {
        let tail = self.tail.entry(op).or_default();
        if tail.len() == FAILURE_LOG_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    fn tail(&self, op: usize) -> Vec<String> {
        self.tail
            .get(&op)
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Writes `text` to stderr, ignoring failures (progress must never fail a build).
fn write_stderr(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Sizes as BuildKit prints them: decimal units, two decimals (`1.20MB`, `512B`).
pub(crate) fn decimal_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.2}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::{Logs, decimal_bytes};

    #[test]
    fn logs_split_lines_and_keep_a_tail() {
        let mut logs = Logs::default();
        assert_eq!(logs.push(1, b"a\nb", 0.1), vec!["a"]);
        assert_eq!(logs.push(1, b"c\n", 0.25), vec!["bc"]);
        assert_eq!(logs.push(1, b"rest", 0.3), Vec::<String>::new());
        assert_eq!(logs.flush(1, 0.5).as_deref(), Some("rest"));
        assert_eq!(logs.tail(1), vec!["0.100 a", "0.250 bc", "0.500 rest"]);
        for i in 0..20 {
            logs.push(2, format!("{i}\n").as_bytes(), 1.0);
        }
        assert_eq!(logs.tail(2).len(), super::FAILURE_LOG_LINES);
        assert_eq!(logs.tail(2).last().map(String::as_str), Some("1.000 19"));
    }

    #[test]
    fn sizes_are_decimal() {
        assert_eq!(decimal_bytes(512), "512B");
        assert_eq!(decimal_bytes(1_200_000), "1.20MB");
    }
}
