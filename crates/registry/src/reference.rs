//! Image references as the Docker CLI reads them: `golang` is `docker.io/library/golang:latest`.
//!
//! The rules follow distribution's `reference.ParseNormalizedNamed`:
//!
//! * The first path component is a registry host when it contains `.` or `:`, is `localhost`, or is not all
//!   lowercase; otherwise the registry is `docker.io`. `index.docker.io` is spelled `docker.io`.
//! * On `docker.io`, a one-component repository gets the `library/` prefix.
//! * The repository must be lowercase; a 64-digit hex string alone is refused (it would look like an image ID).
//! * A reference may carry a tag, a digest, or both (`name:tag@sha256:…`; the digest wins when pulling); with
//!   neither, the tag is `latest`.
//!
//! [`ImageReference::familiar`] gives the short form Docker shows (`golang:1.24`), which is also the name the
//! local store keeps.

use hoist_oci::reference_grammar::{validate_path_component, validate_registry, validate_tag};
use std::fmt;
use std::str::FromStr;

use hoist_layer::Digest;

/// The registry Docker Hub references resolve to.
pub const DOCKER_HUB: &str = "docker.io";
/// The host Docker Hub's registry API actually lives on.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

const MAX_NAME_LENGTH: usize = 255;

/// A reference that is not valid, with the reason (Docker's wording where Docker has one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference format: {reason}: {reference:?}")]
pub struct ReferenceError {
    /// The reference as given.
    pub reference: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A fully qualified image reference: registry, repository, and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageReference {
    /// Builds a reference from its parts, validating each.
    pub fn new(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Self, ReferenceError> {
        let mut text = format!("{registry}/{repository}");
        if let Some(tag) = tag {
            text = format!("{text}:{tag}");
        }
        let mut parsed: Self = text.parse()?;
        if tag.is_none() {
            parsed.tag = None;
        }
        parsed.digest = digest;
        if parsed.tag.is_none() && parsed.digest.is_none() {
            parsed.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(parsed)
    }

    /// The registry host, with port if any: `docker.io`, `gcr.io`, `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry: `library/golang`, `distroless/static-debian12`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` when the reference had neither tag nor digest).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry's manifest endpoint for: the digest if pinned, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The same repository with another tag (and no digest).
    #[must_use]
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        }
    }

    /// The same repository pinned to a digest (the tag is kept for display).
    #[must_use]
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same reference on another registry (for mirrors).
    #[must_use]
    pub fn on_registry(&self, registry: &str) -> Self {
        Self {
            registry: registry.to_owned(),
            ..self.clone()
        }
    }

    /// `registry/repository` without tag or digest: `docker.io/library/golang`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The repository name as Docker shows it: `golang`, `myorg/app`, `gcr.io/distroless/static-debian12`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.repository)
                .to_owned()
        } else {
            self.name()
        }
    }

    /// The short form Docker shows: `golang:1.24`, `gcr.io/distroless/static-debian12:latest`, with `@digest` if
    /// pinned.
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
        out
    }
}

impl fmt::Display for ImageReference {
    /// The fully qualified form: `docker.io/library/golang:1.24`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, ReferenceError> {
        let invalid = |reason: &str| ReferenceError {
            reference: input.to_owned(),
            reason: reason.to_owned(),
        };
        if input.is_empty() {
            return Err(invalid("empty reference"));
        }
        if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "cannot specify 64-byte hexadecimal strings as a repository name",
            ));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(parse_digest(digest).map_err(invalid)?)),
            None => (input, None),
        };
        // The tag separator is the last ':' after the last '/'; an earlier ':' belongs to a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(invalid)?;
        }
        let (registry, repository) = split_registry(name);
        if let Some(registry) = registry {
            validate_registry(registry).map_err(invalid)?;
        }
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase"));
        }
        for component in repository.split('/') {
            validate_path_component(component).map_err(invalid)?;
        }
        let registry = match registry {
            None | Some("index.docker.io") => DOCKER_HUB,
            Some(host) => host,
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_owned()
        };
        if registry.len() + 1 + repository.len() > MAX_NAME_LENGTH {
            return Err(invalid(
                "repository name must not be more than 255 characters",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_owned()),
        };
        Ok(Self {
            registry: registry.to_owned(),
            repository,
            tag,
            digest,
        })
    }
}

/// Splits `host/path` the way Docker does: the first component is a host if it looks like one.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn parse_digest(text: &str) -> Result<Digest, &'static str> {
    let Some((algorithm, encoded)) = text.split_once(':') else {
        return Err("invalid digest format");
    };
    if algorithm != "sha256" {
        return Err("unsupported digest algorithm (only sha256)");
    }
    if encoded.len() != 64
        || !encoded
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("invalid checksum digest length or characters");
    }
    text.parse().map_err(|_| "invalid digest format")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        s.parse::<ImageReference>()
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalises_like_docker() {
        for (input, want) in [
            ("golang", "docker.io/library/golang:latest"),
            ("golang:1.24", "docker.io/library/golang:1.24"),
            ("library/golang", "docker.io/library/golang:latest"),
            ("docker.io/golang", "docker.io/library/golang:latest"),
            ("index.docker.io/golang:1", "docker.io/library/golang:1"),
            ("myorg/app", "docker.io/myorg/app:latest"),
            ("docker.io/myorg/app:v1", "docker.io/myorg/app:v1"),
            (
                "gcr.io/distroless/static-debian12",
                "gcr.io/distroless/static-debian12:latest",
            ),
            (
                "public.ecr.aws/lambda/provided:al2023",
                "public.ecr.aws/lambda/provided:al2023",
            ),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("localhost/x:y", "localhost/x:y"),
            ("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t"),
            ("[::1]:5000/app", "[::1]:5000/app:latest"),
            ("Registry.Example.com/a", "Registry.Example.com/a:latest"),
            ("Foo/bar", "Foo/bar:latest"),
            (
                "my-org/my__app.x-y:V1_2-3",
                "docker.io/my-org/my__app.x-y:V1_2-3",
            ),
        ] {
            assert_eq!(full(input), want, "{input}");
        }
    }

    #[test]
    fn digests_with_and_without_tags() {
        let r: ImageReference = format!("golang@{D}").parse().unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/golang@{D}"));
        assert_eq!(r.familiar(), format!("golang@{D}"));
        let r: ImageReference = format!("localhost:5000/a:1.0@{D}").parse().unwrap();
        assert_eq!(r.tag(), Some("1.0"));
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.registry(), "localhost:5000");
    }

    #[test]
    fn familiar_forms() {
        let familiar = |s: &str| s.parse::<ImageReference>().unwrap().familiar();
        assert_eq!(familiar("docker.io/library/golang:1.24"), "golang:1.24");
        assert_eq!(familiar("docker.io/myorg/app"), "myorg/app:latest");
        assert_eq!(
            familiar("docker.io/library/a/b"),
            "library/a/b:latest",
            "only one-component library names are shortened"
        );
        assert_eq!(familiar("localhost:5000/x"), "localhost:5000/x:latest");
    }

    #[test]
    fn invalid_references_say_why() {
        for (input, reason) in [
            ("", "empty reference"),
            ("Golang", "must be lowercase"),
            ("docker.io/Golang", "must be lowercase"),
            ("golang:", "tag must be"),
            ("golang:-x", "tag must be"),
            ("golang:a:b", "components must be lowercase"),
            (":tag", "empty path component"),
            ("a//b", "empty path component"),
            ("a/", "empty path component"),
            ("-a", "components must be lowercase"),
            ("a..b", "components must be lowercase"),
            ("a___b", "components must be lowercase"),
            ("golang@sha256:abc", "invalid checksum digest"),
            ("golang@md5:abc", "unsupported digest algorithm"),
            ("golang@", "invalid digest format"),
            ("host:port/app", "invalid registry port"),
            ("-host.io/app", "invalid registry host"),
            ("host.io:123456/app", "invalid registry port"),
            (
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "64-byte hexadecimal",
            ),
        ] {
            let error = full(input);
            assert!(
                error.starts_with("error: invalid reference format") && error.contains(reason),
                "{input:?}: {error}"
            );
        }
        let long = format!("a/{}", "b".repeat(250));
        assert!(full(&long).contains("255 characters"), "{}", full(&long));
    }

    #[test]
    fn builders_keep_parts() {
        let r: ImageReference = "golang:1.24".parse().unwrap();
        assert_eq!(r.with_tag("2").to_string(), "docker.io/library/golang:2");
        assert_eq!(
            r.on_registry("mirror.local:5000").to_string(),
            "mirror.local:5000/library/golang:1.24"
        );
        let built = ImageReference::new("localhost:5000", "app", None, None).unwrap();
        assert_eq!(built.to_string(), "localhost:5000/app:latest");
        assert!(ImageReference::new("localhost:5000", "App", None, None).is_err());
    }
}
