//! BuildKit's vertex names for the progress display.

use std::collections::HashMap;

use hoist_plan::op::Source;
use hoist_plan::{BuildPlan, Op};

/// BuildKit's vertex names: `[builder 2/6] RUN go build`, `[internal] load build context`.
pub(crate) fn vertex_names(plan: &BuildPlan, dockerfile: &str) -> HashMap<usize, String> {
    let mut names = HashMap::new();
    for (position, stage) in plan.stages.iter().enumerate() {
        let prefix = match &stage.name {
            Some(name) => format!("{name} "),
            None if position == plan.target => String::new(),
            None => format!("stage-{} ", stage.index),
        };
        let steps: Vec<_> = stage
            .steps
            .iter()
            .filter_map(|s| s.op.map(|op| (s, op)))
            .collect();
        let total = steps.len() + 1;
        // The FROM source: follow the first input back until the op is no longer this stage's.
        let mut base = stage.root;
        while plan.op(base).stage == Some(stage.index) && !plan.op(base).inputs.is_empty() {
            base = plan.op(base).inputs[0];
        }
        if let Op::Source(Source::Image { reference, .. }) = &plan.op(base).op {
            names
                .entry(base.0)
                .or_insert_with(|| format!("[{prefix}1/{total}] FROM {reference}"));
        }
        for (k, (step, op)) in steps.iter().enumerate() {
            let text = instruction_text(dockerfile, step.span.start, step.span.end);
            names.insert(op.0, format!("[{prefix}{}/{total}] {text}", k + 2));
        }
    }
    for op in &plan.ops {
        match &op.op {
            Op::Source(Source::Context { .. }) => {
                names.insert(op.id.0, "[internal] load build context".to_owned());
            }
            // An `ADD <URL>` download, named by its URL as the BuildKit of Docker 20.10 names it.
            Op::Source(Source::Http { url, .. }) => {
                names.insert(op.id.0, url.clone());
            }
            _ => {}
        }
    }
    names
}

/// An instruction's text on one line: continuation lines joined, heredoc bodies left out.
fn instruction_text(dockerfile: &str, start: usize, end: usize) -> String {
    let text = dockerfile
        .get(start..end.min(dockerfile.len()))
        .unwrap_or_default();
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) => (body.trim_end(), true),
            None => (trimmed, false),
        };
        if !out.is_empty() && !body.is_empty() {
            out.push(' ');
        }
        out.push_str(body);
        if !continues {
            break;
        }
    }
    out
}
