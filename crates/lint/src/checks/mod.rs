//! The checks, grouped by the phase of BuildKit's conversion they belong to, then hoist's own.

pub(crate) mod cache_order;
pub(crate) mod dispatch;
pub(crate) mod from;
pub(crate) mod syntax;
pub(crate) mod toolchain;
pub(crate) mod unreachable;

use hoist_dockerfile::{Keyword, Node};

use crate::model::{flag_value, flag_values, mount_fields};

/// The `key=value` fields of every `--mount` of an instruction, in order: `RUN
/// --mount=type=cache,target=/x` gives `("type", "cache")`, then `("target", "/x")`.
pub(crate) fn mount_options(node: &Node) -> impl Iterator<Item = (&str, &str)> {
    flag_values(node, "mount").flat_map(mount_fields)
}

/// The stages an instruction reads from, as written (not expanded): a `COPY --from` value,
/// or the `from=` of each `RUN --mount`, in order.
pub(crate) fn stage_references(node: &Node) -> Vec<&str> {
    match node.kind {
        Some(Keyword::Copy) => flag_value(node, "from").into_iter().collect(),
        Some(Keyword::Run) => mount_options(node)
            .filter(|(key, _)| *key == "from")
            .map(|(_, value)| value)
            .collect(),
        _ => Vec::new(),
    }
}
