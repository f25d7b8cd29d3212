//! Platforms (`linux/arm64/v8`) as `--platform` takes them, normalised the way containerd's `platforms` package
//! does, and matched against index entries.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// An OS, architecture and optional variant, normalised (`aarch64` → `arm64`, `arm64/v8` → `arm64`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// Go's GOARCH name: `amd64`, `arm64`, `arm`, `386`, …
    pub architecture: String,
    /// `v7`, `v6`, … when meaningful for the architecture.
    pub variant: Option<String>,
}

impl Platform {
    /// Builds a normalised platform.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let os = os.to_ascii_lowercase();
        let (architecture, variant) = normalise_arch(
            &architecture.to_ascii_lowercase(),
            variant.map(str::to_ascii_lowercase).as_deref(),
        );
        Self {
            os,
            architecture,
            variant,
        }
    }

    /// The platform this process runs on (Docker's default for `--platform`).
    pub fn host() -> Self {
        let host = hoist_oci::ImagePlatform::host();
        Self::new(&host.os, &host.architecture, host.variant.as_deref())
    }

    /// Whether an index entry's platform satisfies this one.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        let other = Self::new(os, architecture, variant.filter(|v| !v.is_empty()));
        other == *self
    }
}

fn normalise_arch(architecture: &str, variant: Option<&str>) -> (String, Option<String>) {
    let (architecture, variant) = match (architecture, variant) {
        ("i386", _) => ("386", None),
        ("x86_64" | "x86-64" | "amd64", Some("v1")) => ("amd64", None),
        ("x86_64" | "x86-64", v) => ("amd64", v),
        ("aarch64" | "arm64", Some("8" | "v8") | None) => ("arm64", None),
        ("aarch64", v) => ("arm64", v),
        ("armhf", _) => ("arm", Some("v7")),
        ("armel", _) => ("arm", Some("v6")),
        ("arm", None) => ("arm", Some("v7")),
        ("arm", Some("5" | "6" | "7" | "8")) => {
            return ("arm".to_owned(), variant.map(|v| format!("v{v}")));
        }
        (arch, v) => (arch, v),
    };
    (architecture.to_owned(), variant.map(str::to_owned))
}

impl FromStr for Platform {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(Error::InvalidPlatform(text.to_owned()));
        }
        match parts.as_slice() {
            [os, arch] => Ok(Self::new(os, arch, None)),
            [os, arch, variant] => Ok(Self::new(os, arch, Some(variant))),
            _ => Err(Error::InvalidPlatform(text.to_owned())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let p = |s: &str| s.parse::<Platform>().unwrap().to_string();
        assert_eq!(p("linux/amd64"), "linux/amd64");
        assert_eq!(p("linux/x86_64"), "linux/amd64");
        assert_eq!(p("linux/arm64/v8"), "linux/arm64");
        assert_eq!(p("linux/aarch64"), "linux/arm64");
        assert_eq!(p("linux/arm"), "linux/arm/v7");
        assert_eq!(p("linux/arm/v6"), "linux/arm/v6");
        assert_eq!(p("Linux/ARM64"), "linux/arm64");
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", ""] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_index_entries() {
        let arm64: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(arm64.matches("linux", "arm64", None));
        assert!(arm64.matches("linux", "arm64", Some("v8")));
        assert!(!arm64.matches("linux", "amd64", None));
        let armv7: Platform = "linux/arm/v7".parse().unwrap();
        assert!(armv7.matches("linux", "arm", Some("v7")));
        assert!(!armv7.matches("linux", "arm", Some("v6")));
        assert!(!armv7.matches("windows", "arm", Some("v7")));
    }
}
