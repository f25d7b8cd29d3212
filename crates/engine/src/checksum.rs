//! Content of context sources for cache keys, with file digests remembered by metadata.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hoist_context::{ContextWalker, EntryKind, WalkOptions};
use sha2::{Digest as _, Sha256};

use crate::error::{EngineError, Result};

/// The content of a context source: every selected path with its type, mode, size, link target and the SHA-256
/// of its bytes (not its time or owner, as BuildKit's content checksums).
///
/// File digests are remembered in `sums` by (size, mtime, ctime, inode): an unchanged file is not read again
/// (BuildKit keeps the same metadata-keyed checksum cache). A write changes the ctime, so a stale digest is never
/// used.
pub(crate) fn hash_context(
    root: &Path,
    ignore: &[String],
    include: &[String],
    sums: &ChecksumCache,
) -> Result<Vec<u8>> {
    let options = WalkOptions {
        include_patterns: include.to_vec(),
        exclude_patterns: ignore.to_vec(),
        follow_paths: Vec::new(),
    };
    // `--exclude` is left out: hashing files a COPY skips only costs an unneeded rerun, never a stale hit.
    let walker = ContextWalker::new(root, &options).map_err(EngineError::Context)?;
    let root = walker.root().to_path_buf();
    let mut known = sums.load(&root);
    let mut hasher = Sha256::new();
    walker.walk(|entry| -> Result<()> {
        let path = entry.path().as_os_str().as_encoded_bytes();
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path);
        hasher.update(format!("{:?}:{:o}:{}", entry.kind(), entry.mode(), entry.size()).as_bytes());
        if let Some(target) = entry.link_target() {
            hasher.update(target.as_os_str().as_encoded_bytes());
        }
        if entry.kind() == EntryKind::File {
            use std::os::unix::fs::MetadataExt;
            let meta = entry.metadata();
            let stamp = format!(
                "{}:{}.{}:{}.{}:{}",
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
                meta.ino()
            );
            let rel = entry.path().to_string_lossy().into_owned();
            let digest = match known.get(&rel) {
                Some((seen, digest)) if *seen == stamp => digest.clone(),
                _ => {
                    let abs = root.join(entry.path());
                    let digest = file_sha256(&abs)?;
                    known.insert(rel, (stamp, digest.clone()));
                    digest
                }
            };
            hasher.update(digest.as_bytes());
        }
        Ok(())
    })?;
    sums.store(&root, &known);
    Ok(hasher.finalize().to_vec())
}

fn file_sha256(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).map_err(|e| EngineError::io("read", path, e))?;
    let mut content = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| EngineError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        content.update(&buf[..n]);
    }
    Ok(hex::encode(content.finalize()))
}

/// Remembered file digests of context directories: one JSON file per directory under the scratch directory,
/// replaced whole by rename. Only a cache: unreadable or missing files mean "hash everything", and two writers
/// at once can only lose each other's new entries.
pub(crate) struct ChecksumCache {
    /// Where the per-directory files go.
    pub(crate) dir: PathBuf,
}

type Sums = BTreeMap<String, (String, String)>;

impl ChecksumCache {
    fn file(&self, root: &Path) -> PathBuf {
        let name = hex::encode(Sha256::digest(root.as_os_str().as_encoded_bytes()));
        self.dir.join(format!("{name}.json"))
    }

    fn load(&self, root: &Path) -> Sums {
        fs::read(self.file(root))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Merges `sums` into the stored ones (other COPYs of the same context keep theirs).
    fn store(&self, root: &Path, sums: &Sums) {
        let path = self.file(root);
        let mut all: Sums = fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        all.extend(sums.iter().map(|(k, v)| (k.clone(), v.clone())));
        let bytes = serde_json::to_vec(&all).expect("a map of strings always serializes");
        // A failure only means the next build hashes again.
        let written = fs::create_dir_all(&self.dir)
            .and_then(|()| tempfile::NamedTempFile::new_in(&self.dir))
            .and_then(|mut file| {
                file.write_all(&bytes)?;
                file.persist(&path).map_err(|e| e.error)
            });
        drop(written);
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::{ChecksumCache, Sums, hash_context};

    #[test]
    fn context_digests_are_reused_until_the_file_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ctx");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("a.txt"), "a").unwrap();
        let sums = ChecksumCache {
            dir: tmp.path().join("sums"),
        };
        let include = ["a.txt".to_owned()];
        let first = hash_context(&root, &[], &include, &sums).unwrap();
        let canonical = fs::canonicalize(&root).unwrap();
        let mut known: Sums = sums.load(&canonical);
        assert_eq!(known.len(), 1, "the file's digest is remembered");

        // A remembered digest is used as long as the file's metadata is unchanged...
        known.get_mut("a.txt").unwrap().1 = "0".repeat(64);
        fs::write(sums.file(&canonical), serde_json::to_vec(&known).unwrap()).unwrap();
        let from_cache = hash_context(&root, &[], &include, &sums).unwrap();
        assert_ne!(from_cache, first);

        // ...and a write (new ctime) makes it read the file again.
        fs::write(root.join("a.txt"), "a").unwrap();
        let reread = hash_context(&root, &[], &include, &sums).unwrap();
        assert_eq!(reread, first);
    }
}
