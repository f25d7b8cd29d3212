//! The `# check=` configuration: which rules run and whether findings fail the build.
//!
//! The same text comes from the Dockerfile's `# check=` parser directive or from the
//! `BUILDKIT_DOCKERFILE_CHECK` build argument; as in BuildKit, the build argument, when
//! given, replaces the directive entirely. The syntax is BuildKit's `ParseLintOptions`:
//! up to three `;`-separated `key=value` options among `skip=<rules>|all`,
//! `experimental=<rules>|all` and `error=<bool>`.

use std::collections::BTreeSet;

use hoist_dockerfile::{DirectiveKind, Dockerfile};

use crate::Rule;

/// The build argument that overrides the `# check=` directive.
pub const CHECK_BUILD_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// A `# check=` value that BuildKit would reject. Messages are BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// An option without `=` or with an unknown key.
    #[error("invalid check option {}", hoist_dockerfile::go_quote(.option))]
    InvalidOption {
        /// The offending option (the whole part for a missing `=`, the key otherwise).
        option: String,
    },
    /// `error=` with something Go's `strconv.ParseBool` does not accept.
    #[error(
        "failed to parse check option {}: strconv.ParseBool: parsing {}: invalid syntax",
        hoist_dockerfile::go_quote(.option),
        hoist_dockerfile::go_quote(.value)
    )]
    InvalidBool {
        /// The whole `error=...` option.
        option: String,
        /// The value that is not a boolean.
        value: String,
    },
}

/// Which rules are skipped or enabled, and whether findings are errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// `skip=all`: no non-experimental rule runs.
    pub skip_all: bool,
    /// `skip=A,B`: these rules do not run (names are case-sensitive; unknown names are
    /// ignored, as in BuildKit).
    pub skip: BTreeSet<String>,
    /// `experimental=all`: every experimental rule runs.
    pub experimental_all: bool,
    /// `experimental=A,B`: these experimental rules run. Experimental rules ignore `skip`.
    pub experimental: BTreeSet<String>,
    /// `error=true`: every warning becomes an error and fails the build.
    pub error: bool,
}

impl CheckConfig {
    /// Parses a `# check=` value (`skip=JSONArgsRecommended;error=true`).
    pub fn parse(text: &str) -> Result<CheckConfig, ConfigError> {
        let text = text.trim();
        let mut config = CheckConfig::default();
        if text.is_empty() {
            return Ok(config);
        }
        // BuildKit splits into at most three parts: a fourth option stays glued to the third
        // and makes its value (or key) invalid.
        for part in text.splitn(3, ';') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(ConfigError::InvalidOption {
                    option: part.to_owned(),
                });
            };
            match key.trim() {
                "skip" => match value.trim() {
                    "all" => config.skip_all = true,
                    list => config.skip = split_rule_list(list),
                },
                "experimental" => match value.trim() {
                    "all" => config.experimental_all = true,
                    list => config.experimental = split_rule_list(list),
                },
                "error" => {
                    config.error =
                        parse_go_bool(value.trim()).ok_or_else(|| ConfigError::InvalidBool {
                            option: part.to_owned(),
                            value: value.trim().to_owned(),
                        })?;
                }
                other => {
                    return Err(ConfigError::InvalidOption {
                        option: other.to_owned(),
                    });
                }
            }
        }
        Ok(config)
    }

    /// Whether `rule` runs under this configuration (BuildKit's `Linter.Run`): an
    /// experimental rule only when enabled, whatever `skip` says; any other rule unless
    /// skipped.
    pub fn is_enabled(&self, rule: Rule) -> bool {
        if rule.is_experimental() {
            self.experimental_all || self.experimental.contains(rule.name())
        } else {
            !(self.skip_all || self.skip.contains(rule.name()))
        }
    }

    /// The configuration in effect for a build: the `BUILDKIT_DOCKERFILE_CHECK` value when
    /// given (it replaces the directive), else the file's `# check=` directive, else the
    /// defaults.
    pub fn resolve(
        dockerfile: &Dockerfile,
        build_arg: Option<&str>,
    ) -> Result<CheckConfig, ConfigError> {
        if let Some(value) = build_arg {
            return CheckConfig::parse(value);
        }
        match dockerfile.directive(DirectiveKind::Check) {
            Some(directive) => CheckConfig::parse(&directive.value),
            None => Ok(CheckConfig::default()),
        }
    }
}

fn split_rule_list(list: &str) -> BTreeSet<String> {
    list.split(',').map(|name| name.trim().to_owned()).collect()
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_skip_error_and_experimental() {
        let config =
            CheckConfig::parse(" skip = JSONArgsRecommended, StageNameCasing ;error=true").unwrap();
        assert!(config.error);
        assert!(!config.is_enabled(Rule::JsonArgsRecommended));
        assert!(!config.is_enabled(Rule::StageNameCasing));
        assert!(config.is_enabled(Rule::FromAsCasing));
        assert!(!config.is_enabled(Rule::InvalidDefinitionDescription));

        let config = CheckConfig::parse("skip=all;experimental=all").unwrap();
        assert!(!config.is_enabled(Rule::FromAsCasing));
        assert!(!config.is_enabled(Rule::UnreachableStage));
        assert!(
            config.is_enabled(Rule::InvalidDefinitionDescription),
            "experimental rules ignore skip"
        );

        let config = CheckConfig::parse("experimental=InvalidDefinitionDescription").unwrap();
        assert!(config.is_enabled(Rule::InvalidDefinitionDescription));
        assert_eq!(CheckConfig::parse("").unwrap(), CheckConfig::default());
        assert!(CheckConfig::parse("error=T").unwrap().error);
    }

    #[test]
    fn rejects_what_buildkit_rejects() {
        assert_eq!(
            CheckConfig::parse("skip").unwrap_err().to_string(),
            r#"invalid check option "skip""#
        );
        assert_eq!(
            CheckConfig::parse("nope=1").unwrap_err().to_string(),
            r#"invalid check option "nope""#
        );
        assert_eq!(
            CheckConfig::parse("error=maybe").unwrap_err().to_string(),
            r#"failed to parse check option "error=maybe": strconv.ParseBool: parsing "maybe": invalid syntax"#
        );
        assert!(CheckConfig::parse("skip=all;").is_err(), "an empty option");
        assert!(
            CheckConfig::parse("skip=A;experimental=all;error=true;skip=B").is_err(),
            "a fourth option stays glued to the third"
        );
    }
}
