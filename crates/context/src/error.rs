//! Errors from reading ignore files and walking a build context.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::pattern::PatternError;

/// Errors from [`ContextWalker`](crate::ContextWalker), [`ContextFilter`](crate::ContextFilter)
/// and the ignore-file functions. Each names the path or pattern list that failed.
#[derive(Debug, Error)]
pub enum ContextError {
    /// The include patterns do not form a valid matcher.
    #[error("invalid include patterns {patterns:?}")]
    InvalidIncludePatterns {
        /// The include patterns as given (after follow-path resolution).
        patterns: Vec<String>,
        /// What was wrong.
        #[source]
        source: PatternError,
    },
    /// The exclude (`.dockerignore`) patterns do not form a valid matcher.
    #[error("invalid exclude patterns {patterns:?}")]
    InvalidExcludePatterns {
        /// The exclude patterns as given.
        patterns: Vec<String>,
        /// What was wrong.
        #[source]
        source: PatternError,
    },
    /// Applying the include patterns to a path failed (a pattern only the regular
    /// expression compiler rejects).
    #[error("failed to match include patterns against {path}")]
    MatchInclude {
        /// The relative path being matched.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: PatternError,
    },
    /// Applying the exclude patterns to a path failed.
    #[error("failed to match exclude patterns against {path}")]
    MatchExclude {
        /// The relative path being matched.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: PatternError,
    },
    /// The context directory could not be resolved.
    #[error("failed to resolve context directory {path}")]
    ResolveRoot {
        /// The context directory as given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The context path is not a directory.
    #[error("context path {path} is not a directory")]
    RootNotDir {
        /// The resolved context path.
        path: PathBuf,
    },
    /// Listing a directory failed.
    #[error("failed to read directory {path}")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading an entry's metadata failed.
    #[error("failed to stat {path}")]
    Stat {
        /// The entry.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading a symlink's target failed.
    #[error("failed to read symlink {path}")]
    ReadLink {
        /// The symlink.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Resolving a follow path failed.
    #[error("failed to resolve follow path {path:?}")]
    FollowPath {
        /// The follow path (or the path it led to) being resolved.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The path is filtered out of the context, so it cannot be opened.
    #[error("{path} is not in the build context")]
    Excluded {
        /// The relative path.
        path: PathBuf,
    },
    /// Opening a file in the context failed.
    #[error("failed to open {path}")]
    Open {
        /// The path inside the context.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading an ignore file failed (other than it being absent).
    #[error("failed to read ignore file {path}")]
    ReadIgnoreFile {
        /// The ignore file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl ContextError {
    /// Whether the error means "no such file in the context": the path is filtered out or
    /// does not exist (fsutil's `os.ErrNotExist` from a filtered `Open`).
    pub fn is_not_found(&self) -> bool {
        match self {
            ContextError::Excluded { .. } => true,
            ContextError::Open { source, .. } => is_not_exist(source),
            _ => false,
        }
    }
}

/// fsutil's `isNotExist`: `ENOENT` or `ENOTDIR`.
pub(crate) fn is_not_exist(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}
