//! The line scanner: directives, comments, continuations, heredoc bodies (BuildKit's
//! `parser.Parse`), and the assembly of [`Node`]s from joined lines.

use std::ops::Range;

use crate::directives::{column, match_directive_line};
use crate::error::{ParseError, ParseErrorKind};
use crate::heredoc::heredoc_words_in_line;
use crate::json::{JsonArray, parse_array_prefix};
use crate::line_parsers::{
    is_token_space, split_command, token_space_ranges, trim_range, word_ranges,
};
use crate::{
    Arg, Args, Directive, DirectiveKind, Dockerfile, Flag, Heredoc, KeyValue, Keyword, Node,
    Separator, Span, Warning, WarningKind,
};

/// The longest line BuildKit's scanner accepts, in bytes, without the line break.
pub const MAX_LINE_LENGTH: usize = 65_535;

/// How deeply `ONBUILD ONBUILD ...` may nest before parsing gives up (BuildKit has no limit
/// but rejects any nesting later; the limit keeps hostile input from exhausting the stack).
pub const MAX_ONBUILD_DEPTH: usize = 32;

/// A configured parser. [`parse`] and [`parse_bytes`] use the defaults.
#[derive(Debug, Clone, Default)]
pub struct Parser {
    file_name: Option<String>,
}

impl Parser {
    /// A parser with default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the file name recorded in errors ([`ParseError::file`]).
    pub fn file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = Some(name.into());
        self
    }

    /// Parses Dockerfile text.
    pub fn parse(&self, source: &str) -> Result<Dockerfile, ParseError> {
        parse_source(source).map_err(|mut error| {
            error.file.clone_from(&self.file_name);
            error
        })
    }

    /// Parses bytes that may not be valid UTF-8: invalid sequences are replaced with
    /// U+FFFD first (as `String::from_utf8_lossy` does) and spans index that decoded text,
    /// which is byte-identical to the input when the input is valid UTF-8.
    pub fn parse_bytes(&self, source: &[u8]) -> Result<Dockerfile, ParseError> {
        self.parse(&String::from_utf8_lossy(source))
    }
}

/// Parses Dockerfile text (see [`Parser`] for a file name in errors).
pub fn parse(source: &str) -> Result<Dockerfile, ParseError> {
    Parser::new().parse(source)
}

/// Parses Dockerfile bytes, replacing invalid UTF-8 (see [`Parser::parse_bytes`]).
pub fn parse_bytes(source: &[u8]) -> Result<Dockerfile, ParseError> {
    Parser::new().parse_bytes(source)
}

/// One physical line of the source.
#[derive(Clone, Copy)]
struct Line {
    /// Offset of the first byte.
    start: usize,
    /// Offset after the content, trailing `\r` and `\n` excluded.
    end: usize,
    /// Offset of the next line.
    next: usize,
    /// 1-based line number.
    number: u32,
}

struct Cursor<'a> {
    src: &'a str,
    pos: usize,
    number: u32,
}

impl Cursor<'_> {
    fn next_line(&mut self) -> Result<Option<Line>, ParseError> {
        if self.pos >= self.src.len() {
            return Ok(None);
        }
        let rest = &self.src[self.pos..];
        let (raw_len, next) = match rest.find('\n') {
            Some(i) => (i, self.pos + i + 1),
            None => (rest.len(), self.src.len()),
        };
        self.number += 1;
        let start = self.pos;
        if raw_len > MAX_LINE_LENGTH {
            let end = start + raw_len;
            return Err(ParseError {
                kind: ParseErrorKind::LineTooLong {
                    max: MAX_LINE_LENGTH,
                    length: raw_len,
                },
                span: Span {
                    start,
                    end,
                    start_line: self.number,
                    end_line: self.number,
                    start_column: 1,
                },
                file: None,
            });
        }
        let content = self.src[start..start + raw_len].trim_end_matches(['\r', '\n']);
        self.pos = next;
        Ok(Some(Line {
            start,
            end: start + content.len(),
            next,
            number: self.number,
        }))
    }
}

/// `line` without a trailing escape character (and the spaces/tabs after it) if it is a
/// line continuation, and whether the instruction ends here. An escape preceded by another
/// escape is not a continuation (BuildKit's `lineContinuationRegex`).
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape)
        && !before.ends_with(escape)
    {
        return (before, false);
    }
    (line, true)
}

/// One piece of a joined instruction line and where it came from.
#[derive(Clone, Copy)]
struct Segment {
    joined: usize,
    source: usize,
    line: u32,
    line_start: usize,
}

/// An instruction's continuation lines joined into one, with the map back to the source.
#[derive(Default)]
struct Joined {
    text: String,
    segments: Vec<Segment>,
    /// The last column computed, as (line start, offset, column): spans are mostly asked
    /// for left to right, so counting continues from there instead of from the line start
    /// (which would be quadratic on a long line with many words).
    column_cache: std::cell::Cell<Option<(usize, usize, u32)>>,
}

impl Joined {
    fn clear(&mut self) {
        self.text.clear();
        self.segments.clear();
        self.column_cache.set(None);
    }

    fn column(&self, src: &str, line_start: usize, offset: usize) -> u32 {
        let column = match self.column_cache.get() {
            Some((cached_line, cached_offset, cached_column))
                if cached_line == line_start && cached_offset <= offset =>
            {
                cached_column + (column(src, cached_offset, offset) - 1)
            }
            _ => column(src, line_start, offset),
        };
        self.column_cache.set(Some((line_start, offset, column)));
        column
    }

    fn push(&mut self, piece: &str, source: usize, line: &Line) {
        self.segments.push(Segment {
            joined: self.text.len(),
            source,
            line: line.number,
            line_start: line.start,
        });
        self.text.push_str(piece);
    }

    fn locate(&self, offset: usize) -> (usize, &Segment) {
        let index = self
            .segments
            .partition_point(|s| s.joined <= offset)
            .saturating_sub(1);
        let segment = &self.segments[index];
        (segment.source + (offset - segment.joined), segment)
    }

    /// The source span of a range of the joined text.
    fn span(&self, src: &str, range: Range<usize>) -> Span {
        let (start, first) = self.locate(range.start);
        let start_column = self.column(src, first.line_start, start);
        if range.is_empty() {
            return Span {
                start,
                end: start,
                start_line: first.line,
                end_line: first.line,
                start_column,
            };
        }
        let (last, last_segment) = self.locate(range.end - 1);
        Span {
            start,
            end: last + 1,
            start_line: first.line,
            end_line: last_segment.line,
            start_column,
        }
    }
}

/// An error found while building a node: the kind and the joined-line range to blame
/// (`None` = the whole instruction).
type NodeError = (ParseErrorKind, Option<Range<usize>>);

fn parse_source(src: &str) -> Result<Dockerfile, ParseError> {
    let mut cursor = Cursor {
        src,
        pos: 0,
        number: 0,
    };
    let mut escape = '\\';
    let mut directives: Vec<Directive> = Vec::new();
    let mut directives_done = false;
    let mut comments: Vec<String> = Vec::new();
    let mut instructions: Vec<Node> = Vec::new();
    let mut warnings: Vec<Warning> = Vec::new();
    let mut joined = Joined::default();

    while let Some(line) = cursor.next_line()? {
        let mut content_start = line.start;
        if line.number == 1 && src.starts_with('\u{feff}') {
            content_start += '\u{feff}'.len_utf8();
        }
        let raw = &src[content_start..line.end];
        let token = raw.trim_start();
        let token_start = line.end - token.len();

        let mut is_directive = false;
        if !directives_done {
            match directive_on_line(src, token, token_start, &line) {
                Some(directive) => {
                    if directives.iter().any(|d| d.kind == directive.kind) {
                        return Err(ParseError {
                            kind: ParseErrorKind::DuplicateDirective {
                                name: directive.kind.as_str(),
                            },
                            span: directive.span,
                            file: None,
                        });
                    }
                    if directive.kind == DirectiveKind::Escape {
                        escape = match directive.value.as_str() {
                            "\\" => '\\',
                            "`" => '`',
                            other => {
                                return Err(ParseError {
                                    kind: ParseErrorKind::InvalidEscapeToken {
                                        token: other.to_owned(),
                                    },
                                    span: directive.value_span,
                                    file: None,
                                });
                            }
                        };
                    }
                    directives.push(directive);
                    is_directive = true;
                }
                None => directives_done = true,
            }
        }

        if let Some(comment) = token.strip_prefix('#') {
            if !is_directive {
                let comment = comment.trim();
                if comment.is_empty() {
                    comments.clear();
                } else {
                    comments.push(comment.to_owned());
                }
            }
            continue;
        }

        let (piece, mut ends) = trim_continuation(token, escape);
        if ends && piece.is_empty() {
            continue;
        }
        joined.clear();
        joined.push(piece, token_start, &line);
        let mut last = line;
        let mut empty_lines = Vec::new();
        while !ends {
            let Some(next) = cursor.next_line()? else {
                break;
            };
            last = next;
            let raw = &src[next.start..next.end];
            let trimmed = raw.trim_start();
            if trimmed.starts_with('#') {
                continue;
            }
            if trimmed.is_empty() {
                empty_lines.push(next.number);
                continue;
            }
            let (piece, end_here) = trim_continuation(raw, escape);
            ends = end_here;
            joined.push(piece, next.start, &next);
        }

        let instruction_span = Span {
            start: token_start,
            end: last.end,
            start_line: line.number,
            end_line: last.number,
            start_column: column(src, line.start, token_start),
        };
        let fail = |(kind, range): NodeError, joined: &Joined| ParseError {
            kind,
            span: range.map_or(instruction_span, |r| joined.span(src, r)),
            file: None,
        };

        if !empty_lines.is_empty() {
            warnings.push(Warning {
                message: format!("Empty continuation line found in: {}", joined.text),
                kind: WarningKind::EmptyContinuationLine { lines: empty_lines },
                span: instruction_span,
            });
        }

        let builder = NodeBuilder {
            src,
            joined: &joined,
            escape,
        };
        let mut node = builder
            .node(0..joined.text.len(), 0)
            .map_err(|e| fail(e, &joined))?;

        if can_contain_heredoc(&node) && joined.text.contains("<<") {
            let markers = heredoc_words_in_line(&joined.text).map_err(|e| {
                fail(
                    (
                        ParseErrorKind::InvalidHeredocWord {
                            word: e.word,
                            reason: e.reason,
                        },
                        None,
                    ),
                    &joined,
                )
            })?;
            for (marker, range) in markers {
                let mut content = String::new();
                let mut body_start: Option<Line> = None;
                loop {
                    let Some(body_line) = cursor.next_line()? else {
                        return Err(ParseError {
                            kind: ParseErrorKind::UnterminatedHeredoc { name: marker.name },
                            span: Span {
                                end: last.end,
                                end_line: last.number,
                                ..instruction_span
                            },
                            file: None,
                        });
                    };
                    last = body_line;
                    body_start.get_or_insert(body_line);
                    let mut candidate = &src[body_line.start..body_line.end];
                    if marker.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == marker.name {
                        break;
                    }
                    content.push_str(&src[body_line.start..body_line.next]);
                }
                let first = body_start.expect("the loop reads at least the terminator line");
                node.heredocs.push(Heredoc {
                    name: marker.name,
                    file_descriptor: marker.file_descriptor,
                    expand: marker.expand,
                    chomp: marker.chomp,
                    content,
                    marker_span: joined.span(src, range),
                    span: Span {
                        start: first.start,
                        end: last.end,
                        start_line: first.number,
                        end_line: last.number,
                        start_column: 1,
                    },
                });
            }
        }

        node.span = Span {
            end: last.end,
            end_line: last.number,
            ..instruction_span
        };
        node.comments = std::mem::take(&mut comments);
        instructions.push(node);
    }

    if instructions.is_empty() {
        let line = cursor.number;
        return Err(ParseError {
            kind: ParseErrorKind::NoInstructions,
            span: Span {
                start: src.len(),
                end: src.len(),
                start_line: line,
                end_line: line,
                start_column: if line == 0 { 0 } else { 1 },
            },
            file: None,
        });
    }

    Ok(Dockerfile {
        directives,
        escape,
        instructions,
        warnings,
    })
}

/// A known directive on a (leading-whitespace-trimmed) line, if it is one.
fn directive_on_line(src: &str, token: &str, token_start: usize, line: &Line) -> Option<Directive> {
    let found = match_directive_line(token, "#")?;
    let kind = DirectiveKind::from_name(&token[found.name.clone()])?;
    let value_start = token_start + found.value.start;
    Some(Directive {
        kind,
        name: token[found.name].to_owned(),
        value: token[found.value.clone()].to_owned(),
        span: Span {
            start: token_start,
            end: line.end,
            start_line: line.number,
            end_line: line.number,
            start_column: column(src, line.start, token_start),
        },
        value_span: Span {
            start: value_start,
            end: token_start + found.value.end,
            start_line: line.number,
            end_line: line.number,
            start_column: column(src, line.start, value_start),
        },
    })
}

/// Whether BuildKit looks for heredocs after this instruction: RUN/COPY/ADD in shell form,
/// directly or inside ONBUILD.
fn can_contain_heredoc(node: &Node) -> bool {
    let target = node.onbuild_child().unwrap_or(node);
    target.kind.is_some_and(Keyword::allows_heredocs) && !target.is_json_form()
}

struct NodeBuilder<'a> {
    src: &'a str,
    joined: &'a Joined,
    escape: char,
}

impl NodeBuilder<'_> {
    fn span(&self, range: Range<usize>) -> Span {
        self.joined.span(self.src, range)
    }

    fn arg(&self, range: Range<usize>) -> Arg {
        Arg {
            value: self.joined.text[range.clone()].to_owned(),
            span: self.span(range),
        }
    }

    /// Builds the node for `joined.text[range]` (BuildKit's `newNodeFromLine`).
    fn node(&self, range: Range<usize>, depth: usize) -> Result<Node, NodeError> {
        let line = &self.joined.text[range.clone()];
        let base = range.start;
        let split = split_command(line);
        let keyword = line[split.keyword.clone()].to_owned();
        let name = keyword.to_lowercase();
        let kind = Keyword::ALL.into_iter().find(|k| k.as_str() == name);
        let flags = split
            .flags
            .into_iter()
            .map(|(text, r)| Flag {
                text,
                span: self.span(r.start + base..r.end + base),
            })
            .collect();
        let args_range = split.args.start + base..split.args.end + base;
        let args = self.args(kind, args_range, depth)?;
        let trimmed = trim_range(&self.joined.text, range);
        Ok(Node {
            keyword_span: self.span(split.keyword.start + base..split.keyword.end + base),
            keyword,
            name,
            kind,
            flags,
            args,
            heredocs: Vec::new(),
            original: line.to_owned(),
            comments: Vec::new(),
            span: self.span(trimmed),
        })
    }

    /// The arguments per instruction kind (BuildKit's dispatch table of line parsers).
    fn args(
        &self,
        kind: Option<Keyword>,
        range: Range<usize>,
        depth: usize,
    ) -> Result<Args, NodeError> {
        let Some(kind) = kind else {
            return Ok(Args::Unknown(self.arg(range)));
        };
        Ok(match kind {
            Keyword::Add | Keyword::Copy | Keyword::Volume => self.maybe_json_to_list(range)?,
            Keyword::Arg => self.words(range),
            Keyword::Cmd | Keyword::Entrypoint | Keyword::Run | Keyword::Shell => {
                self.maybe_json(range)?
            }
            Keyword::Env | Keyword::Label => self.key_values(kind, range)?,
            Keyword::Expose | Keyword::From => self.token_words(range),
            Keyword::Healthcheck => self.healthcheck(range)?,
            Keyword::Maintainer | Keyword::Stopsignal | Keyword::User | Keyword::Workdir => {
                if range.is_empty() {
                    Args::Empty
                } else {
                    Args::Text(self.arg(range))
                }
            }
            Keyword::Onbuild => {
                if range.is_empty() {
                    Args::Empty
                } else if depth >= MAX_ONBUILD_DEPTH {
                    return Err((
                        ParseErrorKind::OnbuildTooDeep {
                            max: MAX_ONBUILD_DEPTH,
                        },
                        Some(range),
                    ));
                } else {
                    Args::Onbuild(Box::new(self.node(range, depth + 1)?))
                }
            }
        })
    }

    fn json(&self, range: Range<usize>) -> Result<Option<Args>, NodeError> {
        match parse_array_prefix(&self.joined.text[range.clone()]) {
            JsonArray::NotJson => Ok(None),
            JsonArray::NotStrings => Err((ParseErrorKind::JsonNotStringArray, Some(range))),
            JsonArray::Strings(items) => Ok(Some(Args::Json(
                items
                    .into_iter()
                    .map(|(value, r)| Arg {
                        value,
                        span: self.span(r.start + range.start..r.end + range.start),
                    })
                    .collect(),
            ))),
        }
    }

    /// RUN/CMD/ENTRYPOINT/SHELL: a JSON array, else the text as one string.
    fn maybe_json(&self, range: Range<usize>) -> Result<Args, NodeError> {
        if range.is_empty() {
            return Ok(Args::Empty);
        }
        Ok(match self.json(range.clone())? {
            Some(args) => args,
            None => Args::Text(self.arg(range)),
        })
    }

    /// ADD/COPY/VOLUME: a JSON array, else whitespace-separated words.
    fn maybe_json_to_list(&self, range: Range<usize>) -> Result<Args, NodeError> {
        Ok(match self.json(range.clone())? {
            Some(args) => args,
            None => self.token_words(range),
        })
    }

    fn token_words(&self, range: Range<usize>) -> Args {
        let words = token_space_ranges(&self.joined.text[range.clone()]);
        if words.is_empty() {
            return Args::Empty;
        }
        Args::Words(self.shifted_args(words, range.start))
    }

    fn words(&self, range: Range<usize>) -> Args {
        let words = word_ranges(&self.joined.text[range.clone()], self.escape);
        if words.is_empty() {
            return Args::Empty;
        }
        Args::Words(self.shifted_args(words, range.start))
    }

    fn shifted_args(&self, ranges: Vec<Range<usize>>, base: usize) -> Vec<Arg> {
        ranges
            .into_iter()
            .map(|r| self.arg(r.start + base..r.end + base))
            .collect()
    }

    /// ENV/LABEL (BuildKit's `parseNameVal`): `key=value` words, or the legacy `key value`
    /// when the first word has no `=`.
    fn key_values(&self, kind: Keyword, range: Range<usize>) -> Result<Args, NodeError> {
        let text = &self.joined.text[range.clone()];
        let base = range.start;
        let words = word_ranges(text, self.escape);
        let Some(first) = words.first() else {
            return Ok(Args::Empty);
        };
        if !text[first.clone()].contains('=') {
            let Some(key_end) = text.find(is_token_space) else {
                let keyword = if kind == Keyword::Env { "ENV" } else { "LABEL" };
                return Err((ParseErrorKind::MissingValue { keyword }, None));
            };
            let value_start = text.len() - text[key_end..].trim_start_matches(is_token_space).len();
            return Ok(Args::KeyValues(vec![KeyValue {
                key: self.arg(base..base + key_end),
                value: self.arg(base + value_start..range.end),
                separator: Separator::Whitespace,
                span: self.span(range.clone()),
            }]));
        }
        let mut pairs = Vec::with_capacity(words.len());
        for word in words {
            let word_text = &text[word.clone()];
            let Some(eq) = word_text.find('=') else {
                return Err((
                    ParseErrorKind::MissingEquals {
                        word: word_text.to_owned(),
                    },
                    Some(word.start + base..word.end + base),
                ));
            };
            let key_end = base + word.start + eq;
            pairs.push(KeyValue {
                key: self.arg(base + word.start..key_end),
                value: self.arg(key_end + 1..base + word.end),
                separator: Separator::Equals,
                span: self.span(base + word.start..base + word.end),
            });
        }
        Ok(Args::KeyValues(pairs))
    }

    /// HEALTHCHECK: a type word, then the rest parsed like CMD.
    fn healthcheck(&self, range: Range<usize>) -> Result<Args, NodeError> {
        let text = &self.joined.text[range.clone()];
        let type_len = text.find(char::is_whitespace).unwrap_or(text.len());
        if type_len == 0 {
            return Ok(Args::Empty);
        }
        let command_start = text.len() - text[type_len..].trim_start().len();
        let kind = self.arg(range.start..range.start + type_len);
        let command = self.maybe_json(range.start + command_start..range.end)?;
        Ok(Args::Healthcheck {
            kind,
            command: Box::new(command),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_rules() {
        assert_eq!(trim_continuation("a \\", '\\'), ("a ", false));
        assert_eq!(trim_continuation("a\\  \t", '\\'), ("a", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("a\\\\", '\\'), ("a\\\\", true));
        assert_eq!(trim_continuation("a`", '`'), ("a", false));
        assert_eq!(trim_continuation("a\\", '`'), ("a\\", true));
    }
}
