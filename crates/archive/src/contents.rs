//! The files of an image archive, as the format readers see them: small metadata files by name, and blobs that are
//! already in the store.
//!
//! A tar stream is read once, in whatever order its entries come (`docker save` writes the manifest last, skopeo
//! first): metadata files are kept in memory, everything else is streamed straight into the store while it is read,
//! hashed on the way, and layers are decompressed and measured in the same pass. An unpacked layout directory is
//! read on demand instead, so only what a manifest references is copied. Nothing is ever written outside the store.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use hoist_oci::{BlobInfo, Compression, Expected, LayerBlob, Store};

use crate::Error;
use crate::path::{MAX_LINK_HOPS, normalize, resolve_in_dir, resolve_symlink};

/// Largest metadata file (`manifest.json`, `index.json`, …) read into memory.
pub(crate) const MAX_METADATA: u64 = 16 * 1024 * 1024;

/// Read buffer for archives and blobs.
const IO_BUFFER: usize = 128 * 1024;

/// The files of an archive being loaded (see the module docs).
pub(crate) trait Contents {
    /// A small metadata file, or `None` if the archive has no file of that name.
    fn metadata(&mut self, name: &str) -> Result<Option<Vec<u8>>, Error>;

    /// The named file as a blob in the store, checked against `expected`.
    fn blob(&mut self, name: &str, expected: &Expected) -> Result<BlobInfo, Error>;

    /// The named file as a layer blob in the store (with its compression and diffID), checked against `expected`.
    fn layer(&mut self, name: &str, expected: &Expected) -> Result<LayerBlob, Error>;

    /// The store the files go into (manifests and configs are read back from it).
    fn store(&self) -> &Store;
}

/// What a tar entry became.
#[derive(Debug)]
enum TarFile {
    /// A metadata file, kept in memory.
    Metadata(Vec<u8>),
    /// A file streamed into the store; `layer` is known when it was ingested as a layer.
    Blob {
        blob: BlobInfo,
        layer: Option<LayerBlob>,
    },
    /// A symbolic or hard link to another name (normalised, inside the archive).
    Link(String),
    /// A directory.
    Directory,
    /// A link pointing outside the archive. Harmless while unused (nothing is extracted), so it is an error only
    /// when a manifest reaches it; a rootfs tarball given to `load` by mistake then says what it is not.
    UnsafeLink { target: String },
    /// An entry type no image format uses (device, fifo); an error only when a manifest reaches it.
    Unsupported { kind: String },
}

/// What a name resolves to once links are followed.
enum Resolved<'a> {
    Metadata(&'a [u8]),
    Blob {
        blob: &'a BlobInfo,
        layer: Option<&'a LayerBlob>,
    },
    Directory,
}

/// A tar archive read once into the store (see the module docs).
#[derive(Debug)]
pub(crate) struct TarContents<'s> {
    store: &'s Store,
    files: BTreeMap<String, TarFile>,
}

impl<'s> TarContents<'s> {
    /// Reads every entry of `reader` (a plain tar stream; see [`decompress`] for compressed input).
    pub(crate) fn scan(store: &'s Store, reader: impl Read) -> Result<Self, Error> {
        let mut archive = tar::Archive::new(reader);
        let mut files = BTreeMap::new();
        let entries = archive
            .entries()
            .map_err(|source| Error::ReadArchive { source })?;
        for entry in entries {
            let mut entry = entry.map_err(|source| Error::ReadArchive { source })?;
            let raw_name = entry.path_bytes();
            let raw_name = std::str::from_utf8(&raw_name)
                .map_err(|_| Error::UnsafeName {
                    name: String::from_utf8_lossy(&raw_name).into_owned(),
                    reason: "name is not UTF-8",
                })?
                .to_owned();
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                // The archive root itself (`./`) is a directory entry too.
                if let Ok(name) = normalize(&raw_name) {
                    files.insert(name, TarFile::Directory);
                }
                continue;
            }
            let name = normalize(&raw_name)?;
            let file = match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if is_metadata_name(&name) {
                        TarFile::Metadata(read_metadata(&name, entry.size(), &mut entry)?)
                    } else {
                        ingest_entry(store, &name, &mut entry)?
                    }
                }
                tar::EntryType::Symlink => {
                    let target = link_target(&entry);
                    match resolve_symlink(&name, &target) {
                        Ok(resolved) => TarFile::Link(resolved),
                        Err(_) => TarFile::UnsafeLink { target },
                    }
                }
                tar::EntryType::Link => {
                    // Hard link targets are archive names, not relative to the link.
                    let target = link_target(&entry);
                    match normalize(&target) {
                        Ok(resolved) => TarFile::Link(resolved),
                        Err(_) => TarFile::UnsafeLink { target },
                    }
                }
                other => TarFile::Unsupported {
                    kind: format!("{other:?}"),
                },
            };
            files.insert(name, file);
        }
        Ok(Self { store, files })
    }

    /// Follows links from `name` to a file; `None` if nothing has that name.
    fn lookup(&self, name: &str) -> Result<Option<(&str, Resolved<'_>)>, Error> {
        let mut current = normalize(name)?;
        for _ in 0..=MAX_LINK_HOPS {
            let Some((key, file)) = self.files.get_key_value(&current) else {
                return Ok(None);
            };
            let resolved = match file {
                TarFile::Link(target) => {
                    current = target.clone();
                    continue;
                }
                TarFile::UnsafeLink { target } => {
                    return Err(Error::UnsafeLink {
                        name: key.clone(),
                        target: target.clone(),
                    });
                }
                TarFile::Unsupported { kind } => {
                    return Err(Error::UnsupportedEntry {
                        name: key.clone(),
                        kind: kind.clone(),
                    });
                }
                TarFile::Metadata(bytes) => Resolved::Metadata(bytes),
                TarFile::Blob { blob, layer } => Resolved::Blob {
                    blob,
                    layer: layer.as_ref(),
                },
                TarFile::Directory => Resolved::Directory,
            };
            return Ok(Some((key.as_str(), resolved)));
        }
        Err(Error::LinkLoop {
            name: name.to_owned(),
        })
    }

    fn stored(&self, name: &str) -> Result<(BlobInfo, Option<LayerBlob>), Error> {
        match self.lookup(name)? {
            Some((_, Resolved::Blob { blob, layer })) => Ok((blob.clone(), layer.cloned())),
            Some((_, Resolved::Metadata(bytes))) => {
                // A metadata-named file used as a blob (unusual, but a name is just a name): store it now.
                let blob = self
                    .store
                    .ingest_bytes(bytes)
                    .map_err(|source| Error::Store { source })?;
                Ok((blob, None))
            }
            Some((found, Resolved::Directory)) => Err(Error::NotAFile {
                name: found.to_owned(),
            }),
            None => Err(Error::MissingFile {
                name: name.to_owned(),
            }),
        }
    }
}

impl Contents for TarContents<'_> {
    fn metadata(&mut self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.lookup(name)? {
            None => Ok(None),
            Some((_, Resolved::Metadata(bytes))) => Ok(Some(bytes.to_vec())),
            Some((found, Resolved::Blob { blob, .. })) => {
                if blob.size > MAX_METADATA {
                    return Err(Error::MetadataTooLarge {
                        name: found.to_owned(),
                        size: blob.size,
                        limit: MAX_METADATA,
                    });
                }
                let bytes = self
                    .store
                    .read_blob(&blob.digest)
                    .map_err(|source| Error::Store { source })?;
                Ok(Some(bytes))
            }
            Some((found, Resolved::Directory)) => Err(Error::NotAFile {
                name: found.to_owned(),
            }),
        }
    }

    fn blob(&mut self, name: &str, expected: &Expected) -> Result<BlobInfo, Error> {
        let (blob, _) = self.stored(name)?;
        check_expected(name, &blob, expected)?;
        Ok(blob)
    }

    fn layer(&mut self, name: &str, expected: &Expected) -> Result<LayerBlob, Error> {
        let (blob, layer) = self.stored(name)?;
        check_expected(name, &blob, expected)?;
        match layer {
            Some(layer) => Ok(layer),
            None => measure_stored_layer(self.store, name, blob),
        }
    }

    fn store(&self) -> &Store {
        self.store
    }
}

/// An unpacked image layout directory (an OCI layout as `skopeo copy … oci:DIR` writes it, or an unpacked
/// docker-archive), read on demand.
#[derive(Debug)]
pub(crate) struct DirContents<'s> {
    store: &'s Store,
    root: PathBuf,
}

impl<'s> DirContents<'s> {
    pub(crate) fn new(store: &'s Store, root: &Path) -> Self {
        Self {
            store,
            root: root.to_owned(),
        }
    }

    fn open(&self, name: &str) -> Result<Option<(PathBuf, File)>, Error> {
        let Some(path) = resolve_in_dir(&self.root, name)? else {
            return Ok(None);
        };
        if path.is_dir() {
            return Err(Error::NotAFile {
                name: name.to_owned(),
            });
        }
        let file = File::open(&path).map_err(|source| Error::ReadInput {
            path: path.clone(),
            source,
        })?;
        Ok(Some((path, file)))
    }

    fn open_existing(&self, name: &str) -> Result<(PathBuf, File), Error> {
        self.open(name)?.ok_or_else(|| Error::MissingFile {
            name: name.to_owned(),
        })
    }
}

impl Contents for DirContents<'_> {
    fn metadata(&mut self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let Some((path, mut file)) = self.open(name)? else {
            return Ok(None);
        };
        let size = file
            .metadata()
            .map_err(|source| Error::ReadInput {
                path: path.clone(),
                source,
            })?
            .len();
        let bytes = read_metadata(name, size, &mut file).map_err(|error| match error {
            Error::ReadArchive { source } => Error::ReadInput { path, source },
            other => other,
        })?;
        Ok(Some(bytes))
    }

    fn blob(&mut self, name: &str, expected: &Expected) -> Result<BlobInfo, Error> {
        let (_, file) = self.open_existing(name)?;
        self.store
            .ingest(
                BufReader::with_capacity(IO_BUFFER, file),
                &with_name_digest(name, expected),
            )
            .map_err(|source| Error::Blob {
                name: name.to_owned(),
                source,
            })
    }

    fn layer(&mut self, name: &str, expected: &Expected) -> Result<LayerBlob, Error> {
        let (_, file) = self.open_existing(name)?;
        self.store
            .ingest_layer(
                BufReader::with_capacity(IO_BUFFER, file),
                &with_name_digest(name, expected),
            )
            .map_err(|source| Error::Blob {
                name: name.to_owned(),
                source,
            })
    }

    fn store(&self) -> &Store {
        self.store
    }
}

/// Wraps `reader` in a gzip or zstd decoder when its first bytes say it is compressed (`docker save | gzip`).
pub(crate) fn decompress<'r>(reader: impl Read + 'r) -> Result<impl Read + 'r, Error> {
    let buffered = BufReader::with_capacity(IO_BUFFER, reader);
    hoist_layer::Decompressor::new(buffered).map_err(|source| Error::ReadArchive { source })
}

/// Peeks at up to `n` bytes without consuming them. A `BufReader` of at least `n` bytes capacity only returns
/// fewer than `n` at the end of the stream.
fn fill_prefix(reader: &mut impl BufRead, n: usize) -> io::Result<Vec<u8>> {
    let buf = reader.fill_buf()?;
    Ok(buf[..buf.len().min(n)].to_vec())
}

/// Metadata files are the fixed top-level names of both formats, and the legacy per-layer `<id>/json` and
/// `<id>/VERSION` files of docker-archive; everything else is content.
fn is_metadata_name(name: &str) -> bool {
    match name.split_once('/') {
        None => matches!(
            name,
            "manifest.json" | "index.json" | "oci-layout" | "repositories"
        ),
        Some((dir, file)) => {
            dir != "blobs" && !file.contains('/') && matches!(file, "json" | "VERSION")
        }
    }
}

fn read_metadata(name: &str, size: u64, reader: &mut impl Read) -> Result<Vec<u8>, Error> {
    if size > MAX_METADATA {
        return Err(Error::MetadataTooLarge {
            name: name.to_owned(),
            size,
            limit: MAX_METADATA,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    reader
        .take(MAX_METADATA + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::ReadArchive { source })?;
    if bytes.len() as u64 > MAX_METADATA {
        return Err(Error::MetadataTooLarge {
            name: name.to_owned(),
            size: bytes.len() as u64,
            limit: MAX_METADATA,
        });
    }
    Ok(bytes)
}

/// A link's target as text (lossy: a non-UTF-8 target cannot name a file of an image archive anyway).
fn link_target(entry: &tar::Entry<'_, impl Read>) -> String {
    entry
        .link_name_bytes()
        .map(|target| String::from_utf8_lossy(&target).into_owned())
        .unwrap_or_default()
}

/// The digest a name under `blobs/sha256/` promises; other names promise nothing.
fn expected_for_name(name: &str) -> Expected {
    name.strip_prefix("blobs/sha256/")
        .and_then(|hex| format!("sha256:{hex}").parse().ok())
        .map_or_else(Expected::unknown, Expected::digest)
}

/// `expected`, or, when it names no digest, the digest the file's name promises.
fn with_name_digest(name: &str, expected: &Expected) -> Expected {
    if expected.digest.is_some() {
        return expected.clone();
    }
    Expected {
        digest: expected_for_name(name).digest,
        size: expected.size,
    }
}

/// The layer metadata of a blob that was stored as plain content (its first block did not look like a layer):
/// computed from the store, with the compression read from its magic bytes.
fn measure_stored_layer(store: &Store, name: &str, blob: BlobInfo) -> Result<LayerBlob, Error> {
    let wrap = |source| Error::Blob {
        name: name.to_owned(),
        source,
    };
    let info = store.ensure_layer_info(&blob.digest).map_err(wrap)?;
    let file = store.open_blob(&blob.digest).map_err(wrap)?;
    let mut prefix = Vec::with_capacity(4);
    file.take(4)
        .read_to_end(&mut prefix)
        .map_err(|source| Error::ReadStored {
            digest: blob.digest,
            source,
        })?;
    Ok(LayerBlob {
        compression: Compression::detect(&prefix),
        blob,
        info,
    })
}

/// Streams one tar entry into the store. Whether it is a layer is not known yet (the manifest may come later), so
/// its first block decides: compressed data or a tar header is ingested as a layer (diffID computed in the same
/// pass); anything else (JSON) as a plain blob. A layer that slipped through as a plain blob is measured later,
/// from the store, if a manifest uses it.
fn ingest_entry(store: &Store, name: &str, entry: &mut impl Read) -> Result<TarFile, Error> {
    let expected = expected_for_name(name);
    let mut buffered = BufReader::with_capacity(IO_BUFFER, entry);
    let prefix = fill_prefix(&mut buffered, 512).map_err(|source| Error::ReadArchive { source })?;
    // A failure to read the entry is a damaged archive (truncated, bad compression), not a store problem.
    let wrap = |source| match source {
        hoist_oci::Error::ReadSource { source, .. } => Error::ReadArchive { source },
        source => Error::Blob {
            name: name.to_owned(),
            source,
        },
    };
    if looks_like_layer(&prefix) {
        let layer = store.ingest_layer(buffered, &expected).map_err(wrap)?;
        Ok(TarFile::Blob {
            blob: layer.blob.clone(),
            layer: Some(layer),
        })
    } else {
        let blob = store.ingest(buffered, &expected).map_err(wrap)?;
        Ok(TarFile::Blob { blob, layer: None })
    }
}

/// gzip or zstd magic, a ustar/GNU tar header, or the all-zero block of an empty tar.
fn looks_like_layer(prefix: &[u8]) -> bool {
    if Compression::detect(prefix) != Compression::None {
        return true;
    }
    if prefix.len() < 512 {
        return false;
    }
    prefix[257..262] == *b"ustar" || prefix.iter().all(|&b| b == 0)
}

fn check_expected(name: &str, blob: &BlobInfo, expected: &Expected) -> Result<(), Error> {
    if let Some(digest) = &expected.digest
        && *digest != blob.digest
    {
        return Err(Error::DigestMismatch {
            name: name.to_owned(),
            expected: *digest,
            actual: blob.digest,
        });
    }
    if let Some(size) = expected.size
        && size != blob.size
    {
        return Err(Error::SizeMismatch {
            name: name.to_owned(),
            expected: size,
            actual: blob.size,
        });
    }
    Ok(())
}
