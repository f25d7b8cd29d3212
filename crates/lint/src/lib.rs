//! hoist-lint (in progress).
