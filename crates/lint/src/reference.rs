//! Image names as `FROM` sees them: distribution's `ParseNormalizedNamed` (is this a valid
//! image reference?) and the repository/tag split the toolchain check needs.

use std::sync::LazyLock;

use regex::Regex;

/// distribution/reference's `ReferenceRegexp`, anchored: `name[:tag][@digest]`.
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    let alphanumeric = "[a-z0-9]+";
    let separator = "(?:[._]|__|[-]+)";
    let path_component = format!("{alphanumeric}(?:{separator}{alphanumeric})*");
    let domain_component = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let domain_name = format!(r"{domain_component}(?:\.{domain_component})*");
    let ipv6 = r"\[(?:[a-fA-F0-9:]+)\]";
    let host = format!("(?:{domain_name}|{ipv6})");
    let domain_and_port = format!("{host}(?::[0-9]+)?");
    let name = format!("(?:{domain_and_port}/)?{path_component}(?:/{path_component})*");
    // Go's `\w` is ASCII-only.
    let tag = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
    let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";
    Regex::new(&format!("^({name})(?::({tag}))?(?:@({digest}))?$"))
        .expect("the reference grammar is a valid regular expression")
});

/// A 64-character hex string, which distribution refuses as a repository name.
static IDENTIFIER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new("^[a-f0-9]{64}$").expect("the identifier pattern is a valid regular expression")
});

/// Splits `name` into its registry domain and the rest, as distribution's
/// `splitDockerDomain` does (Docker Hub names get `docker.io` and `library/`).
fn split_docker_domain(name: &str) -> (&str, String) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first, rest.to_owned())
        }
        _ if !name.contains('/') => ("docker.io", format!("library/{name}")),
        _ => ("docker.io", name.to_owned()),
    }
}

/// Whether `name` is a valid image reference for `FROM` (distribution's
/// `ParseNormalizedNamed` succeeds): non-empty, lower-case repository, optional tag and
/// digest, at most 255 characters of name.
pub(crate) fn is_valid_image_name(name: &str) -> bool {
    if IDENTIFIER.is_match(name) {
        return false;
    }
    let (domain, remainder) = split_docker_domain(name);
    let repository = remainder.split(':').next().unwrap_or_default();
    if repository.to_lowercase() != repository {
        return false;
    }
    let full = format!("{domain}/{remainder}");
    match REFERENCE.captures(&full) {
        Some(captures) => captures.get(1).is_some_and(|m| m.as_str().len() <= 255),
        None => false,
    }
}

/// An image name split into the parts the toolchain check looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageName {
    /// The repository path with Docker Hub's `docker.io/` and `library/` removed
    /// (`golang`, `mcr.microsoft.com/dotnet/sdk`, `bitnami/node`).
    pub(crate) repository: String,
    /// The tag, `latest` when none is given (or when only a digest is).
    pub(crate) tag: String,
}

impl ImageName {
    /// Splits a valid image name; `None` for names [`is_valid_image_name`] rejects.
    pub(crate) fn parse(name: &str) -> Option<ImageName> {
        if !is_valid_image_name(name) {
            return None;
        }
        let without_digest = name.split_once('@').map_or(name, |(n, _)| n);
        let (path, tag) = match without_digest.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') => (path, tag),
            _ => (without_digest, "latest"),
        };
        let path = path.strip_prefix("docker.io/").unwrap_or(path);
        let path = path.strip_prefix("index.docker.io/").unwrap_or(path);
        let path = path.strip_prefix("library/").unwrap_or(path);
        Some(ImageName {
            repository: path.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_docker_accepts() {
        for name in [
            "alpine",
            "alpine:3.20",
            "library/alpine:latest",
            "docker.io/library/alpine",
            "localhost:5000/app:v1",
            "registry.example.com/team/app:1.0-rc_1",
            "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "scratch",
            "[::1]:5000/app",
            "my-app__x.y",
        ] {
            assert!(is_valid_image_name(name), "{name}");
        }
    }

    #[test]
    fn rejects_what_docker_rejects() {
        for name in [
            "",
            "Alpine",
            "alpine:",
            ":latest",
            "user/App",
            "ghcr.io/Org/app",
            "alpine:-x",
            "-alpine",
            "alpine/",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "alpine@sha256:short",
            "a b",
        ] {
            assert!(!is_valid_image_name(name), "{name:?}");
        }
        assert!(!is_valid_image_name(&"a".repeat(256)));
    }

    #[test]
    fn splits_repository_and_tag() {
        let name = ImageName::parse("docker.io/library/golang:1.22-alpine").unwrap();
        assert_eq!(name.repository, "golang");
        assert_eq!(name.tag, "1.22-alpine");
        let name = ImageName::parse("mcr.microsoft.com/dotnet/sdk:8.0").unwrap();
        assert_eq!(name.repository, "mcr.microsoft.com/dotnet/sdk");
        let name = ImageName::parse("localhost:5000/rust").unwrap();
        assert_eq!(name.repository, "localhost:5000/rust");
        assert_eq!(name.tag, "latest");
        assert_eq!(ImageName::parse("Bad"), None);
    }
}
