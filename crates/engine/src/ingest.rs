//! Layers into the store in one pass: tar → digest (the diffID too) → blob, with the content size measured from the
//! tar headers on the way. Build layers are stored uncompressed, as BuildKit's and Docker's stores keep them: a push
//! or an OCI export compresses them then, once ([`hoist_oci::Store::compressed_layer`]).

use std::io::Write;

use hoist_layer::Compression;
use hoist_oci::{BlobWriter, Expected, LayerInfo, ManifestFormat, Store, TarContentMeter};

use crate::cache::LayerRef;
use crate::error::{EngineError, Result};

/// Writes the tar `write` produces straight into the store as a plain tar blob, with the layer's info, in one
/// pass: each byte is hashed once (the blob digest, which is also the diffID), written, and fed to a
/// [`TarContentMeter`] that measures the content size from the headers it sees. Returns `None` when `write`
/// reports no entries.
pub(crate) fn ingest(
    store: &Store,
    write: impl FnOnce(&mut (dyn Write + Send)) -> Result<u64>,
) -> Result<Option<LayerRef>> {
    let store_error = |e| EngineError::store("failed to store a layer", e);
    let write_error = |e| EngineError::io("write a layer into", store.root(), e);
    let mut blob = store.blob_writer().map_err(store_error)?;
    let mut meter = TarContentMeter::new();
    let entries = write(&mut Measured {
        blob: &mut blob,
        meter: &mut meter,
    })?;
    if entries == 0 {
        return Ok(None);
    }
    let content_size = meter.finish().map_err(write_error)?;
    commit_plain_layer(store, blob, content_size).map(Some)
}

/// Commits a plain (uncompressed) layer tar written to `blob`: its digest is its diffID; its info is recorded with
/// `content_size`.
pub(crate) fn commit_plain_layer(
    store: &Store,
    mut blob: BlobWriter<'_>,
    content_size: u64,
) -> Result<LayerRef> {
    let store_error = |e| EngineError::store("failed to store a layer", e);
    blob.flush()
        .map_err(|e| EngineError::io("write a layer into", store.root(), e))?;
    let stored = blob.commit(&Expected::unknown()).map_err(store_error)?;
    let info = LayerInfo {
        diff_id: stored.digest,
        uncompressed_size: stored.size,
        content_size,
    };
    store
        .set_layer_info(&stored.digest, &info)
        .map_err(store_error)?;
    Ok(LayerRef {
        digest: stored.digest,
        diff_id: stored.digest,
        size: stored.size,
        media_type: ManifestFormat::Oci
            .layer_media_type(Compression::None)
            .to_owned(),
    })
}

/// Writes to the blob, and shows what was written to the meter.
struct Measured<'a, W: Write> {
    blob: &'a mut W,
    meter: &'a mut TarContentMeter,
}

impl<W: Write> Write for Measured<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.blob.write(buf)?;
        self.meter.update(&buf[..n]);
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.blob.write_all(buf)?;
        self.meter.update(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.blob.flush()
    }
}
