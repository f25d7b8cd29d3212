//! Garbage collection: delete what no reference and no live lease reaches.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

use oci_spec::image::{ImageIndex, ImageManifest};

use crate::area::{TMP_PREFIX, held_blobs};
use crate::digest::digest_from_oci;
use crate::lock::{LeaseItem, LockMode, scan_leases, try_lock_exclusive};
use crate::media_type::{MediaKind, classify_str};
use crate::{Area, Digest, Error, Result, Store};

/// What to keep when pruning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Bytes of snapshot and cache entries to keep, most recently used first (Docker's `--keep-storage`).
    /// Zero removes every entry not in use.
    pub keep_storage: u64,
}

/// What prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Unreferenced blobs deleted.
    pub blobs: Vec<Digest>,
    /// Snapshot and cache entries deleted, by area and key.
    pub entries: Vec<(Area, String)>,
    /// Leftovers of killed writers deleted (ingest files, unfinished entries, temp files, dead leases).
    pub leftovers: usize,
    /// Bytes freed (apparent file sizes).
    pub reclaimed: u64,
}

/// Store areas an earlier format kept and this one does not read: `cache-v1` (its records could not say that a layer
/// is pending, so a newer record would read as "no change" there; see [`Area::Cache`]).
const RETIRED_AREAS: [&str; 1] = ["cache-v1"];

/// Largest blob prune opens to look for references inside (manifests and indexes are far smaller).
const MAX_SCANNED_JSON: u64 = 16 * 1024 * 1024;

impl Store {
    /// Deletes everything unreachable, holding the exclusive store lock throughout so no writer is mid-step:
    ///
    /// 1. snapshot and cache entries not in a live lease, beyond the `keep_storage` most recently used bytes (an
    ///    entry's size counts the blobs it holds that no reference reaches);
    /// 2. blobs not reachable from a reference (target → index → manifests → config and layers), a live lease or a
    ///    kept entry's [holds](crate::EntryWriter::hold_blobs), with their layer metadata;
    /// 3. in-progress ingests, entries and temp files whose writer has exited, and dead leases.
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport> {
        let _lock = self.lock(LockMode::Exclusive)?;
        let mut report = PruneReport::default();

        let index = self.load_index()?;
        let leases = scan_leases(&self.layout().leases_dir())?;
        report.leftovers += leases.dead;
        report.reclaimed += leases.dead_bytes;
        let mut roots: Vec<(Digest, Option<String>)> = index
            .images
            .values()
            .map(|record| (record.target.digest, Some(record.target.media_type.clone())))
            .collect();
        let mut leased_entries: HashSet<(String, String)> = HashSet::new();
        for item in leases.items {
            match item {
                LeaseItem::Blob(digest) => {
                    if let Ok(digest) = digest.parse() {
                        roots.push((digest, None));
                    }
                }
                LeaseItem::Entry(area, key) => {
                    leased_entries.insert((area, key));
                }
            }
        }
        let referenced = self.mark(roots);
        let held = self.sweep_entries(
            &leased_entries,
            options.keep_storage,
            &referenced,
            &mut report,
        )?;
        let mut live = referenced;
        live.extend(held);

        self.sweep_blobs(&live, &mut report)?;
        self.sweep_leftovers(&mut report)?;
        Ok(report)
    }

    /// Every blob reachable from `roots`. A root's media type, when known, says whether to look inside; a leased
    /// blob's is not, so small JSON blobs are parsed to find out. Layers and configs are never opened.
    fn mark(&self, roots: Vec<(Digest, Option<String>)>) -> HashSet<Digest> {
        let mut live = HashSet::new();
        let mut pending = roots;
        while let Some((digest, media_type)) = pending.pop() {
            if !live.insert(digest) {
                continue;
            }
            let kind = media_type.as_deref().map(classify_str);
            if matches!(kind, Some(MediaKind::Layer(_) | MediaKind::Config)) {
                continue;
            }
            let Some(bytes) = self.small_json_blob(&digest) else {
                continue;
            };
            let mut children: Vec<oci_spec::image::Descriptor> = Vec::new();
            if kind != Some(MediaKind::Index)
                && let Ok(manifest) = serde_json::from_slice::<ImageManifest>(&bytes)
            {
                children.push(manifest.config().clone());
                children.extend(manifest.layers().iter().cloned());
                children.extend(manifest.subject().iter().cloned());
            } else if kind != Some(MediaKind::Manifest)
                && let Ok(index) = serde_json::from_slice::<ImageIndex>(&bytes)
            {
                children.extend(index.manifests().iter().cloned());
            }
            for child in children {
                if let Ok(child_digest) = digest_from_oci(child.digest()) {
                    pending.push((child_digest, Some(child.media_type().to_string())));
                }
            }
        }
        live
    }

    /// The blob's bytes if it may be a manifest or index: small, and starting with `{` (checked on the first byte
    /// before reading the rest, so a leased layer is not read).
    fn small_json_blob(&self, digest: &Digest) -> Option<Vec<u8>> {
        use std::io::Read;
        let mut file = self.open_blob(digest).ok()?;
        if file.metadata().ok()?.len() > MAX_SCANNED_JSON {
            return None;
        }
        let mut bytes = vec![0; 1];
        file.read_exact(&mut bytes).ok()?;
        if bytes[0] != b'{' {
            return None;
        }
        file.read_to_end(&mut bytes).ok()?;
        Some(bytes)
    }

    fn sweep_blobs(&self, live: &HashSet<Digest>, report: &mut PruneReport) -> Result<()> {
        let blobs_dir = self.layout().blobs_dir();
        for (name, meta) in list_dir(&blobs_dir)? {
            let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            if live.contains(&digest) {
                continue;
            }
            remove_file(&blobs_dir.join(&name))?;
            report.reclaimed += meta.len();
            report.blobs.push(digest);
        }
        // Layer metadata of blobs that are gone (just now, or earlier).
        let layers_dir = self.layout().layers_dir();
        for (name, meta) in list_dir(&layers_dir)? {
            let hex = name.strip_suffix(".json").unwrap_or(&name);
            if !blobs_dir.join(hex).exists() {
                remove_file(&layers_dir.join(&name))?;
                report.reclaimed += meta.len();
            }
        }
        if !report.blobs.is_empty() {
            sync(&blobs_dir)?;
        }
        Ok(())
    }

    fn sweep_leftovers(&self, report: &mut PruneReport) -> Result<()> {
        // Areas of an earlier format, which this one no longer reads: caches, so they go whole.
        for name in RETIRED_AREAS {
            let path = self.root().join(name);
            if path.is_dir() {
                report.reclaimed += tree_size(&path)?;
                remove_tree(&path)?;
                report.leftovers += 1;
            }
        }
        // Ingest files: only those no writer holds.
        let ingest_dir = self.layout().ingest_dir();
        for (name, meta) in list_dir(&ingest_dir)? {
            let path = ingest_dir.join(&name);
            if is_abandoned(&path)? {
                remove_file(&path)?;
                report.reclaimed += meta.len();
                report.leftovers += 1;
            }
        }
        // Temp files are only written under a store lock, which we hold exclusively: all are leftovers.
        let tmp_dir = self.layout().tmp_dir();
        for (name, meta) in list_dir(&tmp_dir)? {
            remove_file(&tmp_dir.join(&name))?;
            report.reclaimed += meta.len();
            report.leftovers += 1;
        }
        for area in Area::ALL {
            let (removed, bytes) = remove_abandoned_in(&self.area_dir(area))?;
            report.leftovers += removed;
            report.reclaimed += bytes;
        }
        Ok(())
    }

    /// Deletes the entries that are neither leased nor within `keep_storage`; returns the blobs the remaining ones
    /// hold. `referenced` (blobs a reference or lease keeps anyway) are not counted in an entry's size.
    fn sweep_entries(
        &self,
        leased: &HashSet<(String, String)>,
        keep_storage: u64,
        referenced: &HashSet<Digest>,
        report: &mut PruneReport,
    ) -> Result<Vec<Digest>> {
        struct Candidate {
            area: Area,
            key: String,
            used: SystemTime,
            size: u64,
            holds: Vec<Digest>,
        }
        let mut candidates = Vec::new();
        let mut kept_holds = Vec::new();
        for area in Area::ALL {
            let dir = self.area_dir(area);
            for (name, meta) in list_dir(&dir)? {
                if name.starts_with('.') {
                    continue;
                }
                let path = dir.join(&name);
                let holds = held_blobs(&path);
                if leased.contains(&(area.dir_name().to_owned(), name.clone())) {
                    kept_holds.extend(holds);
                    continue;
                }
                let held_size: u64 = holds
                    .iter()
                    .filter(|digest| !referenced.contains(digest))
                    .filter_map(|digest| self.blob_size(digest).ok())
                    .sum();
                candidates.push(Candidate {
                    area,
                    used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    size: tree_size(&path)? + held_size,
                    key: name,
                    holds,
                });
            }
        }
        // Most recently used first; keep while the total fits.
        candidates.sort_by(|a, b| b.used.cmp(&a.used).then_with(|| a.key.cmp(&b.key)));
        let mut kept = 0u64;
        let mut full = false;
        for candidate in candidates {
            if !full && kept + candidate.size <= keep_storage {
                kept += candidate.size;
                kept_holds.extend(candidate.holds);
                continue;
            }
            // Once one entry does not fit, older ones are not kept in its place: recency wins.
            full = true;
            let path = self.area_dir(candidate.area).join(&candidate.key);
            // The held blobs' bytes are counted when (and if) the blob sweep deletes them.
            report.reclaimed += tree_size(&path)?;
            remove_tree(&path)?;
            report.entries.push((candidate.area, candidate.key));
        }
        Ok(kept_holds)
    }
}

impl Store {
    /// Deletes the unfinished entries of `area` whose writer has exited, as [`prune`](Store::prune) does, and
    /// nothing else: so that a build killed in a RUN step (whose whole overlay upper directory is such an entry)
    /// does not leave it until the next prune. Every build calls it, so the usual case costs one directory listing
    /// (names only) and no lock. Returns how many were removed.
    pub fn remove_abandoned_entries(&self, area: Area) -> Result<usize> {
        let dir = self.area_dir(area);
        let listing = fs::read_dir(&dir).map_err(|source| Error::Prune {
            path: dir.clone(),
            source,
        })?;
        let unfinished = listing
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().starts_with(TMP_PREFIX));
        if !unfinished {
            return Ok(0);
        }
        // Exclusive: an entry is created and locked under the shared lock, so none is seen between the two.
        let _lock = self.lock(LockMode::Exclusive)?;
        Ok(remove_abandoned_in(&dir)?.0)
    }
}

/// Removes the unfinished entries of the area directory `dir` whose writer has exited, under the exclusive store
/// lock the caller holds; returns how many, and their bytes.
fn remove_abandoned_in(dir: &Path) -> Result<(usize, u64)> {
    let mut removed = (0, 0);
    for (name, _) in list_dir(dir)? {
        let path = dir.join(&name);
        if name.starts_with(TMP_PREFIX) && is_abandoned(&path)? {
            removed.1 += tree_size(&path)?;
            remove_tree(&path)?;
            removed.0 += 1;
        }
    }
    Ok(removed)
}

/// Whether a writer's in-progress file or directory has lost its writer (we can lock it).
fn is_abandoned(path: &Path) -> Result<bool> {
    match File::open(path) {
        Ok(file) => try_lock_exclusive(&file).map_err(|source| Error::Prune {
            path: path.to_owned(),
            source,
        }),
        // Its writer finished (renamed or deleted it) since the listing.
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(Error::Prune {
            path: path.to_owned(),
            source,
        }),
    }
}

fn list_dir(dir: &Path) -> Result<Vec<(String, fs::Metadata)>> {
    let entries = fs::read_dir(dir).map_err(|source| Error::Prune {
        path: dir.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Prune {
            path: dir.to_owned(),
            source,
        })?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        match entry.metadata() {
            Ok(meta) => out.push((name, meta)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Prune {
                    path: entry.path(),
                    source,
                });
            }
        }
    }
    Ok(out)
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Prune {
            path: path.to_owned(),
            source,
        }),
    }
}

fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Prune {
            path: path.to_owned(),
            source,
        }),
    }
}

fn sync(dir: &Path) -> Result<()> {
    crate::layout::sync_dir(dir).map_err(|source| Error::Prune {
        path: dir.to_owned(),
        source,
    })
}

/// Apparent size of a directory tree: file and symlink lengths, each inode once.
fn tree_size(root: &Path) -> Result<u64> {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total = 0;
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(Error::Prune { path, source }),
        };
        if meta.is_dir() {
            let entries = fs::read_dir(&path).map_err(|source| Error::Prune {
                path: path.clone(),
                source,
            })?;
            for entry in entries.flatten() {
                pending.push(entry.path());
            }
        } else if seen.insert((meta.dev(), meta.ino())) {
            total += meta.len();
        }
    }
    Ok(total)
}
