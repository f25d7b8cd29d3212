//! `# syntax=` and the `BUILDKIT_SYNTAX` build arg: which frontend reads the Dockerfile.
//!
//! BuildKit pulls the named frontend image and runs it. hoist has one frontend, its own, which implements the
//! Dockerfile language of `docker/dockerfile:1` (labs features included), so every reference to that image
//! (`docker/dockerfile`, `docker.io/docker/dockerfile:1.7`, `docker/dockerfile:1.4-labs`, pinned by digest or
//! not) is served by it without a pull; any other frontend image is an error that names it. As in BuildKit, the
//! build arg wins over the directive, and only the first word of either names the image.

use hoist_dockerfile::{DirectiveKind, Dockerfile};

use crate::error::{PlanError, PlanErrorKind};
use crate::request::PlanRequest;

/// Checks that the frontend the request asks for is hoist's own.
pub(crate) fn check_frontend(request: &PlanRequest) -> Result<(), PlanError> {
    let (value, origin, span) = match request.build_args.get("BUILDKIT_SYNTAX") {
        Some(value) => (value.as_str(), "--build-arg BUILDKIT_SYNTAX=", None),
        None => match syntax_directive(&request.dockerfile) {
            Some((value, span)) => (value, "# syntax=", Some(span)),
            None => return Ok(()),
        },
    };
    let reference = value.split_whitespace().next().unwrap_or("");
    if reference.is_empty() || is_dockerfile_frontend(reference) {
        return Ok(());
    }
    Err(PlanError::new(
        PlanErrorKind::ExternalFrontend {
            written: format!("{origin}{value}"),
        },
        span,
    ))
}

fn syntax_directive(file: &Dockerfile) -> Option<(&str, hoist_dockerfile::Span)> {
    file.directives
        .iter()
        .find(|d| d.kind == DirectiveKind::Syntax)
        .map(|d| (d.value.as_str(), d.value_span))
}

/// Whether `reference` names the `docker/dockerfile` image with a tag of version 1 (or none, `latest`, `labs`)
/// and/or a digest.
pub(crate) fn is_dockerfile_frontend(reference: &str) -> bool {
    let (name_tag, digest) = match reference.split_once('@') {
        Some((name_tag, digest)) => (name_tag, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        let valid = digest
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        if !valid {
            return false;
        }
    }
    // A tag follows the last `:` after the last `/` (a registry port comes before a `/`).
    let (name, tag) = match name_tag.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (name_tag, None),
    };
    let name = name
        .strip_prefix("docker.io/")
        .or_else(|| name.strip_prefix("index.docker.io/"))
        .unwrap_or(name);
    if name != "docker/dockerfile" {
        return false;
    }
    match tag {
        None => true,
        Some(tag) => is_version_one_tag(tag),
    }
}

/// `latest`, `labs`, `1`, `1.7`, `1.7.1`, each maybe with `-labs`.
fn is_version_one_tag(tag: &str) -> bool {
    if matches!(tag, "latest" | "labs") {
        return true;
    }
    let version = tag.strip_suffix("-labs").unwrap_or(tag);
    let mut parts = version.split('.');
    if parts.next() != Some("1") {
        return false;
    }
    let rest: Vec<&str> = parts.collect();
    rest.len() <= 2
        && rest
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::is_dockerfile_frontend;

    #[test]
    fn dockerfile_frontend_references() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        for ok in [
            "docker/dockerfile".to_owned(),
            "docker/dockerfile:1".to_owned(),
            "docker/dockerfile:1.7".to_owned(),
            "docker/dockerfile:1.7.1".to_owned(),
            "docker/dockerfile:1-labs".to_owned(),
            "docker/dockerfile:1.4.3-labs".to_owned(),
            "docker/dockerfile:labs".to_owned(),
            "docker/dockerfile:latest".to_owned(),
            "docker.io/docker/dockerfile:1".to_owned(),
            format!("docker/dockerfile@{digest}"),
            format!("docker/dockerfile:1.7@{digest}"),
            format!("docker.io/docker/dockerfile:1@{digest}"),
        ] {
            assert!(is_dockerfile_frontend(&ok), "{ok}");
        }
        for bad in [
            "tonistiigi/dockerfile:master",
            "docker/dockerfile-upstream:master",
            "docker/dockerfile:2",
            "docker/dockerfile:1.x",
            "docker/dockerfile:10",
            "docker/dockerfile:1.2.3.4",
            "ghcr.io/docker/dockerfile:1",
            "docker/dockerfile@sha256:abc",
            "example.com:5000/docker/dockerfile:1",
        ] {
            assert!(!is_dockerfile_frontend(bad), "{bad}");
        }
    }
}
