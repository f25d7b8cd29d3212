//! Image references (`name:tag`), kept as the user wrote them after one normalisation.
//!
//! A reference is stored as given, with a missing tag defaulting to `latest`: `busybox` becomes `busybox:latest`,
//! `docker.io/library/busybox` stays `docker.io/library/busybox:latest`, so `hoist images` shows what you typed.
//! Docker's full normalisation (`busybox` ≡ `docker.io/library/busybox`) is a registry concern and will come with
//! pulling; until then two spellings of one repository are two references.
//!
//! Accepted grammar (a subset of the distribution reference grammar): `name[:tag]`, where `name` is
//! `[domain/]component(/component)*`; a domain contains a `.` or a `:port` or is `localhost` and may use upper
//! case; a path component is lowercase `[a-z0-9]` runs joined by `.`, `_`, `__` or any number of `-`; a tag is
//! `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. The whole name is at most 255 characters. Digest references
//! (`name@sha256:…`) are not references to tag; the store resolves them when looking images up.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The tag used when a reference has none.
pub const DEFAULT_TAG: &str = "latest";

/// A normalised `name:tag` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    name: String,
    tag: String,
}

impl Reference {
    /// The repository name, e.g. `docker.io/library/busybox` or `app`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag, e.g. `latest`.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Builds a reference from a validated name and tag.
    pub fn new(name: &str, tag: &str) -> Result<Self, Error> {
        format!("{name}:{tag}").parse()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidReference {
            reference: input.to_owned(),
            reason,
        };
        if input.is_empty() {
            return Err(invalid("empty reference"));
        }
        if input.contains('@') {
            return Err(invalid("digest references cannot be tagged; use name:tag"));
        }
        // The tag separator is the last ':' after the last '/'; an earlier ':' belongs to a registry port.
        let last_slash = input.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match input[last_slash..].rfind(':') {
            Some(i) => (&input[..last_slash + i], &input[last_slash + i + 1..]),
            None => (input, DEFAULT_TAG),
        };
        if name.len() > 255 {
            return Err(invalid("repository name longer than 255 characters"));
        }
        validate_name(name).map_err(invalid)?;
        validate_tag(tag).map_err(invalid)?;
        Ok(Self {
            name: name.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

fn validate_name(name: &str) -> Result<(), &'static str> {
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 && is_domain_like(components[0]) {
        validate_registry(components.remove(0))?;
    }
    for component in components {
        validate_path_component(component)?;
    }
    Ok(())
}

/// Docker's rule: the first component is a registry if it has a `.` or `:` or is `localhost`.
fn is_domain_like(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

/// Docker's rule for the registry part of a reference: a host name (or `[IPv6]`) with an optional port.
pub fn validate_registry(registry: &str) -> Result<(), &'static str> {
    // IPv6 literals are written in brackets: `[::1]:5000`.
    let (host, port) = if let Some(after) = registry.strip_prefix('[') {
        let Some((address, rest)) = after.split_once(']') else {
            return Err("invalid registry host");
        };
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err("invalid registry host");
        }
        match rest {
            "" => return Ok(()),
            _ => match rest.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return Err("invalid registry host"),
            },
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    if let Some(host) = host
        && (host.is_empty()
            || host.split('.').any(|label| {
                label.is_empty()
                    || label.starts_with('-')
                    || label.ends_with('-')
                    || !label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
    {
        return Err("invalid registry host");
    }
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("invalid registry port");
    }
    Ok(())
}

/// Docker's rule for one `/`-separated component of a repository path: lowercase letters and digits joined by
/// `.`, `_`, `__` or runs of `-`.
pub fn validate_path_component(component: &str) -> Result<(), &'static str> {
    const INVALID: &str = "repository name components must be lowercase letters and digits joined by '.', '_', '__' or '-'";
    let bytes = component.as_bytes();
    if bytes.is_empty() {
        return Err("empty path component in repository name");
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(INVALID);
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        match &component[start..i] {
            "." | "_" | "__" => {}
            run if run.bytes().all(|b| b == b'-') => {}
            _ => return Err(INVALID),
        }
    }
    Ok(())
}

/// Docker's rule for a tag: 1-128 of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`.
pub fn validate_tag(tag: &str) -> Result<(), &'static str> {
    let bytes = tag.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    if bytes.is_empty()
        || bytes.len() > 128
        || !word(bytes[0])
        || !bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
    {
        return Err(
            "tag must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> String {
        s.parse::<Reference>()
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn missing_tag_becomes_latest_and_names_stay_as_given() {
        assert_eq!(parse("busybox"), "busybox:latest");
        assert_eq!(parse("busybox:1.36"), "busybox:1.36");
        assert_eq!(
            parse("docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(parse("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(parse("localhost:5000/app:v1"), "localhost:5000/app:v1");
        assert_eq!(parse("my-org/my__app.x:V1_2-3"), "my-org/my__app.x:V1_2-3");
        assert_eq!(
            parse("Registry.Example.com/a/b"),
            "Registry.Example.com/a/b:latest"
        );
    }

    #[test]
    fn bad_references_are_rejected_with_reason() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            ":tag",
            "a//b",
            "a/",
            "-a",
            "a..b",
            "a___b",
            "app@sha256:abc",
            "host:port/app",
            "app:tag:more",
        ] {
            assert!(
                parse(bad).starts_with("error: invalid reference format"),
                "{bad}: {}",
                parse(bad)
            );
        }
        assert!(parse(&format!("a:{}", "t".repeat(129))).starts_with("error:"));
        assert!(!parse(&format!("a:{}", "t".repeat(128))).starts_with("error:"));
    }
}
