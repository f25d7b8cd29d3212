//! A step's snapshot and diff, for timing against `cp -a` of the same files (see `bench/run-vs-docker.sh`).
//!
//! Usage: `snapshot-diff <data-dir> <scratch-dir> <output>`. Makes an overlay snapshot over an empty layer in
//! `scratch-dir`, moves `data-dir` into its upper directory (a rename: as if a step had written the files there),
//! writes the diff as an uncompressed layer tar to `output`, moves the data back and drops the snapshot. What is
//! timed is what a RUN step costs around its command: the snapshot's directories, the walk of the upper
//! directory, reading every file and writing the tar.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use hoist_layer::WriteOptions;
use hoist_sandbox::{Snapshot, SnapshotKind};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(data), Some(scratch), Some(output)) = (args.get(1), args.get(2), args.get(3)) else {
        let _ = writeln!(
            io::stderr(),
            "usage: snapshot-diff <data-dir> <scratch-dir> <output>"
        );
        return ExitCode::from(2);
    };
    match run(Path::new(data), Path::new(scratch), Path::new(output)) {
        Ok(entries) => {
            let _ = writeln!(io::stderr(), "{entries} entries");
            ExitCode::SUCCESS
        }
        Err(error) => {
            let _ = writeln!(io::stderr(), "snapshot-diff: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(data: &Path, scratch: &Path, output: &Path) -> Result<u64, Box<dyn std::error::Error>> {
    let lower = scratch.join("empty-layer");
    fs::create_dir_all(&lower)?;
    let snapshot = Snapshot::from_layers(vec![lower], scratch, SnapshotKind::Overlay)?;
    let moved = snapshot.upper().join("data");
    fs::rename(data, &moved)?;
    let written = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(output)?);
        let summary = snapshot.write_diff(&mut out, WriteOptions::new())?;
        out.flush()?;
        Ok::<_, Box<dyn std::error::Error>>(summary.entries)
    })();
    fs::rename(&moved, data)?;
    written
}
