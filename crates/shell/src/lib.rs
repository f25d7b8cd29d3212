//! hoist-shell (in progress).
