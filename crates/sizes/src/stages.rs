//! A Dockerfile's build targets and the image each starts from, without planning or building anything.

use hoist_dockerfile::{Args, Keyword};
use hoist_shell::Lexer;

use crate::SizesError;

/// One stage that `hoist build --target` can build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageTarget {
    /// The stage's `AS` name (lower-cased, as targets match), or `None` for an unnamed last stage (the default
    /// target).
    pub name: Option<String>,
    /// The image the stage's FROM chain starts from, after expanding build arguments: a reference as written
    /// (`debian:bookworm-local`), or `scratch`.
    pub base: String,
}

impl StageTarget {
    /// The name a report shows: the stage name, or `(default)`.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("(default)")
    }
}

/// Every stage of `dockerfile` that is a target: each named stage, and the last stage when it has no name, in
/// file order. `build_args` (`KEY=VALUE`) override the defaults of the ARGs before the first FROM, as
/// `--build-arg` does.
pub fn stage_targets(
    dockerfile: &str,
    build_args: &[String],
) -> Result<Vec<StageTarget>, SizesError> {
    let parsed = hoist_dockerfile::parse(dockerfile).map_err(SizesError::Parse)?;
    let lexer = Lexer::new(parsed.escape);
    let mut meta: Vec<String> = Vec::new();
    // Every stage: (name, base), the base already followed through earlier stages.
    let mut stages: Vec<(Option<String>, String)> = Vec::new();
    for node in &parsed.instructions {
        match (node.kind, &node.args) {
            (Some(Keyword::Arg), Args::Words(words)) if stages.is_empty() => {
                for word in words {
                    let (key, default) = match word.value.split_once('=') {
                        Some((key, value)) => (key, Some(unquote(value))),
                        None => (word.value.as_str(), None),
                    };
                    let given = build_args.iter().find_map(|arg| {
                        arg.split_once('=')
                            .filter(|(k, _)| *k == key)
                            .map(|(_, v)| v.to_owned())
                    });
                    if let Some(value) = given.or(default) {
                        meta.retain(|entry| entry.split_once('=').is_none_or(|(k, _)| k != key));
                        meta.push(format!("{key}={value}"));
                    }
                }
            }
            (Some(Keyword::From), Args::Words(words)) => {
                let Some(image) = words.first() else { continue };
                let expanded = lexer.process_word(&image.value, &meta).map_err(|source| {
                    SizesError::Expand {
                        line: node.keyword_span.start_line as usize,
                        word: image.value.clone(),
                        source,
                    }
                })?;
                let image = expanded.value;
                let name = match words.get(1..3) {
                    Some([r#as, name]) if r#as.value.eq_ignore_ascii_case("as") => {
                        Some(name.value.to_lowercase())
                    }
                    _ => None,
                };
                let base = stages
                    .iter()
                    .find(|(stage, _)| stage.as_deref() == Some(image.to_lowercase().as_str()))
                    .map(|(_, base)| base.clone())
                    .unwrap_or(image);
                stages.push((name, base));
            }
            _ => {}
        }
    }
    let last = stages.len().checked_sub(1).ok_or(SizesError::NoStages)?;
    Ok(stages
        .into_iter()
        .enumerate()
        .filter(|(index, (name, _))| name.is_some() || *index == last)
        .map(|(_, (name, base))| StageTarget { name, base })
        .collect())
}

/// An ARG default without its surrounding quotes (`ARG BASE="debian:12"`).
fn unquote(value: &str) -> String {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner.to_owned();
        }
    }
    value.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(text: &str, args: &[&str]) -> Vec<(Option<String>, String)> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        stage_targets(text, &args)
            .expect("a valid Dockerfile")
            .into_iter()
            .map(|t| (t.name, t.base))
            .collect()
    }

    #[test]
    fn named_stages_and_an_unnamed_last_one_are_targets_with_their_chains_followed() {
        let text = "ARG BASE=debian:bookworm-local\nFROM ${BASE} AS builder\nRUN true\nFROM builder AS ci\n\
                    FROM scratch AS release\nCOPY --from=builder /a /a\nFROM Release\n";
        assert_eq!(
            targets(text, &[]),
            [
                (
                    Some("builder".to_owned()),
                    "debian:bookworm-local".to_owned()
                ),
                (Some("ci".to_owned()), "debian:bookworm-local".to_owned()),
                (Some("release".to_owned()), "scratch".to_owned()),
                (None, "scratch".to_owned()),
            ]
        );
        assert_eq!(
            targets(text, &["BASE=golang:1.24"])[1],
            (Some("ci".to_owned()), "golang:1.24".to_owned())
        );
    }

    #[test]
    fn a_named_last_stage_is_not_repeated_and_quotes_are_removed() {
        let text =
            "ARG IMG=\"busybox:1.36\"\nFROM --platform=linux/amd64 $IMG AS one\nFROM one AS two\n";
        assert_eq!(
            targets(text, &[]),
            [
                (Some("one".to_owned()), "busybox:1.36".to_owned()),
                (Some("two".to_owned()), "busybox:1.36".to_owned()),
            ]
        );
    }

    #[test]
    fn a_file_without_from_is_an_error() {
        let error = stage_targets("ARG A=1\n", &[]).expect_err("no stages");
        assert!(matches!(error, SizesError::NoStages), "{error}");
    }
}
