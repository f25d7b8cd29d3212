//! `--progress=tty`: BuildKit's live view, drawn with `indicatif`. A header (`[+] Building 3.2s (5/8)`), one line
//! per vertex with its timer (`=> [2/3] RUN make   1.4s`, `=> CACHED …`, `=> ERROR …`), under a running vertex
//! its statuses (transfer bars for pulls and pushes) and the last lines of its output (`=> => # …`). When the
//! build ends the live view is replaced by BuildKit's final summary: every vertex and status with its time,
//! under `[+] Building 4.1s (8/8) FINISHED`.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hoist_engine::{Reporter, Vertex, VertexStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::{Display, Logs, decimal_bytes, write_stderr};

/// Lines of a running step's output shown under it.
const TAIL_LINES: usize = 6;
/// Finished vertices kept in the live view; older ones leave it (the summary has them all).
const LIVE_FINISHED: usize = 12;
/// How often timers are redrawn.
const TICK: Duration = Duration::from_millis(100);

pub(crate) struct Tty {
    multi: MultiProgress,
    header: ProgressBar,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Vertices in the order they were first reported.
    order: Vec<usize>,
    views: HashMap<usize, View>,
    logs: Logs,
    /// Finished vertices still in the live view, oldest first.
    live_finished: VecDeque<usize>,
    finished: bool,
}

/// One vertex: its line in the live view and what the summary needs.
struct View {
    name: String,
    bar: Option<ProgressBar>,
    started: Instant,
    outcome: Outcome,
    statuses: Vec<StatusView>,
    tail: VecDeque<String>,
    tail_bars: Vec<ProgressBar>,
}

#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    Running,
    Cached,
    Done(Duration),
    Failed(Duration),
}

struct StatusView {
    id: String,
    bar: Option<ProgressBar>,
    last: VertexStatus,
}

/// `{secs}`: the bar's running time as BuildKit shows it (`1.4s`).
fn secs(state: &ProgressState, out: &mut dyn std::fmt::Write) {
    let _ = write!(out, "{:.1}s", state.elapsed().as_secs_f64());
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the templates are valid")
        .with_key("secs", secs)
        .progress_chars("=> ")
}

fn running_style() -> ProgressStyle {
    style(" => {wide_msg} {secs:>6}")
}

/// Finished vertices are blue, failed ones red, as BuildKit colours them.
fn finished_style() -> ProgressStyle {
    style(" => {wide_msg:.blue} {prefix:>6.blue}")
}

fn failed_style() -> ProgressStyle {
    style(" => {wide_msg:.red} {prefix:>6.red}")
}

fn status_style() -> ProgressStyle {
    style(" => => {wide_msg} {prefix:>6}")
}

fn transfer_style() -> ProgressStyle {
    style(" => => {wide_msg} [{bar:20}] {prefix:>6}")
}

fn tail_style() -> ProgressStyle {
    style(" => => # {wide_msg:.dim}")
}

impl Tty {
    pub(crate) fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let header =
            multi.add(ProgressBar::new(0).with_style(style("[+] Building {secs} ({pos}/{len})")));
        header.enable_steady_tick(TICK);
        Self {
            multi,
            header,
            started: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The vertex's view, made (with its live line) on first sight.
    fn view<'s>(&self, state: &'s mut State, vertex: &Vertex) -> &'s mut View {
        if !state.views.contains_key(&vertex.op) {
            state.order.push(vertex.op);
            self.header.inc_length(1);
            let bar = (!state.finished).then(|| {
                let bar = self
                    .multi
                    .add(ProgressBar::new(0).with_style(running_style()));
                bar.set_message(vertex.name.clone());
                bar.enable_steady_tick(TICK);
                bar
            });
            state.views.insert(
                vertex.op,
                View {
                    name: vertex.name.clone(),
                    bar,
                    started: Instant::now(),
                    outcome: Outcome::Running,
                    statuses: Vec::new(),
                    tail: VecDeque::new(),
                    tail_bars: Vec::new(),
                },
            );
        }
        state
            .views
            .get_mut(&vertex.op)
            .expect("the view was just inserted")
    }

    /// Ends a vertex: its line shows the outcome and time; its output tail leaves the live view.
    fn end(&self, vertex: &Vertex, outcome: Outcome) {
        let mut state = self.state();
        let view = self.view(&mut state, vertex);
        if view.outcome != Outcome::Running {
            return;
        }
        view.outcome = outcome;
        for bar in view.tail_bars.drain(..) {
            self.multi.remove(&bar);
        }
        for status in &mut view.statuses {
            if let Some(bar) = &status.bar {
                bar.finish();
            }
        }
        if let Some(bar) = &view.bar {
            let (style, label, elapsed) = match outcome {
                Outcome::Cached => (finished_style(), "CACHED ", Duration::ZERO),
                Outcome::Done(d) => (finished_style(), "", d),
                Outcome::Failed(d) => (failed_style(), "ERROR ", d),
                // Not an end; callers never pass it, and the line keeps running if one did.
                Outcome::Running => (running_style(), "", view.started.elapsed()),
            };
            // Prefix and message before the style, so no frame shows the finished style without its time.
            bar.set_prefix(format!("{:.1}s", elapsed.as_secs_f64()));
            bar.set_message(format!("{label}{}", view.name));
            bar.set_style(style);
            bar.finish();
        }
        self.header.inc(1);
        state.live_finished.push_back(vertex.op);
        while state.live_finished.len() > LIVE_FINISHED {
            let Some(old) = state.live_finished.pop_front() else {
                break;
            };
            if let Some(view) = state.views.get_mut(&old) {
                for status in &mut view.statuses {
                    if let Some(bar) = status.bar.take() {
                        self.multi.remove(&bar);
                    }
                }
                if let Some(bar) = view.bar.take() {
                    self.multi.remove(&bar);
                }
            }
        }
    }

    /// The summary BuildKit prints when a build ends.
    fn summary(&self, state: &State) -> String {
        let width = usize::from(console::Term::stderr().size().1).max(40);
        let colors = console::colors_enabled_stderr();
        let paint = |text: String, failed: bool| -> String {
            let text = text.trim_end_matches('\n').to_owned();
            let painted = match (colors, failed) {
                (false, _) => text,
                (true, false) => console::style(text).blue().to_string(),
                (true, true) => console::style(text).red().to_string(),
            };
            format!("{painted}\n")
        };
        let done = state
            .views
            .values()
            .filter(|v| v.outcome != Outcome::Running)
            .count();
        let mut out = format!(
            "[+] Building {:.1}s ({done}/{}) FINISHED\n",
            self.started.elapsed().as_secs_f64(),
            state.views.len()
        );
        for op in &state.order {
            let Some(view) = state.views.get(op) else {
                continue;
            };
            let (label, elapsed) = match view.outcome {
                Outcome::Running => ("", view.started.elapsed()),
                Outcome::Cached => ("CACHED ", Duration::ZERO),
                Outcome::Done(d) => ("", d),
                Outcome::Failed(d) => ("ERROR ", d),
            };
            let failed = matches!(view.outcome, Outcome::Failed(_));
            out.push_str(&paint(
                line(&format!(" => {label}{}", view.name), elapsed, width),
                failed,
            ));
            for status in &view.statuses {
                let text = match status.last.total {
                    0 => status.id.clone(),
                    total => {
                        // The bytes stay whole; a long id (a digest) gives way.
                        let bytes = format!(
                            " {} / {}",
                            decimal_bytes(status.last.current),
                            decimal_bytes(total)
                        );
                        let room = width.saturating_sub(8 + " => => ".len() + bytes.len());
                        let id: String = status.id.chars().take(room).collect();
                        format!("{id}{bytes}")
                    }
                };
                out.push_str(&paint(
                    line(&format!(" => => {text}"), status.last.elapsed, width),
                    false,
                ));
            }
        }
        out
    }
}

/// A digest as the live view shows it beside a bar: `sha256:` and 12 hex digits.
fn short_id(id: &str) -> &str {
    match id.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => &id[.."sha256:".len() + 12],
        _ => id,
    }
}

/// One summary line: `text`, then the time right-aligned at `width` (the text cut to fit).
fn line(text: &str, elapsed: Duration, width: usize) -> String {
    let time = format!("{:.1}s", elapsed.as_secs_f64());
    // The text, a space, the time right-aligned in six columns: one column short of the width, so the terminal
    // never wraps.
    let room = width.saturating_sub(8);
    let mut shown: String = text.chars().take(room).collect();
    let used = shown.chars().count();
    for _ in used..room {
        shown.push(' ');
    }
    let mut out = String::new();
    let _ = writeln!(out, "{shown} {time:>6}");
    out
}

impl Reporter for Tty {
    fn on_vertex_start(&self, vertex: &Vertex) {
        let mut state = self.state();
        let view = self.view(&mut state, vertex);
        view.started = Instant::now();
    }

    fn on_vertex_cached(&self, vertex: &Vertex) {
        self.end(vertex, Outcome::Cached);
    }

    fn on_vertex_done(&self, vertex: &Vertex, elapsed: Duration) {
        self.end(vertex, Outcome::Done(elapsed));
    }

    fn on_vertex_error(&self, vertex: &Vertex, _message: &str) {
        let elapsed = {
            let mut state = self.state();
            let view = self.view(&mut state, vertex);
            view.started.elapsed()
        };
        self.end(vertex, Outcome::Failed(elapsed));
    }

    fn on_log(&self, vertex: &Vertex, data: &[u8]) {
        let mut state = self.state();
        let since = self
            .view(&mut state, vertex)
            .started
            .elapsed()
            .as_secs_f64();
        let lines = state.logs.push(vertex.op, data, since);
        let finished = state.finished;
        let view = self.view(&mut state, vertex);
        if view.outcome != Outcome::Running || lines.is_empty() {
            return;
        }
        for line in lines {
            if view.tail.len() == TAIL_LINES {
                view.tail.pop_front();
            }
            view.tail.push_back(line);
        }
        let Some(anchor) = view.bar.clone() else {
            return;
        };
        if finished {
            return;
        }
        while view.tail_bars.len() < view.tail.len() {
            let after = view
                .tail_bars
                .last()
                .or_else(|| view.statuses.iter().rev().find_map(|s| s.bar.as_ref()))
                .unwrap_or(&anchor)
                .clone();
            let bar = self
                .multi
                .insert_after(&after, ProgressBar::new(0).with_style(tail_style()));
            view.tail_bars.push(bar);
        }
        for (bar, line) in view.tail_bars.iter().zip(&view.tail) {
            bar.set_message(line.clone());
        }
    }

    fn on_vertex_status(&self, vertex: &Vertex, status: &VertexStatus) {
        let mut state = self.state();
        let finished = state.finished;
        let view = self.view(&mut state, vertex);
        let position = match view.statuses.iter().position(|s| s.id == status.id) {
            Some(position) => position,
            None => {
                let bar = match (&view.bar, finished) {
                    (Some(anchor), false) => {
                        let after = view
                            .statuses
                            .iter()
                            .rev()
                            .find_map(|s| s.bar.as_ref())
                            .unwrap_or(anchor)
                            .clone();
                        let style = if status.total > 0 {
                            transfer_style()
                        } else {
                            status_style()
                        };
                        Some(
                            self.multi
                                .insert_after(&after, ProgressBar::new(0).with_style(style)),
                        )
                    }
                    _ => None,
                };
                view.statuses.push(StatusView {
                    id: status.id.clone(),
                    bar,
                    last: status.clone(),
                });
                view.statuses.len() - 1
            }
        };
        let entry = &mut view.statuses[position];
        entry.last = status.clone();
        if let Some(bar) = &entry.bar {
            if status.total > 0 {
                bar.set_length(status.total);
                bar.set_position(status.current.min(status.total));
                bar.set_message(format!(
                    "{} {} / {}",
                    short_id(&status.id),
                    decimal_bytes(status.current),
                    decimal_bytes(status.total)
                ));
            } else {
                bar.set_message(status.id.clone());
            }
            bar.set_prefix(format!("{:.1}s", status.elapsed.as_secs_f64()));
            if status.done {
                bar.finish();
            }
        }
    }
}

impl Display for Tty {
    fn tail(&self, op: usize) -> Vec<String> {
        self.state().logs.tail(op)
    }

    fn message(&self, text: &str) {
        if self.multi.is_hidden() {
            write_stderr(&format!("{text}\n"));
        } else {
            let _ = self.multi.println(text);
        }
    }

    fn finish(&self) {
        let mut state = self.state();
        if state.finished {
            return;
        }
        state.finished = true;
        self.header.finish();
        for view in state.views.values_mut() {
            for bar in view.tail_bars.drain(..) {
                bar.finish();
            }
            for status in &mut view.statuses {
                if let Some(bar) = status.bar.take() {
                    bar.finish();
                }
            }
            if let Some(bar) = view.bar.take() {
                bar.finish();
            }
        }
        let _ = self.multi.clear();
        write_stderr(&self.summary(&state));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{line, short_id};

    #[test]
    fn summary_lines_right_align_the_time() {
        let short = line(" => [1/2] RUN x", Duration::from_millis(1234), 30);
        assert_eq!(short, format!(" => [1/2] RUN x{}1.2s\n", " ".repeat(10)));
        assert_eq!(short.trim_end().chars().count(), 29);
        let long = line(&format!(" => {}", "x".repeat(100)), Duration::ZERO, 30);
        assert_eq!(long.trim_end().chars().count(), 29, "{long:?}");
        assert!(long.ends_with(" 0.0s\n"), "{long:?}");
    }

    #[test]
    fn transfer_bars_show_short_digests() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(short_id(&digest), "sha256:abababababab");
        assert_eq!(short_id("pushing layers"), "pushing layers");
    }
}
