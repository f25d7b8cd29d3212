//! The HTTP side: one `reqwest` client per registry host (its TLS roots differ), the auth handshake, retries, and
//! the distribution API calls pull and push are made of.
//!
//! Auth follows the Docker CLI: send the request; on `401` read `WWW-Authenticate`; for `Bearer`, get a token from
//! the realm (with the stored credentials as basic auth, if any; anonymously otherwise) for the scopes needed and
//! retry; for `Basic`, retry with the stored credentials. Tokens are cached per host and scope set.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RANGE,
    RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};

use crate::auth::{Challenge, Credentials, DockerConfig, IDENTITY_TOKEN_USER};
use crate::config::{Endpoint, RegistryConfig};
use crate::{Error, Result};

/// Bounds on what a registry can make hoist wait for or retry. The defaults suit real registries (they follow
/// dockerd and containerd where those have a limit); tests of misbehaving registries use small ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Times a request is sent again after a connection fault (refused, reset, no response in time).
    pub request_retries: u32,
    /// Times a `GET`/`HEAD` answered `5xx` or any request answered `429` is sent again.
    pub status_retries: u32,
    /// The longest `Retry-After` (on `429` or `503`) waited out; longer waits (Docker Hub's are hours) and HTTP
    /// dates fail at once, naming the time, rather than hang a build.
    pub max_retry_after: Duration,
    /// The first retry's delay; each further retry doubles it (up to 64 times it).
    pub backoff: Duration,
    /// Connection faults after which a blob download (resumed with `Range` each time) is given up.
    pub blob_retries: u32,
    /// The longest wait for a `GET`/`HEAD` response's headers.
    pub response_timeout: Duration,
    /// A transfer that moves fewer than this many bytes per second, on average over
    /// [`low_speed_time`](Self::low_speed_time), is stalled (curl's `--speed-limit`).
    pub low_speed_limit: u64,
    /// The window over which [`low_speed_limit`](Self::low_speed_limit) is measured (curl's `--speed-time`).
    pub low_speed_time: Duration,
    /// The largest manifest or index accepted (containerd's and distribution's limit: 4 MiB).
    pub max_manifest: usize,
    /// Redirects followed per request (Go's and reqwest's default: 10).
    pub max_redirects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_retries: 3,
            status_retries: 3,
            max_retry_after: Duration::from_secs(10),
            backoff: Duration::from_millis(200),
            blob_retries: 5,
            response_timeout: Duration::from_secs(60),
            low_speed_limit: 1024,
            low_speed_time: Duration::from_secs(30),
            max_manifest: 4 * 1024 * 1024,
            max_redirects: 10,
        }
    }
}

impl Limits {
    /// The delay before retry number `attempt` (1-based): `backoff`, twice that, four times, … up to 64 times.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.backoff * (1 << attempt.saturating_sub(1).min(6))
    }
}

/// Measures a transfer against [`Limits::low_speed_limit`] over windows of [`Limits::low_speed_time`].
#[derive(Debug)]
pub(crate) struct SpeedCheck {
    limit: u64,
    window: Duration,
    started: Instant,
    bytes: u64,
}

impl SpeedCheck {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            limit: limits.low_speed_limit,
            window: limits.low_speed_time,
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// How long to wait for the next bytes before the window must be judged.
    pub(crate) fn remaining(&self) -> Duration {
        self.window
            .saturating_sub(self.started.elapsed())
            .max(Duration::from_millis(1))
    }

    /// Counts `n` more bytes; once the window is over, fails if it moved too little, else starts the next one.
    pub(crate) fn record(&mut self, n: usize) -> std::result::Result<(), String> {
        self.bytes += n as u64;
        let elapsed = self.started.elapsed();
        if elapsed < self.window {
            return Ok(());
        }
        if (self.bytes as f64) < self.limit as f64 * elapsed.as_secs_f64() {
            return Err(format!(
                "{} bytes in {:.1} s, below the {} bytes/s minimum",
                self.bytes,
                elapsed.as_secs_f64(),
                self.limit
            ));
        }
        self.started = Instant::now();
        self.bytes = 0;
        Ok(())
    }
}

/// Media types sent in `Accept` when fetching manifests.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// A registry client: shared HTTP clients, configuration, credentials and tokens. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    limits: Limits,
}

struct Inner {
    config: RegistryConfig,
    credentials: DockerConfig,
    /// Credentials given explicitly (e.g. by `hoist login` before they are stored), by host.
    explicit: Mutex<HashMap<String, Credentials>>,
    http: Mutex<HashMap<String, reqwest::Client>>,
    /// `https` or `http`, decided once per insecure host.
    schemes: Mutex<HashMap<String, &'static str>>,
    /// `Authorization` header values by (host, scopes).
    tokens: Mutex<HashMap<(String, String), HeaderValue>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .field("credentials", &self.inner.credentials.path())
            .finish_non_exhaustive()
    }
}

/// A manifest or index as the registry sent it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The exact bytes (their SHA-256 is the digest).
    pub bytes: Vec<u8>,
    /// The media type, from `Content-Type` or the document's own `mediaType`.
    pub media_type: String,
    /// The digest of the bytes.
    pub digest: hoist_layer::Digest,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Client {
    /// A client with the given configuration and credential source.
    pub fn new(config: RegistryConfig, credentials: DockerConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                credentials,
                explicit: Mutex::new(HashMap::new()),
                http: Mutex::new(HashMap::new()),
                schemes: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
            }),
            limits: Limits::default(),
        }
    }

    /// The same client with other [`Limits`] (timeouts, retries, caps). Set them before the first request: HTTP
    /// clients already made keep the redirect limit they were made with.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A client with the system configuration ([`RegistryConfig::load_default`]) and `~/.docker/config.json`.
    pub fn from_environment() -> Result<Self> {
        Ok(Self::new(
            RegistryConfig::load_default()?,
            DockerConfig::default_location(),
        ))
    }

    /// The registry configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// The Docker config file credentials come from.
    pub fn docker_config(&self) -> &DockerConfig {
        &self.inner.credentials
    }

    /// Uses `credentials` for `host` instead of the stored ones.
    pub fn set_credentials(&self, host: &str, credentials: Credentials) {
        lock(&self.inner.explicit).insert(host.to_owned(), credentials);
        lock(&self.inner.tokens).retain(|(h, _), _| h != host);
    }

    fn credentials(&self, host: &str) -> Result<Option<Credentials>> {
        if let Some(creds) = lock(&self.inner.explicit).get(host) {
            return Ok(Some(creds.clone()));
        }
        self.inner.credentials.credentials(host)
    }

    /// The HTTP client for a host: system roots plus the host's CA files.
    fn http(&self, host: &str) -> Result<reqwest::Client> {
        if let Some(client) = lock(&self.inner.http).get(host) {
            return Ok(client.clone());
        }
        let client = build_http(&self.inner.config, host, &self.limits)?;
        lock(&self.inner.http).insert(host.to_owned(), client.clone());
        Ok(client)
    }

    /// `https://host/v2/`, or for a registry where plain HTTP is allowed, `http://host/v2/` when HTTPS does not
    /// answer there (as dockerd does for insecure registries). A certificate that fails verification is an
    /// error, not a reason to fall back: hoist never skips verification.
    pub async fn base_url(&self, endpoint: &Endpoint) -> Result<String> {
        if !endpoint.insecure {
            return Ok(format!("https://{}/v2/", endpoint.host));
        }
        if let Some(scheme) = lock(&self.inner.schemes).get(&endpoint.host) {
            return Ok(format!("{scheme}://{}/v2/", endpoint.host));
        }
        let http = self.http(&endpoint.host)?;
        let probe = format!("https://{}/v2/", endpoint.host);
        let scheme = match http
            .get(&probe)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(_) => "https",
            Err(error) if is_certificate_error(&error) => {
                return Err(Error::Connect {
                    registry: endpoint.host.clone(),
                    url: probe,
                    source: error,
                });
            }
            Err(_) => "http",
        };
        lock(&self.inner.schemes).insert(endpoint.host.clone(), scheme);
        Ok(format!("{scheme}://{}/v2/", endpoint.host))
    }

    /// Sends a request built by `build` (called again for each retry), handling auth and connection retries.
    /// `scopes` are the token scopes the request needs (`repository:NAME:pull`).
    pub(crate) async fn send(
        &self,
        endpoint: &Endpoint,
        scopes: &[String],
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Response> {
        let http = self.http(&endpoint.host)?;
        let key = (endpoint.host.clone(), scopes.join(" "));
        let mut authorised_once = false;
        let mut status_retries = 0;
        loop {
            let mut request = build(&http);
            if let Some(header) = lock(&self.inner.tokens).get(&key).cloned() {
                request = request.header(AUTHORIZATION, header);
            }
            let (method, url) = describe_request(&request);
            // Only requests without side effects are sent again after a server error or a lost response.
            let idempotent = method == Method::GET || method == Method::HEAD;
            let response = self
                .execute_with_retries(endpoint, request, idempotent, &url)
                .await?;
            let status = response.status();
            if status != StatusCode::UNAUTHORIZED {
                let retryable = status == StatusCode::TOO_MANY_REQUESTS
                    || (idempotent && is_retryable_server_error(status));
                if !retryable {
                    return Ok(response);
                }
                match status_wait(response.headers(), status_retries + 1, &self.limits) {
                    Some(wait) if status_retries < self.limits.status_retries => {
                        status_retries += 1;
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    _ if status == StatusCode::TOO_MANY_REQUESTS => {
                        return Err(Error::RateLimited {
                            registry: endpoint.host.clone(),
                            retry_after: retry_after(response.headers()),
                        });
                    }
                    _ => {
                        let wait = retry_after(response.headers())
                            .map(|t| format!("; retry after {t}"))
                            .unwrap_or_default();
                        return Err(Error::ServerError {
                            registry: endpoint.host.clone(),
                            request: format!("{method} {url}"),
                            status: status.as_u16(),
                            attempts: status_retries + 1,
                            detail: format!("{}{wait}", error_detail(response).await),
                        });
                    }
                }
            }
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(Challenge::parse);
            let detail = error_detail(response).await;
            let unauthorized = |detail: String| Error::Unauthorized {
                registry: endpoint.host.clone(),
                scope: if scopes.is_empty() {
                    "the registry".to_owned()
                } else {
                    scopes.join(" ")
                },
                detail,
            };
            if authorised_once {
                return Err(unauthorized(detail));
            }
            authorised_once = true;
            let credentials = self.credentials(&endpoint.host)?;
            let header = match challenge {
                Some(challenge) if challenge.scheme == "bearer" => {
                    self.fetch_token(endpoint, &http, &challenge, scopes, credentials.as_ref())
                        .await?
                }
                Some(challenge) if challenge.scheme == "basic" => match credentials {
                    Some(creds) => basic_header(&creds),
                    None => return Err(unauthorized(format!("{detail}; no credentials stored"))),
                },
                _ => return Err(unauthorized(detail)),
            };
            lock(&self.inner.tokens).insert(key.clone(), header);
        }
    }

    /// Sends a request, again after connection faults (and, for `GET`/`HEAD`, when no response came within
    /// [`Limits::response_timeout`]), up to [`Limits::request_retries`] times.
    async fn execute_with_retries(
        &self,
        endpoint: &Endpoint,
        request: reqwest::RequestBuilder,
        idempotent: bool,
        url: &str,
    ) -> Result<Response> {
        let mut attempt = 0;
        loop {
            let Some(this) = request.try_clone() else {
                // Streaming bodies cannot be cloned; send once.
                return request.send().await.map_err(|e| connect_error(endpoint, e));
            };
            let sent = if idempotent {
                tokio::time::timeout(self.limits.response_timeout, this.send())
                    .await
                    .ok()
            } else {
                Some(this.send().await)
            };
            match sent {
                Some(Ok(response)) => return Ok(response),
                Some(Err(error))
                    if attempt < self.limits.request_retries && is_transient(&error) => {}
                None if attempt < self.limits.request_retries => {}
                Some(Err(error)) => return Err(connect_error(endpoint, error)),
                None => {
                    return Err(Error::Timeout {
                        registry: endpoint.host.clone(),
                        url: url.to_owned(),
                        seconds: self.limits.response_timeout.as_secs_f64(),
                        attempts: attempt + 1,
                    });
                }
            }
            attempt += 1;
            tokio::time::sleep(self.limits.backoff(attempt)).await;
        }
    }

    async fn fetch_token(
        &self,
        endpoint: &Endpoint,
        http: &reqwest::Client,
        challenge: &Challenge,
        scopes: &[String],
        credentials: Option<&Credentials>,
    ) -> Result<HeaderValue> {
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| Error::InvalidResponse {
                registry: endpoint.host.clone(),
                what: "WWW-Authenticate challenge".to_owned(),
                detail: "Bearer challenge without realm".to_owned(),
            })?;
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = challenge.params.get("service") {
            query.push(("service", service));
        }
        for scope in scopes {
            query.push(("scope", scope));
        }
        if let Some(creds) = credentials
            && creds.username == IDENTITY_TOKEN_USER
        {
            return self
                .refresh_token_grant(endpoint, http, realm, &query, &creds.password, scopes)
                .await;
        }
        if let Some(creds) = credentials {
            query.push(("account", &creds.username));
        }
        let mut url = reqwest::Url::parse(realm).map_err(|e| Error::InvalidResponse {
            registry: endpoint.host.clone(),
            what: "token realm".to_owned(),
            detail: format!("{realm}: {e}"),
        })?;
        url.query_pairs_mut().extend_pairs(&query);
        let mut attempt = 0;
        let response = loop {
            // A token response is small: the whole exchange gets the response timeout.
            let mut request = http.get(url.clone()).timeout(self.limits.response_timeout);
            if let Some(creds) = credentials {
                request = request.basic_auth(&creds.username, Some(&creds.password));
            }
            match request.send().await {
                Ok(response) => break response,
                Err(error) if attempt < self.limits.request_retries && is_transient(&error) => {
                    attempt += 1;
                    tokio::time::sleep(self.limits.backoff(attempt)).await;
                }
                Err(source) => {
                    return Err(Error::Connect {
                        registry: endpoint.host.clone(),
                        url: realm.clone(),
                        source,
                    });
                }
            }
        };
        self.token_from_response(endpoint, realm, scopes, response)
            .await
    }

    async fn token_from_response(
        &self,
        endpoint: &Endpoint,
        realm: &str,
        scopes: &[String],
        response: Response,
    ) -> Result<HeaderValue> {
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                registry: endpoint.host.clone(),
                scope: scopes.join(" "),
                detail: format!("token server {realm}: {}", error_detail(response).await),
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Error::RateLimited {
                registry: endpoint.host.clone(),
                retry_after: retry_after(response.headers()),
            });
        }
        if !status.is_success() {
            return Err(Error::UnexpectedStatus {
                method: "token request".to_owned(),
                url: realm.to_owned(),
                status: status.as_u16(),
                detail: error_detail(response).await,
            });
        }
        let text = response
            .bytes()
            .await
            .map_err(|e| connect_error(endpoint, e))?;
        let body: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| Error::InvalidResponse {
                registry: endpoint.host.clone(),
                what: "token response".to_owned(),
                detail: e.to_string(),
            })?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::InvalidResponse {
                registry: endpoint.host.clone(),
                what: "token response".to_owned(),
                detail: "no token".to_owned(),
            })?;
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::InvalidResponse {
            registry: endpoint.host.clone(),
            what: "token response".to_owned(),
            detail: "token is not a valid header value".to_owned(),
        })
    }

    /// Exchanges an identity (refresh) token for an access token: `POST realm` with an OAuth2 `refresh_token`
    /// grant, as the Docker CLI does for `identitytoken` credentials.
    async fn refresh_token_grant(
        &self,
        endpoint: &Endpoint,
        http: &reqwest::Client,
        realm: &str,
        query: &[(&str, &str)],
        refresh_token: &str,
        scopes: &[String],
    ) -> Result<HeaderValue> {
        let mut form = reqwest::Url::parse("form:").expect("a constant URL parses");
        {
            let mut pairs = form.query_pairs_mut();
            pairs.append_pair("grant_type", "refresh_token");
            pairs.append_pair("refresh_token", refresh_token);
            pairs.append_pair("client_id", "hoist");
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        let body = form.query().unwrap_or("").to_owned();
        let response = http
            .post(realm)
            .timeout(self.limits.response_timeout)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|source| Error::Connect {
                registry: endpoint.host.clone(),
                url: realm.to_owned(),
                source,
            })?;
        self.token_from_response(endpoint, realm, scopes, response)
            .await
    }

    /// `GET /v2/`: checks the registry answers and the credentials are accepted (what `hoist login` does).
    pub async fn check(&self, endpoint: &Endpoint) -> Result<()> {
        let url = self.base_url(endpoint).await?;
        let response = self.send(endpoint, &[], |http| http.get(&url)).await?;
        expect_success(response, "GET", &url).await.map(drop)
    }

    /// Fetches a manifest or index by tag or digest, verifying a digest reference.
    pub(crate) async fn get_manifest(
        &self,
        endpoint: &Endpoint,
        reference: &str,
        display: &str,
    ) -> Result<FetchedManifest> {
        // A connection dropped while the body arrives is retried like one dropped before the response.
        let mut attempt = 0;
        loop {
            match self.get_manifest_once(endpoint, reference, display).await {
                Err(Error::Connect { .. }) if attempt < self.limits.request_retries => {
                    attempt += 1;
                    tokio::time::sleep(self.limits.backoff(attempt)).await;
                }
                result => return result,
            }
        }
    }

    async fn get_manifest_once(
        &self,
        endpoint: &Endpoint,
        reference: &str,
        display: &str,
    ) -> Result<FetchedManifest> {
        let url = format!(
            "{}{}/manifests/{reference}",
            self.base_url(endpoint).await?,
            endpoint.repository
        );
        let scopes = [pull_scope(&endpoint.repository)];
        let response = self
            .send(endpoint, &scopes, |http| {
                http.get(&url).header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::ManifestNotFound {
                reference: display.to_owned(),
                registry: endpoint.host.clone(),
                detail: error_detail(response).await,
            });
        }
        let response = expect_success(response, "GET", &url).await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let bytes = self.read_manifest_body(endpoint, &url, response).await?;
        let digest = hoist_layer::Digest::sha256(&bytes);
        if let Ok(expected) = reference.parse::<hoist_layer::Digest>()
            && expected != digest
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest of {display}"),
                expected,
                actual: digest,
            });
        }
        let declared = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
            });
        let media_type = match (declared, content_type) {
            (Some(declared), _) => declared,
            (None, Some(content_type)) if content_type != "application/json" => content_type,
            (None, _) => sniff_media_type(&bytes),
        };
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Reads a manifest's body, refusing it as soon as it passes [`Limits::max_manifest`] (announced or not) and
    /// failing when it stalls below [`Limits::low_speed_limit`].
    async fn read_manifest_body(
        &self,
        endpoint: &Endpoint,
        url: &str,
        mut response: Response,
    ) -> Result<Vec<u8>> {
        let max = self.limits.max_manifest;
        if response
            .content_length()
            .is_some_and(|len| len > max as u64)
        {
            return Err(too_large(endpoint, max));
        }
        let mut bytes = Vec::new();
        let mut speed = SpeedCheck::new(&self.limits);
        loop {
            let received = match tokio::time::timeout(speed.remaining(), response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    if bytes.len() + chunk.len() > max {
                        return Err(too_large(endpoint, max));
                    }
                    bytes.extend_from_slice(&chunk);
                    chunk.len()
                }
                Ok(Ok(None)) => return Ok(bytes),
                Ok(Err(error)) => return Err(connect_error(endpoint, error)),
                Err(_) => 0,
            };
            speed.record(received).map_err(|detail| Error::Stalled {
                registry: endpoint.host.clone(),
                url: url.to_owned(),
                detail,
            })?;
        }
    }

    /// Starts a blob download at `offset` (a `Range` request when non-zero). Returns the response and whether the
    /// registry honoured the range.
    pub(crate) async fn get_blob(
        &self,
        endpoint: &Endpoint,
        digest: &hoist_layer::Digest,
        offset: u64,
    ) -> Result<(Response, bool)> {
        let url = format!(
            "{}{}/blobs/{digest}",
            self.base_url(endpoint).await?,
            endpoint.repository
        );
        let scopes = [pull_scope(&endpoint.repository)];
        let response = self
            .send(endpoint, &scopes, |http| {
                let request = http.get(&url);
                if offset > 0 {
                    request.header(RANGE, format!("bytes={offset}-"))
                } else {
                    request
                }
            })
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::BlobNotFound {
                registry: endpoint.host.clone(),
                repository: endpoint.repository.clone(),
                digest: *digest,
            });
        }
        let ranged = response.status() == StatusCode::PARTIAL_CONTENT;
        let response = expect_success(response, "GET", &url).await?;
        Ok((response, ranged))
    }

    /// `HEAD` a blob: its size if the repository has it.
    pub(crate) async fn blob_exists(
        &self,
        endpoint: &Endpoint,
        digest: &hoist_layer::Digest,
        scopes: &[String],
    ) -> Result<Option<u64>> {
        let url = format!(
            "{}{}/blobs/{digest}",
            self.base_url(endpoint).await?,
            endpoint.repository
        );
        let response = self.send(endpoint, scopes, |http| http.head(&url)).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(
                response
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            _ => expect_success(response, "HEAD", &url).await.map(|_| None),
        }
    }

    /// Starts an upload (or mounts `digest` from `from`). Returns `None` when the mount succeeded, else the upload
    /// location.
    pub(crate) async fn start_upload(
        &self,
        endpoint: &Endpoint,
        scopes: &[String],
        mount: Option<(&hoist_layer::Digest, &str)>,
    ) -> Result<Option<String>> {
        let mut url = format!(
            "{}{}/blobs/uploads/",
            self.base_url(endpoint).await?,
            endpoint.repository
        );
        if let Some((digest, from)) = mount {
            url = format!("{url}?mount={digest}&from={from}");
        }
        let response = self
            .send(endpoint, scopes, |http| {
                http.post(&url).header(CONTENT_LENGTH, "0")
            })
            .await?;
        if response.status() == StatusCode::CREATED && mount.is_some() {
            return Ok(None);
        }
        let response = expect_success(response, "POST", &url).await?;
        Ok(Some(location(endpoint, response.headers(), &url)?))
    }

    /// Sends one chunk (`PATCH`) of an upload; returns the next location.
    pub(crate) async fn upload_chunk(
        &self,
        endpoint: &Endpoint,
        scopes: &[String],
        upload: &str,
        start: u64,
        chunk: Vec<u8>,
    ) -> Result<String> {
        let end = start + chunk.len() as u64 - 1;
        let body = bytes_body(chunk);
        let response = self
            .send(endpoint, scopes, |http| {
                http.patch(upload)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header("Content-Range", format!("{start}-{end}"))
                    .body(body.clone())
            })
            .await?;
        let response = expect_success(response, "PATCH", upload).await?;
        location(endpoint, response.headers(), upload)
    }

    /// Finishes an upload (`PUT ?digest=`), with the last bytes (all of them, for a monolithic upload).
    pub(crate) async fn finish_upload(
        &self,
        endpoint: &Endpoint,
        scopes: &[String],
        upload: &str,
        digest: &hoist_layer::Digest,
        last: Vec<u8>,
    ) -> Result<()> {
        let separator = if upload.contains('?') { '&' } else { '?' };
        let url = format!("{upload}{separator}digest={digest}");
        let body = bytes_body(last);
        let response = self
            .send(endpoint, scopes, |http| {
                http.put(&url)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body.clone())
            })
            .await?;
        expect_success(response, "PUT", &url).await.map(drop)
    }

    /// Puts a manifest or index under a tag or digest; returns the digest the registry reports.
    pub(crate) async fn put_manifest(
        &self,
        endpoint: &Endpoint,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Option<String>> {
        let url = format!(
            "{}{}/manifests/{reference}",
            self.base_url(endpoint).await?,
            endpoint.repository
        );
        let scopes = [push_scope(&endpoint.repository)];
        let body = bytes_body(bytes.to_vec());
        let response = self
            .send(endpoint, &scopes, |http| {
                http.put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone())
            })
            .await?;
        let response = expect_success(response, "PUT", &url).await?;
        Ok(response
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned))
    }
}

/// A cheaply clonable body (the request may be rebuilt for auth retries).
fn bytes_body(bytes: Vec<u8>) -> bytes::Bytes {
    bytes::Bytes::from(bytes)
}

/// `repository:NAME:pull`.
pub(crate) fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// `repository:NAME:pull,push`.
pub(crate) fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

fn basic_header(credentials: &Credentials) -> HeaderValue {
    let encoded = STANDARD.encode(format!("{}:{}", credentials.username, credentials.password));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .expect("base64 output is a valid header value");
    value.set_sensitive(true);
    value
}

fn too_large(endpoint: &Endpoint, max: usize) -> Error {
    Error::InvalidResponse {
        registry: endpoint.host.clone(),
        what: "manifest".to_owned(),
        detail: format!("larger than {max} bytes (the limit is containerd's 4 MiB)"),
    }
}

fn sniff_media_type(bytes: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if value.get("manifests").is_some() {
        hoist_oci::media_type::OCI_INDEX.to_owned()
    } else if value
        .get("schemaVersion")
        .and_then(serde_json::Value::as_u64)
        == Some(1)
    {
        "application/vnd.docker.distribution.manifest.v1+json".to_owned()
    } else {
        hoist_oci::media_type::OCI_MANIFEST.to_owned()
    }
}

fn location(endpoint: &Endpoint, headers: &HeaderMap, request_url: &str) -> Result<String> {
    let location = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::InvalidResponse {
            registry: endpoint.host.clone(),
            what: "upload response".to_owned(),
            detail: "no Location header".to_owned(),
        })?;
    let base = reqwest::Url::parse(request_url).map_err(|e| Error::InvalidResponse {
        registry: endpoint.host.clone(),
        what: "upload URL".to_owned(),
        detail: e.to_string(),
    })?;
    base.join(location)
        .map(String::from)
        .map_err(|e| Error::InvalidResponse {
            registry: endpoint.host.clone(),
            what: "upload Location".to_owned(),
            detail: e.to_string(),
        })
}

async fn expect_success(response: Response, method: &str, url: &str) -> Result<Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    Err(Error::UnexpectedStatus {
        method: method.to_owned(),
        url: url.to_owned(),
        status,
        detail: error_detail(response).await,
    })
}

/// The registry's error message: distribution's `{"errors":[{"code","message"}]}`, or the start of the body.
pub(crate) async fn error_detail(response: Response) -> String {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(errors) = value.get("errors").and_then(serde_json::Value::as_array)
    {
        let messages: Vec<String> = errors
            .iter()
            .map(|e| {
                let field = |name| {
                    e.get(name)
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("")
                };
                format!("{}: {}", field("code"), field("message"))
            })
            .collect();
        if !messages.is_empty() {
            return messages.join("; ");
        }
    }
    let text = text.trim();
    if text.is_empty() {
        status.to_string()
    } else {
        text.chars().take(200).collect()
    }
}

fn connect_error(endpoint: &Endpoint, source: reqwest::Error) -> Error {
    if source.is_redirect() {
        return Error::TooManyRedirects {
            registry: endpoint.host.clone(),
            url: source
                .url()
                .map_or_else(|| endpoint.base_url(), ToString::to_string),
        };
    }
    Error::Connect {
        registry: endpoint.host.clone(),
        url: source
            .url()
            .map_or_else(|| endpoint.base_url(), ToString::to_string),
        source,
    }
}

/// An error with its causes, `outer: inner: innermost` (reqwest's own message is often just "error decoding
/// response body").
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    message
}

/// Whether TLS failed on the server's certificate (unknown issuer, wrong name, expired), as opposed to the
/// server not speaking TLS at all.
fn is_certificate_error(error: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = source {
        if current.to_string().contains("certificate") {
            return true;
        }
        source = current.source();
    }
    false
}

/// Faults worth retrying: connecting, timeouts, and a connection dropped mid-request.
pub(crate) fn is_transient(error: &reqwest::Error) -> bool {
    error.is_connect() || error.is_timeout() || error.is_request() || error.is_body()
}

/// `500`, `502`, `503` and `504`: a registry (or the proxy in front of it) failing for the moment. Others (`501
/// Not Implemented`, `505`, …) will not get better by asking again.
fn is_retryable_server_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// The method and URL of a request, for retry decisions and messages.
fn describe_request(request: &reqwest::RequestBuilder) -> (Method, String) {
    request
        .try_clone()
        .and_then(|r| r.build().ok())
        .map_or((Method::POST, String::new()), |r| {
            (r.method().clone(), r.url().to_string())
        })
}

fn build_http(config: &RegistryConfig, host: &str, limits: &Limits) -> Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped, as Go's crypto/x509 does.
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    let mut ca_files: Vec<std::path::PathBuf> = Vec::new();
    for dir in &config.certs_dirs {
        let Ok(entries) = std::fs::read_dir(dir.join(host)) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "crt"))
            .collect();
        files.sort();
        ca_files.extend(files);
    }
    ca_files.extend(config.ca_file(host).map(Path::to_path_buf));
    for path in &ca_files {
        add_ca_file(&mut roots, path)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Certificate {
            path: "(rustls provider)".into(),
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::limited(limits.max_redirects))
        .build()
        .map_err(|source| Error::HttpClient {
            registry: host.to_owned(),
            source,
        })
}

fn add_ca_file(roots: &mut rustls::RootCertStore, path: &Path) -> Result<()> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let invalid = |detail: String| Error::Certificate {
        path: path.to_owned(),
        detail,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid("no PEM certificates".to_owned()));
    }
    for cert in certs {
        roots.add(cert).map_err(|e| invalid(e.to_string()))?;
    }
    Ok(())
}

/// How long to wait before sending a request answered `429` or `5xx` again (retry number `attempt`):
/// `Retry-After` in seconds when it is at most [`Limits::max_retry_after`], the usual backoff when the header is
/// absent; `None` (give up) for longer waits and for HTTP dates, which registries use for long bans.
fn status_wait(headers: &HeaderMap, attempt: u32, limits: &Limits) -> Option<Duration> {
    match headers.get(RETRY_AFTER) {
        None => Some(limits.backoff(attempt)),
        Some(value) => {
            let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
            let wait = Duration::from_secs(seconds);
            (wait <= limits.max_retry_after).then_some(wait)
        }
    }
}

/// `Retry-After` as a phrase: `30 seconds`, or the HTTP date as sent.
fn retry_after(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    Some(match value.parse::<u64>() {
        Ok(seconds) => format!("{seconds} seconds"),
        Err(_) => value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(retry_after: Option<&str>) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        }
        status_wait(&headers, 1, &Limits::default())
    }

    #[test]
    fn speed_check_judges_whole_windows() {
        let limits = Limits {
            low_speed_limit: 1000,
            low_speed_time: Duration::from_millis(50),
            ..Limits::default()
        };
        // Fast enough: 1 MB in the first window, then the next window starts.
        let mut fast = SpeedCheck::new(&limits);
        assert!(fast.remaining() <= Duration::from_millis(50));
        fast.record(1_000_000).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        fast.record(1_000_000).unwrap();
        assert!(fast.remaining() > Duration::from_millis(40));
        // A trickle, judged once the window is over.
        let mut slow = SpeedCheck::new(&limits);
        std::thread::sleep(Duration::from_millis(60));
        let error = slow.record(2).unwrap_err();
        assert!(error.contains("2 bytes in"), "{error}");
        assert!(error.contains("below the 1000 bytes/s minimum"), "{error}");
    }

    #[test]
    fn backoff_doubles_up_to_64_times() {
        let limits = Limits::default();
        assert_eq!(limits.backoff(1), Duration::from_millis(200));
        assert_eq!(limits.backoff(2), Duration::from_millis(400));
        assert_eq!(limits.backoff(7), Duration::from_millis(200 * 64));
        assert_eq!(limits.backoff(30), Duration::from_millis(200 * 64));
    }

    #[test]
    fn short_retry_after_is_waited_long_or_dated_is_not() {
        assert_eq!(wait(Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(wait(Some(" 10 ")), Some(Limits::default().max_retry_after));
        assert_eq!(wait(Some("11")), None);
        assert_eq!(wait(Some("3600")), None);
        assert_eq!(wait(Some("Wed, 21 Oct 2026 07:28:00 GMT")), None);
        assert_eq!(wait(None), Some(Limits::default().backoff(1)));
    }
}
