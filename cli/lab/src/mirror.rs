//! The Debian mirror the host's apt already uses: the only package source this kind of
//! machine reaches, so the lab's root file system must be built from it.

use std::fs;

/// Debian's public mirror, used only when the host's apt configuration names none.
pub const FALLBACK_MIRROR: &str = "http://deb.debian.org/debian";

/// First `deb` URI serving `suite` in /etc/apt/sources.list and sources.list.d.
pub fn host_debian_mirror(suite: &str) -> String {
    let mut texts = Vec::new();
    if let Ok(t) = fs::read_to_string("/etc/apt/sources.list") {
        texts.push((false, t));
    }
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let deb822 = match p.extension().and_then(|e| e.to_str()) {
                Some("sources") => true,
                Some("list") => false,
                _ => continue,
            };
            if let Ok(t) = fs::read_to_string(&p) {
                texts.push((deb822, t));
            }
        }
    }
    for (deb822, text) in &texts {
        let found = if *deb822 {
            mirror_in_deb822(text, suite)
        } else {
            mirror_in_one_line(text, suite)
        };
        if let Some(uri) = found {
            return uri;
        }
    }
    tracing::warn!(
        suite,
        "no apt source for the suite on the host, using {FALLBACK_MIRROR}"
    );
    FALLBACK_MIRROR.to_string()
}

/// `deb [options] URI SUITE COMPONENTS...`
fn mirror_in_one_line(text: &str, suite: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace().peekable();
        if words.next() != Some("deb") {
            continue;
        }
        if words.peek().is_some_and(|w| w.starts_with('[')) {
            // Skip the option block, which may span several words.
            for w in words.by_ref() {
                if w.ends_with(']') {
                    break;
                }
            }
        }
        let (Some(uri), Some(s)) = (words.next(), words.next()) else {
            continue;
        };
        if s == suite && is_http(uri) {
            return Some(uri.trim_end_matches('/').to_string());
        }
    }
    None
}

/// deb822 stanzas: `Types: deb`, `URIs: ...`, `Suites: ...`, `Enabled: no` skips.
fn mirror_in_deb822(text: &str, suite: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
            })
        };
        let types = field("Types").unwrap_or_default();
        let suites = field("Suites").unwrap_or_default();
        let enabled = field("Enabled").is_none_or(|v| v != "no");
        if !enabled
            || !types.split_whitespace().any(|t| t == "deb")
            || !suites.split_whitespace().any(|s| s == suite)
        {
            continue;
        }
        if let Some(uri) = field("URIs")
            .unwrap_or_default()
            .split_whitespace()
            .find(|u| is_http(u))
        {
            return Some(uri.trim_end_matches('/').to_string());
        }
    }
    None
}

fn is_http(uri: &str) -> bool {
    uri.starts_with("http://") || uri.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_format() {
        let t = "# c\ndeb-src http://x/debian bookworm main\n\
                 deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n";
        assert_eq!(
            mirror_in_one_line(t, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(mirror_in_one_line(t, "trixie"), None);
    }

    #[test]
    fn deb822_format() {
        let t = "Types: deb\n# http://snapshot\nURIs: http://deb.example/debian\n\
                 Suites: bookworm bookworm-updates\nComponents: main\n\n\
                 Types: deb\nURIs: http://deb.example/debian-security\n\
                 Suites: bookworm-security\n";
        assert_eq!(
            mirror_in_deb822(t, "bookworm").as_deref(),
            Some("http://deb.example/debian")
        );
        let disabled = "Types: deb\nURIs: http://a/debian\nSuites: bookworm\nEnabled: no\n";
        assert_eq!(mirror_in_deb822(disabled, "bookworm"), None);
    }
}
