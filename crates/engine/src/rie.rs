//! `hoist/rie`: an image hoist provides itself, holding the static Lambda Runtime Interface Emulator, so a Dockerfile
//! adds the emulator without network access:
//!
//! ```dockerfile
//! COPY --from=hoist/rie /aws-lambda-rie /aws-lambda-rie
//! ```
//!
//! The image is one layer with `/aws-lambda-rie` (mode 0755, owner 0:0, mtime 0), `ENTRYPOINT ["/aws-lambda-rie"]`
//! and `EXPOSE 8080`, created at the epoch so the same binary always gives the same image ID (and build cache hits).
//! It is made from a static `aws-lambda-rie` found on this machine ([`locate_rie`]) when a build asks for
//! `hoist/rie` or `hoist/rie:<hoist's version>`, and tagged with both names. When the binary is found and the store
//! already holds an image with exactly its layer, nothing is written; when it is not found, an image already in the
//! store is used, so a machine that built once keeps working without the binary.

use std::env;
use std::fs;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use hoist_archive::{ImportOptions, import};
use hoist_oci::{ImagePlatform, Reference, Store};
use sha2::{Digest as _, Sha256};

/// The reserved repository name.
pub const RIE_IMAGE: &str = "hoist/rie";

/// The environment variable naming the static emulator binary to put in `hoist/rie`.
pub const RIE_ENV: &str = "HOIST_RIE";

/// The emulator's path inside the image.
const RIE_PATH_IN_IMAGE: &str = "aws-lambda-rie";

/// Why `hoist/rie` could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum RieError {
    /// `$HOIST_RIE` names a file that cannot be used.
    #[error("${RIE_ENV}={}: {reason}", .path.display())]
    Configured {
        /// The configured path.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// No static emulator was found in any of the usual places.
    #[error(
        "no static aws-lambda-rie found to make {RIE_IMAGE} ({tried}); build one with scripts/build-rie and put it \
         next to the hoist executable, or set ${RIE_ENV} to its path"
    )]
    NotFound {
        /// Each place looked at, and why it did not qualify.
        tried: String,
    },
    /// Reading the binary failed.
    #[error("failed to read {}", .path.display())]
    Read {
        /// The binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Writing the one-layer tarball failed.
    #[error("failed to make the {RIE_IMAGE} layer from {}", .path.display())]
    Layer {
        /// The binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Importing the layer into the store failed.
    #[error("failed to store the {RIE_IMAGE} image")]
    Import(#[source] hoist_archive::Error),
}

/// The tags `hoist/rie` is provided under, given a reference with the `docker.io/` prefix or without it:
/// `latest` and hoist's own version.
pub(crate) fn is_rie_reference(reference: &str) -> bool {
    let familiar = reference.strip_prefix("docker.io/").unwrap_or(reference);
    match familiar.strip_prefix(RIE_IMAGE) {
        Some("" | ":latest") => true,
        Some(tag) => tag.strip_prefix(':') == Some(env!("CARGO_PKG_VERSION")),
        None => false,
    }
}

/// Where the static emulator is looked for, in order: `$HOIST_RIE` (which must then be usable), `aws-lambda-rie` next
/// to the running executable, `../libexec/hoist/aws-lambda-rie` from it (an installed layout), and the outputs of
/// `scripts/build-rie` when the executable runs from cargo's target directory
/// (`target/<arch>-unknown-linux-{musl,gnu}/release/`). Dynamically linked candidates are skipped: they would not run
/// in `scratch` or distroless images.
pub fn locate_rie() -> Result<PathBuf, RieError> {
    if let Some(path) = env::var_os(RIE_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return match check_static(&path) {
            Ok(()) => Ok(path),
            Err(reason) => Err(RieError::Configured { path, reason }),
        };
    }
    let mut tried = Vec::new();
    let exe_dir = env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    let Some(exe_dir) = exe_dir else {
        return Err(RieError::NotFound {
            tried: format!("${RIE_ENV} is unset and the running executable's directory is unknown"),
        });
    };
    let arch = env::consts::ARCH;
    let candidates = [
        exe_dir.join("aws-lambda-rie"),
        exe_dir.join("../libexec/hoist/aws-lambda-rie"),
        exe_dir.join(format!(
            "../{arch}-unknown-linux-musl/release/aws-lambda-rie"
        )),
        exe_dir.join(format!(
            "../{arch}-unknown-linux-gnu/release/aws-lambda-rie"
        )),
    ];
    for candidate in candidates {
        match check_static(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(reason) => tried.push(format!("{}: {reason}", candidate.display())),
        }
    }
    Err(RieError::NotFound {
        tried: format!("${RIE_ENV} is unset; {}", tried.join("; ")),
    })
}

/// Makes sure the store holds `reference` (one of [`is_rie_reference`]'s) built from the current static emulator.
pub(crate) fn provide(store: &Store, reference: &str) -> Result<(), RieError> {
    let binary = match locate_rie() {
        Ok(binary) => binary,
        // Built before, on this machine: usable without the binary.
        Err(error) => {
            return match crate::resolver::read_image(store, reference) {
                Ok(_) => Ok(()),
                Err(_) => Err(error),
            };
        }
    };
    let content = fs::read(&binary).map_err(|source| RieError::Read {
        path: binary.clone(),
        source,
    })?;
    let tar = layer_tar(&content).map_err(|source| RieError::Layer {
        path: binary.clone(),
        source,
    })?;
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
    let references = [
        format!("{RIE_IMAGE}:latest"),
        format!("{RIE_IMAGE}:{}", env!("CARGO_PKG_VERSION")),
    ];
    let current = references.iter().all(|name| {
        store.read_image(name).is_ok_and(|image| {
            let diff_ids = image.config.rootfs().diff_ids();
            diff_ids.len() == 1 && diff_ids[0] == diff_id
        })
    });
    if current {
        return Ok(());
    }
    let options = ImportOptions {
        references: references
            .iter()
            .map(|name| {
                name.parse::<Reference>()
                    .expect("hoist/rie:latest and hoist/rie:<semver> are valid references")
            })
            .collect(),
        changes: vec![
            r#"ENTRYPOINT ["/aws-lambda-rie"]"#.to_owned(),
            "EXPOSE 8080".to_owned(),
        ],
        message: Some(format!(
            "aws-lambda-rie from hoist {}",
            env!("CARGO_PKG_VERSION")
        )),
        created: UNIX_EPOCH,
        platform: ImagePlatform::host(),
        ..ImportOptions::default()
    };
    import(store, Cursor::new(tar), &options).map_err(RieError::Import)?;
    Ok(())
}

/// A tarball with the one file `aws-lambda-rie`, with fixed metadata so equal binaries give equal layers.
fn layer_tar(content: &[u8]) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::with_capacity(content.len() + 2048));
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(content.len() as u64);
    builder.append_data(&mut header, RIE_PATH_IN_IMAGE, content)?;
    builder.into_inner()
}

/// `Ok` when `path` is an executable ELF file without a program interpreter (statically linked, `static-pie`
/// included); otherwise why not.
fn check_static(path: &Path) -> Result<(), String> {
    use object::elf::{FileHeader64, PT_INTERP};
    use object::read::elf::{FileHeader as _, ProgramHeader as _};
    use object::{Endianness, FileKind};

    let content = fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => "not found".to_owned(),
        _ => format!("cannot read it: {e}"),
    })?;
    match FileKind::parse(content.as_slice()) {
        Ok(FileKind::Elf64) => {}
        Ok(FileKind::Elf32) => return Err("not a 64-bit ELF file".to_owned()),
        _ => return Err("not an ELF executable".to_owned()),
    }
    let invalid = |e: object::Error| format!("not a valid ELF file ({e})");
    let header = FileHeader64::<Endianness>::parse(content.as_slice()).map_err(invalid)?;
    let endian = header.endian().map_err(invalid)?;
    let program_headers = header
        .program_headers(endian, content.as_slice())
        .map_err(invalid)?;
    if program_headers
        .iter()
        .any(|program_header| program_header.p_type(endian) == PT_INTERP)
    {
        return Err("dynamically linked (it has a program interpreter)".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_latest_and_this_version() {
        assert!(is_rie_reference("docker.io/hoist/rie:latest"));
        assert!(is_rie_reference("hoist/rie"));
        assert!(is_rie_reference(&format!(
            "docker.io/hoist/rie:{}",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(!is_rie_reference("docker.io/hoist/rie:0.0.0-other"));
        assert!(!is_rie_reference("docker.io/hoist/riesling:latest"));
        assert!(!is_rie_reference("docker.io/library/busybox:latest"));
    }

    #[test]
    fn dynamic_executables_and_other_files_are_not_static() {
        // The test binary itself is linked dynamically against the host's libc.
        let exe = env::current_exe().expect("the test binary has a path");
        let reason = check_static(&exe).expect_err("test binaries are dynamic");
        assert!(reason.contains("dynamically linked"), "{reason}");
        let dir = tempfile::tempdir().expect("a temp dir");
        let script = dir.path().join("script");
        fs::write(&script, "#!/bin/sh\n").expect("write a script");
        assert_eq!(
            check_static(&script).expect_err("a script"),
            "not an ELF executable"
        );
        assert_eq!(
            check_static(&dir.path().join("missing")).expect_err("missing"),
            "not found"
        );
        let truncated = dir.path().join("truncated");
        // A complete identification (64-bit, little-endian) and nothing after it.
        let mut ident = b"\x7fELF\x02\x01\x01".to_vec();
        ident.resize(20, 0);
        fs::write(&truncated, ident).expect("write a truncated header");
        let reason = check_static(&truncated).expect_err("a truncated header");
        assert!(reason.starts_with("not a valid ELF file"), "{reason}");
    }

    #[test]
    fn the_layer_is_the_same_for_the_same_binary() {
        let first = layer_tar(b"\x7fELF binary").expect("tar");
        let second = layer_tar(b"\x7fELF binary").expect("tar");
        assert_eq!(first, second);
        let mut archive = tar::Archive::new(Cursor::new(first));
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .expect("entries")
            .map(|entry| {
                let entry = entry.expect("an entry");
                let header = entry.header();
                (
                    entry.path().expect("a path").display().to_string(),
                    header.mode().expect("a mode"),
                    header.mtime().expect("an mtime"),
                )
            })
            .collect();
        assert_eq!(entries, [("aws-lambda-rie".to_owned(), 0o755, 0)]);
    }
}
