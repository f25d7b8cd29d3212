//! Fixtures for the unit tests: real tar archives built entry by entry (including entries no well-behaved tool
//! writes), layers, configs, and a store in a temp dir.

use std::io::Write;

use hoist_oci::{Digest, Store};

/// A store in a fresh temp dir (kept alive by the returned guard).
pub(crate) fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let store = Store::open(dir.path().join("store")).expect("open store");
    (dir, store)
}

/// Builds a tar stream entry by entry. Names are written raw, so tests can produce what a hostile archive holds.
pub(crate) struct TarBuilder {
    bytes: Vec<u8>,
}

impl TarBuilder {
    pub(crate) fn new() -> Self {
        Self { bytes: Vec::new() }
    }

    fn header(name: &str, kind: tar::EntryType, size: u64, link: &str) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        header.set_mtime(0);
        // Raw bytes: `set_path` would refuse `..` and absolute names, which is what some tests need.
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_cksum();
        header
    }

    fn push(&mut self, header: &tar::Header, data: &[u8]) {
        self.bytes.extend_from_slice(header.as_bytes());
        self.bytes.extend_from_slice(data);
        let padding = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0, padding));
    }

    pub(crate) fn file(mut self, name: &str, data: &[u8]) -> Self {
        let header = Self::header(name, tar::EntryType::Regular, data.len() as u64, "");
        self.push(&header, data);
        self
    }

    pub(crate) fn dir(mut self, name: &str) -> Self {
        let header = Self::header(name, tar::EntryType::Directory, 0, "");
        self.push(&header, &[]);
        self
    }

    pub(crate) fn symlink(mut self, name: &str, target: &str) -> Self {
        let header = Self::header(name, tar::EntryType::Symlink, 0, target);
        self.push(&header, &[]);
        self
    }

    pub(crate) fn hardlink(mut self, name: &str, target: &str) -> Self {
        let header = Self::header(name, tar::EntryType::Link, 0, target);
        self.push(&header, &[]);
        self
    }

    pub(crate) fn fifo(mut self, name: &str) -> Self {
        let header = Self::header(name, tar::EntryType::Fifo, 0, "");
        self.push(&header, &[]);
        self
    }

    /// The archive with its end-of-archive blocks.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.bytes.extend(std::iter::repeat_n(0, 1024));
        self.bytes
    }
}

/// A small layer: an uncompressed tar holding `etc/hello` with `content`.
pub(crate) fn layer_tar(content: &str) -> Vec<u8> {
    TarBuilder::new()
        .dir("etc/")
        .file("etc/hello", content.as_bytes())
        .finish()
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    compress(bytes, hoist_layer::Compression::Gzip)
}

pub(crate) fn zstd(bytes: &[u8]) -> Vec<u8> {
    compress(bytes, hoist_layer::Compression::Zstd)
}

fn compress(bytes: &[u8], compression: hoist_layer::Compression) -> Vec<u8> {
    let options = hoist_layer::CompressOptions::default().with_threads(1);
    let mut writer =
        hoist_layer::Compressor::new(Vec::new(), compression, &options).expect("compressor");
    writer.write_all(bytes).expect("compress");
    writer.finish().expect("finish compression")
}

/// An image config whose `rootfs.diff_ids` are those of `layers` (uncompressed tars).
pub(crate) fn config_for(layers: &[&[u8]]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| Digest::sha256(l).to_string())
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "comment": "test"}],
    }))
    .expect("config JSON")
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    Digest::sha256(bytes).encoded()
}

/// An OCI manifest over a config and layers, with their media types.
pub(crate) fn manifest_for(config: &[u8], layers: &[(&[u8], &str)]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|(blob, media_type)| {
            serde_json::json!({"mediaType": media_type, "digest": Digest::sha256(blob).to_string(), "size": blob.len()})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": Digest::sha256(config).to_string(),
            "size": config.len(),
        },
        "layers": layers,
    }))
    .expect("manifest JSON")
}

/// An `index.json` with one manifest entry and the given annotations.
pub(crate) fn index_for(manifest: &[u8], annotations: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": Digest::sha256(manifest).to_string(),
            "size": manifest.len(),
            "annotations": annotations,
        }],
    }))
    .expect("index JSON")
}

pub(crate) const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion": "1.0.0"}"#;
pub(crate) const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
