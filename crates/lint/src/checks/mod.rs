//! The checks, grouped by the phase of BuildKit's conversion they belong to, then hoist's own.

pub(crate) mod cache_order;
pub(crate) mod dispatch;
pub(crate) mod from;
pub(crate) mod syntax;
pub(crate) mod toolchain;
pub(crate) mod unreachable;
