//! The sandbox's errors: one variant per failing operation, each naming what it was working on.

use std::io;
use std::path::PathBuf;

/// Why a container could not be prepared, started or waited for, or a snapshot made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A string given to the kernel contains a NUL byte.
    #[error("{what} contains a NUL byte")]
    NulByte {
        /// Which string.
        what: String,
    },
    /// The container has no command to run.
    #[error("no command specified")]
    NoCommand,
    /// `USER` names a user or group the image does not have.
    #[error("unable to find {kind} {name}: no matching entries in {file}")]
    UnknownUser {
        /// `user` or `group`.
        kind: &'static str,
        /// The name looked up.
        name: String,
        /// The file searched (`/etc/passwd`, `/etc/group`).
        file: &'static str,
    },
    /// A port mapping could not be parsed.
    #[error("invalid port mapping {spec:?}: expected [IP:]HOST_PORT:CONTAINER_PORT[/tcp]")]
    InvalidPort {
        /// The mapping as given.
        spec: String,
    },
    /// Preparing a host-side file or directory failed.
    #[error("failed to {action} {}: {source}", path.display())]
    Prepare {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A system call in the parent failed (clone, pipe, signal setup, wait).
    #[error("failed to {action}: {source}")]
    System {
        /// The operation.
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The child failed while setting up the container, before running the command.
    #[error("container setup failed: {step}: {source}")]
    Setup {
        /// The step that failed, e.g. `mount proc on /…/proc`.
        step: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The command could not be executed (exit code 127 for "not found", 126 otherwise, as Docker does).
    #[error("failed to execute {program:?}: {source}")]
    Exec {
        /// The command.
        program: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// Binding a published host port failed.
    #[error("failed to publish port {host}: {source}")]
    Publish {
        /// The host address.
        host: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The OCI runtime spec could not be made, or the runtime cannot run this container.
    #[error("OCI runtime bundle: {message}")]
    RuntimeSpec {
        /// What went wrong.
        message: String,
    },
    /// The store failed (reading an image, creating a snapshot entry).
    #[error(transparent)]
    Store(#[from] hoist_oci::Error),
    /// An image lists a layer digest that is not a valid digest.
    #[error("invalid layer digest {digest:?}: {source}")]
    LayerDigest {
        /// The digest as written in the manifest.
        digest: String,
        /// The cause.
        #[source]
        source: hoist_layer::ParseDigestError,
    },
    /// Unpacking a layer into a snapshot failed.
    #[error("failed to unpack layer {digest}: {source}")]
    Unpack {
        /// The layer's blob digest.
        digest: hoist_layer::Digest,
        /// The cause.
        #[source]
        source: hoist_layer::ApplyError,
    },
    /// A pulled layer's content does not have the diffID its image config announced (found when it was first
    /// unpacked; nothing was kept).
    #[error(
        "layer {digest} does not match the diffID its image config announces: expected {expected}, got {actual}"
    )]
    DiffIdMismatch {
        /// The layer's blob digest.
        digest: hoist_layer::Digest,
        /// The diffID the config announces.
        expected: hoist_layer::Digest,
        /// The SHA-256 of the layer's uncompressed tar.
        actual: hoist_layer::Digest,
    },
    /// Reading a layer's whiteouts failed.
    #[error("failed to read layer {digest}: {source}")]
    ReadLayer {
        /// The layer's blob digest.
        digest: hoist_layer::Digest,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing a snapshot's changes as a layer failed.
    #[error("failed to write the diff of {}: {source}", upper.display())]
    Diff {
        /// The upper directory.
        upper: PathBuf,
        /// The cause.
        #[source]
        source: hoist_layer::WriteError,
    },
    /// Keeping a snapshot's changes as a directory failed.
    #[error("failed to keep the changes of {} in {}: {source}", upper.display(), dest.display())]
    Keep {
        /// The upper directory.
        upper: PathBuf,
        /// Where the changes were to go.
        dest: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The sandbox's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
