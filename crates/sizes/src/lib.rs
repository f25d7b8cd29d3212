//! hoist-sizes: how big an image is, the way Docker counts it, and where the bytes come from.
//!
//! The one idea: **an image's size is the sum of its layers' content sizes, and each layer has an author.** The
//! size is exactly what `docker images` shows for the same image after `hoist save | docker load` (the bytes of
//! regular files plus symlink targets, hard links once: the store's `LayerInfo::content_size`), and each non-empty
//! history entry's `created_by` names the instruction that made the layer at its position. A report is computed
//! here; the CLI (`hoist sizes`) only picks the images and prints one of the renderings.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = hoist_oci::Store::open("/var/lib/hoist")?;
//! let image = hoist_sizes::measure(&store, "hello:release", "hello:release", None)?;
//! print!("{}", hoist_sizes::render_table(&[image], "IMAGE", 3));
//! # Ok(()) }
//! ```
//!
//! Contents: [`measure`], [`ImageSizes`] and [`LayerSize`] (measuring), [`stage_targets`] and [`StageTarget`]
//! (which targets a Dockerfile has and the image each starts from), [`render_table`], [`render_markdown`],
//! [`render_json`] and [`render_html`] (output), [`SizesError`]. More in `docs/sizes.md`.

mod error;
mod html;
mod measure;
mod render;
mod stages;

pub use error::SizesError;
pub use html::render_html;
pub use measure::{BaseImage, ImageSizes, LayerSize, measure};
pub use render::{render_json, render_markdown, render_table};
pub use stages::{StageTarget, stage_targets};
