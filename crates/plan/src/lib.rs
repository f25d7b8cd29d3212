//! The planner of `hoist build`: a parsed Dockerfile plus build options become a
//! [`BuildPlan`], a DAG of ops that the engine solves, caches and runs. This is BuildKit's
//! `dockerfile2llb` conversion without the execution.
//!
//! The one idea: evaluate everything that only depends on the Dockerfile and the request
//! here (ARG/ENV scopes, `FROM` expansion, `--from` resolution, the target's reachable
//! stages, ONBUILD triggers, the image config and history after each instruction), so that
//! the engine only sees concrete ops with their inputs. Base image configs come from the
//! caller through [`BaseImageResolver`]; nothing here touches the network or the disk.
//!
//! ```
//! use hoist_plan::{BaseImage, BaseImageResolver, ImageConfig, Op, Platform, PlanRequest, plan};
//!
//! struct Images;
//! impl BaseImageResolver for Images {
//!     fn resolve(&self, reference: &str, platform: &Platform) -> Result<BaseImage, String> {
//!         Ok(BaseImage { reference: reference.to_owned(), platform: platform.clone(),
//!             config: ImageConfig::default(), history: Vec::new(), layers: 1 })
//!     }
//! }
//!
//! let file = hoist_dockerfile::parse("FROM alpine AS build\nRUN make\nFROM scratch\nCOPY --from=build /app /app\n").unwrap();
//! let plan = plan(&PlanRequest::new(file), &Images).unwrap();
//! assert_eq!(plan.stages.len(), 2);
//! assert!(matches!(plan.ops[plan.target_stage().root.0].op, Op::Copy(_)));
//! ```
//!
//! Contents: [`plan`] (the entry point), [`PlanRequest`] and [`Platform`] (the input),
//! [`BuildPlan`], [`StagePlan`], [`Step`] and the ops in [`op`] (the output), [`ImageConfig`]
//! and [`HistoryEntry`] (what each stage's image becomes), [`PlanError`].

mod error;
mod go;
mod image;
pub mod op;
mod output;
mod planner;
mod request;
mod syntax;

pub use error::{PlanError, PlanErrorKind};
pub use image::{
    BaseImage, BaseImageResolver, DEFAULT_PATH, HISTORY_COMMENT, HealthConfig, HistoryEntry,
    ImageConfig,
};
pub use op::{Op, OpId, PlannedOp};
pub use output::{BuildPlan, PlanWarning, StageBase, StagePlan, Step};
pub use planner::plan;
pub use request::{NamedContext, NamedContextKind, NoCache, PlanRequest, Platform};
