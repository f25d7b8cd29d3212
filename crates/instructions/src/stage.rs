//! Whole-file conversion: instructions grouped into build stages (BuildKit's
//! `instructions.Parse`).
//!
//! ARGs before the first FROM are global "meta" args; every FROM opens a stage; any other
//! instruction before the first FROM is an error. Nothing is expanded or resolved here:
//! `--from` references, the target stage and base-image names need ARG values and belong to
//! the planner.

use hoist_dockerfile::{Dockerfile, Span};

use crate::convert::{doc_comment, parse_instruction};
use crate::instruction::{Arg, From, Instruction, Word, join_spans};
use crate::{InstructionError, InstructionErrorKind};

/// An ARG before the first FROM: its values can be used in FROM lines, and in stages that
/// declare it again.
pub type MetaArg = Arg;

/// One build stage: a FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The position of the stage in the file, from 0 (`COPY --from=0`).
    pub index: usize,
    /// The `AS` name, lower-cased.
    pub name: Option<String>,
    /// The base image or stage, as written.
    pub base: Word,
    /// `--platform=` of the FROM, as written.
    pub platform: Option<Word>,
    /// The FROM instruction itself.
    pub from: From,
    /// The instructions after FROM, in order (FROM not included).
    pub commands: Vec<Instruction>,
    /// The description: a comment line directly above FROM that starts with the stage name
    /// (`# build compiles the app` gives `compiles the app`), or empty.
    pub doc: String,
    /// From the FROM keyword to the end of the stage's last instruction.
    pub span: Span,
}

/// Converts every instruction and groups them into stages (BuildKit's `instructions.Parse`).
///
/// Errors from single instructions carry their line (see
/// [`InstructionError::buildkit_message`] for BuildKit's `dockerfile parse error on line N:`
/// form); the first error stops the conversion.
pub fn parse_stages(file: &Dockerfile) -> Result<(Vec<Stage>, Vec<MetaArg>), InstructionError> {
    let mut stages: Vec<Stage> = Vec::new();
    let mut meta_args = Vec::new();
    for node in &file.instructions {
        let instruction = parse_instruction(node)?;
        match instruction {
            Instruction::Arg(arg) if stages.is_empty() => meta_args.push(arg),
            Instruction::From(from) => {
                let name = from.stage_name.as_ref().map(|n| n.name.clone());
                stages.push(Stage {
                    index: stages.len(),
                    doc: doc_comment(&from.node.comments, name.as_deref().unwrap_or_default()),
                    name,
                    base: from.image.clone(),
                    platform: from.platform.clone(),
                    span: from.node.span,
                    from,
                    commands: Vec::new(),
                });
            }
            other => {
                let Some(stage) = stages.last_mut() else {
                    return Err(InstructionError {
                        kind: Box::new(InstructionErrorKind::NoBuildStage),
                        span: node.span,
                        instruction: node.span,
                    });
                };
                stage.span = join_spans(stage.span, other.span());
                stage.commands.push(other);
            }
        }
    }
    Ok((stages, meta_args))
}

/// The stage with the given name, compared case-insensitively (BuildKit's `HasStage`).
pub fn find_stage<'a>(stages: &'a [Stage], name: &str) -> Option<&'a Stage> {
    let name = name.to_lowercase();
    stages
        .iter()
        .find(|stage| stage.name.as_deref() == Some(name.as_str()))
}
