//! BuildKit parser conformance: `buildkit-parser/` and `restated/buildkit-parser/` from the
//! shared conformance data (see its README, sections 1 and 3).
//!
//! Data location: `$HOIST_CONFORMANCE_DIR`, else `<manifest>/../../../shared/conformance`.
//! Every case must pass unless it is listed in `KNOWN_DIFFERENCES` (and, with the reason,
//! in docs/conformance.md, "Parser").
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};

use hoist_dockerfile::{
    Args, DirectiveKind, ParseErrorKind, chomp_heredoc_content, detect_syntax, find_directive,
    heredocs_in_line, parse, parse_bytes, parse_directives, parse_heredoc_word, parse_words,
};
use serde_json::Value;

/// Cases skipped on purpose, by name (each is explained in docs/conformance.md).
const KNOWN_DIFFERENCES: &[&str] = &[];

fn data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("HOIST_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    };
    if dir.join("buildkit-parser").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: conformance data not found at {} (set HOIST_CONFORMANCE_DIR)",
            dir.display()
        );
        None
    }
}

/// Collects results per group.
#[derive(Default)]
struct Tally {
    groups: Vec<(String, usize, usize)>,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, group: &str, case: &str, result: Result<(), String>) {
        if KNOWN_DIFFERENCES.contains(&case) {
            return;
        }
        let index = match self.groups.iter().position(|(g, _, _)| g == group) {
            Some(i) => i,
            None => {
                self.groups.push((group.to_owned(), 0, 0));
                self.groups.len() - 1
            }
        };
        self.groups[index].2 += 1;
        match result {
            Ok(()) => self.groups[index].1 += 1,
            Err(why) => self.failures.push(format!("{group} / {case}: {why}")),
        }
    }

    fn finish(self) {
        let summary: Vec<String> = self
            .groups
            .iter()
            .map(|(group, passed, total)| format!("{passed}/{total} {group}"))
            .collect();
        eprintln!("parser conformance: {}", summary.join(", "));
        assert!(
            self.failures.is_empty(),
            "{} failing case(s):\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn expect_eq<T: PartialEq + std::fmt::Debug>(got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, want {want:?}"))
    }
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .expect("directory has a name")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn buildkit_parser_conformance() {
    let Some(dir) = data_dir() else { return };
    let mut tally = Tally::default();

    let testfiles = sorted_dirs(&dir.join("buildkit-parser/testfiles"));
    assert_eq!(testfiles.len(), 33, "expected the 33 upstream testfiles");
    for case in &testfiles {
        let name = name_of(case);
        let source = read(&case.join("Dockerfile"));
        let expected = String::from_utf8(read(&case.join("result"))).expect("result is UTF-8");
        let result = match parse_bytes(&source) {
            Ok(file) => expect_eq(file.dump() + "\n", expected),
            Err(e) => Err(format!("parse failed: {e}")),
        };
        tally.check("testfiles", &name, result);
    }

    let negatives = sorted_dirs(&dir.join("buildkit-parser/testfiles-negative"));
    assert_eq!(
        negatives.len(),
        4,
        "expected the 4 upstream negative testfiles"
    );
    for case in &negatives {
        let name = name_of(case);
        // The reasons given in the conformance README, section 1.1.
        let want = match name.as_str() {
            "empty_dockerfile" | "only_comments" => "file with no instructions",
            "env_no_value" => "ENV must have two arguments",
            "shykes-nested-json" => {
                "when using JSON array syntax, arrays must be comprised of strings only"
            }
            other => panic!("unexpected negative case {other}"),
        };
        let result = match parse_bytes(&read(&case.join("Dockerfile"))) {
            Ok(file) => Err(format!("parsed, dump {}", file.dump())),
            Err(e) => expect_eq(e.to_string().as_str(), want),
        };
        tally.check("negative", &name, result);
    }

    let extra_path = dir.join("restated/buildkit-parser/parser-extra.json");
    let extra: Value = serde_json::from_slice(&read(&extra_path)).expect("parser-extra.json");
    run_parser_extra(&dir, &extra, &mut tally);

    tally.finish();
}

fn text(value: &Value) -> &str {
    value.as_str().expect("a JSON string")
}

fn run_parser_extra(dir: &Path, extra: &Value, tally: &mut Tally) {
    const GROUP: &str = "parser-extra";

    for item in extra["heredoc_extraction"].as_array().expect("list") {
        let id = text(&item["id"]);
        let file = parse(text(&item["dockerfile"])).expect("heredoc_extraction parses");
        let expected = item["children_heredocs"].as_array().expect("list");
        let want_count = item["expected_child_count"].as_u64().expect("count") as usize;
        assert_eq!(file.instructions.len(), want_count, "{id}: child count");
        for (i, want) in expected.iter().enumerate() {
            let got: Vec<Value> = file.instructions[i]
                .heredocs
                .iter()
                .map(|h| {
                    serde_json::json!({
                        "name": h.name, "content": h.content, "expand": h.expand,
                        "chomp": h.chomp, "file_descriptor": h.file_descriptor,
                    })
                })
                .collect();
            let want: Vec<Value> = want.as_array().cloned().unwrap_or_default();
            tally.check(GROUP, &format!("{id}[{i}]"), expect_eq(got, want));
        }
    }

    let words = &extra["heredoc_word"];
    for word in words["valid_name_EOF"].as_array().expect("list") {
        let result = match parse_heredoc_word(text(word)) {
            Ok(Some(marker)) => expect_eq(marker.name.as_str(), "EOF"),
            other => Err(format!("{other:?}")),
        };
        tally.check(GROUP, &format!("heredoc_word valid {word}"), result);
    }
    for word in words["error"].as_array().expect("list") {
        let result = match parse_heredoc_word(text(word)) {
            Err(_) => Ok(()),
            other => Err(format!("{other:?}")),
        };
        tally.check(GROUP, &format!("heredoc_word error {word}"), result);
    }
    for word in words["not_a_heredoc"].as_array().expect("list") {
        let result = expect_eq(parse_heredoc_word(text(word)), Ok(None));
        tally.check(GROUP, &format!("heredoc_word not {word}"), result);
    }

    for case in extra["heredocs_from_line"].as_array().expect("list") {
        let line = text(&case["line"]);
        let want: Vec<&str> = case["names"]
            .as_array()
            .expect("list")
            .iter()
            .map(text)
            .collect();
        let result = match heredocs_in_line(line) {
            Ok(markers) => expect_eq(
                markers.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
                want,
            ),
            Err(e) => Err(e.to_string()),
        };
        tally.check(GROUP, &format!("heredocs_from_line {line:?}"), result);
    }

    for case in extra["heredoc_chomp"].as_array().expect("list") {
        let result = expect_eq(
            chomp_heredoc_content(text(&case["input"])).as_str(),
            text(&case["expected"]),
        );
        tally.check(GROUP, "heredoc_chomp", result);
    }

    for case in extra["parse_words"]["cases"].as_array().expect("list") {
        let input = text(&case["input"]);
        let want: Vec<&str> = case["expected"]
            .as_array()
            .expect("list")
            .iter()
            .map(text)
            .collect();
        tally.check(
            GROUP,
            &format!("parse_words {input:?}"),
            expect_eq(parse_words(input, '\\'), want),
        );
    }

    let json = &extra["json_arrays"];
    for case in json["valid"].as_array().expect("list") {
        let input = text(&case["input"]);
        let want: Vec<&str> = case["expected"]
            .as_array()
            .expect("list")
            .iter()
            .map(text)
            .collect();
        let result = match parse(&format!("CMD {input}")) {
            Ok(file) => match &file.instructions[0].args {
                Args::Json(items) => expect_eq(
                    items.iter().map(|a| a.value.as_str()).collect::<Vec<_>>(),
                    want,
                ),
                Args::Empty if want.is_empty() => {
                    Err("an empty JSON array must still be JSON form".to_owned())
                }
                other => Err(format!("not JSON form: {other:?}")),
            },
            Err(e) => Err(e.to_string()),
        };
        tally.check(GROUP, &format!("json valid {input:?}"), result);
    }
    for input in json["not_string_array"].as_array().expect("list") {
        let input = text(input);
        let result = match parse(&format!("CMD {input}")) {
            Err(e) if e.kind == ParseErrorKind::JsonNotStringArray => expect_eq(
                e.to_string().as_str(),
                "when using JSON array syntax, arrays must be comprised of strings only",
            ),
            other => Err(format!("{other:?}")),
        };
        tally.check(GROUP, &format!("json not_string_array {input:?}"), result);
    }

    for case in extra["name_val"].as_array().expect("list") {
        let source = format!("{} {}", text(&case["instruction"]), text(&case["args"]));
        let result = match (parse(&source), case.get("error")) {
            (Ok(file), None) => {
                let want: Vec<&str> = case["expected_dump_tail"]
                    .as_array()
                    .expect("list")
                    .iter()
                    .map(text)
                    .collect();
                expect_eq(file.instructions[0].arg_strings(), want)
            }
            (Err(e), Some(want)) => expect_eq(e.to_string().as_str(), text(want)),
            (got, want) => Err(format!("got {got:?}, want error {want:?}")),
        };
        tally.check(GROUP, &format!("name_val {source:?}"), result);
    }

    let lines = &extra["line_numbers"];
    let source = read(&dir.join(text(&lines["file"])));
    let result = match parse_bytes(&source) {
        Ok(file) => {
            let got: Vec<(u32, u32)> = file
                .instructions
                .iter()
                .map(|n| (n.span.start_line, n.span.end_line))
                .collect();
            let want: Vec<(u32, u32)> = lines["children"]
                .as_array()
                .expect("list")
                .iter()
                .map(|pair| {
                    (
                        pair[0].as_u64().expect("n") as u32,
                        pair[1].as_u64().expect("n") as u32,
                    )
                })
                .collect();
            let root = (
                lines["root"]["start_line"].as_u64().expect("n") as u32,
                lines["root"]["end_line"].as_u64().expect("n") as u32,
            );
            expect_eq((file.line_range(), got), (root, want))
        }
        Err(e) => Err(e.to_string()),
    };
    tally.check(GROUP, "line_numbers", result);

    let warnings = &extra["empty_continuation_warnings"];
    let result = match parse(text(&warnings["dockerfile"])) {
        Ok(file) => {
            let count = warnings["expected_warning_count"].as_u64().expect("n") as usize;
            let mut problems = Vec::new();
            if file.warnings.len() != count {
                problems.push(format!("{} warnings, want {count}", file.warnings.len()));
            }
            for (warning, needles) in file
                .warnings
                .iter()
                .zip(warnings["warnings_contain"].as_array().expect("list"))
            {
                for needle in needles.as_array().expect("list") {
                    if !warning.message.contains(text(needle)) {
                        problems.push(format!("{:?} lacks {needle}", warning.message));
                    }
                }
                if !warning
                    .kind
                    .detail()
                    .contains(text(&warnings["detail_contains"]))
                {
                    problems.push(format!("detail {:?}", warning.kind.detail()));
                }
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            }
        }
        Err(e) => Err(e.to_string()),
    };
    tally.check(GROUP, "empty_continuation_warnings", result);

    let too_long = &extra["line_too_long"];
    let template = text(&too_long["dockerfile_template"]);
    let source = template.replace("<65536 x 'a'>", &"a".repeat(65_536));
    assert_ne!(source, template, "line_too_long template placeholder");
    let result = match parse(&source) {
        Err(e) => expect_eq(e.to_string().as_str(), text(&too_long["error"])),
        Ok(_) => Err("parsed".to_owned()),
    };
    tally.check(GROUP, "line_too_long", result);

    for case in extra["directives"].as_array().expect("list") {
        let id = text(&case["id"]);
        let want: Vec<(String, String)> = case["expected"]
            .as_array()
            .expect("list")
            .iter()
            .map(|d| (text(&d["name"]).to_owned(), text(&d["value"]).to_owned()))
            .collect();
        let result = match parse_directives(text(&case["text"]).as_bytes()) {
            Ok(found) => expect_eq(
                found
                    .iter()
                    .map(|d| (d.kind.as_str().to_owned(), d.value.clone()))
                    .collect::<Vec<_>>(),
                want,
            ),
            Err(e) => Err(e.to_string()),
        };
        tally.check(GROUP, id, result);
    }

    for (i, case) in extra["detect_syntax"]
        .as_array()
        .expect("list")
        .iter()
        .enumerate()
    {
        let mut source = hex_prefix(case);
        source.extend_from_slice(text(&case["text"]).as_bytes());
        let result = check_detected(detect_syntax(&source), case, "ref");
        tally.check(GROUP, &format!("detect_syntax[{i}]"), result);
    }

    for (i, case) in extra["parse_directive_check"]
        .as_array()
        .expect("list")
        .iter()
        .enumerate()
    {
        let found = find_directive(DirectiveKind::Check, text(&case["text"]).as_bytes());
        let result = check_detected(found, case, "value");
        tally.check(GROUP, &format!("parse_directive_check[{i}]"), result);
    }
}

fn hex_prefix(case: &Value) -> Vec<u8> {
    let Some(hex) = case.get("text_hex_prefix") else {
        return Vec::new();
    };
    let hex = text(hex);
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex byte"))
        .collect()
}

fn check_detected(
    found: Option<hoist_dockerfile::DetectedDirective>,
    case: &Value,
    value_key: &str,
) -> Result<(), String> {
    let want_found = case["found"].as_bool().expect("found");
    match found {
        None if !want_found => Ok(()),
        None => Err("not found".to_owned()),
        Some(d) if !want_found => Err(format!("found {d:?}")),
        Some(d) => {
            let mut problems = Vec::new();
            if let Some(want) = case.get(value_key)
                && d.value != text(want)
            {
                problems.push(format!("value {:?}, want {want}", d.value));
            }
            if let Some(want) = case.get("cmdline")
                && d.cmdline != text(want)
            {
                problems.push(format!("cmdline {:?}, want {want}", d.cmdline));
            }
            if let Some(want) = case.get("line")
                && u64::from(d.line) != want.as_u64().expect("line")
            {
                problems.push(format!("line {}, want {want}", d.line));
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            }
        }
    }
}
