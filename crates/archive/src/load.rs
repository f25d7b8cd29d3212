//! `hoist load`: images from a docker-archive or an OCI image layout into the store.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use oci_spec::image::Descriptor;

use hoist_oci::{Digest, Reference, Store};

use crate::contents::{Contents, DirContents, TarContents, decompress};
use crate::{Error, docker_archive, oci_layout};

/// Which format an archive turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// A docker-archive (`manifest.json`); Docker ≥ 25 archives are read this way too, as `docker load` does.
    DockerArchive,
    /// An OCI image layout (`index.json` and `oci-layout`, no `manifest.json`).
    OciLayout,
}

impl std::fmt::Display for ArchiveFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::DockerArchive => "docker-archive",
            Self::OciLayout => "OCI image layout",
        })
    }
}

/// One image loaded into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// The image ID (the config digest).
    pub id: Digest,
    /// The stored manifest's digest.
    pub manifest: Digest,
    /// The references now pointing at it; empty if the archive named none.
    pub references: Vec<Reference>,
}

/// What [`load`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// The format found.
    pub format: ArchiveFormat,
    /// The images, in archive order.
    pub images: Vec<LoadedImage>,
}

/// An image a format reader stored, before tagging.
#[derive(Debug, Clone)]
pub(crate) struct FoundImage {
    /// The stored manifest's descriptor.
    pub(crate) manifest: Descriptor,
    /// The config digest.
    pub(crate) id: Digest,
    /// The names the archive gives it.
    pub(crate) names: Vec<Reference>,
}

/// Loads an archive from a tar stream: plain, gzip or zstd (recognised by magic bytes), read once.
pub fn load(store: &Store, reader: impl Read) -> Result<LoadReport, Error> {
    let stream = decompress(reader)?;
    let mut contents = TarContents::scan(store, stream)?;
    load_contents(&mut contents)
}

/// Loads a file (a tar archive, maybe compressed) or a directory (an unpacked OCI layout or docker-archive).
pub fn load_path(store: &Store, path: &Path) -> Result<LoadReport, Error> {
    let meta = std::fs::metadata(path).map_err(|source| Error::ReadInput {
        path: path.to_owned(),
        source,
    })?;
    if meta.is_dir() {
        let mut contents = DirContents::new(store, path);
        return load_contents(&mut contents);
    }
    let file = File::open(path).map_err(|source| Error::ReadInput {
        path: path.to_owned(),
        source,
    })?;
    load(store, file)
}

fn load_contents(contents: &mut dyn Contents) -> Result<LoadReport, Error> {
    let (format, found) =
        if let Some(manifest) = contents.metadata(docker_archive::MANIFEST_FILE)? {
            (
                ArchiveFormat::DockerArchive,
                docker_archive::read(contents, &manifest)?,
            )
        } else if let Some(index) = contents.metadata(oci_layout::INDEX_FILE)? {
            (
                ArchiveFormat::OciLayout,
                oci_layout::read(contents, &index)?,
            )
        } else {
            return Err(Error::UnknownFormat);
        };
    // Tag only once every image is stored and verified: a bad archive changes no reference.
    let store = contents.store();
    let mut images = Vec::with_capacity(found.len());
    for image in found {
        for reference in &image.names {
            store.tag(reference, &image.manifest)?;
        }
        images.push(LoadedImage {
            id: image.id,
            manifest: hoist_oci::digest_from_oci(image.manifest.digest()).map_err(|source| {
                Error::InvalidDigest {
                    name: image.manifest.digest().to_string(),
                    source,
                }
            })?,
            references: image.names,
        });
    }
    Ok(LoadReport { format, images })
}

#[cfg(test)]
mod tests;
