//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can stop the emulator from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag was given without its value.
    #[error("flag {flag} needs a value")]
    MissingFlagValue {
        /// The flag as written.
        flag: String,
    },
    /// `--log-level` (or `LOG_LEVEL`) is not a known level.
    #[error(
        "invalid log level {value:?}: expected one of panic, fatal, error, warn, info, debug, trace"
    )]
    InvalidLogLevel {
        /// The value given.
        value: String,
    },
    /// An address flag is not `host:port`.
    #[error("invalid address {value:?} for {flag}: expected host:port")]
    InvalidAddress {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
    },
    /// `AWS_LAMBDA_MAX_CONCURRENCY` is not a positive integer.
    #[error("invalid AWS_LAMBDA_MAX_CONCURRENCY {value:?}: expected a positive integer")]
    InvalidConcurrency {
        /// The value given.
        value: String,
    },
    /// A listening socket could not be opened.
    #[error("cannot listen on {address} ({what})")]
    Bind {
        /// Which listener: the invoke endpoint or a Runtime API.
        what: &'static str,
        /// The address.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The working directory for the bootstrap does not exist.
    #[error("bootstrap working directory {path} does not exist")]
    MissingWorkingDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// Waiting for SIGINT/SIGTERM failed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
}
