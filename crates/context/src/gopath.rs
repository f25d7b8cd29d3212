//! Go's `path/filepath` helpers for Unix (`Clean`, `Dir`, `Join`), byte for byte.
//!
//! Docker cleans every pattern and path with these before matching, and the matcher's
//! results depend on their exact output (`Clean("a/")` is `a`, `Dir("/")` is `/`,
//! `Clean("")` is `.`), so they are reproduced here rather than approximated with
//! `std::path`, which normalises differently (it keeps `..` and drops a trailing `.`).

/// `filepath.Clean` on `/`-separated bytes: the shortest equivalent path.
///
/// Rules, in Go's order: collapse repeated `/`; drop `.` elements; drop each `..` with the
/// element before it; drop `..` right after the root; an empty result is `.`.
pub(crate) fn clean_bytes(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path[0] == b'/';
    let n = path.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let mut r = 0;
    // `dotdot` is the length of `out` below which `..` may not remove anything: either
    // the root slash or leading `..` elements of a relative path.
    let mut dotdot = 0;
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    while r < n {
        // An empty element or a `.` element: skip it.
        if path[r] == b'/' || (path[r] == b'.' && (r + 1 == n || path[r + 1] == b'/')) {
            r += 1;
        } else if path[r] == b'.'
            && r + 1 < n
            && path[r + 1] == b'.'
            && (r + 2 == n || path[r + 2] == b'/')
        {
            r += 2;
            if out.len() > dotdot {
                // Back up to the previous slash (or the start).
                let mut w = out.len() - 1;
                while w > dotdot && out[w] != b'/' {
                    w -= 1;
                }
                out.truncate(w);
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && path[r] != b'/' {
                out.push(path[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Go's `filepath.Clean` (= `path.Clean` on Unix) on a string: the shortest equivalent `/`-separated path. Shared by
/// every layer that must clean paths exactly as BuildKit does (patterns here, COPY sources in the planner and the
/// linter). Cleaning only removes ASCII bytes, so UTF-8 survives.
pub fn clean(path: &str) -> String {
    String::from_utf8(clean_bytes(path.as_bytes()))
        .expect("cleaning only removes ASCII '/' and '.' bytes, so valid UTF-8 stays valid")
}

/// `filepath.Dir`: everything before the last `/`, cleaned (`.` when there is no `/`).
pub(crate) fn dir_bytes(path: &[u8]) -> Vec<u8> {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => clean_bytes(&path[..=i]),
        None => b".".to_vec(),
    }
}

/// `filepath.Join`: the non-empty elements joined with `/` and cleaned; `""` when all are
/// empty.
pub(crate) fn join(elems: &[&str]) -> String {
    let parts: Vec<&str> = elems.iter().copied().filter(|e| !e.is_empty()).collect();
    if parts.is_empty() {
        return String::new();
    }
    clean(&parts.join("/"))
}

/// Cleans a relative path as if the context root were `/`: `..` cannot climb above it
/// (`../x` is `x`), and the root itself is `.`.
pub(crate) fn clean_in_root(path: &[u8]) -> Vec<u8> {
    let mut rooted = Vec::with_capacity(path.len() + 1);
    rooted.push(b'/');
    rooted.extend_from_slice(path);
    let mut cleaned = clean_bytes(&rooted);
    if cleaned == b"/" {
        return b".".to_vec();
    }
    cleaned.remove(0);
    cleaned
}

/// Whether a cleaned relative path climbs out of its root (`..` or `../…`).
pub(crate) fn escapes_root(cleaned: &str) -> bool {
    cleaned == ".." || cleaned.starts_with("../")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        // Cases from Go's path/filepath tests (Unix).
        let cases = [
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            ("a/b/c", "a/b/c"),
            (".", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            ("/", "/"),
            ("", "."),
            ("abc/", "abc"),
            ("abc/def/", "abc/def"),
            ("a/b/c/", "a/b/c"),
            ("./", "."),
            ("../", ".."),
            ("../../", "../.."),
            ("/abc/", "/abc"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("//abc", "/abc"),
            ("///abc", "/abc"),
            ("//abc//", "/abc"),
            ("abc//", "abc"),
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/.", "abc"),
            ("abc/def/ghi/../jkl", "abc/def/jkl"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/def/..", "abc"),
            ("abc/def/../..", "."),
            ("/abc/def/../..", "/"),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
            ("/../abc", "/abc"),
            ("abc/./../def", "def"),
            ("abc//./../def", "def"),
            ("abc/../../././../def", "../../def"),
            ("!../x", "!../x"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "Clean({input:?})");
        }
    }

    #[test]
    fn dir_matches_go() {
        let cases = [
            ("", "."),
            (".", "."),
            ("/.", "/"),
            ("/", "/"),
            ("////", "/"),
            ("/foo", "/"),
            ("x/", "x"),
            ("abc", "."),
            ("abc/def", "abc"),
            ("a/b/.x", "a/b"),
            ("a/b/c.", "a/b"),
            ("a/b/c.x", "a/b"),
            ("file/", "file"),
        ];
        for (input, want) in cases {
            assert_eq!(
                dir_bytes(input.as_bytes()),
                want.as_bytes(),
                "Dir({input:?})"
            );
        }
    }

    #[test]
    fn clean_in_root_stays_inside() {
        assert_eq!(clean_in_root(b"../x"), b"x");
        assert_eq!(clean_in_root(b"a/../../b/"), b"b");
        assert_eq!(clean_in_root(b".."), b".");
        assert_eq!(clean_in_root(b""), b".");
        assert_eq!(clean_in_root(b"/abs/p"), b"abs/p");
    }

    #[test]
    fn join_matches_go() {
        assert_eq!(join(&["a", "b"]), "a/b");
        assert_eq!(join(&["a", ""]), "a");
        assert_eq!(join(&["", ""]), "");
        assert_eq!(join(&["", "a"]), "a");
        assert_eq!(join(&[".", ".."]), "..");
        assert_eq!(join(&["/", "a/../.."]), "/");
        assert_eq!(join(&["baz", "../bax"]), "bax");
    }
}
