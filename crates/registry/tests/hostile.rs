//! Pulls from a hostile registry: a small HTTP/1.1 server on 127.0.0.1 that serves a one-layer image but lies,
//! stalls, loops or floods in one way per test. Each pull must end (within seconds, with the tight [`Limits`]
//! below) in a clear error, or succeed after bounded retries when the misbehaviour stops; and the store must hold
//! nothing unverified afterwards: the bad blob or manifest is absent, no tag was made, no ingest file is left, and
//! `Store::check` (which re-hashes every blob) finds no problem.
//!
//! The server speaks raw HTTP over `std::net` rather than through hyper, because the point is to send what a
//! well-behaved server library would refuse to: a `Content-Length` longer than the body, a body that never ends,
//! headers one byte per second.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hoist_oci::{CheckOptions, Digest, Store};
use hoist_registry::{
    Client, DockerConfig, Error, ImageReference, Limits, PullOptions, PulledImage, RegistryConfig,
    Silent,
};

/// A request as the handler sees it.
struct Request {
    method: String,
    path: String,
    /// The start of a `Range: bytes=N-` header.
    range: Option<usize>,
    /// How many earlier requests had the same method and path.
    hit: usize,
}

/// How the server answers.
enum Reply {
    /// A well-formed response (with `Content-Length`).
    Full {
        status: &'static str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Announces `length` bytes, sends only `body`, then closes the connection.
    Truncated { length: usize, body: Vec<u8> },
    /// No length, `pattern` over and over until the client goes away.
    Endless {
        headers: Vec<(String, String)>,
        pattern: Vec<u8>,
    },
    /// A valid response sent one byte every `interval`, status line and headers included when `headers_too`.
    Drip {
        body: Vec<u8>,
        interval: Duration,
        headers_too: bool,
    },
}

impl Reply {
    fn ok(body: &[u8], content_type: &str) -> Self {
        Self::Full {
            status: "200 OK",
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.to_vec(),
        }
    }

    fn status(status: &'static str, headers: &[(&str, &str)]) -> Self {
        Self::Full {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: br#"{"errors":[{"code":"UNAVAILABLE","message":"hostile test server"}]}"#
                .to_vec(),
        }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// The server; stops accepting when dropped (connections in flight end when the client closes them).
struct Hostile {
    addr: String,
    hits: Arc<Mutex<HashMap<(String, String), usize>>>,
    stop: Arc<AtomicBool>,
}

impl Hostile {
    fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (hits2, stop2) = (Arc::clone(&hits), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (handler, hits) = (Arc::clone(&handler), Arc::clone(&hits2));
                std::thread::spawn(move || serve_connection(stream, &*handler, &hits));
            }
        });
        Self { addr, hits, stop }
    }

    /// How many times `method path` was requested.
    fn hits(&self, method: &str, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .get(&(method.to_owned(), path.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Answers requests on one connection until it closes (or a reply closes it).
fn serve_connection(
    stream: TcpStream,
    handler: &Handler,
    hits: &Mutex<HashMap<(String, String), usize>>,
) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = stream;
    // Not HTTP (the client's TLS probe starts with a handshake record, 0x16): drop the connection at once.
    match reader.fill_buf() {
        Ok(bytes) if bytes.first().is_some_and(u8::is_ascii_uppercase) => {}
        _ => return,
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if !version.starts_with("HTTP/1") {
            return;
        }
        let mut range = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("range")
            {
                range = value
                    .trim()
                    .strip_prefix("bytes=")
                    .and_then(|v| v.strip_suffix('-'))
                    .and_then(|v| v.parse().ok());
            }
        }
        let hit = {
            let mut hits = hits.lock().unwrap();
            let count = hits
                .entry((method.to_owned(), path.to_owned()))
                .or_insert(0);
            *count += 1;
            *count - 1
        };
        let request = Request {
            method: method.to_owned(),
            path: path.to_owned(),
            range,
            hit,
        };
        if !send_reply(&mut out, &request, handler(&request)) {
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Writes a reply; `false` when the connection must (or did) end.
fn send_reply(out: &mut TcpStream, request: &Request, reply: Reply) -> bool {
    let head = |status: &str, headers: &[(String, String)], length: Option<usize>| {
        let mut head = format!("HTTP/1.1 {status}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        match length {
            Some(length) => head.push_str(&format!("Content-Length: {length}\r\n")),
            None => head.push_str("Connection: close\r\n"),
        }
        head.push_str("\r\n");
        head.into_bytes()
    };
    let is_head = request.method == "HEAD";
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut bytes = head(status, &headers, Some(body.len()));
            if !is_head {
                bytes.extend_from_slice(&body);
            }
            out.write_all(&bytes).is_ok()
        }
        Reply::Truncated { length, body } => {
            let _ = out.write_all(&head("200 OK", &[], Some(length)));
            let _ = out.write_all(&body);
            false
        }
        Reply::Endless { headers, pattern } => {
            if out.write_all(&head("200 OK", &headers, None)).is_ok() {
                while out.write_all(&pattern).is_ok() {}
            }
            false
        }
        Reply::Drip {
            body,
            interval,
            headers_too,
        } => {
            let head = head("200 OK", &[], Some(body.len()));
            let (fast, slow) = if headers_too {
                (Vec::new(), [head, body].concat())
            } else {
                (head, body)
            };
            if out.write_all(&fast).is_err() {
                return false;
            }
            for byte in slow {
                if out.write_all(&[byte]).is_err() {
                    return false;
                }
                std::thread::sleep(interval);
            }
            true
        }
    }
}

/// A one-layer image as the registry would store it.
#[derive(Clone)]
struct Image {
    layer: Vec<u8>,
    layer_digest: Digest,
    config: Vec<u8>,
    config_digest: Digest,
    manifest: Vec<u8>,
    manifest_digest: Digest,
    /// The same tar gzipped with another timestamp in its header: as long, valid, but not the layer's digest.
    impostor: Vec<u8>,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

impl Image {
    /// A gzip layer of one 512 KiB file of pseudo-random bytes (so it spans many reads and does not compress).
    fn new() -> Self {
        let mut data = vec![0u8; 512 * 1024];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for byte in &mut data {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "data.bin", &data[..])
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let layer = gz.finish().unwrap();
        let mut gz = flate2::GzBuilder::new()
            .mtime(1)
            .write(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let impostor = gz.finish().unwrap();
        assert_eq!(impostor.len(), layer.len());
        let layer_digest = Digest::sha256(&layer);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(&tar).to_string()]},
        }))
        .unwrap();
        let config_digest = Digest::sha256(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest.to_string(),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest.to_string(),
                "size": layer.len(),
            }],
        }))
        .unwrap();
        let manifest_digest = Digest::sha256(&manifest);
        Self {
            layer,
            layer_digest,
            config,
            config_digest,
            manifest,
            manifest_digest,
            impostor,
        }
    }

    fn manifest_path(&self, reference: &str) -> String {
        format!("/v2/hostile/app/manifests/{reference}")
    }

    fn blob_path(&self, digest: &Digest) -> String {
        format!("/v2/hostile/app/blobs/{digest}")
    }

    /// What an honest registry answers (ranges included).
    fn serve(&self, request: &Request) -> Reply {
        let path = request.path.as_str();
        if path == "/v2/" {
            return Reply::ok(b"{}", "application/json");
        }
        if path == self.manifest_path("1")
            || path == self.manifest_path(&self.manifest_digest.to_string())
        {
            return Reply::ok(&self.manifest, OCI_MANIFEST);
        }
        for (digest, bytes) in [
            (&self.config_digest, &self.config),
            (&self.layer_digest, &self.layer),
        ] {
            if path == self.blob_path(digest) {
                return match request.range {
                    Some(start) if start > 0 && start < bytes.len() => Reply::Full {
                        status: "206 Partial Content",
                        headers: vec![(
                            "Content-Range".into(),
                            format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len()),
                        )],
                        body: bytes[start..].to_vec(),
                    },
                    _ => Reply::ok(bytes, "application/octet-stream"),
                };
            }
        }
        Reply::status("404 Not Found", &[])
    }
}

/// Tight limits, so every case ends in seconds.
fn limits() -> Limits {
    Limits {
        request_retries: 1,
        status_retries: 2,
        max_retry_after: Duration::from_secs(2),
        backoff: Duration::from_millis(50),
        blob_retries: 2,
        response_timeout: Duration::from_secs(1),
        low_speed_limit: 1024,
        low_speed_time: Duration::from_secs(1),
        ..Limits::default()
    }
}

/// Pulls `reference` (relative to the server) into a fresh store; returns the result, the store and how long it
/// took. A pull still running after 30 s fails the test instead of hanging it.
fn pull(
    server: &Hostile,
    reference: &str,
) -> (
    Result<PulledImage, Error>,
    Arc<Store>,
    tempfile::TempDir,
    Duration,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("store")).unwrap());
    let client = Client::new(
        RegistryConfig::default(),
        DockerConfig::at(dir.path().join("docker-config.json")),
    )
    .with_limits(limits());
    let reference: ImageReference = format!("{}/hostile/app{reference}", server.addr)
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let result = runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            client.pull(
                Arc::clone(&store),
                &reference,
                &PullOptions::default(),
                Arc::new(Silent),
            ),
        )
        .await
        .expect("a pull from a hostile registry must end within 30 s")
    });
    // Dropping a runtime with a blocked download thread would wait for it: there is none left by now.
    runtime.shutdown_timeout(Duration::from_secs(1));
    (result, store, dir, started.elapsed())
}

/// The store holds nothing unverified: `absent` blobs are not there, nothing is tagged, no ingest file is left,
/// and every blob re-hashes to its name.
fn assert_store_clean(store: &Store, absent: &[Digest]) {
    for digest in absent {
        assert!(!store.has_blob(digest), "{digest} must not be stored");
    }
    assert!(store.list_images().unwrap().is_empty(), "nothing is tagged");
    let report = store.check(&CheckOptions::default()).unwrap();
    assert!(report.is_ok(), "store check: {:?}", report.problems);
    assert_eq!(report.leftovers, 0, "no ingest or temp file is left");
}

#[test]
fn a_blob_with_the_wrong_digest_is_refused() {
    let image = Image::new();
    let served = image.clone();
    let server = Hostile::start(move |request| {
        if request.path == served.blob_path(&served.layer_digest) {
            return Reply::ok(&served.impostor, "application/octet-stream");
        }
        served.serve(request)
    });
    let (result, store, _dir, _) = pull(&server, ":1");
    let error = result.unwrap_err();
    assert!(
        matches!(&error, Error::DigestMismatch { expected, .. } if *expected == image.layer_digest),
        "{error}"
    );
    assert!(error.to_string().contains("digest mismatch"), "{error}");
    assert_store_clean(&store, &[image.layer_digest, image.manifest_digest]);
}

#[test]
fn a_truncated_blob_is_resumed_and_one_always_truncated_fails_after_bounded_retries() {
    let image = Image::new();
    // Cut once: the download resumes with a range request and the pull succeeds.
    let served = image.clone();
    let server = Hostile::start(move |request| {
        if request.path == served.blob_path(&served.layer_digest) && request.hit == 0 {
            return Reply::Truncated {
                length: served.layer.len(),
                body: served.layer[..100_000].to_vec(),
            };
        }
        served.serve(request)
    });
    let (result, store, _dir, _) = pull(&server, ":1");
    let pulled = result.unwrap();
    assert_eq!(pulled.resolved, image.manifest_digest);
    assert!(store.has_blob(&image.layer_digest));
    assert_eq!(server.hits("GET", &image.blob_path(&image.layer_digest)), 2);
    assert!(store.check(&CheckOptions::default()).unwrap().is_ok());

    // Cut every time: the first request and `blob_retries` resumptions, then a clear error.
    let served = image.clone();
    let server = Hostile::start(move |request| {
        if request.path == served.blob_path(&served.layer_digest) {
            let start = request.range.unwrap_or(0);
            return Reply::Truncated {
                length: served.layer.len() - start,
                body: served.layer[start..start + 10].to_vec(),
            };
        }
        served.serve(request)
    });
    let (result, store, _dir, elapsed) = pull(&server, ":1");
    let error = result.unwrap_err();
    assert!(
        matches!(&error, Error::Download { attempts: 3, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("failed after 3 attempts"),
        "{error}"
    );
    assert_eq!(server.hits("GET", &image.blob_path(&image.layer_digest)), 3);
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_store_clean(&store, &[image.layer_digest, image.manifest_digest]);
}

#[test]
fn an_endless_blob_stops_at_the_descriptor_size() {
    let image = Image::new();
    let served = image.clone();
    let server = Hostile::start(move |request| {
        if request.path == served.blob_path(&served.layer_digest) {
            return Reply::Endless {
                headers: Vec::new(),
                pattern: served.layer.clone(),
            };
        }
        served.serve(request)
    });
    let (result, store, _dir, elapsed) = pull(&server, ":1");
    let error = result.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&format!("more than the {} bytes", image.layer.len())),
        "{message}"
    );
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_store_clean(&store, &[image.layer_digest, image.manifest_digest]);
}

#[test]
fn a_redirect_loop_is_cut_off() {
    let image = Image::new();
    let served = image.clone();
    let server = Hostile::start(move |request| {
        let path = &request.path;
        if path.starts_with("/loop/a") {
            return Reply::status("307 Temporary Redirect", &[("Location", "/loop/b")]);
        }
        if path.starts_with("/loop/b") || *path == served.manifest_path("1") {
            return Reply::status("307 Temporary Redirect", &[("Location", "/loop/a")]);
        }
        served.serve(request)
    });
    let (result, store, _dir, elapsed) = pull(&server, ":1");
    let error = result.unwrap_err();
    assert!(matches!(error, Error::TooManyRedirects { .. }), "{error}");
    assert!(error.to_string().contains("redirect loop"), "{error}");
    // Followed up to the limit, never retried.
    assert!(
        server.hits("GET", "/loop/a") <= 6,
        "{}",
        server.hits("GET", "/loop/a")
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_store_clean(&store, &[image.manifest_digest]);
}

#[test]
fn a_slow_drip_times_out() {
    let image = Image::new();
    // The blob's body at one byte per second: below 1 kB/s, a stall after each one-second window.
    let served = image.clone();
    let server = Hostile::start(move |request| {
        if request.path == served.blob_path(&served.layer_digest) {
            let start = request.range.unwrap_or(0);
            return Reply::Drip {
                body: served.layer[start..].to_vec(),
                interval: Duration::from_secs(1),
                headers_too: false,
            };
        }
        served.serve(request)
    });
    let (result, store, _dir, elapsed) = pull(&server, ":1");
    let error = result.unwrap_err();
    assert!(
        matches!(error, Error::Download { attempts: 3, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("stalled"), "{error}");
    // Three one-second windows plus backoff.
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    assert_store_clean(&store, &[image.layer_digest, image.manifest_digest]);

    // Headers one byte per second: no response within the response timeout, twice.
    let served = image.clone();
    let server = Hostile::start(move |request| {
        if request.path == served.manifest_path("1") {
            return Reply::Drip {
                body: served.manifest.clone(),
                interval: Duration::from_secs(1),
                headers_too: true,
            };
        }
        served.serve(request)
    });
    let (result, store, _dir, elapsed) = pull(&server, ":1");
    let error = result.unwrap_err();
    assert!(
        matches!(error, Error::Timeout { attempts: 2, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("did not answer"), "{error}");
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
    assert_store_clean(&store, &[image.manifest_digest]);
}

#[test]
fn server_error_storms_are_retried_a_bounded_number_of_times() {
    let image = Image::new();
    // Two 503s on the manifest and a 500 on the layer, then the storm ends: the pull succeeds.
    let served = image.clone();
    let server = Hostile::start(move |request| {
        if request.path == served.manifest_path("1") && request.hit < 2 {
            return Reply::status("503 Service Unavailable", &[]);
        }
        if request.path == served.blob_path(&served.layer_digest) && request.hit == 0 {
            return Reply::status("500 Internal Server Error", &[]);
        }
        served.serve(request)
    });
    let (result, store, _dir, _) = pull(&server, ":1");
    assert_eq!(result.unwrap().resolved, image.manifest_digest);
    assert_eq!(server.hits("GET", &image.manifest_path("1")), 3);
    assert!(store.check(&CheckOptions::default()).unwrap().is_ok());

    // A storm that does not end: the first request and `status_retries` more, then a clear error.
    let served = image.clone();
    let server = Hostile::start(move |request| {
        if request.path == served.blob_path(&served.layer_digest) {
            return Reply::status("502 Bad Gateway", &[]);
        }
        served.serve(request)
    });
    let (result, store, _dir, elapsed) = pull(&server, ":1");
    let error = result.unwrap_err();
    assert!(
        matches!(
            error,
            Error::ServerError {
                status: 502,
                attempts: 3,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("answered 502 3 time(s)"),
        "{error}"
    );
    assert_eq!(server.hits("GET", &image.blob_path(&image.layer_digest)), 3);
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_store_clean(&store, &[image.layer_digest, image.manifest_digest]);

    // A 503 asking for a wait beyond the cap fails at once.
    let served = image.clone();
    let server = Hostile::start(move |request| {
        if request.path == served.manifest_path("1") {
            return Reply::status("503 Service Unavailable", &[("Retry-After", "3600")]);
        }
        served.serve(request)
    });
    let (result, store, _dir, _) = pull(&server, ":1");
    let error = result.unwrap_err();
    assert!(
        error.to_string().contains("retry after 3600 seconds"),
        "{error}"
    );
    assert_eq!(server.hits("GET", &image.manifest_path("1")), 1);
    assert_store_clean(&store, &[image.manifest_digest]);
}

#[test]
fn rate_limit_storms_honour_retry_after_up_to_the_cap() {
    let image = Image::new();
    // 429 with Retry-After: 1 twice, then served: the waits are honoured and the pull succeeds.
    let served = image.clone();
    let server = Hostile::start(move |request| {
        if request.path == served.manifest_path("1") && request.hit < 2 {
            return Reply::status("429 Too Many Requests", &[("Retry-After", "1")]);
        }
        served.serve(request)
    });
    let (result, _store, _dir, elapsed) = pull(&server, ":1");
    assert_eq!(result.unwrap().resolved, image.manifest_digest);
    assert!(
        elapsed >= Duration::from_secs(2),
        "Retry-After was waited: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");

    // A storm that does not end: bounded, then the rate-limit error.
    let served = image.clone();
    let server = Hostile::start(move |request| {
        if request.path == served.blob_path(&served.layer_digest) {
            return Reply::status("429 Too Many Requests", &[]);
        }
        served.serve(request)
    });
    let (result, store, _dir, elapsed) = pull(&server, ":1");
    let error = result.unwrap_err();
    assert!(matches!(error, Error::RateLimited { .. }), "{error}");
    assert_eq!(server.hits("GET", &image.blob_path(&image.layer_digest)), 3);
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_store_clean(&store, &[image.layer_digest, image.manifest_digest]);
}

#[test]
fn huge_manifests_are_refused_announced_or_not() {
    let image = Image::new();
    let big = [
        b"{\"schemaVersion\":2,\"x\":\"".as_slice(),
        &vec![b'a'; 5 << 20],
        b"\"}",
    ]
    .concat();
    let served = image.clone();
    let server = Hostile::start(move |request| {
        if request.path == served.manifest_path("1") {
            return Reply::ok(&big, OCI_MANIFEST);
        }
        if request.path == served.manifest_path("endless") {
            return Reply::Endless {
                headers: vec![("Content-Type".into(), OCI_MANIFEST.into())],
                pattern: vec![b' '; 64 * 1024],
            };
        }
        served.serve(request)
    });
    for reference in [":1", ":endless"] {
        let (result, store, _dir, elapsed) = pull(&server, reference);
        let error = result.unwrap_err();
        assert!(
            error.to_string().contains("larger than 4194304 bytes"),
            "{reference}: {error}"
        );
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        assert_store_clean(&store, &[image.manifest_digest]);
    }
}

#[test]
fn a_manifest_that_does_not_match_its_digest_is_refused() {
    let image = Image::new();
    let other = [image.manifest.as_slice(), b"\n"].concat();
    let served = image.clone();
    let server = Hostile::start(move |request| {
        if request.path == served.manifest_path(&served.manifest_digest.to_string()) {
            return Reply::ok(&other, OCI_MANIFEST);
        }
        served.serve(request)
    });
    let (result, store, _dir, _) = pull(&server, &format!("@{}", image.manifest_digest));
    let error = result.unwrap_err();
    assert!(
        matches!(&error, Error::DigestMismatch { expected, .. } if *expected == image.manifest_digest),
        "{error}"
    );
    // Nothing was downloaded on the strength of the wrong manifest.
    assert_eq!(server.hits("GET", &image.blob_path(&image.layer_digest)), 0);
    assert_store_clean(
        &store,
        &[
            image.manifest_digest,
            Digest::sha256(&[image.manifest.as_slice(), b"\n"].concat()),
            image.layer_digest,
        ],
    );
}
