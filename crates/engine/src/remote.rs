//! `ADD <http(s) URL>`: BuildKit's http source. The URL is downloaded (streamed to disk, hashed on the way) into
//! a directory of its own holding one file, which the ADD then copies like a context file.
//!
//! As in BuildKit: the file is named by the Dockerfile frontend (the URL path's last element, `__unnamed__` when
//! there is none; a `Content-Disposition` header is not consulted because the frontend always names the file),
//! written with mode 0600 and the `Last-Modified` time (the Unix epoch without one), never unpacked unless
//! `--unpack=true`. `--checksum=sha256:…` (or `sha384:`, `sha512:`) is verified. What later steps' cache keys see is the file's name,
//! digest and time, so an unchanged download reuses the cached ADD and a changed one runs it again.
//!
//! Downloads are kept under `<scratch>/downloads`: one directory per (name, digest, time), and an index per URL
//! with the digest and `ETag` last seen. A rebuild with `--checksum` that matches the index does not touch the
//! network (BuildKit trusts a pinned checksum the same way); otherwise the request carries `If-None-Match` and
//! a `304 Not Modified` reuses the kept file, as BuildKit's http source does.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, ETAG, IF_NONE_MATCH, LAST_MODIFIED};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha384, Sha512};

/// A download that failed, naming the URL.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// `--checksum` is not a sha256, sha384 or sha512 digest.
    #[error(
        "invalid checksum {checksum:?} for {url}: expected sha256:, sha384: or sha512: and lower-case hex digits"
    )]
    BadChecksum {
        /// The URL.
        url: String,
        /// The checksum as given.
        checksum: String,
    },
    /// The file name the planner gave is not one file name.
    #[error("invalid file name {filename:?} for {url}")]
    BadFileName {
        /// The URL.
        url: String,
        /// The name.
        filename: String,
    },
    /// The request could not be sent or its answer not read (connection refused, TLS, timeout).
    #[error("failed to download {url}")]
    Request {
        /// The URL.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("failed to download {url}: invalid response status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status (`404 Not Found`).
        status: StatusCode,
    },
    /// The downloaded bytes are not what `--checksum` pins.
    #[error("digest mismatch for {url}: {actual} (expected: {expected})")]
    ChecksumMismatch {
        /// The URL.
        url: String,
        /// `--checksum`.
        expected: String,
        /// The digest of what was downloaded.
        actual: String,
    },
    /// The download directory could not be written.
    #[error("failed to {action} {} (downloading {url})", .path.display())]
    Io {
        /// The URL.
        url: String,
        /// What was attempted.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be set up.
    #[error("failed to set up the HTTP client: {reason}")]
    Client {
        /// Why.
        reason: String,
    },
}

/// A downloaded file, ready to be copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fetched {
    /// The directory holding just the file.
    pub(crate) dir: PathBuf,
    /// `sha256:<hex>` of its bytes.
    pub(crate) digest: String,
    /// The `Last-Modified` header as sent, if any.
    pub(crate) last_modified: Option<String>,
}

impl Fetched {
    /// What the ADD's cache key depends on, as BuildKit's http source keys it: the name, the digest and the
    /// time; with `--checksum` only the name and the pinned digest (a new `Last-Modified` alone reuses the
    /// cached step, whose file keeps the time it was first downloaded with).
    pub(crate) fn key_content(&self, filename: &str, pinned: Option<&str>) -> Vec<u8> {
        let (digest, time) = match pinned {
            Some(pinned) => (pinned, ""),
            None => (
                self.digest.as_str(),
                self.last_modified.as_deref().unwrap_or(""),
            ),
        };
        let mut content = Vec::new();
        for part in [filename, digest, time] {
            content.extend_from_slice(&(part.len() as u64).to_le_bytes());
            content.extend_from_slice(part.as_bytes());
        }
        content
    }
}

/// What the index remembers about a URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seen {
    /// `sha256:…` of the file.
    digest: String,
    /// Its digests in the other algorithms a `--checksum` asked for.
    #[serde(default)]
    other: Vec<String>,
    etag: Option<String>,
    last_modified: Option<String>,
    /// The directory name under `downloads/`.
    dir: String,
}

/// Downloads `url` as `filename` into `downloads` (or reuses a kept copy, see the module docs).
/// `secrets` are the build's `--secret`s: `HTTP_AUTH_HEADER_<host>` is sent as the `Authorization` header, and
/// `HTTP_AUTH_TOKEN_<host>` as `Bearer <token>` (it wins when both are given), as BuildKit's http source does.
pub(crate) fn fetch(
    downloads: &Path,
    url: &str,
    checksum: Option<&str>,
    filename: &str,
    secrets: &BTreeMap<String, Vec<u8>>,
) -> Result<Fetched, DownloadError> {
    if filename.is_empty() || filename == "." || filename == ".." || filename.contains('/') {
        return Err(DownloadError::BadFileName {
            url: url.to_owned(),
            filename: filename.to_owned(),
        });
    }
    let algorithm = checksum
        .map(|checksum| {
            Algorithm::of(checksum).ok_or_else(|| DownloadError::BadChecksum {
                url: url.to_owned(),
                checksum: checksum.to_owned(),
            })
        })
        .transpose()?;
    let io = |action, path: &Path| {
        let url = url.to_owned();
        let path = path.to_path_buf();
        move |source| DownloadError::Io {
            url,
            action,
            path,
            source,
        }
    };
    fs::create_dir_all(downloads.join("urls")).map_err(io("create", &downloads.join("urls")))?;
    let index = downloads
        .join("urls")
        .join(format!("{}.json", sha256_hex(&[url, filename])));
    let seen: Option<Seen> = fs::read(&index)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .filter(|seen: &Seen| downloads.join(&seen.dir).join(filename).is_file());
    let reuse = |seen: &Seen| Fetched {
        dir: downloads.join(&seen.dir),
        digest: seen.digest.clone(),
        last_modified: seen.last_modified.clone(),
    };
    if let (Some(seen), Some(checksum)) = (&seen, checksum)
        && seen.knows(checksum)
    {
        return Ok(reuse(seen));
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DownloadError::Client {
            reason: format!("failed to start a runtime: {e}"),
        })?;
    let client = http_client()?;
    let request_error = |source| DownloadError::Request {
        url: url.to_owned(),
        source,
    };
    let staging = tempfile::Builder::new()
        .prefix("tmp-")
        .tempdir_in(downloads)
        .map_err(io("create a directory in", downloads))?;
    let path = staging.path().join(filename);
    let outcome = runtime.block_on(async {
        let mut request = client.get(url);
        if let Some(authorization) = authorization(url, secrets) {
            request = request.header(AUTHORIZATION, authorization);
        }
        if let Some(etag) = seen.as_ref().and_then(|s| s.etag.as_deref()) {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let mut response = request.send().await.map_err(request_error)?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED && seen.is_some() {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(DownloadError::Status {
                url: url.to_owned(),
                status,
            });
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header(ETAG).map(|e| e.trim_start_matches("W/").to_owned());
        let last_modified = header(LAST_MODIFIED);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io("create", &path))?;
        let mut hasher = Sha256::new();
        // A sha384 or sha512 `--checksum` is computed on the way too.
        let mut pinned = algorithm
            .filter(|a| *a != Algorithm::Sha256)
            .map(Algorithm::hasher);
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            hasher.update(&chunk);
            if let Some(pinned) = &mut pinned {
                pinned.update(&chunk);
            }
            file.write_all(&chunk).map_err(io("write", &path))?;
        }
        file.sync_all().map_err(io("write", &path))?;
        Ok(Some((
            format!("sha256:{}", hex::encode(hasher.finalize())),
            pinned.map(Hasher::finish),
            etag,
            last_modified,
        )))
    })?;
    let Some((digest, other, etag, last_modified)) = outcome else {
        let seen = seen.expect("a 304 is taken only when the index has an entry");
        if let (Some(expected), Some(algorithm)) = (checksum, algorithm)
            && !seen.knows(expected)
        {
            let kept = downloads.join(&seen.dir).join(filename);
            let actual = if algorithm == Algorithm::Sha256 {
                seen.digest.clone()
            } else {
                algorithm.digest_file(&kept).map_err(io("read", &kept))?
            };
            if actual != expected {
                return Err(DownloadError::ChecksumMismatch {
                    url: url.to_owned(),
                    expected: expected.to_owned(),
                    actual,
                });
            }
        }
        return Ok(reuse(&seen));
    };
    if let Some(expected) = checksum {
        let actual = other.as_deref().unwrap_or(&digest);
        if actual != expected {
            return Err(DownloadError::ChecksumMismatch {
                url: url.to_owned(),
                expected: expected.to_owned(),
                actual: actual.to_owned(),
            });
        }
    }
    // BuildKit: the time is `Last-Modified` when it parses, else the Unix epoch.
    let mtime = last_modified
        .as_deref()
        .and_then(|text| httpdate::parse_http_date(text).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let file = fs::File::options()
        .write(true)
        .open(&path)
        .map_err(io("open", &path))?;
    file.set_modified(mtime)
        .map_err(io("set the time of", &path))?;
    drop(file);

    let name = sha256_hex(&[filename, &digest, last_modified.as_deref().unwrap_or("")]);
    let dir = downloads.join(&name);
    if !dir.join(filename).is_file() {
        let _ = fs::remove_dir_all(&dir);
        let kept = staging.keep();
        if let Err(source) = fs::rename(&kept, &dir) {
            // Another build kept the same download meanwhile: use that one.
            let _ = fs::remove_dir_all(&kept);
            if !dir.join(filename).is_file() {
                return Err(io("rename", &kept)(source));
            }
        }
    }
    let seen = Seen {
        digest: digest.clone(),
        other: other.into_iter().collect(),
        etag,
        last_modified: last_modified.clone(),
        dir: name,
    };
    let json = serde_json::to_vec(&seen).expect("the index record serializes");
    // Written beside and renamed over, so a reader never sees half a record (two writers: the last wins).
    let urls = downloads.join("urls");
    let mut partial =
        tempfile::NamedTempFile::new_in(&urls).map_err(io("create a file in", &urls))?;
    partial
        .write_all(&json)
        .map_err(io("write", partial.path()))?;
    partial
        .persist(&index)
        .map_err(|e| io("write", &index)(e.error))?;
    Ok(Fetched {
        dir,
        digest,
        last_modified,
    })
}

/// The `Authorization` value the build's secrets give `url`'s host, if any.
fn authorization(url: &str, secrets: &BTreeMap<String, Vec<u8>>) -> Option<String> {
    let host = reqwest::Url::parse(url).ok()?.host_str()?.to_owned();
    let secret = |prefix: &str| {
        secrets
            .get(&format!("{prefix}{host}"))
            .map(|value| String::from_utf8_lossy(value).into_owned())
    };
    secret("HTTP_AUTH_TOKEN_")
        .map(|token| format!("Bearer {token}"))
        .or_else(|| secret("HTTP_AUTH_HEADER_"))
}

impl Seen {
    /// Whether `digest` is one of the kept file's digests.
    fn knows(&self, digest: &str) -> bool {
        self.digest == digest || self.other.iter().any(|d| d == digest)
    }
}

/// The digest algorithms `--checksum` takes (BuildKit's `digest.Parse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    /// The algorithm of a well-formed `algorithm:hex` digest.
    fn of(digest: &str) -> Option<Algorithm> {
        let (name, hex) = digest.split_once(':')?;
        let (algorithm, len) = match name {
            "sha256" => (Algorithm::Sha256, 64),
            "sha384" => (Algorithm::Sha384, 96),
            "sha512" => (Algorithm::Sha512, 128),
            _ => return None,
        };
        (hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then_some(algorithm)
    }

    fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha384 => Hasher::Sha384(Sha384::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    /// `algorithm:hex` of a file's bytes.
    fn digest_file(self, path: &Path) -> std::io::Result<String> {
        let mut hasher = self.hasher();
        let mut file = fs::File::open(path)?;
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = std::io::Read::read(&mut file, &mut buf)?;
            if n == 0 {
                return Ok(hasher.finish());
            }
            hasher.update(&buf[..n]);
        }
    }
}

enum Hasher {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha384(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha384(h) => format!("sha384:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// SHA-256 over length-prefixed parts, in hex.
fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// reqwest on rustls (ring) with the system's certificates, as hoist-registry builds its client.
fn http_client() -> Result<reqwest::Client, DownloadError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped, as Go's crypto/x509 does.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| DownloadError::Client {
        reason: e.to_string(),
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        // A server that stops sending fails the step instead of hanging the build.
        .read_timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| DownloadError::Client {
            reason: e.to_string(),
        })
}
