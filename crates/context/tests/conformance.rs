//! Conformance with upstream's own test cases (see `shared/conformance/README.md`, section
//! 3): moby/patternmatcher (`patternmatcher.json`, `ignorefile.json`) and fsutil's filtered
//! walk (`walk-filter.json`), the latter on real trees of files, directories and symlinks.
//!
//! Data is read from `$HOIST_CONFORMANCE_DIR`, else `../../../shared/conformance` from this
//! crate. Without it the test says SKIPPED on stderr and passes.
//!
//! Walk cases with `chmod_0000` need a user that permissions apply to. When run as root,
//! the test re-runs itself as `nobody` (uid/gid 65534) for just that case, selected with
//! `HOIST_CONTEXT_WALK_CASE`, and checks its exit status.

#![allow(
    clippy::print_stderr,
    reason = "the harness reports counts and skips on stderr"
)]

use std::error::Error as _;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use hoist_context::{
    ContextError, ContextFilter, ContextWalker, EntryKind, MatchInfo, MatchKind, PatternError,
    PatternMatcher, WalkOptions, legacy_matches, read_ignore_file,
};
use serde_json::Value;

/// Selects a single walk case and runs it in this process (the `nobody` child).
const CHILD_CASE_ENV: &str = "HOIST_CONTEXT_WALK_CASE";
const NOBODY: u32 = 65534;

fn data_dir() -> PathBuf {
    match std::env::var_os("HOIST_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    }
}

fn load(dir: &Path, rel: &str) -> Value {
    let path = dir.join(rel);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().expect("string list").to_string())
            .collect(),
        other => panic!("expected a list of strings, got {other}"),
    }
}

fn field<'a>(case: &'a Value, key: &str) -> &'a Value {
    case.get(key).unwrap_or(&Value::Null)
}

/// Per-section tally and the failures, named by case.
#[derive(Default)]
struct Section {
    passed: usize,
    total: usize,
    failures: Vec<String>,
}

impl Section {
    fn record(&mut self, id: &str, result: Result<(), String>) {
        self.total += 1;
        match result {
            Ok(()) => self.passed += 1,
            Err(why) => self.failures.push(format!("{id}: {why}")),
        }
    }
}

#[test]
fn conformance() {
    let dir = data_dir();
    if let Some(id) = std::env::var_os(CHILD_CASE_ENV) {
        let id = id.to_string_lossy().into_owned();
        let data = load(&dir, "restated/fsutil/walk-filter.json");
        let case = walk_cases(&data)
            .find(|c| c["id"] == id.as_str())
            .unwrap_or_else(|| panic!("no walk case {id}"));
        if let Err(why) = run_walk_case(case) {
            panic!("{id}: {why}");
        }
        return;
    }
    if !dir.join("restated").is_dir() {
        eprintln!(
            "SKIPPED: conformance data not found at {} (set HOIST_CONFORMANCE_DIR)",
            dir.display()
        );
        return;
    }
    let patternmatcher =
        check_patternmatcher(&load(&dir, "restated/patternmatcher/patternmatcher.json"));
    let ignorefile = check_ignorefile(&load(&dir, "restated/patternmatcher/ignorefile.json"));
    let walk = check_walk_filter(&dir, &load(&dir, "restated/fsutil/walk-filter.json"));

    eprintln!(
        "context conformance: patternmatcher {}/{}, ignorefile {}/{}, walk-filter {}/{}",
        patternmatcher.passed,
        patternmatcher.total,
        ignorefile.passed,
        ignorefile.total,
        walk.passed,
        walk.total
    );
    let failures: Vec<String> = [patternmatcher, ignorefile, walk]
        .into_iter()
        .flat_map(|s| s.failures)
        .collect();
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// patternmatcher.json

fn check_patternmatcher(data: &Value) -> Section {
    let mut section = Section::default();
    for case in data["matches"].as_array().expect("matches") {
        let id = case["id"].as_str().expect("id");
        section.record(id, check_match_case(case));
    }
    for case in data["legacy_matches_fn"]
        .as_array()
        .expect("legacy_matches_fn")
    {
        let id = case["id"].as_str().expect("id");
        let patterns = strings(&case["patterns"]);
        let path = case["path"].as_str().expect("path");
        section.record(id, expect_match(legacy_matches(path, &patterns), case));
    }
    for case in data["filepath_match"].as_array().expect("filepath_match") {
        // Upstream checks these through the package-level Matches helper.
        let id = case["id"].as_str().expect("id");
        let pattern = case["pattern"].as_str().expect("pattern");
        let path = case["path"].as_str().expect("path");
        section.record(id, expect_match(legacy_matches(path, [pattern]), case));
    }
    for case in data["new_patterns"].as_array().expect("new_patterns") {
        let id = case["id"].as_str().expect("id");
        section.record(id, check_new_patterns(case));
    }
    for case in data["compile_classification"]
        .as_array()
        .expect("compile_classification")
    {
        let pattern = case["pattern"].as_str().expect("pattern");
        section.record(&format!("compile {pattern:?}"), check_classification(case));
    }
    for case in data["repeated_bad_pattern"]
        .as_array()
        .expect("repeated_bad_pattern")
    {
        let id = case["id"].as_str().expect("id");
        section.record(id, check_repeated_bad_pattern(case));
    }
    section
}

/// The expectation holds for the parent-aware matcher and for the incremental API, both
/// with parent results passed down and without any.
fn check_match_case(case: &Value) -> Result<(), String> {
    let patterns = strings(&case["patterns"]);
    let path = case["path"].as_str().expect("path");
    let want = case["match"].as_bool().expect("match");
    let matcher = PatternMatcher::new(&patterns).map_err(|e| format!("new: {e}"))?;

    let direct = matcher
        .matches_or_parent_matches(path)
        .map_err(|e| e.to_string())?;
    if direct != want {
        return Err(format!(
            "matches_or_parent_matches({path:?}) = {direct}, want {want}"
        ));
    }

    // As upstream's test: feed each prefix of filepath.Dir(path) in turn.
    let mut info = MatchInfo::default();
    let parent = go_dir(path);
    if parent != "." {
        let parts: Vec<&str> = parent.split('/').collect();
        for i in 0..parts.len() {
            let prefix = parts[..=i].join("/");
            info = matcher
                .matches_using_parent_results(&prefix, &info)
                .map_err(|e| format!("incremental {prefix:?}: {e}"))?
                .1;
        }
    }
    let (incremental, _) = matcher
        .matches_using_parent_results(path, &info)
        .map_err(|e| e.to_string())?;
    if incremental != want {
        return Err(format!(
            "matches_using_parent_results({path:?}) = {incremental}, want {want}"
        ));
    }
    let (no_context, _) = matcher
        .matches_using_parent_results(path, &MatchInfo::default())
        .map_err(|e| e.to_string())?;
    if no_context != want {
        return Err(format!(
            "matches_using_parent_results without parents = {no_context}"
        ));
    }
    Ok(())
}

/// `filepath.Dir` for the test's own bookkeeping (the paths here have no `.`/`..`).
fn go_dir(path: &str) -> String {
    match path.rfind('/') {
        None => ".".to_string(),
        Some(i) => {
            let head = path[..=i].trim_end_matches('/');
            if head.is_empty() {
                "/".to_string()
            } else {
                head.to_string()
            }
        }
    }
}

fn expect_match(result: Result<bool, PatternError>, case: &Value) -> Result<(), String> {
    let want = case["match"].as_bool().expect("match");
    match (field(case, "error").as_str(), result) {
        (None, Ok(got)) if got == want => Ok(()),
        (None, Ok(got)) => Err(format!("got {got}, want {want}")),
        (None, Err(e)) => Err(format!("unexpected error: {e}")),
        (Some("bad_pattern"), Err(PatternError::BadPattern { .. })) => Ok(()),
        (Some("illegal_exclusion"), Err(PatternError::IllegalExclusion)) => Ok(()),
        (Some(kind), other) => Err(format!("want error {kind}, got {other:?}")),
    }
}

fn check_new_patterns(case: &Value) -> Result<(), String> {
    let patterns = strings(&case["patterns"]);
    let result = PatternMatcher::new(&patterns);
    if let Some(want) = field(case, "error").as_str() {
        return match result {
            Err(e) if e.to_string() == want => Ok(()),
            other => Err(format!("want error {want:?}, got {other:?}")),
        };
    }
    let matcher = result.map_err(|e| format!("unexpected error: {e}"))?;
    if let Some(count) = field(case, "pattern_count").as_u64() {
        let got = matcher.patterns().len() as u64;
        if got != count {
            return Err(format!("{got} patterns, want {count}"));
        }
    }
    if let Some(want) = field(case, "has_exclusions").as_bool()
        && matcher.has_exclusions() != want
    {
        return Err(format!(
            "has_exclusions = {}, want {want}",
            matcher.has_exclusions()
        ));
    }
    Ok(())
}

fn check_classification(case: &Value) -> Result<(), String> {
    let pattern = case["pattern"].as_str().expect("pattern");
    let matcher = PatternMatcher::new([pattern]).map_err(|e| e.to_string())?;
    let compiled = &matcher.patterns()[0];
    let want_kind = match case["match_type"].as_str().expect("match_type") {
        "exactMatch" => MatchKind::Exact,
        "prefixMatch" => MatchKind::Prefix,
        "suffixMatch" => MatchKind::Suffix,
        "regexpMatch" => MatchKind::Regex,
        other => return Err(format!("unknown match type {other}")),
    };
    if compiled.match_kind() != Some(want_kind) {
        return Err(format!(
            "kind {:?}, want {want_kind:?}",
            compiled.match_kind()
        ));
    }
    let want_regex = field(case, "regexp_slash").as_str();
    if compiled.go_regex() != want_regex {
        return Err(format!(
            "regexp {:?}, want {want_regex:?}",
            compiled.go_regex()
        ));
    }
    Ok(())
}

fn check_repeated_bad_pattern(case: &Value) -> Result<(), String> {
    let patterns = strings(&case["patterns"]);
    let matcher = PatternMatcher::new(&patterns).map_err(|e| format!("new: {e}"))?;
    let path = case["path"].as_str().expect("path");
    for call in 0..case["calls"].as_u64().expect("calls") {
        match matcher.matches_or_parent_matches(path) {
            Err(PatternError::BadPattern { .. }) => {}
            other => return Err(format!("call {call}: want bad pattern, got {other:?}")),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// ignorefile.json

fn check_ignorefile(data: &Value) -> Section {
    let mut section = Section::default();
    for case in data["read_all"].as_array().expect("read_all") {
        let id = case["id"].as_str().expect("id");
        // A null reader reads as nothing.
        let content = field(case, "content").as_str().unwrap_or("");
        let want = strings(&case["expected"]);
        let got = read_ignore_file(content);
        let result = if got == want {
            Ok(())
        } else {
            Err(format!("got {got:?}, want {want:?}"))
        };
        section.record(id, result);
    }
    section
}

// ---------------------------------------------------------------------------------------
// walk-filter.json

fn walk_cases(data: &Value) -> impl Iterator<Item = &Value> {
    data["cases"].as_array().expect("cases").iter()
}

fn check_walk_filter(dir: &Path, data: &Value) -> Section {
    let mut section = Section::default();
    let as_root = rustix::process::geteuid().is_root();
    for case in walk_cases(data) {
        let id = case["id"].as_str().expect("id");
        let needs_unprivileged = !strings(field(case, "chmod_0000")).is_empty();
        let result = if needs_unprivileged && as_root {
            run_as_nobody(dir, id)
        } else {
            run_walk_case(case)
        };
        section.record(id, result);
    }
    section
}

/// Re-runs this test binary as `nobody` for one case; root ignores mode 0000.
fn run_as_nobody(dir: &Path, id: &str) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = fs::canonicalize(dir).map_err(|e| format!("canonicalize {}: {e}", dir.display()))?;
    let output = Command::new(&exe)
        .args(["conformance", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_CASE_ENV, id)
        .env("HOIST_CONFORMANCE_DIR", &dir)
        .env("TMPDIR", std::env::temp_dir())
        .current_dir("/")
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .map_err(|e| format!("run {} as nobody: {e}", exe.display()))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "as nobody: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// Creates the case's tree in a fresh directory, walks it, and compares.
fn run_walk_case(case: &Value) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let root = tmp.path().join("ctx");
    fs::create_dir(&root).map_err(|e| format!("mkdir: {e}"))?;
    build_tree(&root, &case["tree"])?;
    let locked = strings(field(case, "chmod_0000"));
    for path in &locked {
        set_mode(&root.join(path), 0o000)?;
    }
    let result = walk_and_compare(&root, case);
    // Unlock so that the temporary directory can be removed.
    for path in &locked {
        set_mode(&root.join(path), 0o700)?;
    }
    result
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {:o} {}: {e}", mode, path.display()))
}

fn build_tree(root: &Path, tree: &Value) -> Result<(), String> {
    for item in tree.as_array().expect("tree") {
        let path = root.join(item["path"].as_str().expect("path"));
        let made = match item["kind"].as_str().expect("kind") {
            "dir" => fs::create_dir(&path)
                .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o700))),
            "file" => fs::write(&path, b"")
                .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o644))),
            "symlink" => symlink(item["target"].as_str().expect("target"), &path),
            other => return Err(format!("unknown tree kind {other}")),
        };
        made.map_err(|e| format!("create {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The error and its sources, for `error_contains` (compared case-insensitively: Rust
/// says "Permission denied" where Go says "permission denied").
fn error_chain(err: &ContextError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn walker_for(root: &Path, case: &Value) -> Result<ContextWalker, ContextError> {
    let stacked = field(case, "stacked_exclude_filters");
    if let Some(layers) = stacked.as_array() {
        let mut layers = layers.iter().map(strings);
        let first = layers.next().unwrap_or_default();
        let options = WalkOptions {
            exclude_patterns: first,
            ..WalkOptions::default()
        };
        let mut walker = ContextWalker::new(root, &options)?;
        for exclude in layers {
            walker = walker.with_filter(ContextFilter::new(&[], &exclude)?);
        }
        return Ok(walker);
    }
    let options = WalkOptions {
        include_patterns: strings(field(case, "include_patterns")),
        exclude_patterns: strings(field(case, "exclude_patterns")),
        follow_paths: strings(field(case, "follow_paths")),
    };
    ContextWalker::new(root, &options)
}

fn walk_lines(walker: &ContextWalker) -> Result<Vec<String>, ContextError> {
    let mut lines = Vec::new();
    walker.walk(|entry| {
        let path = entry.path().display();
        lines.push(match entry.kind() {
            EntryKind::Dir => format!("dir {path}"),
            EntryKind::Symlink => {
                let target = entry.link_target().map(Path::display);
                format!("symlink:{} {path}", target.expect("a symlink has a target"))
            }
            _ => format!("file {path}"),
        });
        Ok::<(), ContextError>(())
    })?;
    Ok(lines)
}

fn walk_and_compare(root: &Path, case: &Value) -> Result<(), String> {
    let built = walker_for(root, case);
    let walked = built
        .as_ref()
        .map_err(error_chain)
        .and_then(|w| walk_lines(w).map_err(|e| error_chain(&e)));
    if let Some(want) = field(case, "error_contains").as_str() {
        return match walked {
            // "(any error …)" asks only for an error while building the filter.
            Err(_) if want.starts_with("(any error") && built.is_err() => Ok(()),
            Err(text) if text.to_lowercase().contains(&want.to_lowercase()) => Ok(()),
            Err(text) => Err(format!("error {text:?} does not contain {want:?}")),
            Ok(lines) => Err(format!(
                "want an error containing {want:?}, walked {lines:?}"
            )),
        };
    }
    let walker = built.map_err(|e| format!("build walker: {}", error_chain(&e)))?;
    if let Some(want) = field(case, "expected_walk").as_array() {
        let want: Vec<String> = want
            .iter()
            .map(|v| v.as_str().expect("line").to_string())
            .collect();
        let got = walked.map_err(|e| format!("walk: {e}"))?;
        if got != want {
            return Err(format!("walked {got:?}, want {want:?}"));
        }
    }
    for open in field(case, "opens").as_array().into_iter().flatten() {
        let path = open["path"].as_str().expect("path");
        let want_ok = open["ok"].as_bool().expect("ok");
        match (walker.open(path), want_ok) {
            (Ok(_), true) => {}
            (Err(e), false) if e.is_not_found() => {}
            (Ok(_), false) => return Err(format!("open {path:?} succeeded, want not found")),
            (Err(e), _) => return Err(format!("open {path:?}: {}", error_chain(&e))),
        }
    }
    Ok(())
}
