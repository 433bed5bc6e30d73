//! Request paths as nginx sees them: normalized once (percent-decoded,
//! slashes merged, dot segments resolved) before location matching, and
//! re-escaped wherever a normalized path goes back on the wire (a
//! `proxy.uri` replacement, a redirect's `Location`).

use std::borrow::Cow;

/// Decodes `%XX`, merges slashes and resolves `.` / `..` the way nginx
/// normalizes `$uri`. Errors (-> 400) on a NUL byte, invalid escapes or
/// UTF-8, and on `..` that would climb above the root, which is how
/// traversal attempts (`/../etc/passwd`, `/%2e%2e/`, `/..%2f`) end.
/// Borrowed exactly when the path was already normal (most paths): the
/// request path pays for one scan, no allocation.
pub(crate) fn normalize_path(raw: &str) -> Result<Cow<'_, str>, ()> {
    if is_plain(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    slow_normalize(raw).map(Cow::Owned)
}

/// Already normalized: starts with `/`, no escapes, backslashes, NULs,
/// empty, `.` or `..` segments (most request paths).
fn is_plain(raw: &str) -> bool {
    let b = raw.as_bytes();
    if b.first() != Some(&b'/') || b.iter().any(|c| matches!(c, b'%' | b'\\' | 0)) {
        return false;
    }
    // Segments between slashes; the first (before the leading slash) is "".
    raw.split('/')
        .skip(1)
        .enumerate()
        .all(|(i, seg)| match seg {
            "." | ".." => false,
            // An empty segment is fine only as the trailing slash.
            "" => i + 2 == raw.split('/').count(),
            _ => true,
        })
}

fn hex(b: u8) -> Option<u8> {
    // Not `from_str_radix`: it accepts a sign (`%+1`).
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn slow_normalize(raw: &str) -> Result<String, ()> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex).ok_or(())?;
            let lo = bytes.get(i + 2).copied().and_then(hex).ok_or(())?;
            decoded.push(hi << 4 | lo);
            i += 3;
        } else {
            decoded.push(b);
            i += 1;
        }
    }
    if decoded.contains(&0) {
        return Err(());
    }
    let s = String::from_utf8(decoded).map_err(|_| ())?;
    if !s.starts_with('/') {
        return Err(());
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in s.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or(())?;
            }
            other => {
                // A backslash is a separator on no platform we serve from,
                // but refusing it costs nothing and stops `..\` tricks in
                // anything downstream that might treat it as one.
                if other.contains('\\') {
                    return Err(());
                }
                parts.push(other)
            }
        }
    }
    let mut out = String::with_capacity(s.len());
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    let trailing = s.ends_with('/') || s.ends_with("/.") || s.ends_with("/..");
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(out)
}

/// Whether `b` may stand unescaped in a path (RFC 3986 `pchar` and `/`).
fn path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b)
}

/// Appends a decoded path, percent-escaping what a path cannot hold
/// (`%`, `?`, `#`, spaces, controls, non-ASCII, ...). Runs of plain bytes
/// are copied in one piece.
pub(crate) fn push_escaped(out: &mut String, p: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut start = 0;
    for (i, &c) in p.as_bytes().iter().enumerate() {
        if !path_char(c) {
            // `start..i` holds only ASCII path characters, so both ends
            // are character boundaries (an empty run may not be: "").
            out.push_str(p.get(start..i).unwrap_or_default());
            out.push('%');
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 15)]));
            start = i + 1;
        }
    }
    out.push_str(p.get(start..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_rejects_traversal() {
        assert_eq!(normalize_path("/a//b/./c").as_deref(), Ok("/a/b/c"));
        assert_eq!(normalize_path("/a/../b").as_deref(), Ok("/b"));
        assert_eq!(normalize_path("/a/b/").as_deref(), Ok("/a/b/"));
        assert_eq!(normalize_path("/a/b/..").as_deref(), Ok("/a/"));
        assert_eq!(
            normalize_path("/%7euser/x%20y").as_deref(),
            Ok("/~user/x y")
        );
        assert_eq!(normalize_path("/").as_deref(), Ok("/"));
        assert!(matches!(normalize_path("/a/b.html"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize_path("/a/b/"), Ok(Cow::Borrowed(_))));
        assert_eq!(normalize_path("/a//").as_deref(), Ok("/a/"));
        assert_eq!(normalize_path("//").as_deref(), Ok("/"));
        assert_eq!(normalize_path("/a/.").as_deref(), Ok("/a/"));
        assert_eq!(normalize_path("/a/..b").as_deref(), Ok("/a/..b"));
        assert_eq!(normalize_path("/a/%2e%2E/b").as_deref(), Ok("/b"));
        assert_eq!(normalize_path("/a/x%2f..%2fb").as_deref(), Ok("/a/b"));
        for bad in [
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/a/..%2f..%2fetc",
            "/%2E%2E%2Fetc",
            "/x%00.html",
            "/%zz",
            "/%ff",
            "/..\\etc",
            "/a/b/../../..",
        ] {
            assert_eq!(normalize_path(bad), Err(()), "{bad}");
        }
        for bad in ["", "a/b", "/a\0b"] {
            assert_eq!(normalize_path(bad), Err(()), "{bad:?}");
        }
    }

    #[test]
    fn escapes_are_two_hex_digits() {
        // Regression: `u8::from_str_radix("+1", 16)` is 1, so `%+1` was
        // decoded to a control character; nginx answers 400.
        for bad in ["/a%+1", "/a%-1", "/a%+f", "/a%1", "/a%", "/a% 1", "/a%1g"] {
            assert_eq!(normalize_path(bad), Err(()), "{bad}");
        }
        assert_eq!(normalize_path("/%41%7a%7E").as_deref(), Ok("/Az~"));
    }

    #[test]
    fn escaping_round_trips() {
        let mut s = String::new();
        push_escaped(&mut s, "/a b/%/?#/\u{e9}/x\r\n/~user/a+b;c=d");
        assert_eq!(s, "/a%20b/%25/%3F%23/%C3%A9/x%0D%0A/~user/a+b;c=d");
        assert_eq!(
            normalize_path(&s).as_deref(),
            Ok("/a b/%/?#/\u{e9}/x\r\n/~user/a+b;c=d")
        );
        s.clear();
        push_escaped(&mut s, "/plain/path");
        assert_eq!(s, "/plain/path");
    }
}
