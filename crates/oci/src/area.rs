//! The engine's areas: unpacked snapshots and build cache entries, each a directory named by a key.
//!
//! The store owns their lifecycle (atomic creation, last-use tracking, protection while in use, pruning); what goes
//! inside an entry is the engine's business.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::layout::{unique_name, write_replaceable};
use crate::lock::{LeaseItem, LockMode, lock_new};
use crate::{Digest, Error, Result, Store};

/// Prefix of entries being written; never a valid key (keys cannot start with `.`).
pub(crate) const TMP_PREFIX: &str = ".tmp-";

/// File at the top of an entry listing the blobs it needs, one digest per line (see [`EntryWriter::hold_blobs`]).
pub(crate) const HOLDS_FILE: &str = ".holds";

/// An area of the store holding engine-managed directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Area {
    /// `snapshots-v1/<key>/`: unpacked layer trees.
    Snapshots,
    /// `cache-v2/<key>/`: build cache entries (v2: a record may name a pending layer, which v1 readers would take for no change).
    Cache,
}

impl Area {
    /// Every area, in the order prune visits them.
    pub const ALL: [Area; 2] = [Area::Snapshots, Area::Cache];

    /// The area's directory name.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Snapshots => "snapshots-v1",
            Self::Cache => "cache-v2",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Snapshots => "snapshot",
            Self::Cache => "cache",
        }
    }
}

/// Creates an entry: fill the directory at [`path`](EntryWriter::path), then [`commit`](EntryWriter::commit) to
/// rename it into place. Dropping it uncommitted deletes the directory.
#[derive(Debug)]
pub struct EntryWriter<'s> {
    store: &'s Store,
    area: Area,
    key: String,
    path: PathBuf,
    /// Holds the flock that tells prune this directory is in progress.
    lock: Option<File>,
}

impl EntryWriter<'_> {
    /// The directory to fill.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Declares that the entry needs these blobs: while prune keeps the entry, it keeps them too, even when no
    /// reference reaches them (a build cache entry's layer), and it counts their size against `--keep-storage` as
    /// part of the entry's. Written to a `.holds` file at the top of the entry, a name the store reserves.
    pub fn hold_blobs(&self, digests: &[Digest]) -> Result<()> {
        let path = self.path.join(HOLDS_FILE);
        fs::write(&path, holds_text(digests)).map_err(|source| Error::Entry { path, source })
    }

    /// Renames the directory to `<area>/<key>`. If another writer committed the same key first, this copy is
    /// discarded and theirs is kept (entries with one key have the same content). The entry is protected from
    /// prune while this store handle lives. Returns the entry's path.
    pub fn commit(mut self) -> Result<PathBuf> {
        let target = self.store.area_dir(self.area).join(&self.key);
        let lock = self.store.lock(LockMode::Shared)?;
        self.store.protect(
            &lock,
            &LeaseItem::Entry(self.area.dir_name().to_owned(), self.key.clone()),
        )?;
        let publish = || -> io::Result<()> {
            if target.exists() {
                return fs::remove_dir_all(&self.path);
            }
            // No fsync of the area directory: an entry is a cache (an unpacked layer, a step's directory, a
            // build cache record, a cache mount), whose loss in a crash is a miss, and whose contents are not
            // synced either. Blobs and references are what must survive, and they are synced.
            match fs::rename(&self.path, &target) {
                Ok(()) => Ok(()),
                // Another writer renamed its copy into place between the check and the rename (rename(2) refuses
                // to replace a non-empty directory): theirs is as good as ours.
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists
                    ) =>
                {
                    fs::remove_dir_all(&self.path)
                }
                Err(error) => Err(error),
            }
        };
        publish().map_err(|source| Error::Entry {
            path: target.clone(),
            source,
        })?;
        self.lock = None;
        Ok(target)
    }
}

impl Drop for EntryWriter<'_> {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

impl Store {
    /// The directory of an area.
    pub fn area_dir(&self, area: Area) -> PathBuf {
        self.root().join(area.dir_name())
    }

    /// Starts writing the entry `key` of `area` (see [`EntryWriter`]).
    pub fn begin_entry(&self, area: Area, key: &str) -> Result<EntryWriter<'_>> {
        validate_key(area, key)?;
        let path = self
            .area_dir(area)
            .join(format!("{TMP_PREFIX}{}", unique_name()));
        // Created and locked under the shared store lock, so prune never sees it unlocked.
        let _lock = self.lock(LockMode::Shared)?;
        let create = || -> io::Result<File> {
            fs::create_dir(&path)?;
            let dir = File::open(&path)?;
            lock_new(&dir)?;
            Ok(dir)
        };
        let dir = create().map_err(|source| Error::Entry {
            path: path.clone(),
            source,
        })?;
        Ok(EntryWriter {
            store: self,
            area,
            key: key.to_owned(),
            path,
            lock: Some(dir),
        })
    }

    /// Marks an entry as used now (prune's `--keep-storage` keeps the most recently used) and protects it from
    /// prune while this store handle lives. Returns its path, or `None` if it does not exist.
    pub fn use_entry(&self, area: Area, key: &str) -> Result<Option<PathBuf>> {
        let Some(path) = self.protect_entry(area, key)? else {
            return Ok(None);
        };
        File::open(&path)
            .and_then(|dir| dir.set_modified(SystemTime::now()))
            .map_err(|source| Error::Entry {
                path: path.clone(),
                source,
            })?;
        Ok(Some(path))
    }

    /// The committed entry `key`, protected from prune while this store handle lives; `None` if it does not exist.
    fn protect_entry(&self, area: Area, key: &str) -> Result<Option<PathBuf>> {
        validate_key(area, key)?;
        let path = self.area_dir(area).join(key);
        let lock = self.lock(LockMode::Shared)?;
        if !path.is_dir() {
            return Ok(None);
        }
        self.protect(
            &lock,
            &LeaseItem::Entry(area.dir_name().to_owned(), key.to_owned()),
        )?;
        Ok(Some(path))
    }

    /// Replaces the file `name` at the top of the committed entry `key` with `bytes`, and the blobs it holds
    /// ([`EntryWriter::hold_blobs`]) with `holds`: for an entry whose content gets completed later (a build cache
    /// record whose layer tar was written after the fact). Each file is written beside the old one and renamed over
    /// it, so a reader sees the old file or the new one, and the hold list goes first, so that the new file never
    /// names a blob a prune may take. Returns `false` (and writes nothing) when the entry does not exist.
    pub fn update_entry(
        &self,
        area: Area,
        key: &str,
        name: &str,
        bytes: &[u8],
        holds: &[Digest],
    ) -> Result<bool> {
        let Some(dir) = self.protect_entry(area, key)? else {
            return Ok(false);
        };
        // Temp files go to `tmp-v1/`, on the same file system, written under the shared lock as every temp file
        // there is (prune, holding the exclusive one, takes what it finds there for leftovers).
        let _lock = self.lock(LockMode::Shared)?;
        let tmp_dir = self.layout().tmp_dir();
        write_replaceable(
            &tmp_dir,
            &dir.join(HOLDS_FILE),
            holds_text(holds).as_bytes(),
        )?;
        write_replaceable(&tmp_dir, &dir.join(name), bytes)?;
        Ok(true)
    }
}

fn holds_text(digests: &[Digest]) -> String {
    let mut text = String::new();
    for digest in digests {
        text.push_str(&digest.to_string());
        text.push('\n');
    }
    text
}

fn validate_key(area: Area, key: &str) -> Result<()> {
    let valid = !key.is_empty()
        && key.len() <= 200
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidEntryKey {
            area: area.label(),
            key: key.to_owned(),
        })
    }
}

/// The blobs an entry declared with [`EntryWriter::hold_blobs`]; none for an entry that did not (or whose list is
/// unreadable: prune then treats it as holding nothing, as entries written before the list existed).
pub(crate) fn held_blobs(entry: &Path) -> Vec<Digest> {
    fs::read_to_string(entry.join(HOLDS_FILE))
        .map(|text| text.lines().filter_map(|line| line.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_created_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let writer = store.begin_entry(Area::Cache, "k1").unwrap();
        fs::write(writer.path().join("data"), b"x").unwrap();
        assert_eq!(store.use_entry(Area::Cache, "k1").unwrap(), None);
        let path = writer.commit().unwrap();
        assert_eq!(path, store.area_dir(Area::Cache).join("k1"));
        assert_eq!(fs::read(path.join("data")).unwrap(), b"x");
        assert_eq!(store.use_entry(Area::Cache, "k1").unwrap(), Some(path));

        let abandoned = store.begin_entry(Area::Snapshots, "k2").unwrap();
        let tmp = abandoned.path().to_owned();
        assert!(tmp.is_dir());
        drop(abandoned);
        assert!(!tmp.exists());
        assert_eq!(
            fs::read_dir(store.area_dir(Area::Snapshots))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn updating_an_entry_replaces_its_file_and_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = store.ingest_bytes(b"first").unwrap().digest;
        let second = store.ingest_bytes(b"second").unwrap().digest;
        let writer = store.begin_entry(Area::Cache, "k").unwrap();
        fs::write(writer.path().join("result.json"), b"old").unwrap();
        writer.hold_blobs(&[first]).unwrap();
        let path = writer.commit().unwrap();

        assert!(
            store
                .update_entry(Area::Cache, "k", "result.json", b"new", &[second])
                .unwrap()
        );
        assert_eq!(fs::read(path.join("result.json")).unwrap(), b"new");
        assert_eq!(held_blobs(&path), vec![second]);
        let mut names: Vec<String> = fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [HOLDS_FILE, "result.json"], "no temp file left");

        assert!(
            !store
                .update_entry(Area::Cache, "missing", "result.json", b"x", &[])
                .unwrap()
        );
        assert!(!store.area_dir(Area::Cache).join("missing").exists());
    }

    #[test]
    fn writers_racing_for_one_key_all_succeed() {
        // Two processes unpacking the same layer: both fill an entry, both commit, one rename wins. The loser's
        // rename fails with ENOTEMPTY when the winner lands between its existence check and its rename.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        std::thread::scope(|scope| {
            for writer in 0..4 {
                let root = root.clone();
                scope.spawn(move || {
                    let store = Store::open(root).unwrap();
                    for key in 0..150 {
                        let entry = store
                            .begin_entry(Area::Snapshots, &format!("k{key}"))
                            .unwrap();
                        for file in 0..3 {
                            fs::write(entry.path().join(format!("f{file}")), b"same").unwrap();
                        }
                        let path = entry
                            .commit()
                            .unwrap_or_else(|e| panic!("writer {writer}: {e:?}"));
                        assert_eq!(fs::read(path.join("f2")).unwrap(), b"same");
                    }
                });
            }
        });
        let names: Vec<_> = fs::read_dir(store_dir(&root)).unwrap().collect();
        assert_eq!(names.len(), 150, "one entry per key, no leftovers");
    }

    fn store_dir(root: &Path) -> PathBuf {
        root.join(Area::Snapshots.dir_name())
    }

    #[test]
    fn keys_must_be_plain_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for bad in ["", ".hidden", "a/b", "..", "a b"] {
            assert!(store.begin_entry(Area::Cache, bad).is_err(), "{bad}");
        }
    }
}
