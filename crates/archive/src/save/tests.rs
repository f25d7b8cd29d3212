use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use hoist_oci::{Digest, Store};
use serde_json::{Value, json};

use super::*;
use crate::load::load;
use crate::testing::{
    OCI_LAYER_GZIP, OCI_LAYOUT, TarBuilder, config_for, gzip, hex, index_for, layer_tar,
    manifest_for, store as new_store,
};

/// The entries of a tar archive, by name.
fn entries(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

/// Loads an OCI layout holding one image (`config` and the single layer `blob` of `media_type`) named `name`;
/// returns its manifest.
fn load_layout(store: &Store, name: &str, config: &[u8], blob: &[u8], media_type: &str) -> Vec<u8> {
    let manifest = manifest_for(config, &[(blob, media_type)]);
    let archive = TarBuilder::new()
        .file("oci-layout", OCI_LAYOUT)
        .file(
            "index.json",
            &index_for(
                &manifest,
                json!({"org.opencontainers.image.ref.name": name}),
            ),
        )
        .file(&format!("blobs/sha256/{}", hex(&manifest)), &manifest)
        .file(&format!("blobs/sha256/{}", hex(config)), config)
        .file(&format!("blobs/sha256/{}", hex(blob)), blob)
        .finish();
    load(store, &archive[..]).unwrap();
    manifest
}

/// Loads an OCI layout with one gzip layer, named `name`; returns (config, layer tar, gzip blob, manifest).
fn load_oci_image(
    store: &Store,
    name: &str,
    content: &str,
) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let layer = layer_tar(content);
    let config = config_for(&[&layer]);
    let blob = gzip(&layer);
    let manifest = load_layout(store, name, &config, &blob, OCI_LAYER_GZIP);
    (config, layer, blob, manifest)
}

fn save(store: &Store, specs: &[&str], format: SaveFormat) -> Vec<u8> {
    let specs: Vec<String> = specs.iter().map(|s| (*s).to_owned()).collect();
    let mut out = Vec::new();
    save_archive(store, &specs, format, &mut out).unwrap();
    out
}

#[test]
fn docker_format_has_both_indexes_and_uncompressed_layers() {
    let (_dir, store) = new_store();
    let (config, layer, _, _) = load_oci_image(&store, "app:1", "hello");
    let archive = save(&store, &["app:1"], SaveFormat::Docker);
    let files = entries(&archive);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    let manifest_blob = files
        .keys()
        .find(|n| {
            n.len() == "blobs/sha256/".len() + 64
                && ![hex(&config), hex(&layer)].iter().any(|h| n.ends_with(h))
        })
        .cloned()
        .expect("a manifest blob");
    let mut expected = vec![
        "blobs/".to_owned(),
        "blobs/sha256/".to_owned(),
        format!("blobs/sha256/{}", hex(&layer)),
        format!("blobs/sha256/{}", hex(&config)),
        manifest_blob.clone(),
        "index.json".to_owned(),
        "manifest.json".to_owned(),
        "oci-layout".to_owned(),
        "repositories".to_owned(),
    ];
    expected.sort();
    assert_eq!(names, expected);
    // The layer is the uncompressed tar, named by its diffID; the config is byte for byte the stored one.
    assert_eq!(files[&format!("blobs/sha256/{}", hex(&layer))], layer);
    assert_eq!(files[&format!("blobs/sha256/{}", hex(&config))], config);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(
        manifest,
        json!([{
            "Config": format!("blobs/sha256/{}", hex(&config)),
            "RepoTags": ["app:1"],
            "Layers": [format!("blobs/sha256/{}", hex(&layer))],
        }])
    );
    assert!(files["manifest.json"].ends_with(b"\n"));
    let repositories: Value = serde_json::from_slice(&files["repositories"]).unwrap();
    assert_eq!(repositories, json!({"app": {"1": hex(&layer)}}));
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        format!("sha256:{}", manifest_blob.rsplit('/').next().unwrap())
    );
    assert_eq!(
        index["manifests"][0]["annotations"],
        json!({"io.containerd.image.name": "docker.io/library/app:1", "org.opencontainers.image.ref.name": "1"})
    );
    let oci_manifest: Value = serde_json::from_slice(&files[&manifest_blob]).unwrap();
    assert_eq!(
        oci_manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(oci_manifest["layers"][0]["size"], layer.len());
    // Every blob is named by its content.
    for (name, data) in &files {
        if let Some(hex_name) = name.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
            assert_eq!(hex(data), hex_name, "{name}");
        }
    }
}

#[test]
fn saving_and_loading_round_trips_every_digest() {
    let (_dir, store) = new_store();
    let (config, layer, blob, manifest) = load_oci_image(&store, "app:rt", "round trip");

    // docker format: config and diffIDs survive (the layer is stored uncompressed on the way back).
    let docker = save(&store, &["app:rt"], SaveFormat::Docker);
    let (_other, fresh) = new_store();
    let report = load(&fresh, &docker[..]).unwrap();
    assert_eq!(report.images[0].id, Digest::sha256(&config));
    let image = fresh.read_image("app:rt").unwrap();
    assert_eq!(image.config_bytes, config);
    assert_eq!(
        image.layers[0].descriptor.digest().to_string(),
        Digest::sha256(&layer).to_string()
    );
    // Saving the loaded image again gives the identical archive.
    assert_eq!(save(&fresh, &["app:rt"], SaveFormat::Docker), docker);

    // OCI format: the manifest and the compressed layer are kept too.
    let oci = save(&store, &["app:rt"], SaveFormat::Oci);
    let files = entries(&oci);
    assert_eq!(files[&format!("blobs/sha256/{}", hex(&blob))], blob);
    assert_eq!(files[&format!("blobs/sha256/{}", hex(&manifest))], manifest);
    let (_third, again) = new_store();
    let report = load(&again, &oci[..]).unwrap();
    assert_eq!(report.images[0].manifest, Digest::sha256(&manifest));
    assert_eq!(report.images[0].references, ["app:rt".parse().unwrap()]);
    assert_eq!(
        save(&again, &["app:rt"], SaveFormat::Oci),
        oci,
        "saving is deterministic"
    );
}

#[test]
fn selection_merges_names_and_ids_have_none() {
    let (_dir, store) = new_store();
    let (config, ..) = load_oci_image(&store, "app:a", "same");
    store
        .tag_existing("app:a", &"other:b".parse().unwrap())
        .unwrap();
    let files = entries(&save(&store, &["app:a", "other:b"], SaveFormat::Docker));
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest.as_array().unwrap().len(), 1);
    assert_eq!(manifest[0]["RepoTags"], json!(["app:a", "other:b"]));
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

    let files = entries(&save(&store, &[&hex(&config)[..12]], SaveFormat::Docker));
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest[0]["RepoTags"], Value::Null);
    assert!(!files.contains_key("repositories"));

    let err = save_archive(
        &store,
        &["missing:1".to_owned()],
        SaveFormat::Docker,
        Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "no such image: missing:1");
}

#[test]
fn layout_directory_is_added_to() {
    let (dir, store) = new_store();
    load_oci_image(&store, "app:a", "a");
    load_oci_image(&store, "app:b", "b");
    let layout = dir.path().join("layout");
    save_oci_dir(&store, &["app:a".to_owned()], &layout).unwrap();
    save_oci_dir(&store, &["app:b".to_owned()], &layout).unwrap();
    save_oci_dir(&store, &["app:a".to_owned()], &layout).unwrap();
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["io.containerd.image.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        ["docker.io/library/app:b", "docker.io/library/app:a"]
    );
    assert_eq!(
        fs::read(layout.join("oci-layout")).unwrap(),
        LAYOUT_CONTENT.as_bytes()
    );
    // It loads back as both images.
    let (_other, fresh) = new_store();
    let report = crate::load::load_path(&fresh, &layout).unwrap();
    assert_eq!(report.images.len(), 2);

    // A directory that holds something else is not overwritten.
    let other = dir.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("notes.txt"), "mine").unwrap();
    let err = save_oci_dir(&store, &["app:a".to_owned()], &other).unwrap_err();
    assert!(matches!(err, Error::OutputNotLayout { .. }), "{err}");
}

#[test]
fn a_damaged_store_fails_the_save_and_leaves_no_file() {
    let (dir, store) = new_store();
    let (_, _, blob, _) = load_oci_image(&store, "app:bad", "good content");
    // Replace the stored layer with another valid gzip tar of the same uncompressed size.
    let path = store.root().join("blobs-v1/sha256").join(hex(&blob));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, gzip(&layer_tar("evil content"))).unwrap();
    let output = dir.path().join("out.tar");
    let err = save_archive_file(&store, &["app:bad".to_owned()], SaveFormat::Docker, &output)
        .unwrap_err();
    // Same length, other bytes: caught by the diffID check at the end of the layer.
    assert!(matches!(err, Error::StoredLayerCorrupt { .. }), "{err}");
    assert!(err.to_string().contains(&hex(&blob)), "{err}");
    assert!(!output.exists());
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("hoist-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Loads an OCI layout with one uncompressed layer (as hoist builds them), named `name`; returns (config, layer).
fn load_plain_image(store: &Store, name: &str, content: &str) -> (Vec<u8>, Vec<u8>) {
    let layer = layer_tar(content);
    let config = config_for(&[&layer]);
    load_layout(store, name, &config, &layer, OCI_LAYER);
    (config, layer)
}

/// The layer blobs of the one image in an OCI layout tar: (media type, bytes).
fn oci_layers(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let files = entries(archive);
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let blob = |digest: &Value| {
        let digest = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        files[&format!("blobs/sha256/{digest}")].clone()
    };
    let manifest: Value = serde_json::from_slice(&blob(&index["manifests"][0]["digest"])).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap().to_owned(),
                blob(&l["digest"]),
            )
        })
        .collect()
}

#[test]
fn oci_layouts_carry_compressed_variants_of_plain_layers() {
    let (_dir, store) = new_store();
    let (config, layer) = load_plain_image(&store, "built:1", "a built layer");

    // Default: gzip, the same config.
    let archive = save(&store, &["built:1"], SaveFormat::Oci);
    let layers = oci_layers(&archive);
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].0, OCI_LAYER_GZIP);
    assert_eq!(&layers[0].1[..2], &[0x1f, 0x8b]);
    let mut tar = Vec::new();
    hoist_layer::Decompressor::new(&layers[0].1[..])
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(tar, layer);
    assert!(entries(&archive).contains_key(&format!("blobs/sha256/{}", hex(&config))));
    // It loads back as the same image.
    let (_other, fresh) = new_store();
    let report = load(&fresh, &archive[..]).unwrap();
    assert_eq!(report.images[0].id, Digest::sha256(&config));

    // zstd on request; uncompressed keeps the stored layer.
    let specs = ["built:1".to_owned()];
    let mut zstd = Vec::new();
    let options = hoist_oci::LayerCompression {
        compression: hoist_oci::Compression::Zstd,
        ..Default::default()
    };
    save_oci_archive(&store, &specs, &options, &mut zstd).unwrap();
    let layers = oci_layers(&zstd);
    assert_eq!(layers[0].0, "application/vnd.oci.image.layer.v1.tar+zstd");
    assert_eq!(
        hoist_oci::Compression::detect(&layers[0].1),
        hoist_oci::Compression::Zstd
    );
    let mut plain = Vec::new();
    let options = hoist_oci::LayerCompression {
        compression: hoist_oci::Compression::None,
        ..Default::default()
    };
    save_oci_archive(&store, &specs, &options, &mut plain).unwrap();
    assert_eq!(oci_layers(&plain), [(OCI_LAYER.to_owned(), layer)]);
}
