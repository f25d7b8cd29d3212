//! hoist's AWS Lambda Runtime Interface Emulator: a drop-in for the official `aws-lambda-rie`.
//!
//! The one idea: the emulator is a pool of **slots**. Each slot is one function process with its own Runtime API
//! listener (slot 0 on `--runtime-api-address`, the others on free ports of the same host) and the classic
//! one-invoke-at-a-time state machine of the official RIE. The invoke endpoint leases a free slot for each request, so
//! with `AWS_LAMBDA_MAX_CONCURRENCY=N` up to N invokes run at once and any more wait their turn, where the official
//! RIE would crash. Processes start lazily on a slot's first invoke and again after a crash, timeout or init failure.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hoist_lambda::Error> {
//! let options = hoist_lambda::Options::parse(
//!     ["--runtime-interface-emulator-address", "127.0.0.1:8080", "python3", "-m", "awslambdaric", "app.handler"]
//!         .map(String::from),
//!     None,
//! )?;
//! hoist_lambda::run(options, hoist_lambda::Output::stdio()).await
//! # }
//! ```
//!
//! Modules, in the order a request meets them:
//! - [`config`]: the official command line (flags anywhere), bootstrap lookup, the environment given to the function.
//! - `server`: the invoke endpoint (`POST /2015-03-31/functions/{name}/invocations`) and the slot pool.
//! - `slot`: one function process, its Runtime API (`/2018-06-01/runtime/...`), the Extensions API
//!   (`/2020-01-01/extension/...`) and the supervision of the runtime and its external extensions.
//! - [`log`]: START/END/REPORT lines and the emulator's own `(rapid)` log lines.
//! - `ids`: request ids (UUIDv4) and X-Ray trace ids.

pub mod config;
mod error;
mod ids;
pub mod log;
mod server;
mod slot;

pub use config::{Bootstrap, Options};
pub use error::Error;
pub use log::{LogLevel, Output};
pub use server::run;

/// The largest event or response payload, in bytes (6 MiB + 100 bytes, as the official RIE).
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024 + 100;
