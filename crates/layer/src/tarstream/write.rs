//! Writing a tar stream: deterministic ustar headers with PAX records where ustar runs out.
//!
//! Header choices follow what BuildKit's differ (containerd `archive`, Go `archive/tar` in PAX
//! mode) writes: name without `./`, directories with a trailing `/`, mode holding only the
//! permission bits, whole-second mtime, no atime/ctime, xattrs as `SCHILY.xattr.*`, a PAX `path`
//! or `linkpath` record when the name does not fit the 100-byte field. Unlike Go we leave
//! uname/gname empty: names come from the build host's `/etc/passwd`, which would make the
//! layer depend on the machine; every consumer uses the numeric ids.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender};

use super::{BLOCK, EntryHeader, EntryKind, PAX_XATTR};

/// Bytes buffered before handing a chunk to the output. Large chunks keep per-write costs
/// (hashing setup, compressor hand-off, syscalls) negligible.
const BUFFER: usize = 256 * 1024;

/// Largest value of an 8-byte octal field (uid, gid): 7 digits.
const MAX_OCTAL_8: u64 = 0o7_777_777;
/// Largest value of a 12-byte octal field (size, mtime): 11 digits.
const MAX_OCTAL_12: u64 = 0o77_777_777_777;

/// Which side of a copy failed.
pub(crate) enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Where a [`TarOutput`] hands its full buffers.
pub(crate) trait ChunkSink {
    /// Takes a filled buffer and returns an empty one to fill next.
    fn send(&mut self, chunk: Vec<u8>) -> io::Result<Vec<u8>>;
}

/// Sends buffers to another thread, which writes them out and sends them back for reuse.
pub(crate) struct ChunkSender {
    pub(crate) chunks: SyncSender<Vec<u8>>,
    pub(crate) recycled: Receiver<Vec<u8>>,
}

impl ChunkSink for ChunkSender {
    fn send(&mut self, chunk: Vec<u8>) -> io::Result<Vec<u8>> {
        self.chunks.send(chunk).map_err(|_| {
            io::Error::new(io::ErrorKind::BrokenPipe, "the layer output thread stopped")
        })?;
        Ok(self.recycled.try_recv().unwrap_or_default())
    }
}

/// A buffered tar stream writer.
pub(crate) struct TarOutput<S: ChunkSink> {
    sink: S,
    /// Always `BUFFER` bytes long; `len` of them are filled.
    buf: Vec<u8>,
    len: usize,
    written: u64,
}

impl<S: ChunkSink> TarOutput<S> {
    pub(crate) fn new(sink: S) -> Self {
        Self {
            sink,
            buf: vec![0u8; BUFFER],
            len: 0,
            written: 0,
        }
    }

    /// Bytes of tar stream produced so far (including what is still buffered).
    pub(crate) fn position(&self) -> u64 {
        self.written + self.len as u64
    }

    /// Writes the header block(s) for `entry`: a PAX header first when needed, then ustar.
    pub(crate) fn write_header(&mut self, entry: &EntryHeader) -> io::Result<()> {
        let mut name = entry.path.clone();
        if entry.kind == EntryKind::Directory {
            name.push(b'/');
        }
        let mut pax = Vec::new();
        if name.len() > 100 {
            push_pax_record(&mut pax, b"path", &name);
        }
        if entry.link.len() > 100 {
            push_pax_record(&mut pax, b"linkpath", &entry.link);
        }
        if entry.uid > MAX_OCTAL_8 {
            push_pax_record(&mut pax, b"uid", entry.uid.to_string().as_bytes());
        }
        if entry.gid > MAX_OCTAL_8 {
            push_pax_record(&mut pax, b"gid", entry.gid.to_string().as_bytes());
        }
        if entry.size > MAX_OCTAL_12 {
            push_pax_record(&mut pax, b"size", entry.size.to_string().as_bytes());
        }
        for (key, value) in &entry.xattrs {
            let mut full_key = PAX_XATTR.to_vec();
            full_key.extend_from_slice(key);
            push_pax_record(&mut pax, &full_key, value);
        }
        if !pax.is_empty() {
            let mut pax_entry = EntryHeader::new(pax_header_name(&name), EntryKind::Other(b'x'));
            pax_entry.mode = 0o644;
            pax_entry.mtime = entry.mtime;
            pax_entry.size = pax.len() as u64;
            self.write_raw_header(&pax_entry, &pax_entry.path)?;
            self.write_bytes(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        self.write_raw_header(entry, &name)
    }

    /// Writes one ustar header block; fields that do not fit were given as PAX records.
    fn write_raw_header(&mut self, entry: &EntryHeader, name: &[u8]) -> io::Result<()> {
        let mut header = tar::Header::new_ustar();
        let ustar = header
            .as_ustar_mut()
            .expect("a header made by new_ustar is ustar");
        copy_truncated(&mut ustar.name, name);
        copy_truncated(&mut ustar.linkname, &entry.link);
        header.set_mode(entry.mode & 0o7777);
        header.set_uid(if entry.uid > MAX_OCTAL_8 {
            0
        } else {
            entry.uid
        });
        header.set_gid(if entry.gid > MAX_OCTAL_8 {
            0
        } else {
            entry.gid
        });
        header.set_size(if entry.size > MAX_OCTAL_12 {
            0
        } else {
            entry.size
        });
        header.set_mtime(u64::try_from(entry.mtime).unwrap_or(0));
        header.set_entry_type(tar::EntryType::new(entry.kind.type_flag()));
        header.set_device_major(entry.dev_major)?;
        header.set_device_minor(entry.dev_minor)?;
        header.set_cksum();
        self.write_bytes(header.as_bytes())
    }

    /// Writes raw bytes into the stream (entry data).
    pub(crate) fn write_bytes(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.len == self.buf.len() {
                self.flush_buffer()?;
            }
            let take = (self.buf.len() - self.len).min(data.len());
            self.buf[self.len..self.len + take].copy_from_slice(&data[..take]);
            self.len += take;
            data = &data[take..];
        }
        Ok(())
    }

    /// Copies up to `size` bytes of entry data from `reader` straight into the buffer, returning
    /// how many bytes there were (fewer than `size` if the reader ended early).
    pub(crate) fn copy_from(
        &mut self,
        reader: &mut impl Read,
        size: u64,
    ) -> Result<u64, CopyError> {
        let mut copied = 0u64;
        while copied < size {
            if self.len == self.buf.len() {
                self.flush_buffer().map_err(CopyError::Write)?;
            }
            let room = (self.buf.len() - self.len) as u64;
            let want = room.min(size - copied) as usize;
            match reader.read(&mut self.buf[self.len..self.len + want]) {
                Ok(0) => break,
                Ok(n) => {
                    self.len += n;
                    copied += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CopyError::Read(e)),
            }
        }
        Ok(copied)
    }

    /// Pads entry data of `size` bytes to the next block boundary.
    pub(crate) fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.write_bytes(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Writes the end-of-archive marker (two zero blocks), hands over the rest, returns the sink.
    pub(crate) fn finish(mut self) -> io::Result<S> {
        self.write_bytes(&[0u8; 2 * BLOCK])?;
        self.flush_buffer()?;
        Ok(self.sink)
    }

    fn flush_buffer(&mut self) -> io::Result<()> {
        let mut full = std::mem::take(&mut self.buf);
        full.truncate(self.len);
        let mut next = self.sink.send(full)?;
        next.resize(BUFFER, 0);
        self.buf = next;
        self.written += self.len as u64;
        self.len = 0;
        Ok(())
    }
}

/// Copies as much of `value` as fits; the rest is in a PAX record.
fn copy_truncated(field: &mut [u8], value: &[u8]) {
    let n = field.len().min(value.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Name of the PAX header entry for `name`: `<dir>/PaxHeaders.0/<base>`, like Go.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let (dir, base) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    let mut out = dir.to_vec();
    out.extend_from_slice(b"PaxHeaders.0/");
    out.extend_from_slice(base);
    out.truncate(100);
    out
}

/// Appends one `"<len> <key>=<value>\n"` record, where `<len>` counts the whole record
/// including its own digits.
fn push_pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // space, '=', newline
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Collects the stream in memory (tests).
#[cfg(test)]
impl ChunkSink for Vec<u8> {
    fn send(&mut self, mut chunk: Vec<u8>) -> io::Result<Vec<u8>> {
        self.extend_from_slice(&chunk);
        chunk.clear();
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        push_pax_record(&mut out, b"path", b"a");
        assert_eq!(out, b"9 path=a\n");
        // 8 + 1 digit = 9 would be wrong once the total reaches two digits.
        out.clear();
        push_pax_record(&mut out, b"path", &[b'x'; 92]);
        assert_eq!(&out[..4], b"102 ");
        assert_eq!(out.len(), 102);
    }

    #[test]
    fn pax_header_names_follow_go() {
        assert_eq!(pax_header_name(b"a/b/c"), b"a/b/PaxHeaders.0/c");
        assert_eq!(pax_header_name(b"dir/"), b"PaxHeaders.0/dir");
        assert_eq!(pax_header_name(&[b'n'; 200]).len(), 100);
    }
}
