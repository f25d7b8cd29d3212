//! Media types the store understands: OCI image-spec and Docker image manifest v2 schema 2.
//!
//! Input may use either family; [`classify`] maps both onto one [`MediaKind`] so the rest of the store never
//! compares strings. Output uses the family chosen by [`ManifestFormat`].

use hoist_layer::Compression;
use oci_spec::image::MediaType;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker image manifest v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer (used by some tools; not part of the registry spec).
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker zstd layer, as BuildKit writes it for zstd layers in Docker-format manifests.
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker foreign (non-distributable) gzip layer.
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// What a descriptor points at, whichever family its media type comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// An image manifest (OCI or Docker v2 schema 2).
    Manifest,
    /// An image index or Docker manifest list.
    Index,
    /// An image config.
    Config,
    /// A layer, with its compression.
    Layer(Compression),
    /// Anything else (artifacts, attestations, …).
    Other,
}

/// Which media type family to write manifests in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestFormat {
    /// OCI image-spec media types (the default, as `docker buildx` with `oci-mediatypes=true`).
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2, as `docker build` writes.
    Docker,
}

impl ManifestFormat {
    /// The manifest media type of this family.
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            Self::Oci => OCI_MANIFEST,
            Self::Docker => DOCKER_MANIFEST,
        }
    }

    /// The config media type of this family.
    pub fn config_media_type(self) -> &'static str {
        match self {
            Self::Oci => OCI_CONFIG,
            Self::Docker => DOCKER_CONFIG,
        }
    }

    /// The layer media type of this family for a compression.
    pub fn layer_media_type(self, compression: Compression) -> &'static str {
        match (self, compression) {
            (Self::Oci, Compression::None) => OCI_LAYER,
            (Self::Oci, Compression::Gzip) => OCI_LAYER_GZIP,
            (Self::Oci, Compression::Zstd) => OCI_LAYER_ZSTD,
            (Self::Docker, Compression::None) => DOCKER_LAYER,
            (Self::Docker, Compression::Gzip) => DOCKER_LAYER_GZIP,
            (Self::Docker, Compression::Zstd) => DOCKER_LAYER_ZSTD,
        }
    }
}

/// Classifies a media type of either family.
pub fn classify(media_type: &MediaType) -> MediaKind {
    classify_str(media_type.as_ref())
}

/// Classifies a media type string of either family.
pub fn classify_str(media_type: &str) -> MediaKind {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => MediaKind::Manifest,
        OCI_INDEX | DOCKER_MANIFEST_LIST => MediaKind::Index,
        OCI_CONFIG | DOCKER_CONFIG => MediaKind::Config,
        OCI_LAYER | DOCKER_LAYER | "application/vnd.oci.image.layer.nondistributable.v1.tar" => {
            MediaKind::Layer(Compression::None)
        }
        OCI_LAYER_GZIP
        | DOCKER_LAYER_GZIP
        | DOCKER_FOREIGN_LAYER_GZIP
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => {
            MediaKind::Layer(Compression::Gzip)
        }
        OCI_LAYER_ZSTD
        | DOCKER_LAYER_ZSTD
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
            MediaKind::Layer(Compression::Zstd)
        }
        _ => MediaKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families_classify_alike() {
        assert_eq!(classify(&MediaType::ImageManifest), MediaKind::Manifest);
        assert_eq!(
            classify(&MediaType::from(DOCKER_MANIFEST)),
            MediaKind::Manifest
        );
        assert_eq!(
            classify(&MediaType::from(DOCKER_MANIFEST_LIST)),
            MediaKind::Index
        );
        assert_eq!(classify(&MediaType::ImageIndex), MediaKind::Index);
        assert_eq!(classify(&MediaType::from(DOCKER_CONFIG)), MediaKind::Config);
        assert_eq!(classify(&MediaType::ImageConfig), MediaKind::Config);
        assert_eq!(
            classify(&MediaType::from(DOCKER_LAYER_GZIP)),
            MediaKind::Layer(Compression::Gzip)
        );
        assert_eq!(
            classify(&MediaType::ImageLayerZstd),
            MediaKind::Layer(Compression::Zstd)
        );
        assert_eq!(
            classify(&MediaType::ImageLayer),
            MediaKind::Layer(Compression::None)
        );
        assert_eq!(classify(&MediaType::from("text/plain")), MediaKind::Other);
    }
}
