//! The reference index (`references-v1.json`): references, what they point at, and per-image records for listing.
//!
//! The whole index is one small JSON file, read without locks (it is only ever replaced by `rename`, so a reader sees
//! a complete old or new version) and updated read-modify-write under the exclusive store lock, then replaced
//! atomically. Listing 100 images is one file read and one parse; no blob is opened.

use std::collections::BTreeMap;
use std::fs;
use std::io;

use oci_spec::image::{Descriptor, DescriptorBuilder, MediaType};
use serde::{Deserialize, Serialize};

use crate::digest::{DigestExt, digest_from_oci};
use crate::layout::write_atomically;
use crate::lock::LockMode;
use crate::{Digest, Error, Reference, Result, Store};

/// What a reference points at: a manifest or an index, as a descriptor's three required fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// The manifest's (or index's) media type, OCI or Docker.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

impl Target {
    /// The target as an OCI descriptor.
    pub fn to_descriptor(&self) -> Descriptor {
        DescriptorBuilder::default()
            .media_type(MediaType::from(self.media_type.as_str()))
            .digest(self.digest.to_oci())
            .size(self.size)
            .build()
            .expect("media type, digest and size are all a descriptor requires")
    }

    /// The three required fields of a descriptor.
    pub fn from_descriptor(descriptor: &Descriptor) -> Result<Self> {
        Ok(Self {
            media_type: descriptor.media_type().to_string(),
            digest: digest_from_oci(descriptor.digest())?,
            size: descriptor.size(),
        })
    }
}

/// An OS/architecture pair, as `docker` prints it (`linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePlatform {
    /// `linux`, `windows`, …
    pub os: String,
    /// Go's GOARCH names: `amd64`, `arm64`, …
    pub architecture: String,
    /// `v7`, `v8`, … when the architecture has variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl ImagePlatform {
    /// The platform this process runs on, in Go's names.
    pub fn host() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Self {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }
}

impl std::fmt::Display for ImagePlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// What the store records about a tagged image, so listing needs no blob reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// What the reference points at (a manifest, or an index).
    pub target: Target,
    /// The manifest describing the image: the target itself, or the index's entry for the host platform.
    pub manifest: Digest,
    /// The image ID: the digest of the config blob, as Docker's classic store defines it.
    pub id: Digest,
    /// The config's `created` timestamp (RFC 3339), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The config's platform, if it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<ImagePlatform>,
    /// The size `docker images` shows: the sum of the layers' content sizes (see `LayerInfo::content_size`).
    /// `None` if a layer blob is not in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The sum of the layers' uncompressed tar sizes (what unpacking streams), `None` if a layer blob is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncompressed_size: Option<u64>,
    /// Number of layers.
    pub layers: usize,
}

/// The index file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReferenceIndex {
    /// Reference text (`name:tag`) → target digest (a key of `images`).
    #[serde(default)]
    pub(crate) references: BTreeMap<String, Digest>,
    /// Target digest → record. Kept only while a reference points at it.
    #[serde(default)]
    pub(crate) images: BTreeMap<Digest, ImageRecord>,
}

impl ReferenceIndex {
    /// Points `reference` at `record`'s target, dropping the record the reference used to point at if nothing
    /// else does. Returns the previous target, if it changed.
    pub(crate) fn set(&mut self, reference: &Reference, record: ImageRecord) -> Option<Digest> {
        let digest = record.target.digest;
        self.images.insert(digest, record);
        let previous = self.references.insert(reference.to_string(), digest);
        match previous {
            Some(old) if old != digest => {
                self.drop_unreferenced(&old);
                Some(old)
            }
            _ => None,
        }
    }

    /// Removes `reference`; returns the record it pointed at.
    pub(crate) fn remove(&mut self, reference: &Reference) -> Option<ImageRecord> {
        let digest = self.references.remove(&reference.to_string())?;
        let record = self.images.get(&digest).cloned();
        self.drop_unreferenced(&digest);
        record
    }

    fn drop_unreferenced(&mut self, digest: &Digest) {
        if !self.references.values().any(|d| d == digest) {
            self.images.remove(digest);
        }
    }

    /// Every reference with its record, skipping entries whose record is missing (never written that way).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (Reference, &ImageRecord)> {
        self.references.iter().filter_map(|(text, digest)| {
            let reference = text.parse().ok()?;
            Some((reference, self.images.get(digest)?))
        })
    }

    /// References whose image has the given ID.
    pub(crate) fn references_to_id(&self, id: &Digest) -> Vec<Reference> {
        self.entries()
            .filter(|(_, record)| record.id == *id)
            .map(|(reference, _)| reference)
            .collect()
    }
}

impl Store {
    /// Reads the reference index (no lock: it is replaced atomically).
    pub(crate) fn load_index(&self) -> Result<ReferenceIndex> {
        let path = self.layout().references_file();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(ReferenceIndex::default());
            }
            Err(source) => return Err(Error::ReadIndex { path, source }),
        };
        serde_json::from_slice(&bytes).map_err(|source| Error::ParseIndex { path, source })
    }

    /// Runs `change` on the index under the exclusive store lock and writes the result back atomically if it
    /// changed. `change` must not take store locks itself.
    pub(crate) fn update_index<T>(
        &self,
        change: impl FnOnce(&mut ReferenceIndex) -> Result<T>,
    ) -> Result<T> {
        let _lock = self.lock(LockMode::Exclusive)?;
        let mut index = self.load_index()?;
        let before = index.clone();
        let result = change(&mut index)?;
        if index != before {
            let bytes = serde_json::to_vec_pretty(&index).map_err(|source| Error::Encode {
                what: "reference index",
                source,
            })?;
            write_atomically(
                &self.layout().tmp_dir(),
                &self.layout().references_file(),
                &bytes,
            )?;
        }
        Ok(result)
    }
}
