//! Per-layer metadata: diffID and sizes, recorded at ingest so listing never decompresses.

use std::fs;
use std::io::{self, Read, Write};

use hoist_layer::{Compression, Decompressor, DigestReader};
use serde::{Deserialize, Serialize};

use crate::blob::{BlobInfo, BlobWriter, Expected, IO_BUFFER};
use crate::layout::write_atomically;
use crate::lock::LockMode;
use crate::{Digest, Error, Result, Store};

/// What the store knows about a layer blob beyond its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerInfo {
    /// SHA-256 of the uncompressed tar stream (the config's `rootfs.diff_ids` entry).
    #[serde(rename = "diffID")]
    pub diff_id: Digest,
    /// Length of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// The layer's size as `docker images` counts it: the bytes of its regular files plus the length of its
    /// symlink targets, hard links counted once. This is what Docker's classic store (overlay2) measures after
    /// unpacking (moby `pkg/directory.Size` over the layer's diff directory), and so what `hoist images` sums.
    pub content_size: u64,
}

/// A layer blob just ingested, with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// The blob as stored (compressed, if it was).
    pub blob: BlobInfo,
    /// The compression found by its magic bytes.
    pub compression: Compression,
    /// diffID and sizes.
    pub info: LayerInfo,
}

impl Store {
    /// Ingests a layer blob (plain, gzip or zstd tar; recognised by magic bytes) and records its [`LayerInfo`], in
    /// one pass: the bytes are stored and hashed as they are read, and decompressed and walked as tar on the way.
    ///
    /// If `expected` names a stored blob whose info is known, nothing is read.
    pub fn ingest_layer(&self, reader: impl Read, expected: &Expected) -> Result<LayerBlob> {
        if let Some(blob) = self.reuse_existing(expected)? {
            return self.existing_layer(blob);
        }
        let mut writer = self.blob_writer()?;
        let mut source = Tee {
            reader,
            writer: &mut writer,
            read_error: None,
            write_error: None,
            limit: expected.size,
        };
        let scanned = scan(&mut source).and_then(|scanned| {
            // Bytes after the end of the compressed stream (or the tar end) are part of the blob too.
            io::copy(&mut source, &mut io::sink())?;
            Ok(scanned)
        });
        let (read_error, write_error) = (source.read_error.take(), source.write_error.take());
        let (compression, info) = match (read_error, write_error, scanned) {
            (Some(source), _, _) => {
                return Err(Error::ReadSource {
                    expected: describe(expected),
                    source,
                });
            }
            (None, Some(source), _) => {
                return Err(Error::WriteIngest {
                    path: self.layout().ingest_dir(),
                    source,
                });
            }
            (None, None, Err(source)) => {
                if let Some(limit) = expected.size
                    && writer.written() > limit
                {
                    return Err(Error::SizeMismatch {
                        digest: describe(expected),
                        expected: limit,
                        actual: writer.written(),
                    });
                }
                return Err(Error::ScanLayer {
                    layer: describe(expected),
                    source,
                });
            }
            (None, None, Ok(scanned)) => scanned,
        };
        let blob = writer.commit(expected)?;
        self.set_layer_info(&blob.digest, &info)?;
        Ok(LayerBlob {
            blob,
            compression,
            info,
        })
    }

    fn existing_layer(&self, blob: BlobInfo) -> Result<LayerBlob> {
        let info = self.ensure_layer_info(&blob.digest)?;
        let mut prefix = [0; 4];
        let mut file = self.open_blob(&blob.digest)?;
        let n = read_prefix(&mut file, &mut prefix).map_err(|source| Error::ReadBlob {
            digest: blob.digest,
            source,
        })?;
        Ok(LayerBlob {
            compression: Compression::detect(&prefix[..n]),
            blob,
            info,
        })
    }

    /// The recorded metadata of a layer blob, if any.
    pub fn layer_info(&self, digest: &Digest) -> Result<Option<LayerInfo>> {
        let path = self.layout().layer_info(digest);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::ReadLayerInfo { path, source }),
        };
        // A record that does not parse is treated as missing: it is recomputed from the blob when needed.
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// Records the metadata of a stored layer blob (when the caller computed it while producing the layer).
    pub fn set_layer_info(&self, digest: &Digest, info: &LayerInfo) -> Result<()> {
        let bytes = serde_json::to_vec(info).map_err(|source| Error::Encode {
            what: "layer info",
            source,
        })?;
        // Under the shared lock: prune (exclusive) may then treat every temp file it finds as abandoned.
        let _lock = self.lock(LockMode::Shared)?;
        write_atomically(
            &self.layout().tmp_dir(),
            &self.layout().layer_info(digest),
            &bytes,
        )
    }

    /// The metadata of a stored layer blob, computing and recording it from the blob if it is not known yet.
    pub fn ensure_layer_info(&self, digest: &Digest) -> Result<LayerInfo> {
        if let Some(info) = self.layer_info(digest)? {
            return Ok(info);
        }
        let mut file = self.open_blob(digest)?;
        let (_, info) = scan(&mut file).map_err(|source| Error::ScanLayer {
            layer: digest.to_string(),
            source,
        })?;
        self.set_layer_info(digest, &info)?;
        Ok(info)
    }
}

fn describe(expected: &Expected) -> String {
    expected.digest.as_ref().map_or_else(
        || "layer with unknown digest".to_owned(),
        ToString::to_string,
    )
}

/// Passes everything read through to a blob writer, keeping the reader's and the writer's errors apart from
/// decoding errors.
struct Tee<'w, 's, R> {
    reader: R,
    writer: &'w mut BlobWriter<'s>,
    read_error: Option<io::Error>,
    write_error: Option<io::Error>,
    /// Stop early once the content is larger than announced.
    limit: Option<u64>,
}

impl<R: Read> Read for Tee<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = loop {
            match self.reader.read(buf) {
                Ok(n) => break n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.read_error = Some(error);
                    return Err(io::Error::other("reading the layer source failed"));
                }
            }
        };
        if let Err(error) = self.writer.write_all(&buf[..n]) {
            self.write_error = Some(error);
            return Err(io::Error::other("writing the layer blob failed"));
        }
        if self
            .limit
            .is_some_and(|limit| self.writer.written() > limit)
        {
            return Err(io::Error::other("layer is larger than announced"));
        }
        Ok(n)
    }
}

fn read_prefix(reader: &mut impl Read, prefix: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < prefix.len() {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Decompresses (by magic bytes) and walks a layer, returning its compression and [`LayerInfo`].
pub(crate) fn scan(reader: &mut impl Read) -> io::Result<(Compression, LayerInfo)> {
    let decompressor = Decompressor::new(io::BufReader::with_capacity(IO_BUFFER, reader))?;
    let compression = decompressor.compression();
    let mut decoded = DigestReader::new(decompressor);
    let content_size = tar_content_size(&mut decoded)?;
    let (_, digested) = decoded.finish()?;
    Ok((
        compression,
        LayerInfo {
            diff_id: digested.digest,
            uncompressed_size: digested.size,
            content_size,
        },
    ))
}

/// Walks a tar stream to its end, validating every header, and returns its [`LayerInfo::content_size`]: regular
/// file bytes plus symlink target lengths. The stream is drained past the end-of-archive blocks (and any padding a
/// tool added), because those bytes are part of the diffID that a caller may be hashing on the way.
pub fn tar_content_size(reader: &mut impl Read) -> io::Result<u64> {
    let mut archive = tar::Archive::new(&mut *reader);
    let mut content_size = 0;
    for entry in archive.entries()? {
        let entry = entry?;
        content_size += match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                entry.size()
            }
            tar::EntryType::Symlink => entry.link_name_bytes().map_or(0, |name| name.len() as u64),
            // Hard links share their target's inode; directories, devices and fifos have no size.
            _ => 0,
        };
    }
    io::copy(reader, &mut io::sink())?;
    Ok(content_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar with a 5-byte file, a hard link to it, a symlink and a directory.
    fn sample_tar() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o755);
        builder.append_data(&mut header, "etc/", &[][..]).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "etc/hello", &b"hello"[..])
            .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Link);
        header.set_size(0);
        builder
            .append_link(&mut header, "etc/again", "etc/hello")
            .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "etc/link", "hello")
            .unwrap();
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn scan_measures_like_docker() {
        let tar = sample_tar();
        for (bytes, compression) in [
            (tar.clone(), Compression::None),
            (gzip(&tar), Compression::Gzip),
            (zstd::encode_all(&tar[..], 3).unwrap(), Compression::Zstd),
        ] {
            let (found, info) = scan(&mut &bytes[..]).unwrap();
            assert_eq!(found, compression);
            assert_eq!(info.diff_id, Digest::sha256(&tar));
            assert_eq!(info.uncompressed_size, tar.len() as u64);
            // 5 bytes of file + 5 bytes of symlink target; the hard link is not counted again.
            assert_eq!(info.content_size, 10);
        }
    }

    #[test]
    fn ingest_layer_records_info_in_one_pass() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tar = sample_tar();
        let compressed = gzip(&tar);
        let layer = store
            .ingest_layer(&compressed[..], &Expected::unknown())
            .unwrap();
        assert_eq!(layer.blob.digest, Digest::sha256(&compressed));
        assert_eq!(layer.blob.size, compressed.len() as u64);
        assert_eq!(layer.compression, Compression::Gzip);
        assert_eq!(layer.info.diff_id, Digest::sha256(&tar));
        assert_eq!(store.read_blob(&layer.blob.digest).unwrap(), compressed);
        assert_eq!(
            store.layer_info(&layer.blob.digest).unwrap(),
            Some(layer.info.clone())
        );

        // Known blob: nothing is read, the same answer comes back.
        let again = store
            .ingest_layer(io::empty(), &Expected::digest(layer.blob.digest))
            .unwrap();
        assert_eq!(again, layer);
    }

    #[test]
    fn corrupt_layer_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut bad = gzip(&sample_tar());
        let middle = bad.len() / 2;
        bad[middle] ^= 0xff;
        let err = store
            .ingest_layer(&bad[..], &Expected::unknown())
            .unwrap_err();
        assert!(matches!(err, Error::ScanLayer { .. }), "{err}");
        assert!(!store.has_blob(&Digest::sha256(&bad)));
        assert_eq!(
            fs::read_dir(store.layout().ingest_dir()).unwrap().count(),
            0
        );
    }

    #[test]
    fn missing_info_is_computed_from_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tar = sample_tar();
        let blob = store.ingest_bytes(&tar).unwrap();
        assert_eq!(store.layer_info(&blob.digest).unwrap(), None);
        let info = store.ensure_layer_info(&blob.digest).unwrap();
        assert_eq!(info.diff_id, blob.digest);
        assert_eq!(store.layer_info(&blob.digest).unwrap(), Some(info));
    }
}
