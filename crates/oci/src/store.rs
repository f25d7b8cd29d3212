//! The [`Store`] handle: opening a store and the locking every operation shares.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::layout::Layout;
use crate::lock::{Lease, LeaseItem, LockMode, StoreLock};
use crate::{Error, Result};

/// A local image store: blobs by digest, references, image metadata, and the engine's snapshot and cache areas.
///
/// Several processes (and threads) may open one store at once. The on-disk layout is documented in
/// `docs/store.md` and here:
///
/// ```text
/// <root>/
/// ├── lock                          store lock (flock): shared while adding content, exclusive for
/// │                                 reference updates and prune
/// ├── blobs-v1/sha256/<hex>         immutable blobs named by the SHA-256 of their bytes (mode 0444)
/// ├── layers-v1/sha256/<hex>.json   per layer blob: diffID, uncompressed tar size, content size
/// ├── references-v1.json            reference → manifest descriptor, plus per-manifest image records
/// ├── ingest-v1/<id>                blobs being written, each flocked by its writer
/// ├── leases-v1/<id>                content an open Store wrote but has not referenced yet
/// ├── snapshots-v1/<key>/           unpacked layers (the engine's); last use = directory mtime
/// ├── cache-v2/<key>/               build cache entries (the engine's); last use = directory mtime
/// └── tmp-v1/                       temp files for atomic metadata writes
/// ```
///
/// Names carry a format version (`-v1`): a format change adds a new area beside the old one.
///
/// # Guarantees
///
/// * A blob appears under `blobs-v1/` only after its bytes were synced and hashed to its name; a wrong digest or
///   size is never visible. A killed writer leaves only a file in `ingest-v1/`, which prune removes.
/// * `references-v1.json` is replaced atomically (temp file, fsync, rename, directory fsync) under the exclusive
///   store lock: concurrent taggers never lose each other's updates, and a crash leaves the old or the new index.
/// * Prune never deletes content another live `Store` has written but not referenced yet (see the `lock` module:
///   leases and flocked ingest files, no time-based guesses).
#[derive(Debug)]
pub struct Store {
    layout: Layout,
    /// Created on the first write; records what this handle must keep alive until it is referenced.
    lease: Mutex<Option<Lease>>,
}

impl Store {
    /// Opens the store at `root`, creating its directories if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let layout = Layout::new(root.into());
        layout.create()?;
        Ok(Self {
            layout,
            lease: Mutex::new(None),
        })
    }

    /// The default store location: `/var/lib/hoist` for root, otherwise `$XDG_DATA_HOME/hoist`, falling back to
    /// `$HOME/.local/share/hoist`.
    pub fn default_root() -> Result<PathBuf> {
        let is_root = rustix::process::geteuid().is_root();
        default_root_for(
            is_root,
            std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    pub(crate) fn lock(&self, mode: LockMode) -> Result<StoreLock> {
        StoreLock::acquire(&self.layout.lock_file(), mode)
    }

    /// Records `item` in this handle's lease. The caller holds the shared store lock (the `_held` witness), so
    /// prune cannot run between this and the moment the item becomes visible.
    pub(crate) fn protect(&self, _held: &StoreLock, item: &LeaseItem) -> Result<()> {
        let mut lease = self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if lease.is_none() {
            *lease = Some(Lease::create(&self.layout.leases_dir())?);
        }
        lease
            .as_mut()
            .expect("the lease was created just above")
            .add(item)
    }
}

fn default_root_for(
    is_root: bool,
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf> {
    if is_root {
        return Ok(PathBuf::from("/var/lib/hoist"));
    }
    // The XDG spec says a relative value is invalid and must be ignored.
    if let Some(data) = xdg_data_home.filter(|p| p.is_absolute()) {
        return Ok(data.join("hoist"));
    }
    match home.filter(|p| p.is_absolute()) {
        Some(home) => Ok(home.join(".local").join("share").join("hoist")),
        None => Err(Error::NoDefaultRoot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_root_follows_xdg_and_root() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            default_root_for(true, p("/x"), p("/home/u")).unwrap(),
            PathBuf::from("/var/lib/hoist")
        );
        assert_eq!(
            default_root_for(false, p("/x"), p("/home/u")).unwrap(),
            PathBuf::from("/x/hoist")
        );
        assert_eq!(
            default_root_for(false, p("relative"), p("/home/u")).unwrap(),
            PathBuf::from("/home/u/.local/share/hoist")
        );
        assert_eq!(
            default_root_for(false, None, p("/home/u")).unwrap(),
            PathBuf::from("/home/u/.local/share/hoist")
        );
        assert!(matches!(
            default_root_for(false, None, None),
            Err(Error::NoDefaultRoot)
        ));
    }

    #[test]
    fn open_creates_the_versioned_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        for area in [
            "blobs-v1/sha256",
            "layers-v1/sha256",
            "ingest-v1",
            "leases-v1",
            "snapshots-v1",
            "cache-v2",
            "tmp-v1",
        ] {
            assert!(store.root().join(area).is_dir(), "{area}");
        }
        // Opening again is fine.
        Store::open(dir.path().join("store")).unwrap();
    }
}
