//! Shell patterns for `${V#p}`, `${V%p}` and `${V/p/r}`.
//!
//! BuildKit translates the pattern into a Go regular expression and lets the regexp
//! engine find the match; we do the same translation into the `regex` crate, whose
//! leftmost-first semantics, lazy `.*?` and `.` (any character but `\n`) are Go's. That
//! keeps every corner (which `*` takes how much, empty patterns, empty matches in `//`)
//! identical. The one shortcut: a pattern without wildcards is plain text, searched for
//! with `str` methods (a property test checks they agree with the regex).
//!
//! The pattern language is BuildKit's, which is smaller than POSIX: `*` and `?` are
//! wildcards, `\*`, `\?`, `\\` are literal, `\}` and `\/` are the brace or slash, every
//! other character — `[`, `]` included — is literal, and any other escape is an error.
//! The escape in patterns is always `\`, whatever the Dockerfile's escape character.

use regex::{Regex, RegexBuilder};

use crate::error::Fault;

/// A pattern that cannot be used, with the reason worded as BuildKit's.
#[derive(Debug)]
pub(crate) struct PatternError {
    /// The pattern as the translation saw it (for `%`, reversed, as BuildKit reports it).
    pattern: String,
    reason: String,
}

impl PatternError {
    pub(crate) fn into_fault(self) -> Fault {
        Fault::InvalidPattern {
            pattern: self.pattern,
            reason: self.reason,
        }
    }
}

/// A pattern ready to match: literal text when it has no wildcard (matched with plain
/// string search, which gives the same result as the regex and costs far less than
/// compiling one), else the translated regex.
enum Matcher {
    Literal(String),
    Regex(Regex),
}

/// A pattern read as BuildKit's `convertShellPatternToRegex` reads it.
struct Translation {
    /// The text it matches, when it has no wildcard.
    literal: String,
    /// The regex BuildKit builds from it (the same text, byte for byte).
    regex: String,
    wildcards: bool,
}

/// Reads `pattern`; `anchored` matches at the start only, `greedy` makes `*` take the
/// longest string instead of the shortest. `Err` holds the reason, worded as BuildKit's.
fn translate(pattern: &str, greedy: bool, anchored: bool) -> Result<Translation, String> {
    // BuildKit reads the pattern with Go's text/scanner, which drops a byte-order mark
    // at the very start of its input.
    let text = pattern.strip_prefix('\u{feff}').unwrap_or(pattern);
    let mut t = Translation {
        literal: String::with_capacity(text.len()),
        regex: String::with_capacity(text.len() + 4),
        wildcards: false,
    };
    if anchored {
        t.regex.push('^');
    }
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            '*' => {
                t.regex.push_str(if greedy { ".*" } else { ".*?" });
                t.wildcards = true;
                continue;
            }
            '?' => {
                t.regex.push('.');
                t.wildcards = true;
                continue;
            }
            // `\}` and `\/` only keep the lexer from ending the pattern there: the
            // backslash goes, and the character is read as any other on the next turn.
            '\\' if matches!(chars.peek(), Some('}' | '/')) => continue,
            '\\' => match chars.next() {
                Some(e @ ('*' | '?' | '\\')) => e,
                Some(e) => return Err(format!("invalid escape '\\{e}'")),
                None => return Err("invalid escape '\\' at end of pattern".to_owned()),
            },
            c => c,
        };
        t.literal.push(c);
        if matches!(
            c,
            '[' | ']' | '{' | '}' | '.' | '+' | '(' | ')' | '|' | '^' | '$' | '*' | '?' | '\\'
        ) {
            t.regex.push('\\');
        }
        t.regex.push(c);
    }
    Ok(t)
}

/// The [`Matcher`] for `pattern` (see [`translate`]).
fn matcher(pattern: &str, greedy: bool, anchored: bool) -> Result<Matcher, PatternError> {
    let error = |reason: String| PatternError {
        pattern: pattern.to_owned(),
        reason,
    };
    let t = translate(pattern, greedy, anchored).map_err(error)?;
    if !t.wildcards {
        return Ok(Matcher::Literal(t.literal));
    }
    // Only the size limits can fail here (the syntax is always valid); an enormous
    // pattern is reported rather than compiled without bound.
    RegexBuilder::new(&t.regex)
        .build()
        .map(Matcher::Regex)
        .map_err(|err| error(format!("pattern too large: {err}")))
}

/// `${V#p}` / `${V##p}`: `value` without the shortest (longest with `greedy`) prefix
/// matching `pattern`, or `value` unchanged when no prefix matches.
pub(crate) fn trim_prefix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, PatternError> {
    Ok(matcher(pattern, greedy, true)?
        .trim_prefix(value)
        .to_owned())
}

/// `${V%p}` / `${V%%p}`: `value` without the shortest (longest with `greedy`) suffix
/// matching `pattern`.
///
/// A regex finds the leftmost match, not the rightmost, so (as BuildKit does) both the
/// pattern and the value are reversed, the prefix is trimmed, and the rest is reversed back.
pub(crate) fn trim_suffix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, PatternError> {
    Ok(matcher(&reverse_pattern(pattern), greedy, true)?.trim_suffix_reversed(value))
}

/// `${V/p/r}`: the first match of `pattern` in `value` replaced by `replacement`, taken
/// literally.
pub(crate) fn replace_first(
    pattern: &str,
    value: &str,
    replacement: &str,
    out: &mut String,
) -> Result<(), PatternError> {
    matcher(pattern, true, false)?.replace_first(value, replacement, out);
    Ok(())
}

/// `${V//p/r}`: every match replaced, with the rules of Go's `Regexp.ReplaceAllString`,
/// which BuildKit calls: an empty match right after a previous match is not replaced, the
/// search always moves on by at least one character, and the replacement is a Go template
/// (`$0` / `${0}` is the matched text, `$$` a dollar; see [`expand_template`]).
pub(crate) fn replace_all(
    pattern: &str,
    value: &str,
    replacement: &str,
    out: &mut String,
) -> Result<(), PatternError> {
    matcher(pattern, true, false)?.replace_all(value, replacement, out);
    Ok(())
}

/// Reverses a pattern character by character, keeping each `\x` escape pair in order
/// (`a\*c` becomes `c\*a`). A `\` that is the last character stays a lone `\`.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    // Pairs are decided from the front, as BuildKit does: a `\` and whatever follows it.
    let mut pair_start = vec![false; chars.len()];
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            pair_start[i] = true;
            i += 2;
        } else {
            i += 1;
        }
    }
    let mut out = String::with_capacity(pattern.len());
    let mut end = chars.len();
    while end > 0 {
        if end >= 2 && pair_start[end - 2] {
            out.extend(&chars[end - 2..end]);
            end -= 2;
        } else {
            out.push(chars[end - 1]);
            end -= 1;
        }
    }
    out
}

impl Matcher {
    /// `value` after the match at its start (an anchored matcher), or all of it.
    fn trim_prefix<'v>(&self, value: &'v str) -> &'v str {
        match self {
            Self::Literal(literal) => value.strip_prefix(literal.as_str()).unwrap_or(value),
            Self::Regex(re) => &value[re.find(value).map_or(0, |m| m.end())..],
        }
    }

    /// `value` without the suffix this matcher, built from the reversed pattern, matches
    /// at the start of the reversed value.
    fn trim_suffix_reversed(&self, value: &str) -> String {
        match self {
            Self::Literal(reversed) => {
                let literal: String = reversed.chars().rev().collect();
                value
                    .strip_suffix(literal.as_str())
                    .unwrap_or(value)
                    .to_owned()
            }
            Self::Regex(re) => {
                let reversed: String = value.chars().rev().collect();
                let start = re.find(&reversed).map_or(0, |m| m.end());
                reversed[start..].chars().rev().collect()
            }
        }
    }

    fn replace_first(&self, value: &str, replacement: &str, out: &mut String) {
        let found = match self {
            Self::Literal(literal) => value
                .find(literal.as_str())
                .map(|start| (start, start + literal.len())),
            Self::Regex(re) => re.find(value).map(|m| (m.start(), m.end())),
        };
        match found {
            Some((start, end)) => {
                out.push_str(&value[..start]);
                out.push_str(replacement);
                out.push_str(&value[end..]);
            }
            None => out.push_str(value),
        }
    }

    fn replace_all(&self, value: &str, replacement: &str, out: &mut String) {
        match self {
            // Non-overlapping, left to right: what the regex finds for a non-empty literal.
            Self::Literal(literal) if !literal.is_empty() => {
                let mut last = 0;
                for (start, matched) in value.match_indices(literal.as_str()) {
                    out.push_str(&value[last..start]);
                    expand_template(replacement, matched, out);
                    last = start + matched.len();
                }
                out.push_str(&value[last..]);
            }
            // The empty pattern matches before every character and at the end.
            Self::Literal(_) => {
                let mut inserted = String::new();
                expand_template(replacement, "", &mut inserted);
                for c in value.chars() {
                    out.push_str(&inserted);
                    out.push(c);
                }
                out.push_str(&inserted);
            }
            Self::Regex(re) => replace_all_regex(re, value, replacement, out),
        }
    }
}

/// Go's `Regexp.ReplaceAllString` loop.
fn replace_all_regex(re: &Regex, value: &str, replacement: &str, out: &mut String) {
    let mut last_match_end = 0;
    let mut search = 0;
    while search <= value.len() {
        let Some(m) = re.find_at(value, search) else {
            break;
        };
        out.push_str(&value[last_match_end..m.start()]);
        if m.end() > last_match_end || m.start() == 0 {
            expand_template(replacement, m.as_str(), out);
        }
        last_match_end = m.end();
        let width = value[search..].chars().next().map_or(0, char::len_utf8);
        search = if search + width > m.end() {
            search + width
        } else if search + 1 > m.end() {
            // Only at the very end, where there is no character to step over.
            search + 1
        } else {
            m.end()
        };
    }
    out.push_str(&value[last_match_end..]);
}

/// Go's `Regexp.Expand` for a regex whose only group is the whole match (group 0, unnamed).
///
/// `$$` is a dollar; `$name` / `${name}` (name: letters, digits, `_`) is group `name` —
/// the match for `0`, nothing for any other name or number (`00` is a name, not a
/// number); a `$` not followed by a valid name is a literal `$`.
fn expand_template(template: &str, matched: &str, out: &mut String) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let (braced, body) = match rest.strip_prefix('{') {
            Some(body) => (true, body),
            None => (false, rest),
        };
        let name_len: usize = body
            .chars()
            .take_while(|&c| crate::go::is_letter(c) || crate::go::is_digit(c) || c == '_')
            .map(char::len_utf8)
            .sum();
        let name = &body[..name_len];
        let after = &body[name_len..];
        let after = match (name.is_empty(), braced) {
            (true, _) => None,
            (false, false) => Some(after),
            (false, true) => after.strip_prefix('}'),
        };
        let Some(after) = after else {
            // Malformed reference: the dollar is literal and scanning goes on after it.
            out.push('$');
            continue;
        };
        if name == "0" {
            out.push_str(matched);
        }
        rest = after;
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_translate_like_buildkit() {
        // The cases of BuildKit's TestConvertShellPatternToRegex.
        let cases = [
            ("*", "^.*"),
            ("?", "^."),
            ("\\*", "^\\*"),
            (
                "(()[]{\\}^$.\\*\\?|\\\\",
                "^\\(\\(\\)\\[\\]\\{\\}\\^\\$\\.\\*\\?\\|\\\\",
            ),
        ];
        for (pattern, expected) in cases {
            assert_eq!(
                translate(pattern, true, true).unwrap().regex,
                expected,
                "{pattern}"
            );
        }
        for invalid in ["\\", "\\x", "\\\\\\"] {
            assert!(translate(invalid, true, true).is_err(), "{invalid}");
        }
        let bom = translate("\u{feff}a\\*", true, false).unwrap();
        assert_eq!((bom.literal.as_str(), bom.wildcards), ("a*", false));
        let Ok(Matcher::Regex(re)) = matcher("a\0b?", true, false) else {
            panic!("a pattern with `?` compiles to a regex");
        };
        assert_eq!(re.find("xa\0bc").map(|m| m.range()), Some(1..5));
    }

    #[test]
    fn reversing_keeps_escape_pairs() {
        // The cases of BuildKit's TestReversePattern.
        let cases = [
            ("a\\*c", "c\\*a"),
            ("\\\\\\ab", "b\\a\\\\"),
            ("ab\\", "\\ba"),
            ("👽\\🚀🖖", "🖖\\🚀👽"),
            ("\\\\b", "b\\\\"),
            ("", ""),
        ];
        for (pattern, expected) in cases {
            assert_eq!(reverse_pattern(pattern), expected, "{pattern}");
        }
    }

    #[test]
    fn trimming_picks_shortest_or_longest() {
        assert_eq!(trim_prefix("*x*y", "xxyy", false).unwrap(), "y");
        assert_eq!(trim_prefix("*x*y", "xxyy", true).unwrap(), "");
        assert_eq!(trim_prefix("*", "xxyy", false).unwrap(), "xxyy");
        assert_eq!(trim_suffix("y*", "xxyy", false).unwrap(), "xxy");
        assert_eq!(trim_suffix("y*", "xxyy", true).unwrap(), "xx");
        assert_eq!(
            trim_suffix("[ab]", "x[ab]", false).unwrap(),
            "x",
            "brackets are literal"
        );
        assert_eq!(trim_prefix("?", "한국", false).unwrap(), "국");
    }

    #[test]
    fn replace_all_follows_go_replace_all_string() {
        let all = |p: &str, v: &str, r: &str| {
            let mut out = String::new();
            replace_all(p, v, r, &mut out).unwrap();
            out
        };
        assert_eq!(all("", "abc", "-"), "-a-b-c-");
        assert_eq!(all("x*", "abc", "-"), "abc", "a shell `x*` needs an x");
        assert_eq!(all("b*", "abbc", "-"), "a-");
        // `.*` matches "abc" and then the empty string at the end, which is not replaced.
        assert_eq!(all("*", "abc", "-"), "-");
        assert_eq!(all("o", "foo", "[$0]"), "f[o][o]");
        assert_eq!(all("o", "foo", "${0}$$"), "fo$o$");
        assert_eq!(all("o", "foo", "$1$00$x${0"), "f${0${0");
        assert_eq!(all("", "한", "."), ".한.");
        let mut first = String::new();
        replace_first("o", "foo", "$0", &mut first).unwrap();
        assert_eq!(first, "f$0o", "a single replacement is literal");
    }

    proptest::proptest! {
        #[test]
        fn literal_matching_agrees_with_the_regex(
            pattern in "[ab/.$\\[]{0,4}",
            value in "[ab/.$\\[]{0,12}",
            replacement in "[x$0{}]{0,4}",
        ) {
            let t = translate(&pattern, true, true).unwrap();
            let literal = Matcher::Literal(t.literal);
            let anchored = Matcher::Regex(Regex::new(&t.regex).unwrap());
            proptest::prop_assert_eq!(literal.trim_prefix(&value), anchored.trim_prefix(&value));
            proptest::prop_assert_eq!(
                literal.trim_suffix_reversed(&value),
                anchored.trim_suffix_reversed(&value)
            );
            let unanchored = Matcher::Regex(Regex::new(&t.regex[1..]).unwrap());
            let (mut a, mut b) = (String::new(), String::new());
            literal.replace_first(&value, &replacement, &mut a);
            unanchored.replace_first(&value, &replacement, &mut b);
            proptest::prop_assert_eq!(&a, &b);
            let (mut a, mut b) = (String::new(), String::new());
            literal.replace_all(&value, &replacement, &mut a);
            unanchored.replace_all(&value, &replacement, &mut b);
            proptest::prop_assert_eq!(a, b);
        }
    }
}
