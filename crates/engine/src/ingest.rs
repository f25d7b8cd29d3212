//! Layers into the store in one pass: tar → diffID → gzip → digest → blob, with the content size measured from a
//! copy of the tar stream.

use std::io::Write;
use std::path::Path;

use hoist_layer::{CompressOptions, Compression, LayerBlobWriter, WriteOptions};
use hoist_oci::{Expected, LayerInfo, ManifestFormat};

use crate::cache::LayerRef;
use crate::error::{EngineError, Result};
use crate::solver::Solver;

impl Solver<'_> {
    /// Writes the directory `dir` (a staging directory: exactly the op's files) as a layer.
    pub(crate) fn ingest_dir(&self, dir: &Path) -> Result<Option<LayerRef>> {
        self.ingest(|out| {
            hoist_layer::write_layer(dir, out, &WriteOptions::new())
                .map(|summary| summary.entries)
                .map_err(|e| EngineError::Layer {
                    what: format!("failed to write a layer from {}", dir.display()),
                    source: Box::new(e),
                })
        })
    }

    /// Compresses the tar `write` produces (gzip) straight into the store, with the layer's info, in one pass:
    /// the tar stream is hashed (diffID), compressed, hashed again (digest) and written, while a helper thread
    /// measures its content size from a copy. Returns `None` when `write` reports no entries.
    pub(crate) fn ingest(
        &self,
        write: impl FnOnce(&mut (dyn Write + Send)) -> Result<u64>,
    ) -> Result<Option<LayerRef>> {
        let store_error = |e| EngineError::store("failed to store a layer", e);
        let compress_error = |e| EngineError::io("compress a layer into", self.store.root(), e);
        let blob = self.store.blob_writer().map_err(store_error)?;
        let mut layer = LayerBlobWriter::new(blob, Compression::Gzip, &CompressOptions::default())
            .map_err(compress_error)?;
        let (mut reader, pipe) = std::io::pipe().map_err(compress_error)?;
        let (entries, content_size) = std::thread::scope(|scope| {
            let measure = scope.spawn(move || {
                let size = hoist_oci::tar_content_size(&mut reader);
                // Read to the end so the writer never blocks on a full pipe.
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
                size
            });
            let mut tee = Tee {
                main: &mut layer,
                copy: Some(pipe),
            };
            let entries = write(&mut tee);
            drop(tee);
            let size = measure
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the measuring thread panicked")));
            (entries, size)
        });
        let entries = entries?;
        if entries == 0 {
            return Ok(None);
        }
        let content_size = content_size.map_err(compress_error)?;
        let (blob, digests) = layer.finish().map_err(compress_error)?;
        let stored = blob
            .commit(&Expected::digest(digests.digest).with_size(digests.size))
            .map_err(store_error)?;
        let info = LayerInfo {
            diff_id: digests.diff_id,
            uncompressed_size: digests.uncompressed_size,
            content_size,
        };
        self.store
            .set_layer_info(&stored.digest, &info)
            .map_err(store_error)?;
        Ok(Some(LayerRef {
            digest: stored.digest,
            diff_id: digests.diff_id,
            size: stored.size,
            media_type: ManifestFormat::Oci
                .layer_media_type(Compression::Gzip)
                .to_owned(),
        }))
    }
}

/// Writes everything to `main`, and a copy to `copy` while it accepts it (the measuring thread may stop early on
/// a malformed stream; the layer itself must not fail because of that).
struct Tee<'a, W: Write> {
    main: &'a mut W,
    copy: Option<std::io::PipeWriter>,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.main.write(buf)?;
        if let Some(copy) = &mut self.copy
            && copy.write_all(&buf[..n]).is_err()
        {
            self.copy = None;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.main.flush()
    }
}
