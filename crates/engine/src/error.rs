//! The engine's errors: one variant per failing operation, each naming what it was working on.

use std::io;
use std::path::PathBuf;

/// A build step or an export failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The image store failed.
    #[error("{what}")]
    Store {
        /// What the engine was doing.
        what: String,
        /// The store's error.
        #[source]
        source: hoist_oci::Error,
    },
    /// The sandbox failed to prepare or run a step.
    #[error("{what}")]
    Sandbox {
        /// What the engine was doing.
        what: String,
        /// The sandbox's error, boxed: its variants carry digests and paths, and every engine `Result` would pay
        /// for their size.
        #[source]
        source: Box<hoist_sandbox::Error>,
    },
    /// A file operation failed.
    #[error("failed to {action} {}", .path.display())]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading the build context failed.
    #[error("failed to read the build context")]
    Context(#[source] hoist_context::ContextError),
    /// Unpacking or writing a layer failed.
    #[error("{what}")]
    Layer {
        /// What the engine was doing.
        what: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A RUN command exited with a non-zero status (BuildKit's wording).
    #[error("process {} did not complete successfully: exit code: {code}", go_quote(&.args.join(" ")))]
    ExecFailed {
        /// argv.
        args: Vec<String>,
        /// The exit code.
        code: i32,
    },
    /// A COPY or ADD source does not exist (BuildKit's wording).
    #[error(
        "failed to compute cache key: failed to calculate checksum of ref: \"{path}\": not found"
    )]
    SourceNotFound {
        /// The source path as written.
        path: String,
    },
    /// The instruction cannot be carried out as written.
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
    },
    /// A feature the engine does not have yet.
    #[error("{what} is not supported by hoist's engine yet")]
    Unsupported {
        /// The feature.
        what: String,
    },
    /// An `ADD <URL>` download failed.
    #[error(transparent)]
    Download(#[from] crate::remote::DownloadError),
    /// An `oci-layout://` build context could not be read.
    #[error(transparent)]
    Layout(#[from] crate::contexts::LayoutError),
    /// A base image is neither in the store nor pullable.
    #[error("image {reference} not found in the local store ({reason})")]
    ImageNotFound {
        /// The reference.
        reference: String,
        /// Why it could not be pulled.
        reason: String,
    },
    /// An export target could not be written.
    #[error("failed to export to {dest}")]
    Export {
        /// The destination.
        dest: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A step failed; wraps the cause with the step's name, as BuildKit prints it.
    #[error("{vertex}")]
    Step {
        /// The op's index in the plan (its span locates the instruction).
        op: usize,
        /// The vertex name (`[builder 2/4] RUN make`).
        vertex: String,
        /// The cause.
        #[source]
        source: Box<EngineError>,
    },
}

impl EngineError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn store(what: impl Into<String>, source: hoist_oci::Error) -> Self {
        Self::Store {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
        }
    }
}

/// Go's `%q` for the simple strings in messages: quotes and backslashes escaped.
fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The engine's result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
