//! `CopyBeforeDependencyInstall` (hoist's own): a `COPY .` of the whole build context before
//! a dependency install in the same stage. Any source edit changes that layer, so the
//! install below it runs again from scratch; copying the manifests first keeps the install
//! layer cached until the dependencies change.
//!
//! The install is not reported when the stage already copied that ecosystem's manifests
//! before the whole context (the usual `COPY go.mod go.sum ./` + `RUN go mod download`
//! layering, after which `RUN go build` is fine), when it already installed them before,
//! or when the `RUN` keeps its downloads in a cache mount (`--mount=type=cache`).

use hoist_dockerfile::{Keyword, Node};

use crate::checks::mount_options;
use crate::model::{Model, command_text, copy_args, flag_value};
use crate::report::Report;
use crate::{Finding, Rule};

/// A package manager: the files it installs from and how to install from them alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ecosystem {
    /// The manifest and lock file names (globs allowed) whose early copy fixes the order.
    manifests: &'static [&'static str],
    /// The `COPY` that brings them in.
    copy: &'static str,
    /// A `RUN` that installs the dependencies from the manifests alone.
    prefetch: &'static str,
}

const GO: Ecosystem = Ecosystem {
    manifests: &["go.mod", "go.sum", "go.*"],
    copy: "COPY go.mod go.sum ./",
    prefetch: "RUN go mod download",
};
const CARGO: Ecosystem = Ecosystem {
    manifests: &["Cargo.toml", "Cargo.lock"],
    copy: "COPY Cargo.toml Cargo.lock ./",
    prefetch: "RUN cargo fetch",
};
const NPM: Ecosystem = Ecosystem {
    manifests: &["package.json", "package-lock.json", "npm-shrinkwrap.json"],
    copy: "COPY package.json package-lock.json ./",
    prefetch: "RUN npm ci",
};
const YARN: Ecosystem = Ecosystem {
    manifests: &["package.json", "yarn.lock"],
    copy: "COPY package.json yarn.lock ./",
    prefetch: "RUN yarn install --frozen-lockfile",
};
const PNPM: Ecosystem = Ecosystem {
    manifests: &["package.json", "pnpm-lock.yaml"],
    copy: "COPY package.json pnpm-lock.yaml ./",
    prefetch: "RUN pnpm install --frozen-lockfile",
};
const PIP: Ecosystem = Ecosystem {
    manifests: &["requirements*.txt"],
    copy: "COPY requirements.txt ./",
    prefetch: "RUN pip install -r requirements.txt",
};
const UV: Ecosystem = Ecosystem {
    manifests: &["pyproject.toml", "uv.lock"],
    copy: "COPY pyproject.toml uv.lock ./",
    prefetch: "RUN uv sync --frozen --no-install-project",
};
const POETRY: Ecosystem = Ecosystem {
    manifests: &["pyproject.toml", "poetry.lock"],
    copy: "COPY pyproject.toml poetry.lock ./",
    prefetch: "RUN poetry install --no-root",
};
const PIPENV: Ecosystem = Ecosystem {
    manifests: &["Pipfile", "Pipfile.lock"],
    copy: "COPY Pipfile Pipfile.lock ./",
    prefetch: "RUN pipenv install --deploy",
};
const BUNDLER: Ecosystem = Ecosystem {
    manifests: &["Gemfile", "Gemfile.lock", "*.gemspec"],
    copy: "COPY Gemfile Gemfile.lock ./",
    prefetch: "RUN bundle install",
};
const COMPOSER: Ecosystem = Ecosystem {
    manifests: &["composer.json", "composer.lock"],
    copy: "COPY composer.json composer.lock ./",
    prefetch: "RUN composer install --no-scripts --no-autoloader",
};
const MAVEN: Ecosystem = Ecosystem {
    manifests: &["pom.xml"],
    copy: "COPY pom.xml ./",
    prefetch: "RUN mvn dependency:go-offline",
};
const GRADLE: Ecosystem = Ecosystem {
    manifests: &[
        "build.gradle",
        "build.gradle.kts",
        "settings.gradle",
        "settings.gradle.kts",
        "gradle.properties",
    ],
    copy: "COPY build.gradle settings.gradle ./",
    prefetch: "RUN gradle dependencies",
};
const DOTNET: Ecosystem = Ecosystem {
    manifests: &[
        "*.csproj",
        "*.fsproj",
        "*.vbproj",
        "*.sln",
        "packages.lock.json",
    ],
    copy: "COPY *.csproj ./",
    prefetch: "RUN dotnet restore",
};

/// A dependency install found in a `RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Install {
    ecosystem: Ecosystem,
    /// The command as written (`npm ci`, `pip install -r requirements.txt`).
    command: String,
    /// Requirement files named with `pip install -r`, which are the manifests then.
    requirement_files: Vec<String>,
}

pub(crate) fn check(model: &Model<'_>, report: &mut Report<'_>) {
    if !report.enabled(Rule::CopyBeforeDependencyInstall) {
        return;
    }
    for stage in &model.stages {
        check_stage(&stage.commands, report);
    }
}

fn check_stage(commands: &[&Node], report: &mut Report<'_>) {
    let mut whole_copy: Option<&Node> = None;
    let mut copied: Vec<String> = Vec::new();
    let mut installed_before: Vec<Ecosystem> = Vec::new();
    for node in commands {
        match node.kind {
            Some(Keyword::Copy | Keyword::Add) => {
                if node.kind == Some(Keyword::Copy) && flag_value(node, "from").is_some() {
                    continue;
                }
                let sources = copy_args(node).sources;
                if sources.iter().any(|s| is_whole_context(&s.value)) {
                    whole_copy.get_or_insert(node);
                } else if whole_copy.is_none() {
                    copied.extend(sources.iter().map(|s| base_name(&s.value).to_owned()));
                }
            }
            Some(Keyword::Run) => {
                let installs = find_installs(&command_text(node));
                let Some(copy) = whole_copy else {
                    installed_before.extend(installs.iter().map(|i| i.ecosystem));
                    continue;
                };
                if has_cache_mount(node) {
                    continue;
                }
                let offending = installs.into_iter().find(|install| {
                    !installed_before.contains(&install.ecosystem)
                        && !manifests_copied(install, &copied)
                });
                if let Some(install) = offending {
                    report.push(finding(copy, node, &install));
                    // One finding per stage: moving the copy fixes every install below it.
                    return;
                }
            }
            _ => {}
        }
    }
}

fn finding(copy: &Node, run: &Node, install: &Install) -> Finding {
    let (copy_line, prefetch) = match install.requirement_files.first() {
        Some(file) if install.ecosystem == PIP => {
            let dest = if file.contains('/') {
                file.as_str()
            } else {
                "./"
            };
            (
                format!("COPY {file} {dest}"),
                format!("RUN {}", install.command),
            )
        }
        _ => (
            install.ecosystem.copy.to_owned(),
            install.ecosystem.prefetch.to_owned(),
        ),
    };
    let keyword = copy.keyword.to_uppercase();
    Finding::new(
        Rule::CopyBeforeDependencyInstall,
        copy.span,
        format!(
            "{keyword} of the whole build context comes before '{}' on line {}, so every source change re-runs the dependency install",
            install.command, run.span.start_line
        ),
    )
    .with_hint(format!(
        "copy the manifests and install first: `{copy_line}` and `{prefetch}` before `{}`",
        copy.original.trim()
    ))
}

/// Whether a `COPY`/`ADD` source is the whole build context (`.`, `./`, `/`).
fn is_whole_context(source: &str) -> bool {
    let trimmed = source.trim_matches('"');
    !trimmed.is_empty()
        && trimmed
            .split('/')
            .all(|part| part.is_empty() || part == ".")
}

fn base_name(path: &str) -> &str {
    let path = path.trim_matches('"').trim_end_matches('/');
    path.rsplit('/').next().unwrap_or(path)
}

fn has_cache_mount(node: &Node) -> bool {
    mount_options(node).any(|(key, value)| key == "type" && value == "cache")
}

/// Whether a source copied before the whole context is one of the install's manifests
/// (either may be a glob: `COPY package*.json ./`, manifests `*.csproj`).
fn manifests_copied(install: &Install, copied: &[String]) -> bool {
    let requirement_names = install.requirement_files.iter().map(|f| base_name(f));
    let manifests: Vec<&str> = install
        .ecosystem
        .manifests
        .iter()
        .copied()
        .chain(requirement_names)
        .collect();
    copied.iter().any(|source| {
        manifests
            .iter()
            .any(|manifest| glob_match(manifest, source) || glob_match(source, manifest))
    })
}

/// `*` and `?` globbing on a file name.
fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(pattern: &[char], name: &[char]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some(('*', rest)) => (0..=name.len()).any(|skip| go(rest, &name[skip..])),
            Some(('?', rest)) => !name.is_empty() && go(rest, &name[1..]),
            Some((c, rest)) => name.first() == Some(c) && go(rest, &name[1..]),
        }
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    go(&pattern, &name)
}

/// Splits shell text into simple commands (on `&&`, `||`, `;`, `|`, `&`, newlines and
/// parentheses) and those into words, quotes stripped. Good enough to spot `npm ci` in
/// `cd app && npm ci --omit=dev`; not a shell parser.
fn simple_commands(text: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    let flush_word = |word: &mut String, current: &mut Vec<String>| {
        if !word.is_empty() {
            current.push(std::mem::take(word));
        }
    };
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, '\\') => {
                if let Some(next) = chars.next()
                    && next != '\n'
                {
                    word.push(next);
                }
            }
            (None, ';' | '&' | '|' | '\n' | '(' | ')' | '{' | '}') => {
                flush_word(&mut word, &mut current);
                if !current.is_empty() {
                    commands.push(std::mem::take(&mut current));
                }
            }
            (None, c) if c.is_whitespace() => flush_word(&mut word, &mut current),
            (None, c) => word.push(c),
        }
    }
    flush_word(&mut word, &mut current);
    if !current.is_empty() {
        commands.push(current);
    }
    commands
}

/// The dependency installs in a `RUN` command line.
fn find_installs(text: &str) -> Vec<Install> {
    simple_commands(text)
        .iter()
        .filter_map(|words| detect(words))
        .collect()
}

/// Words that only wrap the real command.
const PREFIXES: [&str; 9] = [
    "sudo", "exec", "time", "env", "nice", "command", "then", "do", "else",
];

fn detect(words: &[String]) -> Option<Install> {
    let mut words: Vec<&str> = words.iter().map(String::as_str).collect();
    while let Some(first) = words.first() {
        if PREFIXES.contains(first) || is_assignment(first) {
            words.remove(0);
        } else {
            break;
        }
    }
    let program = base_name(words.first()?);
    let program = program.strip_suffix(".exe").unwrap_or(program);
    // `python -m pip install ...` is pip.
    if program.starts_with("python") && words.get(1) == Some(&"-m") && words.get(2) == Some(&"pip")
    {
        return detect_pip(&words[2..]);
    }
    let args = &words[1..];
    let subcommands: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !a.starts_with('-') && !a.starts_with('+'))
        .collect();
    let sub = subcommands.first().copied();
    let install = |ecosystem: Ecosystem, len: usize| {
        Some(Install {
            ecosystem,
            command: words[..len.min(words.len())].join(" "),
            requirement_files: Vec::new(),
        })
    };
    let position = |name: &str| {
        words
            .iter()
            .position(|w| *w == name)
            .map_or(words.len(), |p| p + 1)
    };
    // `<program> <subcommand>`, for the subcommands that install.
    let installs_with = |ecosystem: Ecosystem, subcommands: &[&str]| {
        sub.filter(|s| subcommands.contains(s))
            .and_then(|s| install(ecosystem, position(s)))
    };
    match program {
        "go" => match (sub, subcommands.get(1).copied()) {
            (Some("mod"), Some("download")) => install(GO, position("download")),
            (Some("build" | "install"), _) => install(GO, position(sub.unwrap_or_default())),
            _ => None,
        },
        "cargo" => installs_with(CARGO, &["build", "fetch", "install"]),
        "npm" => installs_with(NPM, &["install", "i", "ci"]),
        // A bare `yarn` (or `bundle`) installs too.
        "yarn" if sub.is_none() => install(YARN, 1),
        "yarn" => installs_with(YARN, &["install"]),
        "pnpm" => installs_with(PNPM, &["install", "i"]),
        "pip" | "pip3" => detect_pip(&words),
        "uv" => match (sub, subcommands.get(1).copied()) {
            (Some("sync"), _) => install(UV, position("sync")),
            (Some("pip"), Some("install")) => detect_pip(&words[1..]),
            _ => None,
        },
        "poetry" => installs_with(POETRY, &["install"]),
        "pipenv" => installs_with(PIPENV, &["install", "sync"]),
        "bundle" | "bundler" if sub.is_none() => install(BUNDLER, 1),
        "bundle" | "bundler" => installs_with(BUNDLER, &["install"]),
        "composer" => installs_with(COMPOSER, &["install"]),
        "mvn" | "mvnw" => args
            .iter()
            .find(|a| {
                a.starts_with("dependency:") || matches!(**a, "package" | "install" | "verify")
            })
            .and_then(|goal| install(MAVEN, position(goal))),
        "gradle" | "gradlew" => args
            .iter()
            .find(|a| matches!(**a, "dependencies" | "build" | "assemble"))
            .and_then(|task| install(GRADLE, position(task))),
        "dotnet" => installs_with(DOTNET, &["restore", "publish", "build"]),
        _ => None,
    }
}

/// `pip install -r FILE` (words start at `pip`).
fn detect_pip(words: &[&str]) -> Option<Install> {
    if words.get(1) != Some(&"install") {
        return None;
    }
    let mut files = Vec::new();
    let mut end = 2;
    let mut iter = words.iter().enumerate().skip(2);
    while let Some((i, word)) = iter.next() {
        let file = match *word {
            "-r" | "--requirement" => iter.next().map(|(j, f)| (j, *f)),
            w => w
                .strip_prefix("--requirement=")
                .or_else(|| w.strip_prefix("-r").filter(|f| !f.is_empty()))
                .map(|f| (i, f)),
        };
        if let Some((last, file)) = file {
            files.push(file.to_owned());
            end = last + 1;
        }
    }
    if files.is_empty() {
        return None;
    }
    Some(Install {
        ecosystem: PIP,
        command: words[..end].join(" "),
        requirement_files: files,
    })
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(text: &str) -> Vec<String> {
        find_installs(text).into_iter().map(|i| i.command).collect()
    }

    #[test]
    fn finds_installs_in_command_lines() {
        assert_eq!(commands("cd app && npm ci --omit=dev"), ["npm ci"]);
        assert_eq!(
            commands("go mod download && go build -o /app ."),
            ["go mod download", "go build"]
        );
        assert_eq!(
            commands("pip install --no-cache-dir -r requirements/prod.txt"),
            ["pip install --no-cache-dir -r requirements/prod.txt"]
        );
        assert_eq!(
            commands("python3 -m pip install -rreq.txt"),
            ["pip install -rreq.txt"]
        );
        assert_eq!(commands("CGO_ENABLED=0 go build ./..."), ["go build"]);
        assert_eq!(commands("yarn"), ["yarn"]);
        assert_eq!(
            commands("./mvnw -B dependency:go-offline"),
            ["./mvnw -B dependency:go-offline"]
        );
        assert_eq!(commands("uv sync --frozen"), ["uv sync"]);
        assert_eq!(
            commands("cargo +nightly build --release"),
            ["cargo +nightly build"]
        );
        assert!(commands("apt-get update && apt-get install -y curl").is_empty());
        assert!(
            commands("pip install flask").is_empty(),
            "no requirements file"
        );
        assert!(commands("npm run build").is_empty());
        assert!(
            commands("echo 'npm ci'").is_empty(),
            "quoted text is one word"
        );
    }

    #[test]
    fn whole_context_and_globs() {
        assert!(is_whole_context("."));
        assert!(is_whole_context("./"));
        assert!(is_whole_context("/"));
        assert!(!is_whole_context("./src"));
        assert!(!is_whole_context("package.json"));
        assert!(glob_match("package*.json", "package-lock.json"));
        assert!(glob_match("*.csproj", "App.csproj"));
        assert!(!glob_match("go.*", "main.go"));
    }
}
