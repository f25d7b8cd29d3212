//! Walking a build context with include, exclude and follow filters (fsutil's filtered
//! `Walk`), for hashing and copying.
//!
//! Order and contents follow fsutil: depth first, each directory's entries sorted by name
//! byte-wise, a directory before its contents, symlinks reported (never followed), the
//! root itself not reported. A directory that does not match the include patterns, or is
//! excluded but may hold a `!` exception, is still entered; it is reported only once
//! something inside it is, right before that entry. A directory that cannot hold anything
//! wanted is not entered at all, so a large excluded tree costs one `readdir` entry.

use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{ContextError, is_not_exist};
use crate::follow::{dedupe_paths, follow_links};
use crate::gopath;
use crate::pattern::{MatchInfo, PatternMatcher};
use crate::scoped::{bytes_path, resolve_in_root};

/// What to take from a context directory (fsutil's `FilterOpt`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkOptions {
    /// If not empty, only paths matching these patterns (or below a matching directory)
    /// are included. `!` exceptions are allowed.
    pub include_patterns: Vec<String>,
    /// Paths matching these `.dockerignore` patterns are left out.
    pub exclude_patterns: Vec<String>,
    /// Paths (wildcards allowed in the last element) to include together with the
    /// in-context targets of symlinks met on the way; added to the include patterns.
    pub follow_paths: Vec<String>,
}

/// The type of a context entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed; see [`Entry::link_target`]).
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

impl EntryKind {
    fn of(metadata: &Metadata) -> Self {
        let file_type = metadata.file_type();
        if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_symlink() {
            EntryKind::Symlink
        } else if file_type.is_fifo() {
            EntryKind::Fifo
        } else if file_type.is_socket() {
            EntryKind::Socket
        } else if file_type.is_char_device() {
            EntryKind::CharDevice
        } else if file_type.is_block_device() {
            EntryKind::BlockDevice
        } else {
            EntryKind::File
        }
    }
}

/// One entry of a context walk, with the metadata read by the walk (`lstat`), so callers
/// need not stat it again.
#[derive(Debug, Clone)]
pub struct Entry {
    path: PathBuf,
    kind: EntryKind,
    metadata: Metadata,
    link_target: Option<PathBuf>,
}

impl Entry {
    /// The path relative to the context root, `/`-separated (`dir/file`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry type.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// The full `lstat` result (inode, link count, device numbers, …).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// `st_mode`: permission bits and file type bits.
    pub fn mode(&self) -> u32 {
        self.metadata.mode()
    }

    /// Size in bytes (the target length for a symlink).
    pub fn size(&self) -> u64 {
        self.metadata.size()
    }

    /// Modification time: seconds and nanoseconds since the Unix epoch.
    pub fn mtime(&self) -> (i64, i64) {
        (self.metadata.mtime(), self.metadata.mtime_nsec())
    }

    /// Owner user id.
    pub fn uid(&self) -> u32 {
        self.metadata.uid()
    }

    /// Owner group id.
    pub fn gid(&self) -> u32 {
        self.metadata.gid()
    }

    /// The symlink's target exactly as stored (possibly absolute or pointing outside the
    /// context; it is never followed).
    pub fn link_target(&self) -> Option<&Path> {
        self.link_target.as_deref()
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }

    /// Refills this entry in place, reusing the path buffer.
    fn refill(&mut self, rel: &[u8], metadata: Metadata, link_target: Option<PathBuf>) {
        let mut buffer = std::mem::take(&mut self.path).into_os_string().into_vec();
        buffer.clear();
        buffer.extend_from_slice(rel);
        self.path = PathBuf::from(OsString::from_vec(buffer));
        self.kind = EntryKind::of(&metadata);
        self.metadata = metadata;
        self.link_target = link_target;
    }
}

/// Reads the entry at `rel` under `root` (lstat, plus readlink for a symlink). `None` if it
/// vanished.
fn load_entry(root: &Path, rel: &[u8]) -> Result<Option<Entry>, ContextError> {
    let abs = root.join(bytes_path(rel));
    let metadata = match fs::symlink_metadata(&abs) {
        Ok(metadata) => metadata,
        Err(err) if is_not_exist(&err) => return Ok(None),
        Err(source) => return Err(ContextError::Stat { path: abs, source }),
    };
    let link_target = read_link_if_symlink(&abs, &metadata)?;
    Ok(Some(Entry {
        path: bytes_path(rel).to_path_buf(),
        kind: EntryKind::of(&metadata),
        metadata,
        link_target,
    }))
}

fn read_link_if_symlink(abs: &Path, metadata: &Metadata) -> Result<Option<PathBuf>, ContextError> {
    if !metadata.file_type().is_symlink() {
        return Ok(None);
    }
    fs::read_link(abs)
        .map(Some)
        .map_err(|source| ContextError::ReadLink {
            path: abs.to_path_buf(),
            source,
        })
}

/// A compiled include/exclude pair: one filtering layer of a walk (fsutil's `filterFS`).
#[derive(Debug, Clone)]
pub struct ContextFilter {
    include: Option<PatternMatcher>,
    exclude: Option<PatternMatcher>,
}

impl ContextFilter {
    /// Compiles the patterns. An empty list means "no filter" for that side; a non-empty
    /// list of only blank patterns includes nothing (as upstream).
    pub fn new<S: AsRef<str>>(
        include_patterns: &[S],
        exclude_patterns: &[S],
    ) -> Result<Self, ContextError> {
        let strings = |patterns: &[S]| patterns.iter().map(|p| p.as_ref().to_string()).collect();
        let include = if include_patterns.is_empty() {
            None
        } else {
            Some(
                PatternMatcher::new(include_patterns.iter().map(AsRef::as_ref)).map_err(
                    |source| ContextError::InvalidIncludePatterns {
                        patterns: strings(include_patterns),
                        source,
                    },
                )?,
            )
        };
        let exclude = if exclude_patterns.is_empty() {
            None
        } else {
            Some(
                PatternMatcher::new(exclude_patterns.iter().map(AsRef::as_ref)).map_err(
                    |source| ContextError::InvalidExcludePatterns {
                        patterns: strings(exclude_patterns),
                        source,
                    },
                )?,
            )
        };
        Ok(ContextFilter { include, exclude })
    }

    /// The include matcher, if any.
    pub fn include(&self) -> Option<&PatternMatcher> {
        self.include.as_ref()
    }

    /// The exclude matcher, if any.
    pub fn exclude(&self) -> Option<&PatternMatcher> {
        self.exclude.as_ref()
    }

    /// Whether a relative path passes this filter on its own (fsutil's filtered `Open`):
    /// it or a parent matches the include patterns, and neither it nor a parent is
    /// excluded. The path is cleaned first, inside the context (`../x` is `x`).
    pub fn is_included(&self, path: impl AsRef<[u8]>) -> Result<bool, ContextError> {
        let path = gopath::clean_in_root(path.as_ref());
        if let Some(include) = &self.include {
            let matched = include.matches_or_parent_matches(&path).map_err(|source| {
                ContextError::MatchInclude {
                    path: bytes_path(&path).to_path_buf(),
                    source,
                }
            })?;
            if !matched {
                return Ok(false);
            }
        }
        if let Some(exclude) = &self.exclude {
            let matched = exclude.matches_or_parent_matches(&path).map_err(|source| {
                ContextError::MatchExclude {
                    path: bytes_path(&path).to_path_buf(),
                    source,
                }
            })?;
            if matched {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn is_noop(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }
}

/// Walks a context directory through one or more [`ContextFilter`]s.
///
/// ```no_run
/// use hoist_context::{ContextWalker, ContextError, WalkOptions, find_ignore_file};
/// let dir = std::path::Path::new("app");
/// let ignore = find_ignore_file(dir, Some(&dir.join("Dockerfile")))?;
/// let options = WalkOptions {
///     exclude_patterns: ignore.map(|f| f.patterns).unwrap_or_default(),
///     ..WalkOptions::default()
/// };
/// let walker = ContextWalker::new(dir, &options)?;
/// walker.walk(|entry| {
///     let _ = (entry.path(), entry.kind(), entry.size(), entry.link_target());
///     Ok::<(), ContextError>(())
/// })?;
/// # Ok::<(), ContextError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ContextWalker {
    root: PathBuf,
    /// Innermost (applied to the filesystem) first.
    filters: Vec<ContextFilter>,
}

impl ContextWalker {
    /// Prepares a walk of `context_dir` (symlinks in the path to it are resolved).
    ///
    /// Follow paths are resolved here, against the directory as it is now, and added to
    /// the include patterns (fsutil's `NewFilterFS`).
    pub fn new(context_dir: impl AsRef<Path>, options: &WalkOptions) -> Result<Self, ContextError> {
        let given = context_dir.as_ref();
        let root = fs::canonicalize(given).map_err(|source| ContextError::ResolveRoot {
            path: given.to_path_buf(),
            source,
        })?;
        let metadata = fs::metadata(&root).map_err(|source| ContextError::ResolveRoot {
            path: given.to_path_buf(),
            source,
        })?;
        if !metadata.is_dir() {
            return Err(ContextError::RootNotDir { path: root });
        }
        let mut include = options.include_patterns.clone();
        if !options.follow_paths.is_empty()
            && let Some(targets) = follow_links(&root, &options.follow_paths)?
        {
            include.extend(targets);
            include = dedupe_paths(include).unwrap_or_default();
        }
        let filter = ContextFilter::new(&include, &options.exclude_patterns)?;
        Ok(ContextWalker {
            root,
            filters: vec![filter],
        })
    }

    /// Adds a filter applied after the existing ones (fsutil's filter-over-filter): it
    /// only sees what they let through, and can remove more but never bring anything back.
    #[must_use]
    pub fn with_filter(mut self, filter: ContextFilter) -> Self {
        self.filters.push(filter);
        self
    }

    /// The resolved context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Calls `visit` for each included entry, in walk order.
    ///
    /// Stops at the first error, from the walk or from `visit`. A directory that cannot be
    /// read fails the walk, unless it is only entered in search of exceptions (then it is
    /// passed over, as fsutil does for permission errors). Entries removed while walking
    /// are passed over.
    pub fn walk<E, F>(&self, visit: F) -> Result<(), E>
    where
        E: From<ContextError>,
        F: FnMut(&Entry) -> Result<(), E>,
    {
        let layers = self
            .filters
            .iter()
            .filter(|f| !f.is_noop())
            .map(Layer::new)
            .collect();
        let mut walk = Walk {
            root: &self.root,
            layers,
            scratch: None,
            abs: self.root.clone(),
            rel: Vec::new(),
            visit,
        };
        walk.walk_dir()
    }

    /// Opens a file of the context for reading, as the filtered context would serve it.
    ///
    /// The relative path is cleaned inside the context (`../x` is `x`); a path filtered
    /// out is [`ContextError::Excluded`]. Symlinks are followed inside the context only
    /// (an absolute target counts from the context root).
    pub fn open(&self, path: impl AsRef<Path>) -> Result<File, ContextError> {
        let rel = gopath::clean_in_root(path.as_ref().as_os_str().as_bytes());
        let rel_path = bytes_path(&rel).to_path_buf();
        for filter in &self.filters {
            if !filter.is_included(&rel)? {
                return Err(ContextError::Excluded { path: rel_path });
            }
        }
        resolve_in_root(&self.root, &rel_path)
            .and_then(File::open)
            .map_err(|source| ContextError::Open {
                path: rel_path,
                source,
            })
    }
}

/// What a visitor tells the walk (the `fs.SkipDir` protocol): after a directory, do not
/// enter it; after a file, skip the rest of its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Continue,
    SkipDir,
}

/// The entry being visited, as far as it is known.
enum Current<'a> {
    /// From the directory listing; metadata not read yet. `scratch` is the buffer to read
    /// it into, `abs` its host path.
    Listed {
        dirent: &'a fs::DirEntry,
        abs: &'a Path,
        scratch: &'a mut Option<Entry>,
    },
    /// Already read, and let through by an inner layer.
    Loaded(&'a Entry),
    /// A directory whose listing failed (visited together with the error).
    Unreadable,
}

/// Reads the current entry, or passes on the one already read. `None` if it vanished.
fn load_current<'e>(current: Current<'e>, rel: &[u8]) -> Result<Option<&'e Entry>, ContextError> {
    match current {
        Current::Loaded(entry) => Ok(Some(entry)),
        Current::Unreadable => Ok(None),
        Current::Listed {
            dirent,
            abs,
            scratch,
        } => {
            // DirEntry::metadata is an fstatat on the open directory: no path lookup.
            let metadata = match dirent.metadata() {
                Ok(metadata) => metadata,
                Err(err) if is_not_exist(&err) => return Ok(None),
                Err(source) => {
                    return Err(ContextError::Stat {
                        path: abs.to_path_buf(),
                        source,
                    });
                }
            };
            let link_target = read_link_if_symlink(abs, &metadata)?;
            match scratch {
                Some(entry) => entry.refill(rel, metadata, link_target),
                None => {
                    *scratch = Some(Entry {
                        path: bytes_path(rel).to_path_buf(),
                        kind: EntryKind::of(&metadata),
                        metadata,
                        link_target,
                    });
                }
            }
            let filled: &'e Option<Entry> = scratch;
            Ok(filled.as_ref())
        }
    }
}

/// A directory on a layer's path from the root, possibly not reported yet.
#[derive(Debug, Default)]
struct VisitedDir {
    /// The directory's relative path followed by `/`.
    path_with_sep: Vec<u8>,
    include_info: MatchInfo,
    exclude_info: MatchInfo,
    /// Already passed on.
    reported: bool,
    /// A later layer or the visitor refused it: skip everything below.
    skipped: bool,
    /// The entry, kept when the directory is held back by an outer layer (the innermost
    /// layer reads it from disk when needed).
    entry: Option<Entry>,
}

/// The state of one filter during a walk.
struct Layer<'f> {
    filter: &'f ContextFilter,
    /// Directories from the root down to the current path's parent. Slots are reused:
    /// `depth` of them are live.
    dirs: Vec<VisitedDir>,
    depth: usize,
    scratch_include: MatchInfo,
    scratch_exclude: MatchInfo,
}

impl<'f> Layer<'f> {
    fn new(filter: &'f ContextFilter) -> Self {
        Layer {
            filter,
            dirs: Vec::new(),
            depth: 0,
            scratch_include: MatchInfo::default(),
            scratch_exclude: MatchInfo::default(),
        }
    }

    /// fsutil's `filterFS.Walk` callback for one path: decide, report held-back parents,
    /// pass the entry on to `outer` (and finally `visit`).
    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the walk callback: path, type, error, entry, and where to pass it on"
    )]
    fn visit<E, F>(
        &mut self,
        root: &Path,
        path: &[u8],
        is_dir: bool,
        walk_err: Option<io::Error>,
        current: Current<'_>,
        outer: &mut [Layer<'_>],
        visit: &mut F,
    ) -> Result<Control, E>
    where
        E: From<ContextError>,
        F: FnMut(&Entry) -> Result<(), E>,
    {
        // Leave the directories that do not contain `path`.
        while self.depth > 0 && !path.starts_with(&self.dirs[self.depth - 1].path_with_sep) {
            self.depth -= 1;
        }
        let depth = self.depth;
        if self.dirs.len() == depth {
            self.dirs.push(VisitedDir::default());
        }
        let (parents, rest) = self.dirs.split_at_mut(depth);
        let slot = &mut rest[0];
        let parent = parents.last();
        // A directory's results are kept for its children; a file's are scratch.
        let (include_out, exclude_out) = if is_dir {
            (&mut slot.include_info, &mut slot.exclude_info)
        } else {
            (&mut self.scratch_include, &mut self.scratch_exclude)
        };
        let no_info = MatchInfo::default();
        let mut held_back = false;

        if let Some(include) = &self.filter.include {
            let parent_info = parent.map_or(&no_info, |p| &p.include_info);
            let matched = include
                .matches_using_parent_results_into(path, parent_info, include_out)
                .map_err(|source| ContextError::MatchInclude {
                    path: bytes_path(path).to_path_buf(),
                    source,
                })?;
            if !matched {
                if is_dir && !include.inclusions_may_match_under(path) {
                    return Ok(Control::SkipDir);
                }
                held_back = true;
            }
        }
        if let Some(exclude) = &self.filter.exclude {
            let parent_info = parent.map_or(&no_info, |p| &p.exclude_info);
            let matched = exclude
                .matches_using_parent_results_into(path, parent_info, exclude_out)
                .map_err(|source| ContextError::MatchExclude {
                    path: bytes_path(path).to_path_buf(),
                    source,
                })?;
            if matched {
                if is_dir && !exclude.exceptions_may_match_under(path) {
                    return Ok(Control::SkipDir);
                }
                held_back = true;
            }
        }

        if let Some(source) = walk_err {
            // A directory entered only in search of exceptions may be unreadable.
            if held_back && source.kind() == io::ErrorKind::PermissionDenied {
                return Ok(Control::Continue);
            }
            return Err(ContextError::ReadDir {
                path: root.join(bytes_path(path)),
                source,
            }
            .into());
        }

        if is_dir {
            slot.path_with_sep.clear();
            slot.path_with_sep.extend_from_slice(path);
            slot.path_with_sep.push(b'/');
            slot.reported = false;
            slot.skipped = false;
            slot.entry = None;
            self.depth = depth + 1;
        }

        if held_back {
            if is_dir && let Current::Loaded(entry) = current {
                slot.entry = Some(entry.clone());
            }
            return Ok(Control::Continue);
        }

        let Some(entry) = load_current(current, path)? else {
            return Ok(Control::Continue);
        };

        // Report the directories above that were held back, outermost first.
        for parent in parents.iter_mut() {
            if parent.skipped {
                return Ok(Control::SkipDir);
            }
            if parent.reported {
                continue;
            }
            if parent.entry.is_none() {
                let dir = &parent.path_with_sep[..parent.path_with_sep.len() - 1];
                match load_entry(root, dir)? {
                    Some(loaded) => parent.entry = Some(loaded),
                    None => return Ok(Control::SkipDir),
                }
            }
            parent.reported = true;
            let parent_entry = parent.entry.as_ref().expect("loaded just above");
            if emit(outer, root, parent_entry, visit)? == Control::SkipDir {
                parent.skipped = true;
                return Ok(Control::SkipDir);
            }
        }

        if is_dir {
            slot.reported = true;
        }
        emit(outer, root, entry, visit)
    }
}

/// Passes an entry let through by a layer to the next one, or to the visitor.
fn emit<E, F>(
    layers: &mut [Layer<'_>],
    root: &Path,
    entry: &Entry,
    visit: &mut F,
) -> Result<Control, E>
where
    E: From<ContextError>,
    F: FnMut(&Entry) -> Result<(), E>,
{
    match layers.split_first_mut() {
        None => visit(entry).map(|()| Control::Continue),
        Some((layer, outer)) => {
            let path = entry.path().as_os_str().as_bytes();
            layer.visit(
                root,
                path,
                entry.is_dir(),
                None,
                Current::Loaded(entry),
                outer,
                visit,
            )
        }
    }
}

/// The walk in progress (Go's `filepath.WalkDir` driving the layers).
struct Walk<'w, F> {
    root: &'w Path,
    layers: Vec<Layer<'w>>,
    /// Reused for each entry read from a listing.
    scratch: Option<Entry>,
    /// Host path of the current entry.
    abs: PathBuf,
    /// Relative `/`-separated path of the current entry (empty for the root).
    rel: Vec<u8>,
    visit: F,
}

impl<F> Walk<'_, F> {
    /// Visits the contents of the directory at `abs`/`rel`, the directory itself having
    /// been visited already (Go's `walkDir` after its first callback).
    fn walk_dir<E>(&mut self) -> Result<(), E>
    where
        E: From<ContextError>,
        F: FnMut(&Entry) -> Result<(), E>,
    {
        let mut listed: Vec<(OsString, fs::DirEntry)> = Vec::new();
        let mut failure = None;
        match fs::read_dir(&self.abs) {
            Ok(listing) => {
                for item in listing {
                    match item {
                        Ok(dirent) => listed.push((dirent.file_name(), dirent)),
                        Err(err) => {
                            failure = Some(err);
                            break;
                        }
                    }
                }
            }
            Err(err) => failure = Some(err),
        }
        if let Some(err) = failure {
            if is_not_exist(&err) {
                return Ok(()); // removed while walking
            }
            if self.rel.is_empty() {
                return Err(ContextError::ReadDir {
                    path: self.abs.clone(),
                    source: err,
                }
                .into());
            }
            // Go visits the directory a second time to report the listing error; what
            // was listed before the error is still walked unless that visit says skip.
            if self.deliver(true, Some(err), None)? == Control::SkipDir {
                return Ok(());
            }
        }
        listed.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (name, dirent) in &listed {
            let rel_len = self.rel.len();
            if rel_len > 0 {
                self.rel.push(b'/');
            }
            self.rel.extend_from_slice(name.as_bytes());
            self.abs.push(name);
            // The type comes from the listing (d_type) when the filesystem provides it.
            let is_dir = match dirent.file_type() {
                Ok(file_type) => Some(file_type.is_dir()),
                Err(err) if is_not_exist(&err) => None,
                Err(source) => {
                    return Err(ContextError::Stat {
                        path: self.abs.clone(),
                        source,
                    }
                    .into());
                }
            };
            let mut stop = false;
            if let Some(is_dir) = is_dir {
                match self.deliver(is_dir, None, Some(dirent))? {
                    Control::Continue if is_dir => self.walk_dir()?,
                    Control::SkipDir if !is_dir => stop = true,
                    _ => {}
                }
            }
            self.abs.pop();
            self.rel.truncate(rel_len);
            if stop {
                break;
            }
        }
        Ok(())
    }

    /// Visits the current path: through the layers, or straight to the visitor.
    fn deliver<E>(
        &mut self,
        is_dir: bool,
        walk_err: Option<io::Error>,
        listed: Option<&fs::DirEntry>,
    ) -> Result<Control, E>
    where
        E: From<ContextError>,
        F: FnMut(&Entry) -> Result<(), E>,
    {
        let Walk {
            root,
            layers,
            scratch,
            abs,
            rel,
            visit,
        } = self;
        let current = match listed {
            Some(dirent) => Current::Listed {
                dirent,
                abs,
                scratch,
            },
            None => Current::Unreadable,
        };
        match layers.split_first_mut() {
            Some((layer, outer)) => layer.visit(root, rel, is_dir, walk_err, current, outer, visit),
            None => {
                if let Some(source) = walk_err {
                    return Err(ContextError::ReadDir {
                        path: abs.clone(),
                        source,
                    }
                    .into());
                }
                match load_current(current, rel)? {
                    Some(entry) => visit(entry).map(|()| Control::Continue),
                    None => Ok(Control::Continue),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
