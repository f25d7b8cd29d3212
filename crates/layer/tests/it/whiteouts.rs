//! Whiteouts and opaque directories: written from a real overlayfs upper directory, applied by
//! the OCI rules (including entries of the same layer that must survive).

use std::path::Path;
use std::process::Command;

use hoist_layer::{ApplyOptions, SourceKind, WriteOptions, apply_layer};

use crate::common::*;
use crate::craft::{Craft, Kind};

fn lower_tree(root: &Path) {
    write_file(root, "keep/untouched", b"same\n", 0o644);
    write_file(root, "keep/deleted", b"gone soon\n", 0o644);
    write_file(root, "modified", b"before\n", 0o644);
    write_file(root, "removed-dir/a", b"a\n", 0o644);
    write_file(root, "removed-dir/sub/b", b"b\n", 0o644);
    write_file(root, "recreated/old-1", b"1\n", 0o644);
    write_file(root, "recreated/old-2/x", b"x\n", 0o644);
    write_file(root, "opaque/old", b"old\n", 0o644);
    symlink(root, "link", "keep/untouched");
    set_all_mtimes(root, 1_500_000_000);
}

/// Lists the entries of an uncompressed tar with Python's tarfile (an independent reader).
fn tar_names(tar: &[u8]) -> Vec<String> {
    let work = tempdir();
    let path = work.path().join("layer.tar");
    std::fs::write(&path, tar).unwrap();
    let script = "import sys, tarfile\nfor m in tarfile.open(sys.argv[1]): print(m.name)";
    let out = run(Command::new("python3").arg("-c").arg(script).arg(&path));
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Mounts overlayfs (root only), changes the merged view, and checks that the upper directory,
/// written as a layer and applied onto the lower tree, reproduces the merged view exactly.
#[test]
fn overlayfs_upper_dir_round_trips_onto_lower() {
    assert!(is_root(), "this test mounts overlayfs and must run as root");
    let work = tempdir();
    let dirs = ["lower", "upper", "work", "merged"].map(|d| work.path().join(d));
    for dir in &dirs {
        std::fs::create_dir(dir).unwrap();
    }
    let [lower, upper, ovl_work, merged] = &dirs;
    lower_tree(lower);
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        ovl_work.display()
    );
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(merged));
    let changes = (|| -> std::io::Result<()> {
        std::fs::remove_file(merged.join("keep/deleted"))?;
        std::fs::write(merged.join("modified"), b"after\n")?;
        std::fs::remove_dir_all(merged.join("removed-dir"))?;
        std::fs::remove_dir_all(merged.join("recreated"))?;
        std::fs::create_dir(merged.join("recreated"))?;
        std::fs::write(merged.join("recreated/new"), b"new\n")?;
        std::fs::remove_dir_all(merged.join("opaque"))?;
        std::fs::create_dir(merged.join("opaque"))?;
        std::fs::write(merged.join("opaque/fresh"), b"fresh\n")?;
        std::fs::remove_file(merged.join("link"))?;
        std::fs::write(merged.join("added"), b"added\n")?;
        Ok(())
    })();
    let expected = snapshot(merged, Compare::ALL);
    run(Command::new("umount").arg(merged));
    changes.unwrap();

    let layer = tar_of(
        upper,
        &WriteOptions::new().with_source_kind(SourceKind::OverlayUpper),
    );
    let names = tar_names(&layer);
    for expected_name in [
        "keep/.wh.deleted",
        ".wh.removed-dir",
        ".wh.link",
        "recreated/.wh..wh..opq",
        "opaque/.wh..wh..opq",
        "recreated/new",
    ] {
        assert!(
            names.iter().any(|n| n == expected_name),
            "{expected_name} missing from {names:?}"
        );
    }
    // overlayfs bookkeeping never reaches the layer.
    let listing = String::from_utf8_lossy(&layer);
    assert!(
        !listing.contains("trusted.overlay"),
        "overlay xattrs leaked into the layer"
    );

    // Apply lower (as the base layer) and then the diff onto a fresh root.
    let root = tempdir();
    apply_layer(
        &tar_of(lower, &WriteOptions::new())[..],
        root.path(),
        &ApplyOptions::new(),
    )
    .unwrap();
    let report = apply_layer(&layer[..], root.path(), &ApplyOptions::new()).unwrap();
    assert!(report.whiteouts >= 5, "{report:?}");
    assert_same_tree(&expected, &snapshot(root.path(), Compare::ALL));
}

fn applied(lower: impl Fn(&Path), layer: &[u8]) -> Vec<String> {
    let root = tempdir();
    lower(root.path());
    apply_layer(layer, root.path(), &ApplyOptions::new()).unwrap();
    snapshot(root.path(), Compare::ALL).into_keys().collect()
}

#[test]
fn whiteouts_do_not_remove_entries_of_the_same_layer() {
    let lower = |root: &Path| {
        write_file(root, "dir/old", b"old", 0o644);
        write_file(root, "dir/sub/older", b"older", 0o644);
        write_file(root, "file", b"lower", 0o644);
    };
    // The whiteout comes after the new content: only the lower content goes.
    let late_whiteout = Craft::new()
        .entry("dir/", Kind::Dir)
        .entry("dir/new", Kind::File(b"new"))
        .entry(".wh.dir", Kind::File(b""))
        .finish();
    assert_eq!(applied(lower, &late_whiteout), ["dir", "dir/new", "file"]);

    // The opaque marker after new content, in a nested directory.
    let late_opaque = Craft::new()
        .entry("dir/", Kind::Dir)
        .entry("dir/sub/", Kind::Dir)
        .entry("dir/sub/mine", Kind::File(b"mine"))
        .entry("dir/.wh..wh..opq", Kind::File(b""))
        .finish();
    assert_eq!(
        applied(lower, &late_opaque),
        ["dir", "dir/sub", "dir/sub/mine", "file"]
    );

    // Whiteout first (the usual sorted order), then the directory is recreated.
    let recreate = Craft::new()
        .entry(".wh.dir", Kind::File(b""))
        .entry("dir/", Kind::Dir)
        .entry("dir/.wh..wh..opq", Kind::File(b""))
        .entry("dir/new", Kind::File(b"new"))
        .finish();
    assert_eq!(applied(lower, &recreate), ["dir", "dir/new", "file"]);
}

#[test]
fn whiteouts_of_missing_paths_and_aufs_metadata_are_harmless() {
    let lower = |root: &Path| write_file(root, "file", b"lower", 0o644);
    let layer = Craft::new()
        .entry(".wh.not-there", Kind::File(b""))
        .entry("missing-dir/.wh.x", Kind::File(b""))
        .entry("missing-dir2/.wh..wh..opq", Kind::File(b""))
        .entry(".wh..wh.plnk/", Kind::Dir)
        .entry(".wh..wh.plnk/123", Kind::File(b"aufs"))
        .finish();
    assert_eq!(applied(lower, &layer), ["file"]);
}
