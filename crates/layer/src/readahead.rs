//! Reading a stream on a helper thread, so that producing its bytes (decompressing) overlaps
//! with consuming them (writing files). `pigz -dc | tar -x` gets the same effect from a pipe.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

/// Bytes read per chunk.
const CHUNK: usize = 256 * 1024;
/// Chunks that may wait between the threads.
const QUEUE: usize = 4;

/// Runs `consume` with a reader yielding the bytes of `reader`, which is read on a scoped helper
/// thread. Returns once both are done; if `consume` stops early, the helper stops after its
/// current read.
pub(crate) fn read_ahead<R: Read + Send, T>(
    reader: R,
    consume: impl FnOnce(&mut dyn Read) -> T,
) -> T {
    std::thread::scope(|scope| {
        let (chunks, received) = sync_channel(QUEUE);
        let (recycle, recycled) = channel();
        scope.spawn(move || produce(reader, &chunks, &recycled));
        let mut reader = ChunkReader {
            chunks: received,
            recycle,
            current: Vec::new(),
            position: 0,
            done: false,
        };
        consume(&mut reader)
        // `reader` drops here, closing the channel: the producer's next send fails and it ends.
    })
}

fn produce<R: Read>(
    mut reader: R,
    chunks: &SyncSender<io::Result<Vec<u8>>>,
    recycled: &Receiver<Vec<u8>>,
) {
    loop {
        let mut chunk = recycled.try_recv().unwrap_or_default();
        chunk.resize(CHUNK, 0);
        let mut filled = 0;
        let result = loop {
            match reader.read(&mut chunk[filled..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    filled += n;
                    if filled == CHUNK {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        chunk.truncate(filled);
        let at_end = filled < CHUNK;
        if filled > 0 && chunks.send(Ok(chunk)).is_err() {
            return;
        }
        if let Err(e) = result {
            let _ = chunks.send(Err(e));
            return;
        }
        if at_end {
            return;
        }
    }
}

struct ChunkReader {
    chunks: Receiver<io::Result<Vec<u8>>>,
    recycle: Sender<Vec<u8>>,
    current: Vec<u8>,
    position: usize,
    done: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(chunk) => {
                    let used = std::mem::replace(&mut self.current, chunk?);
                    self.position = 0;
                    // The producer may have ended; then the buffer is simply dropped.
                    let _ = self.recycle.send(used);
                }
                // The producer ended: end of stream (an error would have been sent first).
                Err(_) => self.done = true,
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields its data in uneven pieces, then an error if asked to.
    struct Uneven {
        data: Vec<u8>,
        at: usize,
        fail_at_end: bool,
    }

    impl Read for Uneven {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                return if self.fail_at_end {
                    Err(io::Error::other("source failed"))
                } else {
                    Ok(0)
                };
            }
            let n = buf
                .len()
                .min(self.data.len() - self.at)
                .min(1 + self.at % 70_000);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn delivers_every_byte_in_order_then_the_error() {
        let data: Vec<u8> = (0..3 * CHUNK + 12_345)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        for fail_at_end in [false, true] {
            let source = Uneven {
                data: data.clone(),
                at: 0,
                fail_at_end,
            };
            let (got, result) = read_ahead(source, |reader| {
                let mut got = Vec::new();
                let result = reader.read_to_end(&mut got);
                (got, result)
            });
            assert_eq!(got, data);
            assert_eq!(result.is_err(), fail_at_end);
        }
    }

    #[test]
    fn stopping_early_ends_the_helper() {
        let data = vec![1u8; 20 * CHUNK];
        let source = Uneven {
            data,
            at: 0,
            fail_at_end: false,
        };
        let first = read_ahead(source, |reader| {
            let mut byte = [0u8; 1];
            reader.read_exact(&mut byte).map(|()| byte[0])
        });
        assert_eq!(first.unwrap(), 1);
    }
}
