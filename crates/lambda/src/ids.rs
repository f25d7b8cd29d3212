//! Request ids and trace ids.

use std::time::{SystemTime, UNIX_EPOCH};

/// Fills `buf` with random bytes from the kernel, falling back to the std hasher's per-process random keys.
fn random_bytes(buf: &mut [u8]) {
    let filled =
        rustix::rand::getrandom(&mut *buf, rustix::rand::GetRandomFlags::empty()).unwrap_or(0);
    if filled < buf.len() {
        use std::hash::{BuildHasher, Hasher};
        for chunk in buf[filled..].chunks_mut(8) {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(now_nanos());
            let bytes = hasher.finish().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random UUIDv4, in its usual hyphenated form.
pub(crate) fn request_id() -> String {
    let mut b = [0u8; 16];
    random_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A new X-Ray trace header value: `Root=1-<epoch seconds hex>-<24 hex>;Parent=<16 hex>;Sampled=0`.
pub(crate) fn trace_id() -> String {
    let mut b = [0u8; 20];
    random_bytes(&mut b);
    let secs = (now_nanos() / 1_000_000_000) as u64;
    format!(
        "Root=1-{secs:08x}-{};Parent={};Sampled=0",
        hex(&b[..12]),
        hex(&b[12..])
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_uuid_v4_and_differ() {
        let a = super::request_id();
        let b = super::request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn trace_ids_have_xray_shape() {
        let t = super::trace_id();
        let parts: Vec<&str> = t.split(';').collect();
        assert_eq!(parts.len(), 3, "{t}");
        assert!(
            parts[0].starts_with("Root=1-") && parts[0].len() == "Root=1-".len() + 8 + 1 + 24,
            "{t}"
        );
        assert_eq!(parts[1].len(), "Parent=".len() + 16, "{t}");
        assert_eq!(parts[2], "Sampled=0");
    }
}
