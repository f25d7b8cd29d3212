//! Names inside an archive: normalised, relative, never escaping the archive root.
//!
//! Nothing is ever extracted to disk, but names still decide which content a manifest points at, so a name that
//! climbs out of the archive (`../x`, `/etc/passwd`, a symlink to `../../x`) is an error, not something to follow.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::Error;

/// How many symlinks one lookup may follow before it is treated as a loop (Linux's `MAXSYMLINKS`).
pub(crate) const MAX_LINK_HOPS: usize = 40;

/// Normalises a name found in an archive (a tar entry name, a path in `manifest.json`): drops `.` components,
/// empty components and a trailing `/`, resolves `a/../b` lexically, and rejects absolute names and names that climb
/// above the archive root.
pub(crate) fn normalize(name: &str) -> Result<String, Error> {
    if name.starts_with('/') {
        return Err(Error::UnsafeName {
            name: name.to_owned(),
            reason: "absolute path",
        });
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Error::UnsafeName {
                        name: name.to_owned(),
                        reason: "path escapes the archive root",
                    });
                }
            }
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(Error::UnsafeName {
            name: name.to_owned(),
            reason: "empty path",
        });
    }
    Ok(parts.join("/"))
}

/// Where a symlink named `link` (normalised) with target `target` points, as a normalised archive name. Relative
/// targets are resolved from the link's directory; absolute targets and targets above the root are errors.
pub(crate) fn resolve_symlink(link: &str, target: &str) -> Result<String, Error> {
    if target.starts_with('/') {
        return Err(Error::UnsafeLink {
            name: link.to_owned(),
            target: target.to_owned(),
        });
    }
    let joined = match link.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{target}"),
        None => target.to_owned(),
    };
    normalize(&joined).map_err(|_| Error::UnsafeLink {
        name: link.to_owned(),
        target: target.to_owned(),
    })
}

/// Resolves a normalised archive name to a path on disk inside `root` (an unpacked image layout directory),
/// following symlinks only while they stay inside `root`. Returns `None` if nothing exists at that name.
pub(crate) fn resolve_in_dir(root: &Path, name: &str) -> Result<Option<PathBuf>, Error> {
    let mut pending: Vec<String> = normalize(name)?
        .split('/')
        .rev()
        .map(str::to_owned)
        .collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            if resolved.pop().is_none() {
                return Err(Error::UnsafeName {
                    name: name.to_owned(),
                    reason: "path escapes the layout directory",
                });
            }
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(resolved.iter());
        candidate.push(&part);
        let meta = match fs::symlink_metadata(&candidate) {
            Ok(meta) => meta,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::ReadInput {
                    path: candidate,
                    source,
                });
            }
        };
        if !meta.file_type().is_symlink() {
            resolved.push(part);
            continue;
        }
        hops += 1;
        if hops > MAX_LINK_HOPS {
            return Err(Error::LinkLoop {
                name: name.to_owned(),
            });
        }
        let target = fs::read_link(&candidate).map_err(|source| Error::ReadInput {
            path: candidate.clone(),
            source,
        })?;
        if target.is_absolute() {
            return Err(Error::UnsafeLink {
                name: name.to_owned(),
                target: target.display().to_string(),
            });
        }
        // Replace the link by its target's components, resolved from the link's directory.
        for component in target.components().rev() {
            match component {
                Component::Normal(part) => pending.push(part.to_string_lossy().into_owned()),
                Component::ParentDir => pending.push("..".to_owned()),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => {
                    return Err(Error::UnsafeLink {
                        name: name.to_owned(),
                        target: target.display().to_string(),
                    });
                }
            }
        }
    }
    let mut path = root.to_path_buf();
    path.extend(resolved.iter());
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_accepts_what_tools_write() {
        assert_eq!(normalize("manifest.json").unwrap(), "manifest.json");
        assert_eq!(normalize("./manifest.json").unwrap(), "manifest.json");
        assert_eq!(normalize("blobs/sha256/").unwrap(), "blobs/sha256");
        assert_eq!(normalize("a//b/./c").unwrap(), "a/b/c");
        assert_eq!(normalize("a/../b").unwrap(), "b");
    }

    #[test]
    fn normalize_rejects_escapes() {
        for bad in ["/etc/passwd", "../x", "a/../../x", "", ".", "./"] {
            let err = normalize(bad).unwrap_err();
            assert!(matches!(err, Error::UnsafeName { .. }), "{bad}: {err}");
        }
        assert_eq!(
            normalize("../../etc/passwd").unwrap_err().to_string(),
            "unsafe name \"../../etc/passwd\" in archive: path escapes the archive root"
        );
    }

    #[test]
    fn symlinks_resolve_from_their_directory() {
        // skopeo's docker-archive: <id>/layer.tar -> ../<diffid>.tar
        assert_eq!(
            resolve_symlink("abc/layer.tar", "../def.tar").unwrap(),
            "def.tar"
        );
        assert_eq!(resolve_symlink("layer.tar", "def.tar").unwrap(), "def.tar");
        assert!(matches!(
            resolve_symlink("abc/layer.tar", "../../def.tar"),
            Err(Error::UnsafeLink { .. })
        ));
        assert!(matches!(
            resolve_symlink("abc/layer.tar", "/etc/passwd"),
            Err(Error::UnsafeLink { .. })
        ));
    }

    #[test]
    fn resolve_in_dir_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("layout");
        fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        fs::write(root.join("blobs/sha256/aa"), b"x").unwrap();
        fs::write(dir.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink("aa", root.join("blobs/sha256/bb")).unwrap();
        std::os::unix::fs::symlink("../../../secret", root.join("blobs/sha256/cc")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("blobs/sha256/dd"))
            .unwrap();
        std::os::unix::fs::symlink("ee", root.join("blobs/sha256/ee")).unwrap();

        assert_eq!(
            resolve_in_dir(&root, "blobs/sha256/aa").unwrap(),
            Some(root.join("blobs/sha256/aa"))
        );
        assert_eq!(
            resolve_in_dir(&root, "blobs/sha256/bb").unwrap(),
            Some(root.join("blobs/sha256/aa"))
        );
        assert_eq!(resolve_in_dir(&root, "blobs/sha256/zz").unwrap(), None);
        assert!(matches!(
            resolve_in_dir(&root, "blobs/sha256/cc"),
            Err(Error::UnsafeName { .. })
        ));
        assert!(matches!(
            resolve_in_dir(&root, "blobs/sha256/dd"),
            Err(Error::UnsafeLink { .. })
        ));
        assert!(matches!(
            resolve_in_dir(&root, "blobs/sha256/ee"),
            Err(Error::LinkLoop { .. })
        ));
    }
}
