//! Platform specifiers (`linux/arm64/v8`) as containerd's `platforms.Parse` reads them, and
//! the automatic platform `ARG`s BuildKit defines in the global scope.

/// A parsed platform: operating system, architecture and variant, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// `amd64`, `arm64`, `arm`, ...
    pub architecture: String,
    /// `v7`, `v8`, ... or empty.
    pub variant: String,
}

const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];

const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "ppc64",
    "ppc64le",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

impl Platform {
    /// The platform hoist runs on (`linux/amd64` on x86-64 Linux).
    pub fn host() -> Platform {
        let (architecture, variant) = normalize_arch(std::env::consts::ARCH, "");
        let os = match std::env::consts::OS {
            "macos" => "darwin".to_owned(),
            os => os.to_owned(),
        };
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// Parses a specifier (`linux`, `arm64`, `linux/amd64`, `linux/arm/v7`); `None` where
    /// containerd's `platforms.Parse` fails.
    pub fn parse(specifier: &str) -> Option<Platform> {
        if specifier.contains('*') {
            return None;
        }
        let parts: Vec<&str> = specifier.split('/').collect();
        let valid_part = |part: &&str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        };
        if !parts.iter().all(valid_part) {
            return None;
        }
        let host = Platform::host();
        match parts.as_slice() {
            [one] => {
                let os = normalize_os(one);
                if KNOWN_OS.contains(&os.as_str()) {
                    return Some(Platform {
                        os,
                        architecture: host.architecture,
                        variant: host.variant,
                    });
                }
                let (architecture, variant) = normalize_arch(one, "");
                let variant = if architecture == "arm" && variant == "v7" {
                    String::new()
                } else {
                    variant
                };
                KNOWN_ARCH
                    .contains(&architecture.as_str())
                    .then_some(Platform {
                        os: host.os,
                        architecture,
                        variant,
                    })
            }
            [os, arch] => {
                let (architecture, variant) = normalize_arch(arch, "");
                let variant = if architecture == "arm" && variant == "v7" {
                    String::new()
                } else {
                    variant
                };
                Some(Platform {
                    os: normalize_os(os),
                    architecture,
                    variant,
                })
            }
            [os, arch, variant] => {
                let (architecture, variant) = normalize_arch(arch, variant);
                Some(Platform {
                    os: normalize_os(os),
                    architecture,
                    variant,
                })
            }
            _ => None,
        }
    }

    /// `os/arch[/variant]`.
    pub fn format(&self) -> String {
        if self.variant.is_empty() {
            format!("{}/{}", self.os, self.architecture)
        } else {
            format!("{}/{}/{}", self.os, self.architecture, self.variant)
        }
    }
}

fn normalize_os(os: &str) -> String {
    match os.to_lowercase().as_str() {
        "macos" => "darwin".to_owned(),
        other => other.to_owned(),
    }
}

/// containerd's `normalizeArch`.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_lowercase();
    let variant = variant.to_lowercase();
    match arch.as_str() {
        "i386" => ("386".to_owned(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let variant = if variant == "v1" {
                String::new()
            } else {
                variant
            };
            ("amd64".to_owned(), variant)
        }
        "aarch64" | "arm64" => {
            let variant = match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".to_owned(),
                _ => variant,
            };
            ("arm64".to_owned(), variant)
        }
        "armhf" => ("arm".to_owned(), "v7".to_owned()),
        "armel" => ("arm".to_owned(), "v6".to_owned()),
        "arm" => {
            let variant = match variant.as_str() {
                "" | "7" => "v7".to_owned(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".to_owned(), variant)
        }
        _ => (arch, variant),
    }
}

/// The automatic platform `ARG`s of the global scope (`BUILDPLATFORM`, `TARGETARCH`, ...)
/// and `TARGETSTAGE`, as `NAME=value` entries in BuildKit's order.
pub(crate) fn default_global_args(
    build: &Platform,
    target: &Platform,
    target_stage: &str,
) -> Vec<String> {
    vec![
        format!("BUILDPLATFORM={}", build.format()),
        format!("BUILDOS={}", build.os),
        format!("BUILDARCH={}", build.architecture),
        format!("BUILDVARIANT={}", build.variant),
        format!("TARGETPLATFORM={}", target.format()),
        format!("TARGETOS={}", target.os),
        format!("TARGETARCH={}", target.architecture),
        format!("TARGETVARIANT={}", target.variant),
        format!("TARGETSTAGE={target_stage}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_containerd() {
        let p = Platform::parse("linux/amd64").unwrap();
        assert_eq!((p.os.as_str(), p.architecture.as_str()), ("linux", "amd64"));
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(p.format(), "linux/arm/v7");
        let p = Platform::parse("linux/aarch64").unwrap();
        assert_eq!(p.format(), "linux/arm64");
        let p = Platform::parse("arm64").unwrap();
        assert_eq!(p.architecture, "arm64");
        assert_eq!(Platform::parse("windows").unwrap().os, "windows");
        assert_eq!(Platform::parse("nonsense"), None);
        assert_eq!(Platform::parse("linux/*"), None);
        assert_eq!(Platform::parse("a/b/c/d"), None);
        assert_eq!(Platform::parse("linux/$ARCH"), None);
    }
}
