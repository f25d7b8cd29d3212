//! Layer hot paths: digesting, compression, tar writing and applying.
//!
//! `cargo bench -p hoist-bench --bench layer`. End-to-end comparisons against GNU tar, gzip and
//! pigz on a 1 GiB tree are in `bench/layer-vs-tar.sh`.

use std::hint::black_box;
use std::io::Write;
use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hoist_layer::{
    ApplyOptions, CompressOptions, Compression, Compressor, Decompressor, Digest, WriteOptions,
    apply_layer, write_layer,
};

/// 32 MiB, about half text-like (compresses ~3x) and half random.
fn mixed_data() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let words: Vec<String> = (0..2000)
        .map(|i| format!("w{}x{}", i * 7919 % 1000, i % 13))
        .collect();
    let mut data = Vec::with_capacity(32 << 20);
    while data.len() < 32 << 20 {
        if next() % 2 == 0 {
            for _ in 0..8192 {
                data.extend_from_slice(words[(next() % 2000) as usize].as_bytes());
                data.push(b' ');
            }
        } else {
            for _ in 0..8192 {
                data.extend_from_slice(&next().to_le_bytes());
            }
        }
    }
    data.truncate(32 << 20);
    data
}

/// A tree of 2000 small files and 4 files of 4 MiB.
fn make_tree(root: &Path, data: &[u8]) {
    for i in 0..2000 {
        let dir = root.join(format!("d{:02}", i % 50));
        std::fs::create_dir_all(&dir).unwrap();
        let start = (i * 4099) % (data.len() - 20_000);
        let len = 200 + (i * 37) % 12_000;
        std::fs::write(dir.join(format!("f{i:04}")), &data[start..start + len]).unwrap();
    }
    for i in 0..4 {
        let start = i * (4 << 20);
        std::fs::write(
            root.join(format!("big{i}")),
            &data[start..start + (4 << 20)],
        )
        .unwrap();
    }
}

fn digest(c: &mut Criterion) {
    let data = mixed_data();
    let mut group = c.benchmark_group("digest");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("sha256_32MiB", |b| {
        b.iter(|| Digest::sha256(black_box(&data)))
    });
    group.finish();
}

fn compress(c: &mut Criterion) {
    let data = mixed_data();
    let mut group = c.benchmark_group("compress_32MiB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(data.len() as u64));
    let cases = [
        ("gzip_1_thread", Compression::Gzip, 1),
        ("gzip_all_cores", Compression::Gzip, 0),
        ("zstd_1_thread", Compression::Zstd, 1),
        ("zstd_all_cores", Compression::Zstd, 0),
    ];
    for (name, compression, threads) in cases {
        let mut options = CompressOptions::default();
        if threads > 0 {
            options = options.with_threads(threads);
        }
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut writer = Compressor::new(Vec::new(), compression, &options).unwrap();
                writer.write_all(black_box(&data)).unwrap();
                writer.finish().unwrap().len()
            });
        });
    }
    let gzip = {
        let mut writer =
            Compressor::new(Vec::new(), Compression::Gzip, &CompressOptions::default()).unwrap();
        writer.write_all(&data).unwrap();
        writer.finish().unwrap()
    };
    group.bench_function("gunzip", |b| {
        b.iter(|| {
            let mut reader = Decompressor::new(black_box(&gzip[..])).unwrap();
            std::io::copy(&mut reader, &mut std::io::sink()).unwrap()
        });
    });
    group.finish();
}

fn tree(c: &mut Criterion) {
    let data = mixed_data();
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path(), &data);
    let mut tar = Vec::new();
    write_layer(src.path(), &mut tar, &WriteOptions::new()).unwrap();

    let mut group = c.benchmark_group("layer_tree_2000_files");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(tar.len() as u64));
    group.bench_function("write_tar", |b| {
        b.iter(|| {
            write_layer(black_box(src.path()), std::io::sink(), &WriteOptions::new()).unwrap()
        });
    });
    // Extract into tmpfs when there is one: on this VM's ext4 the kernel's page-cache work
    // dominates (the same for `tar -x`), hiding the applier's own cost.
    let scratch = Path::new("/dev/shm");
    let scratch = if scratch.is_dir() {
        scratch.to_owned()
    } else {
        std::env::temp_dir()
    };
    group.bench_function("apply_tar", |b| {
        b.iter_batched(
            || tempfile::tempdir_in(&scratch).unwrap(),
            |dst| {
                apply_layer(black_box(&tar[..]), dst.path(), &ApplyOptions::new()).unwrap();
                dst
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, digest, compress, tree);
criterion_main!(benches);
