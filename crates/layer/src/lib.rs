//! hoist-layer: image layers as tar streams.
//!
//! A layer is a tar of file-system changes. This crate turns a directory (or an overlayfs upper
//! directory, whose whiteouts become `.wh.` entries), or a description of one held in memory
//! ([`LayerEntries`]: paths, metadata and the host files holding the data, what a `COPY` makes
//! without copying anything), into a deterministic tar stream, compresses
//! it with gzip or zstd while computing the diffID and the blob digest in the same pass, and
//! applies a layer tar safely onto a root file system. It knows nothing of image stores,
//! manifests or registries (`hoist-oci` and `hoist-archive` build on it).
//!
//! The one idea: **one pass, no re-reading.** Every byte flows once through
//! `walk → tar → sha256 (diffID) → compressor → sha256 (blob) → sink`, and on the way back
//! `source → decompressor → tar reader → files`, in bounded memory.
//!
//! # Example
//!
//! ```no_run
//! use std::fs::File;
//! use std::path::Path;
//! use hoist_layer::{
//!     apply_layer, write_layer, ApplyOptions, CompressOptions, Compression, Decompressor,
//!     LayerBlobWriter, WriteOptions,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Write: directory → gzip blob, with both digests.
//! let blob = File::create("/tmp/layer.tar.gz")?;
//! let mut writer = LayerBlobWriter::new(blob, Compression::Gzip, &CompressOptions::default())?;
//! let options = WriteOptions::new().with_source_date_epoch(0).with_exclude("etc/hosts");
//! write_layer(Path::new("/tmp/rootfs"), &mut writer, &options)?;
//! let (_file, digests) = writer.finish()?;
//! println!("diffID {} blob {} ({} bytes)", digests.diff_id, digests.digest, digests.size);
//!
//! // Apply: blob → directory (compression detected from the magic bytes).
//! let reader = Decompressor::new(File::open("/tmp/layer.tar.gz")?)?;
//! apply_layer(reader, Path::new("/tmp/unpacked"), &ApplyOptions::new())?;
//! # Ok(())
//! # }
//! ```

mod apply;
mod blob;
mod compression;
mod digest;
mod readahead;
mod sys;
mod tarstream;
mod writer;

pub use apply::{
    ApplyError, ApplyOptions, ApplyReport, INCOMPLETE_MARKER, MAX_PATH_LEN, Ownership,
    ParentSymlinks, UnsafeReason, Whiteouts, apply_layer, is_incomplete,
};
pub use blob::{LayerBlobWriter, LayerDigests};
pub use compression::{
    CompressOptions, Compression, Compressor, Decompressor, ParseCompressionError,
};
pub use digest::{Digest, DigestReader, DigestWriter, Digested, ParseDigestError};
pub use tarstream::ArchiveError;
pub use writer::{
    EntriesError, EntryContent, LayerEntries, LayerEntry, OPAQUE_WHITEOUT, SourceKind,
    WHITEOUT_PREFIX, WriteError, WriteOptions, WriteSummary, is_carried_xattr, read_xattrs,
    write_entries, write_layer,
};
