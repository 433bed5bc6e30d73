//! `--diff`: unified diffs of every changed file, secrets masked on both
//! sides so a password never reaches a terminal or a CI log.

use similar::TextDiff;

use hadeploy_inventory::secret::mask_rendered as mask;

pub fn unified(path: &str, old: Option<&str>, new: &str, secret: bool) -> String {
    let (old, new) = if secret {
        (old.map(mask), mask(new))
    } else {
        (old.map(str::to_string), new.to_string())
    };
    let old = old.unwrap_or_default();
    TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a{path}"), &format!("b{path}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_diffs() {
        let d = unified(
            "/etc/hadeploy/vrrp.yaml",
            Some("    auth_pass: \"old1\"\n"),
            "    auth_pass: \"new2\"\n",
            true,
        );
        assert!(!d.contains("old1") && !d.contains("new2"), "{d}");
    }

    #[test]
    fn diff_shows_changes() {
        let d = unified("/x", Some("a\nb\n"), "a\nc\n", false);
        assert!(d.contains("-b") && d.contains("+c"), "{d}");
    }
}
