//! Follow paths: turning "these paths, and whatever their symlinks point at" into include
//! patterns (fsutil's `FollowLinks`).
//!
//! BuildKit uses this to send only the Dockerfile and its ignore file, or a `COPY` source,
//! together with the targets of any symlinks on the way. Link targets are resolved inside
//! the context: an absolute target counts from the context root and `..` stops there.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{ContextError, is_not_exist};
use crate::fnmatch::filepath_match;
use crate::gopath;

/// Bound on symlink expansions per call, so that a pathological tree cannot exhaust the
/// stack. Upstream has no bound; real contexts are far below it.
const MAX_EXPANSIONS: usize = 4096;

/// Resolves `paths` into the sorted, de-duplicated list of paths to include.
///
/// Returns `None` when a path resolves to the context root itself: then nothing is to be
/// filtered (upstream's `nil`).
pub(crate) fn follow_links(
    root: &Path,
    paths: &[String],
) -> Result<Option<Vec<String>>, ContextError> {
    let mut resolver = Resolver {
        root,
        resolved: BTreeSet::new(),
        expansions: 0,
    };
    for path in paths {
        resolver.append(path.clone(), path)?;
    }
    // A BTreeSet iterates in byte order, like Go's sort.Strings.
    let sorted: Vec<String> = resolver.resolved.into_iter().collect();
    Ok(dedupe_paths(sorted))
}

/// Drops paths below the previously kept one (input expected sorted); `None` if `.` is
/// among them. Like upstream, the first comparison is against the empty string, so a
/// leading path starting with `/` is dropped too.
pub(crate) fn dedupe_paths(paths: Vec<String>) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(paths.len());
    let mut last = String::new();
    for path in paths {
        if path == "." {
            return None;
        }
        if path.len() > last.len() && path.starts_with(&last) && path.as_bytes()[last.len()] == b'/'
        {
            continue;
        }
        last.clone_from(&path);
        out.push(path);
    }
    Some(out)
}

struct Resolver<'a> {
    root: &'a Path,
    resolved: BTreeSet<String>,
    expansions: usize,
}

impl Resolver<'_> {
    /// Walks `path` element by element; at the first symlink, continues from its
    /// target(s) with the rest of the path. `origin` is the follow path being resolved,
    /// for errors.
    fn append(&mut self, mut path: String, origin: &str) -> Result<(), ContextError> {
        self.expansions += 1;
        if self.expansions > MAX_EXPANSIONS {
            return Err(ContextError::FollowPath {
                path: origin.to_string(),
                source: std::io::Error::from_raw_os_error(40), // ELOOP
            });
        }
        let mut current = String::from(".");
        loop {
            let (first, rest) = match path.split_once('/') {
                Some((first, rest)) => (first.to_string(), rest.to_string()),
                None => (std::mem::take(&mut path), String::new()),
            };
            current = gopath::join(&[&current, &first]);
            let targets = self.read_symlink(&current, true, origin)?;
            path = rest;
            if (path.is_empty() || !targets.is_empty()) && self.resolved.contains(&current) {
                return Ok(());
            }
            if !targets.is_empty() {
                self.resolved.insert(current);
                for target in targets {
                    self.append(gopath::join(&[&target, &path]), origin)?;
                }
                return Ok(());
            }
            if path.is_empty() {
                self.resolved.insert(current);
                return Ok(());
            }
        }
    }

    /// The target(s) of `path` if it is a symlink (every matching symlink for a wildcard
    /// last element), as absolute in-context paths; empty otherwise.
    fn read_symlink(
        &self,
        path: &str,
        allow_wildcard: bool,
        origin: &str,
    ) -> Result<Vec<String>, ContextError> {
        // Upstream would lstat outside the context here; such a path can only ever be a
        // pattern that matches nothing, so it is kept without touching the filesystem.
        if gopath::escapes_root(path) {
            return Ok(Vec::new());
        }
        let error = |source| ContextError::FollowPath {
            path: origin.to_string(),
            source,
        };
        let real = self.root.join(path);
        let base = path.rsplit('/').next().unwrap_or(path);
        if allow_wildcard && contains_wildcards(base) {
            let parent = String::from_utf8(gopath::dir_bytes(path.as_bytes()))
                .expect("the directory of a UTF-8 path is UTF-8");
            let dir = self.root.join(&parent);
            let listing = match fs::read_dir(&dir) {
                Ok(listing) => listing,
                Err(err) if is_not_exist(&err) => return Ok(Vec::new()),
                Err(err) => return Err(error(err)),
            };
            let mut names = Vec::new();
            for item in listing {
                names.push(item.map_err(error)?.file_name());
            }
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            let mut out = Vec::new();
            for name in names {
                if filepath_match(base, name.as_bytes()) == Ok(true) {
                    let name = name.to_string_lossy();
                    out.extend(self.read_symlink(
                        &gopath::join(&[&parent, &name]),
                        false,
                        origin,
                    )?);
                }
            }
            return Ok(out);
        }
        let metadata = match fs::symlink_metadata(&real) {
            Ok(metadata) => metadata,
            Err(err) if is_not_exist(&err) => return Ok(Vec::new()),
            Err(err) => return Err(error(err)),
        };
        if !metadata.file_type().is_symlink() {
            return Ok(Vec::new());
        }
        let link = fs::read_link(&real).map_err(error)?;
        let link = gopath::clean(&link.to_string_lossy());
        if link.starts_with('/') {
            return Ok(vec![link]);
        }
        let parent = String::from_utf8(gopath::dir_bytes(path.as_bytes()))
            .expect("the directory of a UTF-8 path is UTF-8");
        Ok(vec![gopath::join(&["/", &gopath::join(&[&parent, &link])])])
    }
}

/// Whether a name has `*`, `?` or `[` not escaped by `\`.
fn contains_wildcards(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn dedupe_matches_upstream() {
        let v = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            dedupe_paths(v(&["a", "a/b", "ab", "b"])),
            Some(v(&["a", "ab", "b"]))
        );
        assert_eq!(dedupe_paths(v(&["a", "."])), None);
        assert_eq!(dedupe_paths(v(&["/x", "y"])), Some(v(&["y"])));
    }

    #[test]
    fn follows_symlink_chains_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("foo")).unwrap();
        fs::create_dir_all(root.join("baz")).unwrap();
        symlink("/baz/one", root.join("foo/l1")).unwrap();
        symlink("/baz/two", root.join("foo/l2")).unwrap();
        fs::write(root.join("baz/one"), "").unwrap();
        symlink("../bax", root.join("baz/two")).unwrap();
        fs::write(root.join("bax"), "").unwrap();
        let got = follow_links(root, &["foo/l*".into(), "bar".into()])
            .unwrap()
            .unwrap();
        assert_eq!(got, ["bar", "bax", "baz/one", "baz/two", "foo/l*"]);
    }

    #[test]
    fn escaping_paths_stay_patterns_and_cycles_end() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        let got = follow_links(root, &["a".into(), "../x".into()])
            .unwrap()
            .unwrap();
        assert_eq!(got, ["../x", "a", "b"]);
        symlink(".", root.join("self")).unwrap();
        assert_eq!(follow_links(root, &["self".into()]).unwrap(), None);
    }

    #[test]
    fn wildcards_respect_escapes() {
        assert!(contains_wildcards("l*"));
        assert!(contains_wildcards("[ab]"));
        assert!(!contains_wildcards("a\\*b"));
        assert!(!contains_wildcards("plain"));
    }
}
