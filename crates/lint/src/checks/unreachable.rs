//! `UnreachableStage` (hoist's own, informational): a stage that is not the last one and
//! that no `FROM`, `COPY --from` or `RUN --mount from=` refers to. The default build never
//! runs it; only `--target <name>` does. Often that is intended (a `test` or `dev` stage),
//! so this is information, not a warning.
//!
//! When a `--from` or `from=` value, or the name part of a `FROM`, holds a variable, which
//! stage it names depends on the build arguments, so the check stays silent for the file.

use crate::checks::dispatch::stage_dependencies;
use crate::checks::from::Globals;
use crate::checks::stage_references;
use crate::model::Model;
use crate::report::Report;
use crate::{Finding, Rule};

pub(crate) fn check(model: &Model<'_>, globals: &Globals, report: &mut Report<'_>) {
    if !report.enabled(Rule::UnreachableStage)
        || model.stages.len() < 2
        || has_dynamic_reference(model)
    {
        return;
    }
    let mut used = vec![false; model.stages.len()];
    for stage in &model.stages {
        if let Some(base) = globals.base_stages[stage.index] {
            used[base] = true;
        }
        for dependency in stage_dependencies(model, stage.index) {
            if dependency != stage.index {
                used[dependency] = true;
            }
        }
    }
    let last = model.stages.len() - 1;
    for stage in &model.stages[..last] {
        if used[stage.index] {
            continue;
        }
        let (message, hint) = match &stage.name {
            Some(name) => (
                format!(
                    "Stage '{name}' is not used by any other stage and is not the default target: only `--target {name}` builds it"
                ),
                format!("build it with --target {name}, use it from another stage, or remove it"),
            ),
            None => (
                format!(
                    "Stage {} is unnamed, not used by any other stage and not the default target: no build runs it",
                    stage.index
                ),
                "remove it, or name it with AS and use it from another stage".to_owned(),
            ),
        };
        report.push(Finding::new(Rule::UnreachableStage, stage.from.span, message).with_hint(hint));
    }
}

/// A `--from`/`from=` whose stage depends on a variable.
fn has_dynamic_reference(model: &Model<'_>) -> bool {
    model.stages.iter().flat_map(|s| &s.commands).any(|node| {
        stage_references(node)
            .iter()
            .any(|reference| reference.contains('$'))
    }) || model.stages.iter().any(|s| {
        // `FROM golang:${VERSION}` varies the tag only; `FROM ${BASE}` may name a stage.
        s.base
            .value
            .split_once('$')
            .is_some_and(|(name, _)| !name.contains(':'))
    })
}
