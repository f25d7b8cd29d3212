//! Checks BuildKit runs while it converts each stage's instructions, with the environment
//! each instruction sees: `UndefinedVar`, `LegacyKeyValueFormat`, `SecretsUsedInArgOrEnv`,
//! `WorkdirRelativePath`, `JSONArgsRecommended`, `MultipleInstructionsDisallowed`,
//! `CopyIgnoredFile`, `ExposeProtoCasing` and `ExposeInvalidFormat`.
//!
//! Without a target every stage is checked; with one, only the stages it needs, as
//! BuildKit only converts those.

use std::collections::BTreeMap;

use hoist_context::PatternMatcher;
use hoist_dockerfile::{Args, Keyword, Node, Separator, Span};
use hoist_shell::Lexer;

use crate::checks::from::{Globals, add_or_replace, entry_keys};
use crate::checks::{mount_options, stage_references};
use crate::model::{Model, arg_decls, copy_args, flag_value, words};
use crate::report::Report;
use crate::{BaseImageEnv, Finding, Rule};

/// BuildKit's default `PATH`, which every stage has unless its base image sets one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Build args BuildKit never puts in the environment (so they are never "undefined").
const NON_ENV_ARGS: [&str; 2] = ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// What the checks need to know about a stage while walking it.
#[derive(Debug, Clone, Default)]
struct StageState {
    /// The environment (`NAME=value`): base image `ENV`, `ENV`, and `ARG`s with a value.
    env: Vec<String>,
    /// Whether `env` is the whole environment. False for a stage on an external image whose
    /// config is unknown: any name may come from its `ENV`.
    env_known: bool,
    /// Names declared with `ARG` in this stage or the stages it is built on.
    declared_args: Vec<String>,
    /// A `WORKDIR` was already set (in this stage or a stage it is built on).
    workdir_set: bool,
    /// A `SHELL` was set, so shell-form `CMD`/`ENTRYPOINT` run in a chosen shell.
    shell_set: bool,
}

/// Inputs shared by every stage.
pub(crate) struct Context<'a> {
    pub(crate) lexer: Lexer,
    pub(crate) build_args: &'a BTreeMap<String, String>,
    pub(crate) ignore: Option<&'a PatternMatcher>,
    pub(crate) base_image_env: Option<&'a dyn BaseImageEnv>,
    pub(crate) target_platform: String,
}

/// Which stages BuildKit converts: all of them without a target, else the target and what
/// it depends on (its base stage, `COPY --from`, `RUN --mount from=`).
pub(crate) fn stages_to_check(
    model: &Model<'_>,
    globals: &Globals,
    target: Option<&str>,
) -> Vec<bool> {
    let count = model.stages.len();
    let Some(target) = target else {
        return vec![true; count];
    };
    let mut wanted = vec![false; count];
    let Some(start) = model.stage_by_reference(target) else {
        return wanted;
    };
    let mut todo = vec![start];
    while let Some(index) = todo.pop() {
        if std::mem::replace(&mut wanted[index], true) {
            continue;
        }
        if let Some(base) = globals.base_stages[index] {
            todo.push(base);
        }
        todo.extend(stage_dependencies(model, index));
    }
    wanted
}

/// The stages one stage reads from with `COPY --from` or `RUN --mount from=`.
pub(crate) fn stage_dependencies(model: &Model<'_>, index: usize) -> Vec<usize> {
    model.stages[index]
        .commands
        .iter()
        .flat_map(|node| stage_references(node))
        .filter_map(|reference| model.stage_by_reference(reference))
        .collect()
}

pub(crate) fn check(
    model: &Model<'_>,
    globals: &Globals,
    wanted: &[bool],
    context: &Context<'_>,
    report: &mut Report<'_>,
) {
    let mut finished: Vec<Option<StageState>> = vec![None; model.stages.len()];
    for stage in &model.stages {
        if !wanted[stage.index] {
            continue;
        }
        let platform = globals.platforms[stage.index]
            .clone()
            .unwrap_or_else(|| context.target_platform.clone());
        let mut state = match globals.base_stages[stage.index] {
            Some(base) => finished[base].clone().unwrap_or_default(),
            None => base_state(globals.bases[stage.index].as_deref(), &platform, context),
        };
        let mut walker = Walker {
            context,
            globals,
            report: &mut *report,
            state: &mut state,
            last_cmd: None,
            last_entrypoint: None,
            last_healthcheck: None,
        };
        for node in &stage.commands {
            walker.dispatch(node);
        }
        finished[stage.index] = Some(state);
    }
}

/// The state a stage starts from when its base is not another stage.
fn base_state(base: Option<&str>, platform: &str, context: &Context<'_>) -> StageState {
    let (mut env, env_known) = match base {
        Some("scratch") => (Vec::new(), true),
        Some(image) => match context
            .base_image_env
            .and_then(|images| images.env(image, platform))
        {
            Some(env) => (env, true),
            None => (Vec::new(), false),
        },
        None => (Vec::new(), false),
    };
    if !entry_keys(&env).any(|key| key == "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    StageState {
        env,
        env_known,
        ..StageState::default()
    }
}

struct Walker<'w, 'c, 'r> {
    context: &'w Context<'c>,
    globals: &'w Globals,
    report: &'w mut Report<'r>,
    state: &'w mut StageState,
    last_cmd: Option<Span>,
    last_entrypoint: Option<Span>,
    last_healthcheck: Option<Span>,
}

impl Walker<'_, '_, '_> {
    fn dispatch(&mut self, node: &Node) {
        match node.kind {
            Some(Keyword::Env) => self.env(node),
            Some(Keyword::Label) => self.label(node),
            Some(Keyword::Workdir) => self.workdir(node),
            Some(Keyword::Copy | Keyword::Add) => self.copy(node),
            Some(Keyword::User | Keyword::Stopsignal) => {
                if let Args::Text(text) = &node.args {
                    self.expand(&text.value, node.span);
                }
            }
            Some(Keyword::Volume) => {
                for word in words(node) {
                    self.expand(&word.value, node.span);
                }
            }
            Some(Keyword::Run) => {
                for (_, value) in mount_options(node) {
                    self.expand(value, node.span);
                }
            }
            Some(Keyword::Arg) => self.arg(node),
            Some(Keyword::Cmd) => {
                let previous = self.last_cmd.replace(node.span);
                self.used_once(node, previous);
                self.json_args(node);
            }
            Some(Keyword::Entrypoint) => {
                let previous = self.last_entrypoint.replace(node.span);
                self.used_once(node, previous);
                self.json_args(node);
            }
            Some(Keyword::Healthcheck) => {
                let previous = self.last_healthcheck.replace(node.span);
                self.used_once(node, previous);
            }
            Some(Keyword::Shell) => self.state.shell_set = true,
            Some(Keyword::Expose) => self.expose(node),
            _ => {}
        }
    }

    /// Expands `word` in the current environment and reports the variables it used that
    /// nothing defines; returns the expanded word (`None` when it cannot be expanded, which
    /// the build reports).
    fn expand(&mut self, word: &str, span: Span) -> Option<String> {
        let lexer = self.context.lexer;
        self.expand_with(lexer, word, span)
    }

    fn expand_with(&mut self, lexer: Lexer, word: &str, span: Span) -> Option<String> {
        let processed = lexer.process_word(word, &self.state.env).ok()?;
        self.undefined(&processed.unmatched, span);
        Some(processed.value)
    }

    fn undefined(&mut self, unmatched: &[&str], span: Span) {
        if !self.state.env_known || !self.report.enabled(Rule::UndefinedVar) {
            return;
        }
        for name in unmatched {
            if self.state.declared_args.iter().any(|arg| arg == name) || NON_ENV_ARGS.contains(name)
            {
                continue;
            }
            let mut keys: Vec<&str> = entry_keys(&self.state.env).collect();
            keys.sort_unstable();
            let suggestion = hoist_dockerfile::closest_match(name, keys);
            let mut message = format!("Usage of undefined variable '${name}'");
            let hint = match suggestion {
                Some(suggestion) => {
                    message.push_str(&format!(" (did you mean ${suggestion}?)"));
                    format!("use ${suggestion}, or define {name} with ARG or ENV before this line")
                }
                None => format!("define {name} with ARG or ENV before this line"),
            };
            self.report
                .push(Finding::new(Rule::UndefinedVar, span, message).with_hint(hint));
        }
    }

    fn env(&mut self, node: &Node) {
        let Args::KeyValues(pairs) = &node.args else {
            return;
        };
        // Every pair is expanded against the environment before the instruction: in
        // `ENV A=1 B=$A`, `$A` is the old value.
        let mut expanded = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let key = self.expand(&pair.key.value, node.span);
            let value = self.expand(&pair.value.value, node.span);
            expanded.push((pair.separator, key, value));
        }
        for (separator, key, value) in expanded {
            if separator == Separator::Whitespace {
                self.legacy_format(node);
            }
            let (Some(key), Some(value)) = (key, value) else {
                continue;
            };
            self.secret("ENV", &key, node.span);
            add_or_replace(&mut self.state.env, &key, &value);
        }
    }

    fn label(&mut self, node: &Node) {
        let Args::KeyValues(pairs) = &node.args else {
            return;
        };
        for pair in pairs {
            self.expand(&pair.key.value, node.span);
            self.expand(&pair.value.value, node.span);
        }
        for pair in pairs {
            if pair.separator == Separator::Whitespace {
                self.legacy_format(node);
            }
        }
    }

    fn legacy_format(&mut self, node: &Node) {
        let name = &node.keyword;
        self.report.push(
            Finding::new(
                Rule::LegacyKeyValueFormat,
                node.span,
                format!("\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"),
            )
            .with_hint(format!("write {name} KEY=\"value\"")),
        );
    }

    fn secret(&mut self, instruction: &str, key: &str, span: Span) {
        if !is_secret_name(key) {
            return;
        }
        self.report.push(
            Finding::new(
                Rule::SecretsUsedInArgOrEnv,
                span,
                format!(
                    "Do not use ARG or ENV instructions for sensitive data ({instruction} {})",
                    hoist_dockerfile::go_quote(key)
                ),
            )
            .with_hint("pass secrets with RUN --mount=type=secret instead; ARG and ENV values stay in the image"),
        );
    }

    fn workdir(&mut self, node: &Node) {
        let Args::Text(text) = &node.args else {
            return;
        };
        let Some(path) = self.expand(&text.value, node.span) else {
            return;
        };
        if !self.state.workdir_set && !path.starts_with('/') {
            self.report.push(
                Finding::new(
                    Rule::WorkdirRelativePath,
                    node.span,
                    format!(
                        "Relative workdir {} can have unexpected results if the base image changes",
                        hoist_dockerfile::go_quote(&path)
                    ),
                )
                .with_hint(format!("use an absolute path, e.g. WORKDIR /{path}")),
            );
        }
        self.state.workdir_set = true;
    }

    fn copy(&mut self, node: &Node) {
        let is_add = node.kind == Some(Keyword::Add);
        if let Some(chown) = flag_value(node, "chown") {
            self.expand(chown, node.span);
        }
        if is_add && let Some(checksum) = flag_value(node, "checksum") {
            self.expand(checksum, node.span);
        }
        let args = copy_args(node);
        let mut sources = Vec::with_capacity(args.sources.len());
        for source in &args.sources {
            sources.push(self.expand(&source.value, node.span));
        }
        if let Some(dest) = args.dest {
            self.expand(&dest.value, node.span);
        }
        for heredoc in node.heredocs.iter().filter(|h| h.expand) {
            let raw = Lexer::new('\\').with_skip_process_quotes(true);
            self.expand_with(raw, &heredoc.content, node.span);
        }

        // CopyIgnoredFile: only for the build context (not `COPY --from`), and, as in
        // BuildKit, not at all when the ignore file has `!` exceptions: a directory may be
        // excluded while files inside it are brought back.
        let from_context = is_add || flag_value(node, "from").is_none();
        let Some(ignore) = self.context.ignore.filter(|_| from_context) else {
            return;
        };
        if ignore.has_exclusions() || !self.report.enabled(Rule::CopyIgnoredFile) {
            return;
        }
        let verb = if is_add { "Add" } else { "Copy" };
        for source in sources.into_iter().flatten() {
            if is_add && is_remote_source(&source) {
                continue;
            }
            let cleaned = hoist_context::clean_path(&source);
            let ignored = if cleaned == "." || cleaned == "/" {
                // The context root is ignored only by a pattern that excludes everything
                // at the top (`*`, `**`, `**/*`), not by one for dotfiles (`.*`).
                ignore
                    .patterns()
                    .iter()
                    .any(|p| !p.is_exclusion() && matches!(p.as_str(), "*" | "**" | "**/*"))
            } else {
                // Like BuildKit, an absolute source is matched as written, so `/x` never
                // matches the pattern `x`.
                ignore.matches_or_parent_matches(&cleaned).unwrap_or(false)
            };
            if ignored {
                self.report.push(
                    Finding::new(
                        Rule::CopyIgnoredFile,
                        node.span,
                        format!(
                            "Attempting to {verb} file {} that is excluded by .dockerignore",
                            hoist_dockerfile::go_quote(&cleaned)
                        ),
                    )
                    .with_hint("remove the path from the ignore file, or stop copying it"),
                );
            }
        }
    }

    fn arg(&mut self, node: &Node) {
        for decl in arg_decls(node) {
            self.secret("ARG", &decl.key, node.span);
            let value = if let Some(value) = self.context.build_args.get(&decl.key) {
                Some(value.clone())
            } else if let Some(default) = &decl.value {
                self.expand(default, node.span)
            } else {
                self.globals
                    .args
                    .iter()
                    .rev()
                    .find_map(|entry| entry.strip_prefix(&format!("{}=", decl.key)))
                    .map(str::to_owned)
            };
            if let Some(value) = value
                && !NON_ENV_ARGS.contains(&decl.key.as_str())
            {
                add_or_replace(&mut self.state.env, &decl.key, &value);
            }
            self.state.declared_args.push(decl.key);
        }
    }

    /// `MultipleInstructionsDisallowed`, pointing at the earlier instruction: it is the one
    /// that has no effect.
    fn used_once(&mut self, node: &Node, previous: Option<Span>) {
        let Some(previous) = previous else {
            return;
        };
        let name = &node.keyword;
        self.report.push(
            Finding::new(
                Rule::MultipleInstructionsDisallowed,
                previous,
                format!(
                    "Multiple {name} instructions should not be used in the same stage because only the last one will be used"
                ),
            )
            .with_hint(format!("remove this {name}: only the last one in a stage takes effect")),
        );
    }

    fn json_args(&mut self, node: &Node) {
        if node.is_json_form() || self.state.shell_set {
            return;
        }
        let name = &node.keyword;
        let hint = match &node.args {
            Args::Text(text) => format!("write {name} [{}]", json_suggestion(&text.value)),
            _ => format!("write {name} [\"executable\", \"arg\"]"),
        };
        self.report.push(
            Finding::new(
                Rule::JsonArgsRecommended,
                node.span,
                format!(
                    "JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"
                ),
            )
            .with_hint(hint),
        );
    }

    fn expose(&mut self, node: &Node) {
        let mut ports = Vec::new();
        for word in words(node) {
            if let Ok(expanded) = self
                .context
                .lexer
                .process_words(&word.value, &self.state.env)
            {
                ports.extend(expanded);
            }
        }
        for port in ports {
            let (ip, host_port, container_port) = split_port(&port);
            let proto = container_port
                .split_once('/')
                .map_or("", |(_, proto)| proto);
            if proto != proto.to_lowercase() {
                self.report.push(
                    Finding::new(
                        Rule::ExposeProtoCasing,
                        node.span,
                        format!(
                            "Defined protocol '{port}' in EXPOSE instruction should be lowercase"
                        ),
                    )
                    .with_hint(format!("write {}", port.to_lowercase())),
                );
            }
            if !ip.is_empty() || !host_port.is_empty() {
                self.report.push(
                    Finding::new(
                        Rule::ExposeInvalidFormat,
                        node.span,
                        format!(
                            "EXPOSE instruction should not define an IP address or host-port mapping, found '{port}'"
                        ),
                    )
                    .with_hint(format!(
                        "expose only the container port (EXPOSE {container_port}) and map it with `docker run -p`"
                    )),
                );
            }
        }
    }
}

/// The exec form of a shell-form command for the hint: its words, quoted; a command that
/// needs the shell (variables, `&&`, pipes, globs, quotes) keeps it, with `exec` so the
/// program still receives the signals.
fn json_suggestion(command: &str) -> String {
    let quote = |word: &str| format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""));
    let needs_shell = command.contains(|c: char| "$&|;<>()`*?'\"\\".contains(c));
    if needs_shell {
        format!(
            "{}, {}, {}",
            quote("/bin/sh"),
            quote("-c"),
            quote(&format!("exec {}", command.trim()))
        )
    } else {
        command
            .split_whitespace()
            .map(quote)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// BuildKit's `splitParts`: `[ip:]host:container` into its three parts.
fn split_port(raw: &str) -> (String, String, String) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.as_slice() {
        [container] => (String::new(), String::new(), (*container).to_owned()),
        [host, container] => (String::new(), (*host).to_owned(), (*container).to_owned()),
        [ip, host, container] => (
            (*ip).to_owned(),
            (*host).to_owned(),
            (*container).to_owned(),
        ),
        _ => {
            let n = parts.len();
            (
                parts[..n - 2].join(":"),
                parts[n - 2].to_owned(),
                parts[n - 1].to_owned(),
            )
        }
    }
}

/// BuildKit's secret-name test: a `_`-separated part of the name is one of the secret
/// tokens (any case) and none is one of the harmless ones.
pub(crate) fn is_secret_name(key: &str) -> bool {
    const SECRET: [&str; 10] = [
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOWED: [&str; 3] = ["public", "file", "version"];
    let has = |tokens: &[&str]| {
        key.split('_')
            .any(|part| tokens.iter().any(|token| part.eq_ignore_ascii_case(token)))
    };
    has(&SECRET) && !has(&ALLOWED)
}

/// `ADD` sources fetched over the network rather than read from the context.
fn is_remote_source(source: &str) -> bool {
    source.starts_with("http://")
        || source.starts_with("https://")
        || source.starts_with("git@")
        || source.starts_with("git://")
        || source.ends_with(".git")
        || source.contains(".git#")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_follow_buildkit() {
        for name in [
            "API_KEY",
            "github_token",
            "DB_PASSWORD",
            "secret",
            "AUTH",
            "aws_secret_key",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "PUBLIC_KEY",
            "GPG_KEY_FILE",
            "TOKEN_VERSION",
            "KEYS",
            "MONKEY",
            "PATH",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn exec_form_hints_keep_the_shell_only_when_needed() {
        assert_eq!(json_suggestion("node server.js"), r#""node", "server.js""#);
        assert_eq!(
            json_suggestion("echo $HOME && run"),
            r#""/bin/sh", "-c", "exec echo $HOME && run""#
        );
    }

    #[test]
    fn splits_ports_and_cleans_paths() {
        assert_eq!(
            split_port("80/tcp"),
            (String::new(), String::new(), "80/tcp".into())
        );
        assert_eq!(
            split_port("8080:80"),
            (String::new(), "8080".into(), "80".into())
        );
        assert_eq!(
            split_port("[::1]:80:80"),
            ("[::1]".into(), "80".into(), "80".into())
        );
        assert_eq!(hoist_context::clean_path("./a/../b/"), "b");
        assert_eq!(hoist_context::clean_path("."), ".");
        assert_eq!(hoist_context::clean_path("./"), ".");
        assert_eq!(hoist_context::clean_path("/"), "/");
        assert_eq!(hoist_context::clean_path("/x/./y"), "/x/y");
    }
}
