//! hoist-registry: the registry client. Docker-compatible references, pull, push, auth, mirrors.
//!
//! The one idea: **a reference means what it means to Docker, and bytes go from the wire straight into the store's
//! verifying ingest.** `golang:1.24` is normalised as the Docker CLI does ([`ImageReference`]); the
//! [`RegistryConfig`] (containers' `registries.conf`, plus Docker's `registry-mirrors`) turns it into endpoints —
//! mirrors first, then the origin; the [`Client`] speaks the distribution API with the Docker CLI's auth
//! (anonymous bearer tokens, basic auth, `~/.docker/config.json` and credential helpers), and [`Client::pull`]
//! streams each layer through [`hoist_oci::Store::ingest_pulled_layer`], which verifies its blob digest and measures
//! it in one pass (the diff ID its config announces is checked when the layer is first unpacked).
//! Everything a registry can make the client wait for or retry (response time, stalled bodies, `5xx`/`429`
//! storms, `Retry-After`, manifest size, redirects) is bounded by [`Limits`].
//! Nothing is printed: progress goes to a [`Reporter`]. Synchronous callers use [`Client::pull_blocking`] and
//! [`Client::push_blocking`].
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use hoist_registry::{Client, ImageReference, PullOptions, Silent};
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(hoist_oci::Store::open(hoist_oci::Store::default_root()?)?);
//! let client = Client::from_environment()?;
//! let reference: ImageReference = "golang:1.24".parse()?; // docker.io/library/golang:1.24
//! let pulled = client
//!     .pull(Arc::clone(&store), &reference, &PullOptions::default(), Arc::new(Silent))
//!     .await?;
//! println!("{} {}", pulled.resolved, pulled.id);
//! # Ok(()) }
//! ```

pub use auth::{
    Challenge, Credentials, DOCKER_HUB_AUTH_KEY, DockerConfig, IDENTITY_TOKEN_USER, auth_key,
};
pub use client::{Client, FetchedManifest, Limits};
pub use config::{
    Endpoint, MirrorEntry, RegistryConfig, RegistryEntry, SYSTEM_CERTS_DIRS, SYSTEM_CONFIG_FILES,
    is_loopback,
};
pub use error::{Error, Result};
pub use platform::Platform;
pub use progress::{Event, Reporter, Silent};
pub use pull::{PullOptions, PulledImage, choose_platform};
pub use push::{PushOptions, PushedImage};
pub use reference::{DEFAULT_TAG, DOCKER_HUB, DOCKER_HUB_API, ImageReference, ReferenceError};

mod auth;
mod blocking;
mod client;
mod config;
mod error;
mod platform;
mod progress;
mod pull;
mod push;
mod reference;
