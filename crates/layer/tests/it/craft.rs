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
}

impl Craft {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends an entry named exactly `name` (mode 0644/0755, owner 0, mtime 1).
    pub(crate) fn entry(mut self, name: &str, kind: Kind<'_>) -> Self {
        let mut header = tar::Header::new_ustar();
        {
            let old = header.as_old_mut();
            let bytes = name.as_bytes();
            assert!(bytes.len() <= 100, "crafted names fit the name field");
            old.name[..bytes.len()].copy_from_slice(bytes);
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
        };
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.bytes.extend_from_slice(header.as_bytes());
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    /// Adds the end-of-archive blocks and returns the bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.bytes.write_all(&[0u8; 1024]).unwrap();
        self.bytes
    }
}
