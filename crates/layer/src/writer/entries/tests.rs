//! [`write_entries`] against [`write_layer`] on the directory the entries describe, and the
//! map's replacement rules.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use super::*;
use crate::sys::{self, XattrTarget};
use crate::tarstream::read::TarReader;
use crate::write_layer;

/// Every entry of a tar stream: header and data.
fn read_tar(tar: &[u8]) -> Vec<(EntryHeader, Vec<u8>)> {
    let mut reader = TarReader::new(tar);
    let mut entries = Vec::new();
    while let Some(header) = reader.next_entry().expect("a valid tar stream") {
        let mut data = Vec::new();
        reader.data().read_to_end(&mut data).expect("entry data");
        entries.push((header, data));
    }
    entries
}

fn written(entries: &LayerEntries, options: &WriteOptions) -> (Vec<u8>, WriteSummary) {
    let mut tar = Vec::new();
    let summary = write_entries(entries, &mut tar, options).expect("entries written");
    (tar, summary)
}

fn dir(mode: u32, mtime: i64) -> LayerEntry {
    LayerEntry {
        mode,
        mtime,
        ..LayerEntry::new(EntryContent::Directory)
    }
}

fn bytes(data: &[u8]) -> LayerEntry {
    LayerEntry {
        mode: 0o644,
        ..LayerEntry::new(EntryContent::Bytes(data.to_vec()))
    }
}

fn set_mtime(path: &Path, secs: i64) {
    let time = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("set the time");
}

fn set_xattr(path: &Path, name: &[u8], value: &[u8]) {
    let dir = sys::open_dir(path.parent().expect("a parent")).expect("open the parent");
    let name_c = std::ffi::CString::new(path.file_name().expect("a name").as_bytes())
        .expect("no NUL in the name");
    sys::set_xattr(XattrTarget::At(dir.as_fd(), &name_c), name, value).expect("set an xattr");
}

/// A tree with a long name, a hard link pair, a symlink, xattrs, owners and setuid bits,
/// written on disk (for `write_layer`) and described as entries (for `write_entries`): both
/// must give the same bytes.
#[test]
fn entries_give_the_bytes_write_layer_gives_for_the_same_tree() {
    let root = tempfile::tempdir().expect("tempdir");
    let sources = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let long_dir = "d".repeat(90);
    let long_file = format!("{long_dir}/{}", "f".repeat(60));
    let mut entries = LayerEntries::new();

    fs::create_dir(r.join("bin")).expect("mkdir");
    fs::create_dir_all(r.join(&long_dir)).expect("mkdir");
    fs::write(r.join("bin/tool"), b"#!/bin/sh\necho tool\n").expect("write");
    fs::write(r.join(&long_file), vec![7u8; 70_000]).expect("write");
    fs::write(r.join("bin/tool.txt"), b"notes").expect("write");
    fs::hard_link(r.join("bin/tool"), r.join("bin/tool-link")).expect("link");
    fs::hard_link(r.join("bin/tool"), r.join(format!("{long_dir}/tool-link"))).expect("link");
    symlink("../bin/tool", r.join("bin/sym")).expect("symlink");
    fs::set_permissions(r.join("bin/tool"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    fs::set_permissions(r.join("bin/tool.txt"), fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::set_permissions(r.join(&long_file), fs::Permissions::from_mode(0o640)).expect("chmod");
    fs::set_permissions(r.join("bin"), fs::Permissions::from_mode(0o750)).expect("chmod");
    fs::set_permissions(r.join(&long_dir), fs::Permissions::from_mode(0o755)).expect("chmod");
    let privileged = sys::is_root();
    if privileged {
        std::os::unix::fs::lchown(r.join("bin/tool.txt"), Some(1000), Some(3_000_000))
            .expect("chown");
        std::os::unix::fs::lchown(r.join("bin/sym"), Some(5), Some(6)).expect("chown");
    }
    set_xattr(&r.join("bin/tool.txt"), b"user.b", b"2");
    set_xattr(&r.join("bin/tool.txt"), b"user.a", b"1");
    for (rel, time) in [
        ("bin/tool", 1_000),
        ("bin/tool.txt", 2_000),
        ("bin/sym", 3_000),
        (long_file.as_str(), 4_000),
        ("bin", 5_000),
        (long_dir.as_str(), 6_000),
    ] {
        set_mtime(&r.join(rel), time);
    }

    // The description: file data comes from copies elsewhere (a COPY reads its sources in place).
    let source = |name: &str, data: &[u8]| -> PathBuf {
        let path = sources.path().join(name);
        fs::write(&path, data).expect("write a source");
        path
    };
    let (uid, gid) = if privileged {
        (1000, 3_000_000)
    } else {
        (0, 0)
    };
    let owner = |entry: LayerEntry, uid: u32, gid: u32| LayerEntry { uid, gid, ..entry };
    let me = (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    let tool = LayerEntry {
        mode: 0o4755,
        mtime: 1_000,
        hard_link_key: Some((1, 1)),
        ..LayerEntry::new(EntryContent::File {
            source: source("tool", b"#!/bin/sh\necho tool\n"),
        })
    };
    // Inserted out of order: the map sorts.
    let inserts = [
        (
            format!("{long_dir}/tool-link"),
            owner(tool.clone(), me.0, me.1),
        ),
        (
            "bin/tool.txt".to_owned(),
            LayerEntry {
                mode: 0o600,
                mtime: 2_000,
                xattrs: vec![
                    (b"user.b".to_vec(), b"2".to_vec()),
                    (b"user.a".to_vec(), b"1".to_vec()),
                ],
                ..owner(bytes(b"notes"), uid, gid)
            },
        ),
        ("bin".to_owned(), owner(dir(0o750, 5_000), me.0, me.1)),
        ("bin/tool".to_owned(), owner(tool.clone(), me.0, me.1)),
        ("bin/tool-link".to_owned(), owner(tool, me.0, me.1)),
        (
            "bin/sym".to_owned(),
            LayerEntry {
                mode: 0o777,
                mtime: 3_000,
                ..owner(
                    LayerEntry::new(EntryContent::Symlink {
                        target: PathBuf::from("../bin/tool"),
                    }),
                    if privileged { 5 } else { me.0 },
                    if privileged { 6 } else { me.1 },
                )
            },
        ),
        (long_dir.clone(), owner(dir(0o755, 6_000), me.0, me.1)),
        (
            long_file.clone(),
            LayerEntry {
                mode: 0o640,
                mtime: 4_000,
                ..owner(
                    LayerEntry::new(EntryContent::File {
                        source: source("long", &vec![7u8; 70_000]),
                    }),
                    me.0,
                    me.1,
                )
            },
        ),
    ];
    for (path, entry) in inserts {
        entries.insert(&path, entry).expect("insert");
    }
    let mut from_dir = Vec::new();
    let dir_summary = write_layer(r, &mut from_dir, &WriteOptions::new()).expect("write_layer");
    let (from_entries, summary) = written(&entries, &WriteOptions::new());
    assert_eq!(summary, dir_summary);
    let read = read_tar(&from_entries);
    assert_eq!(read, read_tar(&from_dir));
    assert_eq!(from_entries, from_dir, "same headers, same bytes");

    // What the shared bytes hold: tar order, one copy of the linked file, PAX where needed.
    let paths: Vec<&[u8]> = read.iter().map(|(h, _)| h.path.as_slice()).collect();
    let long_dir_slash = format!("{long_dir}/");
    assert_eq!(
        &paths[..6],
        [
            &b"bin/"[..],
            b"bin/sym",
            b"bin/tool",
            b"bin/tool-link",
            b"bin/tool.txt",
            long_dir_slash.as_bytes(),
        ]
    );
    let link = &read[3].0;
    assert_eq!(
        (link.kind, link.link.as_slice()),
        (EntryKind::HardLink, &b"bin/tool"[..])
    );
    assert_eq!(read[2].1, b"#!/bin/sh\necho tool\n");
    assert_eq!(read[2].0.mode, 0o4755);
    let notes = &read[4].0;
    assert_eq!(
        notes.xattrs,
        vec![
            (b"user.a".to_vec(), b"1".to_vec()),
            (b"user.b".to_vec(), b"2".to_vec())
        ]
    );
    let long = read
        .iter()
        .find(|(h, _)| h.path == long_file.as_bytes())
        .expect("the long name is read back whole (PAX path)");
    assert_eq!(long.1.len(), 70_000);
}

#[test]
fn hard_links_point_at_the_first_path_in_tar_order_with_long_names_in_pax() {
    let sources = tempfile::tempdir().expect("tempdir");
    let data = sources.path().join("data");
    fs::write(&data, b"shared").expect("write");
    let long = format!("z/{}", "n".repeat(150));
    let linked = LayerEntry {
        mode: 0o644,
        hard_link_key: Some((7, 42)),
        ..LayerEntry::new(EntryContent::File { source: data })
    };
    let mut entries = LayerEntries::new();
    // Inserted last-first: the first in tar order gets the data whatever the insertion order.
    entries.insert("z", dir(0o755, 0)).expect("insert");
    entries.insert(&long, linked.clone()).expect("insert");
    entries.insert("a", linked).expect("insert");
    entries.insert("b", bytes(b"other")).expect("insert");
    let (tar, summary) = written(&entries, &WriteOptions::new());
    assert_eq!(summary.entries, 4);
    assert_eq!(summary.tar_size, tar.len() as u64);
    let read = read_tar(&tar);
    assert_eq!(read[0].0.path, b"a");
    assert_eq!(
        (read[0].0.kind, read[0].1.as_slice()),
        (EntryKind::Regular, &b"shared"[..])
    );
    let last = &read[3].0;
    assert_eq!(last.path, long.as_bytes());
    assert_eq!(
        (last.kind, last.link.as_slice(), last.size),
        (EntryKind::HardLink, &b"a"[..], 0)
    );

    // A hard link whose target name is long needs a PAX linkpath.
    let mut entries = LayerEntries::new();
    let target = "t".repeat(120);
    let file = LayerEntry {
        hard_link_key: Some((1, 2)),
        ..bytes(b"x")
    };
    entries.insert(&target, file.clone()).expect("insert");
    entries.insert("zz", file).expect("insert");
    let read = read_tar(&written(&entries, &WriteOptions::new()).0);
    assert_eq!(read[1].0.link, target.as_bytes());
}

#[test]
fn tar_order_is_depth_first_by_name_bytes() {
    let mut entries = LayerEntries::new();
    for path in [
        "a.txt", "a/b", "a", "a-b", "/b//c/./", "b", "a/b/c", "\u{e9}", "A",
    ] {
        let entry = if path.ends_with("/") || path == "a" || path == "b" || path == "a/b" {
            dir(0o755, 0)
        } else {
            bytes(b"")
        };
        entries.insert(path, entry).expect("insert");
    }
    let order: Vec<&OsStr> = entries.iter().map(|(p, _)| p.as_os_str()).collect();
    assert_eq!(
        order,
        [
            "A", "a", "a/b", "a/b/c", "a-b", "a.txt", "b", "b/c", "\u{e9}"
        ]
    );
}

#[test]
fn a_file_replacing_a_directory_removes_its_contents_and_nothing_goes_below_a_file() {
    let mut entries = LayerEntries::new();
    entries.insert("d", dir(0o700, 1)).expect("insert");
    entries.insert("d/x", bytes(b"x")).expect("insert");
    entries.insert("d/sub", dir(0o755, 1)).expect("insert");
    entries.insert("d/sub/y", bytes(b"y")).expect("insert");
    entries.insert("d.keep", bytes(b"k")).expect("insert");
    entries.insert("dd", bytes(b"k")).expect("insert");

    // A directory over a directory keeps what is below.
    let replaced = entries.insert("d", dir(0o755, 2)).expect("insert");
    assert_eq!(replaced, Some(dir(0o700, 1)));
    assert!(entries.get("d/sub/y").is_some());

    // A file over a directory: its contents go, its neighbours stay.
    let replaced = entries.insert("/d", bytes(b"now a file")).expect("insert");
    assert_eq!(replaced, Some(dir(0o755, 2)));
    let paths: Vec<&OsStr> = entries.iter().map(|(p, _)| p.as_os_str()).collect();
    assert_eq!(paths, ["d", "d.keep", "dd"]);

    // Nothing below a file; the error names the file.
    match entries.insert("d/sub/z", bytes(b"z")) {
        Err(EntriesError::NotADirectory { path, parent }) => {
            assert_eq!(path, Path::new("d/sub/z"));
            assert_eq!(parent, Path::new("d"));
        }
        other => panic!("expected NotADirectory, got {other:?}"),
    }
    // A file over a file: the later one wins, once.
    entries.insert("dd", bytes(b"second")).expect("insert");
    let read = read_tar(&written(&entries, &WriteOptions::new()).0);
    let data: Vec<(&[u8], &[u8])> = read
        .iter()
        .map(|(h, d)| (h.path.as_slice(), d.as_slice()))
        .collect();
    assert_eq!(
        data,
        [
            (&b"d"[..], &b"now a file"[..]),
            (b"d.keep", b"k"),
            (b"dd", b"second")
        ]
    );

    for bad in ["", "/", ".", "a/../b"] {
        assert!(
            matches!(
                entries.insert(bad, bytes(b"")),
                Err(EntriesError::InvalidPath { .. })
            ),
            "{bad:?} is refused"
        );
    }
}

#[test]
fn sources_that_are_no_longer_regular_files_are_errors_not_hangs() {
    let sources = tempfile::tempdir().expect("tempdir");
    let s = sources.path();
    fs::write(s.join("real"), b"data").expect("write");
    symlink("real", s.join("link")).expect("symlink");
    fs::create_dir(s.join("dir")).expect("mkdir");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        s.join("fifo"),
        rustix::fs::Mode::from(0o644),
    )
    .expect("mkfifo");
    for (name, expect_open_error) in [
        ("link", true),
        ("dir", false),
        ("fifo", false),
        ("gone", true),
    ] {
        let mut entries = LayerEntries::new();
        let entry = LayerEntry::new(EntryContent::File {
            source: s.join(name),
        });
        entries.insert("f", entry).expect("insert");
        let error = write_entries(&entries, Vec::new(), &WriteOptions::new())
            .expect_err("a source that is not a regular file fails");
        match error {
            WriteError::Open { path, .. } if expect_open_error => assert_eq!(path, s.join(name)),
            WriteError::NotARegularFile { path } if !expect_open_error => {
                assert_eq!(path, s.join(name));
            }
            other => panic!("{name}: unexpected {other:?}"),
        }
    }
}

#[test]
fn options_clamp_times_and_exclude_subtrees() {
    let mut entries = LayerEntries::new();
    entries.insert("keep", dir(0o755, 9_000)).expect("insert");
    entries.insert("keep/f", bytes(b"f")).expect("insert");
    entries.insert("skip", dir(0o755, 0)).expect("insert");
    entries.insert("skip/f", bytes(b"f")).expect("insert");
    entries
        .insert("skipped", bytes(b"not below skip"))
        .expect("insert");
    let mut old = bytes(b"old");
    old.mtime = -5;
    entries.insert("old", old).expect("insert");
    let options = WriteOptions::new()
        .with_source_date_epoch(100)
        .with_exclude("/skip");
    let read = read_tar(&written(&entries, &options).0);
    let summary: Vec<(&[u8], i64)> = read
        .iter()
        .map(|(h, _)| (h.path.as_slice(), h.mtime))
        .collect();
    assert_eq!(
        summary,
        [
            (&b"keep/"[..], 100),
            (b"keep/f", 0),
            (b"old", 0),
            (b"skipped", 0)
        ]
    );
}

/// A source with fewer bytes than its size said when it was opened (a file truncated meanwhile; a
/// sysfs attribute, which always says 4096, is one without a race) fails the write instead of
/// producing a tar whose entry is shorter than its header.
#[test]
fn a_source_shorter_than_its_size_is_an_error_not_a_corrupt_tar() {
    let source = PathBuf::from("/sys/devices/system/cpu/online");
    let size = fs::metadata(&source).expect("sysfs is mounted").len();
    let content = fs::read(&source).expect("readable");
    assert!(content.len() as u64 > 0 && (content.len() as u64) < size);
    let mut entries = LayerEntries::new();
    entries
        .insert(
            "online",
            LayerEntry::new(EntryContent::File {
                source: source.clone(),
            }),
        )
        .expect("insert");
    match write_entries(&entries, Vec::new(), &WriteOptions::new()) {
        Err(WriteError::FileChanged {
            path,
            expected,
            actual,
        }) => {
            assert_eq!(path, source);
            assert_eq!((expected, actual), (size, content.len() as u64));
        }
        other => panic!("expected FileChanged, got {other:?}"),
    }
}

/// `read_xattrs` gives what an entry copied from a host file carries: its own attributes (a
/// symlink's, not its target's), without overlayfs's. Needs root for `trusted.*`.
#[test]
fn read_xattrs_gives_a_files_own_attributes_without_overlayfs_ones() {
    let root = tempfile::tempdir().expect("tempdir");
    let file = root.path().join("f");
    fs::write(&file, "data").expect("write");
    set_xattr(&file, b"user.b", b"2");
    set_xattr(&file, b"user.a", b"1");
    set_xattr(&file, b"trusted.overlay.origin", b"lower");
    set_xattr(&file, b"user.overlay.opaque", b"y");
    let link = root.path().join("l");
    symlink("f", &link).expect("symlink");
    set_xattr(&link, b"trusted.link", b"own");

    assert_eq!(
        read_xattrs(&file).expect("read"),
        [
            (b"user.a".to_vec(), b"1".to_vec()),
            (b"user.b".to_vec(), b"2".to_vec())
        ]
    );
    assert_eq!(
        read_xattrs(&link).expect("read"),
        [(b"trusted.link".to_vec(), b"own".to_vec())]
    );
    let missing = read_xattrs(&root.path().join("missing")).expect_err("no such file");
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    let nul = read_xattrs(Path::new(OsStr::from_bytes(b"a\0b"))).expect_err("NUL");
    assert_eq!(nul.kind(), std::io::ErrorKind::InvalidInput);
}
