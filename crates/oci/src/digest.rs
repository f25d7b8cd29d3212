//! Bridges between the project's [`Digest`] (from `hoist-layer`) and the `oci-spec` digest in descriptors.
//!
//! The store addresses content by SHA-256 only, the algorithm every registry and runtime uses; a descriptor with
//! another algorithm is refused with a parse error naming it.

use hoist_layer::{Digest, ParseDigestError};

/// Digest conversions the store and its callers need.
pub trait DigestExt {
    /// The same digest as the `oci-spec` type used in descriptors.
    fn to_oci(&self) -> oci_spec::image::Digest;

    /// The first 12 hex digits: the short image ID `docker images` shows.
    fn short_id(&self) -> String;
}

impl DigestExt for Digest {
    fn to_oci(&self) -> oci_spec::image::Digest {
        self.to_string()
            .parse()
            .expect("a sha256 digest is a valid OCI digest")
    }

    fn short_id(&self) -> String {
        let mut hex = self.encoded();
        hex.truncate(12);
        hex
    }
}

/// Converts an `oci-spec` digest (from a descriptor) into the project's digest.
pub fn digest_from_oci(digest: &oci_spec::image::Digest) -> Result<Digest, ParseDigestError> {
    digest.as_ref().parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways() {
        let digest = Digest::sha256(b"");
        assert_eq!(digest.short_id(), "e3b0c44298fc");
        let oci = digest.to_oci();
        assert_eq!(oci.as_ref(), digest.to_string());
        assert_eq!(digest_from_oci(&oci), Ok(digest));
        let other: oci_spec::image::Digest = format!("sha512:{}", "a".repeat(128)).parse().unwrap();
        assert!(digest_from_oci(&other).is_err());
    }
}
