//! Credentials as the Docker CLI keeps them, and the registry's `WWW-Authenticate` challenges.
//!
//! Credentials come from `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`): a `credHelpers` entry
//! for the registry, else the `credsStore` helper, else the base64 `auth` in `auths`. Helpers are the
//! `docker-credential-<name>` programs, spoken to as Docker does (`get`/`store`/`erase`, JSON on stdin/stdout).
//! Docker Hub's credentials live under the key `https://index.docker.io/v1/`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::reference::{DOCKER_HUB, DOCKER_HUB_API};
use crate::{Error, Result};

/// The key Docker stores Docker Hub credentials under.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// The user name credential helpers return for an identity (OAuth2 refresh) token, as the Docker CLI reads it.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// A user name and password (or token) for a registry. A username of [`IDENTITY_TOKEN_USER`] means the password
/// is an identity token, exchanged for access tokens with an OAuth2 `refresh_token` grant.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer` or `basic` (lowercase).
    pub scheme: String,
    /// The parameters (`realm`, `service`, `scope`, `error`, …), keys lowercase.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parses `Bearer realm="…",service="…",scope="…"` (quoted or token values, commas inside quotes kept).
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.is_empty() {
            return None;
        }
        let mut params = BTreeMap::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if key.is_empty() {
                break;
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.peek().copied() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
            params.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        Some(Self {
            scheme: scheme.to_ascii_lowercase(),
            params,
        })
    }
}

/// The key credentials for `host` are stored under: Docker Hub's legacy URL, or the host itself.
pub fn auth_key(host: &str) -> String {
    match host {
        DOCKER_HUB | DOCKER_HUB_API | "index.docker.io" => DOCKER_HUB_AUTH_KEY.to_owned(),
        other => other.to_owned(),
    }
}

/// The Docker CLI's config file: where credentials are read and `hoist login` writes them.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    helper_path: Option<std::ffi::OsString>,
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn default_location() -> Self {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .unwrap_or_else(|| PathBuf::from(".docker"));
        Self::at(dir.join("config.json"))
    }

    /// A config file at a given path.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            helper_path: None,
        }
    }

    /// Searches `docker-credential-*` helpers in these directories (a `PATH`-style list) instead of `$PATH`.
    #[must_use]
    pub fn with_helper_path(mut self, path: impl Into<std::ffi::OsString>) -> Self {
        self.helper_path = Some(path.into());
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Map<String, Value>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(e) => return Err(self.error(e.to_string())),
        };
        if text.trim().is_empty() {
            return Ok(Map::new());
        }
        match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(self.error("not a JSON object".to_owned())),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    fn write(&self, config: &Map<String, Value>) -> Result<()> {
        let write = || -> std::io::Result<()> {
            // A config.json that is a symlink (dotfile managers keep it elsewhere) is written where it points, as
            // Docker's CLI does; renaming over the link would replace it with a plain file.
            let target = match std::fs::symlink_metadata(&self.path) {
                Ok(metadata) if metadata.file_type().is_symlink() => {
                    std::fs::canonicalize(&self.path)?
                }
                _ => self.path.clone(),
            };
            let dir = target.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let tmp = dir.join(format!(".config.json.{}", std::process::id()));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode_0600()
                .open(&tmp)?;
            let text = serde_json::to_string_pretty(config).map_err(std::io::Error::other)?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &target)
        };
        write().map_err(|e| self.error(e.to_string()))
    }

    fn error(&self, detail: String) -> Error {
        Error::DockerConfig {
            path: self.path.clone(),
            detail,
        }
    }

    fn helper_for(config: &Map<String, Value>, key: &str) -> Option<String> {
        let host = key_host(key);
        let helpers = config.get("credHelpers").and_then(Value::as_object);
        helpers
            .and_then(|h| h.get(key).or_else(|| h.get(host)))
            .or_else(|| config.get("credsStore"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// The credentials stored for a registry host, if any.
    pub fn credentials(&self, host: &str) -> Result<Option<Credentials>> {
        let key = auth_key(host);
        let config = self.read()?;
        if let Some(helper) = Self::helper_for(&config, &key) {
            return helper_get(self.helper_path.as_deref(), &helper, &key);
        }
        let Some(auths) = config.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let entry = auths.get(&key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| key_host(k) == key_host(&key))
                .map(|(_, v)| v)
        });
        let Some(entry) = entry.and_then(Value::as_object) else {
            return Ok(None);
        };
        if let Some(auth) = entry.get("auth").and_then(Value::as_str)
            && !auth.is_empty()
        {
            let decoded = STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    self.error(format!("auths[{key:?}].auth is not base64 user:password"))
                })?;
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| self.error(format!("auths[{key:?}].auth has no ':'")))?;
            return Ok(Some(Credentials {
                username: username.to_owned(),
                password: password.trim_end_matches('\n').to_owned(),
            }));
        }
        let field = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_owned);
        if let Some(token) = field("identitytoken").filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials {
                username: IDENTITY_TOKEN_USER.to_owned(),
                password: token,
            }));
        }
        match (field("username"), field("password")) {
            (Some(username), Some(password)) => Ok(Some(Credentials { username, password })),
            _ => Ok(None),
        }
    }

    /// Stores credentials for a host (in its helper if one is configured, else base64 in `auths`).
    pub fn store(&self, host: &str, credentials: &Credentials) -> Result<()> {
        let key = auth_key(host);
        let mut config = self.read()?;
        if let Some(helper) = Self::helper_for(&config, &key) {
            let input = serde_json::json!({
                "ServerURL": key,
                "Username": credentials.username,
                "Secret": credentials.password,
            });
            return run_helper(
                self.helper_path.as_deref(),
                &helper,
                "store",
                &input.to_string(),
                &key,
            )
            .map(drop);
        }
        let auths = config
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(auths) = auths.as_object_mut() else {
            return Err(self.error("`auths` is not an object".to_owned()));
        };
        let encoded = STANDARD.encode(format!("{}:{}", credentials.username, credentials.password));
        auths.insert(key, serde_json::json!({ "auth": encoded }));
        self.write(&config)
    }

    /// Removes the credentials for a host; returns whether there were any.
    pub fn erase(&self, host: &str) -> Result<bool> {
        let key = auth_key(host);
        let mut config = self.read()?;
        if let Some(helper) = Self::helper_for(&config, &key) {
            return run_helper(self.helper_path.as_deref(), &helper, "erase", &key, &key)
                .map(|_| true);
        }
        let Some(auths) = config.get_mut("auths").and_then(Value::as_object_mut) else {
            return Ok(false);
        };
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| **k == key || key_host(k) == key_host(&key))
            .cloned()
            .collect();
        for k in &keys {
            auths.remove(k);
        }
        if keys.is_empty() {
            return Ok(false);
        }
        self.write(&config)?;
        Ok(true)
    }
}

trait OpenOptionsExt {
    fn mode_0600(&mut self) -> &mut Self;
}

impl OpenOptionsExt for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

/// `https://host/v1/` → `host`.
fn key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

fn run_helper(
    search_path: Option<&std::ffi::OsStr>,
    helper: &str,
    action: &str,
    input: &str,
    registry: &str,
) -> Result<String> {
    let fail = |detail: String| Error::CredentialHelper {
        helper: helper.to_owned(),
        registry: registry.to_owned(),
        detail,
    };
    let mut command = Command::new(format!("docker-credential-{helper}"));
    if let Some(path) = search_path {
        // With PATH set on the command, the program is looked up in the child's PATH.
        command.env("PATH", path);
    }
    let mut child = command
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let output = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(fail(if stdout.is_empty() { stderr } else { stdout }));
    }
    Ok(stdout)
}

fn helper_get(
    search_path: Option<&std::ffi::OsStr>,
    helper: &str,
    key: &str,
) -> Result<Option<Credentials>> {
    let output = match run_helper(search_path, helper, "get", key, key) {
        Ok(output) => output,
        // Helpers say so on stdout with a failing status; Docker treats it as "no credentials".
        Err(Error::CredentialHelper { detail, .. }) if detail.contains("credentials not found") => {
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    let value: Value = serde_json::from_str(&output).map_err(|e| Error::CredentialHelper {
        helper: helper.to_owned(),
        registry: key.to_owned(),
        detail: format!("invalid JSON from `get`: {e}"),
    })?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (username, password) = (field("Username"), field("Secret"));
    if password.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials { username, password }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/golang:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/golang:pull,push");
        let c = Challenge::parse(r#"Basic realm="basic-realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "basic-realm");
        let c = Challenge::parse("Bearer realm=http://x/token, error=invalid_token").unwrap();
        assert_eq!(c.params["realm"], "http://x/token");
        assert_eq!(c.params["error"], "invalid_token");
    }

    #[test]
    fn login_store_read_erase_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let config = DockerConfig::at(dir.path().join("docker/config.json"));
        assert_eq!(config.credentials("localhost:5000").unwrap(), None);
        let creds = Credentials {
            username: "u".to_owned(),
            password: "p:w".to_owned(),
        };
        config.store("localhost:5000", &creds).unwrap();
        config.store("docker.io", &creds).unwrap();
        assert_eq!(
            config.credentials("localhost:5000").unwrap(),
            Some(creds.clone())
        );
        assert_eq!(
            config.credentials("registry-1.docker.io").unwrap(),
            Some(creds.clone())
        );
        let text = std::fs::read_to_string(config.path()).unwrap();
        assert!(
            text.contains(DOCKER_HUB_AUTH_KEY) && text.contains("dTpwOnc="),
            "{text}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(config.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(config.erase("localhost:5000").unwrap());
        assert!(!config.erase("localhost:5000").unwrap());
        assert_eq!(config.credentials("localhost:5000").unwrap(), None);
        assert!(config.credentials("docker.io").unwrap().is_some());
    }

    #[test]
    fn a_symlinked_config_is_written_through_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles/docker-config.json");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, "{\"credsStore\": \"\", \"proxies\": {}}\n").unwrap();
        let link = dir.path().join("docker/config.json");
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let config = DockerConfig::at(link.clone());
        let creds = Credentials {
            username: "u".to_owned(),
            password: "p".to_owned(),
        };
        config.store("localhost:5000", &creds).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let text = std::fs::read_to_string(&real).unwrap();
        assert!(
            text.contains("localhost:5000") && text.contains("proxies"),
            "{text}"
        );
        assert_eq!(config.credentials("localhost:5000").unwrap(), Some(creds));
    }

    #[test]
    fn reads_docker_style_keys_and_keeps_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://gcr.io/v1/":{"auth":"YTpi"}},"psFormat":"table"}"#,
        )
        .unwrap();
        let config = DockerConfig::at(&path);
        let creds = config.credentials("gcr.io").unwrap().unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("a", "b")
        );
        config.store("x.io", &creds).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("psFormat"));
        std::fs::write(&path, "{not json").unwrap();
        assert!(
            config
                .credentials("gcr.io")
                .unwrap_err()
                .to_string()
                .contains("config.json")
        );
    }

    #[test]
    fn credential_helpers_are_real_programs() {
        // A real helper program on PATH, speaking Docker's protocol.
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-hoisttest");
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\nread server\ncase \"$1\" in\n  store|erase) echo \"$1 $server\" >> {log};;\n  get) if [ \"$server\" = helper.io ]; then\n    echo '{{\"ServerURL\":\"helper.io\",\"Username\":\"hu\",\"Secret\":\"hs\"}}'\n  else\n    echo 'credentials not found in native keychain'; exit 1\n  fi;;\nesac\n",
                log = dir.path().join("helper.log").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"credHelpers":{"helper.io":"hoisttest"}}"#).unwrap();
        let search = format!("{}:/usr/bin:/bin", dir.path().display());
        let config = DockerConfig::at(&path).with_helper_path(search);
        let creds = config.credentials("helper.io").unwrap().unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("hu", "hs")
        );
        std::fs::write(&path, r#"{"credsStore":"hoisttest"}"#).unwrap();
        assert_eq!(config.credentials("other.io").unwrap(), None);
        // login and logout go to the helper, not to `auths`.
        let creds = Credentials {
            username: "u".to_owned(),
            password: "p".to_owned(),
        };
        config.store("other.io", &creds).unwrap();
        assert!(config.erase("other.io").unwrap());
        let log = std::fs::read_to_string(dir.path().join("helper.log")).unwrap();
        let (store_line, erase_line) = log.split_once('\n').unwrap();
        let stored: Value =
            serde_json::from_str(store_line.strip_prefix("store ").unwrap()).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({"ServerURL": "other.io", "Username": "u", "Secret": "p"})
        );
        assert_eq!(erase_line, "erase other.io\n");
        assert!(!std::fs::read_to_string(&path).unwrap().contains("auths"));
    }
}
