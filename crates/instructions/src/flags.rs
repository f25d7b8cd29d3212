//! Instruction flags (`--from=build`, `--link`, `--mount=...`), parsed like BuildKit's `BFlags`.
//!
//! Each instruction declares the flags it knows in a [`FlagSet`]; [`FlagSet::parse`] checks
//! the `--name[=value]` words the parser collected and gives [`FlagValues`]. Rules:
//!
//! * string flags need `=value` (`--chown=` gives the empty string, `--chown` is an error);
//! * bool flags accept `--link`, `--link=true`, `--link=false` (any case); `--link=` is an error;
//! * only string-array flags (`--mount`, `--exclude`, `--device`) may repeat;
//! * a bare `--` ends the flags;
//! * an unknown flag is an error, with a "did you mean" suggestion among the declared flags
//!   (the suggested name is printed without `--`, as BuildKit does).

use hoist_dockerfile::{Flag, Span};

use crate::Word;
use crate::go::{did_you_mean, suggest};

/// The type of a declared flag, with its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagKind {
    /// `--name`, `--name=true`, `--name=false`.
    Bool {
        /// The value when the flag is not given.
        default: bool,
    },
    /// `--name=value`; the last one wins (a repeat is an error).
    String {
        /// The value when the flag is not given.
        default: String,
    },
    /// `--name=value`, repeatable; the values are collected in order.
    Strings,
}

/// The flags an instruction accepts (BuildKit's `BFlags` after its `AddXXX` calls).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagSet {
    declared: Vec<(String, FlagKind)>,
}

impl FlagSet {
    /// An empty set: every flag is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a bool flag.
    #[must_use]
    pub fn with_bool(self, name: &str, default: bool) -> Self {
        self.with(name, FlagKind::Bool { default })
    }

    /// Declares a string flag.
    #[must_use]
    pub fn with_string(self, name: &str, default: &str) -> Self {
        self.with(
            name,
            FlagKind::String {
                default: default.to_owned(),
            },
        )
    }

    /// Declares a repeatable string flag.
    #[must_use]
    pub fn with_strings(self, name: &str) -> Self {
        self.with(name, FlagKind::Strings)
    }

    /// Declares a flag of the given kind. A name declared twice keeps its first kind.
    #[must_use]
    pub fn with(mut self, name: &str, kind: FlagKind) -> Self {
        if !self.declared.iter().any(|(n, _)| n == name) {
            self.declared.push((name.to_owned(), kind));
        }
        self
    }

    /// Checks the flag words and collects their values.
    pub fn parse(&self, flags: &[Flag]) -> Result<FlagValues, FlagError> {
        let mut values = FlagValues {
            entries: self
                .declared
                .iter()
                .map(|(name, kind)| FlagEntry {
                    name: name.clone(),
                    value: match kind {
                        FlagKind::Bool { default } => FlagValue::Bool(*default),
                        FlagKind::String { default } => FlagValue::String(Word {
                            value: default.clone(),
                            span: Span::default(),
                        }),
                        FlagKind::Strings => FlagValue::Strings(Vec::new()),
                    },
                    span: None,
                })
                .collect(),
            used: Vec::new(),
        };
        for flag in flags {
            let text = flag.text.as_str();
            if text == "--" {
                break;
            }
            let Some(body) = text.strip_prefix("--") else {
                return Err(FlagError::NotAFlag {
                    text: text.to_owned(),
                    span: flag.span,
                });
            };
            let (name, value) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            let Some(entry) = values.entries.iter_mut().find(|e| e.name == name) else {
                let options: Vec<&str> = self.declared.iter().map(|(n, _)| n.as_str()).collect();
                return Err(FlagError::Unknown {
                    name: name.to_owned(),
                    suggestion: suggest(name, &options).map(str::to_owned),
                    span: flag.span,
                });
            };
            let repeatable = matches!(entry.value, FlagValue::Strings(_));
            if entry.span.is_some() && !repeatable {
                return Err(FlagError::Duplicate {
                    name: name.to_owned(),
                    span: flag.span,
                });
            }
            entry.span = Some(flag.span);
            values.used.push(name.to_owned());
            let missing = || FlagError::MissingValue {
                name: name.to_owned(),
                span: flag.span,
            };
            match &mut entry.value {
                FlagValue::Bool(current) => {
                    *current = match value.map(str::to_lowercase).as_deref() {
                        None => true,
                        Some("") => return Err(missing()),
                        Some("true") => true,
                        Some("false") => false,
                        Some(_) => {
                            return Err(FlagError::NotBool {
                                name: name.to_owned(),
                                value: value.unwrap_or_default().to_owned(),
                                span: flag.span,
                            });
                        }
                    };
                }
                FlagValue::String(current) => {
                    let value = value.ok_or_else(missing)?;
                    *current = Word {
                        value: value.to_owned(),
                        span: flag.span,
                    };
                }
                FlagValue::Strings(list) => {
                    let value = value.ok_or_else(missing)?;
                    list.push(Word {
                        value: value.to_owned(),
                        span: flag.span,
                    });
                }
            }
        }
        Ok(values)
    }
}

/// The result of [`FlagSet::parse`]: every declared flag's value (or default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagValues {
    entries: Vec<FlagEntry>,
    used: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FlagEntry {
    name: String,
    value: FlagValue,
    /// Where the flag was last given; `None` when it was not.
    span: Option<Span>,
}

/// A declared flag's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagValue {
    /// A bool flag.
    Bool(bool),
    /// A string flag: the value given (span = the flag word) or the default (empty span).
    String(Word),
    /// A repeatable flag: every value given, in order, each with its flag word's span.
    Strings(Vec<Word>),
}

impl FlagValues {
    /// A declared flag's value, `None` for an undeclared name.
    pub fn get(&self, name: &str) -> Option<&FlagValue> {
        self.entry(name).map(|e| &e.value)
    }

    /// A bool flag's value (its default when not given); false for other names.
    pub fn bool(&self, name: &str) -> bool {
        matches!(self.get(name), Some(FlagValue::Bool(true)))
    }

    /// A string flag's value (its default when not given).
    pub fn string(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(FlagValue::String(word)) => Some(&word.value),
            _ => None,
        }
    }

    /// A string flag's value with the flag word's span, only when the flag was given.
    pub fn given_string(&self, name: &str) -> Option<Word> {
        match self.entry(name) {
            Some(FlagEntry {
                value: FlagValue::String(word),
                span: Some(_),
                ..
            }) => Some(word.clone()),
            _ => None,
        }
    }

    /// A repeatable flag's values, in order (empty when not given or not repeatable).
    pub fn strings(&self, name: &str) -> &[Word] {
        match self.get(name) {
            Some(FlagValue::Strings(list)) => list,
            _ => &[],
        }
    }

    /// Whether the flag was given (even with its default value).
    pub fn is_used(&self, name: &str) -> bool {
        self.entry(name).is_some_and(|e| e.span.is_some())
    }

    /// Where the flag was (last) given.
    pub fn span(&self, name: &str) -> Option<Span> {
        self.entry(name).and_then(|e| e.span)
    }

    /// The names of the flags given, without `--`, each once, in order of first use
    /// (BuildKit's `FlagsUsed`).
    pub fn used(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in &self.used {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }

    fn entry(&self, name: &str) -> Option<&FlagEntry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

/// A flag word that [`FlagSet::parse`] rejects. Messages are BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlagError {
    /// A flag the instruction does not declare.
    #[error("unknown flag: --{name}{}", did_you_mean(.suggestion))]
    Unknown {
        /// The name without `--`.
        name: String,
        /// The closest declared flag name, without `--` (BuildKit prints it that way:
        /// `unknown flag: --form (did you mean from?)`).
        suggestion: Option<String>,
        /// The flag word.
        span: Span,
    },
    /// A non-repeatable flag given twice.
    #[error("duplicate flag specified: --{name}")]
    Duplicate {
        /// The name without `--`.
        name: String,
        /// The second flag word.
        span: Span,
    },
    /// A string flag without `=value`, or a bool flag with an empty `=`.
    #[error("missing a value on flag: --{name}")]
    MissingValue {
        /// The name without `--`.
        name: String,
        /// The flag word.
        span: Span,
    },
    /// A bool flag whose value is not true or false.
    #[error("expecting boolean value for flag --{name}, not: {value}")]
    NotBool {
        /// The name without `--`.
        name: String,
        /// The value given.
        value: String,
        /// The flag word.
        span: Span,
    },
    /// A flag word without the `--` prefix (only possible in a hand-built node).
    #[error("arg should start with -- : {text}")]
    NotAFlag {
        /// The word.
        text: String,
        /// The word's location.
        span: Span,
    },
}

impl FlagError {
    /// The flag word the error is about.
    pub fn span(&self) -> Span {
        match self {
            Self::Unknown { span, .. }
            | Self::Duplicate { span, .. }
            | Self::MissingValue { span, .. }
            | Self::NotBool { span, .. }
            | Self::NotAFlag { span, .. } => *span,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<Flag> {
        list.iter()
            .map(|text| Flag {
                text: (*text).to_owned(),
                span: Span::default(),
            })
            .collect()
    }

    #[test]
    fn values_and_defaults() {
        let set = FlagSet::new()
            .with_string("from", "")
            .with_bool("link", false)
            .with_strings("exclude");
        let values = set
            .parse(&words(&[
                "--link=TRUE",
                "--exclude=a",
                "--exclude=b",
                "--from=x",
            ]))
            .unwrap();
        assert!(values.bool("link"));
        assert_eq!(values.string("from"), Some("x"));
        let excludes: Vec<&str> = values
            .strings("exclude")
            .iter()
            .map(|w| w.value.as_str())
            .collect();
        assert_eq!(excludes, ["a", "b"]);
        assert_eq!(values.used(), ["link", "exclude", "from"]);
        let empty = set.parse(&[]).unwrap();
        assert!(!empty.bool("link"));
        assert_eq!(empty.given_string("from"), None);
        assert!(!empty.is_used("from"));
    }

    #[test]
    fn errors() {
        let set = FlagSet::new()
            .with_string("from", "")
            .with_bool("link", false);
        let message = |list: &[&str]| set.parse(&words(list)).unwrap_err().to_string();
        assert_eq!(
            message(&["--form=x"]),
            "unknown flag: --form (did you mean from?)"
        );
        assert_eq!(message(&["--zzzzzzz"]), "unknown flag: --zzzzzzz");
        assert_eq!(
            message(&["--from=a", "--from=b"]),
            "duplicate flag specified: --from"
        );
        assert_eq!(message(&["--from"]), "missing a value on flag: --from");
        assert_eq!(message(&["--link="]), "missing a value on flag: --link");
        assert_eq!(
            message(&["--link=maybe"]),
            "expecting boolean value for flag --link, not: maybe"
        );
        assert!(set.parse(&words(&["--", "--nope"])).is_ok());
    }
}
