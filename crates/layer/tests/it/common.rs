//! Fixture trees built on the real file system, and a tree snapshot for comparing them.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use hoist_layer::{Digest, WriteOptions, write_layer};
use rustix::fs::{AtFlags, Mode, Timespec, Timestamps};

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub(crate) fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hoist-layer-test-")
        .tempdir()
        .expect("create temp dir")
}

fn path(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

fn cpath(root: &Path, rel: &[u8]) -> CString {
    CString::new(path(root, rel).into_os_string().into_vec()).expect("no NUL in test paths")
}

use std::os::unix::ffi::OsStringExt;

pub(crate) fn mkdir(root: &Path, rel: &str, mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub(crate) fn write_file(root: &Path, rel: impl AsRef<[u8]>, contents: &[u8], mode: u32) {
    let p = path(root, rel.as_ref());
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, contents).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub(crate) fn symlink(root: &Path, rel: &str, target: &str) {
    std::os::unix::fs::symlink(target, root.join(rel)).unwrap();
}

pub(crate) fn hardlink(root: &Path, existing: &str, new: &str) {
    rustix::fs::linkat(
        rustix::fs::CWD,
        root.join(existing),
        rustix::fs::CWD,
        root.join(new),
        AtFlags::empty(),
    )
    .unwrap();
}

pub(crate) fn mknod(
    root: &Path,
    rel: &str,
    kind: rustix::fs::FileType,
    mode: u32,
    major: u32,
    minor: u32,
) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join(rel),
        kind,
        Mode::from_raw_mode(mode),
        rustix::fs::makedev(major, minor),
    )
    .unwrap();
    // mknod applies the umask; set the exact mode.
    if kind != rustix::fs::FileType::Symlink {
        std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

pub(crate) fn set_xattr(root: &Path, rel: &str, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(root.join(rel), name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

pub(crate) fn chown(root: &Path, rel: &str, uid: u32, gid: u32) {
    rustix::fs::chownat(
        rustix::fs::CWD,
        root.join(rel),
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// Sets atime and mtime of `rel` (not following symlinks).
pub(crate) fn set_mtime(root: &Path, rel: impl AsRef<[u8]>, secs: i64) {
    let time = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        cpath(root, rel.as_ref()).as_c_str(),
        &Timestamps {
            last_access: time,
            last_modification: time,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// Sets every entry's mtime under `root` to `secs`, children before parents.
pub(crate) fn set_all_mtimes(root: &Path, secs: i64) {
    let mut entries = list(root);
    entries.reverse();
    for rel in entries {
        set_mtime(root, rel.as_bytes(), secs);
    }
}

/// Relative paths of every entry under `root` (not `root` itself), sorted, parents first.
pub(crate) fn list(root: &Path) -> Vec<std::ffi::OsString> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<std::ffi::OsString>) {
        let mut names: Vec<_> = std::fs::read_dir(root.join(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let child = rel.join(&name);
            out.push(child.clone().into_os_string());
            if std::fs::symlink_metadata(root.join(&child))
                .unwrap()
                .is_dir()
            {
                walk(root, &child, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn xattrs(p: &Path) -> BTreeMap<String, String> {
    let mut names = vec![0u8; 65536];
    let len = match rustix::fs::llistxattr(p, &mut names[..]) {
        Ok(len) => len,
        Err(rustix::io::Errno::NOTSUP) => 0,
        Err(e) => panic!("llistxattr {}: {e}", p.display()),
    };
    let mut out = BTreeMap::new();
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if name == "security.selinux" {
            continue;
        }
        let mut value = vec![0u8; 65536];
        let n = rustix::fs::lgetxattr(p, name.as_str(), &mut value[..]).unwrap();
        out.insert(name, format!("{:?}", String::from_utf8_lossy(&value[..n])));
    }
    out
}

/// What to include when describing entries.
#[derive(Clone, Copy)]
pub(crate) struct Compare {
    pub(crate) owners: bool,
    pub(crate) mtimes: bool,
    pub(crate) xattrs: bool,
}

impl Compare {
    pub(crate) const ALL: Self = Self {
        owners: true,
        mtimes: true,
        xattrs: true,
    };
}

/// One line per entry: type, mode, owner, mtime, size and content digest, link target, device
/// numbers, xattrs, and for multiply-linked files the first path of their link group.
pub(crate) fn snapshot(root: &Path, compare: Compare) -> BTreeMap<String, String> {
    let entries = list(root);
    let mut groups: HashMap<(u64, u64), String> = HashMap::new();
    let mut out = BTreeMap::new();
    for rel in entries {
        let p = root.join(&rel);
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let name = String::from_utf8_lossy(rel.as_bytes()).into_owned();
        let ft = meta.file_type();
        let mut line = String::new();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "chardev"
        } else if ft.is_block_device() {
            "blockdev"
        } else {
            "other"
        };
        write!(line, "{kind}").unwrap();
        if !ft.is_symlink() {
            write!(line, " mode={:o}", meta.mode() & 0o7777).unwrap();
        }
        if compare.owners {
            write!(line, " owner={}:{}", meta.uid(), meta.gid()).unwrap();
        }
        if compare.mtimes {
            write!(line, " mtime={}", meta.mtime()).unwrap();
        }
        if ft.is_file() {
            let data = std::fs::read(&p).unwrap();
            write!(line, " size={} {}", data.len(), Digest::sha256(&data)).unwrap();
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(&p).unwrap();
            write!(line, " -> {:?}", target.as_os_str()).unwrap();
        }
        if ft.is_char_device() || ft.is_block_device() {
            let rdev = meta.rdev();
            write!(
                line,
                " dev={}:{}",
                rustix::fs::major(rdev),
                rustix::fs::minor(rdev)
            )
            .unwrap();
        }
        if !ft.is_dir() && meta.nlink() > 1 {
            let group = groups
                .entry((meta.dev(), meta.ino()))
                .or_insert_with(|| name.clone());
            write!(line, " linkgroup={group:?}").unwrap();
        }
        if compare.xattrs {
            let x = xattrs(&p);
            if !x.is_empty() {
                write!(line, " xattrs={x:?}").unwrap();
            }
        }
        out.insert(name, line);
    }
    out
}

/// Asserts two snapshots are equal, showing only the differing lines.
pub(crate) fn assert_same_tree(
    expected: &BTreeMap<String, String>,
    actual: &BTreeMap<String, String>,
) {
    let mut diff = String::new();
    for (path, line) in expected {
        match actual.get(path) {
            Some(other) if other == line => {}
            Some(other) => writeln!(diff, "~ {path}\n    want {line}\n    got  {other}").unwrap(),
            None => writeln!(diff, "- {path}: {line}").unwrap(),
        }
    }
    for (path, line) in actual {
        if !expected.contains_key(path) {
            writeln!(diff, "+ {path}: {line}").unwrap();
        }
    }
    assert!(diff.is_empty(), "trees differ:\n{diff}");
}

/// Writes `root` as an uncompressed layer tar.
pub(crate) fn tar_of(root: &Path, options: &WriteOptions) -> Vec<u8> {
    let mut tar = Vec::new();
    write_layer(root, &mut tar, options).unwrap();
    tar
}

/// Deterministic pseudo-random bytes.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Runs a command, panicking with its output if it fails; returns stdout.
pub(crate) fn run(command: &mut Command) -> Vec<u8> {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("failed to start {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A tree using every kind of entry a layer can hold. Devices and foreign owners only when
/// running as root (the test suite normally is; non-root runs cover the rest).
pub(crate) fn build_rich_tree(root: &Path) {
    mkdir(root, "a/b/c", 0o750);
    mkdir(root, "empty", 0o700);
    mkdir(root, "shared", 0o2775);
    write_file(root, "hello.txt", b"hello\n", 0o644);
    write_file(root, "empty-file", b"", 0o600);
    write_file(root, "a/run.sh", b"#!/bin/sh\necho hi\n", 0o755);
    write_file(root, "a/b/setuid", b"suid", 0o4755);
    write_file(root, "a/b/c/big.bin", &big_content(), 0o644);
    write_file(root, "all-bytes", &(0..=255u8).collect::<Vec<_>>(), 0o644);
    // Names past the 100-byte ustar field and paths past 255 bytes.
    let long_name = format!("long/{}.txt", "n".repeat(150));
    write_file(root, &long_name, b"long name\n", 0o644);
    let deep = format!("deep/{0}/{0}/{0}/{0}/file", "d".repeat(70));
    write_file(root, &deep, b"deep\n", 0o644);
    write_file(
        root,
        b"caf\xe9-latin1".as_slice(),
        b"not utf-8 name\n",
        0o644,
    );
    write_file(root, "with space and\nnewline", b"odd name\n", 0o644);
    symlink(root, "a/link", "b/c");
    symlink(root, "abs", "/etc/passwd");
    symlink(root, "dangling", "does/not/exist");
    symlink(root, "long-target", &format!("/{}", "t".repeat(180)));
    hardlink(root, "hello.txt", "a/hl");
    hardlink(root, "hello.txt", "zz-hl");
    hardlink(root, "abs", "abs-hardlink");
    mknod(root, "pipe", rustix::fs::FileType::Fifo, 0o640, 0, 0);
    set_xattr(root, "hello.txt", "user.comment", b"greeting");
    set_xattr(root, "all-bytes", "user.binary", b"line1\nline2\0nul\xff");
    set_xattr(root, "a/b", "user.dir", b"on a directory");
    if is_root() {
        mkdir(root, "dev", 0o755);
        mknod(
            root,
            "dev/null",
            rustix::fs::FileType::CharacterDevice,
            0o666,
            1,
            3,
        );
        mknod(
            root,
            "dev/loop0",
            rustix::fs::FileType::BlockDevice,
            0o660,
            7,
            0,
        );
        chown(root, "hello.txt", 1234, 5678);
        chown(root, "a/b", 42, 43);
        chown(root, "abs", 7, 8);
        // Past the 7-digit octal limit of the ustar uid field: needs a PAX record.
        chown(root, "empty-file", 3_000_000, 3_000_001);
        set_xattr(root, "a/run.sh", "trusted.hoist", b"trusted value");
    }
    let mut time = 1_600_000_000;
    let mut entries = list(root);
    entries.reverse();
    for rel in entries {
        time += 17;
        set_mtime(root, rel.as_bytes(), time);
    }
}

/// Multi-block content for the parallel gzip path: compressible text and noise.
pub(crate) fn big_content() -> Vec<u8> {
    let mut data = Vec::new();
    for i in 0..40_000 {
        writeln!(text_sink(&mut data), "line {i} of a compressible file").unwrap();
    }
    data.extend(noise(1_500_000, 7));
    data
}

/// `Vec<u8>` as a `fmt::Write` target (test text is ASCII).
fn text_sink(data: &mut Vec<u8>) -> impl std::fmt::Write + '_ {
    struct W<'a>(&'a mut Vec<u8>);
    impl std::fmt::Write for W<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }
    W(data)
}
