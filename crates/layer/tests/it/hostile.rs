//! Hostile and broken archives: refused with an error naming the entry, nothing written
//! outside the target, and the target marked incomplete.

use std::path::Path;

use hoist_layer::{
    ApplyError, ApplyOptions, ArchiveError, CompressOptions, Compression, Compressor, Decompressor,
    MAX_PATH_LEN, ParentSymlinks, UnsafeReason, apply_layer, is_incomplete,
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

/// Peak resident memory of this process since the last [`reset_peak_rss`], in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Resets the peak (`VmHWM`) to the current resident size (`clear_refs` value 5, Linux 4.0+).
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

fn gzip(data: impl FnOnce(&mut dyn std::io::Write)) -> Vec<u8> {
    let mut gz =
        Compressor::new(Vec::new(), Compression::Gzip, &CompressOptions::default()).unwrap();
    data(&mut gz);
    gz.finish().unwrap()
}

#[test]
fn a_directory_replaced_by_a_symlink_in_the_same_layer_is_not_written_through() {
    let sandbox = Sandbox::new();
    let before = sandbox.outside_snapshot();
    let outside = sandbox.outside_abs();
    // `a` is a directory (and is cached as the parent of `a/first`), then a symlink to the
    // outside directory, then the parent of `a/x`: the cached descriptor must not be reused,
    // and the symlink is resolved inside the root.
    let tar = Craft::new()
        .entry("a/", Kind::Dir)
        .entry("a/first", Kind::File(b"in the directory"))
        .entry("a", Kind::Symlink(&outside))
        .entry("a/x", Kind::File(b"through the swapped link"))
        .entry("b/", Kind::Dir)
        .entry("b/c/", Kind::Dir)
        .entry("b", Kind::Symlink("../../../outside"))
        .entry("b/c/passwd", Kind::File(b"climbed"))
        .finish();
    sandbox.apply(&tar, &ApplyOptions::new()).unwrap();
    assert_eq!(sandbox.outside_snapshot(), before);
    let inside = sandbox.root.join(outside.trim_start_matches('/'));
    assert_eq!(
        std::fs::read(inside.join("x")).unwrap(),
        b"through the swapped link"
    );
    assert_eq!(
        std::fs::read(sandbox.root.join("outside/c/passwd")).unwrap(),
        b"climbed"
    );
    assert!(
        !sandbox
            .root
            .join(outside.trim_start_matches('/'))
            .join("first")
            .exists()
    );

    let strict = Sandbox::new();
    let before = strict.outside_snapshot();
    assert_unsafe(
        strict.apply(
            &tar,
            &ApplyOptions::new().with_parent_symlinks(ParentSymlinks::Reject),
        ),
        "a/x",
        |r| matches!(r, UnsafeReason::SymlinkParent { parent } if parent == "a"),
    );
    assert_eq!(strict.outside_snapshot(), before);
}

/// Another process swaps directories and nodes for symlinks to the outside while a layer is
/// being applied. Whatever interleaving happens (the apply may fail), nothing outside changes.
#[test]
fn concurrent_swaps_of_directories_and_nodes_for_symlinks_never_lead_outside() {
    use std::sync::atomic::{AtomicBool, Ordering};

    let names: Vec<String> = (0..40).map(|i| format!("d/f{i}")).collect();
    let nodes: Vec<String> = (0..40).map(|i| format!("n{i}")).collect();
    let mut craft = Craft::new().entry("d/", Kind::Dir);
    for (file, node) in names.iter().zip(&nodes) {
        craft = craft
            .entry(file, Kind::File(b"layer data"))
            .entry(node, Kind::Fifo);
    }
    let tar = craft.finish();
    let (mut failures, mut successes) = (0, 0);
    for _ in 0..60 {
        let sandbox = Sandbox::new();
        let before = sandbox.outside_snapshot();
        let passwd = sandbox.outside.join("passwd");
        let stop = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            scope.spawn(|| {
                let d = sandbox.root.join("d");
                let moved = sandbox.root.join("d.moved");
                while !stop.load(Ordering::Relaxed) {
                    // The directory becomes a symlink to the outside, and back.
                    if std::fs::rename(&d, &moved).is_ok() {
                        let _ = std::os::unix::fs::symlink(&sandbox.outside, &d);
                        std::thread::yield_now();
                        let _ = std::fs::remove_file(&d);
                        let _ = std::fs::rename(&moved, &d);
                    }
                    // A freshly made fifo becomes a symlink to an outside file before its
                    // mode is set.
                    for node in &nodes {
                        let path = sandbox.root.join(node);
                        if std::fs::symlink_metadata(&path)
                            .is_ok_and(|m| !m.file_type().is_symlink())
                            && std::fs::remove_file(&path).is_ok()
                        {
                            let _ = std::os::unix::fs::symlink(&passwd, &path);
                        }
                    }
                }
            });
            let result = sandbox.apply(&tar, &ApplyOptions::new());
            stop.store(true, Ordering::Relaxed);
            result
        });
        match result {
            Ok(_) => successes += 1,
            Err(_) => failures += 1,
        }
        assert_eq!(
            sandbox.outside_snapshot(),
            before,
            "the swap reached outside"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&passwd).unwrap().permissions().mode() & 0o777,
            0o644,
            "the mode of a fifo entry was applied through a swapped symlink"
        );
    }
    // The swaps must have hit the apply (here about 59 rounds of 60 fail), or the test proves
    // nothing.
    assert!(
        failures > 0,
        "the swapping thread never interfered ({successes} clean rounds)"
    );
}

#[test]
fn device_nodes_are_made_only_when_privileged_and_never_opened() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    let sandbox = Sandbox::new();
    let before = sandbox.outside_snapshot();
    // An existing symlink to the outside where a device goes, and an existing fifo where a
    // regular file goes: opening the fifo for writing would block forever.
    std::os::unix::fs::symlink(sandbox.outside.join("passwd"), sandbox.root.join("null")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        sandbox.root.join("victim"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    // Major 240 is reserved for local/experimental use: no driver, so opening the node fails
    // with ENXIO; creating it works.
    let tar = Craft::new()
        .entry("null", Kind::CharDevice(1, 3))
        .entry("disk", Kind::BlockDevice(240, 7))
        .entry("nodriver", Kind::CharDevice(240, 1))
        .entry("victim", Kind::File(b"plain data"))
        .finish();
    let (done, finished) = std::sync::mpsc::channel();
    let root = sandbox.root.clone();
    std::thread::spawn(move || {
        let _ = done.send(apply_layer(&tar[..], &root, &ApplyOptions::new()));
    });
    let report = finished
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("apply blocked: it opened a node")
        .unwrap();
    assert_eq!(sandbox.outside_snapshot(), before);
    assert_eq!(
        std::fs::read(sandbox.root.join("victim")).unwrap(),
        b"plain data"
    );
    if is_root() {
        assert_eq!(report.skipped, 0);
        let null = std::fs::symlink_metadata(sandbox.root.join("null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
        let disk = std::fs::symlink_metadata(sandbox.root.join("disk")).unwrap();
        assert!(disk.file_type().is_block_device());
        assert_eq!(disk.rdev(), rustix::fs::makedev(240, 7));
        assert_eq!(disk.mode() & 0o777, 0o666);
    } else {
        // Unprivileged: devices are skipped, and the symlink that was there stays.
        assert_eq!(report.skipped, 3);
        assert!(!sandbox.root.join("disk").exists());
    }
}

#[test]
fn huge_announced_sizes_are_bounded_by_the_stream() {
    use std::os::unix::fs::MetadataExt;
    const TERABYTE: u64 = 1 << 40;

    // A GNU header (base-256 size field) and a PAX `size` record announcing 1 TiB, with 4 kB
    // of data behind them: the file gets what the stream holds, then the apply fails.
    for tar in [
        Craft::new()
            .raw(b"huge", tar::EntryType::Regular, TERABYTE, &[7u8; 4096])
            .unfinished(),
        Craft::new()
            .pax(&[("size", TERABYTE.to_string().as_bytes())])
            .raw(b"huge", tar::EntryType::Regular, 0, &[7u8; 4096])
            .unfinished(),
    ] {
        let sandbox = Sandbox::new();
        let before = sandbox.outside_snapshot();
        reset_peak_rss();
        let base = peak_rss_kib();
        match sandbox.apply(&tar, &ApplyOptions::new()) {
            Err(ApplyError::Truncated { entry }) => assert_eq!(entry, "huge"),
            other => panic!("expected truncation, got {other:?}"),
        }
        assert!(
            peak_rss_kib() - base < 64 * 1024,
            "memory grew with the size"
        );
        let meta = std::fs::metadata(sandbox.root.join("huge")).unwrap();
        assert_eq!(meta.len(), 4096);
        assert!(meta.blocks() * 512 < 1024 * 1024);
        assert_eq!(sandbox.outside_snapshot(), before);
        assert!(is_incomplete(&sandbox.root));
    }

    // GNU sparse entries (type 'S') are refused by type; old GNU sparse maps are never
    // expanded.
    let sandbox = Sandbox::new();
    let tar = Craft::new()
        .raw(b"sparse", tar::EntryType::GNUSparse, 512, &[0u8; 512])
        .finish();
    match sandbox.apply(&tar, &ApplyOptions::new()) {
        Err(ApplyError::Unsupported { entry, .. }) => assert_eq!(entry, "sparse"),
        other => panic!("expected an unsupported-type error, got {other:?}"),
    }
    // PAX sparse format 1.0 (a regular entry whose data starts with the map): the map is not
    // interpreted, the entry is stored as the bytes it holds, whatever `realsize` says.
    let sandbox = Sandbox::new();
    let tar = Craft::new()
        .pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"sparse"),
            ("GNU.sparse.realsize", TERABYTE.to_string().as_bytes()),
        ])
        .raw(
            b"GNUSparseFile.0/sparse",
            tar::EntryType::Regular,
            512,
            b"1\n0\n512\n",
        )
        .finish();
    sandbox.apply(&tar, &ApplyOptions::new()).unwrap();
    let stored = sandbox.root.join("GNUSparseFile.0/sparse");
    assert_eq!(std::fs::metadata(&stored).unwrap().len(), 512);
}

#[test]
fn names_that_are_not_utf8_are_kept_byte_for_byte() {
    use std::os::unix::ffi::OsStrExt;

    let sandbox = Sandbox::new();
    let name: &[u8] = b"caf\xe9/\xff\xfe-latin1";
    let tar = Craft::new()
        .entry_bytes(b"caf\xe9/", Kind::Dir)
        .entry_bytes(name, Kind::File(b"bytes"))
        .finish();
    sandbox.apply(&tar, &ApplyOptions::new()).unwrap();
    let path = sandbox.root.join(std::ffi::OsStr::from_bytes(name));
    assert_eq!(std::fs::read(path).unwrap(), b"bytes");

    // An error about such an entry names it (lossily) rather than panicking.
    let sandbox = Sandbox::new();
    let tar = Craft::new()
        .entry_bytes(b"\xff/../../x", Kind::File(b"escape"))
        .finish();
    assert_unsafe(
        sandbox.apply(&tar, &ApplyOptions::new()),
        "\u{fffd}/../../x",
        |r| *r == UnsafeReason::ParentComponent,
    );
}

#[test]
fn paths_past_path_max_are_refused_and_deep_trees_are_removed_without_recursion() {
    // 10,000 levels (20 kB, five times PATH_MAX) in a PAX path: refused by length, before
    // anything is created (Docker's whole-path system calls fail on it too).
    let deep = format!("{}file", "a/".repeat(10_000));
    let tar = Craft::new()
        .pax(&[("path", deep.as_bytes())])
        .raw(b"placeholder", tar::EntryType::Regular, 4, b"deep")
        .finish();
    let sandbox = Sandbox::new();
    let before = sandbox.outside_snapshot();
    assert_unsafe(sandbox.apply(&tar, &ApplyOptions::new()), &deep, |r| {
        *r == UnsafeReason::PathTooLong { len: 20_004 }
    });
    assert!(!sandbox.root.join("a").exists());
    assert_eq!(sandbox.outside_snapshot(), before);

    // A hard link to such a path is refused the same way.
    let tar = Craft::new()
        .pax(&[("linkpath", deep.as_bytes())])
        .raw(b"link", tar::EntryType::Link, 0, b"")
        .finish();
    let sandbox = Sandbox::new();
    assert_unsafe(sandbox.apply(&tar, &ApplyOptions::new()), "link", |r| {
        matches!(r, UnsafeReason::LinkTarget { .. })
    });

    // Just under the limit applies (16 names of 254 bytes).
    let ok = format!("{}f", format!("{}/", "x".repeat(254)).repeat(16));
    assert!(ok.len() <= MAX_PATH_LEN);
    let tar = Craft::new()
        .pax(&[("path", ok.as_bytes())])
        .raw(b"placeholder", tar::EntryType::Regular, 2, b"ok")
        .finish();
    let sandbox = Sandbox::new();
    sandbox.apply(&tar, &ApplyOptions::new()).unwrap();

    // A lower layer (say a RUN step) can still leave a tree thousands of levels deep; a
    // whiteout of it, applied on a thread with a small stack, removes it without recursing per
    // level (the recursive version overflowed at a few hundred levels here).
    let sandbox = Sandbox::new();
    let mut dir = rustix::fs::open(
        &sandbox.root,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    for _ in 0..2_000 {
        rustix::fs::mkdirat(&dir, "a", rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
        let file = rustix::fs::openat(
            &dir,
            "f",
            rustix::fs::OFlags::CREATE | rustix::fs::OFlags::WRONLY,
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .unwrap();
        drop(file);
        dir = rustix::fs::openat(
            &dir,
            "a",
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
    }
    drop(dir);
    let root = sandbox.root.clone();
    let whiteout = Craft::new().entry(".wh.a", Kind::File(b"")).finish();
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || apply_layer(&whiteout[..], &root, &ApplyOptions::new()))
        .unwrap()
        .join()
        .expect("removing a deep tree must not overflow the stack")
        .unwrap();
    assert!(!sandbox.root.join("a").exists());
    assert!(sandbox.root.join("f").exists());
}

/// A gzip of `entries` identical directory headers (`a/`), then the end-of-archive block.
fn repeated_directory_bomb(entries: usize) -> Vec<u8> {
    let one = Craft::new().entry("a/", Kind::Dir).unfinished();
    gzip(|w| {
        for _ in 0..entries {
            w.write_all(&one).unwrap();
        }
        w.write_all(&[0u8; 1024]).unwrap();
    })
}

#[test]
fn decompression_bombs_stay_in_bounded_memory_and_can_be_capped() {
    use std::os::unix::fs::MetadataExt;
    const MIB: u64 = 1024 * 1024;

    // 1. 150 MiB of one repeated directory header (300,000 entries) from 1 MB of gzip.
    //    Every entry used to be remembered for its directory times: memory grew with the
    //    stream. Now one record per directory.
    let bomb = repeated_directory_bomb(300_000);
    assert!(bomb.len() < 4 * MIB as usize, "{}", bomb.len());
    let sandbox = Sandbox::new();
    reset_peak_rss();
    let base = peak_rss_kib();
    let report = apply_layer(
        Decompressor::new(&bomb[..]).unwrap(),
        &sandbox.root,
        &ApplyOptions::new(),
    )
    .unwrap();
    let grown = peak_rss_kib().saturating_sub(base);
    assert_eq!(report.entries, 300_000);
    assert!(grown < 8 * 1024, "memory grew by {grown} KiB");

    // 2. 256 MiB of zeros after the end-of-archive block (read to check the gzip trailer):
    //    streamed through a fixed buffer.
    let files = Craft::new().entry("small", Kind::File(b"x")).finish();
    let zeros = vec![0u8; MIB as usize];
    let bomb = gzip(|w| {
        w.write_all(&files).unwrap();
        for _ in 0..256 {
            w.write_all(&zeros).unwrap();
        }
    });
    assert!(bomb.len() < 2 * MIB as usize, "{}", bomb.len());
    let sandbox = Sandbox::new();
    reset_peak_rss();
    let base = peak_rss_kib();
    apply_layer(
        Decompressor::new(&bomb[..]).unwrap(),
        &sandbox.root,
        &ApplyOptions::new(),
    )
    .unwrap();
    let grown = peak_rss_kib().saturating_sub(base);
    assert!(grown < 8 * 1024, "memory grew by {grown} KiB");

    // 3. One file of 256 MiB of zeros: without a limit it would take 256 MiB of disk; with
    //    `with_max_size` the apply stops at the limit with a clear error.
    let mut header = tar::Header::new_gnu();
    header.set_path("zeros").unwrap();
    header.set_size(256 * MIB);
    header.set_mode(0o644);
    header.set_cksum();
    let bomb = gzip(|w| {
        w.write_all(header.as_bytes()).unwrap();
        for _ in 0..256 {
            w.write_all(&zeros).unwrap();
        }
        w.write_all(&[0u8; 1024]).unwrap();
    });
    let sandbox = Sandbox::new();
    let before = sandbox.outside_snapshot();
    reset_peak_rss();
    let base = peak_rss_kib();
    let error = apply_layer(
        Decompressor::new(&bomb[..]).unwrap(),
        &sandbox.root,
        &ApplyOptions::new().with_max_size(32 * MIB),
    )
    .unwrap_err();
    assert!(
        matches!(&error, ApplyError::TooLarge { limit, entry } if *limit == 32 * MIB && entry == "zeros"),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("larger than the limit of 33554432 bytes"),
        "{error}"
    );
    let written = std::fs::metadata(sandbox.root.join("zeros")).unwrap();
    assert!(
        written.blocks() * 512 <= 32 * MIB,
        "{} blocks",
        written.blocks()
    );
    assert!(peak_rss_kib().saturating_sub(base) < 8 * 1024);
    assert!(is_incomplete(&sandbox.root));
    assert_eq!(sandbox.outside_snapshot(), before);

    // A stream ending exactly at the limit is accepted.
    let exact = Craft::new().entry("f", Kind::File(b"data")).finish();
    let sandbox = Sandbox::new();
    sandbox
        .apply(
            &exact,
            &ApplyOptions::new().with_max_size(exact.len() as u64),
        )
        .unwrap();
    let sandbox = Sandbox::new();
    assert!(matches!(
        sandbox.apply(
            &exact,
            &ApplyOptions::new().with_max_size(exact.len() as u64 - 1)
        ),
        Err(ApplyError::TooLarge { .. })
    ));
}
