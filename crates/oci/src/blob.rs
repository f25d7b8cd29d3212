//! Blobs by digest: verified ingest, reads, existence and size.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use hoist_layer::DigestWriter;
use oci_spec::image::Descriptor;

use crate::digest::digest_from_oci;
use crate::layout::{sync_dir, unique_name};
use crate::lock::{LeaseItem, LockMode, lock_new};
use crate::write_behind::WriteBehindFile;
use crate::{Digest, Error, Result, Store};

/// Buffer size for streaming blobs in and out.
pub(crate) const IO_BUFFER: usize = 128 * 1024;

/// What a blob is announced as; ingest fails, storing nothing, if the content disagrees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// The digest the content must hash to.
    pub digest: Option<Digest>,
    /// The size the content must have.
    pub size: Option<u64>,
}

impl Expected {
    /// Nothing is known in advance: the store computes the digest.
    pub fn unknown() -> Self {
        Self::default()
    }

    /// The content must hash to `digest`.
    pub fn digest(digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            size: None,
        }
    }

    /// The digest and size a descriptor announces.
    pub fn from_descriptor(descriptor: &Descriptor) -> Result<Self> {
        Ok(Self {
            digest: Some(digest_from_oci(descriptor.digest())?),
            size: Some(descriptor.size()),
        })
    }

    /// Also requires the content to be `size` bytes long.
    #[must_use]
    pub fn with_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    fn describe(&self) -> String {
        self.digest
            .as_ref()
            .map_or_else(|| "with unknown digest".to_owned(), ToString::to_string)
    }
}

/// A blob in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The SHA-256 of its bytes.
    pub digest: Digest,
    /// Its length in bytes.
    pub size: u64,
}

/// Streams a new blob into the store: bytes go to a temp file in `ingest-v1/` and into a hasher as they are
/// written; [`BlobWriter::commit`] verifies and publishes it. Dropping the writer without committing deletes the
/// temp file.
#[derive(Debug)]
pub struct BlobWriter<'s> {
    store: &'s Store,
    path: PathBuf,
    /// Hashes what reaches the buffered file; `None` once committed.
    file: Option<DigestWriter<BufWriter<WriteBehindFile>>>,
}

impl BlobWriter<'_> {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.file.as_ref().map_or(0, DigestWriter::size)
    }

    /// Syncs the content, checks it against `expected`, and moves it into place under its digest (fsyncing the
    /// directory). If a blob with that digest exists already, the new copy is discarded. The blob is protected from
    /// prune by this store handle's lease until the handle is dropped.
    pub fn commit(mut self, expected: &Expected) -> Result<BlobInfo> {
        let file = self
            .file
            .take()
            .expect("a BlobWriter holds its file until commit or drop");
        let sync =
            |file: DigestWriter<BufWriter<WriteBehindFile>>| -> io::Result<(File, hoist_layer::Digested)> {
                let (file, digested) = file.finish()?;
                let file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
                Ok((file.sync_all()?, digested))
            };
        // Keep the file open (and so flocked) until it has been renamed or discarded.
        let (_file, digested) = sync(file).map_err(|source| Error::WriteIngest {
            path: self.path.clone(),
            source,
        })?;
        let (digest, size) = (digested.digest, digested.size);
        if let Some(want) = &expected.digest
            && *want != digest
        {
            return Err(Error::DigestMismatch {
                expected: *want,
                actual: digest,
            });
        }
        if let Some(want) = expected.size
            && want != size
        {
            return Err(Error::SizeMismatch {
                digest: digest.to_string(),
                expected: want,
                actual: size,
            });
        }
        let layout = self.store.layout();
        let target = layout.blob(&digest);
        let lock = self.store.lock(LockMode::Shared)?;
        self.store
            .protect(&lock, &LeaseItem::Blob(digest.to_string()))?;
        let publish = || -> io::Result<()> {
            if target.exists() {
                return fs::remove_file(&self.path);
            }
            fs::set_permissions(&self.path, Permissions::from_mode(0o444))?;
            fs::rename(&self.path, &target)?;
            sync_dir(&layout.blobs_dir())
        };
        publish().map_err(|source| Error::CommitBlob {
            digest,
            path: target.clone(),
            source,
        })?;
        drop(lock);
        Ok(BlobInfo { digest, size })
    }
}

/// `error` with the ingest file's path in its message (the caller sees an `io::Error` through
/// `Write`, with no other way to know which file a "no space left on device" was about).
fn with_path(error: io::Error, path: &std::path::Path) -> io::Error {
    io::Error::new(error.kind(), format!("writing {}: {error}", path.display()))
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self
            .file
            .as_mut()
            .expect("a BlobWriter holds its file until commit or drop");
        file.write(buf).map_err(|e| with_path(e, &self.path))
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.flush().map_err(|e| with_path(e, &self.path)),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        if self.file.is_some() || self.path.exists() {
            // Not committed (or failed verification): the content must never become visible.
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Store {
    /// Starts writing a new blob (see [`BlobWriter`]).
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>> {
        let path = self.layout().ingest_dir().join(unique_name());
        // Created and locked under the shared store lock, so prune never sees it unlocked.
        let lock = self.lock(LockMode::Shared)?;
        let create = || -> io::Result<File> {
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            lock_new(&file)?;
            Ok(file)
        };
        let file = create().map_err(|source| Error::WriteIngest {
            path: path.clone(),
            source,
        })?;
        drop(lock);
        Ok(BlobWriter {
            store: self,
            path,
            file: Some(DigestWriter::new(BufWriter::with_capacity(
                IO_BUFFER,
                WriteBehindFile::new(file),
            ))),
        })
    }

    /// Streams `reader` into the store, verifying it against `expected`.
    ///
    /// If `expected` names a digest that is already stored (with the expected size, if given), the reader is not
    /// read at all. Reading stops with [`Error::SizeMismatch`] as soon as the content exceeds an expected size.
    pub fn ingest(&self, mut reader: impl Read, expected: &Expected) -> Result<BlobInfo> {
        if let Some(existing) = self.reuse_existing(expected)? {
            return Ok(existing);
        }
        let mut writer = self.blob_writer()?;
        let mut buf = vec![0; IO_BUFFER];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(Error::ReadSource {
                        expected: expected.describe(),
                        source,
                    });
                }
            };
            writer
                .write_all(&buf[..n])
                .map_err(|source| Error::WriteIngest {
                    path: writer.path.clone(),
                    source,
                })?;
            if let Some(limit) = expected.size
                && writer.written() > limit
            {
                return Err(Error::SizeMismatch {
                    digest: expected.describe(),
                    expected: limit,
                    actual: writer.written(),
                });
            }
        }
        writer.commit(expected)
    }

    /// Stores `bytes` (a manifest, a config) and returns its digest.
    pub fn ingest_bytes(&self, bytes: &[u8]) -> Result<BlobInfo> {
        let expected = Expected::digest(Digest::sha256(bytes)).with_size(bytes.len() as u64);
        self.ingest(bytes, &expected)
    }

    /// Whether the blob is stored; if it is, it stays protected from prune for as long as this handle lives. For
    /// content found through something prune does not follow, like a build cache entry naming a layer that no
    /// reference holds: checking with [`has_blob`](Store::has_blob) alone would let a concurrent prune delete it
    /// before it is used.
    pub fn retain_blob(&self, digest: &Digest) -> Result<bool> {
        Ok(self.reuse_existing(&Expected::digest(*digest))?.is_some())
    }

    /// If the expected blob is stored already, protects it in this handle's lease and returns it.
    pub(crate) fn reuse_existing(&self, expected: &Expected) -> Result<Option<BlobInfo>> {
        let Some(digest) = &expected.digest else {
            return Ok(None);
        };
        let lock = self.lock(LockMode::Shared)?;
        // Check and protect under one shared lock: prune cannot run in between, and once the lease names the blob
        // it survives every later prune while this handle lives.
        let Some(size) = self.stat_blob(digest)? else {
            return Ok(None);
        };
        if expected.size.is_some_and(|want| want != size) {
            return Ok(None);
        }
        self.protect(&lock, &LeaseItem::Blob(digest.to_string()))?;
        Ok(Some(BlobInfo {
            digest: *digest,
            size,
        }))
    }

    pub(crate) fn stat_blob(&self, digest: &Digest) -> Result<Option<u64>> {
        match fs::metadata(self.layout().blob(digest)) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::ReadBlob {
                digest: *digest,
                source,
            }),
        }
    }

    /// Whether the blob is stored.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.layout().blob(digest).is_file()
    }

    /// The size of a stored blob.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        self.stat_blob(digest)?
            .ok_or(Error::BlobNotFound { digest: *digest })
    }

    /// Opens a stored blob for reading. The content was verified on ingest and is not re-hashed here.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        File::open(self.layout().blob(digest)).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                Error::BlobNotFound { digest: *digest }
            } else {
                Error::ReadBlob {
                    digest: *digest,
                    source,
                }
            }
        })
    }

    /// Reads a whole stored blob into memory (for manifests and configs).
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut file = self.open_blob(digest)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|source| Error::ReadBlob {
                digest: *digest,
                source,
            })?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn ingest_files(store: &Store) -> usize {
        fs::read_dir(store.layout().ingest_dir()).unwrap().count()
    }

    #[test]
    fn ingest_stores_verified_read_only_blob() {
        let (_dir, store) = store();
        let info = store.ingest_bytes(b"hello").unwrap();
        assert_eq!(info.digest, Digest::sha256(b"hello"));
        assert_eq!(info.size, 5);
        assert!(store.has_blob(&info.digest));
        assert_eq!(store.blob_size(&info.digest).unwrap(), 5);
        assert_eq!(store.read_blob(&info.digest).unwrap(), b"hello");
        let mode = fs::metadata(store.layout().blob(&info.digest))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
        assert_eq!(ingest_files(&store), 0);
    }

    #[test]
    fn wrong_digest_is_never_visible() {
        let (_dir, store) = store();
        let claimed = Digest::sha256(b"something else");
        let err = store
            .ingest(&b"hello"[..], &Expected::digest(claimed))
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(!store.has_blob(&claimed));
        assert!(!store.has_blob(&Digest::sha256(b"hello")));
        assert_eq!(ingest_files(&store), 0);
    }

    #[test]
    fn wrong_size_is_rejected_early() {
        let (_dir, store) = store();
        let digest = Digest::sha256(b"hello");
        let err = store
            .ingest(&b"hello"[..], &Expected::digest(digest).with_size(3))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::SizeMismatch {
                    expected: 3,
                    actual: 5,
                    ..
                }
            ),
            "{err}"
        );
        let err = store
            .ingest(&b"hello"[..], &Expected::digest(digest).with_size(9))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::SizeMismatch {
                    expected: 9,
                    actual: 5,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!store.has_blob(&digest));
        assert_eq!(ingest_files(&store), 0);
    }

    #[test]
    fn existing_blob_is_not_read_again() {
        let (_dir, store) = store();
        let info = store.ingest_bytes(b"hello").unwrap();
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("must not be read"))
            }
        }
        let again = store
            .ingest(Failing, &Expected::digest(info.digest))
            .unwrap();
        assert_eq!(again, info);
        let err = store.ingest(Failing, &Expected::unknown()).unwrap_err();
        assert!(matches!(err, Error::ReadSource { .. }), "{err}");
        assert_eq!(ingest_files(&store), 0);
    }

    #[test]
    fn writer_dropped_without_commit_leaves_nothing() {
        let (_dir, store) = store();
        let mut writer = store.blob_writer().unwrap();
        writer.write_all(b"partial").unwrap();
        assert_eq!(writer.written(), 7);
        assert_eq!(ingest_files(&store), 1);
        drop(writer);
        assert_eq!(ingest_files(&store), 0);
    }

    #[test]
    fn missing_blob_is_a_clear_error() {
        let (_dir, store) = store();
        let digest = Digest::sha256(b"nope");
        let err = store.open_blob(&digest).unwrap_err();
        assert_eq!(err.to_string(), format!("blob not found: {digest}"));
        assert!(store.blob_size(&digest).is_err());
    }
}
