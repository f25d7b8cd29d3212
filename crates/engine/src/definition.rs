//! The build definition: reading a Dockerfile and its context the way `docker build` does, before anything is
//! planned. [`DockerfileInput`] holds what `-f`, `--target`, `--build-arg` and `CONTEXT` say;
//! [`DockerfileInput::load`] reads, parses and validates the Dockerfile (the typed layer, the target, the `# check=`
//! configuration) and finds the ignore file, giving a [`CheckedDockerfile`] that the build, `hoist build --check`
//! and `hoist lint` all start from. [`CheckedDockerfile::lint`] runs the build checks, with base images' `ENV` from
//! the store when it has them.
//!
//! Errors keep the source text with them, so the CLI can draw `file:line:col` and a caret; their `Display` gives
//! the location as text.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use hoist_context::{ContextError, PatternError, PatternMatcher, find_ignore_file};
use hoist_dockerfile::{DirectiveKind, Dockerfile, ParseError, Parser, Span};
use hoist_instructions::InstructionError;
use hoist_lint::{BaseImageEnv, CheckConfig, ConfigError, Finding, LintOptions, RuleSet, lint};
use hoist_oci::{Reference, Store};

/// The inputs of every command that reads a Dockerfile and its build context, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerfileInput {
    /// The Dockerfile (`-f`); `None` is `CONTEXT/Dockerfile`, `-` reads it from standard input.
    pub file: Option<PathBuf>,
    /// The stage to build (`--target`); `None` is the last one.
    pub target: Option<String>,
    /// `--build-arg` values as given: `KEY=VALUE`, or `KEY` to take the value from the environment.
    pub build_args: Vec<String>,
    /// The build context directory (`-` for a context or Dockerfile on standard input, for a build).
    pub context: PathBuf,
}

impl DockerfileInput {
    /// `CONTEXT/Dockerfile` in `context`, no target, no build arguments.
    pub fn new(context: impl Into<PathBuf>) -> DockerfileInput {
        DockerfileInput {
            file: None,
            target: None,
            build_args: Vec::new(),
            context: context.into(),
        }
    }

    /// Reads the Dockerfile: from `file`, `CONTEXT/Dockerfile`, or standard input for `-`.
    pub fn read(&self) -> Result<DockerfileSource, InputError> {
        if !self.context.is_dir() {
            return Err(InputError::ContextNotFound {
                path: self.context.clone(),
            });
        }
        let path = match &self.file {
            Some(file) if file == Path::new("-") => {
                let mut bytes = Vec::new();
                io::stdin()
                    .read_to_end(&mut bytes)
                    .map_err(InputError::ReadStdin)?;
                return Ok(DockerfileSource {
                    name: "<stdin>".to_owned(),
                    path: None,
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                });
            }
            Some(file) => file.clone(),
            None if self.context == Path::new(".") => PathBuf::from("Dockerfile"),
            None => self.context.join("Dockerfile"),
        };
        let bytes = std::fs::read(&path).map_err(|source| InputError::ReadDockerfile {
            path: path.clone(),
            source,
        })?;
        Ok(DockerfileSource {
            name: path.display().to_string(),
            path: Some(path),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// The `.dockerignore` (or `<Dockerfile>.dockerignore`) that applies, as a matcher.
    pub fn ignore_matcher(
        &self,
        dockerfile: Option<&Path>,
    ) -> Result<Option<PatternMatcher>, InputError> {
        let Some(file) =
            find_ignore_file(&self.context, dockerfile).map_err(InputError::ReadIgnoreFile)?
        else {
            return Ok(None);
        };
        PatternMatcher::new(file.patterns)
            .map(Some)
            .map_err(|source| InputError::IgnorePattern {
                path: file.path,
                source,
            })
    }

    /// The build arguments; `KEY` alone takes its value from `env`, or is left out when `env` does not have it, as
    /// docker does.
    pub fn build_arg_map(&self, env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        self.build_args
            .iter()
            .filter_map(|arg| match arg.split_once('=') {
                Some((key, value)) => Some((key.to_owned(), value.to_owned())),
                None => env.get(arg).map(|value| (arg.clone(), value.clone())),
            })
            .collect()
    }

    /// Reads, parses and validates the Dockerfile, checks the target exists, resolves the check configuration
    /// (`# check=` or the `BUILDKIT_DOCKERFILE_CHECK` build argument) and loads the ignore file. `env` gives the
    /// values of `KEY`-only build arguments.
    pub fn load(&self, env: &BTreeMap<String, String>) -> Result<CheckedDockerfile, LoadError> {
        let source = self.read()?;
        let file = match Parser::new()
            .file_name(source.name.clone())
            .parse(&source.text)
        {
            Ok(file) => file,
            Err(error) => {
                return Err(LoadError::Parse {
                    dockerfile: Box::new(source),
                    error,
                });
            }
        };
        let stages = match hoist_instructions::parse_stages(&file) {
            Ok((stages, _)) => stages,
            Err(error) => {
                return Err(LoadError::Instruction {
                    dockerfile: Box::new(source),
                    error,
                });
            }
        };
        if let Some(target) = &self.target
            && hoist_instructions::find_stage(&stages, target).is_none()
        {
            return Err(LoadError::TargetNotFound {
                target: target.clone(),
            });
        }
        let build_args = self.build_arg_map(env);
        let build_arg_check = build_args
            .get(hoist_lint::CHECK_BUILD_ARG)
            .map(String::as_str);
        let config = match CheckConfig::resolve(&file, build_arg_check) {
            Ok(config) => config,
            Err(error) => {
                // An invalid `# check=` directive points at the directive; an invalid build argument has no place
                // in the file.
                let directive = match file.directive(DirectiveKind::Check) {
                    Some(directive) if build_arg_check.is_none() => Some(directive.value_span),
                    _ => None,
                };
                return Err(LoadError::CheckConfig {
                    dockerfile: Box::new(source),
                    directive,
                    error,
                });
            }
        };
        let ignore = self.ignore_matcher(source.path.as_deref())?;
        Ok(CheckedDockerfile {
            source,
            file,
            ignore,
            build_args,
            config,
            target: self.target.clone(),
        })
    }
}

/// A Dockerfile as read from disk or standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerfileSource {
    /// How messages name it (`Dockerfile`, `ci/app.Dockerfile`, `<stdin>`).
    pub name: String,
    /// Its path, `None` when read from standard input.
    pub path: Option<PathBuf>,
    /// The text (invalid UTF-8 replaced, as the parser sees it).
    pub text: String,
}

/// A Dockerfile that parsed and passed the typed layer, with what the checks and the planner need beside it.
#[derive(Debug)]
pub struct CheckedDockerfile {
    /// The text it was parsed from.
    pub source: DockerfileSource,
    /// The parsed Dockerfile.
    pub file: Dockerfile,
    /// The ignore file that applies to the context, if any.
    pub ignore: Option<PatternMatcher>,
    /// The build arguments, resolved.
    pub build_args: BTreeMap<String, String>,
    /// The check configuration (`# check=` or `BUILDKIT_DOCKERFILE_CHECK`).
    pub config: CheckConfig,
    /// The stage to build, `None` for the last one.
    pub target: Option<String>,
}

impl CheckedDockerfile {
    /// Runs the build checks in `rules`; base images found in `store` give `UndefinedVar` their environment.
    pub fn lint(&self, store: Option<&Store>, rules: RuleSet) -> Vec<Finding> {
        let images = store.map(|store| StoreImages { store });
        let options = LintOptions {
            target: self.target.clone(),
            build_args: self.build_args.clone(),
            check: Some(self.config.clone()),
            ignore: self.ignore.as_ref(),
            base_image_env: images.as_ref().map(|images| images as &dyn BaseImageEnv),
            rules,
            platform: None,
        };
        lint(&self.file, &options)
    }

    /// The rules whose findings fail the build: every rule that fired, in order and once each, when the checks
    /// are errors (`# check=error=true`); empty otherwise.
    pub fn failing_rules(&self, findings: &[Finding]) -> Vec<String> {
        let mut rules: Vec<String> = Vec::new();
        if !self.config.error {
            return rules;
        }
        for finding in findings {
            if !rules.iter().any(|rule| rule == finding.rule.name()) {
                rules.push(finding.rule.name().to_owned());
            }
        }
        rules
    }
}

/// The store at `root` (or the default location) if it exists, for the checks' base images: checking never
/// creates a store.
pub fn existing_store(root: Option<&Path>) -> Option<Store> {
    let root = match root {
        Some(root) => root.to_path_buf(),
        None => Store::default_root().ok()?,
    };
    if !root.is_dir() {
        return None;
    }
    Store::open(root).ok()
}

/// Base image environments from the local image store.
struct StoreImages<'a> {
    store: &'a Store,
}

impl BaseImageEnv for StoreImages<'_> {
    /// The `Config.Env` of the image tagged exactly `image` (the host platform's, for a multi-platform image);
    /// `None` when the store does not have it.
    fn env(&self, image: &str, _platform: &str) -> Option<Vec<String>> {
        let reference: Reference = image.parse().ok()?;
        let found = self.store.read_image(&reference.to_string()).ok()?;
        // `read_image` also accepts image ID prefixes; only a tag match is this base image.
        if !found.references.contains(&reference) {
            return None;
        }
        Some(
            found
                .config
                .config()
                .as_ref()
                .and_then(|config| config.env().clone())
                .unwrap_or_default(),
        )
    }
}

/// Reading the inputs failed.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The context directory does not exist or is not a directory.
    #[error("unable to prepare context: path {} not found", hoist_dockerfile::go_quote(&.path.display().to_string()))]
    ContextNotFound {
        /// The context given.
        path: PathBuf,
    },
    /// The Dockerfile could not be read.
    #[error("failed to read dockerfile {}", .path.display())]
    ReadDockerfile {
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Standard input could not be read for `-f -`.
    #[error("failed to read dockerfile from standard input")]
    ReadStdin(#[source] io::Error),
    /// The ignore file could not be read.
    #[error("failed to read the ignore file")]
    ReadIgnoreFile(#[source] ContextError),
    /// The ignore file has a pattern Docker rejects.
    #[error("invalid pattern in {}", .path.display())]
    IgnorePattern {
        /// The ignore file.
        path: PathBuf,
        /// The pattern error.
        #[source]
        source: PatternError,
    },
}

/// Why [`DockerfileInput::load`] failed. The variants about the text carry it, for a located report.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The Dockerfile or its context could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The Dockerfile does not parse.
    #[error("{}", Located { file: &dockerfile.name, span: Some(error.span), message: error })]
    Parse {
        /// The text.
        dockerfile: Box<DockerfileSource>,
        /// The parse error, with its span.
        error: ParseError,
    },
    /// An instruction is invalid (unknown keyword, bad flag…).
    #[error("{}", Located { file: &dockerfile.name, span: Some(error.span), message: error })]
    Instruction {
        /// The text.
        dockerfile: Box<DockerfileSource>,
        /// The error, with its span.
        error: InstructionError,
    },
    /// `--target` names no stage.
    #[error("target stage {} could not be found", hoist_dockerfile::go_quote(.target))]
    TargetNotFound {
        /// The target asked for.
        target: String,
    },
    /// The check configuration is invalid.
    #[error("{}", check_config_message(dockerfile, *directive, error))]
    CheckConfig {
        /// The text.
        dockerfile: Box<DockerfileSource>,
        /// The value of the `# check=` directive at fault; `None` when the build argument is.
        directive: Option<Span>,
        /// What is wrong with it.
        error: ConfigError,
    },
}

/// A message with its place in the Dockerfile: `Dockerfile:3:1: message`, or the message alone without a span.
pub(crate) struct Located<'a, M> {
    pub(crate) file: &'a str,
    pub(crate) span: Option<Span>,
    pub(crate) message: M,
}

impl<M: fmt::Display> fmt::Display for Located<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.span {
            Some(span) => write!(
                f,
                "{}:{}:{}: {}",
                self.file, span.start_line, span.start_column, self.message
            ),
            None => write!(f, "{}", self.message),
        }
    }
}

fn check_config_message(
    dockerfile: &DockerfileSource,
    directive: Option<Span>,
    error: &ConfigError,
) -> String {
    let message = format!("failed to parse check options: {error}");
    match directive {
        Some(span) => Located {
            file: &dockerfile.name,
            span: Some(span),
            message,
        }
        .to_string(),
        None => format!(
            "{message} (from the {} build argument)",
            hoist_lint::CHECK_BUILD_ARG
        ),
    }
}
