//! `hoist images`: list references in the store, like `docker images`. Also the helpers the store commands share
//! (opening the store, reporting errors, Docker's table layout).

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Args, ValueEnum};
use hoist_oci::{DigestExt, ImageSummary, Reference, Store, units};

/// List images in the store.
#[derive(Debug, Args)]
pub(crate) struct ImagesArgs {
    /// Show only references of this repository (and tag, if given).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    filter: Option<String>,

    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,

    /// Show full image IDs.
    #[arg(long)]
    no_trunc: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
}

/// How `hoist images` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ListFormat {
    /// Docker's aligned columns.
    Table,
    /// One JSON object per line, with the keys of `docker images --format json`.
    Json,
}

pub(crate) fn run(root: Option<&Path>, args: &ImagesArgs) -> ExitCode {
    let result = open_store(root).and_then(|store| store.list_images());
    let mut images = match result {
        Ok(images) => images,
        Err(error) => return fail(&error),
    };
    if let Some(filter) = &args.filter {
        let (name, tag) = split_filter(filter);
        images.retain(|s| s.reference.name() == name && tag.is_none_or(|t| s.reference.tag() == t));
    }
    let now = SystemTime::now();
    let id = |s: &ImageSummary| {
        if args.no_trunc {
            s.record.id.to_string()
        } else {
            s.record.id.short_id()
        }
    };
    let mut out = String::new();
    if args.quiet {
        for summary in &images {
            out.push_str(&id(summary));
            out.push('\n');
        }
    } else if args.format == ListFormat::Json {
        for summary in &images {
            let size = summary
                .record
                .size
                .map_or_else(|| "N/A".to_owned(), units::human_size_short);
            let created = created_at(summary);
            let line = serde_json::json!({
                "Repository": summary.reference.name(),
                "Tag": summary.reference.tag(),
                "ID": id(summary),
                "Digest": summary.record.target.digest.to_string(),
                "CreatedAt": created.map_or_else(|| "N/A".to_owned(), units::format_docker_time),
                "CreatedSince": since(created, now),
                "Size": size,
                "VirtualSize": size,
                "Platform": summary.record.platform.as_ref().map(ToString::to_string),
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
    } else {
        let mut rows = vec![
            ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
                .map(str::to_owned)
                .to_vec(),
        ];
        for summary in &images {
            rows.push(vec![
                summary.reference.name().to_owned(),
                summary.reference.tag().to_owned(),
                id(summary),
                since(created_at(summary), now),
                summary
                    .record
                    .size
                    .map_or_else(|| "N/A".to_owned(), units::human_size_short),
            ]);
        }
        out = table(&rows);
    }
    emit(&out)
}

/// `name` or `name:tag`, split like a reference (a `:` before the last `/` is a registry port).
fn split_filter(filter: &str) -> (&str, Option<&str>) {
    let last_slash = filter.rfind('/').map_or(0, |i| i + 1);
    match filter[last_slash..].rfind(':') {
        Some(i) => (
            &filter[..last_slash + i],
            Some(&filter[last_slash + i + 1..]),
        ),
        None => (filter, None),
    }
}

fn created_at(summary: &ImageSummary) -> Option<SystemTime> {
    summary
        .record
        .created
        .as_deref()
        .and_then(units::parse_timestamp)
}

/// Docker's CREATED column: `2 hours ago`, or `N/A` without a timestamp.
pub(crate) fn since(created: Option<SystemTime>, now: SystemTime) -> String {
    match created {
        Some(created) => {
            let elapsed = now.duration_since(created).unwrap_or_default();
            format!("{} ago", units::human_duration(elapsed))
        }
        None => "N/A".to_owned(),
    }
}

/// Docker's table layout (Go's tabwriter with minimum width 10 and padding 3): each column as wide as its widest
/// cell plus 3, at least 10; the last column unpadded.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            let widest = rows
                .iter()
                .filter_map(|row| row.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0);
            (widest + 3).max(10)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', widths[c] - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// Opens the store at `--root`/`HOIST_ROOT`, or at the default location.
pub(crate) fn open_store(root: Option<&Path>) -> hoist_oci::Result<Store> {
    match root {
        Some(root) => Store::open(root),
        None => Store::open(Store::default_root()?),
    }
}

/// Prints `error: <message>: <cause>: …` to stderr and returns the failure exit code.
pub(crate) fn fail(error: &dyn std::error::Error) -> ExitCode {
    let _ = writeln!(io::stderr().lock(), "error: {}", error_chain(error));
    ExitCode::FAILURE
}

/// An error with its causes, `: `-separated.
pub(crate) use hoist_engine::error_chain;

/// Writes `text` to stdout. A closed pipe (`hoist images | head -1`) is not an error.
pub(crate) fn emit(text: &str) -> ExitCode {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// Parses a reference argument, for clap.
pub(crate) fn parse_reference(text: &str) -> Result<Reference, String> {
    text.parse()
        .map_err(|error: hoist_oci::Error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_docker_spacing() {
        let rows = vec![
            ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
                .map(str::to_owned)
                .to_vec(),
            ["fmt-test", "1", "b834e6fc8ce5", "56 seconds ago", "1.99MB"]
                .map(str::to_owned)
                .to_vec(),
        ];
        assert_eq!(
            table(&rows),
            "REPOSITORY   TAG       IMAGE ID       CREATED          SIZE\n\
             fmt-test     1         b834e6fc8ce5   56 seconds ago   1.99MB\n"
        );
    }

    #[test]
    fn filter_splits_like_a_reference() {
        assert_eq!(split_filter("app"), ("app", None));
        assert_eq!(split_filter("app:1"), ("app", Some("1")));
        assert_eq!(
            split_filter("localhost:5000/app"),
            ("localhost:5000/app", None)
        );
    }
}
