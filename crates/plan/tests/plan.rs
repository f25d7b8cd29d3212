//! The planner on whole Dockerfiles: target pruning, ARG/ENV scoping, image config and
//! history, ONBUILD, dependencies and their errors, and the repository's example.

mod common;

use std::collections::BTreeSet;

use common::{Images, plan, request};
use hoist_plan::op::{CopyFrom, CopySource, Exec, FileCopy, Source};
use hoist_plan::{BuildPlan, NoCache, Op, OpId, PlanErrorKind, PlannedOp, Platform, StageBase};

/// The ops an op depends on, transitively (itself included).
fn closure(plan: &BuildPlan, id: OpId) -> BTreeSet<OpId> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![id];
    while let Some(id) = todo.pop() {
        if seen.insert(id) {
            todo.extend(plan.op(id).inputs.iter().copied());
        }
    }
    seen
}

fn exec_of(plan: &BuildPlan, id: OpId) -> &hoist_plan::op::Exec {
    match &plan.op(id).op {
        Op::Exec(exec) => exec,
        other => panic!("not an exec: {other:?}"),
    }
}

/// The plan's first exec (RUN) op.
fn first_exec_op(plan: &BuildPlan) -> &PlannedOp {
    plan.ops
        .iter()
        .find(|o| matches!(o.op, Op::Exec(_)))
        .expect("the Dockerfile has a RUN")
}

/// What the plan's exec ops run, in plan order.
fn execs(plan: &BuildPlan) -> Vec<&Exec> {
    plan.ops
        .iter()
        .filter_map(|o| match &o.op {
            Op::Exec(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// The plan's first copy op (the tests' Dockerfiles have a COPY).
fn first_copy_op(plan: &BuildPlan) -> &PlannedOp {
    plan.ops
        .iter()
        .find(|o| matches!(o.op, Op::Copy(_)))
        .expect("the Dockerfile has a COPY")
}

/// What the plan's first copy op copies.
fn first_copy(plan: &BuildPlan) -> &FileCopy {
    plan.ops
        .iter()
        .find_map(|o| match &o.op {
            Op::Copy(c) => Some(c),
            _ => None,
        })
        .expect("the Dockerfile has a COPY")
}

/// The paths the plan reads from its (first) context source.
fn context_include(plan: &BuildPlan) -> &[String] {
    plan.ops
        .iter()
        .find_map(|o| match &o.op {
            Op::Source(Source::Context { include, .. }) => Some(include.as_slice()),
            _ => None,
        })
        .expect("the plan reads the build context")
}

/// The names of the planned stages, in order (the tests name every stage they plan).
fn stage_names(plan: &BuildPlan) -> Vec<&str> {
    plan.stages
        .iter()
        .map(|s| s.name.as_deref().unwrap())
        .collect()
}

/// Plans `text` after `change` adjusts the request; the plan must succeed.
fn plan_with(text: &str, change: impl FnOnce(&mut hoist_plan::PlanRequest)) -> BuildPlan {
    let mut req = request(text);
    change(&mut req);
    plan(&req).unwrap()
}

fn created_by(plan: &BuildPlan) -> Vec<String> {
    plan.target_stage()
        .history
        .iter()
        .filter(|h| h.comment == hoist_plan::HISTORY_COMMENT)
        .map(|h| h.created_by.clone())
        .collect()
}

const LIFECYCLE: &str = "\
FROM alpine:3.20 AS base
RUN apk add --no-cache git

FROM base AS builder
COPY . /src
RUN make -C /src

FROM base AS lint
RUN golangci-lint run

FROM builder AS ci
COPY --from=lint /etc/os-release /tmp/lint-done
RUN make -C /src test

FROM builder AS dev
CMD [\"make\", \"-C\", \"/src\", \"watch\"]

FROM scratch AS release
COPY --from=builder /src/app /app
COPY --from=builder /src/LICENSE /LICENSE
ENTRYPOINT [\"/app\"]
";

#[test]
fn only_the_stages_the_target_needs_are_planned() {
    let plan_for =
        |target: Option<&str>| plan_with(LIFECYCLE, |r| r.target = target.map(str::to_owned));
    let release = plan_for(None);
    assert_eq!(stage_names(&release), ["base", "builder", "release"]);
    assert_eq!(release.target_stage().name.as_deref(), Some("release"));
    // builder is used twice but planned once: both copies read the same op.
    let copies: Vec<&PlannedOp> = release
        .ops
        .iter()
        .filter(|op| matches!(op.op, Op::Copy(_)))
        .filter(|op| op.stage == Some(5))
        .collect();
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[0].inputs[1], copies[1].inputs[1]);
    assert_eq!(
        copies[0].inputs[1],
        release.stage_named("builder").unwrap().root
    );
    let apk_runs = release
        .ops
        .iter()
        .filter(|op| matches!(&op.op, Op::Exec(e) if e.args[2].starts_with("apk")))
        .count();
    assert_eq!(apk_runs, 1);

    assert_eq!(
        stage_names(&plan_for(Some("ci"))),
        ["base", "builder", "lint", "ci"]
    );
    assert_eq!(
        stage_names(&plan_for(Some("DEV"))),
        ["base", "builder", "dev"]
    );
    let lint = plan_for(Some("lint"));
    assert_eq!(stage_names(&lint), ["base", "lint"]);
    assert!(
        lint.ops
            .iter()
            .all(|op| !matches!(&op.op, Op::Exec(e) if e.args[2].starts_with("make")))
    );
}

#[test]
fn independent_stages_are_independent_nodes() {
    let mut req = request(LIFECYCLE);
    req.target = Some("ci".to_owned());
    let plan = plan(&req).unwrap();
    let builder = plan.stage_named("builder").unwrap().root;
    let lint = plan.stage_named("lint").unwrap().root;
    // Neither depends on the other: the engine may run them at the same time.
    assert!(!closure(&plan, builder).contains(&lint));
    assert!(!closure(&plan, lint).contains(&builder));
    // Both share the base stage's last op.
    let base = plan.stage_named("base").unwrap().root;
    assert!(closure(&plan, builder).contains(&base) && closure(&plan, lint).contains(&base));
    // Inputs always come first: the ops are in a topological order.
    for op in &plan.ops {
        assert!(op.inputs.iter().all(|i| i.0 < op.id.0), "{op:?}");
    }
    // ci's COPY --from=lint reads lint's result.
    let ci = plan.stage_named("ci").unwrap();
    let copy = ci.steps.iter().find_map(|s| s.op).unwrap();
    assert_eq!(plan.op(copy).inputs, [builder, lint]);
    let Op::Copy(c) = &plan.op(copy).op else {
        panic!()
    };
    assert_eq!(c.from, CopyFrom::Stage(2));
}

#[test]
fn unknown_target_lists_and_suggests_stages() {
    let mut req = request(LIFECYCLE);
    req.target = Some("buidler".to_owned());
    let e = plan(&req).unwrap_err();
    assert_eq!(
        e.to_string(),
        "target stage \"buidler\" could not be found (did you mean builder?)"
    );
    let PlanErrorKind::TargetNotFound { stages, .. } = &*e.kind else {
        panic!()
    };
    assert_eq!(stages, &["base", "builder", "lint", "ci", "dev", "release"]);
}

#[test]
fn arg_scoping_matrix() {
    let text = "\
ARG BASE=alpine
ARG TAG=3.20
ARG GLOBAL_ONLY=g
FROM ${BASE}:${TAG} AS one
ARG TAG
ARG LOCAL=l1
RUN echo one
ENV LOCAL=from-env
RUN echo two
FROM one AS two
ARG GLOBAL_ONLY
ARG LATE
ENV SHADOW=env
ARG SHADOW=arg
RUN echo three
";
    let mut req = request(text);
    let plan1 = plan(&req).unwrap();
    let one = plan1.stage_named("one").unwrap();
    assert_eq!(one.base, StageBase::Image("alpine:3.20".to_owned()));
    let runs = execs(&plan1);
    assert_eq!(runs.len(), 3);
    let env1 = &runs[0].env;
    // The global TAG is re-declared without a value: it takes the global value. GLOBAL_ONLY
    // is not declared in the stage: not visible.
    assert!(
        env1.contains(&"TAG=3.20".to_owned()) && env1.contains(&"LOCAL=l1".to_owned()),
        "{env1:?}"
    );
    assert!(
        !env1
            .iter()
            .any(|e| e.starts_with("GLOBAL_ONLY=") || e.starts_with("BASE=")),
        "{env1:?}"
    );
    // ENV after ARG shadows it, in RUN's environment and in the image.
    let env2 = &runs[1].env;
    assert!(env2.contains(&"LOCAL=from-env".to_owned()), "{env2:?}");
    assert_eq!(one.config.env_value("LOCAL"), Some("from-env"));
    assert_eq!(
        one.config.env_value("TAG"),
        None,
        "ARGs never reach the image config"
    );
    // A stage built on a stage inherits its ARG values and ENV; it may re-declare globals.
    let env3 = &runs[2].env;
    for expected in ["TAG=3.20", "GLOBAL_ONLY=g", "LOCAL=from-env"] {
        assert!(
            env3.contains(&expected.to_owned()),
            "{expected} in {env3:?}"
        );
    }
    assert!(
        !env3.iter().any(|e| e.starts_with("LATE=")),
        "an ARG without value is unset"
    );
    // BuildKit: the later ARG value replaces the ENV value in RUN's environment, the image
    // keeps the ENV.
    assert!(env3.contains(&"SHADOW=arg".to_owned()), "{env3:?}");
    assert_eq!(plan1.target_stage().config.env_value("SHADOW"), Some("env"));

    // --build-arg overrides global and stage defaults, but not ENV set later.
    req.build_args.insert("TAG".to_owned(), "latest".to_owned());
    req.build_args.insert("LOCAL".to_owned(), "cli".to_owned());
    req.build_args.insert("LATE".to_owned(), "now".to_owned());
    let plan2 = plan(&req).unwrap();
    assert_eq!(
        plan2.stage_named("one").unwrap().base,
        StageBase::Image("alpine:latest".to_owned())
    );
    let runs = execs(&plan2);
    let env1 = &runs[0].env;
    assert!(
        env1.contains(&"TAG=latest".to_owned()) && env1.contains(&"LOCAL=cli".to_owned()),
        "{env1:?}"
    );
    assert!(runs[1].env.contains(&"LOCAL=from-env".to_owned()));
    assert!(runs[2].env.contains(&"LATE=now".to_owned()));
    assert!(plan2.warnings.is_empty(), "{:?}", plan2.warnings);
}

#[test]
fn automatic_platform_args_in_from_and_in_stages() {
    let text = "\
FROM --platform=$BUILDPLATFORM alpine:3.20 AS build
ARG TARGETARCH
ARG BUILDARCH
RUN echo $BUILDARCH $TARGETARCH
FROM alpine:3.20
ARG TARGETPLATFORM
COPY --from=build /out /out
RUN echo $TARGETPLATFORM $TARGETOS
";
    let mut req = request(text);
    req.target_platform = Some(Platform::new("linux", "arm64", ""));
    let images = Images::new();
    let plan = hoist_plan::plan(&req, &images).unwrap();
    // The build stage runs on the build platform, the last on the target platform.
    assert_eq!(
        *images.lookups.borrow(),
        [
            (
                "docker.io/library/alpine:3.20".to_owned(),
                "linux/amd64".to_owned()
            ),
            (
                "docker.io/library/alpine:3.20".to_owned(),
                "linux/arm64".to_owned()
            ),
        ]
    );
    let runs = execs(&plan);
    let env = &runs[0].env;
    assert!(
        env.contains(&"TARGETARCH=arm64".to_owned()) && env.contains(&"BUILDARCH=amd64".to_owned()),
        "{env:?}"
    );
    let env = &runs[1].env;
    assert!(
        env.contains(&"TARGETPLATFORM=linux/arm64".to_owned()),
        "{env:?}"
    );
    assert!(
        !env.iter().any(|e| e.starts_with("TARGETOS=")),
        "undeclared automatic args stay out"
    );
    assert_eq!(
        plan.target_stage().platform,
        Platform::new("linux", "arm64", "")
    );

    // TARGETARCH in FROM picks a per-architecture base.
    let text = "ARG TARGETARCH\nFROM busybox:${TARGETARCH/amd64/1.36}\n";
    let plan = plan_with(text, |_| {});
    assert_eq!(
        plan.target_stage().base,
        StageBase::Image("busybox:1.36".to_owned())
    );
}

#[test]
fn entrypoint_resets_an_inherited_cmd_but_not_its_own() {
    let plan = plan_with("FROM busybox\nENTRYPOINT [\"/bin/echo\"]\n", |_| {});
    let config = &plan.target_stage().config;
    assert_eq!(
        config.entrypoint.as_deref(),
        Some(&["/bin/echo".to_owned()][..])
    );
    assert_eq!(config.cmd, None, "busybox's CMD [\"sh\"] is reset");

    let plan = plan_with("FROM busybox\nCMD [\"hi\"]\nENTRYPOINT echo\n", |_| {});
    let config = &plan.target_stage().config;
    assert_eq!(config.cmd.as_deref(), Some(&["hi".to_owned()][..]));
    assert_eq!(
        config.entrypoint.as_deref(),
        Some(&["/bin/sh".to_owned(), "-c".to_owned(), "echo".to_owned()][..])
    );

    // A CMD set in the base stage is inherited config, so a later ENTRYPOINT resets it.
    let plan = plan_with(
        "FROM busybox AS a\nCMD [\"x\"]\nFROM a\nENTRYPOINT [\"y\"]\n",
        |_| {},
    );
    assert_eq!(plan.target_stage().config.cmd, None);
    // SHELL changes the shell form.
    let plan = plan_with(
        "FROM busybox\nSHELL [\"/bin/bash\", \"-eo\", \"pipefail\", \"-c\"]\nCMD run it\n",
        |_| {},
    );
    assert_eq!(
        plan.target_stage().config.cmd.as_deref().unwrap(),
        ["/bin/bash", "-eo", "pipefail", "-c", "run it"]
    );
    assert!(plan.target_stage().config.args_escaped);
}

#[test]
fn onbuild_triggers_run_in_the_stage_that_uses_them() {
    let text = "\
FROM busybox AS parent
ONBUILD RUN echo triggered
ONBUILD ENV FROM_TRIGGER=1
RUN echo parent
FROM parent AS child
RUN echo child
";
    let plan = plan_with(text, |_| {});
    let parent = plan.stage_named("parent").unwrap();
    assert_eq!(
        parent.config.on_build,
        ["RUN echo triggered", "ENV FROM_TRIGGER=1"]
    );
    let parent_runs = parent.steps.iter().filter(|s| s.op.is_some()).count();
    assert_eq!(
        parent_runs, 1,
        "triggers do not run in the stage that declares them"
    );
    let child = plan.stage_named("child").unwrap();
    assert!(
        child.config.on_build.is_empty(),
        "triggers are not inherited further"
    );
    assert_eq!(child.config.env_value("FROM_TRIGGER"), Some("1"));
    let kinds: Vec<(hoist_dockerfile::Keyword, bool)> = child
        .steps
        .iter()
        .map(|s| (s.keyword, s.on_build))
        .collect();
    use hoist_dockerfile::Keyword::{Env, Run};
    assert_eq!(kinds, [(Run, true), (Env, true), (Run, false)]);
    let trigger_run = child.steps[0].op.unwrap();
    assert_eq!(exec_of(&plan, trigger_run).args[2], "echo triggered");
    assert!(plan.op(trigger_run).on_build);
    assert_eq!(
        child.steps[0].span, child.span,
        "a trigger is located at the FROM"
    );
    assert!(created_by(&plan).contains(&"RUN /bin/sh -c echo triggered # buildkit".to_owned()));

    // Triggers stored in a base image's config run too, in order, before the stage's own.
    let plan = plan_with("FROM example.com/onbuild-base:1\nRUN echo after\n", |_| {});
    let stage = plan.target_stage();
    assert_eq!(stage.config.working_dir, "/app");
    let ops: Vec<&Op> = stage
        .steps
        .iter()
        .filter_map(|s| s.op)
        .map(|id| &plan.op(id).op)
        .collect();
    assert!(matches!(ops[0], Op::Mkdir(m) if m.path == "/app"));
    assert!(matches!(ops[1], Op::Copy(c) if c.dest == "/app/src"));
    assert!(matches!(ops[2], Op::Exec(e) if e.args[2] == "make -C /app/src"));
    assert!(matches!(ops[3], Op::Exec(e) if e.args[2] == "echo after"));
    assert!(
        stage.config.on_build.is_empty(),
        "the image's triggers are consumed"
    );
}

#[test]
fn history_strings_match_buildkit() {
    let text = "\
FROM busybox
ARG VERSION=1.0
ENV APP=/opt/app PORT=8080
LABEL org.opencontainers.image.version=$VERSION
WORKDIR /src
WORKDIR sub
USER 1000:1000
EXPOSE $PORT 53/UDP
VOLUME /data /cache
STOPSIGNAL SIGTERM
SHELL [\"/bin/sh\", \"-ec\"]
HEALTHCHECK --interval=30s --timeout=1m30s --retries=3 CMD wget -q -O- http://localhost:8080/ || exit 1
COPY --chown=1000:1000 --chmod=0644 a.txt b/ ./
ADD https://example.com/file.tgz /opt/
RUN echo hi
CMD [\"app\", \"--port\", \"8080\"]
ENTRYPOINT [\"/entry\"]
MAINTAINER someone
ONBUILD RUN echo later
WORKDIR /
";
    let plan = plan_with(text, |_| {});
    assert_eq!(
        created_by(&plan),
        [
            "ARG VERSION=1.0",
            "ENV APP=/opt/app PORT=8080",
            "LABEL org.opencontainers.image.version=1.0",
            "WORKDIR /src",
            "WORKDIR /src/sub",
            "USER 1000:1000",
            "EXPOSE [8080/tcp 53/udp]",
            "VOLUME [/data /cache]",
            "STOPSIGNAL SIGTERM",
            "SHELL [/bin/sh -ec]",
            "HEALTHCHECK {Test:[CMD-SHELL wget -q -O- http://localhost:8080/ || exit 1] Interval:30s Timeout:1m30s StartPeriod:0s StartInterval:0s Retries:3}",
            "COPY --chown=1000:1000 --chmod=0644 a.txt b/ ./ # buildkit",
            "ADD https://example.com/file.tgz /opt/ # buildkit",
            "RUN |1 VERSION=1.0 /bin/sh -ec echo hi # buildkit",
            "CMD [\"app\" \"--port\" \"8080\"]",
            "ENTRYPOINT [\"/entry\"]",
            "MAINTAINER someone",
            "WORKDIR /",
        ]
    );
    let stage = plan.target_stage();
    // The base image's history comes first.
    assert_eq!(stage.history.len(), 2 + 18);
    let layers: Vec<bool> = stage.history[2..].iter().map(|h| !h.empty_layer).collect();
    let expected_layers = [
        false, false, false, true, true, false, false, false, false, false, false, true, true,
        true, false, false, false, false,
    ];
    assert_eq!(layers, expected_layers);
    let c = &stage.config;
    assert_eq!(
        c.exposed_ports.iter().collect::<Vec<_>>(),
        ["53/udp", "8080/tcp"]
    );
    assert_eq!(c.user, "1000:1000");
    assert_eq!(c.working_dir, "/");
    assert_eq!(c.author, "someone");
    assert_eq!(c.labels["org.opencontainers.image.version"], "1.0");
    assert_eq!(
        c.healthcheck.as_ref().unwrap().interval,
        std::time::Duration::from_secs(30)
    );
    assert_eq!(c.on_build, ["RUN echo later"]);
    assert_eq!(
        c.env,
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "APP=/opt/app",
            "PORT=8080"
        ]
    );
    // COPY's destination is relative to the working directory, its mkdir runs as the user.
    let copy = first_copy(&plan);
    assert_eq!(copy.dest, "/src/sub/");
    assert_eq!(copy.chown.as_deref(), Some("1000:1000"));
    let mkdirs: Vec<(String, String)> = plan
        .ops
        .iter()
        .filter_map(|o| match &o.op {
            Op::Mkdir(m) => Some((m.path.clone(), m.user.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        mkdirs,
        [
            ("/src".to_owned(), String::new()),
            ("/src/sub".to_owned(), String::new())
        ]
    );
    let run = execs(&plan)[0];
    assert_eq!(
        (run.cwd.as_str(), run.user.as_str()),
        ("/src/sub", "1000:1000")
    );
    // The context source only includes what COPY uses.
    let include = context_include(&plan);
    assert_eq!(include, ["a.txt", "b"]);
}

#[test]
fn labels_from_the_command_line_go_on_the_target_only() {
    let text = "FROM nginx:1.27 AS web\nLABEL stage=web\nFROM web\nLABEL stage=final\n";
    let plan = plan_with(text, |r| {
        r.labels.insert("stage".to_owned(), "cli".to_owned());
        r.labels.insert("build".to_owned(), "42".to_owned());
    });
    let target = &plan.target_stage().config;
    assert_eq!(target.labels["stage"], "cli");
    assert_eq!(target.labels["build"], "42");
    assert_eq!(
        target.labels["maintainer"],
        "NGINX Docker Maintainers <docker-maint@nginx.com>"
    );
    assert_eq!(
        plan.stage_named("web").unwrap().config.labels["stage"],
        "web"
    );
    // The rest of nginx's config is inherited.
    assert_eq!(target.stop_signal, "SIGQUIT");
    assert_eq!(
        target.entrypoint.as_deref().unwrap(),
        ["/docker-entrypoint.sh"]
    );
    assert!(target.exposed_ports.contains("80/tcp"));
}

#[test]
fn unused_build_args_are_reported() {
    let plan = plan_with("ARG USED\nFROM busybox\nARG ALSO\nRUN true\n", |r| {
        for key in ["USED", "ALSO", "FOO", "BAR", "HTTP_PROXY", "TARGETARCH"] {
            r.build_args.insert(key.to_owned(), "x".to_owned());
        }
    });
    assert_eq!(plan.warnings.len(), 1);
    assert_eq!(
        plan.warnings[0].message,
        "[Warning] One or more build-args [BAR FOO] were not consumed"
    );
    assert_eq!(plan.warnings[0].unused_build_args, ["BAR", "FOO"]);
}

#[test]
fn proxy_args_reach_run_but_not_the_cache_key_or_history() {
    let text = "FROM busybox\nRUN wget http://example.com/\n";
    let plain = plan_with(text, |_| {});
    let proxied = plan_with(text, |r| {
        r.build_args
            .insert("HTTP_PROXY".to_owned(), "http://proxy:3128".to_owned());
        r.build_args
            .insert("no_proxy".to_owned(), "localhost".to_owned());
    });
    let (a, b) = (first_exec_op(&plain), first_exec_op(&proxied));
    let Op::Exec(exec) = &b.op else { panic!() };
    assert_eq!(
        exec.proxy_env.get("HTTP_PROXY").map(String::as_str),
        Some("http://proxy:3128")
    );
    assert_eq!(
        exec.proxy_env.get("no_proxy").map(String::as_str),
        Some("localhost")
    );
    assert_eq!(a.op.cache_key_material(), b.op.cache_key_material());
    assert_eq!(created_by(&plain), created_by(&proxied));
    assert!(proxied.warnings.is_empty());
}

#[test]
fn cache_key_material_follows_what_changes_the_result() {
    let a = plan_with("FROM busybox\nARG V=1\nRUN echo hi\n", |_| {});
    // Same instruction on another line, in a stage with another name: same key material.
    let b = plan_with(
        "\n\nFROM busybox AS renamed\n# comment\nARG V=1\nRUN echo hi\n",
        |_| {},
    );
    let c = plan_with("FROM busybox\nARG V=2\nRUN echo hi\n", |_| {});
    let key = |p: &BuildPlan| {
        p.ops
            .iter()
            .map(|o| o.op.cache_key_material())
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&a), key(&b));
    assert_ne!(
        key(&a),
        key(&c),
        "an ARG value is part of RUN's environment"
    );
    assert_ne!(a.ops[1].span, b.ops[1].span);
    // Different ops never share material.
    let all = key(&plan_with(LIFECYCLE, |_| {}));
    let distinct: BTreeSet<&Vec<u8>> = all.iter().collect();
    assert_eq!(distinct.len(), all.len());
}

#[test]
fn copy_from_by_index_name_and_image() {
    let text = "\
FROM busybox AS first
RUN echo > /a
FROM alpine:3.20
COPY --from=0 /a /a0
COPY --from=FIRST /a /a1
COPY --from=nginx:1.27 /etc/nginx/nginx.conf /etc/
COPY --from=nginx:1.27 /usr/share/nginx/html /html
";
    let plan = plan_with(text, |_| {});
    let first_root = plan.stage(0).unwrap().root;
    let copies: Vec<(&hoist_plan::op::FileCopy, &Vec<OpId>)> = plan
        .ops
        .iter()
        .filter_map(|o| match &o.op {
            Op::Copy(c) => Some((c, &o.inputs)),
            _ => None,
        })
        .collect();
    assert_eq!(copies[0].0.from, CopyFrom::Stage(0));
    assert_eq!(copies[0].1[1], first_root);
    assert_eq!(copies[1].1[1], first_root);
    assert_eq!(
        copies[2].0.from,
        CopyFrom::Image("docker.io/library/nginx:1.27".to_owned())
    );
    assert_eq!(copies[2].1[1], copies[3].1[1], "one source op per image");
    assert!(
        matches!(&plan.op(copies[2].1[1]).op, Op::Source(Source::Image { reference, .. }) if reference == "docker.io/library/nginx:1.27")
    );
    assert!(
        matches!(&copies[3].0.sources[0], CopySource::Path { path, input: 1 } if path == "/usr/share/nginx/html")
    );
    // The image is not a planned stage.
    assert_eq!(plan.stages.len(), 2);
}

#[test]
fn dependency_errors() {
    let err = |text: &str| plan(&request(text)).unwrap_err();
    let e = err("FROM busybox\nCOPY --from=5 /a /a\n");
    assert_eq!(e.to_string(), "invalid stage index 5");
    assert_eq!(e.line(), Some(2));
    for (text, message) in [
        (
            "FROM busybox AS a\nARG S=a\nCOPY --from=$S /x /x\n",
            "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
        ),
        (
            "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nRUN true\nFROM a\n",
            "cannot copy from stage \"b\", it needs to be defined before current stage \"a\"",
        ),
        (
            "FROM busybox AS a\nRUN --mount=from=a,target=/m true\n",
            "circular dependency detected on stage: a",
        ),
        (
            "FROM busybox\nCOPY http://example.com/x /x\n",
            "source can't be a URL for COPY",
        ),
        (
            "FROM busybox\nSTOPSIGNAL SIGNOPE\n",
            "Invalid signal: SIGNOPE",
        ),
        ("FROM busybox\nEXPOSE 80/xyz\n", "invalid proto: xyz"),
        (
            "FROM busybox\nCOPY --chmod=9999 a /\n",
            "invalid chmod parameter: '9999'. it should be octal string and between 0 and 07777",
        ),
        (
            "FROM nosuch/image:1\n",
            "nosuch/image:1: failed to resolve source metadata for docker.io/nosuch/image:1: not found",
        ),
        (
            "FROM busybox\nRUN --mount=type=cache,target=. true\n",
            "invalid mount target \"/\"",
        ),
    ] {
        assert_eq!(err(text).to_string(), message, "{text:?}");
    }
    let e = err("FROM busybox\nRUN --mount=type=cache,target=$NOPE,uid=x true\n");
    assert!(e.to_string().contains("uid"), "{e}");
    // Errors in stages the target does not need are not reported (BuildKit only dispatches
    // what it builds), except the graph checks, which cover every stage.
    assert!(
        plan(&request(
            "FROM busybox AS unused\nSTOPSIGNAL SIGNOPE\nFROM busybox\n"
        ))
        .is_ok()
    );
    assert!(
        plan(&request(
            "FROM busybox AS unused\nCOPY --from=9 / /\nFROM busybox\n"
        ))
        .is_err()
    );
}

#[test]
fn run_mounts_and_flags_resolve() {
    let text = "\
FROM golang:1.24 AS deps
FROM golang:1.24
ARG CACHE=/root/.cache/go-build
RUN --mount=type=cache,target=$CACHE --mount=from=deps,source=/go/pkg,target=/go/pkg --mount=type=secret,id=tok --mount=source=go.sum,target=go.sum --network=none go build ./...
";
    let plan = plan_with(text, |r| r.no_cache = NoCache::All);
    let run = first_exec_op(&plan);
    let Op::Exec(exec) = &run.op else { panic!() };
    assert_eq!(exec.mounts[0].mount.target, "/root/.cache/go-build");
    assert_eq!(exec.mounts[0].input, None);
    assert_eq!(exec.mounts[1].input, Some(1));
    assert_eq!(run.inputs[1], plan.stage(0).unwrap().root);
    assert_eq!(exec.mounts[2].mount.id, "tok");
    assert_eq!(
        exec.mounts[2].mount.target, "/run/secrets/tok",
        "a secret without target= is a file in /run/secrets named after its id"
    );
    // A bind mount without from= reads the context; a relative target is under WORKDIR.
    assert_eq!(exec.mounts[3].mount.target, "/go/go.sum");
    assert_eq!(exec.mounts[3].input, Some(2));
    assert!(
        matches!(&plan.op(run.inputs[2]).op, Op::Source(Source::Context { include, .. }) if include == &["go.sum".to_owned()])
    );
    assert_eq!(exec.network, hoist_instructions::Network::None);
    assert_eq!(exec.cwd, "/go", "the base image's WORKDIR");
    assert!(run.ignore_cache);
}

#[test]
fn secret_mount_targets_default_as_in_buildkit() {
    let text = "\
FROM busybox
WORKDIR /w
RUN --mount=type=secret,id=tok --mount=type=secret,source=a/b/npmrc --mount=type=secret,id=env,env=TOKEN --mount=type=secret,id=t,target=rel true
";
    let planned = plan_with(text, |_| {});
    let run = first_exec_op(&planned);
    let targets: Vec<&str> = exec_of(&planned, run.id)
        .mounts
        .iter()
        .map(|m| m.mount.target.as_str())
        .collect();
    assert_eq!(
        targets,
        ["/run/secrets/tok", "/run/secrets/npmrc", "", "/w/rel"],
        "the source names the file; an env-only secret has no file"
    );
    let error = plan(&request("FROM busybox\nRUN --mount=type=secret true\n")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid secret mount. one of source, target required"
    );
}

#[test]
fn run_heredocs() {
    let text = "FROM busybox\nRUN <<EOF\necho one\necho two\nEOF\nRUN <<EOF\n#!/bin/sh\necho script\nEOF\nRUN cat <<A > /a\nbody\nA\n";
    let plan = plan_with(text, |_| {});
    let runs = execs(&plan);
    assert_eq!(runs[0].args, ["/bin/sh", "-c", "echo one\necho two\n"]);
    assert_eq!(runs[1].args, ["/bin/sh", "-c", "/dev/pipes/EOF"]);
    assert_eq!(runs[1].inline_files[0].content, "#!/bin/sh\necho script\n");
    assert_eq!(runs[2].args, ["/bin/sh", "-c", "cat <<A > /a\nbody\nA"]);
}

#[test]
fn copy_heredocs_are_expanded_unless_quoted() {
    let text = "FROM busybox\nENV NAME=world\nCOPY <<EOF <<'RAW' /etc/\nhello $NAME\nEOF\nkeep $NAME\nRAW\n";
    let plan = plan_with(text, |_| {});
    let copy = first_copy(&plan);
    let contents: Vec<&str> = copy
        .sources
        .iter()
        .map(|s| match s {
            CopySource::Heredoc(f) => f.content.as_str(),
            _ => "",
        })
        .collect();
    assert_eq!(contents, ["hello world\n", "keep $NAME\n"]);
    assert_eq!(
        created_by(&plan).last().unwrap(),
        "COPY <<EOF <<RAW /etc/ # buildkit"
    );
}

#[test]
fn scratch_and_empty_images() {
    let plan = plan_with("FROM scratch\nCOPY app /\n", |_| {});
    let stage = plan.target_stage();
    assert_eq!(stage.base, StageBase::Scratch);
    assert_eq!(
        stage.config.env,
        [format!("PATH={}", hoist_plan::DEFAULT_PATH)]
    );
    assert!(matches!(plan.ops[0].op, Op::Source(Source::Scratch)));
    // An image without layers is an empty filesystem with a config.
    let plan = plan_with("FROM example.com/empty:1\n", |_| {});
    assert!(matches!(
        plan.op(plan.target_stage().root).op,
        Op::Source(Source::Scratch)
    ));
}

#[test]
fn named_contexts_replace_images_and_stages() {
    let text = "FROM alpine:3.20 AS base\nRUN echo base\nFROM base\nCOPY --from=docs / /docs\n";
    let plan = plan_with(text, |r| {
        r.named_contexts.push(hoist_plan::NamedContext {
            name: "base".to_owned(),
            kind: hoist_plan::NamedContextKind::Local,
        });
        r.named_contexts.push(hoist_plan::NamedContext {
            name: "docs".to_owned(),
            kind: hoist_plan::NamedContextKind::Git,
        });
    });
    let base = plan.stage_named("base").unwrap();
    assert_eq!(base.base, StageBase::NamedContext("base".to_owned()));
    assert!(
        base.steps.iter().all(|s| s.op.is_some()),
        "its own instructions still apply"
    );
    let copy = first_copy(&plan);
    assert_eq!(copy.from, CopyFrom::NamedContext("docs".to_owned()));
}

#[test]
fn a_docker_image_scratch_context_is_the_empty_filesystem() {
    let text = "FROM base\nCOPY --from=tools / /t\n";
    let plan = plan_with(text, |r| {
        for name in ["base", "tools"] {
            r.named_contexts.push(hoist_plan::NamedContext {
                name: name.to_owned(),
                kind: hoist_plan::NamedContextKind::Image("scratch".to_owned()),
            });
        }
    });
    assert_eq!(plan.target_stage().base, StageBase::Scratch);
    let copy = first_copy_op(&plan);
    assert!(matches!(
        plan.op(copy.inputs[1]).op,
        Op::Source(Source::Scratch)
    ));
}

#[test]
fn go_hello_example_plans_for_every_target() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/go-hello/Dockerfile");
    let text =
        std::fs::read_to_string(&path).expect("examples/go-hello/Dockerfile is in the repository");
    let expected: [(Option<&str>, &[&str]); 5] = [
        (None, &["builder", "release"]),
        (Some("release"), &["builder", "release"]),
        (Some("ci"), &["builder", "ci"]),
        (Some("dev"), &["builder", "dev"]),
        (Some("fat"), &["builder", "fat"]),
    ];
    for (target, stages) in expected {
        let plan = plan_with(&text, |r| r.target = target.map(str::to_owned));
        assert_eq!(stage_names(&plan), stages, "target {target:?}");
        let builder = plan.stage_named("builder").unwrap();
        assert_eq!(
            builder.base,
            StageBase::Image("debian:bookworm-local".to_owned())
        );
        assert_eq!(builder.config.working_dir, "/src");
        assert!(plan.warnings.is_empty());
    }
    let release = plan_with(&text, |_| {});
    let config = &release.target_stage().config;
    assert_eq!(config.user, "65534:65534");
    assert_eq!(config.entrypoint.as_deref().unwrap(), ["/hello"]);
    assert_eq!(config.cmd, None);
    assert_eq!(
        created_by(&release),
        [
            "COPY /out/hello /hello # buildkit",
            "USER 65534:65534",
            "ENTRYPOINT [\"/hello\"]"
        ]
    );
    let dev = plan_with(&text, |r| r.target = Some("dev".to_owned()));
    assert_eq!(
        dev.target_stage().config.cmd.as_deref().unwrap(),
        ["go", "run", "."]
    );
    let history = created_by(&dev);
    assert_eq!(
        history[0],
        "RUN /bin/sh -c apt-get update  && apt-get install -y --no-install-recommends golang-go ca-certificates  && rm -rf /var/lib/apt/lists/* # buildkit"
    );
    assert_eq!(
        history[1..4],
        [
            "WORKDIR /src",
            "COPY go.mod ./ # buildkit",
            "RUN /bin/sh -c go mod download # buildkit"
        ]
    );
    // --build-arg BASE swaps the base for every target.
    let golang = plan_with(&text, |r| {
        r.build_args
            .insert("BASE".to_owned(), "golang:1.24".to_owned());
    });
    let builder = golang.stage_named("builder").unwrap();
    assert_eq!(builder.base, StageBase::Image("golang:1.24".to_owned()));
    assert_eq!(builder.config.env_value("GOPATH"), Some("/go"));
}

#[test]
fn copy_parents_keeps_the_pivot() {
    let plan = plan_with(
        "FROM busybox\nCOPY --parents ./src/./pkg/*.go ../x/y /dest/\n",
        |_| {},
    );
    let copy = first_copy(&plan);
    assert!(copy.parents);
    let paths: Vec<&str> = copy
        .sources
        .iter()
        .map(|s| match s {
            CopySource::Path { path, .. } => path.as_str(),
            _ => "",
        })
        .collect();
    assert_eq!(paths, ["/src/./pkg/*.go", "/x/y"]);
    assert_eq!(
        created_by(&plan),
        ["COPY --parents ./src/./pkg/*.go ../x/y /dest/ # buildkit"]
    );
    let include = context_include(&plan);
    assert_eq!(include, ["src/pkg/*.go", "x/y"]);
}

#[test]
fn syntax_directives_for_docker_dockerfile_are_served_and_others_refused() {
    for syntax in [
        "docker/dockerfile:1",
        "docker/dockerfile:1.7-labs",
        "docker.io/docker/dockerfile:1.4.3",
    ] {
        let text = format!("# syntax={syntax}\nFROM busybox\nRUN true\n");
        assert!(plan(&request(&text)).is_ok(), "{syntax}");
    }
    let error = plan(&request(
        "# syntax=tonistiigi/dockerfile:master\nFROM busybox\n",
    ))
    .unwrap_err();
    assert!(matches!(
        *error.kind,
        PlanErrorKind::ExternalFrontend { .. }
    ));
    assert_eq!(
        error.to_string(),
        "hoist has no external frontends: `# syntax=tonistiigi/dockerfile:master` cannot be used; \
         remove it or use docker/dockerfile:1 (hoist's own frontend)"
    );
    assert_eq!(error.line(), Some(1), "the error points at the directive");

    // The build arg wins over the directive, either way.
    let mut req = request("# syntax=tonistiigi/dockerfile:master\nFROM busybox\n");
    req.build_args.insert(
        "BUILDKIT_SYNTAX".to_owned(),
        "docker/dockerfile:1".to_owned(),
    );
    let planned = plan(&req).unwrap();
    assert!(planned.warnings.is_empty(), "BUILDKIT_SYNTAX is consumed");
    let mut req = request("# syntax=docker/dockerfile:1\nFROM busybox\n");
    req.build_args.insert(
        "BUILDKIT_SYNTAX".to_owned(),
        "example.com/frontend:2".to_owned(),
    );
    let error = plan(&req).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("`--build-arg BUILDKIT_SYNTAX=example.com/frontend:2`"),
        "{error}"
    );
    assert_eq!(error.span, None);
}
