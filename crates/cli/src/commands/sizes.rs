//! `hoist sizes`: how big each target of a Dockerfile (or each named image) is, the way `docker images` counts it,
//! and which instructions made the biggest layers. The measuring is hoist-sizes'; this module picks the images
//! (building targets through `hoist build`, so cached results are reused) and prints.
//!
//! `hoist sizes [-f FILE] [--target T]… [--build-arg K=V]… [CONTEXT]` builds each target (default: every named
//! stage, and the last stage when it has no name); `hoist sizes IMAGE…` measures images already in the store. The
//! Dockerfile form is chosen when `-f` or `--target` is given, when nothing is, or when the one argument is a
//! directory.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, ValueEnum};
use hoist_sizes::{ImageSizes, measure, render_html, render_json, render_markdown, render_table};

use super::build::BuildArgs;
use super::images::{fail, open_store};

/// Show image sizes per build target or per image, with the biggest layers and what made them.
#[derive(Debug, Args)]
pub(crate) struct SizesArgs {
    /// The build context (default `.`), or the images to measure (`name:tag` or an ID).
    #[arg(value_name = "CONTEXT|IMAGE")]
    operands: Vec<String>,

    /// The Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,

    /// A target to build and measure; may be repeated (default: every named stage, and an unnamed last stage).
    #[arg(long = "target", value_name = "STAGE")]
    targets: Vec<String>,

    /// Set a build-time variable (`KEY=VALUE`), as `hoist build --build-arg`.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,

    /// Build progress on stderr, as `hoist build --progress` (stdout has only the report).
    #[arg(long, value_name = "TYPE", default_value = "auto",
          value_parser = ["auto", "plain", "tty"])]
    progress: String,

    /// Output format.
    #[arg(long, value_enum, default_value_t = SizesFormat::Table)]
    format: SizesFormat,

    /// Also write a self-contained HTML page (a bar chart and every layer) to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,

    /// How many of the biggest layers to show per image.
    #[arg(long, value_name = "N", default_value_t = 3)]
    top: usize,
}

/// How `hoist sizes` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SizesFormat {
    /// Aligned columns, the biggest layers one per line.
    Table,
    /// A JSON array, every layer included.
    Json,
    /// A Markdown table.
    Markdown,
}

/// `hoist build`'s command line, parsed from words, so each target builds exactly as `hoist build` would.
#[derive(Debug, Parser)]
#[command(name = "build")]
struct BuildCommand {
    #[command(flatten)]
    args: BuildArgs,
}

pub(crate) fn run(root: Option<&Path>, args: &SizesArgs) -> ExitCode {
    let dockerfile_mode = args.file.is_some()
        || !args.targets.is_empty()
        || args.operands.is_empty()
        || (args.operands.len() == 1 && Path::new(&args.operands[0]).is_dir());
    let (images, header, title) = if dockerfile_mode {
        match measure_targets(root, args) {
            Ok((images, title)) => (images, "TARGET", title),
            Err(code) => return code,
        }
    } else {
        let store = match open_store(root) {
            Ok(store) => store,
            Err(error) => return fail(&error),
        };
        let mut images = Vec::new();
        for spec in &args.operands {
            match measure(&store, spec, spec, None) {
                Ok(image) => images.push(image),
                Err(error) => return fail(&error),
            }
        }
        (images, "IMAGE", args.operands.join(", "))
    };
    let text = match args.format {
        SizesFormat::Table => render_table(&images, header, args.top),
        SizesFormat::Json => render_json(&images, args.top),
        SizesFormat::Markdown => render_markdown(&images, header, args.top),
    };
    if let Some(path) = &args.html
        && let Err(error) = fs::write(path, render_html(&images, &title))
    {
        return fail(&io::Error::new(
            error.kind(),
            format!("failed to write {}: {error}", path.display()),
        ));
    }
    match io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// Builds each target through `hoist build` (its cache makes a repeat cheap) and measures the result; the second
/// value names the report (the Dockerfile).
fn measure_targets(
    root: Option<&Path>,
    args: &SizesArgs,
) -> Result<(Vec<ImageSizes>, String), ExitCode> {
    let context = PathBuf::from(args.operands.first().map_or(".", String::as_str));
    let file = args
        .file
        .clone()
        .unwrap_or_else(|| context.join("Dockerfile"));
    let text = fs::read_to_string(&file).map_err(|error| {
        fail(&io::Error::new(
            error.kind(),
            format!("failed to read {}: {error}", file.display()),
        ))
    })?;
    let mut targets = hoist_sizes::stage_targets(&text, &args.build_args).map_err(|e| fail(&e))?;
    if !args.targets.is_empty() {
        for wanted in &args.targets {
            if !targets
                .iter()
                .any(|t| t.name.as_deref() == Some(wanted.to_lowercase().as_str()))
            {
                return Err(fail(&io::Error::other(format!(
                    "target stage {wanted:?} could not be found in {}",
                    file.display()
                ))));
            }
        }
        targets.retain(|t| {
            t.name
                .as_deref()
                .is_some_and(|name| args.targets.iter().any(|w| w.to_lowercase() == name))
        });
    }
    let store = open_store(root).map_err(|e| fail(&e))?;
    let mut images = Vec::new();
    for (position, target) in targets.iter().enumerate() {
        // The store keeps only tagged images, so the result gets a temporary name while it is measured.
        let temporary = format!("hoist-sizes-{}-{position}:measuring", std::process::id());
        let mut words = vec![
            "build".to_owned(),
            "--progress".to_owned(),
            args.progress.clone(),
            "-f".to_owned(),
            file.display().to_string(),
            "-t".to_owned(),
            temporary.clone(),
        ];
        if let Some(name) = &target.name {
            words.extend(["--target".to_owned(), name.clone()]);
        }
        for arg in &args.build_args {
            words.extend(["--build-arg".to_owned(), arg.clone()]);
        }
        words.push(context.display().to_string());
        let command = BuildCommand::try_parse_from(&words)
            .expect("hoist sizes passes hoist build only flags it defines");
        let built = super::build::run(root, &command.args);
        if built != ExitCode::SUCCESS {
            let _ = writeln!(
                io::stderr(),
                "hoist sizes: building target {} failed",
                target.label()
            );
            return Err(built);
        }
        let measured = measure(&store, &temporary, target.label(), Some(&target.base));
        let _ = store.remove_image(&temporary, false);
        let image = measured.map_err(|e| fail(&e))?;
        images.push(image);
    }
    Ok((images, file.display().to_string()))
}
