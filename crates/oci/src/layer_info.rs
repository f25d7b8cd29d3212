//! Per-layer metadata: diffID and sizes, recorded at ingest so listing never decompresses.

use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc;

use hoist_layer::{Compression, Decompressor, DigestReader};
use serde::{Deserialize, Serialize};

use crate::blob::{BlobInfo, BlobWriter, Expected, IO_BUFFER};
use crate::layout::{write_atomically, write_replaceable};
use crate::lock::LockMode;
use crate::variants::Variants;
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

/// A layer record as stored: the [`LayerInfo`], whether its diffID was computed from the blob
/// (`diffIdVerified`, true for records written before the flag existed) or only announced by an image config that a
/// registry pull trusted until the layer is first unpacked (see [`Store::ingest_pulled_layer`]), and the compressed
/// variants made of it for pushes and exports (`variants`, see [`Store::compressed_layer`]), and the snapshot-area
/// entry that already holds it unpacked when it was written from a directory (`unpacked`, see
/// [`Store::set_layer_unpacked`]).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LayerRecord {
    #[serde(flatten)]
    pub(crate) info: LayerInfo,
    #[serde(default = "verified")]
    pub(crate) diff_id_verified: bool,
    #[serde(default, skip_serializing_if = "Variants::is_empty")]
    pub(crate) variants: Variants,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unpacked: Option<String>,
}

fn verified() -> bool {
    true
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
    /// one pass over the source: the bytes are stored and hashed as they are read, and handed to a second thread
    /// that decompresses, hashes (the diffID; a plain tar's is its blob digest) and walks them as tar, so reading
    /// (a download) never waits for decompression and a layer uses two cores.
    ///
    /// If `expected` names a stored blob whose info is known, nothing is read. Reading stops with
    /// [`Error::SizeMismatch`] as soon as the content exceeds an expected size; a layer that does not decode is
    /// [`Error::ScanLayer`]. Either way nothing is stored.
    pub fn ingest_layer(&self, reader: impl Read, expected: &Expected) -> Result<LayerBlob> {
        self.ingest_layer_with(reader, expected, None)
    }

    /// [`ingest_layer`](Store::ingest_layer) for a registry pull: the layer's diffID is the one its image config
    /// announces (`announced_diff_id`), recorded unverified instead of hashing the uncompressed tar, which would
    /// double the SHA-256 work of a pull. The blob digest is still verified, and the tar still decompressed and
    /// walked (it must decode, and its sizes are recorded). Whoever unpacks the layer first hashes the tar on the
    /// way and marks the record verified ([`Store::mark_diff_id_verified`]), or refuses a layer that does not
    /// match: containerd's model (the blob digest at pull, the diffID at unpack).
    ///
    /// A plain tar's diffID is its blob digest, verified already: that is what gets recorded.
    pub fn ingest_pulled_layer(
        &self,
        reader: impl Read,
        expected: &Expected,
        announced_diff_id: Digest,
    ) -> Result<LayerBlob> {
        self.ingest_layer_with(reader, expected, Some(announced_diff_id))
    }

    fn ingest_layer_with(
        &self,
        reader: impl Read,
        expected: &Expected,
        announced_diff_id: Option<Digest>,
    ) -> Result<LayerBlob> {
        if let Some(blob) = self.reuse_existing(expected)? {
            return self.existing_layer(blob);
        }
        let mut writer = self.blob_writer()?;
        let (copied, scanned) = std::thread::scope(|scope| {
            let (full, full_rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(PIPE_DEPTH);
            let (empty_tx, empty) = mpsc::channel::<Vec<u8>>();
            let decoder = std::thread::Builder::new()
                .name("layer-decoder".to_owned())
                .spawn_scoped(scope, move || {
                    let mut pipe = PipeReader {
                        chunks: full_rx,
                        current: Vec::new(),
                        len: 0,
                        pos: 0,
                        recycle: empty_tx,
                    };
                    // Bytes after the end of the compressed stream (or the tar end) are part of the blob too: drained
                    // here so the reading side never blocks on a full pipe.
                    scan(&mut pipe, announced_diff_id.is_none()).and_then(|scanned| {
                        io::copy(&mut pipe, &mut io::sink())?;
                        Ok(scanned)
                    })
                });
            let decoder = match decoder {
                Ok(decoder) => decoder,
                Err(error) => {
                    let error = io::Error::new(
                        error.kind(),
                        format!("cannot start the layer decoder thread: {error}"),
                    );
                    return (Ok(()), Err(error));
                }
            };
            let copied = copy_into_pipe(reader, &mut writer, expected.size, &full, &empty);
            drop(full);
            let scanned = decoder
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the layer decoder thread panicked")));
            (copied, scanned)
        });
        let scanned = match (copied, scanned) {
            (Err(Copy::Read(source)), _) => {
                return Err(Error::ReadSource {
                    expected: describe(expected),
                    source,
                });
            }
            (Err(Copy::Write(source)), _) => {
                return Err(Error::WriteIngest {
                    path: self.layout().ingest_dir(),
                    source,
                });
            }
            (Err(Copy::TooLarge), _) => {
                return Err(Error::SizeMismatch {
                    digest: describe(expected),
                    expected: expected.size.unwrap_or_default(),
                    actual: writer.written(),
                });
            }
            (Ok(()) | Err(Copy::DecoderStopped), Err(source)) => {
                return Err(Error::ScanLayer {
                    layer: describe(expected),
                    source,
                });
            }
            // Cannot happen (a decoder that succeeds drains the pipe to its end), but if it did, the layer was
            // not read completely and must not be stored.
            (Err(Copy::DecoderStopped), Ok(_)) => {
                return Err(Error::ScanLayer {
                    layer: describe(expected),
                    source: io::Error::other(
                        "the layer decoder stopped before the end of the layer",
                    ),
                });
            }
            (Ok(()), Ok(scanned)) => scanned,
        };
        let blob = writer.commit(expected)?;
        let (info, verified) = match (scanned.diff_id, announced_diff_id) {
            (DiffId::Hashed(diff_id), _) => (scanned.info(diff_id), true),
            (DiffId::Blob, _) => (scanned.info(blob.digest), true),
            (DiffId::NotHashed, announced) => (
                scanned.info(announced.expect("scan hashes the tar unless a diffID is announced")),
                false,
            ),
        };
        self.write_layer_record(&blob.digest, &info, verified)?;
        Ok(LayerBlob {
            blob,
            compression: scanned.compression,
            info,
        })
    }

    pub(crate) fn existing_layer(&self, blob: BlobInfo) -> Result<LayerBlob> {
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
        Ok(self.layer_record(digest)?.map(|record| record.info))
    }

    /// The layer record of a blob, if any. A record that does not parse is treated as missing: it is recomputed
    /// from the blob when needed.
    pub(crate) fn layer_record(&self, digest: &Digest) -> Result<Option<LayerRecord>> {
        let path = self.layout().layer_info(digest);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::ReadLayerInfo { path, source }),
        };
        Ok(serde_json::from_slice::<LayerRecord>(&bytes).ok())
    }

    /// Whether the recorded diffID of a layer blob was computed from its content: false only for a layer pulled
    /// with [`ingest_pulled_layer`](Store::ingest_pulled_layer) and not unpacked since. A blob without a (readable)
    /// record counts as verified: its info is computed from the blob when asked for.
    pub fn layer_diff_id_verified(&self, digest: &Digest) -> Result<bool> {
        let path = self.layout().layer_info(digest);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(source) => return Err(Error::ReadLayerInfo { path, source }),
        };
        Ok(serde_json::from_slice::<LayerRecord>(&bytes)
            .map_or(true, |record| record.diff_id_verified))
    }

    /// Records that `info`'s diffID was checked against the layer's content (by an unpack that hashed the tar).
    pub fn mark_diff_id_verified(&self, digest: &Digest, info: &LayerInfo) -> Result<()> {
        self.set_layer_info(digest, info)
    }

    /// Records the metadata of a stored layer blob (when the caller computed it while producing the layer).
    pub fn set_layer_info(&self, digest: &Digest, info: &LayerInfo) -> Result<()> {
        self.write_layer_record(digest, info, true)
    }

    /// Writes a layer's record, keeping the variants an existing record lists.
    pub(crate) fn write_layer_record(
        &self,
        digest: &Digest,
        info: &LayerInfo,
        verified: bool,
    ) -> Result<()> {
        let (variants, unpacked) = self
            .layer_record(digest)?
            .map(|record| (record.variants, record.unpacked))
            .unwrap_or_default();
        let record = LayerRecord {
            info: info.clone(),
            diff_id_verified: verified,
            variants,
            unpacked,
        };
        self.write_record(digest, &record)
    }

    /// Records that the snapshot-area entry `entry` holds the layer `digest` unpacked (a build step's directory the
    /// layer's tar was written from), so that what unpacks layers uses it instead of unpacking the blob again. The
    /// entry's layout is its owner's business (hoist-sandbox's kept entries); a pruned entry is simply not used.
    /// Does nothing for a blob without a record.
    pub fn set_layer_unpacked(&self, digest: &Digest, entry: &str) -> Result<()> {
        let Some(mut record) = self.layer_record(digest)? else {
            return Ok(());
        };
        record.unpacked = Some(entry.to_owned());
        self.write_record(digest, &record)
    }

    /// The snapshot-area entry recorded with [`set_layer_unpacked`](Store::set_layer_unpacked), if any.
    pub fn layer_unpacked(&self, digest: &Digest) -> Result<Option<String>> {
        Ok(self
            .layer_record(digest)?
            .and_then(|record| record.unpacked))
    }

    /// Replaces a layer's record with `record`.
    pub(crate) fn write_record(&self, digest: &Digest, record: &LayerRecord) -> Result<()> {
        let bytes = serde_json::to_vec(record).map_err(|source| Error::Encode {
            what: "layer info",
            source,
        })?;
        // Under the shared lock: prune (exclusive) may then treat every temp file it finds as abandoned. Synced only
        // while it holds a diffID its blob has not been checked against (a pull's, which only the image config
        // announced): any other record lost in a crash (or left empty, which reads as missing) is computed again
        // from its blob.
        let _lock = self.lock(LockMode::Shared)?;
        let write = if record.diff_id_verified {
            write_replaceable
        } else {
            write_atomically
        };
        write(
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
        let mut file = io::BufReader::with_capacity(IO_BUFFER, self.open_blob(digest)?);
        let scanned = scan(&mut file, true).map_err(|source| Error::ScanLayer {
            layer: digest.to_string(),
            source,
        })?;
        let info = match scanned.diff_id {
            DiffId::Hashed(diff_id) => scanned.info(diff_id),
            DiffId::Blob | DiffId::NotHashed => scanned.info(*digest),
        };
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

/// Chunks handed to the decoder thread at once: large, so the hand-over costs nothing next to the hashing.
const PIPE_CHUNK: usize = 1024 * 1024;
/// Chunks queued for the decoder before the reader waits (memory per layer: about `PIPE_DEPTH + 2` chunks).
const PIPE_DEPTH: usize = 3;

/// Why copying a layer's source into the store and the decoder pipe stopped.
enum Copy {
    /// Reading the source failed.
    Read(io::Error),
    /// Writing the blob failed.
    Write(io::Error),
    /// The source has more bytes than the expected size.
    TooLarge,
    /// The decoder thread stopped (it failed: its error is the one to report).
    DecoderStopped,
}

/// Reads `reader` to its end in large chunks, writing each to the blob (which hashes it) and passing it to the
/// decoder thread. Buffers come back from the decoder through `empty`, so memory stays bounded.
fn copy_into_pipe(
    mut reader: impl Read,
    writer: &mut BlobWriter<'_>,
    limit: Option<u64>,
    full: &mpsc::SyncSender<(Vec<u8>, usize)>,
    empty: &mpsc::Receiver<Vec<u8>>,
) -> std::result::Result<(), Copy> {
    let mut allocated = 0;
    loop {
        let mut buffer = match empty.try_recv() {
            Ok(buffer) => buffer,
            Err(_) if allocated < PIPE_DEPTH + 2 => {
                allocated += 1;
                vec![0; PIPE_CHUNK]
            }
            Err(_) => empty.recv().map_err(|_| Copy::DecoderStopped)?,
        };
        let mut filled = 0;
        while filled < buffer.len() {
            match reader.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(Copy::Read(error)),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        writer.write_all(&buffer[..filled]).map_err(Copy::Write)?;
        if limit.is_some_and(|limit| writer.written() > limit) {
            return Err(Copy::TooLarge);
        }
        full.send((buffer, filled))
            .map_err(|_| Copy::DecoderStopped)?;
    }
}

/// The decoder thread's end of the pipe: a reader over the chunks sent to it, returning each buffer once read.
struct PipeReader {
    chunks: mpsc::Receiver<(Vec<u8>, usize)>,
    current: Vec<u8>,
    len: usize,
    pos: usize,
    recycle: mpsc::Sender<Vec<u8>>,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl io::BufRead for PipeReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.len {
            // The end of the pipe (the sender is dropped) is the end of the layer.
            let Ok((chunk, len)) = self.chunks.recv() else {
                return Ok(&[]);
            };
            let done = std::mem::replace(&mut self.current, chunk);
            if !done.is_empty() {
                // The reader may have finished already; then the buffer is simply freed.
                let _ = self.recycle.send(done);
            }
            (self.len, self.pos) = (len, 0);
        }
        Ok(&self.current[self.pos..self.len])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.len);
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

/// What [`scan`] learnt of a layer's diffID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiffId {
    /// The SHA-256 of the decompressed tar stream.
    Hashed(Digest),
    /// A plain tar: its diffID is the blob's own digest (the same bytes), so it is not hashed a second time.
    Blob,
    /// A compressed tar, not hashed (the caller has an announced diffID).
    NotHashed,
}

/// What [`scan`] found in a layer.
#[derive(Debug)]
pub(crate) struct Scanned {
    compression: Compression,
    diff_id: DiffId,
    uncompressed_size: u64,
    content_size: u64,
}

impl Scanned {
    /// The layer's [`LayerInfo`], given its diffID.
    fn info(&self, diff_id: Digest) -> LayerInfo {
        LayerInfo {
            diff_id,
            uncompressed_size: self.uncompressed_size,
            content_size: self.content_size,
        }
    }
}

/// Decompresses (by magic bytes) and walks a layer, hashing the decompressed tar if `hash_tar` (a plain tar is
/// never hashed here). `reader` should be buffered or hand out large reads (the decompressors read it in 32 KiB
/// pieces, tar in 512-byte ones).
pub(crate) fn scan(reader: &mut impl Read, hash_tar: bool) -> io::Result<Scanned> {
    let decompressor = Decompressor::new(reader)?;
    let compression = decompressor.compression();
    if compression == Compression::None || !hash_tar {
        let mut counted = Counted {
            inner: decompressor,
            size: 0,
        };
        let content_size = tar_content_size(&mut counted)?;
        return Ok(Scanned {
            compression,
            diff_id: if compression == Compression::None {
                DiffId::Blob
            } else {
                DiffId::NotHashed
            },
            uncompressed_size: counted.size,
            content_size,
        });
    }
    let mut decoded = DigestReader::new(decompressor);
    let content_size = tar_content_size(&mut decoded)?;
    let (_, digested) = decoded.finish()?;
    Ok(Scanned {
        compression,
        diff_id: DiffId::Hashed(digested.digest),
        uncompressed_size: digested.size,
        content_size,
    })
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    size: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.size += n as u64;
        Ok(n)
    }
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

/// Measures [`LayerInfo::content_size`] of a tar stream as it is written, in the writer's own pass (no copy, no
/// second thread): write every byte of the tar into it, then call [`finish`](Self::finish). It reads the stream as
/// [`tar_content_size`] does (the `tar` crate's rules): regular and contiguous files count their size (a PAX `size`
/// record overrides the header's), symlinks the length of their target (a GNU long link first, then a PAX
/// `linkpath`, then the header's field), everything else 0; the first all-zero block ends the archive. GNU sparse
/// entries count their stored size (hoist's tar writer never writes them). A header with a bad checksum is an error.
#[derive(Debug)]
pub struct TarContentMeter {
    block: Box<[u8; 512]>,
    filled: usize,
    state: MeterState,
    content_size: u64,
    /// What extension headers said about the next entry.
    pax: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    error: Option<String>,
}

/// Where in the tar stream a [`TarContentMeter`] is.
#[derive(Debug)]
enum MeterState {
    /// Reading a header block.
    Header,
    /// Skipping entry data and padding.
    Skip(u64),
    /// Collecting the data of an extension header (`x` PAX records or a `K` GNU long link), then its padding.
    Collect {
        long_link: bool,
        data: Vec<u8>,
        size: u64,
        padding: u64,
    },
    /// After the end-of-archive block (or an error): the rest is ignored.
    Done,
}

/// The largest extension header the meter keeps in memory (as the `tar` crate reads them whole).
const MAX_EXTENSION: u64 = 1 << 20;

impl Default for TarContentMeter {
    fn default() -> Self {
        Self::new()
    }
}

impl TarContentMeter {
    /// A meter at the start of a tar stream.
    #[must_use]
    pub fn new() -> Self {
        Self {
            block: Box::new([0; 512]),
            filled: 0,
            state: MeterState::Header,
            content_size: 0,
            pax: None,
            long_link: None,
            error: None,
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                MeterState::Done => return,
                MeterState::Skip(remaining) => {
                    let n = (*remaining).min(bytes.len() as u64);
                    *remaining -= n;
                    bytes = &bytes[n as usize..];
                    if *remaining == 0 {
                        self.state = MeterState::Header;
                    }
                }
                MeterState::Collect {
                    long_link,
                    data,
                    size,
                    padding,
                } => {
                    let wanted = (*size - data.len() as u64).min(bytes.len() as u64) as usize;
                    data.extend_from_slice(&bytes[..wanted]);
                    bytes = &bytes[wanted..];
                    if data.len() as u64 == *size {
                        let data = std::mem::take(data);
                        if *long_link {
                            self.long_link = Some(data);
                        } else {
                            self.pax = Some(data);
                        }
                        self.state = if *padding == 0 {
                            MeterState::Header
                        } else {
                            MeterState::Skip(*padding)
                        };
                    }
                }
                MeterState::Header => {
                    let n = (512 - self.filled).min(bytes.len());
                    self.block[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
                    self.filled += n;
                    bytes = &bytes[n..];
                    if self.filled == 512 {
                        self.filled = 0;
                        self.state = match self.header() {
                            Ok(state) => state,
                            Err(error) => {
                                self.error = Some(error);
                                MeterState::Done
                            }
                        };
                    }
                }
            }
        }
    }

    /// The content size, or why the stream is not a tar. A stream that ends inside an entry is an error.
    pub fn finish(self) -> io::Result<u64> {
        if let Some(error) = self.error {
            return Err(io::Error::new(io::ErrorKind::InvalidData, error));
        }
        match self.state {
            MeterState::Header if self.filled == 0 => Ok(self.content_size),
            MeterState::Done => Ok(self.content_size),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the tar stream ends inside an entry",
            )),
        }
    }

    /// Reads the header in `block`; returns what comes next.
    fn header(&mut self) -> std::result::Result<MeterState, String> {
        let block = &*self.block;
        if block.iter().all(|b| *b == 0) {
            return Ok(MeterState::Done);
        }
        let sum: u64 = block[..148]
            .iter()
            .chain(&block[156..])
            .map(|b| u64::from(*b))
            .sum::<u64>()
            + 8 * 32;
        if tar_number(&block[148..156]) != Some(sum) {
            return Err("archive header checksum mismatch".to_owned());
        }
        let kind = block[156];
        let recognized = &block[257..263] == b"ustar\0" || &block[257..263] == b"ustar ";
        let header_size = tar_number(&block[124..136])
            .ok_or_else(|| "bad size field in a tar header".to_owned())?;
        let padded = |size: u64| size.div_ceil(512) * 512;
        if recognized && matches!(kind, b'x' | b'K') {
            if header_size > MAX_EXTENSION {
                return Err(format!("a tar extension header of {header_size} bytes"));
            }
            return Ok(MeterState::Collect {
                long_link: kind == b'K',
                data: Vec::with_capacity(header_size as usize),
                size: header_size,
                padding: padded(header_size) - header_size,
            });
        }
        let extension = matches!(kind, b'L' | b'g');
        let pax = if extension { None } else { self.pax.take() };
        let size = pax
            .as_deref()
            .and_then(|records| pax_value(records, b"size"))
            .and_then(|value| std::str::from_utf8(value).ok()?.parse().ok())
            .unwrap_or(header_size);
        if !extension {
            let long_link = self.long_link.take();
            self.content_size += match kind {
                b'0' | b'\0' | b'7' | b'S' => size,
                b'2' => match (
                    &long_link,
                    pax.as_deref().and_then(|p| pax_value(p, b"linkpath")),
                ) {
                    (Some(link), _) => link.strip_suffix(&[0]).unwrap_or(link).len() as u64,
                    (None, Some(link)) => link.len() as u64,
                    (None, None) => {
                        let field = &block[157..257];
                        field.iter().position(|b| *b == 0).unwrap_or(field.len()) as u64
                    }
                },
                _ => 0,
            };
        }
        Ok(if size == 0 {
            MeterState::Header
        } else {
            MeterState::Skip(padded(size))
        })
    }
}

impl Write for TarContentMeter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A numeric tar header field: octal digits (space or NUL padded), or base-256 when the top bit is set.
fn tar_number(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let start = field.len().saturating_sub(8);
        let mut value = if field.len() == 8 {
            u64::from(field[0] ^ 0x80)
        } else {
            0
        };
        for byte in &field[start.max(1)..] {
            value = value.checked_mul(256)?.checked_add(u64::from(*byte))?;
        }
        return Some(value);
    }
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    let text = std::str::from_utf8(&field[..end]).ok()?.trim();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// The value of the first `key` record in PAX extension records (`LEN key=value\n`…), as the `tar` crate reads
/// them.
fn pax_value<'a>(records: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut rest = records;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space + 1 || len > rest.len() {
            return None;
        }
        let body = &rest[space + 1..len - 1];
        rest = &rest[len..];
        if let Some(value) = body.strip_prefix(key).and_then(|v| v.strip_prefix(b"=")) {
            return Some(value);
        }
    }
    None
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
            let scanned = scan(&mut &bytes[..], true).unwrap();
            assert_eq!(scanned.compression, compression);
            // A plain tar is not hashed twice: its diffID is the blob digest.
            let expected = if compression == Compression::None {
                DiffId::Blob
            } else {
                DiffId::Hashed(Digest::sha256(&tar))
            };
            assert_eq!(scanned.diff_id, expected);
            let info = scanned.info(Digest::sha256(&tar));
            assert_eq!(info.uncompressed_size, tar.len() as u64);
            // 5 bytes of file + 5 bytes of symlink target; the hard link is not counted again.
            assert_eq!(info.content_size, 10);
        }
    }

    /// Feeds `tar` to a meter in pieces of `chunk` bytes.
    fn metered(tar: &[u8], chunk: usize) -> io::Result<u64> {
        let mut meter = TarContentMeter::new();
        for piece in tar.chunks(chunk) {
            meter.write_all(piece).unwrap();
        }
        meter.finish()
    }

    /// A tar with what the meter must read like `tar_content_size`: PAX records (a long name, a long symlink
    /// target, a size), GNU long names and links, a hard link, a directory, an empty file, and base-256 numbers.
    fn awkward_tars() -> Vec<Vec<u8>> {
        let long = "d/".repeat(70) + "file";
        let target = "t/".repeat(80) + "target";
        let mut tars = vec![sample_tar()];
        for gnu in [true, false] {
            let mut builder = tar::Builder::new(Vec::new());
            let header = || {
                if gnu {
                    tar::Header::new_gnu()
                } else {
                    tar::Header::new_ustar()
                }
            };
            let mut h = header();
            h.set_size(1000);
            h.set_mode(0o644);
            builder
                .append_data(&mut h, &long, &[7u8; 1000][..])
                .unwrap();
            let mut h = header();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            builder.append_link(&mut h, "short-link", &target).unwrap();
            let mut h = header();
            h.set_entry_type(tar::EntryType::Link);
            h.set_size(0);
            builder.append_link(&mut h, "hard", &long).unwrap();
            let mut h = header();
            h.set_size(0);
            h.set_mode(0o644);
            builder.append_data(&mut h, "empty", &[][..]).unwrap();
            let mut h = header();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            builder.append_data(&mut h, "dir/", &[][..]).unwrap();
            let mut h = header();
            h.set_size(513);
            h.set_mode(0o644);
            h.set_mtime(u64::MAX / 2);
            builder.append_data(&mut h, "odd", &[1u8; 513][..]).unwrap();
            // A PAX `size` record that overrides the header's.
            builder
                .append_pax_extensions([("size", &b"700"[..]), ("comment", &b"x"[..])])
                .unwrap();
            let mut h = header();
            h.set_size(700);
            h.set_mode(0o644);
            builder
                .append_data(&mut h, "pax-sized", &[2u8; 700][..])
                .unwrap();
            tars.push(builder.into_inner().unwrap());
        }
        tars
    }

    #[test]
    fn meter_agrees_with_tar_content_size() {
        for tar in awkward_tars() {
            let expected = tar_content_size(&mut &tar[..]).unwrap();
            assert!(expected >= 10, "{expected}");
            for chunk in [1, 7, 512, 513, 100_000] {
                assert_eq!(metered(&tar, chunk).unwrap(), expected, "chunk {chunk}");
            }
        }
        // hoist's own writer, from a directory with a long symlink target and a hard link.
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), vec![3u8; 70_000]).unwrap();
        std::os::unix::fs::symlink("x/".repeat(90), dir.path().join("link")).unwrap();
        fs::hard_link(dir.path().join("file"), dir.path().join("again")).unwrap();
        let mut tar = Vec::new();
        hoist_layer::write_layer(dir.path(), &mut tar, &hoist_layer::WriteOptions::new()).unwrap();
        assert_eq!(metered(&tar, 4096).unwrap(), 70_000 + 180);
        assert_eq!(tar_content_size(&mut &tar[..]).unwrap(), 70_000 + 180);
    }

    #[test]
    fn meter_refuses_what_is_not_a_tar() {
        let tar = sample_tar();
        // Cut inside an entry.
        assert!(metered(&tar[..1000], 100).is_err());
        // A damaged header.
        let mut bad = tar.clone();
        bad[520] ^= 0x55;
        assert!(metered(&bad, 512).is_err());
        assert!(metered(b"not a tar at all, just text", 5).is_err());
        // Empty input is an empty archive.
        assert_eq!(metered(b"", 1).unwrap(), 0);
    }

    #[test]
    fn pulled_layer_records_the_announced_diff_id_unverified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tar = sample_tar();
        let compressed = gzip(&tar);
        // A diffID that is not the tar's: proof that the tar was not hashed (it would have been recorded).
        let announced = Digest::sha256(b"announced by the config");
        let layer = store
            .ingest_pulled_layer(
                &compressed[..],
                &Expected::digest(Digest::sha256(&compressed)),
                announced,
            )
            .unwrap();
        assert_eq!(layer.info.diff_id, announced);
        assert_eq!(layer.info.uncompressed_size, tar.len() as u64);
        assert_eq!(layer.info.content_size, 10);
        let digest = layer.blob.digest;
        assert_eq!(store.layer_info(&digest).unwrap(), Some(layer.info.clone()));
        assert!(!store.layer_diff_id_verified(&digest).unwrap());
        let record = fs::read_to_string(store.layout().layer_info(&digest)).unwrap();
        assert!(record.contains(r#""diffIdVerified":false"#), "{record}");

        // A second pull of the same blob reads nothing and keeps the record.
        let again = store
            .ingest_pulled_layer(io::empty(), &Expected::digest(digest), announced)
            .unwrap();
        assert_eq!(again.info, layer.info);
        assert!(!store.layer_diff_id_verified(&digest).unwrap());

        let verified = LayerInfo {
            diff_id: Digest::sha256(&tar),
            ..layer.info
        };
        store.mark_diff_id_verified(&digest, &verified).unwrap();
        assert!(store.layer_diff_id_verified(&digest).unwrap());
        assert_eq!(store.layer_info(&digest).unwrap(), Some(verified));
    }

    #[test]
    fn pulled_plain_tar_records_its_blob_digest_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tar = sample_tar();
        let layer = store
            .ingest_pulled_layer(&tar[..], &Expected::unknown(), Digest::sha256(b"other"))
            .unwrap();
        assert_eq!(layer.info.diff_id, Digest::sha256(&tar));
        assert!(store.layer_diff_id_verified(&layer.blob.digest).unwrap());
    }

    #[test]
    fn records_without_the_flag_are_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tar = sample_tar();
        let layer = store.ingest_layer(&tar[..], &Expected::unknown()).unwrap();
        let path = store.layout().layer_info(&layer.blob.digest);
        let old = format!(
            r#"{{"diffID":"{}","uncompressedSize":{},"contentSize":10}}"#,
            layer.info.diff_id,
            tar.len()
        );
        fs::write(&path, old).unwrap();
        assert_eq!(
            store.layer_info(&layer.blob.digest).unwrap(),
            Some(layer.info)
        );
        assert!(store.layer_diff_id_verified(&layer.blob.digest).unwrap());
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
    fn plain_layer_diff_id_is_its_blob_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tar = sample_tar();
        let layer = store.ingest_layer(&tar[..], &Expected::unknown()).unwrap();
        assert_eq!(layer.compression, Compression::None);
        assert_eq!(layer.blob.digest, Digest::sha256(&tar));
        assert_eq!(layer.info.diff_id, Digest::sha256(&tar));
        assert_eq!(layer.info.uncompressed_size, tar.len() as u64);
        assert_eq!(layer.info.content_size, 10);
    }

    #[test]
    fn the_unpacked_entry_survives_record_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tar = sample_tar();
        let layer = store.ingest_layer(&tar[..], &Expected::unknown()).unwrap();
        let digest = layer.blob.digest;
        assert_eq!(store.layer_unpacked(&digest).unwrap(), None);
        store.set_layer_unpacked(&digest, "overlay-kept-x").unwrap();
        // Marking the diffID verified (an unpack) rewrites the record; the entry stays named.
        store.mark_diff_id_verified(&digest, &layer.info).unwrap();
        assert_eq!(
            store.layer_unpacked(&digest).unwrap().as_deref(),
            Some("overlay-kept-x")
        );
        assert_eq!(store.layer_info(&digest).unwrap(), Some(layer.info));
        // A blob without a record gets none.
        let other = store.ingest_bytes(b"not a layer").unwrap().digest;
        store.set_layer_unpacked(&other, "overlay-kept-y").unwrap();
        assert_eq!(store.layer_unpacked(&other).unwrap(), None);
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

    /// A layer many pipe chunks long: every buffer is recycled and the diffID is the tar's.
    #[test]
    fn large_layer_streams_through_the_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut data = vec![0u8; 12 * PIPE_CHUNK + 12345];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for byte in &mut data {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "big.bin", &data[..])
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let blob = gzip(&tar);
        let layer = store
            .ingest_layer(&blob[..], &Expected::digest(Digest::sha256(&blob)))
            .unwrap();
        assert_eq!(layer.blob.size, blob.len() as u64);
        assert_eq!(layer.info.diff_id, Digest::sha256(&tar));
        assert_eq!(layer.info.uncompressed_size, tar.len() as u64);
        assert_eq!(layer.info.content_size, data.len() as u64);
    }

    /// A source that never ends stops at the expected size; one that never decodes stops at the decoder's error.
    #[test]
    fn endless_sources_stop() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let announced = 3 * PIPE_CHUNK as u64;
        let claimed = Digest::sha256(b"never");
        let err = store
            .ingest_layer(
                io::repeat(0),
                &Expected::digest(claimed).with_size(announced),
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::SizeMismatch { expected, actual, .. } if expected == announced && actual > announced),
            "{err}"
        );
        let garbage = io::Read::chain(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3][..], io::repeat(0xff));
        let err = store
            .ingest_layer(garbage, &Expected::unknown())
            .unwrap_err();
        assert!(matches!(err, Error::ScanLayer { .. }), "{err}");
        assert!(!store.has_blob(&claimed));
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
