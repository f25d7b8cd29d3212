//! Registry configuration: mirrors, insecure (plain HTTP) registries and per-registry CA files.
//!
//! The file format is containers' `registries.conf` (TOML, version 2), so `/etc/containers/registries.conf` and
//! `/etc/containers/registries.conf.d/*.conf` are read as they are, plus two keys from Docker's `daemon.json`
//! for the Docker Hub case and one hoist extension:
//!
//! ```toml
//! registry-mirrors = ["http://mirror.internal:5000"]   # Docker's: mirrors for docker.io
//! insecure-registries = ["build-cache.internal:5000"]  # Docker's: plain HTTP allowed
//!
//! [[registry]]
//! prefix = "gcr.io"            # what a reference starts with (host, optionally with a path)
//! location = "gcr.io"          # where the origin really is (default: the prefix)
//! insecure = false
//! blocked = false              # true: refuse to pull from or push to this prefix
//! ca-file = "/etc/pki/gcr-proxy.pem"   # hoist extension: an extra CA for this registry
//! [[registry.mirror]]
//! location = "mirror.internal:5000/gcr"
//! insecure = true
//! ```
//!
//! Mirrors are tried in order, then the origin; a mirror that fails is skipped. Plain HTTP is used only for
//! `localhost`, loopback addresses and registries marked insecure.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::reference::{DOCKER_HUB, DOCKER_HUB_API};
use crate::{Error, Result};

/// Where system-wide configuration lives (containers' files; hoist's own file is read after them).
pub const SYSTEM_CONFIG_FILES: &[&str] = &[
    "/etc/containers/registries.conf",
    "/etc/containers/registries.conf.d",
    "/etc/hoist/registries.conf",
];

/// Directories searched for `HOST[:PORT]/*.crt` CA files, as Docker and containers do.
pub const SYSTEM_CERTS_DIRS: &[&str] = &["/etc/docker/certs.d", "/etc/containers/certs.d"];

/// One place to fetch a repository from: a mirror or the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host (with port) to connect to; its credentials and CA files are looked up under this name.
    pub host: String,
    /// The repository on that host.
    pub repository: String,
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// Whether this is a mirror (failures fall through to the next endpoint).
    pub mirror: bool,
}

impl Endpoint {
    /// `http(s)://host/v2/`.
    pub fn base_url(&self) -> String {
        let scheme = if self.insecure { "http" } else { "https" };
        format!("{scheme}://{}/v2/", self.host)
    }
}

/// One `[[registry]]` table, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryEntry {
    /// What references must start with (`docker.io`, `gcr.io/distroless`).
    pub prefix: String,
    /// Where the origin is (default: the prefix).
    pub location: String,
    /// Plain HTTP for the origin.
    pub insecure: bool,
    /// Extra CA file for the origin.
    pub ca_file: Option<PathBuf>,
    /// Mirrors, tried in order before the origin.
    pub mirrors: Vec<MirrorEntry>,
    /// Pulling from and pushing to this prefix is refused (`blocked = true`).
    pub blocked: bool,
}

/// One `[[registry.mirror]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorEntry {
    /// `host[:port][/path]`.
    pub location: String,
    /// Plain HTTP.
    pub insecure: bool,
}

/// The resolved registry configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// `[[registry]]` entries, later files overriding earlier ones with the same prefix.
    pub registries: Vec<RegistryEntry>,
    /// Hosts where plain HTTP is allowed (besides localhost and loopback).
    pub insecure_registries: BTreeSet<String>,
    /// Directories with `HOST[:PORT]/*.crt` CA files.
    pub certs_dirs: Vec<PathBuf>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            registries: Vec::new(),
            insecure_registries: BTreeSet::new(),
            certs_dirs: SYSTEM_CERTS_DIRS.iter().map(PathBuf::from).collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FileFormat {
    #[serde(default)]
    registry_mirrors: Vec<String>,
    #[serde(default)]
    insecure_registries: Vec<String>,
    #[serde(default)]
    registry: Vec<FileRegistry>,
    /// The version 1 format's tables (`[registries.insecure] registries = […]`).
    #[serde(default)]
    registries: V1Registries,
}

#[derive(Debug, Default, Deserialize)]
struct V1Registries {
    #[serde(default)]
    insecure: V1List,
}

#[derive(Debug, Default, Deserialize)]
struct V1List {
    #[serde(default)]
    registries: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FileRegistry {
    prefix: Option<String>,
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    mirror: Vec<FileMirror>,
}

#[derive(Debug, Deserialize)]
struct FileMirror {
    location: String,
    #[serde(default)]
    insecure: bool,
}

impl RegistryConfig {
    /// The system configuration: [`SYSTEM_CONFIG_FILES`], then `$XDG_CONFIG_HOME/hoist/registries.conf` (or
    /// `~/.config/hoist/registries.conf`). If `HOIST_REGISTRIES_CONF` is set, only that file is read.
    pub fn load_default() -> Result<Self> {
        if let Some(path) = std::env::var_os("HOIST_REGISTRIES_CONF") {
            return Self::load(&[PathBuf::from(path)]);
        }
        let mut paths: Vec<PathBuf> = SYSTEM_CONFIG_FILES.iter().map(PathBuf::from).collect();
        let user = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")));
        if let Some(dir) = user {
            paths.push(dir.join("hoist").join("registries.conf"));
        }
        Self::load(&paths)
    }

    /// Reads the given files (a directory means its `*.conf` files in name order); missing files are skipped.
    pub fn load(paths: &[PathBuf]) -> Result<Self> {
        let mut config = Self::default();
        for path in paths {
            if path.is_dir() {
                let read = std::fs::read_dir(path).map_err(|e| Error::Config {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
                let mut files: Vec<PathBuf> = read
                    .filter_map(|entry| entry.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|ext| ext == "conf"))
                    .collect();
                files.sort();
                for file in files {
                    config.merge_file(&file)?;
                }
            } else if path.is_file() {
                config.merge_file(path)?;
            }
        }
        Ok(config)
    }

    /// Parses one file's text and merges it in.
    pub fn merge_text(&mut self, path: &Path, text: &str) -> Result<()> {
        let invalid = |detail: String| Error::Config {
            path: path.to_owned(),
            detail,
        };
        let file: FileFormat = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        for mirror in &file.registry_mirrors {
            let (location, insecure) = strip_scheme(mirror);
            let entry = self.entry_mut(DOCKER_HUB);
            entry.mirrors.push(MirrorEntry {
                location: location.to_owned(),
                insecure,
            });
        }
        for host in file
            .insecure_registries
            .into_iter()
            .chain(file.registries.insecure.registries)
        {
            self.insecure_registries
                .insert(strip_scheme(&host).0.to_owned());
        }
        for registry in file.registry {
            let prefix = registry
                .prefix
                .clone()
                .or_else(|| registry.location.clone())
                .ok_or_else(|| invalid("a [[registry]] needs a prefix or a location".to_owned()))?;
            let prefix = normalise_prefix(&prefix);
            let entry = RegistryEntry {
                location: registry
                    .location
                    .as_deref()
                    .map_or_else(|| prefix.clone(), normalise_prefix),
                prefix: prefix.clone(),
                insecure: registry.insecure,
                blocked: registry.blocked,
                ca_file: registry.ca_file,
                mirrors: registry
                    .mirror
                    .into_iter()
                    .map(|m| MirrorEntry {
                        location: strip_scheme(&m.location).0.to_owned(),
                        insecure: m.insecure || strip_scheme(&m.location).1,
                    })
                    .collect(),
            };
            self.registries.retain(|r| r.prefix != prefix);
            self.registries.push(entry);
        }
        Ok(())
    }

    fn merge_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        self.merge_text(path, &text)
    }

    fn entry_mut(&mut self, prefix: &str) -> &mut RegistryEntry {
        if let Some(i) = self.registries.iter().position(|r| r.prefix == prefix) {
            return &mut self.registries[i];
        }
        self.registries.push(RegistryEntry {
            prefix: prefix.to_owned(),
            location: prefix.to_owned(),
            ..RegistryEntry::default()
        });
        self.registries
            .last_mut()
            .expect("an entry was pushed just above")
    }

    /// The `[[registry]]` whose prefix is the longest match for `registry/repository`.
    pub fn entry_for(&self, registry: &str, repository: &str) -> Option<&RegistryEntry> {
        let name = format!("{registry}/{repository}");
        self.registries
            .iter()
            .filter(|r| name == r.prefix || name.starts_with(&format!("{}/", r.prefix)))
            .max_by_key(|r| r.prefix.len())
    }

    /// Whether the configuration blocks `registry/repository` (`blocked = true` on its longest matching prefix).
    pub fn is_blocked(&self, registry: &str, repository: &str) -> bool {
        self.entry_for(registry, repository)
            .is_some_and(|r| r.blocked)
    }

    /// Whether plain HTTP may be used for `host`.
    pub fn is_insecure(&self, host: &str) -> bool {
        is_loopback(host)
            || self.insecure_registries.contains(host)
            || self
                .registries
                .iter()
                .any(|r| r.insecure && (r.location == host || r.prefix == host))
    }

    /// Where to fetch `registry/repository` from: mirrors in order, then the origin.
    pub fn pull_endpoints(&self, registry: &str, repository: &str) -> Vec<Endpoint> {
        let name = format!("{registry}/{repository}");
        let Some(entry) = self.entry_for(registry, repository) else {
            return vec![self.origin(registry, repository)];
        };
        let rest = &name[entry.prefix.len()..];
        let mut endpoints: Vec<Endpoint> = entry
            .mirrors
            .iter()
            .map(|m| {
                let mut endpoint = self.endpoint_at(&format!("{}{rest}", m.location), false);
                endpoint.insecure |= m.insecure;
                endpoint.mirror = true;
                endpoint
            })
            .collect();
        let mut origin = self.endpoint_at(&format!("{}{rest}", entry.location), entry.insecure);
        if origin.host == DOCKER_HUB {
            origin.host = DOCKER_HUB_API.to_owned();
        }
        endpoints.push(origin);
        endpoints
    }

    /// Where to push `registry/repository`: the origin only (mirrors are read-only).
    pub fn push_endpoint(&self, registry: &str, repository: &str) -> Endpoint {
        self.pull_endpoints(registry, repository)
            .pop()
            .expect("pull_endpoints always ends with the origin")
    }

    /// The extra CA file configured for `host`, if any.
    pub fn ca_file(&self, host: &str) -> Option<&Path> {
        self.registries
            .iter()
            .find(|r| r.location == host || r.prefix == host)
            .and_then(|r| r.ca_file.as_deref())
    }

    fn origin(&self, registry: &str, repository: &str) -> Endpoint {
        let host = if registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            registry
        };
        Endpoint {
            host: host.to_owned(),
            repository: repository.to_owned(),
            insecure: self.is_insecure(registry),
            mirror: false,
        }
    }

    fn endpoint_at(&self, location: &str, insecure: bool) -> Endpoint {
        let (host, repository) = location.split_once('/').unwrap_or((location, ""));
        Endpoint {
            host: host.to_owned(),
            repository: repository.to_owned(),
            insecure: insecure || self.is_insecure(host),
            mirror: false,
        }
    }
}

/// `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.split(':').next().unwrap_or(host),
    };
    name == "localhost"
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn strip_scheme(location: &str) -> (&str, bool) {
    let trimmed = location.trim_end_matches('/');
    if let Some(rest) = trimmed.strip_prefix("http://") {
        (rest, true)
    } else {
        (trimmed.strip_prefix("https://").unwrap_or(trimmed), false)
    }
}

fn normalise_prefix(prefix: &str) -> String {
    let (prefix, _) = strip_scheme(prefix);
    match prefix {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> RegistryConfig {
        let mut config = RegistryConfig::default();
        config.merge_text(Path::new("test.conf"), text).unwrap();
        config
    }

    fn hosts(endpoints: &[Endpoint]) -> Vec<String> {
        endpoints
            .iter()
            .map(|e| format!("{}{}", e.base_url(), e.repository))
            .collect()
    }

    #[test]
    fn origin_only_without_configuration() {
        let config = RegistryConfig::default();
        assert_eq!(
            hosts(&config.pull_endpoints("docker.io", "library/golang")),
            ["https://registry-1.docker.io/v2/library/golang"]
        );
        assert_eq!(
            hosts(&config.pull_endpoints("localhost:5000", "x")),
            ["http://localhost:5000/v2/x"]
        );
        assert_eq!(
            hosts(&config.pull_endpoints("127.0.0.1:5000", "x")),
            ["http://127.0.0.1:5000/v2/x"]
        );
        assert!(!config.is_insecure("gcr.io"));
    }

    #[test]
    fn docker_registry_mirrors_and_registries_conf_mirrors() {
        let config = config(
            r#"
registry-mirrors = ["http://mirror.internal:5000/"]
insecure-registries = ["cache.internal:5000"]

[[registry]]
prefix = "gcr.io/distroless"
location = "gcr.io/distroless"
[[registry.mirror]]
location = "mirror.internal:5000/gcr-distroless"
insecure = true
[[registry.mirror]]
location = "second.internal/d"
"#,
        );
        assert_eq!(
            hosts(&config.pull_endpoints("docker.io", "library/golang")),
            [
                "http://mirror.internal:5000/v2/library/golang",
                "https://registry-1.docker.io/v2/library/golang"
            ]
        );
        assert_eq!(
            hosts(&config.pull_endpoints("gcr.io", "distroless/static-debian12")),
            [
                "http://mirror.internal:5000/v2/gcr-distroless/static-debian12",
                "https://second.internal/v2/d/static-debian12",
                "https://gcr.io/v2/distroless/static-debian12"
            ]
        );
        assert_eq!(
            hosts(&config.pull_endpoints("gcr.io", "other/x")),
            ["https://gcr.io/v2/other/x"]
        );
        assert!(config.is_insecure("cache.internal:5000"));
        assert_eq!(
            config.push_endpoint("docker.io", "me/app").host,
            "registry-1.docker.io"
        );
    }

    #[test]
    fn later_files_override_and_errors_name_the_file() {
        let mut config = config("[[registry]]\nprefix = \"a.io\"\nca-file = \"/x.pem\"\n");
        assert_eq!(config.ca_file("a.io"), Some(Path::new("/x.pem")));
        config
            .merge_text(
                Path::new("b.conf"),
                "[[registry]]\nlocation = \"a.io\"\ninsecure = true\n",
            )
            .unwrap();
        assert_eq!(config.ca_file("a.io"), None);
        assert!(config.is_insecure("a.io"));
        let error = config
            .merge_text(Path::new("bad.conf"), "[[registry]]\ninsecure = 3\n")
            .unwrap_err();
        assert!(error.to_string().contains("bad.conf"), "{error}");
    }

    #[test]
    fn loads_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(
            dir.path().join("d/10-a.conf"),
            "insecure-registries = [\"one:1\"]",
        )
        .unwrap();
        std::fs::write(dir.path().join("d/ignored.txt"), "not toml").unwrap();
        std::fs::write(
            dir.path().join("main.conf"),
            "unqualified-search-registries = [\"docker.io\"]\ninsecure-registries = [\"two:2\"]",
        )
        .unwrap();
        let config = RegistryConfig::load(&[
            dir.path().join("main.conf"),
            dir.path().join("d"),
            dir.path().join("missing.conf"),
        ])
        .unwrap();
        assert!(config.is_insecure("one:1") && config.is_insecure("two:2"));
    }

    #[test]
    fn blocked_prefixes() {
        let config = config(
            "[[registry]]\nprefix = \"docker.io\"\nblocked = true\n[[registry]]\nprefix = \"docker.io/library\"\n",
        );
        assert!(config.is_blocked("docker.io", "someone/app"));
        assert!(
            !config.is_blocked("docker.io", "library/golang"),
            "a longer prefix wins"
        );
        assert!(!config.is_blocked("gcr.io", "x"));
    }

    #[test]
    fn other_containers_files_are_read_without_error() {
        // registries.conf.d often holds shortnames.conf (aliases, which hoist does not use); version 1 files have
        // [registries.*] tables, of which the insecure list applies.
        let config = config(
            "[aliases]\n  \"almalinux\" = \"docker.io/library/almalinux\"\n\n[registries.search]\nregistries = ['docker.io']\n[registries.insecure]\nregistries = ['old.internal:5000']\n",
        );
        assert!(config.is_insecure("old.internal:5000"));
        assert!(config.registries.is_empty());
    }

    #[test]
    fn loopback_detection() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:80",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["example.com", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
