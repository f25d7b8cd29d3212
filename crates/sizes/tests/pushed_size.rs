//! `compressedSize` is what a push sends: unknown for a built (uncompressed) layer until a push or an OCI export has
//! made its gzip variant, then that variant's size; a compressed layer's own size.

use hoist_oci::{Expected, LayerCompression, ManifestFormat, Reference, Store, layer_descriptor};

/// Stores an image with one layer (`layer` as given: a plain tar or gzip) under `name`.
fn image(store: &Store, layer: &[u8], name: &str) -> hoist_oci::oci_spec::image::Descriptor {
    let blob = store.ingest_layer(layer, &Expected::unknown()).unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{}"]}},"history":[{{"created_by":"COPY . /"}}]}}"#,
        blob.info.diff_id
    );
    let written = store
        .write_image(
            config.as_bytes(),
            &[layer_descriptor(&blob, ManifestFormat::Oci)],
            ManifestFormat::Oci,
        )
        .unwrap();
    store
        .tag(&name.parse::<Reference>().unwrap(), &written.manifest)
        .unwrap();
    written.manifest
}

fn plain_tar() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.txt"),
        "compressible text\n".repeat(20_000),
    )
    .unwrap();
    let mut tar = Vec::new();
    hoist_layer::write_layer(dir.path(), &mut tar, &hoist_layer::WriteOptions::new()).unwrap();
    tar
}

#[test]
fn compressed_size_is_what_a_push_sends() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tar = plain_tar();
    let manifest = image(&store, &tar, "built:1");

    let before = hoist_sizes::measure(&store, "built:1", "built", Some("scratch")).unwrap();
    assert_eq!(before.layers[0].stored_size, tar.len() as u64);
    assert_eq!(before.layers[0].compressed_size, None);
    let json = serde_json::to_value(&before.layers[0]).unwrap();
    assert!(json["compressedSize"].is_null(), "{json}");

    // A push (or OCI export) makes the gzip variant; its size is reported from then on.
    let pushed = store
        .compressed_image(&manifest, &LayerCompression::default())
        .unwrap();
    let layer = store
        .read_manifest(&hoist_oci::digest_from_oci(pushed.digest()).unwrap())
        .unwrap()
        .layers()[0]
        .clone();
    assert!(layer.size() < tar.len() as u64 / 10);
    let after = hoist_sizes::measure(&store, "built:1", "built", Some("scratch")).unwrap();
    assert_eq!(after.layers[0].compressed_size, Some(layer.size()));
    assert_eq!(after.layers[0].stored_size, tar.len() as u64);

    // A layer stored compressed reports its own size.
    let gzip_bytes = store
        .read_blob(&hoist_oci::digest_from_oci(layer.digest()).unwrap())
        .unwrap();
    image(&store, &gzip_bytes, "pulled:1");
    let pulled = hoist_sizes::measure(&store, "pulled:1", "pulled", Some("scratch")).unwrap();
    assert_eq!(pulled.layers[0].compressed_size, Some(layer.size()));
    assert_eq!(pulled.layers[0].stored_size, layer.size());
}
