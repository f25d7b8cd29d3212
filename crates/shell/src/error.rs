//! Why a word could not be expanded.

use crate::go::Quoted;

/// A word that could not be processed.
///
/// Every variant carries the whole `word` that was being processed, and the message has
/// BuildKit's shape: `failed to process "<word>": <reason>`, with the word quoted as Go's
/// `%q` does and the reason worded as BuildKit words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    /// A `'` with no closing `'`.
    #[error(
        "failed to process {}: unexpected end of statement while looking for matching single-quote",
        Quoted(.word)
    )]
    UnterminatedSingleQuote {
        /// The word being processed.
        word: String,
    },

    /// A `"` with no closing `"`.
    #[error(
        "failed to process {}: unexpected end of statement while looking for matching double-quote",
        Quoted(.word)
    )]
    UnterminatedDoubleQuote {
        /// The word being processed.
        word: String,
    },

    /// A `${` whose `}` never comes.
    #[error("failed to process {}: syntax error: missing '}}'", Quoted(.word))]
    MissingClosingBrace {
        /// The word being processed.
        word: String,
    },

    /// A `${V/pattern` with no `/` after the pattern.
    #[error("failed to process {}: syntax error: missing '/' in ${{}}", Quoted(.word))]
    MissingSlash {
        /// The word being processed.
        word: String,
    },

    /// `${}`, `${{…}`, `${:…}`: no parameter name where one must be.
    #[error("failed to process {}: syntax error: bad substitution", Quoted(.word))]
    BadSubstitution {
        /// The word being processed.
        word: String,
    },

    /// An operator the lexer does not support, such as the assignment forms `${V=w}` /
    /// `${V:=w}`, `${V:#p}`, or any other character after the name.
    #[error(
        "failed to process {}: unsupported modifier ({modifier}) in substitution",
        Quoted(.word)
    )]
    UnsupportedModifier {
        /// The word being processed.
        word: String,
        /// The operator as written, such as `=` or `:=`.
        modifier: String,
    },

    /// `${V?message}` or `${V:?message}` with `V` unset.
    #[error("failed to process {}: {name}: {message}", Quoted(.word))]
    VariableUnset {
        /// The word being processed.
        word: String,
        /// The variable that must be set.
        name: String,
        /// The expanded message, or `is not allowed to be unset` when none was given.
        message: String,
    },

    /// `${V:?message}` with `V` set to the empty string.
    #[error("failed to process {}: {name}: {message}", Quoted(.word))]
    VariableEmpty {
        /// The word being processed.
        word: String,
        /// The variable that must not be empty.
        name: String,
        /// The expanded message, or `is not allowed to be empty` when none was given.
        message: String,
    },

    /// A `#`, `%` or `/` pattern with an escape other than `\*`, `\?`, `\\` (or `\}`, `\/`).
    #[error(
        "failed to process {}: invalid pattern ({pattern}) in substitution: {reason}",
        Quoted(.word)
    )]
    InvalidPattern {
        /// The word being processed.
        word: String,
        /// The pattern after expansion.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },

    /// `${…}` expansions nested deeper than [`MAX_NESTING`](crate::MAX_NESTING) levels.
    #[error(
        "failed to process {}: syntax error: substitutions nested deeper than {limit} levels",
        Quoted(.word)
    )]
    NestingTooDeep {
        /// The word being processed.
        word: String,
        /// The nesting limit.
        limit: usize,
    },
}

impl ShellError {
    /// The word that failed to process.
    pub fn word(&self) -> &str {
        match self {
            Self::UnterminatedSingleQuote { word }
            | Self::UnterminatedDoubleQuote { word }
            | Self::MissingClosingBrace { word }
            | Self::MissingSlash { word }
            | Self::BadSubstitution { word }
            | Self::UnsupportedModifier { word, .. }
            | Self::VariableUnset { word, .. }
            | Self::VariableEmpty { word, .. }
            | Self::InvalidPattern { word, .. }
            | Self::NestingTooDeep { word, .. } => word,
        }
    }
}

/// What went wrong, before the word is attached (the expander works on slices of the word
/// and only the top level owns it).
#[derive(Debug)]
pub(crate) enum Fault {
    UnterminatedSingleQuote,
    UnterminatedDoubleQuote,
    MissingClosingBrace,
    MissingSlash,
    BadSubstitution,
    UnsupportedModifier(String),
    VariableUnset { name: String, message: String },
    VariableEmpty { name: String, message: String },
    InvalidPattern { pattern: String, reason: String },
    NestingTooDeep(usize),
}

impl Fault {
    pub(crate) fn into_error(self, word: &str) -> ShellError {
        let word = word.to_owned();
        match self {
            Self::UnterminatedSingleQuote => ShellError::UnterminatedSingleQuote { word },
            Self::UnterminatedDoubleQuote => ShellError::UnterminatedDoubleQuote { word },
            Self::MissingClosingBrace => ShellError::MissingClosingBrace { word },
            Self::MissingSlash => ShellError::MissingSlash { word },
            Self::BadSubstitution => ShellError::BadSubstitution { word },
            Self::UnsupportedModifier(modifier) => {
                ShellError::UnsupportedModifier { word, modifier }
            }
            Self::VariableUnset { name, message } => ShellError::VariableUnset {
                word,
                name,
                message,
            },
            Self::VariableEmpty { name, message } => ShellError::VariableEmpty {
                word,
                name,
                message,
            },
            Self::InvalidPattern { pattern, reason } => ShellError::InvalidPattern {
                word,
                pattern,
                reason,
            },
            Self::NestingTooDeep(limit) => ShellError::NestingTooDeep { word, limit },
        }
    }
}
