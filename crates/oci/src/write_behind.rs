//! Write-behind for large blobs: flush what is written to disk while the rest is still being produced, so that
//! the `fsync` a commit needs before publishing a blob waits only for the tail.
//!
//! A layer of 1 GiB written by a build would otherwise sit in the page cache until the commit's `fsync`, which then
//! waits for all of it (about 0.5 s per GiB on the build machine, on top of producing it). Every
//! [`SYNC_EVERY`] bytes a helper thread runs `fdatasync` on a second handle of the file; writes go on meanwhile
//! (Linux does not hold the inode lock while waiting for writeback). Blobs smaller than that (manifests, configs,
//! small layers) never start the thread.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

/// How many bytes are written between two background syncs.
const SYNC_EVERY: u64 = 32 * 1024 * 1024;

/// A file whose written data is synced in the background every [`SYNC_EVERY`] bytes.
#[derive(Debug)]
pub(crate) struct WriteBehindFile {
    file: File,
    written: u64,
    synced_up_to: u64,
    syncer: Option<Syncer>,
}

#[derive(Debug)]
struct Syncer {
    /// A request to sync; a full queue means a sync is pending already, which covers this request too.
    requests: SyncSender<()>,
    thread: JoinHandle<io::Result<()>>,
}

impl Syncer {
    /// A thread that runs `fdatasync` on `handle` once per request, until the requests end.
    fn start(handle: File) -> io::Result<Self> {
        let (requests, pending) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("blob-write-behind".to_owned())
            .spawn(move || -> io::Result<()> {
                while pending.recv().is_ok() {
                    handle.sync_data()?;
                }
                Ok(())
            })?;
        Ok(Self { requests, thread })
    }
}

impl WriteBehindFile {
    pub(crate) fn new(file: File) -> Self {
        Self {
            file,
            written: 0,
            synced_up_to: 0,
            syncer: None,
        }
    }

    /// Waits for the background syncs, then syncs the rest (data and metadata) and returns the file.
    pub(crate) fn sync_all(mut self) -> io::Result<File> {
        if let Some(syncer) = self.syncer.take() {
            drop(syncer.requests);
            syncer
                .thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the write-behind thread panicked")))?;
        }
        self.file.sync_all()?;
        Ok(self.file)
    }

    fn request_sync(&mut self) -> io::Result<()> {
        if self.syncer.is_none() {
            self.syncer = Some(Syncer::start(self.file.try_clone()?)?);
        }
        if let Some(syncer) = &self.syncer {
            // Full: a sync is queued and will cover these bytes too. Disconnected: the thread stopped on an
            // error, which `sync_all` reports.
            let _ = syncer.requests.try_send(());
        }
        Ok(())
    }
}

impl Write for WriteBehindFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.synced_up_to >= SYNC_EVERY {
            self.synced_up_to = self.written;
            self.request_sync()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn content_is_written_in_order_across_background_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut writer = WriteBehindFile::new(File::create(&path).unwrap());
        let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        for i in 0..80u8 {
            let mut piece = chunk.clone();
            piece[0] = i;
            writer.write_all(&piece).unwrap();
        }
        assert!(writer.syncer.is_some(), "80 MiB start the syncing thread");
        writer.sync_all().unwrap();
        let mut content = Vec::new();
        File::open(&path)
            .unwrap()
            .read_to_end(&mut content)
            .unwrap();
        assert_eq!(content.len(), 80 * chunk.len());
        for (i, piece) in content.chunks(chunk.len()).enumerate() {
            assert_eq!(piece[0] as usize, i);
            assert_eq!(piece[1..], chunk[1..]);
        }
    }

    #[test]
    fn small_blobs_start_no_thread() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = WriteBehindFile::new(File::create(dir.path().join("small")).unwrap());
        writer.write_all(&[7; 4096]).unwrap();
        assert!(writer.syncer.is_none());
        writer.sync_all().unwrap();
    }
}
