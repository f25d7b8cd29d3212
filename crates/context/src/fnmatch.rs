//! Go's `filepath.Match` (Unix flavour), including its `ErrBadPattern` rules.
//!
//! Docker uses it for two things: to reject malformed `.dockerignore` patterns when the
//! matcher is built, and to expand wildcards in follow paths. Its syntax is glob-like:
//! `*` (any run of non-`/` bytes), `?` (one non-`/` character), `[…]`/`[^…]` classes with
//! ranges, and `\` escaping the next character.

use thiserror::Error;

/// A pattern that `filepath.Match` rejects (Go's `filepath.ErrBadPattern`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("syntax error in pattern")]
pub struct BadPattern;

/// Reports whether `name` matches the shell pattern `pattern`, exactly as Go's
/// `filepath.Match` does on Unix.
///
/// The whole pattern is checked for syntax even when the match fails early, so a
/// malformed pattern is always an error.
///
/// ```
/// use hoist_context::filepath_match;
/// assert_eq!(filepath_match("a*/b", "abc/b"), Ok(true));
/// assert_eq!(filepath_match("a*", "ab/c"), Ok(false));
/// assert!(filepath_match("[", "a").is_err());
/// ```
pub fn filepath_match(pattern: &str, name: impl AsRef<[u8]>) -> Result<bool, BadPattern> {
    match_bytes(pattern.as_bytes(), name.as_ref())
}

fn match_bytes(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, BadPattern> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest of the name unless it holds a `/`.
            return Ok(!name.contains(&b'/'));
        }
        // Try to match the chunk at the current position.
        let (t, ok, err) = match_chunk(chunk, name);
        // The last chunk must consume the whole name; otherwise a star may still help.
        if ok && (t.is_empty() || !pattern.is_empty()) {
            name = t;
            continue;
        }
        if let Some(err) = err {
            return Err(err);
        }
        if star {
            // Retry after skipping 1..n bytes; a `*` never skips a `/`.
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                let (t, ok, err) = match_chunk(chunk, &name[i + 1..]);
                if ok {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'pattern;
                }
                if let Some(err) = err {
                    return Err(err);
                }
                i += 1;
            }
        }
        // Before answering "no", make sure the rest of the pattern is well formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if let (_, _, Some(err)) = match_chunk(chunk, b"") {
                return Err(err);
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Splits off the leading stars and the chunk up to the next unbracketed `*`.
fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while let [b'*', rest @ ..] = pattern {
        pattern = rest;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            // A dangling `\` is reported by match_chunk.
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Matches `chunk` (no unbracketed `*`) at the start of `s`.
///
/// Returns the rest of `s`, whether it matched, and a syntax error. Like Go, it keeps
/// parsing after a mismatch so that a malformed chunk is always reported.
fn match_chunk<'s>(mut chunk: &[u8], mut s: &'s [u8]) -> (&'s [u8], bool, Option<BadPattern>) {
    let mut failed = false;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk[0] {
            b'[' => {
                let mut r = 0u32;
                if !failed {
                    let (c, n) = decode_rune(s);
                    r = c;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let negated = matches!(chunk.first(), Some(b'^'));
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&b']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = match get_esc(chunk) {
                        Ok(v) => v,
                        Err(e) => return (b"", false, Some(e)),
                    };
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        match get_esc(&chunk[1..]) {
                            Ok((h, rest)) => {
                                hi = h;
                                chunk = rest;
                            }
                            Err(e) => return (b"", false, Some(e)),
                        }
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = decode_rune(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            c => {
                if c == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return (b"", false, Some(BadPattern));
                    }
                }
                if !failed {
                    if chunk[0] != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    if failed {
        (b"", false, None)
    } else {
        (s, true, None)
    }
}

/// One class element: a character, or `\` and a character. `-` and `]` may not start one,
/// and something must follow it (at least the closing `]`).
fn get_esc(mut chunk: &[u8]) -> Result<(u32, &[u8]), BadPattern> {
    if chunk.is_empty() || chunk[0] == b'-' || chunk[0] == b']' {
        return Err(BadPattern);
    }
    if chunk[0] == b'\\' {
        chunk = &chunk[1..];
        if chunk.is_empty() {
            return Err(BadPattern);
        }
    }
    let (r, n) = decode_rune(chunk);
    if r == REPLACEMENT && n == 1 {
        return Err(BadPattern);
    }
    let rest = &chunk[n..];
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((r, rest))
}

const REPLACEMENT: u32 = 0xFFFD;

/// Go's `utf8.DecodeRune`: the first character and its width; an invalid or truncated
/// sequence decodes as U+FFFD with width 1, and an empty input as U+FFFD with width 0.
pub(crate) fn decode_rune(s: &[u8]) -> (u32, usize) {
    let Some(&b0) = s.first() else {
        return (REPLACEMENT, 0);
    };
    if b0 < 0x80 {
        return (u32::from(b0), 1);
    }
    let width = match b0 {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (REPLACEMENT, 1),
    };
    match s
        .get(..width)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
    {
        Some(text) => {
            let c = text
                .chars()
                .next()
                .expect("a non-empty valid UTF-8 slice has a first char");
            (u32::from(c), width)
        }
        None => (REPLACEMENT, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_filepath_match_differs_from_the_matcher_on_parents() {
        // filepath.Match itself does not look at parent directories.
        assert_eq!(filepath_match("a*", "ab/c"), Ok(false));
        assert_eq!(filepath_match("a*", "abc"), Ok(true));
        assert_eq!(filepath_match("a*/b", "a/c/b"), Ok(false));
    }

    #[test]
    fn bad_patterns_are_reported_even_after_a_mismatch() {
        assert_eq!(filepath_match("x[", "a"), Err(BadPattern));
        assert_eq!(filepath_match("a*[", "b"), Err(BadPattern));
        assert_eq!(filepath_match("[a-b-c]", "a"), Err(BadPattern));
        assert_eq!(filepath_match("\\", "a"), Err(BadPattern));
        assert_eq!(filepath_match("[]a]", "]"), Err(BadPattern));
    }

    #[test]
    fn classes_escapes_and_runes() {
        assert_eq!(filepath_match("[\\]a]", "]"), Ok(true));
        assert_eq!(filepath_match("a?b", "a☺b"), Ok(true));
        assert_eq!(filepath_match("a???b", "a☺b"), Ok(false));
        assert_eq!(filepath_match("[a-ζ]*", "α"), Ok(true));
        assert_eq!(filepath_match("a\\*b", "a*b"), Ok(true));
        assert_eq!(filepath_match("[Local-Only]", "x"), Ok(false));
        // An invalid byte in the name decodes as U+FFFD, one byte wide.
        assert_eq!(filepath_match("a?b", b"a\xffb"), Ok(true));
        assert_eq!(filepath_match("a[^x]b", b"a\xffb"), Ok(true));
    }

    #[test]
    fn decode_rune_is_go_compatible() {
        assert_eq!(decode_rune(b""), (0xFFFD, 0));
        assert_eq!(decode_rune(b"a"), (97, 1));
        assert_eq!(decode_rune("☺".as_bytes()), (0x263A, 3));
        assert_eq!(decode_rune(b"\xe2\x98"), (0xFFFD, 1));
        assert_eq!(decode_rune(b"\xc0\x80"), (0xFFFD, 1));
        assert_eq!(decode_rune(b"\xed\xa0\x80"), (0xFFFD, 1));
    }
}
