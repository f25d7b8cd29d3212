//! hoist-layer (in progress).
