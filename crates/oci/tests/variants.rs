//! Compressed variants of stored layers against a real store: made once, remembered, reused, deterministic, given up
//! when pruned, and checked by `hoist check`.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use hoist_oci::oci_spec::image::Descriptor;
use hoist_oci::{
    BlobInfo, CheckOptions, CompressProgress, Compression, Digest, Expected, LayerBlob,
    LayerCompression, ManifestFormat, PROGRESS_STEP, Problem, PruneOptions, Reference, Store,
    digest_from_oci, layer_descriptor, media_type,
};

/// A plain tar with a text file and a pseudo-random one (so gzip and zstd give different sizes than the tar).
fn layer_tar(seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let random: Vec<u8> = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let text = "the quick brown fox jumps over the lazy dog\n".repeat(5_000);
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in [("text.txt", text.as_bytes()), ("random.bin", &random[..])] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        builder.append_data(&mut header, path, content).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Writes an image over `layers` (each stored as given: plain or compressed) and tags it `name`.
fn image(store: &Store, layers: &[Vec<u8>], format: ManifestFormat, name: &str) -> Descriptor {
    let blobs: Vec<LayerBlob> = layers
        .iter()
        .map(|bytes| {
            store
                .ingest_layer(&bytes[..], &Expected::unknown())
                .unwrap()
        })
        .collect();
    let diff_ids: Vec<String> = blobs.iter().map(|l| l.info.diff_id.to_string()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let descriptors: Vec<Descriptor> = blobs.iter().map(|l| layer_descriptor(l, format)).collect();
    let written = store.write_image(&config, &descriptors, format).unwrap();
    store
        .tag(&name.parse::<Reference>().unwrap(), &written.manifest)
        .unwrap();
    written.manifest
}

fn digest(descriptor: &Descriptor) -> Digest {
    digest_from_oci(descriptor.digest()).unwrap()
}

fn blob_count(root: &Path) -> usize {
    fs::read_dir(root.join("blobs-v1/sha256")).unwrap().count()
}

fn decompress(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    hoist_layer::Decompressor::new(bytes)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn plain_layers_are_pushed_as_a_recorded_gzip_variant() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tars = [layer_tar(1), layer_tar(2)];
    let stored = image(&store, &tars, ManifestFormat::Oci, "app:1");
    let original = store.read_manifest(&digest(&stored)).unwrap();
    for layer in original.layers() {
        assert_eq!(layer.media_type().as_ref(), media_type::OCI_LAYER);
    }

    let pushed = store
        .compressed_image(&stored, &LayerCompression::default())
        .unwrap();
    assert_ne!(pushed.digest(), stored.digest());
    assert_eq!(pushed.media_type(), stored.media_type());
    let manifest = store.read_manifest(&digest(&pushed)).unwrap();
    // Same config: the image ID does not change.
    assert_eq!(manifest.config(), original.config());
    for ((layer, before), tar) in manifest.layers().iter().zip(original.layers()).zip(&tars) {
        assert_eq!(layer.media_type().as_ref(), media_type::OCI_LAYER_GZIP);
        let bytes = store.read_blob(&digest(layer)).unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
        assert!(bytes.len() < tar.len(), "the text half compresses");
        assert_eq!(layer.size(), bytes.len() as u64);
        assert_eq!(&decompress(&bytes), tar);
        // The variant has the layer's info; the layer's record names the variant.
        let info = store.layer_info(&digest(layer)).unwrap().unwrap();
        assert_eq!(info, store.layer_info(&digest(before)).unwrap().unwrap());
        assert_eq!(info.diff_id, Digest::sha256(tar));
        let record = fs::read_to_string(
            dir.path()
                .join("layers-v1/sha256")
                .join(format!("{}.json", digest(before).encoded())),
        )
        .unwrap();
        assert!(
            record.contains(&format!(r#""variants":{{"gzip":"{}"}}"#, digest(layer))),
            "{record}"
        );
    }
    // The store's reference still names the uncompressed image.
    assert_eq!(
        store.find_image("app:1").unwrap().record.target.digest,
        digest(&stored)
    );

    // A second conversion finds the variants: no new blob, the same manifest.
    let blobs = blob_count(dir.path());
    let again = store
        .compressed_image(&stored, &LayerCompression::default())
        .unwrap();
    assert_eq!(again, pushed);
    assert_eq!(blob_count(dir.path()), blobs);
    assert!(store.check(&CheckOptions::default()).unwrap().is_ok());

    // Another store with the same layers makes byte-identical variants: the same manifest digest.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Store::open(other_dir.path()).unwrap();
    let other_stored = image(&other, &tars, ManifestFormat::Oci, "app:1");
    assert_eq!(other_stored, stored);
    let other_pushed = other
        .compressed_image(&other_stored, &LayerCompression::default())
        .unwrap();
    assert_eq!(other_pushed, pushed);
}

#[test]
fn compressed_layers_stay_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tar = layer_tar(3);
    let pulled = image(&store, &[gzip(&tar)], ManifestFormat::Docker, "base:1");
    let zstd = LayerCompression {
        compression: Compression::Zstd,
        ..LayerCompression::default()
    };
    // Already gzip: sent as is, for gzip and (without force) for zstd.
    for options in [LayerCompression::default(), zstd] {
        assert_eq!(store.compressed_image(&pulled, &options).unwrap(), pulled);
    }

    // Forced to zstd: a zstd variant, in the manifest's (Docker) family.
    let forced = store
        .compressed_image(
            &pulled,
            &LayerCompression {
                force: true,
                ..zstd
            },
        )
        .unwrap();
    let manifest = store.read_manifest(&digest(&forced)).unwrap();
    let layer = &manifest.layers()[0];
    assert_eq!(layer.media_type().as_ref(), media_type::DOCKER_LAYER_ZSTD);
    let bytes = store.read_blob(&digest(layer)).unwrap();
    assert_eq!(Compression::detect(&bytes), Compression::Zstd);
    assert_eq!(decompress(&bytes), tar);

    // Forced to uncompressed: the plain tar, whose digest is its diffID.
    let plain = store
        .compressed_image(
            &pulled,
            &LayerCompression {
                compression: Compression::None,
                level: None,
                force: true,
            },
        )
        .unwrap();
    let manifest = store.read_manifest(&digest(&plain)).unwrap();
    let layer = &manifest.layers()[0];
    assert_eq!(layer.media_type().as_ref(), media_type::DOCKER_LAYER);
    assert_eq!(digest(layer), Digest::sha256(&tar));
}

#[test]
fn levels_make_their_own_variants() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tar = layer_tar(4);
    let layer = store.ingest_layer(&tar[..], &Expected::unknown()).unwrap();
    let default = store
        .compressed_layer(&layer.blob.digest, Compression::Gzip, None)
        .unwrap();
    let fast = store
        .compressed_layer(&layer.blob.digest, Compression::Gzip, Some(1))
        .unwrap();
    assert_ne!(default.blob.digest, fast.blob.digest);
    assert_eq!(default.info, fast.info);
    let again = store
        .compressed_layer(&layer.blob.digest, Compression::Gzip, Some(1))
        .unwrap();
    assert_eq!(again, fast);
    // A blob already in the wanted compression is its own answer, whatever the level.
    let itself = store
        .compressed_layer(&default.blob.digest, Compression::Gzip, Some(9))
        .unwrap();
    assert_eq!(itself.blob, default.blob);
}

#[test]
fn a_pruned_variant_is_made_again() {
    let dir = tempfile::tempdir().unwrap();
    let stored = {
        let store = Store::open(dir.path()).unwrap();
        image(&store, &[layer_tar(5)], ManifestFormat::Oci, "app:1")
    };
    let first = {
        let store = Store::open(dir.path()).unwrap();
        store
            .compressed_image(&stored, &LayerCompression::default())
            .unwrap()
    };
    let gzip_layer = {
        let store = Store::open(dir.path()).unwrap();
        digest(&store.read_manifest(&digest(&first)).unwrap().layers()[0])
    };
    // Nothing references the pushed manifest: prune deletes it and the variant; the record still names it.
    let store = Store::open(dir.path()).unwrap();
    store.prune(&PruneOptions::default()).unwrap();
    assert!(!store.has_blob(&gzip_layer));
    assert!(!store.has_blob(&digest(&first)));
    assert!(store.check(&CheckOptions::default()).unwrap().is_ok());
    let again = store
        .compressed_image(&stored, &LayerCompression::default())
        .unwrap();
    assert_eq!(again, first);
    assert!(store.has_blob(&gzip_layer));
}

#[test]
fn check_reports_a_variant_with_another_diff_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tar = layer_tar(6);
    let layer = store.ingest_layer(&tar[..], &Expected::unknown()).unwrap();
    let variant = store
        .compressed_layer(&layer.blob.digest, Compression::Gzip, None)
        .unwrap();
    // Point the record's variant at an unrelated layer.
    let unrelated = store
        .ingest_layer(&gzip(&layer_tar(8))[..], &Expected::unknown())
        .unwrap();
    let path = dir
        .path()
        .join("layers-v1/sha256")
        .join(format!("{}.json", layer.blob.digest.encoded()));
    let record = fs::read_to_string(&path).unwrap();
    let damaged = record.replace(
        &variant.blob.digest.to_string(),
        &unrelated.blob.digest.to_string(),
    );
    assert_ne!(record, damaged);
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&path, damaged).unwrap();
    let report = store.check(&CheckOptions::default()).unwrap();
    assert_eq!(
        report.problems,
        vec![Problem::VariantMismatch {
            layer: layer.blob.digest,
            variant: unrelated.blob.digest,
            layer_diff_id: layer.info.diff_id,
            variant_diff_id: unrelated.info.diff_id,
        }]
    );
}

#[test]
fn compressed_image_with_reports_each_layer_and_makes_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tars = [layer_tar(7), layer_tar(8)];
    let base = gzip(&layer_tar(9));
    // A pulled (gzip) base layer under two built (plain) ones.
    let layers = [base.clone(), tars[0].clone(), tars[1].clone()];
    let stored = image(&store, &layers, ManifestFormat::Oci, "app:1");
    let events = std::sync::Mutex::new(Vec::new());
    let record = |event: CompressProgress| events.lock().unwrap().push(event);
    let pushed = store
        .compressed_image_with(&stored, &LayerCompression::default(), &record)
        .unwrap();
    let manifest = store.read_manifest(&digest(&pushed)).unwrap();
    let base_digest = Digest::sha256(&base);
    let plain: Vec<Digest> = tars.iter().map(|t| Digest::sha256(t)).collect();
    let compressed: Vec<Digest> = manifest.layers()[1..].iter().map(digest).collect();
    let blob = |digest: Digest| BlobInfo {
        digest,
        size: store.read_blob(&digest).unwrap().len() as u64,
    };
    // The gzip base needs nothing and is ready first; then each plain layer in turn, one at a time (the layers
    // are smaller than a progress step).
    let mut expected = vec![CompressProgress::Ready {
        source: base_digest,
        blob: blob(base_digest),
    }];
    for (source, (tar, variant)) in plain.iter().zip(tars.iter().zip(&compressed)) {
        expected.push(CompressProgress::Started {
            source: *source,
            size: tar.len() as u64,
        });
        expected.push(CompressProgress::Ready {
            source: *source,
            blob: blob(*variant),
        });
    }
    assert_eq!(*events.lock().unwrap(), expected);
    assert!(tars.iter().all(|t| (t.len() as u64) < PROGRESS_STEP));

    // The same descriptor as `compressed_image` (in another store); a second call reuses the variants: every
    // layer ready, none compressed.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Store::open(other_dir.path()).unwrap();
    let other_stored = image(&other, &layers, ManifestFormat::Oci, "app:1");
    let plain_call = other
        .compressed_image(&other_stored, &LayerCompression::default())
        .unwrap();
    assert_eq!(plain_call, pushed);
    events.lock().unwrap().clear();
    let again = store
        .compressed_image_with(&stored, &LayerCompression::default(), &record)
        .unwrap();
    assert_eq!(again, pushed);
    let again_events = events.lock().unwrap();
    assert_eq!(again_events.len(), 3);
    assert!(
        again_events
            .iter()
            .all(|e| matches!(e, CompressProgress::Ready { .. })),
        "{again_events:?}"
    );
}
