//! hoist-context (in progress).
