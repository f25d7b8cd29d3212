//! `hoist build --check [-f FILE] [--target STAGE] [--build-arg K=V]… CONTEXT`: run the
//! build checks the way `docker build --check` does, without building.
//!
//! The build engine comes later; until then `--check` is required, so `hoist build` alone is
//! a usage error rather than a build that silently does nothing. [`DockerfileArgs`] holds
//! the inputs every Dockerfile command shares (`hoist lint` uses it too); the full build
//! will add its own flags to [`BuildArgs`].
//!
//! Output follows docker: `Check complete, N warnings have been found!`, then each finding as
//! `WARNING: <rule> - <url>`, its message and the Dockerfile lines around it with `>>>`
//! marking the instruction; exit 1 when any check fired. Only BuildKit's rules run here;
//! `hoist lint` adds hoist's own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use hoist_context::{ContextError, PatternError, PatternMatcher, find_ignore_file};
use hoist_dockerfile::{DirectiveKind, Dockerfile, Parser};
use hoist_lint::{BaseImageEnv, CheckConfig, ConfigError, Finding, LintOptions, RuleSet, lint};
use hoist_oci::{Reference, Store};

use crate::diagnostics::{SourceError, use_color};

/// The inputs of every command that reads a Dockerfile and its build context.
#[derive(Debug, Args)]
pub(crate) struct DockerfileArgs {
    /// The Dockerfile (default: CONTEXT/Dockerfile); `-` reads it from standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,

    /// The stage to build (default: the last one).
    #[arg(long, value_name = "STAGE")]
    pub(crate) target: Option<String>,

    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment).
    /// `BUILDKIT_DOCKERFILE_CHECK` configures the checks like a `# check=` directive.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub(crate) build_args: Vec<String>,

    /// The build context directory.
    #[arg(value_name = "CONTEXT", default_value = ".")]
    pub(crate) context: PathBuf,
}

/// Build an image from a Dockerfile (for now only `--check`).
#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) input: DockerfileArgs,

    /// Run the build checks and report the findings instead of building.
    #[arg(long, required = true)]
    pub(crate) check: bool,
}

/// Reading the inputs failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
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

/// A Dockerfile read from disk or standard input.
pub(crate) struct Source {
    /// How messages name it (`Dockerfile`, `ci/app.Dockerfile`, `<stdin>`).
    pub(crate) name: String,
    /// Its path, `None` when read from standard input.
    pub(crate) path: Option<PathBuf>,
    /// The text (invalid UTF-8 replaced, as the parser sees it).
    pub(crate) text: String,
}

impl DockerfileArgs {
    /// Reads the Dockerfile.
    pub(crate) fn read(&self) -> Result<Source, InputError> {
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
                return Ok(Source {
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
        Ok(Source {
            name: path.display().to_string(),
            path: Some(path),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// The `.dockerignore` (or `<Dockerfile>.dockerignore`) that applies, as a matcher.
    pub(crate) fn ignore_matcher(
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

    /// `--build-arg` values; `KEY` alone takes the value from the environment, or is left
    /// out when the variable is unset, as docker does.
    pub(crate) fn build_arg_map(&self) -> BTreeMap<String, String> {
        self.build_args
            .iter()
            .filter_map(|arg| match arg.split_once('=') {
                Some((key, value)) => Some((key.to_owned(), value.to_owned())),
                None => std::env::var(arg).ok().map(|value| (arg.clone(), value)),
            })
            .collect()
    }
}

/// A Dockerfile that parsed and passed the typed layer, ready to check.
pub(crate) struct Checked {
    pub(crate) source: Source,
    pub(crate) file: Dockerfile,
    pub(crate) ignore: Option<PatternMatcher>,
    pub(crate) build_args: BTreeMap<String, String>,
    pub(crate) config: CheckConfig,
}

/// Why a Dockerfile could not be checked; [`Failure::report`] prints it.
pub(crate) enum Failure {
    Input(InputError),
    Source { rendered: String },
}

impl Failure {
    /// Prints the failure to stderr.
    pub(crate) fn report(&self) {
        let mut stderr = io::stderr().lock();
        let _ = match self {
            Failure::Input(error) => writeln!(
                stderr,
                "error: {}",
                super::images::error_chain(error as &dyn std::error::Error)
            ),
            Failure::Source { rendered } => write!(stderr, "{rendered}"),
        };
    }
}

/// Reads, parses and validates the Dockerfile, loads the ignore file and resolves the check
/// configuration: everything the checks need, or a rendered error.
pub(crate) fn prepare(args: &DockerfileArgs) -> Result<Checked, Failure> {
    let source = args.read().map_err(Failure::Input)?;
    let color = use_color(&io::stderr());
    let file = Parser::new()
        .file_name(source.name.clone())
        .parse(&source.text)
        .map_err(|error| Failure::Source {
            rendered: SourceError::from_parse(&source.name, &source.text, &error).render(color),
        })?;
    let stages = match hoist_instructions::parse_stages(&file) {
        Ok((stages, _)) => stages,
        Err(error) => {
            return Err(Failure::Source {
                rendered: SourceError::from_instruction(&source.name, &source.text, &error)
                    .render(color),
            });
        }
    };
    if let Some(target) = &args.target
        && hoist_instructions::find_stage(&stages, target).is_none()
    {
        return Err(Failure::Source {
            rendered: format!(
                "error: target stage {} could not be found\n",
                hoist_dockerfile::go_quote(target)
            ),
        });
    }
    let build_args = args.build_arg_map();
    let build_arg_check = build_args
        .get(hoist_lint::CHECK_BUILD_ARG)
        .map(String::as_str);
    let config = CheckConfig::resolve(&file, build_arg_check).map_err(|error| {
        config_failure(&source, &file, build_arg_check.is_some(), &error, color)
    })?;
    let ignore = args
        .ignore_matcher(source.path.as_deref())
        .map_err(Failure::Input)?;
    Ok(Checked {
        source,
        file,
        ignore,
        build_args,
        config,
    })
}

/// An invalid `# check=` directive points at the directive; an invalid build argument has
/// no place in the file.
fn config_failure(
    source: &Source,
    file: &Dockerfile,
    from_build_arg: bool,
    error: &ConfigError,
    color: bool,
) -> Failure {
    let message = format!("failed to parse check options: {error}");
    match file.directive(DirectiveKind::Check) {
        Some(directive) if !from_build_arg => Failure::Source {
            rendered: SourceError {
                file: &source.name,
                source: &source.text,
                span: directive.value_span,
                message,
                label: "check options".to_owned(),
                help: Some("write e.g. `# check=skip=JSONArgsRecommended;error=true`".to_owned()),
            }
            .render(color),
        },
        _ => Failure::Source {
            rendered: format!(
                "error: {message} (from the {} build argument)\n",
                hoist_lint::CHECK_BUILD_ARG
            ),
        },
    }
}

impl Checked {
    /// Runs the checks; base images found in the store at `root` give `UndefinedVar` their
    /// environment.
    pub(crate) fn lint(
        &self,
        root: Option<&Path>,
        target: Option<&str>,
        rules: RuleSet,
    ) -> Vec<Finding> {
        let images = StoreImages::open(root);
        let options = LintOptions {
            target: target.map(str::to_owned),
            build_args: self.build_args.clone(),
            check: Some(self.config.clone()),
            ignore: self.ignore.as_ref(),
            base_image_env: images.as_ref().map(|images| images as &dyn BaseImageEnv),
            rules,
            platform: None,
        };
        lint(&self.file, &options)
    }
}

/// Base image environments from the local image store.
struct StoreImages {
    store: Store,
}

impl StoreImages {
    /// The store at `root` (or the default location), if it exists: checking never creates
    /// one.
    fn open(root: Option<&Path>) -> Option<StoreImages> {
        let root = match root {
            Some(root) => root.to_path_buf(),
            None => Store::default_root().ok()?,
        };
        if !root.is_dir() {
            return None;
        }
        Store::open(root).ok().map(|store| StoreImages { store })
    }
}

impl BaseImageEnv for StoreImages {
    /// The `Config.Env` of the image tagged exactly `image` (the host platform's, for a
    /// multi-platform image); `None` when the store does not have it.
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

pub(crate) fn run(root: Option<&Path>, args: &BuildArgs) -> ExitCode {
    let checked = match prepare(&args.input) {
        Ok(checked) => checked,
        Err(failure) => {
            failure.report();
            return ExitCode::FAILURE;
        }
    };
    let findings = checked.lint(root, args.input.target.as_deref(), RuleSet::BuildKit);
    let text = check_report(&checked.source, &findings);
    let _ = io::stdout().lock().write_all(text.as_bytes());
    if findings.is_empty() {
        return ExitCode::SUCCESS;
    }
    if checked.config.error {
        let mut rules: Vec<&str> = Vec::new();
        for finding in &findings {
            if !rules.contains(&finding.rule.name()) {
                rules.push(finding.rule.name());
            }
        }
        let _ = writeln!(io::stdout().lock());
        let _ = writeln!(
            io::stderr().lock(),
            "ERROR: lint violation found for rules: {}",
            rules.join(", ")
        );
    }
    ExitCode::FAILURE
}

/// docker's `--check` report: a count line, then each finding with BuildKit's source
/// excerpt.
pub(crate) fn check_report(source: &Source, findings: &[Finding]) -> String {
    let mut out = String::new();
    match findings.len() {
        0 => {
            out.push_str("Check complete, no warnings found.\n");
            return out;
        }
        1 => out.push_str("Check complete, 1 warning has been found!\n"),
        n => {
            let _ = writeln!(out, "Check complete, {n} warnings have been found!");
        }
    }
    for finding in findings {
        let _ = write!(
            out,
            "\nWARNING: {} - {}\n{}\n",
            finding.rule, finding.url, finding.message
        );
        out.push_str(&source_excerpt(
            &source.name,
            &source.text,
            finding.span.start_line,
            finding.span.end_line,
        ));
    }
    out
}

/// BuildKit's `errdefs.Source.Print`: the lines around `start..=end` with `>>>` on the
/// instruction, two lines of context around a multi-line range and four around one line,
/// split between before and after.
fn source_excerpt(name: &str, text: &str, start: u32, end: u32) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let (start, end) = (start as usize, (end.max(start)) as usize);
    if start < 1 || start > lines.len() {
        return String::new();
    }
    let marked = start..=end.min(lines.len());
    let (mut first, mut last) = (start, end.min(lines.len()));
    let pad = if first == last { 4 } else { 2 };
    let mut p = 0;
    while p < pad {
        if first > 1 {
            first -= 1;
            p += 1;
        }
        if last != lines.len() {
            last += 1;
            p += 1;
        }
        p += 1;
    }
    let mut out = format!("{name}:{start}\n--------------------\n");
    for i in first..=last {
        let prefix = if marked.contains(&i) { ">>>" } else { "   " };
        let _ = writeln!(out, " {i:>3} | {prefix} {}", lines[i - 1]);
    }
    out.push_str("--------------------\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_matches_buildkit() {
        let text = "FROM alpine\nRUN a\nCMD b\nRUN c\nRUN d\nRUN e\n";
        assert_eq!(
            source_excerpt("Dockerfile", text, 3, 3),
            "Dockerfile:3\n--------------------\n   1 |     FROM alpine\n   2 |     RUN a\n   3 | >>> CMD b\n   4 |     RUN c\n   5 |     RUN d\n--------------------\n"
        );
        assert_eq!(
            source_excerpt("Dockerfile", text, 1, 2),
            "Dockerfile:1\n--------------------\n   1 | >>> FROM alpine\n   2 | >>> RUN a\n   3 |     CMD b\n--------------------\n"
        );
        assert_eq!(source_excerpt("Dockerfile", text, 0, 0), "");
    }
}
