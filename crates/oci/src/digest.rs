//! Content digests (`sha256:<hex>`), the names of everything in the store.
//!
//! The store only addresses content by SHA-256, the algorithm every registry and runtime uses; a digest with another
//! algorithm parses (so a descriptor can be read and reported) but the store refuses to ingest or look it up.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A validated `sha256:<64 lowercase hex>` content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// Always `sha256:` followed by 64 lowercase hex digits.
    text: String,
}

/// Why a string is not a digest the store accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestParseError {
    /// The algorithm prefix is missing (`<algorithm>:<hex>`).
    #[error("invalid digest {0:?}: expected sha256:<64 hex digits>")]
    Malformed(String),
    /// The algorithm is not SHA-256.
    #[error("unsupported digest algorithm in {0:?}: only sha256 is supported")]
    UnsupportedAlgorithm(String),
}

impl Digest {
    /// The digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Self::from_sha256_bytes(&Sha256::digest(bytes))
    }

    /// Builds a digest from a raw 32-byte SHA-256 output.
    pub(crate) fn from_sha256_bytes(raw: &[u8]) -> Self {
        Self {
            text: format!("sha256:{}", hex::encode(raw)),
        }
    }

    /// The algorithm name, always `sha256`.
    pub fn algorithm(&self) -> &str {
        "sha256"
    }

    /// The 64 hex digits after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.text["sha256:".len()..]
    }

    /// The full `sha256:<hex>` text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first 12 hex digits, the short ID `docker images` shows.
    pub fn short_id(&self) -> &str {
        &self.hex()[..12]
    }

    /// The same digest as the `oci-spec` type used in descriptors.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        self.text
            .parse()
            .expect("a validated sha256 digest is a valid OCI digest")
    }

    /// Converts an `oci-spec` digest (from a descriptor) into a store digest.
    pub fn from_oci(digest: &oci_spec::image::Digest) -> Result<Self, DigestParseError> {
        digest.as_ref().parse()
    }
}

impl FromStr for Digest {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(DigestParseError::Malformed(s.to_owned()));
        };
        if algorithm != "sha256" {
            if algorithm.is_empty() || hex.is_empty() {
                return Err(DigestParseError::Malformed(s.to_owned()));
            }
            return Err(DigestParseError::UnsupportedAlgorithm(s.to_owned()));
        }
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestParseError::Malformed(s.to_owned()));
        }
        Ok(Self { text: s.to_owned() })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.text)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A SHA-256 hasher that also counts bytes: the one-pass digest of a stream.
#[derive(Default)]
pub(crate) struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn finish(self) -> (Digest, u64) {
        (Digest::from_sha256_bytes(&self.sha.finalize()), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_the_well_known_digest() {
        assert_eq!(
            Digest::sha256_of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_rejects_bad_digests() {
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!("abc".parse::<Digest>().is_err());
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(upper.parse::<Digest>().is_err());
        let other = format!("sha512:{}", "a".repeat(128));
        assert_eq!(
            other.parse::<Digest>(),
            Err(DigestParseError::UnsupportedAlgorithm(other.clone()))
        );
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(good.parse::<Digest>().map(|d| d.to_string()), Ok(good));
    }

    #[test]
    fn hasher_matches_one_shot_digest() {
        let mut hasher = Hasher::default();
        hasher.update(b"hello ");
        hasher.update(b"world");
        let (digest, len) = hasher.finish();
        assert_eq!(digest, Digest::sha256_of(b"hello world"));
        assert_eq!(len, 11);
    }
}
