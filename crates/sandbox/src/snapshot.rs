//! Root file systems from an image's layers: each layer unpacked once into the store's snapshot area, shared by
//! every image that has it, and stacked as overlayfs lower directories; the step writes into a fresh upper
//! directory, which becomes its layer.
//!
//! A layer's snapshot is the layer alone, in overlayfs's own format: files as the tar has them, and its whiteouts
//! as overlayfs whiteouts (a `.wh.NAME` entry becomes a character device 0/0 named `NAME`, a `.wh..wh..opq` entry
//! the `trusted.overlay.opaque=y` attribute on its directory). That is what lets one unpacked layer serve under any
//! stack of layers: overlayfs applies the deletions at mount time, as Docker's overlay2 driver does.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use hoist_layer::{
    ApplyOptions, Decompressor, Digest, DigestReader, SourceKind, Whiteouts, WriteOptions,
    WriteSummary, apply_layer, write_layer,
};
use hoist_oci::{Area, Image, Store};

use crate::container::RootFs;
use crate::error::{Error, Result};

/// Paths the sandbox creates or mounts over in every container, left out of a step's layer (as BuildKit does):
/// mount points, and the generated `/etc` files.
pub const EXCLUDED_FROM_DIFF: &[&str] = &[
    "proc",
    "sys",
    "dev",
    "etc/hosts",
    "etc/resolv.conf",
    "etc/hostname",
];

/// The snapshot-area key of the unpacked layer with this diffID. Layers unpacked without root keep their opaque
/// markers in `user.overlay.opaque` (what overlayfs reads in a user namespace), so they get keys of their own.
pub fn layer_key(diff_id: &Digest) -> String {
    format!("{}-{}", flavour(), diff_id.to_string().replace(':', "-"))
}

/// The snapshot-area key of a directory of changes a step kept ([`Snapshot::keep_upper`]) under a name the caller
/// chose (the engine: the step's cache key and a run of it). Flavoured like [`layer_key`]: its opaque markers are the ones
/// overlayfs writes for this user.
pub fn kept_key(name: &str) -> String {
    format!("{}-kept-{name}", flavour())
}

/// The directory of a kept entry ([`kept_key`]) that holds the changes: the entry's top is the store's (it may keep
/// bookkeeping files there), so the layer's root is one level down.
pub fn kept_dir(entry: &Path) -> PathBuf {
    entry.join("diff")
}

fn flavour() -> &'static str {
    if rustix::process::geteuid().is_root() {
        "overlay"
    } else {
        "overlay-user"
    }
}

/// Whether a snapshot's scratch directory (its overlay upper) may live under `dir`, so that
/// [`Snapshot::keep_upper`] can move the upper directory into an entry there: `dir` is on a local file system known
/// to hold overlay upper directories (trusted xattrs, `d_type`, whiteouts). Elsewhere (overlayfs itself, which
/// refuses to be an upper layer when hoist runs in a container; network or FUSE file systems) the caller keeps its
/// scratch space where it was and writes tars.
pub fn can_hold_upper(dir: &Path) -> bool {
    const UPPER_CAPABLE: [i64; 6] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0xF2F5_2010, // f2fs
        0x2FC1_2FC1, // zfs
    ];
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    rustix::fs::statfs(dir).is_ok_and(|fs| UPPER_CAPABLE.contains(&(fs.f_type as i64)))
}

/// The xattr overlayfs reads for opaque directories: `trusted.` as root, `user.` in a user namespace.
fn opaque_xattr() -> &'static str {
    if rustix::process::geteuid().is_root() {
        "trusted.overlay.opaque"
    } else {
        "user.overlay.opaque"
    }
}

/// Unpacks every layer of `image` that is not unpacked yet and returns the layer directories, bottom first. Each
/// directory is protected from `hoist prune` while `store` lives.
pub fn unpack_layers(store: &Store, image: &Image) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::with_capacity(image.layers.len());
    for layer in &image.layers {
        let digest = hoist_oci::digest_from_oci(layer.descriptor.digest()).map_err(|source| {
            Error::LayerDigest {
                digest: layer.descriptor.digest().to_string(),
                source,
            }
        })?;
        let info = match &layer.info {
            Some(info) => info.clone(),
            None => store.ensure_layer_info(&digest)?,
        };
        let key = layer_key(&info.diff_id);
        if let Some(dir) = store.use_entry(Area::Snapshots, &key)? {
            dirs.push(dir);
            continue;
        }
        // A layer whose tar was written from the directory a build step left: that directory is the layer
        // unpacked (when it is this user's flavour and was not pruned).
        if let Some(kept) = store.layer_unpacked(&digest)?
            && kept.starts_with(&kept_key(""))
            && let Some(entry) = store.use_entry(Area::Snapshots, &kept)?
        {
            dirs.push(kept_dir(&entry));
            continue;
        }
        let entry = store.begin_entry(Area::Snapshots, &key)?;
        let blob = store.open_blob(&digest)?;
        // Applied alone onto an empty directory, the layer's whiteouts have nothing to delete: they are
        // recorded in overlayfs's format instead, in the same pass.
        let options = ApplyOptions::new().with_whiteouts(Whiteouts::Overlay {
            opaque_xattr: opaque_xattr(),
        });
        let read_error = |source| Error::ReadLayer { digest, source };
        let decompressed = Decompressor::new(blob).map_err(read_error)?;
        if store.layer_diff_id_verified(&digest)? {
            apply_layer(decompressed, entry.path(), &options)
                .map_err(|source| Error::Unpack { digest, source })?;
        } else {
            // A pulled layer whose diffID was only announced by its config: the tar is hashed as it is applied
            // and the snapshot kept only if it matches (dropping the entry removes it).
            let mut reader = DigestReader::new(decompressed);
            apply_layer(&mut reader, entry.path(), &options)
                .map_err(|source| Error::Unpack { digest, source })?;
            // The end-of-archive blocks and any padding after them are part of the diffID.
            io::copy(&mut reader, &mut io::sink()).map_err(read_error)?;
            let (_, tar) = reader.finish().map_err(read_error)?;
            if tar.digest != info.diff_id {
                return Err(Error::DiffIdMismatch {
                    digest,
                    expected: info.diff_id,
                    actual: tar.digest,
                });
            }
            store.mark_diff_id_verified(&digest, &info)?;
        }
        dirs.push(entry.commit()?);
    }
    Ok(dirs)
}

fn prepare_error(action: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Prepare {
        action,
        path: path.to_owned(),
        source,
    }
}

/// How a [`Snapshot`] gives the container a writable root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// overlayfs over the layer directories: nothing is copied, the upper directory is the diff.
    Overlay,
    /// A plain copy of the merged layers, compared with them afterwards (see the `copy` module): for kernels or
    /// file systems without overlayfs.
    Copy,
}

impl SnapshotKind {
    /// Overlay when the kernel offers it, else copy.
    pub fn detect() -> SnapshotKind {
        if overlay_supported() {
            Self::Overlay
        } else {
            Self::Copy
        }
    }
}

/// A writable root file system over an image's layers: the read-only layer directories plus, in a scratch
/// directory deleted when the snapshot is dropped, an overlay upper and work directory, or (copy kind) the copied
/// root.
#[derive(Debug)]
pub struct Snapshot {
    kind: SnapshotKind,
    lower: Vec<PathBuf>,
    /// Holds an exclusive `flock` on the scratch directory while the snapshot lives, so that
    /// [`Snapshot::remove_stale`] in another process knows it is in use.
    _lock: File,
    scratch: tempfile::TempDir,
}

impl Snapshot {
    /// A snapshot over `image`, unpacking its layers into the store as needed; its scratch directory goes under
    /// `scratch_parent` (a local file system that supports overlayfs upper directories). Overlay if available.
    pub fn new(store: &Store, image: &Image, scratch_parent: &Path) -> Result<Snapshot> {
        let lower = unpack_layers(store, image)?;
        Self::from_layers(lower, scratch_parent, SnapshotKind::detect())
    }

    /// A snapshot of the given kind over already-unpacked layer directories (bottom first).
    pub fn from_layers(
        lower: Vec<PathBuf>,
        scratch_parent: &Path,
        kind: SnapshotKind,
    ) -> Result<Snapshot> {
        fs::create_dir_all(scratch_parent)
            .map_err(|e| prepare_error("create", scratch_parent, e))?;
        let scratch = tempfile::Builder::new()
            .prefix("snapshot-")
            .tempdir_in(scratch_parent)
            .map_err(|e| prepare_error("create a directory in", scratch_parent, e))?;
        let lock = File::open(scratch.path())
            .and_then(|dir| {
                rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
                Ok(dir)
            })
            .map_err(|e| prepare_error("lock", scratch.path(), e))?;
        let mut snapshot = Snapshot {
            kind,
            lower,
            _lock: lock,
            scratch,
        };
        for dir in ["upper", "work", "rootfs"] {
            let path = snapshot.scratch.path().join(dir);
            fs::create_dir(&path).map_err(|e| prepare_error("create", &path, e))?;
        }
        if snapshot.lower.is_empty() {
            // overlayfs needs at least one lower directory.
            let path = snapshot.scratch.path().join("empty");
            fs::create_dir(&path).map_err(|e| prepare_error("create", &path, e))?;
            snapshot.lower.push(path);
        }
        if kind == SnapshotKind::Copy {
            crate::copy::materialize(&snapshot.lower, &snapshot.copied_root())?;
        }
        Ok(snapshot)
    }

    /// Removes the scratch directories under `scratch_parent` that no live snapshot holds (and that are at least a
    /// minute old): those left behind by a process that was killed (`SIGKILL` gives it no chance to clean up).
    /// Returns how many were removed.
    pub fn remove_stale(scratch_parent: &Path) -> usize {
        let Ok(entries) = fs::read_dir(scratch_parent) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            // A directory younger than a minute may be one another process has just created and not locked yet.
            let settled = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age.as_secs() >= 60));
            let is_scratch = entry.file_name().to_string_lossy().starts_with("snapshot-")
                && entry.file_type().is_ok_and(|kind| kind.is_dir())
                && settled;
            if !is_scratch {
                continue;
            }
            let unused = File::open(&path).is_ok_and(|dir| {
                rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                    .is_ok()
            });
            if unused {
                allow_removal(&path);
                if fs::remove_dir_all(&path).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Which kind this snapshot is.
    pub fn kind(&self) -> SnapshotKind {
        self.kind
    }

    /// The upper directory: for an overlay snapshot, the changes made so far; for a copy snapshot, filled by
    /// [`write_diff`](Snapshot::write_diff).
    pub fn upper(&self) -> PathBuf {
        self.scratch.path().join("upper")
    }

    fn copied_root(&self) -> PathBuf {
        self.scratch.path().join("rootfs")
    }

    /// The root file system to give a [`Container`](crate::Container).
    pub fn rootfs(&self) -> RootFs {
        match self.kind {
            SnapshotKind::Overlay => RootFs::Overlay {
                lower: self.lower.clone(),
                upper: self.upper(),
                work: self.scratch.path().join("work"),
                // The scratch directory goes when the snapshot is dropped (or, after a crash, with
                // `remove_stale`), and the diff is read through the page cache: nothing needs the upper
                // directory on disk, so unmounting need not sync the file system.
                volatile: true,
            },
            SnapshotKind::Copy => RootFs::Directory(self.copied_root()),
        }
    }

    /// Reads a file as the container would see it (top layer first; a whiteout hides it), without mounting:
    /// for `/etc/passwd` and `/etc/group` when resolving `USER`. `None` if absent.
    pub fn read_file(&self, path: &str) -> Option<Vec<u8>> {
        let relative = Path::new(path.trim_start_matches('/'));
        let found = match self.kind {
            SnapshotKind::Copy => Some(self.copied_root().join(relative)),
            SnapshotKind::Overlay => {
                let mut layers = self.lower.clone();
                layers.push(self.upper());
                crate::copy::lookup(&layers, relative)
            }
        };
        found.and_then(|path| fs::read(path).ok())
    }

    /// Writes the changes as a layer tar to `out` (whiteouts and opaque directories as `.wh.` entries), leaving out
    /// [`EXCLUDED_FROM_DIFF`]. Wrap `out` in a `LayerBlobWriter` to compress and digest in the same pass. For a
    /// copy snapshot the changes are first found by comparison, into [`upper`](Snapshot::upper) (once).
    pub fn write_diff<W: Write + Send>(
        &self,
        out: W,
        options: WriteOptions,
    ) -> Result<WriteSummary> {
        let upper = self.upper();
        self.diff_copied_root()?;
        let options = EXCLUDED_FROM_DIFF.iter().fold(
            options.with_source_kind(SourceKind::OverlayUpper),
            |o, path| o.with_exclude(path),
        );
        write_layer(&upper, out, &options).map_err(|source| Error::Diff { upper, source })
    }

    /// For a copy snapshot, finds the changes by comparison, into [`upper`](Snapshot::upper) (once).
    fn diff_copied_root(&self) -> Result<()> {
        let upper = self.upper();
        if self.kind == SnapshotKind::Copy {
            let empty = fs::read_dir(&upper)
                .map(|mut entries| entries.next().is_none())
                .unwrap_or(false);
            if empty {
                crate::copy::diff(&self.lower, &self.copied_root(), &upper)?;
            }
        }
        Ok(())
    }

    /// Moves the changes to `dest` (a directory that must not exist yet, on the file system of this snapshot's
    /// scratch directory) in overlayfs's format, instead of writing them as a tar: the directory can serve as a
    /// lower layer at once, and the tar is written from it only when something needs it. The `exclude`d paths
    /// (and [`EXCLUDED_FROM_DIFF`]) are deleted first and the times of the directories that held them put back, so
    /// that [`write_layer`] over `dest` with [`SourceKind::OverlayUpper`] later gives, byte for byte, the tar that
    /// [`write_diff`](Snapshot::write_diff) with the same exclusions gives now. Returns how many entries `dest`
    /// holds at its top: 0 means nothing changed.
    pub fn keep_upper(&self, dest: &Path, exclude: &[&str]) -> Result<u64> {
        let upper = self.upper();
        let keep_error = |source| Error::Keep {
            upper: upper.clone(),
            dest: dest.to_owned(),
            source,
        };
        self.diff_copied_root()?;
        // Deepest first: a directory that only held excluded paths may be excluded itself.
        let mut excluded: Vec<&str> = exclude.iter().chain(EXCLUDED_FROM_DIFF).copied().collect();
        excluded.sort_by_key(|path| std::cmp::Reverse(path.matches('/').count()));
        for path in excluded {
            remove_excluded(&upper, path).map_err(keep_error)?;
        }
        fs::rename(&upper, dest).map_err(keep_error)?;
        let entries = fs::read_dir(dest).map_err(keep_error)?.count();
        Ok(entries as u64)
    }
}

/// Deletes `rel` from `upper` as the tar writer's exclusion leaves it out: only where every parent is a real
/// directory (the writer never follows a symlink, and neither may this), never through `..`. The parent's times
/// are put back afterwards, as the writer would have recorded them.
fn remove_excluded(upper: &Path, rel: &str) -> io::Result<()> {
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    let Some((name, parents)) = parts.split_last() else {
        return Ok(());
    };
    if parts.contains(&"..") {
        return Ok(());
    }
    let mut parent = upper.to_path_buf();
    for part in parents {
        parent.push(part);
        match fs::symlink_metadata(&parent) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        }
    }
    let path = parent.join(name);
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    let parent_dir = File::open(&parent)?;
    let parent_meta = parent_dir.metadata()?;
    if meta.is_dir() {
        fs::remove_dir_all(&path)?;
    } else {
        fs::remove_file(&path)?;
    }
    parent_dir.set_times(
        fs::FileTimes::new()
            .set_accessed(parent_meta.accessed()?)
            .set_modified(parent_meta.modified()?),
    )
}

impl Drop for Snapshot {
    /// Without root, directories the scratch directory's owner cannot read (overlayfs's `work/work` is mode 000, a
    /// step may `chmod 000` its own directories) would stop the removal: give them back their owner's permissions
    /// first. Root needs no permissions and skips this.
    fn drop(&mut self) {
        if !rustix::process::geteuid().is_root() {
            allow_removal(self.scratch.path());
        }
    }
}

fn allow_removal(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                allow_removal(&entry.path());
            }
        }
    }
}

/// Whether this kernel offers overlayfs (listed in `/proc/filesystems`, or loadable).
pub fn overlay_supported() -> bool {
    File::open("/proc/filesystems")
        .and_then(io::read_to_string)
        .map(|text| {
            text.lines()
                .any(|line| line.split_whitespace().last() == Some("overlay"))
        })
        .unwrap_or(false)
        || Path::new("/sys/module/overlay").exists()
}
