//! Where everything lives inside a store root.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::{Digest, Error, Result};

/// The on-disk layout of a store, version 1.
///
/// Every area carries a version in its name (`blobs-v1`, …), as uv's cache buckets do: a format change adds a `-v2`
/// area beside the old one instead of migrating in place, so an older hoist never misreads a newer store.
///
/// ```text
/// <root>/
/// ├── lock                          store lock (flock): writers hold it shared for a moment,
/// │                                 reference updates and prune hold it exclusive
/// ├── blobs-v1/sha256/<hex>         immutable blobs, named by the SHA-256 of their bytes, verified
/// │                                 before they appear here (mode 0444)
/// ├── layers-v1/sha256/<hex>.json   per layer blob: diffID, uncompressed tar size, content size
/// ├── references-v1.json            reference → manifest descriptor, and per-manifest image records
/// │                                 (config digest, created, platform, size) for fast listing
/// ├── ingest-v1/<id>                blobs being written; each is flocked by its writer
/// ├── leases-v1/<id>                one per open `Store` that wrote content: the blobs and entries it
/// │                                 holds until it references them; flocked by its owner
/// ├── snapshots-v1/<key>/           unpacked layer trees (the build engine's); last use = mtime
/// ├── cache-v2/<key>/               build cache entries (the build engine's); last use = mtime
/// ├── context-sums-v1/<hash>.json   the build engine's remembered digests of context files, by metadata
/// │                                 (a cache: deleting it only costs re-reading the files)
/// └── tmp-v1/                       scratch space for atomic writes of metadata files
/// ```
///
/// Snapshot and cache entries are written as `<area>/.tmp-<id>/` (flocked by their writer) and renamed into place.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Creates every directory of the layout that does not exist yet.
    pub(crate) fn create(&self) -> Result<()> {
        for dir in [
            self.root.clone(),
            self.blobs_dir(),
            self.layers_dir(),
            self.ingest_dir(),
            self.leases_dir(),
            self.snapshots_dir(),
            self.cache_dir(),
            self.tmp_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(|source| Error::CreateLayout { path: dir, source })?;
        }
        Ok(())
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs-v1").join("sha256")
    }

    pub(crate) fn blob(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.encoded())
    }

    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.root.join("layers-v1").join("sha256")
    }

    pub(crate) fn layer_info(&self, digest: &Digest) -> PathBuf {
        self.layers_dir().join(format!("{}.json", digest.encoded()))
    }

    pub(crate) fn references_file(&self) -> PathBuf {
        self.root.join("references-v1.json")
    }

    pub(crate) fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest-v1")
    }

    pub(crate) fn leases_dir(&self) -> PathBuf {
        self.root.join("leases-v1")
    }

    pub(crate) fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots-v1")
    }

    pub(crate) fn cache_dir(&self) -> PathBuf {
        self.root.join("cache-v2")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp-v1")
    }
}

/// A name for a temporary file or lease that no other process or thread picks at the same time.
pub(crate) fn unique_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos:x}-{count}", std::process::id())
}

/// Makes a rename or unlink in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` atomically: a temp file in `tmp_dir`, fsync, rename, fsync of the parent directory.
/// A crash leaves either the old file or the new one, never a mix.
pub(crate) fn write_atomically(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file(tmp_dir, path, bytes, true)
}

/// Writes `bytes` to `path` through a temp file in `tmp_dir` and a rename, without syncing: readers see the old file
/// or the new one, but a crash may leave an empty or missing file. For records the store can compute again from
/// what they describe (a layer's metadata, from its blob), whose two fsyncs per write would be most of the cost.
pub(crate) fn write_replaceable(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file(tmp_dir, path, bytes, false)
}

fn replace_file(tmp_dir: &Path, path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    use std::io::Write;
    let tmp = tmp_dir.join(unique_name());
    let write = || -> io::Result<()> {
        let mut file = File::create_new(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable && let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    };
    write().map_err(|source| {
        let _ = fs::remove_file(&tmp);
        Error::WriteMetadata {
            path: path.to_owned(),
            source,
        }
    })
}
