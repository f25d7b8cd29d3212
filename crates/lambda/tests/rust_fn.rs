//! The emulator with a function built on the `lambda_runtime` crate (tests/fixtures/rust-fn, its own Cargo project,
//! built here on first use into `target/lambda-rust-fn` so its dependencies stay out of hoist's build graph).

mod common;

use common::{Function, fixture, require};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn build_rust_fn() -> Result<PathBuf, String> {
    let project = fixture("rust-fn");
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/lambda-rust-fn");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = |offline: bool| {
        let mut command = Command::new(&cargo);
        command
            .arg("build")
            .arg("--locked")
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target);
        if offline {
            command.arg("--offline");
        }
        command.output()
    };
    // Offline first (the crates are usually in the local registry cache); online if something is missing.
    let output = match build(true) {
        Ok(out) if out.status.success() => out,
        _ => build(false).map_err(|e| format!("cannot run cargo: {e}"))?,
    };
    if !output.status.success() {
        return Err(format!(
            "building the lambda_runtime fixture failed; it needs crates.io or a warm cargo cache:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(target.join("debug/rust-fn"))
}

fn rust_function(env: &[(&str, &str)]) -> Option<Function> {
    let binary = build_rust_fn();
    let binary = require(binary.as_ref().map(|_| ()).map_err(Clone::clone))
        .then(|| binary.ok())
        .flatten()?;
    Some(Function {
        bootstrap: vec![binary.to_string_lossy().into_owned()],
        cwd: fixture("rust-fn"),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

#[tokio::test]
async fn rust_success() {
    let Some(f) = rust_function(&[]) else { return };
    common::success(&f).await;
}

#[tokio::test]
async fn rust_handler_error() {
    let Some(f) = rust_function(&[]) else { return };
    common::handler_error(&f).await;
}

#[tokio::test]
async fn rust_timeout_then_recovery() {
    let Some(f) = rust_function(&[]) else { return };
    common::timeout_then_recovery(&f).await;
}

#[tokio::test]
async fn rust_crash_then_recovery() {
    let Some(f) = rust_function(&[]) else { return };
    common::crash_then_recovery(&f).await;
}

#[tokio::test]
async fn rust_init_failure() {
    let Some(f) = rust_function(&[]) else { return };
    common::init_failure(&f, |reply| {
        let body = reply.json();
        assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
        let message = body["errorMessage"].as_str().expect("a message");
        assert!(
            message.ends_with("Error: Runtime exited with error: exit status 1"),
            "{message}"
        );
    })
    .await;
}

#[tokio::test]
async fn rust_concurrency() {
    let Some(f) = rust_function(&[]) else { return };
    common::concurrency(&f).await;
}

/// Streamed chunks reach the caller as the function sends them, not all at the end.
#[tokio::test]
async fn rust_streaming_is_passed_through() {
    let Some(f) = rust_function(&[("STREAMING", "1")]) else {
        return;
    };
    let emulator = f.start(&[]);
    let started = Instant::now();
    let mut response = common::client()
        .post(emulator.url())
        .body(r#"{"stream":4,"chunk_ms":500}"#)
        .send()
        .await
        .expect("the emulator answers");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(
        content_type.as_deref(),
        Some("application/vnd.awslambda.http-integration-response")
    );
    let request_id = response
        .headers()
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    let mut first_chunk_at = None;
    while let Some(chunk) = response.chunk().await.expect("read a chunk") {
        body.extend_from_slice(&chunk);
        if first_chunk_at.is_none() && body.windows(7).any(|w| w == b"chunk 0") {
            first_chunk_at = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.starts_with(r#"{"statusCode":200"#),
        "the metadata prelude is passed on: {text:?}"
    );
    assert!(
        text.ends_with("chunk 0\nchunk 1\nchunk 2\nchunk 3\n"),
        "{text:?}"
    );
    let first = first_chunk_at.expect("chunk 0 arrived");
    assert!(total >= Duration::from_millis(1500), "{total:?}");
    assert!(
        total - first >= Duration::from_millis(1200),
        "first chunk at {first:?}, end at {total:?}: buffered?"
    );
    let request_id = request_id.expect("request id header");
    let report = common::report_line(&emulator, &request_id);
    assert!(report.contains("Duration: "), "{report}");
    let after = common::invoke(&emulator.url(), r#"{"stream":1,"chunk_ms":1}"#).await;
    assert_eq!(after.status, 200);
    assert!(after.body.ends_with("chunk 0\n"), "{:?}", after.body);
}

/// A caller that hangs up mid-invoke does not leave the slot half-way: the next caller gets its own answer.
#[tokio::test]
async fn rust_caller_hanging_up_does_not_mix_up_answers() {
    let Some(f) = rust_function(&[]) else { return };
    let emulator = f.start(&[]);
    let impatient = common::client()
        .post(emulator.url())
        .body(r#"{"sleep_ms":1000,"who":"first"}"#)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(
        impatient.is_err(),
        "the first caller gives up before the function answers"
    );
    let second = common::invoke_ok(&emulator.url(), r#"{"who":"second"}"#).await;
    assert_eq!(second.json()["event"]["who"], "second", "{}", second.body);
}

/// SIGTERM ends the emulator at once, even mid-invoke, and takes the function process with it.
#[tokio::test]
async fn rust_sigterm_mid_invoke_kills_the_function() {
    let Some(f) = rust_function(&[]) else { return };
    let emulator = f.start(&[]);
    let warm = common::invoke(&emulator.url(), "{}").await;
    let pid = warm.json()["pid"].as_u64().expect("echo carries a pid");
    let url = emulator.url();
    let slow = tokio::spawn(async move {
        common::client()
            .post(url)
            .body(r#"{"sleep_ms":30000}"#)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    assert!(emulator.stop().success());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let _ = slow.await;
    let alive = Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(!alive, "function process {pid} survived the emulator");
}
