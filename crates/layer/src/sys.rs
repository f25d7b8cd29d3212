//! The file-system calls the writer and applier make, all relative to directory descriptors and
//! none following symlinks unless stated. Thin, safe wrappers over `rustix`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, Mode, OFlags, Stat};

pub(crate) use rustix::fs::FileType;

use crate::tarstream::KeyValues;

/// `lstat` of `name` in `dir`.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Stat> {
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// `lstat` of `name` in `dir`, `None` if it does not exist.
pub(crate) fn lstat_at_opt(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn file_type(stat: &Stat) -> FileType {
    FileType::from_raw_mode(stat.st_mode)
}

/// Opens the directory `name` in `dir` for reading, refusing symlinks.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens a path-only handle on the directory `name` in `dir`, refusing symlinks.
pub(crate) fn open_dir_path_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory at `path` (following symlinks: the caller names it).
pub(crate) fn open_dir(path: &std::path::Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the regular file `name` in `dir` for reading, refusing symlinks.
pub(crate) fn open_file_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<std::fs::File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    Ok(std::fs::File::from(fd))
}

/// Creates the regular file `name` in `dir` (which must not exist) for writing.
pub(crate) fn create_file_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<std::fs::File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(std::fs::File::from(fd))
}

/// Names in the directory `dir`, without `.` and `..`, in no particular order.
pub(crate) fn read_dir_names(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    let mut entries = rustix::fs::Dir::read_from(dir)?;
    while let Some(entry) = entries.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

pub(crate) fn read_link_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    Ok(rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes())
}

pub(crate) fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode))?)
}

pub(crate) fn symlink_at(target: &[u8], dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let target = CString::new(target)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "symlink target contains NUL"))?;
    Ok(rustix::fs::symlinkat(target.as_c_str(), dir, name)?)
}

/// Hard-links `old_name` in `old_dir` (not following a symlink there) as `new_name` in `new_dir`.
pub(crate) fn link_at(
    old_dir: BorrowedFd<'_>,
    old_name: &CStr,
    new_dir: BorrowedFd<'_>,
    new_name: &CStr,
) -> io::Result<()> {
    Ok(rustix::fs::linkat(
        old_dir,
        old_name,
        new_dir,
        new_name,
        AtFlags::empty(),
    )?)
}

/// Creates a device node or fifo; `kind` is `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
pub(crate) fn mknod_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    kind: FileType,
    mode: u32,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    Ok(rustix::fs::mknodat(
        dir,
        name,
        kind,
        Mode::from_raw_mode(mode),
        rustix::fs::makedev(major, minor),
    )?)
}

pub(crate) fn unlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

pub(crate) fn rmdir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// `lchown` of `name` in `dir`.
pub(crate) fn lchown_at(dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    Ok(rustix::fs::chownat(
        dir,
        name,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

pub(crate) fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    Ok(rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )?)
}

pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?)
}

/// `chmod` of `name` in `dir` (callers pass devices and fifos they just made), never through a
/// symlink: a path-based `chmod` follows symlinks, so a node swapped for a symlink in between
/// (by whatever else writes into the root) would have its target's mode changed, possibly
/// outside the root. The node is opened `O_PATH | O_NOFOLLOW` and changed through
/// `/proc/self/fd/<n>`, which resolves to the opened inode itself.
pub(crate) fn chmod_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if file_type(&rustix::fs::fstat(&fd)?) == FileType::Symlink {
        return Err(io::Error::other(
            "the node was replaced by a symlink before its mode was set",
        ));
    }
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::chmod(path.as_str(), Mode::from_raw_mode(mode))?)
}

fn timestamps(secs: i64, nanos: u32) -> rustix::fs::Timestamps {
    let time = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: nanos.into(),
    };
    rustix::fs::Timestamps {
        last_access: time,
        last_modification: time,
    }
}

/// Sets atime and mtime of an open file.
pub(crate) fn set_times(fd: BorrowedFd<'_>, secs: i64, nanos: u32) -> io::Result<()> {
    Ok(rustix::fs::futimens(fd, &timestamps(secs, nanos))?)
}

/// Sets atime and mtime of `name` in `dir` without following a symlink.
pub(crate) fn set_times_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    secs: i64,
    nanos: u32,
) -> io::Result<()> {
    Ok(rustix::fs::utimensat(
        dir,
        name,
        &timestamps(secs, nanos),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Where extended attributes are read from or written to.
#[derive(Clone, Copy)]
pub(crate) enum XattrTarget<'a> {
    /// An open file or directory.
    Fd(BorrowedFd<'a>),
    /// `name` in the directory `dir`, not following a symlink (symlinks, devices, fifos).
    At(BorrowedFd<'a>, &'a CStr),
    /// A path, not following a symlink in its last component.
    Path(&'a CStr),
}

impl XattrTarget<'_> {
    /// `/proc/self/fd/<dir>/<name>`: resolves the directory through its descriptor, then the
    /// last component without following it (we only use it with the `l*xattr` calls).
    fn proc_path(dir: BorrowedFd<'_>, name: &CStr) -> CString {
        use std::os::fd::AsRawFd;
        let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        path.extend_from_slice(name.to_bytes());
        CString::new(path).expect("fd number and a C string contain no NUL")
    }
}

/// All extended attributes of `target` as (name, value), sorted by name. A file system without
/// xattr support has none.
pub(crate) fn read_xattrs(target: XattrTarget<'_>) -> io::Result<KeyValues> {
    let mut list = vec![0u8; 1024];
    let len = loop {
        let result = match target {
            XattrTarget::Fd(fd) => rustix::fs::flistxattr(fd, &mut list[..]),
            XattrTarget::At(dir, name) => {
                rustix::fs::llistxattr(XattrTarget::proc_path(dir, name).as_c_str(), &mut list[..])
            }
            XattrTarget::Path(path) => rustix::fs::llistxattr(path, &mut list[..]),
        };
        match result {
            Ok(len) => break len,
            Err(rustix::io::Errno::RANGE) => list.resize(list.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut xattrs = Vec::new();
    for name in list[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).expect("split on NUL");
        let mut value = vec![0u8; 256];
        let value_len = loop {
            let result = match target {
                XattrTarget::Fd(fd) => rustix::fs::fgetxattr(fd, cname.as_c_str(), &mut value[..]),
                XattrTarget::At(dir, file) => rustix::fs::lgetxattr(
                    XattrTarget::proc_path(dir, file).as_c_str(),
                    cname.as_c_str(),
                    &mut value[..],
                ),
                XattrTarget::Path(path) => {
                    rustix::fs::lgetxattr(path, cname.as_c_str(), &mut value[..])
                }
            };
            match result {
                Ok(n) => break Some(n),
                Err(rustix::io::Errno::RANGE) => value.resize(value.len() * 4, 0),
                // Removed between list and get.
                Err(rustix::io::Errno::NODATA) => break None,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(n) = value_len {
            value.truncate(n);
            xattrs.push((name.to_vec(), value));
        }
    }
    xattrs.sort();
    Ok(xattrs)
}

/// Sets one extended attribute on `target`.
pub(crate) fn set_xattr(target: XattrTarget<'_>, name: &[u8], value: &[u8]) -> io::Result<()> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    let flags = rustix::fs::XattrFlags::empty();
    match target {
        XattrTarget::Fd(fd) => rustix::fs::fsetxattr(fd, cname.as_c_str(), value, flags)?,
        XattrTarget::At(dir, file) => rustix::fs::lsetxattr(
            XattrTarget::proc_path(dir, file).as_c_str(),
            cname.as_c_str(),
            value,
            flags,
        )?,
        XattrTarget::Path(path) => rustix::fs::lsetxattr(path, cname.as_c_str(), value, flags)?,
    }
    Ok(())
}
