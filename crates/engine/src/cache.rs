//! Cache keys and the cache index: `cache-v1/<key>/result.json` in the store maps an op's key to its result.

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

/// What an op produced, as the cache records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRecord {
    /// The layer of changes, `None` when the op changed nothing.
    pub layer: Option<LayerRef>,
    /// When the op ran (RFC 3339): the history's `created`, kept so a cached rebuild is identical.
    pub created: String,
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
    if let Some(layer) = &record.layer
        && !store.has_blob(&layer.digest)
    {
        return Ok(None);
    }
    Ok(Some(record))
}

/// Records `record` under `key` (an existing entry for the key wins; entries with one key are equivalent).
pub(crate) fn record(store: &Store, key: &CacheKey, record: &OpRecord) -> Result<()> {
    let entry = store
        .begin_entry(Area::Cache, &key.hex())
        .map_err(|e| EngineError::store("failed to write the build cache", e))?;
    let path = entry.path().join(RESULT_FILE);
    let bytes = serde_json::to_vec(record).expect("an OpRecord always serializes");
    fs::write(&path, bytes).map_err(|e| EngineError::io("write", &path, e))?;
    entry
        .commit()
        .map_err(|e| EngineError::store("failed to write the build cache", e))?;
    Ok(())
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
}
