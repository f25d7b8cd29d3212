//! Expansion with the backtick as escape character (`# escape=``), which the shared
//! conformance data does not cover (its lexer cases all use `\`). These cases are written
//! by hand from the lexer's rules, each with the rule it exercises:
//!
//! * the escape character escapes the next character outside quotes, and disappears at the
//!   very end of the word;
//! * inside `"…"` it escapes only `"`, `$` and itself, and stays literal before anything
//!   else; inside `'…'` it is literal;
//! * `\` is an ordinary character;
//! * in the pattern of `${V#p}`, `${V%p}`, `${V/p/r}` escapes are kept as written, and the
//!   pattern language itself always uses `\` (so `` `/ `` is a literal backtick and slash,
//!   while `\/` is a slash).

use hoist_shell::{Lexer, ShellError};

const ENV: [&str; 3] = ["PWD=/home", "EMPTY=", "SPACED=a b"];

fn word(input: &str) -> Result<String, ShellError> {
    Lexer::new('`').process_word(input, &ENV).map(|w| w.value)
}

fn words(input: &str) -> Result<Vec<String>, ShellError> {
    Lexer::new('`').process_words(input, &ENV)
}

#[test]
fn backtick_escapes_outside_quotes() {
    let cases = [
        ("hello", "hello"),
        // An escaped quote is an ordinary character.
        ("he`'llo", "he'llo"),
        // `\` is not the escape character: it stays, and `t` is just a letter.
        (r"abc\tdef", r"abc\tdef"),
        ("abc`tdef", "abctdef"),
        (r"C:\path\to", r"C:\path\to"),
        // An escaped `$` starts no expansion; a `\` before `$` does not stop one.
        ("he`$PWD", "he$PWD"),
        (r"he\$PWD", r"he\/home"),
        // An escape character at the very end escapes nothing and disappears.
        ("hello`", "hello"),
        ("`", ""),
        ("hello``", "hello`"),
    ];
    for (input, expected) in cases {
        assert_eq!(word(input).as_deref(), Ok(expected), "{input:?}");
    }
    // `\'` does not escape the quote, which then has no partner.
    assert!(matches!(
        word(r"he\'llo"),
        Err(ShellError::UnterminatedSingleQuote { .. })
    ));
}

#[test]
fn backtick_inside_quotes() {
    let cases = [
        // Inside double quotes the backtick escapes `"`, `$` and itself ...
        ("\"abc`\"def\"", "abc\"def"),
        ("\"he`$PWD\"", "he$PWD"),
        ("\"he``x\"", "he`x"),
        // ... and before anything else it is kept.
        ("\"he`x\"", "he`x"),
        (r#""C:\path""#, r"C:\path"),
        // Inside single quotes everything is literal.
        ("'it`s'", "it`s"),
    ];
    for (input, expected) in cases {
        assert_eq!(word(input).as_deref(), Ok(expected), "{input:?}");
    }
    // `\"` does not escape: the first string ends there and a second one never closes.
    assert!(matches!(
        word(r#""a\"b""#),
        Err(ShellError::UnterminatedDoubleQuote { .. })
    ));
    // An escaped closing quote leaves the string open.
    assert!(matches!(
        word("\"x`\""),
        Err(ShellError::UnterminatedDoubleQuote { .. })
    ));
}

#[test]
fn backtick_inside_substitutions() {
    let cases = [
        // The escaped `}` is part of the default word; the next one closes.
        ("${XXX:-`}}", "}"),
        ("${PWD:+`$PWD}", "$PWD"),
        // Pattern escapes are kept as written and the pattern language escapes with `\`:
        // `` `/ `` is a backtick then a slash, which "/home" does not start with ...
        ("${PWD#`/}", "/home"),
        // ... while `\/` (the backslash being ordinary text here) is a slash.
        (r"${PWD#\/}", "home"),
        // The replacement keeps its escape too.
        ("${PWD/h/`}}", "/`}ome"),
    ];
    for (input, expected) in cases {
        assert_eq!(word(input).as_deref(), Ok(expected), "{input:?}");
    }
}

#[test]
fn backtick_in_word_splitting() {
    assert_eq!(words("hello` there").unwrap(), ["hello there"]);
    assert_eq!(words(r"C:\a b").unwrap(), [r"C:\a", "b"]);
    // The variable's space splits; the escaped one does not.
    assert_eq!(words("$SPACED` x").unwrap(), ["a", "b x"]);
    assert_eq!(words("a `  b").unwrap(), ["a", " ", "b"]);
}
