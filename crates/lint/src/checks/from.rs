//! The global scope and `FROM`: `InvalidDefaultArgInFrom`, `UndefinedArgInFrom`,
//! `RedundantTargetPlatform` and `FromPlatformFlagConstDisallowed`, and the values every
//! later check needs (global `ARG` values, each stage's resolved base).

use std::collections::{BTreeMap, BTreeSet};

use hoist_shell::{Lexer, ShellError};

use crate::model::{Model, arg_decls};
use crate::platform::{Platform, default_global_args};
use crate::reference::is_valid_image_name;
use crate::report::Report;
use crate::{Finding, Rule};

/// What the global scope resolves to.
#[derive(Debug, Default)]
pub(crate) struct Globals {
    /// The global `ARG` values in effect (automatic platform args, then the file's global
    /// `ARG`s with build-arg values or defaults), `NAME=value`.
    pub(crate) args: Vec<String>,
    /// For each stage: the base after expansion (`golang:1.22`, `build`), or `None` when it
    /// could not be expanded.
    pub(crate) bases: Vec<Option<String>>,
    /// For each stage: the index of the earlier stage it is built on, if any.
    pub(crate) base_stages: Vec<Option<usize>>,
    /// For each stage: the expanded `--platform`, if given and expandable.
    pub(crate) platforms: Vec<Option<String>>,
}

/// `NAME=value` list with replace-or-append, BuildKit's `EnvList.AddOrReplace`.
pub(crate) fn add_or_replace(list: &mut Vec<String>, key: &str, value: &str) {
    list.retain(|entry| entry.split_once('=').map_or(entry.as_str(), |(k, _)| k) != key);
    list.push(format!("{key}={value}"));
}

pub(crate) fn entry_keys(list: &[String]) -> impl Iterator<Item = &str> {
    list.iter()
        .map(|entry| entry.split_once('=').map_or(entry.as_str(), |(k, _)| k))
}

/// BuildKit's `buildMetaArgs`: the global `ARG`s in order, each taking its build-arg value
/// or its default expanded against the ones before it. Returns the values and the names of
/// every declared global `ARG`.
fn build_meta_args(
    model: &Model<'_>,
    lexer: &Lexer,
    mut args: Vec<String>,
    build_args: &BTreeMap<String, String>,
) -> Result<(Vec<String>, BTreeSet<String>), ShellError> {
    let mut declared = BTreeSet::new();
    for node in &model.meta_args {
        for decl in arg_decls(node) {
            let value = match (build_args.get(&decl.key), &decl.value) {
                (Some(value), _) => Some(value.clone()),
                (None, Some(default)) => Some(lexer.process_word(default, &args)?.value),
                (None, None) => None,
            };
            if let Some(value) = value {
                add_or_replace(&mut args, &decl.key, &value);
            }
            declared.insert(decl.key);
        }
    }
    Ok((args, declared))
}

pub(crate) fn check(
    model: &Model<'_>,
    lexer: &Lexer,
    build_args: &BTreeMap<String, String>,
    target: Option<&str>,
    platform: &Platform,
    report: &mut Report<'_>,
) -> Globals {
    let target_name = match target {
        Some(target) => target.to_owned(),
        None => model
            .stages
            .last()
            .and_then(|stage| stage.name.clone())
            .unwrap_or_default(),
    };
    let build = Platform::host();
    let defaults = default_global_args(&build, platform, &target_name);

    // Base names must stay valid when nobody passes build args.
    if report.enabled(Rule::InvalidDefaultArgInFrom)
        && let Ok((args, _)) = build_meta_args(model, lexer, defaults.clone(), &BTreeMap::new())
    {
        for stage in &model.stages {
            let Ok(word) = lexer.process_word(&stage.base.value, &args) else {
                break;
            };
            if !is_valid_image_name(&word.value) {
                report.push(
                    Finding::new(
                        Rule::InvalidDefaultArgInFrom,
                        stage.from.span,
                        format!(
                            "Default value for ARG {} results in empty or invalid base image name",
                            stage.base.value
                        ),
                    )
                    .with_hint("give the global ARG a default that names an image"),
                );
            }
        }
    }

    let mut globals = Globals::default();
    let (args, declared) = match build_meta_args(model, lexer, defaults.clone(), build_args) {
        Ok(resolved) => resolved,
        // BuildKit stops with this error; the build reports it, the checks go on with the
        // automatic platform args only.
        Err(_) => (defaults, BTreeSet::new()),
    };
    let known: BTreeSet<&str> = declared
        .iter()
        .map(String::as_str)
        .chain(entry_keys(&args))
        .collect();

    let mut names_so_far: Vec<(String, usize)> = Vec::new();
    for stage in &model.stages {
        let base = lexer.process_word(&stage.base.value, &args).ok();
        if let Some(word) = &base {
            undefined_args(&word.unmatched, &known, stage.from.span, report);
        }
        let base = base.map(|word| word.value);
        let base_stage = base.as_ref().and_then(|base| {
            names_so_far
                .iter()
                .rev()
                .find(|(name, _)| name == base)
                .map(|(_, index)| *index)
        });
        globals.bases.push(base);
        globals.base_stages.push(base_stage);

        let mut platform_value = None;
        if let Some(raw) = &stage.platform
            && let Ok(word) = lexer.process_word(raw, &args)
        {
            undefined_args(&word.unmatched, &known, stage.from.span, report);
            redundant_target_platform(raw, &word, &args, stage.from.span, report);
            const_platform(stage.name.as_deref(), &word, stage.from.span, report);
            platform_value = Some(word.value);
        }
        globals.platforms.push(platform_value);

        if let Some(name) = &stage.name {
            names_so_far.push((name.clone(), stage.index));
        }
    }
    globals.args = args;
    globals
}

fn undefined_args(
    unmatched: &[&str],
    known: &BTreeSet<&str>,
    span: hoist_dockerfile::Span,
    report: &mut Report<'_>,
) {
    for name in unmatched {
        if known.contains(name) {
            continue;
        }
        let suggestion = hoist_dockerfile::closest_match(name, known.iter().copied());
        let mut message = format!("FROM argument '{name}' is not declared");
        if let Some(suggestion) = suggestion {
            message.push_str(&format!(" (did you mean {suggestion}?)"));
        }
        let hint = match suggestion {
            Some(suggestion) => {
                format!("use ${suggestion}, or declare `ARG {name}` before the first FROM")
            }
            None => format!("declare `ARG {name}` before the first FROM"),
        };
        report.push(Finding::new(Rule::UndefinedArgInFrom, span, message).with_hint(hint));
    }
}

/// `--platform=$TARGETPLATFORM` (or `${TARGETPLATFORM}`): the only variable used, and the
/// result is exactly its value.
fn redundant_target_platform(
    raw: &str,
    word: &hoist_shell::ProcessedWord<'_>,
    args: &[String],
    span: hoist_dockerfile::Span,
    report: &mut Report<'_>,
) {
    if word.matched.len() != 1 || !word.unmatched.is_empty() || word.matched[0] != "TARGETPLATFORM"
    {
        return;
    }
    let value = args
        .iter()
        .rev()
        .find_map(|entry| entry.strip_prefix("TARGETPLATFORM="));
    if value == Some(word.value.as_str()) {
        report.push(
            Finding::new(
                Rule::RedundantTargetPlatform,
                span,
                format!(
                    "Setting platform to predefined {raw} in FROM is redundant as this is the default behavior"
                ),
            )
            .with_hint("remove the --platform flag"),
        );
    }
}

/// A `--platform` with no variable in it, unless the stage name mentions its OS or
/// architecture (a per-platform stage such as `build-arm64` is deliberate).
fn const_platform(
    stage_name: Option<&str>,
    word: &hoist_shell::ProcessedWord<'_>,
    span: hoist_dockerfile::Span,
    report: &mut Report<'_>,
) {
    if !word.matched.is_empty() || !word.unmatched.is_empty() {
        return;
    }
    let Some(platform) = Platform::parse(&word.value) else {
        return;
    };
    let name = stage_name.unwrap_or_default();
    if name.contains(&platform.os) || name.contains(&platform.architecture) {
        return;
    }
    report.push(
        Finding::new(
            Rule::FromPlatformFlagConstDisallowed,
            span,
            format!(
                "FROM --platform flag should not use constant value {}",
                hoist_dockerfile::go_quote(&word.value)
            ),
        )
        .with_hint("use $BUILDPLATFORM or $TARGETPLATFORM, or build with --platform"),
    );
}
