//! Pending layers ([`Layer::Pending`]): a RUN step's changes kept as the directory the step left, in the store's
//! snapshot area, and written as a tar only when an image that holds them is exported.
//!
//! Why: a stage that only feeds `COPY --from` (a builder) never leaves the machine, so the tar of its steps (hashed,
//! written, synced) and the unpacking of that tar for the next step were pure overhead on every rebuild. BuildKit
//! does the same: its snapshots are directories, and a diff is computed on export.
//!
//! The directory is the step's overlay upper directory with what the tar would leave out already deleted
//! ([`hoist_sandbox::Snapshot::keep_upper`]), so the tar written from it later is the one the step would have
//! written. Once written, the step's cache record names the blob, and the blob's layer record names the directory
//! as its unpacked copy ([`Store::set_layer_unpacked`](hoist_oci::Store::set_layer_unpacked)): the tar is written
//! once per store, and never unpacked.

use std::collections::HashMap;
use std::path::PathBuf;

use hoist_layer::{SourceKind, WriteOptions, write_layer};
use hoist_oci::{Area, Store};

use crate::cache::{self, CacheKey, Layer, LayerRef, PendingLayer};
use crate::error::{EngineError, Result};
use crate::ingest::ingest;

/// The snapshot-area key a step with cache key `key` keeps its changes under: unique to this run of the step, since
/// two runs of one key (`--no-cache`, or two builds at once) can leave different files (times, if nothing else),
/// and a record must name the directory its own run left. It starts with the machine's boot, see
/// [`is_kept_entry_of`].
pub(crate) fn kept_entry_key(key: CacheKey) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}{}-{nanos:x}-{run}",
        kept_entry_prefix(key),
        std::process::id()
    )
}

/// Whether `snapshot` is a key [`kept_entry_key`] made for `key`, as this user (root and rootless overlayfs mark
/// opaque directories differently), since the machine last booted. The directory a step leaves is not synced to
/// disk (no more than BuildKit's or Docker's overlay snapshots are), and it is the layer's only copy until its tar is
/// written: after a crash it may hold files cut short, so a record from an earlier boot is a miss and the step runs
/// again.
pub(crate) fn is_kept_entry_of(snapshot: &str, key: CacheKey) -> bool {
    snapshot.starts_with(&kept_entry_prefix(key))
}

fn kept_entry_prefix(key: CacheKey) -> String {
    hoist_sandbox::kept_key(&format!("{}-{}-", key.hex(), boot()))
}

/// This boot of the machine: the first 16 hex digits of the kernel's boot ID (`unknown` where it cannot be read).
fn boot() -> &'static str {
    static BOOT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|id| {
                id.chars()
                    .filter(char::is_ascii_hexdigit)
                    .take(16)
                    .collect()
            })
            .filter(|id: &String| id.len() == 16)
            .unwrap_or_else(|| "unknown".to_owned())
    })
}

/// The directory holding the changes of the snapshot-area entry `snapshot`, protected from prune while `store`
/// lives.
pub(crate) fn directory(store: &Store, snapshot: &str) -> Result<PathBuf> {
    let entry = store
        .use_entry(Area::Snapshots, snapshot)
        .map_err(|e| EngineError::store("failed to read a step's kept changes", e))?
        .ok_or_else(|| {
            EngineError::invalid(format!(
                "the kept changes of a build step ({snapshot}) are gone from the store"
            ))
        })?;
    Ok(hoist_sandbox::kept_dir(&entry))
}

/// The layers as blobs: each pending one is written as a tar from its directory (once per call, even when it is
/// listed twice) and its cache record updated to name the blob.
pub fn materialize(store: &Store, layers: &[Layer]) -> Result<Vec<LayerRef>> {
    let mut written: HashMap<&str, LayerRef> = HashMap::new();
    let mut blobs = Vec::with_capacity(layers.len());
    for layer in layers {
        let pending = match layer {
            Layer::Blob(blob) => {
                blobs.push(blob.clone());
                continue;
            }
            Layer::Pending(pending) => pending,
        };
        if let Some(blob) = written.get(pending.snapshot.as_str()) {
            blobs.push(blob.clone());
            continue;
        }
        let blob = write_pending(store, pending)?;
        written.insert(&pending.snapshot, blob.clone());
        blobs.push(blob);
    }
    Ok(blobs)
}

fn write_pending(store: &Store, pending: &PendingLayer) -> Result<LayerRef> {
    let dir = directory(store, &pending.snapshot)?;
    let options = WriteOptions::new().with_source_kind(SourceKind::OverlayUpper);
    let blob = ingest(store, |out| {
        write_layer(&dir, out, &options)
            .map(|summary| summary.entries)
            .map_err(|source| EngineError::Layer {
                what: format!("failed to write the layer of {}", dir.display()),
                source: Box::new(source),
            })
    })?
    .ok_or_else(|| {
        EngineError::invalid(format!(
            "the kept changes of a build step ({}) are empty",
            pending.snapshot
        ))
    })?;
    // The directory stays the layer's snapshot: what unpacks the blob finds it there.
    store
        .set_layer_unpacked(&blob.digest, &pending.snapshot)
        .map_err(|e| EngineError::store("failed to store a layer", e))?;
    // Only the record that still names this directory: a record replaced meanwhile (by a build that wrote the same
    // tar) is as good.
    if let Some(mut record) = cache::read(store, &pending.cache_key)
        && record.layer.is_none()
        && record.pending.as_deref() == Some(pending.snapshot.as_str())
    {
        record.layer = Some(blob.clone());
        record.pending = None;
        cache::update(store, &pending.cache_key, &record)?;
    }
    Ok(blob)
}
