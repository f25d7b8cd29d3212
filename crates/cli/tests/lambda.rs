//! `hoist lambda`: the official RIE command line reaches hoist-lambda (flags before and after the bootstrap), and an
//! invoke makes the round trip through the Runtime API, with this test playing the runtime over plain HTTP/1.1.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hoist_testkit::{free_port, wait_for_port};

/// One HTTP/1.1 exchange with `Connection: close`; returns the raw head and the body.
fn http(port: u16, method: &str, path: &str, body: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("set a read timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read the reply");
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .expect("an HTTP reply has a head");
    (head.to_owned(), body.to_owned())
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn hoist_lambda_runs_the_emulator() {
    let front = free_port();
    let api = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args([
            "lambda",
            "--runtime-interface-emulator-address",
            &format!("127.0.0.1:{front}"),
            "sleep",
            "60",
        ])
        .arg(format!("--runtime-api-address=127.0.0.1:{api}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hoist lambda");
    let _guard = Killed(child);
    wait_for_port(front, Duration::from_secs(10));
    let caller = std::thread::spawn(move || {
        http(
            front,
            "POST",
            "/2015-03-31/functions/function/invocations",
            r#"{"ping":1}"#,
        )
    });
    let (head, event) = http(api, "GET", "/2018-06-01/runtime/invocation/next", "");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(event, r#"{"ping":1}"#);
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("lambda-runtime-aws-request-id: "))
        .expect("a request id header")
        .trim()
        .to_owned();
    let (head, _) = http(
        api,
        "POST",
        &format!("/2018-06-01/runtime/invocation/{id}/response"),
        r#"{"pong":1}"#,
    );
    assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    let (head, body) = caller.join().expect("caller thread");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("x-amzn-requestid: {id}")),
        "{head}"
    );
    assert_eq!(body, r#"{"pong":1}"#);
}
