//! Applies a layer blob (plain, gzip or zstd) to a directory, for timing against `tar -x` (see
//! `bench/layer-vs-tar.sh`).
//!
//! Usage: `layer-apply <blob> <dir>`.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use hoist_layer::{ApplyOptions, Decompressor, apply_layer};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(blob), Some(dir)) = (args.get(1), args.get(2)) else {
        let _ = writeln!(io::stderr(), "usage: layer-apply <blob> <dir>");
        return ExitCode::from(2);
    };
    match run(Path::new(blob), Path::new(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(io::stderr(), "layer-apply: {error}");
            let mut source = std::error::Error::source(&*error);
            while let Some(cause) = source {
                let _ = writeln!(io::stderr(), "  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(blob: &Path, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let reader = Decompressor::new(std::fs::File::open(blob)?)?;
    let report = apply_layer(reader, dir, &ApplyOptions::new())?;
    writeln!(
        io::stderr(),
        "entries {} files {} bytes {} whiteouts {}",
        report.entries,
        report.files,
        report.bytes,
        report.whiteouts
    )?;
    Ok(())
}
