//! Conversion errors: what went wrong ([`InstructionErrorKind`]) and where ([`Span`]).
//!
//! Messages are BuildKit's, word for word (`FROM requires either one or three arguments`,
//! `unknown flag: --foo`, ...). BuildKit's whole-file parser prefixes them with
//! `dockerfile parse error on line N: `; [`InstructionError::buildkit_message`] gives that
//! exact text, `Display` gives the bare message. Rendering a caret under the span is the CLI's
//! job.

use hoist_dockerfile::{Span, go_quote};

use crate::flags::FlagError;
use crate::go::did_you_mean;
use crate::mount::MountError;
use crate::run::DeviceError;

/// An instruction that cannot be turned into its typed form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct InstructionError {
    /// What went wrong (boxed to keep `Result`s small).
    pub kind: Box<InstructionErrorKind>,
    /// The offending piece: a flag word, an argument, or the whole instruction.
    pub span: Span,
    /// The whole instruction the error is about (its first line is BuildKit's error line).
    pub instruction: Span,
}

impl InstructionError {
    /// The instruction's first line (BuildKit's `node.StartLine`), 1-based.
    pub fn line(&self) -> u32 {
        self.instruction.start_line
    }

    /// The error as BuildKit's whole-file parser (`instructions.Parse`) prints it:
    /// `dockerfile parse error on line 3: FROM requires either one or three arguments`.
    /// [`InstructionErrorKind::NoBuildStage`] has no prefix there, so none here either.
    pub fn buildkit_message(&self) -> String {
        match *self.kind {
            InstructionErrorKind::NoBuildStage => self.kind.to_string(),
            _ => format!(
                "dockerfile parse error on line {}: {}",
                self.line(),
                self.kind
            ),
        }
    }
}

/// The ways conversion can fail. Each message is BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InstructionErrorKind {
    /// A keyword that is no Dockerfile instruction (`FORM`), echoed as written.
    #[error("unknown instruction: {instruction}{}", did_you_mean(.suggestion))]
    UnknownInstruction {
        /// The keyword as written.
        instruction: String,
        /// The closest instruction, in the case style of the input (`FROM`, `from`).
        suggestion: Option<String>,
    },
    /// MAINTAINER, WORKDIR, USER, STOPSIGNAL without their argument.
    #[error("{instruction} requires exactly one argument")]
    ExactlyOneArgument {
        /// The instruction (`USER`).
        instruction: &'static str,
    },
    /// ENV, LABEL, ONBUILD, HEALTHCHECK, EXPOSE, VOLUME, ARG, SHELL without arguments.
    #[error("{instruction} requires at least one argument")]
    AtLeastOneArgument {
        /// The instruction (`ENV`).
        instruction: &'static str,
    },
    /// ADD or COPY with fewer than two arguments.
    #[error(
        "{instruction} requires at least two arguments, but only one was provided. Destination could not be determined"
    )]
    NoDestination {
        /// `ADD` or `COPY`.
        instruction: &'static str,
    },
    /// ENV, LABEL or ARG with an empty name (`ENV =x`).
    #[error("{instruction} names can not be blank")]
    BlankName {
        /// `ENV`, `LABEL` or `ARG`.
        instruction: &'static str,
    },
    /// ENV or LABEL whose arguments are not key/value/separator triples. Unreachable from
    /// Dockerfile text (the parser always produces pairs); only a hand-built node gets here.
    #[error("Bad input to {instruction}, too many arguments")]
    TooManyArguments {
        /// `ENV` or `LABEL`.
        instruction: &'static str,
    },
    /// FROM with two, or more than three, arguments, or three without `AS`.
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    /// `FROM x AS <name>` where the name is not `[a-z][a-z0-9-_.]*` (case-insensitively).
    #[error(
        "invalid name for build stage: {}, name can't start with a number or contain symbols",
        go_quote(.name)
    )]
    InvalidStageName {
        /// The name as written.
        name: String,
    },
    /// ADD or COPY whose destination is a heredoc (`COPY a <<EOF`).
    #[error("{instruction} cannot accept a heredoc as a destination")]
    HeredocDestination {
        /// `ADD` or `COPY`.
        instruction: &'static str,
    },
    /// `ONBUILD ONBUILD ...`.
    #[error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChaining,
    /// `ONBUILD FROM ...` or `ONBUILD MAINTAINER ...`.
    #[error("{trigger} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger {
        /// The trigger instruction, upper-cased.
        trigger: String,
    },
    /// `HEALTHCHECK NONE` followed by anything.
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArguments,
    /// `HEALTHCHECK CMD` with nothing after it.
    #[error("Missing command after HEALTHCHECK CMD")]
    HealthcheckMissingCommand,
    /// `HEALTHCHECK FOO ...`: only CMD and NONE exist.
    #[error("Unknown type {} in HEALTHCHECK (try CMD)", go_quote(.kind))]
    HealthcheckUnknownType {
        /// The type word, upper-cased.
        kind: String,
    },
    /// A HEALTHCHECK duration flag that Go's `time.ParseDuration` rejects.
    #[error("{message}")]
    InvalidDuration {
        /// The flag name (`interval`).
        flag: &'static str,
        /// Go's message, e.g. `time: missing unit in duration "10"`.
        message: String,
    },
    /// A HEALTHCHECK duration between 0 and 1ms (exclusive) or negative.
    #[error("Interval {} cannot be less than 1ms", go_quote(.flag))]
    IntervalTooShort {
        /// The flag name (`interval`, `timeout`, `start-period`, `start-interval`).
        flag: &'static str,
    },
    /// `--retries` that is not a 32-bit integer.
    #[error("strconv.ParseInt: parsing {}: {reason}", go_quote(.value))]
    InvalidRetries {
        /// The value given.
        value: String,
        /// `invalid syntax` or `value out of range`.
        reason: &'static str,
    },
    /// `--retries` below zero.
    #[error("--retries cannot be negative ({value})")]
    NegativeRetries {
        /// The value given.
        value: i64,
    },
    /// SHELL in shell form (`SHELL /bin/sh -c`).
    #[error("{instruction} requires the arguments to be in JSON form")]
    NotJson {
        /// `SHELL`.
        instruction: &'static str,
    },
    /// VOLUME with an empty (or all-whitespace) path.
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    /// `RUN --network=<x>` with something other than default, none, host.
    #[error("invalid network mode {}", go_quote(.value))]
    InvalidNetwork {
        /// The value given.
        value: String,
    },
    /// `RUN --security=<x>` with something other than sandbox, insecure.
    #[error("security {} is not valid", go_quote(.value))]
    InvalidSecurity {
        /// The value given.
        value: String,
    },
    /// A bad `--flag` (unknown, duplicate, missing value, not a boolean).
    #[error(transparent)]
    Flag(#[from] FlagError),
    /// A bad `RUN --mount` specification.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// A bad `RUN --device` specification.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// An instruction other than ARG before the first FROM (BuildKit reports this one
    /// without the `dockerfile parse error on line N:` prefix).
    #[error("no build stage in current context")]
    NoBuildStage,
}

impl InstructionErrorKind {
    /// A short hint on how to fix the problem, for the CLI to show under the message.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            Self::UnknownInstruction { .. } => Some("check the spelling of the instruction"),
            Self::ExactlyOneArgument { .. } => Some("give the instruction exactly one value"),
            Self::AtLeastOneArgument { .. } => Some("give the instruction an argument"),
            Self::NoDestination { .. } => Some("write the sources, then the destination path"),
            Self::BlankName { .. } => Some("write name=value with a non-empty name"),
            Self::FromArguments => Some("write `FROM <image>` or `FROM <image> AS <name>`"),
            Self::InvalidStageName { .. } => {
                Some("stage names start with a letter and use only letters, digits, -, _ and .")
            }
            Self::HeredocDestination { .. } => Some("the last argument must be a path"),
            Self::OnbuildChaining | Self::OnbuildTrigger { .. } => {
                Some("ONBUILD takes an instruction other than ONBUILD, FROM or MAINTAINER")
            }
            Self::HealthcheckNoneArguments => Some("write just `HEALTHCHECK NONE`"),
            Self::HealthcheckMissingCommand | Self::HealthcheckUnknownType { .. } => {
                Some("write `HEALTHCHECK [options] CMD <command>` or `HEALTHCHECK NONE`")
            }
            Self::InvalidDuration { .. } | Self::IntervalTooShort { .. } => {
                Some("durations are written like 30s, 1m30s or 500ms (at least 1ms)")
            }
            Self::InvalidRetries { .. } | Self::NegativeRetries { .. } => {
                Some("--retries takes a whole number, 0 or more")
            }
            Self::NotJson { .. } => {
                Some("write the shell as a JSON array, e.g. [\"/bin/sh\", \"-c\"]")
            }
            Self::EmptyVolume => Some("remove the empty path"),
            Self::InvalidNetwork { .. } => Some("use --network=default, none or host"),
            Self::InvalidSecurity { .. } => Some("use --security=sandbox or insecure"),
            Self::Flag(_) | Self::Mount(_) | Self::Device(_) => None,
            Self::NoBuildStage => {
                Some("start the Dockerfile with FROM (only ARG may come before it)")
            }
            Self::TooManyArguments { .. } => None,
        }
    }
}
