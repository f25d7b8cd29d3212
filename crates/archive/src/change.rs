//! `--change` instructions for `import`: the Dockerfile instructions `docker import --change` accepts, applied to
//! the image's run config.
//!
//! Each change is parsed with hoist's Dockerfile parser and expanded with its shell-word lexer, against the
//! environment set by the changes before it, as Docker does: `--change 'ENV A=1' --change 'ENV B=$A'` sets `B=1`.
//! Accepted: `CMD`, `ENTRYPOINT`, `ENV`, `EXPOSE`, `LABEL`, `ONBUILD`, `USER`, `VOLUME`, `WORKDIR`. Anything else is
//! refused with Docker's message (`run is not a valid change command`).

use std::collections::BTreeMap;

use hoist_dockerfile::{Args, KeyValue, Keyword, Node};
use hoist_shell::Lexer;
use serde::Serialize;

use crate::Error;

/// The container defaults of an image config (the `config` object), as the changes leave them. Field names and
/// order are Docker's (`User`, `ExposedPorts`, `Env`, …); empty fields are omitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `USER`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `EXPOSE`: `port/proto` keys.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// `ENV`: `NAME=value`, in the order first set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `ENTRYPOINT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`: paths.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    /// `WORKDIR`, absolute.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// `LABEL`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `ONBUILD`: the trigger instructions as written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
}

/// The `{}` value of Go's `map[string]struct{}` (exposed ports, volumes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

impl RunConfig {
    /// Applies one `--change` string (one or more instructions) to the config.
    pub fn apply_change(&mut self, change: &str) -> Result<(), Error> {
        let invalid = |reason: String| Error::InvalidChange {
            change: change.to_owned(),
            reason,
        };
        let dockerfile =
            hoist_dockerfile::parse(change).map_err(|error| invalid(error.to_string()))?;
        let lexer = Lexer::new(dockerfile.escape);
        for node in &dockerfile.instructions {
            self.apply_node(node, lexer).map_err(invalid)?;
        }
        Ok(())
    }

    fn set_env(&mut self, name: &str, value: &str) {
        let entry = format!("{name}={value}");
        match self
            .env
            .iter_mut()
            .find(|e| e.split_once('=').is_some_and(|(k, _)| k == name))
        {
            Some(existing) => *existing = entry,
            None => self.env.push(entry),
        }
    }

    fn apply_node(&mut self, node: &Node, lexer: Lexer) -> Result<(), String> {
        let name = node.keyword.to_ascii_uppercase();
        let expand = |word: &str| -> Result<String, String> {
            lexer
                .process_word(word, &self.env)
                .map(|w| w.value)
                .map_err(|error| format!("failed to process {word:?}: {error}"))
        };
        match (node.kind, &node.args) {
            (Some(Keyword::Cmd | Keyword::Entrypoint), args) => {
                let command = match args {
                    Args::Json(items) => items.iter().map(|a| a.value.clone()).collect(),
                    Args::Text(text) => {
                        vec!["/bin/sh".to_owned(), "-c".to_owned(), text.value.clone()]
                    }
                    // Docker's parser gives `CMD` with nothing after it an empty shell form.
                    _ => vec!["/bin/sh".to_owned(), "-c".to_owned()],
                };
                if node.kind == Some(Keyword::Cmd) {
                    self.cmd = Some(command);
                } else {
                    self.entrypoint = Some(command);
                }
            }
            (Some(Keyword::Env), Args::KeyValues(pairs)) => {
                // Every pair is expanded against the environment before this instruction, as in a Dockerfile.
                let expanded = expand_pairs(pairs, &expand, &name)?;
                for (key, value) in expanded {
                    self.set_env(&key, &value);
                }
            }
            (Some(Keyword::Label), Args::KeyValues(pairs)) => {
                for (key, value) in expand_pairs(pairs, &expand, &name)? {
                    self.labels.insert(key, value);
                }
            }
            (Some(Keyword::Expose), Args::Words(words)) if !words.is_empty() => {
                let mut ports = Vec::new();
                for word in words {
                    ports.extend(parse_ports(&expand(&word.value)?)?);
                }
                for port in ports {
                    self.exposed_ports.insert(port, Empty {});
                }
            }
            (Some(Keyword::User), Args::Text(text)) => self.user = Some(expand(&text.value)?),
            (Some(Keyword::Volume), Args::Json(words) | Args::Words(words))
                if !words.is_empty() =>
            {
                for word in words {
                    let volume = expand(&word.value)?;
                    if volume.trim().is_empty() {
                        return Err("VOLUME specified can not be an empty string".to_owned());
                    }
                    self.volumes.insert(volume, Empty {});
                }
            }
            (Some(Keyword::Workdir), Args::Text(text)) => {
                let dir = expand(&text.value)?;
                let base = if self.working_dir.is_empty() {
                    "/"
                } else {
                    &self.working_dir
                };
                self.working_dir = join_clean(base, &dir);
            }
            (Some(Keyword::Onbuild), Args::Onbuild(trigger)) => {
                match trigger.kind {
                    Some(Keyword::Onbuild) => {
                        return Err(
                            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_owned()
                        );
                    }
                    Some(kind @ (Keyword::From | Keyword::Maintainer)) => {
                        return Err(format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            kind.as_upper_str()
                        ));
                    }
                    _ => {}
                }
                self.on_build.push(trigger.original.clone());
            }
            (Some(Keyword::User | Keyword::Workdir), _) => {
                return Err(format!("{name} requires exactly one argument"));
            }
            (
                Some(
                    Keyword::Env
                    | Keyword::Label
                    | Keyword::Expose
                    | Keyword::Volume
                    | Keyword::Onbuild,
                ),
                _,
            ) => return Err(format!("{name} requires at least one argument")),
            _ => {
                return Err(format!(
                    "{} is not a valid change command (allowed: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, \
                     VOLUME, WORKDIR)",
                    node.keyword.to_ascii_lowercase()
                ));
            }
        }
        Ok(())
    }
}

/// Expands ENV/LABEL pairs; keys may be quoted too.
fn expand_pairs(
    pairs: &[KeyValue],
    expand: &dyn Fn(&str) -> Result<String, String>,
    instruction: &str,
) -> Result<Vec<(String, String)>, String> {
    pairs
        .iter()
        .map(|pair| {
            let key = expand(&pair.key.value)?;
            if key.is_empty() {
                return Err(format!("{instruction} names can not be blank"));
            }
            Ok((key, expand(&pair.value.value)?))
        })
        .collect()
}

/// `80`, `80/udp`, `8000-8002/tcp` → `80/tcp`, `80/udp`, `8000/tcp`, `8001/tcp`, `8002/tcp`.
fn parse_ports(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match spec.split_once('/') {
        Some((ports, proto)) => (ports, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_owned()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("Invalid proto: {proto}"));
    }
    let port = |text: &str| -> Result<u16, String> {
        text.parse::<u16>()
            .map_err(|_| format!("Invalid containerPort: {ports}"))
    };
    let (start, end) = match ports.split_once('-') {
        Some((start, end)) => (port(start)?, port(end)?),
        None => (port(ports)?, port(ports)?),
    };
    if end < start {
        return Err(format!("Invalid range specified for the Port: {ports}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// `base` joined with `dir` (unless `dir` is absolute), cleaned like Go's `path.Clean`.
fn join_clean(base: &str, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_owned()
    } else {
        format!("{base}/{dir}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(changes: &[&str]) -> Result<RunConfig, Error> {
        let mut config = RunConfig::default();
        for change in changes {
            config.apply_change(change)?;
        }
        Ok(config)
    }

    fn error(changes: &[&str]) -> String {
        apply(changes).unwrap_err().to_string()
    }

    /// The same changes as a `docker import` run on Docker 20.10, and the config it produced.
    #[test]
    fn matches_docker_import() {
        let config = apply(&[
            r#"ENV A=1 B="x y""#,
            "ENV C 3 4",
            "EXPOSE 80 90-91/udp",
            r#"LABEL a=b "c d"=e"#,
            "ONBUILD run echo hi",
            "USER nobody",
            "VOLUME /v1 /v2",
            "WORKDIR /w",
            "WORKDIR x",
            "CMD echo hi",
            r#"ENTRYPOINT ["/bin/sh","-c"]"#,
            "ENV D=$A",
        ])
        .unwrap();
        assert_eq!(
            serde_json::to_string(&config).unwrap(),
            r#"{"User":"nobody","ExposedPorts":{"80/tcp":{},"90/udp":{},"91/udp":{}},"Env":["A=1","B=x y","C=3 4","D=1"],"Entrypoint":["/bin/sh","-c"],"Cmd":["/bin/sh","-c","echo hi"],"Volumes":{"/v1":{},"/v2":{}},"WorkingDir":"/w/x","Labels":{"a":"b","c d":"e"},"OnBuild":["run echo hi"]}"#
        );
    }

    #[test]
    fn expansion_follows_docker() {
        let config = apply(&[
            "ENV A=${B:-def} C=\\$X",
            r#"VOLUME ["/a", "/b"]"#,
            "CMD []",
            "cmd [\"a\"]",
        ])
        .unwrap();
        assert_eq!(config.env, ["A=def", "C=$X"]);
        assert_eq!(config.volumes.keys().collect::<Vec<_>>(), ["/a", "/b"]);
        assert_eq!(config.cmd, Some(vec!["a".to_owned()]));
        assert_eq!(apply(&["CMD []"]).unwrap().cmd, Some(vec![]));
        assert_eq!(
            apply(&["CMD"]).unwrap().cmd,
            Some(vec!["/bin/sh".to_owned(), "-c".to_owned()])
        );
        assert_eq!(
            apply(&["ENV A=1", "ENV A=2 B=$A"]).unwrap().env,
            ["A=2", "B=1"]
        );
        assert_eq!(apply(&["WORKDIR /a/../b/./c"]).unwrap().working_dir, "/b/c");
    }

    /// Docker 20.10's messages for the same inputs.
    #[test]
    fn errors_are_docker_s() {
        assert!(error(&["RUN echo"]).contains("run is not a valid change command"));
        assert!(error(&["STOPSIGNAL 9"]).contains("stopsignal is not a valid change command"));
        assert!(error(&["ENV"]).contains("ENV requires at least one argument"));
        assert!(error(&["LABEL"]).contains("LABEL requires at least one argument"));
        assert!(error(&["EXPOSE"]).contains("EXPOSE requires at least one argument"));
        assert!(error(&["EXPOSE abc"]).contains("Invalid containerPort: abc"));
        assert!(error(&["USER"]).contains("USER requires exactly one argument"));
        assert!(error(&["WORKDIR"]).contains("WORKDIR requires exactly one argument"));
        assert!(error(&["VOLUME"]).contains("VOLUME requires at least one argument"));
        assert!(error(&["VOLUME []"]).contains("VOLUME requires at least one argument"));
        assert!(error(&["ONBUILD"]).contains("ONBUILD requires at least one argument"));
        assert!(error(&["ONBUILD ONBUILD RUN x"]).contains("Chaining ONBUILD"));
        assert!(error(&["ONBUILD FROM x"]).contains("FROM isn't allowed as an ONBUILD trigger"));
        assert!(error(&["ENV =x"]).contains("ENV names can not be blank"));
        assert!(error(&[r#"ENV A="unterminated"#]).contains("failed to process"));
        // The change text is in every message.
        assert!(error(&["RUN echo"]).starts_with("invalid change \"RUN echo\""));
    }
}
