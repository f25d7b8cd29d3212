//! Locking between processes: the store lock, and leases that protect content not referenced yet.
//!
//! # Why prune never deletes what another process is about to reference
//!
//! Content becomes reachable in steps: a layer is ingested, then its config, then a manifest, and only the final
//! tag makes it reachable from a reference. Between those steps a blob is in the store but unreferenced, which is
//! exactly what prune deletes. Time-based grace periods ("skip blobs younger than N minutes") guess; this store
//! uses locks, which the kernel releases when a process dies, so a crashed writer never pins content forever:
//!
//! * The **store lock** (`<root>/lock`) is taken *shared* by every short step that creates content (creating an
//!   ingest file, committing a blob, creating an entry) and *exclusive* by reference updates and prune. Each step
//!   opens its own descriptor, so threads of one process exclude each other as well as processes do.
//! * Each in-progress ingest file (`ingest-v1/<id>`) and entry directory (`<area>/.tmp-<id>`) is **flocked by its
//!   writer** from the moment it is created (under the shared store lock). Prune deletes only those it can lock
//!   itself, i.e. those whose writer has exited.
//! * Each `Store` handle that writes content owns a **lease** (`leases-v1/<id>`), a file it keeps flocked and to
//!   which it appends a line for every blob or entry it commits *before* the blob becomes visible (both under the
//!   shared store lock). Prune, under the exclusive lock, treats every line of every live lease as a root. The
//!   lease ends when the `Store` is dropped or the process exits; content still unreferenced then is garbage.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::layout::unique_name;
use crate::{Error, Result};

/// A held store lock; released on drop (closing the descriptor releases the flock).
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

/// Which kind of store lock to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// Held by steps that add content; many at once.
    Shared,
    /// Held by reference updates and prune; alone.
    Exclusive,
}

impl StoreLock {
    pub(crate) fn acquire(path: &Path, mode: LockMode) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| Error::Lock {
                path: path.to_owned(),
                source,
            })?;
        let operation = match mode {
            LockMode::Shared => FlockOperation::LockShared,
            LockMode::Exclusive => FlockOperation::LockExclusive,
        };
        lock_retrying(&file, operation).map_err(|source| Error::Lock {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self { _file: file })
    }
}

/// `flock`, retried when a signal interrupts the wait.
fn lock_retrying(file: &File, operation: FlockOperation) -> io::Result<()> {
    loop {
        match flock(file, operation) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// Tries to take an exclusive flock on `file` without waiting; `Ok(false)` means someone else holds it.
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(errno) => Err(errno.into()),
    }
}

/// Takes an exclusive flock on a freshly created file or directory that nobody else can have locked yet.
pub(crate) fn lock_new(file: &File) -> io::Result<()> {
    lock_retrying(file, FlockOperation::LockExclusive)
}

/// What a lease line protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaseItem {
    /// A blob, by digest text.
    Blob(String),
    /// A snapshot or cache entry: area directory name and key.
    Entry(String, String),
}

impl LeaseItem {
    fn to_line(&self) -> String {
        match self {
            Self::Blob(digest) => format!("blob {digest}\n"),
            Self::Entry(area, key) => format!("entry {area} {key}\n"),
        }
    }

    fn parse_line(line: &str) -> Option<Self> {
        let mut words = line.split(' ');
        match (words.next()?, words.next()?, words.next()) {
            ("blob", digest, None) => Some(Self::Blob(digest.to_owned())),
            ("entry", area, Some(key)) => Some(Self::Entry(area.to_owned(), key.to_owned())),
            _ => None,
        }
    }
}

/// A lease owned by one `Store` handle (see the module docs).
#[derive(Debug)]
pub(crate) struct Lease {
    path: PathBuf,
    file: File,
}

impl Lease {
    /// Creates and locks a new lease file. Call with the shared store lock held, so prune never sees the lease
    /// created but not yet locked.
    pub(crate) fn create(leases_dir: &Path) -> Result<Self> {
        let path = leases_dir.join(unique_name());
        let create = || -> io::Result<File> {
            let file = OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(&path)?;
            lock_new(&file)?;
            Ok(file)
        };
        let file = create().map_err(|source| Error::Lock {
            path: path.clone(),
            source,
        })?;
        Ok(Self { path, file })
    }

    /// Records `item` as protected. Call with the shared store lock held, before the item becomes visible.
    pub(crate) fn add(&mut self, item: &LeaseItem) -> Result<()> {
        // One `write` of a short line on an O_APPEND descriptor: prune, which reads under the exclusive lock,
        // never sees half of it.
        self.file
            .write_all(item.to_line().as_bytes())
            .map_err(|source| Error::Lock {
                path: self.path.clone(),
                source,
            })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Unlink while still holding the flock; closing the descriptor then releases it. If unlinking fails the
        // file stays, and prune removes it once it can lock it.
        let _ = fs::remove_file(&self.path);
    }
}

/// What [`scan_leases`] found.
#[derive(Debug, Default)]
pub(crate) struct LeaseScan {
    /// The items of every live lease.
    pub(crate) items: Vec<LeaseItem>,
    /// Dead leases deleted.
    pub(crate) dead: usize,
    /// Their bytes.
    pub(crate) dead_bytes: u64,
}

/// Reads every live lease in `leases_dir` and deletes those whose owner has exited.
/// Call with the exclusive store lock held.
pub(crate) fn scan_leases(leases_dir: &Path) -> Result<LeaseScan> {
    let mut scan = LeaseScan::default();
    let entries = fs::read_dir(leases_dir).map_err(|source| Error::Prune {
        path: leases_dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Prune {
            path: leases_dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        let file = match File::open(&path) {
            Ok(file) => file,
            // Its owner dropped it between the listing and now.
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(Error::Prune { path, source }),
        };
        let dead = try_lock_exclusive(&file).map_err(|source| Error::Prune {
            path: path.clone(),
            source,
        })?;
        let text = fs::read_to_string(&path).map_err(|source| Error::Prune {
            path: path.clone(),
            source,
        })?;
        if dead {
            fs::remove_file(&path).map_err(|source| Error::Prune { path, source })?;
            scan.dead += 1;
            scan.dead_bytes += text.len() as u64;
            continue;
        }
        scan.items
            .extend(text.lines().filter_map(LeaseItem::parse_line));
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_lines_round_trip() {
        for item in [
            LeaseItem::Blob("sha256:00".to_owned()),
            LeaseItem::Entry("cache-v2".to_owned(), "k.1".to_owned()),
        ] {
            let line = item.to_line();
            assert_eq!(LeaseItem::parse_line(line.trim_end()), Some(item));
        }
        assert_eq!(LeaseItem::parse_line("garbage"), None);
    }

    #[test]
    fn live_lease_is_kept_and_dead_lease_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut live = Lease::create(dir.path()).unwrap();
        live.add(&LeaseItem::Blob("sha256:aa".to_owned())).unwrap();
        // A lease file nobody holds: what a killed process leaves behind.
        let dead = dir.path().join("dead");
        fs::write(&dead, "blob sha256:bb\n").unwrap();

        let scan = scan_leases(dir.path()).unwrap();
        assert_eq!(scan.items, vec![LeaseItem::Blob("sha256:aa".to_owned())]);
        assert_eq!((scan.dead, scan.dead_bytes), (1, 15));
        assert!(!dead.exists());
        assert!(live.path.exists());
        let path = live.path.clone();
        drop(live);
        assert!(!path.exists());
    }
}
