//! The emulator with PyPI's `awslambdaric` as the runtime client (`python3 -m awslambdaric app.handler`).

mod common;

use common::{Function, fixture, require};

fn python_function() -> Option<Function> {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import awslambdaric"])
        .output();
    let available = match probe {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "awslambdaric is not installed for python3 ({}); install it with `pip install awslambdaric` \
             (see .ci/services.sh)",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        )),
        Err(e) => Err(format!(
            "python3 is not available ({e}); install python3 and `pip install awslambdaric`"
        )),
    };
    require(available).then(|| Function {
        bootstrap: ["python3", "-m", "awslambdaric", "app.handler"]
            .map(String::from)
            .to_vec(),
        cwd: fixture("py-fn"),
        env: Vec::new(),
    })
}

#[tokio::test]
async fn python_success() {
    let Some(f) = python_function() else { return };
    common::success(&f).await;
    // The handler reaches the function as the last CLI argument.
    let emulator = f.start(&[]);
    let reply = common::invoke(&emulator.url(), "{}").await;
    assert_eq!(reply.json()["handler"], "app.handler");
}

#[tokio::test]
async fn python_client_context_reaches_the_handler() {
    let Some(f) = python_function() else { return };
    let emulator = f.start(&[]);
    let context = base64_encode(br#"{"custom":{"k":"v"},"env":{},"client":{}}"#);
    let request = common::client()
        .post(emulator.url())
        .body("{}")
        .header("x-amz-client-context", context);
    let reply = common::invoke_with(request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json()["client_context"],
        serde_json::json!({"k": "v"})
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn python_handler_error() {
    let Some(f) = python_function() else { return };
    common::handler_error(&f).await;
}

#[tokio::test]
async fn python_timeout_then_recovery() {
    let Some(f) = python_function() else { return };
    common::timeout_then_recovery(&f).await;
}

#[tokio::test]
async fn python_crash_then_recovery() {
    let Some(f) = python_function() else { return };
    common::crash_then_recovery(&f).await;
}

#[tokio::test]
async fn python_init_failure() {
    let Some(f) = python_function() else { return };
    common::init_failure(&f, |reply| {
        let body = reply.json();
        assert_eq!(
            body["errorType"], "RuntimeError",
            "the /init/error body is passed on: {body}"
        );
        assert_eq!(
            body["errorMessage"], "init failure requested by FAIL_INIT",
            "{body}"
        );
    })
    .await;
}

#[tokio::test]
async fn python_concurrency() {
    let Some(f) = python_function() else { return };
    common::concurrency(&f).await;
}

/// `X-Amz-Log-Type: Tail`: the invoke's own log (START, the handler's output, END, REPORT) comes back base64-encoded.
#[tokio::test]
async fn python_log_tail() {
    let Some(f) = python_function() else { return };
    let emulator = f.start(&[]);
    let warm = common::invoke_ok(&emulator.url(), r#"{"log":"from the first invoke"}"#).await;
    assert_eq!(warm.header("x-amz-log-result"), None, "only when asked for");
    let request = common::client()
        .post(emulator.url())
        .body(r#"{"log":"hello from the handler"}"#)
        .header("x-amz-log-type", "Tail");
    let reply = common::invoke_with(request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.request_id();
    let encoded = reply.header("x-amz-log-result").expect("a log result");
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    let log = String::from_utf8(decoded).expect("UTF-8 log");
    assert!(
        log.starts_with(&format!("START RequestId: {id} Version: $LATEST\n")),
        "{log}"
    );
    assert!(log.contains("hello from the handler\n"), "{log}");
    assert!(
        !log.contains("from the first invoke"),
        "only this invoke's output: {log}"
    );
    assert!(log.contains(&format!("END RequestId: {id}\n")), "{log}");
    assert!(log.contains(&format!("REPORT RequestId: {id}\t")), "{log}");
    // The output still reaches the emulator's stdout, in order: handler output before END.
    let out = emulator.wait_stdout(&format!("REPORT RequestId: {id}"));
    let said = out
        .find("hello from the handler")
        .expect("handler output on stdout");
    let ended = out.find(&format!("END RequestId: {id}")).expect("END line");
    assert!(said < ended, "{out}");
}
