//! Arbitrary `.dockerignore` text compiled into a matcher, then arbitrary paths matched: errors
//! are fine, panics and hangs are not. Input: ignore-file text, a NUL byte, then paths (one
//! per line).
#![no_main]

use hoist_context::{MatchInfo, PatternMatcher, filepath_match, read_ignore_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (ignore, paths) = text.split_once('\0').unwrap_or((text, "a/b/c\nx"));
    let patterns = read_ignore_file(ignore);
    for pattern in &patterns {
        for path in paths.lines() {
            let _ = filepath_match(pattern, path);
        }
    }
    let Ok(matcher) = PatternMatcher::new(&patterns) else {
        return;
    };
    for path in paths.lines() {
        let _ = matcher.matches(path);
        let _ = matcher.matches_or_parent_matches(path);
        // The incremental form, fed its own results for the parents. It does not always agree
        // with `matches_or_parent_matches`, in upstream neither: a pattern skipped for a parent
        // (an exception while nothing matched yet) records no parent match, so `docs/*`,
        // `!docs` keeps `docs/a` incrementally but excludes it the direct way. Only no panic
        // and no hang is asserted.
        let mut info = MatchInfo::default();
        let mut prefix = String::new();
        for component in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
            match matcher.matches_using_parent_results(&prefix, &info) {
                Ok((_, next)) => info = next,
                Err(_) => break,
            }
        }
    }
});
