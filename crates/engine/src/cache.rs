//! Cache keys and the cache index: `cache-v2/<key>/result.json` in the store maps an op's key to its result.

use std::fs;

use hoist_oci::{Area, Digest, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{EngineError, Result};

/// An op's cache key: SHA-256 over its material and its inputs' keys, in input order (BuildKit's `CacheKey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// The key of an op with this material, these input keys and, for sources, the content they stand for.
    pub fn compute(material: &[u8], inputs: &[CacheKey], content: Option<&[u8]>) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"hoist-cache-v1");
        hasher.update((material.len() as u64).to_le_bytes());
        hasher.update(material);
        hasher.update((inputs.len() as u64).to_le_bytes());
        for input in inputs {
            hasher.update(input.0);
        }
        match content {
            Some(content) => {
                hasher.update([1]);
                hasher.update((content.len() as u64).to_le_bytes());
                hasher.update(content);
            }
            None => hasher.update([0]),
        }
        CacheKey(hasher.finalize().into())
    }

    /// Lower-case hex.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// A layer the build made or reused: enough to list it in a manifest and a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerRef {
    /// The blob's digest.
    pub digest: Digest,
    /// The uncompressed tar's digest.
    #[serde(rename = "diffID")]
    pub diff_id: Digest,
    /// The blob's size.
    pub size: u64,
    /// The blob's media type.
    pub media_type: String,
}

/// One layer of a filesystem the solver made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// A tar blob in the store.
    Blob(LayerRef),
    /// A RUN step's changes, kept as the directory the step left and not yet written as a tar: what depends on
    /// the step reads the directory, and the tar is written only when an image that holds the layer is exported
    /// (BuildKit's lazy diff). A builder stage's layers never leave the machine, so they are never tarred.
    Pending(PendingLayer),
}

/// A [`Layer::Pending`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLayer {
    /// The snapshot-area entry whose `diff/` directory holds the changes, in overlayfs's format.
    pub snapshot: String,
    /// The key of the step's cache record, which gets the layer's blob once its tar is written.
    pub cache_key: CacheKey,
}

/// What an op produced, as the cache records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRecord {
    /// The layer of changes as a blob; `None` when the op changed nothing or its tar is still `pending`.
    pub layer: Option<LayerRef>,
    /// A RUN step's changes not yet written as a tar: the snapshot-area entry that holds them
    /// ([`Layer::Pending`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// When the op ran (RFC 3339): the history's `created`, kept so a cached rebuild is identical.
    pub created: String,
}

impl OpRecord {
    /// Whether the op changed the filesystem (its history entry is then not an `empty_layer`).
    pub fn changed(&self) -> bool {
        self.layer.is_some() || self.pending.is_some()
    }

    /// The layer the op added, if any; `key` is the record's own cache key.
    pub fn added_layer(&self, key: CacheKey) -> Option<Layer> {
        match (&self.layer, &self.pending) {
            (Some(layer), _) => Some(Layer::Blob(layer.clone())),
            (None, Some(snapshot)) => Some(Layer::Pending(PendingLayer {
                snapshot: snapshot.clone(),
                cache_key: key,
            })),
            (None, None) => None,
        }
    }
}

const RESULT_FILE: &str = "result.json";

/// Looks `key` up; a record whose layer blob is gone counts as a miss.
pub(crate) fn lookup(store: &Store, key: &CacheKey) -> Result<Option<OpRecord>> {
    let Some(dir) = store
        .use_entry(Area::Cache, &key.hex())
        .map_err(|e| EngineError::store("failed to read the build cache", e))?
    else {
        return Ok(None);
    };
    let Ok(bytes) = fs::read(dir.join(RESULT_FILE)) else {
        return Ok(None);
    };
    let Ok(record) = serde_json::from_slice::<OpRecord>(&bytes) else {
        return Ok(None);
    };
    // Retained, not just looked at: no reference holds a cache entry's layer, and a prune running beside this build
    // would otherwise be free to delete it before the image that needs it is written.
    if let Some(layer) = &record.layer
        && !store
            .retain_blob(&layer.digest)
            .map_err(|e| EngineError::store("failed to read the build cache", e))?
    {
        return Ok(None);
    }
    // A pending layer is only its directory: a record whose directory was pruned, or was made by a user whose
    // overlayfs marks opaque directories differently (root and rootless), is a miss.
    if record.layer.is_none()
        && let Some(snapshot) = &record.pending
        && (!crate::pending::is_kept_entry_of(snapshot, *key)
            || store
                .use_entry(Area::Snapshots, snapshot)
                .map_err(|e| EngineError::store("failed to read the build cache", e))?
                .is_none())
    {
        return Ok(None);
    }
    Ok(Some(record))
}

/// Replaces the record under `key` (a pending layer whose tar is now written): its held blob first, so that the
/// new record never names a blob a prune may take.
pub(crate) fn update(store: &Store, key: &CacheKey, record: &OpRecord) -> Result<()> {
    let bytes = serde_json::to_vec(record).expect("an OpRecord always serializes");
    let holds: Vec<Digest> = record.layer.iter().map(|layer| layer.digest).collect();
    store
        .update_entry(Area::Cache, &key.hex(), RESULT_FILE, &bytes, &holds)
        .map_err(|e| EngineError::store("failed to write the build cache", e))?;
    Ok(())
}

/// Reads the record under `key`, if there is a readable one.
pub(crate) fn read(store: &Store, key: &CacheKey) -> Option<OpRecord> {
    let path = store
        .area_dir(Area::Cache)
        .join(key.hex())
        .join(RESULT_FILE);
    fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

/// Records `record` under `key` (an existing entry for the key wins; entries with one key are equivalent).
pub(crate) fn record(store: &Store, key: &CacheKey, record: &OpRecord) -> Result<()> {
    let entry = store
        .begin_entry(Area::Cache, &key.hex())
        .map_err(|e| EngineError::store("failed to write the build cache", e))?;
    let path = entry.path().join(RESULT_FILE);
    let bytes = serde_json::to_vec(record).expect("an OpRecord always serializes");
    fs::write(&path, bytes).map_err(|e| EngineError::io("write", &path, e))?;
    // No reference holds a cache entry's layer until an image uses it: declared, so that a prune keeping this
    // entry (`--keep-storage`) keeps its layer too instead of turning the entry into a miss.
    let holds: Vec<Digest> = record.layer.iter().map(|layer| layer.digest).collect();
    entry
        .hold_blobs(&holds)
        .map_err(|e| EngineError::store("failed to write the build cache", e))?;
    entry
        .commit()
        .map_err(|e| EngineError::store("failed to write the build cache", e))?;
    Ok(())
}

/// What [`check_cache`] found in the build cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheCheck {
    /// Committed cache entries.
    pub entries: usize,
    /// Entries whose layer blob (or, for a pending layer, its directory) was pruned: lookups treat them as misses,
    /// and prune removes them in time.
    pub stale: usize,
    /// Entries whose `result.json` is missing or does not parse: a committed entry is always complete, so these
    /// are damage.
    pub broken: Vec<String>,
}

/// Verifies the cache index next to [`Store::check`](hoist_oci::Store::check): every committed entry holds a
/// readable record. Entries still being written (`.tmp-…`) are leftovers and are not looked at.
pub fn check_cache(store: &Store) -> Result<CacheCheck> {
    let dir = store.area_dir(Area::Cache);
    let mut check = CacheCheck::default();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(check),
        Err(error) => return Err(EngineError::io("list", &dir, error)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io("list", &dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        check.entries += 1;
        let record = fs::read(entry.path().join(RESULT_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<OpRecord>(&bytes).ok());
        match record {
            None => check.broken.push(name),
            Some(OpRecord {
                layer: Some(layer), ..
            }) if !store.has_blob(&layer.digest) => check.stale += 1,
            Some(OpRecord {
                layer: None,
                pending: Some(snapshot),
                ..
            }) if !store.area_dir(Area::Snapshots).join(&snapshot).is_dir() => check.stale += 1,
            Some(_) => {}
        }
    }
    check.broken.sort();
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::CacheKey;

    #[test]
    fn keys_depend_on_material_inputs_and_their_order() {
        let a = CacheKey::compute(b"x", &[], None);
        let b = CacheKey::compute(b"y", &[], None);
        assert_ne!(a, b);
        assert_eq!(a, CacheKey::compute(b"x", &[], None));
        assert_ne!(
            CacheKey::compute(b"m", &[a, b], None),
            CacheKey::compute(b"m", &[b, a], None)
        );
        assert_ne!(
            CacheKey::compute(b"m", &[], Some(b"")),
            CacheKey::compute(b"m", &[], None)
        );
        assert_eq!(a.hex().len(), 64);
    }

    #[test]
    fn a_pending_record_hits_only_with_its_directory_from_this_boot() {
        use super::*;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = CacheKey::compute(b"run", &[], None);
        let kept = |snapshot: &str| {
            let entry = store.begin_entry(Area::Snapshots, snapshot).unwrap();
            fs::create_dir(entry.path().join("diff")).unwrap();
            fs::write(entry.path().join("diff/file"), b"x").unwrap();
            entry.commit().unwrap();
            OpRecord {
                layer: None,
                pending: Some(snapshot.to_owned()),
                created: "2024-01-01T00:00:00Z".into(),
            }
        };

        let this_boot = crate::pending::kept_entry_key(key);
        let pending = kept(&this_boot);
        record(&store, &key, &pending).unwrap();
        assert_eq!(lookup(&store, &key).unwrap(), Some(pending.clone()));

        // The same step's directory from before a reboot (possibly cut short by a crash), or one made for
        // another key, is a miss.
        let other = CacheKey::compute(b"other", &[], None);
        let earlier_boot =
            hoist_sandbox::kept_key(&format!("{}-0123456789abcdef-1-1-0", other.hex()));
        let stale = kept(&earlier_boot);
        record(&store, &other, &stale).unwrap();
        assert_eq!(lookup(&store, &other).unwrap(), None);
        let foreign = CacheKey::compute(b"foreign", &[], None);
        record(&store, &foreign, &pending).unwrap();
        assert_eq!(lookup(&store, &foreign).unwrap(), None);

        // A record whose directory was pruned is a miss too.
        fs::remove_dir_all(store.area_dir(Area::Snapshots).join(&this_boot)).unwrap();
        assert_eq!(lookup(&store, &key).unwrap(), None);
    }

    #[test]
    fn check_cache_tells_stale_from_broken_entries() {
        use super::*;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let blob = store.ingest_bytes(b"layer").unwrap();
        let layer = |digest| LayerRef {
            digest,
            diff_id: digest,
            size: 5,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        };
        let whole = OpRecord {
            layer: Some(layer(blob.digest)),
            pending: None,
            created: "2024-01-01T00:00:00Z".into(),
        };
        record(&store, &CacheKey::compute(b"a", &[], None), &whole).unwrap();
        let pruned = OpRecord {
            layer: Some(layer(Digest::sha256(b"gone"))),
            ..whole.clone()
        };
        record(&store, &CacheKey::compute(b"b", &[], None), &pruned).unwrap();
        let broken = CacheKey::compute(b"c", &[], None);
        let entry = store.begin_entry(Area::Cache, &broken.hex()).unwrap();
        fs::write(entry.path().join(RESULT_FILE), b"{\"lay").unwrap();
        entry.commit().unwrap();
        assert_eq!(
            check_cache(&store).unwrap(),
            CacheCheck {
                entries: 3,
                stale: 1,
                broken: vec![broken.hex()],
            }
        );
    }
}
