//! hoist-dockerfile (in progress).
