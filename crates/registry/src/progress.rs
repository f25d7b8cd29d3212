//! Progress events: the library reports, the caller renders (the CLI prints lines; the build engine will feed its
//! own progress display from the same events).

use hoist_layer::Digest;

/// One thing that happened during a pull or push.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A reference resolved to a manifest (or index) digest on a registry.
    Resolved {
        /// The reference, fully qualified.
        reference: String,
        /// What it resolved to.
        digest: Digest,
        /// The registry (or mirror) that answered.
        registry: String,
    },
    /// A registry endpoint failed and the next one (mirror or origin) is tried.
    EndpointFailed {
        /// The endpoint that failed.
        registry: String,
        /// Why.
        error: String,
    },
    /// A blob was already present (in the store when pulling, on the registry when pushing): nothing to transfer.
    BlobExists {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// A push started compressing a stored layer (built layers are stored uncompressed): docker's "Preparing".
    CompressStarted {
        /// The layer as stored.
        digest: Digest,
        /// Its stored size: the bytes to compress.
        size: u64,
    },
    /// Bytes of a stored layer compressed so far.
    CompressProgress {
        /// The layer as stored.
        digest: Digest,
        /// Bytes read (and compressed) so far.
        read: u64,
        /// Its stored size.
        size: u64,
    },
    /// A stored layer is compressed; its upload (as `compressed`) may start at once.
    CompressDone {
        /// The layer as stored.
        digest: Digest,
        /// Its stored size.
        size: u64,
        /// The compressed blob, the digest the upload events and the manifest use.
        compressed: Digest,
        /// The compressed blob's size.
        compressed_size: u64,
        /// Seconds it took.
        seconds: f64,
    },
    /// A blob transfer started.
    BlobStarted {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// Bytes moved for a blob so far.
    BlobProgress {
        /// The blob.
        digest: Digest,
        /// Bytes transferred so far.
        transferred: u64,
        /// The blob's size.
        size: u64,
    },
    /// A transfer fault; the transfer continues (resumed where the registry allows).
    BlobRetry {
        /// The blob.
        digest: Digest,
        /// Which retry this is (1-based).
        attempt: u32,
        /// The fault.
        error: String,
    },
    /// A blob was mounted from another repository of the same registry instead of uploaded.
    BlobMounted {
        /// The blob.
        digest: Digest,
        /// The repository it came from.
        from: String,
    },
    /// A blob transfer finished.
    BlobDone {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// Seconds it took.
        seconds: f64,
    },
    /// A layer was not fetched (foreign / non-distributable layers, as Docker skips them).
    BlobSkipped {
        /// The blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// A manifest was pushed under a tag.
    ManifestPushed {
        /// The reference, fully qualified.
        reference: String,
        /// The manifest digest.
        digest: Digest,
        /// Its size.
        size: u64,
    },
}

/// Receives [`Event`]s; implementations must be cheap (they are called from transfer loops) and thread-safe.
pub trait Reporter: Send + Sync {
    /// Called for every event, in order per blob.
    fn report(&self, event: Event);
}

/// A reporter that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _event: Event) {}
}
