//! The few pieces of Go's standard library whose exact behaviour shows through BuildKit's
//! lexer: `unicode.IsLetter` / `unicode.IsDigit` (what a variable name may contain),
//! `unicode.IsSpace` (where words split) and `strconv.Quote` (how error messages show the
//! word).
//!
//! Rust's `char::is_alphabetic` and `char::is_numeric` are wider than Go's predicates
//! (they take in letter-numbers, combining marks and `²`), so non-ASCII characters are
//! classified by Unicode general category through the `regex` crate's tables.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// Go's `unicode.IsLetter`: general category L.
pub(crate) fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    static LETTER: LazyLock<Regex> = LazyLock::new(|| class(r"\p{L}"));
    matches(&LETTER, c)
}

/// Go's `unicode.IsDigit`: general category Nd (decimal digits of any script).
pub(crate) fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    static DIGIT: LazyLock<Regex> = LazyLock::new(|| class(r"\p{Nd}"));
    matches(&DIGIT, c)
}

/// Go's `unicode.IsSpace`. Both languages use the Unicode `White_Space` property
/// (Go adds U+0085 and U+00A0 by hand; they are in the property anyway).
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
fn is_print(c: char) -> bool {
    match u32::from(c) {
        0x20..=0x7e => true,
        0..=0x7f => false,
        // Latin-1: everything from U+00A1 is printable except the soft hyphen.
        0x80..=0xa0 | 0xad => false,
        0xa1..=0xff => true,
        _ => {
            static PRINT: LazyLock<Regex> = LazyLock::new(|| class(r"[\p{L}\p{M}\p{N}\p{P}\p{S}]"));
            matches(&PRINT, c)
        }
    }
}

fn class(pattern: &str) -> Regex {
    Regex::new(&format!("^{pattern}$")).expect("a Unicode class pattern always compiles")
}

fn matches(re: &Regex, c: char) -> bool {
    let mut buf = [0u8; 4];
    re.is_match(c.encode_utf8(&mut buf))
}

/// Displays a string the way Go's `strconv.Quote` (and `%q`) writes it.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if is_print(c) => f.write_char(c)?,
                '\x07' => f.write_str("\\a")?,
                '\x08' => f.write_str("\\b")?,
                '\x0c' => f.write_str("\\f")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\x0b' => f.write_str("\\v")?,
                c if c < ' ' || c == '\x7f' => write!(f, "\\x{:02x}", u32::from(c))?,
                c if u32::from(c) < 0x1_0000 => write!(f, "\\u{:04x}", u32::from(c))?,
                c => write!(f, "\\U{:08x}", u32::from(c))?,
            }
        }
        f.write_char('"')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_and_digits_follow_go_categories() {
        assert!(is_letter('한'));
        assert!(is_letter('µ'));
        assert!(!is_letter('Ⅻ'), "a letter-number (Nl) is not a Go letter");
        assert!(
            !is_letter('\u{0301}'),
            "a combining mark is not a Go letter"
        );
        assert!(is_digit('٣'));
        assert!(!is_digit('²'), "a superscript (No) is not a Go digit");
        assert!(!is_letter('_') && !is_digit('_'));
    }

    #[test]
    fn quoting_matches_go_strconv_quote() {
        assert_eq!(Quoted("a\"b\\c").to_string(), r#""a\"b\\c""#);
        assert_eq!(Quoted("\t\n\x00\x7f").to_string(), r#""\t\n\x00\x7f""#);
        assert_eq!(Quoted("♥ 한국어").to_string(), "\"♥ 한국어\"");
        assert_eq!(
            Quoted("\u{a0}\u{ad}\u{200b}\u{feff}").to_string(),
            r#""\u00a0\u00ad\u200b\ufeff""#
        );
        assert_eq!(Quoted("\u{e0001}").to_string(), r#""\U000e0001""#);
    }
}
