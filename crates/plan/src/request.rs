//! What the caller asks for: the Dockerfile, the target, build args, platforms, labels,
//! cache switches and named contexts.

use std::collections::BTreeMap;
use std::fmt;

use hoist_dockerfile::Dockerfile;

/// An OS/architecture pair with an optional variant, in Go's names (`linux/amd64`,
/// `linux/arm/v7`), as OCI and BuildKit write them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// `amd64`, `arm64`, `arm`, `386`, ...
    pub architecture: String,
    /// `v7`, `v6`, ... or empty.
    pub variant: String,
}

impl Platform {
    /// A platform from its parts.
    pub fn new(os: &str, architecture: &str, variant: &str) -> Self {
        Self {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.to_owned(),
        }
    }

    /// The machine hoist runs on: Linux with `std::env::consts::ARCH` in Go's names
    /// (`x86_64` is `amd64`, `aarch64` is `arm64`).
    pub fn host() -> Self {
        let (architecture, variant) = normalize_arch(std::env::consts::ARCH, "");
        Self {
            os: "linux".to_owned(),
            architecture,
            variant,
        }
    }

    /// Parses `os[/arch[/variant]]` or a bare architecture, normalizing names the way
    /// containerd's `platforms.Parse` does for the common cases (`x86_64` → `amd64`,
    /// `aarch64` → `arm64`, `arm64/v8` → `arm64`, `armhf` → `arm/v7`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.to_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        let bad = || {
            format!(
                "{}: unknown operating system or architecture: invalid argument",
                hoist_dockerfile::go_quote(text)
            )
        };
        if parts.iter().any(|p| {
            p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        }) {
            return Err(bad());
        }
        let known_os = |os: &str| {
            matches!(
                os,
                "linux"
                    | "windows"
                    | "darwin"
                    | "freebsd"
                    | "netbsd"
                    | "openbsd"
                    | "solaris"
                    | "illumos"
                    | "aix"
                    | "android"
                    | "ios"
                    | "js"
                    | "wasip1"
                    | "plan9"
                    | "dragonfly"
            )
        };
        let (os, arch, variant) = match parts.as_slice() {
            [one] if known_os(one) => (one.to_string(), Self::host().architecture, String::new()),
            [one] => {
                let (arch, variant) = normalize_arch(one, "");
                if !known_arch(&arch) {
                    return Err(bad());
                }
                ("linux".to_owned(), arch, variant)
            }
            [os, arch] => {
                let (arch, variant) = normalize_arch(arch, "");
                (os.to_string(), arch, variant)
            }
            [os, arch, variant] => {
                let (arch, variant) = normalize_arch(arch, variant);
                (os.to_string(), arch, variant)
            }
            _ => return Err(bad()),
        };
        if !known_os(&os) {
            return Err(bad());
        }
        Ok(Self {
            os,
            architecture: arch,
            variant,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

fn known_arch(arch: &str) -> bool {
    matches!(
        arch,
        "amd64"
            | "arm64"
            | "arm"
            | "386"
            | "ppc64le"
            | "ppc64"
            | "s390x"
            | "riscv64"
            | "mips64le"
            | "mips64"
            | "mipsle"
            | "mips"
            | "loong64"
            | "wasm"
    )
}

/// containerd's `normalizeArch`, for the names in use.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (a, v) = match (arch, variant) {
        ("i386", _) => ("386", ""),
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
        ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v),
        ("aarch64" | "arm64", "8" | "v8") => ("arm64", ""),
        ("aarch64" | "arm64", v) => ("arm64", v),
        ("armhf", _) => ("arm", "v7"),
        ("armel", _) => ("arm", "v6"),
        ("arm", "" | "7") => ("arm", "v7"),
        ("arm", "5" | "6" | "8") => ("arm", ""),
        (a, v) => (a, v),
    };
    let v = match (a, variant) {
        ("arm", "5") => "v5",
        ("arm", "6") => "v6",
        ("arm", "8") => "v8",
        _ => v,
    };
    (a.to_owned(), v.to_owned())
}

/// What `--no-cache` / `--no-cache-filter` ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NoCache {
    /// Use the cache everywhere (the default).
    #[default]
    Off,
    /// `--no-cache`: run every step again.
    All,
    /// `--no-cache-filter a,b`: run the steps of these stages (names, case-insensitive) again.
    Stages(Vec<String>),
}

impl NoCache {
    /// Whether the steps of the stage named `name` ignore the cache.
    pub fn applies_to(&self, name: Option<&str>) -> bool {
        match self {
            Self::Off => false,
            Self::All => true,
            Self::Stages(names) => {
                name.is_some_and(|n| names.iter().any(|s| s.eq_ignore_ascii_case(n)))
            }
        }
    }
}

/// What a `--build-context NAME=VALUE` points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NamedContextKind {
    /// A local directory (`NAME=./dir`).
    Local,
    /// An image (`NAME=docker-image://alpine:3.20`), with its reference.
    Image(String),
    /// A Git repository (`NAME=https://github.com/o/r.git#ref`).
    Git,
    /// An HTTP(S) tarball.
    Url,
    /// An image in an OCI image layout directory (`NAME=oci-layout:///path/layout:tag` or
    /// `...@sha256:...`), with what follows `oci-layout://`.
    OciLayout(String),
}

/// One `--build-context`: it replaces a stage, a base image or a `--from` image of the same
/// name. The planner only needs the name and the kind; the engine loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedContext {
    /// The name as given (`alpine`, `docker.io/library/alpine:3.20`, `base`).
    pub name: String,
    /// What it points at.
    pub kind: NamedContextKind,
}

/// Everything `hoist build` decides before planning.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// The parsed Dockerfile.
    pub dockerfile: Dockerfile,
    /// `--target`: the stage to build (case-insensitive); `None` is the last stage.
    pub target: Option<String>,
    /// `--build-arg NAME=VALUE`.
    pub build_args: BTreeMap<String, String>,
    /// `--platform`: the platform to build for; `None` is the build platform (and base
    /// images may then pick theirs, as BuildKit's implicit target does).
    pub target_platform: Option<Platform>,
    /// The platform the build runs on (default: [`Platform::host`]).
    pub build_platform: Platform,
    /// `--label NAME=VALUE`: added to the target image's labels last.
    pub labels: BTreeMap<String, String>,
    /// `--no-cache`, `--no-cache-filter`.
    pub no_cache: NoCache,
    /// `--build-context NAME=...`.
    pub named_contexts: Vec<NamedContext>,
}

impl PlanRequest {
    /// A request for `dockerfile` with every option at its default: last stage, no build
    /// args, host platform, cache on.
    pub fn new(dockerfile: Dockerfile) -> Self {
        Self {
            dockerfile,
            target: None,
            build_args: BTreeMap::new(),
            target_platform: None,
            build_platform: Platform::host(),
            labels: BTreeMap::new(),
            no_cache: NoCache::Off,
            named_contexts: Vec::new(),
        }
    }

    /// The platform the image is built for.
    pub fn effective_target_platform(&self) -> &Platform {
        self.target_platform
            .as_ref()
            .unwrap_or(&self.build_platform)
    }
}

#[cfg(test)]
mod tests {
    use super::Platform;

    #[test]
    fn platforms_parse_and_normalize() {
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("Linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(Platform::parse("arm64").unwrap().to_string(), "linux/arm64");
        assert!(Platform::parse("nope/amd64").is_err());
        assert!(Platform::parse("").is_err());
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(host.architecture, "amd64");
        #[cfg(target_arch = "aarch64")]
        assert_eq!(host.architecture, "arm64");
    }
}
