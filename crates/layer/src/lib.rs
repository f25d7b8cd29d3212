//! hoist-layer: image layers as tar streams.
//!
//! (crate docs are completed with the writer and applier)

mod blob;
mod compression;
mod digest;

pub use blob::{LayerBlobWriter, LayerDigests};
pub use compression::{
    CompressOptions, Compression, Compressor, Decompressor, ParseCompressionError,
};
pub use digest::{Digest, DigestReader, DigestWriter, Digested, ParseDigestError};
