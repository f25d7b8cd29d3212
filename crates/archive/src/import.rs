//! `hoist import`: a root filesystem tarball becomes a one-layer image, like `docker import`.
//!
//! The input (plain, gzip or zstd tar, recognised by magic bytes) is read once: each buffer is hashed for the
//! diffID, walked as tar (which validates it and measures the layer), and compressed into the store with gzip, whose
//! output is hashed for the blob digest. The layer is never held in memory or written twice. As with Docker, the
//! diffID is the SHA-256 of the tar exactly as given, so `hoist import` and `docker import` of one tarball give the
//! same diffID.

use std::io::{self, BufReader, Read, Write};
use std::time::SystemTime;

use serde::Serialize;

use hoist_layer::{CompressOptions, Compression, Decompressor, LayerBlobWriter};
use hoist_oci::{Digest, Expected, ImagePlatform, LayerInfo, ManifestFormat, Reference, Store};

use crate::Error;
use crate::change::RunConfig;
use crate::oci_layout::descriptor;

/// What to import a tarball as.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// References to tag the image with (may be empty: the image is then only known by ID).
    pub references: Vec<Reference>,
    /// `--change` instructions, applied in order.
    pub changes: Vec<String>,
    /// The history comment; Docker's default is `Imported from -`.
    pub message: Option<String>,
    /// The image's `created` time (pass `SOURCE_DATE_EPOCH` here for a reproducible image).
    pub created: SystemTime,
    /// The platform recorded in the config; the host's by default.
    pub platform: ImagePlatform,
    /// How the layer blob is compressed (gzip, as Docker does).
    pub compression: Compression,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            references: Vec::new(),
            changes: Vec::new(),
            message: None,
            created: SystemTime::now(),
            platform: ImagePlatform::host(),
            compression: Compression::Gzip,
        }
    }
}

/// The imported image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    /// The image ID (config digest), what `docker import` prints.
    pub id: Digest,
    /// The manifest digest.
    pub manifest: Digest,
    /// The layer's diffID: the SHA-256 of the uncompressed tarball.
    pub diff_id: Digest,
    /// The layer blob's digest.
    pub layer: Digest,
}

/// The history comment Docker writes when the tarball comes from a file or stdin.
const DEFAULT_MESSAGE: &str = "Imported from -";

/// Imports the tarball `rootfs` as a one-layer image (see the module docs).
pub fn import(
    store: &Store,
    rootfs: impl Read,
    options: &ImportOptions,
) -> Result<ImportedImage, Error> {
    // Changes are checked before the (possibly large) input is read.
    let mut run_config = RunConfig::default();
    for change in &options.changes {
        run_config.apply_change(change)?;
    }

    let input = Decompressor::new(BufReader::with_capacity(IO_BUFFER, rootfs))
        .map_err(|source| Error::ReadRootfs { source })?;
    let mut blob = store.blob_writer()?;
    let layer = LayerBlobWriter::new(&mut blob, options.compression, &CompressOptions::default())
        .map_err(|source| Error::WriteLayer { source })?;
    let mut tee = Tee {
        reader: input,
        writer: layer,
        write_error: None,
    };
    let content_size =
        hoist_oci::tar_content_size(&mut tee).map_err(|source| match tee.write_error.take() {
            Some(source) => Error::WriteLayer { source },
            None => Error::ReadRootfs { source },
        })?;
    let (_, digests) = tee
        .writer
        .finish()
        .map_err(|source| Error::WriteLayer { source })?;
    if digests.uncompressed_size == 0 {
        return Err(Error::ReadRootfs {
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "the rootfs tarball is empty"),
        });
    }
    let stored = blob.commit(&Expected::digest(digests.digest).with_size(digests.size))?;
    store.set_layer_info(
        &stored.digest,
        &LayerInfo {
            diff_id: digests.diff_id,
            uncompressed_size: digests.uncompressed_size,
            content_size,
        },
    )?;

    let created = rfc3339(options.created);
    let config = ImageConfig {
        architecture: &options.platform.architecture,
        config: &run_config,
        created: &created,
        history: [History {
            created: &created,
            comment: options.message.as_deref().unwrap_or(DEFAULT_MESSAGE),
        }],
        os: &options.platform.os,
        rootfs: RootFs {
            kind: "layers",
            diff_ids: [digests.diff_id.to_string()],
        },
        variant: options.platform.variant.as_deref(),
    };
    let config_bytes = serde_json::to_vec(&config).map_err(|source| Error::Encode {
        what: "image config",
        source,
    })?;
    let layer_descriptor = descriptor(
        ManifestFormat::Oci.layer_media_type(digests.compression),
        &stored.digest,
        stored.size,
    );
    let written = store.write_image(&config_bytes, &[layer_descriptor], ManifestFormat::Oci)?;
    for reference in &options.references {
        store.tag(reference, &written.manifest)?;
    }
    let digest = |d: &oci_spec::image::Descriptor| {
        hoist_oci::digest_from_oci(d.digest())
            .expect("the store wrote this descriptor with a sha256 digest")
    };
    Ok(ImportedImage {
        id: digest(&written.config),
        manifest: digest(&written.manifest),
        diff_id: digests.diff_id,
        layer: stored.digest,
    })
}

/// Read buffer for the tarball.
const IO_BUFFER: usize = 128 * 1024;

/// The image config `import` writes: top-level keys sorted as BuildKit writes them, Docker's `config` object.
#[derive(Serialize)]
struct ImageConfig<'a> {
    architecture: &'a str,
    config: &'a RunConfig,
    created: &'a str,
    history: [History<'a>; 1],
    os: &'a str,
    rootfs: RootFs,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
}

/// Docker's import history entry: no `created_by`, the message as `comment`.
#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    comment: &'a str,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: [String; 1],
}

/// Copies everything read from `reader` into `writer`, keeping a write error apart from read and tar errors.
struct Tee<R, W> {
    reader: R,
    writer: W,
    write_error: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        if let Err(error) = self.writer.write_all(&buf[..n]) {
            self.write_error = Some(error);
            return Err(io::Error::other("writing the layer blob failed"));
        }
        Ok(n)
    }
}

/// RFC 3339 with nanoseconds and trailing zeros trimmed, as Go's `time.RFC3339Nano` (and so Docker) writes.
fn rfc3339(time: SystemTime) -> String {
    let text = humantime::format_rfc3339_nanos(time).to_string();
    // "2024-01-02T03:04:05.120000000Z" → "2024-01-02T03:04:05.12Z"; all zeros → no fraction.
    match text.strip_suffix('Z').and_then(|t| t.split_once('.')) {
        Some((seconds, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                format!("{seconds}Z")
            } else {
                format!("{seconds}.{fraction}Z")
            }
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::{Value, json};

    use super::*;
    use crate::testing::{TarBuilder, gzip, store, zstd};

    fn rootfs() -> Vec<u8> {
        TarBuilder::new()
            .dir("bin/")
            .file("bin/busybox", &[7u8; 3000])
            .symlink("bin/sh", "/bin/busybox")
            .hardlink("bin/again", "bin/busybox")
            .finish()
    }

    fn options(name: &str) -> ImportOptions {
        ImportOptions {
            references: vec![name.parse().unwrap()],
            created: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            platform: ImagePlatform {
                os: "linux".to_owned(),
                architecture: "arm64".to_owned(),
                variant: Some("v8".to_owned()),
            },
            ..ImportOptions::default()
        }
    }

    #[test]
    fn plain_gzip_and_zstd_input_give_the_same_image() {
        let tar = rootfs();
        let (_dir, store) = store();
        let plain = import(&store, &tar[..], &options("app:plain")).unwrap();
        let from_gzip = import(&store, &gzip(&tar)[..], &options("app:gzip")).unwrap();
        let from_zstd = import(&store, &zstd(&tar)[..], &options("app:zstd")).unwrap();
        // The diffID is the digest of the tar as given, as `docker import` computes it.
        assert_eq!(plain.diff_id, Digest::sha256(&tar));
        assert_eq!(from_gzip, plain);
        assert_eq!(from_zstd, plain);

        let image = store.read_image("app:plain").unwrap();
        assert_eq!(image.id, plain.id);
        let layer = &image.layers[0];
        assert_eq!(
            layer.descriptor.media_type().to_string(),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let info = layer.info.clone().expect("layer info recorded at import");
        assert_eq!(info.diff_id, Digest::sha256(&tar));
        assert_eq!(info.uncompressed_size, tar.len() as u64);
        // 3000 bytes of file + the symlink target; the hard link is not counted again.
        assert_eq!(info.content_size, 3000 + "/bin/busybox".len() as u64);
        // The stored blob is gzip of exactly the tar.
        let mut unpacked = Vec::new();
        Decompressor::new(store.open_blob(&plain.layer).unwrap())
            .unwrap()
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, tar);
    }

    #[test]
    fn config_is_docker_s_with_changes() {
        let (_dir, store) = store();
        let mut options = options("app:cfg");
        options.changes = vec![r#"CMD ["/bin/sh"]"#.to_owned(), "ENV PATH=/bin".to_owned()];
        let imported = import(&store, &rootfs()[..], &options).unwrap();
        let config: Value =
            serde_json::from_slice(&store.read_blob(&imported.id).unwrap()).unwrap();
        assert_eq!(
            config,
            json!({
                "architecture": "arm64",
                "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
                "created": "2023-11-14T22:13:20Z",
                "history": [{"created": "2023-11-14T22:13:20Z", "comment": "Imported from -"}],
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(&rootfs()).to_string()]},
                "variant": "v8",
            })
        );
        // Same input, same time: the same image, byte for byte.
        let again = import(&store, &rootfs()[..], &options).unwrap();
        assert_eq!(again, imported);
    }

    #[test]
    fn bad_input_is_refused_before_anything_is_tagged() {
        let (_dir, store) = store();
        let err = import(&store, &b""[..], &options("app:empty")).unwrap_err();
        assert!(err.to_string().contains("rootfs"), "{err}");
        let err = import(&store, &[b'x'; 2000][..], &options("app:garbage")).unwrap_err();
        assert!(matches!(err, Error::ReadRootfs { .. }), "{err}");
        let truncated = &gzip(&rootfs())[..100];
        let err = import(&store, truncated, &options("app:cut")).unwrap_err();
        assert!(matches!(err, Error::ReadRootfs { .. }), "{err}");
        assert!(store.list_images().unwrap().is_empty());

        // An invalid change fails before the input is read at all.
        struct Unread;
        impl Read for Unread {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                panic!("the input must not be read when a change is invalid")
            }
        }
        let mut options = options("app:change");
        options.changes = vec!["RUN echo".to_owned()];
        let err = import(&store, Unread, &options).unwrap_err();
        assert!(
            err.to_string()
                .contains("run is not a valid change command"),
            "{err}"
        );
    }

    #[test]
    fn timestamps_look_like_go() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000)),
            "2023-11-14T22:13:20.12Z"
        );
    }
}
