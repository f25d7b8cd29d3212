//! Safe extraction of a layer tar into a root file system; see [`apply_layer`].

use std::collections::{BTreeSet, HashMap};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::readahead::read_ahead;
use crate::sys::{self, FileType, XattrTarget};
use crate::tarstream::read::TarReader;
use crate::tarstream::{ArchiveError, EntryHeader, EntryKind};
use crate::writer::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};

/// File created in the target root while a layer is being applied; present afterwards only if
/// applying failed. See [`apply_layer`].
pub const INCOMPLETE_MARKER: &str = ".hoist-incomplete";

/// Symlinks followed per path before giving up, as the kernel's `ELOOP` limit.
const MAX_SYMLINK_HOPS: u32 = 40;

/// Longest entry path or hard-link target accepted, Linux's `PATH_MAX`. Docker and containerd
/// extract with whole-path system calls, which fail beyond it; refusing earlier also bounds
/// the memory remembered per path (every directory created is remembered by its path).
pub const MAX_PATH_LEN: usize = 4096;

/// Size of the buffer entry data is copied through.
const COPY_BUFFER: usize = 256 * 1024;

/// Whether file owners from the archive are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ownership {
    /// Apply uid/gid when running as root, as `tar` does.
    #[default]
    Auto,
    /// Always apply uid/gid (fails unless privileged).
    Preserve,
    /// Never apply uid/gid: files belong to the caller.
    Ignore,
}

/// What to do with an entry whose parent path goes through a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParentSymlinks {
    /// Follow it as if the root were `/` (absolute targets and `..` stay inside), like
    /// containerd and Docker do.
    #[default]
    FollowWithinRoot,
    /// Reject the entry.
    Reject,
}

/// What whiteout entries (`.wh.NAME`, `.wh..wh..opq`) do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Whiteouts {
    /// Delete what they name from the layers below in the target (OCI image spec, "Applying
    /// changesets"): for a root file system that gets every layer in turn.
    #[default]
    Apply,
    /// Keep them in overlayfs's format: for a directory holding one layer alone, stacked with
    /// the others by overlayfs (Docker's overlay2 layout). `.wh.NAME` becomes a character device
    /// 0/0 named `NAME` (unless this layer has its own `NAME`, which already hides the one below),
    /// `.wh..wh..opq` the extended attribute `opaque_xattr` = `y` on its directory, and a
    /// directory that replaces a whiteout of the same layer is made opaque, since the layer
    /// deleted what was below it. Nothing in the target is removed. Written as the entries come,
    /// in the same pass, before directory times are set.
    Overlay {
        /// `trusted.overlay.opaque` (overlayfs mounted by root) or `user.overlay.opaque`
        /// (overlayfs with `userxattr`, in a user namespace).
        opaque_xattr: &'static str,
    },
}

/// Options for [`apply_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyOptions {
    ownership: Ownership,
    parent_symlinks: ParentSymlinks,
    max_size: Option<u64>,
    whiteouts: Whiteouts,
}

impl ApplyOptions {
    /// Default options: owners applied when root, symlinked parents followed within the root.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether file owners from the archive are applied.
    #[must_use]
    pub fn with_ownership(mut self, ownership: Ownership) -> Self {
        self.ownership = ownership;
        self
    }

    /// What to do with entries whose parent path goes through a symlink.
    #[must_use]
    pub fn with_parent_symlinks(mut self, parent_symlinks: ParentSymlinks) -> Self {
        self.parent_symlinks = parent_symlinks;
        self
    }

    /// Refuses a layer whose uncompressed tar stream is longer than `bytes`
    /// ([`ApplyError::TooLarge`]). Without a limit (the default) the stream is applied however
    /// long it is: memory stays bounded, but a small compressed blob can expand to fill the
    /// disk (gzip reaches about 1000:1, zstd far more).
    #[must_use]
    pub fn with_max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// What whiteout entries do ([`Whiteouts::Apply`] by default).
    #[must_use]
    pub fn with_whiteouts(mut self, whiteouts: Whiteouts) -> Self {
        self.whiteouts = whiteouts;
        self
    }
}

/// Counts from [`apply_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyReport {
    /// Entries read from the archive (extension headers not counted).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Whiteouts and opaque markers applied.
    pub whiteouts: u64,
    /// Entries not applied: device nodes without the privilege to create them, the root
    /// directory's own entry (`./`), AUFS metadata (`.wh..wh.*` other than the opaque marker).
    pub skipped: u64,
    /// Extended attributes the file system or our privileges did not allow to set.
    pub xattrs_skipped: u64,
}

/// Why an entry is refused as unsafe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeReason {
    /// Absolute path.
    #[error("absolute paths are not allowed in a layer")]
    AbsolutePath,
    /// A `..` component.
    #[error("`..` components are not allowed in a layer")]
    ParentComponent,
    /// A NUL byte in a path (only possible through PAX records).
    #[error("path contains a NUL byte")]
    NulByte,
    /// A hard link whose target is absolute, has `..`, or is the entry itself.
    #[error("hard link target {target:?} is outside the layer root or invalid")]
    LinkTarget {
        /// The link target as stored.
        target: String,
    },
    /// A parent directory is a symlink and [`ParentSymlinks::Reject`] is set.
    #[error("parent {parent:?} is a symlink")]
    SymlinkParent {
        /// The parent path, relative to the root.
        parent: String,
    },
    /// Too many symlinks while resolving the parent directory.
    #[error("too many levels of symlinks in the parent path")]
    SymlinkLoop,
    /// The entry would overwrite [`INCOMPLETE_MARKER`].
    #[error("the name {INCOMPLETE_MARKER} is reserved")]
    ReservedName,
    /// The path (or hard-link target) is longer than [`MAX_PATH_LEN`].
    #[error("path of {len} bytes is longer than the limit of {MAX_PATH_LEN}")]
    PathTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A whiteout naming nothing (`.wh.`) or `.`/`..`.
    #[error("invalid whiteout name")]
    BadWhiteout,
}

/// Why a layer could not be applied. Except for [`OpenRoot`](Self::OpenRoot),
/// [`AlreadyIncomplete`](Self::AlreadyIncomplete) and a failure to create the marker, the
/// target now holds [`INCOMPLETE_MARKER`].
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The target directory could not be opened.
    #[error("failed to open target directory {root}")]
    OpenRoot {
        /// The target.
        root: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The target is marked incomplete by an earlier failed apply.
    #[error(
        "{root} is incomplete: an earlier apply failed ({INCOMPLETE_MARKER} exists); discard it"
    )]
    AlreadyIncomplete {
        /// The target.
        root: PathBuf,
    },
    /// The incomplete marker could not be created or removed.
    #[error("failed to {action} {INCOMPLETE_MARKER} in {root}")]
    Marker {
        /// The target.
        root: PathBuf,
        /// `create` or `remove`.
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The archive is malformed or unreadable at a header.
    #[error("bad layer archive at byte {offset}, after entry {after:?}")]
    Archive {
        /// Offset in the (decompressed) stream.
        offset: u64,
        /// The last entry read before the problem (empty at the start).
        after: String,
        /// What is wrong.
        #[source]
        source: ArchiveError,
    },
    /// The archive ends inside an entry's data.
    #[error("layer archive is truncated inside the data of entry {entry:?}")]
    Truncated {
        /// The entry.
        entry: String,
    },
    /// Reading an entry's data failed (for example a corrupt compressed stream).
    #[error("failed to read the data of entry {entry:?}")]
    ReadData {
        /// The entry.
        entry: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The entry would write outside the target or is otherwise unsafe.
    #[error("refusing entry {entry:?}: {reason}")]
    Unsafe {
        /// The entry.
        entry: String,
        /// Why.
        reason: UnsafeReason,
    },
    /// The entry has a type layers cannot hold (GNU sparse files, tape volume labels, ...).
    #[error("entry {entry:?} has an unsupported type: {kind}")]
    Unsupported {
        /// The entry.
        entry: String,
        /// The type.
        kind: String,
    },
    /// The uncompressed stream is longer than [`ApplyOptions::with_max_size`] allows.
    #[error(
        "layer is larger than the limit of {limit} bytes uncompressed (a decompression bomb?), \
         stopped in entry {entry:?}"
    )]
    TooLarge {
        /// The limit.
        limit: u64,
        /// The entry being read when the limit was reached (empty before the first).
        entry: String,
    },
    /// A file-system operation for the entry failed.
    #[error("entry {entry:?}: failed to {action}")]
    Extract {
        /// The entry.
        entry: String,
        /// The operation.
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Whether `root` holds [`INCOMPLETE_MARKER`], i.e. an apply into it failed and it must not be
/// trusted. Errors other than "not found" count as incomplete.
#[must_use]
pub fn is_incomplete(root: &Path) -> bool {
    match std::fs::symlink_metadata(root.join(INCOMPLETE_MARKER)) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// Extracts the uncompressed layer tar `reader` into the directory `root`, applying whiteouts.
///
/// Wrap a compressed blob in [`Decompressor`](crate::Decompressor) first; `reader` is read on a
/// helper thread so decompression overlaps with writing files. Ownership, modes,
/// xattrs and mtimes are applied (owners and device nodes only when privileged, see
/// [`Ownership`]); directory mtimes are set after their content. Memory stays bounded: data is
/// streamed, and per entry only its path is remembered (for whiteouts and directory times).
///
/// # Confinement
///
/// Nothing is ever written outside the target directory:
///
/// - entry paths and hard-link targets that are absolute or contain `..` are rejected;
/// - every parent directory is reached from the root's descriptor one component at a time
///   (`openat` with `O_NOFOLLOW`). A symlinked parent (say `lib -> usr/lib`, common in merged-usr
///   images) is followed the way `chroot` would: its target is resolved again from the root,
///   absolute targets start at the root and `..` stops at the root, so `a -> /tmp` makes
///   `a/file` land in `<root>/tmp/file`. [`ParentSymlinks::Reject`] refuses such entries instead;
/// - the last component is never followed: whatever exists there (file, symlink, device) is
///   removed and replaced, and files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`;
/// - hard links are made with `linkat` between descriptors inside the root, so a link can only
///   point at a file already in the root;
/// - symlink entries are stored as given (an image's `/usr/bin/python -> /etc/alternatives/..`
///   is normal); they are data, never followed while extracting.
///
/// # Whiteouts (OCI image spec, "Applying changesets")
///
/// `.wh.<name>` removes `<name>` and `.wh..wh..opq` empties its directory, but only of what the
/// layers below put there: entries of this layer survive, whatever their order in the stream.
/// So a layer may both delete a directory and recreate it with new content.
///
/// # Failure: the incomplete marker
///
/// The target is modified in place (a layer applies *onto* the layers below; staging would mean
/// copying the whole root file system). Before the first change, `apply_layer` creates
/// [`INCOMPLETE_MARKER`] in the root; it removes it only after the whole stream, the
/// end-of-archive block and the compressed stream's own checksum have been read and every
/// entry applied. If applying fails at any point the marker stays: [`is_incomplete`] then
/// reports the directory as untrustworthy, and a later `apply_layer` into it refuses to run
/// ([`ApplyError::AlreadyIncomplete`]). Callers discard such a directory and start again.
pub fn apply_layer<R: Read + Send>(
    reader: R,
    root: &Path,
    options: &ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let root_fd = sys::open_dir(root).map_err(|source| ApplyError::OpenRoot {
        root: root.to_owned(),
        source,
    })?;
    let root_stat = rustix::fs::fstat(&root_fd).map_err(|e| ApplyError::OpenRoot {
        root: root.to_owned(),
        source: e.into(),
    })?;
    let marker = CString::new(INCOMPLETE_MARKER).expect("constant has no NUL");
    match sys::create_file_at(root_fd.as_fd(), &marker) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(ApplyError::AlreadyIncomplete {
                root: root.to_owned(),
            });
        }
        Err(source) => {
            return Err(ApplyError::Marker {
                root: root.to_owned(),
                action: "create",
                source,
            });
        }
    }
    let is_root = sys::is_root();
    let mut applier = Applier {
        root_fd,
        root_id: (root_stat.st_dev, root_stat.st_ino),
        parent_symlinks: options.parent_symlinks,
        whiteouts: options.whiteouts,
        preserve_owner: match options.ownership {
            Ownership::Auto => is_root,
            Ownership::Preserve => true,
            Ownership::Ignore => false,
        },
        make_devices: is_root,
        created: BTreeSet::new(),
        dirs: Vec::new(),
        dir_index: HashMap::new(),
        last_entry: String::new(),
        cache: Vec::new(),
        report: ApplyReport::default(),
        buffer: vec![0u8; COPY_BUFFER],
    };
    read_ahead(reader, |stream| match options.max_size {
        None => applier.apply_stream(stream),
        Some(limit) => {
            let mut limited = LimitedReader {
                inner: stream,
                left: limit,
                exceeded: false,
            };
            let result = applier.apply_stream(&mut limited);
            if limited.exceeded {
                return Err(ApplyError::TooLarge {
                    limit,
                    entry: applier.last_entry.clone(),
                });
            }
            result
        }
    })?;
    applier.finish_dirs()?;
    sys::unlink_at(applier.root_fd.as_fd(), &marker).map_err(|source| ApplyError::Marker {
        root: root.to_owned(),
        action: "remove",
        source,
    })?;
    Ok(applier.report)
}

/// A reader failing once more than `left` bytes are asked of it, remembering that it did.
struct LimitedReader<'a> {
    inner: &'a mut dyn Read,
    left: u64,
    exceeded: bool,
}

impl Read for LimitedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // One byte more tells a stream ending exactly at the limit from a longer one.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded = true;
            return Err(io::Error::other("layer stream exceeds the size limit"));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Directory metadata applied once all entries are in place.
struct DeferredDir {
    key: Vec<u8>,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    mtime_nanos: u32,
}

/// Why a parent directory could not be resolved.
enum ResolveError {
    Unsafe(UnsafeReason),
    Io(&'static str, io::Error),
}

struct Applier {
    root_fd: OwnedFd,
    root_id: (u64, u64),
    parent_symlinks: ParentSymlinks,
    whiteouts: Whiteouts,
    preserve_owner: bool,
    make_devices: bool,
    /// Paths (normalized, as in the archive) this layer has put in place.
    created: BTreeSet<Vec<u8>>,
    /// One record per directory path, in the order each was first seen; a later entry for the
    /// same path updates its record (so a stream repeating one directory entry cannot grow
    /// memory).
    dirs: Vec<DeferredDir>,
    /// Index in `dirs` by path.
    dir_index: HashMap<Vec<u8>, usize>,
    /// The path of the entry being applied, for errors raised outside it.
    last_entry: String,
    /// The last resolved directory chain: (component, path descriptor) from the root down,
    /// keyed by archive path components. Only chains reached without symlinks are cached.
    cache: Vec<(Vec<u8>, OwnedFd)>,
    report: ApplyReport,
    buffer: Vec<u8>,
}

/// Splits a tar path into components, rejecting absolute paths, `..` and NUL bytes. `.` and
/// empty components (from `./x`, `a//b`, `dir/`) are dropped.
fn components(path: &[u8]) -> Result<Vec<&[u8]>, UnsafeReason> {
    if path.len() > MAX_PATH_LEN {
        return Err(UnsafeReason::PathTooLong { len: path.len() });
    }
    if path.contains(&0) {
        return Err(UnsafeReason::NulByte);
    }
    if path.starts_with(b"/") {
        return Err(UnsafeReason::AbsolutePath);
    }
    let mut out = Vec::new();
    for component in path.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err(UnsafeReason::ParentComponent),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn cstring(bytes: &[u8]) -> CString {
    CString::new(bytes).expect("components are checked for NUL bytes")
}

fn join(components: &[&[u8]]) -> Vec<u8> {
    components.join(&b'/')
}

/// Whether an error setting an xattr means "not allowed/supported here" rather than failure.
fn is_xattr_refusal(error: &io::Error) -> bool {
    matches!(
        rustix::io::Errno::from_io_error(error),
        Some(rustix::io::Errno::PERM | rustix::io::Errno::NOTSUP | rustix::io::Errno::ACCESS)
    )
}

impl Applier {
    /// Applies every entry of the tar `stream`, then reads the stream to its end.
    fn apply_stream(&mut self, stream: &mut dyn Read) -> Result<(), ApplyError> {
        let mut tar = TarReader::new(stream);
        let mut last = String::new();
        loop {
            let entry = match tar.next_entry() {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(source) => {
                    return Err(ApplyError::Archive {
                        offset: tar.offset(),
                        after: last,
                        source,
                    });
                }
            };
            last = String::from_utf8_lossy(&entry.path).into_owned();
            self.last_entry.clone_from(&last);
            self.report.entries += 1;
            self.apply_entry(&entry, &last, &mut tar.data())?;
        }
        // Read what follows the end-of-archive block: the compressed stream's checksum (gzip
        // CRC, zstd frame checksum) is only verified once its end is reached.
        let offset = tar.offset();
        io::copy(&mut tar.data_after_end(), &mut io::sink()).map_err(|e| ApplyError::Archive {
            offset,
            after: last,
            source: ArchiveError::Read(e),
        })?;
        Ok(())
    }
    fn apply_entry(
        &mut self,
        entry: &EntryHeader,
        name: &str,
        data: &mut impl Read,
    ) -> Result<(), ApplyError> {
        let unsafe_entry = |reason| ApplyError::Unsafe {
            entry: name.to_owned(),
            reason,
        };
        let comps = components(&entry.path).map_err(unsafe_entry)?;
        let Some((&base, parents)) = comps.split_last() else {
            // The root's own entry ("./"): the root belongs to the caller.
            self.report.skipped += 1;
            return Ok(());
        };
        let key = join(&comps);
        if comps[0].starts_with(b".wh..wh.") && key != OPAQUE_WHITEOUT.as_bytes() {
            // AUFS metadata (`.wh..wh.plnk/`, `.wh..wh.aufs`): never part of the image.
            self.report.skipped += 1;
            return Ok(());
        }
        if key == INCOMPLETE_MARKER.as_bytes() {
            return Err(unsafe_entry(UnsafeReason::ReservedName));
        }
        if base.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return self.apply_whiteout(parents, base, name);
        }
        let parent = self
            .resolve_dir(parents, true, name)?
            .expect("created when missing");
        let parent = parent.as_fd();
        let cbase = cstring(base);
        if base == INCOMPLETE_MARKER.as_bytes() && self.is_root_dir(parent) {
            return Err(unsafe_entry(UnsafeReason::ReservedName));
        }
        let extract = |action: &'static str| {
            move |source: io::Error| ApplyError::Extract {
                entry: name.to_owned(),
                action,
                source,
            }
        };
        match entry.kind {
            EntryKind::Directory => {
                let existing = sys::lstat_at_opt(parent, &cbase).map_err(extract("stat"))?;
                match existing {
                    Some(stat) if sys::file_type(&stat) == FileType::Directory => {}
                    Some(stat) => {
                        self.remove_all(parent, &cbase)
                            .map_err(extract("replace"))?;
                        sys::mkdir_at(parent, &cbase, 0o700)
                            .map_err(extract("create directory"))?;
                        if let Whiteouts::Overlay { opaque_xattr } = self.whiteouts
                            && is_whiteout_device(&stat)
                        {
                            // This layer deleted the directory below and made a new one.
                            let dir = sys::open_dir_at(parent, &cbase)
                                .map_err(extract("open directory"))?;
                            sys::set_xattr(
                                XattrTarget::Fd(dir.as_fd()),
                                opaque_xattr.as_bytes(),
                                b"y",
                            )
                            .map_err(extract("mark opaque"))?;
                        }
                    }
                    None => {
                        sys::mkdir_at(parent, &cbase, 0o700).map_err(extract("create directory"))?
                    }
                }
                if !entry.xattrs.is_empty() {
                    let dir =
                        sys::open_dir_at(parent, &cbase).map_err(extract("open directory"))?;
                    self.set_xattrs(XattrTarget::Fd(dir.as_fd()), entry)
                        .map_err(extract("set xattrs"))?;
                }
                let record = DeferredDir {
                    key: key.clone(),
                    mode: entry.mode,
                    uid: entry.uid,
                    gid: entry.gid,
                    mtime: entry.mtime,
                    mtime_nanos: entry.mtime_nanos,
                };
                match self.dir_index.get(&key) {
                    Some(&at) => self.dirs[at] = record,
                    None => {
                        self.dir_index.insert(key.clone(), self.dirs.len());
                        self.dirs.push(record);
                    }
                }
            }
            EntryKind::Regular => {
                let mut file = self
                    .create_replacing(parent, &cbase, |name| sys::create_file_at(parent, name))
                    .map_err(extract("create file"))?;
                self.copy_data(data, &mut file, entry.size, name)?;
                self.set_owner_fd(file.as_fd(), entry)
                    .map_err(extract("chown"))?;
                sys::fchmod(file.as_fd(), entry.mode).map_err(extract("chmod"))?;
                self.set_xattrs(XattrTarget::Fd(file.as_fd()), entry)
                    .map_err(extract("set xattrs"))?;
                sys::set_times(file.as_fd(), entry.mtime, entry.mtime_nanos)
                    .map_err(extract("set times"))?;
                self.report.files += 1;
                self.report.bytes += entry.size;
            }
            EntryKind::HardLink => self.apply_hard_link(entry, &key, parent, &cbase, name)?,
            EntryKind::Symlink => {
                self.create_replacing(parent, &cbase, |name| {
                    sys::symlink_at(&entry.link, parent, name)
                })
                .map_err(extract("create symlink"))?;
                self.finish_node(parent, &cbase, entry, false)
                    .map_err(extract("set metadata"))?;
            }
            EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => {
                let file_type = match entry.kind {
                    EntryKind::CharDevice => FileType::CharacterDevice,
                    EntryKind::BlockDevice => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if file_type != FileType::Fifo && !self.make_devices {
                    self.report.skipped += 1;
                    return Ok(());
                }
                self.replace_existing(parent, &cbase)
                    .map_err(extract("replace"))?;
                match sys::mknod_at(
                    parent,
                    &cbase,
                    file_type,
                    entry.mode & 0o777,
                    entry.dev_major,
                    entry.dev_minor,
                ) {
                    Ok(()) => {}
                    // Root in a user namespace may not create devices; Docker skips them too.
                    Err(e)
                        if file_type != FileType::Fifo
                            && rustix::io::Errno::from_io_error(&e)
                                == Some(rustix::io::Errno::PERM) =>
                    {
                        self.report.skipped += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(extract("create node")(e)),
                }
                self.finish_node(parent, &cbase, entry, true)
                    .map_err(extract("set metadata"))?;
            }
            EntryKind::Other(_) => {
                return Err(ApplyError::Unsupported {
                    entry: name.to_owned(),
                    kind: entry.kind.describe(),
                });
            }
        }
        self.created.insert(key);
        Ok(())
    }

    fn apply_hard_link(
        &mut self,
        entry: &EntryHeader,
        key: &[u8],
        parent: BorrowedFd<'_>,
        cbase: &CStr,
        name: &str,
    ) -> Result<(), ApplyError> {
        let bad_target = || ApplyError::Unsafe {
            entry: name.to_owned(),
            reason: UnsafeReason::LinkTarget {
                target: String::from_utf8_lossy(&entry.link).into_owned(),
            },
        };
        let target = components(&entry.link).map_err(|_| bad_target())?;
        let Some((&target_base, target_parents)) = target.split_last() else {
            return Err(bad_target());
        };
        if join(&target) == key {
            return Err(bad_target());
        }
        let target_parent = self
            .resolve_dir(target_parents, false, name)?
            .ok_or_else(|| ApplyError::Extract {
                entry: name.to_owned(),
                action: "link: target directory does not exist",
                source: io::ErrorKind::NotFound.into(),
            })?;
        let target_base = cstring(target_base);
        let extract = |action: &'static str| {
            move |source: io::Error| ApplyError::Extract {
                entry: name.to_owned(),
                action,
                source,
            }
        };
        let target_stat = sys::lstat_at(target_parent.as_fd(), &target_base)
            .map_err(extract("link: stat target"))?;
        if sys::file_type(&target_stat) == FileType::Directory {
            return Err(bad_target());
        }
        if let Some(existing) = sys::lstat_at_opt(parent, cbase).map_err(extract("stat"))? {
            if (existing.st_dev, existing.st_ino) == (target_stat.st_dev, target_stat.st_ino) {
                return Ok(()); // already that file
            }
            self.remove_all(parent, cbase).map_err(extract("replace"))?;
        }
        sys::link_at(target_parent.as_fd(), &target_base, parent, cbase)
            .map_err(extract("create hard link"))
    }

    /// Owner, mode (not for symlinks), xattrs and times of a node created by name.
    fn finish_node(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        entry: &EntryHeader,
        chmod: bool,
    ) -> io::Result<()> {
        if self.preserve_owner {
            sys::lchown_at(parent, name, owner_id(entry.uid)?, owner_id(entry.gid)?)?;
        }
        if chmod {
            sys::chmod_at(parent, name, entry.mode)?;
        }
        self.set_xattrs(XattrTarget::At(parent, name), entry)?;
        sys::set_times_at(parent, name, entry.mtime, entry.mtime_nanos)
    }

    fn set_owner_fd(&self, fd: BorrowedFd<'_>, entry: &EntryHeader) -> io::Result<()> {
        if self.preserve_owner {
            sys::fchown(fd, owner_id(entry.uid)?, owner_id(entry.gid)?)?;
        }
        Ok(())
    }

    fn set_xattrs(&mut self, target: XattrTarget<'_>, entry: &EntryHeader) -> io::Result<()> {
        for (key, value) in &entry.xattrs {
            match sys::set_xattr(target, key, value) {
                Ok(()) => {}
                Err(e) if is_xattr_refusal(&e) => self.report.xattrs_skipped += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn copy_data(
        &mut self,
        data: &mut impl Read,
        file: &mut File,
        size: u64,
        name: &str,
    ) -> Result<(), ApplyError> {
        let mut left = size;
        while left > 0 {
            let want = self
                .buffer
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match data.read(&mut self.buffer[..want]) {
                Ok(0) => {
                    return Err(ApplyError::Truncated {
                        entry: name.to_owned(),
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(ApplyError::Truncated {
                        entry: name.to_owned(),
                    });
                }
                Err(source) => {
                    return Err(ApplyError::ReadData {
                        entry: name.to_owned(),
                        source,
                    });
                }
            };
            file.write_all(&self.buffer[..n])
                .map_err(|source| ApplyError::Extract {
                    entry: name.to_owned(),
                    action: "write file",
                    source,
                })?;
            left -= n as u64;
        }
        Ok(())
    }

    fn apply_whiteout(
        &mut self,
        parents: &[&[u8]],
        base: &[u8],
        name: &str,
    ) -> Result<(), ApplyError> {
        let extract = |action: &'static str| {
            move |source: io::Error| ApplyError::Extract {
                entry: name.to_owned(),
                action,
                source,
            }
        };
        if base != OPAQUE_WHITEOUT.as_bytes() && base.starts_with(b".wh..wh.") {
            // Other AUFS metadata below the top level: not a whiteout of anything.
            self.report.skipped += 1;
            return Ok(());
        }
        self.report.whiteouts += 1;
        if let Whiteouts::Overlay { opaque_xattr } = self.whiteouts {
            return self.record_whiteout(parents, base, opaque_xattr, name);
        }
        // Nothing below a missing directory to hide.
        let Some(parent) = self.resolve_dir(parents, false, name)? else {
            return Ok(());
        };
        let parent_key = join(parents);
        // Removing may take out a cached directory.
        self.cache.clear();
        if base == OPAQUE_WHITEOUT.as_bytes() {
            let dir =
                sys::open_dir_at(parent.as_fd(), c".").map_err(extract("open opaque directory"))?;
            let children =
                sys::read_dir_names(dir.as_fd()).map_err(extract("list opaque directory"))?;
            for child in children {
                let mut child_key = parent_key.clone();
                if !child_key.is_empty() {
                    child_key.push(b'/');
                }
                child_key.extend_from_slice(child.as_bytes());
                if child_key == INCOMPLETE_MARKER.as_bytes() {
                    continue;
                }
                self.remove_lower(dir.as_fd(), &child, &child_key)
                    .map_err(extract("apply opaque whiteout"))?;
            }
            return Ok(());
        }
        let target = &base[WHITEOUT_PREFIX.len()..];
        if matches!(target, b"" | b"." | b"..") {
            return Err(ApplyError::Unsafe {
                entry: name.to_owned(),
                reason: UnsafeReason::BadWhiteout,
            });
        }
        let mut target_key = parent_key;
        if !target_key.is_empty() {
            target_key.push(b'/');
        }
        target_key.extend_from_slice(target);
        if target_key == INCOMPLETE_MARKER.as_bytes() {
            return Err(ApplyError::Unsafe {
                entry: name.to_owned(),
                reason: UnsafeReason::ReservedName,
            });
        }
        self.remove_lower(parent.as_fd(), &cstring(target), &target_key)
            .map_err(extract("apply whiteout"))
    }

    /// [`Whiteouts::Overlay`]: records the whiteout `base` in `parents` in overlayfs's format
    /// (its directory created if missing, as an entry of this layer would).
    fn record_whiteout(
        &mut self,
        parents: &[&[u8]],
        base: &[u8],
        opaque_xattr: &str,
        name: &str,
    ) -> Result<(), ApplyError> {
        let extract = |action: &'static str| {
            move |source: io::Error| ApplyError::Extract {
                entry: name.to_owned(),
                action,
                source,
            }
        };
        let parent = self
            .resolve_dir(parents, true, name)?
            .expect("created when missing");
        if base == OPAQUE_WHITEOUT.as_bytes() {
            let dir =
                sys::open_dir_at(parent.as_fd(), c".").map_err(extract("open opaque directory"))?;
            return sys::set_xattr(XattrTarget::Fd(dir.as_fd()), opaque_xattr.as_bytes(), b"y")
                .map_err(extract("mark opaque"));
        }
        let target = &base[WHITEOUT_PREFIX.len()..];
        if matches!(target, b"" | b"." | b"..") {
            return Err(ApplyError::Unsafe {
                entry: name.to_owned(),
                reason: UnsafeReason::BadWhiteout,
            });
        }
        if target == INCOMPLETE_MARKER.as_bytes() && self.is_root_dir(parent.as_fd()) {
            return Err(ApplyError::Unsafe {
                entry: name.to_owned(),
                reason: UnsafeReason::ReservedName,
            });
        }
        let ctarget = cstring(target);
        if sys::lstat_at_opt(parent.as_fd(), &ctarget)
            .map_err(extract("stat"))?
            .is_some()
        {
            // This layer has its own entry there (or the same whiteout twice): it hides the one below.
            return Ok(());
        }
        sys::mknod_at(parent.as_fd(), &ctarget, FileType::CharacterDevice, 0, 0, 0)
            .map_err(extract("create whiteout"))
    }

    /// Removes `name` in `dir` as far as lower layers put it there: paths this layer created
    /// (and the directories leading to them) stay.
    fn remove_lower(&mut self, dir: BorrowedFd<'_>, name: &CStr, key: &[u8]) -> io::Result<()> {
        let Some(stat) = sys::lstat_at_opt(dir, name)? else {
            return Ok(());
        };
        if !self.created_at_or_below(key) {
            return self.remove_all(dir, name);
        }
        if sys::file_type(&stat) == FileType::Directory {
            let sub = sys::open_dir_at(dir, name)?;
            for child in sys::read_dir_names(sub.as_fd())? {
                let mut child_key = key.to_vec();
                child_key.push(b'/');
                child_key.extend_from_slice(child.as_bytes());
                self.remove_lower(sub.as_fd(), &child, &child_key)?;
            }
        }
        Ok(())
    }

    fn created_at_or_below(&self, key: &[u8]) -> bool {
        if self.created.contains(key) {
            return true;
        }
        let mut prefix = key.to_vec();
        prefix.push(b'/');
        self.created
            .range(prefix.clone()..)
            .next()
            .is_some_and(|first| first.starts_with(&prefix))
    }

    /// Creates `name` in `dir` with `create` (which must fail with `EEXIST` rather than follow or
    /// reuse what is there), after removing whatever occupies the name. The usual case, a name
    /// nothing occupies yet (every entry of a layer unpacked into an empty directory), costs
    /// the one creating call: what is there is only looked at once creating has failed.
    fn create_replacing<T>(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        create: impl Fn(&CStr) -> io::Result<T>,
    ) -> io::Result<T> {
        match create(name) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.replace_existing(dir, name)?;
                create(name)
            }
            result => result,
        }
    }

    /// Removes whatever is at `name` in `dir`, if anything.
    fn replace_existing(&mut self, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
        if sys::lstat_at_opt(dir, name)?.is_some() {
            self.remove_all(dir, name)?;
        }
        Ok(())
    }

    /// Removes `name` in `dir` and, for a directory, everything below it, never following
    /// symlinks.
    fn remove_all(&mut self, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
        // A cached directory may be among the removed.
        self.cache.clear();
        remove_tree(dir, name)
    }

    fn is_root_dir(&self, dir: BorrowedFd<'_>) -> bool {
        rustix::fs::fstat(dir).is_ok_and(|stat| (stat.st_dev, stat.st_ino) == self.root_id)
    }

    /// Resolves the directory at `comps` (archive path components) to a path descriptor,
    /// creating missing directories (mode 0755) when `create` is set, else returning `None`.
    fn resolve_dir(
        &mut self,
        comps: &[&[u8]],
        create: bool,
        name: &str,
    ) -> Result<Option<OwnedFd>, ApplyError> {
        self.resolve_dir_inner(comps, create)
            .map_err(|error| match error {
                ResolveError::Unsafe(reason) => ApplyError::Unsafe {
                    entry: name.to_owned(),
                    reason,
                },
                ResolveError::Io(action, source) => ApplyError::Extract {
                    entry: name.to_owned(),
                    action,
                    source,
                },
            })
    }

    fn resolve_dir_inner(
        &mut self,
        comps: &[&[u8]],
        create: bool,
    ) -> Result<Option<OwnedFd>, ResolveError> {
        let mut stack = std::mem::take(&mut self.cache);
        let matched = stack
            .iter()
            .zip(comps)
            .take_while(|((cached, _), comp)| cached == *comp)
            .count();
        stack.truncate(matched);
        let mut pending: std::collections::VecDeque<Vec<u8>> =
            comps[matched..].iter().map(|c| c.to_vec()).collect();
        // Once a symlink is followed the stack no longer matches archive paths; keep a copy
        // of the part that does, to cache.
        let mut saved: Option<Vec<(Vec<u8>, OwnedFd)>> = None;
        let mut hops = 0;
        let io = |action| move |e: io::Error| ResolveError::Io(action, e);
        let result = loop {
            let Some(comp) = pending.pop_front() else {
                let fd = match stack.last() {
                    Some((_, fd)) => fd.try_clone(),
                    None => self.root_fd.try_clone(),
                };
                break Some(fd.map_err(io("duplicate directory descriptor"))?);
            };
            match comp.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    // Only from symlink targets; at the root it stays at the root.
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            let current = stack
                .last()
                .map_or(self.root_fd.as_fd(), |(_, fd)| fd.as_fd());
            let ccomp = CString::new(comp.clone())
                .map_err(|_| ResolveError::Unsafe(UnsafeReason::NulByte))?;
            let stat = sys::lstat_at_opt(current, &ccomp).map_err(io("stat parent directory"))?;
            match stat.as_ref().map(sys::file_type) {
                None if !create => break None,
                None => {
                    sys::mkdir_at(current, &ccomp, 0o755).map_err(io("create parent directory"))?;
                    if saved.is_none() {
                        let mut key: Vec<&[u8]> = stack.iter().map(|(c, _)| c.as_slice()).collect();
                        key.push(&comp);
                        self.created.insert(join(&key));
                    }
                }
                Some(FileType::Directory) => {}
                Some(FileType::Symlink) => {
                    if self.parent_symlinks == ParentSymlinks::Reject {
                        let mut parent: Vec<&[u8]> =
                            stack.iter().map(|(c, _)| c.as_slice()).collect();
                        parent.push(&comp);
                        return Err(ResolveError::Unsafe(UnsafeReason::SymlinkParent {
                            parent: String::from_utf8_lossy(&join(&parent)).into_owned(),
                        }));
                    }
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(ResolveError::Unsafe(UnsafeReason::SymlinkLoop));
                    }
                    let target =
                        sys::read_link_at(current, &ccomp).map_err(io("read parent symlink"))?;
                    if saved.is_none() {
                        let mut copy = Vec::with_capacity(stack.len());
                        for (c, fd) in &stack {
                            copy.push((
                                c.clone(),
                                fd.try_clone()
                                    .map_err(io("duplicate directory descriptor"))?,
                            ));
                        }
                        saved = Some(copy);
                    }
                    if target.starts_with(b"/") {
                        stack.clear();
                    }
                    for part in target.split(|&b| b == b'/').rev() {
                        pending.push_front(part.to_vec());
                    }
                    continue;
                }
                Some(_) => {
                    return Err(ResolveError::Io(
                        "resolve parent directory",
                        io::Error::new(
                            io::ErrorKind::NotADirectory,
                            format!("{:?} is not a directory", String::from_utf8_lossy(&comp)),
                        ),
                    ));
                }
            }
            let fd = sys::open_dir_path_at(current, &ccomp).map_err(io("open parent directory"))?;
            stack.push((comp, fd));
        };
        self.cache = saved.unwrap_or(stack);
        Ok(result)
    }

    /// Applies the deferred directory metadata, deepest (latest first seen) first.
    fn finish_dirs(&mut self) -> Result<(), ApplyError> {
        let dirs = std::mem::take(&mut self.dirs);
        self.dir_index.clear();
        for dir in dirs.iter().rev() {
            let name = String::from_utf8_lossy(&dir.key).into_owned();
            let comps: Vec<&[u8]> = dir.key.split(|&b| b == b'/').collect();
            let (base, parents) = comps.split_last().expect("a directory key is never empty");
            let Some(parent) = self.resolve_dir(parents, false, &name)? else {
                continue; // removed by a later whiteout
            };
            let cbase = cstring(base);
            let extract = |action: &'static str| {
                let name = name.clone();
                move |source: io::Error| ApplyError::Extract {
                    entry: name,
                    action,
                    source,
                }
            };
            match sys::lstat_at_opt(parent.as_fd(), &cbase).map_err(extract("stat directory"))? {
                Some(stat) if sys::file_type(&stat) == FileType::Directory => {}
                _ => continue, // replaced by a later entry
            }
            let fd = sys::open_dir_at(parent.as_fd(), &cbase).map_err(extract("open directory"))?;
            if self.preserve_owner {
                let uid = owner_id(dir.uid).map_err(extract("chown directory"))?;
                let gid = owner_id(dir.gid).map_err(extract("chown directory"))?;
                sys::fchown(fd.as_fd(), uid, gid).map_err(extract("chown directory"))?;
            }
            sys::fchmod(fd.as_fd(), dir.mode).map_err(extract("chmod directory"))?;
            sys::set_times(fd.as_fd(), dir.mtime, dir.mtime_nanos)
                .map_err(extract("set directory times"))?;
        }
        Ok(())
    }
}

/// Whether `stat` is overlayfs's whiteout: a character device 0/0.
fn is_whiteout_device(stat: &rustix::fs::Stat) -> bool {
    sys::file_type(stat) == FileType::CharacterDevice && stat.st_rdev == 0
}

fn owner_id(id: u64) -> io::Result<u32> {
    u32::try_from(id).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("owner id {id} out of range"),
        )
    })
}

/// Removes `name` in `dir` and everything below it without following symlinks.
///
/// Iterative, with one open descriptor per level being emptied: a layer can hold a tree
/// thousands of levels deep, which recursion would overflow the stack on.
fn remove_tree(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let Some(stat) = sys::lstat_at_opt(dir, name)? else {
        return Ok(());
    };
    if sys::file_type(&stat) != FileType::Directory {
        return sys::unlink_at(dir, name);
    }
    /// A directory being emptied: its descriptor, its name in its parent, and the
    /// subdirectories still to remove.
    struct Level {
        fd: OwnedFd,
        name: CString,
        subdirs: Vec<CString>,
    }
    let open_level = |parent: BorrowedFd<'_>, name: CString| -> io::Result<Level> {
        let fd = sys::open_dir_at(parent, &name)?;
        let mut subdirs = Vec::new();
        for child in sys::read_dir_names(fd.as_fd())? {
            match sys::lstat_at_opt(fd.as_fd(), &child)? {
                None => {}
                Some(stat) if sys::file_type(&stat) == FileType::Directory => subdirs.push(child),
                Some(_) => sys::unlink_at(fd.as_fd(), &child)?,
            }
        }
        Ok(Level { fd, name, subdirs })
    };
    let mut stack = vec![open_level(dir, name.to_owned())?];
    while let Some(top) = stack.last_mut() {
        if let Some(child) = top.subdirs.pop() {
            let level = open_level(top.fd.as_fd(), child)?;
            stack.push(level);
            continue;
        }
        let done = stack
            .pop()
            .expect("the loop runs while the stack is not empty");
        let parent = stack.last().map_or(dir, |level| level.fd.as_fd());
        sys::rmdir_at(parent, &done.name)?;
    }
    Ok(())
}
