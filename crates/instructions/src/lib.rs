//! Typed, validated Dockerfile instructions on top of `hoist-dockerfile`'s raw syntax tree,
//! to BuildKit's standard (its `frontend/dockerfile/instructions` package).
//!
//! The parser gives every instruction as a [`Node`](hoist_dockerfile::Node) with raw
//! arguments and `--flags`. This crate checks each one the way BuildKit does (argument
//! counts, known flags and their values, `RUN --mount` options, HEALTHCHECK durations, stage
//! names, ...) and gives a typed [`Instruction`]; [`parse_stages`] then groups a whole file
//! into build [`Stage`]s plus the global ARGs before the first FROM.
//!
//! The one idea: validate structure, never evaluate. Values stay as written (quotes,
//! escapes, `$VAR`s) with their [`Span`](hoist_dockerfile::Span), because expansion needs the
//! ARG/ENV state that only the planner has; anything that depends on it (the target stage,
//! `COPY --from` resolution, full `--mount` validation through [`MountSpec::resolve`]) is
//! left to the planner. Errors carry BuildKit's exact message and the span of the offending
//! flag or argument.
//!
//! ```
//! let file = hoist_dockerfile::parse("ARG V=1\nFROM alpine:$V AS build\nRUN --mount=type=cache,target=/c make\n").unwrap();
//! let (stages, meta_args) = hoist_instructions::parse_stages(&file).unwrap();
//! assert_eq!(meta_args[0].args[0].key, "V");
//! assert_eq!(stages[0].name.as_deref(), Some("build"));
//! let hoist_instructions::Instruction::Run(run) = &stages[0].commands[0] else { panic!() };
//! assert_eq!(run.mounts[0].resolve_verbatim().unwrap().target, "/c");
//! ```
//!
//! Entry points: [`parse_instruction`] (one node), [`parse_stages`] (a file),
//! [`find_stage`]. Building blocks the planner and linter reuse: [`FlagSet`] (BuildKit's
//! flag rules), [`MountSpec`]/[`Mount`], [`parse_device`], [`Command`].

mod convert;
mod error;
mod flags;
mod go;
mod instruction;
mod mount;
mod run;
mod stage;

pub use convert::parse_instruction;
pub use error::{InstructionError, InstructionErrorKind};
pub use flags::{FlagError, FlagKind, FlagSet, FlagValue, FlagValues};
pub use instruction::{
    Add, Arg, ArgPair, Cmd, Command, Copy, Entrypoint, Env, Expose, From, HealthTest, Healthcheck,
    HeredocSource, Instruction, Label, Maintainer, Onbuild, Run, Shell, Source, StageName,
    Stopsignal, User, Volume, Word, Workdir, heredoc_sources, source_paths,
};
pub use mount::{Mount, MountError, MountSpec, MountType, Sharing};
pub use run::{Device, DeviceError, Network, Security, Spanned, parse_device};
pub use stage::{MetaArg, Stage, find_stage, parse_stages};
