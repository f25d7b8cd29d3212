//! hoist-instructions (in progress).
