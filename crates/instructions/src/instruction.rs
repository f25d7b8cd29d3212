//! The typed instructions: one struct per Dockerfile instruction, gathered in [`Instruction`].
//!
//! Values are kept as written (quotes, escapes and `$VAR`s untouched): expansion needs the
//! ARG/ENV state of the stage and is the planner's job. Every value is a [`Word`] with the
//! [`Span`] it came from, and every instruction keeps its raw [`Node`], so the linter and the
//! CLI can point at the exact bytes.

use std::time::Duration;

use hoist_dockerfile::{Heredoc, KeyValue, Keyword, Node, Span};

use crate::InstructionError;
use crate::mount::MountSpec;
use crate::run::{Device, Network, Security, Spanned};

/// A string from the Dockerfile and where it is: an argument, a flag value, a JSON element.
///
/// For a flag value the span is the whole `--flag=value` word.
pub type Word = hoist_dockerfile::Arg;

/// One typed instruction (BuildKit's `instructions.Command`, plus FROM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `FROM [--platform=p] image [AS name]`.
    From(From),
    /// `RUN [--mount=...] [--network=...] [--security=...] [--device=...] command`.
    Run(Run),
    /// `CMD command`.
    Cmd(Cmd),
    /// `ENTRYPOINT command`.
    Entrypoint(Entrypoint),
    /// `SHELL ["executable", "parameters"]`.
    Shell(Shell),
    /// `LABEL key=value ...`.
    Label(Label),
    /// `MAINTAINER name` (deprecated).
    Maintainer(Maintainer),
    /// `EXPOSE port[/proto] ...`.
    Expose(Expose),
    /// `ENV key=value ...`.
    Env(Env),
    /// `ADD [flags] src... dest`.
    Add(Add),
    /// `COPY [flags] src... dest`.
    Copy(Copy),
    /// `VOLUME path ...`.
    Volume(Volume),
    /// `USER user[:group]`.
    User(User),
    /// `WORKDIR path`.
    Workdir(Workdir),
    /// `ARG name[=default] ...`.
    Arg(Arg),
    /// `ONBUILD instruction`.
    Onbuild(Onbuild),
    /// `STOPSIGNAL signal`.
    Stopsignal(Stopsignal),
    /// `HEALTHCHECK [options] CMD command` or `HEALTHCHECK NONE`.
    Healthcheck(Healthcheck),
}

impl Instruction {
    /// The raw syntax node the instruction was made from.
    pub fn node(&self) -> &Node {
        match self {
            Self::From(i) => &i.node,
            Self::Run(i) => &i.node,
            Self::Cmd(i) => &i.node,
            Self::Entrypoint(i) => &i.node,
            Self::Shell(i) => &i.node,
            Self::Label(i) => &i.node,
            Self::Maintainer(i) => &i.node,
            Self::Expose(i) => &i.node,
            Self::Env(i) => &i.node,
            Self::Add(i) => &i.node,
            Self::Copy(i) => &i.node,
            Self::Volume(i) => &i.node,
            Self::User(i) => &i.node,
            Self::Workdir(i) => &i.node,
            Self::Arg(i) => &i.node,
            Self::Onbuild(i) => &i.node,
            Self::Stopsignal(i) => &i.node,
            Self::Healthcheck(i) => &i.node,
        }
    }

    /// The whole instruction in the source (continuation lines and heredocs included).
    pub fn span(&self) -> Span {
        self.node().span
    }

    /// Which instruction this is.
    pub fn keyword(&self) -> Keyword {
        match self {
            Self::From(_) => Keyword::From,
            Self::Run(_) => Keyword::Run,
            Self::Cmd(_) => Keyword::Cmd,
            Self::Entrypoint(_) => Keyword::Entrypoint,
            Self::Shell(_) => Keyword::Shell,
            Self::Label(_) => Keyword::Label,
            Self::Maintainer(_) => Keyword::Maintainer,
            Self::Expose(_) => Keyword::Expose,
            Self::Env(_) => Keyword::Env,
            Self::Add(_) => Keyword::Add,
            Self::Copy(_) => Keyword::Copy,
            Self::Volume(_) => Keyword::Volume,
            Self::User(_) => Keyword::User,
            Self::Workdir(_) => Keyword::Workdir,
            Self::Arg(_) => Keyword::Arg,
            Self::Onbuild(_) => Keyword::Onbuild,
            Self::Stopsignal(_) => Keyword::Stopsignal,
            Self::Healthcheck(_) => Keyword::Healthcheck,
        }
    }
}

/// The command of RUN, CMD, ENTRYPOINT: shell form or exec (JSON) form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Shell form: one string, to be run with the stage's SHELL (`sh -c` by default).
    /// Empty when the instruction has no arguments at all.
    Shell(Word),
    /// Exec form: the JSON array, decoded. May be empty (`CMD []`).
    Exec(Vec<Word>),
}

impl Command {
    /// Builds the command from an instruction's argument list like BuildKit's
    /// `handleJSONArgs`: JSON arguments stay a list, other arguments are joined with spaces
    /// into one shell string.
    pub fn from_args(args: Vec<Word>, json: bool) -> Self {
        if json {
            return Self::Exec(args);
        }
        match args.as_slice() {
            [] => Self::Shell(Word {
                value: String::new(),
                span: Span::default(),
            }),
            [only] => Self::Shell(only.clone()),
            [first, .., last] => Self::Shell(Word {
                value: args
                    .iter()
                    .map(|w| w.value.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                span: join_spans(first.span, last.span),
            }),
        }
    }

    /// Whether the command runs through the shell (BuildKit's `PrependShell`).
    pub fn is_shell_form(&self) -> bool {
        matches!(self, Self::Shell(_))
    }

    /// BuildKit's `CmdLine`: the exec array, or the one shell string (no element when the
    /// shell form is empty).
    pub fn cmdline(&self) -> Vec<String> {
        match self {
            Self::Shell(word) if word.value.is_empty() => Vec::new(),
            Self::Shell(word) => vec![word.value.clone()],
            Self::Exec(words) => words.iter().map(|w| w.value.clone()).collect(),
        }
    }
}

/// `FROM [--platform=<platform>] <image> [AS <name>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The raw instruction.
    pub node: Node,
    /// The base image or stage name, as written (`alpine:3.20`, `$BASE`, `build`).
    pub image: Word,
    /// `--platform=`, as written.
    pub platform: Option<Word>,
    /// `AS <name>`.
    pub stage_name: Option<StageName>,
}

/// The `AS <name>` of a FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageName {
    /// The `AS` word as written (any case).
    pub as_keyword: Word,
    /// The name as written (`Build`).
    pub word: Word,
    /// The name lower-cased (`build`): stage names are case-insensitive.
    pub name: String,
}

/// `RUN`: a command run in the stage's filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The raw instruction.
    pub node: Node,
    /// The command. For `RUN <<EOF` it is the shell text of the line (`<<EOF`), and the
    /// script is in `heredocs`.
    pub command: Command,
    /// Heredoc bodies, raw (`chomp` recorded, tabs not yet stripped: BuildKit strips them
    /// when it writes the files).
    pub heredocs: Vec<Heredoc>,
    /// `--mount=` specs, in order; see [`MountSpec::resolve`].
    pub mounts: Vec<MountSpec>,
    /// `--network=`, when given.
    pub network: Option<Spanned<Network>>,
    /// `--security=`, when given.
    pub security: Option<Spanned<Security>>,
    /// `--device=` values, in order.
    pub devices: Vec<Device>,
    /// The flags given (names without `--`, each once, in order of first use).
    pub flags_used: Vec<String>,
}

/// `CMD`: the default command of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    /// The raw instruction.
    pub node: Node,
    /// The command.
    pub command: Command,
}

/// `ENTRYPOINT`: the executable of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entrypoint {
    /// The raw instruction.
    pub node: Node,
    /// The command.
    pub command: Command,
}

impl Entrypoint {
    /// BuildKit's `CmdLine` for ENTRYPOINT, where an empty command is `nil`: `None` for
    /// `ENTRYPOINT []` (which resets the entrypoint) and for a bare `ENTRYPOINT`.
    pub fn cmdline(&self) -> Option<Vec<String>> {
        let cmdline = self.command.cmdline();
        (!cmdline.is_empty()).then_some(cmdline)
    }
}

/// `SHELL ["executable", "parameters"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    /// The raw instruction.
    pub node: Node,
    /// The shell and its arguments (never empty).
    pub shell: Vec<Word>,
}

/// `LABEL key=value ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The raw instruction.
    pub node: Node,
    /// The pairs, raw (quotes kept), in order.
    pub labels: Vec<KeyValue>,
}

/// `MAINTAINER name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintainer {
    /// The raw instruction.
    pub node: Node,
    /// The rest of the line.
    pub maintainer: Word,
}

/// `EXPOSE port[/protocol] ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expose {
    /// The raw instruction.
    pub node: Node,
    /// The ports as written, in file order (BuildKit sorts them; the image config is a set).
    pub ports: Vec<Word>,
}

/// `ENV key=value ...` or legacy `ENV key value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// The raw instruction.
    pub node: Node,
    /// The pairs, raw (quotes, escapes and variables kept), with the separator used
    /// (the linter's LegacyKeyValueFormat needs it).
    pub pairs: Vec<KeyValue>,
}

/// A source of ADD or COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A path, URL or git reference, as written.
    Path(Word),
    /// An inline file from a heredoc (`COPY <<EOF /dest`).
    Heredoc(HeredocSource),
}

/// A heredoc used as an ADD/COPY source: a file named after the heredoc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeredocSource {
    /// The heredoc name (`EOF`), which is also the file name.
    pub name: String,
    /// The body, with leading tabs removed for `<<-`.
    pub content: String,
    /// Whether variables in the body are expanded (unquoted terminator).
    pub expand: bool,
    /// The `<<EOF` argument.
    pub word: Word,
}

/// `ADD [flags] <src>... <dest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// The raw instruction.
    pub node: Node,
    /// The sources in order.
    pub sources: Vec<Source>,
    /// The destination, as written.
    pub dest: Word,
    /// `--chown=`.
    pub chown: Option<Word>,
    /// `--chmod=`.
    pub chmod: Option<Word>,
    /// `--link`.
    pub link: bool,
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// `--checksum=`.
    pub checksum: Option<Word>,
    /// `--unpack[=bool]`, when given (otherwise archives from the context are unpacked and
    /// remote ones are not).
    pub unpack: Option<bool>,
    /// `--exclude=` patterns, in order.
    pub exclude: Vec<Word>,
}

/// `COPY [flags] <src>... <dest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// The raw instruction.
    pub node: Node,
    /// `--from=`: a stage name, stage index or image, as written.
    pub from: Option<Word>,
    /// The sources in order.
    pub sources: Vec<Source>,
    /// The destination, as written.
    pub dest: Word,
    /// `--chown=`.
    pub chown: Option<Word>,
    /// `--chmod=`.
    pub chmod: Option<Word>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude=` patterns, in order.
    pub exclude: Vec<Word>,
}

/// The path sources of a source list (BuildKit's `SourcePaths`).
pub fn source_paths(sources: &[Source]) -> Vec<&Word> {
    sources
        .iter()
        .filter_map(|s| match s {
            Source::Path(word) => Some(word),
            Source::Heredoc(_) => None,
        })
        .collect()
}

/// The heredoc sources of a source list (BuildKit's `SourceContents`).
pub fn heredoc_sources(sources: &[Source]) -> Vec<&HeredocSource> {
    sources
        .iter()
        .filter_map(|s| match s {
            Source::Heredoc(heredoc) => Some(heredoc),
            Source::Path(_) => None,
        })
        .collect()
}

/// `VOLUME path ...` or `VOLUME ["path", ...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The raw instruction.
    pub node: Node,
    /// The paths, surrounding whitespace removed, never empty.
    pub paths: Vec<Word>,
}

/// `USER user[:group]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The raw instruction.
    pub node: Node,
    /// The user, as written.
    pub user: Word,
}

/// `WORKDIR path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workdir {
    /// The raw instruction.
    pub node: Node,
    /// The path, as written.
    pub path: Word,
}

/// `ARG name[=default] ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The raw instruction.
    pub node: Node,
    /// The declared arguments, in order.
    pub args: Vec<ArgPair>,
}

/// One `name[=default]` of an ARG (BuildKit's `KeyValuePairOptional`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgPair {
    /// The name, as written (may still hold quotes or variables).
    pub key: String,
    /// The default value after the first `=`, raw; `None` without `=`.
    pub default: Option<String>,
    /// The description: a comment line directly above the ARG that starts with the name
    /// (`# foo sets foo` gives `sets foo`), or empty.
    pub doc: String,
    /// The whole `name=default` word.
    pub word: Word,
}

/// `ONBUILD <instruction>`: a trigger stored in the image for builds based on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onbuild {
    /// The raw instruction; its nested node is the trigger.
    pub node: Node,
    /// The trigger as text (what goes into the image config): the instruction after
    /// `ONBUILD`, followed by each heredoc as `\n<body><name>`.
    pub expression: String,
    /// The trigger instruction, upper-cased (`RUN`).
    pub trigger: String,
}

impl Onbuild {
    /// Converts the trigger into its typed instruction (BuildKit only does this when an image
    /// built on this one is built).
    pub fn parse_trigger(&self) -> Option<Result<Instruction, InstructionError>> {
        self.node.onbuild_child().map(crate::parse_instruction)
    }
}

/// `STOPSIGNAL signal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopsignal {
    /// The raw instruction.
    pub node: Node,
    /// The signal, as written (`SIGTERM`, `9`, `$SIG`).
    pub signal: Word,
}

/// `HEALTHCHECK [options] CMD command` or `HEALTHCHECK NONE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// The raw instruction.
    pub node: Node,
    /// What to run.
    pub test: HealthTest,
    /// `--interval=`; `None` when not given or zero (use the default).
    pub interval: Option<Duration>,
    /// `--timeout=`; `None` when not given or zero.
    pub timeout: Option<Duration>,
    /// `--start-period=`; `None` when not given or zero.
    pub start_period: Option<Duration>,
    /// `--start-interval=`; `None` when not given or zero.
    pub start_interval: Option<Duration>,
    /// `--retries=`; `None` when not given (0 also means "use the default").
    pub retries: Option<u32>,
}

/// The test of a HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthTest {
    /// `HEALTHCHECK NONE`: disable any inherited health check.
    None,
    /// `HEALTHCHECK CMD ["exe", "arg"]`: exec form.
    Cmd(Vec<Word>),
    /// `HEALTHCHECK CMD command`: run with the default shell.
    CmdShell(Word),
}

impl HealthTest {
    /// The image config's `Test` array: `["NONE"]`, `["CMD", ...]`, `["CMD-SHELL", "..."]`.
    pub fn to_config(&self) -> Vec<String> {
        match self {
            Self::None => vec!["NONE".to_owned()],
            Self::Cmd(words) => std::iter::once("CMD".to_owned())
                .chain(words.iter().map(|w| w.value.clone()))
                .collect(),
            Self::CmdShell(word) => vec!["CMD-SHELL".to_owned(), word.value.clone()],
        }
    }
}

/// A span from the start of `first` to the end of `last`.
pub(crate) fn join_spans(first: Span, last: Span) -> Span {
    Span {
        start: first.start,
        end: last.end.max(first.end),
        start_line: first.start_line,
        end_line: last.end_line.max(first.end_line),
        start_column: first.start_column,
    }
}
