//! What the caller tells the checks: build arguments, target, ignore file, base images.

use std::collections::BTreeMap;

use hoist_context::PatternMatcher;
use hoist_dockerfile::Dockerfile;

use crate::{CHECK_BUILD_ARG, CheckConfig, ConfigError, Platform};

/// The environment of base images, for `UndefinedVar`.
///
/// A variable a stage uses may come from its base image's `ENV` (`GOPATH` in `golang`), which
/// only the image's config says. The store or a registry client implements this; without it
/// hoist cannot tell an undefined variable from one the base image sets, and stays silent for
/// stages built on an external image (see `docs/lint.md`). `FROM scratch` and stages built
/// on other stages of the same Dockerfile are always known.
pub trait BaseImageEnv {
    /// The `Config.Env` (`NAME=value` entries) of `image` (the `FROM` value after `ARG`
    /// expansion, e.g. `golang:1.22`) for `platform` (`linux/amd64`), or `None` when not
    /// known.
    fn env(&self, image: &str, platform: &str) -> Option<Vec<String>>;
}

/// Which rules may run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RuleSet {
    /// BuildKit's rules and hoist's own (`hoist lint`).
    #[default]
    All,
    /// Only BuildKit's rules, as `docker build --check` runs them (`hoist build --check`).
    BuildKit,
}

/// Inputs to [`lint`](crate::lint) besides the Dockerfile.
#[derive(Default)]
pub struct LintOptions<'a> {
    /// The stage being built (`--target`). Without one every stage is checked, as
    /// `docker build --check` does; with one, the per-instruction checks only run on the
    /// stages the target needs, like BuildKit.
    pub target: Option<String>,
    /// `--build-arg` values. They give global and stage `ARG`s their values, and
    /// `BUILDKIT_DOCKERFILE_CHECK` replaces the `# check=` directive.
    pub build_args: BTreeMap<String, String>,
    /// A check configuration that replaces both the directive and the build argument.
    pub check: Option<CheckConfig>,
    /// The ignore file that applies to the build context, for `CopyIgnoredFile`. `None`
    /// when there is none (the rule then never fires, as in BuildKit).
    pub ignore: Option<&'a PatternMatcher>,
    /// Base image environments, for `UndefinedVar`.
    pub base_image_env: Option<&'a dyn BaseImageEnv>,
    /// Which rules may run.
    pub rules: RuleSet,
    /// The target platform (`--platform`); the host platform when `None`.
    pub platform: Option<Platform>,
}

impl LintOptions<'_> {
    /// The `# check=` configuration in effect: [`LintOptions::check`] if set, else the
    /// `BUILDKIT_DOCKERFILE_CHECK` build argument if given, else the file's directive.
    /// Errors are BuildKit's "invalid check option" errors; [`lint`](crate::lint) falls back
    /// to the defaults on them, so call this first to report them.
    pub fn check_config(&self, dockerfile: &Dockerfile) -> Result<CheckConfig, ConfigError> {
        if let Some(config) = &self.check {
            return Ok(config.clone());
        }
        CheckConfig::resolve(
            dockerfile,
            self.build_args.get(CHECK_BUILD_ARG).map(String::as_str),
        )
    }
}

impl std::fmt::Debug for LintOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LintOptions")
            .field("target", &self.target)
            .field("build_args", &self.build_args)
            .field("check", &self.check)
            .field("ignore", &self.ignore.map(|m| m.patterns().len()))
            .field("base_image_env", &self.base_image_env.is_some())
            .field("rules", &self.rules)
            .field("platform", &self.platform)
            .finish()
    }
}
