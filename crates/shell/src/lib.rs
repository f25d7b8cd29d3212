//! BuildKit-compatible shell-word expansion for Dockerfile instructions.
//!
//! Dockerfile instructions such as `ENV`, `COPY`, `WORKDIR` or `FROM` take words that
//! look like shell words: they may be quoted, escaped and contain `$VAR` / `${VAR…}`
//! references. This crate does what BuildKit's `frontend/dockerfile/shell` lexer does
//! to such a word, and nothing more: quote removal, escape processing, parameter
//! expansion (`${V:-w}`, `${V#pattern}`, `${V//from/to}`, …) and, on request,
//! splitting on unquoted whitespace. There is no command substitution, no arithmetic
//! and no globbing: the text is never executed.
//!
//! The one idea: a [`Lexer`] is a small, copyable configuration (the escape character
//! from the `# escape=` directive plus BuildKit's option switches), and each call walks
//! the word once, looking variables up in an [`Env`]. The expansion also reports
//! which variable names it found and which it did not ([`ProcessedWord::matched`],
//! [`ProcessedWord::unmatched`]); the build cache and the `UndefinedVar` check rely on
//! that. The names borrow from the input word, so reporting them costs no allocation.
//!
//! # Example
//!
//! ```
//! use hoist_shell::Lexer;
//!
//! let env = ["VERSION=1.2", "ARCH=amd64", "EMPTY="];
//! let lexer = Lexer::new('\\');
//!
//! let word = lexer.process_word("app-${VERSION}-${ARCH}${VARIANT:+-$VARIANT}.tgz", &env)?;
//! assert_eq!(word.value, "app-1.2-amd64.tgz");
//! assert_eq!(word.matched, ["VERSION", "ARCH"]);
//! assert_eq!(word.unmatched, ["VARIANT"]);
//!
//! let words = lexer.process_words(r#"echo "a  b" $EMPTY c\ d"#, &env)?;
//! assert_eq!(words, ["echo", "a  b", "c d"]);
//! # Ok::<(), hoist_shell::ShellError>(())
//! ```

pub use env::Env;
pub use error::ShellError;
pub use lexer::{Lexer, MAX_NESTING, ProcessedWord};

mod env;
mod error;
mod go;
mod lexer;
mod pattern;
