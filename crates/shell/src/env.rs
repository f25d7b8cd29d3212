//! Where variable values come from.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// A set of variables the lexer can look names up in.
///
/// `None` means unset; `Some("")` means set but empty (`${V-x}` and `${V:-x}` tell the
/// two apart). Names are compared exactly (case-sensitive), as BuildKit does on Linux.
///
/// The main implementation is for an ordered list of `name=value` entries — the shape of
/// an image's `Config.Env` and of BuildKit's environment lists: `[String]`, `Vec<&str>`,
/// `[&str; N]`, …. The name is the text before the first `=`; an entry without `=` sets
/// its whole text to the empty value; when a name repeats, the **last** entry wins.
/// Looking a name up scans the list from the end, with no allocation.
/// Maps (`HashMap`, `BTreeMap`) work too.
pub trait Env {
    /// The value of `name`, or `None` when it is unset.
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl<S: AsRef<str>> Env for [S] {
    fn lookup(&self, name: &str) -> Option<&str> {
        // A key never contains '=' (it ends at the first one), so such a name matches nothing;
        // ruling it out lets the loop compare a prefix and one byte instead of splitting.
        if name.contains('=') {
            return None;
        }
        self.iter().rev().find_map(|entry| {
            let entry = entry.as_ref();
            let rest = entry.strip_prefix(name)?;
            match rest.strip_prefix('=') {
                Some(value) => Some(value),
                None if rest.is_empty() => Some(""),
                None => None,
            }
        })
    }
}

impl<S: AsRef<str>> Env for Vec<S> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl<S: AsRef<str>, const N: usize> Env for [S; N] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl<H: BuildHasher> Env for HashMap<String, String, H> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl<E: Env + ?Sized> Env for &E {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}

#[cfg(test)]
mod tests {
    use super::Env;

    #[test]
    fn list_lookup_takes_the_last_entry_and_keeps_empty_apart_from_unset() {
        let env = ["A=1", "B=", "C", "A=2", "D=x=y", "=root"];
        assert_eq!(env.lookup("A"), Some("2"));
        assert_eq!(env.lookup("B"), Some(""));
        assert_eq!(env.lookup("C"), Some(""));
        assert_eq!(env.lookup("D"), Some("x=y"));
        assert_eq!(env.lookup(""), Some("root"));
        assert_eq!(env.lookup("a"), None, "names are case-sensitive");
        assert_eq!(env.lookup("E"), None);
        assert_eq!(env.lookup("D=x"), None, "a name with '=' is never a key");
        assert_eq!(env.lookup("AB"), None);
    }

    #[test]
    fn maps_are_environments() {
        let map: std::collections::HashMap<String, String> =
            [("K".to_owned(), String::new())].into_iter().collect();
        assert_eq!(map.lookup("K"), Some(""));
        assert_eq!(map.lookup("L"), None);
    }
}
