//! Parser directives (`# syntax=`, `# escape=`, `# check=`) and syntax detection.
//!
//! A directive line is BuildKit's `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` with a
//! known name. Directives are only read at the top of the file: the first line that is not
//! one (an instruction, a blank line, an ordinary comment, an unknown name) ends the block.

use std::ops::Range;

use crate::error::{ParseError, ParseErrorKind};
use crate::heredoc::is_go_regex_space;
use crate::{Directive, DirectiveKind, Span};

/// A directive found by [`detect_syntax`] or [`find_directive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedDirective {
    /// The value up to the first space: for `syntax`, the frontend image reference
    /// (`docker/dockerfile:1` from `# syntax=docker/dockerfile:1 // opts`).
    pub value: String,
    /// The whole value, options included.
    pub cmdline: String,
    /// The 1-based line the directive is on.
    pub line: u32,
}

/// Positions of the name and value of a directive-shaped line.
pub(crate) struct DirectiveMatch {
    pub(crate) name: Range<usize>,
    pub(crate) value: Range<usize>,
}

/// Matches `<prefix>\s*name\s*=\s*value\s*` (BuildKit's directive regular expression, with
/// `#` or `//` as prefix) against one line without its line break.
pub(crate) fn match_directive_line(line: &str, prefix: &str) -> Option<DirectiveMatch> {
    let after_prefix = line.strip_prefix(prefix)?;
    let name_start = line.len() - after_prefix.trim_start_matches(is_go_regex_space).len();
    let rest = &line[name_start..];
    let mut name_len = 0;
    for (i, b) in rest.bytes().enumerate() {
        let ok = if i == 0 {
            b.is_ascii_alphabetic()
        } else {
            b.is_ascii_alphanumeric()
        };
        if !ok {
            break;
        }
        name_len = i + 1;
    }
    if name_len == 0 {
        return None;
    }
    let name = name_start..name_start + name_len;
    let after_name = line[name.end..].trim_start_matches(is_go_regex_space);
    let after_eq = after_name.strip_prefix('=')?;
    if after_eq.is_empty() {
        return None;
    }
    let value_text = after_eq.trim_start_matches(is_go_regex_space);
    let value = if value_text.is_empty() {
        // `(.+?)` needs one character: the regex backtracks and takes the last space.
        let last = after_eq.chars().next_back().map_or(0, char::len_utf8);
        line.len() - last..line.len()
    } else {
        let start = line.len() - value_text.len();
        start..start + value_text.trim_end_matches(is_go_regex_space).len()
    };
    Some(DirectiveMatch { name, value })
}

/// Splits text into lines like Go's `bufio.ScanLines`: without `\n` and one trailing `\r`,
/// each with its byte offset.
fn scan_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = 0;
    std::iter::from_fn(move || {
        if offset >= text.len() {
            return None;
        }
        let rest = &text[offset..];
        let (line, advance) = match rest.find('\n') {
            Some(i) => (&rest[..i], i + 1),
            None => (rest, rest.len()),
        };
        let start = offset;
        offset += advance;
        Some((start, line.strip_suffix('\r').unwrap_or(line)))
    })
}

/// Reads the directive block at the top of `source` (BuildKit's `DirectiveParser.ParseAll`):
/// each known `# name=value` line in order, up to the first line that is not one.
///
/// A leading UTF-8 byte-order mark is skipped. Invalid UTF-8 is replaced (see
/// [`parse_bytes`](crate::parse_bytes)); spans index the decoded text. A known directive
/// given twice is an error.
pub fn parse_directives(source: &[u8]) -> Result<Vec<Directive>, ParseError> {
    let text = String::from_utf8_lossy(source);
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut directives: Vec<Directive> = Vec::new();
    for (number, (start, line)) in scan_lines(&text[bom..]).enumerate() {
        let line_no = u32::try_from(number + 1).unwrap_or(u32::MAX);
        let start = start + bom;
        let Some(found) = match_directive_line(line, "#") else {
            break;
        };
        let Some(kind) = DirectiveKind::from_name(&line[found.name.clone()]) else {
            break;
        };
        let line_span = line_span(&text, start, line_no, 0..line.len());
        if directives.iter().any(|d| d.kind == kind) {
            return Err(ParseError {
                kind: ParseErrorKind::DuplicateDirective {
                    name: kind.as_str(),
                },
                span: line_span,
                file: None,
            });
        }
        directives.push(Directive {
            kind,
            name: line[found.name].to_owned(),
            value: line[found.value.clone()].to_owned(),
            span: line_span,
            value_span: self::line_span(&text, start, line_no, found.value),
        });
    }
    Ok(directives)
}

/// A span within one line that starts at byte `line_start` of `text`.
pub(crate) fn line_span(text: &str, line_start: usize, line_no: u32, range: Range<usize>) -> Span {
    let start = line_start + range.start;
    Span {
        start,
        end: line_start + range.end,
        start_line: line_no,
        end_line: line_no,
        start_column: column(text, line_start, start),
    }
}

/// The 1-based character column of byte `offset`, on the line starting at `line_start`.
pub(crate) fn column(text: &str, line_start: usize, offset: usize) -> u32 {
    let prefix = &text[line_start..offset];
    let chars = if prefix.is_ascii() {
        prefix.len()
    } else {
        prefix.chars().count()
    };
    u32::try_from(chars + 1).unwrap_or(u32::MAX)
}

/// Finds the `syntax` directive the way BuildKit picks a frontend (`DetectSyntax`):
/// a UTF-8 byte-order mark and a `#!` first line are skipped; then `# syntax=` directives,
/// then `// syntax=` ones, then a whole-file JSON object `{"syntax": "..."}`.
pub fn detect_syntax(source: &[u8]) -> Option<DetectedDirective> {
    detect(DirectiveKind::Syntax, source, true)
}

/// Finds a directive of the given kind in the `#` directive block (BuildKit's
/// `ParseDirective`; used for `check`). BOM and `#!` first line are skipped as in
/// [`detect_syntax`], but only the `#` form counts.
pub fn find_directive(kind: DirectiveKind, source: &[u8]) -> Option<DetectedDirective> {
    detect(kind, source, false)
}

fn detect(kind: DirectiveKind, source: &[u8], any_format: bool) -> Option<DetectedDirective> {
    let text = String::from_utf8_lossy(source);
    let mut text: &str = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut first_line = 1;
    let first = text.split('\n').next().unwrap_or("");
    if first.starts_with("#!") {
        text = text.get(first.len() + 1..).unwrap_or("");
        first_line = 2;
    }
    let prefixes: &[&str] = if any_format { &["#", "//"] } else { &["#"] };
    for prefix in prefixes {
        if let Some(found) = find_in_block(kind, text, prefix, first_line) {
            return Some(found);
        }
    }
    if any_format {
        let value = crate::json::object_string_member(text, kind.as_str())?;
        return Some(DetectedDirective {
            value: value.clone(),
            cmdline: value,
            line: first_line,
        });
    }
    None
}

fn find_in_block(
    kind: DirectiveKind,
    text: &str,
    prefix: &str,
    first_line: u32,
) -> Option<DetectedDirective> {
    let mut seen: Vec<DirectiveKind> = Vec::new();
    for (number, (_, line)) in scan_lines(text).enumerate() {
        let found = match_directive_line(line, prefix)?;
        let found_kind = DirectiveKind::from_name(&line[found.name])?;
        if seen.contains(&found_kind) {
            // BuildKit stops at a repeated directive and keeps what it had.
            return None;
        }
        seen.push(found_kind);
        if found_kind == kind {
            let cmdline = &line[found.value];
            let value = cmdline.split(' ').next().unwrap_or(cmdline);
            return Some(DetectedDirective {
                value: value.to_owned(),
                cmdline: cmdline.to_owned(),
                line: first_line + u32::try_from(number).unwrap_or(u32::MAX),
            });
        }
    }
    None
}
