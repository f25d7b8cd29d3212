//! The registry client's error type: one variant per failing operation, each naming the registry, reference,
//! scope or digest involved, so the message says what to do next.

use std::path::PathBuf;

use hoist_layer::Digest;

use crate::ReferenceError;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reference is not a valid image reference.
    #[error(transparent)]
    InvalidReference(#[from] ReferenceError),

    /// The registry refused the credentials (or there were none) for what we asked.
    #[error(
        "unauthorized: {registry} refused access to {scope} ({detail}); run `hoist login {registry}` if the \
         repository is private, and check the name"
    )]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The token scope asked for, e.g. `repository:library/golang:pull`.
        scope: String,
        /// The registry's own message.
        detail: String,
    },

    /// The manifest (tag or digest) does not exist.
    #[error("not found: manifest for {reference} does not exist on {registry} ({detail})")]
    ManifestNotFound {
        /// The reference, fully qualified.
        reference: String,
        /// The registry (or mirror) asked.
        registry: String,
        /// The registry's own message.
        detail: String,
    },

    /// A blob a manifest names does not exist.
    #[error("not found: blob {digest} in {repository} on {registry}")]
    BlobNotFound {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// The blob.
        digest: Digest,
    },

    /// An index has no manifest for the requested platform.
    #[error("no matching manifest for {wanted} in the manifest list entries of {reference} (available: {})",
        available.join(", "))]
    NoMatchingPlatform {
        /// The reference.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// The platforms the index offers.
        available: Vec<String>,
    },

    /// Content did not hash to the digest it was announced with.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was fetched (manifest of a reference, blob).
        what: String,
        /// The digest asked for or announced.
        expected: Digest,
        /// What the content hashes to.
        actual: Digest,
    },

    /// The registry answered 429 Too Many Requests.
    #[error("rate limited by {registry} (429 Too Many Requests){}; try again later, or log in for a higher limit",
        retry_after.as_deref().map(|t| format!(", retry after {t}")).unwrap_or_default())]
    RateLimited {
        /// The registry host.
        registry: String,
        /// The `Retry-After` header, when given.
        retry_after: Option<String>,
    },

    /// Connecting or talking to the registry failed (after retries).
    #[error("cannot reach {registry} ({url})")]
    Connect {
        /// The registry host.
        registry: String,
        /// The URL asked for.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },

    /// The registry kept answering `5xx` to a request that was retried (or asked for a wait longer than hoist's
    /// cap).
    #[error(
        "{request}: {registry} answered {status} {attempts} time(s); giving up ({detail}); the registry is \
             failing, try again later"
    )]
    ServerError {
        /// The registry host.
        registry: String,
        /// The method and URL.
        request: String,
        /// The last status code.
        status: u16,
        /// How many times the request was sent.
        attempts: u32,
        /// The registry's message, and its `Retry-After` when too long to wait.
        detail: String,
    },

    /// No response (headers) came within the limit, every time the request was sent.
    #[error("{registry} did not answer {url} within {seconds} s ({attempts} attempt(s))")]
    Timeout {
        /// The registry host.
        registry: String,
        /// The URL.
        url: String,
        /// The limit waited each time.
        seconds: f64,
        /// How many times the request was sent.
        attempts: u32,
    },

    /// A body arrived slower than the minimum speed.
    #[error("transfer from {registry} stalled ({url}): {detail}")]
    Stalled {
        /// The registry host.
        registry: String,
        /// The URL.
        url: String,
        /// How little arrived in how long.
        detail: String,
    },

    /// Redirects went on past the limit (a loop, usually).
    #[error(
        "too many redirects from {registry}, last to {url}: a redirect loop in the registry or a proxy"
    )]
    TooManyRedirects {
        /// The registry host.
        registry: String,
        /// The last URL redirected to.
        url: String,
    },

    /// A blob download failed on every attempt (each resumed where the last stopped).
    #[error("downloading blob {digest} from {registry} failed after {attempts} attempts: {detail}")]
    Download {
        /// The registry host.
        registry: String,
        /// The blob.
        digest: Digest,
        /// How many times it was requested.
        attempts: u32,
        /// The last fault.
        detail: String,
    },

    /// The registry answered with a status we did not expect.
    #[error("{method} {url}: unexpected status {status}: {detail}")]
    UnexpectedStatus {
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The registry's message.
        detail: String,
    },

    /// The registry sent something that is not valid for its media type.
    #[error("invalid {what} from {registry}: {detail}")]
    InvalidResponse {
        /// The registry host.
        registry: String,
        /// What was being read.
        what: String,
        /// What is wrong.
        detail: String,
    },

    /// The manifest's media type is not one hoist can pull (e.g. Docker schema 1).
    #[error("unsupported manifest media type {media_type:?} for {reference}")]
    UnsupportedManifest {
        /// The reference.
        reference: String,
        /// Its media type.
        media_type: String,
    },

    /// The registry configuration blocks this reference.
    #[error("{reference} is blocked by the registry configuration (blocked = true)")]
    Blocked {
        /// The reference.
        reference: String,
    },

    /// A `--platform` value is not `os/arch[/variant]`.
    #[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/arm64/v8")]
    InvalidPlatform(String),

    /// A registries configuration file could not be read or parsed.
    #[error("invalid registry configuration {path}: {detail}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// A CA certificate file could not be read or parsed.
    #[error("invalid CA certificate file {path}: {detail}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// The TLS or HTTP client could not be set up.
    #[error("cannot set up the HTTP client for {registry}")]
    HttpClient {
        /// The registry host.
        registry: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },

    /// A `docker-credential-*` helper failed.
    #[error("credential helper docker-credential-{helper} failed for {registry}: {detail}")]
    CredentialHelper {
        /// The helper's suffix (`pass`, `secretservice`, …).
        helper: String,
        /// The registry.
        registry: String,
        /// Its stderr or the spawn error.
        detail: String,
    },

    /// The Docker config file (`~/.docker/config.json`) could not be read or written.
    #[error("cannot use Docker config file {path}: {detail}")]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },

    /// The local store failed.
    #[error(transparent)]
    Store(#[from] hoist_oci::Error),

    /// A background task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
}

/// The registry client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
