//! The Dockerfile parser: text → raw syntax tree with spans, to BuildKit's standard.
//!
//! This is the first layer of hoist's frontend. It does what BuildKit's
//! `frontend/dockerfile/parser` package does and nothing more: parser directives, line
//! continuations, comments, heredoc bodies, `--flags`, and the per-instruction split of the
//! arguments (shell string, JSON array, words, key/value pairs). It does no variable
//! expansion and no quote removal (except JSON decoding); unknown instructions parse and are
//! rejected later by the typed layer (`hoist-instructions`).
//!
//! The one idea: every instruction becomes a [`Node`] with typed [`Args`], and every piece
//! keeps a [`Span`] so later layers can point at the bytes that produced it.
//!
//! ```
//! let file = hoist_dockerfile::parse("FROM alpine AS build\nRUN echo hi\n").unwrap();
//! assert_eq!(file.dump(), "(from \"alpine\" \"AS\" \"build\")\n(run \"echo hi\")");
//! ```
//!
//! What is here:
//!
//! - Parsing: [`parse`], [`parse_bytes`] (arbitrary bytes, invalid UTF-8 replaced), and
//!   [`Parser`] (a file name for errors). Errors are [`ParseError`]: a [`ParseErrorKind`]
//!   with BuildKit's message, a [`Span`], and a fix-it [`ParseErrorKind::help`].
//! - The tree: [`Dockerfile`] (directives, escape character, instructions, warnings),
//!   [`Node`] (keyword, [`Flag`]s, [`Args`], [`Heredoc`]s, comments, original text),
//!   [`Keyword`] for the known instructions.
//! - Output: [`Dockerfile::dump`] / [`Node::dump`] (BuildKit's test dump, built on
//!   [`go_quote`]), and `Display` for [`Dockerfile`] and [`Node`] (canonical Dockerfile text
//!   that parses back to the same tree).
//! - Pieces the typed layer and the CLI reuse: [`parse_heredoc_word`] (is this COPY
//!   source a heredoc?), [`chomp_heredoc_content`], [`heredocs_in_line`], [`parse_words`],
//!   [`suggest_keyword`] ("did you mean FROM?"), and directive lookup without a full parse:
//!   [`detect_syntax`], [`find_directive`], [`parse_directives`].

mod ast;
mod directives;
mod dump;
mod error;
mod heredoc;
mod json;
mod line_parsers;
mod parser;
mod print;
mod suggest;

pub use ast::{
    Arg, Args, Directive, DirectiveKind, Dockerfile, Flag, Heredoc, KeyValue, Keyword, Node,
    Separator, Span, Warning, WarningKind,
};
pub use directives::{DetectedDirective, detect_syntax, find_directive, parse_directives};
pub use dump::go_quote;
pub use error::{ParseError, ParseErrorKind};
pub use heredoc::{
    HeredocMarker, HeredocWordError, chomp_heredoc_content, heredocs_in_line, parse_heredoc_word,
};
pub use line_parsers::parse_words;
pub use parser::{MAX_LINE_LENGTH, MAX_ONBUILD_DEPTH, Parser, parse, parse_bytes};
pub use suggest::{closest_match, edit_distance, suggest_keyword};
