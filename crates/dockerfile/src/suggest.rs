//! "Did you mean FROM?" for unknown instructions.

use crate::Keyword;

/// The known instruction closest to an unknown keyword, for "unknown instruction: FORM
/// (did you mean FROM?)".
///
/// Same rule as BuildKit's `suggest` package: case-insensitive Levenshtein distance below 3,
/// first best match wins, no suggestion for an exact match. The suggestion follows the case
/// of the input: all lower-case gives `from`, all upper-case `FROM`, mixed case `from`.
pub fn suggest_keyword(word: &str) -> Option<String> {
    let lower = word.to_lowercase();
    let mut best: Option<(usize, Keyword)> = None;
    for keyword in Keyword::ALL {
        if keyword.as_str() == lower {
            return None;
        }
        let distance = levenshtein(&lower, keyword.as_str());
        if distance < best.map_or(3, |(d, _)| d) {
            best = Some((distance, keyword));
        }
    }
    let (_, keyword) = best?;
    if word == word.to_uppercase() && word != lower {
        Some(keyword.as_upper_str().to_owned())
    } else {
        Some(keyword.as_str().to_owned())
    }
}

/// Edit distance in characters (insertions, deletions, substitutions).
fn levenshtein(a: &str, b: &str) -> usize {
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
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
