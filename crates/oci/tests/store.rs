//! The store against real files: images written and read back, references, prune, crash leftovers, and several
//! writers at once.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use hoist_oci::oci_spec::image::{Descriptor, DescriptorBuilder, MediaType};
use hoist_oci::{
    Area, Digest, DigestExt, Error, Expected, ImageRecord, LayerBlob, Lookup, ManifestFormat,
    PruneOptions, Reference, Store, WrittenImage, encode_index, layer_descriptor, media_type,
};

/// A gzip tar layer holding `files` (path, content), as an image builder would produce.
fn layer_tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        builder.append_data(&mut header, path, *content).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn config_json(diff_ids: &[Digest], created: &str) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(ToString::to_string).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ids},
        "history": [{"created": created, "created_by": "test"}],
    }))
    .unwrap()
}

struct Built {
    image: WrittenImage,
    layers: Vec<LayerBlob>,
}

/// Ingests one layer per file list and writes an image over them.
fn build(
    store: &Store,
    layers: &[&[(&str, &[u8])]],
    created: &str,
    format: ManifestFormat,
) -> Built {
    let layers: Vec<LayerBlob> = layers
        .iter()
        .map(|files| {
            store
                .ingest_layer(&layer_tar_gz(files)[..], &Expected::unknown())
                .unwrap()
        })
        .collect();
    let descriptors: Vec<Descriptor> = layers.iter().map(|l| layer_descriptor(l, format)).collect();
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.info.diff_id).collect();
    let image = store
        .write_image(&config_json(&diff_ids, created), &descriptors, format)
        .unwrap();
    Built { image, layers }
}

fn reference(text: &str) -> Reference {
    text.parse().unwrap()
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[test]
fn written_image_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for format in [ManifestFormat::Oci, ManifestFormat::Docker] {
        let built = build(
            &store,
            &[&[("bin/sh", b"#!shell")], &[("etc/hello", b"hello world")]],
            "2024-01-02T03:04:05Z",
            format,
        );
        let record = store
            .tag(&reference("app:1.0"), &built.image.manifest)
            .unwrap();

        let image = store.read_image("app:1.0").unwrap();
        assert_eq!(image.references, vec![reference("app:1.0")]);
        assert_eq!(image.id, digest_of(&built.image.config));
        assert_eq!(record.id, image.id);
        assert_eq!(image.manifest_descriptor, built.image.manifest);
        assert_eq!(
            image.manifest.media_type().as_ref().unwrap().to_string(),
            format.manifest_media_type()
        );
        assert_eq!(
            image.manifest.config().media_type().to_string(),
            format.config_media_type()
        );
        // The stored manifest is exactly the bytes that were digested.
        let manifest_bytes = store.read_blob(&record.target.digest).unwrap();
        assert_eq!(Digest::sha256(&manifest_bytes), record.target.digest);
        assert_eq!(
            manifest_bytes,
            hoist_oci::encode_manifest(&image.manifest).unwrap()
        );
        // The config is stored byte for byte as given.
        let diff_ids: Vec<Digest> = built.layers.iter().map(|l| l.info.diff_id).collect();
        assert_eq!(
            image.config_bytes,
            config_json(&diff_ids, "2024-01-02T03:04:05Z")
        );
        assert_eq!(image.layers.len(), 2);
        for (layer, ingested) in image.layers.iter().zip(&built.layers) {
            assert_eq!(layer.info.as_ref(), Some(&ingested.info));
            assert_eq!(
                layer.descriptor.media_type().to_string(),
                format.layer_media_type(ingested.compression)
            );
        }
        // SIZE counts file bytes, as `docker images` does: 7 + 11.
        assert_eq!(record.size, Some(18));
        let tar_bytes: u64 = built.layers.iter().map(|l| l.info.uncompressed_size).sum();
        assert_eq!(record.uncompressed_size, Some(tar_bytes));
        assert_eq!(record.created.as_deref(), Some("2024-01-02T03:04:05Z"));
        assert_eq!(record.platform.as_ref().unwrap().to_string(), "linux/amd64");
        assert_eq!(record.layers, 2);
    }
}

fn digest_of(descriptor: &Descriptor) -> Digest {
    hoist_oci::digest_from_oci(descriptor.digest()).unwrap()
}

#[test]
fn write_image_refuses_inconsistent_input() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let layer = store
        .ingest_layer(&layer_tar_gz(&[("a", b"a")])[..], &Expected::unknown())
        .unwrap();
    let descriptor = layer_descriptor(&layer, ManifestFormat::Oci);

    let wrong_diff_id = config_json(&[Digest::sha256(b"not the layer")], "2024-01-01T00:00:00Z");
    let err = store
        .write_image(
            &wrong_diff_id,
            std::slice::from_ref(&descriptor),
            ManifestFormat::Oci,
        )
        .unwrap_err();
    assert!(matches!(err, Error::ConfigMismatch { .. }), "{err}");

    let too_few = config_json(&[], "2024-01-01T00:00:00Z");
    let err = store
        .write_image(
            &too_few,
            std::slice::from_ref(&descriptor),
            ManifestFormat::Oci,
        )
        .unwrap_err();
    assert!(err.to_string().contains("0 diff_ids for 1 layers"), "{err}");

    let missing = DescriptorBuilder::default()
        .media_type(MediaType::ImageLayerGzip)
        .digest(Digest::sha256(b"absent").to_oci())
        .size(6u64)
        .build()
        .unwrap();
    let config = config_json(&[Digest::sha256(b"absent")], "2024-01-01T00:00:00Z");
    let err = store
        .write_image(&config, &[missing], ManifestFormat::Oci)
        .unwrap_err();
    assert!(matches!(err, Error::BlobNotFound { .. }), "{err}");

    let err = store
        .write_image(
            b"not json",
            std::slice::from_ref(&descriptor),
            ManifestFormat::Oci,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ParseBlob {
                what: "image config",
                ..
            }
        ),
        "{err}"
    );
}

/// A Docker v2 schema 2 image, written by hand the way `docker push` stores it, is read like an OCI one.
#[test]
fn docker_schema2_manifest_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let layer = store
        .ingest_layer(&layer_tar_gz(&[("x", b"12345")])[..], &Expected::unknown())
        .unwrap();
    let config = config_json(&[layer.info.diff_id], "2020-05-06T07:08:09.123456789Z");
    let config_blob = store.ingest_bytes(&config).unwrap();
    let manifest = format!(
        r#"{{
   "schemaVersion": 2,
   "mediaType": "{}",
   "config": {{"mediaType": "{}", "size": {}, "digest": "{}"}},
   "layers": [{{"mediaType": "{}", "size": {}, "digest": "{}"}}]
}}"#,
        media_type::DOCKER_MANIFEST,
        media_type::DOCKER_CONFIG,
        config_blob.size,
        config_blob.digest,
        media_type::DOCKER_LAYER_GZIP,
        layer.blob.size,
        layer.blob.digest,
    );
    let manifest_blob = store.ingest_bytes(manifest.as_bytes()).unwrap();
    let target = DescriptorBuilder::default()
        .media_type(MediaType::from(media_type::DOCKER_MANIFEST))
        .digest(manifest_blob.digest.to_oci())
        .size(manifest_blob.size)
        .build()
        .unwrap();
    let record = store
        .tag(&reference("docker.io/library/busybox"), &target)
        .unwrap();
    assert_eq!(record.id, config_blob.digest);
    assert_eq!(record.size, Some(5));
    let image = store
        .read_image("docker.io/library/busybox:latest")
        .unwrap();
    assert_eq!(
        image.layers[0].info.as_ref().unwrap().diff_id,
        layer.info.diff_id
    );
    // The manifest is stored with its original whitespace: its digest is that of the bytes as received.
    assert_eq!(
        store.read_blob(&manifest_blob.digest).unwrap(),
        manifest.as_bytes()
    );
}

/// A manifest whose layer blob is not in the store (a partial pull) can be tagged; its size is unknown, not wrong.
#[test]
fn missing_layer_blob_gives_unknown_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let absent = Digest::sha256(b"never stored");
    let config = store
        .ingest_bytes(&config_json(
            &[Digest::sha256(b"diff")],
            "2024-01-01T00:00:00Z",
        ))
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": config.digest.to_string(), "size": config.size},
        "layers": [{"mediaType": media_type::OCI_LAYER_GZIP, "digest": absent.to_string(), "size": 12}],
    });
    let blob = store
        .ingest_bytes(&serde_json::to_vec(&manifest).unwrap())
        .unwrap();
    let target = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .digest(blob.digest.to_oci())
        .size(blob.size)
        .build()
        .unwrap();
    let record = store.tag(&reference("partial"), &target).unwrap();
    // Tagging needs the manifest itself, at the announced size.
    let mut wrong_size = target.clone();
    wrong_size.set_size(blob.size + 1);
    let err = store
        .tag(&reference("partial:bad"), &wrong_size)
        .unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    let mut missing = target.clone();
    missing.set_digest(absent.to_oci());
    let err = store.tag(&reference("partial:bad"), &missing).unwrap_err();
    assert_eq!(err.to_string(), format!("blob not found: {absent}"));
    assert_eq!((record.size, record.uncompressed_size), (None, None));
    let image = store.read_image("partial").unwrap();
    assert_eq!(image.layers[0].info, None);
}

/// A manifest list resolves to the host platform's manifest, skipping others and attestations.
#[test]
fn manifest_list_resolves_to_the_host_platform() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let host = built_for(
        &store,
        &hoist_oci::ImagePlatform::host().architecture,
        "host",
    );
    let other_arch = if hoist_oci::ImagePlatform::host().architecture == "s390x" {
        "riscv64"
    } else {
        "s390x"
    };
    let other = built_for(&store, other_arch, "other");
    let entry = |built: &Built, arch: &str| {
        serde_json::json!({
            "mediaType": built.image.manifest.media_type().to_string(),
            "digest": built.image.manifest.digest().to_string(),
            "size": built.image.manifest.size(),
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    let attestation = serde_json::json!({
        "mediaType": media_type::OCI_MANIFEST,
        "digest": Digest::sha256(b"attestation").to_string(),
        "size": 11,
        "platform": {"architecture": "unknown", "os": "unknown"},
    });
    let index_json = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": [entry(&other, other_arch), attestation, entry(&host, &hoist_oci::ImagePlatform::host().architecture)],
    });
    let index: hoist_oci::oci_spec::image::ImageIndex = serde_json::from_value(index_json).unwrap();
    let bytes = encode_index(&index).unwrap();
    let blob = store.ingest_bytes(&bytes).unwrap();
    let target = DescriptorBuilder::default()
        .media_type(MediaType::ImageIndex)
        .digest(blob.digest.to_oci())
        .size(blob.size)
        .build()
        .unwrap();
    let record = store.tag(&reference("multi:1"), &target).unwrap();
    assert_eq!(record.target.digest, blob.digest);
    assert_eq!(record.manifest, digest_of(&host.image.manifest));
    assert_eq!(record.id, digest_of(&host.image.config));
    let image = store.read_image("multi:1").unwrap();
    assert!(image.index.is_some());
    assert_eq!(image.id, digest_of(&host.image.config));

    // An index without the host's platform cannot be read as an image.
    let only_other = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::DOCKER_MANIFEST_LIST,
        "manifests": [entry(&other, other_arch)],
    });
    let index: hoist_oci::oci_spec::image::ImageIndex = serde_json::from_value(only_other).unwrap();
    let blob = store.ingest_bytes(&encode_index(&index).unwrap()).unwrap();
    let target = DescriptorBuilder::default()
        .media_type(MediaType::from(media_type::DOCKER_MANIFEST_LIST))
        .digest(blob.digest.to_oci())
        .size(blob.size)
        .build()
        .unwrap();
    let err = store.tag(&reference("multi:other"), &target).unwrap_err();
    assert!(matches!(err, Error::NoMatchingPlatform { .. }), "{err}");
}

fn built_for(store: &Store, arch: &str, content: &str) -> Built {
    let layer = store
        .ingest_layer(
            &layer_tar_gz(&[("f", content.as_bytes())])[..],
            &Expected::unknown(),
        )
        .unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.info.diff_id.to_string()]},
    }))
    .unwrap();
    let image = store
        .write_image(
            &config,
            &[layer_descriptor(&layer, ManifestFormat::Oci)],
            ManifestFormat::Oci,
        )
        .unwrap();
    Built {
        image,
        layers: vec![layer],
    }
}

#[test]
fn references_lookup_and_removal_follow_docker() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let built = build(
        &store,
        &[&[("a", b"a")]],
        "2024-01-01T00:00:00Z",
        ManifestFormat::Oci,
    );
    let id = digest_of(&built.image.config);
    store.tag(&reference("one"), &built.image.manifest).unwrap();
    store
        .tag_existing("one:latest", &reference("one:v2"))
        .unwrap();
    store
        .tag_existing(&id.short_id(), &reference("two/repo:x"))
        .unwrap();

    // Lookups: reference, full ID, short ID, name@digest.
    for spec in [
        "one",
        "one:v2",
        &id.to_string(),
        &id.encoded(),
        &id.short_id()[..4],
    ] {
        let found = store.find_image(spec).unwrap();
        assert_eq!(found.record.id, id, "{spec}");
        assert_eq!(found.references.len(), 3, "{spec}");
    }
    let by_digest = format!("one@{}", digest_of(&built.image.manifest));
    assert!(matches!(
        store.find_image(&by_digest).unwrap().lookup,
        Lookup::Digest(_)
    ));

    let err = store.find_image("nothere").unwrap_err();
    assert_eq!(err.to_string(), "no such image: nothere:latest");
    let err = store.remove_image("nothere:1", false).unwrap_err();
    assert_eq!(err.to_string(), "no such image: nothere:1");

    // By reference: just that reference.
    let removal = store.remove_image("one:v2", false).unwrap();
    assert_eq!(removal.untagged, vec![reference("one:v2")]);
    assert_eq!(removal.deleted, None);

    // By ID with references in two repositories: refused unless forced.
    let err = store.remove_image(&id.short_id(), false).unwrap_err();
    assert!(matches!(err, Error::ImageInUse { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("conflict: unable to delete {}", id.short_id())),
        "{err}"
    );
    let removal = store.remove_image(&id.short_id(), true).unwrap();
    assert_eq!(
        removal.untagged,
        vec![reference("one:latest"), reference("two/repo:x")]
    );
    assert_eq!(removal.deleted, Some(id));
    assert!(store.list_images().unwrap().is_empty());
    // Blobs stay until prune.
    assert!(store.has_blob(&id));
}

#[test]
fn retagging_moves_a_reference_and_listing_is_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let old = build(
        &store,
        &[&[("a", b"old")]],
        "2020-01-01T00:00:00Z",
        ManifestFormat::Oci,
    );
    let new = build(
        &store,
        &[&[("a", b"new!")]],
        "2024-01-01T00:00:00Z",
        ManifestFormat::Oci,
    );
    store.tag(&reference("app"), &old.image.manifest).unwrap();
    store.tag(&reference("base"), &old.image.manifest).unwrap();
    store.tag(&reference("app"), &new.image.manifest).unwrap();
    let listed: Vec<(String, Digest)> = store
        .list_images()
        .unwrap()
        .into_iter()
        .map(|s| (s.reference.to_string(), s.record.id))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("app:latest".to_owned(), digest_of(&new.image.config)),
            ("base:latest".to_owned(), digest_of(&old.image.config)),
        ]
    );
}

#[test]
fn prune_frees_only_unreferenced_content() {
    let dir = tempfile::tempdir().unwrap();
    let shared: &[(&str, &[u8])] = &[("lib/shared", b"shared layer")];
    let (kept, dropped) = {
        let store = Store::open(dir.path()).unwrap();
        let kept = build(
            &store,
            &[shared, &[("app", b"kept")]],
            "2024-01-01T00:00:00Z",
            ManifestFormat::Oci,
        );
        let dropped = build(
            &store,
            &[shared, &[("app", b"dropped")]],
            "2024-01-01T00:00:00Z",
            ManifestFormat::Oci,
        );
        store.tag(&reference("kept"), &kept.image.manifest).unwrap();
        store
            .tag(&reference("dropped"), &dropped.image.manifest)
            .unwrap();
        store.remove_image("dropped", false).unwrap();
        (kept, dropped)
    };
    // A new handle: the writer's lease is gone, so only references protect content now.
    let store = Store::open(dir.path()).unwrap();
    let report = store.prune(&PruneOptions::default()).unwrap();
    let mut expected = vec![
        digest_of(&dropped.image.manifest),
        digest_of(&dropped.image.config),
        dropped.layers[1].blob.digest,
    ];
    expected.sort();
    let mut removed = report.blobs.clone();
    removed.sort();
    assert_eq!(removed, expected);
    let blob_bytes: u64 =
        dropped.image.manifest.size() + dropped.image.config.size() + dropped.layers[1].blob.size;
    // Layer metadata files of the removed layer count too.
    assert!(
        report.reclaimed > blob_bytes,
        "{} <= {blob_bytes}",
        report.reclaimed
    );
    assert_eq!(
        store.layer_info(&dropped.layers[1].blob.digest).unwrap(),
        None
    );

    let image = store.read_image("kept").unwrap();
    assert_eq!(image.id, digest_of(&kept.image.config));
    for layer in &kept.layers {
        assert!(store.has_blob(&layer.blob.digest));
    }
    // Nothing left to do.
    let again = store.prune(&PruneOptions::default()).unwrap();
    assert_eq!(again.reclaimed, 0);
    assert!(again.blobs.is_empty());
}

#[test]
fn content_of_a_live_writer_survives_prune() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Store::open(dir.path()).unwrap();
    let pruner = Store::open(dir.path()).unwrap();
    let built = build(
        &writer,
        &[&[("a", b"pending")]],
        "2024-01-01T00:00:00Z",
        ManifestFormat::Oci,
    );
    // Not tagged yet: only the writer's lease protects it.
    let report = pruner.prune(&PruneOptions::default()).unwrap();
    assert!(report.blobs.is_empty(), "{report:?}");
    writer
        .tag(&reference("late"), &built.image.manifest)
        .unwrap();
    assert!(pruner.read_image("late").is_ok());

    // Once the writer is gone, untagged content is garbage.
    let loose = writer.ingest_bytes(b"loose blob").unwrap();
    drop(writer);
    let report = pruner.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.blobs, vec![loose.digest]);
    assert!(pruner.read_image("late").is_ok());
}

/// What a `kill -9` leaves behind mid-write: a partial ingest file, a lease nobody holds, an unfinished cache entry,
/// a half-written temp file. The store still opens and lists, and prune cleans all of it.
#[test]
fn leftovers_of_a_killed_writer_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    {
        let store = Store::open(root).unwrap();
        let built = build(
            &store,
            &[&[("a", b"a")]],
            "2024-01-01T00:00:00Z",
            ManifestFormat::Oci,
        );
        store
            .tag(&reference("survivor"), &built.image.manifest)
            .unwrap();
    }
    fs::write(root.join("ingest-v1/123-dead-0"), b"partial layer da").unwrap();
    fs::write(
        root.join("leases-v1/123-dead-1"),
        format!("blob {}\n", Digest::sha256(b"x")),
    )
    .unwrap();
    fs::create_dir(root.join("cache-v2/.tmp-123-dead-2")).unwrap();
    fs::write(root.join("cache-v2/.tmp-123-dead-2/file"), b"12345").unwrap();
    fs::write(root.join("tmp-v1/123-dead-3"), b"{\"references\":").unwrap();

    let store = Store::open(root).unwrap();
    assert_eq!(store.list_images().unwrap().len(), 1);
    assert!(store.read_image("survivor").is_ok());
    let report = store.prune(&PruneOptions::default()).unwrap();
    // The ingest file, the dead lease, the unfinished entry, the temp file.
    assert_eq!(report.leftovers, 4, "{report:?}");
    assert!(report.blobs.is_empty());
    assert_eq!(report.reclaimed, 16 + 77 + 5 + 14);
    for area in ["ingest-v1", "leases-v1", "cache-v2", "tmp-v1"] {
        assert_eq!(count(&root.join(area)), 0, "{area}");
    }
    assert!(store.read_image("survivor").is_ok());
}

/// A real process holds an ingest file's lock, as a writer does while streaming; prune leaves it alone until that
/// process is killed with SIGKILL, then removes it.
#[test]
fn ingest_file_of_a_live_process_survives_until_it_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let file = dir.path().join("ingest-v1/999-live-0");
    fs::write(&file, b"streaming...").unwrap();
    // The shell opens the file, locks it with flock(1) (the lock belongs to the shared open file), and becomes
    // `sleep` still holding it: killing that one process is what releases the lock.
    let mut holder = Command::new("sh")
        .args(["-c", r#"exec 9<>"$0"; flock 9; exec sleep 60"#])
        .arg(&file)
        .stdout(Stdio::null())
        .spawn()
        .expect("sh and flock(1) from util-linux");
    // Wait until the child holds the lock.
    let deadline = SystemTime::now() + Duration::from_secs(10);
    loop {
        let probe = fs::File::open(&file).unwrap();
        if rustix::fs::flock(&probe, rustix::fs::FlockOperation::NonBlockingLockShared).is_err() {
            break;
        }
        drop(probe);
        assert!(
            SystemTime::now() < deadline,
            "flock child never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = store.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.leftovers, 0);
    assert!(file.exists());

    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    let report = store.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.leftovers, 1);
    assert!(!file.exists());
}

#[test]
fn keep_storage_keeps_the_most_recently_used_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = SystemTime::now();
    for (i, key) in ["oldest", "middle", "newest"].into_iter().enumerate() {
        let entry = store.begin_entry(Area::Cache, key).unwrap();
        fs::write(entry.path().join("data"), vec![b'x'; 1000]).unwrap();
        let path = entry.commit().unwrap();
        let used = now - Duration::from_secs(3600 * (3 - i as u64));
        fs::File::open(&path).unwrap().set_modified(used).unwrap();
    }
    let snapshot = store.begin_entry(Area::Snapshots, "snap").unwrap();
    fs::write(snapshot.path().join("rootfs"), vec![b'y'; 500]).unwrap();
    snapshot.commit().unwrap();
    fs::File::open(store.area_dir(Area::Snapshots).join("snap"))
        .unwrap()
        .set_modified(now - Duration::from_secs(60))
        .unwrap();
    // This handle wrote them all, so its lease protects them; prune from another handle.
    drop(store);
    let store = Store::open(dir.path()).unwrap();

    let report = store.prune(&PruneOptions { keep_storage: 2500 }).unwrap();
    // Most recent first: snap (500), newest (1000), middle (1000) fit in 2500; oldest does not.
    assert_eq!(report.entries, vec![(Area::Cache, "oldest".to_owned())]);
    assert_eq!(report.reclaimed, 1000);

    // An entry in use by a live handle is kept even with nothing to spare.
    let user = Store::open(dir.path()).unwrap();
    assert!(user.use_entry(Area::Cache, "middle").unwrap().is_some());
    let report = store.prune(&PruneOptions::default()).unwrap();
    let mut removed = report.entries.clone();
    removed.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        removed,
        vec![
            (Area::Cache, "newest".to_owned()),
            (Area::Snapshots, "snap".to_owned())
        ]
    );
    assert_eq!(count(&store.area_dir(Area::Cache)), 1);
    drop(user);
    let report = store.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.entries, vec![(Area::Cache, "middle".to_owned())]);
    // Empty areas prune to nothing.
    let report = store.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report, hoist_oci::PruneReport::default());
}

/// A cache entry's held layer (no reference reaches it) lives exactly as long as prune keeps the entry, and its
/// size counts against `--keep-storage` as the entry's.
#[test]
fn prune_keeps_the_blobs_of_kept_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = SystemTime::now();
    let mut layers = Vec::new();
    for (i, key) in ["older", "newer"].into_iter().enumerate() {
        let layer = store.ingest_bytes(&vec![b'0' + i as u8; 4000]).unwrap();
        let entry = store.begin_entry(Area::Cache, key).unwrap();
        fs::write(entry.path().join("result.json"), b"{}").unwrap();
        entry.hold_blobs(&[layer.digest]).unwrap();
        let path = entry.commit().unwrap();
        let used = now - Duration::from_secs(3600 * (2 - i as u64));
        fs::File::open(&path).unwrap().set_modified(used).unwrap();
        layers.push(layer.digest);
    }
    drop(store);
    let store = Store::open(dir.path()).unwrap();

    // Room for one entry with its 4000-byte layer, not for two.
    let report = store.prune(&PruneOptions { keep_storage: 5000 }).unwrap();
    assert_eq!(report.entries, vec![(Area::Cache, "older".to_owned())]);
    assert_eq!(report.blobs, vec![layers[0]]);
    assert!(!store.has_blob(&layers[0]));
    assert!(
        store.has_blob(&layers[1]),
        "the kept entry's layer was deleted"
    );

    // Not enough room even for the entry's own layer: entry and layer go together.
    let report = store.prune(&PruneOptions { keep_storage: 3000 }).unwrap();
    assert_eq!(report.entries, vec![(Area::Cache, "newer".to_owned())]);
    assert_eq!(report.blobs, vec![layers[1]]);
    assert_eq!(count(&store.area_dir(Area::Cache)), 0);
}

/// Threads with their own store handles tag and write at once while another prunes in a loop: no reference is
/// lost, no referenced or pending blob disappears, the index stays valid.
#[test]
fn concurrent_writers_and_pruner_lose_nothing() {
    const WRITERS: usize = 6;
    const TAGS: usize = 15;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let barrier = Arc::new(Barrier::new(WRITERS + 1));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pruner = {
        let (root, barrier, done) = (root.clone(), barrier.clone(), done.clone());
        std::thread::spawn(move || {
            let store = Store::open(&root).unwrap();
            barrier.wait();
            let mut runs = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                store.prune(&PruneOptions::default()).unwrap();
                runs += 1;
            }
            runs
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (root, barrier) = (root.clone(), barrier.clone());
            std::thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                barrier.wait();
                let mut records: Vec<(Reference, ImageRecord)> = Vec::new();
                for t in 0..TAGS {
                    let content = format!("writer {w} image {t}");
                    let built = build(
                        &store,
                        &[
                            &[("shared", b"same in every image")],
                            &[("own", content.as_bytes())],
                        ],
                        "2024-01-01T00:00:00Z",
                        ManifestFormat::Oci,
                    );
                    let reference = reference(&format!("w{w}:t{t}"));
                    records.push((
                        reference.clone(),
                        store.tag(&reference, &built.image.manifest).unwrap(),
                    ));
                }
                records
            })
        })
        .collect();
    let mut expected = Vec::new();
    for writer in writers {
        expected.extend(writer.join().unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(pruner.join().unwrap() > 0);

    let store = Store::open(&root).unwrap();
    store.prune(&PruneOptions::default()).unwrap();
    let listed = store.list_images().unwrap();
    assert_eq!(listed.len(), WRITERS * TAGS);
    for (reference, record) in expected {
        let image = store.read_image(&reference.to_string()).unwrap();
        assert_eq!(image.id, record.id);
        for layer in &image.layers {
            assert!(
                store.has_blob(&digest_of(&layer.descriptor)),
                "{reference}: layer lost"
            );
        }
    }
}

/// A store a hoist with the first build-cache format used: its `cache-v1` area (records and cache mounts) is no
/// longer read, and prune removes it whole.
#[test]
fn prune_removes_the_retired_cache_area() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(root).unwrap();
    fs::create_dir_all(root.join("cache-v1/0123/")).unwrap();
    fs::write(root.join("cache-v1/0123/result.json"), b"{\"layer\":null}").unwrap();
    fs::create_dir_all(root.join("cache-v1/mount-ab/pkg")).unwrap();
    fs::write(root.join("cache-v1/mount-ab/pkg/x"), b"12345").unwrap();
    let report = store.prune(&PruneOptions::default()).unwrap();
    assert!(!root.join("cache-v1").exists());
    assert_eq!(report.leftovers, 1, "{report:?}");
    assert_eq!(report.reclaimed, 14 + 5, "{report:?}");
    assert!(root.join("cache-v2").is_dir());
}

/// The cleanup every build starts with: an unfinished snapshot entry whose writer died goes, one being written
/// stays, and so do committed entries.
#[test]
fn abandoned_entries_are_removed_without_a_prune() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(root).unwrap();
    let dead = root.join("snapshots-v1/.tmp-123-dead-0");
    fs::create_dir_all(dead.join("upper/deep")).unwrap();
    fs::write(dead.join("upper/deep/file"), b"kept by a killed step").unwrap();
    let live = store.begin_entry(Area::Snapshots, "live").unwrap();
    let committed = store.begin_entry(Area::Snapshots, "done").unwrap();
    fs::write(committed.path().join("file"), b"x").unwrap();
    let committed = committed.commit().unwrap();

    assert_eq!(store.remove_abandoned_entries(Area::Snapshots).unwrap(), 1);
    assert!(!dead.exists());
    assert!(live.path().is_dir());
    assert!(committed.join("file").is_file());
    assert_eq!(store.remove_abandoned_entries(Area::Snapshots).unwrap(), 0);
    live.commit().unwrap();
}
