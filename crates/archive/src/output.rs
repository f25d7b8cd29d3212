//! Files a user names as an output (`hoist save -o`, `hoist build --output dest=`): replaced atomically when they
//! are (or will be) regular files, written in place when they are something else.
//!
//! A temp file renamed over the destination keeps a failed write from leaving half an archive behind. But a rename
//! replaces whatever the name points at: `-o /dev/null` would swap the host's device node for a regular file, and
//! `-o link` would replace the symlink instead of writing where it points. So an existing destination that is not a
//! regular file (a character device, a fifo, a socket) is written directly, as `docker save` does, and a symlink is
//! followed first.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Where the bytes of one output file go.
#[derive(Debug)]
pub enum OutputFile {
    /// Write straight to this path (an existing device, fifo or socket).
    InPlace(PathBuf),
    /// Write `temp`, then rename it to `dest` once complete.
    Replace {
        /// A temp file beside the destination.
        temp: PathBuf,
        /// The regular file that will be replaced (symlinks already followed).
        dest: PathBuf,
    },
}

impl OutputFile {
    /// Decides how to write `path`.
    pub fn for_path(path: &Path) -> io::Result<Self> {
        match fs::metadata(path) {
            Ok(metadata) if !metadata.is_file() && !metadata.is_dir() => {
                return Ok(Self::InPlace(path.to_owned()));
            }
            Ok(_) | Err(_) => {}
        }
        // A symlink is followed so that its target is replaced, not the link itself.
        let dest = match fs::symlink_metadata(path) {
            Ok(metadata) if metadata.file_type().is_symlink() => fs::canonicalize(path)?,
            _ => path.to_owned(),
        };
        let file_name = dest.file_name().map_or_else(
            || "output".into(),
            |name| name.to_string_lossy().into_owned(),
        );
        let temp = dest.with_file_name(format!(".{file_name}.hoist-tmp-{}", std::process::id()));
        Ok(Self::Replace { temp, dest })
    }

    /// The path the bytes are written to (the temp file while replacing).
    pub fn write_path(&self) -> &Path {
        match self {
            Self::InPlace(path) => path,
            Self::Replace { temp, .. } => temp,
        }
    }

    /// Opens the file to write.
    pub fn create(&self) -> io::Result<File> {
        match self {
            Self::InPlace(path) => OpenOptions::new().write(true).open(path),
            Self::Replace { temp, .. } => File::create(temp),
        }
    }

    /// Makes a complete write visible: syncs it and renames the temp file into place.
    pub fn commit(&self, file: File) -> io::Result<()> {
        match self {
            Self::InPlace(_) => Ok(()),
            Self::Replace { temp, dest } => {
                file.sync_all()?;
                drop(file);
                fs::rename(temp, dest)
            }
        }
    }

    /// Removes what a failed write left (nothing when writing in place).
    pub fn abandon(&self) {
        if let Self::Replace { temp, .. } = self {
            let _ = fs::remove_file(temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_fifo_is_written_in_place_and_stays_a_fifo() {
        // A fifo stands in for /dev/null: the same "not a regular file" case, without risking the host's device.
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        let output = OutputFile::for_path(&fifo).unwrap();
        assert!(matches!(output, OutputFile::InPlace(_)), "{output:?}");
        let mut file = output.create().unwrap();
        file.write_all(b"through the pipe").unwrap();
        output.commit(file).unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn a_regular_file_is_replaced_through_a_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.tar");
        fs::write(&path, "old").unwrap();
        let output = OutputFile::for_path(&path).unwrap();
        let mut file = output.create().unwrap();
        file.write_all(b"new").unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            b"old",
            "not visible before commit"
        );
        output.commit(file).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_symlink_is_followed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.tar");
        let link = dir.path().join("link.tar");
        fs::write(&target, "old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let output = OutputFile::for_path(&link).unwrap();
        let mut file = output.create().unwrap();
        file.write_all(b"new").unwrap();
        output.commit(file).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn an_abandoned_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.tar");
        let output = OutputFile::for_path(&path).unwrap();
        drop(output.create().unwrap());
        output.abandon();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
