//! The invoke endpoint and the Runtime API, status codes and bodies, with this test playing the runtime: the
//! emulator starts a real process that never calls the API itself (`sleep`), and the test speaks for it.

mod common;

use common::{
    Emulator, client, header, idle_runtime, invoke, invoke_with, next, next_request_id,
    pending_invoke, post, respond, runtime_url,
};
use std::time::{SystemTime, UNIX_EPOCH};

#[tokio::test]
async fn unknown_paths_are_404_and_bad_client_context_is_500() {
    let emulator = idle_runtime(&[]);
    let reply = invoke(
        &format!("{}/2015-03-31/functions/function/other", emulator.base),
        "{}",
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body, "404 page not found\n");
    let request = client()
        .post(emulator.url())
        .body("{}")
        .header("x-amz-client-context", "not base64!");
    let reply = invoke_with(request).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, "");
    let ping = client()
        .get(format!("http://{}/2018-06-01/ping", emulator.runtime_api))
        .send()
        .await
        .expect("ping");
    assert_eq!(ping.text().await.expect("body"), "pong");
    let logs = client()
        .put(format!("http://{}/2020-08-15/logs", emulator.runtime_api))
        .send()
        .await
        .expect("logs");
    assert_eq!(logs.status().as_u16(), 202);
    let body: serde_json::Value =
        serde_json::from_str(&logs.text().await.expect("body")).expect("JSON");
    assert_eq!(body["errorType"], "Logs.NotSupported");
    let missing = client()
        .get(runtime_url(&emulator, "nothing"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test]
async fn next_headers_response_and_state_errors() {
    let emulator = idle_runtime(&[]);
    let context = r#"{"custom":{"a":1}}"#;
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(context)
    };
    // Any method and any function name invoke; a GET without a body hands the runtime an empty event.
    let caller = client()
        .get(format!(
            "{}/2015-03-31/functions/whatever/invocations",
            emulator.base
        ))
        .header("x-amz-client-context", encoded)
        .header("x-amz-tenant-id", "tenant-7")
        .header(
            "x-amzn-trace-id",
            "Root=1-00000000-000000000000000000000001",
        );
    let caller = tokio::spawn(invoke_with(caller));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let event = next(&emulator).await;
    let id = header(&event, "lambda-runtime-aws-request-id");
    assert_eq!(id.len(), 36, "{id}");
    let deadline: u64 = header(&event, "lambda-runtime-deadline-ms")
        .parse()
        .expect("deadline is a number");
    assert!(
        deadline.abs_diff(now_ms + 300_000) < 5_000,
        "default timeout is 300 s: {deadline} vs {now_ms}"
    );
    assert_eq!(
        header(&event, "lambda-runtime-invoked-function-arn"),
        "arn:aws:lambda:us-east-1:012345678912:function:test_function"
    );
    assert_eq!(
        header(&event, "lambda-runtime-trace-id"),
        "Root=1-00000000-000000000000000000000001"
    );
    assert_eq!(header(&event, "lambda-runtime-client-context"), context);
    assert_eq!(header(&event, "lambda-runtime-aws-tenant-id"), "tenant-7");
    assert_eq!(header(&event, "content-type"), "application/json");
    assert_eq!(event.text().await.expect("event body"), "");

    let (status, body) = post(
        runtime_url(&emulator, "invocation/not-the-id/response"),
        "x",
        &[],
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#
        )
    );
    let (status, body) = post(runtime_url(&emulator, "init/error"), "{}", &[]).await;
    assert_eq!(status, 403, "init/error after init is done: {body}");
    let headers = [("content-type", "text/csv")];
    let (status, body) = respond(&emulator, &id, "a,b", &headers).await;
    assert_eq!((status, body.as_str()), (202, r#"{"status":"OK"}"#));
    let (status, body) = respond(&emulator, &id, "again", &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("InvalidStateTransition"), "{body}");

    let reply = caller.await.expect("caller task");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "a,b");
    assert_eq!(
        reply.header("content-type"),
        Some("text/csv"),
        "the runtime's content type is kept"
    );
    assert_eq!(reply.header("x-amzn-requestid"), Some(id.as_str()));
    let out = emulator.wait_stdout(&format!("REPORT RequestId: {id}"));
    assert!(
        out.contains(&format!("START RequestId: {id} Version: $LATEST\n")),
        "{out}"
    );
}

#[tokio::test]
async fn error_cause_is_trimmed_and_unknown_response_mode_rejected() {
    let emulator = idle_runtime(&[]);
    let (caller, id) = pending_invoke(&emulator).await;
    let cause =
        r#"{"errorMessage":"boom","errorType":"Function.Boom","stackTrace":["a"],"extra":true}"#;
    let headers = [(
        "content-type",
        "application/vnd.aws.lambda.error.cause+json",
    )];
    let (status, _) = post(
        runtime_url(&emulator, &format!("invocation/{id}/error")),
        cause,
        &headers,
    )
    .await;
    assert_eq!(status, 202);
    let reply = caller.await.expect("caller task");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(
        reply.json(),
        serde_json::json!({"errorMessage":"boom","errorType":"Function.Boom","stackTrace":["a"]})
    );

    let (caller, id) = pending_invoke(&emulator).await;
    let headers = [("lambda-runtime-function-response-mode", "sideways")];
    let (status, body) = respond(&emulator, &id, "x", &headers).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("InvalidFunctionResponseMode"), "{body}");
    let reply = caller.await.expect("caller task");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json()["errorType"],
        "Runtime.InvalidResponseModeHeader"
    );
}

#[tokio::test]
async fn oversized_response_is_refused_on_both_sides() {
    let emulator = idle_runtime(&[]);
    let (caller, id) = pending_invoke(&emulator).await;
    let big = "x".repeat(hoist_lambda::MAX_PAYLOAD_BYTES + 1);
    let (status, body) = respond(&emulator, &id, &big, &[]).await;
    assert_eq!(status, 413, "{body}");
    let reply = caller.await.expect("caller task");
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["errorType"], "Function.ResponseSizeTooLarge");
    assert_eq!(
        body["errorMessage"],
        "Response payload size (6291557 bytes) exceeded maximum allowed payload size (6291556 bytes)."
    );
    let reply = invoke(&emulator.url(), &big).await;
    assert_eq!(
        reply.status, 413,
        "oversized events are refused at the front door"
    );
}

#[tokio::test]
async fn missing_bootstrap_is_a_502_and_the_emulator_stays_up() {
    let emulator = Emulator::start(
        &["/nonexistent/bootstrap"],
        std::path::Path::new(common::FIXTURES),
        &[],
    );
    for _ in 0..2 {
        let reply = invoke(&emulator.url(), "{}").await;
        assert_eq!(reply.status, 502);
        assert_eq!(
            reply.json()["errorType"],
            "Runtime.InvalidEntrypoint",
            "{}",
            reply.body
        );
    }
    assert!(
        emulator.stderr().contains("exec '/nonexistent/bootstrap'"),
        "{}",
        emulator.stderr()
    );
}

#[tokio::test]
async fn bad_flags_fail_fast() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aws-lambda-rie"))
        .args(["--log-level", "loud", "/bin/true"])
        .output()
        .expect("run the binary");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid log level \"loud\""));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aws-lambda-rie"))
        .args(["--runtime-interface-emulator-address", "127.0.0.1:1:x"])
        .output()
        .expect("run the binary");
    assert!(!out.status.success());
}

#[tokio::test]
async fn a_busy_runtime_api_port_is_an_error() {
    let emulator = idle_runtime(&[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aws-lambda-rie"))
        .args(["--runtime-interface-emulator-address", "127.0.0.1:0"])
        .args(["--runtime-api-address", &emulator.runtime_api, "sleep", "1"])
        .output()
        .expect("run the binary");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot listen on {} (runtime API)",
            emulator.runtime_api
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn event_invokes_are_accepted_at_once_and_dry_runs_do_nothing() {
    let emulator = idle_runtime(&[]);
    let dry = invoke_with(
        client()
            .post(emulator.url())
            .body("{}")
            .header("x-amz-invocation-type", "DryRun"),
    )
    .await;
    assert_eq!(dry.status, 204);
    assert!(
        !emulator.stdout().contains("START"),
        "a dry run invokes nothing"
    );
    let request = client()
        .post(emulator.url())
        .body(r#"{"async":true}"#)
        .header("x-amz-invocation-type", "Event");
    let accepted = invoke_with(request).await;
    assert_eq!(
        accepted.status, 202,
        "answered before the runtime even asked for the event"
    );
    assert_eq!(accepted.body, "");
    let id = accepted.request_id();
    let event = next(&emulator).await;
    assert_eq!(header(&event, "lambda-runtime-aws-request-id"), id);
    assert_eq!(event.text().await.expect("event body"), r#"{"async":true}"#);
    let (status, _) = respond(&emulator, &id, "done", &[]).await;
    assert_eq!(status, 202);
    emulator.wait_stdout(&format!("REPORT RequestId: {id}"));
}

/// Reads from `stream` into `seen` until `needle` shows up (or 5 s pass).
async fn read_until(stream: &mut tokio::net::TcpStream, seen: &mut String, needle: &str) {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !seen
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
    {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{needle:?} never arrived; got {seen:?}"))
            .expect("read");
        assert!(n > 0, "connection closed before {needle:?}; got {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[tokio::test]
async fn streamed_chunks_and_error_trailers_reach_the_caller() {
    use tokio::io::AsyncWriteExt;
    let emulator = idle_runtime(&[]);
    let front = emulator.base.trim_start_matches("http://").to_owned();
    let mut caller = tokio::net::TcpStream::connect(&front)
        .await
        .expect("connect to the invoke endpoint");
    let request = "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\
                   Connection: close\r\nContent-Length: 2\r\n\r\n{}";
    caller
        .write_all(request.as_bytes())
        .await
        .expect("send the invoke");
    let id = next_request_id(&emulator).await;

    let mut runtime = tokio::net::TcpStream::connect(&emulator.runtime_api)
        .await
        .expect("connect to the runtime API");
    let head = format!(
        "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: x\r\n\
         Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\
         Trailer: Lambda-Runtime-Function-Error-Type\r\nContent-Type: text/plain\r\n\r\n6\r\nhello \r\n"
    );
    runtime
        .write_all(head.as_bytes())
        .await
        .expect("send the first chunk");
    let mut seen = String::new();
    read_until(&mut caller, &mut seen, "hello ").await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(
        seen.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{seen}"
    );
    assert!(
        !emulator.stdout().contains(&format!("END RequestId: {id}")),
        "the invoke is still running"
    );

    let tail = "5\r\nworld\r\n0\r\nLambda-Runtime-Function-Error-Type: Function.Oops\r\n\r\n";
    runtime
        .write_all(tail.as_bytes())
        .await
        .expect("send the end");
    let mut answer = String::new();
    read_until(&mut runtime, &mut answer, "{\"status\":\"OK\"}").await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    read_until(
        &mut caller,
        &mut seen,
        "lambda-runtime-function-error-type: Function.Oops",
    )
    .await;
    assert!(seen.contains("world"), "{seen}");
    let report = common::report_line(&emulator, &id);
    assert!(report.contains("Status: error"), "{report}");
}

#[tokio::test]
async fn a_second_waiting_poller_waits_instead_of_failing() {
    let emulator = idle_runtime(&[]);
    let url = runtime_url(&emulator, "invocation/next");
    let first = tokio::spawn(client().get(url.clone()).send());
    let second = tokio::spawn(client().get(url).send());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let caller = tokio::spawn(invoke_with(client().post(emulator.url()).body("1")));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (winner, waiter) = if first.is_finished() {
        (first, second)
    } else {
        (second, first)
    };
    let event = winner.await.expect("task").expect("/next answers");
    assert_eq!(event.status().as_u16(), 200);
    assert!(
        !waiter.is_finished(),
        "the other poller is still waiting, not refused"
    );
    let id = header(&event, "lambda-runtime-aws-request-id");
    let (status, _) = respond(&emulator, &id, "one", &[]).await;
    assert_eq!(status, 202);
    assert_eq!(caller.await.expect("task").body, "one");
    let caller = tokio::spawn(invoke_with(client().post(emulator.url()).body("2")));
    let event = waiter.await.expect("task").expect("/next answers");
    assert_eq!(event.status().as_u16(), 200);
    let id = header(&event, "lambda-runtime-aws-request-id");
    assert_eq!(event.text().await.expect("body"), "2");
    let (status, _) = respond(&emulator, &id, "two", &[]).await;
    assert_eq!(status, 202);
    assert_eq!(caller.await.expect("task").body, "two");
}

/// What the runtime started (its process group) goes with it, even after the runtime itself has exited.
#[tokio::test]
async fn a_crashed_runtimes_children_are_killed() {
    let pid_file = std::env::temp_dir().join(format!("hoist-lambda-child-{}", std::process::id()));
    let script = format!("sleep 120 & echo $! > {}; exit 3", pid_file.display());
    let emulator = Emulator::start(
        &["sh", "-c", &script],
        std::path::Path::new(common::FIXTURES),
        &[],
    );
    let reply = invoke(&emulator.url(), "{}").await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(reply.body.contains("exit status 3"), "{}", reply.body);
    let pid = std::fs::read_to_string(&pid_file).expect("the bootstrap wrote its child's pid");
    let _ = std::fs::remove_file(&pid_file);
    let stat = format!("/proc/{}/stat", pid.trim());
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "the runtime's child {pid} survived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
