//! Filesystems made of layers: unpacked once into the store's snapshot area (by hoist-sandbox), and a read-only
//! merged view over the unpacked directories that follows overlayfs's rules (whiteouts, opaque directories)
//! without mounting anything. COPY reads its sources and inspects its destination through it.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use hoist_oci::oci_spec::image::{
    DescriptorBuilder, ImageConfiguration, ImageManifestBuilder, MediaType,
};
use hoist_oci::{DigestExt, Image, ImageLayer, Store};

use crate::cache::{Layer, LayerRef};
use crate::error::{EngineError, Result};

/// The directories of `layers`, bottom first: a pending layer's is the one its step left, a blob's its unpacked
/// copy (made once per store, on first use, unless the blob was written from a step's directory: then that one).
/// Each is protected from prune while `store` lives.
pub(crate) fn unpack(store: &Store, layers: &[Layer]) -> Result<Vec<PathBuf>> {
    layers
        .iter()
        .map(|layer| match layer {
            Layer::Pending(pending) => crate::pending::directory(store, &pending.snapshot),
            Layer::Blob(blob) => unpack_blob(store, blob),
        })
        .collect()
}

/// Unpacks one blob (once per store) and returns its directory.
///
/// Adapter: hoist-sandbox's `unpack_layers` takes an [`Image`]; a minimal image carrying only the layer is made for
/// it.
fn unpack_blob(store: &Store, layer: &LayerRef) -> Result<PathBuf> {
    let descriptor = DescriptorBuilder::default()
        .media_type(MediaType::from(layer.media_type.as_str()))
        .digest(layer.digest.to_oci())
        .size(layer.size)
        .build()
        .expect("media type, digest and size are all a descriptor requires");
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .config(descriptor.clone())
        .layers(vec![descriptor.clone()])
        .build()
        .expect("schema version, config and layers are all a manifest requires");
    let image = Image {
        references: Vec::new(),
        target: descriptor.clone(),
        index: None,
        manifest_descriptor: descriptor.clone(),
        manifest,
        id: layer.digest,
        config_bytes: Vec::new(),
        config: ImageConfiguration::default(),
        layers: vec![ImageLayer {
            descriptor,
            info: None,
        }],
    };
    let mut dirs =
        hoist_sandbox::unpack_layers(store, &image).map_err(|source| EngineError::Sandbox {
            what: "failed to unpack layers".to_owned(),
            source: Box::new(source),
        })?;
    dirs.pop()
        .ok_or_else(|| EngineError::invalid("unpacking a layer gave no directory"))
}

/// A read-only union of unpacked layer directories (bottom first).
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerView {
    dirs: Vec<PathBuf>,
}

fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 4];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            rustix::fs::lgetxattr(dir, *name, &mut buf).is_ok_and(|n| n >= 1 && buf[0] == b'y')
        })
}

/// The normal components of a path inside the root (`..` is clamped at the root, as Docker does).
pub(crate) fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

impl LayerView {
    pub(crate) fn new(dirs: Vec<PathBuf>) -> Self {
        Self { dirs }
    }

    /// Where `rel` is, as the merged filesystem shows it, with its metadata (not following a final symlink).
    pub(crate) fn lookup(&self, rel: &Path) -> Option<(PathBuf, fs::Metadata)> {
        let rel = clean(rel);
        let parts: Vec<_> = rel.components().collect();
        if parts.is_empty() {
            let top = self.dirs.last()?;
            return fs::symlink_metadata(top).ok().map(|m| (top.clone(), m));
        }
        for dir in self.dirs.iter().rev() {
            let mut path = dir.clone();
            let mut hidden_below = false;
            for (i, part) in parts.iter().enumerate() {
                path.push(part);
                let Ok(meta) = fs::symlink_metadata(&path) else {
                    break;
                };
                if is_whiteout(&meta) {
                    return None;
                }
                if i + 1 == parts.len() {
                    return Some((path, meta));
                }
                if !meta.is_dir() {
                    return None;
                }
                if is_opaque(&path) {
                    hidden_below = true;
                }
            }
            if hidden_below {
                return None;
            }
        }
        None
    }

    /// `path` with symlinks in its parents (and in its last element when `follow_last`) resolved inside the root,
    /// as the container would see it: absolute targets start again at the root, `..` stops at the root.
    pub(crate) fn resolve(&self, path: &Path, follow_last: bool) -> PathBuf {
        fn parts(path: &Path) -> std::collections::VecDeque<OsString> {
            path.components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n.to_owned()),
                    Component::ParentDir => Some(OsString::from("..")),
                    _ => None,
                })
                .collect()
        }
        let mut pending = parts(path);
        let mut resolved = PathBuf::new();
        let mut hops = 0;
        while let Some(part) = pending.pop_front() {
            if part == ".." {
                resolved.pop();
                continue;
            }
            let candidate = resolved.join(&part);
            if (follow_last || !pending.is_empty())
                && hops < 40
                && let Some((abs, meta)) = self.lookup(&candidate)
                && meta.file_type().is_symlink()
                && let Ok(target) = fs::read_link(&abs)
            {
                hops += 1;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                let mut next = parts(&target);
                next.extend(pending);
                pending = next;
                continue;
            }
            resolved = candidate;
        }
        resolved
    }

    /// The names in directory `rel`, merged across layers, sorted.
    pub(crate) fn list(&self, rel: &Path) -> Result<Vec<OsString>> {
        let rel = clean(rel);
        let mut names = std::collections::BTreeMap::<OsString, bool>::new();
        for dir in self.dirs.iter().rev() {
            let path = dir.join(&rel);
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_dir() {
                break;
            }
            let entries = fs::read_dir(&path).map_err(|e| EngineError::io("read", &path, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| EngineError::io("read", &path, e))?;
                let name = entry.file_name();
                if names.contains_key(&name) {
                    continue;
                }
                let whiteout = entry.metadata().is_ok_and(|m| is_whiteout(&m));
                names.insert(name, !whiteout);
            }
            if is_opaque(&path) {
                break;
            }
        }
        Ok(names
            .into_iter()
            .filter_map(|(name, visible)| visible.then_some(name))
            .collect())
    }

    /// A file's contents, following the merged view (`None` when absent).
    pub(crate) fn read_file(&self, path: &str) -> Option<Vec<u8>> {
        let (found, meta) = self.lookup(Path::new(path))?;
        if !meta.is_file() {
            return None;
        }
        fs::read(found).ok()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use rustix::fs::{CWD, FileType, Mode, mknodat};

    use super::LayerView;

    /// Two layers: the upper one deletes `gone` (a whiteout), replaces `dir` (opaque) and adds a file.
    #[test]
    fn the_merged_view_follows_overlay_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("lower");
        let upper = tmp.path().join("upper");
        fs::create_dir_all(lower.join("dir")).unwrap();
        fs::write(lower.join("dir/old"), "old").unwrap();
        fs::write(lower.join("gone"), "gone").unwrap();
        fs::write(lower.join("kept"), "kept").unwrap();
        fs::create_dir_all(upper.join("dir")).unwrap();
        fs::write(upper.join("dir/new"), "new").unwrap();
        fs::write(upper.join("added"), "added").unwrap();
        let whiteout = upper.join("gone");
        mknodat(CWD, &whiteout, FileType::CharacterDevice, Mode::empty(), 0)
            .expect("creating a whiteout needs CAP_MKNOD (the engine's tests run as root)");
        rustix::fs::setxattr(
            upper.join("dir"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let view = LayerView::new(vec![lower, upper]);
        assert_eq!(view.read_file("/kept").as_deref(), Some(&b"kept"[..]));
        assert_eq!(view.read_file("/added").as_deref(), Some(&b"added"[..]));
        assert!(view.lookup(Path::new("gone")).is_none(), "whited out");
        assert!(
            view.lookup(Path::new("dir/old")).is_none(),
            "hidden by the opaque dir"
        );
        assert_eq!(view.read_file("dir/new").as_deref(), Some(&b"new"[..]));
        let names: Vec<String> = view
            .list(Path::new(""))
            .unwrap()
            .into_iter()
            .map(|n| n.into_string().unwrap())
            .collect();
        assert_eq!(names, ["added", "dir", "kept"]);
        let in_dir: Vec<String> = view
            .list(Path::new("dir"))
            .unwrap()
            .into_iter()
            .map(|n| n.into_string().unwrap())
            .collect();
        assert_eq!(in_dir, ["new"]);
    }
}
