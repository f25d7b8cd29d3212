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

    fn start_inner(auth: Option<(&str, &str)>, tls: bool) -> Option<Self> {
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
        let registry = Self { child, addr, dir };
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
