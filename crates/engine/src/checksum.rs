//! Content of context sources for cache keys, with file digests remembered by metadata.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hoist_context::{ContextWalker, EntryKind, WalkOptions};
use sha2::{Digest as _, Sha256};

use crate::error::{EngineError, Result};

/// The content of a context source: every selected path with its type, mode, size, link target, the SHA-256
/// of its bytes and the xattrs of files and directories (not its time or owner, as BuildKit's content checksums,
/// whose tarsum headers hold the xattrs too: COPY copies them).
///
/// File digests are remembered in `sums` by (size, mtime, ctime, inode): an unchanged file is not read again
/// (BuildKit keeps the same metadata-keyed checksum cache). A write or an xattr change changes the ctime, so a
/// stale digest is never used.
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
    // The walk only collects: each entry's metadata bytes, and for a file either its remembered digest or a place
    // in `unknown`, the files to read. Those are hashed on every core, then everything is fed to the hasher in walk
    // order, so the result is the same as one serial pass.
    let mut entries: Vec<(Vec<u8>, Option<FileDigest>)> = Vec::new();
    let mut unknown: Vec<(String, String)> = Vec::new();
    walker.walk(|entry| -> Result<()> {
        let path = entry.path().as_os_str().as_encoded_bytes();
        let mut header = Vec::with_capacity(path.len() + 32);
        header.extend_from_slice(&(path.len() as u64).to_le_bytes());
        header.extend_from_slice(path);
        header.extend_from_slice(
            format!("{:?}:{:o}:{}", entry.kind(), entry.mode(), entry.size()).as_bytes(),
        );
        if let Some(target) = entry.link_target() {
            header.extend_from_slice(target.as_os_str().as_encoded_bytes());
        }
        if entry.kind() == EntryKind::Dir {
            header.extend_from_slice(&xattr_bytes(&root.join(entry.path()))?);
        }
        let file = (entry.kind() == EntryKind::File).then(|| {
            use std::os::unix::fs::MetadataExt;
            let meta = entry.metadata();
            // `2:`: the digest covers the xattrs (one remembered before they counted is read again).
            let stamp = format!(
                "2:{}:{}.{}:{}.{}:{}",
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
                meta.ino()
            );
            let rel = entry.path().to_string_lossy().into_owned();
            match known.get(&rel) {
                Some((seen, digest)) if *seen == stamp => FileDigest::Known(digest.clone()),
                _ => {
                    unknown.push((rel, stamp));
                    FileDigest::Unknown(unknown.len() - 1)
                }
            }
        });
        entries.push((header, file));
        Ok(())
    })?;
    let computed = hash_files(&root, &unknown)?;
    let mut hasher = Sha256::new();
    for (header, file) in &entries {
        hasher.update(header);
        match file {
            Some(FileDigest::Known(digest)) => hasher.update(digest.as_bytes()),
            Some(FileDigest::Unknown(index)) => hasher.update(computed[*index].as_bytes()),
            None => {}
        }
    }
    for ((rel, stamp), digest) in unknown.into_iter().zip(computed) {
        known.insert(rel, (stamp, digest));
    }
    sums.store(&root, &known);
    Ok(hasher.finalize().to_vec())
}

/// A context file's content digest: remembered, or the index of the file in the list still to read.
enum FileDigest {
    Known(String),
    Unknown(usize),
}

/// The [`file_digest`] of each of `files` (paths relative to `root`), in order, read on up to one thread per core:
/// a cold context of many files is bound by hashing, which one core does at about 1.5 GB/s.
fn hash_files(root: &Path, files: &[(String, String)]) -> Result<Vec<String>> {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(files.len());
    if threads <= 1 {
        return files
            .iter()
            .map(|(rel, _)| file_digest(&root.join(rel)))
            .collect();
    }
    let next = AtomicUsize::new(0);
    // Each worker returns the (index, digest) pairs it computed; they are put back in order afterwards.
    let hashed = std::thread::scope(|scope| -> Result<Vec<(usize, String)>> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<Vec<(usize, String)>> {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some((rel, _)) = files.get(index) else {
                            return Ok(done);
                        };
                        done.push((index, file_digest(&root.join(rel))?));
                    }
                })
            })
            .collect();
        let mut all = Vec::with_capacity(files.len());
        for worker in workers {
            all.extend(
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
            );
        }
        Ok(all)
    })?;
    let mut digests = vec![String::new(); files.len()];
    for (index, digest) in hashed {
        digests[index] = digest;
    }
    Ok(digests)
}

/// The SHA-256 (hex) of a file's bytes, followed by `+` and the SHA-256 of its xattrs when it has any (so a file
/// without xattrs has the digest it always had).
fn file_digest(path: &Path) -> Result<String> {
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
    let mut digest = hex::encode(content.finalize());
    let xattrs = xattr_bytes(path)?;
    if !xattrs.is_empty() {
        digest.push('+');
        digest.push_str(&hex::encode(Sha256::digest(&xattrs)));
    }
    Ok(digest)
}

/// The xattrs a copy of `path` carries ([`hoist_layer::read_xattrs`]), each name and value prefixed with its
/// length; empty when there are none.
fn xattr_bytes(path: &Path) -> Result<Vec<u8>> {
    let xattrs = hoist_layer::read_xattrs(path)
        .map_err(|e| EngineError::io("read the extended attributes of", path, e))?;
    let mut bytes = Vec::new();
    for (name, value) in xattrs {
        for part in [name, value] {
            bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
            bytes.extend_from_slice(&part);
        }
    }
    Ok(bytes)
}

/// The store directory holding the [`ChecksumCache`]: the engine's, beside the store's own areas.
pub(crate) const CONTEXT_SUMS_DIR: &str = "context-sums-v1";

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

    /// Files hashed on several threads land in walk order: a cold hash (every file read) equals a warm one (every
    /// digest remembered), and renaming two files of different content changes it.
    #[test]
    fn parallel_hashing_keeps_the_walk_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ctx");
        for dir in ["a", "b/c"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for i in 0..64 {
            let dir = ["a", "b", "b/c"][i % 3];
            fs::write(root.join(format!("{dir}/f{i}")), vec![i as u8; 1000 * i]).unwrap();
        }
        let sums = ChecksumCache {
            dir: tmp.path().join("sums"),
        };
        let cold = hash_context(&root, &[], &[], &sums).unwrap();
        let warm = hash_context(&root, &[], &[], &sums).unwrap();
        assert_eq!(cold, warm);
        let cold_again = hash_context(
            &root,
            &[],
            &[],
            &ChecksumCache {
                dir: tmp.path().join("other"),
            },
        )
        .unwrap();
        assert_eq!(cold, cold_again);

        fs::rename(root.join("a/f0"), root.join("a/tmp")).unwrap();
        fs::rename(root.join("a/f3"), root.join("a/f0")).unwrap();
        fs::rename(root.join("a/tmp"), root.join("a/f3")).unwrap();
        assert_ne!(hash_context(&root, &[], &[], &sums).unwrap(), cold);
    }

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

    /// COPY copies xattrs, so they are part of the content: setting one on a file (a new ctime, so its remembered
    /// digest is not used) or on a directory changes the hash, and removing it brings the old hash back.
    #[test]
    fn xattrs_of_files_and_directories_change_the_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ctx");
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/f"), "f").unwrap();
        let sums = ChecksumCache {
            dir: tmp.path().join("sums"),
        };
        let hash = || hash_context(&root, &[], &[], &sums).unwrap();
        let plain = hash();
        let set = |path: &str, value: &[u8]| {
            rustix::fs::setxattr(
                root.join(path),
                "user.k",
                value,
                rustix::fs::XattrFlags::empty(),
            )
            .unwrap();
        };
        set("d/f", b"1");
        let file_one = hash();
        assert_ne!(file_one, plain);
        set("d/f", b"2");
        let file_two = hash();
        assert_ne!(file_two, file_one);
        rustix::fs::removexattr(root.join("d/f"), "user.k").unwrap();
        assert_eq!(hash(), plain);
        set("d", b"1");
        assert_ne!(hash(), plain);
    }
}
