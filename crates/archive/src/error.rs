//! The crate's error type: one variant per failing operation, naming the file, archive entry or digest involved.

use std::io;
use std::path::PathBuf;

use hoist_oci::Digest;

/// Everything that can go wrong importing, loading or saving images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening or reading an input file or directory failed.
    #[error("failed to read {path}")]
    ReadInput {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The input is not a readable tar stream (or its gzip/zstd compression is corrupt).
    #[error("failed to read the archive as a tar stream")]
    ReadArchive {
        #[source]
        source: io::Error,
    },

    /// A name inside the archive is absolute, climbs above the archive root, or is not UTF-8.
    #[error("unsafe name {name:?} in archive: {reason}")]
    UnsafeName { name: String, reason: &'static str },

    /// A link inside the archive points outside it (or at an absolute path).
    #[error("unsafe link {name:?} -> {target:?} in archive: links must stay inside the archive")]
    UnsafeLink { name: String, target: String },

    /// Following links from a name never ends.
    #[error("too many levels of links resolving {name:?} in archive")]
    LinkLoop { name: String },

    /// The archive holds an entry type that no image format uses (device, fifo, …).
    #[error("unsupported entry {name:?} of type {kind} in archive")]
    UnsupportedEntry { name: String, kind: String },

    /// A metadata file (`manifest.json`, `index.json`, …) is implausibly large.
    #[error("{name} is {size} bytes, more than the {limit} bytes allowed for a metadata file")]
    MetadataTooLarge { name: String, size: u64, limit: u64 },

    /// A file the format requires, or a manifest references, is not in the archive.
    #[error("the archive has no file {name:?}")]
    MissingFile { name: String },

    /// A name that should be a file is a directory.
    #[error("{name:?} in the archive is a directory, not a file")]
    NotAFile { name: String },

    /// The input has neither `manifest.json` (docker-archive) nor `index.json` (OCI image layout).
    #[error(
        "not an image archive: found neither manifest.json (docker-archive) nor index.json (OCI image layout)"
    )]
    UnknownFormat,

    /// A metadata file or blob is not the JSON its format requires.
    #[error("{name} is not a valid {what}")]
    ParseJson {
        name: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// A file does not hash to the digest the archive announces for it.
    #[error("{name} has digest {actual}, but the archive says {expected}")]
    DigestMismatch {
        name: String,
        expected: Digest,
        actual: Digest,
    },

    /// A file does not have the size the archive announces for it.
    #[error("{name} is {actual} bytes, but the archive says {expected}")]
    SizeMismatch {
        name: String,
        expected: u64,
        actual: u64,
    },

    /// A descriptor or config names a digest the store cannot use.
    #[error("invalid digest in {name}")]
    InvalidDigest {
        name: String,
        #[source]
        source: hoist_oci::ParseDigestError,
    },

    /// The number of layers does not match the config's `rootfs.diff_ids`.
    #[error("image {image}: {layers} layers, but its config lists {diff_ids} diff_ids")]
    LayerCountMismatch {
        image: String,
        layers: usize,
        diff_ids: usize,
    },

    /// A layer's uncompressed content does not hash to the config's diffID.
    #[error(
        "image {image}: layer {position} ({name}) has diffID {actual}, but the config says {expected}"
    )]
    DiffIdMismatch {
        image: String,
        position: usize,
        name: String,
        expected: String,
        actual: Digest,
    },

    /// An image index in the archive has no manifest for this host.
    #[error("image index {digest} has no manifest for platform {platform}")]
    NoMatchingPlatform { digest: Digest, platform: String },

    /// A descriptor in the archive points at something that is not an image.
    #[error("{name}: unsupported media type {media_type}")]
    UnsupportedMediaType { name: String, media_type: String },

    /// A name in the archive (`RepoTags`, annotations) or on the command line is not a valid reference.
    #[error("invalid image name {name:?} in {source_name}")]
    InvalidName {
        name: String,
        /// Where the name came from.
        source_name: String,
        #[source]
        source: hoist_oci::Error,
    },

    /// Storing a file of the archive failed (including digest and size verification by the store).
    #[error("failed to store {name}")]
    Blob {
        name: String,
        #[source]
        source: hoist_oci::Error,
    },

    /// A store operation failed.
    #[error(transparent)]
    Store {
        #[from]
        source: hoist_oci::Error,
    },

    /// Writing the output archive or layout failed.
    #[error("failed to write {path}")]
    WriteOutput {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The output directory exists and is not an OCI image layout hoist can add to.
    #[error("{path} exists and is not an OCI image layout")]
    OutputNotLayout { path: PathBuf },

    /// Reading a blob back from the store failed.
    #[error("failed to read stored blob {digest}")]
    ReadStored {
        digest: Digest,
        #[source]
        source: io::Error,
    },

    /// A stored layer does not decompress to its recorded diffID (the store is damaged).
    #[error("stored layer {digest} decompresses to {actual}, expected diffID {expected}")]
    StoredLayerCorrupt {
        digest: Digest,
        expected: Digest,
        actual: Digest,
    },

    /// Encoding JSON for the output failed.
    #[error("failed to encode {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// The rootfs tarball given to import is not a tar stream.
    #[error("failed to read the rootfs tarball")]
    ReadRootfs {
        #[source]
        source: io::Error,
    },

    /// Compressing or storing the imported layer failed.
    #[error("failed to write the imported layer")]
    WriteLayer {
        #[source]
        source: io::Error,
    },

    /// A `--change` instruction is not one `import` accepts, or does not parse.
    #[error("invalid change {change:?}: {reason}")]
    InvalidChange { change: String, reason: String },
}
