//! Dockerfile build checks: BuildKit's rules under their exact names, messages and URLs, and
//! a few of hoist's own.
//!
//! The one idea: run the checks where BuildKit runs them, on the same values. BuildKit
//! checks casing and stage names while parsing, `FROM` while resolving the global `ARG`s,
//! and everything else (`UndefinedVar`, `WorkdirRelativePath`, ...) while converting each
//! stage, with the environment each instruction sees. [`lint`] walks the raw syntax tree in
//! the same three phases, expanding words with `hoist-shell` exactly as BuildKit does, so a
//! finding fires exactly when `docker build --check` reports it. The `# check=` directive
//! (or the `BUILDKIT_DOCKERFILE_CHECK` build argument) skips rules, enables experimental
//! ones and turns warnings into errors ([`CheckConfig`]).
//!
//! hoist adds three rules in BuildKit's style, listed with examples in `docs/lint.md`:
//! [`Rule::CopyBeforeDependencyInstall`], [`Rule::ToolchainInFinalStage`] and
//! [`Rule::UnreachableStage`]. [`RuleSet::BuildKit`] leaves them out.
//!
//! The crate prints nothing: it returns [`Finding`]s with spans, and the CLI renders them.
//!
//! # Example
//!
//! ```
//! use hoist_lint::{LintOptions, Rule, Severity, lint};
//!
//! let file = hoist_dockerfile::parse("FROM alpine as build\nCMD echo hi\n").unwrap();
//! let findings = lint(&file, &LintOptions::default());
//! assert_eq!(findings[0].rule, Rule::FromAsCasing);
//! assert_eq!(findings[0].message, "'as' and 'FROM' keywords' casing do not match");
//! assert_eq!(findings[1].rule, Rule::JsonArgsRecommended);
//! assert_eq!(findings[1].severity, Severity::Warning);
//! ```

mod checks;
mod config;
mod finding;
mod model;
mod options;
mod platform;
mod reference;
mod report;
mod rule;

pub use config::{CHECK_BUILD_ARG, CheckConfig, ConfigError};
pub use finding::Finding;
pub use options::{BaseImageEnv, LintOptions, RuleSet};
pub use platform::Platform;
pub use rule::{Origin, Rule, Severity};

use hoist_dockerfile::Dockerfile;
use hoist_shell::Lexer;

/// Runs the checks on a parsed Dockerfile and returns the findings ordered by line.
///
/// An invalid `# check=` value makes BuildKit fail the build; here the checks then run with
/// the default configuration. Call [`LintOptions::check_config`] first to report it.
pub fn lint(dockerfile: &Dockerfile, options: &LintOptions<'_>) -> Vec<Finding> {
    let config = options.check_config(dockerfile).unwrap_or_default();
    let mut report = report::Report::new(&config, options.rules);
    let model = model::Model::new(dockerfile);
    let lexer = Lexer::new(dockerfile.escape);
    let platform = options.platform.clone().unwrap_or_else(Platform::host);
    let target = options.target.as_deref();

    checks::syntax::check(dockerfile, &model, &mut report);
    let globals = checks::from::check(
        &model,
        &lexer,
        &options.build_args,
        target,
        &platform,
        &mut report,
    );
    let wanted = checks::dispatch::stages_to_check(&model, &globals, target);
    let context = checks::dispatch::Context {
        lexer,
        build_args: &options.build_args,
        ignore: options.ignore,
        base_image_env: options.base_image_env,
        target_platform: platform.format(),
    };
    checks::dispatch::check(&model, &globals, &wanted, &context, &mut report);

    checks::cache_order::check(&model, &mut report);
    checks::toolchain::check(&model, &globals, target, &mut report);
    checks::unreachable::check(&model, &globals, &mut report);
    report.finish()
}

#[cfg(test)]
mod tests;
