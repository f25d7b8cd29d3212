//! A layer described in memory → the same deterministic tar [`write_layer`](super::write_layer)
//! writes for a directory holding those entries, without the directory.
//!
//! A `COPY` knows every path, mode and owner of its layer before it writes a byte; copying the
//! files into a staging directory only to walk it again costs a write, a read and an unlink per
//! file. [`LayerEntries`] is that staging directory as a map: destination path → metadata plus
//! where the data comes from (a source file read at tar time, bytes, a symlink target).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{WriteError, WriteOptions, WriteSummary, stream_layer};
use crate::sys::{self, XattrTarget};
use crate::tarstream::write::{ChunkSender, TarOutput};
use crate::tarstream::{EntryHeader, EntryKind, KeyValues};

/// What an entry of a [`LayerEntries`] is, and where a file's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryContent {
    /// A directory.
    Directory,
    /// A regular file whose data is read from `source` (a host path) when the tar is written.
    /// Its size is the size `source` has then: a file that shrinks while it is read fails the
    /// write ([`WriteError::FileChanged`]), one that grows is cut at the size it had when opened,
    /// so the stream is always well-formed.
    File {
        /// The host file holding the data.
        source: PathBuf,
    },
    /// A regular file holding these bytes.
    Bytes(Vec<u8>),
    /// A symbolic link to `target` (stored as is, never followed).
    Symlink {
        /// The link's target.
        target: PathBuf,
    },
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
}

/// One entry of a [`LayerEntries`]: content plus the metadata its tar header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// What it is.
    pub content: EntryContent,
    /// Permission bits with setuid, setgid and sticky (`0o7777`; the rest is ignored).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since 1970 (clamped as [`WriteOptions`] says).
    pub mtime: i64,
    /// Extended attributes, (name, value); written sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Entries (files, devices, symlinks) sharing a key are one inode with several names, as
    /// (device, inode) identifies one on a host: the first in tar order is written in full,
    /// the others as hard links to it, as [`write_layer`](super::write_layer) does.
    pub hard_link_key: Option<(u64, u64)>,
}

impl LayerEntry {
    /// An entry owned by root with mode 0, time 0, no xattrs and no hard links.
    #[must_use]
    pub fn new(content: EntryContent) -> Self {
        Self {
            content,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
            hard_link_key: None,
        }
    }

    /// Whether this is a directory.
    #[must_use]
    pub fn is_dir(&self) -> bool {
        self.content == EntryContent::Directory
    }
}

/// Why an entry could not be added to a [`LayerEntries`].
#[derive(Debug, thiserror::Error)]
pub enum EntriesError {
    /// The path is empty (the root), or goes up with `..`.
    #[error("invalid layer entry path {}", .path.display())]
    InvalidPath {
        /// The path given.
        path: PathBuf,
    },
    /// A parent of the path is an entry that is not a directory.
    #[error("cannot add /{}: /{} is not a directory", .path.display(), .parent.display())]
    NotADirectory {
        /// The path given (normalized).
        path: PathBuf,
        /// The parent that is not a directory.
        parent: PathBuf,
    },
}

/// A layer's entries by path, in the order a layer tar lists them: sorted by name bytes within
/// each directory, depth-first (a directory, then its contents), as a walk of the directory
/// they describe would give.
///
/// Adding an entry at a path that holds one replaces it; a non-directory replacing a directory
/// also removes everything below it. A path is never below a non-directory, so the map always
/// describes a directory tree. Parents are not added implicitly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerEntries {
    entries: BTreeMap<TarOrder, LayerEntry>,
}

impl LayerEntries {
    /// No entries.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries (a layer that changes nothing).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at `path` (relative to the layer root; a leading `/` and `.` components are
    /// ignored).
    #[must_use]
    pub fn get(&self, path: impl AsRef<Path>) -> Option<&LayerEntry> {
        let key = normalize(path.as_ref())?;
        self.entries.get(&TarOrder(key))
    }

    /// Adds `entry` at `path` (relative to the layer root; a leading `/` and `.` components are
    /// ignored), returning the entry it replaced.
    ///
    /// # Errors
    ///
    /// [`EntriesError::InvalidPath`] for the root or a path with `..`,
    /// [`EntriesError::NotADirectory`] when a parent of `path` is a non-directory entry.
    pub fn insert(
        &mut self,
        path: impl AsRef<Path>,
        entry: LayerEntry,
    ) -> Result<Option<LayerEntry>, EntriesError> {
        let path = path.as_ref();
        let key = normalize(path).ok_or_else(|| EntriesError::InvalidPath {
            path: path.to_owned(),
        })?;
        for (i, _) in key.iter().enumerate().filter(|&(_, &b)| b == b'/') {
            if self
                .entries
                .get(&TarOrder(key[..i].to_vec()))
                .is_some_and(|parent| !parent.is_dir())
            {
                return Err(EntriesError::NotADirectory {
                    path: PathBuf::from(OsStr::from_bytes(&key)),
                    parent: PathBuf::from(OsStr::from_bytes(&key[..i])),
                });
            }
        }
        if !entry.is_dir() {
            self.remove_below(&key);
        }
        Ok(self.entries.insert(TarOrder(key), entry))
    }

    /// Every entry with its path, in tar order.
    pub fn iter(&self) -> impl Iterator<Item = (&Path, &LayerEntry)> {
        self.entries
            .iter()
            .map(|(key, entry)| (Path::new(OsStr::from_bytes(&key.0)), entry))
    }

    /// Removes every entry strictly below `dir`.
    fn remove_below(&mut self, dir: &[u8]) {
        let mut start = dir.to_vec();
        start.push(b'/');
        let below: Vec<TarOrder> = self
            .entries
            .range(TarOrder(start.clone())..)
            .map(|(key, _)| key)
            .take_while(|key| key.0.starts_with(&start))
            .cloned()
            .collect();
        for key in below {
            self.entries.remove(&key);
        }
    }
}

/// `path` as layer tar paths are written: no leading `/` or `./`, no empty or `.` components.
/// `None` for the root or a path with `..`.
fn normalize(path: &Path) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(path.as_os_str().len());
    for part in path.as_os_str().as_bytes().split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return None,
            name => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(name);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A normalized path ordered as a depth-first walk with sorted names lists it: component by
/// component, which is byte order with `/` below every byte a name can hold (names hold no
/// NUL), so `a` < `a/b` < `a.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TarOrder(Vec<u8>);

impl Ord for TarOrder {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let rank = |b: &u8| if *b == b'/' { 0 } else { *b };
        self.0.iter().map(rank).cmp(other.0.iter().map(rank))
    }
}

impl PartialOrd for TarOrder {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Writes `entries` as a layer tar stream to `out`, in their order, returning counts.
///
/// The headers are the ones [`write_layer`](super::write_layer) writes for a directory holding
/// the same entries (see its format notes): the same layer bytes, whichever way it was made.
/// [`WriteOptions`]' timestamp clamping and excludes apply; its source kind does not (whiteouts
/// would be entries of their own). As with `write_layer`, `out` is written from a helper thread
/// while this one reads the source files.
///
/// # Errors
///
/// A source file that cannot be opened or read, is not a regular file, or shrinks while it is
/// read; a failing `out`.
pub fn write_entries<W: Write + Send>(
    entries: &LayerEntries,
    out: W,
    options: &WriteOptions,
) -> Result<WriteSummary, WriteError> {
    stream_layer(out, |tar| {
        let mut writer = EntryWriter {
            options,
            out: tar,
            links: HashMap::new(),
            summary: WriteSummary::default(),
        };
        for (key, entry) in &entries.entries {
            if !writer.excluded(&key.0) {
                writer.write(&key.0, entry)?;
            }
        }
        Ok(writer.summary)
    })
}

struct EntryWriter<'a> {
    options: &'a WriteOptions,
    out: &'a mut TarOutput<ChunkSender>,
    /// Hard link key → path of the entry written in full.
    links: HashMap<(u64, u64), Vec<u8>>,
    summary: WriteSummary,
}

impl EntryWriter<'_> {
    /// Whether the path or one of its parents is excluded.
    fn excluded(&self, path: &[u8]) -> bool {
        if self.options.excludes.is_empty() {
            return false;
        }
        let parents = path
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .map(|(i, _)| &path[..i]);
        parents
            .chain(std::iter::once(path))
            .any(|prefix| self.options.excludes.contains(prefix))
    }

    fn header(&self, path: &[u8], kind: EntryKind, entry: &LayerEntry) -> EntryHeader {
        let mut header = EntryHeader::new(path.to_vec(), kind);
        header.mode = entry.mode & 0o7777;
        header.uid = entry.uid.into();
        header.gid = entry.gid.into();
        header.mtime = self.options.clamp_time(entry.mtime);
        header
    }

    fn write(&mut self, path: &[u8], entry: &LayerEntry) -> Result<(), WriteError> {
        if let Some(key) = entry.hard_link_key
            && !entry.is_dir()
        {
            if let Some(first) = self.links.get(&key) {
                let mut header = self.header(path, EntryKind::HardLink, entry);
                header.link = first.clone();
                return self.write_header(&header);
            }
            self.links.insert(key, path.to_vec());
        }
        let kind = match &entry.content {
            EntryContent::Directory => EntryKind::Directory,
            EntryContent::File { .. } | EntryContent::Bytes(_) => EntryKind::Regular,
            EntryContent::Symlink { .. } => EntryKind::Symlink,
            EntryContent::CharDevice { .. } => EntryKind::CharDevice,
            EntryContent::BlockDevice { .. } => EntryKind::BlockDevice,
            EntryContent::Fifo => EntryKind::Fifo,
        };
        let mut header = self.header(path, kind, entry);
        header.xattrs = sorted_xattrs(&entry.xattrs);
        match &entry.content {
            EntryContent::File { source } => {
                let (mut file, size) = open_source(source)?;
                header.size = size;
                self.write_header(&header)?;
                let copied = self
                    .out
                    .copy_from(&mut file, size)
                    .map_err(|error| match error {
                        crate::tarstream::write::CopyError::Read(e) => WriteError::ReadFile {
                            path: source.clone(),
                            source: e,
                        },
                        crate::tarstream::write::CopyError::Write(e) => WriteError::Write(e),
                    })?;
                if copied < size {
                    return Err(WriteError::FileChanged {
                        path: source.clone(),
                        expected: size,
                        actual: copied,
                    });
                }
                self.out.pad(size).map_err(WriteError::Write)
            }
            EntryContent::Bytes(data) => {
                header.size = data.len() as u64;
                self.write_header(&header)?;
                self.out.write_bytes(data).map_err(WriteError::Write)?;
                self.out.pad(header.size).map_err(WriteError::Write)
            }
            EntryContent::Symlink { target } => {
                header.link = target.as_os_str().as_bytes().to_vec();
                self.write_header(&header)
            }
            EntryContent::CharDevice { major, minor }
            | EntryContent::BlockDevice { major, minor } => {
                header.dev_major = *major;
                header.dev_minor = *minor;
                self.write_header(&header)
            }
            EntryContent::Directory | EntryContent::Fifo => self.write_header(&header),
        }
    }

    fn write_header(&mut self, header: &EntryHeader) -> Result<(), WriteError> {
        self.summary.entries += 1;
        self.out.write_header(header).map_err(WriteError::Write)
    }
}

/// Opens a file entry's source without following a symlink, with its size now.
fn open_source(source: &Path) -> Result<(std::fs::File, u64), WriteError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        // Not following a symlink, and not blocking on a fifo: either is refused below.
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(source)
        .map_err(|e| WriteError::Open {
            path: source.to_owned(),
            source: e,
        })?;
    let meta = file.metadata().map_err(|e| WriteError::Stat {
        path: source.to_owned(),
        source: e,
    })?;
    if !meta.file_type().is_file() {
        return Err(WriteError::NotARegularFile {
            path: source.to_owned(),
        });
    }
    Ok((file, meta.len()))
}

/// Whether an entry copied from a host file (or an archive) carries the extended attribute
/// `name`: all do except the build host's SELinux label (`security.selinux`) and overlayfs's own
/// (`trusted.overlay.*`, `user.overlay.*`, such as the opaque marker of an unpacked layer's
/// directory), the ones [`write_layer`](super::write_layer) leaves out of an overlayfs upper
/// directory.
#[must_use]
pub fn is_carried_xattr(name: &[u8]) -> bool {
    name != b"security.selinux" && !super::is_overlay_xattr(name)
}

/// The extended attributes of the host file `path` (a symlink itself, not what it points to)
/// that an entry copied from it carries ([`is_carried_xattr`]), sorted by name. A file system
/// without xattr support gives none.
///
/// # Errors
///
/// The path holds a NUL byte, or listing or reading the attributes fails.
pub fn read_xattrs(path: &Path) -> std::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let mut xattrs = sys::read_xattrs(XattrTarget::Path(&path))?;
    xattrs.retain(|(name, _)| is_carried_xattr(name));
    Ok(xattrs)
}

/// xattrs sorted by name, as the walker's come sorted from the file system.
fn sorted_xattrs(xattrs: &[(Vec<u8>, Vec<u8>)]) -> KeyValues {
    let mut sorted = xattrs.to_vec();
    sorted.sort();
    sorted
}

#[cfg(test)]
mod tests;
