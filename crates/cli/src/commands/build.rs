//! `hoist build [-f Dockerfile|-] [-t NAME:TAG]… [--target STAGE] [--build-arg K[=V]]… [--platform P]
//! [--no-cache] [--no-cache-filter STAGE] [--label K=V]… [-o SPEC]… [--load] [--iidfile F] [--metadata-file F]
//! [--secret id=ID[,src=FILE|env=VAR]]… [--build-context NAME=DIR|docker-image://REF|oci-layout://PATH[:TAG]]…
//! [--progress auto|plain|tty|rawjson|quiet] [-q] [--push] [--check] CONTEXT|-`: Docker's flags and meanings (`-` reads a Dockerfile or a
//! context tar from standard input).
//!
//! A build parses and validates the Dockerfile, plans it (`hoist-plan`, base images from the store, pulled
//! through `hoist-registry` when missing), solves the plan (`hoist-engine`: cache, RUN in `hoist-sandbox`),
//! writes the image to the store, tags it and sends it to every `--output` (`hoist_engine::export`: archives,
//! `--load`, registry pushes). Progress is rendered on stderr by `crate::progress` in the `--progress` form asked
//! for (BuildKit's plain `#3 [2/4] RUN make` lines, its live tty view, or its rawjson objects).
//! `SOURCE_DATE_EPOCH` (environment or `--build-arg`) makes the image reproducible, as with BuildKit.
//!
//! `--check` runs the build checks the way `docker build --check` does, without building: `Check complete, N
//! warnings have been found!`, then each finding as `WARNING: <rule> - <url>`, its message and the Dockerfile
//! lines around it with `>>>` marking the instruction; exit 1 when any check fired. Only BuildKit's rules run
//! here; `hoist lint` adds hoist's own. [`DockerfileArgs`] holds the inputs every Dockerfile command shares
//! (`hoist lint` uses it too).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use hoist_context::{ContextError, PatternError, PatternMatcher, find_ignore_file};
use hoist_dockerfile::{DirectiveKind, Dockerfile, Parser};
use hoist_engine::{
    EngineError, ExportRequest, LOAD_DEFINITION_SLOT, LOAD_IGNORE_SLOT, OutputSpec, RegistryPuller,
    Reporter, SOURCE_DATE_EPOCH, SandboxExecutor, SolveRequest, Solver, StdinContext,
    StoreResolver, Vertex, VertexStatus,
};
use hoist_lint::{BaseImageEnv, CheckConfig, ConfigError, Finding, LintOptions, RuleSet, lint};
use hoist_oci::{Reference, Store};
use hoist_plan::{NoCache, PlanRequest};

use crate::diagnostics::{SourceError, use_color};
use crate::progress;

/// How many ops a build runs at once, at least (more on machines with more cores).
const BUILD_PARALLELISM: usize = 16;

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

/// Build an image from a Dockerfile.
#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) input: DockerfileArgs,

    /// Run the build checks and report the findings instead of building.
    #[arg(long)]
    pub(crate) check: bool,

    /// Name and optionally tag the image (`name:tag`); may be repeated.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub(crate) tags: Vec<String>,

    /// The platform to build for (`linux/amd64`); default: the host's.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub(crate) platform: Option<String>,

    /// Do not use the cache: run every step again.
    #[arg(long)]
    pub(crate) no_cache: bool,

    /// Do not use the cache for these stages (comma-separated or repeated).
    #[arg(long, value_name = "STAGE", value_delimiter = ',')]
    pub(crate) no_cache_filter: Vec<String>,

    /// Set metadata for the image (`KEY=VALUE`); may be repeated.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub(crate) labels: Vec<String>,

    /// Output destination: `type=local,dest=DIR`, `type=tar,dest=FILE`, `type=docker,dest=FILE[,name=N]`,
    /// `type=docker[,name=N]` (into `docker load`), `type=oci,dest=FILE[,name=N]`,
    /// `type=image[,name=N][,push=true]`, `type=registry[,name=N]`, a directory, or `-` (a tar on stdout); may be
    /// repeated.
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub(crate) outputs: Vec<String>,

    /// Load the image into Docker (`docker load`; `--output type=docker`).
    #[arg(long)]
    pub(crate) load: bool,

    /// Push the image to the registry of every `-t` name (`--output type=registry`).
    #[arg(long)]
    pub(crate) push: bool,

    /// Write the image ID to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) iidfile: Option<PathBuf>,

    /// Write build result metadata (JSON) to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) metadata_file: Option<PathBuf>,

    /// Progress output: `auto` (`tty` on a terminal, else `plain`), `plain`, `tty` (a live view), `rawjson`
    /// (BuildKit's JSON objects, one per line) or `quiet` (only the image ID, on stdout).
    #[arg(long, value_name = "TYPE", default_value = "auto",
          value_parser = ["auto", "plain", "tty", "quiet", "rawjson"])]
    pub(crate) progress: String,

    /// An additional build context, `NAME=DIR`, `NAME=docker-image://REF` or `NAME=oci-layout://PATH[:TAG]`:
    /// replaces the stage, image or `--from` of that name; may be repeated.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub(crate) build_contexts: Vec<String>,

    /// A secret for `RUN --mount=type=secret`: `id=ID,src=FILE`, `id=ID,env=VAR`, or `id=ID` (the
    /// environment variable `ID`); may be repeated.
    #[arg(long = "secret", value_name = "id=ID[,src=FILE|env=VAR]")]
    pub(crate) secrets: Vec<String>,

    /// An SSH agent or keys for `RUN --mount=type=ssh`: `default`, `ID` (`$SSH_AUTH_SOCK`), `ID=SOCKET` or
    /// `ID=KEY[,KEY…]`; may be repeated.
    #[arg(long = "ssh", value_name = "default|ID[=SOCKET|KEY[,KEY…]]")]
    pub(crate) ssh: Vec<String>,

    /// Extra privileges for RUN steps: `network.host` (`--network=host`), `security.insecure`
    /// (`--security=insecure`); may be repeated or comma-separated.
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub(crate) allow: Vec<String>,

    /// Suppress the progress output and print the image ID on success.
    #[arg(short, long)]
    pub(crate) quiet: bool,

    #[command(flatten)]
    pub(crate) registry: super::pull::RegistryArgs,
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
    if !args.check {
        return build(root, args);
    }
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

fn build_error(message: &str) -> ExitCode {
    let _ = writeln!(io::stderr().lock(), "ERROR: {message}");
    ExitCode::FAILURE
}

/// `KEY=VALUE` pairs (`KEY` alone is an empty value, as docker's `--label`).
fn key_values(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (item.clone(), String::new()),
        })
        .collect()
}

/// The full build: plan, solve, export, tag, outputs.
fn build(root: Option<&Path>, args: &BuildArgs) -> ExitCode {
    if args.input.context != Path::new("-") {
        return build_with(root, args, &args.input);
    }
    // `hoist build - < Dockerfile` or `hoist build - < context.tar`, as docker reads standard input.
    if args.input.file.as_deref() == Some(Path::new("-")) {
        return build_error("-f - and a context on standard input cannot both read standard input");
    }
    let dir = std::env::temp_dir().join(format!("hoist-build-stdin-{}", std::process::id()));
    let mut bytes = Vec::new();
    let prepared = io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            hoist_engine::unpack_stdin_context(&bytes, &dir)
                .map_err(|e| super::images::error_chain(&e))
        });
    let code = match prepared {
        Ok(StdinContext {
            context,
            dockerfile,
        }) => {
            let input = DockerfileArgs {
                file: dockerfile.or_else(|| args.input.file.as_ref().map(|f| context.join(f))),
                target: args.input.target.clone(),
                build_args: args.input.build_args.clone(),
                context,
            };
            build_with(root, args, &input)
        }
        Err(error) => build_error(&format!(
            "failed to read the context from standard input: {error}"
        )),
    };
    let _ = std::fs::remove_dir_all(&dir);
    code
}

/// The build of `input` (the Dockerfile and context, maybe prepared from standard input).
fn build_with(root: Option<&Path>, args: &BuildArgs, input: &DockerfileArgs) -> ExitCode {
    let checked = match prepare(input) {
        Ok(checked) => checked,
        Err(failure) => {
            failure.report();
            return ExitCode::FAILURE;
        }
    };
    let mode = progress::Mode::choose(&args.progress, args.quiet);
    let mut outputs = match args
        .outputs
        .iter()
        .map(|spec| OutputSpec::parse(spec))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(outputs) => outputs,
        Err(error) => return build_error(&error.to_string()),
    };
    if args.load {
        // buildx: `--load` is `--output type=docker`.
        outputs.push(OutputSpec::Load { names: Vec::new() });
    }
    if args.push {
        // buildx: `--push` is `--output type=registry`, or sets `push=true` on a `type=image` output.
        let mut found = false;
        for output in &mut outputs {
            if let OutputSpec::Image { push, .. } = output {
                *push = true;
                found = true;
            }
        }
        if !found {
            outputs.push(OutputSpec::Image {
                names: Vec::new(),
                push: true,
            });
        }
    }
    let tags = match args
        .tags
        .iter()
        .map(|t| {
            t.parse::<Reference>()
                .map_err(|e| format!("invalid tag {t:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(tags) => tags,
        Err(message) => return build_error(&message),
    };
    let secrets = match hoist_engine::read_secrets(&args.secrets, &|name| std::env::var(name).ok())
    {
        Ok(secrets) => secrets,
        Err(error) => return build_error(&error.to_string()),
    };
    let allow = match hoist_engine::Entitlements::parse(&args.allow) {
        Ok(allow) => allow,
        Err(error) => return build_error(&error.to_string()),
    };
    let ssh = match hoist_engine::SshAgents::from_specs(
        &args.ssh,
        &std::env::temp_dir().join("hoist-build"),
    ) {
        Ok(ssh) => ssh,
        Err(error) => return build_error(&error.to_string()),
    };
    let store = match super::images::open_store(root) {
        Ok(store) => store,
        Err(error) => return super::images::fail(&error),
    };

    let mut request = PlanRequest::new(checked.file.clone());
    request.target = input.target.clone();
    request.build_args = checked.build_args.clone();
    // As buildx does: SOURCE_DATE_EPOCH from the environment is the build argument unless one is given.
    let source_date_epoch = match hoist_engine::source_date_epoch(
        &mut request.build_args,
        std::env::var(SOURCE_DATE_EPOCH).ok(),
    ) {
        Ok(epoch) => epoch,
        Err(error) => return build_error(&error.to_string()),
    };
    if let Some(platform) = &args.platform {
        match hoist_plan::Platform::parse(platform) {
            Ok(p) => request.target_platform = Some(p),
            Err(message) => {
                return build_error(&format!("invalid platform {platform:?}: {message}"));
            }
        }
    }
    request.labels = key_values(&args.labels);
    let mut named_dirs = BTreeMap::new();
    for spec in &args.build_contexts {
        let Some((name, value)) = spec.split_once('=') else {
            return build_error(&format!(
                "invalid build context {spec:?}: expected NAME=VALUE"
            ));
        };
        let kind = if let Some(reference) = value.strip_prefix("docker-image://") {
            hoist_plan::NamedContextKind::Image(reference.to_owned())
        } else if let Some(layout) = value.strip_prefix("oci-layout://") {
            hoist_plan::NamedContextKind::OciLayout(layout.to_owned())
        } else if value.ends_with(".git") || value.starts_with("git@") || value.contains(".git#") {
            hoist_plan::NamedContextKind::Git
        } else if value.starts_with("http://") || value.starts_with("https://") {
            hoist_plan::NamedContextKind::Url
        } else {
            named_dirs.insert(name.to_owned(), PathBuf::from(value));
            hoist_plan::NamedContextKind::Local
        };
        request.named_contexts.push(hoist_plan::NamedContext {
            name: name.to_owned(),
            kind,
        });
    }
    request.no_cache = if args.no_cache {
        NoCache::All
    } else if args.no_cache_filter.is_empty() {
        NoCache::Off
    } else {
        NoCache::Stages(args.no_cache_filter.clone())
    };
    // Made before planning: pulls of missing base images are the first vertices.
    let progress = progress::display(mode);
    let reporter: Arc<dyn Reporter + Send> = progress.clone();
    let make_client = || args.registry.client();
    let puller = RegistryPuller::new(store.root().to_owned(), &make_client, Arc::clone(&reporter));
    let resolver = StoreResolver {
        store: &store,
        puller: Some(&puller),
    };
    let plan = match hoist_plan::plan(&request, &resolver) {
        Ok(plan) => plan,
        Err(error) => {
            progress.finish();
            let message = error.to_string();
            match error.span {
                Some(span) => {
                    let rendered = SourceError {
                        file: &checked.source.name,
                        source: &checked.source.text,
                        span,
                        message,
                        label: "here".to_owned(),
                        help: None,
                    }
                    .render(use_color(&io::stderr()));
                    let _ = io::stderr().lock().write_all(rendered.as_bytes());
                }
                None => {
                    let _ = writeln!(io::stderr().lock(), "ERROR: {message}");
                }
            }
            return ExitCode::FAILURE;
        }
    };
    for warning in &plan.warnings {
        progress.message(&warning.message);
    }
    progress.graph(
        plan.ops
            .iter()
            .enumerate()
            .map(|(op, planned)| (op, planned.inputs.iter().map(|input| input.0).collect()))
            .collect(),
    );
    // The build checks run with every build, as with `docker build`: reported at the end, or fatal with
    // `# check=error=true`.
    let findings = checked.lint(root, input.target.as_deref(), RuleSet::BuildKit);
    if checked.config.error && !findings.is_empty() {
        progress.finish();
        let _ = io::stderr()
            .lock()
            .write_all(check_summary(&findings).as_bytes());
        let mut rules: Vec<&str> = Vec::new();
        for finding in &findings {
            if !rules.contains(&finding.rule.name()) {
                rules.push(finding.rule.name());
            }
        }
        return build_error(&format!(
            "failed to solve: lint violation found for rules: {}",
            rules.join(", ")
        ));
    }

    let ignore_patterns = match find_ignore_file(&input.context, checked.source.path.as_deref()) {
        Ok(file) => file.map(|f| f.patterns).unwrap_or_default(),
        Err(error) => {
            progress.finish();
            return super::images::fail(&error);
        }
    };
    // BuildKit's first two vertices: the Dockerfile and the ignore file as the builder received them.
    let definition = match &checked.source.path {
        Some(path) => path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        None => "<stdin>".to_owned(),
    };
    let definition_vertex = Vertex::internal(
        LOAD_DEFINITION_SLOT,
        format!("[internal] load build definition from {definition}"),
    );
    internal_step(
        &*progress,
        &definition_vertex,
        format!("transferring dockerfile: {}B", checked.source.text.len()),
    );
    internal_step(
        &*progress,
        &Vertex::internal(LOAD_IGNORE_SLOT, "[internal] load .dockerignore"),
        format!(
            "transferring context: {}B",
            ignore_patterns.iter().map(|p| p.len() + 1).sum::<usize>()
        ),
    );
    let solver = Solver {
        store: &store,
        executor: &SandboxExecutor,
        reporter: &*progress,
        // Not capped at the core count: BuildKit runs every ready vertex at once (no max-parallelism by default),
        // and independent stages mostly wait on their own processes, which schedule themselves on the cores.
        parallelism: BUILD_PARALLELISM
            .max(std::thread::available_parallelism().map_or(1, usize::from)),
        scratch: std::env::temp_dir().join("hoist-build"),
    };
    let solve = SolveRequest {
        plan: &plan,
        dockerfile: &checked.source.text,
        context_dir: &input.context,
        ignore_patterns: &ignore_patterns,
        secrets: &secrets,
        named_contexts: &named_dirs,
        ssh: &ssh,
        allow,
    };
    let solution = match solver.solve(&solve) {
        Ok(solution) => solution,
        Err(error) => {
            progress.finish();
            let cause = match &error {
                EngineError::Step { op, vertex, source } => {
                    let cause = super::images::error_chain(source.as_ref());
                    // BuildKit's failure summary: the step, then where it is in the Dockerfile.
                    let mut text = format!("------\n > {vertex}:\n");
                    for line in progress.tail(*op) {
                        let _ = writeln!(text, "{line}");
                    }
                    text.push_str("------\n");
                    if let Some(span) = plan.ops.get(*op).and_then(|o| o.span) {
                        text.push_str(&source_excerpt(
                            &checked.source.name,
                            &checked.source.text,
                            span.start_line,
                            span.end_line,
                        ));
                    }
                    if mode != progress::Mode::Quiet {
                        let _ = io::stderr().lock().write_all(text.as_bytes());
                    }
                    cause
                }
                other => super::images::error_chain(other),
            };
            return build_error(&format!("failed to solve: {cause}"));
        }
    };
    let request = ExportRequest {
        tags: &tags,
        outputs: &outputs,
        source_date_epoch,
        registry: &make_client,
        scratch: &solver.scratch,
    };
    let exported = hoist_engine::export(
        &store,
        &plan,
        &solution,
        &request,
        &reporter,
        &mut io::stdout(),
    );
    progress.warnings(
        &findings
            .iter()
            .map(|finding| progress::Warning {
                vertex: definition_vertex.clone(),
                short: format!(
                    "{}: {} (line {})",
                    finding.rule.name(),
                    finding.message,
                    finding.span.start_line
                ),
                url: finding.url.to_string(),
            })
            .collect::<Vec<_>>(),
    );
    progress.finish();
    let exported = match exported {
        Ok(exported) => exported,
        Err(error) => return build_error(&super::images::error_chain(&error)),
    };
    if let Some(path) = &args.iidfile
        && let Err(error) = std::fs::write(path, exported.image.id.to_string())
    {
        return build_error(&format!("failed to write {}: {error}", path.display()));
    }
    if let Some(path) = &args.metadata_file {
        let text = serde_json::to_string_pretty(&exported.metadata())
            .expect("a JSON value always serializes");
        if let Err(error) = std::fs::write(path, text) {
            return build_error(&format!("failed to write {}: {error}", path.display()));
        }
    }
    if !findings.is_empty() && mode != progress::Mode::Quiet && mode != progress::Mode::RawJson {
        let _ = io::stderr()
            .lock()
            .write_all(check_summary(&findings).as_bytes());
    }
    if mode == progress::Mode::Quiet {
        let _ = writeln!(io::stdout().lock(), "{}", exported.image.id);
    }
    ExitCode::SUCCESS
}

/// A vertex of the CLI's own (loading the Dockerfile, the ignore file): started, one finished status, done.
fn internal_step(reporter: &dyn Reporter, vertex: &Vertex, status: String) {
    reporter.on_vertex_start(vertex);
    reporter.on_vertex_status(
        vertex,
        &VertexStatus {
            id: status,
            current: 0,
            total: 0,
            elapsed: Duration::ZERO,
            done: true,
        },
    );
    reporter.on_vertex_done(vertex, Duration::ZERO);
}

/// buildx's end-of-build summary of the checks: ` N warnings found …:` and ` - Rule: message (line N)`.
fn check_summary(findings: &[Finding]) -> String {
    let count = match findings.len() {
        1 => "1 warning".to_owned(),
        n => format!("{n} warnings"),
    };
    let mut out = format!(" {count} found (use docker --debug to expand):\n");
    for finding in findings {
        let _ = writeln!(
            out,
            " - {}: {} (line {})",
            finding.rule.name(),
            finding.message,
            finding.span.start_line
        );
    }
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
