//! The crate's errors: one variant per failing operation.

/// Measuring an image or reading a Dockerfile's stages failed.
#[derive(Debug, thiserror::Error)]
pub enum SizesError {
    /// The image is not in the store, or cannot be read.
    #[error("failed to read image {spec}")]
    ReadImage {
        /// The reference or ID asked for.
        spec: String,
        /// Why.
        #[source]
        source: hoist_oci::Error,
    },
    /// A layer's sizes are unknown and could not be measured from its blob.
    #[error("failed to measure layer {digest} of image {spec}")]
    MeasureLayer {
        /// The image.
        spec: String,
        /// The layer blob.
        digest: String,
        /// Why: a bad digest, or the store's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Listing the store's images (to find a base image) failed.
    #[error("failed to list the store's images")]
    ListImages(#[source] hoist_oci::Error),
    /// The Dockerfile does not parse.
    #[error("failed to parse the Dockerfile")]
    Parse(#[source] hoist_dockerfile::ParseError),
    /// A FROM line's image name does not expand.
    #[error("line {line}: cannot expand FROM {word:?}")]
    Expand {
        /// The 1-based line of the FROM instruction.
        line: usize,
        /// The unexpanded word.
        word: String,
        /// Why.
        #[source]
        source: hoist_shell::ShellError,
    },
    /// The Dockerfile has no FROM.
    #[error("the Dockerfile has no stages (no FROM instruction)")]
    NoStages,
}
