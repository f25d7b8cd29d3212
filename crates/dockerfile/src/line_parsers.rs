//! Splitting one joined instruction line: keyword, `--flags`, and the arguments per
//! instruction kind (BuildKit's `split_command.go` and `line_parsers.go`).
//!
//! Everything here works on byte ranges into the line, so the caller can map each piece
//! back to the source for spans. Only flag words are rewritten (BuildKit unquotes them).

use std::ops::Range;

/// BuildKit's `[\t\v\f\r ]`: the whitespace that separates the keyword and FROM/EXPOSE/ADD
/// words (Unicode spaces such as U+00A0 do not).
pub(crate) fn is_token_space(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// The range of `text[range]` with Unicode whitespace trimmed at both ends
/// (Go's `strings.TrimSpace`).
pub(crate) fn trim_range(text: &str, range: Range<usize>) -> Range<usize> {
    let inner = &text[range.clone()];
    let start = range.start + (inner.len() - inner.trim_start().len());
    let end = range.start + inner.trim_end().len();
    start..end.max(start)
}

/// An instruction line split into keyword, flags and argument text.
pub(crate) struct SplitCommand {
    /// The keyword as written.
    pub(crate) keyword: Range<usize>,
    /// Each flag word, unquoted, with its raw range.
    pub(crate) flags: Vec<(String, Range<usize>)>,
    /// The argument text after the flags, trimmed.
    pub(crate) args: Range<usize>,
}

/// Splits `line` into keyword, flags and arguments (BuildKit's `splitCommand`).
pub(crate) fn split_command(line: &str) -> SplitCommand {
    let trimmed = trim_range(line, 0..line.len());
    let body = &line[trimmed.clone()];
    let keyword_len = body.find(is_token_space).unwrap_or(body.len());
    let keyword = trimmed.start..trimmed.start + keyword_len;
    if keyword.end == trimmed.end {
        return SplitCommand {
            keyword,
            flags: Vec::new(),
            args: trimmed.end..trimmed.end,
        };
    }
    let after_keyword = &line[keyword.end..trimmed.end];
    let rest_start = trimmed.end - after_keyword.trim_start_matches(is_token_space).len();
    let (args_start, flags) = extract_flags(line, rest_start..trimmed.end);
    SplitCommand {
        keyword,
        flags,
        args: trim_range(line, args_start..trimmed.end),
    }
}

/// Collects the `--flag` words at the start of `line[range]` (BuildKit's
/// `extractBuilderFlags`): quotes are removed and `\` escapes the next character (also
/// inside quotes); a bare `--` ends the flags. Returns where the arguments start.
fn extract_flags(line: &str, range: Range<usize>) -> (usize, Vec<(String, Range<usize>)>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let text = &line[..range.end];
    let mut flags = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut word_start = range.start;
    let mut blank_ok = false;
    let mut chars = text[range.start..].char_indices().peekable();
    while let Some((rel, c)) = chars.next() {
        let pos = range.start + rel;
        if phase == Phase::Spaces {
            if c.is_whitespace() {
                continue;
            }
            let next_is_dash = chars.peek().is_some_and(|&(_, n)| n == '-');
            if c != '-' || !next_is_dash {
                return (pos, flags);
            }
            phase = Phase::Word;
            word_start = pos;
        }
        match phase {
            Phase::Spaces => unreachable!("phase was switched to Word above"),
            Phase::Word => {
                if c.is_whitespace() {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (pos, flags);
                    }
                    if blank_ok || !word.is_empty() {
                        flags.push((std::mem::take(&mut word), word_start..pos));
                    }
                    word.clear();
                    blank_ok = false;
                    continue;
                }
                if c == '\'' || c == '"' {
                    phase = Phase::Quote(c);
                    blank_ok = true;
                    continue;
                }
                let mut c = c;
                if c == '\\' {
                    match chars.next() {
                        Some((_, escaped)) => c = escaped,
                        None => continue,
                    }
                }
                word.push(c);
            }
            Phase::Quote(quote) => {
                if c == quote {
                    phase = Phase::Word;
                    continue;
                }
                let mut c = c;
                if c == '\\' {
                    match chars.next() {
                        Some((_, escaped)) => c = escaped,
                        None => {
                            phase = Phase::Word;
                            continue;
                        }
                    }
                }
                word.push(c);
            }
        }
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        flags.push((word, word_start..range.end));
    }
    (range.end, flags)
}

/// Splits on unquoted, unescaped Unicode whitespace, keeping quotes and escapes in the
/// words (BuildKit's `parseWords`, used for ARG, ENV and LABEL). An escape character at the
/// very end is dropped. Returns the byte ranges of the words.
pub(crate) fn word_ranges(text: &str, escape: char) -> Vec<Range<usize>> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut start = 0;
    // End of the word so far (excludes a dropped trailing escape character).
    let mut end = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((pos, c)) = chars.next() {
        let next_pos = pos + c.len_utf8();
        if phase == Phase::Spaces {
            if c.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
            start = pos;
            end = pos;
        }
        match phase {
            Phase::Spaces => unreachable!("phase was switched to Word above"),
            Phase::Word => {
                if c.is_whitespace() {
                    phase = Phase::Spaces;
                    if end > start {
                        words.push(start..end);
                    }
                    continue;
                }
                if c == '\'' || c == '"' {
                    phase = Phase::Quote(c);
                }
                if c == escape {
                    // The escape and the character after it, even a quote or a space; an
                    // escape at the very end is dropped.
                    if let Some((escaped_pos, escaped)) = chars.next() {
                        end = escaped_pos + escaped.len_utf8();
                    }
                    continue;
                }
                end = next_pos;
            }
            Phase::Quote(quote) => {
                if c == quote {
                    phase = Phase::Word;
                }
                if c == escape && quote != '\'' {
                    match chars.next() {
                        Some((escaped_pos, escaped)) => end = escaped_pos + escaped.len_utf8(),
                        None => phase = Phase::Word,
                    }
                    continue;
                }
                end = next_pos;
            }
        }
    }
    if phase != Phase::Spaces && end > start {
        words.push(start..end);
    }
    words
}

/// Splits words for ARG/ENV/LABEL the way BuildKit's parser does (see
/// [`Args::Words`](crate::Args::Words)): on unquoted, unescaped whitespace, quotes and
/// escapes kept. `escape` is the file's escape character.
pub fn parse_words(text: &str, escape: char) -> Vec<&str> {
    word_ranges(text, escape)
        .into_iter()
        .map(|range| &text[range])
        .collect()
}

/// Splits on runs of `[\t\v\f\r ]` (FROM, EXPOSE, ADD/COPY/VOLUME without JSON).
pub(crate) fn token_space_ranges(text: &str) -> Vec<Range<usize>> {
    let mut words = Vec::new();
    let mut start = None;
    for (pos, c) in text.char_indices() {
        if is_token_space(c) {
            if let Some(s) = start.take() {
                words.push(s..pos);
            }
        } else if start.is_none() {
            start = Some(pos);
        }
    }
    if let Some(s) = start {
        words.push(s..text.len());
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> (&str, Vec<String>, &str) {
        let s = split_command(line);
        (
            &line[s.keyword],
            s.flags.into_iter().map(|(f, _)| f).collect(),
            &line[s.args],
        )
    }

    #[test]
    fn flags_are_unquoted_and_end_at_double_dash() {
        assert_eq!(
            split("COPY --a=1 --b=\"x y\" -- --c d"),
            ("COPY", vec!["--a=1".into(), "--b=x y".into()], "--c d")
        );
        assert_eq!(split("  RUN   echo hi  "), ("RUN", vec![], "echo hi"));
        assert_eq!(
            split("CMD --doit -- [ ]"),
            ("CMD", vec!["--doit".into()], "[ ]")
        );
        assert_eq!(split("COPY --"), ("COPY", vec![], ""));
        assert_eq!(split("COPY -x y"), ("COPY", vec![], "-x y"));
        assert_eq!(split("X --a='b\\'c'"), ("X", vec!["--a=b'c".into()], ""));
    }

    #[test]
    fn flag_ranges_cover_raw_words() {
        let line = "COPY --from=\"a b\" x";
        let s = split_command(line);
        assert_eq!(&line[s.flags[0].1.clone()], "--from=\"a b\"");
    }

    #[test]
    fn words_keep_quotes() {
        assert_eq!(
            parse_words("abc=\"123 456\" def", '\\'),
            ["abc=\"123 456\"", "def"]
        );
        assert_eq!(parse_words("a\\ b c\\", '\\'), ["a\\ b", "c"]);
        assert_eq!(parse_words("a` b", '`'), ["a` b"]);
        assert_eq!(parse_words("'x", '\\'), ["'x"]);
    }
}
