//! Printing a parsed Dockerfile back as Dockerfile text.
//!
//! The output is canonical rather than faithful: one line per instruction (continuations
//! joined), single spaces between words, flags re-quoted only where needed, JSON arrays
//! re-encoded. Parsing the printed text gives the same tree again (keywords, flags,
//! arguments, heredocs, directives, comments), only the spans and `original` texts differ.
//!
//! One value cannot round-trip: a shell-form text whose last character is the escape
//! character preceded by a non-escape character (possible only when the source had
//! trailing Unicode whitespace after it); printed, it would read as a line continuation.

use std::fmt::{self, Write as _};

use crate::json::{JsonArray, parse_array_prefix};
use crate::{Args, DirectiveKind, Dockerfile, Keyword, Node, Separator};

impl fmt::Display for Dockerfile {
    /// Directives, then each instruction preceded by its comments and followed by its
    /// heredoc bodies. Every line ends with `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote_directive = false;
        if self.escape != '\\' && self.directive(DirectiveKind::Escape).is_none() {
            writeln!(f, "# escape={}", self.escape)?;
            wrote_directive = true;
        }
        for directive in &self.directives {
            writeln!(f, "# {}={}", directive.kind.as_str(), directive.value)?;
            wrote_directive = true;
        }
        let first_has_comments = self
            .instructions
            .first()
            .is_some_and(|node| !node.comments.is_empty());
        // A blank line ends the directive block, so a first comment such as `# syntax=x`
        // stays a comment.
        if wrote_directive || first_has_comments {
            writeln!(f)?;
        }
        for node in &self.instructions {
            for comment in &node.comments {
                writeln!(f, "# {comment}")?;
            }
            if node.keyword.is_empty() {
                // Only a lone escape character at the end of the file (a continuation into
                // nothing) parses to a node without a keyword; printed empty, it would vanish.
                writeln!(f, "{}", self.escape)?;
                continue;
            }
            writeln!(f, "{node}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Node {
    /// The instruction on one line, followed (on the next lines) by its heredoc bodies and
    /// their terminators. No final line break; comments are not included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = String::new();
        push_instruction(&mut line, self);
        f.write_str(&line)?;
        for heredoc in &self.heredocs {
            f.write_char('\n')?;
            f.write_str(&heredoc.content)?;
            f.write_str(&heredoc.name)?;
        }
        Ok(())
    }
}

fn push_instruction(out: &mut String, node: &Node) {
    out.push_str(&node.keyword);
    for flag in &node.flags {
        out.push(' ');
        push_flag(out, &flag.text);
    }
    let mut args = String::new();
    push_args(&mut args, node);
    if !args.is_empty() {
        out.push(' ');
        // Arguments that start like a flag need the `--` that ended the flags.
        if args.starts_with("--") {
            out.push_str("-- ");
        }
        out.push_str(&args);
    }
}

/// A flag word, quoted when it holds characters the flag reader would interpret: only the
/// value (`--chown="a b"`) when the name is plain, else the whole body.
fn push_flag(out: &mut String, text: &str) {
    let body = text.strip_prefix("--").unwrap_or(text);
    out.push_str("--");
    let plain = |s: &str| {
        !s.chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
    };
    if plain(body) && !body.is_empty() {
        out.push_str(body);
        return;
    }
    let quoted = match body.split_once('=') {
        Some((name, value)) if plain(name) && !name.is_empty() => {
            out.push_str(name);
            out.push('=');
            value
        }
        _ => body,
    };
    out.push('"');
    for c in quoted.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn push_args(out: &mut String, node: &Node) {
    match &node.args {
        Args::Empty => {}
        Args::Text(arg) | Args::Unknown(arg) => out.push_str(&arg.value),
        Args::Json(items) => push_json(out, items.iter().map(|a| a.value.as_str())),
        Args::Words(words) => {
            let mut separator = " ";
            let json_capable = matches!(
                node.kind,
                Some(Keyword::Add | Keyword::Copy | Keyword::Volume)
            );
            if json_capable && words.len() > 1 {
                let spaced: Vec<&str> = words.iter().map(|w| w.value.as_str()).collect();
                // Words that only became words because the source JSON was invalid (say, a
                // raw tab inside a string) could form valid JSON once re-spaced; a vertical
                // tab separates words but is never valid inside JSON.
                if parse_array_prefix(&spaced.join(" ")) != JsonArray::NotJson {
                    separator = "\u{b}";
                }
            }
            for (i, word) in words.iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                out.push_str(&word.value);
            }
        }
        Args::KeyValues(pairs) => {
            for (i, pair) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&pair.key.value);
                out.push_str(match pair.separator {
                    Separator::Equals => "=",
                    Separator::Whitespace => " ",
                });
                out.push_str(&pair.value.value);
            }
        }
        Args::Healthcheck { kind, command } => {
            out.push_str(&kind.value);
            match &**command {
                Args::Text(arg) => {
                    out.push(' ');
                    out.push_str(&arg.value);
                }
                Args::Json(items) => {
                    out.push(' ');
                    push_json(out, items.iter().map(|a| a.value.as_str()));
                }
                _ => {}
            }
        }
        Args::Onbuild(child) => push_instruction(out, child),
    }
}

/// A JSON array of strings; control characters are `\u` escaped so the output stays on
/// one line.
fn push_json<'a>(out: &mut String, items: impl Iterator<Item = &'a str>) {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('"');
        for c in item.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push(']');
}
