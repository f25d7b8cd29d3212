//! `--build-context NAME=oci-layout://PATH[:TAG][@sha256:…]`: an image from an OCI image layout directory on
//! disk replaces `FROM NAME` and `COPY --from=NAME`, as with buildx and BuildKit.
//!
//! The image is chosen as buildx chooses it: by the digest when one is given (an entry of `index.json`, or any
//! manifest or index the layout holds), else by the entry whose `org.opencontainers.image.ref.name` is the tag
//! (`latest` when none is written), else the only entry. An index resolves to the host platform's manifest.
//! Its layers are ingested into the store (each once: a stored blob is not read again) without tagging
//! anything, so the layout's own names never move the store's references.

use std::fs;
use std::path::{Path, PathBuf};

use hoist_oci::oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use hoist_oci::{Expected, MediaKind, Store, classify};

use crate::cache::LayerRef;

/// The annotation naming an index entry (a bare tag, as BuildKit and Docker write it).
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI layout context that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The layout's `index.json` or a blob could not be read or parsed.
    #[error("oci-layout {layout}: failed to read {}", .path.display())]
    Read {
        /// The context as given.
        layout: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No entry matches the tag or digest, and the index does not hold exactly one.
    #[error("oci-layout reference {layout:?} could not be resolved: {reason}")]
    Unresolved {
        /// The context as given.
        layout: String,
        /// What the index offers.
        reason: String,
    },
    /// The chosen descriptor is not an image (or the index has no manifest for this platform).
    #[error("oci-layout {layout}: {reason}")]
    NotAnImage {
        /// The context as given.
        layout: String,
        /// Why.
        reason: String,
    },
    /// A layer or the config could not be stored.
    #[error("oci-layout {layout}: failed to store {digest}")]
    Store {
        /// The context as given.
        layout: String,
        /// The blob.
        digest: String,
        /// The store's error.
        #[source]
        source: Box<hoist_oci::Error>,
    },
}

/// An image read from a layout: its ID, its layers (now in the store) and its config.
#[derive(Debug, Clone)]
pub(crate) struct LayoutImage {
    /// The config digest (the image ID).
    pub(crate) id: String,
    /// The layers, bottom first.
    pub(crate) layers: Vec<LayerRef>,
    /// The config JSON as stored.
    pub(crate) config_bytes: Vec<u8>,
}

/// Reads the image `value` (what follows `oci-layout://`) names into the store.
pub(crate) fn load(store: &Store, value: &str) -> Result<LayoutImage, LayoutError> {
    let (rest, digest) = match value.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (value, None),
    };
    // buildx cuts at the first `:`: a layout path cannot hold one.
    let (path, tag) = match rest.split_once(':') {
        Some((path, tag)) => (path, tag),
        None => (rest, "latest"),
    };
    let layout = Layout {
        root: PathBuf::from(path),
        value: value.to_owned(),
    };
    let index: ImageIndex = layout.json("index.json")?;
    let chosen = match digest {
        Some(digest) => match index
            .manifests()
            .iter()
            .find(|d| d.digest().as_ref() == digest)
        {
            Some(entry) => entry.clone(),
            // Any manifest or index the layout holds, by digest (its media type read from the blob).
            None => layout.descriptor_of(digest)?,
        },
        None => {
            let tagged = index.manifests().iter().find(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .is_some_and(|name| name == tag)
            });
            match (tagged, index.manifests().as_slice()) {
                (Some(entry), _) => entry.clone(),
                (None, [only]) => only.clone(),
                (None, entries) => {
                    let names: Vec<String> = entries
                        .iter()
                        .filter_map(|d| d.annotations().as_ref()?.get(REF_NAME).cloned())
                        .collect();
                    return Err(LayoutError::Unresolved {
                        layout: value.to_owned(),
                        reason: format!(
                            "no entry is tagged {tag:?} (tags: {}) and the index holds {} images",
                            if names.is_empty() {
                                "none".to_owned()
                            } else {
                                names.join(", ")
                            },
                            entries.len()
                        ),
                    });
                }
            }
        }
    };
    let manifest_descriptor = match classify(chosen.media_type()) {
        MediaKind::Manifest => chosen,
        MediaKind::Index => {
            let index: ImageIndex = layout.blob_json(chosen.digest().as_ref())?;
            let host = hoist_registry::Platform::host();
            hoist_registry::choose_platform(&index, &host, value).map_err(|e| {
                LayoutError::NotAnImage {
                    layout: value.to_owned(),
                    reason: e.to_string(),
                }
            })?
        }
        _ => {
            return Err(LayoutError::NotAnImage {
                layout: value.to_owned(),
                reason: format!(
                    "{} is a {}, not an image",
                    chosen.digest(),
                    chosen.media_type()
                ),
            });
        }
    };
    let manifest: ImageManifest = layout.blob_json(manifest_descriptor.digest().as_ref())?;
    let config_digest = manifest.config().digest().to_string();
    let config_bytes = layout.blob(&config_digest)?;
    let mut layers = Vec::with_capacity(manifest.layers().len());
    for descriptor in manifest.layers() {
        layers.push(layout.ingest_layer(store, descriptor)?);
    }
    Ok(LayoutImage {
        id: config_digest,
        layers,
        config_bytes,
    })
}

/// The error with its causes, for the planner's resolver (which reports a message).
pub(crate) fn describe(error: &LayoutError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

struct Layout {
    root: PathBuf,
    value: String,
}

impl Layout {
    fn read_error(
        &self,
        path: &Path,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> LayoutError {
        LayoutError::Read {
            layout: self.value.clone(),
            path: path.to_path_buf(),
            source: source.into(),
        }
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, LayoutError> {
        match digest.split_once(':') {
            Some((algorithm, hex))
                if !algorithm.is_empty()
                    && !hex.is_empty()
                    && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Ok(self.root.join("blobs").join(algorithm).join(hex))
            }
            _ => Err(LayoutError::Unresolved {
                layout: self.value.clone(),
                reason: format!("{digest:?} is not a digest"),
            }),
        }
    }

    fn json<T: serde::de::DeserializeOwned>(&self, file: &str) -> Result<T, LayoutError> {
        let path = self.root.join(file);
        let bytes = fs::read(&path).map_err(|e| self.read_error(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.read_error(&path, e))
    }

    fn blob(&self, digest: &str) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(digest)?;
        fs::read(&path).map_err(|e| self.read_error(&path, e))
    }

    fn blob_json<T: serde::de::DeserializeOwned>(&self, digest: &str) -> Result<T, LayoutError> {
        let path = self.blob_path(digest)?;
        let bytes = self.blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| self.read_error(&path, e))
    }

    /// A descriptor for a manifest or index blob that `index.json` does not list.
    fn descriptor_of(&self, digest: &str) -> Result<Descriptor, LayoutError> {
        let bytes = self.blob(digest)?;
        let path = self.blob_path(digest)?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| self.read_error(&path, e))?;
        let media_type = match value.get("mediaType").and_then(|m| m.as_str()) {
            Some(media_type) => media_type.to_owned(),
            None if value.get("manifests").is_some() => {
                "application/vnd.oci.image.index.v1+json".to_owned()
            }
            None => "application/vnd.oci.image.manifest.v1+json".to_owned(),
        };
        let descriptor = serde_json::json!({
            "mediaType": media_type,
            "digest": digest,
            "size": bytes.len(),
        });
        serde_json::from_value(descriptor).map_err(|e| self.read_error(&path, e))
    }

    fn ingest_layer(
        &self,
        store: &Store,
        descriptor: &Descriptor,
    ) -> Result<LayerRef, LayoutError> {
        let digest = descriptor.digest().to_string();
        let store_error = |source| LayoutError::Store {
            layout: self.value.clone(),
            digest: digest.clone(),
            source: Box::new(source),
        };
        let expected = Expected::from_descriptor(descriptor).map_err(store_error)?;
        // A stored blob with its info is not read again (ingest_layer checks `expected` first).
        let path = self.blob_path(&digest)?;
        let file = fs::File::open(&path).map_err(|e| self.read_error(&path, e))?;
        let stored = store.ingest_layer(file, &expected).map_err(store_error)?;
        Ok(LayerRef {
            digest: stored.blob.digest,
            diff_id: stored.info.diff_id,
            size: stored.blob.size,
            media_type: descriptor.media_type().to_string(),
        })
    }
}
