//! Layer compression: gzip (parallel, pigz-style) and zstd writers, and a reader that detects
//! gzip, zstd or plain input from its first bytes.

mod gzip;

use std::fmt;
use std::io::{self, BufReader, Read, Write};
use std::str::FromStr;

use gzip::ParallelGzWriter;

/// How a layer blob is compressed. Chosen per output; the uncompressed tar is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Plain tar (`application/vnd.oci.image.layer.v1.tar`).
    None,
    /// gzip (`...tar+gzip`), the default of Docker and BuildKit and readable everywhere.
    #[default]
    Gzip,
    /// zstd (`...tar+zstd`): faster and smaller, needs containerd ≥ 1.5 / Docker ≥ 23 to pull.
    Zstd,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Bytes of input per zstd worker job.
const ZSTD_JOB_SIZE: u32 = 4 << 20;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// The lowercase name: `none`, `gzip` or `zstd` (also what [`FromStr`] accepts).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }

    /// The suffix of the OCI layer media type: `""`, `"+gzip"` or `"+zstd"`.
    #[must_use]
    pub const fn media_type_suffix(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Gzip => "+gzip",
            Self::Zstd => "+zstd",
        }
    }

    /// The compression whose magic bytes start `prefix` (gzip `1f 8b`, zstd `28 b5 2f fd`);
    /// anything else is taken as uncompressed.
    #[must_use]
    pub fn detect(prefix: &[u8]) -> Self {
        if prefix.starts_with(&ZSTD_MAGIC) {
            Self::Zstd
        } else if prefix.starts_with(&GZIP_MAGIC) {
            Self::Gzip
        } else {
            Self::None
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A compression name that is not `none`, `gzip` or `zstd`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression {input:?}: expected none, gzip or zstd")]
pub struct ParseCompressionError {
    /// The rejected input.
    pub input: String,
}

impl FromStr for Compression {
    type Err = ParseCompressionError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input {
            "none" | "uncompressed" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            "zstd" => Ok(Self::Zstd),
            _ => Err(ParseCompressionError {
                input: input.to_owned(),
            }),
        }
    }
}

/// Tuning for [`Compressor`]. The defaults match Docker/BuildKit's levels and use every core.
///
/// The compressed bytes depend on the levels but not on `threads`: parallel gzip cuts blocks at
/// fixed offsets and zstd's multithreaded mode is deterministic for any worker count ≥ 1, so
/// blob digests are reproducible across machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressOptions {
    threads: usize,
    gzip_level: u32,
    zstd_level: i32,
}

impl Default for CompressOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            gzip_level: 6,
            zstd_level: 3,
        }
    }
}

impl CompressOptions {
    /// Number of compression threads (at least 1). Default: the number of available cores.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// gzip level, 0 (store) to 9 (best). Default 6, as `gzip` and Go's `compress/gzip`.
    #[must_use]
    pub fn with_gzip_level(mut self, level: u32) -> Self {
        self.gzip_level = level.min(9);
        self
    }

    /// zstd level, 1 to 22. Default 3, zstd's own default.
    #[must_use]
    pub fn with_zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = level.clamp(1, 22);
        self
    }

    /// The number of compression threads.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.threads
    }
}

/// A writer that compresses into a sink. Call [`finish`](Self::finish) to write the trailer.
pub struct Compressor<W: Write> {
    inner: CompressorInner<W>,
}

enum CompressorInner<W: Write> {
    None(W),
    Gzip(ParallelGzWriter<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    /// A compressor writing `compression`-compressed bytes to `sink`.
    pub fn new(sink: W, compression: Compression, options: &CompressOptions) -> io::Result<Self> {
        let inner = match compression {
            Compression::None => CompressorInner::None(sink),
            Compression::Gzip => CompressorInner::Gzip(ParallelGzWriter::new(
                sink,
                options.gzip_level,
                options.threads,
            )),
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(sink, options.zstd_level)?;
                // Always at least one worker: zstd's output differs between its single-threaded
                // mode (0 workers) and its multithreaded mode, but not between worker counts.
                encoder.multithread(u32::try_from(options.threads).unwrap_or(u32::MAX))?;
                // Jobs of 4 MiB instead of zstd's default (4 windows, 8 MiB at level 3) keep
                // peak memory near 40 MB at no measurable cost in ratio.
                encoder.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB_SIZE))?;
                encoder.include_checksum(true)?;
                CompressorInner::Zstd(encoder)
            }
        };
        Ok(Self { inner })
    }

    /// The compression this writer produces.
    #[must_use]
    pub fn compression(&self) -> Compression {
        match self.inner {
            CompressorInner::None(_) => Compression::None,
            CompressorInner::Gzip(_) => Compression::Gzip,
            CompressorInner::Zstd(_) => Compression::Zstd,
        }
    }

    /// Compresses what is buffered, writes the format's trailer and returns the sink (flushed).
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            CompressorInner::None(mut sink) => {
                sink.flush()?;
                Ok(sink)
            }
            CompressorInner::Gzip(writer) => writer.finish(),
            CompressorInner::Zstd(encoder) => {
                let mut sink = encoder.finish()?;
                sink.flush()?;
                Ok(sink)
            }
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            CompressorInner::None(sink) => sink.write(buf),
            CompressorInner::Gzip(writer) => writer.write(buf),
            CompressorInner::Zstd(encoder) => encoder.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            CompressorInner::None(sink) => sink.write_all(buf),
            CompressorInner::Gzip(writer) => writer.write_all(buf),
            CompressorInner::Zstd(encoder) => encoder.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            CompressorInner::None(sink) => sink.flush(),
            CompressorInner::Gzip(writer) => writer.flush(),
            CompressorInner::Zstd(encoder) => encoder.flush(),
        }
    }
}

impl<W: Write> fmt::Debug for Compressor<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor")
            .field("compression", &self.compression())
            .finish_non_exhaustive()
    }
}

/// A reader that decompresses gzip (including multi-member files, as pigz and bgzip write),
/// zstd, or passes plain bytes through, choosing by the magic bytes at the start of the input.
pub struct Decompressor<R: Read> {
    inner: DecompressorInner<R>,
}

enum DecompressorInner<R: Read> {
    None(Sniffed<R>),
    Gzip(Box<flate2::read::MultiGzDecoder<Sniffed<R>>>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<Sniffed<R>>>),
}

impl<R: Read> Decompressor<R> {
    /// Reads the first bytes of `reader` to detect its compression. Empty input is plain.
    pub fn new(reader: R) -> io::Result<Self> {
        let sniffed = Sniffed::new(reader)?;
        let inner = match Compression::detect(sniffed.prefix()) {
            Compression::None => DecompressorInner::None(sniffed),
            Compression::Gzip => {
                DecompressorInner::Gzip(Box::new(flate2::read::MultiGzDecoder::new(sniffed)))
            }
            Compression::Zstd => {
                DecompressorInner::Zstd(zstd::stream::read::Decoder::new(sniffed)?)
            }
        };
        Ok(Self { inner })
    }

    /// The compression detected at the start of the input.
    #[must_use]
    pub fn compression(&self) -> Compression {
        match self.inner {
            DecompressorInner::None(_) => Compression::None,
            DecompressorInner::Gzip(_) => Compression::Gzip,
            DecompressorInner::Zstd(_) => Compression::Zstd,
        }
    }
}

impl<R: Read> Read for Decompressor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            DecompressorInner::None(reader) => reader.read(buf),
            DecompressorInner::Gzip(reader) => reader.read(buf),
            DecompressorInner::Zstd(reader) => reader.read(buf),
        }
    }
}

impl<R: Read> fmt::Debug for Decompressor<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decompressor")
            .field("compression", &self.compression())
            .finish_non_exhaustive()
    }
}

/// A reader whose first few bytes were read ahead to look at, then replayed.
struct Sniffed<R> {
    prefix: [u8; 4],
    prefix_len: usize,
    replayed: usize,
    inner: R,
}

impl<R: Read> Sniffed<R> {
    fn new(mut inner: R) -> io::Result<Self> {
        let mut prefix = [0u8; 4];
        let mut prefix_len = 0;
        // A pipe may deliver fewer bytes per read than the magic is long.
        while prefix_len < prefix.len() {
            match inner.read(&mut prefix[prefix_len..]) {
                Ok(0) => break,
                Ok(n) => prefix_len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            prefix,
            prefix_len,
            replayed: 0,
            inner,
        })
    }

    fn prefix(&self) -> &[u8] {
        &self.prefix[..self.prefix_len]
    }
}

impl<R: Read> Read for Sniffed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.replayed < self.prefix_len {
            let rest = &self.prefix[self.replayed..self.prefix_len];
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.replayed += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte per call, like a slow pipe.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    fn compress(data: &[u8], compression: Compression) -> Vec<u8> {
        let options = CompressOptions::default().with_threads(2);
        let mut writer = Compressor::new(Vec::new(), compression, &options).unwrap();
        assert_eq!(writer.compression(), compression);
        writer.write_all(data).unwrap();
        writer.finish().unwrap()
    }

    #[test]
    fn every_compression_round_trips_with_detection() {
        let data: Vec<u8> = (0..700_000u32)
            .flat_map(|i| (i / 3).to_le_bytes())
            .collect();
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let compressed = compress(&data, compression);
            assert_eq!(Compression::detect(&compressed), compression);
            for trickle in [false, true] {
                let mut out = Vec::new();
                let mut reader = if trickle {
                    let reader: Box<dyn Read> = Box::new(Trickle(&compressed));
                    Decompressor::new(reader).unwrap()
                } else {
                    Decompressor::new(Box::new(&compressed[..]) as Box<dyn Read>).unwrap()
                };
                assert_eq!(reader.compression(), compression);
                reader.read_to_end(&mut out).unwrap();
                assert_eq!(out, data, "{compression} trickle={trickle}");
            }
        }
    }

    #[test]
    fn short_and_empty_inputs_are_plain() {
        for input in [&b""[..], b"\x1f", b"abc"] {
            let mut reader = Decompressor::new(input).unwrap();
            assert_eq!(reader.compression(), Compression::None);
            let mut out = Vec::new();
            reader.read_to_end(&mut out).unwrap();
            assert_eq!(out, input);
        }
    }

    #[test]
    fn concatenated_gzip_members_decompress_fully() {
        let mut both = compress(b"first member\n", Compression::Gzip);
        both.extend(compress(b"second member\n", Compression::Gzip));
        let mut out = String::new();
        Decompressor::new(&both[..])
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "first member\nsecond member\n");
    }

    #[test]
    fn truncated_compressed_input_is_an_error() {
        let data = vec![7u8; 300_000];
        for compression in [Compression::Gzip, Compression::Zstd] {
            let compressed = compress(&data, compression);
            let cut = &compressed[..compressed.len() - 6];
            let mut out = Vec::new();
            let result = Decompressor::new(cut).unwrap().read_to_end(&mut out);
            assert!(result.is_err(), "{compression}: truncated input decoded");
        }
    }

    #[test]
    fn names_parse_and_display() {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            assert_eq!(
                compression.to_string().parse::<Compression>().unwrap(),
                compression
            );
        }
        assert_eq!(Compression::Gzip.media_type_suffix(), "+gzip");
        assert!("bzip2".parse::<Compression>().is_err());
    }
}
