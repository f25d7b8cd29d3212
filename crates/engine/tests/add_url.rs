//! `ADD <URL>` against a real HTTP/1.1 server on 127.0.0.1 (a few lines of std networking in this file, so the
//! test controls status codes, `Last-Modified`, `ETag` and sees every request): names, modes, times, checksums,
//! errors, and the cache across rebuilds.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hoist_engine::{
    EngineError, SandboxExecutor, Silent, Solution, SolveRequest, Solver, StoreResolver,
    export_image, export_local,
};
use hoist_oci::{ManifestFormat, Store};
use hoist_plan::{BuildPlan, PlanRequest};
use hoist_testkit::{dockerd_available, error_chain};
use sha2::{Digest as _, Sha256};

/// One file the server serves.
#[derive(Clone, Default)]
struct Resource {
    body: Vec<u8>,
    last_modified: Option<String>,
    etag: Option<String>,
    /// The `Authorization` header the server requires (401 without it).
    authorization: Option<String>,
}

impl Resource {
    /// A resource with `body` and no validators or required credentials.
    fn with_body(body: Vec<u8>) -> Resource {
        Resource {
            body,
            ..Resource::default()
        }
    }
}

#[derive(Default)]
struct Served {
    files: HashMap<String, Resource>,
    /// Every request: (path, status sent).
    log: Vec<(String, u16)>,
}

/// An HTTP server on 127.0.0.1 answering GETs from `files` (404 otherwise, 304 for a matching `If-None-Match`).
struct Server {
    addr: String,
    state: Arc<Mutex<Served>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(Served::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&shared);
                std::thread::spawn(move || answer(stream, &state));
            }
        });
        Server { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn serve(&self, path: &str, resource: Resource) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_owned(), resource);
    }

    /// The statuses sent for `path`, in order.
    fn statuses(&self, path: &str) -> Vec<u16> {
        let state = self.state.lock().unwrap();
        state
            .log
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, s)| *s)
            .collect()
    }
}

fn answer(stream: TcpStream, state: &Mutex<Served>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("")
        .to_owned();
    let mut if_none_match = None;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("if-none-match")
        {
            if_none_match = Some(value.trim().to_owned());
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_owned());
        }
    }
    let mut state = state.lock().unwrap();
    let resource = state.files.get(&path).cloned();
    let (status, head, body) = match resource {
        None => (404, String::new(), b"no such file\n".to_vec()),
        Some(r) if r.authorization.is_some() && r.authorization != authorization => {
            (401, String::new(), b"who are you\n".to_vec())
        }
        Some(r) if r.etag.is_some() && r.etag == if_none_match => {
            (304, format!("ETag: {}\r\n", r.etag.unwrap()), Vec::new())
        }
        Some(r) => {
            let mut head = String::new();
            if let Some(time) = &r.last_modified {
                head.push_str(&format!("Last-Modified: {time}\r\n"));
            }
            if let Some(etag) = &r.etag {
                head.push_str(&format!("ETag: {etag}\r\n"));
            }
            (200, head, r.body)
        }
    };
    state.log.push((path, status));
    drop(state);
    let reason = match status {
        200 => "OK",
        304 => "Not Modified",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\n{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(&body);
}

/// A store, a scratch directory and an empty context; builds Dockerfiles `FROM scratch`.
struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    /// The build's `--secret`s.
    secrets: BTreeMap<String, Vec<u8>>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        std::fs::create_dir(dir.path().join("ctx")).unwrap();
        Fixture {
            dir,
            store,
            secrets: BTreeMap::new(),
        }
    }

    fn plan(&self, dockerfile: &str) -> Result<BuildPlan, hoist_plan::PlanError> {
        let file = hoist_dockerfile::parse(dockerfile).unwrap();
        let resolver = StoreResolver {
            store: &self.store,
            puller: None,
        };
        hoist_plan::plan(&PlanRequest::new(file), &resolver)
    }

    fn solve(&self, dockerfile: &str) -> (BuildPlan, Result<Solution, EngineError>) {
        let plan = self.plan(dockerfile).unwrap();
        let solver = Solver {
            store: &self.store,
            executor: &SandboxExecutor,
            reporter: &Silent,
            parallelism: 2,
            scratch: self.dir.path().join("scratch"),
        };
        let context = self.dir.path().join("ctx");
        let request = SolveRequest {
            plan: &plan,
            dockerfile,
            context_dir: &context,
            ignore_patterns: &[],
            secrets: &self.secrets,
            named_contexts: &Default::default(),
            ssh: &Default::default(),
            allow: Default::default(),
        };
        let solution = solver.solve(&request);
        (plan, solution)
    }

    /// Builds `dockerfile` into a fresh directory; returns it and whether the last step came from the cache.
    fn build(&self, dockerfile: &str, out: &str) -> (PathBuf, bool) {
        let (plan, solution) = self.solve(dockerfile);
        let solution = solution.unwrap_or_else(|e| panic!("build failed: {}", error_chain(&e)));
        let cached = solution.get(plan.target_stage().root).unwrap().cached;
        let image = export_image(&self.store, &plan, &solution, ManifestFormat::Oci).unwrap();
        let out = self.dir.path().join(out);
        export_local(&self.store, &image.layers, &out).unwrap();
        (out, cached)
    }

    /// The error of a build that must fail, with its causes.
    fn error(&self, dockerfile: &str) -> String {
        match self.solve(dockerfile).1 {
            Ok(_) => panic!("the build succeeded:\n{dockerfile}"),
            Err(e) => error_chain(&e),
        }
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn meta(path: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A gzip tar archive holding `inner.txt`.
fn tar_gz() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inner.txt"), "inside\n").unwrap();
    let out = dir.path().join("a.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(dir.path())
        .arg("inner.txt")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

#[test]
fn add_url_names_modes_times_and_never_unpacks() {
    let server = Server::start();
    server.serve(
        "/files/hello.txt",
        Resource {
            body: b"hello over http\n".to_vec(),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".to_owned()),
            etag: None,
            authorization: None,
        },
    );
    server.serve("/plain", Resource::with_body(b"no date\n".to_vec()));
    server.serve("/a.tar.gz", Resource::with_body(tar_gz()));
    let fx = Fixture::new();
    let dockerfile = format!(
        "FROM scratch\n\
         ADD {hello} /dl/\n\
         ADD --chmod=755 --chown=1000:1001 {plain} /opt/renamed\n\
         ADD {tar} /archives/\n\
         ADD --unpack=true {tar} /unpacked/\n\
         ADD {root}/ /named/\n\
         ADD {spaced} /spaced/\n",
        hello = server.url("/files/hello.txt"),
        plain = server.url("/plain?x=1"),
        tar = server.url("/a.tar.gz"),
        root = server.url(""),
        spaced = server.url("/with%20space.txt"),
    );
    server.serve(
        "/with%20space.txt",
        Resource::with_body(b"spaced\n".to_vec()),
    );
    server.serve("/", Resource::with_body(b"index\n".to_vec()));
    let (out, _) = fx.build(&dockerfile, "out");

    let hello = out.join("dl/hello.txt");
    assert_eq!(std::fs::read(&hello).unwrap(), b"hello over http\n");
    let m = meta(&hello);
    assert_eq!(m.mode() & 0o7777, 0o600, "downloads are 0600");
    assert_eq!((m.uid(), m.gid()), (0, 0));
    assert_eq!(m.mtime(), 1_445_412_480, "the time is Last-Modified");

    // A destination without a trailing slash names the file; --chmod and --chown apply.
    let renamed = out.join("opt/renamed");
    assert_eq!(std::fs::read(&renamed).unwrap(), b"no date\n");
    let m = meta(&renamed);
    assert_eq!(m.mode() & 0o7777, 0o755);
    assert_eq!((m.uid(), m.gid()), (1000, 1001));
    assert_eq!(m.mtime(), 0, "without Last-Modified the time is the epoch");

    // A downloaded archive stays an archive unless --unpack=true.
    assert_eq!(
        std::fs::read(out.join("archives/a.tar.gz")).unwrap(),
        tar_gz_bytes(&server)
    );
    assert!(!out.join("archives/inner.txt").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("unpacked/inner.txt")).unwrap(),
        "inside\n"
    );
    // The name is the decoded path's last element, as Go's url.Parse gives it.
    assert_eq!(
        std::fs::read_to_string(out.join("spaced/with space.txt")).unwrap(),
        "spaced\n"
    );
    // A URL path without a last element gives BuildKit's `__unnamed__`.
    assert_eq!(
        std::fs::read_to_string(out.join("named/__unnamed__")).unwrap(),
        "index\n"
    );
}

fn tar_gz_bytes(server: &Server) -> Vec<u8> {
    server.state.lock().unwrap().files["/a.tar.gz"].body.clone()
}

#[test]
fn add_url_checksum_is_verified() {
    let server = Server::start();
    let body = b"pinned content\n";
    server.serve("/pinned.bin", Resource::with_body(body.to_vec()));
    let url = server.url("/pinned.bin");
    let fx = Fixture::new();
    let good = sha256(body);
    let (out, _) = fx.build(
        &format!("FROM scratch\nADD --checksum={good} {url} /p\n"),
        "out",
    );
    assert_eq!(std::fs::read(out.join("p")).unwrap(), body);

    let wrong = sha256(b"something else");
    let error = fx.error(&format!("FROM scratch\nADD --checksum={wrong} {url} /p\n"));
    assert!(
        error.contains(&format!(
            "digest mismatch for {url}: {good} (expected: {wrong})"
        )),
        "{error}"
    );

    // sha384 and sha512 pins work too (BuildKit's digest.Parse); the mismatch names the pinned algorithm.
    let sha512 = format!("sha512:{}", hex::encode(sha2::Sha512::digest(body)));
    let (out, _) = fx.build(
        &format!("FROM scratch\nADD --checksum={sha512} {url} /p512\n"),
        "out512",
    );
    assert_eq!(std::fs::read(out.join("p512")).unwrap(), body);
    let sha384 = format!("sha384:{}", hex::encode(sha2::Sha384::digest(body)));
    let wrong384 = format!("sha384:{}", "0".repeat(96));
    let error = fx.error(&format!(
        "FROM scratch\nADD --checksum={wrong384} {url} /p384\n"
    ));
    assert!(
        error.contains(&format!(
            "digest mismatch for {url}: {sha384} (expected: {wrong384})"
        )),
        "{error}"
    );

    let error = fx.error(&format!("FROM scratch\nADD --checksum=md5:abc {url} /p\n"));
    assert!(error.contains("invalid checksum \"md5:abc\""), "{error}");
    assert!(error.contains(&url), "{error}");

    // As in BuildKit, --checksum is for URL sources only.
    std::fs::write(fx.dir.path().join("ctx/local.txt"), "x").unwrap();
    let error = fx
        .plan(&format!(
            "FROM scratch\nADD --checksum={good} local.txt /l\n"
        ))
        .unwrap_err();
    assert!(error.to_string().contains("checksum"), "{error}");
}

#[test]
fn add_url_http_errors_name_the_url_and_status() {
    let server = Server::start();
    let fx = Fixture::new();
    let missing = server.url("/missing.txt");
    let error = fx.error(&format!("FROM scratch\nADD {missing} /m\n"));
    assert!(
        error.contains(&format!(
            "failed to download {missing}: invalid response status 404 Not Found"
        )),
        "{error}"
    );

    // A port nobody listens on.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let refused = format!("http://{closed}/file");
    let error = fx.error(&format!("FROM scratch\nADD {refused} /r\n"));
    assert!(
        error.contains(&format!("failed to download {refused}")),
        "{error}"
    );
}

#[test]
fn add_url_rebuilds_hit_the_cache_until_the_content_changes() {
    let server = Server::start();
    let fx = Fixture::new();
    let serve = |body: &str, etag: Option<&str>| {
        server.serve(
            "/data.txt",
            Resource {
                body: body.as_bytes().to_vec(),
                last_modified: None,
                etag: etag.map(str::to_owned),
                authorization: None,
            },
        );
    };
    let dockerfile = format!("FROM scratch\nADD {} /data.txt\n", server.url("/data.txt"));

    // Without an ETag every build downloads again; unchanged bytes reuse the cached ADD.
    serve("one\n", None);
    let (out, cached) = fx.build(&dockerfile, "first");
    assert!(!cached);
    assert_eq!(
        std::fs::read_to_string(out.join("data.txt")).unwrap(),
        "one\n"
    );
    let (_, cached) = fx.build(&dockerfile, "second");
    assert!(cached, "the same bytes: the ADD is cached");
    assert_eq!(server.statuses("/data.txt"), [200, 200]);

    serve("two\n", None);
    let (out, cached) = fx.build(&dockerfile, "third");
    assert!(!cached, "new bytes: the ADD runs again");
    assert_eq!(
        std::fs::read_to_string(out.join("data.txt")).unwrap(),
        "two\n"
    );

    // With an ETag the rebuild asks If-None-Match and a 304 reuses the kept download.
    serve("three\n", Some("\"v3\""));
    let (_, cached) = fx.build(&dockerfile, "fourth");
    assert!(!cached);
    let (out, cached) = fx.build(&dockerfile, "fifth");
    assert!(cached);
    assert_eq!(
        std::fs::read_to_string(out.join("data.txt")).unwrap(),
        "three\n"
    );
    assert_eq!(server.statuses("/data.txt"), [200, 200, 200, 200, 304]);

    // A pinned checksum that matches the kept download needs no request at all.
    let pinned = format!(
        "FROM scratch\nADD --checksum={} {} /data.txt\n",
        sha256(b"three\n"),
        server.url("/data.txt")
    );
    fx.build(&pinned, "sixth");
    let before = server.statuses("/data.txt").len();
    let (_, cached) = fx.build(&pinned, "seventh");
    assert!(cached);
    assert_eq!(server.statuses("/data.txt").len(), before, "no request");

    // With --checksum the key is the name and the pinned digest: downloaded again (the kept copy gone) with a
    // new Last-Modified, the same bytes still reuse the cached step.
    server.serve(
        "/data.txt",
        Resource {
            body: b"three\n".to_vec(),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".to_owned()),
            etag: None,
            authorization: None,
        },
    );
    std::fs::remove_dir_all(fx.dir.path().join("scratch/downloads")).unwrap();
    let (_, cached) = fx.build(&pinned, "eighth");
    assert!(cached);
    assert_eq!(
        server.statuses("/data.txt").len(),
        before + 1,
        "downloaded again"
    );
}

#[test]
fn add_url_sends_buildkits_http_auth_secrets() {
    let server = Server::start();
    server.serve(
        "/private.txt",
        Resource {
            body: b"members only\n".to_vec(),
            authorization: Some("Bearer t0ken".to_owned()),
            ..Resource::default()
        },
    );
    let url = server.url("/private.txt");
    let dockerfile = format!("FROM scratch\nADD {url} /p\n");
    let mut fx = Fixture::new();
    let error = fx.error(&dockerfile);
    assert!(
        error.contains("invalid response status 401 Unauthorized"),
        "{error}"
    );

    // HTTP_AUTH_TOKEN_<host> is a bearer token; it wins over HTTP_AUTH_HEADER_<host>.
    fx.secrets
        .insert("HTTP_AUTH_TOKEN_127.0.0.1".to_owned(), b"t0ken".to_vec());
    fx.secrets.insert(
        "HTTP_AUTH_HEADER_127.0.0.1".to_owned(),
        b"Basic nope".to_vec(),
    );
    let (out, _) = fx.build(&dockerfile, "token");
    assert_eq!(std::fs::read(out.join("p")).unwrap(), b"members only\n");

    // HTTP_AUTH_HEADER_<host> is the whole header value.
    server.serve(
        "/private.txt",
        Resource {
            body: b"members only\n".to_vec(),
            authorization: Some("Basic dXNlcjpwdw==".to_owned()),
            ..Resource::default()
        },
    );
    fx.secrets.clear();
    fx.secrets.insert(
        "HTTP_AUTH_HEADER_127.0.0.1".to_owned(),
        b"Basic dXNlcjpwdw==".to_vec(),
    );
    let (out, _) = fx.build(&dockerfile, "header");
    assert_eq!(std::fs::read(out.join("p")).unwrap(), b"members only\n");
}

/// The same ADDs through dockerd's BuildKit (which fetches from the host, so 127.0.0.1 reaches this server)
/// and through hoist: the same names, bytes, modes and times.
#[test]
fn docker_add_url_matches_buildkit() {
    if !dockerd_available() {
        return;
    }
    let server = Server::start();
    server.serve(
        "/files/tool.bin",
        Resource {
            body: b"tool bytes\n".to_vec(),
            last_modified: Some("Tue, 15 Nov 1994 08:12:31 GMT".to_owned()),
            ..Resource::default()
        },
    );
    server.serve("/", Resource::with_body(b"index\n".to_vec()));
    server.serve("/a.tar.gz", Resource::with_body(tar_gz()));
    let dockerfile = format!(
        "FROM scratch\n\
         ADD {tool} /dl/\n\
         ADD {root}/ /named/\n\
         ADD {tar} /renamed.tgz\n",
        tool = server.url("/files/tool.bin"),
        root = server.url(""),
        tar = server.url("/a.tar.gz"),
    );
    let fx = Fixture::new();
    let (ours, _) = fx.build(&dockerfile, "hoist-out");

    let docker_dir = fx.dir.path().join("docker");
    std::fs::create_dir(&docker_dir).unwrap();
    std::fs::write(docker_dir.join("Dockerfile"), &dockerfile).unwrap();
    let theirs = fx.dir.path().join("docker-out");
    let output = std::process::Command::new("/usr/bin/docker")
        .arg("build")
        .arg("--output")
        .arg(format!("type=local,dest={}", theirs.display()))
        .arg(&docker_dir)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in ["dl/tool.bin", "named/__unnamed__", "renamed.tgz"] {
        let (a, b) = (meta(&ours.join(file)), meta(&theirs.join(file)));
        assert_eq!(
            std::fs::read(ours.join(file)).unwrap(),
            std::fs::read(theirs.join(file)).unwrap(),
            "{file}"
        );
        assert_eq!(a.mode() & 0o7777, b.mode() & 0o7777, "{file} mode");
        assert_eq!(a.mtime(), b.mtime(), "{file} time");
    }
}
