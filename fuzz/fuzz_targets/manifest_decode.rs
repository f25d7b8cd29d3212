//! Arbitrary bytes decoded as what a registry sends (image manifest, index, config) and as an
//! image reference: errors are fine, panics are not. What decodes must encode canonically, and
//! the canonical bytes must decode and encode again to the same bytes.
#![no_main]

use hoist_oci::oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use hoist_oci::{Reference, classify, digest_from_oci, encode_index, encode_manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = serde_json::from_slice::<ImageManifest>(data) {
        let _ = manifest.media_type().as_ref().map(classify);
        let _ = digest_from_oci(manifest.config().digest());
        for layer in manifest.layers() {
            let _ = classify(layer.media_type());
            let _ = digest_from_oci(layer.digest());
        }
        if let Ok(bytes) = encode_manifest(&manifest) {
            let again: ImageManifest =
                serde_json::from_slice(&bytes).expect("a canonical manifest decodes");
            let twice = encode_manifest(&again).expect("a decoded canonical manifest encodes");
            assert_eq!(twice, bytes, "canonical manifest encoding is not stable");
        }
    }
    if let Ok(index) = serde_json::from_slice::<ImageIndex>(data) {
        for entry in index.manifests() {
            let _ = classify(entry.media_type());
            let _ = digest_from_oci(entry.digest());
        }
        if let Ok(bytes) = encode_index(&index) {
            let again: ImageIndex =
                serde_json::from_slice(&bytes).expect("a canonical index decodes");
            let twice = encode_index(&again).expect("a decoded canonical index encodes");
            assert_eq!(twice, bytes, "canonical index encoding is not stable");
        }
    }
    let _ = serde_json::from_slice::<ImageConfiguration>(data);
    if let Ok(text) = std::str::from_utf8(data)
        && text.len() < 512
        && let Ok(reference) = text.parse::<Reference>()
    {
        let printed = reference.to_string();
        let again: Reference = printed.parse().expect("a printed reference parses");
        assert_eq!(again.to_string(), printed, "reference round trip");
    }
});
