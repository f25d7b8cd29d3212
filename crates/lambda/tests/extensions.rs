//! The Extensions API: internal extensions (registered here by the test, which also plays the runtime) and an
//! external one (a Python script started from the extensions directory before the runtime).

mod common;

use common::{
    Emulator, Reply, client, header, idle_runtime, invoke_with, pending_invoke, respond,
    runtime_url,
};
use std::time::Duration;
use tokio::task::JoinHandle;

fn url(emulator: &Emulator, path: &str) -> String {
    format!("http://{}/{path}", emulator.runtime_api)
}

async fn register(emulator: &Emulator, events: &str) -> String {
    let response = client()
        .post(url(emulator, "2020-01-01/extension/register"))
        .header("Lambda-Extension-Name", "test-ext")
        .header("Lambda-Extension-Accept-Feature", "accountId")
        .body(format!(r#"{{"events":{events}}}"#))
        .send()
        .await
        .expect("register answers");
    assert_eq!(response.status().as_u16(), 200);
    let id = header(&response, "lambda-extension-identifier");
    let body: serde_json::Value =
        serde_json::from_str(&response.text().await.expect("body")).expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({"functionName":"test_function","functionVersion":"$LATEST","handler":"60","accountId":"012345678912"})
    );
    id
}

async fn event_next(emulator: &Emulator, id: &str) -> serde_json::Value {
    let response = client()
        .get(url(emulator, "2020-01-01/extension/event/next"))
        .header("Lambda-Extension-Identifier", id)
        .send()
        .await
        .expect("event/next answers");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response
            .headers()
            .contains_key("lambda-extension-event-identifier")
    );
    serde_json::from_str(&response.text().await.expect("body")).expect("JSON event")
}

/// A registration under `name` for no events; the caller checks the answer.
async fn register_as(emulator: &Emulator, name: &str) -> reqwest::Response {
    client()
        .post(url(emulator, "2020-01-01/extension/register"))
        .header("Lambda-Extension-Name", name)
        .body("{}")
        .send()
        .await
        .expect("answer")
}

/// `response` is a 403 whose body names `error_type`.
async fn assert_forbidden(response: reqwest::Response, error_type: &str) {
    assert_eq!(response.status().as_u16(), 403);
    assert!(response.text().await.expect("body").contains(error_type));
}

/// The test, as the runtime, answers invoke `request_id` with `ok`; the caller gets it.
async fn respond_ok(emulator: &Emulator, request_id: &str, caller: JoinHandle<Reply>) {
    let (status, _) = respond(emulator, request_id, "ok", &[]).await;
    assert_eq!(status, 202);
    assert_eq!(caller.await.expect("task").body, "ok");
}

#[tokio::test]
async fn identifiers_and_names_are_checked() {
    let emulator = idle_runtime(&[]);
    let nameless = client()
        .post(url(&emulator, "2020-01-01/extension/register"))
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_forbidden(nameless, "Extension.InvalidExtensionName").await;
    let anonymous = client()
        .get(url(&emulator, "2020-01-01/extension/event/next"))
        .send()
        .await
        .expect("answer");
    assert_forbidden(anonymous, "Extension.MissingExtensionIdentifier").await;
    let unknown = client()
        .get(url(&emulator, "2020-01-01/extension/event/next"))
        .header(
            "Lambda-Extension-Identifier",
            "00000000-0000-4000-8000-000000000000",
        )
        .send()
        .await
        .expect("answer");
    assert_forbidden(unknown, "Extension.InvalidExtensionIdentifier").await;
}

/// Events wait for every extension to be ready; INVOKE carries the request id and tracing; SHUTDOWN follows a timeout.
#[tokio::test]
async fn internal_extension_gets_invoke_and_shutdown() {
    let emulator = idle_runtime(&[("AWS_LAMBDA_FUNCTION_TIMEOUT", "1")]);
    let id = register(&emulator, r#"["INVOKE","SHUTDOWN"]"#).await;
    let caller = tokio::spawn(invoke_with(
        client().post(emulator.url()).body("{}").header(
            "x-amzn-trace-id",
            "Root=1-00000000-000000000000000000000002",
        ),
    ));
    let runtime = tokio::spawn(
        client()
            .get(runtime_url(&emulator, "invocation/next"))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !runtime.is_finished(),
        "the runtime waits until the extension is ready"
    );
    let invoke = event_next(&emulator, &id).await;
    let runtime = runtime.await.expect("task").expect("/next answers");
    let request_id = header(&runtime, "lambda-runtime-aws-request-id");
    assert_eq!(invoke["eventType"], "INVOKE");
    assert_eq!(invoke["requestId"], request_id.as_str());
    assert_eq!(
        invoke["invokedFunctionArn"],
        "arn:aws:lambda:us-east-1:012345678912:function:test_function"
    );
    assert_eq!(
        invoke["tracing"]["value"],
        "Root=1-00000000-000000000000000000000002"
    );
    assert!(invoke["deadlineMs"].as_u64().is_some());

    // The runtime never answers: at the timeout the extension is told why it is being shut down.
    let shutdown = event_next(&emulator, &id).await;
    assert_eq!(shutdown["eventType"], "SHUTDOWN");
    assert_eq!(shutdown["shutdownReason"], "Timeout");
    let reply = caller.await.expect("task");
    assert_eq!(reply.body, "Task timed out after 1.00 seconds");
    let late = register_as(&emulator, "late").await;
    assert_eq!(
        late.status().as_u16(),
        200,
        "a new runtime generation accepts registrations again"
    );
}

#[tokio::test]
async fn registration_closes_once_the_runtime_has_an_event() {
    let emulator = idle_runtime(&[]);
    let (caller, request_id) = pending_invoke(&emulator).await;
    let late = register_as(&emulator, "late").await;
    assert_eq!(late.status().as_u16(), 403);
    respond_ok(&emulator, &request_id, caller).await;
}

#[tokio::test]
async fn external_extension_is_started_before_the_runtime() {
    let python = std::process::Command::new("python3")
        .arg("--version")
        .output();
    let available = match python {
        Ok(out) if out.status.success() => Ok(()),
        _ => {
            Err("python3 is needed for the external extension fixture; install python3".to_owned())
        }
    };
    if !common::require(available) {
        return;
    }
    let dir = common::fixture("extensions");
    let dir = dir.to_str().expect("fixture path is UTF-8");
    let emulator = idle_runtime(&[("HOIST_LAMBDA_EXTENSIONS_DIR", dir)]);
    // The test is the runtime; its /next waits until the extension has registered and is waiting for events.
    let (caller, request_id) = pending_invoke(&emulator).await;
    emulator.wait_stdout("EXT REGISTERED test_function");
    emulator.wait_stdout(&format!("EXT INVOKE {request_id}"));
    respond_ok(&emulator, &request_id, caller).await;
}

#[tokio::test]
async fn an_extension_dying_during_init_fails_the_invoke() {
    let dir = common::fixture("crashing-extension");
    let dir = dir.to_str().expect("fixture path is UTF-8");
    let emulator = idle_runtime(&[("HOIST_LAMBDA_EXTENSIONS_DIR", dir)]);
    let started = std::time::Instant::now();
    let reply = invoke_with(client().post(emulator.url()).body("{}")).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(reply.json()["errorType"], "Extension.Crash");
    assert!(
        reply.json()["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("exit status 4")),
        "{}",
        reply.body
    );
}

/// SIGTERM to the emulator: SHUTDOWN (SandboxTerminated) to the extensions, then a clean exit.
#[tokio::test]
async fn sigterm_sends_shutdown_to_extensions() {
    let emulator = idle_runtime(&[]);
    let id = register(&emulator, r#"["SHUTDOWN"]"#).await;
    let api = emulator.runtime_api.clone();
    let waiting = tokio::spawn(async move {
        client()
            .get(format!("http://{api}/2020-01-01/extension/event/next"))
            .header("Lambda-Extension-Identifier", id)
            .send()
            .await
            .expect("event/next answers")
            .text()
            .await
            .expect("body")
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = tokio::task::spawn_blocking(move || emulator.stop())
        .await
        .expect("stop task");
    assert!(stopped.success());
    let event: serde_json::Value =
        serde_json::from_str(&waiting.await.expect("task")).expect("JSON event");
    assert_eq!(event["eventType"], "SHUTDOWN");
    assert_eq!(event["shutdownReason"], "SandboxTerminated");
    assert!(event["deadlineMs"].as_u64().is_some());
}
