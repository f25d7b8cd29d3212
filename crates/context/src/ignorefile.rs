//! Reading `.dockerignore` files and choosing which one applies to a build.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{ContextError, is_not_exist};
use crate::gopath;
use crate::scoped::resolve_in_root;

/// The name of the context-wide ignore file.
pub const DOCKERIGNORE_NAME: &str = ".dockerignore";

/// Parses the text of a `.dockerignore` file into patterns (upstream's
/// `ignorefile.ReadAll`).
///
/// Per line: a UTF-8 byte-order mark is dropped from the first line; a line starting with
/// `#` (in column 0 only) is a comment; the rest is trimmed, blank lines are skipped; a
/// leading `!` is kept and the text after it trimmed again; the path is cleaned like Go's
/// `filepath.Clean` and one leading `/` removed (the context root is `/`). Patterns are
/// not validated here; [`PatternMatcher::new`](crate::PatternMatcher::new) does that.
///
/// ```
/// use hoist_context::read_ignore_file;
/// let text = "# comment\n/build/\n!./build/keep\n  # kept: not in column 0\n";
/// assert_eq!(read_ignore_file(text), ["build", "!build/keep", "# kept: not in column 0"]);
/// ```
pub fn read_ignore_file(text: &str) -> Vec<String> {
    let mut patterns = Vec::new();
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    for line in go_lines(text) {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = gopath::clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        patterns.push(cleaned);
    }
    patterns
}

/// Lines as Go's `bufio.ScanLines` yields them: split at `\n`, one trailing `\r` removed,
/// no empty final line.
fn go_lines(text: &str) -> impl Iterator<Item = &str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines = if text.is_empty() {
        None
    } else {
        Some(body.split('\n'))
    };
    lines
        .into_iter()
        .flatten()
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
}

/// An ignore file that applies to a build, and its patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreFile {
    /// Where it was read from (a path under the Dockerfile's directory or the context).
    pub path: PathBuf,
    /// The patterns, as [`read_ignore_file`] returns them.
    pub patterns: Vec<String>,
}

/// The Dockerfile-specific ignore file BuildKit looks for: `<Dockerfile>.dockerignore`
/// next to the Dockerfile (`ci/app.Dockerfile` → `ci/app.Dockerfile.dockerignore`).
///
/// `None` when the path has no file name.
pub fn dockerfile_ignore_path(dockerfile: &Path) -> Option<PathBuf> {
    let name = dockerfile.file_name()?;
    let mut ignore_name = name.to_os_string();
    ignore_name.push(DOCKERIGNORE_NAME);
    Some(dockerfile.with_file_name(ignore_name))
}

/// Finds and reads the ignore file for a build, with BuildKit's precedence.
///
/// 1. `<Dockerfile>.dockerignore` in the Dockerfile's directory, if `dockerfile` is given
///    and that file exists. It wins even when empty.
/// 2. Otherwise `<context_dir>/.dockerignore`.
///
/// Each is looked up inside its own directory the way BuildKit sees it (the Dockerfile's
/// directory and the context are separate sources): symlinks are followed but cannot lead
/// out of that directory. A candidate that does not exist or is a directory is skipped;
/// other read errors are reported. Returns `None` when neither file exists. Invalid UTF-8
/// is replaced with U+FFFD.
pub fn find_ignore_file(
    context_dir: &Path,
    dockerfile: Option<&Path>,
) -> Result<Option<IgnoreFile>, ContextError> {
    if let Some(dockerfile) = dockerfile
        && let Some(name) = dockerfile.file_name()
    {
        let dir = match dockerfile.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let mut ignore_name = name.to_os_string();
        ignore_name.push(DOCKERIGNORE_NAME);
        if let Some(file) = read_scoped(dir, Path::new(&ignore_name))? {
            return Ok(Some(file));
        }
    }
    read_scoped(context_dir, Path::new(DOCKERIGNORE_NAME))
}

/// Reads `name` inside `root` (symlinks kept inside `root`); `None` if absent.
fn read_scoped(root: &Path, name: &Path) -> Result<Option<IgnoreFile>, ContextError> {
    let path = root.join(name);
    let read = resolve_in_root(root, name).and_then(std::fs::read);
    match read {
        Ok(bytes) => Ok(Some(IgnoreFile {
            patterns: read_ignore_file(&String::from_utf8_lossy(&bytes)),
            path,
        })),
        Err(err) if is_not_exist(&err) || err.kind() == io::ErrorKind::IsADirectory => Ok(None),
        Err(source) => Err(ContextError::ReadIgnoreFile { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_like_upstream() {
        let text = "\u{FEFF}# c\n/a/\r\n  # x\n!  ./b//c/ \n\n../up\n/\n!\n*.md";
        assert_eq!(
            read_ignore_file(text),
            strings(&["a", "# x", "!b/c", "../up", "/", "!", "*.md"])
        );
        assert_eq!(read_ignore_file(""), Vec::<String>::new());
        assert_eq!(read_ignore_file("\n\n"), Vec::<String>::new());
    }

    #[test]
    fn dockerfile_ignore_path_sits_next_to_the_dockerfile() {
        assert_eq!(
            dockerfile_ignore_path(Path::new("ci/app.Dockerfile")),
            Some(PathBuf::from("ci/app.Dockerfile.dockerignore"))
        );
        assert_eq!(
            dockerfile_ignore_path(Path::new("Dockerfile")),
            Some(PathBuf::from("Dockerfile.dockerignore"))
        );
        assert_eq!(dockerfile_ignore_path(Path::new("/")), None);
    }

    #[test]
    fn dockerfile_specific_file_takes_precedence() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path().join("ctx");
        let df_dir = tmp.path().join("build");
        fs::create_dir_all(&ctx).unwrap();
        fs::create_dir_all(&df_dir).unwrap();
        let dockerfile = df_dir.join("app.Dockerfile");
        fs::write(&dockerfile, "FROM scratch\n").unwrap();

        // Neither file: nothing.
        assert_eq!(find_ignore_file(&ctx, Some(&dockerfile)).unwrap(), None);

        // Only the context one.
        fs::write(ctx.join(".dockerignore"), "ctx-pattern\n").unwrap();
        let found = find_ignore_file(&ctx, Some(&dockerfile)).unwrap().unwrap();
        assert_eq!(found.path, ctx.join(".dockerignore"));
        assert_eq!(found.patterns, strings(&["ctx-pattern"]));

        // A Dockerfile-specific one next to the Dockerfile wins.
        fs::write(df_dir.join("app.Dockerfile.dockerignore"), "df-pattern\n").unwrap();
        let found = find_ignore_file(&ctx, Some(&dockerfile)).unwrap().unwrap();
        assert_eq!(found.path, df_dir.join("app.Dockerfile.dockerignore"));
        assert_eq!(found.patterns, strings(&["df-pattern"]));

        // One in the context named after the Dockerfile does not count when the
        // Dockerfile lives elsewhere, nor does the name of a different Dockerfile.
        fs::remove_file(df_dir.join("app.Dockerfile.dockerignore")).unwrap();
        fs::write(ctx.join("app.Dockerfile.dockerignore"), "wrong\n").unwrap();
        fs::write(df_dir.join("Dockerfile.dockerignore"), "wrong\n").unwrap();
        let found = find_ignore_file(&ctx, Some(&dockerfile)).unwrap().unwrap();
        assert_eq!(found.patterns, strings(&["ctx-pattern"]));

        // Without a Dockerfile path only the context file is used.
        fs::write(df_dir.join("app.Dockerfile.dockerignore"), "df-pattern\n").unwrap();
        let found = find_ignore_file(&ctx, None).unwrap().unwrap();
        assert_eq!(found.patterns, strings(&["ctx-pattern"]));

        // An empty Dockerfile-specific file still wins (BuildKit's built-in frontend).
        fs::write(df_dir.join("app.Dockerfile.dockerignore"), "").unwrap();
        let found = find_ignore_file(&ctx, Some(&dockerfile)).unwrap().unwrap();
        assert_eq!(found.path, df_dir.join("app.Dockerfile.dockerignore"));
        assert!(found.patterns.is_empty());

        // A directory with that name is skipped.
        fs::remove_file(df_dir.join("app.Dockerfile.dockerignore")).unwrap();
        fs::create_dir(df_dir.join("app.Dockerfile.dockerignore")).unwrap();
        let found = find_ignore_file(&ctx, Some(&dockerfile)).unwrap().unwrap();
        assert_eq!(found.patterns, strings(&["ctx-pattern"]));
    }

    #[test]
    fn dockerfile_in_the_context_uses_its_own_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        fs::create_dir_all(ctx.join("sub")).unwrap();
        fs::write(ctx.join(".dockerignore"), "ctx\n").unwrap();
        fs::write(ctx.join("sub/Dockerfile.dockerignore"), "sub\n").unwrap();
        fs::write(ctx.join("Dockerfile.dockerignore"), "root\n").unwrap();
        let found = find_ignore_file(ctx, Some(&ctx.join("sub/Dockerfile")))
            .unwrap()
            .unwrap();
        assert_eq!(found.patterns, strings(&["sub"]));
        let found = find_ignore_file(ctx, Some(&ctx.join("Dockerfile")))
            .unwrap()
            .unwrap();
        assert_eq!(found.patterns, strings(&["root"]));
    }

    #[test]
    fn ignore_file_symlinks_cannot_leave_the_context() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path().join("ctx");
        fs::create_dir_all(ctx.join("conf")).unwrap();
        fs::write(tmp.path().join("outside.ignore"), "outside\n").unwrap();
        fs::write(ctx.join("outside.ignore"), "inside\n").unwrap();
        symlink("../outside.ignore", ctx.join(".dockerignore")).unwrap();
        let found = find_ignore_file(&ctx, None).unwrap().unwrap();
        assert_eq!(found.patterns, strings(&["inside"]));
        fs::remove_file(ctx.join(".dockerignore")).unwrap();
        symlink("/conf/ignore", ctx.join(".dockerignore")).unwrap();
        assert_eq!(find_ignore_file(&ctx, None).unwrap(), None);
        fs::write(ctx.join("conf/ignore"), "conf\n").unwrap();
        let found = find_ignore_file(&ctx, None).unwrap().unwrap();
        assert_eq!(found.patterns, strings(&["conf"]));
    }
}
