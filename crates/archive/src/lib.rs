//! hoist-archive (in progress).
