//! Images: writing (config + layers → manifest), tagging, reading (reference → manifest → config → layers), looking
//! up by reference or ID, and removing references.

use oci_spec::image::{
    Descriptor, DescriptorBuilder, ImageConfiguration, ImageIndex, ImageManifest,
    ImageManifestBuilder, MediaType,
};

use crate::canonical::encode_manifest;
use crate::digest::{DigestExt, digest_from_oci};
use crate::layer_info::LayerInfo;
use crate::media_type::{ManifestFormat, MediaKind, classify};
use crate::references::{ImagePlatform, ImageRecord, ReferenceIndex, Target};
use crate::{Digest, Error, Reference, Result, Store};

/// An image read from the store.
#[derive(Debug, Clone)]
pub struct Image {
    /// The references pointing at this image's target.
    pub references: Vec<Reference>,
    /// What the lookup resolved to: the manifest, or the index containing it.
    pub target: Descriptor,
    /// The index, when the target is one.
    pub index: Option<ImageIndex>,
    /// The image manifest's descriptor (the target, or the index entry chosen for the platform).
    pub manifest_descriptor: Descriptor,
    /// The image manifest.
    pub manifest: ImageManifest,
    /// The config blob's digest: the image ID.
    pub id: Digest,
    /// The config blob exactly as stored.
    pub config_bytes: Vec<u8>,
    /// The config, parsed.
    pub config: ImageConfiguration,
    /// The layers in order, with their metadata when the store has it.
    pub layers: Vec<ImageLayer>,
}

/// One layer of an [`Image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLayer {
    /// The layer's descriptor from the manifest.
    pub descriptor: Descriptor,
    /// diffID and sizes, if recorded (they are for every layer ingested with `ingest_layer` or written through
    /// `write_image`).
    pub info: Option<LayerInfo>,
}

/// What [`Store::write_image`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenImage {
    /// The manifest's descriptor: tag this.
    pub manifest: Descriptor,
    /// The config's descriptor; its digest is the image ID.
    pub config: Descriptor,
}

/// How a lookup matched an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// By a reference (`name:tag`).
    Reference(Reference),
    /// By `name@sha256:…`, the target's digest.
    Digest(Digest),
    /// By image ID or an unambiguous prefix of it.
    Id(Digest),
}

/// An image found by [`Store::find_image`], from the reference index alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImage {
    /// How it matched.
    pub lookup: Lookup,
    /// Its record.
    pub record: ImageRecord,
    /// Every reference to the same image ID.
    pub references: Vec<Reference>,
}

/// One line of `hoist images`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// The reference.
    pub reference: Reference,
    /// What it points at.
    pub record: ImageRecord,
}

/// What [`Store::remove_image`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// References removed.
    pub untagged: Vec<Reference>,
    /// The image ID, if its last reference went (its blobs are freed by the next prune).
    pub deleted: Option<Digest>,
}

/// Largest manifest, index or config the store parses (Docker's registry limit for manifests is 4 MiB).
const MAX_JSON_BLOB: u64 = 16 * 1024 * 1024;

impl Store {
    /// Writes an image: stores `config` (exact bytes), builds a manifest over `layers` in the chosen format, and
    /// stores it canonically encoded. Every layer blob must be in the store already; the config's
    /// `rootfs.diff_ids` must match the layers' recorded diffIDs (computed from the blobs when missing).
    /// Returns the manifest descriptor to [`tag`](Store::tag).
    pub fn write_image(
        &self,
        config: &[u8],
        layers: &[Descriptor],
        format: ManifestFormat,
    ) -> Result<WrittenImage> {
        let config_blob = self.ingest_bytes(config)?;
        let parsed: ImageConfiguration =
            serde_json::from_slice(config).map_err(|source| Error::ParseBlob {
                digest: config_blob.digest,
                what: "image config",
                source,
            })?;
        let diff_ids = parsed.rootfs().diff_ids();
        if diff_ids.len() != layers.len() {
            return Err(Error::ConfigMismatch {
                config: config_blob.digest,
                reason: format!("{} diff_ids for {} layers", diff_ids.len(), layers.len()),
            });
        }
        for (position, (layer, diff_id)) in layers.iter().zip(diff_ids).enumerate() {
            let digest = digest_from_oci(layer.digest())?;
            // Protects the layer in this handle's lease (it may be unreferenced until the tag).
            let Some(blob) = self.reuse_existing(&crate::Expected::digest(digest))? else {
                return Err(Error::BlobNotFound { digest });
            };
            if blob.size != layer.size() {
                return Err(Error::SizeMismatch {
                    digest: digest.to_string(),
                    expected: layer.size(),
                    actual: blob.size,
                });
            }
            let info = self.ensure_layer_info(&digest)?;
            if info.diff_id.to_string() != *diff_id {
                return Err(Error::ConfigMismatch {
                    config: config_blob.digest,
                    reason: format!(
                        "layer {position} ({digest}) has diffID {}, the config says {diff_id}",
                        info.diff_id
                    ),
                });
            }
        }
        let config_descriptor = descriptor(
            format.config_media_type(),
            &config_blob.digest,
            config_blob.size,
        );
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::from(format.manifest_media_type()))
            .config(config_descriptor.clone())
            .layers(layers.to_vec())
            .build()
            .expect("schema version, config and layers are all a manifest requires");
        let bytes = encode_manifest(&manifest)?;
        let manifest_blob = self.ingest_bytes(&bytes)?;
        Ok(WrittenImage {
            manifest: descriptor(
                format.manifest_media_type(),
                &manifest_blob.digest,
                manifest_blob.size,
            ),
            config: config_descriptor,
        })
    }

    /// Points `reference` at a stored manifest or index, replacing what it pointed at before.
    ///
    /// The image's record (ID, created, platform, size) is computed now, from the manifest, the config and the
    /// layers' recorded metadata, so that listing never reads blobs. For an index, the entry for the host platform
    /// describes the image.
    pub fn tag(&self, reference: &Reference, target: &Descriptor) -> Result<ImageRecord> {
        // Hold the target in this handle's lease while the record is computed: if it is not referenced yet, a
        // concurrent prune must not delete it before the reference exists.
        let digest = digest_from_oci(target.digest())?;
        let Some(blob) = self.reuse_existing(&crate::Expected::digest(digest))? else {
            return Err(Error::BlobNotFound { digest });
        };
        if blob.size != target.size() {
            return Err(Error::SizeMismatch {
                digest: digest.to_string(),
                expected: target.size(),
                actual: blob.size,
            });
        }
        let record = self.record_for(target)?;
        self.update_index(|index| {
            index.set(reference, record.clone());
            Ok(())
        })?;
        Ok(record)
    }

    /// Points `destination` at whatever `source` (a reference or an image ID) points at.
    pub fn tag_existing(&self, source: &str, destination: &Reference) -> Result<ImageRecord> {
        self.update_index(|index| {
            let found = find_in(index, source)?;
            index.set(destination, found.record.clone());
            Ok(found.record)
        })
    }

    /// Looks an image up by reference (`name[:tag]`), `name@sha256:<target digest>`, or image ID (`sha256:<hex>`,
    /// `<hex>`, or a unique prefix of the hex), in that order, like `docker`.
    pub fn find_image(&self, spec: &str) -> Result<FoundImage> {
        find_in(&self.load_index()?, spec)
    }

    /// Every reference with its record, newest image first (then by reference), as `docker images` orders them.
    pub fn list_images(&self) -> Result<Vec<ImageSummary>> {
        let index = self.load_index()?;
        let mut images: Vec<ImageSummary> = index
            .entries()
            .map(|(reference, record)| ImageSummary {
                reference,
                record: record.clone(),
            })
            .collect();
        images.sort_by(|a, b| {
            let created = |s: &ImageSummary| {
                s.record
                    .created
                    .as_deref()
                    .and_then(crate::units::parse_timestamp)
            };
            created(b)
                .cmp(&created(a))
                .then_with(|| a.reference.cmp(&b.reference))
        });
        Ok(images)
    }

    /// Removes references, like `docker rmi`:
    ///
    /// * by reference: removes that reference;
    /// * by ID (or `name@digest`): removes every reference to the image, but refuses
    ///   ([`Error::ImageInUse`]) when they span more than one repository, unless `force`.
    ///
    /// When the image's last reference goes, [`Removal::deleted`] names it. Blobs are never deleted here: the next
    /// [`prune`](Store::prune) frees everything no longer referenced.
    pub fn remove_image(&self, spec: &str, force: bool) -> Result<Removal> {
        self.update_index(|index| {
            let found = find_in(index, spec)?;
            let untag = match &found.lookup {
                Lookup::Reference(reference) => vec![reference.clone()],
                Lookup::Digest(_) | Lookup::Id(_) => {
                    let mut names: Vec<&str> =
                        found.references.iter().map(Reference::name).collect();
                    names.sort_unstable();
                    names.dedup();
                    if names.len() > 1 && !force {
                        return Err(Error::ImageInUse {
                            id: found.record.id.short_id().to_owned(),
                            references: found.references.iter().map(ToString::to_string).collect(),
                        });
                    }
                    found.references.clone()
                }
            };
            for reference in &untag {
                index.remove(reference);
            }
            let deleted = index
                .references_to_id(&found.record.id)
                .is_empty()
                .then_some(found.record.id);
            Ok(Removal {
                untagged: untag,
                deleted,
            })
        })
    }

    /// Reads an image by reference or ID (see [`find_image`](Store::find_image)): manifest, config and layers.
    pub fn read_image(&self, spec: &str) -> Result<Image> {
        let found = self.find_image(spec)?;
        let mut image = self.load_image(&found.record.target.to_descriptor())?;
        image.references = found.references;
        Ok(image)
    }

    /// Reads the image a manifest or index descriptor describes (for an index: the host platform's manifest).
    pub fn load_image(&self, target: &Descriptor) -> Result<Image> {
        let target_digest = digest_from_oci(target.digest())?;
        let (index, manifest_descriptor) = match classify(target.media_type()) {
            MediaKind::Manifest => (None, target.clone()),
            MediaKind::Index => {
                let index = self.read_index(&target_digest)?;
                let chosen = choose_platform(&index, &ImagePlatform::host()).ok_or_else(|| {
                    Error::NoMatchingPlatform {
                        digest: target_digest,
                        platform: ImagePlatform::host().to_string(),
                    }
                })?;
                (Some(index), chosen)
            }
            _ => {
                return Err(Error::UnsupportedMediaType {
                    digest: target_digest,
                    media_type: target.media_type().to_string(),
                });
            }
        };
        let manifest = self.read_manifest(&digest_from_oci(manifest_descriptor.digest())?)?;
        let id = digest_from_oci(manifest.config().digest())?;
        let config_bytes = self.read_json_blob(&id)?;
        let config = serde_json::from_slice(&config_bytes).map_err(|source| Error::ParseBlob {
            digest: id,
            what: "image config",
            source,
        })?;
        let layers = manifest
            .layers()
            .iter()
            .map(|descriptor| {
                let info = match digest_from_oci(descriptor.digest()) {
                    Ok(digest) => self.layer_info(&digest)?,
                    Err(_) => None,
                };
                Ok(ImageLayer {
                    descriptor: descriptor.clone(),
                    info,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Image {
            references: Vec::new(),
            target: target.clone(),
            index,
            manifest_descriptor,
            manifest,
            id,
            config_bytes,
            config,
            layers,
        })
    }

    /// Reads and parses a stored image manifest (OCI or Docker v2 schema 2).
    pub fn read_manifest(&self, digest: &Digest) -> Result<ImageManifest> {
        let bytes = self.read_json_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::ParseBlob {
            digest: *digest,
            what: "image manifest",
            source,
        })
    }

    /// Reads and parses a stored image index (OCI index or Docker manifest list).
    pub fn read_index(&self, digest: &Digest) -> Result<ImageIndex> {
        let bytes = self.read_json_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::ParseBlob {
            digest: *digest,
            what: "image index",
            source,
        })
    }

    fn read_json_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let size = self.blob_size(digest)?;
        if size > MAX_JSON_BLOB {
            return Err(Error::UnsupportedMediaType {
                digest: *digest,
                media_type: format!("JSON blob of {size} bytes (limit {MAX_JSON_BLOB})"),
            });
        }
        self.read_blob(digest)
    }

    /// Computes the listing record of a target.
    fn record_for(&self, target: &Descriptor) -> Result<ImageRecord> {
        let image = self.load_image(target)?;
        let mut size = Some(0u64);
        let mut uncompressed_size = Some(0u64);
        for layer in &image.layers {
            let info = match &layer.info {
                Some(info) => Some(info.clone()),
                None => match digest_from_oci(layer.descriptor.digest()) {
                    Ok(digest) if self.has_blob(&digest) => Some(self.ensure_layer_info(&digest)?),
                    _ => None,
                },
            };
            size = size
                .zip(info.as_ref())
                .map(|(sum, info)| sum + info.content_size);
            uncompressed_size = uncompressed_size
                .zip(info.as_ref())
                .map(|(sum, info)| sum + info.uncompressed_size);
        }
        let config = &image.config;
        let platform = (!config.os().to_string().is_empty()).then(|| ImagePlatform {
            os: config.os().to_string(),
            architecture: config.architecture().to_string(),
            variant: config.variant().clone(),
        });
        Ok(ImageRecord {
            target: Target::from_descriptor(target)?,
            manifest: digest_from_oci(image.manifest_descriptor.digest())?,
            id: image.id,
            created: config.created().clone(),
            platform,
            size,
            uncompressed_size,
            layers: image.layers.len(),
        })
    }
}

fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
    DescriptorBuilder::default()
        .media_type(MediaType::from(media_type))
        .digest(digest.to_oci())
        .size(size)
        .build()
        .expect("media type, digest and size are all a descriptor requires")
}

/// The index entry for `platform`: same OS and architecture, and the same variant when both name one. Entries
/// without a platform (attestations) never match.
pub(crate) fn choose_platform(index: &ImageIndex, platform: &ImagePlatform) -> Option<Descriptor> {
    let candidates = index.manifests().iter().filter(|d| {
        classify(d.media_type()) == MediaKind::Manifest
            && d.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == platform.os
                    && p.architecture().to_string() == platform.architecture
            })
    });
    let mut first = None;
    for candidate in candidates {
        let variant = candidate
            .platform()
            .as_ref()
            .and_then(|p| p.variant().clone());
        if variant.is_none() || platform.variant.is_none() || variant == platform.variant {
            return Some(candidate.clone());
        }
        first.get_or_insert_with(|| candidate.clone());
    }
    first
}

/// Lookup over a loaded index (see [`Store::find_image`]).
fn find_in(index: &ReferenceIndex, spec: &str) -> Result<FoundImage> {
    let found = |lookup, record: &ImageRecord| FoundImage {
        lookup,
        references: index.references_to_id(&record.id),
        record: record.clone(),
    };
    if let Ok(reference) = spec.parse::<Reference>()
        && let Some(digest) = index.references.get(&reference.to_string())
        && let Some(record) = index.images.get(digest)
    {
        return Ok(found(Lookup::Reference(reference), record));
    }
    if let Some((name, digest)) = spec.split_once('@') {
        let digest: Digest = digest.parse()?;
        let matches = index
            .entries()
            .find(|(reference, record)| reference.name() == name && record.target.digest == digest);
        return match matches {
            Some((_, record)) => Ok(found(Lookup::Digest(digest), record)),
            None => Err(Error::ImageNotFound {
                reference: spec.to_owned(),
            }),
        };
    }
    let hex = spec.strip_prefix("sha256:").unwrap_or(spec);
    if !hex.is_empty()
        && hex.len() <= 64
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        let mut ids: Vec<&ImageRecord> = index
            .images
            .values()
            .filter(|r| r.id.encoded().starts_with(hex))
            .collect();
        ids.sort_by_key(|a| a.id);
        ids.dedup_by(|a, b| a.id == b.id);
        match ids.as_slice() {
            [record] => return Ok(found(Lookup::Id(record.id), record)),
            [] => {}
            many => {
                return Err(Error::AmbiguousImageId {
                    prefix: hex.to_owned(),
                    candidates: many.iter().map(|r| r.id.short_id().to_owned()).collect(),
                });
            }
        }
    }
    let reference = spec
        .parse::<Reference>()
        .map_or_else(|_| spec.to_owned(), |r| r.to_string());
    Err(Error::ImageNotFound { reference })
}
