//! What a check reports.

use hoist_dockerfile::Span;

use crate::{Rule, Severity};

/// One finding: which rule fired, where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule that fired.
    pub rule: Rule,
    /// Its severity after the `# check=` configuration was applied.
    pub severity: Severity,
    /// The message, word for word BuildKit's for BuildKit rules
    /// (`'as' and 'FROM' keywords' casing do not match`).
    pub message: String,
    /// Where: for BuildKit rules the instruction BuildKit points at (for
    /// `MultipleInstructionsDisallowed` the earlier, ignored instruction).
    pub span: Span,
    /// The rule's documentation page.
    pub url: &'static str,
    /// A one-line suggestion for fixing it.
    pub hint: Option<String>,
}

impl Finding {
    pub(crate) fn new(rule: Rule, span: Span, message: impl Into<String>) -> Self {
        Finding {
            rule,
            severity: rule.default_severity(),
            message: message.into(),
            span,
            url: rule.url(),
            hint: None,
        }
    }

    #[must_use]
    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The 1-based line the finding starts on.
    pub fn line(&self) -> u32 {
        self.span.start_line
    }

    /// The 1-based column (in characters) the finding starts at.
    pub fn column(&self) -> u32 {
        self.span.start_column
    }
}
