//! Arbitrary bytes (plain tar, gzip or zstd: the decompressor picks by magic bytes) applied as a
//! layer into a fresh directory. Errors are fine; panics, hangs and any change outside the
//! target are not: a sibling directory with a file, a symlink and a subdirectory must stay
//! exactly as it was, and nothing new may appear beside the target.
#![no_main]

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use hoist_layer::{ApplyOptions, Decompressor, ParentSymlinks, apply_layer};
use libfuzzer_sys::fuzz_target;

/// Decompressed bytes read at most: a small zstd input can announce gigabytes of output, and
/// the fuzzer should spend its time on archive structure, not on filling the disk.
const MAX_UNCOMPRESSED: u64 = 16 * 1024 * 1024;

/// (name, size, mode, mtime, link target) of everything under `dir`, sorted.
fn listing(dir: &Path, out: &mut Vec<(String, u64, u32, i64, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("the sentinel directory is readable")
        .map(|e| e.expect("a sentinel entry is readable").path())
        .collect();
    entries.sort();
    for path in entries {
        let meta = std::fs::symlink_metadata(&path).expect("a sentinel entry can be stat'ed");
        let link = std::fs::read_link(&path)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        out.push((
            path.display().to_string(),
            meta.size(),
            meta.mode(),
            meta.mtime(),
            link,
        ));
        if meta.is_dir() {
            listing(&path, out);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, archive)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir can be created");
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&root).expect("root created");
    std::fs::create_dir_all(outside.join("sub")).expect("sentinel created");
    std::fs::write(outside.join("passwd"), b"host secret\n").expect("sentinel file written");
    std::os::unix::fs::symlink("passwd", outside.join("link")).expect("sentinel link created");
    // Inside the target, links out of it, as a lower layer could have left them.
    std::os::unix::fs::symlink(&outside, root.join("out")).expect("link to outside created");
    std::os::unix::fs::symlink("../outside", root.join("up")).expect("relative link created");
    let mut before = Vec::new();
    listing(dir.path(), &mut before);
    before.retain(|e| !e.0.starts_with(root.to_str().expect("temp paths are UTF-8")));

    let options = ApplyOptions::new().with_parent_symlinks(if flags & 1 == 0 {
        ParentSymlinks::FollowWithinRoot
    } else {
        ParentSymlinks::Reject
    });
    if let Ok(reader) = Decompressor::new(archive) {
        let _ = apply_layer(reader.take(MAX_UNCOMPRESSED), &root, &options);
    }

    let mut after = Vec::new();
    listing(dir.path(), &mut after);
    after.retain(|e| !e.0.starts_with(root.to_str().expect("temp paths are UTF-8")));
    assert_eq!(before, after, "applying a layer changed something outside its target");
    assert_eq!(
        std::fs::read(outside.join("passwd")).expect("sentinel file readable"),
        b"host secret\n"
    );
});
