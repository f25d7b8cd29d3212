//! The rules: BuildKit's build checks under their exact names, descriptions and URLs, and
//! hoist's own checks in the same style.

use std::fmt;

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// One of BuildKit's build checks (`docker build --check` runs these).
    BuildKit,
    /// A check of hoist's own (documented in `docs/lint.md`).
    Hoist,
}

/// How serious a finding is.
///
/// BuildKit reports every check as a warning and turns them all into errors with
/// `# check=error=true`; hoist's own checks are warnings, except [`Rule::UnreachableStage`]
/// which is informational and never becomes an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; never fails a command.
    Info,
    /// Likely a mistake; `hoist lint` still exits 0.
    Warning,
    /// A check configured to fail the build (`# check=error=true`).
    Error,
}

impl Severity {
    /// The lower-case name used in output (`info`, `warning`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares the rule enum with its metadata in one table so names, descriptions and URLs
/// cannot drift apart.
macro_rules! rules {
    ($(
        $(#[$doc:meta])*
        $variant:ident {
            name: $name:literal,
            origin: $origin:ident,
            description: $description:literal,
            url: $url:expr,
            experimental: $experimental:literal,
            severity: $severity:ident,
        }
    )*) => {
        /// A build check.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Rule {
            $( $(#[$doc])* $variant, )*
        }

        impl Rule {
            /// Every rule, BuildKit's first in the order of BuildKit's rule set.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant),*];

            /// The rule's name as used in `# check=skip=` and in output (`FromAsCasing`).
            pub fn name(self) -> &'static str {
                match self { $(Rule::$variant => $name,)* }
            }

            /// The one-line description (BuildKit's `Description` for BuildKit rules).
            pub fn description(self) -> &'static str {
                match self { $(Rule::$variant => $description,)* }
            }

            /// The documentation page.
            pub fn url(self) -> &'static str {
                match self { $(Rule::$variant => $url,)* }
            }

            /// Whether the rule is BuildKit's or hoist's.
            pub fn origin(self) -> Origin {
                match self { $(Rule::$variant => Origin::$origin,)* }
            }

            /// Experimental rules run only when enabled with `# check=experimental=`.
            pub fn is_experimental(self) -> bool {
                match self { $(Rule::$variant => $experimental,)* }
            }

            /// The severity before `# check=error=true` is applied.
            pub fn default_severity(self) -> Severity {
                match self { $(Rule::$variant => Severity::$severity,)* }
            }
        }
    };
}

/// BuildKit's documentation pages live under one prefix.
macro_rules! docker_rule_url {
    ($slug:literal) => {
        concat!("https://docs.docker.com/go/dockerfile/rule/", $slug, "/")
    };
}

/// hoist's own rules are documented in `docs/lint.md` of the repository.
macro_rules! hoist_rule_url {
    ($anchor:literal) => {
        concat!(
            env!("CARGO_PKG_REPOSITORY"),
            "/blob/main/docs/lint.md#",
            $anchor
        )
    };
}

rules! {
    /// `FROM image AS Name`: stage names should be lower case.
    StageNameCasing {
        name: "StageNameCasing",
        origin: BuildKit,
        description: "Stage names should be lowercase",
        url: docker_rule_url!("stage-name-casing"),
        experimental: false,
        severity: Warning,
    }
    /// `FROM image as name`: the `AS` keyword should be cased like `FROM`.
    FromAsCasing {
        name: "FromAsCasing",
        origin: BuildKit,
        description: "The 'as' keyword should match the case of the 'from' keyword",
        url: docker_rule_url!("from-as-casing"),
        experimental: false,
        severity: Warning,
    }
    /// An empty line inside a line continuation.
    NoEmptyContinuation {
        name: "NoEmptyContinuation",
        origin: BuildKit,
        description: "Empty continuation lines will become errors in a future release",
        url: docker_rule_url!("no-empty-continuation"),
        experimental: false,
        severity: Warning,
    }
    /// Instruction keywords in mixed case, or against the file's majority.
    ConsistentInstructionCasing {
        name: "ConsistentInstructionCasing",
        origin: BuildKit,
        description: "All commands within the Dockerfile should use the same casing (either upper or lower)",
        url: docker_rule_url!("consistent-instruction-casing"),
        experimental: false,
        severity: Warning,
    }
    /// Two stages with the same name.
    DuplicateStageName {
        name: "DuplicateStageName",
        origin: BuildKit,
        description: "Stage names should be unique",
        url: docker_rule_url!("duplicate-stage-name"),
        experimental: false,
        severity: Warning,
    }
    /// A stage named `scratch` or `context`.
    ReservedStageName {
        name: "ReservedStageName",
        origin: BuildKit,
        description: "Reserved words should not be used as stage names",
        url: docker_rule_url!("reserved-stage-name"),
        experimental: false,
        severity: Warning,
    }
    /// `CMD`/`ENTRYPOINT` in shell form.
    JsonArgsRecommended {
        name: "JSONArgsRecommended",
        origin: BuildKit,
        description: "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
        url: docker_rule_url!("json-args-recommended"),
        experimental: false,
        severity: Warning,
    }
    /// The deprecated `MAINTAINER` instruction.
    MaintainerDeprecated {
        name: "MaintainerDeprecated",
        origin: BuildKit,
        description: "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
        url: docker_rule_url!("maintainer-deprecated"),
        experimental: false,
        severity: Warning,
    }
    /// `FROM` uses a variable no global `ARG` declares.
    UndefinedArgInFrom {
        name: "UndefinedArgInFrom",
        origin: BuildKit,
        description: "FROM command must use declared ARGs",
        url: docker_rule_url!("undefined-arg-in-from"),
        experimental: false,
        severity: Warning,
    }
    /// The first `WORKDIR` of a stage is relative.
    WorkdirRelativePath {
        name: "WorkdirRelativePath",
        origin: BuildKit,
        description: "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes",
        url: docker_rule_url!("workdir-relative-path"),
        experimental: false,
        severity: Warning,
    }
    /// A variable used before any `ARG` or `ENV` defines it.
    UndefinedVar {
        name: "UndefinedVar",
        origin: BuildKit,
        description: "Variables should be defined before their use",
        url: docker_rule_url!("undefined-var"),
        experimental: false,
        severity: Warning,
    }
    /// More than one `CMD`, `ENTRYPOINT` or `HEALTHCHECK` in a stage.
    MultipleInstructionsDisallowed {
        name: "MultipleInstructionsDisallowed",
        origin: BuildKit,
        description: "Multiple instructions of the same type should not be used in the same stage",
        url: docker_rule_url!("multiple-instructions-disallowed"),
        experimental: false,
        severity: Warning,
    }
    /// `ENV key value` / `LABEL key value` without `=`.
    LegacyKeyValueFormat {
        name: "LegacyKeyValueFormat",
        origin: BuildKit,
        description: "Legacy key/value format with whitespace separator should not be used",
        url: docker_rule_url!("legacy-key-value-format"),
        experimental: false,
        severity: Warning,
    }
    /// `FROM --platform=$TARGETPLATFORM`, which is the default anyway.
    RedundantTargetPlatform {
        name: "RedundantTargetPlatform",
        origin: BuildKit,
        description: "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
        url: docker_rule_url!("redundant-target-platform"),
        experimental: false,
        severity: Warning,
    }
    /// An `ARG` or `ENV` whose name looks like it holds a secret.
    SecretsUsedInArgOrEnv {
        name: "SecretsUsedInArgOrEnv",
        origin: BuildKit,
        description: "Sensitive data should not be used in the ARG or ENV commands",
        url: docker_rule_url!("secrets-used-in-arg-or-env"),
        experimental: false,
        severity: Warning,
    }
    /// A `FROM` that is not a valid image name when the global `ARG`s keep their defaults.
    InvalidDefaultArgInFrom {
        name: "InvalidDefaultArgInFrom",
        origin: BuildKit,
        description: "Default value for global ARG results in an empty or invalid base image name",
        url: docker_rule_url!("invalid-default-arg-in-from"),
        experimental: false,
        severity: Warning,
    }
    /// `FROM --platform=linux/amd64` with a constant platform.
    FromPlatformFlagConstDisallowed {
        name: "FromPlatformFlagConstDisallowed",
        origin: BuildKit,
        description: "FROM --platform flag should not use a constant value",
        url: docker_rule_url!("from-platform-flag-const-disallowed"),
        experimental: false,
        severity: Warning,
    }
    /// `COPY`/`ADD` of a path the ignore file excludes.
    CopyIgnoredFile {
        name: "CopyIgnoredFile",
        origin: BuildKit,
        description: "Attempting to Copy file that is excluded by .dockerignore",
        url: docker_rule_url!("copy-ignored-file"),
        experimental: false,
        severity: Warning,
    }
    /// A comment above a stage or `ARG` that does not start with its name (experimental).
    InvalidDefinitionDescription {
        name: "InvalidDefinitionDescription",
        origin: BuildKit,
        description: "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.",
        url: docker_rule_url!("invalid-definition-description"),
        experimental: true,
        severity: Warning,
    }
    /// `EXPOSE 80/TCP`: protocols should be lower case.
    ExposeProtoCasing {
        name: "ExposeProtoCasing",
        origin: BuildKit,
        description: "Protocol in EXPOSE instruction should be lowercase",
        url: docker_rule_url!("expose-proto-casing"),
        experimental: false,
        severity: Warning,
    }
    /// `EXPOSE 127.0.0.1:80:80` or `EXPOSE 80:80`.
    ExposeInvalidFormat {
        name: "ExposeInvalidFormat",
        origin: BuildKit,
        description: "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release",
        url: docker_rule_url!("expose-invalid-format"),
        experimental: false,
        severity: Warning,
    }
    /// The whole build context is copied before a dependency install in the same stage.
    CopyBeforeDependencyInstall {
        name: "CopyBeforeDependencyInstall",
        origin: Hoist,
        description: "Copying the whole build context before installing dependencies invalidates the install cache on every source change",
        url: hoist_rule_url!("copybeforedependencyinstall"),
        experimental: false,
        severity: Warning,
    }
    /// The default target is based on a full toolchain image.
    ToolchainInFinalStage {
        name: "ToolchainInFinalStage",
        origin: Hoist,
        description: "The final stage should not be based on a full toolchain image",
        url: hoist_rule_url!("toolchaininfinalstage"),
        experimental: false,
        severity: Warning,
    }
    /// A stage nothing refers to and that is not the default target.
    UnreachableStage {
        name: "UnreachableStage",
        origin: Hoist,
        description: "Stages that no FROM, COPY --from or RUN --mount from= refers to are only built with --target",
        url: hoist_rule_url!("unreachablestage"),
        experimental: false,
        severity: Info,
    }
}

impl Rule {
    /// Looks a rule up by its exact name (`# check=skip=` names are case-sensitive).
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|rule| rule.name() == name)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildkit_urls_use_the_kebab_case_name() {
        for rule in Rule::ALL {
            if rule.origin() != Origin::BuildKit {
                continue;
            }
            let mut kebab = String::new();
            let name = rule.name().replace("JSON", "Json");
            for (i, c) in name.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    kebab.push('-');
                }
                kebab.push(c.to_ascii_lowercase());
            }
            assert_eq!(
                rule.url(),
                format!("https://docs.docker.com/go/dockerfile/rule/{kebab}/"),
                "{rule}"
            );
        }
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for rule in Rule::ALL {
            assert_eq!(Rule::from_name(rule.name()), Some(*rule));
        }
        assert_eq!(Rule::from_name("fromascasing"), None);
    }

    #[test]
    fn hoist_rule_urls_point_at_the_docs() {
        assert!(
            Rule::UnreachableStage
                .url()
                .ends_with("/docs/lint.md#unreachablestage")
        );
        assert_eq!(Rule::UnreachableStage.default_severity(), Severity::Info);
    }
}
