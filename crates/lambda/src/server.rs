//! The invoke endpoint and the pool of slots behind it.

use crate::config::{Options, function_environment};
use crate::error::Error;
use crate::log::{LogLevel, Output, Report};
use crate::slot::{
    Body, FunctionInfo, Invocation, Launch, Outcome, Slot, Timing, error_json, full,
};
use crate::{MAX_PAYLOAD_BYTES, ids};
use base64::Engine;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default `AWS_LAMBDA_FUNCTION_TIMEOUT`, in seconds.
const DEFAULT_TIMEOUT_SECONDS: u64 = 300;

/// Runs the emulator until SIGINT or SIGTERM, then kills every function process and returns.
pub async fn run(options: Options, mut output: Output) -> Result<(), Error> {
    output.set_level(options.log_level);
    let output = Arc::new(output);
    let concurrency = match std::env::var("AWS_LAMBDA_MAX_CONCURRENCY") {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(Error::InvalidConcurrency { value: v })?,
        Err(_) => 1,
    };
    let bootstrap = options.resolve_bootstrap();
    if let Some(cwd) = &bootstrap.cwd
        && !cwd.is_dir()
    {
        output.log(
            LogLevel::Warn,
            &format!("{}", Error::MissingWorkingDirectory { path: cwd.clone() }),
        );
    }
    let front = bind("invoke endpoint", &options.emulator_address).await?;
    let mut slots = Vec::with_capacity(concurrency);
    for index in 0..concurrency {
        let (listener, api_address) = if index == 0 {
            (
                bind("runtime API", &options.runtime_api_address).await?,
                options.runtime_api_address.clone(),
            )
        } else {
            let host = options
                .runtime_api_address
                .rsplit_once(':')
                .map_or("127.0.0.1", |(h, _)| h);
            let listener = bind("runtime API", &format!("{host}:0")).await?;
            let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
            (listener, format!("{host}:{port}"))
        };
        let env = function_environment(
            std::env::vars_os(),
            bootstrap.handler.as_deref(),
            &api_address,
        );
        let launch = Launch {
            argv: bootstrap.argv.clone(),
            cwd: bootstrap.cwd.clone(),
            handler: bootstrap.handler.clone(),
            env,
            extensions_dir: extensions_dir(),
        };
        let function = FunctionInfo {
            name: env_or("AWS_LAMBDA_FUNCTION_NAME", "test_function"),
            version: env_or("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            handler: std::env::var("AWS_LAMBDA_FUNCTION_HANDLER")
                .or_else(|_| std::env::var("_HANDLER"))
                .unwrap_or_else(|_| bootstrap.handler.clone().unwrap_or_default()),
            account_id: env_or("AWS_ACCOUNT_ID", "012345678912"),
        };
        slots.push(Slot::new(index, listener, launch, function, output.clone()));
    }
    let pool = Arc::new(Pool::new(slots));
    let address = front
        .local_addr()
        .map_or(options.emulator_address.clone(), |a| a.to_string());
    output.log(
        LogLevel::Info,
        &format!(
            "Listening on {address} (runtime API {}, concurrency {concurrency})",
            options.runtime_api_address
        ),
    );
    let serve = serve_invokes(front, pool.clone(), output.clone());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::Signals)?;
    tokio::select! {
        () = serve => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    output.log(LogLevel::Info, "shutting down (SandboxTerminated)");
    let stopping: Vec<_> = pool
        .slots
        .iter()
        .map(|slot| {
            tokio::spawn({
                let slot = slot.clone();
                async move { slot.terminate().await }
            })
        })
        .collect();
    for task in stopping {
        let _ = task.await;
    }
    Ok(())
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

/// Where external extensions live: `/opt/extensions` (or `HOIST_LAMBDA_EXTENSIONS_DIR`), unless the official
/// switch file `/opt/disable-extensions-jwigqn8j` exists.
fn extensions_dir() -> Option<std::path::PathBuf> {
    if std::path::Path::new("/opt/disable-extensions-jwigqn8j").exists() {
        return None;
    }
    let dir =
        std::env::var_os("HOIST_LAMBDA_EXTENSIONS_DIR").unwrap_or_else(|| "/opt/extensions".into());
    Some(dir.into())
}

async fn bind(what: &'static str, address: &str) -> Result<TcpListener, Error> {
    TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind {
            what,
            address: address.to_owned(),
            source,
        })
}

/// Free slots; warm ones (returned last) are handed out first.
struct Pool {
    slots: Vec<Arc<Slot>>,
    idle: Mutex<Vec<usize>>,
    permits: Arc<Semaphore>,
}

struct Lease {
    pool: Arc<Pool>,
    index: usize,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Runs before `_permit` is released, so a waiter woken by the permit always finds this index.
        self.pool
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(self.index);
    }
}

impl Pool {
    fn new(slots: Vec<Arc<Slot>>) -> Pool {
        let idle = (0..slots.len()).rev().collect();
        let permits = Arc::new(Semaphore::new(slots.len()));
        Pool {
            slots,
            idle: Mutex::new(idle),
            permits,
        }
    }

    async fn lease(self: &Arc<Pool>) -> Lease {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed");
        let index = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .expect("a permit guarantees an idle slot");
        Lease {
            pool: self.clone(),
            index,
            _permit: permit,
        }
    }
}

async fn serve_invokes(listener: TcpListener, pool: Arc<Pool>, output: Arc<Output>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                output.log(LogLevel::Warn, &format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let pool = pool.clone();
        let output = output.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let pool = pool.clone();
                let output = output.clone();
                // Its own task, so a caller hanging up cannot cancel an invoke halfway through the slot's state
                // machine (the runtime would then answer a stale request id into the next invoke).
                let task = tokio::spawn(invoke(req, pool, output));
                async move {
                    let response = task.await.unwrap_or_else(|_| {
                        plain(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "text/plain; charset=utf-8",
                            "",
                        )
                    });
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// The function name from `/2015-03-31/functions/{name}/invocations` or
/// `/2021-11-15/functions/{name}/response-streaming-invocations`.
fn function_name(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/2015-03-31/functions/")
        .or_else(|| path.strip_prefix("/2021-11-15/functions/"))?;
    let (name, tail) = rest.split_once('/')?;
    let ok = matches!(tail, "invocations" | "response-streaming-invocations") && !name.is_empty();
    ok.then_some(name)
}

fn plain(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn invoke(req: Request<Incoming>, pool: Arc<Pool>, output: Arc<Output>) -> Response<Body> {
    if function_name(req.uri().path()).is_none() {
        return plain(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 page not found\n",
        );
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let client_context = match header("x-amz-client-context") {
        Some(encoded) => match base64::engine::general_purpose::STANDARD.decode(encoded.trim()) {
            Ok(decoded) => Some(String::from_utf8_lossy(&decoded).into_owned()),
            Err(_) => {
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain; charset=utf-8",
                    "",
                );
            }
        },
        None => None,
    };
    let tenant_id = header("x-amz-tenant-id");
    let invocation_type = header("x-amz-invocation-type");
    let wants_tail = header("x-amz-log-type").is_some_and(|t| t.eq_ignore_ascii_case("Tail"));
    let trace_id = header("x-amzn-trace-id").unwrap_or_else(ids::trace_id);
    let timeout_seconds = match std::env::var("AWS_LAMBDA_FUNCTION_TIMEOUT") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(s) => s,
            Err(_) => {
                let message =
                    format!("AWS_LAMBDA_FUNCTION_TIMEOUT={v:?} is not a whole number of seconds");
                let body = error_json("Runtime.InvalidTimeout", &message);
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "application/json", body);
            }
        },
        Err(_) => DEFAULT_TIMEOUT_SECONDS,
    };
    let event = match req.into_body().collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return plain(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", ""),
    };
    if event.len() > MAX_PAYLOAD_BYTES {
        let message = format!(
            "Request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the InvokeFunction operation"
        );
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "application/json",
            error_json("RequestEntityTooLarge", &message),
        );
    }
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let version = env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
    let function_arn = format!(
        "arn:aws:lambda:{}:{}:function:{}",
        env("AWS_REGION", "us-east-1"),
        env("AWS_ACCOUNT_ID", "012345678912"),
        env("AWS_LAMBDA_FUNCTION_NAME", "test_function")
    );
    let memory_size_mb = env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3008")
        .parse()
        .unwrap_or(3008);
    let request_id = ids::request_id();
    let timeout = Duration::from_secs(timeout_seconds);
    let invocation_type = invocation_type.unwrap_or_default();
    if invocation_type == "DryRun" {
        let response = plain(StatusCode::NO_CONTENT, "text/plain; charset=utf-8", "");
        return with_request_headers(response, &request_id, &version, false);
    }
    let asynchronous = invocation_type == "Event";
    let (id, ver) = (request_id.clone(), version.clone());
    let execute = async move {
        // The clock starts when a slot is free, not while the invoke waits for one.
        let lease = pool.lease().await;
        let slot = pool.slots[lease.index].clone();
        let arrived = Instant::now();
        let deadline_ms = (SystemTime::now() + timeout)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let invocation = Invocation {
            request_id: request_id.clone(),
            event,
            deadline_ms,
            trace_id,
            client_context,
            tenant_id,
            function_arn,
        };
        let mut log_text = output.start(&request_id, &version);
        output.log(
            LogLevel::Info,
            &format!("INVOKE START(requestId: {request_id}) slot={}", lease.index),
        );
        let (outcome, timing) = slot.invoke(invocation, timeout).await;
        log_text.push_str(&String::from_utf8_lossy(&timing.function_logs));
        let finish = Finish {
            output: output.clone(),
            request_id: request_id.clone(),
            memory_size_mb,
            timing,
        };
        let (response, unhandled) = match outcome {
            Outcome::Response { content_type, body } => {
                log_text.push_str(&finish.done(None));
                (with_type(StatusCode::OK, content_type, body), false)
            }
            Outcome::Streaming {
                content_type,
                trailer,
                body,
                done,
            } => {
                let deadline = arrived + timeout;
                tokio::spawn(async move {
                    let status = slot.finish_stream(done, deadline).await;
                    finish.done(status);
                    drop(lease);
                });
                let mut response = Response::new(body.boxed());
                let ct =
                    content_type.unwrap_or(HeaderValue::from_static("application/octet-stream"));
                response.headers_mut().insert(CONTENT_TYPE, ct);
                for declared in trailer {
                    response
                        .headers_mut()
                        .append(hyper::header::TRAILER, declared);
                }
                // The log of a streamed invoke is not complete until the stream is: no Tail here.
                return with_request_headers(response, &request_id, &version, false);
            }
            Outcome::TooLarge { size } => {
                log_text.push_str(&finish.done(Some("error")));
                let message = format!(
                    "Response payload size ({size} bytes) exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes)."
                );
                let body = error_json("Function.ResponseSizeTooLarge", &message);
                (plain(StatusCode::OK, "application/json", body), true)
            }
            Outcome::InvalidResponseMode => {
                log_text.push_str(&finish.done(Some("error")));
                let body = error_json(
                    "Runtime.InvalidResponseModeHeader",
                    "Invalid response mode header",
                );
                (plain(StatusCode::OK, "application/json", body), true)
            }
            Outcome::FunctionError { content_type, body } => {
                log_text.push_str(&finish.done(Some("error")));
                (with_type(StatusCode::OK, content_type, body), true)
            }
            Outcome::Timeout { seconds } => {
                log_text.push_str(&output.timed_out(&request_id, seconds));
                log_text.push_str(&finish.done(Some("timeout")));
                // The official RIE answers 100 ms after the reset; callers tuned to it see the same pacing.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let body = format!("Task timed out after {seconds}.00 seconds");
                (
                    plain(StatusCode::OK, "text/plain; charset=utf-8", body),
                    true,
                )
            }
            Outcome::InitError { content_type, body } => {
                output.log(
                    LogLevel::Warn,
                    &format!("INIT REPORT(status: error) requestId={request_id}"),
                );
                (with_type(StatusCode::BAD_GATEWAY, content_type, body), true)
            }
            Outcome::Exited { status } => {
                let reason = match (
                    status.code(),
                    std::os::unix::process::ExitStatusExt::signal(&status),
                ) {
                    (Some(0), _) => "Runtime exited without providing a reason".to_owned(),
                    (Some(code), _) => format!("Runtime exited with error: exit status {code}"),
                    (None, Some(signal)) => {
                        format!("Runtime exited with error: signal: {}", signal_name(signal))
                    }
                    (None, None) => "Runtime exited with error".to_owned(),
                };
                output.log(LogLevel::Warn, &format!("{reason} requestId={request_id}"));
                let body = error_json(
                    "Runtime.ExitError",
                    &format!("RequestId: {request_id} Error: {reason}"),
                );
                (
                    plain(StatusCode::BAD_GATEWAY, "application/json", body),
                    true,
                )
            }
            Outcome::ExtensionCrash { status } => {
                let reason = match status.code() {
                    Some(code) => format!("exit status {code}"),
                    None => "killed by a signal".to_owned(),
                };
                let message = format!(
                    "RequestId: {request_id} Error: an extension exited during init ({reason})"
                );
                output.log(LogLevel::Warn, &message);
                let body = error_json("Extension.Crash", &message);
                (
                    plain(StatusCode::BAD_GATEWAY, "application/json", body),
                    true,
                )
            }
            Outcome::SpawnFailed { message } => {
                let body = error_json(
                    "Runtime.InvalidEntrypoint",
                    &format!("RequestId: {request_id} Error: {message}"),
                );
                (
                    plain(StatusCode::BAD_GATEWAY, "application/json", body),
                    true,
                )
            }
        };
        drop(lease);
        let mut response = with_request_headers(response, &request_id, &version, unhandled);
        if wants_tail {
            response.headers_mut().insert(
                HeaderName::from_static("x-amz-log-result"),
                log_tail(&log_text),
            );
        }
        response
    };
    if asynchronous {
        // Lambda's asynchronous invoke: accepted at once, run in the background, the result only logged.
        tokio::spawn(execute);
        let response = plain(StatusCode::ACCEPTED, "text/plain; charset=utf-8", "");
        return with_request_headers(response, &id, &ver, false);
    }
    execute.await
}

/// Prints END and REPORT for an invoke.
struct Finish {
    output: Arc<Output>,
    request_id: String,
    memory_size_mb: u64,
    timing: Timing,
}

impl Finish {
    /// Writes END and REPORT (and logs RTDONE); returns the two lines.
    fn done(self, status: Option<&'static str>) -> String {
        let duration = self.timing.invoke_started.elapsed();
        let message = format!(
            "INVOKE RTDONE(status: {}, duration: {:.2}ms) requestId={}",
            status.unwrap_or("success"),
            duration.as_secs_f64() * 1000.0,
            self.request_id
        );
        self.output.log(LogLevel::Info, &message);
        let mut lines = self.output.end(&self.request_id);
        lines.push_str(
            &self.output.report(&Report {
                request_id: self.request_id.clone(),
                init_duration: self.timing.init_duration,
                duration,
                memory_size_mb: self.memory_size_mb,
                max_memory_used_mb: self
                    .timing
                    .max_memory_used_mb
                    .unwrap_or(self.memory_size_mb)
                    .min(self.memory_size_mb),
                status,
            }),
        );
        lines
    }
}

/// `X-Amz-Log-Result`: base64 of the last 4 KB of the invoke's log, as Lambda.
fn log_tail(log: &str) -> HeaderValue {
    let bytes = log.as_bytes();
    let tail = &bytes[bytes.len().saturating_sub(crate::slot::LOG_TAIL_BYTES)..];
    let encoded = base64::engine::general_purpose::STANDARD.encode(tail);
    HeaderValue::from_str(&encoded).expect("base64 is a valid header value")
}

fn with_type(status: StatusCode, content_type: Option<HeaderValue>, body: Bytes) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let ct = content_type.unwrap_or(HeaderValue::from_static("application/json"));
    response.headers_mut().insert(CONTENT_TYPE, ct);
    response
}

/// Adds what Lambda's Invoke API returns and the official RIE leaves out.
fn with_request_headers(
    mut response: Response<Body>,
    request_id: &str,
    version: &str,
    unhandled: bool,
) -> Response<Body> {
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static("x-amzn-requestid"), id);
    }
    if let Ok(v) = HeaderValue::from_str(version) {
        headers.insert(HeaderName::from_static("x-amz-executed-version"), v);
    }
    if unhandled {
        headers.insert(
            HeaderName::from_static("x-amz-function-error"),
            HeaderValue::from_static("Unhandled"),
        );
    }
    response
}

/// Go's names for the signals a runtime usually dies of.
fn signal_name(signal: i32) -> String {
    match signal {
        6 => "aborted".into(),
        9 => "killed".into(),
        11 => "segmentation fault".into(),
        15 => "terminated".into(),
        n => format!("signal {n}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn any_function_name_in_the_path() {
        assert_eq!(
            super::function_name("/2015-03-31/functions/function/invocations"),
            Some("function")
        );
        assert_eq!(
            super::function_name("/2015-03-31/functions/my-fn/invocations"),
            Some("my-fn")
        );
        assert_eq!(
            super::function_name("/2021-11-15/functions/f/response-streaming-invocations"),
            Some("f")
        );
        assert_eq!(
            super::function_name("/2015-03-31/functions//invocations"),
            None
        );
        assert_eq!(super::function_name("/2015-03-31/functions/f/other"), None);
        assert_eq!(super::function_name("/"), None);
    }
}
