//! Rendering problems found at a place in a source file, compiler style.
//!
//! [`SourceError`] is generic (file name, source text, span, message, label, help) so every
//! command that reads a Dockerfile (`hoist lint`, `hoist build`) reports parse errors and
//! typed-instruction errors the same way: `file:line:col`, the offending line with a label
//! under the span, and a `help:` line, drawn by miette. Colour only goes to a terminal, and
//! never when `NO_COLOR` is set, so piped output (and test snapshots) is plain text.

use std::io::IsTerminal;

use hoist_dockerfile::{ParseError, Span};
use hoist_instructions::InstructionError;
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};

/// A problem at a span of a source file.
#[derive(Debug, Clone)]
pub(crate) struct SourceError<'a> {
    /// The file name to show (`Dockerfile`, `ci/app.Dockerfile`, `<stdin>`).
    pub(crate) file: &'a str,
    /// The whole source text the span indexes.
    pub(crate) source: &'a str,
    /// Where the problem is.
    pub(crate) span: Span,
    /// What is wrong (`unknown instruction: FORM (did you mean FROM?)`).
    pub(crate) message: String,
    /// The label under the span (`unknown instruction`).
    pub(crate) label: String,
    /// How to fix it.
    pub(crate) help: Option<String>,
}

impl<'a> SourceError<'a> {
    /// A Dockerfile parse error.
    pub(crate) fn from_parse(file: &'a str, source: &'a str, error: &ParseError) -> Self {
        SourceError {
            file,
            source,
            span: error.span,
            message: error.to_string(),
            label: short_label(&error.to_string()),
            help: error.kind.help().map(str::to_owned),
        }
    }

    /// An instruction the typed layer rejects (unknown keyword, bad flag, ...).
    pub(crate) fn from_instruction(
        file: &'a str,
        source: &'a str,
        error: &InstructionError,
    ) -> Self {
        SourceError {
            file,
            source,
            span: error.span,
            message: error.to_string(),
            label: short_label(&error.to_string()),
            help: error.kind.help().map(str::to_owned),
        }
    }

    /// The rendered report, with colour when `color` is set.
    pub(crate) fn render(&self, color: bool) -> String {
        // A span past the end (an empty file) is pinned to the end so miette can draw it.
        let end = self.source.len();
        let start = self.span.start.min(end);
        let len = self.span.len().min(end - start);
        let mut diagnostic = MietteDiagnostic::new(self.message.clone())
            .with_label(LabeledSpan::at(start..start + len, self.label.clone()));
        if let Some(help) = &self.help {
            diagnostic = diagnostic.with_help(help.clone());
        }
        let report = miette::Report::new(diagnostic)
            .with_source_code(NamedSource::new(self.file, self.source.to_owned()));
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_wrap_lines(false)
            .with_links(false);
        let mut out = String::new();
        match handler.render_report(&mut out, report.as_ref()) {
            Ok(()) => out,
            // Rendering into a String cannot fail short of a bug in miette; fall back to
            // the plain location and message rather than losing the error.
            Err(_) => format!(
                "{}:{}:{}: {}\n",
                self.file, self.span.start_line, self.span.start_column, self.message
            ),
        }
    }
}

/// The label under the span: the message up to its first `: ` (`unknown instruction`,
/// `unknown flag`), the whole message when it has none.
fn short_label(message: &str) -> String {
    message.split(": ").next().unwrap_or(message).to_owned()
}

/// Whether to colour output written to `stream`: a terminal, and `NO_COLOR` unset or empty.
pub(crate) fn use_color(stream: &impl IsTerminal) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_color && stream.is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_line_label_and_help() {
        let source = "FROM alpine\nFORM x\n";
        let error = SourceError {
            file: "Dockerfile",
            source,
            span: Span {
                start: 12,
                end: 16,
                start_line: 2,
                end_line: 2,
                start_column: 1,
            },
            message: "unknown instruction: FORM (did you mean FROM?)".to_owned(),
            label: "unknown instruction".to_owned(),
            help: Some("use one of the Dockerfile instructions".to_owned()),
        };
        let text = error.render(false);
        assert!(
            text.contains("unknown instruction: FORM (did you mean FROM?)"),
            "{text}"
        );
        assert!(text.contains("[Dockerfile:2:1]"), "{text}");
        assert!(text.contains("FORM x"), "{text}");
        assert!(
            text.contains("help: use one of the Dockerfile instructions"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "no ANSI without colour: {text}");
        assert!(error.render(true).contains('\u{1b}'));
    }

    #[test]
    fn renders_a_span_past_the_end() {
        let error = SourceError {
            file: "Dockerfile",
            source: "",
            span: Span::default(),
            message: "file with no instructions".to_owned(),
            label: "here".to_owned(),
            help: None,
        };
        assert!(error.render(false).contains("file with no instructions"));
    }
}
