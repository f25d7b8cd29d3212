//! hoist-oci: the local image store, content-addressed and safe to share between processes.
//!
//! The one idea: **nothing becomes visible until it is complete and verified.** A blob is streamed into a temp file,
//! hashed as it is written, synced, checked against its expected digest and size, and only then renamed under its
//! digest; the reference index is replaced whole by `rename`; snapshot and cache entries are directories renamed
//! into place. A crash at any moment leaves the previous state plus leftovers that [`Store::prune`] removes.
//! Locks (`flock`) let many hoist processes share a store, and leases keep prune from deleting content a live
//! process has written but not yet tagged. The on-disk layout is versioned and documented on [`Store`] and in
//! `docs/store.md`.
//!
//! Images use the `oci-spec` types, re-exported as [`oci_spec`] so callers use the same version; Docker image
//! manifest v2 schema 2 media types are accepted alongside OCI ones ([`media_type`]).
//!
//! # Example
//!
//! ```no_run
//! use hoist_oci::{DigestExt, Expected, ManifestFormat, Reference, Store};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let layer_tar_gz: &[u8] = &[]; let config_json: &[u8] = &[];
//! let store = Store::open(Store::default_root()?)?;
//! // A layer: stored, hashed, and measured (diffID, sizes) in one pass.
//! let layer = store.ingest_layer(layer_tar_gz, &Expected::unknown())?;
//! let descriptor = hoist_oci::layer_descriptor(&layer, ManifestFormat::Oci);
//! // The config must list the layer's diffID; the manifest is written canonically.
//! let image = store.write_image(config_json, &[descriptor], ManifestFormat::Oci)?;
//! store.tag(&"app:1.0".parse::<Reference>()?, &image.manifest)?;
//! for summary in store.list_images()? {
//!     println!("{} {}", summary.reference, summary.record.id.short_id());
//! }
//! # Ok(()) }
//! ```

pub use oci_spec;

pub use area::{Area, EntryWriter};
pub use blob::{BlobInfo, BlobWriter, Expected};
pub use canonical::{encode_index, encode_manifest};
pub use check::{CheckOptions, CheckReport, Problem};
pub use digest::{DigestExt, digest_from_oci};
pub use error::{Error, Result, error_chain};
pub use hoist_layer::{Compression, Digest, ParseDigestError};
pub use image::{FoundImage, Image, ImageLayer, ImageSummary, Lookup, Removal, WrittenImage};
pub use inspect::{ImageInspect, LayerDetail, RootFs};
pub use layer_info::{LayerBlob, LayerInfo, TarContentMeter, tar_content_size};
pub use media_type::{ManifestFormat, MediaKind, classify};
pub use prune::{PruneOptions, PruneReport};
pub use reference::{DEFAULT_TAG, Reference};

/// Docker's reference grammar, piece by piece, for crates that parse references their own way (`hoist-registry`).
pub mod reference_grammar {
    pub use crate::reference::{validate_path_component, validate_registry, validate_tag};
}
pub use references::{ImagePlatform, ImageRecord, Target};
pub use store::Store;
pub use variants::{CompressProgress, LayerCompression, PROGRESS_STEP};

pub mod media_type;
pub mod units;

mod area;
mod blob;
mod canonical;
mod check;
mod digest;
mod error;
mod image;
mod inspect;
mod layer_info;
mod layout;
mod lock;
mod prune;
mod reference;
mod references;
mod store;
mod variants;
mod write_behind;

/// The manifest descriptor of a layer just ingested, with the media type of `format` for its compression.
pub fn layer_descriptor(layer: &LayerBlob, format: ManifestFormat) -> oci_spec::image::Descriptor {
    oci_spec::image::DescriptorBuilder::default()
        .media_type(oci_spec::image::MediaType::from(
            format.layer_media_type(layer.compression),
        ))
        .digest(layer.blob.digest.to_oci())
        .size(layer.blob.size)
        .build()
        .expect("media type, digest and size are all a descriptor requires")
}
