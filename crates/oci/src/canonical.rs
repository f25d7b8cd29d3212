//! Canonical JSON for the manifests and indexes the store writes.
//!
//! A manifest's digest is the SHA-256 of its exact bytes, so the bytes must not depend on hash-map order or on the
//! serializer's mood. `oci-spec` keeps annotations in a `HashMap`, whose order changes from run to run; these
//! encoders write fields in the order Go's `encoding/json` writes the image-spec structs (as BuildKit and containerd
//! produce them), maps sorted by key, compact, with Go's HTML escaping of `<`, `>`, `&`, U+2028 and U+2029. Equal
//! inputs therefore give byte-identical output, and the output matches what Go tooling writes for the same values.

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, Platform};
use serde::Serialize;

use crate::{Error, Result};

/// Encodes a manifest canonically (see the module docs).
pub fn encode_manifest(manifest: &ImageManifest) -> Result<Vec<u8>> {
    let out = ManifestOut {
        schema_version: manifest.schema_version(),
        media_type: manifest.media_type().as_ref().map(|m| m.to_string()),
        artifact_type: manifest.artifact_type().as_ref().map(|m| m.to_string()),
        config: DescriptorOut::from(manifest.config()),
        layers: manifest.layers().iter().map(DescriptorOut::from).collect(),
        subject: manifest.subject().as_ref().map(DescriptorOut::from),
        annotations: sorted(manifest.annotations().as_ref()),
    };
    encode(&out, "image manifest")
}

/// Encodes an index canonically (see the module docs).
pub fn encode_index(index: &ImageIndex) -> Result<Vec<u8>> {
    let out = IndexOut {
        schema_version: index.schema_version(),
        media_type: index.media_type().as_ref().map(|m| m.to_string()),
        artifact_type: index.artifact_type().as_ref().map(|m| m.to_string()),
        manifests: index.manifests().iter().map(DescriptorOut::from).collect(),
        subject: index.subject().as_ref().map(DescriptorOut::from),
        annotations: sorted(index.annotations().as_ref()),
    };
    encode(&out, "image index")
}

fn encode<T: Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(value).map_err(|source| Error::Encode { what, source })?;
    Ok(go_html_escape(json))
}

/// Go's `encoding/json` escapes these characters by default; serde_json does not. They can only occur inside
/// strings, so replacing them byte-wise keeps the JSON valid and equal in value.
fn go_html_escape(json: Vec<u8>) -> Vec<u8> {
    let needs = |b: &u8| matches!(b, b'<' | b'>' | b'&' | 0xE2);
    if !json.iter().any(needs) {
        return json;
    }
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'<' => out.extend_from_slice(br"\u003c"),
            b'>' => out.extend_from_slice(br"\u003e"),
            b'&' => out.extend_from_slice(br"\u0026"),
            0xE2 if json.get(i + 1) == Some(&0x80)
                && matches!(json.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                out.extend_from_slice(if json[i + 2] == 0xA8 {
                    br"\u2028"
                } else {
                    br"\u2029"
                });
                i += 3;
                continue;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    out
}

fn sorted(map: Option<&HashMap<String, String>>) -> BTreeMap<&str, &str> {
    map.into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    config: DescriptorOut<'a>,
    layers: Vec<DescriptorOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<DescriptorOut<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexOut<'a> {
    schema_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    manifests: Vec<DescriptorOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<DescriptorOut<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'a str, &'a str>,
}

/// Field order of Go's `v1.Descriptor`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorOut<'a> {
    media_type: String,
    digest: &'a str,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    urls: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<PlatformOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
}

impl<'a> From<&'a Descriptor> for DescriptorOut<'a> {
    fn from(d: &'a Descriptor) -> Self {
        Self {
            media_type: d.media_type().to_string(),
            digest: d.digest().as_ref(),
            size: d.size(),
            urls: d.urls().as_ref(),
            annotations: sorted(d.annotations().as_ref()),
            data: d.data().as_deref(),
            platform: d.platform().as_ref().map(PlatformOut::from),
            artifact_type: d.artifact_type().as_ref().map(|m| m.to_string()),
        }
    }
}

/// Field order of Go's `v1.Platform`.
#[derive(Serialize)]
struct PlatformOut<'a> {
    architecture: String,
    os: String,
    #[serde(rename = "os.version", skip_serializing_if = "Option::is_none")]
    os_version: Option<&'a str>,
    #[serde(rename = "os.features", skip_serializing_if = "Option::is_none")]
    os_features: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
}

impl<'a> From<&'a Platform> for PlatformOut<'a> {
    fn from(p: &'a Platform) -> Self {
        Self {
            architecture: p.architecture().to_string(),
            os: p.os().to_string(),
            os_version: p.os_version().as_deref(),
            os_features: p.os_features().as_ref(),
            variant: p.variant().as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_bytes_have_go_field_order_and_sorted_annotations() {
        let json = r#"{"layers":[{"size":3,"digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","mediaType":"application/vnd.oci.image.layer.v1.tar+gzip"}],
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},
            "annotations":{"z":"<1>","a":"&","m":"x"},"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}"#;
        let manifest: ImageManifest = serde_json::from_str(json).unwrap();
        let first = encode_manifest(&manifest).unwrap();
        let expected = concat!(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
            r#""config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":2},"#,
            r#""layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":3}],"#,
            r#""annotations":{"a":"\u0026","m":"x","z":"\u003c1\u003e"}}"#
        );
        assert_eq!(String::from_utf8(first.clone()).unwrap(), expected);
        // Decoding the output gives the same value back.
        let again: ImageManifest = serde_json::from_slice(&first).unwrap();
        assert_eq!(again, manifest);
    }

    #[test]
    fn html_escape_handles_line_separators() {
        let raw = "\"a\u{2028}b\u{2029}c\u{e9}\"".as_bytes().to_vec();
        assert_eq!(
            go_html_escape(raw),
            br#""a\u2028b\u2029c"#.iter().copied().chain("\u{e9}\"".bytes()).collect::<Vec<u8>>()
        );
    }
}
