//! Finding heredoc markers (`<<EOF`, `<<-'EOF'`, `3<<EOF`) on an instruction line.
//!
//! BuildKit splits the line into shell words with its variable lexer (quotes and escapes
//! kept, unset variables kept literally, always `\` as escape), then matches each word
//! against `^(\d*)<<(-?)\s*([^<]*)$`. The terminator word is lexed twice, with and without
//! quote removal: if the quote counts differ, part of it was quoted and the body is not
//! expanded. This module reproduces that with a small lexer of its own (no variable values
//! are ever needed: the environment is always empty).

use std::ops::Range;

/// A heredoc marker word, classified: what [`parse_heredoc_word`] and
/// [`heredocs_in_line`] return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeredocMarker {
    /// The terminator with quotes removed.
    pub name: String,
    /// The file descriptor before `<<` (0 when absent).
    pub file_descriptor: u32,
    /// False when any part of the terminator was quoted.
    pub expand: bool,
    /// `<<-`: strip leading tabs.
    pub chomp: bool,
}

/// A heredoc terminator word that cannot be lexed, e.g. `<<'EOF` (unbalanced quote).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {reason}", crate::go_quote(.word))]
pub struct HeredocWordError {
    /// The terminator part of the word (after `<<`).
    pub word: String,
    /// What the lexer found wrong.
    pub reason: String,
}

/// Classifies one word as a heredoc marker (BuildKit's `ParseHeredoc`).
///
/// `Ok(None)` when the word is not a heredoc (`EOF`, `<<`, `<<<EOF`, `<<EOF sh`), an error
/// when it is one with an unlexable terminator (`<<'EOF`). The typed layer uses this to tell
/// heredoc sources of COPY/ADD from paths.
pub fn parse_heredoc_word(word: &str) -> Result<Option<HeredocMarker>, HeredocWordError> {
    let digits_end = word
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(word.len());
    let Some(after) = word[digits_end..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    let rest = after.trim_start_matches(is_go_regex_space);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    // Go ignores the ParseUint error: an overflowing number gives the maximum value.
    let file_descriptor = match &word[..digits_end] {
        "" => 0,
        digits => digits.parse::<u32>().unwrap_or(u32::MAX),
    };

    let lex_error = |reason: LexError| HeredocWordError {
        word: rest.to_owned(),
        reason: reason.message(),
    };
    let mut words = lex_words(rest, false, false).map_err(lex_error)?;
    if words.len() != 1 {
        return Ok(None);
    }
    let mut raw = lex_words(rest, true, false).map_err(lex_error)?;
    if raw.len() != 1 {
        return Err(HeredocWordError {
            word: rest.to_owned(),
            reason: "internal lexing of heredoc produced inconsistent results".to_owned(),
        });
    }
    let (name, _) = words.remove(0);
    let (raw_name, _) = raw.remove(0);
    let expand = count_quotes(&name) == count_quotes(&raw_name);
    Ok(Some(HeredocMarker {
        name,
        file_descriptor,
        expand,
        chomp,
    }))
}

/// The heredoc markers on an instruction line, in order (BuildKit's `heredocsFromLine`).
///
/// The line is split into words the way a shell would (quoted `'<<EOF'` is not a marker;
/// `<< EOF` with spaces is). A line the lexer cannot split (unbalanced quotes) has no
/// markers, as in BuildKit.
pub fn heredocs_in_line(line: &str) -> Result<Vec<HeredocMarker>, HeredocWordError> {
    Ok(heredoc_words_in_line(line)?
        .into_iter()
        .map(|(marker, _)| marker)
        .collect())
}

/// Like [`heredocs_in_line`], with the byte range of each marker word in `line`.
pub(crate) fn heredoc_words_in_line(
    line: &str,
) -> Result<Vec<(HeredocMarker, Range<usize>)>, HeredocWordError> {
    let Ok(words) = lex_words(line, true, true) else {
        return Ok(Vec::new());
    };
    let mut markers = Vec::new();
    for (word, range) in words {
        if let Some(marker) = parse_heredoc_word(&word)? {
            markers.push((marker, range));
        }
    }
    Ok(markers)
}

/// Strips leading tabs from every line of a heredoc body (what `<<-EOF` asks for;
/// BuildKit's `ChompHeredocContent`).
pub fn chomp_heredoc_content(content: &str) -> String {
    let mut out = String::with_capacity(content.len());
    for line in content.split_inclusive('\n') {
        out.push_str(line.trim_start_matches('\t'));
    }
    out
}

fn count_quotes(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'\'' || b == b'"').count()
}

/// Go's regexp `\s`: ASCII space, tab, LF, FF, CR (not VT).
pub(crate) fn is_go_regex_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r')
}

/// Why the lexer gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LexError {
    UnterminatedSingleQuote,
    UnterminatedDoubleQuote,
    MissingBrace,
    BadSubstitution,
    UnsupportedModifier,
    UnexpectedEnd(char),
}

impl LexError {
    fn message(self) -> String {
        match self {
            Self::UnterminatedSingleQuote => {
                "unexpected end of statement while looking for matching single-quote".to_owned()
            }
            Self::UnterminatedDoubleQuote => {
                "unexpected end of statement while looking for matching double-quote".to_owned()
            }
            Self::MissingBrace => "syntax error: missing '}'".to_owned(),
            Self::BadSubstitution => "syntax error: bad substitution".to_owned(),
            Self::UnsupportedModifier => "unsupported modifier in substitution".to_owned(),
            Self::UnexpectedEnd(stop) => {
                format!("unexpected end of statement while looking for matching {stop}")
            }
        }
    }
}

/// Splits `input` into shell words like BuildKit's `Lex.ProcessWords` with an empty
/// environment, `SkipUnsetEnv` (variable references stay as written) and `\` as escape.
/// `raw_quotes` keeps quote characters, `raw_escapes` keeps escape characters.
fn lex_words(
    input: &str,
    raw_quotes: bool,
    raw_escapes: bool,
) -> Result<Vec<(String, Range<usize>)>, LexError> {
    let mut lexer = Lexer {
        input,
        pos: 0,
        raw_quotes,
    };
    let mut words = Words::default();
    lexer.words(&mut words, raw_escapes)?;
    Ok(words.finish())
}

#[derive(Default)]
struct Words {
    done: Vec<(String, Range<usize>)>,
    word: String,
    start: usize,
    end: usize,
}

impl Words {
    fn begin(&mut self, at: usize) {
        if self.word.is_empty() {
            self.start = at;
        }
    }

    /// A character that splits words when it is whitespace.
    fn add_char(&mut self, c: char, at: Range<usize>) {
        if c.is_whitespace() {
            self.flush();
        } else {
            self.add_raw(c, at);
        }
    }

    fn add_raw(&mut self, c: char, at: Range<usize>) {
        self.begin(at.start);
        self.word.push(c);
        self.end = at.end;
    }

    fn add_raw_str(&mut self, s: &str, at: Range<usize>) {
        if s.is_empty() {
            return;
        }
        self.begin(at.start);
        self.word.push_str(s);
        self.end = at.end;
    }

    fn add_split_str(&mut self, s: &str, at: Range<usize>) {
        for c in s.chars() {
            self.add_char(c, at.clone());
        }
    }

    fn flush(&mut self) {
        if !self.word.is_empty() {
            self.done
                .push((std::mem::take(&mut self.word), self.start..self.end));
        }
    }

    fn finish(mut self) -> Vec<(String, Range<usize>)> {
        self.flush();
        self.done
    }
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    raw_quotes: bool,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// The top level: words until the end of input.
    fn words(&mut self, words: &mut Words, raw_escapes: bool) -> Result<(), LexError> {
        while let Some(c) = self.peek() {
            let start = self.pos;
            match c {
                '$' => {
                    let text = self.dollar()?;
                    words.add_split_str(&text, start..self.pos);
                }
                '\'' => {
                    let text = self.single_quoted()?;
                    words.add_raw_str(&text, start..self.pos);
                }
                '"' => {
                    let text = self.double_quoted(raw_escapes)?;
                    words.add_raw_str(&text, start..self.pos);
                }
                '<' => {
                    let end = self.possible_heredoc().len() + start;
                    words.add_raw_str(&self.input[start..end], start..end);
                }
                '\\' => {
                    self.bump();
                    if raw_escapes {
                        words.add_raw('\\', start..self.pos);
                    }
                    let escaped_start = self.pos;
                    let Some(escaped) = self.bump() else { break };
                    words.add_raw(escaped, escaped_start..self.pos);
                }
                _ => {
                    self.bump();
                    words.add_char(c, start..self.pos);
                }
            }
        }
        Ok(())
    }

    /// Text up to (and consuming) `stop`, for the inside of `${...}`.
    fn until(&mut self, stop: char, raw_escapes: bool) -> Result<String, LexError> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == stop {
                self.bump();
                return Ok(out);
            }
            match c {
                '$' => out.push_str(&self.dollar()?),
                '\'' => out.push_str(&self.single_quoted()?),
                '"' => out.push_str(&self.double_quoted(raw_escapes)?),
                '<' => out.push_str(self.possible_heredoc()),
                '\\' => {
                    self.bump();
                    if raw_escapes {
                        out.push('\\');
                    }
                    let Some(escaped) = self.bump() else { break };
                    out.push(escaped);
                }
                _ => {
                    self.bump();
                    out.push(c);
                }
            }
        }
        Err(LexError::UnexpectedEnd(stop))
    }

    fn single_quoted(&mut self) -> Result<String, LexError> {
        self.bump();
        let mut out = String::new();
        if self.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.bump() {
                None => return Err(LexError::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quoted(&mut self, raw_escapes: bool) -> Result<String, LexError> {
        self.bump();
        let mut out = String::new();
        if self.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => return Err(LexError::UnterminatedDoubleQuote),
                Some('"') => {
                    self.bump();
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(_) => {
                    let mut c = self.bump().expect("peeked a character above");
                    if c == '\\' {
                        if raw_escapes {
                            out.push('\\');
                        }
                        match self.peek() {
                            None => continue,
                            Some('"' | '$' | '\\') => {
                                c = self.bump().expect("peeked a character above");
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// `<` or `<<` plus any whitespace after it (and after a `-`), so `<< EOF` and
    /// `<<- EOF` stay one word.
    fn possible_heredoc(&mut self) -> &str {
        let start = self.pos;
        self.bump();
        if self.peek() != Some('<') {
            return &self.input[start..self.pos];
        }
        self.bump();
        let after_angles = self.pos;
        if self.peek() == Some('-') {
            self.bump();
        }
        let before_space = self.pos;
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
        if self.pos == before_space {
            // No whitespace: leave a `-` to the ordinary word characters.
            self.pos = after_angles;
        }
        &self.input[start..self.pos]
    }

    /// A `$` reference, reproduced literally (nothing is ever set).
    fn dollar(&mut self) -> Result<String, LexError> {
        self.bump();
        if self.peek() != Some('{') {
            let name = self.name();
            return Ok(format!("${name}"));
        }
        self.bump();
        match self.peek() {
            None => return Err(LexError::MissingBrace),
            Some('{' | '}' | ':') => return Err(LexError::BadSubstitution),
            Some(_) => {}
        }
        let name = self.name().to_owned();
        let Some(op) = self.bump() else {
            return Err(LexError::UnsupportedModifier);
        };
        match op {
            '}' => Ok(format!("${{{name}}}")),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let mut modifier = String::from(op);
                let mut kind = op;
                if op == ':' {
                    match self.bump() {
                        Some(next) => {
                            modifier.push(next);
                            kind = next;
                        }
                        None => return Err(LexError::MissingBrace),
                    }
                }
                let raw = kind == '#' || kind == '%';
                let word = self.until('}', raw).map_err(|e| self.at_end_or(e))?;
                Ok(format!("${{{name}{modifier}{word}}}"))
            }
            '/' => {
                if self.peek() == Some('/') {
                    self.bump();
                }
                let pattern = self.until('/', true).map_err(|e| self.at_end_or(e))?;
                let replacement = self.until('}', true).map_err(|e| self.at_end_or(e))?;
                Ok(format!("${{{name}/{pattern}/{replacement}}}"))
            }
            _ => Err(LexError::UnsupportedModifier),
        }
    }

    fn at_end_or(&self, error: LexError) -> LexError {
        if self.pos >= self.input.len() {
            LexError::MissingBrace
        } else {
            error
        }
    }

    /// A variable name: digits, one special parameter, or letters/digits/underscores.
    fn name(&mut self) -> &str {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
            }
            Some('@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') => {
                self.bump();
            }
            _ => {
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.bump();
                }
            }
        }
        &self.input[start..self.pos]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(input: &str) -> Vec<String> {
        lex_words(input, true, true)
            .unwrap()
            .into_iter()
            .map(|(w, _)| w)
            .collect()
    }

    #[test]
    fn lexer_keeps_quotes_escapes_and_variables() {
        assert_eq!(
            words(r#"RUN "a b" 'c d' e\ f $X ${Y:-z}"#),
            ["RUN", "\"a b\"", "'c d'", "e\\ f", "$X", "${Y:-z}"]
        );
        assert_eq!(words("RUN <<  EOF  > foo"), ["RUN", "<<  EOF", ">", "foo"]);
        assert_eq!(words("RUN <<- EOF"), ["RUN", "<<- EOF"]);
        assert_eq!(words("RUN <<-EOF"), ["RUN", "<<-EOF"]);
        assert!(lex_words("RUN 'x", true, true).is_err());
        assert!(lex_words("RUN ${}", true, true).is_err());
    }

    #[test]
    fn marker_ranges_point_at_the_word() {
        let line = "COPY <<A  3<<'B' /dst";
        let found = heredoc_words_in_line(line).unwrap();
        let ranges: Vec<_> = found.iter().map(|(_, r)| &line[r.clone()]).collect();
        assert_eq!(ranges, ["<<A", "3<<'B'"]);
        assert_eq!(found[1].0.file_descriptor, 3);
        assert!(!found[1].0.expand);
    }
}
