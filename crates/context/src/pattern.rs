//! Docker's `.dockerignore` pattern matcher (moby/patternmatcher), reproduced exactly.
//!
//! A [`PatternMatcher`] holds an ordered list of patterns; a `!` prefix makes a pattern an
//! exception. A path is "matched" (excluded, for a `.dockerignore`) when the last pattern
//! that applies to it is not an exception. Patterns are cleaned like paths (`./a/` is `a`),
//! and glob syntax follows Go's `filepath.Match` except that `**` also crosses `/`:
//!
//! | pattern    | matches                                    | does not match        |
//! |------------|--------------------------------------------|-----------------------|
//! | `*.md`     | `a.md`                                     | `docs/b.md`           |
//! | `build`    | `build`, and everything under it (parents) | `x/build`             |
//! | `**/*.md`  | `a.md`, `docs/b.md`                        | `a.mdx`               |
//! | `dir/**`   | `dir/a`, `dir/a/b`                         | `dir`                 |
//! | `a[b-d]e`  | `ace`                                      | `ae`, `aae`           |
//!
//! Each pattern is classified once, as upstream does: a literal pattern compares bytes
//! (`Exact`), `lit/**` is a prefix test, `**lit` a suffix test, and only the rest goes
//! through a compiled regular expression (the same Go regexp text upstream builds,
//! interpreted with Go's rules; see `goregex`).

use regex::Regex;
use thiserror::Error;

use crate::fnmatch::{decode_rune, filepath_match};
use crate::gopath;
use crate::goregex::go_to_rust;

/// Errors from building or applying a [`PatternMatcher`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    /// A pattern consisting of `!` alone.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// A malformed pattern (Go's `filepath.ErrBadPattern`). Reported when the matcher is
    /// built if `filepath.Match` rejects it, or each time the pattern is used if only the
    /// regular-expression compiler rejects it (e.g. the reversed range in `[Local-Only]`).
    #[error("syntax error in pattern: {pattern:?}")]
    BadPattern {
        /// The cleaned pattern, without its `!`.
        pattern: String,
    },
    /// [`PatternMatcher::matches_using_parent_results`] got parent results for a different
    /// number of patterns.
    #[error("wrong number of values in parent match info: expected {expected}, got {got}")]
    ParentInfoLength {
        /// Number of patterns in the matcher.
        expected: usize,
        /// Number of parent results passed in.
        got: usize,
    },
}

/// How a pattern is tested against a path, decided once when it is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// The path equals the pattern (no wildcards).
    Exact,
    /// The pattern is `lit**`: the path starts with `lit`.
    Prefix,
    /// The pattern is `**lit`: the path ends with `lit` (or equals it without the `/`).
    Suffix,
    /// Anything else: a regular expression.
    Regex,
}

#[derive(Debug, Clone)]
enum Compiled {
    Exact,
    Prefix,
    Suffix,
    Regex(Regex),
    /// The regular-expression compiler rejected the pattern; every use is an error.
    Invalid,
}

/// One cleaned pattern of a [`PatternMatcher`].
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    exclusion: bool,
    /// Number of `/`-separated elements, for the legacy single-parent check.
    elements: usize,
    go_regex: Option<String>,
    compiled: Compiled,
}

impl Pattern {
    fn new(text: String, exclusion: bool) -> Self {
        let elements = text.bytes().filter(|&b| b == b'/').count() + 1;
        let (kind, go_regex) = classify(&text);
        let compiled = match kind {
            MatchKind::Exact => Compiled::Exact,
            MatchKind::Prefix => Compiled::Prefix,
            MatchKind::Suffix => Compiled::Suffix,
            MatchKind::Regex => go_regex
                .as_deref()
                .and_then(|go| go_to_rust(go).ok())
                .and_then(|rust| Regex::new(&rust).ok())
                .map_or(Compiled::Invalid, Compiled::Regex),
        };
        Pattern {
            text,
            exclusion,
            elements,
            go_regex,
            compiled,
        }
    }

    /// The cleaned pattern text, without the `!` of an exception.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is a `!` exception.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// How the pattern is matched; `None` when it cannot be compiled (every use of it is a
    /// [`PatternError::BadPattern`]).
    pub fn match_kind(&self) -> Option<MatchKind> {
        match self.compiled {
            Compiled::Exact => Some(MatchKind::Exact),
            Compiled::Prefix => Some(MatchKind::Prefix),
            Compiled::Suffix => Some(MatchKind::Suffix),
            Compiled::Regex(_) => Some(MatchKind::Regex),
            Compiled::Invalid => None,
        }
    }

    /// The Go regular expression upstream builds for this pattern (`^…$`, with Go
    /// syntax), for patterns classified as [`MatchKind::Regex`].
    pub fn go_regex(&self) -> Option<&str> {
        self.go_regex.as_deref()
    }

    /// Whether `path` matches this one pattern (no parent handling, no exceptions).
    pub fn is_match(&self, path: impl AsRef<[u8]>) -> Result<bool, PatternError> {
        let path = path.as_ref();
        let text = self.text.as_bytes();
        match &self.compiled {
            Compiled::Exact => Ok(path == text),
            // Prefix and suffix patterns end and start with `**` by construction; the
            // slices are byte-wise, as in Go.
            Compiled::Prefix => Ok(path.starts_with(text.strip_suffix(b"**").unwrap_or(text))),
            Compiled::Suffix => {
                let suffix = text.get(2..).unwrap_or_default();
                if path.ends_with(suffix) {
                    return Ok(true);
                }
                // `**/foo` also matches `foo` itself.
                Ok(suffix.first() == Some(&b'/') && path == &suffix[1..])
            }
            Compiled::Regex(re) => Ok(match std::str::from_utf8(path) {
                Ok(text) => re.is_match(text),
                Err(_) => re.is_match(&go_lossy(path)),
            }),
            Compiled::Invalid => Err(PatternError::BadPattern {
                pattern: self.text.clone(),
            }),
        }
    }

    /// The pattern with one trailing `/**` and then one trailing `/*` removed; what fsutil
    /// compares against directory prefixes to decide whether a walk may prune a directory.
    fn without_trailing_glob(&self) -> &[u8] {
        let mut text = self.text.as_bytes();
        if let Some(stripped) = text.strip_suffix(b"/**") {
            text = stripped;
        }
        if let Some(stripped) = text.strip_suffix(b"/*") {
            text = stripped;
        }
        text
    }
}

/// Go regexp matches invalid UTF-8 byte by byte, each byte reading as U+FFFD.
fn go_lossy(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    let mut rest = path;
    while !rest.is_empty() {
        let (r, n) = decode_rune(rest);
        out.push(char::from_u32(r).expect("decode_rune returns scalar values"));
        rest = &rest[n..];
    }
    out
}

/// Characters that are regexp syntax in Go but plain in `filepath.Match` patterns.
fn needs_regex_escape(c: char) -> bool {
    matches!(c, '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$')
}

/// Upstream's `Pattern.compile` with `/` as separator: the match kind and, for
/// [`MatchKind::Regex`], the Go regular expression text.
fn classify(pattern: &str) -> (MatchKind, Option<String>) {
    let mut regex = String::from("^");
    let mut kind = MatchKind::Exact;
    // Upstream scans with Go's text/scanner, which skips a leading byte-order mark.
    let scanned = pattern.strip_prefix('\u{FEFF}').unwrap_or(pattern);
    let mut chars = scanned.chars().peekable();
    let mut i = 0;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is treated as `**`.
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    // A trailing `**` matches everything below, like .gitignore.
                    if kind == MatchKind::Exact {
                        kind = MatchKind::Prefix;
                    } else {
                        regex.push_str(".*");
                        kind = MatchKind::Regex;
                    }
                } else {
                    // Any number of directories, including none.
                    regex.push_str("(.*/)?");
                    kind = MatchKind::Regex;
                }
                if i == 0 {
                    kind = MatchKind::Suffix;
                }
            }
            '*' => {
                regex.push_str("[^/]*");
                kind = MatchKind::Regex;
            }
            '?' => {
                regex.push_str("[^/]");
                kind = MatchKind::Regex;
            }
            c if needs_regex_escape(c) => {
                regex.push('\\');
                regex.push(c);
            }
            '\\' => match chars.next() {
                Some(next) => {
                    regex.push('\\');
                    regex.push(next);
                    kind = MatchKind::Regex;
                }
                None => regex.push('\\'),
            },
            '[' | ']' => {
                regex.push(c);
                kind = MatchKind::Regex;
            }
            c => regex.push(c),
        }
        i += 1;
    }
    if kind == MatchKind::Regex {
        regex.push('$');
        (kind, Some(regex))
    } else {
        (kind, None)
    }
}

/// Per-pattern results for a directory, passed down to its children during a walk so that
/// ancestors are not matched again (upstream's `MatchInfo`).
///
/// The default value means "no information" (a top-level path, or a caller that does not
/// track parents); the matcher then checks the parents itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

impl MatchInfo {
    /// Whether this carries no results.
    pub fn is_empty(&self) -> bool {
        self.parent_matched.is_empty()
    }
}

/// An ordered list of `.dockerignore`-style patterns (see the module docs).
///
/// ```
/// use hoist_context::PatternMatcher;
/// let m = PatternMatcher::new(["*.md", "!README.md", "build/"])?;
/// assert!(m.matches_or_parent_matches("notes.md")?);
/// assert!(!m.matches_or_parent_matches("README.md")?);
/// assert!(!m.matches_or_parent_matches("docs/b.md")?);
/// assert!(m.matches_or_parent_matches("build/out/x")?);
/// assert!(!m.matches_or_parent_matches("x/build")?);
/// # Ok::<(), hoist_context::PatternError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
    /// No non-exception pattern has wildcards (after a trailing `/*` or `/**`), so a
    /// directory can only hold matches if a pattern names a path below it.
    only_prefix_inclusions: bool,
    /// The same for the `!` exceptions.
    only_prefix_exclusions: bool,
}

/// Characters that make fsutil treat a pattern as more than a literal path prefix.
const PATTERN_CHARS: &[u8] = b"*[]?^\\";

impl PatternMatcher {
    /// Builds a matcher (upstream's `patternmatcher.New`).
    ///
    /// Each pattern is trimmed of whitespace (empty ones are dropped), cleaned like a path,
    /// and a leading `!` marks an exception. Patterns that Go's `filepath.Match` rejects
    /// are errors, as is `!` alone.
    pub fn new<I>(patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut compiled = Vec::new();
        let mut exclusions = false;
        for raw in patterns {
            let trimmed = raw.as_ref().trim();
            if trimmed.is_empty() {
                continue;
            }
            let cleaned = gopath::clean(trimmed);
            let (text, exclusion) = match cleaned.strip_prefix('!') {
                Some("") => return Err(PatternError::IllegalExclusion),
                Some(rest) => (rest.to_string(), true),
                None => (cleaned, false),
            };
            exclusions |= exclusion;
            if filepath_match(&text, ".").is_err() {
                return Err(PatternError::BadPattern { pattern: text });
            }
            compiled.push(Pattern::new(text, exclusion));
        }
        let has_pattern_chars = |p: &Pattern| {
            p.without_trailing_glob()
                .iter()
                .any(|b| PATTERN_CHARS.contains(b))
        };
        let only_prefix_inclusions = !compiled
            .iter()
            .any(|p| !p.exclusion && has_pattern_chars(p));
        let only_prefix_exclusions = !compiled.iter().any(|p| p.exclusion && has_pattern_chars(p));
        Ok(PatternMatcher {
            patterns: compiled,
            exclusions,
            only_prefix_inclusions,
            only_prefix_exclusions,
        })
    }

    /// The cleaned patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern is a `!` exception.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether `path` itself matches (upstream's `MatchesExact`): parents are not
    /// considered, so `docs` does not match `docs/a`.
    ///
    /// Paths are relative and `/`-separated, and are used as given (not cleaned).
    pub fn matches(&self, path: impl AsRef<[u8]>) -> Result<bool, PatternError> {
        let path = path.as_ref();
        let mut matched = false;
        for pattern in &self.patterns {
            // An inclusion cannot change a matched path, nor an exception an unmatched one.
            if pattern.exclusion != matched {
                continue;
            }
            if pattern.is_match(path)? {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// Whether `path` is matched, where a pattern also applies when it matches one of the
    /// path's parent directories (upstream's `MatchesOrParentMatches`; what BuildKit uses
    /// for `.dockerignore`).
    pub fn matches_or_parent_matches(&self, path: impl AsRef<[u8]>) -> Result<bool, PatternError> {
        let path = path.as_ref();
        let parent = gopath::dir_bytes(path);
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.is_match(path)?;
            if !hit && parent != b"." {
                hit = matches_a_parent(pattern, &parent);
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// Incremental form of [`matches_or_parent_matches`](Self::matches_or_parent_matches)
    /// for a directory walk (upstream's `MatchesUsingParentResults`).
    ///
    /// Pass the [`MatchInfo`] returned for the path's parent directory (or the default for
    /// a top-level path); keep the returned one if `path` is a directory to be entered.
    pub fn matches_using_parent_results(
        &self,
        path: impl AsRef<[u8]>,
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo), PatternError> {
        let mut info = MatchInfo::default();
        let matched = self.matches_using_parent_results_into(path, parent, &mut info)?;
        Ok((matched, info))
    }

    /// [`matches_using_parent_results`](Self::matches_using_parent_results) writing the
    /// path's results into `out`, reusing its allocation.
    pub fn matches_using_parent_results_into(
        &self,
        path: impl AsRef<[u8]>,
        parent: &MatchInfo,
        out: &mut MatchInfo,
    ) -> Result<bool, PatternError> {
        let path = path.as_ref();
        let parent_matched = &parent.parent_matched;
        if !parent_matched.is_empty() && parent_matched.len() != self.patterns.len() {
            return Err(PatternError::ParentInfoLength {
                expected: self.patterns.len(),
                got: parent_matched.len(),
            });
        }
        out.parent_matched.clear();
        out.parent_matched.resize(self.patterns.len(), false);
        let mut parent_dir: Option<Vec<u8>> = None;
        let mut matched = false;
        for (i, pattern) in self.patterns.iter().enumerate() {
            // A pattern that matched the parent matches everything below it.
            let mut hit = parent_matched.get(i).copied().unwrap_or(false);
            if !hit {
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.is_match(path)?;
                // Without parent results, check the parents here.
                if !hit && parent_matched.is_empty() {
                    let parent = parent_dir.get_or_insert_with(|| gopath::dir_bytes(path));
                    if parent.as_slice() != b"." {
                        hit = matches_a_parent(pattern, parent);
                    }
                }
            }
            out.parent_matched[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// Upstream's deprecated `Matches`: like
    /// [`matches_or_parent_matches`](Self::matches_or_parent_matches), but only the one
    /// parent with as many elements as the pattern is checked.
    fn matches_single_parent(&self, path: &[u8]) -> Result<bool, PatternError> {
        let parent = gopath::dir_bytes(path);
        let parent_elements = parent.iter().filter(|&&b| b == b'/').count() + 1;
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.is_match(path)?;
            if !hit && parent != b"." && pattern.elements <= parent_elements {
                let prefix = element_prefix(&parent, pattern.elements);
                hit = pattern.is_match(prefix).unwrap_or(false);
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// Whether a walk must still enter directory `dir` (relative, no trailing `/`) that
    /// this matcher did not match, because an inclusion pattern may match below it (what
    /// fsutil checks for include patterns).
    ///
    /// Exact when every inclusion is a literal path (optionally ending in `/*` or `/**`);
    /// otherwise always `true`.
    pub fn inclusions_may_match_under(&self, dir: impl AsRef<[u8]>) -> bool {
        if !self.only_prefix_inclusions {
            return true;
        }
        let dir = dir.as_ref();
        self.patterns
            .iter()
            .any(|p| !p.exclusion && names_path_under(p.without_trailing_glob(), dir))
    }

    /// Whether a walk must still enter directory `dir` that this matcher matched
    /// (excluded), because a later `!` exception may match below it (fsutil's rule for
    /// exclude patterns: `foo*` + `!foo/bar` keeps `foo/` open).
    ///
    /// `false` when there are no exceptions; exact when every exception is a literal path;
    /// otherwise always `true`.
    pub fn exceptions_may_match_under(&self, dir: impl AsRef<[u8]>) -> bool {
        if !self.only_prefix_exclusions {
            return true;
        }
        if !self.exclusions {
            return false;
        }
        let dir = dir.as_ref();
        self.patterns
            .iter()
            .any(|p| p.exclusion && names_path_under(p.without_trailing_glob(), dir))
    }
}

/// `strings.HasPrefix(pattern + "/", dir + "/")` without allocating.
fn names_path_under(pattern: &[u8], dir: &[u8]) -> bool {
    pattern == dir
        || (pattern.len() > dir.len() && pattern.starts_with(dir) && pattern[dir.len()] == b'/')
}

/// Whether the pattern matches any ancestor of a path whose cleaned parent directory is
/// `parent` (not `.`): `a`, `a/b`, … `a/b/c` for `a/b/c`. Errors count as no match, as
/// upstream ignores them here (the path itself was already checked).
fn matches_a_parent(pattern: &Pattern, parent: &[u8]) -> bool {
    parent
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(|(i, _)| &parent[..i])
        .chain(std::iter::once(parent))
        .any(|prefix| pattern.is_match(prefix).unwrap_or(false))
}

/// The first `n` `/`-separated elements of `path`, joined (`strings.Join(dirs[:n], "/")`).
fn element_prefix(path: &[u8], n: usize) -> &[u8] {
    let mut seen = 0;
    for (i, &b) in path.iter().enumerate() {
        if b == b'/' {
            seen += 1;
            if seen == n {
                return &path[..i];
            }
        }
    }
    path
}

/// Upstream's package-level `MatchesOrParentMatches(file, patterns)`: builds a matcher,
/// cleans `path`, and never matches `.` (the context root).
pub fn matches_or_parent_matches<I>(path: &str, patterns: I) -> Result<bool, PatternError>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let matcher = PatternMatcher::new(patterns)?;
    let path = gopath::clean(path);
    if path == "." {
        return Ok(false);
    }
    matcher.matches_or_parent_matches(&path)
}

/// Upstream's deprecated package-level `Matches(file, patterns)`, kept for compatibility
/// checks: like [`matches_or_parent_matches`], but only one parent of each pattern's
/// length is considered. New code should use [`matches_or_parent_matches`].
pub fn legacy_matches<I>(path: &str, patterns: I) -> Result<bool, PatternError>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let matcher = PatternMatcher::new(patterns)?;
    let path = gopath::clean(path);
    if path == "." {
        return Ok(false);
    }
    matcher.matches_single_parent(path.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(p: &str) -> (MatchKind, Option<String>) {
        classify(p)
    }

    #[test]
    fn classification_avoids_regex_for_simple_patterns() {
        assert_eq!(kind("abc.def").0, MatchKind::Exact);
        assert_eq!(kind("dir/**").0, MatchKind::Prefix);
        assert_eq!(kind("**/foo/bar").0, MatchKind::Suffix);
        assert_eq!(kind("**").0, MatchKind::Suffix);
        assert_eq!(
            kind("*.md"),
            (MatchKind::Regex, Some(r"^[^/]*\.md$".to_string()))
        );
        assert_eq!(
            kind("a\\*b"),
            (MatchKind::Regex, Some(r"^a\*b$".to_string()))
        );
    }

    #[test]
    fn docker_semantics_not_gitignore() {
        let m = PatternMatcher::new(["*.md"]).unwrap();
        assert!(m.matches_or_parent_matches("a.md").unwrap());
        assert!(!m.matches_or_parent_matches("docs/b.md").unwrap());
        let m = PatternMatcher::new(["build/"]).unwrap();
        assert!(m.matches_or_parent_matches("build/x").unwrap());
        assert!(!m.matches_or_parent_matches("x/build").unwrap());
        assert!(!m.matches("build/x").unwrap(), "matches() ignores parents");
    }

    #[test]
    fn invalid_regex_is_reported_on_every_use() {
        let m = PatternMatcher::new(["[Local-Only]/"]).unwrap();
        assert_eq!(m.patterns()[0].match_kind(), None);
        for _ in 0..2 {
            assert!(matches!(
                m.matches_or_parent_matches("x"),
                Err(PatternError::BadPattern { .. })
            ));
        }
    }

    #[test]
    fn non_utf8_paths_match_like_go() {
        let m = PatternMatcher::new(["a?b", "x*"]).unwrap();
        assert!(m.matches(b"a\xffb").unwrap());
        assert!(m.matches(b"x\xff\xfe").unwrap());
        assert!(
            !m.matches(b"a\xff\xfeb").unwrap(),
            "each invalid byte is one character"
        );
    }

    #[test]
    fn incremental_results_equal_direct_results() {
        let patterns = [
            "**",
            "!util/docker/web",
            "util/docker/web/foo",
            "a*/b",
            "!a1",
        ];
        let m = PatternMatcher::new(patterns).unwrap();
        for path in [
            "util/docker/web/foo/x",
            "util/docker/web/bar",
            "a1/b/c",
            "a2/b",
            "q",
        ] {
            let mut info = MatchInfo::default();
            let mut prefix = String::new();
            let mut last = false;
            for part in path.split('/') {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                let (m2, next) = m.matches_using_parent_results(&prefix, &info).unwrap();
                info = next;
                last = m2;
            }
            assert_eq!(last, m.matches_or_parent_matches(path).unwrap(), "{path}");
        }
        let other = PatternMatcher::new(["a"]).unwrap();
        let (_, short) = other
            .matches_using_parent_results("a", &MatchInfo::default())
            .unwrap();
        assert!(matches!(
            m.matches_using_parent_results("a/b", &short),
            Err(PatternError::ParentInfoLength {
                expected: 5,
                got: 1
            })
        ));
    }

    #[test]
    fn directory_pruning_rules() {
        let m = PatternMatcher::new(["foo*", "!foo/bar2"]).unwrap();
        assert!(m.exceptions_may_match_under("foo"));
        assert!(!m.exceptions_may_match_under("fooo"));
        assert!(!m.exceptions_may_match_under("fo"));
        let m = PatternMatcher::new(["foo"]).unwrap();
        assert!(!m.exceptions_may_match_under("foo"));
        let m = PatternMatcher::new(["foo", "!**/keep"]).unwrap();
        assert!(
            m.exceptions_may_match_under("foo"),
            "wildcard exceptions keep every dir open"
        );
        let m = PatternMatcher::new(["bar/foo", "baz/**"]).unwrap();
        assert!(m.inclusions_may_match_under("bar"));
        assert!(m.inclusions_may_match_under("baz"));
        assert!(!m.inclusions_may_match_under("qux"));
    }

    #[test]
    fn incremental_api_keeps_upstreams_skip_quirk() {
        // Upstream records "no match" for a pattern it skipped at a parent, so during a
        // walk `!a` is not applied to `a/x` although it matches the parent `a`; the
        // one-shot check applies it. fsutil walks with the former and opens with the
        // latter; both are reproduced.
        let m = PatternMatcher::new(["a/x", "!a"]).unwrap();
        let (_, info) = m
            .matches_using_parent_results("a", &MatchInfo::default())
            .unwrap();
        assert!(m.matches_using_parent_results("a/x", &info).unwrap().0);
        assert!(!m.matches_or_parent_matches("a/x").unwrap());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_patterns_never_panic(
            patterns in proptest::collection::vec(r"[ab/*?!\\^\[\]{}().$|:-]{0,8}", 0..4),
            path in r"[ab/*.\\\[\]-]{0,10}",
        ) {
            if let Ok(m) = PatternMatcher::new(&patterns) {
                let _ = m.matches(&path);
                let _ = m.matches_or_parent_matches(&path);
                let _ = m.matches_single_parent(path.as_bytes());
                let _ = m.matches_using_parent_results(&path, &MatchInfo::default());
                let _ = m.exceptions_may_match_under(&path);
                let _ = m.inclusions_may_match_under(&path);
            }
        }

        #[test]
        fn regex_kind_agrees_with_filepath_match_on_plain_names(
            pattern in "[ab*?]{1,6}",
            name in "[ab]{0,6}",
        ) {
            // Without `/`, `**` or classes, Docker's regexp and filepath.Match agree.
            proptest::prop_assume!(!pattern.contains("**"));
            let m = PatternMatcher::new([&pattern]).unwrap();
            let want = filepath_match(&pattern, &name).unwrap();
            proptest::prop_assert_eq!(m.matches(&name).unwrap(), want);
        }
    }

    #[test]
    fn names_path_under_is_prefix_with_slash() {
        assert!(names_path_under(b"foo/bar", b"foo"));
        assert!(names_path_under(b"foo", b"foo"));
        assert!(!names_path_under(b"foobar", b"foo"));
        assert!(!names_path_under(b"fo", b"foo"));
    }
}
