//! Property tests: arbitrary input never panics; generated Dockerfiles (instructions, flags,
//! continuations, comments, heredocs, JSON and shell forms, both escape characters) parse,
//! print and re-parse to the same tree.

use hoist_dockerfile::{Args, Dockerfile, Node, Span, parse, parse_bytes};
use proptest::prelude::*;
use proptest::sample::select;

/// The tree without source positions, `original` texts, warnings and the case of
/// directive names: what printing must preserve.
fn model(file: &Dockerfile) -> Dockerfile {
    let mut file = file.clone();
    file.warnings.clear();
    for directive in &mut file.directives {
        directive.name = directive.kind.as_str().to_owned();
        directive.span = Span::default();
        directive.value_span = Span::default();
    }
    for node in &mut file.instructions {
        strip_node(node);
    }
    file
}

fn strip_node(node: &mut Node) {
    node.keyword_span = Span::default();
    node.span = Span::default();
    node.original.clear();
    for flag in &mut node.flags {
        flag.span = Span::default();
    }
    for heredoc in &mut node.heredocs {
        heredoc.marker_span = Span::default();
        heredoc.span = Span::default();
    }
    strip_args(&mut node.args);
}

fn strip_args(args: &mut Args) {
    match args {
        Args::Empty => {}
        Args::Text(arg) | Args::Unknown(arg) => arg.span = Span::default(),
        Args::Json(items) | Args::Words(items) => {
            for item in items {
                item.span = Span::default();
            }
        }
        Args::KeyValues(pairs) => {
            for pair in pairs {
                pair.key.span = Span::default();
                pair.value.span = Span::default();
                pair.span = Span::default();
            }
        }
        Args::Healthcheck { kind, command } => {
            kind.span = Span::default();
            strip_args(command);
        }
        Args::Onbuild(child) => strip_node(child),
    }
}

fn check_span(span: Span, len: usize) -> Result<(), TestCaseError> {
    prop_assert!(
        span.start <= span.end && span.end <= len,
        "{span:?} outside 0..{len}"
    );
    prop_assert!(
        span.start_line >= 1 && span.start_line <= span.end_line,
        "{span:?}"
    );
    prop_assert!(span.start_column >= 1, "{span:?}");
    Ok(())
}

/// Spans stay inside the text and every derived view can be computed.
fn check_invariants(file: &Dockerfile, len: usize) -> Result<(), TestCaseError> {
    prop_assert!(!file.instructions.is_empty());
    for node in &file.instructions {
        check_span(node.span, len)?;
        check_span(node.keyword_span, len)?;
        for flag in &node.flags {
            check_span(flag.span, len)?;
        }
        for heredoc in &node.heredocs {
            check_span(heredoc.span, len)?;
            check_span(heredoc.marker_span, len)?;
        }
        let _ = node.arg_strings();
    }
    let _ = file.dump();
    // Printing and re-reading arbitrary trees must not panic either (the result may
    // differ for the few shapes the printer documents as not round-trippable).
    let _ = parse(&file.to_string());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(file) = parse_bytes(&bytes) {
            check_invariants(&file, String::from_utf8_lossy(&bytes).len())?;
        }
    }

    #[test]
    fn dockerfile_like_text_never_panics(
        lines in prop::collection::vec(fragment_line(), 0..12)
    ) {
        let text = lines.join("\n");
        if let Ok(file) = parse(&text) {
            check_invariants(&file, text.len())?;
        }
    }

    #[test]
    fn generated_dockerfiles_round_trip(source in dockerfile()) {
        let file = parse(&source);
        prop_assert!(file.is_ok(), "generated file did not parse: {:?}\n{source}", file.err());
        let file = file.expect("checked above");
        check_invariants(&file, source.len())?;
        let printed = file.to_string();
        let again = parse(&printed);
        prop_assert!(again.is_ok(), "printed file did not parse: {:?}\n{printed}", again.err());
        let again = again.expect("checked above");
        prop_assert_eq!(model(&again), model(&file), "source:\n{}\nprinted:\n{}", source, printed);
        prop_assert_eq!(again.dump(), file.dump());
        prop_assert_eq!(again.to_string(), printed);
    }
}

/// Lines made of Dockerfile-ish pieces, to reach deeper parser states than random bytes.
fn fragment_line() -> impl Strategy<Value = String> {
    let piece = select(vec![
        "RUN",
        "from",
        "COPY",
        "ENV",
        "LABEL",
        "ARG",
        "HEALTHCHECK",
        "ONBUILD",
        "CMD",
        "ADD",
        "EXPOSE",
        "FOO",
        "# escape=`",
        "# syntax=x",
        "#",
        " ",
        "\t",
        "\\",
        "`",
        "<<EOF",
        "<<-'E'",
        "EOF",
        "E",
        "[",
        "]",
        "\"",
        "'",
        "=",
        "a=b",
        "--flag=x",
        "--",
        "$X",
        "${Y:-z}",
        "{",
        "}",
        ",",
        "\"s\"",
        "1",
        "\r",
        "\u{feff}",
        "♥",
        "\u{a0}",
        "\u{b}",
    ]);
    prop::collection::vec(piece, 0..10).prop_map(|pieces| pieces.concat())
}

// ---- generator of valid Dockerfiles -----------------------------------------------------

/// An instruction line plus the heredoc bodies that must follow it.
#[derive(Debug, Clone)]
struct Instruction {
    line: String,
    bodies: String,
}

impl Instruction {
    fn line(line: String) -> Self {
        Self {
            line,
            bodies: String::new(),
        }
    }
}

fn keyword(word: &'static str) -> impl Strategy<Value = String> {
    select(vec![0u8, 1, 2]).prop_map(move |case| match case {
        0 => word.to_owned(),
        1 => word.to_lowercase(),
        _ => {
            let mut out = String::new();
            for (i, c) in word.chars().enumerate() {
                if i % 2 == 0 {
                    out.push(c);
                } else {
                    out.extend(c.to_lowercase());
                }
            }
            out
        }
    })
}

fn shell_word() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_./:-]{1,8}",
        select(vec![
            "\"a b\"",
            "'c  d'",
            "$VAR",
            "${X:-y}",
            "a\\ b",
            "&&",
            "|",
            "x=y",
            "ünï",
            "♥",
            "-la",
            "\"q\\\"q\"",
            "'it'\"s\"",
            ">",
            "2>&1",
            "#notacomment",
        ])
        .prop_map(str::to_owned),
    ]
}

fn shell_text() -> impl Strategy<Value = String> {
    prop::collection::vec(shell_word(), 1..6).prop_map(|words| words.join(" "))
}

fn json_array() -> impl Strategy<Value = String> {
    prop::collection::vec(".{0,6}", 0..4)
        .prop_map(|items| serde_json::to_string(&items).expect("strings encode"))
}

fn flags(choices: Vec<&'static str>) -> impl Strategy<Value = String> {
    prop::collection::vec(select(choices), 0..3).prop_map(|flags| {
        flags
            .into_iter()
            .map(|flag| format!("{flag} "))
            .collect::<String>()
    })
}

fn run_flags() -> impl Strategy<Value = String> {
    flags(vec![
        "--mount=type=cache,target=/x",
        "--network=none",
        "--security=insecure",
        "--mount=type=secret,id=\"my id\"",
    ])
}

fn copy_flags() -> impl Strategy<Value = String> {
    flags(vec![
        "--from=build",
        "--chown=1:1",
        "--chmod=755",
        "--link",
        "--chown=\"a b\"",
    ])
}

/// A heredoc marker and its body, e.g. (`<<-'EOF'`, `\tline\n\tEOF\n`).
fn heredoc() -> impl Strategy<Value = (String, String)> {
    (
        "[A-Z]{1,4}",
        0..6usize,
        prop::collection::vec("[a-z #$\\\\\t{}'\"`=]{0,10}", 0..4),
        select(vec!["", "\t"]),
    )
        .prop_map(|(name, form, lines, indent)| {
            let (marker, chomp) = match form {
                0 => (format!("<<{name}"), false),
                1 => (format!("<<-{name}"), true),
                2 => (format!("<<'{name}'"), false),
                3 => (format!("<<\"{name}\""), false),
                4 => (format!("3<<{name}"), false),
                _ => (format!("<< {name}"), false),
            };
            let mut body = String::new();
            for line in lines {
                body.push_str(&line);
                body.push('\n');
            }
            let terminator_indent = if chomp { indent } else { "" };
            body.push_str(&format!("{terminator_indent}{name}\n"));
            (marker, body)
        })
}

fn heredoc_instruction() -> impl Strategy<Value = Instruction> {
    (
        prop_oneof![keyword("RUN"), keyword("COPY"), keyword("ADD")],
        run_flags(),
        prop::collection::vec(heredoc(), 1..3),
        select(vec!["", "cat ", "python3 "]),
        select(vec!["", " > /out", " /dst"]),
    )
        .prop_map(|(kw, flags, docs, prefix, suffix)| {
            let lower = kw.to_lowercase();
            let (flags, prefix, suffix) = if lower == "run" {
                (flags, prefix, suffix)
            } else {
                (String::new(), "", " /dst")
            };
            let markers: Vec<&str> = docs.iter().map(|(m, _)| m.as_str()).collect();
            Instruction {
                line: format!("{kw} {flags}{prefix}{}{suffix}", markers.join(" ")),
                bodies: docs.iter().map(|(_, b)| b.as_str()).collect(),
            }
        })
}

fn key_value() -> impl Strategy<Value = String> {
    (
        "[a-zA-Z_][a-zA-Z0-9_.]{0,5}",
        prop_oneof![
            "[a-z0-9/:]{0,6}",
            // `\u{e000}` stands for the file's escape character (see `dockerfile`).
            select(vec![
                "\"a b\"",
                "'x y'",
                "a\u{e000} b",
                "\"\"",
                "\"$X\"",
                "ünï"
            ])
            .prop_map(str::to_owned),
        ],
    )
        .prop_map(|(k, v)| format!("{k}={v}"))
}

fn simple_instruction() -> impl Strategy<Value = Instruction> {
    let image = "[a-z]{1,6}(:[0-9]{1,2})?";
    prop_oneof![
        (
            keyword("FROM"),
            copy_flags(),
            image,
            prop::option::of("[a-z]{1,5}")
        )
            .prop_map(|(kw, flags, image, stage)| {
                let flags = flags.replace("--from=build", "--platform=linux/amd64");
                match stage {
                    Some(stage) => format!("{kw} {flags}{image} AS {stage}"),
                    None => format!("{kw} {flags}{image}"),
                }
            }),
        (keyword("RUN"), run_flags(), shell_text()).prop_map(|(kw, f, t)| format!("{kw} {f}{t}")),
        (
            prop_oneof![
                keyword("RUN"),
                keyword("CMD"),
                keyword("ENTRYPOINT"),
                keyword("SHELL")
            ],
            json_array()
        )
            .prop_map(|(kw, json)| format!("{kw} {json}")),
        (keyword("CMD"), shell_text()).prop_map(|(kw, t)| format!("{kw} {t}")),
        (
            prop_oneof![keyword("COPY"), keyword("ADD")],
            copy_flags(),
            prop::collection::vec("[a-z./*]{1,6}", 1..4),
        )
            .prop_map(|(kw, f, paths)| format!("{kw} {f}{} /dst/", paths.join(" "))),
        (
            prop_oneof![keyword("COPY"), keyword("VOLUME")],
            json_array()
        )
            .prop_map(|(kw, json)| format!("{kw} {json}")),
        (
            prop_oneof![keyword("ENV"), keyword("LABEL")],
            prop::collection::vec(key_value(), 1..4)
        )
            .prop_map(|(kw, pairs)| format!("{kw} {}", pairs.join(" "))),
        (
            prop_oneof![keyword("ENV"), keyword("LABEL")],
            "[a-zA-Z_]{1,5}",
            shell_text()
        )
            .prop_map(|(kw, key, value)| format!("{kw} {key} {value}")),
        (
            keyword("ARG"),
            prop::collection::vec(prop_oneof!["[a-z_]{1,5}", key_value(),], 1..3)
        )
            .prop_map(|(kw, args)| format!("{kw} {}", args.join(" "))),
        (
            keyword("EXPOSE"),
            prop::collection::vec("[0-9]{2,5}(/tcp|/udp)?", 1..4)
        )
            .prop_map(|(kw, ports)| format!("{kw} {}", ports.join(" "))),
        (
            prop_oneof![
                keyword("WORKDIR"),
                keyword("USER"),
                keyword("STOPSIGNAL"),
                keyword("MAINTAINER"),
                keyword("VOLUME")
            ],
            shell_text()
        )
            .prop_map(|(kw, t)| format!("{kw} {t}")),
        (
            keyword("HEALTHCHECK"),
            flags(vec!["--interval=5s", "--timeout=3s", "--retries=3"]),
            prop_oneof![
                Just("NONE".to_owned()),
                shell_text().prop_map(|t| format!("CMD {t}")),
                json_array().prop_map(|j| format!("CMD {j}")),
            ]
        )
            .prop_map(|(kw, f, rest)| format!("{kw} {f}{rest}")),
        ("X[A-Z]{1,5}", prop::option::of(shell_text())).prop_map(|(kw, rest)| match rest {
            Some(rest) => format!("{kw} {rest}"),
            None => kw,
        }),
    ]
    .prop_map(Instruction::line)
}

fn instruction() -> impl Strategy<Value = Instruction> {
    prop_oneof![
        6 => simple_instruction(),
        2 => heredoc_instruction(),
        1 => (keyword("ONBUILD"), prop_oneof![simple_instruction(), heredoc_instruction()])
            .prop_map(|(kw, inner)| {
                // Nested ONBUILD is not generated (BuildKit rejects it later anyway).
                if inner.line.to_lowercase().starts_with("onbuild") {
                    inner
                } else {
                    Instruction { line: format!("{kw} {}", inner.line), bodies: inner.bodies }
                }
            }),
    ]
}

/// Where and how to break an instruction line into continuation lines.
#[derive(Debug, Clone)]
struct Break {
    /// Which space to break at (modulo the number of spaces).
    at: usize,
    indent: &'static str,
    /// A comment line or an empty line inside the continuation.
    filler: &'static str,
}

fn breaks() -> impl Strategy<Value = Vec<Break>> {
    prop::collection::vec(
        (
            any::<usize>(),
            select(vec!["", "  ", "\t", "    "]),
            select(vec!["", "", "# inside\n", "    # indented comment\n", "\n"]),
        )
            .prop_map(|(at, indent, filler)| Break { at, indent, filler }),
        0..3,
    )
}

/// Breaks `line` at some of its spaces with `escape` + newline.
fn continue_lines(line: &str, escape: char, breaks: &[Break]) -> String {
    // Not after an escape character (breaking an escaped space would change the words) and
    // not before `#` (the continuation line would be a comment).
    let spaces: Vec<usize> = line
        .match_indices(' ')
        .map(|(i, _)| i)
        .filter(|&i| !line[..i].ends_with(escape) && !line[i..].trim_start().starts_with('#'))
        .collect();
    if spaces.is_empty() || breaks.is_empty() {
        return line.to_owned();
    }
    let mut chosen: Vec<(usize, &Break)> = breaks
        .iter()
        .map(|b| (spaces[b.at % spaces.len()], b))
        .collect();
    chosen.sort_by_key(|(at, _)| *at);
    chosen.dedup_by_key(|(at, _)| *at);
    let mut out = String::new();
    let mut last = 0;
    for (at, brk) in chosen {
        out.push_str(&line[last..=at]);
        out.push(escape);
        out.push('\n');
        out.push_str(brk.filler);
        out.push_str(brk.indent);
        last = at + 1;
    }
    out.push_str(&line[last..]);
    out
}

#[derive(Debug, Clone)]
struct Entry {
    instruction: Instruction,
    comments: Vec<String>,
    blank_before: bool,
    breaks: Vec<Break>,
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        instruction(),
        prop::collection::vec("[a-zA-Z =:]{1,12}", 0..3),
        any::<bool>(),
        breaks(),
    )
        .prop_map(|(instruction, comments, blank_before, breaks)| Entry {
            instruction,
            comments,
            blank_before,
            breaks,
        })
}

fn dockerfile() -> impl Strategy<Value = String> {
    (
        select(vec!['\\', '`']),
        any::<bool>(),
        prop::option::of(select(vec![
            "docker/dockerfile:1",
            "docker/dockerfile:1.7 // x",
        ])),
        prop::option::of(select(vec![
            "skip=all",
            "error=true;skip=JSONArgsRecommended",
        ])),
        prop::collection::vec(entry(), 1..10),
        any::<bool>(),
    )
        .prop_map(
            |(escape, explicit_escape, syntax, check, entries, final_newline)| {
                let mut out = String::new();
                if let Some(syntax) = syntax {
                    out.push_str(&format!("# syntax={syntax}\n"));
                }
                if escape == '`' || explicit_escape {
                    out.push_str(&format!("#escape = {escape}\n"));
                }
                if let Some(check) = check {
                    out.push_str(&format!("# check={check}\n"));
                }
                for entry in entries {
                    if entry.blank_before {
                        out.push('\n');
                    }
                    for comment in &entry.comments {
                        out.push_str(&format!("# {comment}\n"));
                    }
                    let line = entry
                        .instruction
                        .line
                        .replace('\u{e000}', &escape.to_string());
                    out.push_str(&continue_lines(&line, escape, &entry.breaks));
                    out.push('\n');
                    out.push_str(&entry.instruction.bodies);
                }
                if !final_newline && out.ends_with('\n') && !out.ends_with("\n\n") {
                    // Without a final line break the last line still counts.
                    out.pop();
                }
                out
            },
        )
}

#[test]
fn adversarial_inputs_finish() {
    // Long lines with many words, long continuation chains, deep JSON, many heredocs:
    // all linear work, no recursion that grows with the input.
    let words = format!("EXPOSE {}\n", "1 ".repeat(30_000));
    assert_eq!(
        parse(&words).unwrap().instructions[0].arg_strings().len(),
        30_000
    );
    let chain = format!("RUN a \\\n{}b\n", "  x \\\n".repeat(50_000));
    assert_eq!(parse(&chain).unwrap().instructions[0].span.end_line, 50_002);
    let deep = format!("CMD [{}\n", "[".repeat(60_000));
    assert!(parse(&deep).unwrap().instructions[0].args != Args::Empty);
    let deep_array = format!("CMD [{}{}]\n", "[".repeat(9_990), "]".repeat(9_990));
    assert!(
        parse(&deep_array).is_err(),
        "valid nested JSON that is not strings"
    );
    let many = format!("COPY {} /d\n{}", "<<A ".repeat(5_000), "A\n".repeat(5_000));
    assert_eq!(parse(&many).unwrap().instructions[0].heredocs.len(), 5_000);
    let onbuild = format!("{}RUN x\n", "ONBUILD ".repeat(8_000));
    assert!(parse(&onbuild).is_err());
}
