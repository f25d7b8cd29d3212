//! The output: the planned stages, their steps and the ops.

use hoist_dockerfile::{Keyword, Span};

use crate::image::{HistoryEntry, ImageConfig};
use crate::op::{OpId, PlannedOp};
use crate::request::Platform;

/// The result of planning: the needed stages in an order where every stage comes after
/// the stages it uses, and the ops of all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    /// The stages the target needs (the target included), each once, in file order (which
    /// is a topological order: a stage can only use earlier stages).
    pub stages: Vec<StagePlan>,
    /// The position of the target in `stages`.
    pub target: usize,
    /// Every op; an op's inputs always come before it.
    pub ops: Vec<PlannedOp>,
    /// Non-fatal findings (unused build args).
    pub warnings: Vec<PlanWarning>,
}

impl BuildPlan {
    /// The target stage.
    pub fn target_stage(&self) -> &StagePlan {
        &self.stages[self.target]
    }

    /// The op with this id.
    pub fn op(&self, id: OpId) -> &PlannedOp {
        &self.ops[id.0]
    }

    /// The stage at file position `index`, when planned.
    pub fn stage(&self, index: usize) -> Option<&StagePlan> {
        self.stages.iter().find(|s| s.index == index)
    }

    /// The planned stage with this name (case-insensitive).
    pub fn stage_named(&self, name: &str) -> Option<&StagePlan> {
        let name = name.to_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(name.as_str()))
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageBase {
    /// `FROM scratch`.
    Scratch,
    /// An image, as written after expansion (`alpine:3.20`).
    Image(String),
    /// An earlier stage (its file index).
    Stage(usize),
    /// A `--build-context` of that name.
    NamedContext(String),
}

/// One planned stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePlan {
    /// The position of its FROM among the file's stages, from 0.
    pub index: usize,
    /// The `AS` name, lower-cased.
    pub name: Option<String>,
    /// What it starts from.
    pub base: StageBase,
    /// The platform it is built for.
    pub platform: Platform,
    /// The op whose result is the stage's filesystem.
    pub root: OpId,
    /// The image config at the end of the stage (for the target: with `--label`s).
    pub config: ImageConfig,
    /// The image history: the base image's, then one entry per instruction that makes one.
    pub history: Vec<HistoryEntry>,
    /// Its instructions (ONBUILD triggers of its base first), in order.
    pub steps: Vec<Step>,
    /// The FROM instruction.
    pub span: Span,
    /// `--no-cache`/`--no-cache-filter` applies to it.
    pub ignore_cache: bool,
}

/// One instruction of a stage, as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Which instruction.
    pub keyword: Keyword,
    /// Where it is (an ONBUILD trigger is located at the stage's FROM, as in BuildKit).
    pub span: Span,
    /// The op it made, if any (RUN, COPY, ADD, WORKDIR).
    pub op: Option<OpId>,
    /// Its history entry (ONBUILD makes none).
    pub history: Option<HistoryEntry>,
    /// It comes from an ONBUILD trigger of the base.
    pub on_build: bool,
}

/// A non-fatal finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanWarning {
    /// The message, as docker prints it
    /// (`[Warning] One or more build-args [FOO] were not consumed`).
    pub message: String,
    /// The build args that no ARG declared, sorted.
    pub unused_build_args: Vec<String>,
}
