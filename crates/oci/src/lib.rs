//! hoist-oci (in progress).
