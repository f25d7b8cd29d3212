//! Property tests: whatever the parser accepts, conversion never panics: not for single
//! instructions, whole files, ONBUILD triggers, nor mount specs resolved literally.

use hoist_dockerfile::parse;
use hoist_instructions::{Instruction, parse_instruction, parse_stages};
use proptest::prelude::*;
use proptest::sample::select;

/// Converts everything convertible in `text`; must return without panicking.
fn convert_all(text: &str) {
    let Ok(file) = parse(text) else {
        return;
    };
    let whole = parse_stages(&file);
    if let Err(error) = &whole {
        // Rendering must not panic either.
        let _ = error.buildkit_message();
        let _ = error.kind.help();
    }
    for node in &file.instructions {
        match parse_instruction(node) {
            Ok(Instruction::Run(run)) => {
                for mount in &run.mounts {
                    let _ = mount.resolve_verbatim();
                    let _ = mount.fields();
                }
            }
            Ok(Instruction::Onbuild(onbuild)) => {
                let _ = onbuild.parse_trigger();
            }
            Ok(Instruction::Healthcheck(check)) => {
                let _ = check.test.to_config();
            }
            Ok(other) => {
                let _ = other.span();
            }
            Err(error) => {
                let _ = error.to_string();
            }
        }
    }
}

fn keyword() -> impl Strategy<Value = String> {
    select(vec![
        "FROM",
        "from",
        "RUN",
        "CMD",
        "ENTRYPOINT",
        "SHELL",
        "LABEL",
        "MAINTAINER",
        "EXPOSE",
        "ENV",
        "ADD",
        "COPY",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "FORM",
        "onbuild ONBUILD",
        "ONBUILD RUN",
        "ONBUILD COPY",
    ])
    .prop_map(str::to_owned)
}

fn flag() -> impl Strategy<Value = String> {
    let name = select(vec![
        "mount",
        "network",
        "security",
        "device",
        "from",
        "chown",
        "chmod",
        "link",
        "parents",
        "exclude",
        "checksum",
        "keep-git-dir",
        "unpack",
        "platform",
        "interval",
        "timeout",
        "start-period",
        "start-interval",
        "retries",
        "bogus",
    ]);
    let value = prop_oneof![
        Just(String::new()),
        "[a-z0-9=,$/\"\\\\ .:-]{0,24}",
        select(vec![
            "=type=cache,target=/c,sharing=locked,mode=0755,uid=1,gid=2",
            "=type=secret,id=a,env=B,required",
            "=type=tmpfs,size=64m,ro",
            "=type=ssh,rw=maybe",
            "=from=$X,type=bind",
            "=\"a,b\",c",
            "=10s",
            "=-1",
            "=1.5h3ns",
            "=true",
            "=host",
            "=vendor.com/gpu=all,required",
        ])
        .prop_map(str::to_owned),
    ];
    (name, value).prop_map(|(name, value)| {
        if value.is_empty() || value.starts_with('=') {
            format!("--{name}{value}")
        } else {
            format!("--{name}={value}")
        }
    })
}

fn args() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,30}",
        select(vec![
            "[\"a\", \"b\"]",
            "[]",
            "<<EOF /dst\nbody\nEOF",
            "<<-'X' | sh\n\tline\nX",
            "a AS b",
            "a as 1b",
            "NONE",
            "CMD true",
            "CMD [\"x\"]",
            "k=v k2=\"v 2\"",
            "=x",
            "a b",
            "\\\n  continued",
        ])
        .prop_map(str::to_owned),
    ]
}

fn line() -> impl Strategy<Value = String> {
    (keyword(), prop::collection::vec(flag(), 0..3), args()).prop_map(|(keyword, flags, args)| {
        let mut line = keyword;
        for flag in flags {
            line.push(' ');
            line.push_str(&flag);
        }
        line.push(' ');
        line.push_str(&args);
        line
    })
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        convert_all(&text);
    }

    #[test]
    fn generated_dockerfiles_never_panic(
        start_with_from in any::<bool>(),
        lines in prop::collection::vec(line(), 1..8),
    ) {
        let prefix = if start_with_from { "FROM base AS b\n" } else { "" };
        convert_all(&format!("{prefix}{}", lines.join("\n")));
    }
}
