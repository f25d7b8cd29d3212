//! COPY and ADD: the selected sources are described as the op's layer (BuildKit's FileOp copy, as a diff of its
//! own): a [`LayerEntries`] map from destination path to metadata and the source file holding the data. The tar is
//! then written from that description in one pass, each source file read once; nothing is copied on disk first.
//!
//! Sources come from a [`Tree`]: the build context on the host (filtered by `.dockerignore` and `--exclude`) or
//! a filesystem of layers seen through a [`LayerView`]. The destination filesystem is only inspected (is the
//! destination an existing directory, what do its parents look like, who is `--chown`'s user).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use hoist_context::{ContextFilter, filepath_match};
use hoist_layer::{
    ApplyOptions, Decompressor, EntriesError, EntryContent, LayerEntries, LayerEntry, WriteOptions,
};
use hoist_plan::op::{CopySource, FileCopy, InlineFile, Mkdir};

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

    /// The entry `name` of the directory `dir`, a path [`Tree::resolve`] gave (with its last element followed):
    /// what `lookup(dir/name)` finds, without resolving `dir` again.
    fn child(&self, dir: &Path, name: &OsStr) -> Option<(PathBuf, fs::Metadata)> {
        match self {
            Tree::Context { root, .. } => {
                let path = root.join(dir).join(name);
                let meta = fs::symlink_metadata(&path).ok()?;
                Some((path, meta))
            }
            Tree::Layers { view } => view.lookup(&dir.join(name)),
        }
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

    /// The extended attributes a copy of `abs` carries: the source's, as BuildKit's copy (fsutil's
    /// `copyXAttrs`) keeps them, `--chown` or not. The build context reaches BuildKit through fsutil's transfer,
    /// which sets a file's xattrs before its owner, and that chown clears `security.capability`; it sets a
    /// symlink's xattrs on what the link points to. So a context file arrives without a capability and a context
    /// symlink without xattrs.
    fn xattrs(&self, abs: &Path, meta: &fs::Metadata) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let context = matches!(self, Tree::Context { .. });
        if context && meta.file_type().is_symlink() {
            return Ok(Vec::new());
        }
        let mut xattrs = hoist_layer::read_xattrs(abs)
            .map_err(|e| EngineError::io("read the extended attributes of", abs, e))?;
        if context {
            xattrs.retain(|(name, _)| name != b"security.capability");
        }
        Ok(xattrs)
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

/// A COPY's (or WORKDIR's) layer, described before a byte of it is written.
pub(crate) struct CopyLayer {
    entries: LayerEntries,
    /// Archives ADD extracted: their files are entry sources until the layer is written.
    _extracted: Vec<tempfile::TempDir>,
}

impl CopyLayer {
    /// Whether the layer changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the layer tar to `out`, reading each source file once; returns the number of entries.
    pub(crate) fn write(&self, out: &mut (dyn Write + Send)) -> Result<u64> {
        hoist_layer::write_entries(&self.entries, out, &WriteOptions::new())
            .map(|summary| summary.entries)
            .map_err(|e| EngineError::Layer {
                what: "failed to write a COPY layer".to_owned(),
                source: Box::new(e),
            })
    }

    /// Creates the layer's files in the directory `dir`, as applying the layer would.
    fn materialize(&self, dir: &Path) -> Result<()> {
        let (reader, writer) = io::pipe().map_err(|e| EngineError::io("copy into", dir, e))?;
        std::thread::scope(|scope| {
            let written = scope.spawn(move || {
                hoist_layer::write_entries(&self.entries, writer, &WriteOptions::new())
            });
            let applied = hoist_layer::apply_layer(reader, dir, &ApplyOptions::new());
            let written = written
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            let failed = |source: Box<dyn std::error::Error + Send + Sync>| EngineError::Layer {
                what: format!("failed to copy files into {}", dir.display()),
                source,
            };
            match (written, applied) {
                // A source that failed is the cause; a closed pipe is only the writer seeing the apply stop.
                (Err(e), _) if !matches!(e, hoist_layer::WriteError::Write(_)) => {
                    Err(failed(Box::new(e)))
                }
                (_, Err(e)) => Err(failed(Box::new(e))),
                (Err(e), Ok(_)) => Err(failed(Box::new(e))),
                (Ok(_), Ok(_)) => Ok(()),
            }
        })
    }
}

struct Copier<'a> {
    entries: LayerEntries,
    dest_view: &'a LayerView,
    /// `--exclude`, matched against paths relative to the source being copied (as BuildKit's copy does).
    exclude: Option<ContextFilter>,
    chown: Option<(u32, u32)>,
    chmod: Option<Chmod>,
    /// The time of new directories and heredoc files (the time the op ran, as a copy made then would have).
    now: i64,
    /// Where ADD extracts archives.
    scratch: &'a Path,
    extracted: Vec<tempfile::TempDir>,
}

impl<'a> Copier<'a> {
    fn new(dest_view: &'a LayerView, scratch: &'a Path) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Copier {
            entries: LayerEntries::new(),
            dest_view,
            exclude: None,
            chown: None,
            chmod: None,
            now,
            scratch,
            extracted: Vec::new(),
        }
    }
}

/// Copies what `copy` selects from `trees` (indexed like the op's inputs) into the directory `dir` (a mount's
/// files). Returns whether anything was written.
pub(crate) fn copy(
    copy: &FileCopy,
    is_add: bool,
    trees: &[Option<Tree>],
    dest_view: &LayerView,
    users: &LayerView,
    dir: &Path,
) -> Result<bool> {
    // ADD's archives would be extracted beside `dir`, not into it.
    let scratch = dir.parent().unwrap_or(dir);
    let layer = plan(copy, is_add, trees, dest_view, users, scratch)?;
    layer.materialize(dir)?;
    Ok(!layer.is_empty())
}

/// The layer `copy` makes from `trees` (indexed like the op's inputs). `dest_view` is the filesystem the files land
/// on (empty for `--link`); `users` is where `--chown` names are looked up; ADD extracts archives in `scratch`.
pub(crate) fn plan(
    copy: &FileCopy,
    is_add: bool,
    trees: &[Option<Tree>],
    dest_view: &LayerView,
    users: &LayerView,
    scratch: &Path,
) -> Result<CopyLayer> {
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
        exclude,
        chown,
        chmod,
        ..Copier::new(dest_view, scratch)
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
                let name = rel.file_name().map(|n| n.to_owned()).unwrap_or_default();
                // A path through symlinks is the path they lead to, for `.dockerignore` too (the walk of a
                // directory below checks its files' real paths).
                let rel = tree.resolve(&rel, false);
                // The source path itself is followed when it is a symlink (BuildKit's FollowSymlinks), inside
                // its tree. A dangling link (or a loop, or a link to what `.dockerignore` leaves out of the
                // context) fails as a missing source would: BuildKit's checksum of the source follows it to a
                // path that is not there.
                let (rel, abs, meta) = if meta.file_type().is_symlink() {
                    let followed = tree.resolve(&rel, true);
                    match tree.lookup(&followed) {
                        Some((a, m))
                            if !m.file_type().is_symlink() && visible(tree, &followed)? =>
                        {
                            (followed, a, m)
                        }
                        _ => {
                            return Err(EngineError::SourceNotFound {
                                path: format!("/{}", followed.display()),
                            });
                        }
                    }
                } else {
                    (rel, abs, meta)
                };
                if meta.is_dir() {
                    // A directory's contents go into the destination, which (when new) is made as fsutil's
                    // `MkdirAll(dest, 0755, chown)` makes it: not with the source directory's mode or owner. With
                    // `--parents` the directory itself is copied, metadata included.
                    let (target, source) = if copy.parents {
                        let source = SourceDir {
                            tree,
                            abs: &abs,
                            meta: &meta,
                        };
                        (dest.join(&kept), Some(source))
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
                    copier.ensure_dir(&target, source)?;
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
                        copier.ensure_dir(&dest, None)?;
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
    Ok(copier.finish())
}

/// A directory of a source tree, whose metadata a new directory of the layer copies.
#[derive(Clone, Copy)]
struct SourceDir<'s> {
    tree: &'s Tree,
    abs: &'s Path,
    meta: &'s fs::Metadata,
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

/// Whether a source path was sent with the context: the path it leads to (symlinks in its parents followed) is not
/// `.dockerignore`d, or is an ignored directory that holds a `!` exception (fsutil sends such a directory with the
/// files the exceptions keep). fsutil sends files by their own paths: a link is sent, and what it leads to only if
/// that is sent too.
fn visible(tree: &Tree, rel: &Path) -> Result<bool> {
    let rel = &tree.resolve(rel, false);
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

    /// Adds the parents of `target` (relative to the root) to the layer, with the metadata they have in the
    /// destination filesystem, or as new 0755 directories.
    fn ensure_parents(&mut self, target: &Path) -> Result<()> {
        let mut rel = PathBuf::new();
        let parts: Vec<_> = target.components().collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            rel.push(part);
            self.make_dir(&rel, None)?;
        }
        Ok(())
    }

    /// Adds `target` as a directory (and its parents); a new one copies `source`'s metadata when given.
    fn ensure_dir(&mut self, target: &Path, source: Option<SourceDir<'_>>) -> Result<()> {
        self.ensure_parents(target)?;
        self.make_dir(target, source)
    }

    /// Adds the directory `rel` unless the layer has an entry there already (of any type: a file there makes
    /// adding anything below it fail).
    fn make_dir(&mut self, rel: &Path, source: Option<SourceDir<'_>>) -> Result<()> {
        if rel.as_os_str().is_empty() || self.entries.get(rel).is_some() {
            return Ok(());
        }
        let existing = self.dest_view.lookup(rel);
        // fsutil never turns a non-directory of the destination (a file, a symlink, even one to a directory) into
        // a directory: a copied directory stops there (`copyDirectoryOnly`), and so does `MkdirAll` making the
        // destination's parents.
        if existing.as_ref().is_some_and(|(_, m)| !m.is_dir()) {
            return Err(EngineError::invalid(match source {
                Some(_) => format!("cannot copy to non-directory: /{}", rel.display()),
                None => format!("mkdir /{}: not a directory", rel.display()),
            }));
        }
        let entry = match (existing, source) {
            // An existing directory keeps what it has, xattrs included: the layer must not change it.
            (Some((path, m)), _) => LayerEntry {
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime: m.mtime(),
                xattrs: hoist_layer::read_xattrs(&path)
                    .map_err(|e| EngineError::io("read the extended attributes of", &path, e))?,
                ..LayerEntry::new(EntryContent::Directory)
            },
            (None, Some(source)) => {
                let (uid, gid) = self.owner(source.tree, source.meta);
                LayerEntry {
                    mode: self.mode_for(source.meta.mode() & 0o7777, true),
                    uid,
                    gid,
                    mtime: source.meta.mtime(),
                    xattrs: source.tree.xattrs(source.abs, source.meta)?,
                    ..LayerEntry::new(EntryContent::Directory)
                }
            }
            (None, None) => {
                let (uid, gid) = self.chown.unwrap_or((0, 0));
                LayerEntry {
                    mode: 0o755,
                    uid,
                    gid,
                    mtime: self.now,
                    ..LayerEntry::new(EntryContent::Directory)
                }
            }
        };
        self.add(rel, entry)
    }

    /// Adds (or replaces) the entry at `rel`.
    fn add(&mut self, rel: &Path, entry: LayerEntry) -> Result<()> {
        self.entries
            .insert(rel, entry)
            .map(drop)
            .map_err(|e| match e {
                // fsutil's words.
                EntriesError::NotADirectory { parent, .. } => EngineError::invalid(format!(
                    "cannot copy to non-directory: /{}",
                    parent.display()
                )),
                e @ EntriesError::InvalidPath { .. } => EngineError::Layer {
                    what: format!("failed to copy to /{}", rel.display()),
                    source: Box::new(e),
                },
            })
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
        // Resolved once per directory: its entries are then one `lstat` each, not a walk of their whole path.
        let dir = tree.resolve(rel, true);
        for name in tree.list(rel)? {
            let child = rel.join(&name);
            let Some((abs, meta)) = tree.child(&dir, &name) else {
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
                    let source = SourceDir {
                        tree,
                        abs: &abs,
                        meta: &meta,
                    };
                    self.make_dir(&child_target, Some(source))?;
                    self.tree_contents(tree, base, &child, &child_target)?;
                } else {
                    // An excluded directory may hold `!` exceptions: create it only if one matches.
                    if has_included_file(tree, &child)? {
                        let source = SourceDir {
                            tree,
                            abs: &abs,
                            meta: &meta,
                        };
                        self.make_dir(&child_target, Some(source))?;
                        self.tree_contents(tree, base, &child, &child_target)?;
                    }
                }
            } else if included {
                self.entry(tree, &abs, &meta, &target.join(&name))?;
            }
        }
        Ok(())
    }

    /// Adds one non-directory entry at `target` (relative to the root).
    fn entry(&mut self, tree: &Tree, abs: &Path, meta: &fs::Metadata, target: &Path) -> Result<()> {
        // fsutil never replaces a directory (copied earlier, or in the destination) with a file.
        let over_directory = self.entries.get(target).is_some_and(LayerEntry::is_dir)
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
        let (uid, gid) = self.owner(tree, meta);
        let file_type = meta.file_type();
        let entry = if file_type.is_symlink() {
            let link = fs::read_link(abs).map_err(|e| EngineError::io("read", abs, e))?;
            LayerEntry {
                mode: 0o777,
                ..LayerEntry::new(EntryContent::Symlink { target: link })
            }
        } else if file_type.is_file() {
            LayerEntry {
                mode: self.mode_for(meta.mode() & 0o7777, false),
                // Several links to one file stay hard links to one another.
                hard_link_key: (meta.nlink() > 1).then(|| (meta.dev(), meta.ino())),
                ..LayerEntry::new(EntryContent::File {
                    source: abs.to_path_buf(),
                })
            }
        } else {
            // Devices, fifos and sockets are not copied (BuildKit copies them only between layer filesystems).
            return Ok(());
        };
        self.add(
            target,
            LayerEntry {
                uid,
                gid,
                mtime: meta.mtime(),
                xattrs: tree.xattrs(abs, meta)?,
                ..entry
            },
        )
    }

    fn inline(&mut self, file: &InlineFile, target: &Path) -> Result<()> {
        self.ensure_parents(target)?;
        if self.entries.get(target).is_some_and(LayerEntry::is_dir) {
            return Err(EngineError::io(
                "write",
                format!("/{}", target.display()),
                io::Error::from(io::ErrorKind::IsADirectory),
            ));
        }
        let (uid, gid) = self.chown.unwrap_or((0, 0));
        let entry = LayerEntry {
            mode: self.mode_for(file.mode, false),
            uid,
            gid,
            mtime: self.now,
            ..LayerEntry::new(EntryContent::Bytes(file.content.as_bytes().to_vec()))
        };
        self.add(target, entry)
    }

    /// ADD of a local tar archive (plain, gzip or zstd): its contents go into `dest`, with the metadata the archive
    /// gives them, xattrs included (neither `--chown` nor `--chmod` applies). The archive is extracted into a
    /// scratch directory whose files are the entries' sources.
    fn unpack(&mut self, archive: &Path, dest: &Path) -> Result<()> {
        let extracted = tempfile::Builder::new()
            .prefix("add-")
            .tempdir_in(self.scratch)
            .map_err(|e| EngineError::io("create a directory in", self.scratch, e))?;
        let file = fs::File::open(archive).map_err(|e| EngineError::io("open", archive, e))?;
        let reader = Decompressor::new(file).map_err(|e| EngineError::io("read", archive, e))?;
        let mut tar = tar::Archive::new(reader);
        tar.set_preserve_permissions(true);
        tar.set_preserve_ownerships(true);
        tar.set_preserve_mtime(true);
        let xattrs = unpack_archive(&mut tar, extracted.path())
            .map_err(|e| EngineError::io("extract", archive, e))?;
        self.extracted_contents(extracted.path(), Path::new(""), dest, &xattrs)?;
        self.extracted.push(extracted);
        Ok(())
    }

    /// Adds what `root/rel` holds to the layer at `target`, as extracting it there would: a directory the layer
    /// has already keeps its metadata, a file replaces a file, nothing replaces a directory with a file or
    /// the other way round.
    fn extracted_contents(
        &mut self,
        root: &Path,
        rel: &Path,
        target: &Path,
        xattrs: &ArchiveXattrs,
    ) -> Result<()> {
        let dir = root.join(rel);
        let mut names = fs::read_dir(&dir)
            .and_then(|entries| {
                entries
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<io::Result<Vec<_>>>()
            })
            .map_err(|e| EngineError::io("read", &dir, e))?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let meta =
                fs::symlink_metadata(&path).map_err(|e| EngineError::io("read", &path, e))?;
            let child = target.join(&name);
            let child_xattrs = xattrs.get(&rel.join(&name)).cloned().unwrap_or_default();
            let existing = self.entries.get(&child).map(LayerEntry::is_dir);
            let file_type = meta.file_type();
            if file_type.is_dir() {
                match existing {
                    Some(true) => {}
                    Some(false) => {
                        return Err(EngineError::invalid(format!(
                            "cannot replace /{} with a directory",
                            child.display()
                        )));
                    }
                    None => {
                        let entry = LayerEntry {
                            mode: meta.mode() & 0o7777,
                            uid: meta.uid(),
                            gid: meta.gid(),
                            mtime: meta.mtime(),
                            xattrs: child_xattrs,
                            ..LayerEntry::new(EntryContent::Directory)
                        };
                        self.add(&child, entry)?;
                    }
                }
                self.extracted_contents(root, &rel.join(&name), &child, xattrs)?;
                continue;
            }
            if existing == Some(true) {
                return Err(EngineError::invalid(format!(
                    "cannot replace to directory /{} with file",
                    child.display()
                )));
            }
            let rdev = meta.rdev();
            let content = if file_type.is_file() {
                EntryContent::File { source: path }
            } else if file_type.is_symlink() {
                let target = fs::read_link(&path).map_err(|e| EngineError::io("read", &path, e))?;
                EntryContent::Symlink { target }
            } else if file_type.is_char_device() {
                EntryContent::CharDevice {
                    major: rustix::fs::major(rdev),
                    minor: rustix::fs::minor(rdev),
                }
            } else if file_type.is_block_device() {
                EntryContent::BlockDevice {
                    major: rustix::fs::major(rdev),
                    minor: rustix::fs::minor(rdev),
                }
            } else if file_type.is_fifo() {
                EntryContent::Fifo
            } else {
                continue;
            };
            let entry = LayerEntry {
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: meta.mtime(),
                xattrs: child_xattrs,
                hard_link_key: (meta.nlink() > 1).then(|| (meta.dev(), meta.ino())),
                ..LayerEntry::new(content)
            };
            self.add(&child, entry)?;
        }
        Ok(())
    }

    fn finish(self) -> CopyLayer {
        CopyLayer {
            entries: self.entries,
            _extracted: self.extracted,
        }
    }
}

/// The xattrs of an archive's entries (those a layer carries), by path relative to the archive's root.
type ArchiveXattrs = HashMap<PathBuf, Vec<(Vec<u8>, Vec<u8>)>>;

/// Records the xattrs of an entry the archive unpacked (the tar crate skips one leading outside): the last entry
/// of a path is what it holds.
fn record(xattrs: &mut ArchiveXattrs, path: PathBuf, found: Vec<(Vec<u8>, Vec<u8>)>) {
    if found.is_empty() {
        xattrs.remove(&path);
    } else {
        xattrs.insert(path, found);
    }
}

/// Unpacks `tar` into `dir` as `tar::Archive::unpack` does (directories last, so that their times stay), and
/// returns the xattrs its entries carry (PAX `SCHILY.xattr.*` records), as BuildKit's ADD keeps them. They go
/// into the layer from here: setting them on the scratch files would fail where the host refuses one (an
/// SELinux label, overlayfs's own), and the layer needs nothing else from those files.
fn unpack_archive<R: Read>(tar: &mut tar::Archive<R>, dir: &Path) -> io::Result<ArchiveXattrs> {
    // Canonical, as the tar crate's own unpack makes it: an entry's path is checked to stay inside it.
    let dir = &dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut xattrs = ArchiveXattrs::new();
    let mut directories = Vec::new();
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = clean(&entry.path()?);
        let mut found = Vec::new();
        if let Some(records) = entry.pax_extensions()? {
            for record in records {
                let record = record?;
                if let Some(name) = record.key_bytes().strip_prefix(b"SCHILY.xattr.")
                    && hoist_layer::is_carried_xattr(name)
                {
                    found.push((name.to_vec(), record.value_bytes().to_vec()));
                }
            }
        }
        // A hard link is the file it links to, attributes included.
        if found.is_empty()
            && entry.header().entry_type().is_hard_link()
            && let Some(target) = entry.link_name()?
            && let Some(linked) = xattrs.get(&clean(&target))
        {
            found = linked.clone();
        }
        found.sort();
        if entry.header().entry_type() == tar::EntryType::Directory {
            directories.push((entry, path, found));
        } else if entry.unpack_in(dir)? {
            record(&mut xattrs, path, found);
        }
    }
    // Deepest first, as the tar crate does, so that a directory's time is set after its contents are written.
    directories.sort_by(|a, b| b.0.path_bytes().cmp(&a.0.path_bytes()));
    for (mut directory, path, found) in directories {
        if directory.unpack_in(dir)? {
            record(&mut xattrs, path, found);
        }
    }
    Ok(xattrs)
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

/// WORKDIR's directory: created (with its parents) unless it already is a directory (then the layer is empty).
pub(crate) fn mkdir(mkdir: &Mkdir, dest_view: &LayerView, scratch: &Path) -> Result<CopyLayer> {
    let target = dest_view.resolve(&clean(Path::new(&mkdir.path)), true);
    let mut copier = Copier::new(dest_view, scratch);
    match dest_view.lookup(&target) {
        _ if target.as_os_str().is_empty() => return Ok(copier.finish()),
        Some((_, meta)) if meta.is_dir() => return Ok(copier.finish()),
        // fsutil's `MkdirAll` does not replace a file.
        Some(_) => {
            return Err(EngineError::invalid(format!(
                "mkdir /{}: not a directory",
                target.display()
            )));
        }
        None => {}
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
    copier.chown = Some(owner);
    copier.ensure_parents(&target)?;
    let entry = LayerEntry {
        mode: mkdir.mode,
        uid: owner.0,
        gid: owner.1,
        mtime: copier.now,
        ..LayerEntry::new(EntryContent::Directory)
    };
    copier.add(&target, entry)?;
    Ok(copier.finish())
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
