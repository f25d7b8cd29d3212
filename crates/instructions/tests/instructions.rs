//! Every instruction through the real parser: the typed result of a valid instruction and
//! BuildKit's message for the main mistakes.

use std::time::Duration;

use hoist_dockerfile::{Keyword, Separator, parse};
use hoist_instructions::{
    Command, HealthTest, Instruction, InstructionErrorKind, MountType, Network, Security, Source,
    Word, find_stage, heredoc_sources, parse_instruction, parse_stages, source_paths,
};

/// The first instruction of `text`, converted.
fn one(text: &str) -> Instruction {
    let file = parse(text).expect("test Dockerfile parses");
    parse_instruction(&file.instructions[0]).expect("instruction converts")
}

/// The conversion error of the first instruction of `text`.
fn fail(text: &str) -> String {
    let file = parse(text).expect("test Dockerfile parses");
    parse_instruction(&file.instructions[0])
        .expect_err("instruction must not convert")
        .to_string()
}

fn values(words: &[Word]) -> Vec<&str> {
    words.iter().map(|w| w.value.as_str()).collect()
}

/// The source text a span covers.
fn text_at(source: &str, span: hoist_dockerfile::Span) -> &str {
    &source[span.range()]
}

#[test]
fn from_image_platform_and_stage_name() {
    let text = "FROM --platform=$BUILDPLATFORM golang:1.22 as Build";
    let Instruction::From(from) = one(text) else {
        panic!("not FROM")
    };
    assert_eq!(from.image.value, "golang:1.22");
    assert_eq!(text_at(text, from.image.span), "golang:1.22");
    assert_eq!(from.platform.unwrap().value, "$BUILDPLATFORM");
    let name = from.stage_name.unwrap();
    assert_eq!(name.word.value, "Build");
    assert_eq!(name.name, "build");
    assert_eq!(name.as_keyword.value, "as");

    let Instruction::From(plain) = one("FROM scratch") else {
        panic!("not FROM")
    };
    assert!(plain.stage_name.is_none() && plain.platform.is_none());
}

#[test]
fn from_errors() {
    assert_eq!(
        fail("FROM a b"),
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        fail("FROM a b c"),
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        fail("FROM a AS b c"),
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        fail("FROM a AS 1st"),
        "invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
    );
    assert_eq!(
        fail("FROM --plaform=linux/amd64 a"),
        "unknown flag: --plaform (did you mean platform?)"
    );
    assert_eq!(
        fail("FROM --platform a"),
        "missing a value on flag: --platform"
    );
}

#[test]
fn run_shell_exec_and_heredoc() {
    let Instruction::Run(run) = one("RUN apt-get update && apt-get install -y curl") else {
        panic!("not RUN")
    };
    assert_eq!(
        run.command.cmdline(),
        ["apt-get update && apt-get install -y curl"]
    );
    assert!(run.command.is_shell_form());
    assert!(run.mounts.is_empty() && run.network.is_none() && run.flags_used.is_empty());

    let Instruction::Run(exec) = one("RUN [\"ls\", \"-la\"]") else {
        panic!("not RUN")
    };
    assert!(!exec.command.is_shell_form());
    assert_eq!(exec.command.cmdline(), ["ls", "-la"]);

    let Instruction::Run(heredoc) = one("RUN <<-EOF bash\n\techo hi\nEOF\n") else {
        panic!("not RUN")
    };
    assert_eq!(heredoc.command.cmdline(), ["<<-EOF bash"]);
    assert_eq!(heredoc.heredocs.len(), 1);
    assert_eq!(heredoc.heredocs[0].content, "\techo hi\n");
    assert!(heredoc.heredocs[0].chomp);
}

#[test]
fn run_flags() {
    let text = "RUN --mount=type=cache,target=/root/.cache,sharing=locked \\\n    --mount=type=secret,id=npm,env=NPM_TOKEN --network=none --security=insecure \\\n    --device=vendor.com/gpu=all,required make";
    let Instruction::Run(run) = one(text) else {
        panic!("not RUN")
    };
    assert_eq!(run.mounts.len(), 2);
    assert_eq!(
        text_at(text, run.mounts[0].span),
        "--mount=type=cache,target=/root/.cache,sharing=locked"
    );
    let cache = run.mounts[0].resolve_verbatim().unwrap();
    assert_eq!(cache.kind, MountType::Cache);
    assert_eq!(cache.target, "/root/.cache");
    let secret = run.mounts[1].resolve_verbatim().unwrap();
    assert_eq!(secret.env.as_deref(), Some("NPM_TOKEN"));
    assert_eq!(run.network.unwrap().value, Network::None);
    assert_eq!(run.security.unwrap().value, Security::Insecure);
    assert_eq!(run.devices[0].name, "vendor.com/gpu=all");
    assert!(run.devices[0].required);
    assert_eq!(run.flags_used, ["mount", "network", "security", "device"]);
    assert_eq!(run.command.cmdline(), ["make"]);
}

#[test]
fn run_errors() {
    assert_eq!(
        fail("RUN --network=bridge true"),
        "invalid network mode \"bridge\""
    );
    assert_eq!(
        fail("RUN --security=root true"),
        "security \"root\" is not valid"
    );
    assert_eq!(
        fail("RUN --mount=type=bind,from=$STAGE,target=/x true"),
        "'from' doesn't support variable expansion, define alias stage instead"
    );
    assert_eq!(
        fail("RUN --mount=type=bind,src=a\\\"b true"),
        "failed to parse csv mounts: parse error on line 1, column 16: bare \" in non-quoted-field"
    );
    assert_eq!(fail("RUN --mount true"), "missing a value on flag: --mount");
    assert_eq!(
        fail("RUN --mout=x true"),
        "unknown flag: --mout (did you mean mount?)"
    );
    assert_eq!(
        fail("RUN --device=a,b true"),
        "invalid field 'b' must be a key=value pair"
    );
    // Values that need expansion are only checked when the planner resolves the mount.
    let Instruction::Run(run) = one("RUN --mount=type=$KIND,target=/x true") else {
        panic!("not RUN")
    };
    assert_eq!(
        run.mounts[0].resolve_verbatim().unwrap_err().to_string(),
        "unsupported mount type \"$KIND\""
    );
    let mount = run.mounts[0]
        .resolve(|v| Ok(v.replace("$KIND", "tmpfs")))
        .unwrap();
    assert_eq!(mount.kind, MountType::Tmpfs);
}

#[test]
fn cmd_and_entrypoint() {
    let Instruction::Cmd(cmd) = one("CMD [\"nginx\", \"-g\", \"daemon off;\"]") else {
        panic!("not CMD")
    };
    assert_eq!(cmd.command.cmdline(), ["nginx", "-g", "daemon off;"]);
    let Instruction::Cmd(empty) = one("CMD []") else {
        panic!("not CMD")
    };
    assert_eq!(empty.command, Command::Exec(Vec::new()));
    let Instruction::Cmd(shell) = one("CMD echo $HOME") else {
        panic!("not CMD")
    };
    assert_eq!(shell.command.cmdline(), ["echo $HOME"]);
    assert_eq!(fail("CMD --x=1 echo"), "unknown flag: --x");

    let Instruction::Entrypoint(reset) = one("ENTRYPOINT []") else {
        panic!("not ENTRYPOINT")
    };
    assert_eq!(reset.cmdline(), None);
    let Instruction::Entrypoint(entry) = one("ENTRYPOINT [\"/tini\", \"--\"]") else {
        panic!("not ENTRYPOINT")
    };
    assert_eq!(entry.cmdline().unwrap(), ["/tini", "--"]);
}

#[test]
fn shell() {
    let Instruction::Shell(shell) = one("SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]")
    else {
        panic!("not SHELL")
    };
    assert_eq!(values(&shell.shell), ["/bin/bash", "-o", "pipefail", "-c"]);
    assert_eq!(
        fail("SHELL bash -c"),
        "SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(fail("SHELL []"), "SHELL requires at least one argument");
}

#[test]
fn env_and_label_keep_raw_pairs() {
    let Instruction::Env(env) = one("ENV A=1 B=\"two words\" C=${A}") else {
        panic!("not ENV")
    };
    let pairs: Vec<(&str, &str)> = env
        .pairs
        .iter()
        .map(|p| (p.key.value.as_str(), p.value.value.as_str()))
        .collect();
    assert_eq!(pairs, [("A", "1"), ("B", "\"two words\""), ("C", "${A}")]);
    assert!(env.pairs.iter().all(|p| p.separator == Separator::Equals));

    let Instruction::Env(legacy) = one("ENV PATH /usr/bin:/bin") else {
        panic!("not ENV")
    };
    assert_eq!(legacy.pairs[0].separator, Separator::Whitespace);
    assert_eq!(legacy.pairs[0].value.value, "/usr/bin:/bin");

    let Instruction::Label(label) = one("LABEL org.opencontainers.image.title=\"hoist\" version=1")
    else {
        panic!("not LABEL")
    };
    assert_eq!(label.labels.len(), 2);
    assert_eq!(label.labels[0].value.value, "\"hoist\"");

    assert_eq!(fail("ENV =x"), "ENV names can not be blank");
    assert_eq!(fail("LABEL"), "LABEL requires at least one argument");
    assert_eq!(fail("ENV --a=b c=d"), "unknown flag: --a");
}

#[test]
fn maintainer_user_workdir_stopsignal() {
    let Instruction::Maintainer(m) = one("MAINTAINER Jane Doe <jane@example.com>") else {
        panic!("not MAINTAINER")
    };
    assert_eq!(m.maintainer.value, "Jane Doe <jane@example.com>");
    let Instruction::User(user) = one("USER app:app") else {
        panic!("not USER")
    };
    assert_eq!(user.user.value, "app:app");
    let Instruction::Workdir(workdir) = one("WORKDIR /src/$APP") else {
        panic!("not WORKDIR")
    };
    assert_eq!(workdir.path.value, "/src/$APP");
    let Instruction::Stopsignal(signal) = one("STOPSIGNAL SIGQUIT") else {
        panic!("not STOPSIGNAL")
    };
    assert_eq!(signal.signal.value, "SIGQUIT");
    // BuildKit never parses the flags of STOPSIGNAL.
    assert!(matches!(
        one("STOPSIGNAL --x 9"),
        Instruction::Stopsignal(_)
    ));

    assert_eq!(fail("USER"), "USER requires exactly one argument");
    assert_eq!(fail("WORKDIR --x=1 /a"), "unknown flag: --x");
    assert_eq!(
        fail("STOPSIGNAL"),
        "STOPSIGNAL requires exactly one argument"
    );
}

#[test]
fn expose_and_volume() {
    let Instruction::Expose(expose) = one("EXPOSE 8080/tcp 53/udp ${PORT}") else {
        panic!("not EXPOSE")
    };
    assert_eq!(values(&expose.ports), ["8080/tcp", "53/udp", "${PORT}"]);
    assert_eq!(fail("EXPOSE"), "EXPOSE requires at least one argument");

    let Instruction::Volume(words) = one("VOLUME /data /logs") else {
        panic!("not VOLUME")
    };
    assert_eq!(values(&words.paths), ["/data", "/logs"]);
    let Instruction::Volume(json) = one("VOLUME [\" /data \"]") else {
        panic!("not VOLUME")
    };
    assert_eq!(values(&json.paths), ["/data"]);
    assert_eq!(
        fail("VOLUME [\" \"]"),
        "VOLUME specified can not be an empty string"
    );
    assert_eq!(fail("VOLUME []"), "VOLUME requires at least one argument");
}

#[test]
fn add_flags_and_sources() {
    let text = "ADD --chown=1000:1000 --chmod=0644 --link --keep-git-dir=true --checksum=sha256:abc --unpack=false --exclude=*.md --exclude=docs https://example.com/a.tar.gz ./b /dest/";
    let Instruction::Add(add) = one(text) else {
        panic!("not ADD")
    };
    assert_eq!(add.chown.unwrap().value, "1000:1000");
    assert_eq!(add.chmod.unwrap().value, "0644");
    assert!(add.link && add.keep_git_dir);
    assert_eq!(add.checksum.unwrap().value, "sha256:abc");
    assert_eq!(add.unpack, Some(false));
    assert_eq!(values(&add.exclude), ["*.md", "docs"]);
    let paths: Vec<&str> = source_paths(&add.sources)
        .iter()
        .map(|w| w.value.as_str())
        .collect();
    assert_eq!(paths, ["https://example.com/a.tar.gz", "./b"]);
    assert_eq!(add.dest.value, "/dest/");

    let Instruction::Add(plain) = one("ADD a b") else {
        panic!("not ADD")
    };
    assert_eq!(plain.unpack, None);
    assert!(!plain.link && plain.chown.is_none());
    assert_eq!(
        fail("ADD a"),
        "ADD requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(fail("ADD --from=x a b"), "unknown flag: --from");
}

#[test]
fn copy_flags_and_heredoc_sources() {
    let text = "COPY --from=build --parents --link=false --chmod=755 --exclude=*.tmp [\"a b\", \"c\", \"/dst\"]";
    let Instruction::Copy(copy) = one(text) else {
        panic!("not COPY")
    };
    assert_eq!(copy.from.unwrap().value, "build");
    assert!(copy.parents && !copy.link);
    assert_eq!(values(&copy.exclude), ["*.tmp"]);
    assert_eq!(copy.sources.len(), 2);
    assert_eq!(copy.dest.value, "/dst");

    let Instruction::Copy(inline) = one("COPY <<EOF <<-'TAB' /etc/app/\nkey=$V\nEOF\n\tx\nTAB\n")
    else {
        panic!("not COPY")
    };
    let files: Vec<(&str, &str, bool)> = heredoc_sources(&inline.sources)
        .iter()
        .map(|h| (h.name.as_str(), h.content.as_str(), h.expand))
        .collect();
    assert_eq!(files, [("EOF", "key=$V\n", true), ("TAB", "x\n", false)]);
    assert!(matches!(inline.sources[0], Source::Heredoc(_)));

    assert_eq!(
        fail("COPY a <<EOF\nEOF\n"),
        "COPY cannot accept a heredoc as a destination"
    );
    assert_eq!(
        fail("COPY --form=a b c"),
        "unknown flag: --form (did you mean from?)"
    );
    assert_eq!(
        fail("COPY --parents=yes a b"),
        "expecting boolean value for flag --parents, not: yes"
    );
}

#[test]
fn arg_pairs_and_docs() {
    let Instruction::Arg(arg) = one("# VERSION picks the release\nARG VERSION=\"1.2 3\" DEBUG\n")
    else {
        panic!("not ARG")
    };
    assert_eq!(arg.args.len(), 2);
    assert_eq!(arg.args[0].key, "VERSION");
    assert_eq!(arg.args[0].default.as_deref(), Some("\"1.2 3\""));
    assert_eq!(arg.args[0].doc, "picks the release");
    assert_eq!(arg.args[1].key, "DEBUG");
    assert_eq!(arg.args[1].default, None);
    assert_eq!(fail("ARG"), "ARG requires at least one argument");
    assert_eq!(fail("ARG =1"), "ARG names can not be blank");
}

#[test]
fn onbuild() {
    let Instruction::Onbuild(onbuild) = one("onbuild   RUN echo \"child\"") else {
        panic!("not ONBUILD")
    };
    assert_eq!(onbuild.expression, "RUN echo \"child\"");
    assert_eq!(onbuild.trigger, "RUN");
    let trigger = onbuild.parse_trigger().unwrap().unwrap();
    assert_eq!(trigger.keyword(), Keyword::Run);

    let Instruction::Onbuild(heredoc) = one("ONBUILD RUN <<EOF\necho hi\nEOF\n") else {
        panic!("not ONBUILD")
    };
    assert_eq!(heredoc.expression, "RUN <<EOF\necho hi\nEOF");

    assert_eq!(fail("ONBUILD"), "ONBUILD requires at least one argument");
    assert_eq!(
        fail("ONBUILD FROM x"),
        "FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        fail("ONBUILD maintainer x"),
        "MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        fail("ONBUILD ONBUILD RUN x"),
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
}

#[test]
fn healthcheck() {
    let text = "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=0 --start-interval=5ms --retries=3 CMD curl -f http://localhost/";
    let Instruction::Healthcheck(check) = one(text) else {
        panic!("not HEALTHCHECK")
    };
    assert_eq!(check.interval, Some(Duration::from_secs(30)));
    assert_eq!(check.timeout, Some(Duration::from_secs(90)));
    assert_eq!(check.start_period, Some(Duration::ZERO));
    assert_eq!(check.start_interval, Some(Duration::from_millis(5)));
    assert_eq!(check.retries, Some(3));
    assert_eq!(
        check.test.to_config(),
        ["CMD-SHELL", "curl -f http://localhost/"]
    );

    let Instruction::Healthcheck(exec) = one("HEALTHCHECK CMD [\"/bin/check\", \"-q\"]") else {
        panic!("not HEALTHCHECK")
    };
    assert_eq!(exec.test.to_config(), ["CMD", "/bin/check", "-q"]);
    assert_eq!(exec.interval, None);
    let Instruction::Healthcheck(none) = one("HEALTHCHECK --whatever none") else {
        panic!("not HEALTHCHECK")
    };
    assert_eq!(none.test, HealthTest::None);

    assert_eq!(
        fail("HEALTHCHECK --interval=10 CMD true"),
        "time: missing unit in duration \"10\""
    );
    assert_eq!(
        fail("HEALTHCHECK --timeout=5y CMD true"),
        "time: unknown unit \"y\" in duration \"5y\""
    );
    assert_eq!(
        fail("HEALTHCHECK --timeout=-5s CMD true"),
        "Interval \"timeout\" cannot be less than 1ms"
    );
    assert_eq!(
        fail("HEALTHCHECK --retries=many CMD true"),
        "strconv.ParseInt: parsing \"many\": invalid syntax"
    );
    assert_eq!(
        fail("HEALTHCHECK --retries=3000000000 CMD true"),
        "strconv.ParseInt: parsing \"3000000000\": value out of range"
    );
    assert_eq!(
        fail("HEALTHCHECK --retries=-1 CMD true"),
        "--retries cannot be negative (-1)"
    );
    assert_eq!(
        fail("HEALTHCHECK CMD []"),
        "Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        fail("HEALTHCHECK NONE x"),
        "HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        fail("HEALTHCHECK RUN x"),
        "Unknown type \"RUN\" in HEALTHCHECK (try CMD)"
    );
    assert_eq!(
        fail("HEALTHCHECK --interval=1s --intervall=2s CMD x"),
        "unknown flag: --intervall (did you mean interval?)"
    );
}

#[test]
fn unknown_instructions() {
    assert_eq!(
        fail("FORM alpine"),
        "unknown instruction: FORM (did you mean FROM?)"
    );
    assert_eq!(
        fail("cpy a b"),
        "unknown instruction: cpy (did you mean copy?)"
    );
    assert_eq!(fail("FROBNICATE x"), "unknown instruction: FROBNICATE");
}

#[test]
fn error_spans_point_at_the_offending_piece() {
    let text = "FROM alpine\nCOPY --link \\\n  --chown a b\n";
    let file = parse(text).unwrap();
    let error = parse_instruction(&file.instructions[1]).unwrap_err();
    assert_eq!(text_at(text, error.span), "--chown");
    assert_eq!(error.line(), 2);
    assert_eq!(
        error.buildkit_message(),
        "dockerfile parse error on line 2: missing a value on flag: --chown"
    );
    assert!(error.kind.help().is_none());

    let error = parse_instruction(&parse("FROM a AS B@D").unwrap().instructions[0]).unwrap_err();
    assert_eq!(text_at("FROM a AS B@D", error.span), "B@D");
    assert!(matches!(
        *error.kind,
        InstructionErrorKind::InvalidStageName { .. }
    ));
    assert!(error.kind.help().is_some());
}

#[test]
fn stages_and_meta_args() {
    let text = "\
# syntax=docker/dockerfile:1
ARG BASE=alpine
ARG VERSION
# build compiles things
FROM $BASE AS Build
ARG VERSION
RUN make
FROM --platform=linux/arm64 scratch
COPY --from=build /out /
";
    let file = parse(text).unwrap();
    let (stages, meta_args) = parse_stages(&file).unwrap();
    assert_eq!(meta_args.len(), 2);
    assert_eq!(meta_args[0].args[0].default.as_deref(), Some("alpine"));
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].index, 0);
    assert_eq!(stages[0].name.as_deref(), Some("build"));
    assert_eq!(stages[0].base.value, "$BASE");
    assert_eq!(stages[0].doc, "compiles things");
    assert_eq!(stages[0].commands.len(), 2);
    assert!(matches!(stages[0].commands[0], Instruction::Arg(_)));
    assert_eq!(
        text_at(text, stages[0].span),
        "FROM $BASE AS Build\nARG VERSION\nRUN make"
    );
    assert_eq!(stages[1].name, None);
    assert_eq!(stages[1].platform.as_ref().unwrap().value, "linux/arm64");
    assert_eq!(find_stage(&stages, "BUILD").unwrap().index, 0);
    assert!(find_stage(&stages, "nope").is_none());
}

#[test]
fn stage_errors() {
    let file = parse("ARG A\nENV B=1\nFROM x\n").unwrap();
    let error = parse_stages(&file).unwrap_err();
    assert_eq!(
        error.buildkit_message(),
        "no build stage in current context"
    );
    assert_eq!(error.line(), 2);

    let file = parse("FROM x\n\nRUN --network=foo true\n").unwrap();
    let error = parse_stages(&file).unwrap_err();
    assert_eq!(
        error.buildkit_message(),
        "dockerfile parse error on line 3: invalid network mode \"foo\""
    );

    let file = parse("FROM x\nFORM y\n").unwrap();
    assert_eq!(
        parse_stages(&file).unwrap_err().buildkit_message(),
        "dockerfile parse error on line 2: unknown instruction: FORM (did you mean FROM?)"
    );
}

#[test]
fn crate_example() {
    let file =
        parse("ARG V=1\nFROM alpine:$V AS build\nRUN --mount=type=cache,target=/c make\n").unwrap();
    let (stages, meta_args) = parse_stages(&file).unwrap();
    assert_eq!(meta_args[0].args[0].key, "V");
    assert_eq!(stages[0].name.as_deref(), Some("build"));
    let Instruction::Run(run) = &stages[0].commands[0] else {
        panic!("not RUN")
    };
    assert_eq!(run.mounts[0].resolve_verbatim().unwrap().target, "/c");
}
