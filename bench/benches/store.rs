//! The image store (`hoist-oci`): listing a store of 100 tagged images (what `hoist images` does: one index read,
//! no blob opened), looking one up by short ID, reading one image (manifest, config, layer metadata), and ingesting
//! a 1 MiB blob (hash, fsync, rename). Target: listing in well under a millisecond.

use std::fs;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoist_layer::{CompressOptions, Compression, LayerBlobWriter, WriteOptions, write_layer};
use hoist_oci::{DigestExt, Expected, ManifestFormat, Reference, Store, layer_descriptor};

const IMAGES: usize = 100;

/// A store holding `IMAGES` one-layer images, each tagged once.
fn store_with_images(root: &std::path::Path, scratch: &std::path::Path) -> (Store, String) {
    let store = Store::open(root).expect("store opens");
    let mut last_id = String::new();
    for i in 0..IMAGES {
        let tree = scratch.join(format!("tree{i}"));
        fs::create_dir_all(tree.join("etc")).expect("scratch dir");
        fs::write(tree.join("etc/version"), format!("image {i}\n")).expect("scratch file");
        let mut writer =
            LayerBlobWriter::new(Vec::new(), Compression::Gzip, &CompressOptions::default())
                .expect("gzip writer");
        write_layer(
            &tree,
            &mut writer,
            &WriteOptions::new().with_source_date_epoch(0),
        )
        .expect("layer written");
        let (blob, _) = writer.finish().expect("layer finished");
        let layer = store
            .ingest_layer(&blob[..], &Expected::unknown())
            .expect("layer stored");
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:{:02}Z","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            i % 60,
            layer.info.diff_id
        );
        let image = store
            .write_image(
                config.as_bytes(),
                &[layer_descriptor(&layer, ManifestFormat::Oci)],
                ManifestFormat::Oci,
            )
            .expect("image written");
        let reference: Reference = format!("bench/app{i}:v{i}")
            .parse()
            .expect("valid reference");
        let record = store.tag(&reference, &image.manifest).expect("tagged");
        last_id = record.id.short_id();
    }
    (store, last_id)
}

fn store(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, short_id) = store_with_images(&dir.path().join("store"), dir.path());
    assert_eq!(store.list_images().expect("listing works").len(), IMAGES);

    let mut group = c.benchmark_group("store");
    group.bench_function("list_images_100", |b| {
        b.iter(|| black_box(store.list_images().expect("listing works")));
    });
    group.bench_function("find_image_by_short_id_100", |b| {
        b.iter(|| black_box(store.find_image(black_box(&short_id)).expect("found")));
    });
    group.bench_function("read_image", |b| {
        b.iter(|| black_box(store.read_image(black_box("bench/app7:v7")).expect("read")));
    });

    let blob: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    group.throughput(Throughput::Bytes(blob.len() as u64));
    group.bench_function("ingest_1mib_blob", |b| {
        // Unknown digest: every iteration streams to a temp file, hashes, fsyncs, then finds the blob present and
        // drops the copy. That is the full write path minus the final rename.
        b.iter(|| {
            black_box(
                store
                    .ingest(black_box(&blob[..]), &Expected::unknown())
                    .expect("ingested"),
            )
        });
    });
    group.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
