//! A real `aws-lambda-rie` process on random loopback ports, and helpers to invoke it.
#![allow(dead_code, unreachable_pub)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// A free loopback port (bound and released; good enough for tests).
fn free_port() -> u16 {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

pub struct Emulator {
    child: Child,
    pub base: String,
    pub runtime_api: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn collect(reader: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            let mut s = into.lock().expect("log buffer lock");
            s.push_str(&line);
            s.push('\n');
        }
    });
}

impl Emulator {
    /// Starts the emulator with `args` (flags and bootstrap) in `cwd`, with extra `env`.
    pub fn start(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Emulator {
        let front = free_port();
        let api = free_port();
        let runtime_api = format!("127.0.0.1:{api}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_aws-lambda-rie"));
        command
            .arg("--runtime-interface-emulator-address")
            .arg(format!("127.0.0.1:{front}"))
            .args(args)
            // Flags after the bootstrap are still the emulator's, as with the official RIE.
            .arg(format!("--runtime-api-address={runtime_api}"))
            .current_dir(cwd)
            .env_remove("AWS_LAMBDA_MAX_CONCURRENCY")
            .env_remove("AWS_LAMBDA_FUNCTION_TIMEOUT")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start the aws-lambda-rie binary");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().expect("piped stdout"), stdout.clone());
        collect(child.stderr.take().expect("piped stderr"), stderr.clone());
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", front)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "emulator exited with {status}: {}",
                    stderr.lock().expect("lock")
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "emulator did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Emulator {
            child,
            base: format!("http://127.0.0.1:{front}"),
            runtime_api,
            stdout,
            stderr,
        }
    }

    pub fn url(&self) -> String {
        format!("{}/2015-03-31/functions/function/invocations", self.base)
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("stdout buffer lock").clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer lock").clone()
    }

    /// Waits until stdout contains `needle` (log lines are written just after the reply).
    pub fn wait_stdout(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let out = self.stdout();
            if out.contains(needle) {
                return out;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "stdout never contained {needle:?}:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32)
            .expect("a child has a positive pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .expect("signal the emulator");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the emulator") {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "emulator ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let started = Instant::now();
            while matches!(self.child.try_wait(), Ok(None))
                && started.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The invoke's request id (`X-Amzn-RequestId`), which every reply carries.
    pub fn request_id(&self) -> String {
        self.header("x-amzn-requestid")
            .expect("request id header")
            .to_owned()
    }
}

pub fn client() -> reqwest::Client {
    // reqwest is built without a TLS provider choice; these tests only speak plain HTTP on loopback.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("build an HTTP client")
}

pub async fn invoke(url: &str, event: &str) -> Reply {
    invoke_with(client().post(url).body(event.to_owned())).await
}

/// Invokes with `event`; the reply must be a 200.
pub async fn invoke_ok(url: &str, event: &str) -> Reply {
    let reply = invoke(url, event).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply
}

/// An invoke of `{}` that the test, as the runtime, has taken with `/next`: the caller's task, waiting for the
/// answer, and the invoke's request id.
pub async fn pending_invoke(emulator: &Emulator) -> (tokio::task::JoinHandle<Reply>, String) {
    let caller = tokio::spawn(invoke_with(client().post(emulator.url()).body("{}")));
    let id = next_request_id(emulator).await;
    (caller, id)
}

pub async fn invoke_with(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("the emulator answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("read the reply body");
    Reply {
        status,
        headers,
        body,
    }
}

/// Skips (returns false) only when HOIST_SKIP_PEER_TESTS=1; otherwise a missing client fails the test.
pub fn require(available: Result<(), String>) -> bool {
    match available {
        Ok(()) => true,
        Err(_) if std::env::var("HOIST_SKIP_PEER_TESTS").as_deref() == Ok("1") => false,
        Err(message) => panic!("{message} (or set HOIST_SKIP_PEER_TESTS=1 to skip)"),
    }
}

/// The REPORT line for `request_id`, once it has been written.
pub fn report_line(emulator: &Emulator, request_id: &str) -> String {
    let needle = format!("REPORT RequestId: {request_id}");
    let out = emulator.wait_stdout(&needle);
    out.lines()
        .find(|l| l.starts_with(&needle))
        .expect("found above")
        .to_owned()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

/// The emulator with `sleep 60` as its runtime: a real process that never calls the Runtime API, so the test can
/// speak for it.
pub fn idle_runtime(env: &[(&str, &str)]) -> Emulator {
    Emulator::start(&["sleep", "60"], Path::new(FIXTURES), env)
}

/// `http://<runtime API>/2018-06-01/runtime/<path>`.
pub fn runtime_url(emulator: &Emulator, path: &str) -> String {
    format!("http://{}/2018-06-01/runtime/{path}", emulator.runtime_api)
}

/// The value of header `name` of `response`, which must be there.
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("header {name}"))
        .to_owned()
}

/// The runtime's `GET invocation/next`, which must answer 200 (it waits for an invoke).
pub async fn next(emulator: &Emulator) -> reqwest::Response {
    let response = client()
        .get(runtime_url(emulator, "invocation/next"))
        .send()
        .await
        .expect("/next answers");
    assert_eq!(response.status().as_u16(), 200);
    response
}

/// The request id of the next invoke the runtime is handed.
pub async fn next_request_id(emulator: &Emulator) -> String {
    header(&next(emulator).await, "lambda-runtime-aws-request-id")
}

/// POSTs `body` with `headers` to `url`; returns the status and the body of the answer.
pub async fn post(url: String, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = client().post(url).body(body.to_owned());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("the runtime API answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// The runtime's `POST invocation/<id>/response` with `body`; returns the status and the body of the answer.
pub async fn respond(
    emulator: &Emulator,
    id: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    post(
        runtime_url(emulator, &format!("invocation/{id}/response")),
        body,
        headers,
    )
    .await
}

/// A real function: how to start it and where.
pub struct Function {
    pub bootstrap: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Function {
    pub fn start(&self, extra_env: &[(&str, &str)]) -> Emulator {
        let args: Vec<&str> = self.bootstrap.iter().map(String::as_str).collect();
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend_from_slice(extra_env);
        Emulator::start(&args, &self.cwd, &env)
    }
}

fn pid(reply: &Reply) -> u64 {
    reply.json()["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("echo carries a pid: {}", reply.body))
}

/// Echo twice: 200, the event back, Lambda's headers, START/END/REPORT, Init Duration only on the cold invoke.
pub async fn success(f: &Function) {
    let emulator = f.start(&[]);
    let first = invoke(&emulator.url(), r#"{"hello":"world"}"#).await;
    assert_eq!(first.status, 200, "{}\n{}", first.body, emulator.stdout());
    let body = first.json();
    assert_eq!(body["event"], serde_json::json!({"hello": "world"}));
    let request_id = first.request_id();
    assert_eq!(body["request_id"], request_id.as_str());
    assert_eq!(
        body["arn"],
        "arn:aws:lambda:us-east-1:012345678912:function:test_function"
    );
    assert_eq!(body["function_name"], "test_function");
    assert_eq!(body["runtime_api"], emulator.runtime_api.as_str());
    let trace = body["trace_id"]
        .as_str()
        .expect("a trace id always reaches the function");
    assert!(trace.starts_with("Root=1-"), "{trace}");
    assert_eq!(first.header("x-amz-function-error"), None);
    assert_eq!(first.header("x-amz-executed-version"), Some("$LATEST"));
    let report = report_line(&emulator, &request_id);
    let out = emulator.stdout();
    assert!(
        out.contains(&format!("START RequestId: {request_id} Version: $LATEST")),
        "{out}"
    );
    assert!(
        out.contains(&format!("END RequestId: {request_id}\n")),
        "{out}"
    );
    assert!(report.contains("\tInit Duration: "), "{report}");
    assert!(
        report.contains("\tMemory Size: 3008 MB\tMax Memory Used: "),
        "{report}"
    );
    let used: u64 = report
        .split("Max Memory Used: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("a number of MB");
    assert!(
        used > 0 && used < 3008,
        "a measured peak, not the memory size: {report}"
    );
    let logs = emulator.stderr();
    assert!(
        logs.contains("INVOKE RTDONE(status: success, duration: "),
        "{logs}"
    );
    assert!(
        logs.contains("(rapid) INIT START(type: on-demand, phase: init)"),
        "{logs}"
    );

    // Any function name in the path; the same warm process answers.
    let url = format!(
        "{}/2015-03-31/functions/my-other-name/invocations",
        emulator.base
    );
    let second = invoke_with(client().post(url).body("{\"n\":2}").header(
        "x-amzn-trace-id",
        "Root=1-5e1b4151-5ac6c58dc39a6b8c4f0e2b1a;Parent=53995c3f42cd8ad8;Sampled=1",
    ))
    .await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(pid(&second), pid(&first), "warm process reused");
    assert_eq!(
        second.json()["trace_id"],
        "Root=1-5e1b4151-5ac6c58dc39a6b8c4f0e2b1a;Parent=53995c3f42cd8ad8;Sampled=1"
    );
    let second_id = second.request_id();
    assert_ne!(second_id, request_id);
    let report = report_line(&emulator, &second_id);
    assert!(
        !report.contains("Init Duration"),
        "warm invoke has no init: {report}"
    );
    assert!(
        emulator.stop().success(),
        "SIGTERM ends the emulator with status 0"
    );
}

/// A handler error: 200, X-Amz-Function-Error, the runtime's error body; the process stays warm.
pub async fn handler_error(f: &Function) {
    let emulator = f.start(&[]);
    let warm = invoke_ok(&emulator.url(), "{}").await;
    let failed = invoke_ok(&emulator.url(), r#"{"fail":true}"#).await;
    assert_eq!(failed.header("x-amz-function-error"), Some("Unhandled"));
    let body = failed.json();
    assert_eq!(body["errorType"], "EchoFunctionError", "{body}");
    assert_eq!(body["errorMessage"], "failure requested by event", "{body}");
    let id = failed.request_id();
    let report = report_line(&emulator, &id);
    assert!(report.contains("Status: error"), "{report}");
    let after = invoke_ok(&emulator.url(), "{}").await;
    assert_eq!(
        pid(&after),
        pid(&warm),
        "a handler error does not restart the process"
    );
}

/// A handler sleeping past AWS_LAMBDA_FUNCTION_TIMEOUT: 200 `Task timed out`, then a fresh process answers.
pub async fn timeout_then_recovery(f: &Function) {
    let emulator = f.start(&[("AWS_LAMBDA_FUNCTION_TIMEOUT", "2")]);
    let warm = invoke_ok(&emulator.url(), "{}").await;
    let remaining = warm.json()["remaining_ms"].as_u64();
    if let Some(ms) = remaining {
        assert!(ms <= 2000 && ms > 500, "deadline follows the timeout: {ms}");
    }
    let started = Instant::now();
    let slow = invoke(&emulator.url(), r#"{"sleep_ms":10000}"#).await;
    let took = started.elapsed();
    assert_eq!(slow.status, 200);
    assert_eq!(slow.body, "Task timed out after 2.00 seconds");
    assert_eq!(slow.header("x-amz-function-error"), Some("Unhandled"));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let id = slow.request_id();
    let report = report_line(&emulator, &id);
    assert!(report.contains("Status: timeout"), "{report}");
    assert!(
        emulator
            .stdout()
            .contains(&format!("{id} Task timed out after 2.00 seconds"))
    );
    let after = invoke_ok(&emulator.url(), r#"{"after":"timeout"}"#).await;
    assert_ne!(
        pid(&after),
        pid(&warm),
        "the timed-out process was replaced"
    );
    let id = after.request_id();
    assert!(
        report_line(&emulator, &id).contains("Init Duration"),
        "re-init is reported"
    );
}

/// The process exits mid-invoke: 502 Runtime.ExitError, then a fresh process answers.
pub async fn crash_then_recovery(f: &Function) {
    let emulator = f.start(&[]);
    let warm = invoke_ok(&emulator.url(), "{}").await;
    let crashed = invoke(&emulator.url(), r#"{"exit":3}"#).await;
    assert_eq!(crashed.status, 502, "{}", crashed.body);
    let body = crashed.json();
    assert_eq!(body["errorType"], "Runtime.ExitError");
    let id = crashed.request_id();
    assert_eq!(
        body["errorMessage"],
        format!("RequestId: {id} Error: Runtime exited with error: exit status 3")
    );
    let after = invoke_ok(&emulator.url(), "{}").await;
    assert_ne!(pid(&after), pid(&warm));
}

/// Init fails (FAIL_INIT=1): 502 on every invoke, `check` looks at the body; the emulator stays up.
pub async fn init_failure(f: &Function, check: impl Fn(&Reply)) {
    let emulator = f.start(&[("FAIL_INIT", "1")]);
    for _ in 0..2 {
        let reply = invoke(&emulator.url(), "{}").await;
        assert_eq!(reply.status, 502, "{}", reply.body);
        assert_eq!(reply.header("x-amz-function-error"), Some("Unhandled"));
        check(&reply);
    }
    let out = emulator.stdout();
    assert!(
        out.contains("init failure requested by FAIL_INIT"),
        "the function's output reaches stdout:\n{out}"
    );
    assert_eq!(out.matches("START RequestId").count(), 2, "{out}");
}

/// AWS_LAMBDA_MAX_CONCURRENCY=3: three slow invokes at once run in three processes; without it they queue.
pub async fn concurrency(f: &Function) {
    let emulator = f.start(&[("AWS_LAMBDA_MAX_CONCURRENCY", "3")]);
    let started = Instant::now();
    let replies = futures_join(&emulator.url(), 3, r#"{"sleep_ms":2000}"#).await;
    let took = started.elapsed();
    let mut pids: Vec<u64> = replies.iter().map(pid).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 3, "three processes served three invokes");
    assert!(
        took < Duration::from_millis(5500),
        "ran in parallel, not one after another: {took:?}"
    );
    drop(emulator);

    let emulator = f.start(&[]);
    let replies = futures_join(&emulator.url(), 2, r#"{"sleep_ms":300}"#).await;
    assert_eq!(
        pid(&replies[0]),
        pid(&replies[1]),
        "one process, invokes queued"
    );
    let after = invoke(&emulator.url(), "{}").await;
    assert_eq!(
        after.status, 200,
        "the emulator survived concurrent invokes"
    );
}

async fn futures_join(url: &str, n: usize, event: &str) -> Vec<Reply> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let url = url.to_owned();
            let event = event.to_owned();
            tokio::spawn(async move { invoke(&url, &event).await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        let reply = task.await.expect("invoke task");
        assert_eq!(reply.status, 200, "{}", reply.body);
        replies.push(reply);
    }
    replies
}
