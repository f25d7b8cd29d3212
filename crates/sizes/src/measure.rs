//! One image's sizes: Docker's total, each layer's share, and the instruction behind each layer.

use hoist_oci::{Store, digest_from_oci};
use serde::Serialize;
use serde_json::Value;

use crate::SizesError;

/// An image's sizes, as a report row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSizes {
    /// What the row is called: the build target, or the reference asked for.
    pub name: String,
    /// The image ID (`sha256:…`, the config digest).
    pub id: String,
    /// The image it starts from, when known.
    pub base: Option<BaseImage>,
    /// The size `docker images` shows (and `docker image inspect -f '{{.Size}}'`): the sum of the layers' sizes.
    pub size: u64,
    /// `size` in Docker's short form (`1.23MB`).
    pub size_human: String,
    /// The layers, bottom first.
    pub layers: Vec<LayerSize>,
}

/// The image an image starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BaseImage {
    /// Its name (`debian:bookworm-local`), or `scratch`.
    pub name: String,
    /// How many of the image's bottom layers are the base's (0 for `scratch`, or when the base is not in the
    /// store).
    pub layers: usize,
}

/// One layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerSize {
    /// Its position, from 0 at the bottom.
    pub index: usize,
    /// The layer's diffID.
    pub diff_id: String,
    /// Its content size, as Docker counts it: regular files' bytes plus symlink targets, hard links once.
    pub size: u64,
    /// `size` in Docker's short form.
    pub size_human: String,
    /// What a push sends for it: the blob's size when it is stored compressed (a pulled layer), else the size of
    /// its gzip variant once a push or an OCI export has made one; `None` (JSON `null`) for a built layer never
    /// pushed, whose compressed size is not known without compressing it.
    pub compressed_size: Option<u64>,
    /// The blob's size in the store: for a built layer the plain tar (built layers are stored uncompressed).
    pub stored_size: u64,
    /// Its part of the image's size, from 0 to 1.
    pub share: f64,
    /// The instruction that made it (history `created_by`, or the entry's `comment` when that is empty, as for an
    /// imported layer), empty when the history does not say.
    pub created_by: String,
    /// Whether it belongs to the base image.
    pub from_base: bool,
}

impl ImageSizes {
    /// The `count` biggest layers, biggest first (ties: the lower layer first).
    pub fn biggest(&self, count: usize) -> Vec<&LayerSize> {
        let mut layers: Vec<&LayerSize> = self.layers.iter().collect();
        layers.sort_by(|a, b| b.size.cmp(&a.size).then(a.index.cmp(&b.index)));
        layers.truncate(count);
        layers
    }
}

/// Measures the image `spec` (a reference or an ID) from the store and names the row `name`.
///
/// `base` is the image it was built from, when the caller knows it (a Dockerfile's FROM): `Some("scratch")`, or a
/// reference looked up in the store to count its layers. With `None` the base is inferred: the store image whose
/// layers are the longest proper prefix of this one's (none: unknown).
pub fn measure(
    store: &Store,
    spec: &str,
    name: &str,
    base: Option<&str>,
) -> Result<ImageSizes, SizesError> {
    let image = store
        .read_image(spec)
        .map_err(|source| SizesError::ReadImage {
            spec: spec.to_owned(),
            source,
        })?;
    let config: Value = serde_json::from_slice(&image.config_bytes).unwrap_or(Value::Null);
    let authors = layer_authors(&config);
    let mut layers = Vec::with_capacity(image.layers.len());
    for (index, layer) in image.layers.iter().enumerate() {
        let measure_error =
            |source: Box<dyn std::error::Error + Send + Sync>| SizesError::MeasureLayer {
                spec: spec.to_owned(),
                digest: layer.descriptor.digest().to_string(),
                source,
            };
        let info = match &layer.info {
            Some(info) => info.clone(),
            None => {
                let digest = digest_from_oci(layer.descriptor.digest())
                    .map_err(|e| measure_error(e.into()))?;
                store
                    .ensure_layer_info(&digest)
                    .map_err(|e| measure_error(e.into()))?
            }
        };
        layers.push(LayerSize {
            index,
            diff_id: info.diff_id.to_string(),
            size: info.content_size,
            size_human: hoist_oci::units::human_size_short(info.content_size),
            compressed_size: pushed_size(store, &layer.descriptor)
                .map_err(|e| measure_error(e.into()))?,
            stored_size: layer.descriptor.size(),
            share: 0.0,
            created_by: authors.get(index).cloned().unwrap_or_default(),
            from_base: false,
        });
    }
    let size: u64 = layers.iter().map(|l| l.size).sum();
    for layer in &mut layers {
        #[allow(clippy::cast_precision_loss)] // a share needs no more than f64's 53 bits
        let share = if size == 0 {
            0.0
        } else {
            layer.size as f64 / size as f64
        };
        layer.share = share;
    }
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let base = match base {
        Some("scratch") => Some(BaseImage {
            name: "scratch".to_owned(),
            layers: 0,
        }),
        Some(reference) => Some(BaseImage {
            name: reference.to_owned(),
            layers: read_diff_ids(store, reference)
                .filter(|base| {
                    diff_ids.starts_with(&base.iter().map(String::as_str).collect::<Vec<_>>())
                })
                .map_or(0, |base| base.len()),
        }),
        None => infer_base(store, &image.id.to_string(), &diff_ids)?,
    };
    if let Some(base) = &base {
        for layer in layers.iter_mut().take(base.layers) {
            layer.from_base = true;
        }
    }
    Ok(ImageSizes {
        name: name.to_owned(),
        id: image.id.to_string(),
        base,
        size,
        size_human: hoist_oci::units::human_size_short(size),
        layers,
    })
}

/// The `created_by` of each history entry that made a layer (its `comment` when empty), in layer order.
fn layer_authors(config: &Value) -> Vec<String> {
    config
        .get("history")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter(|h| {
                    !h.get("empty_layer")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                })
                .map(|h| {
                    // An imported layer has no instruction; its comment says where it came from.
                    let text = |key: &str| h.get(key).and_then(Value::as_str).unwrap_or_default();
                    match text("created_by") {
                        "" => text("comment").to_owned(),
                        created_by => created_by.to_owned(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The diffIDs of a store image, trying Docker's familiar forms of a normalized reference too.
fn read_diff_ids(store: &Store, reference: &str) -> Option<Vec<String>> {
    let mut candidates = vec![reference.to_owned()];
    if let Some(rest) = reference.strip_prefix("docker.io/") {
        candidates.push(rest.strip_prefix("library/").unwrap_or(rest).to_owned());
    }
    candidates.iter().find_map(|candidate| {
        let image = store.read_image(candidate).ok()?;
        Some(
            image
                .config
                .rootfs()
                .diff_ids()
                .iter()
                .map(ToString::to_string)
                .collect(),
        )
    })
}

/// The store image whose layers are the longest proper prefix of `diff_ids` (at least one layer); among equals,
/// the alphabetically first reference.
fn infer_base(store: &Store, id: &str, diff_ids: &[&str]) -> Result<Option<BaseImage>, SizesError> {
    let mut best: Option<BaseImage> = None;
    for summary in store.list_images().map_err(SizesError::ListImages)? {
        let too_short = best
            .as_ref()
            .is_some_and(|b| summary.record.layers < b.layers);
        if summary.record.id.to_string() == id
            || summary.record.layers == 0
            || summary.record.layers >= diff_ids.len()
            || too_short
        {
            continue;
        }
        let name = summary.reference.to_string();
        let Some(layers) = read_diff_ids(store, &name) else {
            continue;
        };
        if !diff_ids.starts_with(&layers.iter().map(String::as_str).collect::<Vec<_>>()) {
            continue;
        }
        let better = best
            .as_ref()
            .is_none_or(|b| layers.len() > b.layers || (layers.len() == b.layers && name < b.name));
        if better {
            best = Some(BaseImage {
                name,
                layers: layers.len(),
            });
        }
    }
    Ok(best)
}

/// What a push sends for a layer (see [`LayerSize::compressed_size`]).
fn pushed_size(
    store: &Store,
    descriptor: &hoist_oci::oci_spec::image::Descriptor,
) -> Result<Option<u64>, hoist_oci::Error> {
    match hoist_oci::classify(descriptor.media_type()) {
        hoist_oci::MediaKind::Layer(hoist_oci::Compression::None) => {
            let digest = digest_from_oci(descriptor.digest())?;
            Ok(store
                .recorded_variant(&digest, hoist_oci::Compression::Gzip)?
                .map(|blob| blob.size))
        }
        _ => Ok(Some(descriptor.size())),
    }
}
