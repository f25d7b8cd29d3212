//! One slot: a function process, the Runtime API it talks to, and the state machine between the two.
//!
//! The invoke side ([`Slot::invoke`]) starts the process if there is none, hands the event to the next `/next`,
//! and then waits for whichever comes first: the runtime's answer, the process exiting, or the deadline. Every
//! reset (timeout, crash, init failure) kills the process group and bumps the slot's *generation*; Runtime API
//! connections remember the generation they were accepted in, so a dying process's half-closed `/next` can never
//! take an event meant for its successor.

use crate::MAX_PAYLOAD_BYTES;
use crate::log::{LogLevel, Output};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, channel::Channel};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{Notify, oneshot};

/// The body type of every response the emulator sends.
pub(crate) type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// A response body from bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A JSON error body as the Runtime API renders them.
pub(crate) fn error_json(error_type: &str, message: &str) -> Bytes {
    serde_json::json!({ "errorMessage": message, "errorType": error_type })
        .to_string()
        .into()
}

/// One event on its way to the runtime.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    pub(crate) request_id: String,
    pub(crate) event: Bytes,
    pub(crate) deadline_ms: u64,
    pub(crate) trace_id: String,
    pub(crate) client_context: Option<String>,
    pub(crate) tenant_id: Option<String>,
    pub(crate) function_arn: String,
}

/// How an invoke ended, as seen by the slot.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// `/response` with a buffered body.
    Response {
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
    /// `/response` in streaming mode: the body is still arriving; `done` fires when it has all been passed on.
    Streaming {
        content_type: Option<HeaderValue>,
        /// The runtime's `Trailer` declarations, repeated to the caller (hyper sends only declared trailers).
        trailer: Vec<HeaderValue>,
        body: Channel<Bytes>,
        done: oneshot::Receiver<StreamEnd>,
    },
    /// `/response` over the size limit.
    TooLarge { size: usize },
    /// `/response` with an unknown `Lambda-Runtime-Function-Response-Mode`.
    InvalidResponseMode,
    /// `/error`.
    FunctionError {
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
    /// `/init/error` (the process is then killed).
    InitError {
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
    /// The deadline passed (the process was killed).
    Timeout { seconds: u64 },
    /// The process exited before answering.
    Exited { status: ExitStatus },
    /// An external extension exited before the runtime had its first event (Lambda's `Extension.Crash`).
    ExtensionCrash { status: ExitStatus },
    /// The bootstrap could not be started at all.
    SpawnFailed { message: String },
}

/// How a streamed response ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// The whole body arrived.
    Complete,
    /// The runtime reported an error in the `Lambda-Runtime-Function-Error-Type` trailer.
    FunctionError(String),
    /// The runtime's request broke off mid-body.
    Broken,
}

/// What the REPORT line (and `X-Amz-Log-Result`) needs from an invoke.
#[derive(Debug, Clone)]
pub(crate) struct Timing {
    pub(crate) init_duration: Option<Duration>,
    pub(crate) invoke_started: Instant,
    pub(crate) max_memory_used_mb: Option<u64>,
    /// The last [`LOG_TAIL_BYTES`] of what the function wrote during the invoke.
    pub(crate) function_logs: Bytes,
}

/// How much of an invoke's log `X-Amz-Log-Type: Tail` returns, as Lambda.
pub(crate) const LOG_TAIL_BYTES: usize = 4096;

/// Asks the log forwarder to pass on everything already written, then answers.
type DrainRequest = oneshot::Sender<()>;

#[derive(Default)]
struct RuntimeState {
    generation: u64,
    /// When the current process first called `/next` (its init is done).
    ready_at: Option<Instant>,
    pending: Option<Invocation>,
    current: Option<String>,
    outcome: Option<oneshot::Sender<Outcome>>,
    extensions: Vec<Extension>,
    /// External extensions started with this runtime; events wait until that many have registered.
    expected_extensions: usize,
    /// An event has been handed to the runtime (registration is closed).
    invoked: bool,
}

impl RuntimeState {
    /// Events reach the runtime only when every registered extension is waiting in its own `/event/next`.
    fn extensions_waiting(&self) -> bool {
        self.extensions.len() >= self.expected_extensions
            && self.extensions.iter().all(|e| e.waiting)
    }
}

/// A registered extension (Extensions API).
struct Extension {
    id: String,
    invoke: bool,
    shutdown: bool,
    waiting: bool,
    events: std::collections::VecDeque<Bytes>,
}

struct Shared {
    state: Mutex<RuntimeState>,
    /// Wakes `/runtime/invocation/next` waiters.
    notify: Notify,
    /// Wakes `/extension/event/next` waiters.
    extension_notify: Notify,
    generation: AtomicU64,
    function: FunctionInfo,
}

/// What `/extension/register` tells an extension.
#[derive(Debug, Clone)]
pub(crate) struct FunctionInfo {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) handler: String,
    pub(crate) account_id: String,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, RuntimeState> {
        // A panic while holding this lock would be a bug in this module; recover the data rather than cascade.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How to start the function process.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) argv: Vec<String>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) handler: Option<String>,
    pub(crate) env: Vec<(OsString, OsString)>,
    /// External extensions: every file in this directory is started before the runtime (none if `None`).
    pub(crate) extensions_dir: Option<PathBuf>,
}

/// One function process and its Runtime API.
pub(crate) struct Slot {
    index: usize,
    shared: Arc<Shared>,
    launch: Launch,
    output: Arc<Output>,
    process: tokio::sync::Mutex<Option<Child>>,
    /// The live process's id (= its process group), readable without waiting for an invoke to finish.
    pid: Mutex<Option<u32>>,
    /// External extension processes of the live runtime.
    extension_processes: Mutex<Vec<Child>>,
    /// Talks to the task that forwards the live runtime's output (none when its output is not piped).
    log_drain: Mutex<Option<tokio::sync::mpsc::Sender<DrainRequest>>>,
    /// The function's output since the current invoke started (its last [`LOG_TAIL_BYTES`]).
    captured: Arc<Mutex<Vec<u8>>>,
}

impl Slot {
    /// A slot whose Runtime API is served on `listener`; `launch.env` must already name that address.
    pub(crate) fn new(
        index: usize,
        listener: TcpListener,
        launch: Launch,
        function: FunctionInfo,
        output: Arc<Output>,
    ) -> Arc<Slot> {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            notify: Notify::new(),
            extension_notify: Notify::new(),
            generation: AtomicU64::new(0),
            function,
        });
        tokio::spawn(serve_runtime_api(listener, shared.clone(), output.clone()));
        Arc::new(Slot {
            index,
            shared,
            launch,
            output,
            process: tokio::sync::Mutex::new(None),
            pid: Mutex::new(None),
            extension_processes: Mutex::new(Vec::new()),
            log_drain: Mutex::new(None),
            captured: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Kills the process group, reaps the process and forgets all runtime state. Extensions subscribed to SHUTDOWN
    /// get the event and up to 2 s to call `/event/next` again (or exit) before they are killed too.
    async fn reset(&self, process: &mut Option<Child>, reason: &str) {
        // The group id recorded at spawn: `Child::id` is gone once the runtime has been reaped, but what it started
        // (a shell bootstrap's children) may still be running in its group.
        let group = self
            .pid
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        kill_group(group);
        *self
            .log_drain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        if let Some(mut child) = process.take() {
            let _ = child.kill().await;
        }
        self.stop_extensions(reason).await;
        let mut st = self.shared.lock();
        st.generation += 1;
        self.shared
            .generation
            .store(st.generation, Ordering::SeqCst);
        st.ready_at = None;
        st.pending = None;
        st.current = None;
        st.outcome = None;
        st.extensions.clear();
        st.expected_extensions = 0;
        st.invoked = false;
        drop(st);
        self.shared.notify.notify_waiters();
        self.shared.extension_notify.notify_waiters();
    }

    /// Sends SHUTDOWN to the extensions subscribed to it and gives them until its deadline (2 s) to call
    /// `/event/next` again or exit; then kills the external extension processes.
    async fn stop_extensions(&self, reason: &str) {
        let budget = Duration::from_secs(2);
        let notified = {
            let mut st = self.shared.lock();
            let deadline_ms = epoch_ms() + budget.as_millis() as u64;
            let event = serde_json::json!({
                "eventType": "SHUTDOWN",
                "shutdownReason": reason,
                "deadlineMs": deadline_ms,
            });
            let mut any = false;
            for extension in st.extensions.iter_mut().filter(|e| e.shutdown) {
                extension.events.push_back(event.to_string().into());
                extension.waiting = false;
                any = true;
            }
            any
        };
        if notified {
            self.shared.extension_notify.notify_waiters();
            let until = Instant::now() + budget;
            let mut processes_done = false;
            while Instant::now() < until && !processes_done {
                let answered = {
                    let st = self.shared.lock();
                    st.extensions
                        .iter()
                        .filter(|e| e.shutdown)
                        .all(|e| e.waiting)
                };
                let exited = {
                    let mut processes = self
                        .extension_processes
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    !processes.is_empty()
                        && processes
                            .iter_mut()
                            .all(|c| !matches!(c.try_wait(), Ok(None)))
                };
                processes_done = answered || exited;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let extensions: Vec<Child> = std::mem::take(
            &mut *self
                .extension_processes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for mut child in extensions {
            kill_group(child.id());
            let _ = child.kill().await;
        }
    }

    /// The emulator is stopping (SIGINT/SIGTERM): kills the runtime's process group at once, sends SHUTDOWN
    /// (`SandboxTerminated`) to the extensions, then kills them. Does not wait for an invoke in flight.
    pub(crate) async fn terminate(&self) {
        kill_group(
            *self
                .pid
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        self.stop_extensions("SandboxTerminated").await;
    }

    /// Starts the external extensions (files in `extensions_dir`, in name order) with the function's environment
    /// less its `_`-prefixed variables.
    fn spawn_extensions(&self) {
        let Some(dir) = &self.launch.extensions_dir else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        let env = self
            .launch
            .env
            .iter()
            .filter(|(k, _)| !k.to_string_lossy().starts_with('_'));
        for path in paths {
            let mut command = Command::new(&path);
            command
                .env_clear()
                .envs(env.clone().map(|(k, v)| (k, v)))
                .process_group(0);
            command
                .stdin(null_or_inherit())
                .stdout(Stdio::inherit())
                .stderr(stdout_or_inherit());
            command.kill_on_drop(true);
            match command.spawn() {
                Ok(child) => {
                    self.output.log(
                        LogLevel::Info,
                        &format!("started extension {}", path.display()),
                    );
                    self.shared.lock().expected_extensions += 1;
                    self.extension_processes
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(child);
                }
                Err(e) => self.output.log(
                    LogLevel::Warn,
                    &format!("extension {}: {e}", path.display()),
                ),
            }
        }
    }

    fn spawn(&self) -> Result<Child, String> {
        let (program, args) = self
            .launch
            .argv
            .split_first()
            .ok_or_else(|| "empty bootstrap command".to_owned())?;
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(self.launch.env.iter().map(|(k, v)| (k, v)))
            .process_group(0);
        command.stdin(null_or_inherit());
        // stdout and stderr share one pipe that the emulator reads: the output still reaches the emulator's stdout
        // (as with the official RIE), and each invoke's part of it can be returned with `X-Amz-Log-Type: Tail`.
        let pipe = output_pipe();
        match &pipe {
            Some((_, out, err)) => {
                let (out, err) = (out.try_clone(), err.try_clone());
                if let (Ok(out), Ok(err)) = (out, err) {
                    command.stdout(Stdio::from(out)).stderr(Stdio::from(err));
                }
            }
            None => {
                command.stdout(Stdio::inherit()).stderr(stdout_or_inherit());
            }
        }
        if let Some(cwd) = &self.launch.cwd {
            command.current_dir(cwd);
        }
        command.kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| format!("exec '{}': {e}", self.launch.argv.join(" ")))?;
        // `command` still holds copies of the write ends; drop them so the pipe ends when the process does.
        drop(command);
        let drain = pipe.map(|(receiver, _, _)| {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tokio::spawn(forward_output(
                receiver,
                rx,
                self.output.clone(),
                self.captured.clone(),
            ));
            tx
        });
        *self
            .log_drain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = drain;
        Ok(child)
    }

    /// Waits until everything the function wrote so far has been passed on (at most 200 ms), then takes it.
    async fn take_function_logs(&self) -> Bytes {
        let drain = self
            .log_drain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(drain) = drain {
            let (ack, done) = oneshot::channel();
            if drain.send(ack).await.is_ok() {
                let _ = tokio::time::timeout(Duration::from_millis(200), done).await;
            }
        }
        let logs = std::mem::take(
            &mut *self
                .captured
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        Bytes::from(logs)
    }

    /// Runs one invocation to its end (for streaming responses: to the start of the body) and reports timing.
    pub(crate) async fn invoke(
        &self,
        invocation: Invocation,
        timeout: Duration,
    ) -> (Outcome, Timing) {
        let arrived = Instant::now();
        let deadline = tokio::time::Instant::from_std(arrived + timeout);
        let mut process = self.process.lock().await;
        self.captured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        if let Some(child) = process.as_mut()
            && !matches!(child.try_wait(), Ok(None))
        {
            self.output.log(
                LogLevel::Warn,
                "runtime exited while idle; starting a new one",
            );
            self.reset(&mut process, "Failure").await;
        }
        let mut init_started = None;
        if process.is_none() {
            self.output.log(
                LogLevel::Info,
                &format!(
                    "INIT START(type: on-demand, phase: init) slot={}",
                    self.index
                ),
            );
            self.output.log(
                LogLevel::Info,
                &format!(
                    "exec '{}' (cwd={}, handler={})",
                    self.launch.argv.join(" "),
                    self.launch.cwd.as_deref().map_or_else(
                        || std::env::current_dir()
                            .unwrap_or_default()
                            .display()
                            .to_string(),
                        |d| d.display().to_string()
                    ),
                    self.launch.handler.as_deref().unwrap_or("")
                ),
            );
            self.spawn_extensions();
            match self.spawn() {
                Ok(child) => {
                    *self
                        .pid
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = child.id();
                    *process = Some(child);
                }
                Err(message) => {
                    self.output.log(LogLevel::Error, &message);
                    // Stops the external extensions started for this runtime.
                    self.reset(&mut process, "Failure").await;
                    let timing = Timing {
                        init_duration: None,
                        invoke_started: arrived,
                        max_memory_used_mb: None,
                        function_logs: Bytes::new(),
                    };
                    return (Outcome::SpawnFailed { message }, timing);
                }
            }
            init_started = Some(Instant::now());
        }
        let (tx, mut rx) = oneshot::channel();
        {
            let mut st = self.shared.lock();
            st.pending = Some(invocation);
            st.outcome = Some(tx);
        }
        self.shared.notify.notify_waiters();
        let child = process
            .as_mut()
            .expect("a process was started above or was already running");
        let pid = child.id();
        let mut watch_extensions = tokio::time::interval(Duration::from_millis(50));
        let outcome = loop {
            tokio::select! {
                outcome = &mut rx => break outcome.ok(),
                status = child.wait() => break match rx.try_recv() {
                    Ok(outcome) => Some(outcome),
                    Err(_) => Some(match status {
                        Ok(status) => Outcome::Exited { status },
                        Err(e) => Outcome::SpawnFailed { message: format!("waiting for the runtime: {e}") },
                    }),
                },
                () = tokio::time::sleep_until(deadline) => break Some(Outcome::Timeout { seconds: timeout.as_secs() }),
                _ = watch_extensions.tick() => {
                    if let Some(status) = self.extension_crashed_during_init() {
                        break Some(Outcome::ExtensionCrash { status });
                    }
                }
            }
        };
        let outcome = outcome.unwrap_or(Outcome::SpawnFailed {
            message: "runtime state was reset".into(),
        });
        let ready_at = self.shared.lock().ready_at;
        let max_memory_used_mb = pid.and_then(peak_rss_mb);
        let function_logs = self.take_function_logs().await;
        let timing = Timing {
            init_duration: init_started.map(|s| {
                ready_at
                    .unwrap_or_else(Instant::now)
                    .saturating_duration_since(s)
            }),
            invoke_started: if init_started.is_some() {
                ready_at.unwrap_or(arrived).max(arrived)
            } else {
                arrived
            },
            max_memory_used_mb,
            function_logs,
        };
        match &outcome {
            Outcome::Response { .. }
            | Outcome::FunctionError { .. }
            | Outcome::Streaming { .. } => {}
            Outcome::TooLarge { .. } | Outcome::InvalidResponseMode => {}
            Outcome::Timeout { .. }
            | Outcome::Exited { .. }
            | Outcome::InitError { .. }
            | Outcome::ExtensionCrash { .. }
            | Outcome::SpawnFailed { .. } => {
                self.output.log(
                    LogLevel::Info,
                    &format!("resetting runtime of slot {}", self.index),
                );
                let reason = if matches!(outcome, Outcome::Timeout { .. }) {
                    "Timeout"
                } else {
                    "Failure"
                };
                self.reset(&mut process, reason).await;
            }
        }
        (outcome, timing)
    }

    /// The exit status of an external extension that died while the runtime was still initialising, if any.
    fn extension_crashed_during_init(&self) -> Option<ExitStatus> {
        if self.shared.lock().invoked {
            return None;
        }
        self.extension_processes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter_mut()
            .find_map(|c| c.try_wait().ok().flatten())
    }

    /// Waits for a streaming body to finish, killing the process if the deadline passes first. Returns the REPORT
    /// status: none for a complete body, `error` for an error trailer or a broken body, `timeout`.
    pub(crate) async fn finish_stream(
        &self,
        done: oneshot::Receiver<StreamEnd>,
        deadline: Instant,
    ) -> Option<&'static str> {
        let end = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), done).await;
        match end {
            Ok(Ok(StreamEnd::Complete)) => None,
            Ok(Ok(StreamEnd::FunctionError(error_type))) => {
                self.output.log(
                    LogLevel::Warn,
                    &format!("streamed response ended with {error_type}"),
                );
                Some("error")
            }
            Ok(Ok(StreamEnd::Broken) | Err(_)) => Some("error"),
            Err(_) => {
                let mut process = self.process.lock().await;
                self.reset(&mut process, "Timeout").await;
                Some("timeout")
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// SIGKILL to the process group led by `pid`. The group may already be gone; that is what we want anyway.
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// A pipe for the function's stdout and stderr: the emulator's end and two write ends. None if it cannot be made.
fn output_pipe() -> Option<(
    tokio::net::unix::pipe::Receiver,
    std::os::fd::OwnedFd,
    std::os::fd::OwnedFd,
)> {
    let (sender, receiver) = tokio::net::unix::pipe::pipe().ok()?;
    let out = sender.into_blocking_fd().ok()?;
    let err = out.try_clone().ok()?;
    Some((receiver, out, err))
}

/// Passes the function's output on to the emulator's stdout and keeps the tail of it for the current invoke. On a
/// drain request it first reads everything already in the pipe, so an invoke's log is complete when it is taken.
async fn forward_output(
    receiver: tokio::net::unix::pipe::Receiver,
    mut drains: tokio::sync::mpsc::Receiver<DrainRequest>,
    output: Arc<Output>,
    captured: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let emit = |bytes: &[u8]| {
        output.function_output(bytes);
        let mut captured = captured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        captured.extend_from_slice(bytes);
        if captured.len() > LOG_TAIL_BYTES {
            let excess = captured.len() - LOG_TAIL_BYTES;
            captured.drain(..excess);
        }
    };
    loop {
        tokio::select! {
            ready = receiver.readable() => {
                if ready.is_err() {
                    return;
                }
                match receiver.try_read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => emit(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
            request = drains.recv() => {
                let Some(ack) = request else { return };
                while let Ok(n) = receiver.try_read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    emit(&buf[..n]);
                }
                let _ = ack.send(());
            }
        }
    }
}

/// `/dev/null`, or the emulator's stdin where there is none (a bare chroot).
fn null_or_inherit() -> Stdio {
    match std::fs::File::open("/dev/null") {
        Ok(null) => Stdio::from(null),
        Err(_) => Stdio::inherit(),
    }
}

/// The emulator's stdout: the official RIE sends the function's stderr there too, next to the START/END lines.
fn stdout_or_inherit() -> Stdio {
    match std::os::fd::AsFd::as_fd(&std::io::stdout()).try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::inherit(),
    }
}

/// Peak resident memory of a process in MB (`VmHWM` in `/proc/<pid>/status`), rounded up.
fn peak_rss_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb.div_ceil(1024))
}

async fn serve_runtime_api(listener: TcpListener, shared: Arc<Shared>, output: Arc<Output>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                output.log(LogLevel::Warn, &format!("runtime API accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let generation = shared.generation.load(Ordering::SeqCst);
        let shared = shared.clone();
        let output = output.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                let output = output.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        runtime_api(req, &shared, generation, &output).await,
                    )
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    response
}

fn accepted() -> Response<Body> {
    reply(
        StatusCode::ACCEPTED,
        "application/json",
        r#"{"status":"OK"}"#,
    )
}

fn rejected(status: StatusCode, error_type: &str, message: &str) -> Response<Body> {
    reply(status, "application/json", error_json(error_type, message))
}

fn invalid_state(from: &str, to: &str) -> Response<Body> {
    let message = format!(
        "State transition from {from} to {to} failed for runtime. Error: State transition is not allowed"
    );
    rejected(StatusCode::FORBIDDEN, "InvalidStateTransition", &message)
}

const RUNTIME_PREFIX: &str = "/2018-06-01/runtime/";

async fn runtime_api(
    req: Request<Incoming>,
    shared: &Shared,
    generation: u64,
    output: &Output,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    output.log(
        LogLevel::Debug,
        &format!("runtime API {} {path}", req.method()),
    );
    if let Some(rest) = path.strip_prefix(RUNTIME_PREFIX) {
        let parts: Vec<&str> = rest.split('/').collect();
        return match (req.method(), parts.as_slice()) {
            (&Method::GET, ["invocation", "next"]) => next(shared, generation).await,
            (&Method::POST, ["invocation", id, "response"]) => {
                let id = (*id).to_owned();
                response(req, shared, generation, &id).await
            }
            (&Method::POST, ["invocation", id, "error"]) => {
                let id = (*id).to_owned();
                function_error(req, shared, generation, &id).await
            }
            (&Method::POST, ["init", "error"]) => init_error(req, shared, generation).await,
            (
                _,
                ["invocation", "next"]
                | ["invocation", _, "response" | "error"]
                | ["init", "error"],
            ) => reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", ""),
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "404 page not found\n",
            ),
        };
    }
    if let Some(rest) = path.strip_prefix(EXTENSION_PREFIX) {
        return match (req.method(), rest) {
            (&Method::POST, "register") => register_extension(req, shared, generation).await,
            (&Method::GET, "event/next") => extension_next(req, shared, generation).await,
            (&Method::POST, "init/error") => extension_init_error(req, shared, generation).await,
            (&Method::POST, "exit/error") => match extension_id(&req, shared, generation) {
                Ok(_) => accepted(),
                Err(response) => *response,
            },
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "404 page not found\n",
            ),
        };
    }
    match (req.method(), path.as_str()) {
        (&Method::GET, "/2018-06-01/ping") => {
            reply(StatusCode::OK, "text/plain; charset=utf-8", "pong")
        }
        (_, "/2020-08-15/logs") => rejected(
            StatusCode::ACCEPTED,
            "Logs.NotSupported",
            "Logs API is not supported",
        ),
        (_, "/2022-07-01/telemetry") => rejected(
            StatusCode::ACCEPTED,
            "Telemetry.NotSupported",
            "Telemetry API is not supported",
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 page not found\n",
        ),
    }
}

fn stale() -> Response<Body> {
    rejected(
        StatusCode::GONE,
        "Runtime.Reset",
        "this runtime process was reset",
    )
}

async fn next(shared: &Shared, generation: u64) -> Response<Body> {
    let mut first_look = true;
    loop {
        let notified = {
            let mut st = shared.lock();
            if st.generation != generation {
                return stale();
            }
            if st.current.is_some() {
                // Asking for the next event before answering the current one breaks the protocol. A poller that
                // was already waiting when another took the event just waits for the one after.
                if first_look {
                    return invalid_state("Invoking", "Ready");
                }
            } else {
                if st.ready_at.is_none() {
                    st.ready_at = Some(Instant::now());
                }
                if st.pending.is_some() && st.extensions_waiting() {
                    let inv = st.pending.take().expect("checked just above");
                    st.current = Some(inv.request_id.clone());
                    st.invoked = true;
                    let event = serde_json::json!({
                        "eventType": "INVOKE",
                        "deadlineMs": inv.deadline_ms,
                        "requestId": inv.request_id,
                        "invokedFunctionArn": inv.function_arn,
                        "tracing": { "type": "X-Amzn-Trace-Id", "value": inv.trace_id },
                    });
                    let mut any = false;
                    for extension in st.extensions.iter_mut().filter(|e| e.invoke) {
                        extension.events.push_back(event.to_string().into());
                        extension.waiting = false;
                        any = true;
                    }
                    drop(st);
                    if any {
                        shared.extension_notify.notify_waiters();
                    }
                    return next_reply(&inv);
                }
            }
            let notified = shared.notify.notified();
            drop(st);
            notified
        };
        first_look = false;
        notified.await;
    }
}

fn next_reply(inv: &Invocation) -> Response<Body> {
    let mut response = Response::new(full(inv.event.clone()));
    let headers = response.headers_mut();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    put("lambda-runtime-aws-request-id", &inv.request_id);
    put("lambda-runtime-deadline-ms", &inv.deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", &inv.function_arn);
    put("lambda-runtime-trace-id", &inv.trace_id);
    if let Some(cc) = &inv.client_context {
        put("lambda-runtime-client-context", cc);
    }
    if let Some(tenant) = &inv.tenant_id {
        put("lambda-runtime-aws-tenant-id", tenant);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Checks that `id` is the invocation in flight and takes its outcome sender.
fn take_current(
    shared: &Shared,
    generation: u64,
    id: &str,
    to: &str,
) -> Result<oneshot::Sender<Outcome>, Box<Response<Body>>> {
    let mut st = shared.lock();
    if st.generation != generation {
        return Err(Box::new(stale()));
    }
    match &st.current {
        None => Err(Box::new(invalid_state("Ready", to))),
        Some(current) if current != id => Err(Box::new(rejected(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "Invalid request ID",
        ))),
        Some(_) => {
            st.current = None;
            st.outcome
                .take()
                .ok_or_else(|| Box::new(invalid_state("Ready", to)))
        }
    }
}

async fn response(
    req: Request<Incoming>,
    shared: &Shared,
    generation: u64,
    id: &str,
) -> Response<Body> {
    let mode = req
        .headers()
        .get("lambda-runtime-function-response-mode")
        .map(|v| v.as_bytes().to_ascii_lowercase());
    let content_type = req.headers().get(CONTENT_TYPE).cloned();
    let sender = match take_current(shared, generation, id, "InvocationResponse") {
        Ok(sender) => sender,
        Err(response) => return *response,
    };
    match mode.as_deref() {
        None | Some(b"buffered") => {
            let body = match req.into_body().collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    let message = format!("reading the response body: {e}");
                    let _ = sender.send(Outcome::SpawnFailed { message });
                    return rejected(
                        StatusCode::BAD_REQUEST,
                        "InvalidResponse",
                        "cannot read the response body",
                    );
                }
            };
            if body.len() > MAX_PAYLOAD_BYTES {
                let _ = sender.send(Outcome::TooLarge { size: body.len() });
                let message =
                    format!("Exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes).");
                return rejected(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    &message,
                );
            }
            let _ = sender.send(Outcome::Response { content_type, body });
            accepted()
        }
        Some(b"streaming") => {
            let (mut tx, body) = Channel::<Bytes>::new(16);
            let (done_tx, done) = oneshot::channel();
            let trailer = req
                .headers()
                .get_all(hyper::header::TRAILER)
                .iter()
                .cloned()
                .collect();
            let _ = sender.send(Outcome::Streaming {
                content_type,
                trailer,
                body,
                done,
            });
            let mut incoming = req.into_body();
            // Keep reading even if the caller went away, so the runtime always gets its answer.
            let mut caller_gone = false;
            let mut end = StreamEnd::Complete;
            while let Some(frame) = incoming.frame().await {
                let Ok(frame) = frame else {
                    end = StreamEnd::Broken;
                    break;
                };
                let frame = match frame.into_data() {
                    Ok(data) => {
                        if !caller_gone {
                            caller_gone = tx.send_data(data).await.is_err();
                        }
                        continue;
                    }
                    Err(frame) => frame,
                };
                if let Ok(trailers) = frame.into_trailers() {
                    if let Some(error_type) = trailers.get("lambda-runtime-function-error-type") {
                        end = StreamEnd::FunctionError(
                            String::from_utf8_lossy(error_type.as_bytes()).into_owned(),
                        );
                    }
                    // hyper sends these on to callers that asked for trailers (`TE: trailers`).
                    if !caller_gone {
                        caller_gone = tx.send_trailers(trailers).await.is_err();
                    }
                }
            }
            drop(tx);
            let _ = done_tx.send(end);
            accepted()
        }
        Some(_) => {
            let _ = sender.send(Outcome::InvalidResponseMode);
            rejected(
                StatusCode::BAD_REQUEST,
                "InvalidFunctionResponseMode",
                "Invalid function response mode",
            )
        }
    }
}

const EXTENSION_PREFIX: &str = "/2020-01-01/extension/";

async fn register_extension(
    req: Request<Incoming>,
    shared: &Shared,
    generation: u64,
) -> Response<Body> {
    if req
        .headers()
        .get("lambda-extension-name")
        .is_none_or(|v| v.is_empty())
    {
        return rejected(
            StatusCode::FORBIDDEN,
            "Extension.InvalidExtensionName",
            "Empty extension name",
        );
    }
    let account_id = req
        .headers()
        .get("lambda-extension-accept-feature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "accountId"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let events: Vec<String> = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("events").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    if let Some(bad) = events
        .iter()
        .find(|e| !matches!(e.as_str(), "INVOKE" | "SHUTDOWN"))
    {
        let message = format!("Unknown event type {bad}");
        return rejected(StatusCode::BAD_REQUEST, "InvalidEventType", &message);
    }
    let id = crate::ids::request_id();
    {
        let mut st = shared.lock();
        if st.generation != generation {
            return stale();
        }
        if st.invoked {
            return invalid_state("Ready", "ExtensionRegistered");
        }
        st.extensions.push(Extension {
            id: id.clone(),
            invoke: events.iter().any(|e| e == "INVOKE"),
            shutdown: events.iter().any(|e| e == "SHUTDOWN"),
            waiting: false,
            events: std::collections::VecDeque::new(),
        });
    }
    let info = &shared.function;
    let mut body = serde_json::json!({
        "functionName": info.name,
        "functionVersion": info.version,
        "handler": info.handler,
    });
    if account_id {
        body["accountId"] = serde_json::Value::String(info.account_id.clone());
    }
    let mut response = reply(StatusCode::OK, "application/json", body.to_string());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(
            HeaderName::from_static("lambda-extension-identifier"),
            value,
        );
    }
    response
}

/// The registered extension named by the `Lambda-Extension-Identifier` header.
fn extension_id(
    req: &Request<Incoming>,
    shared: &Shared,
    generation: u64,
) -> Result<String, Box<Response<Body>>> {
    let Some(id) = req
        .headers()
        .get("lambda-extension-identifier")
        .and_then(|v| v.to_str().ok())
    else {
        let message = "Missing Lambda-Extension-Identifier header";
        return Err(Box::new(rejected(
            StatusCode::FORBIDDEN,
            "Extension.MissingExtensionIdentifier",
            message,
        )));
    };
    let st = shared.lock();
    if st.generation != generation {
        return Err(Box::new(stale()));
    }
    if st.extensions.iter().any(|e| e.id == id) {
        Ok(id.to_owned())
    } else {
        let message = "Invalid Lambda-Extension-Identifier";
        Err(Box::new(rejected(
            StatusCode::FORBIDDEN,
            "Extension.InvalidExtensionIdentifier",
            message,
        )))
    }
}

async fn extension_next(
    req: Request<Incoming>,
    shared: &Shared,
    generation: u64,
) -> Response<Body> {
    let id = match extension_id(&req, shared, generation) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    loop {
        let notified = {
            let mut st = shared.lock();
            if st.generation != generation {
                return stale();
            }
            let Some(extension) = st.extensions.iter_mut().find(|e| e.id == id) else {
                return stale();
            };
            if let Some(event) = extension.events.pop_front() {
                extension.waiting = false;
                let mut response = reply(StatusCode::OK, "application/json", event);
                let event_id = crate::ids::request_id();
                if let Ok(value) = HeaderValue::from_str(&event_id) {
                    response.headers_mut().insert(
                        HeaderName::from_static("lambda-extension-event-identifier"),
                        value,
                    );
                }
                return response;
            }
            extension.waiting = true;
            let notified = shared.extension_notify.notified();
            drop(st);
            notified
        };
        // The runtime's `/next` may have been waiting for this extension.
        shared.notify.notify_waiters();
        notified.await;
    }
}

async fn extension_init_error(
    req: Request<Incoming>,
    shared: &Shared,
    generation: u64,
) -> Response<Body> {
    if let Err(response) = extension_id(&req, shared, generation) {
        return *response;
    }
    init_error(req, shared, generation).await
}

const ERROR_CAUSE_TYPE: &str = "application/vnd.aws.lambda.error.cause+json";

async fn function_error(
    req: Request<Incoming>,
    shared: &Shared,
    generation: u64,
    id: &str,
) -> Response<Body> {
    let content_type = req.headers().get(CONTENT_TYPE).cloned();
    let sender = match take_current(shared, generation, id, "InvocationErrorResponse") {
        Ok(sender) => sender,
        Err(response) => return *response,
    };
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let (content_type, body) = trim_error_cause(content_type, body);
    let _ = sender.send(Outcome::FunctionError { content_type, body });
    accepted()
}

/// With the error-cause content type, Lambda keeps only errorMessage/errorType/stackTrace of the body.
fn trim_error_cause(
    content_type: Option<HeaderValue>,
    body: Bytes,
) -> (Option<HeaderValue>, Bytes) {
    if content_type
        .as_ref()
        .is_some_and(|ct| ct.as_bytes().starts_with(ERROR_CAUSE_TYPE.as_bytes()))
        && let Ok(serde_json::Value::Object(map)) =
            serde_json::from_slice::<serde_json::Value>(&body)
    {
        let kept: serde_json::Map<String, serde_json::Value> = map
            .into_iter()
            .filter(|(k, _)| matches!(k.as_str(), "errorMessage" | "errorType" | "stackTrace"))
            .collect();
        let body = serde_json::Value::Object(kept).to_string().into();
        return (Some(HeaderValue::from_static("application/json")), body);
    }
    (content_type, body)
}

async fn init_error(req: Request<Incoming>, shared: &Shared, generation: u64) -> Response<Body> {
    let content_type = req.headers().get(CONTENT_TYPE).cloned();
    let sender = {
        let mut st = shared.lock();
        if st.generation != generation {
            return stale();
        }
        if st.ready_at.is_some() {
            return invalid_state("Ready", "InitError");
        }
        st.outcome.take()
    };
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    if let Some(sender) = sender {
        let _ = sender.send(Outcome::InitError { content_type, body });
    }
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_cause_bodies_are_trimmed() {
        let body = Bytes::from(r#"{"errorMessage":"m","errorType":"T","stackTrace":[],"extra":1}"#);
        let (ct, trimmed) = trim_error_cause(
            Some(HeaderValue::from_static(ERROR_CAUSE_TYPE)),
            body.clone(),
        );
        let v: serde_json::Value = serde_json::from_slice(&trimmed).expect("valid JSON");
        assert_eq!(
            v,
            serde_json::json!({"errorMessage":"m","errorType":"T","stackTrace":[]})
        );
        assert_eq!(ct, Some(HeaderValue::from_static("application/json")));
        let (_, untouched) = trim_error_cause(
            Some(HeaderValue::from_static("application/json")),
            body.clone(),
        );
        assert_eq!(untouched, body);
    }

    #[test]
    fn peak_rss_of_this_process_is_known() {
        assert!(peak_rss_mb(std::process::id()).is_some_and(|mb| mb > 0));
    }
}
