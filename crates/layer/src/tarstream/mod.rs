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

#[cfg(test)]
mod tests {
    use std::io::Read;

    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::read::TarReader;
    use super::write::TarOutput;
    use super::*;

    fn kind() -> impl Strategy<Value = EntryKind> {
        prop_oneof![
            Just(EntryKind::Regular),
            Just(EntryKind::HardLink),
            Just(EntryKind::Symlink),
            Just(EntryKind::CharDevice),
            Just(EntryKind::BlockDevice),
            Just(EntryKind::Directory),
            Just(EntryKind::Fifo),
        ]
    }

    /// Byte strings without NUL (which no tar field can hold), long enough to need PAX.
    fn name(max: usize) -> impl Strategy<Value = Vec<u8>> {
        vec(1u8..=255, 1..max)
    }

    prop_compose! {
        fn entry()(
            kind in kind(),
            path in name(300),
            link in name(300),
            mode in 0u32..0o10000,
            uid in prop_oneof![0u64..70_000, 0u64..(1 << 40)],
            gid in 0u64..(1 << 40),
            mtime in 0i64..10_000_000_000,
            data in vec(any::<u8>(), 0..2000),
            dev in (0u32..4096, 0u32..1_048_576),
            xattr_values in vec(vec(any::<u8>(), 0..100), 0..4),
        ) -> (EntryHeader, Vec<u8>) {
            let mut header = EntryHeader::new(path, kind);
            header.mode = mode;
            header.uid = uid;
            header.gid = gid;
            header.mtime = mtime;
            if kind == EntryKind::Regular {
                header.size = data.len() as u64;
            }
            if matches!(kind, EntryKind::Symlink | EntryKind::HardLink) {
                header.link = link;
            }
            if matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
                (header.dev_major, header.dev_minor) = dev;
            }
            header.xattrs = xattr_values
                .into_iter()
                .enumerate()
                .map(|(i, value)| (format!("user.attr{i}").into_bytes(), value))
                .collect();
            let data = if kind == EntryKind::Regular { data } else { Vec::new() };
            (header, data)
        }
    }

    proptest! {
        #[test]
        fn written_entries_read_back_identically(entries in vec(entry(), 0..8)) {
            let mut out = TarOutput::new(Vec::new());
            for (header, data) in &entries {
                out.write_header(header).unwrap();
                out.write_bytes(data).unwrap();
                out.pad(data.len() as u64).unwrap();
            }
            let tar = out.finish().unwrap();
            prop_assert_eq!(tar.len() % BLOCK, 0);

            let mut reader = TarReader::new(&tar[..]);
            for (expected, data) in &entries {
                let mut header = reader.next_entry().unwrap().expect("entry present");
                if header.kind == EntryKind::Directory {
                    prop_assert_eq!(header.path.pop(), Some(b'/'));
                }
                prop_assert_eq!(&header, expected);
                let mut read = Vec::new();
                reader.data().read_to_end(&mut read).unwrap();
                prop_assert_eq!(&read, data);
            }
            prop_assert!(reader.next_entry().unwrap().is_none());
        }
    }
}
