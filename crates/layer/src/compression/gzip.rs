//! Parallel gzip, the way pigz does it: one gzip member made of independently compressed blocks.
//!
//! The input is cut into fixed-size blocks. Each block is compressed as raw deflate, primed with
//! the last 32 KiB of the block before it as a preset dictionary (so matches may reach back
//! across the cut, as in a serial stream), and ended with a sync flush (an empty stored block),
//! which byte-aligns it so the next block's deflate data can follow directly. The last block
//! ends with a final block instead. The CRC-32 of each block is computed on the worker too and
//! combined in order on the writing thread. Header + blocks + trailer form one ordinary gzip
//! member that any gzip reader accepts.
//!
//! The output depends only on the input, the level and the block size, never on the number of
//! threads or on timing: a block's bytes are a function of (dictionary, data, is-last). That
//! keeps blob digests reproducible across machines. Input smaller than one block is compressed
//! on the calling thread without starting any worker.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

/// Size of the blocks compressed independently. 128 KiB is pigz's default; larger blocks cost
/// less per-block overhead (flush markers, thread hand-offs) and barely change the ratio.
pub(crate) const BLOCK_SIZE: usize = 256 * 1024;

/// Deflate's window: how far back a match may reach, so how much dictionary is useful.
const WINDOW: usize = 32 * 1024;

/// How many blocks may be queued or compressing per worker before the writer waits.
const IN_FLIGHT_PER_WORKER: usize = 2;

/// A `Write` that gzips its input on `threads` worker threads into `sink`.
pub(crate) struct ParallelGzWriter<W: Write> {
    sink: W,
    level: flate2::Compression,
    threads: usize,
    /// The block being filled; dispatched once it is full and more input arrives, so the last
    /// block is always known to be last when it is compressed.
    current: Vec<u8>,
    /// Last `WINDOW` bytes of the previously dispatched block.
    dictionary: Vec<u8>,
    header_written: bool,
    crc: crc32fast::Hasher,
    total_in: u64,
    workers: Option<Workers>,
    /// Results in input order.
    pending: VecDeque<Receiver<io::Result<Compressed>>>,
    spare_inputs: Vec<Vec<u8>>,
    spare_outputs: Vec<Vec<u8>>,
}

struct Job {
    input: Vec<u8>,
    dictionary: Vec<u8>,
    output: Vec<u8>,
    last: bool,
    reply: Sender<io::Result<Compressed>>,
}

struct Compressed {
    input: Vec<u8>,
    output: Vec<u8>,
    crc: crc32fast::Hasher,
}

struct Workers {
    jobs: Option<Sender<Job>>,
    handles: Vec<JoinHandle<()>>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing the queue ends every worker's loop once it has finished its current block.
        self.jobs = None;
        for handle in self.handles.drain(..) {
            // A worker only panics on a bug in deflate; its block's reply is then missing and
            // the writer has already reported an error, so there is nothing more to say here.
            let _ = handle.join();
        }
    }
}

impl<W: Write> ParallelGzWriter<W> {
    /// A writer compressing at `level` (0–9) with up to `threads` workers.
    pub(crate) fn new(sink: W, level: u32, threads: usize) -> Self {
        Self {
            sink,
            level: flate2::Compression::new(level.min(9)),
            threads: threads.max(1),
            current: Vec::with_capacity(BLOCK_SIZE),
            dictionary: Vec::new(),
            header_written: false,
            crc: crc32fast::Hasher::new(),
            total_in: 0,
            workers: None,
            pending: VecDeque::new(),
            spare_inputs: Vec::new(),
            spare_outputs: Vec::new(),
        }
    }

    /// Compresses what is left, writes the gzip trailer and returns the sink.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        let block = std::mem::take(&mut self.current);
        self.dispatch(block, true)?;
        while let Some(reply) = self.pending.pop_front() {
            self.write_result(&reply)?;
        }
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new());
        // ISIZE is the input length modulo 2^32 (RFC 1952).
        let isize = self.total_in as u32;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&crc.finalize().to_le_bytes());
        trailer[4..].copy_from_slice(&isize.to_le_bytes());
        self.sink.write_all(&trailer)?;
        self.sink.flush()?;
        self.workers = None;
        Ok(self.sink)
    }

    fn write_header(&mut self) -> io::Result<()> {
        if self.header_written {
            return Ok(());
        }
        // No name, no mtime (reproducible), XFL as RFC 1952 defines it, OS 255 "unknown" as Go's
        // gzip writer does, so the bytes do not depend on the build host.
        let xfl = match self.level.level() {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        self.sink
            .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
        self.header_written = true;
        Ok(())
    }

    /// Hands `block` to a worker (or compresses it here) and remembers its dictionary role.
    fn dispatch(&mut self, block: Vec<u8>, last: bool) -> io::Result<()> {
        self.write_header()?;
        self.total_in += block.len() as u64;
        let dictionary = std::mem::take(&mut self.dictionary);
        if !last {
            let mut next = self.spare_outputs.pop().unwrap_or_default();
            next.clear();
            next.extend_from_slice(&block[block.len().saturating_sub(WINDOW)..]);
            self.dictionary = next;
        }
        let single_block = last && self.workers.is_none();
        if self.threads == 1 || single_block {
            let mut output = Vec::new();
            let crc = compress_block(self.level, &block, &dictionary, last, &mut output)?;
            self.crc.combine(&crc);
            self.sink.write_all(&output)?;
            self.recycle(block, dictionary);
            return Ok(());
        }
        let (reply, result) = mpsc::channel();
        let output = self.spare_outputs.pop().unwrap_or_default();
        let job = Job {
            input: block,
            dictionary,
            output,
            last,
            reply,
        };
        self.workers()?
            .jobs
            .as_ref()
            .expect("the job queue stays open until the workers are dropped")
            .send(job)
            .map_err(|_| io::Error::other("gzip worker threads exited"))?;
        self.pending.push_back(result);
        self.drain(false)
    }

    /// Writes finished blocks in order; with `wait`, or when too many are in flight, blocks on
    /// the oldest.
    fn drain(&mut self, wait: bool) -> io::Result<()> {
        let limit = self.threads * IN_FLIGHT_PER_WORKER;
        while let Some(front) = self.pending.front() {
            if wait || self.pending.len() > limit {
                let reply = self.pending.pop_front().expect("front exists");
                self.write_result(&reply)?;
                continue;
            }
            match front.try_recv() {
                Ok(result) => {
                    self.pending.pop_front();
                    self.write_compressed(result)?;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    return Err(io::Error::other("gzip worker thread died"));
                }
            }
        }
        Ok(())
    }

    fn write_result(&mut self, reply: &Receiver<io::Result<Compressed>>) -> io::Result<()> {
        let result = reply
            .recv()
            .map_err(|_| io::Error::other("gzip worker thread died"))?;
        self.write_compressed(result)
    }

    fn write_compressed(&mut self, result: io::Result<Compressed>) -> io::Result<()> {
        let Compressed { input, output, crc } = result?;
        self.crc.combine(&crc);
        self.sink.write_all(&output)?;
        self.recycle(input, output);
        Ok(())
    }

    fn recycle(&mut self, mut input: Vec<u8>, mut other: Vec<u8>) {
        input.clear();
        other.clear();
        if self.spare_inputs.len() < self.threads * IN_FLIGHT_PER_WORKER + 2 {
            self.spare_inputs.push(input);
        }
        if self.spare_outputs.len() < self.threads * IN_FLIGHT_PER_WORKER + 2 {
            self.spare_outputs.push(other);
        }
    }

    fn workers(&mut self) -> io::Result<&Workers> {
        if self.workers.is_none() {
            let (jobs, queue) = mpsc::channel::<Job>();
            let queue = Arc::new(Mutex::new(queue));
            let mut handles = Vec::with_capacity(self.threads);
            for index in 0..self.threads {
                let queue = Arc::clone(&queue);
                let level = self.level;
                let handle = std::thread::Builder::new()
                    .name(format!("hoist-gzip-{index}"))
                    .spawn(move || worker(&queue, level))?;
                handles.push(handle);
            }
            self.workers = Some(Workers {
                jobs: Some(jobs),
                handles,
            });
        }
        Ok(self.workers.as_ref().expect("just created"))
    }
}

impl<W: Write> Write for ParallelGzWriter<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let written = buf.len();
        while !buf.is_empty() {
            if self.current.len() == BLOCK_SIZE {
                let mut next = self
                    .spare_inputs
                    .pop()
                    .unwrap_or_else(|| Vec::with_capacity(BLOCK_SIZE));
                next.clear();
                let full = std::mem::replace(&mut self.current, next);
                self.dispatch(full, false)?;
            }
            let room = BLOCK_SIZE - self.current.len();
            let take = room.min(buf.len());
            self.current.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
        }
        Ok(written)
    }

    /// Writes out the blocks that are already compressed and flushes the sink. Buffered input
    /// is not compressed early: that would make the output depend on when flush was called.
    fn flush(&mut self) -> io::Result<()> {
        self.drain(false)?;
        self.sink.flush()
    }
}

fn worker(queue: &Mutex<Receiver<Job>>, level: flate2::Compression) {
    loop {
        let job = {
            let Ok(queue) = queue.lock() else { return };
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let Job {
            input,
            dictionary,
            mut output,
            last,
            reply,
        } = job;
        let result = compress_block(level, &input, &dictionary, last, &mut output)
            .map(|crc| Compressed { input, output, crc });
        // The writer may have gone away after an error; then nobody needs this block.
        let _ = reply.send(result);
    }
}

/// Compresses one block as raw deflate into `output`, returning the block's CRC-32.
///
/// Each block gets a new deflate state: a state reused after `Compress::reset` (zlib-rs) made output that depended
/// on the blocks that state had compressed before, so on which worker got which block (a 96 MiB layer differed
/// between one and two threads, and between runs).
fn compress_block(
    level: flate2::Compression,
    input: &[u8],
    dictionary: &[u8],
    last: bool,
    output: &mut Vec<u8>,
) -> io::Result<crc32fast::Hasher> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(input);
    let mut compressor = Compress::new(level, false);
    if !dictionary.is_empty() {
        compressor
            .set_dictionary(dictionary)
            .map_err(|e| io::Error::other(format!("deflate dictionary rejected: {e}")))?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    output.clear();
    // Deflate never grows data by more than ~0.1% + a few bytes per stored block.
    output.reserve(input.len() + input.len() / 8 + 1024);
    let start = compressor.total_in();
    loop {
        let consumed = (compressor.total_in() - start) as usize;
        let status = compressor
            .compress_vec(&input[consumed..], output, flush)
            .map_err(|e| io::Error::other(format!("deflate failed: {e}")))?;
        let all_in = (compressor.total_in() - start) as usize == input.len();
        let room_left = output.len() < output.capacity();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete once all input went in and deflate stopped with room to
            // spare; `Finish` is only complete at `StreamEnd`.
            Status::Ok | Status::BufError if !last && all_in && room_left => break,
            Status::Ok | Status::BufError => output.reserve(64 * 1024),
        }
    }
    Ok(crc)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: words with a slowly drifting pattern and some noise.
        let mut state = 0x1234_5678u32;
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if state.is_multiple_of(7) {
                data.extend_from_slice(&state.to_le_bytes());
            } else {
                data.extend_from_slice(b"layer tar bytes ");
            }
        }
        data.truncate(len);
        data
    }

    fn gzip(data: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut writer = ParallelGzWriter::new(Vec::new(), 6, threads);
        for piece in data.chunks(chunk.max(1)) {
            writer.write_all(piece).unwrap();
        }
        writer.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trips_at_every_size_boundary() {
        for len in [
            0,
            1,
            BLOCK_SIZE - 1,
            BLOCK_SIZE,
            BLOCK_SIZE + 1,
            3 * BLOCK_SIZE,
            3 * BLOCK_SIZE + 12_345,
        ] {
            let data = sample(len);
            let compressed = gzip(&data, 3, 10_000);
            assert_eq!(gunzip(&compressed), data, "len {len}");
            // One member: flate2's single-member decoder read it all (checked above), and
            // the header is at the start only.
            assert_eq!(&compressed[..3], &[0x1f, 0x8b, 8]);
        }
    }

    #[test]
    fn output_does_not_depend_on_threads_or_write_sizes() {
        let data = sample(5 * BLOCK_SIZE + 999);
        let reference = gzip(&data, 1, data.len());
        for (threads, chunk) in [(2, 1), (4, 4096), (8, BLOCK_SIZE + 7)] {
            // One-byte writes are slow; keep that case smaller but still multi-block.
            let input = if chunk == 1 {
                &data[..2 * BLOCK_SIZE + 5]
            } else {
                &data[..]
            };
            let expected = if chunk == 1 {
                gzip(input, 1, input.len())
            } else {
                reference.clone()
            };
            assert_eq!(gzip(input, threads, chunk), expected, "threads {threads}");
        }
    }

    #[test]
    fn dictionary_keeps_ratio_close_to_serial_gzip() {
        let data = sample(8 * BLOCK_SIZE);
        let parallel = gzip(&data, 4, 65_536);
        let mut serial = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        serial.write_all(&data).unwrap();
        let serial = serial.finish().unwrap();
        // Without the dictionary each block restarts cold; with it we stay within 1%.
        assert!(
            (parallel.len() as f64) < serial.len() as f64 * 1.01,
            "parallel {} vs serial {}",
            parallel.len(),
            serial.len()
        );
    }
}
