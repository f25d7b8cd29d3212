//! Waiting on loopback ports and on conditions.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick; the listener is closed again).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap_or_else(|e| panic!("binding a free port on 127.0.0.1: {e}"))
        .port()
}

/// Waits until something accepts connections on 127.0.0.1:`port`; panics after `timeout`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => return,
            Err(e) if Instant::now() > deadline => {
                panic!("nothing accepted connections on port {port} within {timeout:?}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `GET /index.html` over HTTP/1.0 from 127.0.0.1:`port`, retried until an answer says `200 OK` (a server in a
/// container takes a moment to start); returns the whole response. Panics with the last attempt after `deadline`.
pub fn http_get(port: u16, deadline: Instant) -> String {
    loop {
        let attempt = TcpStream::connect(("127.0.0.1", port)).and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(b"GET /index.html HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        });
        match attempt {
            Ok(response) if response.contains("200 OK") => return response,
            _ if Instant::now() > deadline => panic!("no answer on port {port}: {attempt:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Polls `condition` every 50 ms until it holds; panics naming `what` after `seconds`.
pub fn wait_until(seconds: u64, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
