//! Shell patterns for `${V#p}`, `${V%p}` and `${V/p/r}`.
//!
//! BuildKit translates the pattern into a Go regular expression and lets the regexp
//! engine find the match; we do the same translation into the `regex` crate, whose
//! leftmost-first semantics, lazy `.*?` and `.` (any character but `\n`) are Go's. That
//! keeps every corner (which `*` takes how much, empty patterns, empty matches in `//`)
//! identical without a second matcher to keep in step.
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

/// Translates a shell pattern into a regex.
fn compile(pattern: &str, greedy: bool, anchored: bool) -> Result<Regex, PatternError> {
    translate(pattern, greedy, anchored).map_err(|reason| PatternError {
        pattern: pattern.to_owned(),
        reason,
    })
}

fn translate(pattern: &str, greedy: bool, anchored: bool) -> Result<Regex, String> {
    // BuildKit reads the pattern with Go's text/scanner, which drops a byte-order mark
    // at the very start of its input.
    let pattern = pattern.strip_prefix('\u{feff}').unwrap_or(pattern);
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(star),
            '?' => out.push('.'),
            '\\' => {
                // `\}` and `\/` only keep the lexer from ending the pattern there; the
                // character itself is literal and escaped below like any other.
                if matches!(chars.peek(), Some('}' | '/')) {
                    continue;
                }
                match chars.next() {
                    Some(e @ ('*' | '?' | '\\')) => {
                        out.push('\\');
                        out.push(e);
                    }
                    Some(e) => return Err(format!("invalid escape '\\{e}'")),
                    None => return Err("invalid escape '\\' at end of pattern".to_owned()),
                }
            }
            '[' | ']' | '{' | '}' | '.' | '+' | '(' | ')' | '|' | '^' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    // Only the size limits can fail here (the syntax is always valid); an enormous
    // pattern is reported rather than compiled without bound.
    RegexBuilder::new(&out)
        .build()
        .map_err(|err| format!("pattern too large: {err}"))
}

/// `${V#p}` / `${V##p}`: `value` without the shortest (longest with `greedy`) prefix
/// matching `pattern`, or `value` unchanged when no prefix matches.
pub(crate) fn trim_prefix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, PatternError> {
    let re = compile(pattern, greedy, true)?;
    let start = re.find(value).map_or(0, |m| m.end());
    Ok(value[start..].to_owned())
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
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverses a pattern character by character, keeping each `\x` escape pair in order
/// (`a\*c` becomes `c\*a`). A `\` that is the last character stays a lone `\`.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::with_capacity(chars.len());
    let mut end = chars.len();
    // Walk from the end; a character preceded by a backslash (that is not itself part of
    // an earlier pair) belongs with it. Pairs are decided from the front, so find them first.
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
    while end > 0 {
        if end >= 2 && pair_start[end - 2] {
            out.extend_from_slice(&chars[end - 2..end]);
            end -= 2;
        } else {
            out.push(chars[end - 1]);
            end -= 1;
        }
    }
    out.into_iter().collect()
}

/// `${V/p/r}`: the first match of `pattern` in `value` replaced by `replacement`, taken
/// literally.
pub(crate) fn replace_first(
    pattern: &str,
    value: &str,
    replacement: &str,
    out: &mut String,
) -> Result<(), PatternError> {
    let re = compile(pattern, true, false)?;
    match re.find(value) {
        Some(m) => {
            out.push_str(&value[..m.start()]);
            out.push_str(replacement);
            out.push_str(&value[m.end()..]);
        }
        None => out.push_str(value),
    }
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
    let re = compile(pattern, true, false)?;
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
    Ok(())
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
                compile(pattern, true, true).unwrap().as_str(),
                expected,
                "{pattern}"
            );
        }
        for invalid in ["\\", "\\x", "\\\\\\"] {
            assert!(compile(invalid, true, true).is_err(), "{invalid}");
        }
        assert_eq!(compile("\u{feff}a", true, false).unwrap().as_str(), "a");
        assert_eq!(
            compile("a\0b", true, false)
                .unwrap()
                .find("xa\0b")
                .map(|m| m.start()),
            Some(1)
        );
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
}
