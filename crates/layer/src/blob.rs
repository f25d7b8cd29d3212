//! The layer blob pipeline: tar bytes in, compressed blob out, both digests in the same pass.
//!
//! ```text
//! tar bytes ─▶ DigestWriter (diffID) ─▶ Compressor ─▶ DigestWriter (blob digest, size) ─▶ sink
//! ```

use std::fmt;
use std::io::{self, Write};

use crate::compression::{CompressOptions, Compression, Compressor};
use crate::digest::{Digest, DigestWriter};

/// What an image needs to know about a layer blob once it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayerDigests {
    /// How the blob is compressed.
    pub compression: Compression,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Size of the uncompressed tar in bytes.
    pub uncompressed_size: u64,
    /// Digest of the blob as stored and pushed (the manifest's layer descriptor digest).
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
}

/// A writer taking an uncompressed layer tar and writing the compressed blob to a sink, while
/// computing the diffID and the blob digest and size.
pub struct LayerBlobWriter<W: Write> {
    inner: Pipeline<W>,
}

enum Pipeline<W: Write> {
    /// Uncompressed: the blob is the tar, so one digest serves as both.
    Plain(DigestWriter<W>),
    Compressed(Box<DigestWriter<Compressor<DigestWriter<W>>>>),
}

impl<W: Write> LayerBlobWriter<W> {
    /// A pipeline writing `compression`-compressed output to `sink`.
    pub fn new(sink: W, compression: Compression, options: &CompressOptions) -> io::Result<Self> {
        let inner = match compression {
            Compression::None => Pipeline::Plain(DigestWriter::new(sink)),
            Compression::Gzip | Compression::Zstd => {
                let blob = DigestWriter::new(sink);
                Pipeline::Compressed(Box::new(DigestWriter::new(Compressor::new(
                    blob,
                    compression,
                    options,
                )?)))
            }
        };
        Ok(Self { inner })
    }

    /// Number of uncompressed bytes written so far.
    #[must_use]
    pub fn uncompressed_size(&self) -> u64 {
        match &self.inner {
            Pipeline::Plain(writer) => writer.size(),
            Pipeline::Compressed(writer) => writer.size(),
        }
    }

    /// Finishes compression, flushes the sink and returns it with the digests.
    pub fn finish(self) -> io::Result<(W, LayerDigests)> {
        match self.inner {
            Pipeline::Plain(writer) => {
                let (sink, tar) = writer.finish()?;
                Ok((
                    sink,
                    LayerDigests {
                        compression: Compression::None,
                        diff_id: tar.digest,
                        uncompressed_size: tar.size,
                        digest: tar.digest,
                        size: tar.size,
                    },
                ))
            }
            Pipeline::Compressed(writer) => {
                let (compressor, tar) = (*writer).finish()?;
                let compression = compressor.compression();
                let (sink, blob) = compressor.finish()?.finish()?;
                Ok((
                    sink,
                    LayerDigests {
                        compression,
                        diff_id: tar.digest,
                        uncompressed_size: tar.size,
                        digest: blob.digest,
                        size: blob.size,
                    },
                ))
            }
        }
    }
}

impl<W: Write> Write for LayerBlobWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Pipeline::Plain(writer) => writer.write(buf),
            Pipeline::Compressed(writer) => writer.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            Pipeline::Plain(writer) => writer.write_all(buf),
            Pipeline::Compressed(writer) => writer.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Pipeline::Plain(writer) => writer.flush(),
            Pipeline::Compressed(writer) => writer.flush(),
        }
    }
}

impl<W: Write> fmt::Debug for LayerBlobWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerBlobWriter")
            .field("uncompressed_size", &self.uncompressed_size())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::compression::Decompressor;

    #[test]
    fn digests_match_the_bytes_on_both_sides() {
        let tar: Vec<u8> = (0..1_000_000u32).map(|i| (i % 97) as u8).collect();
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut writer =
                LayerBlobWriter::new(Vec::new(), compression, &CompressOptions::default()).unwrap();
            for chunk in tar.chunks(100_003) {
                writer.write_all(chunk).unwrap();
            }
            assert_eq!(writer.uncompressed_size(), tar.len() as u64);
            let (blob, digests) = writer.finish().unwrap();
            assert_eq!(digests.compression, compression);
            assert_eq!(digests.diff_id, Digest::sha256(&tar));
            assert_eq!(digests.uncompressed_size, tar.len() as u64);
            assert_eq!(digests.digest, Digest::sha256(&blob));
            assert_eq!(digests.size, blob.len() as u64);
            if compression != Compression::None {
                assert!(
                    blob.len() < tar.len() / 10,
                    "{compression} did not compress"
                );
            }
            let mut back = Vec::new();
            Decompressor::new(&blob[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, tar);
        }
    }
}
