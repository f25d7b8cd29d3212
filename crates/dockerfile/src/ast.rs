//! The raw syntax tree: what [`parse`](crate::parse) returns.
//!
//! The tree mirrors BuildKit's `parser.Node` but with named, typed fields instead of a linked
//! list: one [`Node`] per instruction, its `--flags`, its [`Args`] split the way BuildKit splits
//! them for that instruction, and the heredoc bodies that follow it. Nothing is expanded or
//! unquoted here except JSON arrays (and flag words, which BuildKit unquotes while collecting).
//!
//! Every piece carries a [`Span`] into the source text, so later layers (typed instructions,
//! lints, the CLI) can point at the exact bytes that produced it.

use std::ops::Range;

/// A location in the source: a half-open byte range plus the line/column of its ends.
///
/// Offsets index the text that was parsed (for [`parse_bytes`](crate::parse_bytes): the text
/// after lossy UTF-8 decoding, see there). Lines and columns are 1-based; columns count
/// characters (Unicode scalar values), not bytes, so a caret can be drawn under them.
/// `Span::default()` (all zero) means "no location" and only appears on errors about the file
/// as a whole that has no text at all (an empty file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte (`start == end` for an empty span).
    pub end: usize,
    /// 1-based line number of `start`.
    pub start_line: u32,
    /// 1-based line number of the last byte of the span (equal to `start_line` for spans
    /// within one line). For an instruction this is BuildKit's `EndLine`: it includes
    /// continuation lines, comment and blank lines inside a continuation, and heredoc bodies.
    pub end_line: u32,
    /// 1-based column of `start`, in characters from the start of its line.
    pub start_column: u32,
}

impl Span {
    /// The byte range, for slicing the source or building a diagnostic label.
    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the span covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// Parser directives (`# syntax=`, `# escape=`, `# check=`) found at the top of the file,
    /// in file order. At most one of each kind (a repeat is a parse error).
    pub directives: Vec<Directive>,
    /// The escape character in effect: `\` by default, or `` ` `` via `# escape=``.
    /// It is also the line-continuation character.
    pub escape: char,
    /// The instructions in file order. Never empty: a file without instructions is an error.
    pub instructions: Vec<Node>,
    /// Non-fatal findings, e.g. empty lines inside a line continuation.
    pub warnings: Vec<Warning>,
}

/// A parser directive from the top of the file (`# name=value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Which directive this is.
    pub kind: DirectiveKind,
    /// The name as written (`EScape`); [`DirectiveKind::as_str`] gives the canonical name.
    pub name: String,
    /// The raw value: everything after `=`, with surrounding whitespace removed
    /// (`docker/dockerfile:1`, `` ` ``, `skip=all;error=true`).
    pub value: String,
    /// The whole directive line (without its line break).
    pub span: Span,
    /// Just the value.
    pub value_span: Span,
}

/// The parser directives BuildKit knows. Unknown `# name=value` lines end the directive block
/// and are plain comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirectiveKind {
    /// `# syntax=<frontend image ref> [options]`.
    Syntax,
    /// `# escape=\` or `` # escape=` ``.
    Escape,
    /// `# check=skip=<rules>;error=<bool>` (build checks configuration).
    Check,
}

impl DirectiveKind {
    /// Every directive kind.
    pub const ALL: [DirectiveKind; 3] = [Self::Syntax, Self::Escape, Self::Check];

    /// The canonical lower-case name (`syntax`, `escape`, `check`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::Escape => "escape",
            Self::Check => "check",
        }
    }

    /// Looks a directive up by name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name))
    }
}

/// One instruction (`RUN ...`, `FROM ...`, also unknown ones such as `FOO bar`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The instruction keyword exactly as written (`from`, `Run`, `FORM`).
    pub keyword: String,
    /// The keyword lower-cased (`from`, `run`, `form`): BuildKit's `Node.Value`.
    pub name: String,
    /// The known instruction this keyword names, or `None` for an unknown keyword
    /// (which parses, and fails later in the typed layer; see [`crate::suggest_keyword`]).
    pub kind: Option<Keyword>,
    /// Where the keyword is.
    pub keyword_span: Span,
    /// The `--name[=value]` words between the keyword and the arguments, in order.
    /// A bare `--` ends the flags and is not included.
    pub flags: Vec<Flag>,
    /// The arguments, split according to the instruction kind.
    pub args: Args,
    /// Heredoc bodies that follow the instruction line, in the order their `<<NAME` markers
    /// appear. Only RUN, COPY and ADD in shell (non-JSON) form have heredocs; for
    /// `ONBUILD RUN <<EOF` the heredocs are stored here on the outer ONBUILD node, as in
    /// BuildKit. The nested node's list is always empty.
    pub heredocs: Vec<Heredoc>,
    /// The instruction text after line continuations are joined: leading whitespace of the
    /// first line removed, escape+newline removed, comment lines and empty lines inside the
    /// continuation dropped, heredoc bodies not included (BuildKit's `Node.Original`).
    /// For the node nested in ONBUILD: the text after `ONBUILD` and its flags.
    pub original: String,
    /// The comment lines directly above the instruction, text after `#` trimmed (BuildKit's
    /// `PrevComment`, used for stage and ARG descriptions). Comments accumulate since the
    /// previous instruction; an empty `#` line clears them. Parser directive lines are not
    /// included. Empty for the node nested in ONBUILD.
    pub comments: Vec<String>,
    /// From the keyword to the end of the instruction's last line (including continuation
    /// lines and heredoc bodies with their terminator line), line break excluded.
    pub span: Span,
}

/// The arguments of an instruction, in the shape BuildKit's line parser gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// Nothing after the keyword (and flags): `RUN`, `HEALTHCHECK`, `ENV`, `ONBUILD`.
    /// Whether that is allowed is for the typed layer to decide.
    Empty,
    /// The rest of the line as one string, verbatim (quotes, escapes and inner whitespace
    /// kept). Shell form of RUN/CMD/ENTRYPOINT/SHELL, and always for MAINTAINER, USER,
    /// WORKDIR and STOPSIGNAL.
    Text(Arg),
    /// A JSON array of strings, decoded (the exec form of RUN/CMD/ENTRYPOINT/SHELL and the
    /// JSON form of ADD/COPY/VOLUME). May be empty (`CMD []`).
    Json(Vec<Arg>),
    /// Words: for FROM/EXPOSE (and ADD/COPY/VOLUME when not JSON) split on runs of ASCII
    /// whitespace; for ARG split on unquoted, unescaped whitespace with quotes kept
    /// (`abc="123 456"` stays one word).
    Words(Vec<Arg>),
    /// ENV and LABEL: `key=value` pairs, or one legacy `key value` pair. Values are raw
    /// (quotes and escapes kept; the typed layer expands and unquotes them).
    KeyValues(Vec<KeyValue>),
    /// HEALTHCHECK with at least a type word: `kind` is the first word (`CMD`, `NONE`, or
    /// anything else, unvalidated) and `command` is what follows it, parsed like CMD:
    /// one of [`Args::Empty`], [`Args::Text`] or [`Args::Json`].
    Healthcheck {
        /// The first word after the flags (`CMD`, `NONE`, ...), as written.
        kind: Arg,
        /// The command after the type word: `Empty`, `Text` or `Json`.
        command: Box<Args>,
    },
    /// ONBUILD: the nested instruction, parsed with the same rules.
    Onbuild(Box<Node>),
    /// An unknown instruction: the rest of the line kept verbatim for messages and printing.
    /// BuildKit drops it (its dump shows a single `""`).
    Unknown(Arg),
}

/// One argument string with the source text that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The argument value. Raw text, except for JSON array elements (decoded).
    pub value: String,
    /// Where the raw text is. For a JSON element: the string literal including its quotes.
    /// For a value joined across continuation lines the span runs from its first to its last
    /// byte in the source, so it also covers the removed escape characters and line breaks.
    pub span: Span,
}

/// One `key=value` (or legacy `key value`) assignment of ENV or LABEL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, raw (may still contain quotes: `"my key"=x`).
    pub key: Arg,
    /// The value, raw (quotes and escapes kept).
    pub value: Arg,
    /// Which syntax was used.
    pub separator: Separator,
    /// The whole assignment (`key=value`, or `key value...` for the legacy form).
    pub span: Span,
}

/// How an ENV/LABEL key and value were separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Separator {
    /// `key=value` (any number of pairs per instruction).
    Equals,
    /// Legacy `key value`: the key is the first word, the value the whole rest of the line.
    Whitespace,
}

impl Separator {
    /// The separator as BuildKit's dump shows it: `"="` or `""`.
    pub fn as_dump_str(self) -> &'static str {
        match self {
            Self::Equals => "=",
            Self::Whitespace => "",
        }
    }
}

/// A `--name[=value]` flag word before the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The flag as BuildKit collects it: always starts with `--`; quotes removed and
    /// backslash escapes resolved (`--chown="a b"` gives `--chown=a b`).
    pub text: String,
    /// The raw flag word in the source.
    pub span: Span,
}

impl Flag {
    /// The flag name without `--` and without the value (`mount` for `--mount=type=cache`).
    pub fn name(&self) -> &str {
        let body = self.text.strip_prefix("--").unwrap_or(&self.text);
        body.split_once('=').map_or(body, |(name, _)| name)
    }

    /// The value after the first `=`, or `None` for a bare `--flag`.
    pub fn value(&self) -> Option<&str> {
        let body = self.text.strip_prefix("--").unwrap_or(&self.text);
        body.split_once('=').map(|(_, value)| value)
    }
}

/// A heredoc attached to RUN/COPY/ADD: `<<EOF` on the instruction line, body on the lines
/// that follow, up to a line holding just the terminator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word with quotes removed (`EOF` for `<<"EOF"`, `file.txt`).
    pub name: String,
    /// The file descriptor written before `<<` (`3` in `3<<EOF`), 0 when absent.
    pub file_descriptor: u32,
    /// Whether the body undergoes variable expansion: false when any part of the terminator
    /// word was quoted (`<<'EOF'`, `<<"EOF"`, `<<E"O"F`).
    pub expand: bool,
    /// `<<-EOF`: leading tabs are stripped from body lines (see
    /// [`Heredoc::chomped_content`]) and the terminator line may be indented with tabs.
    pub chomp: bool,
    /// The raw body: every line between the instruction and the terminator line, each with
    /// its line break; leading tabs are not yet stripped even when `chomp` is set.
    pub content: String,
    /// The `<<EOF` word on the instruction line.
    pub marker_span: Span,
    /// The body lines and the terminator line.
    pub span: Span,
}

impl Heredoc {
    /// The body as the instruction uses it: with `chomp`, leading tabs removed from every
    /// line; otherwise the raw content.
    pub fn chomped_content(&self) -> std::borrow::Cow<'_, str> {
        if self.chomp {
            std::borrow::Cow::Owned(crate::chomp_heredoc_content(&self.content))
        } else {
            std::borrow::Cow::Borrowed(&self.content)
        }
    }
}

/// A non-fatal finding made while parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What was found.
    pub kind: WarningKind,
    /// BuildKit's short message, e.g.
    /// `Empty continuation line found in: RUN apt-get update     && apt-get install`.
    pub message: String,
    /// The instruction the warning is about.
    pub span: Span,
}

/// The kinds of parser warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// Empty (or whitespace-only) lines inside a line continuation. BuildKit's build check
    /// `NoEmptyContinuation`.
    EmptyContinuationLine {
        /// The 1-based numbers of the empty lines.
        lines: Vec<u32>,
    },
}

impl WarningKind {
    /// BuildKit's detail text for this warning.
    pub fn detail(&self) -> &'static str {
        match self {
            Self::EmptyContinuationLine { .. } => {
                "Empty continuation lines will become errors in a future release"
            }
        }
    }

    /// The documentation page for this warning.
    pub fn url(&self) -> &'static str {
        match self {
            Self::EmptyContinuationLine { .. } => {
                "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/"
            }
        }
    }
}

/// The instructions of the Dockerfile reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Keyword {
    /// `ADD`
    Add,
    /// `ARG`
    Arg,
    /// `CMD`
    Cmd,
    /// `COPY`
    Copy,
    /// `ENTRYPOINT`
    Entrypoint,
    /// `ENV`
    Env,
    /// `EXPOSE`
    Expose,
    /// `FROM`
    From,
    /// `HEALTHCHECK`
    Healthcheck,
    /// `LABEL`
    Label,
    /// `MAINTAINER` (deprecated)
    Maintainer,
    /// `ONBUILD`
    Onbuild,
    /// `RUN`
    Run,
    /// `SHELL`
    Shell,
    /// `STOPSIGNAL`
    Stopsignal,
    /// `USER`
    User,
    /// `VOLUME`
    Volume,
    /// `WORKDIR`
    Workdir,
}

impl Keyword {
    /// Every instruction, in alphabetical order.
    pub const ALL: [Keyword; 18] = [
        Self::Add,
        Self::Arg,
        Self::Cmd,
        Self::Copy,
        Self::Entrypoint,
        Self::Env,
        Self::Expose,
        Self::From,
        Self::Healthcheck,
        Self::Label,
        Self::Maintainer,
        Self::Onbuild,
        Self::Run,
        Self::Shell,
        Self::Stopsignal,
        Self::User,
        Self::Volume,
        Self::Workdir,
    ];

    /// The lower-case keyword (`run`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Arg => "arg",
            Self::Cmd => "cmd",
            Self::Copy => "copy",
            Self::Entrypoint => "entrypoint",
            Self::Env => "env",
            Self::Expose => "expose",
            Self::From => "from",
            Self::Healthcheck => "healthcheck",
            Self::Label => "label",
            Self::Maintainer => "maintainer",
            Self::Onbuild => "onbuild",
            Self::Run => "run",
            Self::Shell => "shell",
            Self::Stopsignal => "stopsignal",
            Self::User => "user",
            Self::Volume => "volume",
            Self::Workdir => "workdir",
        }
    }

    /// The upper-case keyword as conventionally written (`RUN`).
    pub fn as_upper_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Arg => "ARG",
            Self::Cmd => "CMD",
            Self::Copy => "COPY",
            Self::Entrypoint => "ENTRYPOINT",
            Self::Env => "ENV",
            Self::Expose => "EXPOSE",
            Self::From => "FROM",
            Self::Healthcheck => "HEALTHCHECK",
            Self::Label => "LABEL",
            Self::Maintainer => "MAINTAINER",
            Self::Onbuild => "ONBUILD",
            Self::Run => "RUN",
            Self::Shell => "SHELL",
            Self::Stopsignal => "STOPSIGNAL",
            Self::User => "USER",
            Self::Volume => "VOLUME",
            Self::Workdir => "WORKDIR",
        }
    }

    /// Looks a keyword up, case-insensitively (`"Run"` → `Run`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|keyword| keyword.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether the instruction may carry heredocs (RUN, COPY, ADD).
    pub fn allows_heredocs(self) -> bool {
        matches!(self, Self::Run | Self::Copy | Self::Add)
    }
}

impl std::fmt::Display for Keyword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_upper_str())
    }
}

impl Dockerfile {
    /// The directive of the given kind, if present.
    pub fn directive(&self, kind: DirectiveKind) -> Option<&Directive> {
        self.directives.iter().find(|d| d.kind == kind)
    }

    /// The first and last line covered by instructions (BuildKit's root `StartLine` and
    /// `EndLine`), 1-based, inclusive.
    pub fn line_range(&self) -> (u32, u32) {
        let first = self.instructions.first().map_or(0, |n| n.span.start_line);
        let last = self.instructions.last().map_or(0, |n| n.span.end_line);
        (first, last)
    }
}

impl Node {
    /// Whether the arguments are in JSON (exec) form; for HEALTHCHECK, whether its command
    /// is. BuildKit's `Attributes["json"]`. Always false for ONBUILD itself (ask the nested
    /// node).
    pub fn is_json_form(&self) -> bool {
        match &self.args {
            Args::Json(_) => true,
            Args::Healthcheck { command, .. } => matches!(**command, Args::Json(_)),
            _ => false,
        }
    }

    /// The argument strings in BuildKit's flat order (its `Next` chain): JSON elements or
    /// words in order; for ENV/LABEL `key, value, separator` triples (separator `"="` or
    /// `""`); for HEALTHCHECK the type followed by the command's strings; for an unknown
    /// instruction a single `""`; for ONBUILD nothing (see [`Args::Onbuild`]).
    pub fn arg_strings(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.args.push_strings(&mut out);
        out
    }

    /// The node nested in ONBUILD, if this is an ONBUILD with an instruction.
    pub fn onbuild_child(&self) -> Option<&Node> {
        match &self.args {
            Args::Onbuild(child) => Some(child),
            _ => None,
        }
    }
}

impl Args {
    fn push_strings<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Args::Empty | Args::Onbuild(_) => {}
            Args::Text(arg) => out.push(&arg.value),
            Args::Json(args) | Args::Words(args) => {
                out.extend(args.iter().map(|a| a.value.as_str()));
            }
            Args::KeyValues(pairs) => {
                for pair in pairs {
                    out.push(&pair.key.value);
                    out.push(&pair.value.value);
                    out.push(pair.separator.as_dump_str());
                }
            }
            Args::Healthcheck { kind, command } => {
                out.push(&kind.value);
                command.push_strings(out);
            }
            Args::Unknown(_) => out.push(""),
        }
    }
}
