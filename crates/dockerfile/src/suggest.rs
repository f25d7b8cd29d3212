//! "Did you mean FROM?": BuildKit's `suggest` package, shared by every layer that suggests a name
//! (unknown instructions here, flags and mount options in the typed layer, variables and stage
//! names in the linter).

use crate::Keyword;

/// The known instruction closest to an unknown keyword, for "unknown instruction: FORM
/// (did you mean FROM?)".
///
/// Same rule as BuildKit's `suggest` package: case-insensitive Levenshtein distance below 3,
/// first best match wins, no suggestion for an exact match. The suggestion follows the case
/// of the input: all lower-case gives `from`, all upper-case `FROM`, mixed case `from`.
pub fn suggest_keyword(word: &str) -> Option<String> {
    let lower = word.to_lowercase();
    let name = closest_match(&lower, Keyword::ALL.iter().map(|keyword| keyword.as_str()))?;
    let keyword = Keyword::from_name(name)?;
    if word == word.to_uppercase() && word != lower {
        Some(keyword.as_upper_str().to_owned())
    } else {
        Some(keyword.as_str().to_owned())
    }
}

/// The option closest to `value` by edit distance, if one is closer than 3 edits and none is
/// an exact match (BuildKit's `suggest.Search`, case-sensitive). Ties go to the first option
/// in iteration order, so callers pass a sorted list when the answer must not depend on hash
/// order.
pub fn closest_match<'a>(
    value: &str,
    options: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for option in options {
        if option == value {
            return None;
        }
        let distance = edit_distance(value, option);
        if distance < best.map_or(3, |(d, _)| d) {
            best = Some((distance, option));
        }
    }
    best.map(|(_, option)| option)
}

/// Edit distance in characters (insertions, deletions, substitutions).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest_keyword("FORM").as_deref(), Some("FROM"));
        assert_eq!(suggest_keyword("form").as_deref(), Some("from"));
        assert_eq!(suggest_keyword("Runn").as_deref(), Some("run"));
        assert_eq!(suggest_keyword("COPYY").as_deref(), Some("COPY"));
        assert_eq!(suggest_keyword("FROM"), None);
        assert_eq!(suggest_keyword("XYZZYQ"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_match_within_two_edits() {
        assert_eq!(
            closest_match("VERSOIN", ["PATH", "VERSION"]),
            Some("VERSION")
        );
        assert_eq!(closest_match("FOO", ["BAR"]), None);
        assert_eq!(closest_match("VERSION", ["VERSION", "VERSIONS"]), None);
        assert_eq!(
            closest_match("ab", ["abc", "abd"]),
            Some("abc"),
            "first best wins"
        );
    }
}
