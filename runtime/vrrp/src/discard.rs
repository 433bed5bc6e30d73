//! Why a received VRRP packet was not delivered to an instance.

/// A reason to drop a received packet, in the order [`decode`](crate::decode)
/// checks them.
///
/// Each reason is a distinct Prometheus label ([`Discard::as_str`]) because
/// the field failures they point at differ: `bad_ttl` is a router or a
/// unicast peer across a hop, `auth_mismatch` / `address_list_mismatch` is
/// usually a VRID collision with a neighbouring cluster, `interval_mismatch`
/// a config drift between the two nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Discard {
    /// Shorter than the 8-byte fixed header.
    #[error("packet shorter than the VRRP header")]
    TooShort,
    /// Version nibble is not the instance's version.
    #[error("VRRP version differs from the instance's")]
    BadVersion,
    /// Type nibble is not 1 (ADVERTISEMENT).
    #[error("VRRP type is not ADVERTISEMENT")]
    BadType,
    /// VRID is not this instance's. Not an error: another router on the
    /// segment, or another local instance, owns that VRID.
    #[error("VRID belongs to another virtual router")]
    WrongVrid,
    /// The IP source is not one of the instance's peers (the cluster's load
    /// balancers, or an address the operator allowed): a forged advert, or
    /// another cluster reusing our VRID on the segment.
    #[error("sender is not a known peer of this virtual router")]
    UnknownPeer,
    /// IP TTL is not 255: the packet crossed a router (or was forged off-link).
    #[error("IP TTL is not 255")]
    BadTtl,
    /// Count IP Addrs is zero; RFC 5798 requires at least one.
    #[error("advert carries no address")]
    NoAddresses,
    /// Length does not match Count IP Addrs (and, for v2, the auth data).
    #[error("length does not match the address count")]
    BadLength,
    /// No checksum form verified.
    #[error("checksum does not verify")]
    BadChecksum,
    /// v2 Auth Type differs from the configured one.
    #[error("authentication type differs")]
    AuthTypeMismatch,
    /// v2 PASS password differs.
    #[error("authentication password differs")]
    AuthMismatch,
    /// Advert interval of zero (v3), which would make a backup's
    /// Master_Down_Interval collapse to Skew_Time.
    #[error("advert interval is zero")]
    BadInterval,
    /// v2 advert interval differs from the local one (RFC 3768 section 7.1).
    #[error("advert interval differs from the local one")]
    IntervalMismatch,
    /// Count IP Addrs differs from the configured virtual addresses.
    #[error("address count differs from the configured virtual addresses")]
    AddressCountMismatch,
    /// Same count, different addresses.
    #[error("addresses differ from the configured virtual addresses")]
    AddressListMismatch,
}

impl Discard {
    /// Every reason, for pre-registering counters at zero.
    pub const ALL: [Discard; 15] = [
        Discard::TooShort,
        Discard::BadVersion,
        Discard::BadType,
        Discard::WrongVrid,
        Discard::UnknownPeer,
        Discard::BadTtl,
        Discard::NoAddresses,
        Discard::BadLength,
        Discard::BadChecksum,
        Discard::AuthTypeMismatch,
        Discard::AuthMismatch,
        Discard::BadInterval,
        Discard::IntervalMismatch,
        Discard::AddressCountMismatch,
        Discard::AddressListMismatch,
    ];

    /// Stable snake_case label for metrics. Never change one: dashboards and
    /// alerts are keyed on them.
    pub fn as_str(&self) -> &'static str {
        match self {
            Discard::TooShort => "too_short",
            Discard::BadVersion => "bad_version",
            Discard::BadType => "bad_type",
            Discard::WrongVrid => "wrong_vrid",
            Discard::UnknownPeer => "unknown_peer",
            Discard::BadTtl => "bad_ttl",
            Discard::NoAddresses => "no_addresses",
            Discard::BadLength => "bad_length",
            Discard::BadChecksum => "bad_checksum",
            Discard::AuthTypeMismatch => "auth_type_mismatch",
            Discard::AuthMismatch => "auth_mismatch",
            Discard::BadInterval => "bad_interval",
            Discard::IntervalMismatch => "interval_mismatch",
            Discard::AddressCountMismatch => "address_count_mismatch",
            Discard::AddressListMismatch => "address_list_mismatch",
        }
    }

    /// False for reasons that are normal traffic rather than a fault
    /// (a packet for another VRID), so callers can log only the rest.
    pub fn is_error(&self) -> bool {
        !matches!(self, Discard::WrongVrid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn labels_are_unique_snake_case() {
        let labels: HashSet<&str> = Discard::ALL.iter().map(Discard::as_str).collect();
        assert_eq!(labels.len(), Discard::ALL.len());
        for l in labels {
            assert!(l.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{l}");
        }
    }

    #[test]
    fn only_wrong_vrid_is_not_an_error() {
        let non_errors: Vec<_> = Discard::ALL.iter().filter(|d| !d.is_error()).collect();
        assert_eq!(non_errors, [&Discard::WrongVrid]);
    }
}
