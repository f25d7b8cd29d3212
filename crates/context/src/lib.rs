//! Build-context filtering with Docker's exact semantics: `.dockerignore` matching
//! (moby/patternmatcher), ignore-file reading and precedence (BuildKit's dockerui), and the
//! filtered context walk (tonistiigi/fsutil).
//!
//! The one idea: reproduce upstream's decisions rather than approximate them with a
//! gitignore library. In Docker, `*.md` matches only at the top level (`docs/b.md` is kept),
//! a pattern also covers everything below a matching directory (`build` excludes
//! `build/x`, never `x/build`), the last matching pattern wins, and an excluded directory is
//! still searched when a later `!` exception could match inside it. Paths are relative to
//! the context root and `/`-separated.
//!
//! # Example
//!
//! ```no_run
//! use hoist_context::{find_ignore_file, ContextError, ContextWalker, WalkOptions};
//! use std::path::Path;
//!
//! let context = Path::new("app");
//! let ignore = find_ignore_file(context, Some(&context.join("Dockerfile")))?;
//! let options = WalkOptions {
//!     exclude_patterns: ignore.map(|file| file.patterns).unwrap_or_default(),
//!     ..WalkOptions::default()
//! };
//! ContextWalker::new(context, &options)?.walk(|entry| {
//!     println!("{:?} {}", entry.kind(), entry.path().display());
//!     Ok::<(), ContextError>(())
//! })?;
//! # Ok::<(), ContextError>(())
//! ```

mod error;
mod fnmatch;
mod follow;
mod gopath;
mod goregex;
mod ignorefile;
mod pattern;
mod scoped;
mod walk;

pub use error::ContextError;
pub use fnmatch::{BadPattern, filepath_match};
pub use gopath::clean as clean_path;
pub use ignorefile::{
    DOCKERIGNORE_NAME, IgnoreFile, dockerfile_ignore_path, find_ignore_file, read_ignore_file,
};
pub use pattern::{
    MatchInfo, MatchKind, Pattern, PatternError, PatternMatcher, legacy_matches,
    matches_or_parent_matches,
};
pub use walk::{ContextFilter, ContextWalker, Entry, EntryKind, WalkOptions};
