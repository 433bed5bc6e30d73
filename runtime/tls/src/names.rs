//! Host name matching shared by the certificate checks and the SNI
//! resolver: exact (case-insensitive, trailing dot ignored) or a one-label
//! wildcard (`*.example.com` covers `a.example.com`, not `example.com` nor
//! `a.b.example.com`, as RFC 6125 6.4.3 and every browser do).

/// Lower case, no trailing dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The wildcard that would cover `name`: `a.b.example.com` ->
/// `*.b.example.com`. With one-label wildcards there is exactly one.
pub fn wildcard_for(name: &str) -> Option<String> {
    let (first, rest) = name.split_once('.')?;
    (!first.is_empty() && first != "*" && rest.contains('.')).then(|| format!("*.{rest}"))
}

/// Does a certificate name (`pattern`, maybe a wildcard) cover `name` (a
/// site's server_name, maybe a wildcard itself: then only the same
/// wildcard covers it)?
pub fn covers(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (normalize(pattern), normalize(name));
    pattern == name || wildcard_for(&name).is_some_and(|w| w == pattern)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_label_wildcards() {
        assert!(covers("a.example.com", "A.Example.com."));
        assert!(covers("*.example.com", "www.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(covers("*.example.com", "*.example.com"));
        assert!(!covers("www.example.com", "*.example.com"));
        // A wildcard needs at least two labels after it (no `*.com`).
        assert_eq!(wildcard_for("example.com"), None);
        assert_eq!(wildcard_for("a.b.c").as_deref(), Some("*.b.c"));
    }
}
