//! COPY and ADD: the selected source files are copied into an empty staging directory at their destination paths,
//! so the staging directory is exactly the op's layer (BuildKit's FileOp copy, as a diff of its own).
//!
//! Sources come from a [`Tree`]: the build context on the host (filtered by `.dockerignore` and `--exclude`) or
//! a filesystem of layers seen through a [`LayerView`]. The destination filesystem is only inspected (is the
//! destination an existing directory, what do its parents look like, who is `--chown`'s user).

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hoist_context::{ContextFilter, filepath_match};
use hoist_layer::Decompressor;
use hoist_plan::op::{CopySource, FileCopy, InlineFile, Mkdir};
use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};

use crate::error::{EngineError, Result};
use crate::view::{LayerView, clean};

/// Where a COPY reads from.
#[derive(Debug, Clone)]
pub(crate) enum Tree {
    /// A directory on the host (the build context), with the filters every path must pass.
    Context {
        /// The context directory.
        root: PathBuf,
        /// `.dockerignore`.
        filters: Vec<ContextFilter>,
    },
    /// A filesystem of layers (another stage, an image).
    Layers {
        /// The merged view.
        view: LayerView,
    },
}

impl Tree {
    fn lookup(&self, rel: &Path) -> Option<(PathBuf, fs::Metadata)> {
        match self {
            Tree::Context { root, .. } => {
                let path = root.join(self.resolve(rel, false));
                let meta = fs::symlink_metadata(&path).ok()?;
                Some((path, meta))
            }
            Tree::Layers { view, .. } => view.lookup(&view.resolve(rel, false)),
        }
    }

    fn included(&self, rel: &Path) -> Result<bool> {
        let rel = clean(rel);
        if rel.as_os_str().is_empty() {
            return Ok(true);
        }
        let bytes = rel.as_os_str().as_encoded_bytes();
        let filters: &[ContextFilter] = match self {
            Tree::Context { filters, .. } => filters,
            Tree::Layers { .. } => &[],
        };
        for filter in filters {
            if !filter.is_included(bytes).map_err(EngineError::Context)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `rel` with symlinks resolved inside the tree (a context's links never lead out of the context).
    fn resolve(&self, rel: &Path, follow_last: bool) -> PathBuf {
        match self {
            Tree::Context { root, .. } => {
                LayerView::new(vec![root.clone()]).resolve(rel, follow_last)
            }
            Tree::Layers { view } => view.resolve(rel, follow_last),
        }
    }

    /// Whether an excluded directory may still hold `!` exceptions (else it is not entered at all).
    fn may_hold_exceptions(&self, rel: &Path) -> bool {
        match self {
            Tree::Context { filters, .. } => filters.iter().any(|f| {
                f.exclude().is_some_and(|m| {
                    m.exceptions_may_match_under(rel.as_os_str().as_encoded_bytes())
                })
            }),
            Tree::Layers { .. } => false,
        }
    }

    fn list(&self, rel: &Path) -> Result<Vec<OsString>> {
        match self {
            Tree::Context { root, .. } => {
                let path = root.join(self.resolve(rel, true));
                let mut names = fs::read_dir(&path)
                    .and_then(|entries| {
                        entries
                            .map(|e| e.map(|e| e.file_name()))
                            .collect::<io::Result<Vec<_>>>()
                    })
                    .map_err(|e| EngineError::io("read", &path, e))?;
                names.sort();
                Ok(names)
            }
            Tree::Layers { view, .. } => view.list(&view.resolve(rel, true)),
        }
    }

    /// The owner a copied entry gets without `--chown`: root for context files (they come from the client, as
    /// in BuildKit), the original owner for files of another filesystem.
    fn owner(&self, meta: &fs::Metadata) -> (u32, u32) {
        match self {
            Tree::Context { .. } => (0, 0),
            Tree::Layers { .. } => (meta.uid(), meta.gid()),
        }
    }
}

/// Metadata to give a directory once its contents are written (writing them changes its mtime).
struct DirFixup {
    path: PathBuf,
    mode: u32,
    owner: (u32, u32),
    mtime: Option<(i64, i64)>,
}

struct Copier<'a> {
    staging: &'a Path,
    dest_view: &'a LayerView,
    /// `--exclude`, matched against paths relative to the source being copied (as BuildKit's copy does).
    exclude: Option<ContextFilter>,
    chown: Option<(u32, u32)>,
    chmod: Option<Chmod>,
    fixups: Vec<DirFixup>,
    /// Files with several links already copied, by (device, inode): later links become hard links again.
    linked: std::collections::HashMap<(u64, u64), PathBuf>,
}

/// Copies what `copy` selects from `trees` (indexed like the op's inputs) into `staging`. `dest_view` is the
/// filesystem the files land on (empty for `--link`); `users` is where `--chown` names are looked up. Returns
/// whether anything was written.
pub(crate) fn copy(
    copy: &FileCopy,
    is_add: bool,
    trees: &[Option<Tree>],
    dest_view: &LayerView,
    users: &LayerView,
    staging: &Path,
) -> Result<bool> {
    let chown = copy
        .chown
        .as_deref()
        .map(|spec| resolve_chown(spec, users))
        .transpose()?;
    let chmod = copy.chmod.as_deref().map(Chmod::parse).transpose()?;
    let exclude = if copy.exclude.is_empty() {
        None
    } else {
        Some(ContextFilter::new(&[] as &[String], &copy.exclude).map_err(EngineError::Context)?)
    };
    let mut copier = Copier {
        staging,
        dest_view,
        exclude,
        chown,
        chmod,
        fixups: Vec::new(),
        linked: std::collections::HashMap::new(),
    };

    // Expand every source first: the destination is a directory when several files are copied.
    let mut items = Vec::new();
    for source in &copy.sources {
        match source {
            CopySource::Path { path, input } => {
                let tree = trees.get(*input).and_then(Option::as_ref).ok_or_else(|| {
                    EngineError::invalid(format!("COPY source {path} has no filesystem"))
                })?;
                let (base, pattern) = match path.split_once("/./") {
                    Some((base, rest)) if copy.parents => (clean(Path::new(base)), rest.to_owned()),
                    _ => (PathBuf::new(), path.clone()),
                };
                let matches = expand(tree, &base, &pattern)?;
                // A wildcard may match nothing (BuildKit's AllowEmptyWildcard); a plain path must exist.
                if matches.is_empty() && !has_wildcard(&pattern) {
                    return Err(EngineError::SourceNotFound { path: path.clone() });
                }
                for rel in matches {
                    items.push(Item::Path {
                        tree,
                        kept: rel.strip_prefix(&base).unwrap_or(&rel).to_path_buf(),
                        rel,
                        remote: false,
                    });
                }
            }
            CopySource::Heredoc(file) => items.push(Item::Inline(file)),
            // A download is a directory holding one file (see `remote`): that file is the source.
            CopySource::Remote { url, input } => {
                let tree = trees.get(*input).and_then(Option::as_ref).ok_or_else(|| {
                    EngineError::invalid(format!("ADD source {url} was not downloaded"))
                })?;
                let name = tree
                    .list(Path::new(""))?
                    .into_iter()
                    .next()
                    .ok_or_else(|| EngineError::SourceNotFound { path: url.clone() })?;
                items.push(Item::Path {
                    tree,
                    rel: PathBuf::from(&name),
                    kept: PathBuf::from(&name),
                    remote: true,
                });
            }
        }
    }

    // Symlinks in the destination resolve inside the destination filesystem (`/bin` -> `usr/bin`), so the layer
    // writes where the link points instead of replacing the link: the last component too, as fsutil resolves the
    // whole destination (`COPY f /usr/bin/python` replaces the file the link points to).
    let unresolved = clean(Path::new(&copy.dest));
    let dest = dest_view.resolve(&unresolved, true);
    let dest_is_dir = copy.dest.ends_with('/')
        || copy.dest.ends_with("/.")
        || items.len() > 1
        || dest_view.lookup(&dest).is_some_and(|(_, m)| m.is_dir());
    for item in items {
        match item {
            Item::Inline(file) => {
                let name = Path::new(&file.path)
                    .file_name()
                    .map_or_else(|| OsString::from(&file.path), |n| n.to_owned());
                let target = if dest_is_dir {
                    dest.join(name)
                } else {
                    dest.clone()
                };
                copier.inline(file, &target)?;
            }
            Item::Path {
                tree,
                rel,
                kept,
                remote,
            } => {
                let Some((abs, meta)) = tree.lookup(&rel) else {
                    return Err(EngineError::SourceNotFound {
                        path: rel.display().to_string(),
                    });
                };
                // The source path itself is followed when it is a symlink (BuildKit's FollowSymlinks), inside
                // its tree; a dangling link is copied as a link.
                let name = rel.file_name().map(|n| n.to_owned()).unwrap_or_default();
                let (rel, abs, meta) = if meta.file_type().is_symlink() {
                    let followed = tree.resolve(&rel, true);
                    match tree.lookup(&followed) {
                        Some((a, m)) if !m.file_type().is_symlink() => (followed, a, m),
                        _ => (rel, abs, meta),
                    }
                } else {
                    (rel, abs, meta)
                };
                if meta.is_dir() {
                    // A directory's contents go into the destination, which (when new) is made as fsutil's
                    // `MkdirAll(dest, 0755, chown)` makes it: not with the source directory's mode or owner. With
                    // `--parents` the directory itself is copied, metadata included.
                    let (target, source_meta) = if copy.parents {
                        (dest.join(&kept), Some(&meta))
                    } else {
                        (dest.clone(), None)
                    };
                    // fsutil refuses to turn an existing file into a directory.
                    if copier
                        .dest_view
                        .lookup(&target)
                        .is_some_and(|(_, m)| !m.is_dir())
                    {
                        return Err(EngineError::invalid(format!(
                            "cannot copy to non-directory: /{}",
                            target.display()
                        )));
                    }
                    copier.ensure_dir(&target, source_meta, tree)?;
                    copier.tree_contents(tree, &rel, &rel, &target)?;
                } else {
                    if copier.excluded(Path::new(&name))? {
                        continue;
                    }
                    // Downloads are unpacked only with `--unpack=true` (BuildKit).
                    let unpack = if remote {
                        copy.unpack == Some(true)
                    } else {
                        copy.unpack != Some(false)
                    };
                    if is_add && unpack && is_tar_archive(&abs) {
                        copier.ensure_dir(&dest, None, tree)?;
                        copier.unpack(&abs, &dest)?;
                        continue;
                    }
                    let target = if copy.parents {
                        dest.join(&kept)
                    } else if dest_is_dir {
                        dest.join(name)
                    } else {
                        dest.clone()
                    };
                    copier.ensure_parents(&target)?;
                    copier.entry(tree, &abs, &meta, &target)?;
                }
            }
        }
    }
    let wrote = copier.finish()?;
    Ok(wrote)
}

enum Item<'a> {
    Path {
        tree: &'a Tree,
        rel: PathBuf,
        /// What `--parents` recreates under the destination.
        kept: PathBuf,
        /// An `ADD <URL>` download.
        remote: bool,
    },
    Inline(&'a InlineFile),
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The paths `pattern` (relative to `base`) names in `tree`: itself when it has no wildcard and exists, else each
/// match, component by component.
fn expand(tree: &Tree, base: &Path, pattern: &str) -> Result<Vec<PathBuf>> {
    let mut current = vec![base.to_path_buf()];
    for part in pattern.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let mut next = Vec::new();
        for dir in &current {
            if part == ".." {
                let mut up = dir.clone();
                up.pop();
                next.push(up);
            } else if has_wildcard(part) {
                for name in tree.list(dir).unwrap_or_default() {
                    let Some(text) = name.to_str() else { continue };
                    let matched = filepath_match(part, text).map_err(|e| {
                        EngineError::invalid(format!("invalid COPY pattern {pattern}: {e}"))
                    })?;
                    let candidate = dir.join(&name);
                    if matched && visible(tree, &candidate)? {
                        next.push(candidate);
                    }
                }
            } else {
                next.push(dir.join(part));
            }
        }
        current = next;
    }
    let mut found = Vec::new();
    for path in current {
        if tree.lookup(&path).is_some() && visible(tree, &path)? {
            found.push(path);
        }
    }
    Ok(found)
}

/// Whether a source path was sent with the context: not `.dockerignore`d, or an ignored directory that holds a
/// `!` exception (fsutil sends such a directory with the files the exceptions keep).
fn visible(tree: &Tree, rel: &Path) -> Result<bool> {
    if tree.included(rel)? {
        return Ok(true);
    }
    let is_dir = tree.lookup(rel).is_some_and(|(_, meta)| meta.is_dir());
    Ok(is_dir && tree.may_hold_exceptions(rel) && has_included_file(tree, rel)?)
}

impl Copier<'_> {
    fn owner(&self, tree: &Tree, meta: &fs::Metadata) -> (u32, u32) {
        self.chown.unwrap_or_else(|| tree.owner(meta))
    }

    /// Creates the parents of `target` (relative to the root) in the staging directory, with the metadata they
    /// have in the destination filesystem, or as new 0755 directories.
    fn ensure_parents(&mut self, target: &Path) -> Result<()> {
        let mut rel = PathBuf::new();
        let parts: Vec<_> = target.components().collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            rel.push(part);
            self.make_dir(&rel, None, None)?;
        }
        Ok(())
    }

    /// Creates `target` as a directory (and its parents); a new one copies `source`'s metadata when given.
    fn ensure_dir(
        &mut self,
        target: &Path,
        source: Option<&fs::Metadata>,
        tree: &Tree,
    ) -> Result<()> {
        self.ensure_parents(target)?;
        let owner = source.map(|m| self.owner(tree, m));
        self.make_dir(target, source, owner)
    }

    fn make_dir(
        &mut self,
        rel: &Path,
        source: Option<&fs::Metadata>,
        owner: Option<(u32, u32)>,
    ) -> Result<()> {
        let path = self.staging.join(rel);
        if fs::symlink_metadata(&path).is_ok() {
            return Ok(());
        }
        fs::create_dir(&path).map_err(|e| EngineError::io("create", &path, e))?;
        let existing = self.dest_view.lookup(rel).filter(|(_, m)| m.is_dir());
        let fixup = match (existing, source) {
            // An existing directory keeps what it has: the layer must not change it.
            (Some((_, m)), _) => DirFixup {
                path,
                mode: m.mode() & 0o7777,
                owner: (m.uid(), m.gid()),
                mtime: Some((m.mtime(), m.mtime_nsec())),
            },
            (None, Some(m)) => DirFixup {
                path,
                mode: self.mode_for(m.mode() & 0o7777, true),
                owner: owner.unwrap_or((0, 0)),
                mtime: Some((m.mtime(), m.mtime_nsec())),
            },
            (None, None) => DirFixup {
                path,
                mode: 0o755,
                owner: self.chown.unwrap_or((0, 0)),
                mtime: None,
            },
        };
        self.fixups.push(fixup);
        Ok(())
    }

    fn mode_for(&self, mode: u32, is_dir: bool) -> u32 {
        match &self.chmod {
            Some(chmod) => chmod.apply(mode, is_dir),
            None => mode,
        }
    }

    fn excluded(&self, rel: &Path) -> Result<bool> {
        match &self.exclude {
            Some(filter) => Ok(!filter
                .is_included(rel.as_os_str().as_encoded_bytes())
                .map_err(EngineError::Context)?),
            None => Ok(false),
        }
    }

    fn tree_contents(&mut self, tree: &Tree, base: &Path, rel: &Path, target: &Path) -> Result<()> {
        for name in tree.list(rel)? {
            let child = rel.join(&name);
            let Some((abs, meta)) = tree.lookup(&child) else {
                continue;
            };
            if self.excluded(child.strip_prefix(base).unwrap_or(&child))? {
                continue;
            }
            let included = tree.included(&child)?;
            if meta.is_dir() {
                if !included && !tree.may_hold_exceptions(&child) {
                    continue;
                }
                let child_target = target.join(&name);
                if included {
                    let owner = self.owner(tree, &meta);
                    self.make_dir(&child_target, Some(&meta), Some(owner))?;
                    self.tree_contents(tree, base, &child, &child_target)?;
                } else {
                    // An excluded directory may hold `!` exceptions: create it only if one matches.
                    if has_included_file(tree, &child)? {
                        let owner = self.owner(tree, &meta);
                        self.make_dir(&child_target, Some(&meta), Some(owner))?;
                        self.tree_contents(tree, base, &child, &child_target)?;
                    }
                }
            } else if included {
                self.entry(tree, &abs, &meta, &target.join(&name))?;
            }
        }
        Ok(())
    }

    /// Copies one non-directory entry to `target` (relative to the root).
    fn entry(&mut self, tree: &Tree, abs: &Path, meta: &fs::Metadata, target: &Path) -> Result<()> {
        let dst = self.staging.join(target);
        // fsutil never replaces a directory (copied earlier, or in the destination) with a file.
        let over_directory = fs::symlink_metadata(&dst).is_ok_and(|m| m.is_dir())
            || self
                .dest_view
                .lookup(target)
                .is_some_and(|(_, m)| m.is_dir());
        if over_directory {
            return Err(EngineError::invalid(format!(
                "cannot replace to directory /{} with file",
                target.display()
            )));
        }
        if let Ok(existing) = fs::symlink_metadata(&dst) {
            let removed = if existing.is_dir() {
                fs::remove_dir_all(&dst)
            } else {
                fs::remove_file(&dst)
            };
            removed.map_err(|e| EngineError::io("replace", &dst, e))?;
        }
        let (uid, gid) = self.owner(tree, meta);
        let file_type = meta.file_type();
        if file_type.is_symlink() {
            let link = fs::read_link(abs).map_err(|e| EngineError::io("read", abs, e))?;
            std::os::unix::fs::symlink(&link, &dst)
                .map_err(|e| EngineError::io("create", &dst, e))?;
        } else if file_type.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = self.linked.get(&(meta.dev(), meta.ino())) {
                    return fs::hard_link(first, &dst)
                        .map_err(|e| EngineError::io("link", &dst, e));
                }
                self.linked.insert((meta.dev(), meta.ino()), dst.clone());
            }
            fs::copy(abs, &dst).map_err(|e| EngineError::io("copy", abs, e))?;
        } else {
            // Devices, fifos and sockets are not copied (BuildKit copies them only between layer filesystems).
            return Ok(());
        }
        std::os::unix::fs::lchown(&dst, Some(uid), Some(gid))
            .map_err(|e| EngineError::io("change the owner of", &dst, e))?;
        // The mode after the owner: chown(2) clears a file's setuid and setgid bits.
        if file_type.is_file() {
            let mode = self.mode_for(meta.mode() & 0o7777, false);
            fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
                .map_err(|e| EngineError::io("set the mode of", &dst, e))?;
        }
        set_mtime(&dst, meta.mtime(), meta.mtime_nsec())?;
        Ok(())
    }

    fn inline(&mut self, file: &InlineFile, target: &Path) -> Result<()> {
        self.ensure_parents(target)?;
        let dst = self.staging.join(target);
        fs::write(&dst, file.content.as_bytes()).map_err(|e| EngineError::io("write", &dst, e))?;
        let (uid, gid) = self.chown.unwrap_or((0, 0));
        std::os::unix::fs::lchown(&dst, Some(uid), Some(gid))
            .map_err(|e| EngineError::io("change the owner of", &dst, e))?;
        let mode = self.mode_for(file.mode, false);
        fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
            .map_err(|e| EngineError::io("set the mode of", &dst, e))?;
        Ok(())
    }

    /// ADD of a local tar archive (plain, gzip or zstd): its contents go into `dest`.
    fn unpack(&mut self, archive: &Path, dest: &Path) -> Result<()> {
        let file = fs::File::open(archive).map_err(|e| EngineError::io("open", archive, e))?;
        let reader = Decompressor::new(file).map_err(|e| EngineError::io("read", archive, e))?;
        let mut tar = tar::Archive::new(reader);
        tar.set_preserve_permissions(true);
        tar.set_preserve_ownerships(true);
        tar.set_preserve_mtime(true);
        tar.unpack(self.staging.join(dest))
            .map_err(|e| EngineError::io("extract", archive, e))
    }

    /// Applies directory metadata, deepest first; returns whether anything was written.
    fn finish(mut self) -> Result<bool> {
        self.fixups
            .sort_by_key(|f| std::cmp::Reverse(f.path.components().count()));
        for fixup in &self.fixups {
            fs::set_permissions(&fixup.path, fs::Permissions::from_mode(fixup.mode))
                .map_err(|e| EngineError::io("set the mode of", &fixup.path, e))?;
            std::os::unix::fs::lchown(&fixup.path, Some(fixup.owner.0), Some(fixup.owner.1))
                .map_err(|e| EngineError::io("change the owner of", &fixup.path, e))?;
            if let Some((secs, nanos)) = fixup.mtime {
                set_mtime(&fixup.path, secs, nanos)?;
            }
        }
        let wrote = fs::read_dir(self.staging)
            .map_err(|e| EngineError::io("read", self.staging, e))?
            .next()
            .is_some();
        Ok(wrote)
    }
}

fn has_included_file(tree: &Tree, rel: &Path) -> Result<bool> {
    for name in tree.list(rel)? {
        let child = rel.join(&name);
        if tree.included(&child)? {
            return Ok(true);
        }
        if tree.lookup(&child).is_some_and(|(_, m)| m.is_dir()) && has_included_file(tree, &child)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn set_mtime(path: &Path, secs: i64, nanos: i64) -> Result<()> {
    let time = Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| EngineError::io("set the time of", path, e.into()))
}

/// Whether the file is a tar archive, maybe gzip- or zstd-compressed (the `ustar` magic at offset 257).
fn is_tar_archive(path: &Path) -> bool {
    let Ok(file) = fs::File::open(path) else {
        return false;
    };
    let Ok(reader) = Decompressor::new(file) else {
        return false;
    };
    let mut header = Vec::with_capacity(512);
    if reader.take(512).read_to_end(&mut header).is_err() || header.len() < 262 {
        return false;
    }
    &header[257..262] == b"ustar"
}

/// `--chmod`: an octal mode, or chmod(1)'s symbolic clauses (`u+x`, `go-w`, `a=rX`), as newer BuildKit accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chmod {
    /// Every copied file and directory gets this mode.
    Octal(u32),
    /// Applied to each entry's own mode.
    Symbolic(Vec<Clause>),
}

/// One symbolic clause: who, how, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Clause {
    /// Bits of the classes named (`u` 0o4700, `g` 0o2070, `o` 0o1007, none or `a`: all).
    who: u32,
    /// `+`, `-` or `=`.
    op: char,
    /// The permission letters.
    perms: String,
}

impl Chmod {
    pub(crate) fn parse(spec: &str) -> Result<Chmod> {
        if let Ok(mode) = u32::from_str_radix(spec, 8) {
            return if mode <= 0o7777 {
                Ok(Chmod::Octal(mode))
            } else {
                Err(EngineError::invalid(format!("invalid chmod {spec}")))
            };
        }
        let invalid = || EngineError::invalid(format!("invalid chmod {spec}"));
        let mut clauses = Vec::new();
        for part in spec.split(',') {
            let split = part.find(['+', '-', '=']).ok_or_else(invalid)?;
            let (who_text, rest) = part.split_at(split);
            let mut who = 0;
            for c in who_text.chars() {
                who |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    'a' => 0o7777,
                    _ => return Err(invalid()),
                };
            }
            if who == 0 {
                who = 0o7777;
            }
            let mut chars = rest.chars();
            let op = chars.next().ok_or_else(invalid)?;
            let perms: String = chars.collect();
            if perms.chars().any(|c| !"rwxXst".contains(c)) {
                return Err(invalid());
            }
            clauses.push(Clause { who, op, perms });
        }
        Ok(Chmod::Symbolic(clauses))
    }

    pub(crate) fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Chmod::Octal(mode) => return *mode,
            Chmod::Symbolic(clauses) => clauses,
        };
        let mut mode = mode & 0o7777;
        for clause in clauses {
            let mut bits = 0;
            for p in clause.perms.chars() {
                bits |= match p {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' if is_dir || mode & 0o111 != 0 => 0o111,
                    's' => 0o6000,
                    't' => 0o1000,
                    _ => 0,
                };
            }
            let bits = bits & clause.who;
            mode = match clause.op {
                '+' => mode | bits,
                '-' => mode & !bits,
                _ => (mode & !clause.who) | bits,
            };
        }
        mode
    }
}

/// `--chown=user[:group]`: numbers, or names from the destination's `/etc/passwd` and `/etc/group`. Without a
/// group, a user name takes its primary group from `/etc/passwd` and a uid is also the gid (BuildKit's
/// `readUser`; Docker's docs only describe the numeric case).
fn resolve_chown(spec: &str, view: &LayerView) -> Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = |file: &str, name: &str, what: &str| -> Result<u32> {
        if let Ok(id) = name.parse::<u32>() {
            return Ok(id);
        }
        let text = view
            .read_file(file)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.len() > 2 && fields[0] == name).then(|| fields[2].parse().ok())?
            })
            .ok_or_else(|| {
                EngineError::invalid(format!(
                    "unable to convert uid/gid chown string to host mapping: can't find {what} for user {name}: no such {what}: {name}"
                ))
            })
    };
    let uid = lookup("/etc/passwd", user, "uid")?;
    let gid = match group {
        Some(group) => lookup("/etc/group", group, "gid")?,
        None if user.parse::<u32>().is_err() => primary_gid(view, user).unwrap_or(uid),
        None => uid,
    };
    Ok((uid, gid))
}

/// The fourth field of `name`'s `/etc/passwd` entry.
fn primary_gid(view: &LayerView, name: &str) -> Option<u32> {
    let passwd = view.read_file("/etc/passwd")?;
    String::from_utf8_lossy(&passwd).lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 3 && fields[0] == name).then(|| fields[3].parse().ok())?
    })
}

/// WORKDIR's directory: created (with its parents) unless it already is a directory. Returns whether anything
/// was written.
pub(crate) fn mkdir(mkdir: &Mkdir, dest_view: &LayerView, staging: &Path) -> Result<bool> {
    let target = dest_view.resolve(&clean(Path::new(&mkdir.path)), true);
    if target.as_os_str().is_empty() || dest_view.lookup(&target).is_some_and(|(_, m)| m.is_dir()) {
        return Ok(false);
    }
    let owner = if mkdir.user.is_empty() {
        (0, 0)
    } else {
        let text = |path: &str| {
            String::from_utf8_lossy(&dest_view.read_file(path).unwrap_or_default()).into_owned()
        };
        let user =
            hoist_sandbox::resolve_user(&mkdir.user, &text("/etc/passwd"), &text("/etc/group"))
                .map_err(|source| EngineError::Sandbox {
                    what: format!("failed to resolve the owner of {}", mkdir.path),
                    source: Box::new(source),
                })?;
        (user.user.uid, user.user.gid)
    };
    let mut copier = Copier {
        staging,
        dest_view,
        exclude: None,
        chown: Some(owner),
        chmod: None,
        fixups: Vec::new(),
        linked: std::collections::HashMap::new(),
    };
    copier.ensure_parents(&target)?;
    copier.make_dir(&target, None, None)?;
    if let Some(last) = copier.fixups.last_mut() {
        last.mode = mkdir.mode;
    }
    copier.finish()
}

#[cfg(test)]
mod tests {
    use super::Chmod;

    #[test]
    fn chmod_octal_and_symbolic() {
        let apply = |spec: &str, mode: u32, dir: bool| Chmod::parse(spec).unwrap().apply(mode, dir);
        assert_eq!(apply("0640", 0o777, false), 0o640);
        assert_eq!(apply("755", 0o600, true), 0o755);
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("go-w", 0o666, false), 0o644);
        assert_eq!(apply("a=rX", 0o600, false), 0o444);
        assert_eq!(apply("a=rX", 0o700, false), 0o555);
        assert_eq!(apply("a=rX", 0o600, true), 0o555);
        assert_eq!(apply("+x,o-r", 0o644, false), 0o751);
        assert!(Chmod::parse("88").is_err());
        assert!(Chmod::parse("u+q").is_err());
        assert!(Chmod::parse("17777").is_err());
    }
}
