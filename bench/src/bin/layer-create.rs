//! Writes a directory as a layer blob, for timing against `tar | gzip` (see
//! `bench/layer-vs-tar.sh`).
//!
//! Usage: `layer-create <dir> <none|gzip|zstd> [<output>]` (output defaults to stdout). Prints
//! the diffID, blob digest and sizes to stderr.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::ExitCode;

use hoist_layer::{CompressOptions, Compression, LayerBlobWriter, WriteOptions, write_layer};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(compression)) = (args.get(1), args.get(2)) else {
        let _ = writeln!(
            io::stderr(),
            "usage: layer-create <dir> <none|gzip|zstd> [<output>]"
        );
        return ExitCode::from(2);
    };
    match run(Path::new(dir), compression, args.get(3).map(Path::new)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(io::stderr(), "layer-create: {error}");
            let mut source = std::error::Error::source(&*error);
            while let Some(cause) = source {
                let _ = writeln!(io::stderr(), "  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(
    dir: &Path,
    compression: &str,
    output: Option<&Path>,
) -> Result<(), Box<dyn std::error::Error>> {
    let compression: Compression = compression.parse()?;
    let sink: Box<dyn Write + Send> = match output {
        Some(path) => Box::new(std::fs::File::create(path)?),
        // Not `io::stdout()`: it is line-buffered and would scan the binary blob for newlines.
        None => Box::new(std::fs::File::from(
            io::stdout().as_fd().try_clone_to_owned()?,
        )),
    };
    let mut blob = LayerBlobWriter::new(sink, compression, &CompressOptions::default())?;
    let summary = write_layer(dir, &mut blob, &WriteOptions::new())?;
    let (_, digests) = blob.finish()?;
    writeln!(
        io::stderr(),
        "entries {} diff_id {} ({} bytes) blob {} ({} bytes, {})",
        summary.entries,
        digests.diff_id,
        digests.uncompressed_size,
        digests.digest,
        digests.size,
        digests.compression
    )?;
    Ok(())
}
