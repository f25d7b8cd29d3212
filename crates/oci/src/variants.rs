//! Compressed variants of stored layers, made on demand and remembered: built layers are stored as plain tars (the
//! diffID is the blob digest, no deflate at build time), and a push or an OCI export asks for gzip (or zstd) here.
//!
//! As BuildKit's lazy blobs: a layer already in the wanted compression is used as it is; otherwise a variant
//! recorded in the layer's record (`layers-v1/…` `"variants": {"gzip": "sha256:…"}`) is reused if its blob is still
//! stored; otherwise the layer is compressed once, stored with the same [`LayerInfo`] (diffID and sizes), and
//! recorded. A variant whose blob was pruned counts as absent, so prune needs to know nothing about variants.
//! Compression is deterministic (fixed gzip block offsets, zstd's multithreaded mode at any worker count), so two
//! stores holding the same layer make the same variant, and a reproducible build pushes the same manifest digest.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Write};
use std::sync::Mutex;

use hoist_layer::{CompressOptions, Compressor, Decompressor};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use crate::blob::{BlobInfo, IO_BUFFER};
use crate::canonical::{encode_index, encode_manifest};
use crate::digest::{DigestExt, digest_from_oci};
use crate::layer_info::LayerBlob;
use crate::media_type::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, ManifestFormat, MediaKind, classify, classify_str,
};
use crate::{Compression, Digest, Error, Expected, Result, Store};

/// How the layers of an image are compressed for a push or an export: BuildKit's exporter options `compression`,
/// `compression-level` and `force-compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerCompression {
    /// The compression for layers stored uncompressed (default gzip).
    pub compression: Compression,
    /// The level for newly compressed layers: gzip 0–9, zstd 1–22; `None` is the default (gzip 6, zstd 3).
    pub level: Option<i32>,
    /// Also convert layers already compressed another way (a pulled gzip layer to zstd, say). Without it they are
    /// sent as they are, as BuildKit does.
    pub force: bool,
}

impl LayerCompression {
    /// The compression `current` (a layer's) becomes: itself when it is the wanted one or, without `force`, when it
    /// is compressed at all.
    #[must_use]
    pub fn target_for(&self, current: Compression) -> Compression {
        if current == self.compression || (!self.force && current != Compression::None) {
            current
        } else {
            self.compression
        }
    }

    /// The name a variant made with these settings is recorded under: the compression's name (`gzip`, `zstd`,
    /// `none`), with `-<level>` for an explicit level, so a variant is only reused for the bytes it really has.
    fn variant_key(compression: Compression, level: Option<i32>) -> String {
        match level {
            Some(level) => format!("{}-{level}", compression.name()),
            None => compression.name().to_owned(),
        }
    }
}

/// What [`Store::compressed_image_with`] reports as it goes, per layer (named by its stored digest, `source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompressProgress {
    /// A layer starts compressing (no recorded variant to reuse).
    Started {
        /// The stored layer.
        source: Digest,
        /// Its stored size: the bytes to read.
        size: u64,
    },
    /// Bytes of the stored layer read (and compressed) so far, each time that passes a multiple of
    /// [`PROGRESS_STEP`].
    Progress {
        /// The stored layer.
        source: Digest,
        /// Bytes read so far.
        read: u64,
        /// Its stored size.
        size: u64,
    },
    /// A layer's blob for the new manifest is stored: a new variant, a recorded one, or the layer itself when it
    /// needs no conversion (those come first, before any compression starts). A push can upload it at once.
    Ready {
        /// The stored layer.
        source: Digest,
        /// The blob the new manifest names for it.
        blob: BlobInfo,
    },
}

/// A layer's [`CompressProgress::Progress`] is reported each time this many more bytes of it were read.
pub const PROGRESS_STEP: u64 = 8 * 1024 * 1024;

/// Layers compressed at once by [`Store::compressed_image`]. Each compression uses every core already; a few at
/// once keep the cores busy through the serial parts (a gzip trailer, small layers, reading the source).
const CONCURRENT_LAYERS: usize = 3;

/// Layers compressed at once by [`Store::compressed_image_with`]: one, in manifest order, so the first layer is
/// ready (and its upload under way, using the cores' slack) after one layer's compression instead of after three.
const PIPELINED_LAYERS: usize = 1;

impl Store {
    /// The layer blob `digest` in `compression`: the blob itself if it has that compression already, else its
    /// recorded variant (protected in this handle's lease, so a concurrent prune cannot delete it before use), else
    /// a new variant compressed now with all cores at `level` (see [`LayerCompression::level`]), stored with the
    /// layer's [`LayerInfo`](crate::LayerInfo) and recorded in its layer record. A compressed source is decompressed
    /// first (gzip to zstd, or to a plain tar).
    pub fn compressed_layer(
        &self,
        digest: &Digest,
        compression: Compression,
        level: Option<i32>,
    ) -> Result<LayerBlob> {
        self.compressed_layer_with(digest, compression, level, &|_| {})
    }

    /// [`compressed_layer`](Store::compressed_layer), reporting a compression's start and progress (not
    /// [`CompressProgress::Ready`]: the caller knows when this returns).
    fn compressed_layer_with(
        &self,
        digest: &Digest,
        compression: Compression,
        level: Option<i32>,
        on_progress: &(dyn Fn(CompressProgress) + Sync),
    ) -> Result<LayerBlob> {
        let Some(source) = self.reuse_existing(&Expected::digest(*digest))? else {
            return Err(Error::BlobNotFound { digest: *digest });
        };
        let source = self.existing_layer(source)?;
        if source.compression == compression {
            return Ok(source);
        }
        let key = LayerCompression::variant_key(compression, level);
        if let Some(record) = self.layer_record(digest)?
            && let Some(variant) = record.variants.get(&key)
            && let Some(blob) = self.reuse_existing(&Expected::digest(*variant))?
        {
            let info = self.ensure_layer_info(&blob.digest)?;
            return Ok(LayerBlob {
                blob,
                compression,
                info,
            });
        }
        let blob = self.compress_blob(&source, compression, level, on_progress)?;
        let verified = self.layer_diff_id_verified(digest)?;
        self.write_layer_record(&blob.digest, &source.info, verified)?;
        self.record_variant(digest, &key, &blob.digest)?;
        Ok(LayerBlob {
            blob,
            compression,
            info: source.info,
        })
    }

    /// The variant of layer `digest` in `compression` at the default level, if one is recorded and its blob is
    /// stored; nothing is compressed. For reports (`hoist sizes`): the blob is not protected from prune.
    pub fn recorded_variant(
        &self,
        digest: &Digest,
        compression: Compression,
    ) -> Result<Option<BlobInfo>> {
        let key = LayerCompression::variant_key(compression, None);
        let Some(variant) = self
            .layer_record(digest)?
            .and_then(|record| record.variants.get(&key).copied())
        else {
            return Ok(None);
        };
        Ok(self.stat_blob(&variant)?.map(|size| BlobInfo {
            digest: variant,
            size,
        }))
    }

    /// Writes `source` (decompressed) into a new blob in `compression`.
    fn compress_blob(
        &self,
        source: &LayerBlob,
        compression: Compression,
        level: Option<i32>,
        on_progress: &(dyn Fn(CompressProgress) + Sync),
    ) -> Result<BlobInfo> {
        let digest = source.blob.digest;
        let size = source.blob.size;
        on_progress(CompressProgress::Started {
            source: digest,
            size,
        });
        let mut options = CompressOptions::default();
        if let Some(level) = level {
            options = options
                .with_gzip_level(u32::try_from(level).unwrap_or(0))
                .with_zstd_level(level);
        }
        let file = ReadMeter {
            inner: self.open_blob(&digest)?,
            read: 0,
            reported: 0,
            report: |read| {
                on_progress(CompressProgress::Progress {
                    source: digest,
                    read,
                    size,
                });
            },
        };
        let file = BufReader::with_capacity(IO_BUFFER, file);
        let read_error = |source| Error::ReadBlob { digest, source };
        let mut tar = Decompressor::new(file).map_err(read_error)?;
        let writer = self.blob_writer()?;
        let ingest_dir = self.layout().ingest_dir();
        let write_error = |source| Error::WriteIngest {
            path: ingest_dir.clone(),
            source,
        };
        let mut compressor = Compressor::new(writer, compression, &options).map_err(write_error)?;
        copy(&mut tar, &mut compressor).map_err(|error| match error {
            Copied::Read(source) => read_error(source),
            Copied::Write(source) => write_error(source),
        })?;
        let writer = compressor.finish().map_err(write_error)?;
        writer.commit(&Expected::unknown())
    }

    /// `target` (a manifest or an index, as stored) with its layers compressed as `options` say ([`compressed_layer`]
    /// for each, several at once): the same descriptor when nothing changes, else a new manifest (and index) blob
    /// in the store, with the same config, so the image ID is unchanged. Layers are given the media type of their
    /// compression in the manifest's family (OCI or Docker); foreign and non-distributable layers stay as they are.
    /// Children of an index that are not stored (other platforms of a pulled image) are left as they are.
    ///
    /// [`compressed_layer`]: Store::compressed_layer
    pub fn compressed_image(
        &self,
        target: &Descriptor,
        options: &LayerCompression,
    ) -> Result<Descriptor> {
        self.compress_image(target, options, CONCURRENT_LAYERS, &|_| {})
    }

    /// [`compressed_image`](Store::compressed_image), telling `on_progress` (from the compressing threads) when
    /// each layer starts compressing, how far it got, and when its blob for the new manifest is ready, so a push
    /// can upload a layer while the next ones are still compressing. The layers are compressed one at a time, in
    /// manifest order, each with all cores ([`compressed_image`](Store::compressed_image) does three at once); the
    /// bytes, and so the result, are the same.
    pub fn compressed_image_with(
        &self,
        target: &Descriptor,
        options: &LayerCompression,
        on_progress: &(dyn Fn(CompressProgress) + Sync),
    ) -> Result<Descriptor> {
        self.compress_image(target, options, PIPELINED_LAYERS, on_progress)
    }

    /// [`compressed_image_with`](Store::compressed_image_with), `at_once` layers at a time.
    fn compress_image(
        &self,
        target: &Descriptor,
        options: &LayerCompression,
        at_once: usize,
        on_progress: &(dyn Fn(CompressProgress) + Sync),
    ) -> Result<Descriptor> {
        let digest = digest_from_oci(target.digest())?;
        match classify(target.media_type()) {
            MediaKind::Manifest => {
                self.compressed_manifest(target, &digest, options, at_once, on_progress)
            }
            MediaKind::Index => {
                let mut index: ImageIndex = self.read_index(&digest)?;
                let mut changed = false;
                let mut children = index.manifests().clone();
                for child in &mut children {
                    let child_digest = digest_from_oci(child.digest())?;
                    if classify(child.media_type()) != MediaKind::Manifest
                        || !self.has_blob(&child_digest)
                    {
                        continue;
                    }
                    let manifest = self.read_manifest(&child_digest)?;
                    let all_stored = manifest.layers().iter().all(|layer| {
                        digest_from_oci(layer.digest()).is_ok_and(|d| self.has_blob(&d))
                    });
                    if !all_stored {
                        continue;
                    }
                    let converted = self.compressed_manifest(
                        child,
                        &child_digest,
                        options,
                        at_once,
                        on_progress,
                    )?;
                    if converted.digest() != child.digest() {
                        *child = converted;
                        changed = true;
                    }
                }
                if !changed {
                    return Ok(target.clone());
                }
                index.set_manifests(children);
                let bytes = encode_index(&index)?;
                let blob = self.ingest_bytes(&bytes)?;
                Ok(with_blob(target, &blob))
            }
            _ => Ok(target.clone()),
        }
    }

    fn compressed_manifest(
        &self,
        descriptor: &Descriptor,
        digest: &Digest,
        options: &LayerCompression,
        at_once: usize,
        on_progress: &(dyn Fn(CompressProgress) + Sync),
    ) -> Result<Descriptor> {
        let mut manifest: ImageManifest = self.read_manifest(digest)?;
        let format = match descriptor.media_type().as_ref() {
            DOCKER_MANIFEST | DOCKER_MANIFEST_LIST => ManifestFormat::Docker,
            _ => match manifest.media_type().as_ref().map(AsRef::<str>::as_ref) {
                Some(DOCKER_MANIFEST) => ManifestFormat::Docker,
                _ => ManifestFormat::Oci,
            },
        };
        // The layers to convert: (position, digest, wanted compression).
        let mut work = Vec::new();
        for (position, layer) in manifest.layers().iter().enumerate() {
            let media_type = layer.media_type().as_ref();
            if media_type.contains("foreign") || media_type.contains("nondistributable") {
                continue;
            }
            let MediaKind::Layer(current) = classify_str(media_type) else {
                continue;
            };
            let wanted = options.target_for(current);
            let layer_digest = digest_from_oci(layer.digest())?;
            if wanted != current {
                work.push((position, layer_digest, wanted));
            } else if self.has_blob(&layer_digest) {
                on_progress(CompressProgress::Ready {
                    source: layer_digest,
                    blob: BlobInfo {
                        digest: layer_digest,
                        size: layer.size(),
                    },
                });
            }
        }
        if work.is_empty() {
            return Ok(descriptor.clone());
        }
        let results = self.compress_layers(&work, options.level, at_once, on_progress);
        let mut layers = manifest.layers().clone();
        for ((position, _, _), result) in work.iter().zip(results) {
            let compressed = result?;
            let layer = &mut layers[*position];
            layer.set_media_type(MediaType::from(
                format.layer_media_type(compressed.compression),
            ));
            layer.set_digest(compressed.blob.digest.to_oci());
            layer.set_size(compressed.blob.size);
        }
        manifest.set_layers(layers);
        let bytes = encode_manifest(&manifest)?;
        let blob = self.ingest_bytes(&bytes)?;
        Ok(with_blob(descriptor, &blob))
    }

    /// [`compressed_layer`](Store::compressed_layer) for each `(position, digest, compression)`, up to
    /// `at_once` at a time, started in the order given; results in that order.
    fn compress_layers(
        &self,
        work: &[(usize, Digest, Compression)],
        level: Option<i32>,
        at_once: usize,
        on_progress: &(dyn Fn(CompressProgress) + Sync),
    ) -> Vec<Result<LayerBlob>> {
        let next = Mutex::new(0usize);
        let results: Vec<Mutex<Option<Result<LayerBlob>>>> =
            work.iter().map(|_| Mutex::new(None)).collect();
        let take = || {
            let mut next = next.lock().unwrap_or_else(|p| p.into_inner());
            let index = *next;
            *next += 1;
            (index < work.len()).then_some(index)
        };
        std::thread::scope(|scope| {
            for _ in 0..at_once.clamp(1, work.len().max(1)) {
                scope.spawn(|| {
                    while let Some(index) = take() {
                        let (_, digest, compression) = &work[index];
                        let result =
                            self.compressed_layer_with(digest, *compression, level, on_progress);
                        if let Ok(layer) = &result {
                            on_progress(CompressProgress::Ready {
                                source: *digest,
                                blob: layer.blob.clone(),
                            });
                        }
                        *results[index].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                    }
                });
            }
        });
        results
            .into_iter()
            .zip(work)
            .map(|(slot, (_, digest, _))| {
                slot.into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .unwrap_or_else(|| {
                        Err(Error::ReadBlob {
                            digest: *digest,
                            source: io::Error::other("the compressing thread panicked"),
                        })
                    })
            })
            .collect()
    }

    /// Records `variant` as `source`'s variant `key`. Two processes recording variants of one layer at the same
    /// time may lose one entry; that costs a recompression later, never a wrong answer (a variant is looked up by
    /// name and its blob checked).
    fn record_variant(&self, source: &Digest, key: &str, variant: &Digest) -> Result<()> {
        let Some(mut record) = self.layer_record(source)? else {
            // No record to extend (it is computed from the blob when needed): the variant is simply not remembered.
            return Ok(());
        };
        record.variants.insert(key.to_owned(), *variant);
        self.write_record(source, &record)
    }
}

/// `descriptor` (media type, platform, annotations) pointing at `blob` instead.
fn with_blob(descriptor: &Descriptor, blob: &BlobInfo) -> Descriptor {
    let mut descriptor = descriptor.clone();
    descriptor.set_digest(blob.digest.to_oci());
    descriptor.set_size(blob.size);
    descriptor
}

/// A reader counting the bytes read through it, calling `report` each time the count passes a multiple of
/// [`PROGRESS_STEP`].
struct ReadMeter<R, F> {
    inner: R,
    read: u64,
    reported: u64,
    report: F,
}

impl<R: Read, F: Fn(u64)> Read for ReadMeter<R, F> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.read += n as u64;
        // Once per multiple of the step crossed (reads are far smaller than a step).
        if self.read / PROGRESS_STEP > self.reported / PROGRESS_STEP {
            self.reported = self.read;
            (self.report)(self.read);
        }
        Ok(n)
    }
}

/// Why [`copy`] stopped.
enum Copied {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `reader` to `writer` in large pieces, telling read errors from write errors.
fn copy(reader: &mut impl Read, writer: &mut impl Write) -> std::result::Result<(), Copied> {
    let mut buffer = vec![0; 1024 * 1024];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(Copied::Read(error)),
        };
        writer.write_all(&buffer[..n]).map_err(Copied::Write)?;
    }
}

/// The variants recorded for a layer, by name (for `hoist check` and tests).
pub(crate) type Variants = BTreeMap<String, Digest>;
