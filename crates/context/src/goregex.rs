//! Reading Go `regexp` syntax and re-emitting it for the `regex` crate.
//!
//! Docker's matcher turns a pattern into a Go regular expression by string concatenation
//! and hands it to Go's `regexp.Compile`. The result is not always the glob one would
//! expect: inside a bracket class, `*` becomes `[^/]*`, so `[*]` compiles to
//! `^[[^/]*]$`, which Go reads as the class `[[^/]` repeated, then a literal `]`. To give
//! the same answers we build the same Go text and then parse it with Go's rules. The two
//! dialects differ exactly where this matters: in Rust `[` inside a class opens a nested
//! class and `&&`, `--`, `~~` are set operations; `\d`, `\s`, `\w`, `\b` are
//! Unicode-aware; `\<` is a word boundary and `\u` an escape. Go has `\Q…\E` and octal
//! escapes, and `\pC` leaves out unassigned code points. Every literal is therefore
//! re-escaped, classes are rebuilt from their members, and Go's ASCII-only shorthands are
//! spelled out.

use std::fmt::Write as _;

/// The Go text could not be parsed, or Go would reject it (`regexp.Compile` error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoSyntaxError;

type Result<T> = std::result::Result<T, GoSyntaxError>;

/// Translates Go `regexp` syntax (default flags: Perl classes, one-line, `.` not matching
/// `\n`) into an equivalent pattern for `regex::Regex`.
///
/// Only what Docker's pattern compiler can produce needs to be exact: literals, `\`
/// escapes of any character, `[…]` classes with any content, `.`, `^`, `$`, `(…)`, and the
/// quantifiers `*` and `?`. Anything else is still parsed with Go's rules where simple.
pub(crate) fn go_to_rust(go: &str) -> Result<String> {
    let chars: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() + 8);
    let mut i = 0;
    let mut depth = 0usize;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '^' | '$' | '.' | '|' => {
                out.push(c);
                i += 1;
            }
            '*' | '+' | '?' => {
                out.push(c);
                i += 1;
                // Go's non-greedy suffix; the match/no-match answer does not depend on it.
                if chars.get(i) == Some(&'?') {
                    out.push('?');
                    i += 1;
                }
            }
            '(' => {
                if chars.get(i + 1) == Some(&'?') {
                    // Flags and named groups never come out of the pattern compiler.
                    return Err(GoSyntaxError);
                }
                out.push_str("(?:");
                depth += 1;
                i += 1;
            }
            ')' => {
                depth = depth.checked_sub(1).ok_or(GoSyntaxError)?;
                out.push(')');
                i += 1;
            }
            '[' => {
                let (class, next) = parse_class(&chars, i)?;
                out.push_str(&class);
                i = next;
            }
            '\\' => {
                i = translate_escape(&chars, i, &mut out)?;
            }
            // `{` and `}` are always escaped by the compiler; a bare one is a literal in Go
            // unless it forms a repeat count, which cannot happen here.
            _ => {
                push_literal(&mut out, c);
                i += 1;
            }
        }
    }
    if depth != 0 {
        return Err(GoSyntaxError);
    }
    Ok(out)
}

/// An escape outside a class, starting at `chars[i] == '\\'`. Returns the next index.
fn translate_escape(chars: &[char], i: usize, out: &mut String) -> Result<usize> {
    let Some(&c) = chars.get(i + 1) else {
        return Err(GoSyntaxError); // trailing backslash
    };
    match c {
        'A' => out.push_str(r"\A"),
        'z' => out.push_str(r"\z"),
        // Go's word boundaries are ASCII-only.
        'b' => out.push_str(r"(?-u:\b)"),
        'B' => out.push_str(r"(?-u:\B)"),
        'C' => return Err(GoSyntaxError),
        'Q' => {
            // `\Q…\E`: everything up to `\E` (or the end) is literal.
            let mut j = i + 2;
            while j < chars.len() {
                if chars[j] == '\\' && chars.get(j + 1) == Some(&'E') {
                    return Ok(j + 2);
                }
                push_literal(out, chars[j]);
                j += 1;
            }
            return Ok(j);
        }
        'p' | 'P' => {
            let (set, next) = unicode_class(chars, i)?;
            out.push('[');
            out.push_str(&set);
            out.push(']');
            return Ok(next);
        }
        'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
            out.push('[');
            out.push_str(&perl_class(c));
            out.push(']');
        }
        _ => {
            let (r, next) = parse_escape(chars, i)?;
            push_literal(out, r);
            return Ok(next);
        }
    }
    Ok(i + 2)
}

/// Go's `parseEscape`: a single-character escape at `chars[i] == '\\'`.
fn parse_escape(chars: &[char], i: usize) -> Result<(char, usize)> {
    let c = *chars.get(i + 1).ok_or(GoSyntaxError)?;
    let mut j = i + 2;
    let is_octal = |c: Option<&char>| matches!(c, Some('0'..='7'));
    match c {
        '1'..='7' if !is_octal(chars.get(j)) => Err(GoSyntaxError), // a backreference
        '0'..='7' => {
            let mut r = c.to_digit(8).expect("matched an octal digit");
            for _ in 1..3 {
                if !is_octal(chars.get(j)) {
                    break;
                }
                r = r * 8 + chars[j].to_digit(8).expect("checked octal digit");
                j += 1;
            }
            Ok((char::from_u32(r).ok_or(GoSyntaxError)?, j))
        }
        'x' => {
            let first = *chars.get(j).ok_or(GoSyntaxError)?;
            j += 1;
            if first == '{' {
                let mut r: u32 = 0;
                let mut digits = 0;
                loop {
                    let d = *chars.get(j).ok_or(GoSyntaxError)?;
                    j += 1;
                    if d == '}' {
                        break;
                    }
                    r = r
                        .checked_mul(16)
                        .and_then(|r| r.checked_add(d.to_digit(16)?))
                        .filter(|&r| r <= 0x10FFFF)
                        .ok_or(GoSyntaxError)?;
                    digits += 1;
                }
                if digits == 0 {
                    return Err(GoSyntaxError);
                }
                return Ok((char::from_u32(r).ok_or(GoSyntaxError)?, j));
            }
            let second = *chars.get(j).ok_or(GoSyntaxError)?;
            j += 1;
            let x = first.to_digit(16).ok_or(GoSyntaxError)?;
            let y = second.to_digit(16).ok_or(GoSyntaxError)?;
            Ok((char::from_u32(x * 16 + y).ok_or(GoSyntaxError)?, j))
        }
        'a' => Ok(('\u{7}', j)),
        'f' => Ok(('\u{c}', j)),
        'n' => Ok(('\n', j)),
        'r' => Ok(('\r', j)),
        't' => Ok(('\t', j)),
        'v' => Ok(('\u{b}', j)),
        // Escaped ASCII punctuation stands for itself; any other escape is an error.
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok((c, j)),
        _ => Err(GoSyntaxError),
    }
}

/// `\pX` / `\PX` at `chars[i] == '\\'`: the members (for use inside `[…]`) and the next
/// index. With `{` always escaped by the compiler, only one-letter names can occur; the
/// braced form is still accepted for completeness.
fn unicode_class(chars: &[char], i: usize) -> Result<(String, usize)> {
    let negated = chars[i + 1] == 'P';
    let first = *chars.get(i + 2).ok_or(GoSyntaxError)?;
    let braced = first == '{';
    let (mut name, next): (String, usize) = if first == '{' {
        let end = chars[i + 3..]
            .iter()
            .position(|&c| c == '}')
            .ok_or(GoSyntaxError)?;
        (chars[i + 3..i + 3 + end].iter().collect(), i + 3 + end + 1)
    } else {
        (first.to_string(), i + 3)
    };
    let mut negated = negated;
    if let Some(rest) = name.strip_prefix('^') {
        negated = !negated;
        name = rest.to_string();
    }
    let body = match name.as_str() {
        "Any" => r"\x{0}-\x{10FFFF}".to_string(),
        // Go's C is Cc|Cf|Co|Cs: unlike Rust's \pC it leaves out unassigned code points.
        "C" => r"\p{Cc}\p{Cf}\p{Co}\p{Cs}".to_string(),
        "L" | "M" | "N" | "P" | "S" | "Z" => format!(r"\p{{{name}}}"),
        // Longer (braced) category and script names mean the same in both tables.
        n if braced && n.len() > 1 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            format!(r"\p{{{n}}}")
        }
        _ => return Err(GoSyntaxError),
    };
    let members = if negated { format!("[^{body}]") } else { body };
    Ok((members, next))
}

/// Go's Perl classes are ASCII-only; members for use inside `[…]`.
fn perl_class(c: char) -> String {
    let (negated, body) = match c {
        'd' => (false, "0-9"),
        'D' => (true, "0-9"),
        's' => (false, r"\t\n\x0C\r "),
        'S' => (true, r"\t\n\x0C\r "),
        'w' => (false, "0-9A-Za-z_"),
        _ => (true, "0-9A-Za-z_"),
    };
    if negated {
        format!("[^{body}]")
    } else {
        body.to_string()
    }
}

const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Go's `parseClass` at `chars[start] == '['`: the Rust class and the next index.
fn parse_class(chars: &[char], start: usize) -> Result<(String, usize)> {
    let mut i = start + 1;
    let mut out = String::from("[");
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true; // `]` (and `-`) are literal as the first member
    let mut members = 0;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(GoSyntaxError); // missing closing ]
        };
        if c == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        // POSIX `[:name:]`, found by searching for the next `:]` as Go does.
        if c == '[' && chars.get(i + 1) == Some(&':') {
            let rest = &chars[i + 2..];
            if let Some(end) = rest.windows(2).position(|w| w == [':', ']']) {
                let name: String = rest[..end].iter().collect();
                let bare = name.strip_prefix('^').unwrap_or(&name);
                if !POSIX_CLASSES.contains(&bare) {
                    return Err(GoSyntaxError);
                }
                let _ = write!(out, "[:{name}:]");
                members += 1;
                i += 2 + end + 2;
                continue;
            }
        }
        if c == '\\' {
            match chars.get(i + 1) {
                Some('p' | 'P') => {
                    let (set, next) = unicode_class(chars, i)?;
                    out.push_str(&set);
                    members += 1;
                    i = next;
                    continue;
                }
                Some(&p @ ('d' | 'D' | 's' | 'S' | 'w' | 'W')) => {
                    // Negated shorthands come back as a nested `[^…]`, which Rust unions.
                    out.push_str(&perl_class(p));
                    members += 1;
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        let (lo, next) = class_char(chars, i)?;
        i = next;
        let mut hi = lo;
        // `a-` followed by `]` means `a` and `-`.
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&c| c != ']') {
            let (h, next) = class_char(chars, i + 1)?;
            if h < lo {
                return Err(GoSyntaxError);
            }
            hi = h;
            i = next;
        }
        push_class_literal(&mut out, lo);
        if hi != lo {
            out.push('-');
            push_class_literal(&mut out, hi);
        }
        members += 1;
    }
    debug_assert!(members > 0, "Go classes always hold at least one member");
    out.push(']');
    Ok((out, i))
}

/// One character of a class: an escape or a plain character.
fn class_char(chars: &[char], i: usize) -> Result<(char, usize)> {
    match chars.get(i) {
        None => Err(GoSyntaxError),
        Some('\\') => parse_escape(chars, i),
        Some(&c) => Ok((c, i + 1)),
    }
}

fn push_literal(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

/// Inside a class every non-alphanumeric character is written as a hex escape, so that
/// nothing can be read as a nested class, a range or a set operation.
fn push_class_literal(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else {
        let _ = write!(out, r"\x{{{:X}}}", u32::from(c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn is_match(go: &str, text: &str) -> bool {
        let rust = go_to_rust(go).unwrap_or_else(|_| panic!("{go:?} should translate"));
        Regex::new(&rust)
            .unwrap_or_else(|e| panic!("{rust:?} from {go:?}: {e}"))
            .is_match(text)
    }

    #[test]
    fn compiler_output_translates() {
        assert!(is_match(r"^[^/]*$", "abc"));
        assert!(!is_match(r"^[^/]*$", "a/c"));
        assert!(is_match(r"^(.*/)?dir2/[^/]*$", "dir/dir2/file"));
        assert!(is_match(r"^\.[^/]*$", ".foo"));
        assert!(is_match(r"^a[b-d]e$", "ace"));
        assert!(!is_match(r"^a[^b-d]e$", "ace"));
        assert!(is_match(r"^a\*b$", "a*b"));
        assert!(is_match(r"^a\\$", "a\\"));
    }

    #[test]
    fn star_inside_a_class_follows_go() {
        // Pattern `[*]` compiles to `^[[^/]*]$`: the class {[, ^, /} repeated, then `]`.
        let go = r"^[[^/]*]$";
        assert!(is_match(go, "]"));
        assert!(is_match(go, "[^/]"));
        assert!(!is_match(go, "*"));
        assert!(!is_match(go, "a"));
    }

    #[test]
    fn rust_only_class_syntax_is_literal() {
        assert!(is_match(r"^[a&&b]$", "&"));
        assert!(is_match(r"^[a~~b]$", "~"));
        assert!(is_match(r"^[[]$", "["));
        assert!(is_match(r"^[]a]$", "]"));
        assert!(is_match(r"^[[:alpha:]]$", "q"));
        assert!(!is_match(r"^[[:alpha:]]$", "1"));
        assert!(is_match(r"^[[:^alpha:]]$", "1"));
    }

    #[test]
    fn go_escapes() {
        assert!(is_match(r"^a\<b$", "a<b"));
        assert!(is_match(r"^\x41$", "A"));
        assert!(is_match(r"^\101$", "A"));
        assert!(is_match(r"^\d$", "7"));
        assert!(!is_match(r"^\d$", "٣"), "Go's \\d is ASCII-only");
        assert!(!is_match(r"^\w$", "é"), "Go's \\w is ASCII-only");
        assert!(is_match(r"^\QA*B$", "A*B$"));
        assert!(is_match(r"^\pL$", "é"));
        assert!(is_match(r"^a\b$", "a"));
        assert_eq!(go_to_rust(r"\1"), Err(GoSyntaxError));
        assert_eq!(go_to_rust(r"\u0041"), Err(GoSyntaxError));
        assert_eq!(go_to_rust(r"\y"), Err(GoSyntaxError));
        assert_eq!(go_to_rust(r"\x4"), Err(GoSyntaxError));
    }

    proptest::proptest! {
        #[test]
        fn any_text_translates_or_fails_cleanly(go in r"[\\\[\]^$.*?()|:a-dpxQE0-9{}-]{0,12}") {
            if let Ok(rust) = go_to_rust(&go) {
                let _ = Regex::new(&rust);
            }
        }
    }

    #[test]
    fn class_errors() {
        assert_eq!(go_to_rust(r"^[Local-Only]$"), Err(GoSyntaxError));
        assert_eq!(go_to_rust(r"^[abc$"), Err(GoSyntaxError));
        assert_eq!(go_to_rust(r"^[[:nope:]]$"), Err(GoSyntaxError));
    }
}
