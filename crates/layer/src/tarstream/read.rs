//! Reading a tar stream strictly and in bounded memory.
//!
//! Only the current header is held in memory; entry data is streamed to the caller. Extension
//! headers (PAX `x`/`g`, GNU `L`/`K`) are read whole but limited to [`MAX_EXTENSION`] bytes.
//! Every header's checksum is verified, PAX records are parsed by their length prefix (so
//! binary xattr values may contain newlines), and the stream must end with an end-of-archive
//! block: a stream cut at an entry boundary is reported as truncated rather than taken as
//! complete. Header-only types (links, directories, devices, fifos) carry no data whatever
//! their size field says, as in Go's `archive/tar`, so we read the same entries Docker and
//! containerd read.

use std::io::{self, Read};

use super::{BLOCK, EntryHeader, EntryKind, KeyValues, PAX_XATTR};

/// Largest extension header (PAX records or GNU long name) accepted. Linux caps a path at
/// 4 KiB and an xattr value at 64 KiB, so real headers are far smaller.
pub(crate) const MAX_EXTENSION: u64 = 1024 * 1024;

/// Why a tar stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading the stream failed (including decompression errors).
    #[error("failed to read the archive")]
    Read(#[source] io::Error),
    /// The stream ended inside a header or inside an entry's data.
    #[error("archive is truncated: it ends inside a header or entry data")]
    Truncated,
    /// The stream ended at an entry boundary without the end-of-archive block.
    #[error("archive is truncated: it ends without an end-of-archive block")]
    MissingEnd,
    /// A header's checksum does not match its bytes.
    #[error("header checksum mismatch (stored {stored:#o}, computed {computed:#o})")]
    Checksum {
        /// Value in the checksum field.
        stored: u64,
        /// Checksum of the header block.
        computed: u64,
    },
    /// A numeric header field does not parse.
    #[error("invalid {field} field in header")]
    Field {
        /// The field name (`size`, `mode`, ...).
        field: &'static str,
    },
    /// A PAX extended header is malformed.
    #[error("malformed PAX extended header: {reason}")]
    Pax {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An extension header is larger than the limit (1 MiB).
    #[error("extension header of {size} bytes exceeds the limit of {limit} bytes")]
    ExtensionTooLarge {
        /// Its declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Extension headers were not followed by the entry they describe.
    #[error("extension header is not followed by an entry")]
    DanglingExtension,
}

impl ArchiveError {
    fn from_io(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            Self::Truncated
        } else {
            Self::Read(error)
        }
    }
}

/// A streaming tar reader. Wrap the input in a `BufReader`: headers are read 512 bytes at a time.
pub(crate) struct TarReader<R: Read> {
    inner: R,
    /// Bytes consumed from `inner`.
    offset: u64,
    /// Unread data bytes of the current entry.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    ended: bool,
}

#[derive(Default)]
struct Extensions {
    pax: Option<KeyValues>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

impl Extensions {
    fn is_empty(&self) -> bool {
        self.pax.is_none() && self.long_name.is_none() && self.long_link.is_none()
    }
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            offset: 0,
            remaining: 0,
            padding: 0,
            ended: false,
        }
    }

    /// Offset in the stream of the next unread byte.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The next entry, skipping whatever is left of the current one; `None` at the end-of-archive
    /// block.
    pub(crate) fn next_entry(&mut self) -> Result<Option<EntryHeader>, ArchiveError> {
        if self.ended {
            return Ok(None);
        }
        self.skip(self.remaining + self.padding)?;
        self.remaining = 0;
        self.padding = 0;

        let mut extensions = Extensions::default();
        loop {
            let mut block = [0u8; BLOCK];
            if !self.read_block(&mut block)? {
                return Err(if extensions.is_empty() {
                    ArchiveError::MissingEnd
                } else {
                    ArchiveError::Truncated
                });
            }
            if block.iter().all(|&b| b == 0) {
                if !extensions.is_empty() {
                    return Err(ArchiveError::DanglingExtension);
                }
                self.ended = true;
                return Ok(None);
            }
            verify_checksum(&block)?;
            let header = tar::Header::from_byte_slice(&block);
            let old = header.as_old();
            let header_size =
                parse_number(&old.size).ok_or(ArchiveError::Field { field: "size" })?;
            match old.linkflag[0] {
                b'x' => {
                    if extensions.pax.is_some() {
                        return Err(ArchiveError::Pax {
                            reason: "two PAX headers for one entry",
                        });
                    }
                    let data = self.read_extension(header_size)?;
                    extensions.pax = Some(parse_pax(&data)?);
                }
                b'g' => {
                    // Global PAX headers hold defaults (usually a comment); layer tools
                    // (containerd, Docker) ignore them and so do we.
                    self.read_extension(header_size)?;
                }
                b'L' => extensions.long_name = Some(trim_nul(self.read_extension(header_size)?)),
                b'K' => extensions.long_link = Some(trim_nul(self.read_extension(header_size)?)),
                flag => {
                    let entry = build_entry(header, flag, header_size, extensions)?;
                    self.remaining = entry.size;
                    if matches!(entry.kind, EntryKind::Other(_)) {
                        // Unknown types keep their data so the stream stays in step.
                        self.remaining = header_size;
                    }
                    self.padding = padding(self.remaining);
                    return Ok(Some(entry));
                }
            }
        }
    }

    /// The underlying stream after the end-of-archive block: padding, then (for a compressed
    /// blob) the end of the compressed stream with its checksum.
    pub(crate) fn data_after_end(&mut self) -> &mut R {
        &mut self.inner
    }

    /// A reader for the current entry's data. Reading past its end returns EOF; a stream that
    /// ends early gives an `UnexpectedEof` error.
    pub(crate) fn data(&mut self) -> EntryData<'_, R> {
        EntryData { reader: self }
    }

    /// Reads one block; `false` at a clean EOF before its first byte.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool, ArchiveError> {
        let mut filled = 0;
        while filled < BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(ArchiveError::Truncated),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ArchiveError::from_io(e)),
            }
        }
        self.offset += BLOCK as u64;
        Ok(true)
    }

    fn read_extension(&mut self, size: u64) -> Result<Vec<u8>, ArchiveError> {
        if size > MAX_EXTENSION {
            return Err(ArchiveError::ExtensionTooLarge {
                size,
                limit: MAX_EXTENSION,
            });
        }
        let mut data = vec![0u8; size as usize];
        self.inner
            .read_exact(&mut data)
            .map_err(ArchiveError::from_io)?;
        self.offset += size;
        self.skip(padding(size))?;
        Ok(data)
    }

    fn skip(&mut self, count: u64) -> Result<(), ArchiveError> {
        if count == 0 {
            return Ok(());
        }
        let skipped = io::copy(&mut (&mut self.inner).take(count), &mut io::sink())
            .map_err(ArchiveError::from_io)?;
        self.offset += skipped;
        if skipped < count {
            return Err(ArchiveError::Truncated);
        }
        Ok(())
    }
}

/// The data of the entry last returned by [`TarReader::next_entry`].
pub(crate) struct EntryData<'a, R: Read> {
    reader: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let reader = &mut *self.reader;
        if reader.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(reader.remaining).unwrap_or(usize::MAX));
        let n = reader.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends inside entry data",
            ));
        }
        reader.remaining -= n as u64;
        reader.offset += n as u64;
        Ok(n)
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn trim_nul(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some(end) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(end);
    }
    bytes
}

/// Bytes of a NUL-terminated (or full-width) string field.
fn field_str(field: &[u8]) -> &[u8] {
    field
        .iter()
        .position(|&b| b == 0)
        .map_or(field, |end| &field[..end])
}

/// Parses a numeric header field: octal text (NUL/space padded, empty meaning 0) or the GNU
/// base-256 form (high bit of the first byte set).
fn parse_number(field: &[u8]) -> Option<u64> {
    if let Some((&first, rest)) = field.split_first()
        && first & 0x80 != 0
    {
        if first & 0x40 != 0 {
            return None; // negative
        }
        let mut value = u64::from(first & 0x3f);
        for &byte in rest {
            value = value.checked_mul(256)? | u64::from(byte);
        }
        return Some(value);
    }
    let text = field_str(field);
    let text = std::str::from_utf8(text).ok()?.trim_matches(|c| c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn verify_checksum(block: &[u8; BLOCK]) -> Result<(), ArchiveError> {
    let stored = parse_number(&block[148..156]).ok_or(ArchiveError::Field { field: "checksum" })?;
    let spaces = 8 * u64::from(b' ');
    let unsigned: u64 = block[..148]
        .iter()
        .chain(&block[156..])
        .map(|&b| u64::from(b))
        .sum::<u64>()
        + spaces;
    if stored == unsigned {
        return Ok(());
    }
    // Some historic writers summed signed chars.
    let signed: i64 = block[..148]
        .iter()
        .chain(&block[156..])
        .map(|&b| i64::from(b as i8))
        .sum::<i64>()
        + spaces as i64;
    if i64::try_from(stored).is_ok_and(|s| s == signed) {
        return Ok(());
    }
    Err(ArchiveError::Checksum {
        stored,
        computed: unsigned,
    })
}

/// Parses PAX records `"<len> <key>=<value>\n"` by their length prefix.
fn parse_pax(mut data: &[u8]) -> Result<KeyValues, ArchiveError> {
    let bad = |reason| ArchiveError::Pax { reason };
    let mut records = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|&b| b == 0) {
            break; // trailing NUL padding some writers leave
        }
        let space = data
            .iter()
            .take(20)
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("record without a length"))?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("record length is not a number"))?;
        if len <= space + 1 || len > data.len() {
            return Err(bad("record length out of range"));
        }
        let record = &data[space + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or_else(|| bad("record does not end with a newline"))?;
        let equals = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("record without '='"))?;
        records.push((record[..equals].to_vec(), record[equals + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(records)
}

fn parse_decimal(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Parses a PAX time `"<secs>[.<fraction>]"` into seconds and nanoseconds.
fn parse_pax_time(value: &[u8]) -> Option<(i64, u32)> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, fraction) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    let mut nanos: u32 = digits.parse().ok()?;
    // "-1.5" means 1.5 s before the epoch: -2 s + 0.5 s.
    if secs < 0 || text.starts_with('-') {
        if nanos > 0 {
            return Some((secs - 1, 1_000_000_000 - nanos));
        }
        nanos = 0;
    }
    Some((secs, nanos))
}

fn build_entry(
    header: &tar::Header,
    flag: u8,
    header_size: u64,
    extensions: Extensions,
) -> Result<EntryHeader, ArchiveError> {
    let old = header.as_old();
    let mut path = extensions
        .long_name
        .unwrap_or_else(|| header.path_bytes().into_owned());
    let mut link = extensions
        .long_link
        .unwrap_or_else(|| field_str(&old.linkname).to_vec());
    let mut kind = EntryKind::from_type_flag(flag);
    // Old tars mark directories as regular files whose name ends in '/'.
    if flag == b'\0' && path.ends_with(b"/") {
        kind = EntryKind::Directory;
    }
    let field = |field| ArchiveError::Field { field };
    let mut entry = EntryHeader::new(Vec::new(), kind);
    entry.mode = u32::try_from(parse_number(&old.mode).ok_or_else(|| field("mode"))? & 0o7777)
        .expect("masked to 12 bits");
    entry.uid = parse_number(&old.uid).ok_or_else(|| field("uid"))?;
    entry.gid = parse_number(&old.gid).ok_or_else(|| field("gid"))?;
    let mtime = parse_number(&old.mtime).ok_or_else(|| field("mtime"))?;
    entry.mtime = i64::try_from(mtime).map_err(|_| field("mtime"))?;
    let mut size = header_size;
    if matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice)
        && let Some(ustar) = header.as_ustar()
    {
        let number = |f: &[u8], name| {
            parse_number(f)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| field(name))
        };
        entry.dev_major = number(&ustar.dev_major, "devmajor")?;
        entry.dev_minor = number(&ustar.dev_minor, "devminor")?;
    }
    if let Some(records) = extensions.pax {
        // Later records override earlier ones, so apply them in order.
        for (key, value) in records {
            match key.as_slice() {
                b"path" => path = value,
                b"linkpath" => link = value,
                b"size" => size = parse_decimal(&value).ok_or_else(|| field("PAX size"))?,
                b"uid" => entry.uid = parse_decimal(&value).ok_or_else(|| field("PAX uid"))?,
                b"gid" => entry.gid = parse_decimal(&value).ok_or_else(|| field("PAX gid"))?,
                b"mtime" => {
                    (entry.mtime, entry.mtime_nanos) =
                        parse_pax_time(&value).ok_or_else(|| field("PAX mtime"))?;
                }
                _ => {
                    if let Some(name) = key.strip_prefix(PAX_XATTR) {
                        entry.xattrs.retain(|(existing, _)| existing != name);
                        entry.xattrs.push((name.to_vec(), value));
                    }
                }
            }
        }
    }
    entry.path = path;
    entry.link = link;
    entry.size = match kind {
        EntryKind::Regular | EntryKind::Other(_) => size,
        _ => 0,
    };
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_in_octal_and_base256() {
        assert_eq!(parse_number(b"0000644\0"), Some(0o644));
        assert_eq!(parse_number(b" 644 \0\0\0"), Some(0o644));
        assert_eq!(parse_number(b"\0\0\0\0\0\0\0\0"), Some(0));
        assert_eq!(parse_number(&[0x80, 0, 0, 0, 0, 0, 0x01, 0x00]), Some(256));
        assert_eq!(parse_number(b"0009\0"), None);
        assert_eq!(parse_number(&[0xff; 8]), None);
    }

    #[test]
    fn pax_records_may_hold_newlines_and_nuls() {
        let value = b"a\nb\0c";
        let record_body = [&b"SCHILY.xattr.user.x="[..], value, b"\n"].concat();
        let len = record_body.len() + 3; // "NN " prefix
        let data = [format!("{len} ").as_bytes(), &record_body, b"9 path=a\n"].concat();
        let records = parse_pax(&data).unwrap();
        assert_eq!(records[0].0, b"SCHILY.xattr.user.x");
        assert_eq!(records[0].1, value);
        assert_eq!(records[1], (b"path".to_vec(), b"a".to_vec()));
        assert!(parse_pax(b"99 path=a\n").is_err());
        assert!(parse_pax(b"8 path=a").is_err());
        assert!(parse_pax(b"x path=a\n").is_err());
    }

    #[test]
    fn pax_times_keep_fractions() {
        assert_eq!(parse_pax_time(b"1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(
            parse_pax_time(b"1700000000.5"),
            Some((1_700_000_000, 500_000_000))
        );
        assert_eq!(parse_pax_time(b"-1.25"), Some((-2, 750_000_000)));
        assert_eq!(parse_pax_time(b"12.x"), None);
    }
}
