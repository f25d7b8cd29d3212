//! Planning errors: BuildKit's messages, with the span of the instruction (or FROM) at fault.

use hoist_dockerfile::{Span, go_quote};
use hoist_instructions::{InstructionError, MountError};
use hoist_shell::ShellError;

/// A Dockerfile that cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct PlanError {
    /// What went wrong (boxed to keep `Result`s small).
    pub kind: Box<PlanErrorKind>,
    /// Where: the instruction, the FROM line, or `None` for request-level errors.
    pub span: Option<Span>,
}

impl PlanError {
    pub(crate) fn new(kind: PlanErrorKind, span: Option<Span>) -> Self {
        Self {
            kind: Box::new(kind),
            span,
        }
    }

    /// The 1-based line the error is on, when it has a location.
    pub fn line(&self) -> Option<u32> {
        self.span.map(|s| s.start_line)
    }
}

/// The ways planning fails. Messages are BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanErrorKind {
    /// The typed layer rejected an instruction (its BuildKit message, with the line prefix).
    #[error("{}", .0.buildkit_message())]
    Instruction(InstructionError),
    /// No FROM at all.
    #[error("dockerfile contains no stages to build")]
    NoStages,
    /// A word could not be expanded.
    #[error("{0}")]
    Expansion(ShellError),
    /// A FROM whose image is empty once expanded.
    #[error("base name ({base}) should not be blank")]
    BlankBase {
        /// The base as written.
        base: String,
    },
    /// `FROM --platform=` empty once expanded.
    #[error("empty platform value from expression {expression}")]
    EmptyPlatform {
        /// The flag value as written.
        expression: String,
    },
    /// `FROM --platform=` that is not a platform.
    #[error("failed to parse platform {expression}: {reason}")]
    BadPlatform {
        /// The flag value as written.
        expression: String,
        /// Why.
        reason: String,
    },
    /// An image name that is not a valid reference.
    #[error("failed to parse stage name {}: invalid reference format", go_quote(.name))]
    InvalidReference {
        /// The name.
        name: String,
    },
    /// `--target` names no stage. `stages` lists the stage names (for a hint).
    #[error("target stage {} could not be found{}", go_quote(.target), did_you_mean(.suggestion))]
    TargetNotFound {
        /// The target as given.
        target: String,
        /// The closest stage name.
        suggestion: Option<String>,
        /// Every stage name, in file order.
        stages: Vec<String>,
    },
    /// Stages that copy from each other in a loop.
    #[error("circular dependency detected on stage: {stage}")]
    CircularDependency {
        /// The first stage (in file order) found on the loop.
        stage: String,
    },
    /// `COPY --from=<n>` beyond the last stage.
    #[error("invalid stage index {index}")]
    InvalidStageIndex {
        /// The index.
        index: i64,
    },
    /// `COPY --from=$VAR`.
    #[error(
        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
    )]
    FromVariable,
    /// `COPY --from=` a stage defined later in the file.
    #[error("cannot copy from stage {}, it needs to be defined before current stage {}", go_quote(.from), go_quote(.stage))]
    CopyFromLaterStage {
        /// The `--from` value.
        from: String,
        /// The current stage's name.
        stage: String,
    },
    /// `RUN --mount=from=` a stage defined later in the file.
    #[error("cannot mount from stage {}, it needs to be defined before current stage {}", go_quote(.from), go_quote(.stage))]
    MountFromLaterStage {
        /// The `from` value.
        from: String,
        /// The current stage's name.
        stage: String,
    },
    /// The base image resolver failed.
    #[error("{reference}: {message}")]
    ResolveImage {
        /// The image as written in the FROM (after expansion).
        reference: String,
        /// The resolver's message.
        message: String,
    },
    /// `COPY http://...`.
    #[error("source can't be a URL for COPY")]
    CopyUrl,
    /// `COPY git@...`.
    #[error("source can't be a git ref for COPY")]
    CopyGit,
    /// `--chmod` that is neither octal up to 07777 nor a symbolic mode.
    #[error(
        "invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777"
    )]
    Chmod {
        /// The value.
        value: String,
    },
    /// ADD `--checksum` with several sources.
    #[error("checksum can't be specified for multiple sources")]
    ChecksumMultipleSources,
    /// ADD `--checksum` on a local source.
    #[error("checksum requires HTTP(S) or Git sources")]
    ChecksumLocalSource,
    /// `VOLUME ""`.
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    /// `STOPSIGNAL` with an unknown signal.
    #[error("Invalid signal: {signal}")]
    InvalidSignal {
        /// The signal.
        signal: String,
    },
    /// An EXPOSE port that does not parse (BuildKit's message).
    #[error("{message}")]
    Expose {
        /// The message.
        message: String,
    },
    /// WORKDIR with an empty path once expanded.
    #[error("normalizing workdir: cannot normalize nothing")]
    EmptyWorkdir,
    /// A `RUN --mount` that is invalid once expanded.
    #[error("{0}")]
    Mount(MountError),
    /// A `RUN --mount` whose target is the root.
    #[error("invalid mount target {}", go_quote(.target))]
    MountTarget {
        /// The target, made absolute.
        target: String,
    },
    /// `# syntax=` or `BUILDKIT_SYNTAX` names a frontend image other than `docker/dockerfile`.
    #[error(
        "hoist has no external frontends: `{written}` cannot be used; remove it or use docker/dockerfile:1 (hoist's own frontend)"
    )]
    ExternalFrontend {
        /// The directive or build arg as written.
        written: String,
    },
    /// A RUN heredoc command line that is not what the parser produces.
    #[error("parsing produced an invalid run command: {args}")]
    InvalidRunCommand {
        /// The arguments, Go `%v` style.
        args: String,
    },
    /// An ONBUILD trigger that does not parse.
    #[error("{message}")]
    OnbuildTrigger {
        /// The parser's or the typed layer's message.
        message: String,
    },
}

pub(crate) fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default()
}
