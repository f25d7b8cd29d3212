//! Parse errors: what went wrong ([`ParseErrorKind`]) and where ([`Span`]).
//!
//! Messages are BuildKit's, word for word, so users and tests see familiar text. Rendering
//! (file:line:col, a caret under the span) is the CLI's job.

use crate::Span;

/// A Dockerfile that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    /// What went wrong.
    pub kind: ParseErrorKind,
    /// Where: the offending instruction, line, word or directive. For
    /// [`ParseErrorKind::NoInstructions`] the last line of the file.
    pub span: Span,
    /// The file name given to [`Parser::file_name`](crate::Parser::file_name), if any.
    pub file: Option<String>,
}

impl ParseError {
    /// The 1-based line the error starts on (0 for an empty file).
    pub fn line(&self) -> u32 {
        self.span.start_line
    }
}

/// The ways parsing can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The file holds no instruction (empty, or only comments, blank lines and directives).
    #[error("file with no instructions")]
    NoInstructions,
    /// A line is longer than 65535 bytes (BuildKit's scanner limit).
    #[error("dockerfile line greater than max allowed size of {max}")]
    LineTooLong {
        /// The limit, 65535.
        max: usize,
        /// The length of the offending line in bytes, without its line break.
        length: usize,
    },
    /// The same parser directive appears twice at the top of the file.
    #[error("only one {name} parser directive can be used")]
    DuplicateDirective {
        /// The canonical directive name (`escape`).
        name: &'static str,
    },
    /// `# escape=` with something other than `\` or `` ` ``.
    #[error("invalid escape token '{token}' does not match ` or \\")]
    InvalidEscapeToken {
        /// The value given.
        token: String,
    },
    /// Legacy-form ENV/LABEL with a key but no value (`ENV PATH`).
    #[error("{keyword} must have two arguments")]
    MissingValue {
        /// `ENV` or `LABEL`.
        keyword: &'static str,
    },
    /// `key=value` form ENV/LABEL where a later word has no `=` (`ENV a=1 b`).
    #[error("Syntax error - can't find = in {}. Must be of the form: name=value", crate::go_quote(.word))]
    MissingEquals {
        /// The word without `=`.
        word: String,
    },
    /// A JSON array whose elements are not all strings (`CMD ["a", 1]`). Text that is not
    /// valid JSON at all is not an error: it is taken as shell form.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStringArray,
    /// A heredoc whose terminator line never comes.
    #[error("unterminated heredoc")]
    UnterminatedHeredoc {
        /// The terminator that was looked for.
        name: String,
    },
    /// `ONBUILD ONBUILD ...` nested deeper than the parser allows. BuildKit rejects any
    /// nested ONBUILD later anyway; this limit only stops hostile input early.
    #[error("ONBUILD nested more than {max} levels deep")]
    OnbuildTooDeep {
        /// The limit.
        max: usize,
    },
    /// A heredoc marker whose terminator word cannot be lexed (`<<'EOF` inside a
    /// larger word, unbalanced quotes).
    #[error("failed to process {}: {reason}", crate::go_quote(.word))]
    InvalidHeredocWord {
        /// The terminator word as written.
        word: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ParseErrorKind {
    /// A short hint on how to fix the problem, for the CLI to show under the message.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            Self::NoInstructions => Some("a Dockerfile needs at least one instruction, e.g. FROM"),
            Self::LineTooLong { .. } => Some("split the line with a line continuation"),
            Self::DuplicateDirective { .. } => Some("remove the repeated directive"),
            Self::InvalidEscapeToken { .. } => Some("use `# escape=\\` or `# escape=``"),
            Self::MissingValue { .. } => Some("write `key=value` or `key value`"),
            Self::MissingEquals { .. } => {
                Some("in the key=value form every word must be key=value; quote values with spaces")
            }
            Self::JsonNotStringArray => Some("quote every element, e.g. [\"sleep\", \"10\"]"),
            Self::UnterminatedHeredoc { .. } => {
                Some("end the heredoc with a line holding only its terminator word")
            }
            Self::OnbuildTooDeep { .. } => Some("ONBUILD cannot be nested in ONBUILD"),
            Self::InvalidHeredocWord { .. } => Some("balance the quotes in the heredoc terminator"),
        }
    }
}
