//! hoist-archive: images into and out of hoist's store, in the formats other tools exchange.
//!
//! * [`import`]: a root filesystem tarball becomes a one-layer image, like `docker import`.
//! * [`load`] / [`load_path`]: a docker-archive (`docker save`, `skopeo copy docker-archive:`, `podman save`,
//!   legacy and Docker ≥ 25 forms) or an OCI image layout (tar or directory; `skopeo copy oci:`/`oci-archive:`),
//!   plain, gzip or zstd, goes into the store with every layer digest and the config bytes unchanged.
//! * [`save_archive`] / [`save_archive_file`] / [`save_oci_dir`]: images go out as a docker-archive that
//!   `docker load` reads, or as an OCI image layout.
//!
//! The one idea: **an archive is read once, straight into the store.** Entries are streamed into the store as they
//! come (hashed, and measured as layers, on the way), small metadata files are kept in memory, and nothing is ever
//! extracted to disk, so a hostile name (`../../etc/passwd`) can only cause an error, never a write. Every digest
//! the archive claims is checked, and every layer's diffID against the config, before any reference changes.
//! `docs/formats.md` describes exactly what is read and written.
//!
//! # Example
//!
//! ```no_run
//! use hoist_archive::{SaveFormat, load_path, save_archive_file};
//! use hoist_oci::Store;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open("/tmp/hoist-store")?;
//! let report = load_path(&store, "busybox.tar".as_ref())?;
//! for image in &report.images {
//!     println!("loaded {} as {:?}", image.id, image.references);
//! }
//! save_archive_file(&store, &["busybox:latest".to_owned()], SaveFormat::Docker, "out.tar".as_ref())?;
//! # Ok(()) }
//! ```

pub use change::{Empty, RunConfig};
pub use error::Error;
pub use import::{ImportOptions, ImportedImage, import};
pub use load::{ArchiveFormat, LoadReport, LoadedImage, load, load_path};
pub use output::OutputFile;
pub use save::{
    SaveFormat, SaveReport, SavedImage, save_archive, save_archive_file, save_oci_archive,
    save_oci_dir,
};

mod change;
mod contents;
mod docker_archive;
mod error;
mod import;
mod load;
mod names;
mod oci_layout;
mod output;
mod path;
mod save;
#[cfg(test)]
mod testing;
