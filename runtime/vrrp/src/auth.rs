//! VRRPv2 authentication (RFC 3768 section 5.3.6 / RFC 2338).
//!
//! RFC 3768 deprecates authentication, but keepalived users rely on
//! `auth_type PASS` as a guard against a neighbouring cluster that reuses the
//! same VRID: with different passwords the two clusters ignore each other
//! instead of electing a single master for both. VRRPv3 has no auth at all.

use std::fmt;

/// Auth Type field values of VRRPv2.
pub(crate) const AUTH_TYPE_NONE: u8 = 0;
pub(crate) const AUTH_TYPE_PASS: u8 = 1;

/// VRRPv2 authentication this instance sends and requires.
///
/// `Debug` never prints the password: params and adverts end up in logs.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    /// Auth Type 0; the 8 auth data bytes are zero.
    #[default]
    None,
    /// Auth Type 1, simple text password, zero padded to 8 bytes.
    Pass([u8; 8]),
}

impl Auth {
    /// A PASS password from its configured text.
    ///
    /// Like keepalived, bytes past the eighth are dropped, so a hadeploy node
    /// interoperates with a keepalived peer configured with the same long
    /// string. The config layer rejects such passwords; this is the last
    /// line, not the policy.
    pub fn pass(password: &[u8]) -> Auth {
        let mut data = [0u8; 8];
        let n = password.len().min(8);
        data[..n].copy_from_slice(&password[..n]);
        Auth::Pass(data)
    }

    /// The Auth Type field value.
    pub fn type_code(&self) -> u8 {
        match self {
            Auth::None => AUTH_TYPE_NONE,
            Auth::Pass(_) => AUTH_TYPE_PASS,
        }
    }

    /// The 8 Authentication Data bytes as sent.
    pub(crate) fn data(&self) -> [u8; 8] {
        match self {
            Auth::None => [0; 8],
            Auth::Pass(d) => *d,
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Pass(_) => f.write_str("Pass(<redacted>)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_is_zero_padded() {
        assert_eq!(Auth::pass(b"abc"), Auth::Pass(*b"abc\0\0\0\0\0"));
        assert_eq!(Auth::pass(b"abc").type_code(), 1);
        assert_eq!(Auth::None.type_code(), 0);
        assert_eq!(Auth::None.data(), [0; 8]);
    }

    #[test]
    fn long_pass_is_truncated_like_keepalived() {
        assert_eq!(Auth::pass(b"0123456789"), Auth::pass(b"01234567"));
    }

    #[test]
    fn debug_redacts_password() {
        let shown = format!("{:?}", Auth::pass(b"s3cr3t"));
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains("115"), "{shown}"); // no byte values either
        assert_eq!(shown, "Pass(<redacted>)");
    }
}
