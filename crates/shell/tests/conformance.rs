//! BuildKit conformance for the shell lexer: `buildkit-shell/envVarTest`,
//! `buildkit-shell/wordsTest` and every section of `restated/buildkit-shell/lexer-extra.json`
//! from the shared conformance data (its README, sections 2 and 3, describes the formats and
//! how upstream runs them; this harness follows that procedure).
//!
//! The data lives outside the repository: `$HOIST_CONFORMANCE_DIR`, or else
//! `../shared/conformance` next to the workspace. Without it the test says so loudly on
//! stderr and passes, so that a checkout without the data still builds and tests.
#![allow(
    clippy::print_stderr,
    reason = "the harness reports counts and skips on stderr"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hoist_shell::{Env, Lexer};
use serde_json::Value;

/// Cases known to differ from BuildKit, skipped by name: `(suite, input, reason)`. Each one
/// is also listed, with the same reason, in the "Shell-word expansion" section of
/// `docs/conformance.md`. Empty: every case passes.
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[];

fn data_dir() -> PathBuf {
    match std::env::var_os("HOIST_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    }
}

/// Counts and failures of one suite.
#[derive(Default)]
struct Suite {
    name: &'static str,
    passed: usize,
    total: usize,
    skipped: Vec<String>,
    failures: Vec<String>,
}

impl Suite {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            ..Self::default()
        }
    }

    /// Records one case: `Ok` when it passes, `Err(why)` when it does not.
    fn check(&mut self, input: &str, outcome: Result<(), String>) {
        if let Some((_, _, reason)) = KNOWN_DIFFERENCES
            .iter()
            .find(|(suite, case, _)| *suite == self.name && *case == input)
        {
            self.skipped.push(format!("{input:?}: {reason}"));
            return;
        }
        self.total += 1;
        match outcome {
            Ok(()) => self.passed += 1,
            Err(why) => self
                .failures
                .push(format!("{}: {input:?}: {why}", self.name)),
        }
    }

    /// A malformed data file is a failure of the suite, not a skipped case.
    fn format_error(&mut self, why: String) {
        self.failures
            .push(format!("{}: data format: {why}", self.name));
    }
}

fn read(path: &Path) -> String {
    let bytes =
        std::fs::read(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    String::from_utf8(bytes).unwrap_or_else(|err| panic!("{} is not UTF-8: {err}", path.display()))
}

/// Expected text vs. the outcome of `process_word`, with `error` meaning "must fail".
fn compare_word(
    expected: &str,
    actual: Result<String, hoist_shell::ShellError>,
) -> Result<(), String> {
    match (expected, actual) {
        ("error", Err(_)) => Ok(()),
        ("error", Ok(value)) => Err(format!("expected an error, got {value:?}")),
        (expected, Ok(value)) if value == expected => Ok(()),
        (expected, Ok(value)) => Err(format!("expected {expected:?}, got {value:?}")),
        (expected, Err(err)) => Err(format!("expected {expected:?}, got error: {err}")),
    }
}

/// `envVarTest`: `platform | input | expected`, one word each, with a fixed environment.
fn env_var_test(dir: &Path, suite: &mut Suite) -> usize {
    let env_list = ["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="];
    let env_map: BTreeMap<String, String> = env_list
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let lexer = Lexer::new('\\');
    let mut windows_only = 0;
    for (index, line) in read(&dir.join("buildkit-shell/envVarTest"))
        .lines()
        .enumerate()
    {
        if line.starts_with('#') {
            continue;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [platform, input, expected] = fields[..] else {
            suite.format_error(format!("line {}: expected 3 fields: {line:?}", index + 1));
            continue;
        };
        match platform {
            "A" | "U" => {}
            // Windows compares names case-insensitively; hoist runs Linux builds only.
            "W" => {
                windows_only += 1;
                continue;
            }
            other => {
                suite.format_error(format!("line {}: unknown platform {other:?}", index + 1));
                continue;
            }
        }
        // As upstream does, check both environment shapes (list and map).
        let from_list = lexer.process_word(input, &env_list[..]).map(|w| w.value);
        let from_map = lexer.process_word(input, &env_map).map(|w| w.value);
        let outcome = compare_word(expected, from_list).and_then(|()| {
            compare_word(expected, from_map).map_err(|why| format!("with a map env: {why}"))
        });
        suite.check(input, outcome);
    }
    windows_only
}

/// `wordsTest`: `input | word,word,…` with an environment that grows at each `ENV` line.
fn words_test(dir: &Path, suite: &mut Suite) {
    let lexer = Lexer::new('\\');
    let mut env: Vec<String> = Vec::new();
    for (index, line) in read(&dir.join("buildkit-shell/wordsTest"))
        .lines()
        .enumerate()
    {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            // Trailing spaces of the value are significant.
            env.push(rest.trim_start_matches(' ').to_owned());
            continue;
        }
        let [input, expected] = line.split('|').collect::<Vec<_>>()[..] else {
            suite.format_error(format!(
                "line {}: expected exactly one '|': {line:?}",
                index + 1
            ));
            continue;
        };
        let input = input.trim();
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        let actual = lexer
            .process_words(input, &env)
            .unwrap_or_else(|_| vec!["error".to_owned()]);
        let outcome = if actual == expected {
            Ok(())
        } else {
            Err(format!("expected {expected:?}, got {actual:?}"))
        };
        suite.check(input, outcome);
    }
}

fn str_field<'a>(case: &'a Value, key: &str) -> Option<&'a str> {
    case.get(key).and_then(Value::as_str)
}

fn env_field(case: &Value) -> Result<BTreeMap<String, String>, String> {
    let Some(object) = case.get("env").and_then(Value::as_object) else {
        return Err("no `env` object".to_owned());
    };
    object
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(v) => Ok((k.clone(), v.to_owned())),
            None => Err(format!("env value of {k} is not a string")),
        })
        .collect()
}

fn name_set(case: &Value, key: &str) -> Option<Vec<String>> {
    let list = case.get(key)?.as_array()?;
    let mut names: Vec<String> = list
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    names.sort();
    Some(names)
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    names.sort();
    names
}

/// `lexer-extra.json`, every section.
fn lexer_extra(dir: &Path, suite: &mut Suite) {
    let path = dir.join("restated/buildkit-shell/lexer-extra.json");
    let json: Value = serde_json::from_str(&read(&path))
        .unwrap_or_else(|err| panic!("parsing {}: {err}", path.display()));
    let lexer = Lexer::new('\\');
    let section = |name: &str| {
        json.get(name)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };

    for case in section("process_with_matches") {
        let (Some(input), Ok(env)) = (str_field(&case, "input"), env_field(&case)) else {
            suite.format_error(format!("process_with_matches: bad case {case}"));
            continue;
        };
        let result = lexer.process_word(input, &env);
        let outcome = if case.get("error").and_then(Value::as_bool) == Some(true) {
            match result {
                Err(_) => Ok(()),
                Ok(word) => Err(format!("expected an error, got {:?}", word.value)),
            }
        } else {
            let expected = str_field(&case, "expected").unwrap_or_default();
            match result {
                Err(err) => Err(format!("expected {expected:?}, got error: {err}")),
                Ok(word) if word.value != expected => {
                    Err(format!("expected {expected:?}, got {:?}", word.value))
                }
                Ok(word) => {
                    let mut why = Vec::new();
                    for (key, actual) in
                        [("matches", &word.matched), ("unmatched", &word.unmatched)]
                    {
                        if let Some(expected) = name_set(&case, key) {
                            let actual = sorted(actual);
                            if actual != expected {
                                why.push(format!("{key}: expected {expected:?}, got {actual:?}"));
                            }
                        }
                    }
                    if why.is_empty() {
                        Ok(())
                    } else {
                        Err(why.join("; "))
                    }
                }
            }
        };
        suite.check(input, outcome);
    }

    for case in section("mandatory_env_vars") {
        let (Some(input), Ok(env)) = (str_field(&case, "input"), env_field(&case)) else {
            suite.format_error(format!("mandatory_env_vars: bad case {case}"));
            continue;
        };
        let result = lexer.process_word(input, &env).map(|w| w.value);
        let outcome = match (str_field(&case, "error_contains"), result) {
            (Some(part), Err(err)) if err.to_string().contains(part) => Ok(()),
            (Some(part), Err(err)) => {
                Err(format!("expected an error containing {part:?}, got: {err}"))
            }
            (Some(part), Ok(value)) => Err(format!(
                "expected an error containing {part:?}, got {value:?}"
            )),
            (None, result) => {
                compare_word(str_field(&case, "expected").unwrap_or_default(), result)
            }
        };
        suite.check(&format!("{input} with {env:?}"), outcome);
    }

    for case in section("platform_filename") {
        let (Some(input), Ok(env)) = (str_field(&case, "input"), env_field(&case)) else {
            suite.format_error(format!("platform_filename: bad case {case}"));
            continue;
        };
        let expected = str_field(&case, "expected").unwrap_or_default();
        let result = lexer.process_word(input, &env).map(|w| w.value);
        suite.check(
            &format!("{input} with {env:?}"),
            compare_word(expected, result),
        );
    }

    let lookups = json
        .pointer("/env_list_lookup/cases")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for case in lookups {
        let list: Vec<&str> = case
            .get("env_list")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let (Some(name), Some(expected)) = (str_field(&case, "get"), str_field(&case, "expected"))
        else {
            suite.format_error(format!("env_list_lookup: bad case {case}"));
            continue;
        };
        // The upstream test reads unset and set-but-empty alike, as the empty string.
        let actual = list.lookup(name).unwrap_or_default();
        let outcome = if actual == expected {
            Ok(())
        } else {
            Err(format!("expected {expected:?}, got {actual:?}"))
        };
        suite.check(&format!("{name} in {list:?}"), outcome);
    }
}

#[test]
fn buildkit_shell_conformance() {
    let dir = data_dir();
    if !dir.join("buildkit-shell").is_dir() {
        eprintln!(
            "SKIPPED: conformance data not found at {} (set HOIST_CONFORMANCE_DIR)",
            dir.display()
        );
        return;
    }
    let mut env_var = Suite::new("envVarTest");
    let windows_only = env_var_test(&dir, &mut env_var);
    let mut words = Suite::new("wordsTest");
    words_test(&dir, &mut words);
    let mut extra = Suite::new("lexer-extra");
    lexer_extra(&dir, &mut extra);

    let suites = [env_var, words, extra];
    let counts: Vec<String> = suites
        .iter()
        .map(|s| format!("{} {}/{}", s.name, s.passed, s.total))
        .collect();
    eprintln!("shell conformance: {}", counts.join(", "));
    eprintln!("  envVarTest: {windows_only} Windows-only (W) lines not run on Linux");
    for suite in &suites {
        for skipped in &suite.skipped {
            eprintln!("  skipped {}: {skipped}", suite.name);
        }
    }
    let failures: Vec<&String> = suites.iter().flat_map(|s| &s.failures).collect();
    assert!(
        failures.is_empty(),
        "{} failing conformance cases:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|f| format!("  {f}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
