//! Test harness: a real registry (Debian's `docker-registry`, i.e. distribution) on 127.0.0.1, on a free port,
//! with its own storage directory, optionally behind htpasswd basic auth; killed when dropped.
//!
//! Shared by the crate's tests and `crates/cli/tests/registry.rs` (included there by `#[path]`).

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether a peer tool is installed. Missing tools fail the test with the fix, unless `HOIST_SKIP_PEER_TESTS=1`
/// (then a loud SKIPPED line and `false`).
#[allow(clippy::print_stderr, reason = "a skipped test must say so loudly")]
pub fn require_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    if found {
        return true;
    }
    if std::env::var_os("HOIST_SKIP_PEER_TESTS").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: `{tool}` is not installed (HOIST_SKIP_PEER_TESTS=1)");
        return false;
    }
    panic!(
        "`{tool}` is not installed: run `bash .ci/services.sh` (or set HOIST_SKIP_PEER_TESTS=1 to skip peer tests)"
    );
}

/// A running `docker-registry`.
pub struct TestRegistry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: tempfile::TempDir,
    /// The token server's key and certificate, kept while the registry runs.
    token_dir: Option<tempfile::TempDir>,
}

impl TestRegistry {
    /// An open registry; `None` when skipped (see [`require_tool`]).
    pub fn start() -> Option<Self> {
        Self::start_inner(None, false)
    }

    /// A registry serving HTTPS with a certificate for `127.0.0.1` signed by a fresh test CA ([`Self::ca_file`]).
    pub fn start_tls() -> Option<Self> {
        if !require_tool("openssl") {
            return None;
        }
        Self::start_inner(None, true)
    }

    /// The test CA's certificate (PEM), for TLS registries.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A registry requiring basic auth for `user`/`password` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> Option<Self> {
        if !require_tool("htpasswd") {
            return None;
        }
        Self::start_inner(Some((user, password)), false)
    }

    /// A registry using token auth (as Docker Hub does): its `WWW-Authenticate: Bearer` challenge points at a
    /// [`TokenServer`] on 127.0.0.1 that signs JWTs the registry verifies against the server's certificate.
    /// Anonymous clients get `pull`; `user`/`password` (basic auth at the token server) also get `push`.
    pub fn start_with_token_auth(user: &str, password: &str) -> Option<Self> {
        if !require_tool("openssl") || !require_tool("docker-registry") {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir for the token server");
        let server = TokenServer::start(dir.path(), user, password);
        let auth = format!(
            "auth:\n  token:\n    realm: http://{}/token\n    service: hoist-test-registry\n    issuer: hoist-test-issuer\n    rootcertbundle: {}\n",
            server.addr,
            dir.path().join("token.crt").display()
        );
        let mut registry = Self::start_with_config(None, false, &auth)?;
        registry.token_dir = Some(dir);
        Some(registry)
    }

    /// A registry accepting manifests with foreign layers (layers with `urls`, as Windows base images have).
    pub fn start_allowing_foreign_layers() -> Option<Self> {
        Self::start_with_config(
            None,
            false,
            "validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n",
        )
    }

    fn start_inner(auth: Option<(&str, &str)>, tls: bool) -> Option<Self> {
        Self::start_with_config(auth, tls, "")
    }

    fn start_with_config(auth: Option<(&str, &str)>, tls: bool, extra: &str) -> Option<Self> {
        if !require_tool("docker-registry") {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir for the registry");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("storage").display()
        );
        if let Some((user, password)) = auth {
            let output = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("run htpasswd");
            assert!(output.status.success(), "htpasswd failed");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, &output.stdout).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                htpasswd.display()
            ));
        }
        if tls {
            make_certificates(dir.path());
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("server.crt").display(),
                dir.path().join("server.key").display()
            ));
        }
        config.push_str(extra);
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = Self {
            child,
            addr,
            dir,
            token_dir: None,
        };
        registry.wait_ready(tls);
        Some(registry)
    }

    fn wait_ready(&self, tls: bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if tls && TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            if let Some(status) = http_status(&self.addr, "/v2/")
                && (status == 200 || status == 401)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry on {} did not start; log:\n{}",
            self.addr,
            std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    /// The registry's storage directory (distribution's filesystem layout).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The path of a blob's data file in the registry's storage.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

/// The status code of a plain HTTP GET, or `None` if nothing answers.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A gzip tarball of a tiny root filesystem: a static busybox (so the image runs) and one text file.
pub fn rootfs_tarball(dir: &Path, text: &str) -> PathBuf {
    let rootfs = dir.join(format!("rootfs-{}", text.len()));
    std::fs::create_dir_all(rootfs.join("bin")).expect("rootfs dir");
    if let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .find(|p| Path::new(p).is_file())
    {
        std::fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox");
    }
    std::fs::write(rootfs.join("hello.txt"), text).expect("write hello.txt");
    let tarball = dir.join(format!("rootfs-{}.tar.gz", text.len()));
    let status = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-czf")
        .arg(&tarball)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success());
    tarball
}

/// A CA and a server certificate for `IP:127.0.0.1` signed by it, made with openssl in `dir`.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=hoist test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

/// A token server for distribution's `token` auth: answers `GET /token?service=…&scope=…` with a JWT (RS256, the
/// signing certificate in `x5c`) granting what the caller may have. Runs on a thread until the process ends.
pub struct TokenServer {
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl TokenServer {
    fn start(dir: &Path, user: &str, password: &str) -> Self {
        let output = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "token.key",
                "-out",
                "token.crt",
                "-days",
                "2",
                "-subj",
                "/CN=hoist test token issuer",
            ])
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let der = Command::new("openssl")
            .args(["x509", "-in", "token.crt", "-outform", "DER"])
            .current_dir(dir)
            .output()
            .expect("run openssl")
            .stdout;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token server");
        let addr = listener
            .local_addr()
            .expect("token server address")
            .to_string();
        let key = dir.join("token.key");
        let basic = base64(format!("{user}:{password}").as_bytes(), true);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                answer_token_request(stream, &key, &der, &basic);
            }
        });
        Self { addr }
    }
}

fn answer_token_request(mut stream: TcpStream, key: &Path, certificate_der: &[u8], basic: &str) {
    let mut request = Vec::new();
    let mut byte = [0; 1];
    while !request.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => request.push(byte[0]),
            _ => return,
        }
    }
    let request = String::from_utf8_lossy(&request).into_owned();
    let target = request.split_whitespace().nth(1).unwrap_or("");
    // An OAuth2 refresh-token grant: `POST` with a form body; the identity token for this user is
    // `refresh:PASSWORD`.
    let mut form = String::new();
    if request.starts_with("POST ") {
        let length = request
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        form = String::from_utf8_lossy(&body).into_owned();
    }
    let form_field = |name: &str| {
        form.split('&')
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .map(percent_decode)
    };
    let refresh = form_field("refresh_token");
    let authenticated = request
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("authorization:") && l.contains(basic));
    let has_authorization = request
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("authorization:"));
    let basic_password = decode_basic_password(basic);
    let refreshed = refresh.as_deref() == Some(&format!("refresh:{basic_password}"));
    let authenticated = authenticated || refreshed;
    if (has_authorization || refresh.is_some()) && !authenticated {
        let _ = stream.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    }
    let query = if request.starts_with("POST ") {
        form.as_str()
    } else {
        target.split_once('?').map_or("", |(_, q)| q)
    };
    let mut access = Vec::new();
    for pair in query.split('&') {
        let Some(("scope", value)) = pair.split_once('=') else {
            continue;
        };
        let scope = percent_decode(value);
        // repository:NAME:ACTIONS
        let mut parts = scope.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let granted: Vec<&str> = actions
            .split(',')
            .filter(|a| *a == "pull" || (authenticated && *a == "push"))
            .collect();
        access.push(serde_json::json!({"type": kind, "name": name, "actions": granted}));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let header =
        serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [base64(certificate_der, true)]});
    let claims = serde_json::json!({
        "iss": "hoist-test-issuer",
        "sub": if authenticated { "hoister" } else { "" },
        "aud": "hoist-test-registry",
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", access.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        base64(header.to_string().as_bytes(), false),
        base64(claims.to_string().as_bytes(), false)
    );
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl dgst");
    openssl
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(signing_input.as_bytes())
        .expect("write signing input");
    let signature = openssl
        .wait_with_output()
        .expect("openssl dgst output")
        .stdout;
    let token = format!("{signing_input}.{}", base64(&signature, false));
    let body = serde_json::json!({"token": token, "access_token": token}).to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Base64: standard alphabet with padding, or URL-safe without (JWT). Small enough not to need a dependency in
/// every crate that includes this harness.
fn base64(bytes: &[u8], standard: bool) -> String {
    let alphabet: &[u8; 64] = if standard {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(alphabet[(n >> (18 - 6 * i) & 63) as usize]));
        }
        if standard {
            out.push_str(&"=".repeat(3 - chunk.len()));
        }
    }
    out
}

/// The password in a base64 `user:password` (the harness's own encoding, so only its alphabet is handled).
fn decode_basic_password(encoded: &str) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in encoded.bytes().filter(|c| *c != b'=') {
        let Some(value) = alphabet.iter().position(|a| *a == c) else {
            break;
        };
        bits = bits << 6 | value as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split_once(':')
        .map(|(_, p)| p.to_owned())
        .unwrap_or_default()
}
