//! `hoist lint [-f FILE] [--format text|json] [PATH]`: run BuildKit's build checks and
//! hoist's own on a Dockerfile and print the findings like a compiler.
//!
//! Text output gives each finding as `Dockerfile:3:1: warning[FromAsCasing]: message`, the
//! source line with carets under the instruction, and a `hint:`, then a summary line. JSON
//! output is an array of `{rule, severity, file, line, column, message, url, hint}`. Exit
//! status: 0 when clean or only warnings and infos, 1 when a check at error level fired
//! (`# check=error=true`), 2 when the Dockerfile cannot be read or parsed.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use hoist_lint::{Finding, RuleSet, Severity};

use super::build::{DockerfileArgs, prepare};
use crate::diagnostics::use_color;

/// The exit status for a Dockerfile that cannot be read or parsed.
const EXIT_UNREADABLE: u8 = 2;

/// Check a Dockerfile for mistakes and slow or bloated builds.
#[derive(Debug, Args)]
pub(crate) struct LintArgs {
    #[command(flatten)]
    pub(crate) input: DockerfileArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

/// How findings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Compiler-style messages with the source line.
    Text,
    /// A JSON array.
    Json,
}

pub(crate) fn run(root: Option<&Path>, args: &LintArgs) -> ExitCode {
    let checked = match prepare(&args.input) {
        Ok(checked) => checked,
        Err(failure) => {
            failure.report();
            return ExitCode::from(EXIT_UNREADABLE);
        }
    };
    let findings = checked.lint(hoist_engine::existing_store(root).as_ref(), RuleSet::All);
    let name = &checked.source.name;
    let out = match args.format {
        Format::Text => render_text(
            name,
            &checked.source.text,
            &findings,
            use_color(&io::stdout()),
        ),
        Format::Json => render_json(name, &findings),
    };
    let _ = io::stdout().lock().write_all(out.as_bytes());
    if findings.iter().any(|f| f.severity == Severity::Error) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// ANSI styles, or nothing when colour is off.
struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\u{1b}[{code}m{text}\u{1b}[0m")
        } else {
            text.to_owned()
        }
    }

    fn severity_code(severity: Severity) -> &'static str {
        match severity {
            Severity::Error => "1;31",
            Severity::Warning => "1;33",
            Severity::Info => "1;36",
        }
    }
}

/// Compiler-style text: location, severity and rule, message; the line with carets under
/// the instruction; the hint; then a summary.
fn render_text(name: &str, source: &str, findings: &[Finding], color: bool) -> String {
    let style = Style { color };
    let mut out = String::new();
    let lines: Vec<&str> = source.lines().collect();
    let width = findings
        .iter()
        .map(|f| f.line().to_string().len())
        .max()
        .unwrap_or(1);
    for finding in findings {
        let code = Style::severity_code(finding.severity);
        let _ = writeln!(
            out,
            "{}: {}: {}",
            style.paint(
                "1",
                &format!("{name}:{}:{}", finding.line(), finding.column())
            ),
            style.paint(code, &format!("{}[{}]", finding.severity, finding.rule)),
            style.paint("1", &finding.message),
        );
        let gutter = " ".repeat(width);
        let line = (finding.line() as usize)
            .checked_sub(1)
            .and_then(|i| lines.get(i));
        if let Some(line) = line {
            let _ = writeln!(out, " {:>width$} | {line}", finding.line());
            let _ = writeln!(
                out,
                " {gutter} | {}",
                style.paint(
                    code,
                    &underline(line, finding.column(), span_text(source, finding))
                )
            );
        }
        if let Some(hint) = &finding.hint {
            let _ = writeln!(out, " {gutter} = {}: {hint}", style.paint("1;32", "hint"));
        }
        out.push('\n');
    }
    out.push_str(&summary(name, findings));
    out.push('\n');
    out
}

/// Carets under the finding's span on its first line (at least one), with the tabs before
/// it kept so they line up.
fn underline(line: &str, column: u32, span_text: &str) -> String {
    let start = column.saturating_sub(1) as usize;
    let mut out: String = line
        .chars()
        .take(start)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let width = span_text
        .lines()
        .next()
        .map_or(0, |first| first.chars().count());
    out.push_str(&"^".repeat(width.max(1)));
    out
}

fn span_text<'s>(source: &'s str, finding: &Finding) -> &'s str {
    source.get(finding.span.range()).unwrap_or_default()
}

/// `Dockerfile: 1 error, 2 warnings, 1 info` or `Dockerfile: no problems found`.
fn summary(name: &str, findings: &[Finding]) -> String {
    let count = |severity| findings.iter().filter(|f| f.severity == severity).count();
    let parts: Vec<String> = [
        (count(Severity::Error), "error", "errors"),
        (count(Severity::Warning), "warning", "warnings"),
        (count(Severity::Info), "info", "infos"),
    ]
    .into_iter()
    .filter(|(n, _, _)| *n > 0)
    .map(|(n, one, many)| format!("{n} {}", if n == 1 { one } else { many }))
    .collect();
    if parts.is_empty() {
        format!("{name}: no problems found")
    } else {
        format!("{name}: {}", parts.join(", "))
    }
}

fn render_json(name: &str, findings: &[Finding]) -> String {
    let items: Vec<serde_json::Value> = findings
        .iter()
        .map(|finding| {
            serde_json::json!({
                "rule": finding.rule.name(),
                "severity": finding.severity.as_str(),
                "file": name,
                "line": finding.line(),
                "column": finding.column(),
                "message": finding.message,
                "url": finding.url,
                "hint": finding.hint,
            })
        })
        .collect();
    let mut out = serde_json::to_string_pretty(&items)
        .expect("a JSON array of strings and numbers always serializes");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carets_follow_tabs_and_cover_the_first_line() {
        assert_eq!(underline("\tRUN a", 2, "RUN a"), "\t^^^^^");
        assert_eq!(underline("RUN a \\", 1, "RUN a \\\n  b"), "^^^^^^^");
        assert_eq!(underline("", 1, ""), "^");
    }
}
