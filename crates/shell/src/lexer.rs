//! The lexer: one pass over a word, expanding as it goes.
//!
//! The structure follows BuildKit's `shellWord`: a loop that copies ordinary characters
//! and hands `$`, `'` and `"` to their own routines, where `${…}` recurses into the same
//! loop with a stop character (`}` or `/`). The output is written into one `String`
//! that nested expansions append to and truncate, instead of returning fresh strings.

use crate::env::Env;
use crate::error::{Fault, ShellError};
use crate::go;
use crate::pattern::{self, PatternError};

/// How deeply `${…}` expansions may nest (`${A:-${B:-${C}}}` is three levels).
///
/// BuildKit has no limit; ours keeps recursion bounded so that no input can exhaust the
/// stack (each level costs a few hundred bytes of stack in release builds and about 3 KiB
/// in unoptimised ones, so the limit fits well within a 2 MiB thread). Real Dockerfiles
/// nest two or three levels.
pub const MAX_NESTING: usize = 128;

/// BuildKit's shell-word lexer: the escape character and the option switches.
///
/// A `Lexer` is a small `Copy` value; build one per Dockerfile (the escape character
/// comes from its `# escape=` directive) or per use, and call [`process_word`] or
/// [`process_words`] as often as needed.
///
/// The options mirror BuildKit's `Lex` fields; all are off by default:
///
/// | setter | BuildKit | effect |
/// | --- | --- | --- |
/// | [`with_raw_quotes`] | `RawQuotes` | quotes are honoured but kept in the output |
/// | [`with_raw_escapes`] | `RawEscapes` | escape characters are honoured but kept in the output |
/// | [`with_skip_process_quotes`] | `SkipProcessQuotes` | `'` and `"` are ordinary characters (heredoc bodies) |
/// | [`with_skip_unset_env`] | `SkipUnsetEnv` | references to unset variables are left as written |
///
/// [`process_word`]: Lexer::process_word
/// [`process_words`]: Lexer::process_words
/// [`with_raw_quotes`]: Lexer::with_raw_quotes
/// [`with_raw_escapes`]: Lexer::with_raw_escapes
/// [`with_skip_process_quotes`]: Lexer::with_skip_process_quotes
/// [`with_skip_unset_env`]: Lexer::with_skip_unset_env
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_process_quotes: bool,
    skip_unset_env: bool,
}

impl Default for Lexer {
    /// A lexer with the default escape character `\` and no options.
    fn default() -> Self {
        Self::new('\\')
    }
}

/// The result of [`Lexer::process_word`]: the expanded word and the variables it used.
///
/// `matched` lists the names that were referenced and set (possibly empty); `unmatched`
/// the names that were referenced but unset. Each name appears once, in the order of its
/// first reference, and borrows from the input word. A name counts as referenced when
/// the lexer looked it up, which includes names whose value the operator then ignored
/// (`${SET:+x}`, `${V:-$DEFAULT}` with `V` set still looks up `DEFAULT`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessedWord<'w> {
    /// The word after quote removal and expansion.
    pub value: String,
    /// Referenced variables that are set.
    pub matched: Vec<&'w str>,
    /// Referenced variables that are unset.
    pub unmatched: Vec<&'w str>,
}

impl Lexer {
    /// A lexer whose escape character is `escape`: `\` by default, `` ` `` when the
    /// Dockerfile says `# escape=``.
    pub const fn new(escape: char) -> Self {
        Self {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// The escape character.
    pub const fn escape(&self) -> char {
        self.escape
    }

    /// Keep quote characters in the output while still honouring them (BuildKit's
    /// `RawQuotes`): `a"b c"` gives the word `a"b c"` instead of `ab c`.
    #[must_use]
    pub const fn with_raw_quotes(mut self, raw_quotes: bool) -> Self {
        self.raw_quotes = raw_quotes;
        self
    }

    /// Keep escape characters in the output while still honouring them (BuildKit's
    /// `RawEscapes`): `a\ b` stays `a\ b` and is still one word.
    #[must_use]
    pub const fn with_raw_escapes(mut self, raw_escapes: bool) -> Self {
        self.raw_escapes = raw_escapes;
        self
    }

    /// Treat `'` and `"` as ordinary characters (BuildKit's `SkipProcessQuotes`), as
    /// BuildKit does when it expands variables in a heredoc body.
    #[must_use]
    pub const fn with_skip_process_quotes(mut self, skip_process_quotes: bool) -> Self {
        self.skip_process_quotes = skip_process_quotes;
        self
    }

    /// Leave references to unset variables as written (BuildKit's `SkipUnsetEnv`): `$X`
    /// stays `$X`, `${X}` stays `${X}`, `${X:-w}` becomes `${X:-` + expanded `w` + `}`.
    #[must_use]
    pub const fn with_skip_unset_env(mut self, skip_unset_env: bool) -> Self {
        self.skip_unset_env = skip_unset_env;
        self
    }

    /// Expands one word: quote removal, escapes and variable expansion, without field
    /// splitting (whitespace, quoted or not, stays in the word). This is BuildKit's
    /// `ProcessWord` / `ProcessWordWithMatches`.
    pub fn process_word<'w, E: Env + ?Sized>(
        &self,
        word: &'w str,
        env: &E,
    ) -> Result<ProcessedWord<'w>, ShellError> {
        let mut expander = Expander::new(*self, word, env, true);
        let mut value = String::with_capacity(word.len());
        match expander.scan_until(Stop::End, self.raw_escapes, &mut value, None) {
            Ok(()) => Ok(ProcessedWord {
                value,
                matched: expander.matched,
                unmatched: expander.unmatched,
            }),
            Err(fault) => Err(fault.into_error(word)),
        }
    }

    /// Expands a line and splits it into words on unquoted, unescaped whitespace, which
    /// includes whitespace that comes from expanding a variable outside quotes
    /// (`$V` with `V="a b"` gives two words, `"$V"` one). Empty words are dropped. This is
    /// BuildKit's `ProcessWords`.
    pub fn process_words<E: Env + ?Sized>(
        &self,
        line: &str,
        env: &E,
    ) -> Result<Vec<String>, ShellError> {
        let mut expander = Expander::new(*self, line, env, false);
        let mut scratch = String::with_capacity(line.len());
        let mut words = Words::default();
        expander
            .scan_until(Stop::End, self.raw_escapes, &mut scratch, Some(&mut words))
            .map_err(|fault| fault.into_error(line))?;
        Ok(words.finish())
    }
}

/// Where a scan ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The end of the input (the word itself).
    End,
    /// The `}` closing `${…}`.
    Brace,
    /// The `/` between pattern and replacement in `${V/p/r}`.
    Slash,
}

impl Stop {
    fn char(self) -> Option<char> {
        match self {
            Self::End => None,
            Self::Brace => Some('}'),
            Self::Slash => Some('/'),
        }
    }

    /// The error for reaching the end of the input before the stop character.
    fn missing(self) -> Fault {
        match self {
            Self::Slash => Fault::MissingSlash,
            Self::End | Self::Brace => Fault::MissingClosingBrace,
        }
    }
}

/// Words being split off the expanded text (for [`Lexer::process_words`]).
#[derive(Default)]
struct Words {
    done: Vec<String>,
    current: String,
}

impl Words {
    /// A character that splits when it is whitespace.
    fn push_char(&mut self, c: char) {
        if go::is_space(c) {
            self.end_word();
        } else {
            self.current.push(c);
        }
    }

    /// An escaped character: part of the word even when it is whitespace.
    fn push_raw_char(&mut self, c: char) {
        self.current.push(c);
    }

    /// Text from a variable expansion: it splits on its whitespace.
    fn push_split(&mut self, text: &str) {
        text.chars().for_each(|c| self.push_char(c));
    }

    /// Text from a quoted string: part of the word as it is.
    fn push_raw(&mut self, text: &str) {
        self.current.push_str(text);
    }

    fn end_word(&mut self) {
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.end_word();
        self.done
    }
}

/// One expansion in progress: the input, the position in it, and what was looked up.
struct Expander<'w, 'e, E: Env + ?Sized> {
    lexer: Lexer,
    src: &'w str,
    pos: usize,
    env: &'e E,
    depth: usize,
    capture: bool,
    matched: Vec<&'w str>,
    unmatched: Vec<&'w str>,
}

impl<'w, 'e, E: Env + ?Sized> Expander<'w, 'e, E> {
    fn new(lexer: Lexer, src: &'w str, env: &'e E, capture: bool) -> Self {
        // BuildKit reads the word with Go's text/scanner, which skips a byte-order mark at
        // the very start of its input.
        let pos = if src.starts_with('\u{feff}') {
            '\u{feff}'.len_utf8()
        } else {
            0
        };
        Self {
            lexer,
            src,
            pos,
            env,
            depth: 0,
            capture,
            matched: Vec::new(),
            unmatched: Vec::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    /// Expands from the current position up to `stop` (consumed) or the end of the input,
    /// appending to `out` and, when splitting, to `words`. `raw` keeps escape characters.
    fn scan_until(
        &mut self,
        stop: Stop,
        raw: bool,
        out: &mut String,
        mut words: Option<&mut Words>,
    ) -> Result<(), Fault> {
        let stop_char = stop.char();
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(c) = self.peek() {
            if Some(c) == stop_char {
                self.pos += c.len_utf8();
                return Ok(());
            }
            let start = out.len();
            match c {
                '$' => {
                    self.dollar(out)?;
                    if let Some(words) = words.as_deref_mut() {
                        words.push_split(&out[start..]);
                    }
                }
                '\'' | '"' if quotes => {
                    if c == '\'' {
                        self.single_quote(out)?;
                    } else {
                        self.double_quote(raw, out)?;
                    }
                    if let Some(words) = words.as_deref_mut() {
                        words.push_raw(&out[start..]);
                    }
                }
                c if c == self.lexer.escape => {
                    if !self.escaped(raw, out, words.as_deref_mut()) {
                        break;
                    }
                }
                _ => self.ordinary(stop_char, out, words.as_deref_mut()),
            }
        }
        match stop_char {
            None => Ok(()),
            Some(_) => Err(stop.missing()),
        }
    }

    /// The escape character and the character it escapes. `false` when the escape
    /// character is the last one: it escapes nothing and disappears.
    #[inline(never)]
    fn escaped(&mut self, raw: bool, out: &mut String, mut words: Option<&mut Words>) -> bool {
        let escape = self.lexer.escape;
        self.pos += escape.len_utf8();
        if raw {
            out.push(escape);
            if let Some(words) = words.as_deref_mut() {
                words.push_raw_char(escape);
            }
        }
        let Some(escaped) = self.bump() else {
            return false;
        };
        out.push(escaped);
        if let Some(words) = words {
            words.push_raw_char(escaped);
        }
        true
    }

    /// A run of ordinary characters, up to the next one the scan must look at.
    #[inline(never)]
    fn ordinary(&mut self, stop_char: Option<char>, out: &mut String, words: Option<&mut Words>) {
        let escape = self.lexer.escape;
        let quotes = !self.lexer.skip_process_quotes;
        let rest = &self.src[self.pos..];
        let run = rest
            .find(|c: char| {
                c == '$'
                    || c == escape
                    || Some(c) == stop_char
                    || (quotes && (c == '\'' || c == '"'))
            })
            .unwrap_or(rest.len());
        let run = &rest[..run];
        out.push_str(run);
        if let Some(words) = words {
            // Unquoted, unescaped text splits on its whitespace.
            words.push_split(run);
        }
        self.pos += run.len();
    }

    /// A nested scan for the word inside `${…}`. When it fails at the end of the input the
    /// real problem is the unclosed `${`, and that is what BuildKit reports.
    fn nested(&mut self, stop: Stop, raw: bool, out: &mut String) -> Result<(), Fault> {
        match self.scan_until(stop, raw, out, None) {
            Err(fault) if self.at_end() && !matches!(fault, Fault::NestingTooDeep(_)) => {
                Err(stop.missing())
            }
            result => result,
        }
    }

    /// `'…'`: everything up to the next `'` is literal.
    fn single_quote(&mut self, out: &mut String) -> Result<(), Fault> {
        self.pos += '\''.len_utf8();
        let rest = &self.src[self.pos..];
        let Some(end) = rest.find('\'') else {
            self.pos = self.src.len();
            return Err(Fault::UnterminatedSingleQuote);
        };
        if self.lexer.raw_quotes {
            out.push('\'');
        }
        out.push_str(&rest[..end]);
        if self.lexer.raw_quotes {
            out.push('\'');
        }
        self.pos += end + '\''.len_utf8();
        Ok(())
    }

    /// `"…"`: literal except for `$` expansions and the escape character, which escapes
    /// only `"`, `$` and itself (before anything else it stays as it is).
    fn double_quote(&mut self, raw: bool, out: &mut String) -> Result<(), Fault> {
        self.pos += '"'.len_utf8();
        if self.lexer.raw_quotes {
            out.push('"');
        }
        loop {
            let Some(c) = self.peek() else {
                return Err(Fault::UnterminatedDoubleQuote);
            };
            match c {
                '"' => {
                    self.pos += '"'.len_utf8();
                    if self.lexer.raw_quotes {
                        out.push('"');
                    }
                    return Ok(());
                }
                '$' => self.dollar(out)?,
                _ => self.quoted_text(raw, out),
            }
        }
    }

    /// Inside `"…"`: an escape, or the run of characters up to the next `"`, `$` or escape.
    #[inline(never)]
    fn quoted_text(&mut self, raw: bool, out: &mut String) {
        let escape = self.lexer.escape;
        if self.peek() == Some(escape) {
            self.pos += escape.len_utf8();
            if raw {
                out.push(escape);
            }
            match self.peek() {
                // Nothing left to escape; the caller reports the missing quote.
                None => {}
                Some(next) if next == '"' || next == '$' || next == escape => {
                    self.pos += next.len_utf8();
                    out.push(next);
                }
                Some(_) => out.push(escape),
            }
            return;
        }
        let rest = &self.src[self.pos..];
        let run = rest.find(['"', '$', escape]).unwrap_or(rest.len());
        out.push_str(&rest[..run]);
        self.pos += run;
    }

    /// `$…` and `${…}`.
    fn dollar(&mut self, out: &mut String) -> Result<(), Fault> {
        self.pos += '$'.len_utf8();
        if self.peek() != Some('{') {
            self.reference(out);
            return Ok(());
        }
        self.pos += '{'.len_utf8();
        match self.peek() {
            None => return Err(Fault::MissingClosingBrace),
            Some('{' | '}' | ':') => return Err(Fault::BadSubstitution),
            Some(_) => {}
        }
        if self.depth >= MAX_NESTING {
            return Err(Fault::NestingTooDeep(MAX_NESTING));
        }
        self.depth += 1;
        let result = self.braced(out);
        self.depth -= 1;
        result
    }

    /// `$name` (after the `$`), or a literal `$` when no name follows.
    #[inline(never)]
    fn reference(&mut self, out: &mut String) {
        let name = self.name();
        if name.is_empty() {
            out.push('$');
            return;
        }
        match self.lookup(name) {
            Some(value) => out.push_str(value),
            None if self.lexer.skip_unset_env => {
                out.push('$');
                out.push_str(name);
            }
            None => {}
        }
    }

    /// `${name}` (after the `}`).
    #[inline(never)]
    fn braced_reference(&mut self, name: &'w str, out: &mut String) {
        match self.lookup(name) {
            Some(value) => out.push_str(value),
            None if self.lexer.skip_unset_env => {
                out.push_str("${");
                out.push_str(name);
                out.push('}');
            }
            None => {}
        }
    }

    /// The inside of `${…}` after the `{`.
    fn braced(&mut self, out: &mut String) -> Result<(), Fault> {
        let name = self.name();
        // BuildKit reports the end of input here as an unsupported modifier (the Unicode
        // replacement character); the honest message is the missing brace.
        let Some(op) = self.bump() else {
            return Err(Fault::MissingClosingBrace);
        };
        match op {
            '}' => {
                self.braced_reference(name, out);
                Ok(())
            }
            ':' | '+' | '-' | '?' | '#' | '%' => self.modifier(name, op, out),
            '/' => self.substitute(name, out),
            op => Err(Fault::UnsupportedModifier(op.to_string())),
        }
    }

    /// `${name<op>word}` for the operators `-`, `+`, `?`, `#`, `%`, each optionally after
    /// `:` (which makes an empty value count as unset; not allowed with `#` and `%`).
    ///
    /// This and the other functions on the recursion path only scan; what happens after
    /// the nested word is read lives in separate functions, so that each nesting level
    /// costs little stack.
    fn modifier(&mut self, name: &'w str, first: char, out: &mut String) -> Result<(), Fault> {
        let modifier = if first == ':' {
            match self.bump() {
                Some(op) => Modifier { colon: true, op },
                None => return Err(Fault::MissingClosingBrace),
            }
        } else {
            Modifier {
                colon: false,
                op: first,
            }
        };
        if modifier.colon && modifier.trims() {
            return Err(Fault::UnsupportedModifier(modifier.to_string()));
        }
        // The word is expanded in place at the end of `out`, then kept, replaced or dropped.
        let start = out.len();
        self.nested(Stop::Brace, modifier.trims(), out)?;
        let value = self.lookup(name);
        apply_modifier(self.lexer.skip_unset_env, name, modifier, value, start, out)
    }

    /// `${name/pattern/replacement}` (first match) and `${name//pattern/replacement}` (all).
    fn substitute(&mut self, name: &'w str, out: &mut String) -> Result<(), Fault> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += '/'.len_utf8();
        }
        let start = out.len();
        self.nested(Stop::Slash, true, out)?;
        let pattern_end = out.len();
        self.nested(Stop::Brace, true, out)?;
        let value = self.lookup(name);
        apply_substitution(
            self.lexer.skip_unset_env,
            name,
            all,
            value,
            [start, pattern_end],
            out,
        )
    }

    /// A parameter name: a run of digits (positional), one special-parameter character,
    /// or a letter or `_` followed by letters, digits and `_` (letters and digits in the
    /// Unicode sense, as in Go). Empty when none of these follows.
    fn name(&mut self) -> &'w str {
        let src: &'w str = self.src;
        let rest = &src[self.pos..];
        let len = match rest.chars().next() {
            None => 0,
            Some(c) if go::is_digit(c) => rest.find(|c| !go::is_digit(c)).unwrap_or(rest.len()),
            Some(c @ ('@' | '*' | '#' | '?' | '-' | '$' | '!')) => c.len_utf8(),
            Some(_) => rest
                .find(|c: char| !(go::is_letter(c) || go::is_digit(c) || c == '_'))
                .unwrap_or(rest.len()),
        };
        self.pos += len;
        &rest[..len]
    }

    /// Looks `name` up and records it as matched or unmatched.
    fn lookup(&mut self, name: &'w str) -> Option<&'e str> {
        let env: &'e E = self.env;
        let value = env.lookup(name);
        if self.capture {
            let seen = if value.is_some() {
                &mut self.matched
            } else {
                &mut self.unmatched
            };
            if !seen.contains(&name) {
                seen.push(name);
            }
        }
        value
    }
}

/// An operator inside `${…}`: `-`, `+`, `?`, `#`, `%` (or anything else, which fails once
/// its word has been read), with or without a `:` in front.
#[derive(Debug, Clone, Copy)]
struct Modifier {
    colon: bool,
    op: char,
}

impl Modifier {
    /// `#` and `%` take a pattern, which is read with escapes kept.
    fn trims(self) -> bool {
        self.op == '#' || self.op == '%'
    }
}

impl std::fmt::Display for Modifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.colon {
            f.write_str(":")?;
        }
        write!(f, "{}", self.op)
    }
}

/// Finishes `${name<modifier>word}` once the word is expanded at `out[start..]`.
#[inline(never)]
fn apply_modifier(
    skip_unset_env: bool,
    name: &str,
    modifier: Modifier,
    value: Option<&str>,
    start: usize,
    out: &mut String,
) -> Result<(), Fault> {
    if value.is_none() && skip_unset_env {
        let word = out.split_off(start);
        out.push_str("${");
        out.push_str(name);
        out.push_str(&modifier.to_string());
        out.push_str(&word);
        out.push('}');
        return Ok(());
    }
    let counts_as_unset = match value {
        None => true,
        Some(value) => modifier.colon && value.is_empty(),
    };
    match (modifier.op, value) {
        ('-', Some(value)) if !counts_as_unset => {
            out.truncate(start);
            out.push_str(value);
        }
        ('-', _) => {}
        ('+', _) if counts_as_unset => out.truncate(start),
        ('+', _) => {}
        ('?', None) => {
            return Err(Fault::VariableUnset {
                name: name.to_owned(),
                message: message_or(&out[start..], "is not allowed to be unset"),
            });
        }
        ('?', Some(_)) if counts_as_unset => {
            return Err(Fault::VariableEmpty {
                name: name.to_owned(),
                message: message_or(&out[start..], "is not allowed to be empty"),
            });
        }
        ('?', Some(value)) => {
            out.truncate(start);
            out.push_str(value);
        }
        (op @ ('#' | '%'), value) => {
            let mut pattern = out.split_off(start);
            // The second `#` / `%` of `##` / `%%` is read as part of the word (after
            // expansion, as BuildKit does), so it is recognised here.
            let greedy = pattern.starts_with(op);
            if greedy {
                pattern.remove(0);
            }
            let value = value.unwrap_or_default();
            let trimmed = if op == '#' {
                pattern::trim_prefix(&pattern, value, greedy)
            } else {
                pattern::trim_suffix(&pattern, value, greedy)
            };
            out.push_str(&trimmed.map_err(PatternError::into_fault)?);
        }
        _ => return Err(Fault::UnsupportedModifier(modifier.to_string())),
    }
    Ok(())
}

/// Finishes `${name/pattern/replacement}` once pattern and replacement are expanded at
/// `out[start..pattern_end]` and `out[pattern_end..]`.
#[inline(never)]
fn apply_substitution(
    skip_unset_env: bool,
    name: &str,
    all: bool,
    value: Option<&str>,
    [start, pattern_end]: [usize; 2],
    out: &mut String,
) -> Result<(), Fault> {
    let replacement = out.split_off(pattern_end);
    let pattern = out.split_off(start);
    if value.is_none() && skip_unset_env {
        // As BuildKit writes it back: one `/` even for `//`.
        out.push_str("${");
        out.push_str(name);
        out.push('/');
        out.push_str(&pattern);
        out.push('/');
        out.push_str(&replacement);
        out.push('}');
        return Ok(());
    }
    let value = value.unwrap_or_default();
    if all {
        pattern::replace_all(&pattern, value, &replacement, out)
    } else {
        pattern::replace_first(&pattern, value, &replacement, out)
    }
    .map_err(PatternError::into_fault)
}

/// The `?` operator's message: the expanded word, or the default when it is empty.
fn message_or(word: &str, default: &str) -> String {
    if word.is_empty() { default } else { word }.to_owned()
}

#[cfg(test)]
mod tests;
