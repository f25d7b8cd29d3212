//! The copy-based snapshotter, for kernels or file systems without overlayfs: the merged view of the layer
//! directories is copied into a plain directory the container runs in, and afterwards the step's changes are found
//! by comparing that directory with the merged view again, and written as an overlay-style upper directory
//! (changed entries copied, deleted ones as character devices 0/0) that the layer writer understands.
//!
//! The merged view follows overlayfs's rules over the same unpacked layer directories: top layer first, a
//! character device 0/0 hides what is below it, a non-directory hides everything below its path, and a directory
//! marked `trusted.overlay.opaque=y` hides the same directory of the layers below.
//!
//! Changes are detected by type, mode, owner, size, modification time (to the nanosecond), device number and
//! symlink target, as containerd's `fs.Changes` does; a file rewritten with identical size and timestamps would be
//! missed, which a step cannot do by accident. Hard links are copied as separate files and extended attributes are
//! not copied.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timestamps, UTIME_OMIT, utimensat};

/// Whether `meta` is an overlayfs whiteout (character device 0/0).
fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            let mut value = [0u8; 4];
            matches!(rustix::fs::lgetxattr(path, *name, &mut value), Ok(1) if value[0] == b'y')
        })
}

/// Where `rel` is found in the merged view of `lowers` (bottom first), or `None` if it is absent or hidden.
pub(crate) fn lookup(lowers: &[PathBuf], rel: &Path) -> Option<PathBuf> {
    for layer in lowers.iter().rev() {
        let candidate = layer.join(rel);
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if is_whiteout(&meta) => return None,
            Ok(_) => return Some(candidate),
            Err(_) => {}
        }
        // Absent from this layer: does the layer hide the layers below at this path?
        let mut prefix = layer.clone();
        for component in rel.parent().unwrap_or(Path::new("")).components() {
            prefix.push(component);
            match fs::symlink_metadata(&prefix) {
                Ok(meta) if is_whiteout(&meta) || !meta.is_dir() => return None,
                Ok(_) if is_opaque(&prefix) => return None,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    None
}

/// The names in directory `rel` of the merged view.
fn children(lowers: &[PathBuf], rel: &Path) -> BTreeSet<OsString> {
    let mut names = BTreeSet::new();
    for layer in lowers {
        if let Ok(entries) = fs::read_dir(layer.join(rel)) {
            names.extend(entries.flatten().map(|entry| entry.file_name()));
        }
    }
    names.retain(|name| lookup(lowers, &rel.join(name)).is_some());
    names
}

fn error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> crate::Error {
    let path = path.to_owned();
    move |source| crate::Error::Prepare {
        action,
        path,
        source,
    }
}

/// Copies the merged view of `lowers` into the empty directory `dest`.
pub(crate) fn materialize(lowers: &[PathBuf], dest: &Path) -> crate::Result<()> {
    materialize_dir(lowers, Path::new(""), dest)
}

fn materialize_dir(lowers: &[PathBuf], rel: &Path, dest: &Path) -> crate::Result<()> {
    for name in children(lowers, rel) {
        let rel = rel.join(&name);
        let Some(source) = lookup(lowers, &rel) else {
            continue;
        };
        let target = dest.join(&rel);
        let meta = fs::symlink_metadata(&source).map_err(error("read", &source))?;
        copy_entry(&source, &meta, &target)?;
        if meta.is_dir() {
            materialize_dir(lowers, &rel, dest)?;
            set_times(&target, &meta)?;
        }
    }
    Ok(())
}

/// Copies one entry (not a directory's content) with its mode, owner and times.
fn copy_entry(source: &Path, meta: &Metadata, target: &Path) -> crate::Result<()> {
    let file_type = meta.file_type();
    if file_type.is_dir() {
        match fs::create_dir(target) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(error("create", target)(e));
            }
            _ => {}
        }
    } else if file_type.is_file() {
        fs::copy(source, target).map_err(error("copy to", target))?;
    } else if file_type.is_symlink() {
        let link = fs::read_link(source).map_err(error("read", source))?;
        symlink(&link, target).map_err(error("create", target))?;
    } else if file_type.is_socket() {
        return Ok(());
    } else {
        let kind = FileType::from_raw_mode(meta.mode());
        rustix::fs::mknodat(
            CWD,
            target,
            kind,
            Mode::from_raw_mode(meta.mode()),
            meta.rdev(),
        )
        .map_err(|e| error("create", target)(e.into()))?;
    }
    lchown(target, Some(meta.uid()), Some(meta.gid()))
        .map_err(error("set the owner of", target))?;
    if !file_type.is_symlink() {
        fs::set_permissions(target, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(error("set the mode of", target))?;
    }
    set_times(target, meta)
}

fn set_times(target: &Path, meta: &Metadata) -> crate::Result<()> {
    let times = Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec(),
        },
    };
    utimensat(CWD, target, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| error("set the times of", target)(e.into()))
}

fn same(a: &Metadata, b: &Metadata, a_path: &Path, b_path: &Path) -> bool {
    let same_meta = a.mode() == b.mode()
        && a.uid() == b.uid()
        && a.gid() == b.gid()
        && a.rdev() == b.rdev()
        && (a.is_dir()
            || (a.len() == b.len() && a.mtime() == b.mtime() && a.mtime_nsec() == b.mtime_nsec()));
    if !same_meta {
        return false;
    }
    if a.file_type().is_symlink() {
        return fs::read_link(a_path).ok() == fs::read_link(b_path).ok();
    }
    true
}

/// Writes into the empty directory `upper` what changed in `working` compared with the merged view of `lowers`,
/// in overlayfs's upper-directory format.
pub(crate) fn diff(lowers: &[PathBuf], working: &Path, upper: &Path) -> crate::Result<()> {
    diff_dir(lowers, working, Path::new(""), upper).map(|_| ())
}

fn diff_dir(lowers: &[PathBuf], working: &Path, rel: &Path, upper: &Path) -> crate::Result<bool> {
    let mut changed = false;
    let dir = working.join(rel);
    let mut present = BTreeSet::new();
    let entries = fs::read_dir(&dir).map_err(error("read", &dir))?;
    for entry in entries {
        let entry = entry.map_err(error("read", &dir))?;
        let rel = rel.join(entry.file_name());
        present.insert(entry.file_name());
        let path = working.join(&rel);
        let meta = fs::symlink_metadata(&path).map_err(error("read", &path))?;
        let lower =
            lookup(lowers, &rel).and_then(|p| fs::symlink_metadata(&p).ok().map(|m| (p, m)));
        let lower_is_dir = lower.as_ref().is_some_and(|(_, m)| m.is_dir());
        if meta.is_dir() && lower_is_dir {
            let below_changed = diff_dir(lowers, working, &rel, upper)?;
            let (lower_path, lower_meta) = lower.expect("lower is a directory");
            if below_changed || !same(&meta, &lower_meta, &path, &lower_path) {
                ensure_parents(working, &rel, upper)?;
                copy_entry(&path, &meta, &upper.join(&rel))?;
                changed = true;
            }
            continue;
        }
        let unchanged = lower
            .as_ref()
            .is_some_and(|(lower_path, lower_meta)| same(&meta, lower_meta, &path, lower_path));
        if unchanged {
            continue;
        }
        ensure_parents(working, &rel, upper)?;
        copy_entry(&path, &meta, &upper.join(&rel))?;
        if meta.is_dir() {
            // A new directory, or one replacing a file: everything below is new.
            copy_tree(&path, &upper.join(&rel))?;
            set_times(&upper.join(&rel), &meta)?;
        }
        changed = true;
    }
    for name in children(lowers, rel) {
        if !present.contains(&name) {
            let rel = rel.join(&name);
            ensure_parents(working, &rel, upper)?;
            let target = upper.join(&rel);
            rustix::fs::mknodat(CWD, &target, FileType::CharacterDevice, Mode::empty(), 0)
                .map_err(|e| error("create whiteout", &target)(e.into()))?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Creates the parent directories of `rel` in `upper`, with the metadata they have in `working`.
fn ensure_parents(working: &Path, rel: &Path, upper: &Path) -> crate::Result<()> {
    let mut prefix = PathBuf::new();
    for component in rel.parent().unwrap_or(Path::new("")).components() {
        prefix.push(component);
        let target = upper.join(&prefix);
        if fs::symlink_metadata(&target).is_err() {
            let source = working.join(&prefix);
            let meta = fs::symlink_metadata(&source).map_err(error("read", &source))?;
            copy_entry(&source, &meta, &target)?;
        }
    }
    Ok(())
}

fn copy_tree(source: &Path, target: &Path) -> crate::Result<()> {
    let entries = fs::read_dir(source).map_err(error("read", source))?;
    for entry in entries {
        let entry = entry.map_err(error("read", source))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(error("read", &path))?;
        let destination = target.join(entry.file_name());
        copy_entry(&path, &meta, &destination)?;
        if meta.is_dir() {
            copy_tree(&path, &destination)?;
            set_times(&destination, &meta)?;
        }
    }
    Ok(())
}
