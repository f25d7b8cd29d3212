//! Resolving a path inside a root directory as if the root were `/`.
//!
//! BuildKit only ever sees the files it was sent, so a symlink in the context cannot lead
//! outside it: an absolute target is taken relative to the context root, and `..` stops at
//! the root. Reading `.dockerignore` or opening a file through the walker follows the same
//! rule here.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Linux's limit on symlinks followed while resolving one path (`ELOOP` beyond it).
const MAX_SYMLINKS: usize = 40;

/// Resolves `rel` inside `root`, following symlinks without leaving `root`.
///
/// Returns the absolute host path (under `root`) that `rel` refers to; no component of it
/// below `root` is a symlink. Components that do not exist are kept as they are, so the
/// caller's open reports `NotFound`.
pub(crate) fn resolve_in_root(root: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut resolved: Vec<PathBuf> = Vec::new();
    // Pending components, last one first, so a symlink's target can be pushed in front.
    let mut pending: Vec<PathBuf> = components(rel);
    pending.reverse();
    let mut links = 0;
    while let Some(component) = pending.pop() {
        let name = component.as_os_str();
        if name.is_empty() || name == "." {
            continue;
        }
        if name == ".." {
            resolved.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(name);
        let metadata = match std::fs::symlink_metadata(&candidate) {
            Ok(metadata) => metadata,
            // Keep going: a later `..` may come back to existing (and symlinked) paths.
            Err(err) if crate::error::is_not_exist(&err) => {
                resolved.push(component);
                continue;
            }
            Err(err) => return Err(err),
        };
        if !metadata.file_type().is_symlink() {
            resolved.push(component);
            continue;
        }
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(io::Error::from_raw_os_error(40)); // ELOOP
        }
        let target = std::fs::read_link(&candidate)?;
        if target.is_absolute() {
            resolved.clear();
        }
        let mut target_components = components(&target);
        target_components.reverse();
        pending.extend(target_components);
    }
    let mut out = root.to_path_buf();
    out.extend(&resolved);
    Ok(out)
}

/// The components of a path as owned names (`.`, `..` kept; root and prefixes dropped).
fn components(path: &Path) -> Vec<PathBuf> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(PathBuf::from(name)),
            Component::CurDir => Some(PathBuf::from(".")),
            Component::ParentDir => Some(PathBuf::from("..")),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// A `/`-separated relative path as a `Path`.
pub(crate) fn bytes_path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("ctx");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(outer.path().join("secret"), "outside").unwrap();
        std::fs::write(root.join("secret"), "inside").unwrap();
        symlink("/secret", root.join("abs")).unwrap();
        symlink("../../secret", root.join("sub/rel")).unwrap();
        symlink("loop", root.join("loop")).unwrap();

        let abs = resolve_in_root(&root, Path::new("abs")).unwrap();
        assert_eq!(std::fs::read_to_string(abs).unwrap(), "inside");
        let rel = resolve_in_root(&root, Path::new("sub/rel")).unwrap();
        assert_eq!(std::fs::read_to_string(rel).unwrap(), "inside");
        let dotdot = resolve_in_root(&root, Path::new("../secret")).unwrap();
        assert_eq!(std::fs::read_to_string(dotdot).unwrap(), "inside");
        let err = resolve_in_root(&root, Path::new("loop")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(40));
        let missing = resolve_in_root(&root, Path::new("nope/../x")).unwrap();
        assert_eq!(missing, root.join("x"));
    }
}
