//! Directory → deterministic layer tar.
//!
//! The tree is walked through directory descriptors (`openat` with `O_NOFOLLOW`), never
//! following symlinks. Entries are sorted by name bytes within each directory and emitted
//! depth-first (a directory, then its contents), the order Go's `filepath.Walk` gives Docker
//! and BuildKit. The same tree always gives the same bytes: nothing depends on readdir order,
//! inode numbers, the clock, the host's user names or the build machine.

use std::collections::{BTreeSet, HashMap};
use std::ffi::{CStr, OsStr};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};

use rustix::fs::Stat;

use crate::sys::{self, FileType, XattrTarget};
use crate::tarstream::write::{ChunkSender, TarOutput};
use crate::tarstream::{EntryHeader, EntryKind, KeyValues};

mod entries;

pub use entries::{
    EntriesError, EntryContent, LayerEntries, LayerEntry, is_carried_xattr, read_xattrs,
    write_entries,
};

/// Prefix of a whiteout entry: `.wh.<name>` deletes `<name>` from the layers below.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the opaque-directory marker: `<dir>/.wh..wh..opq` hides everything below `<dir>`
/// from the layers below.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// What the source directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceKind {
    /// A plain directory: every entry is content (a full root file system or a `COPY` result).
    #[default]
    Directory,
    /// An overlayfs upper directory: a character device 0/0 is a whiteout (written as
    /// `.wh.<name>`) and a directory with the xattr `trusted.overlay.opaque=y` (or
    /// `user.overlay.opaque=y` for unprivileged mounts) is opaque (written with a
    /// `.wh..wh..opq` entry after it). overlayfs's own `*.overlay.*` xattrs are not written.
    ///
    /// The mount must not use `metacopy=on` or `redirect_dir=on` (both off by default, and off
    /// in BuildKit's snapshotter): with them the upper directory no longer holds whole files and
    /// real paths, and no per-directory reading can recover the change set.
    OverlayUpper,
}

/// Options for [`write_layer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    source: SourceKind,
    source_date_epoch: Option<i64>,
    excludes: BTreeSet<Vec<u8>>,
}

impl WriteOptions {
    /// Options for a plain directory, no timestamp clamping, nothing excluded.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// What the source directory holds.
    #[must_use]
    pub fn with_source_kind(mut self, source: SourceKind) -> Self {
        self.source = source;
        self
    }

    /// Clamps every timestamp to at most `epoch` (seconds since 1970), as BuildKit does with
    /// `SOURCE_DATE_EPOCH`. The library never reads the environment; the caller passes it.
    #[must_use]
    pub fn with_source_date_epoch(mut self, epoch: i64) -> Self {
        self.source_date_epoch = Some(epoch);
        self
    }

    /// Leaves `path` (relative to the source root; a leading `/` is ignored) and, for a
    /// directory, everything below it out of the layer: e.g. `etc/hosts` mount points.
    #[must_use]
    pub fn with_exclude(mut self, path: impl AsRef<Path>) -> Self {
        let bytes = path.as_ref().as_os_str().as_bytes();
        let normalized: Vec<&[u8]> = bytes
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        self.excludes.insert(normalized.join(&b'/'));
        self
    }

    fn clamp_time(&self, mtime: i64) -> i64 {
        let mtime = mtime.max(0);
        self.source_date_epoch
            .map_or(mtime, |epoch| mtime.min(epoch.max(0)))
    }
}

/// Counts from [`write_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteSummary {
    /// Entries written (files, directories, links, devices, whiteouts).
    pub entries: u64,
    /// Of those, whiteouts and opaque markers.
    pub whiteouts: u64,
    /// Size of the tar stream in bytes.
    pub tar_size: u64,
}

/// Why a layer could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The source root could not be opened.
    #[error("failed to open source directory {path}")]
    OpenRoot {
        /// The source root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A directory could not be listed.
    #[error("failed to list directory {path}")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `lstat` failed.
    #[error("failed to stat {path}")]
    Stat {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file or directory could not be opened.
    #[error("failed to open {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading a file's data failed.
    #[error("failed to read {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A symlink could not be read.
    #[error("failed to read symlink {path}")]
    ReadLink {
        /// The symlink.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Extended attributes could not be read.
    #[error("failed to read extended attributes of {path}")]
    ReadXattrs {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file shrank while it was being archived.
    #[error("{path} changed while it was archived: {expected} bytes at stat, {actual} readable")]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// Size reported by `lstat`.
        expected: u64,
        /// Bytes that could be read.
        actual: u64,
    },
    /// A file entry's source is not a regular file (it was replaced since it was chosen).
    #[error("{path} is not a regular file")]
    NotARegularFile {
        /// The source.
        path: PathBuf,
    },
    /// Writing the tar stream to the output failed.
    #[error("failed to write the layer tar stream")]
    Write(#[source] io::Error),
}

/// Writes the tree under `root` as a layer tar stream to `out`, returning counts.
///
/// To compress and digest in the same pass, pass a [`LayerBlobWriter`](crate::LayerBlobWriter)
/// (by `&mut`) as `out`. `out` is written from a helper thread, in chunks of 256 KiB, while this
/// thread walks the tree and reads files. The root directory itself is not an entry; paths have no leading `./`.
/// Sockets are skipped, as in Docker and BuildKit. Hard links (any non-directory with more than
/// one link, by device and inode) are written once as content and then as link entries to the
/// first path in walk order.
///
/// # Format
///
/// Entries are sorted by name bytes within each directory, depth-first. Headers are ustar, with
/// a PAX header before an entry only when needed: `path`/`linkpath` over 100 bytes, `uid`/`gid`
/// over 2 097 151, `size` over 8 GiB, and xattrs as `SCHILY.xattr.<name>` (all except
/// `security.selinux`, the build host's label). Like BuildKit's differ: no `./` prefix,
/// directories end in `/`, mode holds only permission bits, mtime in whole seconds, no
/// atime/ctime. Unlike it, uname/gname are empty (BuildKit looks the ids up in the build
/// host's `/etc/passwd`, typically writing `root`): the layer must not depend on the machine,
/// and every consumer uses the numeric ids.
pub fn write_layer<W: Write + Send>(
    root: &Path,
    out: W,
    options: &WriteOptions,
) -> Result<WriteSummary, WriteError> {
    let root_fd = sys::open_dir(root).map_err(|source| WriteError::OpenRoot {
        path: root.to_owned(),
        source,
    })?;
    stream_layer(out, |tar| {
        let mut walker = Walker {
            root,
            options,
            out: tar,
            links: HashMap::new(),
            summary: WriteSummary::default(),
        };
        let mut rel = Vec::new();
        walker.walk_dir(root_fd.as_fd(), &mut rel)?;
        Ok(walker.summary)
    })
}

/// Runs `produce` with a tar stream whose chunks `out` receives on a helper thread, so that
/// reading files (here) and hashing and compressing them (there) overlap, as `tar -c | gzip`
/// gets from its pipe; then ends the archive. Returns `produce`'s counts with the stream size.
fn stream_layer<W: Write + Send>(
    out: W,
    produce: impl FnOnce(&mut TarOutput<ChunkSender>) -> Result<WriteSummary, WriteError>,
) -> Result<WriteSummary, WriteError> {
    std::thread::scope(|scope| {
        let (chunks, received) = sync_channel(OUTPUT_QUEUE);
        let (recycle, recycled) = channel();
        let consumer = scope.spawn(move || write_chunks(out, &received, &recycle));
        let mut tar = TarOutput::new(ChunkSender { chunks, recycled });
        // Both arms drop the sink, closing the channel: the consumer finishes and flushes.
        let produced = match produce(&mut tar) {
            Ok(mut summary) => {
                summary.tar_size = tar.position() + 2 * crate::tarstream::BLOCK as u64;
                tar.finish().map_err(WriteError::Write).map(|_| summary)
            }
            Err(error) => {
                drop(tar);
                Err(error)
            }
        };
        let written = consumer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match (produced, written) {
            // An output error is the real cause; the producer then only saw a closed channel.
            (_, Err(source)) => Err(WriteError::Write(source)),
            (produced, Ok(())) => produced,
        }
    })
}

/// Chunks of tar stream queued between the walking and the writing thread.
const OUTPUT_QUEUE: usize = 4;

fn write_chunks<W: Write>(
    mut out: W,
    chunks: &Receiver<Vec<u8>>,
    recycle: &Sender<Vec<u8>>,
) -> io::Result<()> {
    for chunk in chunks {
        out.write_all(&chunk)?;
        // The walker may be done; then the buffer is simply dropped.
        let _ = recycle.send(chunk);
    }
    out.flush()
}

struct Walker<'a> {
    root: &'a Path,
    options: &'a WriteOptions,
    out: &'a mut TarOutput<ChunkSender>,
    /// (device, inode) → path of the first entry written for a multiply-linked file.
    links: HashMap<(u64, u64), Vec<u8>>,
    summary: WriteSummary,
}

impl Walker<'_> {
    fn host_path(&self, rel: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel))
    }

    fn walk_dir(&mut self, dir: BorrowedFd<'_>, rel: &mut Vec<u8>) -> Result<(), WriteError> {
        let mut names = sys::read_dir_names(dir).map_err(|source| WriteError::ReadDir {
            path: self.host_path(rel),
            source,
        })?;
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let parent_len = rel.len();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name.as_bytes());
            if !self.options.excludes.contains(rel.as_slice()) {
                self.visit(dir, &name, rel)?;
            }
            rel.truncate(parent_len);
        }
        Ok(())
    }

    fn header_from_stat(&self, rel: &[u8], kind: EntryKind, stat: &Stat) -> EntryHeader {
        let mut header = EntryHeader::new(rel.to_vec(), kind);
        header.mode = stat.st_mode & 0o7777;
        header.uid = stat.st_uid.into();
        header.gid = stat.st_gid.into();
        header.mtime = self.options.clamp_time(stat.st_mtime);
        header
    }

    fn visit(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        rel: &mut Vec<u8>,
    ) -> Result<(), WriteError> {
        let stat = sys::lstat_at(parent, name).map_err(|source| WriteError::Stat {
            path: self.host_path(rel),
            source,
        })?;
        let overlay = self.options.source == SourceKind::OverlayUpper;
        let file_type = sys::file_type(&stat);
        if overlay && file_type == FileType::CharacterDevice && stat.st_rdev == 0 {
            return self.write_whiteout(rel, &stat);
        }
        let kind = match file_type {
            FileType::Directory => return self.visit_dir(parent, name, rel, &stat),
            FileType::RegularFile => EntryKind::Regular,
            FileType::Symlink => EntryKind::Symlink,
            FileType::CharacterDevice => EntryKind::CharDevice,
            FileType::BlockDevice => EntryKind::BlockDevice,
            FileType::Fifo => EntryKind::Fifo,
            // Sockets belong to a running process; Docker and BuildKit skip them too.
            FileType::Socket | FileType::Unknown => return Ok(()),
        };
        if stat.st_nlink > 1 {
            let key = (stat.st_dev, stat.st_ino);
            if let Some(first) = self.links.get(&key) {
                let mut header = self.header_from_stat(rel, EntryKind::HardLink, &stat);
                header.link = first.clone();
                return self.write_header(&header);
            }
            self.links.insert(key, rel.clone());
        }
        let mut header = self.header_from_stat(rel, kind, &stat);
        match kind {
            EntryKind::Regular => {
                let mut file =
                    sys::open_file_at(parent, name).map_err(|source| WriteError::Open {
                        path: self.host_path(rel),
                        source,
                    })?;
                header.xattrs = self.xattrs(XattrTarget::Fd(file.as_fd()), rel, |_, _| {})?;
                header.size = stat.st_size.try_into().unwrap_or(0);
                self.write_header(&header)?;
                self.copy_data(&mut file, header.size, rel)
            }
            EntryKind::Symlink => {
                header.link =
                    sys::read_link_at(parent, name).map_err(|source| WriteError::ReadLink {
                        path: self.host_path(rel),
                        source,
                    })?;
                header.xattrs = self.xattrs(XattrTarget::At(parent, name), rel, |_, _| {})?;
                self.write_header(&header)
            }
            _ => {
                if matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
                    header.dev_major = rustix::fs::major(stat.st_rdev);
                    header.dev_minor = rustix::fs::minor(stat.st_rdev);
                }
                header.xattrs = self.xattrs(XattrTarget::At(parent, name), rel, |_, _| {})?;
                self.write_header(&header)
            }
        }
    }

    fn visit_dir(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        rel: &mut Vec<u8>,
        stat: &Stat,
    ) -> Result<(), WriteError> {
        let dir: OwnedFd = sys::open_dir_at(parent, name).map_err(|source| WriteError::Open {
            path: self.host_path(rel),
            source,
        })?;
        let mut header = self.header_from_stat(rel, EntryKind::Directory, stat);
        let mut opaque = false;
        header.xattrs = self.xattrs(XattrTarget::Fd(dir.as_fd()), rel, |key, value| {
            opaque |= (key == b"trusted.overlay.opaque" || key == b"user.overlay.opaque")
                && value == b"y";
        })?;
        let opaque = opaque && self.options.source == SourceKind::OverlayUpper;
        self.write_header(&header)?;
        if opaque {
            // Docker's overlay differ writes the marker right after the directory, as a regular
            // file with the directory's owner and permissions.
            let mut marker_path = rel.clone();
            marker_path.push(b'/');
            marker_path.extend_from_slice(OPAQUE_WHITEOUT.as_bytes());
            let mut marker = self.header_from_stat(&marker_path, EntryKind::Regular, stat);
            marker.mode &= 0o777;
            self.summary.whiteouts += 1;
            self.write_header(&marker)?;
        }
        self.walk_dir(dir.as_fd(), rel)
    }

    fn write_whiteout(&mut self, rel: &[u8], stat: &Stat) -> Result<(), WriteError> {
        let split = rel.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        let mut path = rel[..split].to_vec();
        path.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
        path.extend_from_slice(&rel[split..]);
        // As Docker's overlay differ: the device node's owner and time, mode 0, no data.
        let mut header = self.header_from_stat(&path, EntryKind::Regular, stat);
        header.mode = 0;
        self.summary.whiteouts += 1;
        self.write_header(&header)
    }

    /// The xattrs to write for `target`. `inspect` sees every xattr first, including those left
    /// out (overlayfs's own).
    fn xattrs(
        &self,
        target: XattrTarget<'_>,
        rel: &[u8],
        mut inspect: impl FnMut(&[u8], &[u8]),
    ) -> Result<KeyValues, WriteError> {
        let mut xattrs = sys::read_xattrs(target).map_err(|source| WriteError::ReadXattrs {
            path: self.host_path(rel),
            source,
        })?;
        let overlay = self.options.source == SourceKind::OverlayUpper;
        xattrs.retain(|(key, value)| {
            inspect(key, value);
            // The SELinux label belongs to the build host, not to the image.
            key != b"security.selinux" && !(overlay && is_overlay_xattr(key))
        });
        Ok(xattrs)
    }

    fn write_header(&mut self, header: &EntryHeader) -> Result<(), WriteError> {
        self.summary.entries += 1;
        self.out.write_header(header).map_err(WriteError::Write)
    }

    fn copy_data(
        &mut self,
        file: &mut std::fs::File,
        size: u64,
        rel: &[u8],
    ) -> Result<(), WriteError> {
        let copied = self
            .out
            .copy_from(file, size)
            .map_err(|error| match error {
                crate::tarstream::write::CopyError::Read(source) => WriteError::ReadFile {
                    path: self.host_path(rel),
                    source,
                },
                crate::tarstream::write::CopyError::Write(source) => WriteError::Write(source),
            })?;
        if copied < size {
            return Err(WriteError::FileChanged {
                path: self.host_path(rel),
                expected: size,
                actual: copied,
            });
        }
        self.out.pad(size).map_err(WriteError::Write)
    }
}

/// overlayfs's own attributes (`trusted.overlay.*`, or `user.overlay.*` when mounted with
/// `userxattr`): whiteout and opaque markers, origins, redirects; never part of a file.
fn is_overlay_xattr(key: &[u8]) -> bool {
    key.starts_with(b"trusted.overlay.") || key.starts_with(b"user.overlay.")
}
