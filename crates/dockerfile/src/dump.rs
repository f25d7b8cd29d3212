//! BuildKit's AST dump (`(run "echo hi")`), used by its parser tests, and Go's
//! `strconv.Quote`, which the dump is written in.

use std::fmt::Write as _;

use crate::{Args, Dockerfile, Node};

/// Quotes a string exactly like Go's `strconv.Quote`.
///
/// `"` and `\` are backslash-escaped; `\a \b \f \n \r \t \v` are used for those control
/// characters; other ASCII control characters and DEL become `\xHH`; printable non-ASCII
/// characters are kept literally (`"♥"`); non-printable ones become `\uHHHH` or
/// `\UHHHHHHHH`. Rust's `{:?}` differs (`\0`, `\u{..}`), hence this function.
///
/// "Printable" follows Go's `strconv.IsPrint` for all assigned characters that occur in
/// practice (controls, format characters, separators other than U+0020, private use,
/// noncharacters and unassigned planes are escaped); unassigned code points inside the
/// assigned planes are treated as printable.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_go_quoted(&mut out, s);
    out
}

pub(crate) fn push_go_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' '..='~' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
}

/// Non-ASCII characters Go's `strconv.IsPrint` rejects: categories Cc, Cf, Co, Cs, Zl, Zp,
/// Zs (other than U+0020) and noncharacters, as inclusive ranges.
const NOT_PRINTABLE: &[(u32, u32)] = &[
    (0x80, 0xa0),
    (0xad, 0xad),
    (0x600, 0x605),
    (0x61c, 0x61c),
    (0x6dd, 0x6dd),
    (0x70f, 0x70f),
    (0x890, 0x891),
    (0x8e2, 0x8e2),
    (0x1680, 0x1680),
    (0x180e, 0x180e),
    (0x2000, 0x200f),
    (0x2028, 0x202f),
    (0x205f, 0x2064),
    (0x2066, 0x206f),
    (0x3000, 0x3000),
    (0xd800, 0xf8ff),
    (0xfdd0, 0xfdef),
    (0xfeff, 0xfeff),
    (0xfff0, 0xfffb),
    (0xfffe, 0xffff),
    (0x110bd, 0x110bd),
    (0x110cd, 0x110cd),
    (0x13430, 0x1343f),
    (0x1bca0, 0x1bca3),
    (0x1d173, 0x1d17a),
    (0xe0000, 0xe0fff),
    (0xf0000, 0x10ffff),
];

fn is_go_printable(c: char) -> bool {
    let cp = c as u32;
    if (cp & 0xfffe) == 0xfffe {
        return false;
    }
    !NOT_PRINTABLE
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&cp))
}

impl Node {
    /// This instruction in BuildKit's dump format, without the surrounding parentheses:
    /// `run "echo hi"`, `copy ["--from=x"] "a" "/b"`, `onbuild (run "x")`.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        self.dump_into(&mut out);
        out
    }

    fn dump_into(&self, out: &mut String) {
        let start = out.len();
        out.push_str(&self.name);
        if !self.flags.is_empty() {
            out.push_str(" [");
            for (i, flag) in self.flags.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                push_go_quoted(out, &flag.text);
            }
            out.push(']');
        }
        if let Args::Onbuild(child) = &self.args {
            out.push_str(" (");
            child.dump_into(out);
            out.push(')');
        } else {
            for value in self.arg_strings() {
                out.push(' ');
                push_go_quoted(out, value);
            }
        }
        // BuildKit trims the dump with strings.TrimSpace; only a keyword made of or ending in
        // Unicode whitespace is affected.
        let trimmed_end = out.trim_end().len();
        out.truncate(trimmed_end);
        let lead = out[start..].len() - out[start..].trim_start().len();
        if lead > 0 {
            out.replace_range(start..start + lead, "");
        }
    }
}

impl Dockerfile {
    /// The whole file in BuildKit's dump format: one `(node)` per instruction, separated by
    /// `\n`, no final line break (BuildKit's test files hold this plus `"\n"`).
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.instructions.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push('(');
            node.dump_into(&mut out);
            out.push(')');
        }
        out
    }
}
