//! `hoist build [-f Dockerfile|-] [-t NAME:TAG]… [--target STAGE] [--build-arg K[=V]]… [--platform P]
//! [--no-cache] [--no-cache-filter STAGE] [--label K=V]… [-o SPEC]… [--load] [--iidfile F] [--metadata-file F]
//! [--secret id=ID[,src=FILE|env=VAR]]… [--build-context NAME=DIR|docker-image://REF|oci-layout://PATH[:TAG]]…
//! [--progress auto|plain|tty|rawjson|quiet] [-q] [--push] [--check] CONTEXT|-`: Docker's flags and meanings (`-`
//! reads a Dockerfile or a context tar from standard input).
//!
//! The build itself is `hoist_engine::BuildRequest` (the flags as plain data): `prepare` reads and checks the
//! Dockerfile and parses the options, `PreparedBuild::run` plans (base images from the store, pulled through
//! `hoist-registry` when missing), solves (cache, RUN in `hoist-sandbox`), exports to the store and every
//! `--output`, and writes `--iidfile`/`--metadata-file`. This module turns the flags into that request, draws the
//! progress on stderr in the `--progress` form asked for (`crate::progress`: BuildKit's plain `#3 [2/4] RUN make`
//! lines, its live tty view, or its rawjson objects), and renders the outcome: the checks' summary, the image ID with
//! `-q`, or the failure (miette reports for Dockerfile errors, BuildKit's failed-step summary).
//! `SOURCE_DATE_EPOCH` (environment or `--build-arg`) makes the image reproducible, as with BuildKit.
//!
//! `--check` runs the build checks the way `docker build --check` does, without building: `Check complete, N
//! warnings have been found!`, then each finding as `WARNING: <rule> - <url>`, its message and the Dockerfile
//! lines around it with `>>>` marking the instruction; exit 1 when any check fired. Only BuildKit's rules run
//! here; `hoist lint` adds hoist's own. [`DockerfileArgs`] holds the inputs every Dockerfile command shares
//! (`hoist lint` uses it too).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use hoist_engine::{
    BuildFailure, BuildReporter, BuildRequest, CheckedDockerfile, DockerfileInput,
    DockerfileSource, EngineError, LoadError, Reporter, Vertex, VertexStatus, existing_store,
};
use hoist_lint::{Finding, RuleSet};

use crate::diagnostics::{SourceError, use_color};
use crate::progress;

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

impl DockerfileArgs {
    /// The flags as the engine's plain data.
    pub(crate) fn to_input(&self) -> DockerfileInput {
        DockerfileInput {
            file: self.file.clone(),
            target: self.target.clone(),
            build_args: self.build_args.clone(),
            context: self.context.clone(),
        }
    }
}

impl BuildArgs {
    /// The flags as the engine's plain data, with this process's environment.
    fn to_request(&self) -> BuildRequest {
        let mut request = BuildRequest::new(self.input.to_input());
        request.tags.clone_from(&self.tags);
        request.platform.clone_from(&self.platform);
        request.no_cache = self.no_cache;
        request.no_cache_filter.clone_from(&self.no_cache_filter);
        request.labels.clone_from(&self.labels);
        request.outputs.clone_from(&self.outputs);
        request.load = self.load;
        request.push = self.push;
        request.iidfile.clone_from(&self.iidfile);
        request.metadata_file.clone_from(&self.metadata_file);
        request.build_contexts.clone_from(&self.build_contexts);
        request.secrets.clone_from(&self.secrets);
        request.ssh.clone_from(&self.ssh);
        request.allow.clone_from(&self.allow);
        request.env = process_env();
        request
    }
}

/// The environment variables whose names and values are UTF-8 (the others cannot be build arguments or secrets).
fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}

/// Why a Dockerfile could not be checked; [`Failure::report`] prints it.
pub(crate) struct Failure(LoadError);

impl Failure {
    /// Prints the failure to stderr.
    pub(crate) fn report(&self) {
        report_load_error(&self.0);
    }
}

/// Reads, parses and validates the Dockerfile, loads the ignore file and resolves the check configuration:
/// everything the checks need.
pub(crate) fn prepare(args: &DockerfileArgs) -> Result<CheckedDockerfile, Failure> {
    args.to_input().load(&process_env()).map_err(Failure)
}

/// Prints a Dockerfile that could not be loaded: a read error as `error: …`, a parse or instruction error as a
/// located report over the source.
fn report_load_error(error: &LoadError) {
    let color = use_color(&io::stderr());
    let rendered = match error {
        LoadError::Input(error) => format!(
            "error: {}\n",
            super::images::error_chain(error as &dyn std::error::Error)
        ),
        LoadError::Parse { dockerfile, error } => {
            SourceError::from_parse(&dockerfile.name, &dockerfile.text, error).render(color)
        }
        LoadError::Instruction { dockerfile, error } => {
            SourceError::from_instruction(&dockerfile.name, &dockerfile.text, error).render(color)
        }
        LoadError::TargetNotFound { .. } => format!("error: {error}\n"),
        LoadError::CheckConfig {
            dockerfile,
            directive: Some(span),
            error,
        } => SourceError {
            file: &dockerfile.name,
            source: &dockerfile.text,
            span: *span,
            message: format!("failed to parse check options: {error}"),
            label: "check options".to_owned(),
            help: Some("write e.g. `# check=skip=JSONArgsRecommended;error=true`".to_owned()),
        }
        .render(color),
        LoadError::CheckConfig {
            directive: None, ..
        } => format!("error: {error}\n"),
    };
    let _ = io::stderr().lock().write_all(rendered.as_bytes());
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
    let findings = checked.lint(existing_store(root).as_ref(), RuleSet::BuildKit);
    let text = check_report(&checked.source, &findings);
    let _ = io::stdout().lock().write_all(text.as_bytes());
    if findings.is_empty() {
        return ExitCode::SUCCESS;
    }
    let rules = checked.failing_rules(&findings);
    if !rules.is_empty() {
        let _ = writeln!(io::stdout().lock());
        let _ = writeln!(
            io::stderr().lock(),
            "ERROR: lint violation found for rules: {}",
            rules.join(", ")
        );
    }
    ExitCode::FAILURE
}

/// The full build: the engine plans, solves and exports; this draws its progress and reports the outcome.
fn build(root: Option<&Path>, args: &BuildArgs) -> ExitCode {
    let mode = progress::Mode::choose(&args.progress, args.quiet);
    let prepared = match args.to_request().prepare() {
        Ok(prepared) => prepared,
        Err(failure) => return report_failure(&failure, None, None, mode),
    };
    let store = match super::images::open_store(root) {
        Ok(store) => store,
        Err(error) => return super::images::fail(&error),
    };
    // Made before planning: pulls of missing base images are the first vertices.
    let display = progress::display(mode);
    let reporter = Arc::new(BuildProgress(Arc::clone(&display)));
    let make_client = || args.registry.client();
    let outcome = prepared.run(&store, &make_client, reporter, &mut io::stdout());
    display.finish();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(failure) => {
            return report_failure(
                &failure,
                Some(&prepared.dockerfile().source),
                Some(&*display),
                mode,
            );
        }
    };
    if !outcome.findings.is_empty()
        && mode != progress::Mode::Quiet
        && mode != progress::Mode::RawJson
    {
        let _ = io::stderr()
            .lock()
            .write_all(check_summary(&outcome.findings).as_bytes());
    }
    if mode == progress::Mode::Quiet {
        let _ = writeln!(io::stdout().lock(), "{}", outcome.exported.image.id);
    }
    ExitCode::SUCCESS
}

/// Prints a failed build the way docker does: `ERROR: …` for most, a located report for a planning error at an
/// instruction, BuildKit's summary of a failed step (its last log lines from `display`, the Dockerfile lines around
/// it) before `ERROR: failed to solve: …`.
fn report_failure(
    failure: &BuildFailure,
    dockerfile: Option<&DockerfileSource>,
    display: Option<&dyn progress::Display>,
    mode: progress::Mode,
) -> ExitCode {
    match failure {
        BuildFailure::Load(error) => {
            report_load_error(error);
            ExitCode::FAILURE
        }
        BuildFailure::Plan { error, .. } => {
            let message = error.to_string();
            match (error.span, dockerfile) {
                (Some(span), Some(dockerfile)) => {
                    let rendered = SourceError {
                        file: &dockerfile.name,
                        source: &dockerfile.text,
                        span,
                        message,
                        label: "here".to_owned(),
                        help: None,
                    }
                    .render(use_color(&io::stderr()));
                    let _ = io::stderr().lock().write_all(rendered.as_bytes());
                    ExitCode::FAILURE
                }
                _ => build_error(&message),
            }
        }
        BuildFailure::Checks { findings, .. } => {
            let _ = io::stderr()
                .lock()
                .write_all(check_summary(findings).as_bytes());
            build_error(&format!("failed to solve: {failure}"))
        }
        BuildFailure::IgnoreFile(error) => super::images::fail(error),
        BuildFailure::Solve { span, error } => {
            let cause = match &**error {
                EngineError::Step { op, vertex, source } => {
                    let cause = super::images::error_chain(source.as_ref());
                    // BuildKit's failure summary: the step, then where it is in the Dockerfile.
                    let mut text = format!("------\n > {vertex}:\n");
                    for line in display.map(|d| d.tail(*op)).unwrap_or_default() {
                        let _ = writeln!(text, "{line}");
                    }
                    text.push_str("------\n");
                    if let (Some(span), Some(dockerfile)) = (span, dockerfile) {
                        text.push_str(&source_excerpt(
                            &dockerfile.name,
                            &dockerfile.text,
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
            build_error(&format!("failed to solve: {cause}"))
        }
        BuildFailure::Export(error) => build_error(&super::images::error_chain(error)),
        BuildFailure::StdinTwice
        | BuildFailure::StdinContext { .. }
        | BuildFailure::InvalidOption(_)
        | BuildFailure::Tag { .. }
        | BuildFailure::Platform { .. }
        | BuildFailure::BuildContext { .. }
        | BuildFailure::WriteFile { .. } => build_error(&failure.to_string()),
    }
}

fn build_error(message: &str) -> ExitCode {
    let _ = writeln!(io::stderr().lock(), "ERROR: {message}");
    ExitCode::FAILURE
}

/// The engine's build events, drawn by a progress display.
struct BuildProgress(Arc<dyn progress::Display>);

impl Reporter for BuildProgress {
    fn on_vertex_start(&self, vertex: &Vertex) {
        self.0.on_vertex_start(vertex);
    }
    fn on_vertex_cached(&self, vertex: &Vertex) {
        self.0.on_vertex_cached(vertex);
    }
    fn on_vertex_done(&self, vertex: &Vertex, elapsed: Duration) {
        self.0.on_vertex_done(vertex, elapsed);
    }
    fn on_vertex_error(&self, vertex: &Vertex, message: &str) {
        self.0.on_vertex_error(vertex, message);
    }
    fn on_log(&self, vertex: &Vertex, data: &[u8]) {
        self.0.on_log(vertex, data);
    }
    fn on_vertex_status(&self, vertex: &Vertex, status: &VertexStatus) {
        self.0.on_vertex_status(vertex, status);
    }
}

impl BuildReporter for BuildProgress {
    fn on_plan_warning(&self, message: &str) {
        self.0.message(message);
    }

    fn on_graph(&self, inputs: HashMap<usize, Vec<usize>>) {
        self.0.graph(inputs);
    }

    fn on_check_findings(&self, vertex: &Vertex, findings: &[Finding]) {
        self.0.warnings(
            &findings
                .iter()
                .map(|finding| progress::Warning {
                    vertex: vertex.clone(),
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
    }
}

/// docker's `--check` report: a count line, then each finding with BuildKit's source
/// excerpt.
pub(crate) fn check_report(source: &DockerfileSource, findings: &[Finding]) -> String {
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
