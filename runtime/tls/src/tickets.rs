//! Session tickets whose keys are shared by every load balancer of a
//! cluster, so a client that got a ticket from the master resumes on the
//! backup after the VIP moves (nginx `ssl_session_ticket_key`, HAProxy
//! `tls-ticket-keys`).
//!
//! Key files are nginx's: 80 bytes (16 name + 32 HMAC + 32 AES, for
//! AES-256) or 48 bytes (16 name + 16 HMAC + 16 AES). The first key
//! encrypts, every key decrypts, so rotation prepends a new file and keeps
//! the previous one for a ticket lifetime.
//!
//! The ticket itself is not nginx's (AES-CBC + HMAC-SHA256): a ticket is
//! opaque to clients and only our own nodes read it, so what matters is that
//! every node holds the same keys. We use an AEAD instead: AES-256-GCM
//! (ring) under a key derived with HKDF-SHA256 from the file's 32 (or 64)
//! secret bytes, a random 96-bit nonce per ticket, the key name as
//! associated data. Layout: `name(16) | nonce(12) | seal(issued_at(8) |
//! rustls session)`. `issued_at` enforces the lifetime (rustls only checks
//! a ticket's age for 0-RTT, which we do not enable), allowing 5 minutes of
//! clock difference between the nodes. Random nonces stay far
//! from GCM's 2^32-messages bound between rotations.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;

const NAME_LEN: usize = 16;
const STAMP_LEN: usize = 8;
const HKDF_INFO: &[u8] = b"hadeploy session ticket v1";
/// A ticket the other node issued "in the future" by its clock is still
/// accepted within this much clock difference between the nodes.
const MAX_CLOCK_SKEW: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum TicketKeyError {
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {len} bytes; a ticket key file has 80 bytes (AES-256) or 48 (AES-128), e.g. `openssl rand 80`", path.display())]
    Length { path: PathBuf, len: usize },
    #[error("no ticket key files")]
    None,
    #[error("cannot read random bytes from the system")]
    Random,
}

/// One key: its public name (matched against a ticket's first 16 bytes)
/// and the AEAD key. Never printed.
struct TicketKey {
    name: [u8; NAME_LEN],
    aead: LessSafeKey,
}

impl TicketKey {
    /// From the bytes of an nginx key file.
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 80 && bytes.len() != 48 {
            return None;
        }
        let mut name = [0; NAME_LEN];
        name.copy_from_slice(&bytes[..NAME_LEN]);
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, &name);
        let prk = salt.extract(&bytes[NAME_LEN..]);
        let okm = prk.expand(&[HKDF_INFO], &AES_256_GCM).ok()?;
        Some(TicketKey {
            name,
            aead: LessSafeKey::new(UnboundKey::from(okm)),
        })
    }
}

/// rustls's ticket producer over the cluster's key files.
pub struct SharedTicketer {
    /// `keys[0]` encrypts.
    keys: Vec<TicketKey>,
    lifetime: Duration,
    rng: SystemRandom,
}

impl fmt::Debug for SharedTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTicketer")
            .field("keys", &self.keys.len())
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl SharedTicketer {
    /// Reads every key file; any unreadable or wrong-sized file is an
    /// error (a node that silently dropped a key would stop resuming).
    pub fn from_files(files: &[PathBuf], lifetime: Duration) -> Result<Self, TicketKeyError> {
        let keys = files
            .iter()
            .map(|p| {
                let bytes = std::fs::read(p).map_err(|error| TicketKeyError::Read {
                    path: p.clone(),
                    error,
                })?;
                key_from_file_bytes(p, &bytes)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys, lifetime)
    }

    /// A ticketer over one random key, for a node without shared keys:
    /// resumption then works on this process only.
    pub fn random(lifetime: Duration) -> Result<Self, TicketKeyError> {
        let mut bytes = [0u8; 80];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| TicketKeyError::Random)?;
        let key = key_from_file_bytes(Path::new("<random>"), &bytes)?;
        Self::new(vec![key], lifetime)
    }

    fn new(keys: Vec<TicketKey>, lifetime: Duration) -> Result<Self, TicketKeyError> {
        if keys.is_empty() {
            return Err(TicketKeyError::None);
        }
        Ok(SharedTicketer {
            keys,
            lifetime,
            rng: SystemRandom::new(),
        })
    }
}

fn key_from_file_bytes(path: &Path, bytes: &[u8]) -> Result<TicketKey, TicketKeyError> {
    TicketKey::from_bytes(bytes).ok_or_else(|| TicketKeyError::Length {
        path: path.to_path_buf(),
        len: bytes.len(),
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ProducesTickets for SharedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(self.lifetime.as_secs()).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut sealed = Vec::with_capacity(STAMP_LEN + plain.len() + 16);
        sealed.extend_from_slice(&now_secs().to_be_bytes());
        sealed.extend_from_slice(plain);
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&key.name),
                &mut sealed,
            )
            .ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(&key.name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < NAME_LEN + NONCE_LEN {
            return None;
        }
        let (name, rest) = ticket.split_at(NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let key = self.keys.iter().find(|k| k.name == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(name), &mut buf)
            .ok()?;
        let (stamp, session) = plain.split_first_chunk::<STAMP_LEN>()?;
        let (issued, now) = (u64::from_be_bytes(*stamp), now_secs());
        let fresh = now.saturating_sub(issued) <= self.lifetime.as_secs()
            && issued <= now.saturating_add(MAX_CLOCK_SKEW);
        fresh.then(|| session.to_vec())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(fill: u8, len: usize) -> TicketKey {
        let mut b = vec![fill; len];
        b[0] = fill.wrapping_add(1); // names differ per fill
        TicketKey::from_bytes(&b).unwrap()
    }

    fn ticketer(keys: Vec<TicketKey>) -> SharedTicketer {
        SharedTicketer::new(keys, Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn first_key_encrypts_every_key_decrypts() {
        let old = ticketer(vec![key(1, 80)]);
        let t = old.encrypt(b"session").unwrap();
        assert_eq!(old.decrypt(&t).unwrap(), b"session");
        // Rotated: a new key first, the old one kept.
        let rotated = ticketer(vec![key(2, 48), key(1, 80)]);
        assert_eq!(rotated.decrypt(&t).unwrap(), b"session");
        let t2 = rotated.encrypt(b"again").unwrap();
        assert_eq!(&t2[..NAME_LEN], &key(2, 48).name);
        assert!(old.decrypt(&t2).is_none(), "old node lacks the new key");
        // Random nonces: two tickets for the same session differ.
        assert_ne!(old.encrypt(b"session").unwrap(), t);
    }

    #[test]
    fn tampered_truncated_and_expired_tickets_are_refused() {
        let t = ticketer(vec![key(1, 80)]);
        let mut ticket = t.encrypt(b"session").unwrap();
        let last = ticket.len() - 1;
        ticket[last] ^= 1;
        assert!(t.decrypt(&ticket).is_none());
        assert!(t.decrypt(&ticket[..20]).is_none());
        assert_eq!(t.lifetime(), 60);
        let now = now_secs();
        assert!(t.decrypt(&issued_at(&t, now - 30)).is_some());
        assert!(
            t.decrypt(&issued_at(&t, now - 61)).is_none(),
            "older than the lifetime"
        );
        // The other node's clock a little ahead: accepted; far ahead: not.
        assert!(t.decrypt(&issued_at(&t, now + 100)).is_some());
        assert!(t.decrypt(&issued_at(&t, now + 1000)).is_none());
    }

    /// A ticket as `encrypt` makes it, stamped `issued`.
    fn issued_at(t: &SharedTicketer, issued: u64) -> Vec<u8> {
        let key = &t.keys[0];
        let nonce = [7u8; NONCE_LEN];
        let mut sealed = issued.to_be_bytes().to_vec();
        sealed.extend_from_slice(b"s");
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&key.name),
                &mut sealed,
            )
            .unwrap();
        let mut out = key.name.to_vec();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    #[test]
    fn key_file_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, [0u8; 32]).unwrap();
        let e = SharedTicketer::from_files(&[bad], Duration::from_secs(1)).unwrap_err();
        assert!(
            e.to_string().contains("32 bytes; a ticket key file has 80"),
            "{e}"
        );
        let e = SharedTicketer::from_files(&[dir.path().join("missing")], Duration::from_secs(1))
            .unwrap_err();
        assert!(e.to_string().contains("missing: cannot read"), "{e}");
        assert!(matches!(
            SharedTicketer::from_files(&[], Duration::from_secs(1)),
            Err(TicketKeyError::None)
        ));
    }
}
