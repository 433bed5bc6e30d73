//! `--diff`: unified diffs of every changed file, secrets masked on both
//! sides so a password never reaches a terminal or a CI log.
//!
//! Masking both sides alike would hide a changed secret completely (no
//! hunk at all), so a secret line whose value changed is marked on the new
//! side: `auth_pass: <secret changed>`. The marker carries nothing derived
//! from either value (no length, no hash: a short password's hash is
//! brute-forced in seconds).

use similar::{DiffOp, TextDiff};

use hadeploy_inventory::secret::mask_rendered as mask;

/// What replaces a masked secret whose value changed.
pub const SECRET_CHANGED: &str = "<secret changed>";

pub fn unified(path: &str, old: Option<&str>, new: &str, secret: bool) -> String {
    let (old, new) = if secret {
        mask_both(old, new)
    } else {
        (old.unwrap_or_default().to_string(), new.to_string())
    };
    TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a{path}"), &format!("b{path}"))
        .to_string()
}

/// Both sides masked; where the masked texts align line for line but the
/// real lines differ (only a secret's value can do that, masking changes
/// nothing else), the new side says the secret changed.
fn mask_both(old: Option<&str>, new: &str) -> (String, String) {
    let masked_new = mask(new);
    let Some(old) = old else {
        return (String::new(), masked_new);
    };
    let masked_old = mask(old);
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let mut shown: Vec<String> = masked_new.lines().map(str::to_string).collect();
    let ops = TextDiff::from_lines(&masked_old, &masked_new)
        .ops()
        .to_vec();
    for op in ops {
        if let DiffOp::Equal {
            old_index,
            new_index,
            len,
        } = op
        {
            for k in 0..len {
                let (o, n) = (old_lines.get(old_index + k), new_lines.get(new_index + k));
                if o != n
                    && let Some(line) = shown.get_mut(new_index + k)
                {
                    *line = mark_changed(line);
                }
            }
        }
    }
    let mut new_text = shown.join("\n");
    new_text.push('\n');
    (masked_old, new_text)
}

/// `    auth_pass: "****"` -> `    auth_pass: <secret changed>`.
fn mark_changed(masked: &str) -> String {
    match masked.rfind(':') {
        Some(i) => format!("{}: {SECRET_CHANGED}", &masked[..i]),
        None => SECRET_CHANGED.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "instances:\n  - name: VI_1\n    priority: 150\n    auth_pass: \"labpass\"\n    advert_interval: 1s\n";

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

    /// Before: both sides masked alike, a changed password gave no hunk.
    #[test]
    fn a_changed_secret_shows_as_changed_without_its_value() {
        let new = OLD.replace("labpass", "newpass1");
        let d = unified("/etc/hadeploy/vrrp.yaml", Some(OLD), &new, true);
        assert!(d.contains("-    auth_pass: \"****\"\n"), "{d}");
        assert!(d.contains("+    auth_pass: <secret changed>\n"), "{d}");
        assert!(!d.contains("labpass") && !d.contains("newpass1"), "{d}");
        // Nothing else is reported as changed.
        let changed: Vec<&str> = d
            .lines()
            .filter(|l| {
                (l.starts_with('-') || l.starts_with('+'))
                    && !l.starts_with("--- ")
                    && !l.starts_with("+++ ")
            })
            .collect();
        assert_eq!(changed.len(), 2, "{d}");
    }

    #[test]
    fn a_secret_next_to_other_changes_is_marked_too() {
        let new = OLD
            .replace("labpass", "newpass1")
            .replace("advert_interval: 1s", "advert_interval: 3s");
        let d = unified("/etc/hadeploy/vrrp.yaml", Some(OLD), &new, true);
        assert!(d.contains("+    auth_pass: <secret changed>\n"), "{d}");
        assert!(d.contains("-    advert_interval: 1s\n"), "{d}");
        assert!(d.contains("+    advert_interval: 3s\n"), "{d}");
        assert!(!d.contains("labpass") && !d.contains("newpass1"), "{d}");
    }

    #[test]
    fn an_unchanged_secret_is_not_reported() {
        let new = OLD.replace("priority: 150", "priority: 120");
        let d = unified("/etc/hadeploy/vrrp.yaml", Some(OLD), &new, true);
        assert!(!d.contains(SECRET_CHANGED), "{d}");
        assert!(d.contains("+    priority: 120"), "{d}");
        assert_eq!(unified("/x", Some(OLD), OLD, true), "");
    }

    #[test]
    fn a_new_file_shows_the_secret_masked() {
        let d = unified("/etc/hadeploy/vrrp.yaml", None, OLD, true);
        assert!(d.contains("+    auth_pass: \"****\""), "{d}");
        assert!(!d.contains("labpass") && !d.contains(SECRET_CHANGED), "{d}");
    }

    #[test]
    fn diff_shows_changes() {
        let d = unified("/x", Some("a\nb\n"), "a\nc\n", false);
        assert!(d.contains("-b") && d.contains("+c"), "{d}");
    }
}
