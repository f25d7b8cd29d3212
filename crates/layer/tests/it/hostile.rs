//! Hostile and broken archives: refused with an error naming the entry, nothing written
//! outside the target, and the target marked incomplete.

use std::path::Path;

use hoist_layer::{
    ApplyError, ApplyOptions, ArchiveError, CompressOptions, Compression, Compressor, Decompressor,
    ParentSymlinks, UnsafeReason, apply_layer, is_incomplete,
};

use crate::common::*;
use crate::craft::{Craft, Kind};

/// A sandbox: `root` is the target, `outside` a sibling that must stay untouched.
struct Sandbox {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempdir();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("passwd"), b"host secret\n").unwrap();
        Self {
            _dir: dir,
            root,
            outside,
        }
    }

    fn outside_snapshot(&self) -> std::collections::BTreeMap<String, String> {
        snapshot(self.root.parent().unwrap(), Compare::ALL)
            .into_iter()
            .filter(|(k, _)| !k.starts_with("root"))
            .collect()
    }

    fn apply(
        &self,
        tar: &[u8],
        options: &ApplyOptions,
    ) -> Result<hoist_layer::ApplyReport, ApplyError> {
        apply_layer(tar, &self.root, options)
    }

    fn outside_abs(&self) -> String {
        self.outside.to_str().unwrap().to_owned()
    }
}

fn assert_unsafe(
    result: Result<hoist_layer::ApplyReport, ApplyError>,
    entry: &str,
    check: impl Fn(&UnsafeReason) -> bool,
) {
    match result {
        Err(ApplyError::Unsafe { entry: e, reason }) => {
            assert_eq!(e, entry);
            assert!(check(&reason), "unexpected reason {reason:?}");
            let message = ApplyError::Unsafe { entry: e, reason }.to_string();
            assert!(
                message.contains(entry),
                "error does not name the entry: {message}"
            );
        }
        other => panic!("expected entry {entry:?} to be refused, got {other:?}"),
    }
}

#[test]
fn parent_directory_paths_are_refused() {
    for name in ["../x", "sub/../../x", "sub/deeper/../../../x", ".."] {
        let sandbox = Sandbox::new();
        let before = sandbox.outside_snapshot();
        let tar = Craft::new()
            .entry("ok", Kind::File(b"fine"))
            .entry(name, Kind::File(b"escaped"))
            .finish();
        assert_unsafe(sandbox.apply(&tar, &ApplyOptions::new()), name, |r| {
            *r == UnsafeReason::ParentComponent
        });
        assert_eq!(sandbox.outside_snapshot(), before, "{name} wrote outside");
        assert!(
            is_incomplete(&sandbox.root),
            "{name}: target not marked incomplete"
        );
    }
}

#[test]
fn absolute_paths_are_refused() {
    let sandbox = Sandbox::new();
    let target = format!("{}/abs-file", sandbox.outside_abs());
    let tar = Craft::new().entry(&target, Kind::File(b"escaped")).finish();
    assert_unsafe(sandbox.apply(&tar, &ApplyOptions::new()), &target, |r| {
        *r == UnsafeReason::AbsolutePath
    });
    assert!(!Path::new(&target).exists());
    assert!(!sandbox.root.join(target.trim_start_matches('/')).exists());
}

#[test]
fn symlinked_parent_cannot_lead_outside() {
    let sandbox = Sandbox::new();
    let before = sandbox.outside_snapshot();
    let outside_abs = sandbox.outside_abs();
    let outside = outside_abs.as_str();
    let tar = Craft::new()
        .entry("a", Kind::Symlink(outside))
        .entry("a/file", Kind::File(b"through the link"))
        .entry("rel", Kind::Symlink("../../../../../.."))
        .entry("rel/escape", Kind::File(b"relative climb"))
        .entry("a/.wh.passwd", Kind::File(b""))
        .finish();
    // Default: followed as if the root were `/`, so it stays inside.
    let report = sandbox.apply(&tar, &ApplyOptions::new()).unwrap();
    assert_eq!(report.whiteouts, 1);
    assert_eq!(sandbox.outside_snapshot(), before);
    let inside = sandbox.root.join(outside.trim_start_matches('/'));
    assert_eq!(
        std::fs::read(inside.join("file")).unwrap(),
        b"through the link"
    );
    assert_eq!(
        std::fs::read(sandbox.root.join("escape")).unwrap(),
        b"relative climb"
    );
    assert_eq!(
        std::fs::read_link(sandbox.root.join("a")).unwrap().to_str(),
        Some(outside)
    );

    // Strict mode refuses the entry.
    let strict = Sandbox::new();
    let before = strict.outside_snapshot();
    let result = strict.apply(
        &tar,
        &ApplyOptions::new().with_parent_symlinks(ParentSymlinks::Reject),
    );
    assert_unsafe(
        result,
        "a/file",
        |r| matches!(r, UnsafeReason::SymlinkParent { parent } if parent == "a"),
    );
    assert_eq!(strict.outside_snapshot(), before);
}

#[test]
fn symlink_loops_are_refused() {
    let sandbox = Sandbox::new();
    let tar = Craft::new()
        .entry("loop1", Kind::Symlink("loop2"))
        .entry("loop2", Kind::Symlink("loop1"))
        .entry("loop1/file", Kind::File(b"x"))
        .finish();
    assert_unsafe(
        sandbox.apply(&tar, &ApplyOptions::new()),
        "loop1/file",
        |r| *r == UnsafeReason::SymlinkLoop,
    );
}

#[test]
fn hard_links_cannot_reach_outside() {
    for target in [
        "../../outside/passwd",
        "/etc/passwd",
        "sub/../../outside/passwd",
    ] {
        let sandbox = Sandbox::new();
        let tar = Craft::new()
            .entry("stolen", Kind::HardLink(target))
            .finish();
        assert_unsafe(
            sandbox.apply(&tar, &ApplyOptions::new()),
            "stolen",
            |r| matches!(r, UnsafeReason::LinkTarget { target: t } if t == target),
        );
        assert!(!sandbox.root.join("stolen").exists());
    }

    // Through a symlinked parent the target is looked up inside the root, where it is missing.
    let sandbox = Sandbox::new();
    let outside = sandbox.outside_abs();
    let tar = Craft::new()
        .entry("hostdir", Kind::Symlink(&outside))
        .entry("stolen", Kind::HardLink("hostdir/passwd"))
        .finish();
    match sandbox.apply(&tar, &ApplyOptions::new()) {
        Err(ApplyError::Extract { entry, .. }) => assert_eq!(entry, "stolen"),
        other => panic!("expected the link to fail, got {other:?}"),
    }
    assert!(!sandbox.root.join("stolen").exists());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(sandbox.outside.join("passwd"))
            .unwrap()
            .nlink(),
        1
    );
}

#[test]
fn existing_symlink_is_replaced_not_written_through() {
    let sandbox = Sandbox::new();
    std::os::unix::fs::symlink(sandbox.outside.join("passwd"), sandbox.root.join("victim"))
        .unwrap();
    let tar = Craft::new()
        .entry("victim", Kind::File(b"layer content"))
        .finish();
    sandbox.apply(&tar, &ApplyOptions::new()).unwrap();
    assert_eq!(
        std::fs::read(sandbox.outside.join("passwd")).unwrap(),
        b"host secret\n"
    );
    assert_eq!(
        std::fs::read(sandbox.root.join("victim")).unwrap(),
        b"layer content"
    );
    assert!(!is_incomplete(&sandbox.root));
}

#[test]
fn truncated_archives_are_errors_and_leave_the_target_marked() {
    let full = Craft::new()
        .entry("first", Kind::File(b"complete"))
        .entry("second", Kind::File(&[b's'; 3000]))
        .finish();
    let second_data = 512 * 3; // first header + data block + second header

    // Cut inside the data of "second".
    let sandbox = Sandbox::new();
    match sandbox.apply(&full[..second_data + 1000], &ApplyOptions::new()) {
        Err(ApplyError::Truncated { entry }) => assert_eq!(entry, "second"),
        other => panic!("expected truncation in 'second', got {other:?}"),
    }
    assert!(is_incomplete(&sandbox.root));
    // A second attempt refuses to trust the half-applied directory.
    assert!(matches!(
        sandbox.apply(&full, &ApplyOptions::new()),
        Err(ApplyError::AlreadyIncomplete { .. })
    ));

    // Cut inside a header, and cut cleanly between entries (no end-of-archive block).
    for (cut, expect_missing_end) in [(512 + 512 + 100, false), (512 * 2, true)] {
        let sandbox = Sandbox::new();
        match sandbox.apply(&full[..cut], &ApplyOptions::new()) {
            Err(ApplyError::Archive { after, source, .. }) => {
                assert_eq!(after, "first");
                if expect_missing_end {
                    assert!(matches!(source, ArchiveError::MissingEnd), "{source:?}");
                } else {
                    assert!(matches!(source, ArchiveError::Truncated), "{source:?}");
                }
            }
            other => panic!("expected a bad-archive error at {cut}, got {other:?}"),
        }
        assert!(is_incomplete(&sandbox.root));
    }

    // A truncated gzip stream: the decompressor's error surfaces with the entry it hit.
    let mut gz =
        Compressor::new(Vec::new(), Compression::Gzip, &CompressOptions::default()).unwrap();
    std::io::Write::write_all(&mut gz, &full).unwrap();
    let gz = gz.finish().unwrap();
    let sandbox = Sandbox::new();
    let result = apply_layer(
        Decompressor::new(&gz[..gz.len() - 12]).unwrap(),
        &sandbox.root,
        &ApplyOptions::new(),
    );
    assert!(result.is_err(), "truncated gzip applied: {result:?}");
    assert!(is_incomplete(&sandbox.root));

    // A corrupted gzip trailer (CRC) is caught after the end-of-archive block.
    let mut bad_crc = gz.clone();
    let crc_at = bad_crc.len() - 8;
    bad_crc[crc_at] ^= 0xff;
    let sandbox = Sandbox::new();
    let result = apply_layer(
        Decompressor::new(&bad_crc[..]).unwrap(),
        &sandbox.root,
        &ApplyOptions::new(),
    );
    assert!(
        matches!(result, Err(ApplyError::Archive { .. })),
        "{result:?}"
    );
    assert!(is_incomplete(&sandbox.root));
}

#[test]
fn corrupt_header_checksum_names_the_previous_entry() {
    let mut tar = Craft::new()
        .entry("good", Kind::File(b"ok"))
        .entry("bad", Kind::File(b"x"))
        .finish();
    tar[1024 + 10] ^= 0x01; // inside the name of "bad", after the checksum was computed
    let sandbox = Sandbox::new();
    match sandbox.apply(&tar, &ApplyOptions::new()) {
        Err(error @ ApplyError::Archive { .. }) => {
            let ApplyError::Archive {
                ref after,
                ref source,
                ..
            } = error
            else {
                unreachable!()
            };
            assert_eq!(after, "good");
            assert!(
                matches!(source, ArchiveError::Checksum { .. }),
                "{source:?}"
            );
            assert!(error.to_string().contains("\"good\""), "{error}");
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
}

#[test]
fn reserved_marker_name_and_bad_whiteouts_are_refused() {
    let sandbox = Sandbox::new();
    let tar = Craft::new()
        .entry(".hoist-incomplete", Kind::File(b""))
        .finish();
    assert_unsafe(
        sandbox.apply(&tar, &ApplyOptions::new()),
        ".hoist-incomplete",
        |r| *r == UnsafeReason::ReservedName,
    );
    for name in ["sub/.wh..", "sub/.wh."] {
        let sandbox = Sandbox::new();
        let tar = Craft::new().entry(name, Kind::File(b"")).finish();
        assert_unsafe(sandbox.apply(&tar, &ApplyOptions::new()), name, |r| {
            *r == UnsafeReason::BadWhiteout
        });
        assert!(sandbox.root.join("sub/deeper").is_dir());
    }
}
