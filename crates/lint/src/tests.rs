//! One test group per rule: it fires where BuildKit fires it (message and span checked), and
//! stays quiet on the nearby correct forms.

use std::collections::BTreeMap;

use hoist_context::PatternMatcher;

use crate::{BaseImageEnv, CheckConfig, Finding, LintOptions, Rule, RuleSet, Severity, lint};

fn run(source: &str, options: &LintOptions<'_>) -> Vec<Finding> {
    let file = hoist_dockerfile::parse(source).expect("test Dockerfiles parse");
    lint(&file, options)
}

/// `(line, text the span covers, message)` for every finding of `rule`.
fn fired(source: &str, rule: Rule) -> Vec<(u32, String, String)> {
    fired_with(source, rule, &LintOptions::default())
}

fn fired_with(source: &str, rule: Rule, options: &LintOptions<'_>) -> Vec<(u32, String, String)> {
    run(source, options)
        .into_iter()
        .filter(|f| f.rule == rule)
        .map(|f| (f.line(), source[f.span.range()].to_owned(), f.message))
        .collect()
}

fn one(line: u32, text: &str, message: &str) -> Vec<(u32, String, String)> {
    vec![(line, text.to_owned(), message.to_owned())]
}

#[test]
fn crate_example() {
    let findings = run(
        "FROM alpine as build\nCMD echo hi\n",
        &LintOptions::default(),
    );
    let rules: Vec<Rule> = findings.iter().map(|f| f.rule).collect();
    assert_eq!(rules, [Rule::FromAsCasing, Rule::JsonArgsRecommended]);
    assert_eq!(findings[0].line(), 1);
    assert_eq!(findings[0].column(), 1);
    assert_eq!(
        findings[0].url,
        "https://docs.docker.com/go/dockerfile/rule/from-as-casing/"
    );
    assert!(findings[0].hint.is_some());
}

#[test]
fn stage_name_casing() {
    assert_eq!(
        fired("FROM alpine AS Build\n", Rule::StageNameCasing),
        one(
            1,
            "FROM alpine AS Build",
            "Stage name 'Build' should be lowercase"
        )
    );
    assert!(fired("FROM alpine AS build\n", Rule::StageNameCasing).is_empty());
    assert!(fired("FROM alpine\n", Rule::StageNameCasing).is_empty());
}

#[test]
fn from_as_casing() {
    assert_eq!(
        fired("FROM alpine as build\n", Rule::FromAsCasing),
        one(
            1,
            "FROM alpine as build",
            "'as' and 'FROM' keywords' casing do not match"
        )
    );
    assert_eq!(
        fired("from alpine AS build\n", Rule::FromAsCasing),
        one(
            1,
            "from alpine AS build",
            "'AS' and 'from' keywords' casing do not match"
        )
    );
    assert!(fired("FROM alpine AS build\n", Rule::FromAsCasing).is_empty());
    assert!(fired("from alpine as build\n", Rule::FromAsCasing).is_empty());
    assert!(
        fired("From alpine as build\n", Rule::FromAsCasing).is_empty(),
        "a mixed-case FROM is left to ConsistentInstructionCasing"
    );
}

#[test]
fn no_empty_continuation() {
    let source = "FROM alpine\nRUN echo a \\\n\n  && echo b\n";
    let found = fired(source, Rule::NoEmptyContinuation);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, 2);
    assert_eq!(found[0].2, "Empty continuation line");
    assert!(found[0].1.starts_with("RUN echo a"));
    assert!(
        fired(
            "FROM alpine\nRUN echo a \\\n  && echo b\n",
            Rule::NoEmptyContinuation
        )
        .is_empty()
    );
}

#[test]
fn consistent_instruction_casing() {
    let source = "FROM alpine\nrun echo a\nRUN echo b\nCopy a /b\n";
    assert_eq!(
        fired(source, Rule::ConsistentInstructionCasing),
        vec![
            (
                2,
                "run echo a".to_owned(),
                "Command 'run' should match the case of the command majority (uppercase)"
                    .to_owned()
            ),
            (
                4,
                "Copy a /b".to_owned(),
                "Command 'Copy' should match the case of the command majority (uppercase)"
                    .to_owned()
            ),
        ]
    );
    let lower = "from alpine\nrun echo a\nRUN echo b\n";
    assert_eq!(
        fired(lower, Rule::ConsistentInstructionCasing),
        one(
            3,
            "RUN echo b",
            "Command 'RUN' should match the case of the command majority (lowercase)"
        )
    );
    assert!(
        fired(
            "ARG x\nFROM alpine\nRUN echo\n",
            Rule::ConsistentInstructionCasing
        )
        .is_empty()
    );
    assert!(
        fired(
            "arg x\nFROM alpine\nRUN echo\n",
            Rule::ConsistentInstructionCasing
        )
        .is_empty(),
        "global ARGs are not counted or checked, as in BuildKit"
    );
}

#[test]
fn duplicate_and_reserved_stage_names() {
    let source = "FROM alpine AS build\nFROM alpine AS BUILD\n";
    assert_eq!(
        fired(source, Rule::DuplicateStageName),
        one(
            2,
            "FROM alpine AS BUILD",
            "Duplicate stage name \"build\", stage names should be unique"
        )
    );
    assert!(
        fired(
            "FROM alpine AS a\nFROM alpine AS b\n",
            Rule::DuplicateStageName
        )
        .is_empty()
    );
    assert_eq!(
        fired("FROM alpine AS scratch\n", Rule::ReservedStageName),
        one(
            1,
            "FROM alpine AS scratch",
            "Stage name should not use the same name as reserved stage \"scratch\""
        )
    );
    assert_eq!(
        fired("FROM alpine AS Context\n", Rule::ReservedStageName).len(),
        1
    );
    assert!(fired("FROM scratch AS base\n", Rule::ReservedStageName).is_empty());
}

#[test]
fn json_args_recommended() {
    assert_eq!(
        fired("FROM alpine\nCMD echo hi\n", Rule::JsonArgsRecommended),
        one(
            2,
            "CMD echo hi",
            "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals"
        )
    );
    assert_eq!(
        fired("FROM alpine\nentrypoint ./run\n", Rule::JsonArgsRecommended)[0].2,
        "JSON arguments recommended for entrypoint to prevent unintended behavior related to OS signals"
    );
    assert!(
        fired(
            "FROM alpine\nCMD [\"echo\", \"hi\"]\n",
            Rule::JsonArgsRecommended
        )
        .is_empty()
    );
    assert!(
        fired(
            "FROM alpine\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo hi\n",
            Rule::JsonArgsRecommended
        )
        .is_empty()
    );
    assert!(
        fired(
            "FROM alpine AS base\nSHELL [\"/bin/sh\", \"-c\"]\nFROM base\nCMD echo hi\n",
            Rule::JsonArgsRecommended
        )
        .is_empty(),
        "SHELL is inherited from the base stage"
    );
    assert!(fired("FROM alpine\nRUN echo hi\n", Rule::JsonArgsRecommended).is_empty());
}

#[test]
fn maintainer_deprecated() {
    assert_eq!(
        fired(
            "FROM alpine\nMAINTAINER me <me@example.com>\n",
            Rule::MaintainerDeprecated
        ),
        one(
            2,
            "MAINTAINER me <me@example.com>",
            "Maintainer instruction is deprecated in favor of using label"
        )
    );
    assert!(
        fired(
            "FROM alpine\nLABEL maintainer=me\n",
            Rule::MaintainerDeprecated
        )
        .is_empty()
    );
}

#[test]
fn undefined_arg_in_from() {
    let source = "ARG VERSION=3.20\nFROM alpine:$VERSON\n";
    assert_eq!(
        fired(source, Rule::UndefinedArgInFrom),
        one(
            2,
            "FROM alpine:$VERSON",
            "FROM argument 'VERSON' is not declared (did you mean VERSION?)"
        )
    );
    assert_eq!(
        fired("FROM alpine:${TAG}\n", Rule::UndefinedArgInFrom)[0].2,
        "FROM argument 'TAG' is not declared"
    );
    assert!(fired("ARG TAG\nFROM alpine:${TAG:-3}\n", Rule::UndefinedArgInFrom).is_empty());
    assert!(
        fired(
            "FROM --platform=$BUILDPLATFORM alpine:3\n",
            Rule::UndefinedArgInFrom
        )
        .is_empty(),
        "automatic platform args are declared"
    );
    assert_eq!(
        fired(
            "FROM --platform=$BUILDPLATFROM alpine\n",
            Rule::UndefinedArgInFrom
        )[0]
        .2,
        "FROM argument 'BUILDPLATFROM' is not declared (did you mean BUILDPLATFORM?)"
    );
}

#[test]
fn invalid_default_arg_in_from() {
    assert_eq!(
        fired("ARG TAG\nFROM alpine:$TAG\n", Rule::InvalidDefaultArgInFrom),
        one(
            2,
            "FROM alpine:$TAG",
            "Default value for ARG alpine:$TAG results in empty or invalid base image name"
        )
    );
    assert_eq!(
        fired("ARG IMAGE\nFROM $IMAGE\n", Rule::InvalidDefaultArgInFrom).len(),
        1
    );
    assert!(
        fired(
            "ARG TAG=3.20\nFROM alpine:$TAG\n",
            Rule::InvalidDefaultArgInFrom
        )
        .is_empty()
    );
    let options = LintOptions {
        build_args: BTreeMap::from([("TAG".to_owned(), "3.20".to_owned())]),
        ..LintOptions::default()
    };
    assert_eq!(
        fired_with(
            "ARG TAG\nFROM alpine:$TAG\n",
            Rule::InvalidDefaultArgInFrom,
            &options
        )
        .len(),
        1,
        "defaults are checked as if no build arg were given"
    );
}

#[test]
fn redundant_target_platform_and_const_platform() {
    assert_eq!(
        fired(
            "FROM --platform=$TARGETPLATFORM alpine\n",
            Rule::RedundantTargetPlatform
        ),
        one(
            1,
            "FROM --platform=$TARGETPLATFORM alpine",
            "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior"
        )
    );
    assert_eq!(
        fired(
            "FROM --platform=${TARGETPLATFORM} alpine\n",
            Rule::RedundantTargetPlatform
        )[0]
        .2,
        "Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior"
    );
    assert!(
        fired(
            "FROM --platform=$BUILDPLATFORM alpine\n",
            Rule::RedundantTargetPlatform
        )
        .is_empty()
    );

    assert_eq!(
        fired(
            "FROM --platform=linux/amd64 alpine\n",
            Rule::FromPlatformFlagConstDisallowed
        ),
        one(
            1,
            "FROM --platform=linux/amd64 alpine",
            "FROM --platform flag should not use constant value \"linux/amd64\""
        )
    );
    assert!(
        fired(
            "FROM --platform=linux/amd64 alpine AS build-amd64\n",
            Rule::FromPlatformFlagConstDisallowed
        )
        .is_empty(),
        "the stage name says which platform it is for"
    );
    assert!(
        fired(
            "FROM --platform=$BUILDPLATFORM alpine\n",
            Rule::FromPlatformFlagConstDisallowed
        )
        .is_empty()
    );
}

#[test]
fn workdir_relative_path() {
    assert_eq!(
        fired("FROM alpine\nWORKDIR app\n", Rule::WorkdirRelativePath),
        one(
            2,
            "WORKDIR app",
            "Relative workdir \"app\" can have unexpected results if the base image changes"
        )
    );
    assert!(
        fired(
            "FROM alpine\nWORKDIR /app\nWORKDIR sub\n",
            Rule::WorkdirRelativePath
        )
        .is_empty()
    );
    assert!(
        fired(
            "FROM alpine AS a\nWORKDIR /x\nFROM a\nWORKDIR y\n",
            Rule::WorkdirRelativePath
        )
        .is_empty(),
        "an absolute WORKDIR in the base stage counts"
    );
    assert_eq!(
        fired(
            "FROM scratch\nENV DIR=app\nWORKDIR $DIR\n",
            Rule::WorkdirRelativePath
        )[0]
        .2,
        "Relative workdir \"app\" can have unexpected results if the base image changes",
        "the path is checked after expansion"
    );
}

struct Images;

impl BaseImageEnv for Images {
    fn env(&self, image: &str, platform: &str) -> Option<Vec<String>> {
        assert!(platform.contains('/'), "a platform is os/arch: {platform}");
        (image == "golang:1.22").then(|| {
            vec![
                "PATH=/go/bin:/usr/local/go/bin:/usr/bin:/bin".to_owned(),
                "GOPATH=/go".to_owned(),
            ]
        })
    }
}

#[test]
fn undefined_var() {
    let source = "FROM scratch\nCOPY $SRC /app/\n";
    assert_eq!(
        fired(source, Rule::UndefinedVar),
        one(2, "COPY $SRC /app/", "Usage of undefined variable '$SRC'")
    );
    assert_eq!(
        fired(
            "FROM scratch\nENV FOO=1\nCOPY ${FO0} /x\n",
            Rule::UndefinedVar
        )[0]
        .2,
        "Usage of undefined variable '$FO0' (did you mean $FOO?)"
    );
    assert!(
        fired(
            "FROM scratch\nARG SRC\nCOPY $SRC /app/\n",
            Rule::UndefinedVar
        )
        .is_empty(),
        "a declared ARG without value is not undefined"
    );
    assert!(fired("FROM scratch\nENV A=1\nENV B=$A\n", Rule::UndefinedVar).is_empty());
    assert_eq!(
        fired("FROM scratch\nENV A=1 B=$A\n", Rule::UndefinedVar),
        one(2, "ENV A=1 B=$A", "Usage of undefined variable '$A'"),
        "ENV pairs see the environment before the instruction"
    );
    assert!(fired("FROM scratch\nWORKDIR $PATH\n", Rule::UndefinedVar).is_empty());
    assert!(
        fired("FROM scratch\nRUN echo $NOPE\n", Rule::UndefinedVar).is_empty(),
        "RUN is expanded by the shell, not by the builder"
    );
    assert_eq!(
        fired(
            "FROM scratch\nRUN --mount=type=cache,target=$CACHE true\n",
            Rule::UndefinedVar
        )[0]
        .2,
        "Usage of undefined variable '$CACHE'"
    );
    assert_eq!(
        fired(
            "FROM scratch\nCOPY <<EOF /x\n$GREETING\nEOF\n",
            Rule::UndefinedVar
        )[0]
        .2,
        "Usage of undefined variable '$GREETING'"
    );
    assert!(
        fired(
            "FROM scratch\nCOPY <<'EOF' /x\n$GREETING\nEOF\n",
            Rule::UndefinedVar
        )
        .is_empty()
    );
    assert!(
        fired(
            "FROM scratch AS a\nENV X=1\nFROM a\nCOPY $X /\n",
            Rule::UndefinedVar
        )
        .is_empty(),
        "the environment is inherited from the base stage"
    );
    assert_eq!(
        fired(
            "ARG V=1\nFROM scratch\nARG V\nENV W=$V\nENV U=$TARGETARCH\n",
            Rule::UndefinedVar
        ),
        one(
            5,
            "ENV U=$TARGETARCH",
            "Usage of undefined variable '$TARGETARCH'"
        ),
        "global ARGs must be declared again in the stage"
    );
}

#[test]
fn undefined_var_with_external_base_images() {
    let source = "FROM golang:1.22\nWORKDIR $GOPATH/src\nCOPY $GOPTH /x\n";
    assert!(
        fired(source, Rule::UndefinedVar).is_empty(),
        "without image metadata any name may come from the base image"
    );
    let options = LintOptions {
        base_image_env: Some(&Images),
        ..LintOptions::default()
    };
    assert_eq!(
        fired_with(source, Rule::UndefinedVar, &options),
        one(
            3,
            "COPY $GOPTH /x",
            "Usage of undefined variable '$GOPTH' (did you mean $GOPATH?)"
        )
    );
}

#[test]
fn multiple_instructions_disallowed() {
    let source = "FROM alpine\nCMD [\"a\"]\nHEALTHCHECK NONE\nCMD [\"b\"]\n";
    assert_eq!(
        fired(source, Rule::MultipleInstructionsDisallowed),
        one(
            2,
            "CMD [\"a\"]",
            "Multiple CMD instructions should not be used in the same stage because only the last one will be used"
        )
    );
    assert!(
        fired(
            "FROM alpine AS a\nCMD [\"a\"]\nFROM a\nCMD [\"b\"]\n",
            Rule::MultipleInstructionsDisallowed
        )
        .is_empty(),
        "each stage has its own"
    );
}

#[test]
fn legacy_key_value_format() {
    assert_eq!(
        fired("FROM alpine\nENV FOO bar baz\n", Rule::LegacyKeyValueFormat),
        one(
            2,
            "ENV FOO bar baz",
            "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format"
        )
    );
    assert_eq!(
        fired(
            "FROM alpine\nlabel team infra\n",
            Rule::LegacyKeyValueFormat
        )[0]
        .2,
        "\"label key=value\" should be used instead of legacy \"label key value\" format"
    );
    assert!(
        fired(
            "FROM alpine\nENV FOO=\"bar baz\"\n",
            Rule::LegacyKeyValueFormat
        )
        .is_empty()
    );
}

#[test]
fn secrets_used_in_arg_or_env() {
    assert_eq!(
        fired(
            "FROM alpine\nARG GITHUB_TOKEN\n",
            Rule::SecretsUsedInArgOrEnv
        ),
        one(
            2,
            "ARG GITHUB_TOKEN",
            "Do not use ARG or ENV instructions for sensitive data (ARG \"GITHUB_TOKEN\")"
        )
    );
    assert_eq!(
        fired(
            "FROM alpine\nENV aws_secret_key=x\n",
            Rule::SecretsUsedInArgOrEnv
        )[0]
        .2,
        "Do not use ARG or ENV instructions for sensitive data (ENV \"aws_secret_key\")"
    );
    assert!(
        fired(
            "FROM alpine\nENV PUBLIC_KEY=x GPG_KEY_FILE=y\n",
            Rule::SecretsUsedInArgOrEnv
        )
        .is_empty()
    );
    assert!(
        fired("ARG NPM_TOKEN\nFROM alpine\n", Rule::SecretsUsedInArgOrEnv).is_empty(),
        "global ARGs are not checked, as in BuildKit"
    );
}

#[test]
fn copy_ignored_file() {
    let ignore = PatternMatcher::new(["secret.txt", "build", "*.log"]).unwrap();
    let options = LintOptions {
        ignore: Some(&ignore),
        ..LintOptions::default()
    };
    let source = "FROM alpine\nCOPY secret.txt ./build/out app.py /app/\nADD debug.log /x\nCOPY --from=alpine secret.txt /y\nCOPY . /src\n";
    assert_eq!(
        fired_with(source, Rule::CopyIgnoredFile, &options),
        vec![
            (
                2,
                "COPY secret.txt ./build/out app.py /app/".to_owned(),
                "Attempting to Copy file \"secret.txt\" that is excluded by .dockerignore"
                    .to_owned()
            ),
            (
                2,
                "COPY secret.txt ./build/out app.py /app/".to_owned(),
                "Attempting to Copy file \"build/out\" that is excluded by .dockerignore"
                    .to_owned()
            ),
            (
                3,
                "ADD debug.log /x".to_owned(),
                "Attempting to Add file \"debug.log\" that is excluded by .dockerignore".to_owned()
            ),
        ]
    );
    assert!(
        fired(source, Rule::CopyIgnoredFile).is_empty(),
        "no ignore file, no rule"
    );

    let with_exception = PatternMatcher::new(["build", "!build/keep"]).unwrap();
    let options = LintOptions {
        ignore: Some(&with_exception),
        ..LintOptions::default()
    };
    assert!(
        fired_with(
            "FROM alpine\nCOPY build /b\n",
            Rule::CopyIgnoredFile,
            &options
        )
        .is_empty(),
        "exceptions turn the rule off, as in BuildKit"
    );

    let dotfiles = PatternMatcher::new([".*"]).unwrap();
    let everything = PatternMatcher::new(["*"]).unwrap();
    let root = "FROM alpine\nCOPY . /src\n";
    let with = |m| LintOptions {
        ignore: Some(m),
        ..LintOptions::default()
    };
    assert!(fired_with(root, Rule::CopyIgnoredFile, &with(&dotfiles)).is_empty());
    assert_eq!(
        fired_with(root, Rule::CopyIgnoredFile, &with(&everything))[0].2,
        "Attempting to Copy file \".\" that is excluded by .dockerignore"
    );
}

#[test]
fn invalid_definition_description_is_experimental() {
    let source = "# check=experimental=InvalidDefinitionDescription\n# the build stage\nFROM alpine AS build\n# VERSION of the app\nARG VERSION=1\n\n# unrelated\n#\nARG OTHER\n";
    assert_eq!(
        fired(source, Rule::InvalidDefinitionDescription),
        one(
            3,
            "FROM alpine AS build",
            "Comment for FROM should follow the format: `# build <description>`"
        )
    );
    let default_off = source.replacen("# check=experimental=InvalidDefinitionDescription\n", "", 1);
    assert!(fired(&default_off, Rule::InvalidDefinitionDescription).is_empty());
    assert_eq!(
        fired(
            "# check=experimental=all\nFROM alpine\n# some args\nARG A B\n",
            Rule::InvalidDefinitionDescription
        )[0]
        .2,
        "Comment for ARG should follow the format: `# <arg_key> <description>`"
    );
}

#[test]
fn expose_checks() {
    assert_eq!(
        fired(
            "FROM alpine\nEXPOSE 80/TcP 443/tcp\n",
            Rule::ExposeProtoCasing
        ),
        one(
            2,
            "EXPOSE 80/TcP 443/tcp",
            "Defined protocol '80/TcP' in EXPOSE instruction should be lowercase"
        )
    );
    assert_eq!(
        fired("FROM alpine\nEXPOSE 127.0.0.1:80:80 8080:80 90\n", Rule::ExposeInvalidFormat),
        vec![
            (
                2,
                "EXPOSE 127.0.0.1:80:80 8080:80 90".to_owned(),
                "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'"
                    .to_owned()
            ),
            (
                2,
                "EXPOSE 127.0.0.1:80:80 8080:80 90".to_owned(),
                "EXPOSE instruction should not define an IP address or host-port mapping, found '8080:80'"
                    .to_owned()
            ),
        ]
    );
    assert_eq!(
        fired(
            "FROM scratch\nENV P=\"80/UDP 81\"\nEXPOSE $P\n",
            Rule::ExposeProtoCasing
        )[0]
        .2,
        "Defined protocol '80/UDP' in EXPOSE instruction should be lowercase",
        "ports are checked after expansion and splitting"
    );
    assert!(
        fired(
            "FROM alpine\nEXPOSE 80 443/udp 8000-8010\n",
            Rule::ExposeInvalidFormat
        )
        .is_empty()
    );
}

#[test]
fn copy_before_dependency_install() {
    let source =
        "FROM node:20-slim\nWORKDIR /app\nCOPY . .\nRUN npm ci\nCMD [\"node\", \"index.js\"]\n";
    assert_eq!(
        fired(source, Rule::CopyBeforeDependencyInstall),
        one(
            3,
            "COPY . .",
            "COPY of the whole build context comes before 'npm ci' on line 4, so every source change re-runs the dependency install"
        )
    );
    let finding = run(source, &LintOptions::default())
        .into_iter()
        .find(|f| f.rule == Rule::CopyBeforeDependencyInstall)
        .unwrap();
    assert_eq!(
        finding.hint.as_deref(),
        Some(
            "copy the manifests and install first: `COPY package.json package-lock.json ./` and `RUN npm ci` before `COPY . .`"
        )
    );
    assert_eq!(finding.severity, Severity::Warning);

    let pip = "FROM python:3.12-slim\nCOPY . /app\nRUN pip install -r requirements/prod.txt\n";
    let finding = run(pip, &LintOptions::default())
        .into_iter()
        .find(|f| f.rule == Rule::CopyBeforeDependencyInstall)
        .unwrap();
    assert!(
        finding
            .hint
            .unwrap()
            .contains("`COPY requirements/prod.txt requirements/prod.txt`"),
        "the suggestion names the requirements file the install uses"
    );

    for fine in [
        // Manifests first, then the sources: the build after it is fine.
        "FROM golang:1.22\nCOPY go.mod go.sum ./\nRUN go mod download\nCOPY . .\nRUN go build -o /app .\n",
        "FROM node:20\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\nRUN npm run build\n",
        // Not a language dependency install.
        "FROM debian\nCOPY . /src\nRUN apt-get update && apt-get install -y make\n",
        // The downloads survive in a cache mount.
        "FROM rust\nCOPY . .\nRUN --mount=type=cache,target=/usr/local/cargo/registry cargo build --release\n",
        // Copying a subdirectory is not the whole context.
        "FROM node:20\nCOPY src ./src\nRUN npm install\n",
        // From another stage, not the context.
        "FROM node:20 AS deps\nFROM node:20\nCOPY --from=deps / /\nRUN npm ci\n",
    ] {
        assert!(
            fired(fine, Rule::CopyBeforeDependencyInstall).is_empty(),
            "{fine}"
        );
    }
    assert_eq!(
        fired(
            "FROM rust:1.80\nWORKDIR /src\nCOPY ./ ./\nRUN cargo build --release\n",
            Rule::CopyBeforeDependencyInstall
        )[0]
        .2,
        "COPY of the whole build context comes before 'cargo build' on line 4, so every source change re-runs the dependency install"
    );
}

#[test]
fn toolchain_in_final_stage() {
    assert_eq!(
        fired(
            "FROM golang:1.22\nCOPY . .\nRUN go build -o /app\n",
            Rule::ToolchainInFinalStage
        ),
        one(
            1,
            "FROM golang:1.22",
            "The final stage is based on the full toolchain image 'golang:1.22', which ships compilers and build tools in the image"
        )
    );
    assert_eq!(
        fired(
            "FROM rust AS build\nFROM build AS final\n",
            Rule::ToolchainInFinalStage
        )[0]
        .2,
        "The final stage is based on the full toolchain image 'rust' (through stage 'build'), which ships compilers and build tools in the image"
    );
    assert_eq!(
        fired(
            "FROM mcr.microsoft.com/dotnet/sdk:8.0\n",
            Rule::ToolchainInFinalStage
        )
        .len(),
        1
    );
    assert_eq!(
        fired(
            "ARG PY=3.12\nFROM python:${PY}\n",
            Rule::ToolchainInFinalStage
        )[0]
        .2,
        "The final stage is based on the full toolchain image 'python:3.12', which ships compilers and build tools in the image"
    );
    for fine in [
        "FROM golang:1.22 AS build\nFROM gcr.io/distroless/static-debian12\nCOPY --from=build /app /app\n",
        "FROM node:20-alpine\n",
        "FROM python:3.12-slim-bookworm\n",
        "FROM eclipse-temurin:21-jre\n",
        "FROM mcr.microsoft.com/dotnet/aspnet:8.0\n",
        "FROM alpine\n",
        "FROM bitnami/node\n",
    ] {
        assert!(
            fired(fine, Rule::ToolchainInFinalStage).is_empty(),
            "{fine}"
        );
    }
    let options = LintOptions {
        target: Some("build".to_owned()),
        ..LintOptions::default()
    };
    assert!(
        fired_with(
            "FROM golang AS build\n",
            Rule::ToolchainInFinalStage,
            &options
        )
        .is_empty(),
        "an explicit target is deliberate"
    );
}

#[test]
fn unreachable_stage() {
    let source = "FROM alpine AS deps\nFROM alpine AS test\nFROM alpine\nCOPY --from=deps /a /a\nFROM alpine\nRUN --mount=from=2,target=/m true\n";
    let findings: Vec<Finding> = run(source, &LintOptions::default())
        .into_iter()
        .filter(|f| f.rule == Rule::UnreachableStage)
        .collect();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].line(), 2);
    assert_eq!(&source[findings[0].span.range()], "FROM alpine AS test");
    assert_eq!(
        findings[0].message,
        "Stage 'test' is not used by any other stage and is not the default target: only `--target test` builds it"
    );
    assert_eq!(findings[0].severity, Severity::Info);

    assert_eq!(
        fired("FROM alpine\nFROM alpine\n", Rule::UnreachableStage)[0].2,
        "Stage 0 is unnamed, not used by any other stage and not the default target: no build runs it"
    );
    assert!(fired("FROM alpine AS base\nFROM base\n", Rule::UnreachableStage).is_empty());
    assert!(
        fired(
            "ARG S=a\nFROM alpine AS a\nFROM alpine AS b\nFROM alpine\nCOPY --from=$S / /\n",
            Rule::UnreachableStage
        )
        .is_empty(),
        "a variable --from may name any stage"
    );
    assert_eq!(
        fired(
            "FROM alpine AS a\nFROM golang:${V:-1} AS b\nFROM b\n",
            Rule::UnreachableStage
        )
        .len(),
        1,
        "a variable tag does not make the check give up"
    );
}

#[test]
fn check_directive_and_build_arg() {
    let source = "# check=skip=JSONArgsRecommended,FromAsCasing\nFROM alpine as build\nCMD echo\n";
    assert!(run(source, &LintOptions::default()).is_empty());

    let source = "# check=skip=all\nFROM alpine as build\nCMD echo\nFROM golang\n";
    assert!(
        run(source, &LintOptions::default()).is_empty(),
        "skip=all covers hoist's rules too"
    );

    let source = "# check=error=true\nFROM alpine as build\n";
    let findings = run(source, &LintOptions::default());
    assert_eq!(findings[0].severity, Severity::Error);

    let options = LintOptions {
        build_args: BTreeMap::from([(
            "BUILDKIT_DOCKERFILE_CHECK".to_owned(),
            "skip=FromAsCasing".to_owned(),
        )]),
        ..LintOptions::default()
    };
    let findings = run(source, &options);
    assert!(
        findings.is_empty(),
        "the build arg replaces the directive: {findings:?}"
    );

    let options = LintOptions {
        check: Some(CheckConfig::parse("error=true").unwrap()),
        ..LintOptions::default()
    };
    let findings = run("FROM alpine\nFROM alpine AS a\n", &options);
    assert_eq!(findings[0].rule, Rule::UnreachableStage);
    assert_eq!(
        findings[0].severity,
        Severity::Info,
        "info stays info with error=true"
    );

    let invalid = hoist_dockerfile::parse("# check=error=maybe\nFROM alpine as b\n").unwrap();
    assert!(LintOptions::default().check_config(&invalid).is_err());
    assert_eq!(
        lint(&invalid, &LintOptions::default()).len(),
        1,
        "defaults apply"
    );
}

#[test]
fn buildkit_rule_set_leaves_hoist_rules_out() {
    let source = "FROM golang\nCOPY . .\nRUN go mod download\n";
    let options = LintOptions {
        rules: RuleSet::BuildKit,
        ..LintOptions::default()
    };
    assert!(run(source, &options).is_empty());
    let all: Vec<Rule> = run(source, &LintOptions::default())
        .into_iter()
        .map(|f| f.rule)
        .collect();
    assert_eq!(
        all,
        [
            Rule::ToolchainInFinalStage,
            Rule::CopyBeforeDependencyInstall
        ]
    );
}

#[test]
fn target_limits_the_per_instruction_checks() {
    let source =
        "FROM alpine AS a\nWORKDIR rel\nFROM alpine AS Other\nWORKDIR rel\nFROM a AS final\n";
    let options = LintOptions {
        target: Some("final".to_owned()),
        ..LintOptions::default()
    };
    let rules: Vec<(Rule, u32)> = run(source, &options)
        .into_iter()
        .map(|f| (f.rule, f.line()))
        .collect();
    assert_eq!(
        rules,
        [
            (Rule::WorkdirRelativePath, 2),
            (Rule::StageNameCasing, 3),
            (Rule::UnreachableStage, 3),
        ],
        "stage Other is not converted for target final, but its FROM is still parsed"
    );
}

#[test]
fn findings_are_ordered_by_line() {
    let source = "FROM alpine AS Build\nCMD a\nCMD b\nfrom alpine\n";
    let lines: Vec<u32> = run(source, &LintOptions::default())
        .iter()
        .map(Finding::line)
        .collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
}

/// Pieces of Dockerfile text that exercise every check: variables, quotes, flags, heredocs,
/// odd ports and paths.
const PIECES: &[&str] = &[
    "FROM alpine AS Build",
    "FROM build",
    "FROM --platform=$TARGETPLATFORM golang:${V:-1}",
    "from scratch as a",
    "ARG V",
    "ARG A=\"x y\" B=$V",
    "ENV K v w",
    "ENV A=$B B=${C:?x}",
    "COPY . .",
    "COPY --from=0 /a /b",
    "COPY <<EOF /x\n$Y\nEOF",
    "ADD https://x/y /z",
    "RUN npm ci",
    "RUN --mount=type=cache,target=$T,from=1 go build",
    "CMD echo $X",
    "CMD [\"a\"]",
    "HEALTHCHECK NONE",
    "WORKDIR $W",
    "WORKDIR /",
    "EXPOSE 80/TCP 1:2:3 $P",
    "LABEL a b",
    "USER ${U",
    "VOLUME [\"/v\"]",
    "SHELL [\"sh\", \"-c\"]",
    "MAINTAINER m",
    "# check=error=true",
    "# a comment",
    "RUN a \\\n\n b",
    "STOPSIGNAL $S",
    "ONBUILD RUN x",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Any mix of instructions is checked without panicking, and findings come back sorted
    /// with spans inside the text.
    #[test]
    fn never_panics_and_spans_stay_in_the_source(
        picks in proptest::collection::vec(0..PIECES.len(), 1..12),
        target in proptest::option::of(proptest::sample::select(vec!["a", "build", "0", "x"])),
    ) {
        let source: String = picks.iter().map(|&i| format!("{}\n", PIECES[i])).collect();
        let Ok(file) = hoist_dockerfile::parse(&source) else {
            return Ok(());
        };
        let ignore = PatternMatcher::new(["*", "x"]).unwrap();
        let options = LintOptions {
            target: target.map(str::to_owned),
            ignore: Some(&ignore),
            base_image_env: Some(&Images),
            ..LintOptions::default()
        };
        let findings = lint(&file, &options);
        let mut last = 0;
        for finding in &findings {
            proptest::prop_assert!(finding.line() >= last);
            last = finding.line();
            proptest::prop_assert!(source.get(finding.span.range()).is_some());
        }
    }
}
