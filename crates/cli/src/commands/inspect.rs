//! `hoist inspect IMAGE…`: describe images, as JSON in `docker image inspect`'s shape or as a readable table.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Args, ValueEnum};
use hoist_oci::{ImageInspect, units};
use serde_json::Value;

use super::images::{emit, error_chain, open_store, since, table};

/// Show details of one or more images.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Images: references, image IDs or ID prefixes.
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = InspectFormat::Json)]
    format: InspectFormat,
}

/// How `hoist inspect` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum InspectFormat {
    /// A JSON array, as `docker image inspect` prints it.
    Json,
    /// A readable summary with a layer table.
    Table,
}

pub(crate) fn run(root: Option<&Path>, args: &InspectArgs) -> ExitCode {
    let store = match open_store(root) {
        Ok(store) => store,
        Err(error) => return super::images::fail(&error),
    };
    let mut found = Vec::new();
    let mut errors = String::new();
    for image in &args.images {
        match store.inspect(image) {
            Ok(inspect) => found.push(inspect),
            Err(error) => errors.push_str(&format!("error: {}\n", error_chain(&error))),
        }
    }
    let out = match args.format {
        InspectFormat::Json => json(&found),
        InspectFormat::Table => found.iter().map(readable).collect::<Vec<_>>().join("\n"),
    };
    let code = emit(&out);
    if errors.is_empty() {
        return code;
    }
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), errors.as_bytes());
    ExitCode::FAILURE
}

/// Docker's layout: a pretty-printed array indented by four spaces.
fn json(images: &[ImageInspect]) -> String {
    let pretty = serde_json::to_string_pretty(images).expect("inspect data is plain JSON values");
    // serde_json indents by two; JSON strings cannot hold raw newlines, so leading spaces are only indentation.
    let mut out = String::with_capacity(pretty.len() * 2);
    for line in pretty.lines() {
        let text = line.trim_start_matches(' ');
        out.extend(std::iter::repeat_n(' ', (line.len() - text.len()) * 2));
        out.push_str(text);
        out.push('\n');
    }
    out
}

fn readable(image: &ImageInspect) -> String {
    let config = &image.config;
    let field = |key: &str| -> String {
        match config.get(key) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => items.iter().map(plain).collect::<Vec<_>>().join(" "),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    _ => k.clone(),
                })
                .collect::<Vec<_>>()
                .join(", "),
            Some(other) => other.to_string(),
        }
    };
    let created = image.created.as_deref().map_or_else(
        || "N/A".to_owned(),
        |text| {
            format!(
                "{text} ({})",
                since(units::parse_timestamp(text), SystemTime::now())
            )
        },
    );
    let mut platform = format!("{}/{}", image.os, image.architecture);
    if let Some(variant) = &image.variant {
        platform.push('/');
        platform.push_str(variant);
    }
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        if !value.is_empty() {
            out.push_str(&format!("{:<14}{value}\n", format!("{label}:")));
        }
    };
    line("ID", image.id.clone());
    line("References", image.repo_tags.join(", "));
    line("Created", created);
    line("Platform", platform);
    line("Size", units::human_size_short(image.size));
    line(
        "Manifest",
        format!(
            "{} ({})",
            image
                .descriptor
                .get("digest")
                .map(plain)
                .unwrap_or_default(),
            image
                .descriptor
                .get("mediaType")
                .map(plain)
                .unwrap_or_default()
        ),
    );
    line("User", field("User"));
    line("WorkingDir", field("WorkingDir"));
    line("Entrypoint", field("Entrypoint"));
    line("Cmd", field("Cmd"));
    line("Env", field("Env"));
    line("ExposedPorts", field("ExposedPorts"));
    line("Volumes", field("Volumes"));
    line("Labels", field("Labels"));
    line("StopSignal", field("StopSignal"));

    // History entries that made a layer, in order, give each layer its "created by".
    let created_by: Vec<String> = image
        .history
        .iter()
        .filter(|h| {
            !h.get("empty_layer")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        })
        .map(|h| h.get("created_by").map(plain).unwrap_or_default())
        .collect();
    let mut rows = vec![
        ["LAYER", "COMPRESSED", "SIZE", "DIFF ID", "CREATED BY"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for (i, layer) in image.layers.iter().enumerate() {
        let short = |digest: &str| {
            digest
                .strip_prefix("sha256:")
                .unwrap_or(digest)
                .chars()
                .take(12)
                .collect()
        };
        rows.push(vec![
            short(&layer.digest),
            units::human_size_short(layer.size),
            layer
                .content_size
                .map_or_else(|| "N/A".to_owned(), units::human_size_short),
            layer
                .diff_id
                .as_deref()
                .map_or_else(|| "N/A".to_owned(), short),
            created_by.get(i).cloned().unwrap_or_default(),
        ]);
    }
    out.push('\n');
    out.push_str(&table(&rows));
    out
}

/// A JSON value as plain text: strings without quotes.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
