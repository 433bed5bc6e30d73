//! Every certificate rule with a good and a bad input.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::SystemTime;

use common::*;
use hadeploy_tls::check::{self, Finding, Rule};
use hadeploy_tls::config::CertificatePaths;

fn rules(findings: &[Finding]) -> Vec<(Rule, bool)> {
    findings.iter().map(|f| (f.rule, f.is_error())).collect()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn run(paths: &CertificatePaths, server_names: &[&str]) -> Vec<Finding> {
    let (findings, _) = check::pair(
        "sites[0].tls.certificates[0]",
        &paths.chain,
        &paths.key,
        &names(server_names),
        SystemTime::now(),
    )
    .unwrap();
    findings
}

#[test]
fn a_good_chain_has_no_findings() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::new("Root");
    let inter = Ca::with_parent("Intermediate", Some(&root));
    let leaf = inter.leaf(&LeafSpec::new(
        "www",
        &["www.example.com", "*.example.com"],
        Kind::Ecdsa,
    ));
    let p = files(dir.path(), "good", &leaf, &[&inter]);
    let f = run(&p, &["www.example.com", "api.example.com", "*.example.com"]);
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Root");
    let leaf = ca.leaf(&LeafSpec::new("www", &["www.example.com"], Kind::Ecdsa));
    let other = ca.leaf(&LeafSpec::new("other", &["www.example.com"], Kind::Ecdsa));
    let mut p = files(dir.path(), "a", &leaf, &[]);
    p.key = files(dir.path(), "b", &other, &[]).key;
    let f = run(&p, &["www.example.com"]);
    assert_eq!(rules(&f), [(Rule::KeyMatchesLeaf, true)]);
    assert_eq!(f[0].diagnostic.path, "sites[0].tls.certificates[0].key");
    assert_eq!(
        f[0].diagnostic.message,
        "the key does not belong to the leaf certificate (CN=www)"
    );
}

#[test]
fn reversed_chain() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::new("Root");
    let inter = Ca::with_parent("Intermediate", Some(&root));
    let leaf = inter.leaf(&LeafSpec::new("www", &["www.example.com"], Kind::Ecdsa));
    let p = CertificatePaths {
        chain: write(
            dir.path(),
            "rev.crt",
            &format!("{}{}", inter.pem(), leaf.cert_pem),
        ),
        key: write(dir.path(), "rev.key", &leaf.key_pem),
    };
    let f = run(&p, &[]);
    assert_eq!(
        rules(&f),
        [(Rule::KeyMatchesLeaf, true), (Rule::ChainOrder, true)]
    );
    assert!(
        f[0].diagnostic
            .message
            .contains("belongs to certificate 2 (CN=www), not to the first"),
        "{}",
        f[0].diagnostic.message
    );
    assert_eq!(f[1].diagnostic.path, "sites[0].tls.certificates[0].chain");
    assert!(
        f[1].diagnostic
            .message
            .starts_with("certificate 1 (CN=Intermediate) is not issued by certificate 2 (CN=www)"),
        "{}",
        f[1].diagnostic.message
    );
    // An intermediate from another hierarchy with the same name: the
    // names match but the signature does not.
    let impostor = Ca::with_parent("Intermediate", Some(&Ca::new("Root")));
    let p = files(dir.path(), "imp", &leaf, &[&impostor]);
    assert_eq!(rules(&run(&p, &[])), [(Rule::ChainOrder, true)]);
}

#[test]
fn uncovered_names_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Root");
    let leaf = ca.leaf(&LeafSpec::new(
        "www",
        &["www.example.com", "*.example.com"],
        Kind::Ecdsa,
    ));
    let p = files(dir.path(), "n", &leaf, &[]);
    let f = run(
        &p,
        &[
            "www.example.com",
            "a.example.com",
            "example.com",
            "x.y.example.com",
        ],
    );
    assert_eq!(rules(&f), [(Rule::NamesCovered, true)]);
    assert_eq!(
        f[0].diagnostic.message,
        "not covered: example.com, x.y.example.com; the certificate covers www.example.com, *.example.com"
    );
}

#[test]
fn expired_not_yet_valid_and_expiring_soon() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Root");
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let run_with = |name: &str, from, until| {
        let mut spec = LeafSpec::new(name, &["www.example.com"], Kind::Ecdsa);
        spec.not_before = from;
        spec.not_after = until;
        run(
            &files(dir.path(), name, &ca.leaf(&spec), &[]),
            &["www.example.com"],
        )
    };
    let f = run_with("expired", now - 90 * day, now - day);
    assert_eq!(rules(&f), [(Rule::Expiry, true)]);
    assert!(
        f[0].diagnostic
            .message
            .starts_with("certificate 1 (CN=expired) expired on "),
        "{f:?}"
    );
    let f = run_with("future", now + day, now + 90 * day);
    assert_eq!(rules(&f), [(Rule::Expiry, true)]);
    assert!(
        f[0].diagnostic.message.contains("is not valid before"),
        "{f:?}"
    );
    let f = run_with("soon", now - day, now + 10 * day + time::Duration::hours(1));
    assert_eq!(rules(&f), [(Rule::Expiry, false)]);
    assert!(
        f[0].diagnostic.message.contains("expires in 10 days"),
        "{f:?}"
    );
    assert!(run_with("fine", now - day, now + 22 * day).is_empty());
    // What status and the expiry metric read.
    let mut spec = LeafSpec::new("info", &["a.test", "*.b.test"], Kind::Ecdsa);
    spec.not_after = now + 30 * day;
    let leaf = ca.leaf(&spec);
    let der = hadeploy_tls::pem::certificates("x", leaf.cert_pem.as_bytes()).unwrap()[0]
        .1
        .clone();
    let info = check::CertInfo::of(&der).unwrap();
    assert_eq!(
        (info.subject.as_str(), info.issuer.as_str()),
        ("CN=info", "CN=Root")
    );
    assert_eq!(info.dns_names, ["a.test", "*.b.test"]);
    let left = info.seconds_left(SystemTime::now());
    assert!((30 * 86_400 - 5..=30 * 86_400).contains(&left), "{left}");
}

#[test]
fn garbage_pem_names_file_and_block() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Root");
    let leaf = ca.leaf(&LeafSpec::new("www", &["www.example.com"], Kind::Ecdsa));
    let good = files(dir.path(), "g", &leaf, &[]);
    let pair = |chain: &std::path::Path, key: &std::path::Path| {
        check::pair(
            "sites[2].tls.certificates[1]",
            chain,
            key,
            &[],
            SystemTime::now(),
        )
        .unwrap_err()
    };
    // A broken second block (line 1 is a comment).
    let text = format!(
        "# bundle\n{}-----BEGIN CERTIFICATE-----\nnot*base64\n-----END CERTIFICATE-----\n",
        leaf.cert_pem
    );
    let bad = write(dir.path(), "bad.crt", &text);
    let block2_line = 2 + leaf.cert_pem.lines().count();
    let f = pair(&bad, &good.key);
    assert_eq!(f.rule, Rule::Pem);
    assert_eq!(f.diagnostic.path, "sites[2].tls.certificates[1].chain");
    assert_eq!(
        f.diagnostic.message,
        format!(
            "{}: block 2 (line {block2_line}): invalid base64",
            bad.display()
        )
    );
    // Valid base64, not a certificate.
    let junk = write(
        dir.path(),
        "junk.crt",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );
    let f = pair(&junk, &good.key);
    assert!(
        f.diagnostic.message.starts_with(&format!(
            "{}: block 1 (line 1): not an X.509 certificate",
            junk.display()
        )),
        "{}",
        f.diagnostic.message
    );
    // The key file holds a certificate; a missing file.
    let f = pair(&good.chain, &good.chain);
    assert_eq!(f.diagnostic.path, "sites[2].tls.certificates[1].key");
    assert_eq!(
        f.diagnostic.message,
        format!("{}: no PRIVATE KEY block found", good.chain.display())
    );
    let missing = dir.path().join("missing.key");
    let f = pair(&good.chain, &missing);
    assert!(
        f.diagnostic
            .message
            .starts_with(&format!("{}: cannot read: ", missing.display()))
    );
    // No key text ever appears in a message.
    let body: String = leaf
        .key_pem
        .lines()
        .nth(1)
        .unwrap()
        .chars()
        .take(20)
        .collect();
    assert!(!f.diagnostic.message.contains(&body));
}

#[test]
fn a_site_with_two_ecdsa_certificates_and_field_paths() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Root");
    let a = files(
        dir.path(),
        "a",
        &ca.leaf(&LeafSpec::new("a", &["a.test"], Kind::Ecdsa)),
        &[],
    );
    let b = files(
        dir.path(),
        "b",
        &ca.leaf(&LeafSpec::new("b", &["b.test"], Kind::Ecdsa)),
        &[],
    );
    let tls = site_tls(vec![a.clone(), b]);
    let f = check::site("sites[3]", &tls, &names(&["a.test"]), SystemTime::now());
    let got: Vec<(Rule, &str)> = f
        .iter()
        .map(|f| (f.rule, f.diagnostic.path.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Rule::NamesCovered, "sites[3].tls.certificates[1].chain"),
            (Rule::KeyTypes, "sites[3].tls.certificates"),
        ]
    );
    let rsa = files(
        dir.path(),
        "r",
        &ca.leaf(&LeafSpec::new("r", &["a.test"], Kind::Rsa)),
        &[],
    );
    let tls = site_tls(vec![a, rsa]);
    assert!(check::site("sites[3]", &tls, &names(&["a.test"]), SystemTime::now()).is_empty());
}
