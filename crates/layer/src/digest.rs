//! Content digests (`sha256:<hex>`) and the writer/reader adapters that compute them in one pass.
//!
//! [`Digest`] is the one digest type of the project: blobs, layers (diffIDs), configs and
//! manifests are all named by it. Only SHA-256 is supported: it is what every registry and
//! every image in practice uses, and a fixed-size value keeps the type `Copy`.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::Digest as _;
use sha2::Sha256;

/// The algorithm prefix of every [`Digest`].
const ALGORITHM: &str = "sha256";

/// A SHA-256 content digest, written `sha256:<64 lowercase hex digits>`.
///
/// Parse with [`str::parse`] (strict: lowercase hex, exactly 64 digits, as the OCI image spec
/// requires for `sha256`), print with `Display`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `data`.
    #[must_use]
    pub fn sha256(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// The digest with this raw 32-byte hash value.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32-byte hash value.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The algorithm part, always `sha256`.
    #[must_use]
    pub const fn algorithm(&self) -> &'static str {
        ALGORITHM
    }

    /// The encoded part: 64 lowercase hex digits (what OCI layouts use as the blob file name).
    #[must_use]
    pub fn encoded(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).expect("64 bytes hold the hex of 32 bytes");
        let hex = std::str::from_utf8(&buf).expect("hex digits are ASCII");
        write!(f, "{ALGORITHM}:{hex}")
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a valid [`Digest`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseDigestError {
    /// No `algorithm:` prefix.
    #[error("invalid digest {input:?}: expected `sha256:<hex>`")]
    MissingAlgorithm {
        /// The rejected input.
        input: String,
    },
    /// An algorithm other than `sha256`.
    #[error("unsupported digest algorithm {algorithm:?} in {input:?} (only sha256 is supported)")]
    UnsupportedAlgorithm {
        /// The algorithm named by the input.
        algorithm: String,
        /// The rejected input.
        input: String,
    },
    /// The hex part has the wrong length or a character that is not a lowercase hex digit.
    #[error("invalid sha256 digest {input:?}: expected 64 lowercase hex digits")]
    BadEncoding {
        /// The rejected input.
        input: String,
    },
}

impl FromStr for Digest {
    type Err = ParseDigestError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, encoded)) = input.split_once(':') else {
            return Err(ParseDigestError::MissingAlgorithm {
                input: input.to_owned(),
            });
        };
        if algorithm != ALGORITHM {
            return Err(ParseDigestError::UnsupportedAlgorithm {
                algorithm: algorithm.to_owned(),
                input: input.to_owned(),
            });
        }
        let lowercase_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        let mut bytes = [0u8; 32];
        if encoded.len() != 64
            || !encoded.bytes().all(lowercase_hex)
            || hex::decode_to_slice(encoded, &mut bytes).is_err()
        {
            return Err(ParseDigestError::BadEncoding {
                input: input.to_owned(),
            });
        }
        Ok(Self(bytes))
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The digest and size of a byte stream: what an OCI descriptor needs besides its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digested {
    /// SHA-256 of the bytes.
    pub digest: Digest,
    /// Number of bytes.
    pub size: u64,
}

/// A running SHA-256 with a byte count.
#[derive(Clone, Default)]
struct Hashing {
    hasher: Sha256,
    size: u64,
}

impl Hashing {
    fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
    }

    fn snapshot(&self) -> Digested {
        Digested {
            digest: Digest(self.hasher.clone().finalize().into()),
            size: self.size,
        }
    }

    fn finish(self) -> Digested {
        Digested {
            digest: Digest(self.hasher.finalize().into()),
            size: self.size,
        }
    }
}

/// A writer that hashes and counts every byte it passes on to the inner writer.
///
/// Only bytes the inner writer accepted are hashed, so the digest always matches what was
/// written, even after a short write.
pub struct DigestWriter<W> {
    inner: W,
    hashing: Hashing,
}

impl<W: Write> DigestWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hashing: Hashing::default(),
        }
    }

    /// Digest and size of the bytes written so far.
    #[must_use]
    pub fn digested(&self) -> Digested {
        self.hashing.snapshot()
    }

    /// Number of bytes written so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.hashing.size
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Flushes the inner writer and returns it with the digest and size of everything written.
    pub fn finish(mut self) -> io::Result<(W, Digested)> {
        self.inner.flush()?;
        Ok((self.inner, self.hashing.finish()))
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hashing.update(&buf[..n]);
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // One `update` per call instead of one per partial write.
        self.inner.write_all(buf)?;
        self.hashing.update(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W> fmt::Debug for DigestWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestWriter")
            .field("size", &self.hashing.size)
            .finish_non_exhaustive()
    }
}

/// A reader that hashes and counts every byte read through it.
///
/// [`finish`](Self::finish) reads the rest of the stream first, so the digest always covers
/// the whole stream even when the consumer stopped early (a tar reader stops at the
/// end-of-archive blocks and never reads the padding after them).
pub struct DigestReader<R> {
    inner: R,
    hashing: Hashing,
}

impl<R: Read> DigestReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hashing: Hashing::default(),
        }
    }

    /// Digest and size of the bytes read so far.
    #[must_use]
    pub fn digested(&self) -> Digested {
        self.hashing.snapshot()
    }

    /// Number of bytes read so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.hashing.size
    }

    /// Reads the stream to its end and returns the inner reader with the digest and size of
    /// the whole stream.
    pub fn finish(mut self) -> io::Result<(R, Digested)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.inner, self.hashing.finish()))
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hashing.update(&buf[..n]);
        Ok(n)
    }
}

impl<R> fmt::Debug for DigestReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestReader")
            .field("size", &self.hashing.size)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // sha256("abc") from FIPS 180-2, appendix B.1.
    const ABC: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_vector_round_trips_through_display_and_parse() {
        let digest = Digest::sha256(b"abc");
        assert_eq!(digest.to_string(), ABC);
        assert_eq!(ABC.parse::<Digest>().unwrap(), digest);
        assert_eq!(digest.encoded(), &ABC[7..]);
        assert_eq!(digest.algorithm(), "sha256");
        assert_eq!(Digest::from_bytes(*digest.as_bytes()), digest);
        assert_eq!(format!("{digest:?}"), ABC);
    }

    #[test]
    fn parse_rejects_malformed_digests() {
        let upper = ABC.to_uppercase().replacen("SHA256", "sha256", 1);
        for bad in [
            "",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "sha256:",
            "sha256:ba7816bf",
            &upper,
            &format!("{ABC}0"),
            "sha256:zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} parsed");
        }
        let err = "sha512:abcd".parse::<Digest>().unwrap_err();
        assert!(
            matches!(err, ParseDigestError::UnsupportedAlgorithm { ref algorithm, .. } if algorithm == "sha512")
        );
        assert!(err.to_string().contains("sha512"), "{err}");
    }

    #[test]
    fn writer_and_reader_agree_with_one_shot_digest() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let expected = Digested {
            digest: Digest::sha256(&data),
            size: data.len() as u64,
        };

        let mut writer = DigestWriter::new(Vec::new());
        for chunk in data.chunks(7_777) {
            writer.write_all(chunk).unwrap();
        }
        assert_eq!(writer.digested(), expected);
        let (written, digested) = writer.finish().unwrap();
        assert_eq!(digested, expected);
        assert_eq!(written, data);

        // The consumer reads only a prefix; finish() still covers the whole stream.
        let mut reader = DigestReader::new(&data[..]);
        let mut prefix = [0u8; 1000];
        reader.read_exact(&mut prefix).unwrap();
        assert_eq!(reader.size(), 1000);
        let (_, digested) = reader.finish().unwrap();
        assert_eq!(digested, expected);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_uses_the_string_form() {
        let digest: Digest = ABC.parse().unwrap();
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{ABC}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
        assert!(serde_json::from_str::<Digest>("\"sha256:00\"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn display_parse_round_trip(bytes in proptest::array::uniform32(proptest::num::u8::ANY)) {
            let digest = Digest::from_bytes(bytes);
            proptest::prop_assert_eq!(digest.to_string().parse::<Digest>().unwrap(), digest);
        }
    }
}
