//! The values of Docker's `run` options that need more than a split: bind mounts (`-v HOST:CONTAINER[:ro|rw]`),
//! environment files (`--env-file`) and stop signals (`STOPSIGNAL`, `docker stop`).

use std::path::{Path, PathBuf};

use crate::container::BindMount;

/// A `-v`, `--env-file` or signal value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OptionError {
    /// `-v` is not `HOST:CONTAINER[:ro|rw]` with absolute paths.
    #[error("invalid volume specification {spec:?}: {reason}")]
    Volume {
        /// The option's value.
        spec: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `-v NAME:/path`: hoist has no named volumes.
    #[error(
        "invalid volume specification {spec:?}: named volumes are not supported, use an absolute host path"
    )]
    NamedVolume {
        /// The option's value.
        spec: String,
    },
    /// An environment file could not be read.
    #[error("failed to read the environment file {}: {source}", path.display())]
    EnvFileRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line of an environment file is not `KEY=VALUE` or `KEY`.
    #[error("{}:{line}: {reason}", path.display())]
    EnvFileLine {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A signal name or number no Linux signal has.
    #[error("invalid signal: {name}")]
    Signal {
        /// The name as given.
        name: String,
    },
}

/// Parses `-v HOST:CONTAINER[:ro|rw]` (Docker's bind form). Both paths must be absolute; a first part that is not
/// a path is a named volume, which hoist does not have.
pub fn parse_volume(spec: &str) -> Result<BindMount, OptionError> {
    let invalid = |reason| OptionError::Volume {
        spec: spec.to_owned(),
        reason,
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, mode) = match parts.as_slice() {
        [source, destination] => (*source, *destination, None),
        [source, destination, mode] => (*source, *destination, Some(*mode)),
        [_] => {
            return Err(invalid(
                "anonymous volumes are not supported, use HOST:CONTAINER",
            ));
        }
        _ => return Err(invalid("expected HOST:CONTAINER[:ro|rw]")),
    };
    if source.is_empty() || destination.is_empty() {
        return Err(invalid("empty path"));
    }
    if !source.starts_with('/') {
        return Err(if source.starts_with('.') || source.contains('/') {
            invalid("the host path must be absolute")
        } else {
            OptionError::NamedVolume {
                spec: spec.to_owned(),
            }
        });
    }
    if !destination.starts_with('/') {
        return Err(invalid("the container path must be absolute"));
    }
    if destination == "/" {
        return Err(invalid("the container path cannot be /"));
    }
    let mut read_only = false;
    for option in mode.into_iter().flat_map(|mode| mode.split(',')) {
        match option {
            "ro" => read_only = true,
            "rw" => read_only = false,
            // Docker's SELinux and propagation options change nothing here.
            "z" | "Z" | "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" => {}
            _ => return Err(invalid("unknown mode (expected ro or rw)")),
        }
    }
    Ok(BindMount {
        source: PathBuf::from(source),
        destination: destination.to_owned(),
        read_only,
    })
}

/// Parses an environment file as Docker's `--env-file` reads it: one `KEY=VALUE` per line, taken literally (no
/// quotes, no expansion); blank lines and lines starting with `#` skipped; a bare `KEY` takes `lookup(KEY)`, and is
/// left out when that is `None`. Leading whitespace is ignored; a name with whitespace is an error.
pub fn parse_env_file(
    path: &Path,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, OptionError> {
    let mut out = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |reason: String| OptionError::EnvFileLine {
            path: path.to_owned(),
            line: index + 1,
            reason,
        };
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (line, None),
        };
        if key.is_empty() {
            return Err(error(format!("no variable name on line {line:?}")));
        }
        if key.contains(char::is_whitespace) {
            return Err(error(format!("variable {key:?} contains whitespaces")));
        }
        match value {
            Some(value) => out.push(format!("{key}={value}")),
            None => {
                if let Some(value) = lookup(key) {
                    out.push(format!("{key}={value}"));
                }
            }
        }
    }
    Ok(out)
}

/// Reads and parses an environment file (see [`parse_env_file`]), looking bare names up in this process's
/// environment.
pub fn read_env_file(path: &Path) -> Result<Vec<String>, OptionError> {
    let text = std::fs::read_to_string(path).map_err(|source| OptionError::EnvFileRead {
        path: path.to_owned(),
        source,
    })?;
    parse_env_file(path, &text, |key| std::env::var(key).ok())
}

/// Linux signal names and numbers (x86-64 and arm64 agree on these).
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// The number of a signal given as Docker accepts it: `SIGTERM`, `TERM`, `sigterm` or `15`.
pub fn parse_signal(name: &str) -> Result<i32, OptionError> {
    let invalid = || OptionError::Signal {
        name: name.to_owned(),
    };
    if let Ok(number) = name.parse::<i32>() {
        return if (1..=64).contains(&number) {
            Ok(number)
        } else {
            Err(invalid())
        };
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(known, _)| *known == bare)
        .map(|(_, number)| *number)
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_parse_like_docker_binds() {
        let mount = parse_volume("/srv/data:/data:ro").unwrap();
        assert_eq!(mount.source, Path::new("/srv/data"));
        assert_eq!(mount.destination, "/data");
        assert!(mount.read_only);
        assert!(!parse_volume("/a:/b").unwrap().read_only);
        assert!(!parse_volume("/a:/b:rw").unwrap().read_only);
        let named = parse_volume("cache:/cache").unwrap_err().to_string();
        assert!(
            named.contains("named volumes are not supported, use an absolute host path"),
            "{named}"
        );
        for bad in [
            "./x:/y",
            "/x:y",
            "/x",
            "/x:/y:rx",
            "/x:/",
            ":/y",
            "/a:/b:ro:z",
        ] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_files_are_read_like_dockers() {
        let text =
            "\u{feff}# comment\nA=1\n\n  B = spaced\nC=x=y\nFROM_HOST\nMISSING\nQ=\"quoted\"\n";
        let lookup = |key: &str| (key == "FROM_HOST").then(|| "host value".to_owned());
        let env = parse_env_file(Path::new("f"), text, lookup);
        let error = env.unwrap_err().to_string();
        assert_eq!(error, "f:4: variable \"B \" contains whitespaces");
        let text = text.replace("  B = spaced\n", "  B= spaced\n");
        let env = parse_env_file(Path::new("f"), &text, lookup).unwrap();
        assert_eq!(
            env,
            [
                "A=1",
                "B= spaced",
                "C=x=y",
                "FROM_HOST=host value",
                "Q=\"quoted\""
            ]
        );
        let error = parse_env_file(Path::new("f"), "=x\n", lookup).unwrap_err();
        assert!(error.to_string().contains("no variable name"), "{error}");
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("quit").unwrap(), 3);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("SIGRTMIN+1").ok(), None);
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("NOPE").is_err());
    }
}
