//! `Store::check`: prove the store is whole, the way `git fsck` does for a repository.
//!
//! The store's promise is that a crash at any point leaves the previous state plus leftovers. This module is how that
//! promise is checked (by `hoist check` and by the crash tests): every blob re-hashed to its name, every reference
//! resolving to a stored image whose manifest, config and layers are all present with the sizes their descriptors
//! give, and every layer record readable. Leftovers of killed writers are counted, not reported as damage: they are
//! invisible to readers and `hoist prune` removes them.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Mutex;

use oci_spec::image::Descriptor;

use crate::digest::digest_from_oci;
use crate::error::error_chain;
use crate::layer_info::LayerRecord;
use crate::layout::Layout;
use crate::media_type::{MediaKind, classify};
use crate::references::ImagePlatform;
use crate::{Digest, Error, Result, Store};

/// What to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// Re-hash every blob (reads the whole store). Without it, only names, sizes and the reference graph are checked.
    pub verify_content: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            verify_content: true,
        }
    }
}

/// One thing found wrong with a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A blob's bytes do not hash to its name.
    CorruptBlob { digest: Digest, actual: Digest },
    /// A file under `blobs-v1/sha256/` that is not named by a digest.
    StrayBlobFile { path: PathBuf },
    /// A blob that exists but cannot be read.
    UnreadableBlob { digest: Digest, error: String },
    /// `references-v1.json` cannot be read or parsed.
    UnreadableIndex { error: String },
    /// A reference points at a target that has no image record.
    DanglingReference { reference: String, target: Digest },
    /// A blob an image needs is not in the store.
    MissingBlob {
        /// The reference (or target) through which the blob is needed.
        needed_by: String,
        /// What the blob is: manifest, index, config or layer.
        what: &'static str,
        digest: Digest,
    },
    /// A stored blob's size differs from the size its descriptor gives.
    SizeMismatch {
        needed_by: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    /// A manifest, index or config that does not parse, or a descriptor with an invalid digest.
    InvalidJson {
        needed_by: String,
        digest: Digest,
        error: String,
    },
    /// A descriptor whose digest is not a valid `sha256:` digest.
    InvalidDigest {
        needed_by: String,
        /// The digest as the descriptor gives it.
        digest: String,
    },
    /// The image record's ID is not the config digest its manifest names.
    WrongImageId {
        reference: String,
        recorded: Digest,
        actual: Digest,
    },
    /// A layer record (`layers-v1/`) that does not parse.
    InvalidLayerRecord { digest: Digest },
    /// A layer's recorded compressed variant (`variants` in its record) whose own record gives another diffID: a
    /// push would send different content than the image's config names.
    VariantMismatch {
        layer: Digest,
        variant: Digest,
        layer_diff_id: Digest,
        variant_diff_id: Digest,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CorruptBlob { digest, actual } => {
                write!(
                    f,
                    "blob {digest} is corrupt: its content hashes to {actual}"
                )
            }
            Self::StrayBlobFile { path } => {
                write!(f, "{} is not named by a digest", path.display())
            }
            Self::UnreadableBlob { digest, error } => {
                write!(f, "blob {digest} cannot be read: {error}")
            }
            Self::UnreadableIndex { error } => {
                write!(f, "the reference index is unreadable: {error}")
            }
            Self::DanglingReference { reference, target } => {
                write!(
                    f,
                    "reference {reference} points at {target}, which has no image record"
                )
            }
            Self::MissingBlob {
                needed_by,
                what,
                digest,
            } => write!(f, "{needed_by}: {what} {digest} is missing"),
            Self::SizeMismatch {
                needed_by,
                digest,
                expected,
                actual,
            } => write!(
                f,
                "{needed_by}: blob {digest} has {actual} bytes, its descriptor says {expected}"
            ),
            Self::InvalidJson {
                needed_by,
                digest,
                error,
            } => write!(f, "{needed_by}: {digest} is not valid: {error}"),
            Self::InvalidDigest { needed_by, digest } => {
                write!(f, "{needed_by}: {digest:?} is not a valid digest")
            }
            Self::WrongImageId {
                reference,
                recorded,
                actual,
            } => write!(
                f,
                "{reference}: the image record says ID {recorded}, the manifest's config is {actual}"
            ),
            Self::InvalidLayerRecord { digest } => {
                write!(f, "the layer record of {digest} does not parse")
            }
            Self::VariantMismatch {
                layer,
                variant,
                layer_diff_id,
                variant_diff_id,
            } => write!(
                f,
                "layer {layer} (diffID {layer_diff_id}) records the variant {variant}, whose diffID is {variant_diff_id}"
            ),
        }
    }
}

/// What [`Store::check`] looked at and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Blobs in the store.
    pub blobs: usize,
    /// Bytes re-hashed (zero without `verify_content`).
    pub verified_bytes: u64,
    /// References checked.
    pub references: usize,
    /// Leftovers of interrupted writes (ingest files, unfinished entries, temp files): harmless, removed by prune.
    pub leftovers: usize,
    /// Everything wrong, in a stable order.
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Store {
    /// Verifies the store without changing it. Runs concurrently with builds: it takes no lock, and only looks at
    /// what is already visible, which is complete by construction.
    pub fn check(&self, options: &CheckOptions) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let blobs = list_blobs(self.layout(), &mut report)?;
        report.blobs = blobs.len();
        if options.verify_content {
            self.verify_blobs(&blobs, &mut report);
        }
        self.check_references(&mut report);
        self.check_layer_records(&mut report)?;
        report.leftovers = count_leftovers(self.layout())?;
        Ok(report)
    }

    /// Re-hashes every blob, on as many threads as there are cores.
    fn verify_blobs(&self, blobs: &[Digest], report: &mut CheckReport) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let next = Mutex::new(blobs.iter());
        let found = Mutex::new((Vec::new(), 0u64));
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let Some(digest) = next
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .next()
                        else {
                            return;
                        };
                        let outcome = self.hash_blob(digest);
                        let mut found = found
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        match outcome {
                            Ok((actual, size)) => {
                                found.1 += size;
                                if actual != *digest {
                                    found.0.push(Problem::CorruptBlob {
                                        digest: *digest,
                                        actual,
                                    });
                                }
                            }
                            Err(error) => found.0.push(Problem::UnreadableBlob {
                                digest: *digest,
                                error: error.to_string(),
                            }),
                        }
                    }
                });
            }
        });
        let (mut problems, bytes) = found
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        problems.sort_by_key(|problem| problem.to_string());
        report.verified_bytes = bytes;
        report.problems.extend(problems);
    }

    fn hash_blob(&self, digest: &Digest) -> io::Result<(Digest, u64)> {
        let file = fs::File::open(self.layout().blob(digest))?;
        let mut reader = hoist_layer::DigestReader::new(file);
        let mut buffer = vec![0; 1 << 20];
        while reader.read(&mut buffer)? != 0 {}
        let (_, digested) = reader.finish()?;
        Ok((digested.digest, digested.size))
    }

    /// Follows every reference: record → target → (index →) manifest → config and layers.
    fn check_references(&self, report: &mut CheckReport) {
        let index = match self.load_index() {
            Ok(index) => index,
            Err(error) => {
                report.problems.push(Problem::UnreadableIndex {
                    error: error_chain(&error),
                });
                return;
            }
        };
        report.references = index.references.len();
        for (reference, target) in &index.references {
            let Some(record) = index.images.get(target) else {
                report.problems.push(Problem::DanglingReference {
                    reference: reference.clone(),
                    target: *target,
                });
                continue;
            };
            let descriptor = record.target.to_descriptor();
            let mut graph = GraphCheck {
                store: self,
                needed_by: reference,
                problems: &mut report.problems,
            };
            if let Some(config) = graph.image(&descriptor)
                && config != record.id
            {
                report.problems.push(Problem::WrongImageId {
                    reference: reference.clone(),
                    recorded: record.id,
                    actual: config,
                });
            }
        }
    }

    /// Every layer record must parse (one whose blob is gone is a leftover of prune, not damage), and each variant it
    /// records must have its diffID.
    fn check_layer_records(&self, report: &mut CheckReport) -> Result<()> {
        let dir = self.layout().layers_dir();
        for entry in read_dir(&dir)? {
            let name = entry.file_name();
            let Some(digest) = name
                .to_str()
                .and_then(|name| name.strip_suffix(".json"))
                .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
            else {
                continue;
            };
            let record = fs::read(entry.path())
                .ok()
                .and_then(|bytes| serde_json::from_slice::<LayerRecord>(&bytes).ok());
            let Some(record) = record else {
                if self.has_blob(&digest) {
                    report.problems.push(Problem::InvalidLayerRecord { digest });
                }
                continue;
            };
            // A variant whose blob (or record) is gone was pruned: it counts as absent, which is not damage.
            for variant in record.variants.values() {
                if let Ok(Some(other)) = self.layer_info(variant)
                    && self.has_blob(variant)
                    && other.diff_id != record.info.diff_id
                {
                    report.problems.push(Problem::VariantMismatch {
                        layer: digest,
                        variant: *variant,
                        layer_diff_id: record.info.diff_id,
                        variant_diff_id: other.diff_id,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Walks one image's blob graph, recording what is missing or wrong.
struct GraphCheck<'a> {
    store: &'a Store,
    needed_by: &'a str,
    problems: &'a mut Vec<Problem>,
}

impl GraphCheck<'_> {
    /// Checks the image a target descriptor describes; returns its config digest when the manifest was readable.
    fn image(&mut self, target: &Descriptor) -> Option<Digest> {
        match classify(target.media_type()) {
            MediaKind::Index => {
                let bytes = self.blob(target, "index")?;
                let digest = digest_of(target)?;
                let index: oci_spec::image::ImageIndex = self.parse(&bytes, digest)?;
                // Only the host platform's manifest is pulled; the others are not expected locally.
                let host = ImagePlatform::host();
                let chosen = crate::image::choose_platform(&index, &host)?;
                self.manifest(&chosen)
            }
            _ => self.manifest(target),
        }
    }

    fn manifest(&mut self, descriptor: &Descriptor) -> Option<Digest> {
        let bytes = self.blob(descriptor, "manifest")?;
        let digest = digest_of(descriptor)?;
        let manifest: oci_spec::image::ImageManifest = self.parse(&bytes, digest)?;
        let config = digest_of(manifest.config());
        if let Some(config_bytes) = self.blob(manifest.config(), "config")
            && let Some(config) = config
        {
            self.parse::<serde_json::Value>(&config_bytes, config);
        }
        for layer in manifest.layers() {
            self.present(layer, "layer");
        }
        config
    }

    /// Whether the blob is there with the descriptor's size.
    fn present(&mut self, descriptor: &Descriptor, what: &'static str) -> bool {
        let Some(digest) = digest_of(descriptor) else {
            self.problems.push(Problem::InvalidDigest {
                needed_by: self.needed_by.to_owned(),
                digest: descriptor.digest().to_string(),
            });
            return false;
        };
        match self.store.blob_size(&digest) {
            Ok(actual) if actual == descriptor.size() => true,
            Ok(actual) => {
                self.problems.push(Problem::SizeMismatch {
                    needed_by: self.needed_by.to_owned(),
                    digest,
                    expected: descriptor.size(),
                    actual,
                });
                false
            }
            Err(Error::BlobNotFound { .. }) => {
                self.problems.push(Problem::MissingBlob {
                    needed_by: self.needed_by.to_owned(),
                    what,
                    digest,
                });
                false
            }
            Err(error) => {
                self.problems.push(Problem::UnreadableBlob {
                    digest,
                    error: error_chain(&error),
                });
                false
            }
        }
    }

    fn blob(&mut self, descriptor: &Descriptor, what: &'static str) -> Option<Vec<u8>> {
        if !self.present(descriptor, what) {
            return None;
        }
        let digest = digest_of(descriptor)?;
        match self.store.read_blob(&digest) {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                self.problems.push(Problem::UnreadableBlob {
                    digest,
                    error: error_chain(&error),
                });
                None
            }
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(&mut self, bytes: &[u8], digest: Digest) -> Option<T> {
        match serde_json::from_slice(bytes) {
            Ok(value) => Some(value),
            Err(error) => {
                self.problems.push(Problem::InvalidJson {
                    needed_by: self.needed_by.to_owned(),
                    digest,
                    error: error.to_string(),
                });
                None
            }
        }
    }
}

/// A descriptor's digest, if it is a valid one (an invalid one is reported by [`GraphCheck::present`]).
fn digest_of(descriptor: &Descriptor) -> Option<Digest> {
    digest_from_oci(descriptor.digest()).ok()
}

/// The digests named under `blobs-v1/sha256/`; other names are problems.
fn list_blobs(layout: &Layout, report: &mut CheckReport) -> Result<Vec<Digest>> {
    let mut blobs = Vec::new();
    for entry in read_dir(&layout.blobs_dir())? {
        let name = entry.file_name();
        match name
            .to_str()
            .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
        {
            Some(digest) => blobs.push(digest),
            None => report
                .problems
                .push(Problem::StrayBlobFile { path: entry.path() }),
        }
    }
    blobs.sort();
    Ok(blobs)
}

/// Files and directories that only interrupted writers leave: ingest files, `.tmp-` entries, temp files.
fn count_leftovers(layout: &Layout) -> Result<usize> {
    let mut count = read_dir(&layout.ingest_dir())?.len() + read_dir(&layout.tmp_dir())?.len();
    for dir in [layout.snapshots_dir(), layout.cache_dir()] {
        count += read_dir(&dir)?
            .iter()
            .filter(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| name.starts_with(crate::area::TMP_PREFIX))
            })
            .count();
    }
    Ok(count)
}

fn read_dir(dir: &std::path::Path) -> Result<Vec<fs::DirEntry>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::ReadDir {
                path: dir.to_owned(),
                source,
            });
        }
    };
    entries
        .collect::<io::Result<Vec<_>>>()
        .map_err(|source| Error::ReadDir {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Expected, ManifestFormat, Reference};

    fn store_with_image() -> (tempfile::TempDir, Store, crate::WrittenImage) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "hello.txt", &b"hello"[..])
            .unwrap();
        let tar = tar.into_inner().unwrap();
        let layer = store.ingest_layer(&tar[..], &Expected::unknown()).unwrap();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}},"config":{{}}}}"#,
            layer.info.diff_id
        );
        let descriptor = crate::layer_descriptor(&layer, ManifestFormat::Oci);
        let image = store
            .write_image(config.as_bytes(), &[descriptor], ManifestFormat::Oci)
            .unwrap();
        store
            .tag(&"app:1".parse::<Reference>().unwrap(), &image.manifest)
            .unwrap();
        (dir, store, image)
    }

    fn make_writable(path: &std::path::Path) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    }

    #[test]
    fn a_fresh_store_with_an_image_is_whole() {
        let (_dir, store, _image) = store_with_image();
        let report = store.check(&CheckOptions::default()).unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!(report.blobs, 3);
        assert_eq!(report.references, 1);
        assert!(report.verified_bytes > 0);
    }

    #[test]
    fn a_flipped_byte_is_found_by_hashing() {
        let (_dir, store, _image) = store_with_image();
        let image = store.read_image("app:1").unwrap();
        let layer = digest_from_oci(image.layers[0].descriptor.digest()).unwrap();
        let path = store.layout().blob(&layer);
        make_writable(&path);
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] ^= 1;
        fs::write(&path, bytes).unwrap();
        let report = store.check(&CheckOptions::default()).unwrap();
        assert!(
            matches!(report.problems[..], [Problem::CorruptBlob { digest, .. }, ..] if digest == layer),
            "{:?}",
            report.problems
        );
        // Without re-hashing the same store looks whole: the size is unchanged.
        let quick = store
            .check(&CheckOptions {
                verify_content: false,
            })
            .unwrap();
        assert!(quick.is_ok(), "{:?}", quick.problems);
    }

    #[test]
    fn a_missing_layer_is_named_with_its_reference() {
        let (_dir, store, _image) = store_with_image();
        let image = store.read_image("app:1").unwrap();
        let layer = digest_from_oci(image.layers[0].descriptor.digest()).unwrap();
        fs::remove_file(store.layout().blob(&layer)).unwrap();
        let report = store.check(&CheckOptions::default()).unwrap();
        assert_eq!(
            report.problems,
            vec![Problem::MissingBlob {
                needed_by: "app:1".into(),
                what: "layer",
                digest: layer,
            }]
        );
        assert!(report.problems[0].to_string().contains("is missing"));
    }

    #[test]
    fn leftovers_are_counted_not_reported() {
        let (_dir, store, _image) = store_with_image();
        fs::write(store.layout().ingest_dir().join("killed-writer"), b"half").unwrap();
        fs::create_dir(store.layout().cache_dir().join(".tmp-abc")).unwrap();
        let report = store.check(&CheckOptions::default()).unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!(report.leftovers, 2);
    }

    #[test]
    fn a_truncated_index_is_reported() {
        let (_dir, store, _image) = store_with_image();
        fs::write(store.layout().references_file(), b"{\"refer").unwrap();
        let report = store.check(&CheckOptions::default()).unwrap();
        assert!(
            matches!(report.problems[..], [Problem::UnreadableIndex { .. }]),
            "{:?}",
            report.problems
        );
    }
}
