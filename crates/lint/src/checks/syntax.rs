//! Checks BuildKit runs while parsing, on every stage whatever the target:
//! `NoEmptyContinuation`, `StageNameCasing`, `FromAsCasing`, `MaintainerDeprecated`,
//! `InvalidDefinitionDescription`, `ReservedStageName`, `DuplicateStageName` and
//! `ConsistentInstructionCasing`.

use std::collections::HashSet;

use hoist_dockerfile::{Dockerfile, Keyword, Node, WarningKind};

use crate::model::{Model, arg_decls};
use crate::report::Report;
use crate::{Finding, Rule};

/// Stage names BuildKit reserves.
const RESERVED_STAGE_NAMES: [&str; 2] = ["context", "scratch"];

pub(crate) fn check(dockerfile: &Dockerfile, model: &Model<'_>, report: &mut Report<'_>) {
    for warning in &dockerfile.warnings {
        if matches!(warning.kind, WarningKind::EmptyContinuationLine { .. }) {
            report.push(
                Finding::new(
                    Rule::NoEmptyContinuation,
                    warning.span,
                    "Empty continuation line",
                )
                .with_hint("remove the empty line, or end the instruction before it"),
            );
        }
    }

    // BuildKit's instruction parser sees every instruction in file order.
    for node in &dockerfile.instructions {
        match node.kind {
            Some(Keyword::From) => from_casing(node, report),
            Some(Keyword::Maintainer) => report.push(
                Finding::new(
                    Rule::MaintainerDeprecated,
                    node.span,
                    "Maintainer instruction is deprecated in favor of using label",
                )
                .with_hint("use LABEL org.opencontainers.image.authors=\"name <email>\" instead"),
            ),
            Some(Keyword::Arg) => {
                let keys: Vec<String> = arg_decls(node).into_iter().map(|d| d.key).collect();
                definition_description(node, "ARG", &keys, report);
            }
            _ => {}
        }
        if node.kind == Some(Keyword::From)
            && let Some(stage) = model.stages.iter().find(|s| std::ptr::eq(s.from, node))
            && let Some(name) = &stage.name
        {
            definition_description(node, "FROM", std::slice::from_ref(name), report);
        }
    }

    stage_names(model, report);
    instruction_casing(model, report);
}

fn from_casing(node: &Node, report: &mut Report<'_>) {
    let hoist_dockerfile::Args::Words(words) = &node.args else {
        return;
    };
    let [_, as_word, name] = words.as_slice() else {
        return;
    };
    if name.value != name.value.to_lowercase() {
        report.push(
            Finding::new(
                Rule::StageNameCasing,
                node.span,
                format!("Stage name '{}' should be lowercase", name.value),
            )
            .with_hint(format!("name the stage '{}'", name.value.to_lowercase())),
        );
    }
    // A mixed-case FROM is ConsistentInstructionCasing's business, not this rule's.
    let from = &node.keyword;
    let from_lower = *from == from.to_lowercase();
    let from_upper = *from == from.to_uppercase();
    let matches = if from_lower {
        as_word.value == as_word.value.to_lowercase()
    } else if from_upper {
        as_word.value == as_word.value.to_uppercase()
    } else {
        true
    };
    if !matches {
        let fixed = if from_lower { "as" } else { "AS" };
        report.push(
            Finding::new(
                Rule::FromAsCasing,
                node.span,
                format!(
                    "'{}' and '{}' keywords' casing do not match",
                    as_word.value, from
                ),
            )
            .with_hint(format!("write '{fixed}' to match '{from}'")),
        );
    }
}

/// The experimental `InvalidDefinitionDescription`: the comment right above a named stage or
/// an `ARG` should start with the name it describes.
fn definition_description(
    node: &Node,
    instruction: &str,
    keys: &[String],
    report: &mut Report<'_>,
) {
    if !report.enabled(Rule::InvalidDefinitionDescription) {
        return;
    }
    let (Some(last), Some(first_key)) = (node.comments.last(), keys.first()) else {
        return;
    };
    let first_word = last.split(' ').next().unwrap_or_default();
    if keys.iter().any(|key| key == first_word) {
        return;
    }
    let example = if keys.len() > 1 {
        "<arg_key>"
    } else {
        first_key.as_str()
    };
    report.push(
        Finding::new(
            Rule::InvalidDefinitionDescription,
            node.span,
            format!("Comment for {instruction} should follow the format: `# {example} <description>`"),
        )
        .with_hint("start the comment with the name, or separate it from the instruction with an empty line"),
    );
}

fn stage_names(model: &Model<'_>, report: &mut Report<'_>) {
    let mut seen = HashSet::new();
    for stage in &model.stages {
        let Some(name) = &stage.name else {
            continue;
        };
        if RESERVED_STAGE_NAMES.contains(&name.as_str()) {
            report.push(
                Finding::new(
                    Rule::ReservedStageName,
                    stage.from.span,
                    format!(
                        "Stage name should not use the same name as reserved stage {}",
                        hoist_dockerfile::go_quote(name)
                    ),
                )
                .with_hint("pick another stage name"),
            );
        }
        if !seen.insert(name.as_str()) {
            report.push(
                Finding::new(
                    Rule::DuplicateStageName,
                    stage.from.span,
                    format!(
                        "Duplicate stage name {}, stage names should be unique",
                        hoist_dockerfile::go_quote(name)
                    ),
                )
                .with_hint("rename one of the stages; references resolve to the last one"),
            );
        }
    }
}

/// `ConsistentInstructionCasing`: every keyword all-lower or all-upper, following the
/// majority of the stages' instructions (ties go to upper case). Global `ARG`s do not count,
/// as in BuildKit.
fn instruction_casing(model: &Model<'_>, report: &mut Report<'_>) {
    if !report.enabled(Rule::ConsistentInstructionCasing) {
        return;
    }
    let nodes = || {
        model
            .stages
            .iter()
            .flat_map(|stage| std::iter::once(stage.from).chain(stage.commands.iter().copied()))
    };
    let (mut lower, mut upper) = (0usize, 0usize);
    for node in nodes() {
        let keyword = &node.keyword;
        if *keyword == keyword.to_lowercase() {
            lower += 1;
        } else if *keyword == keyword.to_uppercase() {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    for node in nodes() {
        let keyword = &node.keyword;
        let casing = if majority_lower && *keyword != keyword.to_lowercase() {
            "lowercase"
        } else if !majority_lower && *keyword != keyword.to_uppercase() {
            "uppercase"
        } else {
            continue;
        };
        let fixed = if majority_lower {
            keyword.to_lowercase()
        } else {
            keyword.to_uppercase()
        };
        report.push(
            Finding::new(
                Rule::ConsistentInstructionCasing,
                node.span,
                format!(
                    "Command '{keyword}' should match the case of the command majority ({casing})"
                ),
            )
            .with_hint(format!("write '{fixed}'")),
        );
    }
}
