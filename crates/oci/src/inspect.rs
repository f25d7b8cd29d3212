//! `hoist inspect`'s data: Docker's `docker image inspect` shape where it applies, plus the layers with sizes.

use serde::Serialize;
use serde_json::Value;

use crate::{Image, Result, Store};

/// An image described the way `docker image inspect` does (field names and nesting), with hoist's additions
/// (`Descriptor`, `Layers`). Fields Docker fills from its daemon (`GraphDriver`, `Container`, …) are left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    /// `sha256:<config digest>`, the image ID.
    pub id: String,
    /// References to this image.
    pub repo_tags: Vec<String>,
    /// `name@<target digest>` for each repository referencing it (what `name@digest` lookups accept).
    pub repo_digests: Vec<String>,
    /// The config's `comment` (Docker's `docker import` sets it).
    pub comment: String,
    /// The config's `created`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The config's `docker_version`, if any.
    pub docker_version: String,
    /// The config's `author`.
    pub author: String,
    /// The config's `config` object, as stored (Env, Cmd, Entrypoint, WorkingDir, Labels, …).
    pub config: Value,
    /// The config's architecture.
    pub architecture: String,
    /// The config's variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The config's OS.
    pub os: String,
    /// The size `docker images` shows: sum of the layers' content sizes.
    pub size: u64,
    /// The config's `rootfs`.
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    /// The config's `history`, as stored.
    pub history: Vec<Value>,
    /// The manifest's descriptor (as Docker shows with the containerd store).
    pub descriptor: Value,
    /// The layers with their digests and sizes.
    pub layers: Vec<LayerDetail>,
}

/// The config's `rootfs`, in Docker's spelling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The diffIDs.
    pub layers: Vec<String>,
}

/// One layer in [`ImageInspect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LayerDetail {
    /// The blob's digest.
    pub digest: String,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size (compressed, if it is).
    pub size: u64,
    /// SHA-256 of the uncompressed tar, if recorded.
    #[serde(rename = "DiffID", skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
    /// Length of the uncompressed tar, if recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncompressed_size: Option<u64>,
    /// Content size (what `SIZE` sums), if recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_size: Option<u64>,
}

impl Store {
    /// Describes an image found by reference or ID, like `docker image inspect`.
    pub fn inspect(&self, spec: &str) -> Result<ImageInspect> {
        let image = self.read_image(spec)?;
        Ok(ImageInspect::from_image(&image))
    }
}

impl ImageInspect {
    /// Builds the description of an image read from the store.
    pub fn from_image(image: &Image) -> Self {
        // The raw config keeps fields oci-spec does not model (Docker's `container_config`, `docker_version`).
        let raw: Value = serde_json::from_slice(&image.config_bytes).unwrap_or(Value::Null);
        let text = |key: &str| {
            raw.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut repo_digests: Vec<String> = image
            .references
            .iter()
            .map(|r| format!("{}@{}", r.name(), image.target.digest()))
            .collect();
        repo_digests.sort();
        repo_digests.dedup();
        let root_fs = raw.get("rootfs");
        Self {
            id: image.id.to_string(),
            repo_tags: image.references.iter().map(ToString::to_string).collect(),
            repo_digests,
            comment: text("comment"),
            created: raw
                .get("created")
                .and_then(Value::as_str)
                .map(str::to_owned),
            docker_version: text("docker_version"),
            author: text("author"),
            config: raw
                .get("config")
                .cloned()
                .unwrap_or(Value::Object(Default::default())),
            architecture: text("architecture"),
            variant: raw
                .get("variant")
                .and_then(Value::as_str)
                .map(str::to_owned),
            os: text("os"),
            size: image
                .layers
                .iter()
                .map(|l| l.info.as_ref().map_or(0, |i| i.content_size))
                .sum(),
            root_fs: RootFs {
                kind: root_fs
                    .and_then(|r| r.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("layers")
                    .to_owned(),
                layers: root_fs
                    .and_then(|r| r.get("diff_ids"))
                    .and_then(Value::as_array)
                    .map(|ids| {
                        ids.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            history: raw
                .get("history")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            descriptor: serde_json::to_value(&image.manifest_descriptor).unwrap_or(Value::Null),
            layers: image
                .layers
                .iter()
                .map(|layer| LayerDetail {
                    digest: layer.descriptor.digest().to_string(),
                    media_type: layer.descriptor.media_type().to_string(),
                    size: layer.descriptor.size(),
                    diff_id: layer.info.as_ref().map(|i| i.diff_id.to_string()),
                    uncompressed_size: layer.info.as_ref().map(|i| i.uncompressed_size),
                    content_size: layer.info.as_ref().map(|i| i.content_size),
                })
                .collect(),
        }
    }
}
