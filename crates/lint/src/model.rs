//! The shape the checks walk: global `ARG`s and stages, read straight off the raw syntax
//! tree. Instructions the typed layer would reject (unknown keywords, a stray instruction
//! before the first `FROM`, a malformed `FROM`) are skipped here rather than reported: a
//! file with them does not build, and the caller reports that through `hoist-instructions`.

use hoist_dockerfile::{Arg, Args, Dockerfile, Flag, Keyword, Node};

/// One `name[=default]` of an `ARG` instruction.
#[derive(Debug, Clone)]
pub(crate) struct ArgDecl {
    /// The name as written.
    pub(crate) key: String,
    /// The default, raw (quotes kept; expansion removes them).
    pub(crate) value: Option<String>,
}

/// Splits an `ARG` instruction into its declarations (BuildKit's `parseArg`).
pub(crate) fn arg_decls(node: &Node) -> Vec<ArgDecl> {
    words(node)
        .into_iter()
        .map(|word| match word.value.split_once('=') {
            Some((key, value)) => ArgDecl {
                key: key.to_owned(),
                value: Some(value.to_owned()),
            },
            None => ArgDecl {
                key: word.value.clone(),
                value: None,
            },
        })
        .collect()
}

/// A build stage: its `FROM` and the instructions up to the next `FROM`.
#[derive(Debug)]
pub(crate) struct Stage<'d> {
    /// Position in the file (what `COPY --from=<index>` refers to).
    pub(crate) index: usize,
    /// The `FROM` instruction.
    pub(crate) from: &'d Node,
    /// The base image or stage, raw (before `ARG` expansion).
    pub(crate) base: &'d Arg,
    /// The name lower-cased (BuildKit compares stage names case-insensitively).
    pub(crate) name: Option<String>,
    /// The `--platform` value, raw.
    pub(crate) platform: Option<String>,
    /// The instructions of the stage after `FROM`, known keywords only.
    pub(crate) commands: Vec<&'d Node>,
}

impl Stage<'_> {
    /// How findings and messages refer to the stage: `'build'`, or `1 (unnamed)`.
    pub(crate) fn display_name(&self) -> String {
        match &self.name {
            Some(name) => format!("'{name}'"),
            None => format!("{} (unnamed)", self.index),
        }
    }
}

/// The Dockerfile as stages.
#[derive(Debug)]
pub(crate) struct Model<'d> {
    /// `ARG` instructions before the first `FROM`.
    pub(crate) meta_args: Vec<&'d Node>,
    /// The stages in file order.
    pub(crate) stages: Vec<Stage<'d>>,
}

impl<'d> Model<'d> {
    pub(crate) fn new(dockerfile: &'d Dockerfile) -> Model<'d> {
        let mut meta_args = Vec::new();
        let mut stages: Vec<Stage<'d>> = Vec::new();
        for node in &dockerfile.instructions {
            match node.kind {
                Some(Keyword::From) => {
                    let Args::Words(words) = &node.args else {
                        continue;
                    };
                    let Some(base) = words.first() else {
                        continue;
                    };
                    let name = match words.as_slice() {
                        [_, _, name] => Some(name.value.to_lowercase()),
                        _ => None,
                    };
                    stages.push(Stage {
                        index: stages.len(),
                        from: node,
                        base,
                        name,
                        platform: flag_value(node, "platform").map(str::to_owned),
                        commands: Vec::new(),
                    });
                }
                Some(Keyword::Arg) if stages.is_empty() => meta_args.push(node),
                Some(_) => {
                    if let Some(stage) = stages.last_mut() {
                        stage.commands.push(node);
                    }
                }
                None => {}
            }
        }
        Model { meta_args, stages }
    }

    /// The stage a `--from=` / `from=` value names: a stage name (any case) or an index.
    pub(crate) fn stage_by_reference(&self, reference: &str) -> Option<usize> {
        if let Ok(index) = reference.parse::<usize>() {
            return (index < self.stages.len()).then_some(index);
        }
        let lower = reference.to_lowercase();
        self.stages
            .iter()
            .rposition(|stage| stage.name.as_deref() == Some(lower.as_str()))
    }
}

/// The value of the last `--name=value` flag of an instruction.
pub(crate) fn flag_value<'n>(node: &'n Node, name: &str) -> Option<&'n str> {
    node.flags
        .iter()
        .rev()
        .find(|flag| flag.name() == name)
        .and_then(Flag::value)
}

/// Every value of a repeatable flag (`--mount`), in order.
pub(crate) fn flag_values<'n>(node: &'n Node, name: &'n str) -> impl Iterator<Item = &'n str> {
    node.flags
        .iter()
        .filter(move |flag| flag.name() == name)
        .filter_map(Flag::value)
}

/// The words or JSON elements of an instruction, or its text as one word.
pub(crate) fn words(node: &Node) -> Vec<&Arg> {
    match &node.args {
        Args::Words(words) | Args::Json(words) => words.iter().collect(),
        Args::Text(text) => vec![text],
        _ => Vec::new(),
    }
}

/// The sources and destination of `COPY`/`ADD`, with heredoc markers (`<<EOF`) left out
/// of the sources: those copy inline content, not files from the context.
pub(crate) struct CopyArgs<'n> {
    pub(crate) sources: Vec<&'n Arg>,
    pub(crate) dest: Option<&'n Arg>,
}

pub(crate) fn copy_args(node: &Node) -> CopyArgs<'_> {
    let mut all = words(node);
    let dest = if all.len() >= 2 { all.pop() } else { None };
    let sources = all
        .into_iter()
        .filter(|word| node.heredocs.is_empty() || !word.value.starts_with("<<"))
        .collect();
    CopyArgs { sources, dest }
}

/// The options of a `--mount=type=cache,target=/x,from=build` value, split on commas and
/// at the first `=` of each field.
pub(crate) fn mount_fields(value: &str) -> Vec<(&str, &str)> {
    value
        .split(',')
        .filter(|field| !field.is_empty())
        .map(|field| field.split_once('=').unwrap_or((field, "")))
        .collect()
}

/// The text a `RUN`, `CMD` or `ENTRYPOINT` runs: the shell-form line, or the JSON elements
/// joined by spaces, followed by any heredoc bodies.
pub(crate) fn command_text(node: &Node) -> String {
    let mut text = match &node.args {
        Args::Text(text) => text.value.clone(),
        Args::Json(words) => words
            .iter()
            .map(|w| w.value.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    for heredoc in &node.heredocs {
        text.push('\n');
        text.push_str(&heredoc.content);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_stages_and_global_args() {
        let file = hoist_dockerfile::parse(
            "ARG A=1\nFROM --platform=$BUILDPLATFORM alpine AS Build\nRUN x\nFROM build\nCOPY --from=0 a b\n",
        )
        .unwrap();
        let model = Model::new(&file);
        assert_eq!(model.meta_args.len(), 1);
        assert_eq!(model.stages.len(), 2);
        let build = &model.stages[0];
        assert_eq!(build.name.as_deref(), Some("build"));
        assert_eq!(build.platform.as_deref(), Some("$BUILDPLATFORM"));
        assert_eq!(build.commands.len(), 1);
        assert_eq!(model.stage_by_reference("BUILD"), Some(0));
        assert_eq!(model.stage_by_reference("1"), Some(1));
        assert_eq!(model.stage_by_reference("2"), None);
        assert_eq!(model.stage_by_reference("alpine"), None);
    }

    #[test]
    fn reads_arg_declarations_and_copy_arguments() {
        let file = hoist_dockerfile::parse(
            "FROM scratch\nARG A B=\"x y\"\nCOPY <<EOF a b /dst/\nhi\nEOF\n",
        )
        .unwrap();
        let model = Model::new(&file);
        let decls = arg_decls(model.stages[0].commands[0]);
        assert_eq!(decls[0].key, "A");
        assert_eq!(decls[0].value, None);
        assert_eq!(decls[1].value.as_deref(), Some("\"x y\""));
        let copy = copy_args(model.stages[0].commands[1]);
        let sources: Vec<&str> = copy.sources.iter().map(|a| a.value.as_str()).collect();
        assert_eq!(sources, ["a", "b"]);
        assert_eq!(copy.dest.unwrap().value, "/dst/");
        assert_eq!(
            mount_fields("type=cache,target=/root/.cache,from=build"),
            [
                ("type", "cache"),
                ("target", "/root/.cache"),
                ("from", "build")
            ]
        );
    }
}
