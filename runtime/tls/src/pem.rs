//! PEM reading through rustls-pki-types' `PemObject`, with errors that name
//! the source and the block (and its line) that failed.
//!
//! A key's bytes never reach an error message: only its block number and
//! line, and the parser's error kind.

use std::fmt;
use std::path::Path;

use rustls_pki_types::pem::{self, PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::CertificatePaths;
use crate::error::LoadError;

/// Why a PEM source could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("{source_name}: cannot read: {error}")]
    Read { source_name: String, error: String },
    #[error("{source_name}: block {block} (line {line}): {problem}")]
    Block {
        source_name: String,
        block: usize,
        line: usize,
        problem: String,
    },
    #[error("{source_name}: no {wanted} found")]
    Empty {
        source_name: String,
        wanted: &'static str,
    },
    #[error("{source_name}: {count} private keys; exactly one is expected")]
    SeveralKeys { source_name: String, count: usize },
}

/// One decoded PEM block and where it started.
pub struct Block {
    pub kind: SectionKind,
    pub der: Vec<u8>,
    /// 1-based number among the blocks of the source.
    pub number: usize,
    /// 1-based line of its `-----BEGIN` line.
    pub line: usize,
}

impl fmt::Debug for Block {
    /// Never the bytes: a block may be a private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("kind", &self.kind)
            .field("number", &self.number)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// Every block of `text`, in order; `source_name` (a file name, or an
/// inventory secret's name) goes into errors. Blocks of kinds rustls does
/// not know (`EC PARAMETERS`) are skipped but still counted.
pub fn blocks(source_name: &str, text: &[u8]) -> Result<Vec<Block>, PemError> {
    // Byte offset and 1-based line of every BEGIN line: each block is parsed
    // on its own segment, so an error belongs to exactly one block.
    let mut begins = Vec::new();
    let mut offset = 0;
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.starts_with(b"-----BEGIN ") {
            begins.push((offset, i + 1));
        }
        offset += line.len() + 1;
    }
    let mut out = Vec::new();
    for (k, &(start, line)) in begins.iter().enumerate() {
        let end = begins.get(k + 1).map_or(text.len(), |b| b.0);
        let segment = &text[start..end];
        let block_error = |problem: String| PemError::Block {
            source_name: source_name.to_string(),
            block: k + 1,
            line,
            problem,
        };
        match <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(segment).next() {
            Some(Ok((kind, der))) => out.push(Block {
                kind,
                der,
                number: k + 1,
                line,
            }),
            Some(Err(e)) => return Err(block_error(describe(&e))),
            None => {}
        }
    }
    Ok(out)
}

fn describe(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "no `-----END {}-----` line",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { .. } => "malformed `-----BEGIN` line".to_string(),
        pem::Error::Base64Decode(_) => "invalid base64".to_string(),
        other => other.to_string(),
    }
}

/// A certificate chain: every `CERTIFICATE` block, with its block number.
pub fn certificates(
    source_name: &str,
    text: &[u8],
) -> Result<Vec<(Block, CertificateDer<'static>)>, PemError> {
    let certs: Vec<_> = blocks(source_name, text)?
        .into_iter()
        .filter(|b| b.kind == SectionKind::Certificate)
        .map(|b| {
            let der = CertificateDer::from(b.der.clone());
            (b, der)
        })
        .collect();
    if certs.is_empty() {
        return Err(PemError::Empty {
            source_name: source_name.to_string(),
            wanted: "CERTIFICATE block",
        });
    }
    Ok(certs)
}

/// The one private key of `text` (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(source_name: &str, text: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    let mut keys: Vec<PrivateKeyDer<'static>> = blocks(source_name, text)?
        .into_iter()
        .filter_map(|b| PrivateKeyDer::from_pem(b.kind, b.der))
        .collect();
    match keys.len() {
        0 => Err(PemError::Empty {
            source_name: source_name.to_string(),
            wanted: "PRIVATE KEY block",
        }),
        1 => Ok(keys.remove(0)),
        count => Err(PemError::SeveralKeys {
            source_name: source_name.to_string(),
            count,
        }),
    }
}

/// Reads a `{chain, key}` pair; `path` is the entry's YAML path
/// (`sites[0].tls.certificates[1]`), errors point at its `chain` or `key`.
pub fn read_pair(
    path: &str,
    files: &CertificatePaths,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), LoadError> {
    let at = |field: &str| {
        let p = format!("{path}.{field}");
        move |error| LoadError::Pem { path: p, error }
    };
    let chain_text = read(&files.chain).map_err(at("chain"))?;
    let chain = certificates(&files.chain.display().to_string(), &chain_text)
        .map_err(at("chain"))?
        .into_iter()
        .map(|(_, der)| der)
        .collect();
    let key_text = read(&files.key).map_err(at("key"))?;
    let key = private_key(&files.key.display().to_string(), &key_text).map_err(at("key"))?;
    Ok((chain, key))
}

/// Reads a file for the functions above; the error names the file.
pub fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|e| PemError::Read {
        source_name: path.display().to_string(),
        error: e.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";

    #[test]
    fn blocks_carry_number_and_line() {
        let text = format!("# comment\n{CERT}\n{CERT}");
        let b = blocks("f.pem", text.as_bytes()).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].number, b[0].line), (1, 2));
        assert_eq!((b[1].number, b[1].line), (2, 6));
        assert_eq!(b[1].der, [0, 1, 2]);
    }

    #[test]
    fn bad_base64_names_the_block_and_line() {
        let text = format!("{CERT}-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
        let e = blocks("f.pem", text.as_bytes()).unwrap_err();
        assert_eq!(e.to_string(), "f.pem: block 2 (line 4): invalid base64");
    }

    #[test]
    fn truncated_block_and_empty_file() {
        let e = blocks("f.pem", b"-----BEGIN CERTIFICATE-----\nAAEC\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.pem: block 1 (line 1): no `-----END CERTIFICATE-----` line"
        );
        let e = certificates("f.pem", b"hello\n").unwrap_err();
        assert_eq!(e.to_string(), "f.pem: no CERTIFICATE block found");
        let e = private_key("k.pem", CERT.as_bytes()).unwrap_err();
        assert_eq!(e.to_string(), "k.pem: no PRIVATE KEY block found");
    }
}
