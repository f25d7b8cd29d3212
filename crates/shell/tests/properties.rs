//! Properties over generated input, for both escape characters and all option switches.
//!
//! The first two only require an answer (a value or an error, never a panic or an abort);
//! the others check results that follow from the lexer's rules for any text.

use hoist_shell::Lexer;
use proptest::prelude::*;

const ENV: [&str; 6] = ["A=1", "B=", "S=x y", "P=*", "Q=\\", "R=$0"];

fn lexer(
    backtick: bool,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_quotes: bool,
    skip_unset: bool,
) -> Lexer {
    Lexer::new(if backtick { '`' } else { '\\' })
        .with_raw_quotes(raw_quotes)
        .with_raw_escapes(raw_escapes)
        .with_skip_process_quotes(skip_quotes)
        .with_skip_unset_env(skip_unset)
}

/// Text built from the lexer's own syntax, which arbitrary strings rarely hit.
fn shellish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("$"),
        Just("${"),
        Just("}"),
        Just("{"),
        Just(":"),
        Just("-"),
        Just("+"),
        Just("?"),
        Just("="),
        Just("#"),
        Just("%"),
        Just("/"),
        Just("*"),
        Just("'"),
        Just("\""),
        Just("\\"),
        Just("`"),
        Just(" "),
        Just("\t"),
        Just("A"),
        Just("B"),
        Just("S"),
        Just("P"),
        Just("Q"),
        Just("R"),
        Just("Z"),
        Just("1"),
        Just("@"),
        Just("x"),
        Just("한"),
        Just("\u{feff}"),
        Just("[a]"),
        Just("\n"),
        Just("\0"),
    ];
    prop::collection::vec(piece, 0..48).prop_map(|pieces| pieces.concat())
}

/// Text with none of the characters the lexer treats specially.
fn plain() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| {
        s.chars()
            .filter(|c| !matches!(c, '$' | '\'' | '"' | '\\' | '`' | '\u{feff}'))
            .collect()
    })
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(
        input in any::<String>(),
        flags in any::<[bool; 5]>(),
    ) {
        let [backtick, raw_quotes, raw_escapes, skip_quotes, skip_unset] = flags;
        let lexer = lexer(backtick, raw_quotes, raw_escapes, skip_quotes, skip_unset);
        let _ = lexer.process_word(&input, &ENV);
        let _ = lexer.process_words(&input, &ENV);
    }

    #[test]
    fn shell_syntax_soup_never_panics(input in shellish(), flags in any::<[bool; 5]>()) {
        let [backtick, raw_quotes, raw_escapes, skip_quotes, skip_unset] = flags;
        let lexer = lexer(backtick, raw_quotes, raw_escapes, skip_quotes, skip_unset);
        if let Ok(word) = lexer.process_word(&input, &ENV) {
            // Every reported name was looked up in the environment with that outcome.
            for name in &word.matched {
                prop_assert!(ENV.iter().any(|e| e.split_once('=').is_some_and(|(k, _)| k == *name)));
            }
            for name in &word.unmatched {
                prop_assert!(!ENV.iter().any(|e| e.split_once('=').is_some_and(|(k, _)| k == *name)));
            }
        }
        let _ = lexer.process_words(&input, &ENV);
    }

    #[test]
    fn plain_text_is_unchanged_and_splits_on_whitespace(input in plain(), backtick in any::<bool>()) {
        let lexer = lexer(backtick, false, false, false, false);
        prop_assert_eq!(&lexer.process_word(&input, &ENV).unwrap().value, &input);
        let expected: Vec<&str> = input.split(char::is_whitespace).filter(|w| !w.is_empty()).collect();
        prop_assert_eq!(lexer.process_words(&input, &ENV).unwrap(), expected);
    }

    #[test]
    fn single_quotes_keep_everything_but_the_quote(input in any::<String>(), backtick in any::<bool>()) {
        let text: String = input.chars().filter(|&c| c != '\'').collect();
        let lexer = lexer(backtick, false, false, false, false);
        let quoted = format!("'{text}'");
        prop_assert_eq!(lexer.process_word(&quoted, &ENV).unwrap().value, text.clone());
        prop_assert_eq!(lexer.process_words(&quoted, &ENV).unwrap(), if text.is_empty() { vec![] } else { vec![text] });
    }

    #[test]
    fn escaping_inside_double_quotes_round_trips(text in any::<String>(), backtick in any::<bool>()) {
        let escape = if backtick { '`' } else { '\\' };
        let mut quoted = String::from('"');
        for c in text.chars() {
            if c == '"' || c == '$' || c == escape {
                quoted.push(escape);
            }
            quoted.push(c);
        }
        quoted.push('"');
        let lexer = lexer(backtick, false, false, false, false);
        prop_assert_eq!(lexer.process_word(&quoted, &ENV).unwrap().value, text);
    }

    #[test]
    fn escaping_every_character_gives_one_literal_word(text in any::<String>(), backtick in any::<bool>()) {
        let escape = if backtick { '`' } else { '\\' };
        let escaped: String = text.chars().flat_map(|c| [escape, c]).collect();
        let lexer = lexer(backtick, false, false, false, false);
        prop_assert_eq!(&lexer.process_word(&escaped, &ENV).unwrap().value, &text);
        let words = lexer.process_words(&escaped, &ENV).unwrap();
        prop_assert_eq!(words, if text.is_empty() { vec![] } else { vec![text] });
    }
}
