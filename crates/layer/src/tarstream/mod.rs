//! The tar format as layers use it: ustar headers plus PAX extended headers, written and read
//! as a stream. Header fields are encoded and decoded with the `tar` crate's `Header`; the
//! stream around them (PAX records, long names, padding, end of archive) is handled here so
//! that reading is strict and bounded (see [`read`]) and writing is byte-for-byte
//! deterministic (see [`write`]).

pub(crate) mod read;
pub(crate) mod write;

pub use read::ArchiveError;

/// Size of a tar block: headers are one block, entry data is padded to a multiple of it.
pub(crate) const BLOCK: usize = 512;

/// PAX key prefix for extended attributes, as GNU tar, Go and BuildKit write them.
pub(crate) const PAX_XATTR: &[u8] = b"SCHILY.xattr.";

/// Byte-string (key, value) pairs: PAX records, extended attributes.
pub(crate) type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;

/// The entry types layers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Regular,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
    /// Any other type flag (GNU sparse, volume labels, ...), which layers should not contain.
    Other(u8),
}

impl EntryKind {
    fn type_flag(self) -> u8 {
        match self {
            Self::Regular => b'0',
            Self::HardLink => b'1',
            Self::Symlink => b'2',
            Self::CharDevice => b'3',
            Self::BlockDevice => b'4',
            Self::Directory => b'5',
            Self::Fifo => b'6',
            Self::Other(flag) => flag,
        }
    }

    fn from_type_flag(flag: u8) -> Self {
        match flag {
            // '7' is "contiguous file", a regular file everywhere but on one ancient system.
            b'0' | b'\0' | b'7' => Self::Regular,
            b'1' => Self::HardLink,
            b'2' => Self::Symlink,
            b'3' => Self::CharDevice,
            b'4' => Self::BlockDevice,
            b'5' => Self::Directory,
            b'6' => Self::Fifo,
            other => Self::Other(other),
        }
    }

    /// A printable name for error messages.
    pub(crate) fn describe(self) -> String {
        match self {
            Self::Regular => "regular file".to_owned(),
            Self::HardLink => "hard link".to_owned(),
            Self::Symlink => "symlink".to_owned(),
            Self::CharDevice => "character device".to_owned(),
            Self::BlockDevice => "block device".to_owned(),
            Self::Directory => "directory".to_owned(),
            Self::Fifo => "fifo".to_owned(),
            Self::Other(flag) => format!("type flag {:?}", char::from(flag)),
        }
    }
}

/// One entry's metadata, as written by [`write`] and returned by [`read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryHeader {
    /// Path as stored (directories without their trailing slash when written; as found when
    /// read).
    pub(crate) path: Vec<u8>,
    pub(crate) kind: EntryKind,
    /// Permission bits plus setuid/setgid/sticky (`0o7777`).
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    /// Modification time in seconds since the epoch; `mtime_nanos` holds the fraction when a
    /// PAX `mtime` record gave one.
    pub(crate) mtime: i64,
    pub(crate) mtime_nanos: u32,
    /// Data size (regular files only; zero for every other kind).
    pub(crate) size: u64,
    /// Symlink target or hard link target path.
    pub(crate) link: Vec<u8>,
    pub(crate) dev_major: u32,
    pub(crate) dev_minor: u32,
    /// Extended attributes as (name, value), sorted by name when written.
    pub(crate) xattrs: KeyValues,
}

impl EntryHeader {
    /// An entry of `kind` at `path` with everything else zero or empty.
    pub(crate) fn new(path: Vec<u8>, kind: EntryKind) -> Self {
        Self {
            path,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nanos: 0,
            size: 0,
            link: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        }
    }
}
