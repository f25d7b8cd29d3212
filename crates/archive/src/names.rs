//! Image names as archives spell them, and as the store keeps them.
//!
//! The store keeps a reference as given (`busybox:latest`). Archives use two spellings of the same Docker Hub name:
//! `docker save` writes the familiar one (`busybox:latest`) in `manifest.json`, while skopeo, podman and the
//! containerd annotation `io.containerd.image.name` use the fully qualified one (`docker.io/library/busybox:latest`).
//! Loading therefore turns names into their familiar form, as `docker load` prints them, so that `hoist load` of
//! either archive gives the reference a user would type; saving writes the familiar form in `manifest.json` and the
//! qualified form in `io.containerd.image.name`, as Docker ≥ 25 does.

use hoist_oci::Reference;

use crate::Error;

/// Docker Hub's registry name in fully qualified references.
const DOCKER_HUB: &str = "docker.io";
/// The namespace of Docker Hub's official images.
const OFFICIAL: &str = "library";

/// Parses a name found in an archive into the store's familiar reference form.
pub(crate) fn familiar_reference(name: &str, source_name: &str) -> Result<Reference, Error> {
    let familiar = familiar(name);
    familiar.parse().map_err(|source| Error::InvalidName {
        name: name.to_owned(),
        source_name: source_name.to_owned(),
        source,
    })
}

/// `docker.io/library/x` → `x`, `docker.io/org/x` → `org/x`, `index.docker.io/…` likewise; others unchanged.
fn familiar(name: &str) -> &str {
    let rest = name
        .strip_prefix("docker.io/")
        .or_else(|| name.strip_prefix("index.docker.io/"));
    match rest {
        Some(rest) => rest
            .strip_prefix("library/")
            .filter(|r| !r.contains('/'))
            .unwrap_or(rest),
        None => name,
    }
}

/// The fully qualified form of a reference (`busybox:1` → `docker.io/library/busybox:1`), as containerd and Docker
/// ≥ 25 write it in `io.containerd.image.name`.
pub(crate) fn qualified(reference: &Reference) -> String {
    let name = reference.name();
    let first = name.split('/').next().unwrap_or(name);
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let qualified_name = if has_domain {
        name.to_owned()
    } else if name.contains('/') {
        format!("{DOCKER_HUB}/{name}")
    } else {
        format!("{DOCKER_HUB}/{OFFICIAL}/{name}")
    };
    format!("{qualified_name}:{}", reference.tag())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_familiar() {
        let f = |s: &str| familiar_reference(s, "test").unwrap().to_string();
        assert_eq!(f("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(f("docker.io/org/app:2"), "org/app:2");
        assert_eq!(f("index.docker.io/library/busybox"), "busybox:latest");
        assert_eq!(f("busybox"), "busybox:latest");
        assert_eq!(f("localhost/app:3"), "localhost/app:3");
        assert_eq!(f("quay.io/org/app:4"), "quay.io/org/app:4");
        assert_eq!(f("docker.io/library/org/x:1"), "library/org/x:1");
    }

    #[test]
    fn invalid_names_say_where_they_came_from() {
        let err = familiar_reference("Bad:Name", "manifest.json").unwrap_err();
        assert!(err.to_string().contains("manifest.json"), "{err}");
    }

    #[test]
    fn qualified_names_name_the_registry() {
        let q = |s: &str| qualified(&s.parse().unwrap());
        assert_eq!(q("busybox:1"), "docker.io/library/busybox:1");
        assert_eq!(q("org/app"), "docker.io/org/app:latest");
        assert_eq!(q("localhost:5000/app:v1"), "localhost:5000/app:v1");
        assert_eq!(q("quay.io/org/app:4"), "quay.io/org/app:4");
    }
}
