//! Parser behaviour beyond BuildKit's dump: spans, warnings, comments, directives, errors,
//! heredoc details and printing.

use hoist_dockerfile::{
    Args, DirectiveKind, Keyword, ParseErrorKind, Parser, Separator, WarningKind, parse,
    parse_bytes,
};

fn slice(src: &str, span: hoist_dockerfile::Span) -> &str {
    &src[span.range()]
}

#[test]
fn spans_point_at_keyword_flags_and_arguments() {
    let src = "FROM alpine AS build\n  copy --from=build --chown=\"a b\" /src /dst\n";
    let file = parse(src).unwrap();
    let from = &file.instructions[0];
    assert_eq!(from.kind, Some(Keyword::From));
    let Args::Words(words) = &from.args else {
        panic!("{:?}", from.args)
    };
    let as_word = &words[1];
    assert_eq!(as_word.value, "AS");
    assert_eq!(
        (as_word.span.start_line, as_word.span.start_column),
        (1, 13)
    );
    assert_eq!(slice(src, as_word.span), "AS");

    let copy = &file.instructions[1];
    assert_eq!(copy.keyword, "copy");
    assert_eq!(copy.name, "copy");
    assert_eq!(
        (copy.keyword_span.start_line, copy.keyword_span.start_column),
        (2, 3)
    );
    assert_eq!(slice(src, copy.keyword_span), "copy");
    assert_eq!(copy.flags[1].text, "--chown=a b");
    assert_eq!(copy.flags[1].name(), "chown");
    assert_eq!(copy.flags[1].value(), Some("a b"));
    assert_eq!(slice(src, copy.flags[1].span), "--chown=\"a b\"");
    assert_eq!(copy.flags[0].value(), Some("build"));
    assert_eq!(
        slice(src, copy.span),
        "copy --from=build --chown=\"a b\" /src /dst"
    );
}

#[test]
fn spans_follow_continuation_lines() {
    let src = "RUN apt-get update \\\n    # a comment\n\n    && apt-get install -y \\\n    curl\nUSER app\n";
    let file = parse(src).unwrap();
    let run = &file.instructions[0];
    assert_eq!((run.span.start_line, run.span.end_line), (1, 5));
    assert_eq!(
        run.original,
        "RUN apt-get update     && apt-get install -y     curl"
    );
    let Args::Text(text) = &run.args else {
        panic!()
    };
    assert_eq!(
        text.value,
        "apt-get update     && apt-get install -y     curl"
    );
    assert_eq!(text.span.start_line, 1);
    assert_eq!(text.span.end_line, 5);
    assert!(slice(src, text.span).starts_with("apt-get update \\\n"));
    assert!(slice(src, text.span).ends_with("    curl"));

    assert_eq!(file.warnings.len(), 1);
    let warning = &file.warnings[0];
    assert_eq!(
        warning.kind,
        WarningKind::EmptyContinuationLine { lines: vec![3] }
    );
    assert_eq!(
        warning.message,
        "Empty continuation line found in: RUN apt-get update     && apt-get install -y     curl"
    );
    assert!(warning.kind.url().starts_with("https://docs.docker.com/"));

    let user = &file.instructions[1];
    assert_eq!((user.span.start_line, user.span.end_line), (6, 6));
}

#[test]
fn key_values_keep_raw_text_and_spans() {
    let src = "ENV a=1 b=\"x y\" c=z\\ w\nLABEL maintainer Foo <f@x>\n";
    let file = parse(src).unwrap();
    let Args::KeyValues(pairs) = &file.instructions[0].args else {
        panic!()
    };
    let got: Vec<(&str, &str)> = pairs
        .iter()
        .map(|p| (p.key.value.as_str(), p.value.value.as_str()))
        .collect();
    assert_eq!(got, [("a", "1"), ("b", "\"x y\""), ("c", "z\\ w")]);
    assert_eq!(slice(src, pairs[1].span), "b=\"x y\"");
    assert_eq!(slice(src, pairs[1].value.span), "\"x y\"");
    assert!(pairs.iter().all(|p| p.separator == Separator::Equals));

    let Args::KeyValues(legacy) = &file.instructions[1].args else {
        panic!()
    };
    assert_eq!(legacy[0].separator, Separator::Whitespace);
    assert_eq!(legacy[0].value.value, "Foo <f@x>");
    assert_eq!(
        file.instructions[1].arg_strings(),
        ["maintainer", "Foo <f@x>", ""]
    );
}

#[test]
fn exec_form_and_healthcheck() {
    let file = parse(
        "CMD [\"a\", \"b c\"]\nCMD ['a']\nHEALTHCHECK --interval=5s CMD [\"x\"]\nHEALTHCHECK NONE\nSHELL []\n",
    )
    .unwrap();
    let nodes = &file.instructions;
    assert!(nodes[0].is_json_form());
    assert!(!nodes[1].is_json_form());
    assert!(nodes[2].is_json_form());
    let Args::Healthcheck { kind, command } = &nodes[3].args else {
        panic!()
    };
    assert_eq!(kind.value, "NONE");
    assert_eq!(**command, Args::Empty);
    assert_eq!(nodes[4].args, Args::Json(vec![]));
    assert!(nodes[4].is_json_form());
}

#[test]
fn onbuild_nests_a_node_and_carries_heredocs() {
    let src = "ONBUILD --x RUN --mount=type=cache,target=/c <<EOF\necho hi\nEOF\n";
    let file = parse(src).unwrap();
    let node = &file.instructions[0];
    assert_eq!(node.flags[0].text, "--x");
    let child = node.onbuild_child().unwrap();
    assert_eq!(child.kind, Some(Keyword::Run));
    assert_eq!(child.flags[0].text, "--mount=type=cache,target=/c");
    assert_eq!(child.original, "RUN --mount=type=cache,target=/c <<EOF");
    assert_eq!(slice(src, child.keyword_span), "RUN");
    assert_eq!(node.heredocs.len(), 1);
    assert_eq!(node.heredocs[0].content, "echo hi\n");
    assert!(child.heredocs.is_empty());
    assert_eq!(
        node.dump(),
        "onbuild [\"--x\"] (run [\"--mount=type=cache,target=/c\"] \"<<EOF\")"
    );
    assert_eq!((node.span.start_line, node.span.end_line), (1, 3));
}

#[test]
fn heredoc_details() {
    let src = "FROM a\nCOPY <<A 3<<-'B' /dst\nfirst\nA\n\tsecond\n\tB\nRUN [\"<<EOF\"]\n";
    let file = parse(src).unwrap();
    let copy = &file.instructions[1];
    assert_eq!(copy.heredocs.len(), 2);
    let (a, b) = (&copy.heredocs[0], &copy.heredocs[1]);
    assert_eq!(
        (a.name.as_str(), a.expand, a.chomp, a.file_descriptor),
        ("A", true, false, 0)
    );
    assert_eq!(
        (b.name.as_str(), b.expand, b.chomp, b.file_descriptor),
        ("B", false, true, 3)
    );
    assert_eq!(b.content, "\tsecond\n");
    assert_eq!(b.chomped_content(), "second\n");
    assert_eq!(slice(src, a.marker_span), "<<A");
    assert_eq!(slice(src, b.marker_span), "3<<-'B'");
    assert_eq!((a.span.start_line, a.span.end_line), (3, 4));
    assert_eq!(slice(src, b.span), "\tsecond\n\tB");
    assert_eq!((copy.span.start_line, copy.span.end_line), (2, 6));
    assert!(file.instructions[2].heredocs.is_empty());

    let crlf = parse("RUN <<EOF\r\nline\r\nEOF\r\n").unwrap();
    assert_eq!(crlf.instructions[0].heredocs[0].content, "line\r\n");
}

#[test]
fn comments_attach_to_the_next_instruction() {
    let src = "# syntax=docker/dockerfile:1\n# base is the base\n\nFROM a AS base\n# stray\n#\n# arg foo\nARG foo\nRUN x\n";
    let file = parse(src).unwrap();
    assert_eq!(file.directives.len(), 1);
    assert_eq!(file.instructions[0].comments, ["base is the base"]);
    assert_eq!(file.instructions[1].comments, ["arg foo"]);
    assert!(file.instructions[2].comments.is_empty());
}

#[test]
fn directives() {
    let file =
        parse("# Syntax = docker/dockerfile:1 \n#escape=`\n# check=skip=all\nFROM a `\n  AS b\n")
            .unwrap();
    let kinds: Vec<DirectiveKind> = file.directives.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, DirectiveKind::ALL);
    let syntax = file.directive(DirectiveKind::Syntax).unwrap();
    assert_eq!(
        (syntax.name.as_str(), syntax.value.as_str()),
        ("Syntax", "docker/dockerfile:1")
    );
    assert_eq!(syntax.value_span.start_column, 12);
    assert_eq!(file.escape, '`');
    assert_eq!(file.dump(), "(from \"a\" \"AS\" \"b\")");

    // Not at the top: just a comment.
    let late = parse("# hello\n# escape=`\nFROM a\n").unwrap();
    assert!(late.directives.is_empty());
    assert_eq!(late.escape, '\\');
    assert_eq!(late.instructions[0].comments, ["hello", "escape=`"]);

    let dup = parse("# escape=`\n# escape=\\\nFROM a\n").unwrap_err();
    assert_eq!(
        dup.to_string(),
        "only one escape parser directive can be used"
    );
    assert_eq!(dup.line(), 2);

    let bad = parse("# escape=x\nFROM a\n").unwrap_err();
    assert_eq!(
        bad.kind,
        ParseErrorKind::InvalidEscapeToken { token: "x".into() }
    );
    assert_eq!(
        bad.to_string(),
        "invalid escape token 'x' does not match ` or \\"
    );
}

#[test]
fn errors_carry_spans_and_file_names() {
    let src = "FROM a\nENV a=1 b c=2\n";
    let error = Parser::new()
        .file_name("Dockerfile.dev")
        .parse(src)
        .unwrap_err();
    assert_eq!(error.file.as_deref(), Some("Dockerfile.dev"));
    assert_eq!(
        error.kind,
        ParseErrorKind::MissingEquals { word: "b".into() }
    );
    assert_eq!(
        error.to_string(),
        "Syntax error - can't find = in \"b\". Must be of the form: name=value"
    );
    assert_eq!((error.span.start_line, error.span.start_column), (2, 9));
    assert_eq!(&src[error.span.range()], "b");
    assert!(error.kind.help().is_some());

    let env = parse("FROM a\n\n  ENV PATH\n").unwrap_err();
    assert_eq!(env.to_string(), "ENV must have two arguments");
    assert_eq!((env.span.start_line, env.span.start_column), (3, 3));

    let json = parse("CMD [\"a\", 1]\n").unwrap_err();
    assert_eq!(json.kind, ParseErrorKind::JsonNotStringArray);
    assert_eq!(&"CMD [\"a\", 1]"[json.span.range()], "[\"a\", 1]");

    let heredoc = parse("FROM a\nRUN <<EOF\necho\n").unwrap_err();
    assert_eq!(heredoc.to_string(), "unterminated heredoc");
    assert_eq!((heredoc.span.start_line, heredoc.span.end_line), (2, 3));

    let empty = parse("").unwrap_err();
    assert_eq!(empty.kind, ParseErrorKind::NoInstructions);
    assert_eq!(empty.line(), 0);
    let comments = parse("# a\n\n# b\n").unwrap_err();
    assert_eq!(comments.line(), 3);

    let long = format!("FROM a\nRUN {}\n", "x".repeat(70_000));
    let too_long = parse(&long).unwrap_err();
    assert_eq!(too_long.line(), 2);
    assert!(matches!(
        too_long.kind,
        ParseErrorKind::LineTooLong { length: 70_004, .. }
    ));
    // Exactly the limit is fine.
    let limit = format!("RUN {}\n", "x".repeat(65_535 - 4));
    assert!(parse(&limit).is_ok());

    let deep = format!("{}RUN x\n", "ONBUILD ".repeat(40));
    assert!(matches!(
        parse(&deep).unwrap_err().kind,
        ParseErrorKind::OnbuildTooDeep { .. }
    ));
    assert!(parse(&format!("{}RUN x\n", "ONBUILD ".repeat(5))).is_ok());
}

#[test]
fn unknown_instructions_and_odd_input() {
    let file = parse("FORM alpine\nFROM a\n").unwrap();
    let unknown = &file.instructions[0];
    assert_eq!(unknown.kind, None);
    assert_eq!(unknown.args, Args::Unknown(unknown_arg(&file)));
    assert_eq!(unknown.dump(), "form \"\"");
    assert_eq!(
        hoist_dockerfile::suggest_keyword(&unknown.keyword).as_deref(),
        Some("FROM")
    );

    // BOM, CRLF and invalid UTF-8.
    let bytes = b"\xef\xbb\xbf# escape=`\r\nFROM a `\r\n  b\r\nRUN echo \xff\r\n";
    let file = parse_bytes(bytes).unwrap();
    assert_eq!(file.escape, '`');
    assert_eq!(file.dump(), "(from \"a\" \"b\")\n(run \"echo \u{fffd}\")");
    assert_eq!(file.instructions[0].keyword_span.start, 15);
}

fn unknown_arg(file: &hoist_dockerfile::Dockerfile) -> hoist_dockerfile::Arg {
    match &file.instructions[0].args {
        Args::Unknown(arg) => {
            assert_eq!(arg.value, "alpine");
            arg.clone()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn printing_is_canonical_and_reparses() {
    let src = "# syntax = x\n#escape=`\n\n# doc\nfrom  a `\n  AS b\nRUN --mount=\"type=cache,target=/a b\" <<-EOF cat `\n  && echo\n\tbody\n\tEOF\nENV k=v  j=\"x y\"\nLABEL legacy   value here\nCOPY -- --weird /dst\nCMD [\"a\\\"b\", \"tab\\there\"]\nONBUILD HEALTHCHECK CMD [\"x\"]\n";
    let file = parse(src).unwrap();
    let printed = file.to_string();
    assert_eq!(
        printed,
        "# syntax=x\n# escape=`\n\n# doc\nfrom a AS b\nRUN --mount=\"type=cache,target=/a b\" <<-EOF cat   && echo\n\tbody\nEOF\nENV k=v j=\"x y\"\nLABEL legacy value here\nCOPY -- --weird /dst\nCMD [\"a\\\"b\", \"tab\\u0009here\"]\nONBUILD HEALTHCHECK CMD [\"x\"]\n"
    );
    let again = parse(&printed).unwrap();
    assert_eq!(again.dump(), file.dump());
    assert_eq!(again.to_string(), printed);
    assert_eq!(again.instructions[1].heredocs, {
        let mut h = file.instructions[1].heredocs.clone();
        h[0].marker_span = again.instructions[1].heredocs[0].marker_span;
        h[0].span = again.instructions[1].heredocs[0].span;
        h
    });
}

/// Found by the `dockerfile_parse` fuzz target (`fuzz/`): a lone escape character at the end
/// of the file parses to a node without a keyword (as in BuildKit), which printed as an empty
/// line and so did not parse back.
#[test]
fn a_lone_escape_at_the_end_prints_back_as_itself() {
    for src in [
        &b"#\x9cp[e\x9e\x9f\x8c\n\\"[..],
        b"FROM a\n\\",
        b"\\",
        b"# escape=`\nFROM a\n# c\n`\n",
    ] {
        let file = hoist_dockerfile::parse_bytes(src).unwrap();
        assert_eq!(file.instructions.last().unwrap().keyword, "");
        let printed = file.to_string();
        let again = parse(&printed).unwrap();
        assert_eq!(again.dump(), file.dump(), "{printed:?}");
        assert_eq!(again.to_string(), printed);
    }
}
