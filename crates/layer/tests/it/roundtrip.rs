//! Directory → layer → directory round trips.

use std::io::Read;

use hoist_layer::{
    ApplyOptions, CompressOptions, Compression, Decompressor, DigestReader, LayerBlobWriter,
    Ownership, WriteOptions, apply_layer, is_incomplete, write_layer,
};

use crate::common::*;

#[test]
fn rich_tree_round_trips_through_every_compression() {
    let src = tempdir();
    build_rich_tree(src.path());
    let expected = snapshot(src.path(), Compare::ALL);
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut blob =
            LayerBlobWriter::new(Vec::new(), compression, &CompressOptions::default()).unwrap();
        let summary = write_layer(src.path(), &mut blob, &WriteOptions::new()).unwrap();
        let (bytes, digests) = blob.finish().unwrap();
        assert_eq!(digests.uncompressed_size, summary.tar_size, "{compression}");
        assert_eq!(digests.compression, compression);

        // Apply while verifying the blob digest in the same pass, as an image store would.
        let dst = tempdir();
        let mut verified = DigestReader::new(&bytes[..]);
        let reader = Decompressor::new(&mut verified).unwrap();
        assert_eq!(reader.compression(), compression);
        let report = apply_layer(reader, dst.path(), &ApplyOptions::new()).unwrap();
        let (_, blob_digest) = verified.finish().unwrap();
        assert_eq!(blob_digest.digest, digests.digest);
        assert_eq!(blob_digest.size, digests.size);

        assert!(!is_incomplete(dst.path()));
        assert_same_tree(&expected, &snapshot(dst.path(), Compare::ALL));
        assert_eq!(report.entries, summary.entries, "{compression}");
        assert_eq!(report.whiteouts, 0);
        assert_eq!(report.skipped, 0);
        assert_eq!(report.xattrs_skipped, 0);
        assert!(report.bytes > 2_500_000, "{report:?}");
    }
}

#[test]
fn applying_onto_existing_content_replaces_and_merges() {
    let src = tempdir();
    build_rich_tree(src.path());
    let tar = tar_of(src.path(), &WriteOptions::new());
    let dst = tempdir();
    // What a lower layer left: a directory where the layer has a file, a file where it has a
    // directory, a symlink where it has a file (must be replaced, not written through), and
    // unrelated content that must survive.
    let outside = tempdir();
    write_file(outside.path(), "victim", b"outside\n", 0o644);
    mkdir(dst.path(), "hello.txt/sub", 0o755);
    write_file(dst.path(), "a", b"file where a directory goes", 0o644);
    symlink(
        dst.path(),
        "empty-file",
        outside.path().join("victim").to_str().unwrap(),
    );
    write_file(dst.path(), "unrelated/keep.txt", b"keep\n", 0o644);
    apply_layer(&tar[..], dst.path(), &ApplyOptions::new()).unwrap();

    let mut expected = snapshot(src.path(), Compare::ALL);
    let actual = snapshot(dst.path(), Compare::ALL);
    for (path, line) in &actual {
        if path.starts_with("unrelated") {
            expected.insert(path.clone(), line.clone());
        }
    }
    assert_same_tree(&expected, &actual);
    assert_eq!(
        std::fs::read(outside.path().join("victim")).unwrap(),
        b"outside\n"
    );
}

#[test]
fn excluded_paths_are_left_out() {
    let src = tempdir();
    write_file(src.path(), "etc/hosts", b"127.0.0.1 localhost\n", 0o644);
    write_file(
        src.path(),
        "etc/passwd",
        b"root:x:0:0::/root:/bin/sh\n",
        0o644,
    );
    write_file(src.path(), "proc/self/status", b"not a real proc\n", 0o644);
    let options = WriteOptions::new()
        .with_exclude("/etc/hosts")
        .with_exclude("proc/");
    let tar = tar_of(src.path(), &options);
    let dst = tempdir();
    apply_layer(&tar[..], dst.path(), &ApplyOptions::new()).unwrap();
    let names: Vec<String> = snapshot(dst.path(), Compare::ALL).into_keys().collect();
    assert_eq!(names, ["etc", "etc/passwd"]);
}

#[test]
fn source_date_epoch_clamps_only_newer_times() {
    let src = tempdir();
    write_file(src.path(), "old", b"old\n", 0o644);
    write_file(src.path(), "new/file", b"new\n", 0o644);
    set_mtime(src.path(), "old", 1_000);
    set_mtime(src.path(), "new/file", 2_000_000_000);
    set_mtime(src.path(), "new", 2_000_000_000);
    let tar = tar_of(
        src.path(),
        &WriteOptions::new().with_source_date_epoch(1_500_000_000),
    );
    let dst = tempdir();
    apply_layer(&tar[..], dst.path(), &ApplyOptions::new()).unwrap();
    let mtime = |rel: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(dst.path().join(rel))
            .unwrap()
            .mtime()
    };
    assert_eq!(mtime("old"), 1_000);
    assert_eq!(mtime("new/file"), 1_500_000_000);
    assert_eq!(mtime("new"), 1_500_000_000);
}

#[test]
fn ownership_can_be_ignored() {
    let src = tempdir();
    write_file(src.path(), "f", b"x", 0o640);
    if is_root() {
        chown(src.path(), "f", 4321, 4321);
    }
    let tar = tar_of(src.path(), &WriteOptions::new());
    let dst = tempdir();
    apply_layer(
        &tar[..],
        dst.path(),
        &ApplyOptions::new().with_ownership(Ownership::Ignore),
    )
    .unwrap();
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dst.path().join("f")).unwrap();
    assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());
    assert_eq!(meta.mode() & 0o7777, 0o640);
}

#[test]
fn empty_directory_gives_an_empty_layer() {
    let src = tempdir();
    let mut blob =
        LayerBlobWriter::new(Vec::new(), Compression::Gzip, &CompressOptions::default()).unwrap();
    let summary = write_layer(src.path(), &mut blob, &WriteOptions::new()).unwrap();
    assert_eq!(summary.entries, 0);
    assert_eq!(summary.tar_size, 1024);
    let (bytes, digests) = blob.finish().unwrap();
    let mut tar = Vec::new();
    Decompressor::new(&bytes[..])
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(tar, vec![0u8; 1024]);
    // The diffID of an empty layer is the well-known digest of 1024 zero bytes.
    assert_eq!(
        digests.diff_id.to_string(),
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    );
}
