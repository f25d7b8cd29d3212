use super::*;

const ENV: [&str; 5] = ["PWD=/home", "SPACED=a  b ", "EMPTY=", "STAR=*", "PAT=\\*/"];

fn word(lexer: Lexer, input: &str) -> Result<String, ShellError> {
    lexer.process_word(input, &ENV).map(|w| w.value)
}

fn words(lexer: Lexer, input: &str) -> Result<Vec<String>, ShellError> {
    lexer.process_words(input, &ENV)
}

#[test]
fn crate_example_holds() {
    let env = ["VERSION=1.2", "ARCH=amd64", "EMPTY="];
    let lexer = Lexer::new('\\');
    let word = lexer
        .process_word("app-${VERSION}-${ARCH}${VARIANT:+-$VARIANT}.tgz", &env)
        .unwrap();
    assert_eq!(word.value, "app-1.2-amd64.tgz");
    assert_eq!(word.matched, ["VERSION", "ARCH"]);
    assert_eq!(word.unmatched, ["VARIANT"]);
    let words = lexer
        .process_words(r#"echo "a  b" $EMPTY c\ d"#, &env)
        .unwrap();
    assert_eq!(words, ["echo", "a  b", "c d"]);
}

#[test]
fn names_are_reported_once_in_first_reference_order() {
    let w = Lexer::default()
        .process_word("$B ${A:-$C} $B ${C+x} $PWD${PWD}", &ENV)
        .unwrap();
    assert_eq!(w.value, "    /home/home");
    // `${A:-$C}`: the word is expanded before A is looked up, so C comes first.
    assert_eq!(w.unmatched, ["B", "C", "A"]);
    assert_eq!(w.matched, ["PWD"]);
}

#[test]
fn words_split_on_whitespace_from_unquoted_expansions_only() {
    let lexer = Lexer::default();
    assert_eq!(words(lexer, "x${SPACED}y").unwrap(), ["xa", "b", "y"]);
    assert_eq!(words(lexer, "x\"${SPACED}\"y").unwrap(), ["xa  b y"]);
    assert_eq!(words(lexer, "x${NOPE:-1 2}y").unwrap(), ["x1", "2y"]);
    assert_eq!(words(lexer, "a '' \"\" $EMPTY b").unwrap(), ["a", "b"]);
    assert_eq!(words(lexer, "a\\\tb\u{3000}c").unwrap(), ["a\tb", "c"]);
    assert_eq!(words(lexer, "  ").unwrap(), Vec::<String>::new());
    // Text before a nested word stays in the word (BuildKit's ProcessWords loses it; see
    // docs/conformance.md).
    assert_eq!(
        words(lexer, "80${NOPE:-/tcp} x${PWD#/}").unwrap(),
        ["80/tcp", "xhome"]
    );
}

#[test]
fn raw_quotes_keep_the_quotes() {
    let lexer = Lexer::default().with_raw_quotes(true);
    assert_eq!(
        word(lexer, r#"a"b $PWD"'c $PWD'"#).unwrap(),
        r#"a"b /home"'c $PWD'"#
    );
    assert_eq!(words(lexer, r#"k="v 1" x"#).unwrap(), [r#"k="v 1""#, "x"]);
}

#[test]
fn raw_escapes_keep_the_escape_character() {
    let lexer = Lexer::default().with_raw_escapes(true);
    assert_eq!(words(lexer, r"a\ b c").unwrap(), [r"a\ b", "c"]);
    assert_eq!(word(lexer, r#""x\"y\z""#).unwrap(), r#"x\"y\\z"#);
    // Inside `${V:-word}` escapes are processed normally whatever the option says.
    assert_eq!(word(lexer, r"${NOPE:-a\b}").unwrap(), "ab");
}

#[test]
fn skip_process_quotes_treats_quotes_as_text() {
    let lexer = Lexer::default().with_skip_process_quotes(true);
    assert_eq!(
        word(lexer, r#"echo '$PWD' "$PWD" it's"#).unwrap(),
        r#"echo '/home' "/home" it's"#
    );
    assert_eq!(words(lexer, r#"a "b c""#).unwrap(), ["a", "\"b", "c\""]);
}

#[test]
fn skip_unset_env_leaves_unset_references_as_written() {
    let lexer = Lexer::default().with_skip_unset_env(true);
    assert_eq!(
        word(lexer, "$NOPE ${NOPE} $PWD").unwrap(),
        "$NOPE ${NOPE} /home"
    );
    assert_eq!(
        word(lexer, "${NOPE:-$PWD} ${NOPE+x}").unwrap(),
        "${NOPE:-/home} ${NOPE+x}"
    );
    assert_eq!(
        word(lexer, "${NOPE//a/b} ${NOPE:=x}").unwrap(),
        "${NOPE/a/b} ${NOPE:=x}"
    );
    assert_eq!(
        word(lexer, "${EMPTY:-d}").unwrap(),
        "d",
        "set-but-empty is expanded"
    );
    assert!(
        word(lexer, "${NOPE:#x}").is_err(),
        "`:#` fails before the variable is looked at"
    );
}

#[test]
fn patterns_use_expanded_words_and_literal_brackets() {
    let lexer = Lexer::default();
    assert_eq!(word(lexer, "${PWD#/}").unwrap(), "home");
    assert_eq!(word(lexer, "${PWD%%m*}").unwrap(), "/ho");
    assert_eq!(
        word(lexer, "${PWD#$STAR}").unwrap(),
        "/home",
        "`*` from a variable is a wildcard"
    );
    assert_eq!(word(lexer, "${PWD##$STAR}").unwrap(), "");
    assert_eq!(
        word(lexer, "${PWD#'/h'}").unwrap(),
        "ome",
        "quotes are removed from the pattern"
    );
    assert_eq!(
        word(lexer, "${PWD/[h]/x}").unwrap(),
        "/home",
        "`[h]` is literal text"
    );
    assert_eq!(
        word(lexer, "${PWD//o*/\\$0}").unwrap(),
        "/h\\ome",
        "`//` expands `$0`"
    );
}

#[test]
fn error_messages_have_buildkit_wording() {
    let lexer = Lexer::default();
    let message = |input: &str| word(lexer, input).unwrap_err().to_string();
    assert_eq!(
        message("${NOPE:?must\tbe set}"),
        "failed to process \"${NOPE:?must\\tbe set}\": NOPE: must\tbe set"
    );
    assert_eq!(
        message("${NOPE?}"),
        "failed to process \"${NOPE?}\": NOPE: is not allowed to be unset"
    );
    assert_eq!(
        message("${EMPTY:?}"),
        "failed to process \"${EMPTY:?}\": EMPTY: is not allowed to be empty"
    );
    assert_eq!(
        message("${PWD:=x}"),
        "failed to process \"${PWD:=x}\": unsupported modifier (:=) in substitution"
    );
    assert_eq!(
        message("${PWD=x}"),
        "failed to process \"${PWD=x}\": unsupported modifier (=) in substitution"
    );
    assert_eq!(
        message("a${}"),
        "failed to process \"a${}\": syntax error: bad substitution"
    );
    assert_eq!(
        message("${PWD"),
        "failed to process \"${PWD\": syntax error: missing '}'"
    );
    assert_eq!(
        message("${PWD/x"),
        "failed to process \"${PWD/x\": syntax error: missing '/' in ${}"
    );
    assert_eq!(
        message("'a"),
        "failed to process \"'a\": unexpected end of statement while looking for matching single-quote"
    );
    assert_eq!(
        message("\"a"),
        "failed to process \"\\\"a\": unexpected end of statement while looking for matching double-quote"
    );
    assert_eq!(
        message("${PWD#\\x}"),
        "failed to process \"${PWD#\\\\x}\": invalid pattern (\\x) in substitution: invalid escape '\\x'"
    );
    // `%` reverses the pattern before translating it, and BuildKit reports the reversed one.
    assert_eq!(
        message("${PWD%a\\xb}"),
        "failed to process \"${PWD%a\\\\xb}\": invalid pattern (b\\xa) in substitution: invalid escape '\\x'"
    );
}

#[test]
fn an_error_at_the_end_of_a_nested_word_is_the_missing_brace() {
    let lexer = Lexer::default();
    // The inner failure happens with nothing left to read: the outer `${` is unclosed.
    assert!(matches!(
        word(lexer, "${A:-${NOPE:?x}"),
        Err(ShellError::MissingClosingBrace { .. })
    ));
    assert!(matches!(
        word(lexer, "${A:-'x}"),
        Err(ShellError::MissingClosingBrace { .. })
    ));
    // With text after it, the inner failure is reported as it is.
    assert!(matches!(
        word(lexer, "${A:-${NOPE:?x}}"),
        Err(ShellError::VariableUnset { .. })
    ));
    assert!(matches!(
        word(lexer, "${A:-${}}"),
        Err(ShellError::BadSubstitution { .. })
    ));
}

#[test]
fn a_leading_byte_order_mark_is_skipped_like_go_text_scanner() {
    assert_eq!(
        word(Lexer::default(), "\u{feff}$PWD\u{feff}").unwrap(),
        "/home\u{feff}"
    );
}

#[test]
fn unicode_names_follow_go_letters_and_digits() {
    let env = ["변수=값", "X١=arabic-indic digit"];
    let lexer = Lexer::default();
    assert_eq!(lexer.process_word("$변수.", &env).unwrap().value, "값.");
    assert_eq!(
        lexer.process_word("$X١", &env).unwrap().value,
        "arabic-indic digit"
    );
    // `²` is not a Go digit, so the name stops before it.
    assert_eq!(lexer.process_word("$X²", &["X=x"]).unwrap().value, "x²");
}

#[test]
fn nesting_is_bounded_without_exhausting_the_stack() {
    let lexer = Lexer::default();
    let nest = |depth: usize| {
        let mut input = String::new();
        for _ in 0..depth {
            input.push_str("\"${A:-");
        }
        input.push('x');
        for _ in 0..depth {
            input.push_str("}\"");
        }
        input
    };
    assert_eq!(word(lexer, &nest(MAX_NESTING)).unwrap(), "x");
    assert!(matches!(
        word(lexer, &nest(MAX_NESTING + 1)),
        Err(ShellError::NestingTooDeep {
            limit: MAX_NESTING,
            ..
        })
    ));
    let deep = "${A:-".repeat(100_000);
    assert!(matches!(
        word(lexer, &deep),
        Err(ShellError::NestingTooDeep { .. })
    ));
}

#[test]
fn the_error_names_its_word() {
    let err = Lexer::default()
        .process_words("ok ${BAD", &ENV)
        .unwrap_err();
    assert_eq!(err.word(), "ok ${BAD");
}
