//! Hand-made tar archives, byte for byte, for layers our writer would never produce: hostile
//! paths, out-of-order whiteouts, broken headers. Built with the `tar` crate's raw `Header`
//! (not our writer), writing names straight into the header so nothing sanitizes them.

use std::io::Write;

/// An archive under construction.
#[derive(Default)]
pub(crate) struct Craft {
    bytes: Vec<u8>,
}

pub(crate) enum Kind<'a> {
    File(&'a [u8]),
    Dir,
    Symlink(&'a str),
    HardLink(&'a str),
    CharDevice(u32, u32),
    BlockDevice(u32, u32),
    Fifo,
}

impl Craft {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends an entry named exactly `name` (mode 0644/0755, owner 0, mtime 1).
    pub(crate) fn entry(self, name: &str, kind: Kind<'_>) -> Self {
        self.entry_bytes(name.as_bytes(), kind)
    }

    /// Appends an entry named exactly `name`, which may be any bytes but NUL.
    pub(crate) fn entry_bytes(mut self, name: &[u8], kind: Kind<'_>) -> Self {
        let mut header = tar::Header::new_ustar();
        {
            let old = header.as_old_mut();
            assert!(name.len() <= 100, "crafted names fit the name field");
            old.name[..name.len()].copy_from_slice(name);
        }
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1);
        let data: &[u8] = match kind {
            Kind::File(data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                data
            }
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                b""
            }
            Kind::Symlink(target) | Kind::HardLink(target) => {
                header.set_entry_type(if matches!(kind, Kind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                header.set_mode(0o777);
                let old = header.as_old_mut();
                old.linkname[..target.len()].copy_from_slice(target.as_bytes());
                b""
            }
            Kind::CharDevice(major, minor) | Kind::BlockDevice(major, minor) => {
                header.set_entry_type(if matches!(kind, Kind::CharDevice(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                header.set_mode(0o666);
                header.set_device_major(major).unwrap();
                header.set_device_minor(minor).unwrap();
                b""
            }
            Kind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                header.set_mode(0o666);
                b""
            }
        };
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.bytes.extend_from_slice(header.as_bytes());
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    /// Appends a PAX extended header with `records` (key, value), for the next entry.
    pub(crate) fn pax(self, records: &[(&str, &[u8])]) -> Self {
        let mut data = Vec::new();
        for (key, value) in records {
            // "<len> <key>=<value>\n", where <len> counts itself.
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len += 1;
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        self.raw(b"pax", tar::EntryType::XHeader, data.len() as u64, &data)
    }

    /// Appends a header of type `kind` whose size field says `size`, followed by `data` (which
    /// may be shorter: a lie about the size) and padding.
    pub(crate) fn raw(mut self, name: &[u8], kind: tar::EntryType, size: u64, data: &[u8]) -> Self {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_mtime(1);
        header.set_size(size);
        header.set_cksum();
        self.bytes.extend_from_slice(header.as_bytes());
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    /// The bytes so far, without the end-of-archive blocks (for a stream cut short).
    pub(crate) fn unfinished(self) -> Vec<u8> {
        self.bytes
    }

    /// Adds the end-of-archive blocks and returns the bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.bytes.write_all(&[0u8; 1024]).unwrap();
        self.bytes
    }
}
