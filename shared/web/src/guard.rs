//! Checks every request to a page server passes: the secret token a page
//! carries (a page of another site can neither read nor guess it), and
//! that a change comes from the server's own origin.

use rand::Rng;

/// A fresh secret: 32 random bytes as 64 hex digits.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether a request that changes something came from a page of `host`
/// itself: its `Origin` (when the browser sent one) is `http://host` or
/// `https://host`, and the browser did not mark it as cross-site.
pub fn same_origin(origin: Option<&str>, sec_fetch_site: Option<&str>, host: &str) -> bool {
    let own = origin.is_none_or(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
    });
    own && sec_fetch_site != Some("cross-site")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_compared_whole() {
        let a = new_secret();
        assert_eq!(a.len(), 64);
        assert_ne!(a, new_secret());
        assert!(constant_time_eq(&a, &a.clone()));
        assert!(!constant_time_eq(&a, &a[..63]));
        assert!(!constant_time_eq("abc", "abd"));
    }

    #[test]
    fn only_the_own_origin_may_change_things() {
        let host = "127.0.0.1:7171";
        assert!(same_origin(None, None, host));
        assert!(same_origin(
            Some("http://127.0.0.1:7171"),
            Some("same-origin"),
            host
        ));
        assert!(same_origin(Some("https://127.0.0.1:7171"), None, host));
        assert!(!same_origin(Some("http://evil.example"), None, host));
        assert!(!same_origin(Some("null"), None, host));
        assert!(!same_origin(
            Some("http://127.0.0.1:7171.evil.example"),
            None,
            host
        ));
        assert!(!same_origin(None, Some("cross-site"), host));
    }
}
