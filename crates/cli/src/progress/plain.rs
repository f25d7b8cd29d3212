//! `--progress=plain`, BuildKit's form: each vertex gets a number the first time it is reported, and every line
//! starts with it (`#3 [2/4] RUN make`, `#3 0.512 output`, `#3 DONE 1.2s`). `quiet` is this renderer printing
//! nothing while still keeping the log tails for the failure summary.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hoist_engine::{Reporter, Vertex, VertexStatus};

use super::{Display, Logs, decimal_bytes, write_stderr};

pub(crate) struct Plain {
    quiet: bool,
    state: Mutex<State>,
}

struct State {
    numbers: HashMap<usize, usize>,
    next: usize,
    started: HashMap<usize, Instant>,
    logs: Logs,
}

impl Plain {
    pub(crate) fn new(quiet: bool) -> Self {
        Self {
            quiet,
            state: Mutex::new(State {
                numbers: HashMap::new(),
                next: 1,
                started: HashMap::new(),
                logs: Logs::default(),
            }),
        }
    }

    /// Runs `line` with the vertex's number (printing its name line the first time) and prints what it wrote.
    fn emit(&self, vertex: &Vertex, line: impl FnOnce(usize, &mut State, &mut String)) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let n = match state.numbers.get(&vertex.op) {
            Some(n) => *n,
            None => {
                let n = state.next;
                state.next += 1;
                state.numbers.insert(vertex.op, n);
                let _ = writeln!(out, "\n#{n} {}", vertex.name);
                n
            }
        };
        line(n, &mut state, &mut out);
        if !self.quiet {
            write_stderr(&out);
        }
    }

    /// Prints what is left of the vertex's output.
    fn flush(n: usize, op: usize, state: &mut State, out: &mut String) {
        let since = state
            .started
            .get(&op)
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        if let Some(rest) = state.logs.flush(op, since) {
            let _ = writeln!(out, "#{n} {since:.3} {rest}");
        }
    }
}

impl Reporter for Plain {
    fn on_vertex_start(&self, vertex: &Vertex) {
        self.emit(vertex, |_, state, _| {
            state.started.insert(vertex.op, Instant::now());
        });
    }

    fn on_vertex_cached(&self, vertex: &Vertex) {
        self.emit(vertex, |n, _, out| {
            let _ = writeln!(out, "#{n} CACHED");
        });
    }

    fn on_vertex_done(&self, vertex: &Vertex, elapsed: Duration) {
        self.emit(vertex, |n, state, out| {
            Self::flush(n, vertex.op, state, out);
            let _ = writeln!(out, "#{n} DONE {:.1}s", elapsed.as_secs_f64());
        });
    }

    fn on_vertex_error(&self, vertex: &Vertex, message: &str) {
        self.emit(vertex, |n, state, out| {
            Self::flush(n, vertex.op, state, out);
            let _ = writeln!(out, "#{n} ERROR: {message}");
        });
    }

    fn on_log(&self, vertex: &Vertex, data: &[u8]) {
        self.emit(vertex, |n, state, out| {
            let since = state
                .started
                .get(&vertex.op)
                .map_or(0.0, |t| t.elapsed().as_secs_f64());
            for line in state.logs.push(vertex.op, data, since) {
                let _ = writeln!(out, "#{n} {since:.3} {line}");
            }
        });
    }

    fn on_vertex_status(&self, vertex: &Vertex, status: &VertexStatus) {
        self.emit(vertex, |n, _, out| {
            let _ = writeln!(out, "#{n} {}", status_line(status));
        });
    }
}

/// A status as BuildKit's plain printer shows it: a transfer with its bytes and time
/// (`sha256:… 1.20MB / 3.40MB 0.5s done`), a step of work with its time when it took any (`exporting layers 0.1s
/// done`, `naming to app:1 done`).
pub(super) fn status_line(status: &VertexStatus) -> String {
    let done = if status.done { " done" } else { "" };
    if status.current == 0 && status.total == 0 {
        let time = if status.elapsed.is_zero() {
            String::new()
        } else {
            format!(" {:.1}s", status.elapsed.as_secs_f64())
        };
        let time = if status.done { time } else { String::new() };
        return format!("{}{time}{done}", status.id);
    }
    let total = match status.total {
        0 => String::new(),
        total => format!(" / {}", decimal_bytes(total)),
    };
    format!(
        "{} {}{total} {:.1}s{done}",
        status.id,
        decimal_bytes(status.current),
        status.elapsed.as_secs_f64()
    )
}

impl Display for Plain {
    fn tail(&self, op: usize) -> Vec<String> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.logs.tail(op)
    }

    fn message(&self, text: &str) {
        if !self.quiet {
            write_stderr(&format!("{text}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hoist_engine::VertexStatus;

    use super::status_line;

    fn status(id: &str, current: u64, total: u64, millis: u64, done: bool) -> String {
        status_line(&VertexStatus {
            id: id.to_owned(),
            current,
            total,
            elapsed: Duration::from_millis(millis),
            done,
        })
    }

    #[test]
    fn statuses_print_as_buildkits_plain_printer() {
        assert_eq!(
            status("sha256:ab", 1_200_000, 3_400_000, 500, false),
            "sha256:ab 1.20MB / 3.40MB 0.5s"
        );
        assert_eq!(
            status("sha256:ab", 3_400_000, 3_400_000, 1_000, true),
            "sha256:ab 3.40MB / 3.40MB 1.0s done"
        );
        assert_eq!(
            status("sha256:ab", 0, 1_210_000, 0, false),
            "sha256:ab 0B / 1.21MB 0.0s"
        );
        assert_eq!(
            status("exporting layers", 0, 0, 120, true),
            "exporting layers 0.1s done"
        );
        assert_eq!(
            status("naming to app:1", 0, 0, 0, true),
            "naming to app:1 done"
        );
        assert_eq!(status("pushing layers", 0, 0, 40, false), "pushing layers");
    }
}
