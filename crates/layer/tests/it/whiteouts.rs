//! Whiteouts and opaque directories: written from a real overlayfs upper directory, applied by
//! the OCI rules (including entries of the same layer that must survive).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use hoist_layer::{ApplyOptions, SourceKind, Whiteouts, WriteOptions, apply_layer};

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

/// Mounts overlayfs (root only) over `lower_tree`, changes the merged view (deletions, a
/// recreated and an opaque directory, a removed symlink, new files), and returns the lower
/// directory, the upper directory written as a layer, and the merged view as it was.
fn overlay_changes(work: &Path) -> (PathBuf, Vec<u8>, BTreeMap<String, String>) {
    let dirs = ["lower", "upper", "work", "merged"].map(|d| work.join(d));
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
    (lower.clone(), layer, expected)
}

/// The upper directory of a real overlayfs mount, written as a layer and applied onto the lower
/// tree, reproduces the merged view exactly.
#[test]
fn overlayfs_upper_dir_round_trips_onto_lower() {
    assert!(is_root(), "this test mounts overlayfs and must run as root");
    let work = tempdir();
    let (lower, layer, expected) = overlay_changes(work.path());
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
        &tar_of(&lower, &WriteOptions::new())[..],
        root.path(),
        &ApplyOptions::new(),
    )
    .unwrap();
    let report = apply_layer(&layer[..], root.path(), &ApplyOptions::new()).unwrap();
    assert!(report.whiteouts >= 5, "{report:?}");
    assert_same_tree(&expected, &snapshot(root.path(), Compare::ALL));
}

/// Each layer applied alone in overlayfs's format (as hoist's snapshots are) and stacked by a
/// real overlayfs mount gives the same tree as applying the layers in turn: whiteouts as 0/0
/// character devices, opaque directories, directory times.
#[test]
fn overlay_format_layers_stacked_by_overlayfs_match_the_applied_tree() {
    assert!(is_root(), "this test mounts overlayfs and must run as root");
    let work = tempdir();
    let (lower, layer, expected) = overlay_changes(work.path());
    let overlay = ApplyOptions::new().with_whiteouts(Whiteouts::Overlay {
        opaque_xattr: "trusted.overlay.opaque",
    });
    let [base, top, merged] = ["base", "top", "stacked"].map(|d| work.path().join(d));
    for dir in [&base, &top, &merged] {
        std::fs::create_dir(dir).unwrap();
    }
    apply_layer(&tar_of(&lower, &WriteOptions::new())[..], &base, &overlay).unwrap();
    let report = apply_layer(&layer[..], &top, &overlay).unwrap();
    assert!(report.whiteouts >= 5, "{report:?}");
    // The layer's own tree holds the whiteouts in overlayfs's format.
    let gone = std::fs::symlink_metadata(top.join("keep/deleted")).unwrap();
    assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
    let mut opaque = [0u8; 4];
    let len = rustix::fs::lgetxattr(top.join("opaque"), "trusted.overlay.opaque", &mut opaque);
    assert_eq!(&opaque[..len.unwrap()], b"y");

    let options = format!("lowerdir={}:{}", top.display(), base.display());
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&merged));
    let stacked = snapshot(&merged, Compare::ALL);
    run(Command::new("umount").arg(&merged));
    assert_same_tree(&expected, &stacked);
}

/// Overlay-format whiteouts in crafted layers: the layer's own entries win over its whiteouts in
/// either order, a directory recreated after its whiteout is opaque, a whiteout's missing
/// directory is created, a symlinked parent is followed within the root only, and directory
/// times are those of the archive.
#[test]
fn overlay_format_whiteouts_of_crafted_layers() {
    let host = tempdir();
    let host_dir = host.path().to_str().unwrap().to_owned();
    let layer = Craft::new()
        .entry("escape", Kind::Symlink(&host_dir))
        .entry("escape/.wh.planted", Kind::File(b""))
        .entry("escape/.wh..wh..opq", Kind::File(b""))
        .entry(".wh.gone", Kind::File(b""))
        .entry("kept", Kind::File(b"mine"))
        .entry(".wh.kept", Kind::File(b""))
        .entry(".wh.replaced", Kind::File(b""))
        .entry("replaced", Kind::File(b"new"))
        .entry(".wh.recreated", Kind::File(b""))
        .entry("recreated/", Kind::Dir)
        .entry("recreated/x", Kind::File(b"x"))
        .entry("dir/", Kind::Dir)
        .entry("dir/.wh..wh..opq", Kind::File(b""))
        .entry("dir/.wh.inner", Kind::File(b""))
        .entry("missing/.wh.y", Kind::File(b""))
        .finish();
    let root = tempdir();
    let xattr = "user.overlay.opaque";
    let options = ApplyOptions::new().with_whiteouts(Whiteouts::Overlay {
        opaque_xattr: xattr,
    });
    let report = apply_layer(&layer[..], root.path(), &options).unwrap();
    assert_eq!(report.whiteouts, 9, "{report:?}");
    let meta = |rel: &str| std::fs::symlink_metadata(root.path().join(rel)).unwrap();
    let is_whiteout = |rel: &str| {
        let meta = meta(rel);
        meta.file_type().is_char_device() && meta.rdev() == 0
    };
    let opaque = |rel: &str| {
        let mut value = [0u8; 4];
        rustix::fs::lgetxattr(root.path().join(rel), xattr, &mut value)
            .is_ok_and(|len| &value[..len] == b"y")
    };
    // Through the symlink, inside the root: the host directory it names is untouched.
    assert!(std::fs::read_dir(host.path()).unwrap().next().is_none());
    let mut value = [0u8; 4];
    assert!(rustix::fs::lgetxattr(host.path(), xattr, &mut value).is_err());
    let inside = format!("{}/planted", host_dir.trim_start_matches('/'));
    assert!(is_whiteout(&inside), "{inside}");
    for whiteout in ["gone", "dir/inner", "missing/y"] {
        assert!(is_whiteout(whiteout), "{whiteout}");
    }
    assert_eq!(std::fs::read(root.path().join("kept")).unwrap(), b"mine");
    assert_eq!(std::fs::read(root.path().join("replaced")).unwrap(), b"new");
    assert!(meta("recreated").is_dir() && opaque("recreated"));
    assert_eq!(
        std::fs::read(root.path().join("recreated/x")).unwrap(),
        b"x"
    );
    assert!(opaque("dir") && !opaque("missing") && !opaque("."));
    // The directories' times are the archive's (1), set after their whiteouts were made.
    assert_eq!(meta("dir").mtime(), 1);
    assert_eq!(meta("recreated").mtime(), 1);
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
