//! The store's error type: one variant per failing operation, each naming the path, digest or reference involved.

use std::io;
use std::path::PathBuf;

use crate::Digest;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither `$XDG_DATA_HOME` nor `$HOME` is set, so there is no default store location.
    #[error("cannot find a default store location: set --root, HOIST_ROOT, XDG_DATA_HOME or HOME")]
    NoDefaultRoot,

    /// Creating the store's directories failed.
    #[error("failed to create store directory {path}")]
    CreateLayout {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Opening or locking a lock file failed.
    #[error("failed to lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Creating or writing an in-progress blob (under `ingest-v1/`) failed.
    #[error("failed to write blob data to {path}")]
    WriteIngest {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Reading the source stream of a blob being ingested failed.
    #[error("failed to read the content for blob {expected}")]
    ReadSource {
        /// The expected digest, or `unknown digest`.
        expected: String,
        #[source]
        source: io::Error,
    },

    /// Syncing or renaming a verified blob into `blobs-v1/` failed.
    #[error("failed to commit blob {digest} to {path}")]
    CommitBlob {
        digest: Digest,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The content did not hash to the digest it was announced with; nothing was stored.
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },

    /// The content did not have the size it was announced with; nothing was stored.
    #[error("size mismatch for blob {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },

    /// A digest string is malformed or not SHA-256.
    #[error(transparent)]
    Digest(#[from] hoist_layer::ParseDigestError),

    /// The blob is not in the store.
    #[error("blob not found: {digest}")]
    BlobNotFound { digest: Digest },

    /// Reading a stored blob failed.
    #[error("failed to read blob {digest}")]
    ReadBlob {
        digest: Digest,
        #[source]
        source: io::Error,
    },

    /// A blob that should be JSON (manifest, index, config) does not parse.
    #[error("blob {digest} is not a valid {what}")]
    ParseBlob {
        digest: Digest,
        /// What the blob was expected to be: "image manifest", "image index", "image config".
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// Serialising a manifest or the reference index failed.
    #[error("failed to encode {what} as JSON")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// A descriptor's media type is not one this operation handles.
    #[error("unsupported media type {media_type} for {digest}")]
    UnsupportedMediaType { digest: Digest, media_type: String },

    /// An image index has no manifest for the wanted platform.
    #[error("image index {digest} has no manifest for platform {platform}")]
    NoMatchingPlatform { digest: Digest, platform: String },

    /// The config's `rootfs.diff_ids` does not match the layers given.
    #[error("image config {config} does not match its layers: {reason}")]
    ConfigMismatch { config: Digest, reason: String },

    /// A reference string is not `name[:tag]`.
    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference {
        reference: String,
        reason: &'static str,
    },

    /// No image matches the reference or ID.
    #[error("no such image: {reference}")]
    ImageNotFound { reference: String },

    /// An image ID prefix matches more than one image.
    #[error("image ID prefix {prefix} is ambiguous: matches {}", candidates.join(", "))]
    AmbiguousImageId {
        prefix: String,
        candidates: Vec<String>,
    },

    /// Removing an image by ID that several references point at, without `force`.
    #[error(
        "conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories: {}",
        references.join(", ")
    )]
    ImageInUse { id: String, references: Vec<String> },

    /// Reading the reference index failed.
    #[error("failed to read the reference index {path}")]
    ReadIndex {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The reference index is not valid JSON of the expected shape.
    #[error("the reference index {path} is corrupt")]
    ParseIndex {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// Writing a small metadata file (the reference index, layer info) atomically failed.
    #[error("failed to write {path}")]
    WriteMetadata {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Reading per-layer metadata (`layers-v1/`) failed.
    #[error("failed to read layer metadata {path}")]
    ReadLayerInfo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A layer blob could not be decompressed or read as a tar stream.
    #[error("failed to read layer {layer} as a tar stream")]
    ScanLayer {
        /// The layer's digest, or a description when it is not known yet.
        layer: String,
        #[source]
        source: io::Error,
    },

    /// A snapshot or cache entry key is not a plain file name.
    #[error(
        "invalid {area} entry key {key:?}: use letters, digits, '-', '_', '.', not starting with '.'"
    )]
    InvalidEntryKey { area: &'static str, key: String },

    /// Creating, committing or touching a snapshot or cache entry failed.
    #[error("failed to update store entry {path}")]
    Entry {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Walking or deleting content during prune failed.
    #[error("failed to prune {path}")]
    Prune {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Listing a store directory during `check` failed.
    #[error("failed to list {path}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A size like `10GB` did not parse.
    #[error(
        "invalid size {input:?}: expected a number with an optional unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
    )]
    InvalidSize { input: String },
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `error: cause: cause…`: an error with its whole chain of causes, for messages that cross a boundary as text
/// (a build vertex's error, a container record, `hoist check`'s report).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
