use std::fs;

use hoist_oci::{Digest, Store};
use serde_json::json;

use super::*;
use crate::testing::{
    OCI_LAYER_GZIP, OCI_LAYOUT, TarBuilder, config_for, gzip, hex, index_for, layer_tar,
    manifest_for, store as new_store, zstd,
};

/// A docker-archive as Docker < 25 writes it: `<id>/layer.tar`, `<config hex>.json`, manifest.json last.
fn legacy_docker_archive(layers: &[&[u8]], tag: &str) -> (Vec<u8>, Vec<u8>) {
    let config = config_for(layers);
    let mut tar = TarBuilder::new();
    let mut paths = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let id = format!("{i:064}");
        tar = tar
            .dir(&format!("{id}/"))
            .file(&format!("{id}/VERSION"), b"1.0")
            .file(&format!("{id}/json"), br#"{"id":"x"}"#)
            .file(&format!("{id}/layer.tar"), layer);
        paths.push(format!("{id}/layer.tar"));
    }
    let manifest =
        json!([{"Config": format!("{}.json", hex(&config)), "RepoTags": [tag], "Layers": paths}]);
    let tar = tar
        .file(&format!("{}.json", hex(&config)), &config)
        .file("manifest.json", manifest.to_string().as_bytes())
        .file("repositories", b"{}")
        .finish();
    (tar, config)
}

fn oci_layout(layer: &[u8], annotations: serde_json::Value) -> (Vec<u8>, Vec<u8>) {
    let config = config_for(&[layer]);
    let blob = gzip(layer);
    let manifest = manifest_for(&config, &[(&blob, OCI_LAYER_GZIP)]);
    let tar = TarBuilder::new()
        .file("oci-layout", OCI_LAYOUT)
        .file("index.json", &index_for(&manifest, annotations))
        .dir("blobs/")
        .dir("blobs/sha256/")
        .file(&format!("blobs/sha256/{}", hex(&manifest)), &manifest)
        .file(&format!("blobs/sha256/{}", hex(&config)), &config)
        .file(&format!("blobs/sha256/{}", hex(&blob)), &blob)
        .finish();
    (tar, manifest)
}

fn names(store: &Store) -> Vec<String> {
    store
        .list_images()
        .unwrap()
        .into_iter()
        .map(|s| s.reference.to_string())
        .collect()
}

#[test]
fn legacy_docker_archive_keeps_digests() {
    let (_dir, store) = new_store();
    let (one, two) = (layer_tar("one"), layer_tar("two"));
    let (archive, config) = legacy_docker_archive(&[&one, &two], "app:1");
    let report = load(&store, &archive[..]).unwrap();
    assert_eq!(report.format, ArchiveFormat::DockerArchive);
    assert_eq!(report.images.len(), 1);
    let image = &report.images[0];
    assert_eq!(image.id, Digest::sha256(&config));
    assert_eq!(image.references, ["app:1".parse().unwrap()]);
    let stored = store.read_image("app:1").unwrap();
    assert_eq!(stored.config_bytes, config);
    let layer_digests: Vec<String> = stored
        .layers
        .iter()
        .map(|l| l.descriptor.digest().to_string())
        .collect();
    assert_eq!(
        layer_digests,
        [
            Digest::sha256(&one).to_string(),
            Digest::sha256(&two).to_string()
        ]
    );
}

#[test]
fn skopeo_docker_archive_with_symlinks_and_qualified_names() {
    let (_dir, store) = new_store();
    let layer = layer_tar("skopeo");
    let config = config_for(&[&layer]);
    let diff = hex(&layer);
    let manifest = json!([{"Config": format!("{}.json", hex(&config)), "RepoTags": ["docker.io/library/app:2"], "Layers": [format!("{diff}.tar")]}]);
    // skopeo writes manifest.json first and links the legacy layer paths to the diffID-named files.
    let archive = TarBuilder::new()
        .file("manifest.json", manifest.to_string().as_bytes())
        .file(&format!("{diff}.tar"), &layer)
        .file(&format!("{}.json", hex(&config)), &config)
        .symlink("abc/layer.tar", &format!("../{diff}.tar"))
        .finish();
    let report = load(&store, &archive[..]).unwrap();
    assert_eq!(report.images[0].references, ["app:2".parse().unwrap()]);
    assert_eq!(report.images[0].id, Digest::sha256(&config));

    // The same archive reached through the symlink and a hard link works too.
    let manifest = json!([{"Config": "cfg", "RepoTags": ["app:3"], "Layers": ["abc/layer.tar"]}]);
    let archive = TarBuilder::new()
        .file(&format!("{diff}.tar"), &layer)
        .symlink("abc/layer.tar", &format!("../{diff}.tar"))
        .file(&format!("{}.json", hex(&config)), &config)
        .hardlink("cfg", &format!("{}.json", hex(&config)))
        .file("manifest.json", manifest.to_string().as_bytes())
        .finish();
    load(&store, &archive[..]).unwrap();
    assert_eq!(names(&store), ["app:2", "app:3"]);
}

#[test]
fn oci_layout_keeps_the_manifest_and_reads_names() {
    let layer = layer_tar("oci");
    for (annotations, expected) in [
        (
            json!({"org.opencontainers.image.ref.name": "app:oci"}),
            vec!["app:oci"],
        ),
        (
            json!({"io.containerd.image.name": "docker.io/library/app:ctr", "org.opencontainers.image.ref.name": "ctr"}),
            vec!["app:ctr"],
        ),
        // A bare tag names no repository: the image is stored, untagged.
        (
            json!({"org.opencontainers.image.ref.name": "latest"}),
            vec![],
        ),
    ] {
        let (_dir, store) = new_store();
        let (archive, manifest) = oci_layout(&layer, annotations);
        let report = load(&store, &archive[..]).unwrap();
        assert_eq!(report.format, ArchiveFormat::OciLayout);
        assert_eq!(report.images[0].manifest, Digest::sha256(&manifest));
        assert_eq!(names(&store), expected);
        assert_eq!(
            store.read_blob(&Digest::sha256(&manifest)).unwrap(),
            manifest
        );
    }
}

#[test]
fn compressed_archives_are_recognised() {
    let (archive, _) = legacy_docker_archive(&[&layer_tar("c")], "app:c");
    for compressed in [gzip(&archive), zstd(&archive)] {
        let (_dir, store) = new_store();
        load(&store, &compressed[..]).unwrap();
        assert_eq!(names(&store), ["app:c"]);
    }
}

#[test]
fn layout_directory_loads_and_links_stay_inside() {
    let (dir, store) = new_store();
    let layer = layer_tar("dir");
    let (archive, _) = oci_layout(
        &layer,
        json!({"org.opencontainers.image.ref.name": "app:dir"}),
    );
    let layout = dir.path().join("layout");
    fs::create_dir(&layout).unwrap();
    tar::Archive::new(&archive[..]).unpack(&layout).unwrap();
    let report = load_path(&store, &layout).unwrap();
    assert_eq!(report.format, ArchiveFormat::OciLayout);
    assert_eq!(names(&store), ["app:dir"]);

    // A blob replaced by a symlink out of the layout is refused, not followed.
    let config = config_for(&[&layer]);
    let config_path = layout.join("blobs/sha256").join(hex(&config));
    fs::remove_file(&config_path).unwrap();
    fs::write(dir.path().join("outside"), &config).unwrap();
    std::os::unix::fs::symlink("../../../outside", &config_path).unwrap();
    let (_other, fresh) = new_store();
    let err = load_path(&fresh, &layout).unwrap_err();
    assert!(matches!(err, Error::UnsafeName { .. }), "{err}");
    assert!(names(&fresh).is_empty());
}

#[test]
fn missing_files_are_named() {
    let (_dir, store) = new_store();
    let layer = layer_tar("m");
    let config = config_for(&[&layer]);
    let manifest = json!([{"Config": format!("{}.json", hex(&config)), "RepoTags": ["app:m"], "Layers": ["gone/layer.tar"]}]);
    let archive = TarBuilder::new()
        .file(&format!("{}.json", hex(&config)), &config)
        .file("manifest.json", manifest.to_string().as_bytes())
        .finish();
    let err = load(&store, &archive[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the archive has no file \"gone/layer.tar\""
    );
    assert!(names(&store).is_empty(), "nothing is tagged");

    let err = load(&store, &TarBuilder::new().file("hello", b"x").finish()[..]).unwrap_err();
    assert!(matches!(err, Error::UnknownFormat), "{err}");

    let (archive, _) = oci_layout(&layer, json!({}));
    let without_layout: Vec<u8> = {
        // Same layout, minus `oci-layout`.
        let mut tar = TarBuilder::new();
        let mut entries = tar::Archive::new(&archive[..]);
        for entry in entries.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            if name != "oci-layout" && !entry.header().entry_type().is_dir() {
                tar = tar.file(&name, &data);
            }
        }
        tar.finish()
    };
    let err = load(&store, &without_layout[..]).unwrap_err();
    assert_eq!(err.to_string(), "the archive has no file \"oci-layout\"");
}

#[test]
fn wrong_digests_are_refused() {
    let layer = layer_tar("d");
    // A blob whose content does not match its name.
    let (_dir, store) = new_store();
    let config = config_for(&[&layer]);
    let blob = gzip(&layer);
    let manifest = manifest_for(&config, &[(&blob, OCI_LAYER_GZIP)]);
    let archive = TarBuilder::new()
        .file("oci-layout", OCI_LAYOUT)
        .file(
            "index.json",
            &index_for(
                &manifest,
                json!({"org.opencontainers.image.ref.name": "app:d"}),
            ),
        )
        .file(&format!("blobs/sha256/{}", hex(&manifest)), &manifest)
        .file(&format!("blobs/sha256/{}", hex(&config)), &config)
        .file(
            &format!("blobs/sha256/{}", hex(&blob)),
            &gzip(&layer_tar("tampered")),
        )
        .finish();
    let err = load(&store, &archive[..]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("failed to store blobs/sha256/{}", hex(&blob))),
        "{err}"
    );
    assert!(names(&store).is_empty());
    assert!(
        !store.has_blob(&Digest::sha256(&gzip(&layer_tar("tampered")))),
        "the bad blob is not stored"
    );

    // A layer whose content does not match the config's diffID.
    let (_dir, store) = new_store();
    let other = layer_tar("other");
    let config = config_for(&[&other]);
    let manifest = json!([{"Config": "c.json", "RepoTags": ["app:e"], "Layers": ["l.tar"]}]);
    let archive = TarBuilder::new()
        .file("c.json", &config)
        .file("l.tar", &layer)
        .file("manifest.json", manifest.to_string().as_bytes())
        .finish();
    let err = load(&store, &archive[..]).unwrap_err();
    assert!(
        matches!(err, Error::DiffIdMismatch { position: 0, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&Digest::sha256(&layer).to_string()),
        "{err}"
    );
    assert!(names(&store).is_empty());

    // More layers than diff_ids.
    let manifest =
        json!([{"Config": "c.json", "RepoTags": ["app:f"], "Layers": ["l.tar", "l.tar"]}]);
    let archive = TarBuilder::new()
        .file("c.json", &config)
        .file("l.tar", &layer)
        .file("manifest.json", manifest.to_string().as_bytes())
        .finish();
    let err = load(&store, &archive[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "image c.json: 2 layers, but its config lists 1 diff_ids"
    );
}

#[test]
fn hostile_names_are_errors_and_nothing_is_written_outside() {
    let (dir, store) = new_store();
    // A manifest that reaches `link` (or `pipe`): links and odd entries are errors once something uses them.
    let uses =
        |name: &str| json!([{"Config": name, "RepoTags": ["app:x"], "Layers": []}]).to_string();
    for (archive, expected) in [
        (
            TarBuilder::new().file("../evil", b"x").finish(),
            "path escapes the archive root",
        ),
        (
            TarBuilder::new().file("a/../../evil", b"x").finish(),
            "path escapes the archive root",
        ),
        (
            TarBuilder::new().file("/tmp/evil", b"x").finish(),
            "absolute path",
        ),
        (
            TarBuilder::new()
                .symlink("link", "../../evil")
                .file("manifest.json", uses("link").as_bytes())
                .finish(),
            "links must stay inside",
        ),
        (
            TarBuilder::new()
                .symlink("dir/link", "/etc/passwd")
                .file("manifest.json", uses("dir/link").as_bytes())
                .finish(),
            "links must stay inside",
        ),
        (
            TarBuilder::new()
                .hardlink("link", "../evil")
                .file("manifest.json", uses("link").as_bytes())
                .finish(),
            "links must stay inside",
        ),
        (
            TarBuilder::new()
                .fifo("pipe")
                .file("manifest.json", uses("pipe").as_bytes())
                .finish(),
            "unsupported entry \"pipe\"",
        ),
        (
            TarBuilder::new()
                .file("manifest.json", uses("../../etc/passwd").as_bytes())
                .finish(),
            "path escapes the archive root",
        ),
    ] {
        let err = load(&store, &archive[..]).unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "{err} (expected {expected})"
        );
    }
    assert!(names(&store).is_empty());
    assert!(!dir.path().join("evil").exists());
    assert!(!dir.path().parent().unwrap().join("evil").exists());

    // A link loop inside the archive is an error, not a hang.
    let manifest = json!([{"Config": "a", "RepoTags": [], "Layers": []}]);
    let archive = TarBuilder::new()
        .symlink("a", "b")
        .symlink("b", "a")
        .file("manifest.json", manifest.to_string().as_bytes())
        .finish();
    let err = load(&store, &archive[..]).unwrap_err();
    assert!(matches!(err, Error::LinkLoop { .. }), "{err}");
}

#[test]
fn a_rootfs_tarball_is_not_an_image_archive() {
    let (_dir, store) = new_store();
    // Absolute symlinks and device nodes are normal in a rootfs; unused, they are not what is wrong with it.
    let rootfs = TarBuilder::new()
        .dir("bin/")
        .file("bin/busybox", b"binary")
        .symlink("bin/sh", "/bin/busybox")
        .fifo("dev/initctl")
        .finish();
    let err = load(&store, &rootfs[..]).unwrap_err();
    assert!(matches!(err, Error::UnknownFormat), "{err}");
}

#[test]
fn garbage_and_truncation_are_clear_errors() {
    let (_dir, store) = new_store();
    let err = load(
        &store,
        &b"this is not a tar archive at all, just some text that goes on"[..],
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::ReadArchive { .. } | Error::UnknownFormat),
        "{err}"
    );
    let (archive, _) = legacy_docker_archive(&[&layer_tar("t")], "app:t");
    let truncated = &gzip(&archive)[..200];
    let err = load(&store, truncated).unwrap_err();
    assert!(matches!(err, Error::ReadArchive { .. }), "{err}");
    let err = load(
        &store,
        &TarBuilder::new()
            .file("manifest.json", b"{not json")
            .finish()[..],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "manifest.json is not a valid docker-archive manifest"
    );
}

#[test]
fn multi_platform_index_picks_the_host() {
    let (_dir, store) = new_store();
    let host = hoist_oci::ImagePlatform::host();
    let layer = layer_tar("mp");
    let config = config_for(&[&layer]);
    let blob = gzip(&layer);
    let manifest = manifest_for(&config, &[(&blob, OCI_LAYER_GZIP)]);
    let missing = manifest_for(b"{}", &[]);
    let inner = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::sha256(&missing).to_string(),
             "size": missing.len(), "platform": {"os": "plan9", "architecture": "mips"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::sha256(&manifest).to_string(),
             "size": manifest.len(), "platform": {"os": host.os, "architecture": host.architecture}},
        ],
    }))
    .unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": Digest::sha256(&inner).to_string(),
        "size": inner.len(), "annotations": {"org.opencontainers.image.ref.name": "app:multi"}}]});
    let archive = TarBuilder::new()
        .file("oci-layout", OCI_LAYOUT)
        .file("index.json", index.to_string().as_bytes())
        .file(&format!("blobs/sha256/{}", hex(&inner)), &inner)
        .file(&format!("blobs/sha256/{}", hex(&manifest)), &manifest)
        .file(&format!("blobs/sha256/{}", hex(&config)), &config)
        .file(&format!("blobs/sha256/{}", hex(&blob)), &blob)
        .finish();
    let report = load(&store, &archive[..]).unwrap();
    assert_eq!(report.images[0].manifest, Digest::sha256(&manifest));
    assert_eq!(names(&store), ["app:multi"]);
}
