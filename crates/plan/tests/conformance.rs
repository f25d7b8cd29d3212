//! BuildKit conversion-level conformance: the `conversion[]` cases of
//! `restated/buildkit-instructions/instructions.json` (see docs/conformance.md, "Planner").
//! The typed layer runs 3 of them and leaves 7 to the planner; all 10 run here.
//!
//! Data location: `$HOIST_CONFORMANCE_DIR`, else `<manifest>/../../../shared/conformance`.
#![allow(clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The cases the typed layer skipped as "belongs to plan": each must run here.
const PLANNER_CASES: &[&str] = &[
    "TestDockerfileParsing/copy-url",
    "TestDockerfileParsing/target-missing",
    "TestDockerfileParsing/empty-base",
    "TestDockerfileParsing/blank-base-after-expansion",
    "TestDockerfileCircularDependencies/self",
    "TestDockerfileCircularDependencies/cycle",
    "TestCopyFromKeepsStageLabels",
];

fn data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("HOIST_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    };
    if dir
        .join("restated/buildkit-instructions/instructions.json")
        .is_file()
    {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: conformance data not found at {} (set HOIST_CONFORMANCE_DIR)",
            dir.display()
        );
        None
    }
}

fn run_case(case: &Value) -> Result<(), String> {
    let text = case["dockerfile"].as_str().ok_or("no dockerfile")?;
    let file = hoist_dockerfile::parse(text).map_err(|e| format!("parse error: {e}"))?;
    let mut request = hoist_plan::PlanRequest::new(file);
    request.target = case["target"].as_str().map(str::to_owned);
    let result = common::plan(&request);
    match (&case["error"], result) {
        (Value::Null, Ok(plan)) => {
            if let Some(labels) = case["expect_image_labels"].as_object() {
                let got = &plan.target_stage().config.labels;
                for (key, value) in labels {
                    if got.get(key).map(String::as_str) != value.as_str() {
                        return Err(format!("label {key}: got {:?}, want {value}", got.get(key)));
                    }
                }
                if got.len() != labels.len() {
                    return Err(format!("labels {got:?}, want {labels:?}"));
                }
            }
            Ok(())
        }
        (Value::Null, Err(e)) => Err(format!("unexpected error: {e}")),
        (_, Ok(_)) => Err("planned without error".to_owned()),
        (Value::String(expected), Err(e)) => {
            let message = e.to_string();
            let ok = match case["match"].as_str().unwrap_or("equals") {
                "equals" => message == *expected,
                "contains" => message.contains(expected.as_str()),
                "any" => true,
                other => return Err(format!("unknown match kind {other}")),
            };
            if ok {
                Ok(())
            } else {
                Err(format!("error {message:?}, want {expected:?}"))
            }
        }
        (other, Err(_)) => Err(format!("unexpected expectation {other}")),
    }
}

#[test]
fn conversion_cases() {
    let Some(dir) = data_dir() else { return };
    let path = dir.join("restated/buildkit-instructions/instructions.json");
    let text = std::fs::read_to_string(&path).expect("conformance file is readable");
    let data: Value = serde_json::from_str(&text).expect("conformance file is JSON");
    let cases = data["conversion"]
        .as_array()
        .expect("conversion[] is a list");
    let mut failures = Vec::new();
    let mut planner_cases_seen = 0;
    for case in cases {
        let id = case["id"].as_str().unwrap_or("?");
        if PLANNER_CASES.contains(&id) {
            planner_cases_seen += 1;
        }
        if let Err(why) = run_case(case) {
            failures.push(format!("{id}: {why}"));
        }
    }
    eprintln!(
        "planner conformance: conversion {}/{} ({} of them the typed layer's skipped cases)",
        cases.len() - failures.len(),
        cases.len(),
        planner_cases_seen
    );
    assert_eq!(
        planner_cases_seen,
        PLANNER_CASES.len(),
        "every skipped case is in the data"
    );
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn empty_base_errors_name_the_base() {
    // The messages the data only asks "any error" for, checked against BuildKit's text.
    let e = common::plan(&common::request("FROM ${BLANK} AS foo")).unwrap_err();
    assert_eq!(e.to_string(), "base name (${BLANK}) should not be blank");
    assert_eq!(e.line(), Some(1));
    let e = common::plan(&common::request("FROM \"\" AS foo")).unwrap_err();
    assert_eq!(e.to_string(), "base name (\"\") should not be blank");
}

/// Resolves every image to a one-layer image with an empty config.
struct AnyImage;

impl hoist_plan::BaseImageResolver for AnyImage {
    fn resolve(
        &self,
        reference: &str,
        platform: &hoist_plan::Platform,
    ) -> Result<hoist_plan::BaseImage, String> {
        Ok(hoist_plan::BaseImage {
            reference: reference.to_owned(),
            platform: platform.clone(),
            config: hoist_plan::ImageConfig::default(),
            history: Vec::new(),
            layers: 1,
        })
    }
}

/// Every Dockerfile of BuildKit's parser tests is planned (or rejected with an error, never
/// a panic), and each plan keeps the DAG's invariants.
#[test]
fn parser_testfiles_plan_with_a_consistent_dag() {
    let Some(dir) = data_dir() else { return };
    let mut planned = 0;
    let mut rejected = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir.join("buildkit-parser/testfiles"))
        .expect("testfiles directory")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for case in &entries {
        let bytes = std::fs::read(case.join("Dockerfile")).expect("Dockerfile");
        let Ok(file) = hoist_dockerfile::parse_bytes(&bytes) else {
            continue;
        };
        let request = hoist_plan::PlanRequest::new(file);
        match hoist_plan::plan(&request, &AnyImage) {
            Ok(plan) => {
                planned += 1;
                for op in &plan.ops {
                    assert!(
                        op.inputs.iter().all(|i| i.0 < op.id.0),
                        "{}: inputs after op {:?}",
                        case.display(),
                        op.id
                    );
                }
                for stage in &plan.stages {
                    let with_history = stage.steps.iter().filter(|s| s.history.is_some()).count();
                    let own_history = stage
                        .history
                        .iter()
                        .filter(|h| h.comment == hoist_plan::HISTORY_COMMENT)
                        .count();
                    assert!(own_history >= with_history, "{}", case.display());
                    assert!(stage.root.0 < plan.ops.len());
                }
            }
            Err(e) => rejected.push(format!(
                "{}: {e}",
                case.file_name().unwrap_or_default().to_string_lossy()
            )),
        }
    }
    eprintln!("planner on parser testfiles: {planned} planned, rejected: {rejected:?}");
    assert!(
        planned >= 20,
        "most parser testfiles are plannable ({planned})"
    );
}
