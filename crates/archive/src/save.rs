//! `hoist save`: images from the store into a docker-archive or an OCI image layout (tar or directory).
//!
//! Output is deterministic: entries in a fixed order, owner 0:0, mtime 0, JSON encoded canonically, so saving the
//! same images twice gives byte-identical archives.

use crate::output::OutputFile;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Descriptor, ImageIndex, ImageIndexBuilder, ImageManifestBuilder, MediaType, PlatformBuilder,
};

use hoist_layer::{Decompressor, DigestReader};
use hoist_oci::media_type::{OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST};
use hoist_oci::{
    Digest, Image, LayerCompression, Lookup, Reference, Store, digest_from_oci, encode_index,
    encode_manifest,
};

use crate::Error;
use crate::docker_archive::{MANIFEST_FILE, ManifestItem, REPOSITORIES_FILE};
use crate::names::qualified;
use crate::oci_layout::{
    CONTAINERD_NAME, INDEX_FILE, LAYOUT_CONTENT, LAYOUT_FILE, REF_NAME, blob_path, descriptor,
};
use crate::path::normalize;

/// Which archive format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaveFormat {
    /// A docker-archive that `docker load` (any version) and `skopeo … docker-archive:` read, written in the
    /// Docker ≥ 25 shape: also a valid OCI image layout, with uncompressed layers named by their diffIDs.
    #[default]
    Docker,
    /// An OCI image layout with gzip layers, as a push sends them: layers stored uncompressed (built ones) are
    /// compressed once and the variant remembered ([`Store::compressed_image`]); compressed ones are copied as
    /// stored. The config, and so the image ID, is the stored one. [`save_oci_archive`] takes other compressions.
    Oci,
}

/// One image written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedImage {
    /// The image ID (config digest).
    pub id: Digest,
    /// The references written for it; empty when it was selected by ID.
    pub references: Vec<Reference>,
}

/// What a save wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveReport {
    /// The images, in the order they were first named.
    pub images: Vec<SavedImage>,
}

/// Writes the images named by `specs` (references or IDs) as a tar archive to `writer`.
pub fn save_archive(
    store: &Store,
    specs: &[String],
    format: SaveFormat,
    writer: impl Write,
) -> Result<SaveReport, Error> {
    match format {
        SaveFormat::Docker => {
            let selected = select(store, specs, None)?;
            let mut out = TarOut::new(writer, PathBuf::from("<output>"));
            write_docker(store, &selected, &mut out)?;
            out.finish()?;
            Ok(report(&selected))
        }
        SaveFormat::Oci => save_oci_archive(store, specs, &LayerCompression::default(), writer),
    }
}

/// Writes the images named by `specs` as an OCI image layout tar to `writer`, their layers compressed as
/// `compression` says (BuildKit's `type=oci,compression=…,compression-level=…,force-compression=…`).
pub fn save_oci_archive(
    store: &Store,
    specs: &[String],
    compression: &LayerCompression,
    writer: impl Write,
) -> Result<SaveReport, Error> {
    let selected = select(store, specs, Some(compression))?;
    let mut out = TarOut::new(writer, PathBuf::from("<output>"));
    write_oci(store, &selected, &mut out, None)?;
    out.finish()?;
    Ok(report(&selected))
}

/// Writes a tar archive to `path` atomically: to a temp file beside it, renamed into place once complete, so a
/// failed save never leaves a truncated archive behind. A destination that is a device or fifo (`-o /dev/null`) is
/// written in place instead (see [`OutputFile`]).
pub fn save_archive_file(
    store: &Store,
    specs: &[String],
    format: SaveFormat,
    path: &Path,
) -> Result<SaveReport, Error> {
    let compression = LayerCompression::default();
    let selected = select(
        store,
        specs,
        (format == SaveFormat::Oci).then_some(&compression),
    )?;
    let wrap = |source| Error::WriteOutput {
        path: path.to_owned(),
        source,
    };
    let output = OutputFile::for_path(path).map_err(wrap)?;
    let write = || -> Result<(), Error> {
        let file = output.create().map_err(|source| Error::WriteOutput {
            path: output.write_path().to_owned(),
            source,
        })?;
        let mut out = TarOut::new(BufWriter::with_capacity(IO_BUFFER, file), path.to_owned());
        match format {
            SaveFormat::Docker => write_docker(store, &selected, &mut out)?,
            SaveFormat::Oci => write_oci(store, &selected, &mut out, None)?,
        }
        let file = out
            .finish()?
            .into_inner()
            .map_err(|error| wrap(error.into_error()))?;
        output.commit(file).map_err(wrap)
    };
    write().inspect_err(|_| output.abandon())?;
    Ok(report(&selected))
}

/// Writes an OCI image layout into the directory `dir`, creating it if needed. An existing layout is added to, as
/// `skopeo copy … oci:DIR` does: blobs already there are kept, and `index.json` entries with the same name are
/// replaced. `index.json` is written last and atomically. Layers are gzip, as in [`SaveFormat::Oci`].
pub fn save_oci_dir(store: &Store, specs: &[String], dir: &Path) -> Result<SaveReport, Error> {
    let selected = select(store, specs, Some(&LayerCompression::default()))?;
    let existing = existing_layout(dir)?;
    let mut out = DirOut {
        root: dir.to_owned(),
    };
    write_oci(store, &selected, &mut out, existing)?;
    Ok(report(&selected))
}

/// Read buffer for blobs being copied out.
const IO_BUFFER: usize = 128 * 1024;

/// An image chosen for saving, with the names to write for it.
struct Selected {
    image: Image,
    names: Vec<Reference>,
}

/// Resolves the specs to images; several specs naming one image give one image with all their names, as `docker
/// save` does. An image selected by ID gets no name. With `compression`, each image is its variant with layers
/// compressed so (an OCI layout's).
fn select(
    store: &Store,
    specs: &[String],
    compression: Option<&LayerCompression>,
) -> Result<Vec<Selected>, Error> {
    let mut selected: Vec<Selected> = Vec::new();
    for spec in specs {
        let found = store.find_image(spec)?;
        let name = match found.lookup {
            Lookup::Reference(reference) => Some(reference),
            Lookup::Digest(_) | Lookup::Id(_) => None,
        };
        if let Some(existing) = selected.iter_mut().find(|s| s.image.id == found.record.id) {
            if let Some(name) = name
                && !existing.names.contains(&name)
            {
                existing.names.push(name);
            }
            continue;
        }
        let target = found.record.target.to_descriptor();
        let target = match compression {
            Some(compression) => store.compressed_image(&target, compression)?,
            None => target,
        };
        let image = store.load_image(&target)?;
        selected.push(Selected {
            image,
            names: name.into_iter().collect(),
        });
    }
    Ok(selected)
}

fn report(selected: &[Selected]) -> SaveReport {
    SaveReport {
        images: selected
            .iter()
            .map(|s| SavedImage {
                id: s.image.id,
                references: s.names.clone(),
            })
            .collect(),
    }
}

/// Where an image layout is written: a tar stream or a directory.
trait LayoutOut {
    /// Whether `name` was written already (blobs shared between images are written once).
    fn has(&mut self, name: &str) -> Result<bool, Error>;
    /// Writes a directory entry.
    fn dir(&mut self, name: &str) -> Result<(), Error>;
    /// Writes a small file.
    fn file(&mut self, name: &str, bytes: &[u8]) -> Result<(), Error>;
    /// Writes a file of exactly `size` bytes from `reader`.
    fn stream(&mut self, name: &str, size: u64, reader: &mut dyn Read) -> Result<(), Error>;
}

/// A tar archive being written.
struct TarOut<W: Write> {
    builder: tar::Builder<W>,
    /// Where the archive goes, for error messages.
    path: PathBuf,
    written: HashSet<String>,
}

impl<W: Write> TarOut<W> {
    fn new(writer: W, path: PathBuf) -> Self {
        let mut builder = tar::Builder::new(writer);
        builder.mode(tar::HeaderMode::Deterministic);
        Self {
            builder,
            path,
            written: HashSet::new(),
        }
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header
    }

    fn append(
        &mut self,
        name: &str,
        mut header: tar::Header,
        data: &mut dyn Read,
    ) -> Result<(), Error> {
        self.written.insert(name.to_owned());
        let path = self.path.clone();
        self.builder
            .append_data(&mut header, name, data)
            .map_err(|error| output_error(&path, error))
    }

    fn finish(self) -> Result<W, Error> {
        let path = self.path.clone();
        self.builder
            .into_inner()
            .map_err(|source| Error::WriteOutput { path, source })
    }
}

impl<W: Write> LayoutOut for TarOut<W> {
    fn has(&mut self, name: &str) -> Result<bool, Error> {
        Ok(self.written.contains(name))
    }

    fn dir(&mut self, name: &str) -> Result<(), Error> {
        let header = Self::header(tar::EntryType::Directory, 0);
        self.append(name, header, &mut io::empty())
    }

    fn file(&mut self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let header = Self::header(tar::EntryType::Regular, bytes.len() as u64);
        self.append(name, header, &mut &bytes[..])
    }

    fn stream(&mut self, name: &str, size: u64, reader: &mut dyn Read) -> Result<(), Error> {
        let header = Self::header(tar::EntryType::Regular, size);
        let mut exact = Exact {
            inner: reader,
            remaining: size,
            name: name.to_owned(),
        };
        self.append(name, header, &mut exact)
    }
}

/// An image layout directory being written.
struct DirOut {
    root: PathBuf,
}

impl DirOut {
    fn path(&self, name: &str) -> Result<PathBuf, Error> {
        Ok(self.root.join(normalize(name)?))
    }

    fn write_atomically(
        &self,
        name: &str,
        write: impl FnOnce(&mut File) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let path = self.path(name)?;
        let wrap = |source| Error::WriteOutput {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(wrap)?;
        }
        let temp = path.with_file_name(format!(
            ".{}.hoist-tmp-{}",
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            std::process::id()
        ));
        let result = (|| {
            let mut file = File::create(&temp).map_err(wrap)?;
            write(&mut file)?;
            file.sync_all().map_err(wrap)?;
            fs::rename(&temp, &path).map_err(wrap)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }
}

impl LayoutOut for DirOut {
    fn has(&mut self, name: &str) -> Result<bool, Error> {
        Ok(self.path(name)?.is_file())
    }

    fn dir(&mut self, name: &str) -> Result<(), Error> {
        let path = self.path(name)?;
        fs::create_dir_all(&path).map_err(|source| Error::WriteOutput { path, source })
    }

    fn file(&mut self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let path = self.path(name)?;
        self.write_atomically(name, |file| {
            file.write_all(bytes)
                .map_err(|source| Error::WriteOutput { path, source })
        })
    }

    fn stream(&mut self, name: &str, size: u64, reader: &mut dyn Read) -> Result<(), Error> {
        let path = self.path(name)?;
        self.write_atomically(name, |file| {
            let mut exact = Exact {
                inner: reader,
                remaining: size,
                name: name.to_owned(),
            };
            io::copy(&mut exact, file).map_err(|error| output_error(&path, error))?;
            Ok(())
        })
    }
}

/// Passes exactly `remaining` bytes through and fails if the source has fewer or more: a tar entry's size is
/// written before its data, so a mismatch would corrupt the archive.
struct Exact<'r> {
    inner: &'r mut dyn Read,
    remaining: u64,
    name: String,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(io::Error::other(format!(
                    "{} is longer than its recorded size",
                    self.name
                )));
            }
            return Ok(0);
        }
        let limit = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..limit])?;
        if n == 0 && limit > 0 {
            return Err(io::Error::other(format!(
                "{} ended {} bytes before its recorded size",
                self.name, self.remaining
            )));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Decompresses a stored layer and checks, at its end, that it hashes to the recorded diffID.
struct VerifiedLayer<R: Read> {
    inner: DigestReader<Decompressor<R>>,
    blob: Digest,
    diff_id: Digest,
    checked: bool,
}

impl<R: Read> Read for VerifiedLayer<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.checked {
            self.checked = true;
            let actual = self.inner.digested().digest;
            if actual != self.diff_id {
                return Err(io::Error::other(Error::StoredLayerCorrupt {
                    digest: self.blob,
                    expected: self.diff_id,
                    actual,
                }));
            }
        }
        Ok(n)
    }
}

/// An I/O error from writing, unless it carries one of our errors (a corrupt stored layer) from a reader.
fn output_error(path: &Path, error: io::Error) -> Error {
    if error.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        let inner = error
            .into_inner()
            .expect("get_ref just returned the inner error");
        return *inner
            .downcast::<Error>()
            .expect("is::<Error> just returned true");
    }
    Error::WriteOutput {
        path: path.to_owned(),
        source: error,
    }
}

fn invalid_digest(
    descriptor: &Descriptor,
) -> impl FnOnce(hoist_oci::ParseDigestError) -> Error + '_ {
    move |source| Error::InvalidDigest {
        name: descriptor.digest().to_string(),
        source,
    }
}

/// The docker-archive (see [`SaveFormat::Docker`]).
fn write_docker(
    store: &Store,
    selected: &[Selected],
    out: &mut dyn LayoutOut,
) -> Result<(), Error> {
    out.dir("blobs/")?;
    out.dir("blobs/sha256/")?;
    let mut items = Vec::new();
    let mut index_entries = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for Selected { image, names } in selected {
        let mut layer_descriptors = Vec::new();
        let mut layer_paths = Vec::new();
        for layer in &image.layers {
            let digest = digest_from_oci(layer.descriptor.digest())
                .map_err(invalid_digest(&layer.descriptor))?;
            let info = match &layer.info {
                Some(info) => info.clone(),
                None => store.ensure_layer_info(&digest)?,
            };
            let path = blob_path(&info.diff_id);
            if !out.has(&path)? {
                let blob = BufReader::with_capacity(IO_BUFFER, store.open_blob(&digest)?);
                let decompressor = Decompressor::new(blob)
                    .map_err(|source| Error::ReadStored { digest, source })?;
                let mut verified = VerifiedLayer {
                    inner: DigestReader::new(decompressor),
                    blob: digest,
                    diff_id: info.diff_id,
                    checked: false,
                };
                out.stream(&path, info.uncompressed_size, &mut verified)?;
            }
            layer_descriptors.push(descriptor(OCI_LAYER, &info.diff_id, info.uncompressed_size));
            layer_paths.push(path);
        }
        let config_path = blob_path(&image.id);
        if !out.has(&config_path)? {
            out.file(&config_path, &image.config_bytes)?;
        }
        // The layout view of the archive: an OCI manifest over the uncompressed layers, as Docker ≥ 25 writes.
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::from(OCI_MANIFEST))
            .config(descriptor(
                OCI_CONFIG,
                &image.id,
                image.config_bytes.len() as u64,
            ))
            .layers(layer_descriptors)
            .build()
            .expect("schema version, config and layers are all a manifest requires");
        let manifest_bytes = encode_manifest(&manifest)?;
        let manifest_digest = Digest::sha256(&manifest_bytes);
        let manifest_path = blob_path(&manifest_digest);
        if !out.has(&manifest_path)? {
            out.file(&manifest_path, &manifest_bytes)?;
        }
        let manifest_descriptor = with_platform(
            descriptor(OCI_MANIFEST, &manifest_digest, manifest_bytes.len() as u64),
            image,
        );
        index_entries.extend(named_entries(&manifest_descriptor, names));
        if let Some(top) = layer_paths.last().and_then(|p| p.rsplit('/').next()) {
            for name in names {
                repositories
                    .entry(name.name().to_owned())
                    .or_default()
                    .insert(name.tag().to_owned(), top.to_owned());
            }
        }
        items.push(ManifestItem {
            config: config_path,
            repo_tags: (!names.is_empty()).then(|| names.iter().map(ToString::to_string).collect()),
            layers: layer_paths,
        });
    }
    out.file(INDEX_FILE, &encode_index(&index(index_entries))?)?;
    out.file(
        MANIFEST_FILE,
        &json_line(&items, "docker-archive manifest")?,
    )?;
    out.file(LAYOUT_FILE, LAYOUT_CONTENT.as_bytes())?;
    if !repositories.is_empty() {
        out.file(
            REPOSITORIES_FILE,
            &json_line(&repositories, "repositories file")?,
        )?;
    }
    Ok(())
}

/// The OCI image layout (see [`SaveFormat::Oci`]). `existing` is the index of a layout directory being added to.
fn write_oci(
    store: &Store,
    selected: &[Selected],
    out: &mut dyn LayoutOut,
    existing: Option<ImageIndex>,
) -> Result<(), Error> {
    out.dir("blobs/")?;
    out.dir("blobs/sha256/")?;
    let mut entries = Vec::new();
    for Selected { image, names } in selected {
        for layer in &image.layers {
            copy_blob(store, out, &layer.descriptor)?;
        }
        copy_blob(store, out, image.manifest.config())?;
        copy_blob(store, out, &image.manifest_descriptor)?;
        let manifest = descriptor(
            image.manifest_descriptor.media_type().as_ref(),
            &digest_from_oci(image.manifest_descriptor.digest())
                .map_err(invalid_digest(&image.manifest_descriptor))?,
            image.manifest_descriptor.size(),
        );
        entries.extend(named_entries(&with_platform(manifest, image), names));
    }
    if let Some(existing) = existing {
        // Keep the existing entries this save does not replace (same name), in their order, before ours.
        let names_of = |d: &Descriptor| {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get(CONTAINERD_NAME).or_else(|| a.get(REF_NAME)).cloned())
        };
        let ours: HashSet<String> = entries.iter().filter_map(names_of).collect();
        let kept = existing
            .manifests()
            .iter()
            .filter(|d| names_of(d).is_none_or(|name| !ours.contains(&name)))
            .cloned();
        entries = kept.chain(entries).collect();
    }
    out.file(LAYOUT_FILE, LAYOUT_CONTENT.as_bytes())?;
    out.file(INDEX_FILE, &encode_index(&index(entries))?)?;
    Ok(())
}

/// Copies a stored blob into the layout unless it is there already.
fn copy_blob(store: &Store, out: &mut dyn LayoutOut, blob: &Descriptor) -> Result<(), Error> {
    let digest = digest_from_oci(blob.digest()).map_err(invalid_digest(blob))?;
    let path = blob_path(&digest);
    if out.has(&path)? {
        return Ok(());
    }
    let mut file = BufReader::with_capacity(IO_BUFFER, store.open_blob(&digest)?);
    out.stream(&path, blob.size(), &mut file)
}

/// One index entry per name (`ref.name` = the tag, as Docker ≥ 25 and BuildKit write it, plus containerd's
/// qualified name); one unnamed entry for an image without names.
fn named_entries(manifest: &Descriptor, names: &[Reference]) -> Vec<Descriptor> {
    if names.is_empty() {
        return vec![manifest.clone()];
    }
    names
        .iter()
        .map(|name| {
            let mut annotated = manifest.clone();
            annotated.set_annotations(Some(HashMap::from([
                (CONTAINERD_NAME.to_owned(), qualified(name)),
                (REF_NAME.to_owned(), name.tag().to_owned()),
            ])));
            annotated
        })
        .collect()
}

/// The descriptor with the image's platform (from its config), so tools can pick by platform.
fn with_platform(mut manifest: Descriptor, image: &Image) -> Descriptor {
    let config = &image.config;
    let mut platform = PlatformBuilder::default()
        .os(config.os().clone())
        .architecture(config.architecture().clone());
    if let Some(variant) = config.variant() {
        platform = platform.variant(variant.clone());
    }
    if let Ok(platform) = platform.build() {
        manifest.set_platform(Some(platform));
    }
    manifest
}

fn index(manifests: Vec<Descriptor>) -> ImageIndex {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::from(OCI_INDEX))
        .manifests(manifests)
        .build()
        .expect("schema version and manifests are all an index requires")
}

/// JSON followed by a newline, as Go's `json.Encoder` (and so `docker save`) writes `manifest.json`.
fn json_line(value: &impl serde::Serialize, what: &'static str) -> Result<Vec<u8>, Error> {
    let mut bytes = serde_json::to_vec(value).map_err(|source| Error::Encode { what, source })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The index of an existing layout directory, if `dir` is one; an error if it exists and is something else.
fn existing_layout(dir: &Path) -> Result<Option<ImageIndex>, Error> {
    match fs::read_dir(dir) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::WriteOutput {
                path: dir.to_owned(),
                source,
            });
        }
        Ok(mut entries) => {
            if entries.next().is_none() {
                return Ok(None);
            }
        }
    }
    let index_path = dir.join(INDEX_FILE);
    if !dir.join(LAYOUT_FILE).is_file() || !index_path.is_file() {
        return Err(Error::OutputNotLayout {
            path: dir.to_owned(),
        });
    }
    let bytes = fs::read(&index_path).map_err(|source| Error::ReadInput {
        path: index_path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| Error::ParseJson {
            name: index_path.display().to_string(),
            what: "OCI image index",
            source,
        })
}

#[cfg(test)]
mod tests;
