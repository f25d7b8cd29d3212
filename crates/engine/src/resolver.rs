//! Base images for the planner, from the store; missing ones are pulled through an [`ImagePuller`] the caller
//! provides (the CLI's, on hoist-registry), or reported as missing.

use std::time::Duration;

use hoist_oci::Store;
use hoist_plan::{BaseImage, BaseImageResolver, HealthConfig, HistoryEntry, ImageConfig, Platform};
use serde_json::Value;

/// Fetches an image into the store (the engine does not talk to registries itself).
pub trait ImagePuller {
    /// Pulls `reference` for `platform` into the store; the error is a message.
    fn pull(&self, reference: &str, platform: &Platform) -> Result<(), String>;
}

/// A [`BaseImageResolver`] over the store, pulling what is missing when it has a puller.
pub struct StoreResolver<'a> {
    /// The store.
    pub store: &'a Store,
    /// Pulls missing images; `None` resolves from the store only.
    pub puller: Option<&'a dyn ImagePuller>,
}

impl BaseImageResolver for StoreResolver<'_> {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<BaseImage, String> {
        // `--build-context NAME=oci-layout://…`: the image in the layout directory.
        if let Some(layout) = reference.strip_prefix("oci-layout://") {
            let image = crate::contexts::load(self.store, layout)
                .map_err(|e| crate::contexts::describe(&e))?;
            let config: Value = serde_json::from_slice(&image.config_bytes)
                .map_err(|e| format!("image {reference} has a malformed config: {e}"))?;
            return Ok(base_image(reference, &config, image.layers.len()));
        }
        // hoist's own `hoist/rie` is made locally, never pulled.
        if crate::rie::is_rie_reference(reference) {
            crate::rie::provide(self.store, reference).map_err(|e| hoist_oci::error_chain(&e))?;
        }
        let image = match read_image(self.store, reference) {
            Ok(image) => image,
            Err(first) => match self.puller {
                Some(puller) => {
                    puller.pull(reference, platform).map_err(|e| {
                        format!("image {reference} not found in the local store (pull failed: {e})")
                    })?;
                    read_image(self.store, reference)
                        .map_err(|e| format!("image {reference} not found after pull: {e}"))?
                }
                None => {
                    return Err(format!(
                        "image {reference} not found in the local store (pull is not available: {first})"
                    ));
                }
            },
        };
        let config: Value = serde_json::from_slice(&image.config_bytes)
            .map_err(|e| format!("image {reference} has a malformed config: {e}"))?;
        Ok(base_image(reference, &config, image.layers.len()))
    }
}

/// Reads an image by a normalized reference (`docker.io/library/busybox:latest`). The store keeps references as
/// they were tagged, so the familiar forms (`busybox:latest`, `user/app:1`) are tried too.
pub(crate) fn read_image(store: &Store, reference: &str) -> hoist_oci::Result<hoist_oci::Image> {
    let mut candidates = vec![reference.to_owned()];
    if let Some(rest) = reference.strip_prefix("docker.io/") {
        if let Some(official) = rest.strip_prefix("library/") {
            candidates.push(official.to_owned());
        }
        candidates.push(rest.to_owned());
    }
    let mut first_error = None;
    for candidate in &candidates {
        match store.read_image(candidate) {
            Ok(image) => return Ok(image),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.expect("there is always one candidate"))
}

fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    value?.as_array().map(|items| {
        items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    })
}

fn text(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn keys(value: Option<&Value>) -> impl Iterator<Item = String> {
    value
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.keys().cloned())
}

fn duration(value: Option<&Value>) -> Duration {
    Duration::from_nanos(value.and_then(Value::as_u64).unwrap_or(0))
}

/// What the planner needs from an image config (Docker's JSON field names).
fn base_image(reference: &str, config: &Value, layers: usize) -> BaseImage {
    let runtime = config.get("config");
    let field = |name: &str| runtime.and_then(|c| c.get(name));
    let image_config = ImageConfig {
        user: text(field("User")),
        exposed_ports: keys(field("ExposedPorts")).collect(),
        env: strings(field("Env")).unwrap_or_default(),
        entrypoint: strings(field("Entrypoint")),
        cmd: strings(field("Cmd")),
        volumes: keys(field("Volumes")).collect(),
        working_dir: text(field("WorkingDir")),
        labels: field("Labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        stop_signal: text(field("StopSignal")),
        args_escaped: field("ArgsEscaped")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        healthcheck: field("Healthcheck").map(|h| HealthConfig {
            test: strings(h.get("Test")).unwrap_or_default(),
            interval: duration(h.get("Interval")),
            timeout: duration(h.get("Timeout")),
            start_period: duration(h.get("StartPeriod")),
            start_interval: duration(h.get("StartInterval")),
            retries: h.get("Retries").and_then(Value::as_u64).unwrap_or(0) as u32,
        }),
        on_build: strings(field("OnBuild")).unwrap_or_default(),
        shell: strings(field("Shell")).unwrap_or_default(),
        author: text(config.get("author")),
    };
    let history = config
        .get("history")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|h| HistoryEntry {
                    created_by: text(h.get("created_by")),
                    comment: text(h.get("comment")),
                    empty_layer: h
                        .get("empty_layer")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default();
    BaseImage {
        reference: reference.to_owned(),
        platform: Platform::new(
            &text(config.get("os")),
            &text(config.get("architecture")),
            &text(config.get("variant")),
        ),
        config: image_config,
        history,
        layers,
    }
}
