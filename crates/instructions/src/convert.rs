//! Node → typed instruction: BuildKit's `ParseInstruction` and its per-instruction parsers.
//!
//! Each instruction is checked in BuildKit's order (argument count, then flags, then values),
//! because the first failing check decides the message the user sees.

use std::time::Duration;

use hoist_dockerfile::{
    Args, KeyValue, Keyword, Node, Separator, Span, chomp_heredoc_content, parse_heredoc_word,
    suggest_keyword,
};

use crate::flags::{FlagSet, FlagValues};
use crate::go::{GoDuration, parse_duration, parse_int32};
use crate::instruction::{
    Add, Arg, ArgPair, Cmd, Command, Copy, Entrypoint, Env, Expose, From, HealthTest, Healthcheck,
    HeredocSource, Instruction, Label, Maintainer, Onbuild, Run, Shell, Source, StageName,
    Stopsignal, User, Volume, Word, Workdir,
};
use crate::mount::MountSpec;
use crate::run::{Device, Network, Security, Spanned, parse_device};
use crate::{InstructionError, InstructionErrorKind};

/// Converts one parsed instruction into its typed form (BuildKit's `ParseInstruction`).
///
/// FROM is returned as [`Instruction::From`]; grouping into stages is
/// [`parse_stages`](crate::parse_stages)' job. Unknown keywords fail here with a suggestion.
pub fn parse_instruction(node: &Node) -> Result<Instruction, InstructionError> {
    let Some(keyword) = node.kind else {
        return Err(error(
            node,
            InstructionErrorKind::UnknownInstruction {
                instruction: node.keyword.clone(),
                suggestion: suggest_keyword(&node.keyword),
            },
            node.keyword_span,
        ));
    };
    let request = Request {
        node,
        args: flatten_args(&node.args),
        json: node.is_json_form(),
    };
    Ok(match keyword {
        Keyword::Env => Instruction::Env(request.env()?),
        Keyword::Maintainer => Instruction::Maintainer(request.maintainer()?),
        Keyword::Label => Instruction::Label(request.label()?),
        Keyword::Add => Instruction::Add(request.add()?),
        Keyword::Copy => Instruction::Copy(request.copy()?),
        Keyword::From => Instruction::From(request.from()?),
        Keyword::Onbuild => Instruction::Onbuild(request.onbuild()?),
        Keyword::Workdir => Instruction::Workdir(request.workdir()?),
        Keyword::Run => Instruction::Run(request.run()?),
        Keyword::Cmd => Instruction::Cmd(request.cmd()?),
        Keyword::Healthcheck => Instruction::Healthcheck(request.healthcheck()?),
        Keyword::Entrypoint => Instruction::Entrypoint(request.entrypoint()?),
        Keyword::Expose => Instruction::Expose(request.expose()?),
        Keyword::User => Instruction::User(request.user()?),
        Keyword::Volume => Instruction::Volume(request.volume()?),
        Keyword::Stopsignal => Instruction::Stopsignal(request.stopsignal()?),
        Keyword::Arg => Instruction::Arg(request.arg()?),
        Keyword::Shell => Instruction::Shell(request.shell()?),
    })
}

/// BuildKit's `getComment`: the text after `<name> ` of the first comment line that starts
/// with it.
pub(crate) fn doc_comment(comments: &[String], name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    let prefix = format!("{name} ");
    comments
        .iter()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_default()
        .to_owned()
}

fn error(node: &Node, kind: InstructionErrorKind, span: Span) -> InstructionError {
    InstructionError {
        kind: Box::new(kind),
        span,
        instruction: node.span,
    }
}

/// The arguments as BuildKit's `nodeArgs` lists them.
fn flatten_args(args: &Args) -> Vec<Word> {
    let mut out = Vec::new();
    push_args(args, &mut out);
    out
}

fn push_args(args: &Args, out: &mut Vec<Word>) {
    match args {
        Args::Empty => {}
        Args::Text(word) => out.push(word.clone()),
        Args::Json(words) | Args::Words(words) => out.extend(words.iter().cloned()),
        Args::KeyValues(pairs) => {
            for pair in pairs {
                out.push(pair.key.clone());
                out.push(pair.value.clone());
                out.push(Word {
                    value: pair.separator.as_dump_str().to_owned(),
                    span: pair.span,
                });
            }
        }
        Args::Healthcheck { kind, command } => {
            out.push(kind.clone());
            push_args(command, out);
        }
        Args::Onbuild(child) => {
            out.push(Word {
                value: child.keyword.clone(),
                span: child.keyword_span,
            });
            push_args(&child.args, out);
        }
        Args::Unknown(word) => out.push(Word {
            value: String::new(),
            span: word.span,
        }),
    }
}

/// One instruction being converted (BuildKit's `parseRequest`).
struct Request<'a> {
    node: &'a Node,
    args: Vec<Word>,
    json: bool,
}

impl Request<'_> {
    fn fail(&self, kind: InstructionErrorKind) -> InstructionError {
        error(self.node, kind, self.node.span)
    }

    fn fail_at(&self, kind: InstructionErrorKind, span: Span) -> InstructionError {
        error(self.node, kind, span)
    }

    fn flags(&self, set: &FlagSet) -> Result<FlagValues, InstructionError> {
        set.parse(&self.node.flags).map_err(|e| {
            let span = e.span();
            self.fail_at(InstructionErrorKind::Flag(e), span)
        })
    }

    fn no_flags(&self) -> Result<(), InstructionError> {
        self.flags(&FlagSet::new()).map(|_| ())
    }

    fn exactly_one(&self, instruction: &'static str) -> Result<Word, InstructionError> {
        match self.args.as_slice() {
            [only] => Ok(only.clone()),
            _ => Err(self.fail(InstructionErrorKind::ExactlyOneArgument { instruction })),
        }
    }

    fn at_least_one(&self, instruction: &'static str) -> Result<(), InstructionError> {
        if self.args.is_empty() {
            return Err(self.fail(InstructionErrorKind::AtLeastOneArgument { instruction }));
        }
        Ok(())
    }

    fn key_values(&self, instruction: &'static str) -> Result<Vec<KeyValue>, InstructionError> {
        let pairs = match &self.node.args {
            Args::KeyValues(pairs) => pairs.clone(),
            _ => {
                // Only a hand-built node gets here: rebuild the triples like BuildKit does.
                if !self.args.len().is_multiple_of(3) {
                    return Err(self.fail(InstructionErrorKind::TooManyArguments { instruction }));
                }
                self.args
                    .chunks(3)
                    .map(|triple| KeyValue {
                        key: triple[0].clone(),
                        value: triple[1].clone(),
                        separator: if triple[2].value.is_empty() {
                            Separator::Whitespace
                        } else {
                            Separator::Equals
                        },
                        span: crate::instruction::join_spans(triple[0].span, triple[1].span),
                    })
                    .collect()
            }
        };
        if pairs.is_empty() {
            return Err(self.fail(InstructionErrorKind::AtLeastOneArgument { instruction }));
        }
        if let Some(blank) = pairs.iter().find(|p| p.key.value.is_empty()) {
            return Err(self.fail_at(InstructionErrorKind::BlankName { instruction }, blank.span));
        }
        Ok(pairs)
    }

    fn env(&self) -> Result<Env, InstructionError> {
        self.no_flags()?;
        Ok(Env {
            node: self.node.clone(),
            pairs: self.key_values("ENV")?,
        })
    }

    fn label(&self) -> Result<Label, InstructionError> {
        self.no_flags()?;
        Ok(Label {
            node: self.node.clone(),
            labels: self.key_values("LABEL")?,
        })
    }

    fn maintainer(&self) -> Result<Maintainer, InstructionError> {
        let maintainer = self.exactly_one("MAINTAINER")?;
        self.no_flags()?;
        Ok(Maintainer {
            node: self.node.clone(),
            maintainer,
        })
    }

    fn sources_and_dest(
        &self,
        instruction: &'static str,
    ) -> Result<(Vec<Source>, Word), InstructionError> {
        let (dest, sources) = self
            .args
            .split_last()
            .expect("sources_and_dest is called after checking for two arguments");
        if let Ok(Some(_)) = parse_heredoc_word(&dest.value) {
            return Err(self.fail_at(
                InstructionErrorKind::HeredocDestination { instruction },
                dest.span,
            ));
        }
        let sources = sources
            .iter()
            .map(|word| match parse_heredoc_word(&word.value) {
                Ok(Some(marker)) => {
                    // Looked up by name; with duplicate names the last body wins, as in
                    // BuildKit's map.
                    let content = self
                        .node
                        .heredocs
                        .iter()
                        .rev()
                        .find(|h| h.name == marker.name)
                        .map(|h| h.content.as_str())
                        .unwrap_or_default();
                    let content = if marker.chomp {
                        chomp_heredoc_content(content)
                    } else {
                        content.to_owned()
                    };
                    Source::Heredoc(HeredocSource {
                        name: marker.name,
                        content,
                        expand: marker.expand,
                        word: word.clone(),
                    })
                }
                _ => Source::Path(word.clone()),
            })
            .collect();
        Ok((sources, dest.clone()))
    }

    fn add(&self) -> Result<Add, InstructionError> {
        if self.args.len() < 2 {
            return Err(self.fail(InstructionErrorKind::NoDestination { instruction: "ADD" }));
        }
        let flags = self.flags(
            &FlagSet::new()
                .with_strings("exclude")
                .with_string("chown", "")
                .with_string("chmod", "")
                .with_bool("link", false)
                .with_bool("keep-git-dir", false)
                .with_string("checksum", "")
                .with_bool("unpack", false),
        )?;
        let (sources, dest) = self.sources_and_dest("ADD")?;
        Ok(Add {
            node: self.node.clone(),
            sources,
            dest,
            chown: flags.given_string("chown"),
            chmod: flags.given_string("chmod"),
            link: flags.bool("link"),
            keep_git_dir: flags.bool("keep-git-dir"),
            checksum: flags.given_string("checksum"),
            unpack: flags.is_used("unpack").then(|| flags.bool("unpack")),
            exclude: flags.strings("exclude").to_vec(),
        })
    }

    fn copy(&self) -> Result<Copy, InstructionError> {
        if self.args.len() < 2 {
            return Err(self.fail(InstructionErrorKind::NoDestination {
                instruction: "COPY",
            }));
        }
        let flags = self.flags(
            &FlagSet::new()
                .with_strings("exclude")
                .with_bool("parents", false)
                .with_string("chown", "")
                .with_string("from", "")
                .with_string("chmod", "")
                .with_bool("link", false),
        )?;
        let (sources, dest) = self.sources_and_dest("COPY")?;
        Ok(Copy {
            node: self.node.clone(),
            from: flags.given_string("from"),
            sources,
            dest,
            chown: flags.given_string("chown"),
            chmod: flags.given_string("chmod"),
            link: flags.bool("link"),
            parents: flags.bool("parents"),
            exclude: flags.strings("exclude").to_vec(),
        })
    }

    fn from(&self) -> Result<From, InstructionError> {
        let stage_name = match self.args.as_slice() {
            [_, as_keyword, name] if as_keyword.value.eq_ignore_ascii_case("as") => {
                let lower = name.value.to_lowercase();
                if !is_valid_stage_name(&lower) {
                    return Err(self.fail_at(
                        InstructionErrorKind::InvalidStageName {
                            name: name.value.clone(),
                        },
                        name.span,
                    ));
                }
                Some(StageName {
                    as_keyword: as_keyword.clone(),
                    word: name.clone(),
                    name: lower,
                })
            }
            [_] => None,
            _ => return Err(self.fail(InstructionErrorKind::FromArguments)),
        };
        let flags = self.flags(&FlagSet::new().with_string("platform", ""))?;
        Ok(From {
            node: self.node.clone(),
            image: self.args[0].clone(),
            platform: flags.given_string("platform"),
            stage_name,
        })
    }

    fn onbuild(&self) -> Result<Onbuild, InstructionError> {
        self.at_least_one("ONBUILD")?;
        self.no_flags()?;
        let trigger = self.args[0].value.trim().to_uppercase();
        match trigger.as_str() {
            "ONBUILD" => return Err(self.fail(InstructionErrorKind::OnbuildChaining)),
            "MAINTAINER" | "FROM" => {
                return Err(self.fail(InstructionErrorKind::OnbuildTrigger { trigger }));
            }
            _ => {}
        }
        let mut expression = strip_onbuild_prefix(&self.node.original).to_owned();
        for heredoc in &self.node.heredocs {
            expression.push('\n');
            expression.push_str(&heredoc.content);
            expression.push_str(&heredoc.name);
        }
        Ok(Onbuild {
            node: self.node.clone(),
            expression,
            trigger,
        })
    }

    fn workdir(&self) -> Result<Workdir, InstructionError> {
        let path = self.exactly_one("WORKDIR")?;
        self.no_flags()?;
        Ok(Workdir {
            node: self.node.clone(),
            path,
        })
    }

    fn command(&self) -> Command {
        Command::from_args(self.args.clone(), self.json)
    }

    fn run(&self) -> Result<Run, InstructionError> {
        let flags = self.flags(
            &FlagSet::new()
                .with_strings("device")
                .with_strings("mount")
                .with_string("network", Network::Default.as_str())
                .with_string("security", Security::Sandbox.as_str()),
        )?;
        let mut devices = Vec::new();
        for word in flags.strings("device") {
            let (name, required) = parse_device(&word.value)
                .map_err(|e| self.fail_at(InstructionErrorKind::Device(e), word.span))?;
            devices.push(Device {
                name,
                required,
                span: word.span,
            });
        }
        let mut mounts = Vec::new();
        for word in flags.strings("mount") {
            let spec = MountSpec {
                text: word.value.clone(),
                span: word.span,
            };
            spec.check_syntax()
                .map_err(|e| self.fail_at(InstructionErrorKind::Mount(e), word.span))?;
            mounts.push(spec);
        }
        let network = match flags.given_string("network") {
            None => None,
            Some(word) => Some(Spanned {
                value: Network::from_name(&word.value).ok_or_else(|| {
                    self.fail_at(
                        InstructionErrorKind::InvalidNetwork {
                            value: word.value.clone(),
                        },
                        word.span,
                    )
                })?,
                span: word.span,
            }),
        };
        let security = match flags.given_string("security") {
            None => None,
            Some(word) => Some(Spanned {
                value: Security::from_name(&word.value).ok_or_else(|| {
                    self.fail_at(
                        InstructionErrorKind::InvalidSecurity {
                            value: word.value.clone(),
                        },
                        word.span,
                    )
                })?,
                span: word.span,
            }),
        };
        Ok(Run {
            node: self.node.clone(),
            command: self.command(),
            heredocs: self.node.heredocs.clone(),
            mounts,
            network,
            security,
            devices,
            flags_used: flags.used(),
        })
    }

    fn cmd(&self) -> Result<Cmd, InstructionError> {
        self.no_flags()?;
        Ok(Cmd {
            node: self.node.clone(),
            command: self.command(),
        })
    }

    fn entrypoint(&self) -> Result<Entrypoint, InstructionError> {
        self.no_flags()?;
        Ok(Entrypoint {
            node: self.node.clone(),
            command: self.command(),
        })
    }

    fn healthcheck(&self) -> Result<Healthcheck, InstructionError> {
        self.at_least_one("HEALTHCHECK")?;
        let kind = self.args[0].value.to_uppercase();
        let rest = &self.args[1..];
        let mut check = Healthcheck {
            node: self.node.clone(),
            test: HealthTest::None,
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        };
        if kind == "NONE" {
            // BuildKit does not look at the flags of HEALTHCHECK NONE at all.
            if let Some(first) = rest.first() {
                return Err(
                    self.fail_at(InstructionErrorKind::HealthcheckNoneArguments, first.span)
                );
            }
            return Ok(check);
        }
        let flags = self.flags(
            &FlagSet::new()
                .with_string("interval", "")
                .with_string("timeout", "")
                .with_string("start-period", "")
                .with_string("start-interval", "")
                .with_string("retries", ""),
        )?;
        if kind != "CMD" {
            return Err(self.fail_at(
                InstructionErrorKind::HealthcheckUnknownType { kind },
                self.args[0].span,
            ));
        }
        check.test = match Command::from_args(rest.to_vec(), self.json) {
            command if command.cmdline().is_empty() => {
                return Err(self.fail(InstructionErrorKind::HealthcheckMissingCommand));
            }
            Command::Exec(words) => HealthTest::Cmd(words),
            Command::Shell(word) => HealthTest::CmdShell(word),
        };
        check.interval = self.interval(&flags, "interval")?;
        check.timeout = self.interval(&flags, "timeout")?;
        check.start_period = self.interval(&flags, "start-period")?;
        check.start_interval = self.interval(&flags, "start-interval")?;
        if let Some(word) = flags
            .given_string("retries")
            .filter(|w| !w.value.is_empty())
        {
            let retries = parse_int32(&word.value).map_err(|e| {
                self.fail_at(
                    InstructionErrorKind::InvalidRetries {
                        value: word.value.clone(),
                        reason: e.as_str(),
                    },
                    word.span,
                )
            })?;
            let retries = u32::try_from(retries).map_err(|_| {
                self.fail_at(
                    InstructionErrorKind::NegativeRetries { value: retries },
                    word.span,
                )
            })?;
            check.retries = Some(retries);
        }
        Ok(check)
    }

    /// BuildKit's `parseOptInterval`: empty or zero means "default", else at least 1ms.
    fn interval(
        &self,
        flags: &FlagValues,
        flag: &'static str,
    ) -> Result<Option<Duration>, InstructionError> {
        let Some(word) = flags.given_string(flag).filter(|w| !w.value.is_empty()) else {
            return Ok(None);
        };
        let nanos: GoDuration = parse_duration(&word.value).map_err(|message| {
            self.fail_at(
                InstructionErrorKind::InvalidDuration { flag, message },
                word.span,
            )
        })?;
        if nanos == 0 {
            return Ok(Some(Duration::ZERO));
        }
        if nanos < 1_000_000 {
            return Err(self.fail_at(InstructionErrorKind::IntervalTooShort { flag }, word.span));
        }
        Ok(Some(Duration::from_nanos(nanos.unsigned_abs())))
    }

    fn expose(&self) -> Result<Expose, InstructionError> {
        self.at_least_one("EXPOSE")?;
        self.no_flags()?;
        Ok(Expose {
            node: self.node.clone(),
            ports: self.args.clone(),
        })
    }

    fn user(&self) -> Result<User, InstructionError> {
        let user = self.exactly_one("USER")?;
        self.no_flags()?;
        Ok(User {
            node: self.node.clone(),
            user,
        })
    }

    fn volume(&self) -> Result<Volume, InstructionError> {
        self.at_least_one("VOLUME")?;
        self.no_flags()?;
        let mut paths = Vec::new();
        for word in &self.args {
            let trimmed = word.value.trim();
            if trimmed.is_empty() {
                return Err(self.fail_at(InstructionErrorKind::EmptyVolume, word.span));
            }
            paths.push(Word {
                value: trimmed.to_owned(),
                span: word.span,
            });
        }
        Ok(Volume {
            node: self.node.clone(),
            paths,
        })
    }

    /// STOPSIGNAL: BuildKit checks the argument count only (its flags are not parsed).
    fn stopsignal(&self) -> Result<Stopsignal, InstructionError> {
        Ok(Stopsignal {
            node: self.node.clone(),
            signal: self.exactly_one("STOPSIGNAL")?,
        })
    }

    /// ARG: BuildKit does not parse the flags of ARG either.
    fn arg(&self) -> Result<Arg, InstructionError> {
        self.at_least_one("ARG")?;
        let mut args = Vec::new();
        for word in &self.args {
            let (key, default) = match word.value.split_once('=') {
                Some(("", _)) => {
                    return Err(self.fail_at(
                        InstructionErrorKind::BlankName { instruction: "ARG" },
                        word.span,
                    ));
                }
                Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
                None => (word.value.clone(), None),
            };
            args.push(ArgPair {
                doc: doc_comment(&self.node.comments, &key),
                key,
                default,
                word: word.clone(),
            });
        }
        Ok(Arg {
            node: self.node.clone(),
            args,
        })
    }

    fn shell(&self) -> Result<Shell, InstructionError> {
        self.no_flags()?;
        match self.command() {
            command if command.cmdline().is_empty() => {
                Err(self.fail(InstructionErrorKind::AtLeastOneArgument {
                    instruction: "SHELL",
                }))
            }
            Command::Exec(shell) => Ok(Shell {
                node: self.node.clone(),
                shell,
            }),
            Command::Shell(_) => Err(self.fail(InstructionErrorKind::NotJson {
                instruction: "SHELL",
            })),
        }
    }
}

/// BuildKit's stage-name rule: `^[a-z][a-z0-9-_.]*$` on the lower-cased name.
fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// Removes `(?i)^\s*ONBUILD\s*` (Go's `\s`: space, tab, LF, FF, CR).
fn strip_onbuild_prefix(original: &str) -> &str {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r');
    let rest = original.trim_start_matches(is_space);
    match rest.get(..7) {
        Some(keyword) if keyword.eq_ignore_ascii_case("onbuild") => {
            rest[7..].trim_start_matches(is_space)
        }
        _ => original,
    }
}
