//! Our output read by other implementations: GNU tar, Python's tarfile, gzip, pigz, zstd and
//! Go's compress/gzip.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use hoist_layer::{
    CompressOptions, Compression, LayerBlobWriter, WriteOptions, apply_layer, write_layer,
};

use crate::common::*;

fn blob(root: &Path, compression: Compression) -> (Vec<u8>, Vec<u8>) {
    let tar = tar_of(root, &WriteOptions::new());
    let mut writer = LayerBlobWriter::new(
        Vec::new(),
        compression,
        &CompressOptions::default().with_threads(2),
    )
    .unwrap();
    write_layer(root, &mut writer, &WriteOptions::new()).unwrap();
    (tar, writer.finish().unwrap().0)
}

fn run_with_stdin(command: &mut Command, input: &[u8]) -> Vec<u8> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {command:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn gnu_tar_lists_and_extracts_our_output() {
    let src = tempdir();
    build_rich_tree(src.path());
    let work = tempdir();
    let tar_path = work.path().join("layer.tar");
    std::fs::write(&tar_path, tar_of(src.path(), &WriteOptions::new())).unwrap();

    let listing = run(Command::new("tar").arg("-tf").arg(&tar_path));
    let listing = String::from_utf8(listing).unwrap();
    let listed: Vec<&str> = listing.lines().collect();
    // GNU tar prints names escaped; spot-check the structure rather than every byte.
    assert_eq!(listed[0], "a/");
    assert!(listed.contains(&"a/b/c/big.bin"));
    assert!(
        listed
            .iter()
            .any(|l| l.starts_with("long/nnnn") && l.len() > 150)
    );
    assert!(listed.iter().any(|l| l.ends_with("/file") && l.len() > 290));
    assert!(
        !listed
            .iter()
            .any(|l| l.starts_with("./") || l.starts_with('/'))
    );

    let out = tempdir();
    run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(&tar_path)
        .arg("-C")
        .arg(out.path()));
    assert_same_tree(
        &snapshot(src.path(), Compare::ALL),
        &snapshot(out.path(), Compare::ALL),
    );
}

#[test]
fn python_tarfile_sees_buildkit_style_headers() {
    let src = tempdir();
    build_rich_tree(src.path());
    let work = tempdir();
    let tar_path = work.path().join("layer.tar");
    std::fs::write(&tar_path, tar_of(src.path(), &WriteOptions::new())).unwrap();
    let script = r#"
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    for m in t.getmembers():
        print(repr(m.name), m.type.decode(), oct(m.mode), m.uid, m.gid, repr(m.uname), repr(m.gname),
              m.mtime, repr(m.linkname), sorted(m.pax_headers.items()))
"#;
    let output = run(Command::new("python3").arg("-c").arg(script).arg(&tar_path));
    let output = String::from_utf8(output).unwrap();
    let line = |name: &str| {
        output
            .lines()
            .find(|l| l.starts_with(&format!("{name:?} ").replace('"', "'")))
            .unwrap_or_else(|| panic!("{name} not listed in:\n{output}"))
            .to_owned()
    };
    for l in output.lines() {
        // Empty uname/gname and permission-only modes on every entry.
        assert!(l.contains(" '' '' "), "uname/gname not empty: {l}");
    }
    assert!(
        line("a/b/c").starts_with("'a/b/c' 5 0o750 "),
        "{}",
        line("a/b/c")
    );
    assert!(line("a/b/setuid").starts_with("'a/b/setuid' 0 0o4755 "));
    assert!(
        line("hello.txt").contains(" 1 0o644 "),
        "hard link entry: {}",
        line("hello.txt")
    );
    assert!(line("hello.txt").contains("'a/hl'"));
    assert!(line("all-bytes").contains(r"('SCHILY.xattr.user.binary', 'line1\nline2\x00nul"));
    assert!(line("pipe").starts_with("'pipe' 6 0o640 "));
    if is_root() {
        assert!(
            line("empty-file").contains(" 3000000 3000001 "),
            "{}",
            line("empty-file")
        );
        assert!(line("empty-file").contains("('uid', '3000000')"));
        assert!(line("dev/null").starts_with("'dev/null' 3 0o666 "));
    }
}

#[test]
fn compressors_and_decompressors_accept_our_blobs() {
    let src = tempdir();
    build_rich_tree(src.path());
    let (tar, gzip) = blob(src.path(), Compression::Gzip);
    let (_, zstd) = blob(src.path(), Compression::Zstd);
    assert!(
        gzip.len() > 3 * 256 * 1024,
        "gzip blob must span several parallel blocks"
    );

    for tool in ["gzip", "pigz"] {
        run_with_stdin(Command::new(tool).arg("-t"), &gzip);
        assert_eq!(
            run_with_stdin(Command::new(tool).arg("-dc"), &gzip),
            tar,
            "{tool} -dc"
        );
    }
    run_with_stdin(Command::new("zstd").arg("-t"), &zstd);
    assert_eq!(run_with_stdin(Command::new("zstd").arg("-dc"), &zstd), tar);

    // flate2's single-member reader: our parallel gzip is one member, not several.
    let mut single = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut single).unwrap();
    assert_eq!(single, tar);

    // And the applier reads what pigz and zstd (the reference tools) compress.
    for (tool, args) in [("pigz", ["-c", "-6"]), ("zstd", ["-c", "-q"])] {
        let compressed = run_with_stdin(Command::new(tool).args(args), &tar);
        let dst = tempdir();
        apply_layer(
            hoist_layer::Decompressor::new(&compressed[..]).unwrap(),
            dst.path(),
            &hoist_layer::ApplyOptions::new(),
        )
        .unwrap();
        assert_same_tree(
            &snapshot(src.path(), Compare::ALL),
            &snapshot(dst.path(), Compare::ALL),
        );
    }
}

#[test]
fn go_gzip_reader_accepts_our_gzip() {
    let src = tempdir();
    build_rich_tree(src.path());
    let (tar, gzip) = blob(src.path(), Compression::Gzip);
    let work = tempdir();
    let program = work.path().join("gunzip.go");
    std::fs::write(
        &program,
        r#"package main

import (
	"compress/gzip"
	"io"
	"os"
)

func main() {
	r, err := gzip.NewReader(os.Stdin)
	if err != nil {
		panic(err)
	}
	r.Multistream(false) // our blob must be a single member
	if _, err := io.Copy(os.Stdout, r); err != nil {
		panic(err)
	}
	if err := r.Close(); err != nil {
		panic(err)
	}
}
"#,
    )
    .unwrap();
    let go = ["/usr/bin/go", "/usr/local/go/bin/go"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Go toolchain needed for this test: apt-get install -y golang-go");
    let out = run_with_stdin(
        Command::new(go)
            .arg("run")
            .arg(&program)
            .env("GOCACHE", std::env::temp_dir().join("hoist-layer-go-cache"))
            .env("GOFLAGS", "-mod=mod")
            .env("GO111MODULE", "off"),
        &gzip,
    );
    assert_eq!(out, tar);
}
