//! `ToolchainInFinalStage` (hoist's own): the default target is built on a full toolchain
//! image (`golang`, `rust`, `node`, `python`, a JDK, `gcc`, the .NET SDK, ...), so the
//! compilers, headers and package caches ship in the final image. A build stage followed by
//! a slim runtime stage gives the same program in a fraction of the size.
//!
//! Only the default target (the last stage) is checked, and only when no `--target` is
//! given: building an intermediate stage on purpose is not a mistake. Slim variants
//! (`-slim`, `-alpine`, `-jre`, distroless, `runtime`, `chiseled`) are fine.

use crate::checks::from::Globals;
use crate::model::Model;
use crate::reference::ImageName;
use crate::report::Report;
use crate::{Finding, Rule};

/// A toolchain image and what to ship on instead.
struct Toolchain {
    repository: &'static str,
    runtime: &'static str,
}

const TOOLCHAINS: &[Toolchain] = &[
    Toolchain {
        repository: "golang",
        runtime: "gcr.io/distroless/static-debian12 (or scratch) for a static binary",
    },
    Toolchain {
        repository: "rust",
        runtime: "gcr.io/distroless/cc-debian12 or debian:stable-slim",
    },
    Toolchain {
        repository: "gcc",
        runtime: "debian:stable-slim",
    },
    Toolchain {
        repository: "buildpack-deps",
        runtime: "debian:stable-slim",
    },
    Toolchain {
        repository: "node",
        runtime: "node:<version>-slim or node:<version>-alpine",
    },
    Toolchain {
        repository: "python",
        runtime: "python:<version>-slim",
    },
    Toolchain {
        repository: "ruby",
        runtime: "ruby:<version>-slim",
    },
    Toolchain {
        repository: "php",
        runtime: "php:<version>-alpine",
    },
    Toolchain {
        repository: "openjdk",
        runtime: "eclipse-temurin:<version>-jre",
    },
    Toolchain {
        repository: "eclipse-temurin",
        runtime: "eclipse-temurin:<version>-jre",
    },
    Toolchain {
        repository: "maven",
        runtime: "eclipse-temurin:<version>-jre",
    },
    Toolchain {
        repository: "gradle",
        runtime: "eclipse-temurin:<version>-jre",
    },
    Toolchain {
        repository: "mcr.microsoft.com/dotnet/sdk",
        runtime: "mcr.microsoft.com/dotnet/runtime or mcr.microsoft.com/dotnet/aspnet",
    },
];

/// Tag words that mark a slim variant.
const SLIM_MARKERS: [&str; 6] = ["slim", "alpine", "distroless", "jre", "runtime", "chiseled"];

pub(crate) fn check(
    model: &Model<'_>,
    globals: &Globals,
    target: Option<&str>,
    report: &mut Report<'_>,
) {
    if target.is_some() || !report.enabled(Rule::ToolchainInFinalStage) {
        return;
    }
    let Some(last) = model.stages.last() else {
        return;
    };
    // Follow `FROM <stage>` to the image the final stage really starts from.
    let mut index = last.index;
    let mut through = None;
    while let Some(base) = globals.base_stages[index] {
        through = Some(base);
        index = base;
    }
    let Some(image) = globals.bases[index].as_deref() else {
        return;
    };
    let Some(name) = ImageName::parse(image) else {
        return;
    };
    let Some(toolchain) = TOOLCHAINS.iter().find(|t| t.repository == name.repository) else {
        return;
    };
    let tag = name.tag.to_lowercase();
    if SLIM_MARKERS.iter().any(|marker| tag.contains(marker)) {
        return;
    }
    let via = through
        .map(|stage| format!(" (through stage {})", model.stages[stage].display_name()))
        .unwrap_or_default();
    let single = model.stages.len() == 1;
    let hint = if single {
        format!(
            "build in a first stage, then start a final stage FROM {} and COPY --from the build output",
            toolchain.runtime
        )
    } else {
        format!(
            "end with a runtime stage FROM {} and COPY --from the build output",
            toolchain.runtime
        )
    };
    report.push(
        Finding::new(
            Rule::ToolchainInFinalStage,
            last.from.span,
            format!(
                "The final stage is based on the full toolchain image '{image}'{via}, which ships compilers and build tools in the image"
            ),
        )
        .with_hint(hint),
    );
}
