//! "did you mean $X?": BuildKit's `suggest.Search`.

/// The option closest to `value` by edit distance, if one is closer than 3 edits and none
/// is an exact match. Ties go to the first option in `options` order (callers pass a
/// sorted list so the answer does not depend on hash order, as it does in BuildKit).
pub(crate) fn search<'a, I>(value: &str, options: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(usize, &str)> = None;
    for option in options {
        if option == value {
            return None;
        }
        let distance = levenshtein(value, option);
        if distance < best.map_or(3, |(d, _)| d) {
            best = Some((distance, option));
        }
    }
    best.map(|(_, option)| option)
}

/// Edit distance in characters (insertions, deletions, substitutions each cost 1).
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_within_two_edits() {
        assert_eq!(search("VERSOIN", ["PATH", "VERSION"]), Some("VERSION"));
        assert_eq!(search("FOO", ["BAR"]), None);
        assert_eq!(search("VERSION", ["VERSION", "VERSIONS"]), None);
        assert_eq!(search("ab", ["abc", "abd"]), Some("abc"), "first best wins");
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
