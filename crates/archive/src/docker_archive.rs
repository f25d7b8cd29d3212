//! docker-archive: the format of `docker save` / `docker load`, `skopeo copy docker-archive:` and `podman save`.
//!
//! The index is `manifest.json`, a JSON array with one item per image:
//!
//! ```json
//! [{"Config": "<config file>", "RepoTags": ["busybox:latest"], "Layers": ["<layer file>", …]}]
//! ```
//!
//! `Config` and `Layers` are paths inside the archive. Writers differ in where those files are:
//!
//! * Docker < 25: `<config hex>.json`, `<v1 id>/layer.tar` (plus the legacy `<v1 id>/json` and `VERSION`).
//! * skopeo / podman: `<config hex>.json`, `<diffID hex>.tar`, and `<v1 id>/layer.tar` as symlinks to them.
//! * Docker ≥ 25: `blobs/sha256/<hex>` for both; the archive is an OCI image layout at the same time.
//!
//! Layers are uncompressed tar streams in all of them (Docker's loader also accepts gzip/zstd ones). The
//! `repositories` file (`{"name": {"tag": "<top layer v1 id>"}}`) is a leftover of the v1 format that loaders
//! ignore; it is written for old tools only.

use oci_spec::image::Descriptor;
use serde::{Deserialize, Serialize};

use hoist_oci::{Expected, ManifestFormat};

use crate::Error;
use crate::contents::Contents;
use crate::load::FoundImage;
use crate::names::familiar_reference;
use crate::oci_layout::{descriptor, diff_ids_of};

/// The index file of a docker-archive.
pub(crate) const MANIFEST_FILE: &str = "manifest.json";
/// The legacy v1 tag file.
pub(crate) const REPOSITORIES_FILE: &str = "repositories";

/// One image in `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ManifestItem {
    /// Path of the config file inside the archive.
    pub(crate) config: String,
    /// `name:tag` references; Docker writes `null` for an untagged image.
    #[serde(default)]
    pub(crate) repo_tags: Option<Vec<String>>,
    /// Paths of the layer files, bottom layer first.
    pub(crate) layers: Vec<String>,
}

/// Reads every image listed in `manifest.json` into the store.
pub(crate) fn read(contents: &mut dyn Contents, manifest: &[u8]) -> Result<Vec<FoundImage>, Error> {
    let items: Vec<ManifestItem> =
        serde_json::from_slice(manifest).map_err(|source| Error::ParseJson {
            name: MANIFEST_FILE.to_owned(),
            what: "docker-archive manifest",
            source,
        })?;
    items.iter().map(|item| read_item(contents, item)).collect()
}

fn read_item(contents: &mut dyn Contents, item: &ManifestItem) -> Result<FoundImage, Error> {
    let config = contents.blob(&item.config, &Expected::unknown())?;
    let config_bytes = contents.store().read_blob(&config.digest)?;
    let diff_ids = diff_ids_of(&item.config, &config_bytes)?;
    let image = item.config.clone();
    if diff_ids.len() != item.layers.len() {
        return Err(Error::LayerCountMismatch {
            image,
            layers: item.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let mut layers: Vec<Descriptor> = Vec::with_capacity(item.layers.len());
    for (position, (name, diff_id)) in item.layers.iter().zip(&diff_ids).enumerate() {
        let layer = contents.layer(name, &Expected::unknown())?;
        if layer.info.diff_id.to_string() != *diff_id {
            return Err(Error::DiffIdMismatch {
                image,
                position,
                name: name.clone(),
                expected: diff_id.clone(),
                actual: layer.info.diff_id,
            });
        }
        let media_type = ManifestFormat::Oci.layer_media_type(layer.compression);
        layers.push(descriptor(media_type, &layer.blob.digest, layer.blob.size));
    }
    // The archive has no manifest of its own: write one (OCI media types) over the layers as they are, so every
    // layer keeps its digest and the config its bytes.
    let written = contents
        .store()
        .write_image(&config_bytes, &layers, ManifestFormat::Oci)?;
    let names = item
        .repo_tags
        .iter()
        .flatten()
        .map(|tag| familiar_reference(tag, MANIFEST_FILE))
        .collect::<Result<_, _>>()?;
    Ok(FoundImage {
        manifest: written.manifest,
        id: config.digest,
        names,
    })
}
