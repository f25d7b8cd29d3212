//! The OCI image layout (opencontainers/image-spec `image-layout.md`), as a directory or a tar archive of one.
//!
//! ```text
//! oci-layout            {"imageLayoutVersion": "1.0.0"}
//! index.json            an image index: one descriptor per image, named by annotations
//! blobs/sha256/<hex>    manifests, configs and layers, each named by the SHA-256 of its bytes
//! ```
//!
//! Image names live in the descriptors' annotations: `org.opencontainers.image.ref.name` (skopeo and podman write
//! `name:tag` there, Docker ≥ 25 and BuildKit only the tag) and containerd's `io.containerd.image.name` (the fully
//! qualified `name:tag`).

use oci_spec::image::{Descriptor, DescriptorBuilder, ImageIndex, ImageManifest, MediaType};
use serde::Deserialize;

use hoist_oci::media_type::classify;
use hoist_oci::{Digest, DigestExt, Expected, ImagePlatform, MediaKind, Reference};

use crate::Error;
use crate::contents::Contents;
use crate::load::FoundImage;
use crate::names::familiar_reference;

/// The file naming the layout version.
pub(crate) const LAYOUT_FILE: &str = "oci-layout";
/// The layout's entry point.
pub(crate) const INDEX_FILE: &str = "index.json";
/// The content of `oci-layout` hoist writes.
pub(crate) const LAYOUT_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// The OCI annotation naming a manifest in an index.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation with the fully qualified image name.
pub(crate) const CONTAINERD_NAME: &str = "io.containerd.image.name";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutVersion {
    image_layout_version: String,
}

/// Reads every image `index.json` names into the store.
pub(crate) fn read(contents: &mut dyn Contents, index: &[u8]) -> Result<Vec<FoundImage>, Error> {
    let layout = contents
        .metadata(LAYOUT_FILE)?
        .ok_or_else(|| Error::MissingFile {
            name: LAYOUT_FILE.to_owned(),
        })?;
    let version: LayoutVersion =
        serde_json::from_slice(&layout).map_err(|source| Error::ParseJson {
            name: LAYOUT_FILE.to_owned(),
            what: "OCI layout version file",
            source,
        })?;
    if !version.image_layout_version.starts_with("1.") {
        return Err(Error::UnsupportedMediaType {
            name: LAYOUT_FILE.to_owned(),
            media_type: format!("image layout version {}", version.image_layout_version),
        });
    }
    let index: ImageIndex = serde_json::from_slice(index).map_err(|source| Error::ParseJson {
        name: INDEX_FILE.to_owned(),
        what: "OCI image index",
        source,
    })?;
    let mut found = Vec::new();
    for entry in index.manifests() {
        let names = names_of(entry)?;
        match classify(entry.media_type()) {
            MediaKind::Manifest => found.push(read_image(contents, entry, names)?),
            MediaKind::Index => {
                let manifest = choose_manifest(contents, entry)?;
                found.push(read_image(contents, &manifest, names)?);
            }
            // Artifacts, signatures and attestations next to images are not images: skip them.
            _ => {}
        }
    }
    Ok(found)
}

/// The names an index entry carries: containerd's qualified name if present, else `ref.name` when it is a full
/// reference. A bare tag (`latest`, as Docker ≥ 25 and BuildKit write it next to the containerd name) names no
/// repository, so alone it gives no name.
fn names_of(entry: &Descriptor) -> Result<Vec<Reference>, Error> {
    let annotations = entry.annotations().clone().unwrap_or_default();
    if let Some(name) = annotations.get(CONTAINERD_NAME) {
        return Ok(vec![familiar_reference(name, CONTAINERD_NAME)?]);
    }
    match annotations.get(REF_NAME) {
        Some(name) if name.contains(':') || name.contains('/') => {
            Ok(vec![familiar_reference(name, REF_NAME)?])
        }
        _ => Ok(Vec::new()),
    }
}

/// For an entry that is an index (a multi-platform image): the manifest for this host.
fn choose_manifest(contents: &mut dyn Contents, entry: &Descriptor) -> Result<Descriptor, Error> {
    let (name, expected) = blob_of(entry)?;
    let blob = contents.blob(&name, &expected)?;
    let bytes = contents.store().read_blob(&blob.digest)?;
    let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|source| Error::ParseJson {
        name: name.clone(),
        what: "image index",
        source,
    })?;
    let host = ImagePlatform::host();
    let matches = |d: &&Descriptor| {
        classify(d.media_type()) == MediaKind::Manifest
            && d.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == host.os && p.architecture().to_string() == host.architecture
            })
    };
    let candidates: Vec<&Descriptor> = index.manifests().iter().filter(matches).collect();
    let exact = candidates.iter().find(|d| {
        let variant = d.platform().as_ref().and_then(|p| p.variant().clone());
        variant.is_none() || host.variant.is_none() || variant == host.variant
    });
    exact
        .or(candidates.first())
        .map(|d| (*d).clone())
        .ok_or_else(|| Error::NoMatchingPlatform {
            digest: blob.digest,
            platform: host.to_string(),
        })
}

/// Stores one image manifest with its config and layers, checking every digest and the config's diffIDs.
fn read_image(
    contents: &mut dyn Contents,
    entry: &Descriptor,
    names: Vec<Reference>,
) -> Result<FoundImage, Error> {
    let (manifest_name, expected) = blob_of(entry)?;
    let manifest_blob = contents.blob(&manifest_name, &expected)?;
    let bytes = contents.store().read_blob(&manifest_blob.digest)?;
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|source| Error::ParseJson {
            name: manifest_name.clone(),
            what: "image manifest",
            source,
        })?;
    let (config_name, expected) = blob_of(manifest.config())?;
    let config = contents.blob(&config_name, &expected)?;
    let config_bytes = contents.store().read_blob(&config.digest)?;
    let diff_ids = diff_ids_of(&config_name, &config_bytes)?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(Error::LayerCountMismatch {
            image: manifest_name,
            layers: manifest.layers().len(),
            diff_ids: diff_ids.len(),
        });
    }
    for (position, (layer, diff_id)) in manifest.layers().iter().zip(&diff_ids).enumerate() {
        let (name, expected) = blob_of(layer)?;
        let stored = contents.layer(&name, &expected)?;
        if stored.info.diff_id.to_string() != *diff_id {
            return Err(Error::DiffIdMismatch {
                image: manifest_name,
                position,
                name,
                expected: diff_id.clone(),
                actual: stored.info.diff_id,
            });
        }
    }
    // The manifest is kept byte for byte: the image keeps its manifest digest as well as its layer digests.
    Ok(FoundImage {
        manifest: descriptor(
            entry.media_type().as_ref(),
            &manifest_blob.digest,
            manifest_blob.size,
        ),
        id: config.digest,
        names,
    })
}

/// Where a descriptor's blob is in a layout, and what it must hash to.
pub(crate) fn blob_of(descriptor: &Descriptor) -> Result<(String, Expected), Error> {
    let digest =
        hoist_oci::digest_from_oci(descriptor.digest()).map_err(|source| Error::InvalidDigest {
            name: descriptor.digest().to_string(),
            source,
        })?;
    let name = blob_path(&digest);
    Ok((name, Expected::digest(digest).with_size(descriptor.size())))
}

/// `blobs/sha256/<hex>`.
pub(crate) fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.encoded())
}

/// A descriptor with the three required fields.
pub(crate) fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
    DescriptorBuilder::default()
        .media_type(MediaType::from(media_type))
        .digest(digest.to_oci())
        .size(size)
        .build()
        .expect("media type, digest and size are all a descriptor requires")
}

/// The `rootfs.diff_ids` of a config, the part of it loading checks.
pub(crate) fn diff_ids_of(name: &str, config: &[u8]) -> Result<Vec<String>, Error> {
    #[derive(Deserialize)]
    struct Config {
        rootfs: RootFs,
    }
    #[derive(Deserialize)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<String>,
    }
    let config: Config = serde_json::from_slice(config).map_err(|source| Error::ParseJson {
        name: name.to_owned(),
        what: "image config",
        source,
    })?;
    Ok(config.rootfs.diff_ids)
}
