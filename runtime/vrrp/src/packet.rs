//! VRRP over IPv4: advertisement encode and decode, versions 2 and 3.
//!
//! Layout (RFC 3768 section 5.1, RFC 5798/9568 section 5.1), one row per
//! 32-bit word:
//!
//! ```text
//! v2: | ver=2 type=1 | VRID | Priority | Count IP Addrs |
//!     | Auth Type    | Adver Int (s)   | Checksum       |
//!     | IP Address (1) ... IP Address (n)               |
//!     | Authentication Data (8 bytes)                   |
//! v3: | ver=3 type=1 | VRID | Priority | Count IPvX     |
//!     | rsvd(4) Max Adver Int (12, cs) | Checksum       |
//!     | IPvX Address (1) ... IPvX Address (n)           |
//! ```
//!
//! The codec works on the IP *payload* and takes the IP header fields it
//! needs (source, destination, TTL) as arguments, so the socket layer may use
//! raw sockets, `IP_RECVTTL` ancillary data, or pcap, and tests need neither.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::auth::Auth;
use crate::checksum;
use crate::discard::Discard;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// The TTL every VRRP packet is sent with and must arrive with.
pub const VRRP_TTL: u8 = 255;
/// The IANA VRRP group (RFC 5798 5.1.1.2): where adverts go unless unicast
/// peers are set. The one spelling of it; hadeploy-config's default is this.
pub const VRRP_MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

const TYPE_ADVERTISEMENT: u8 = 1;
const HEADER_LEN: usize = 8;
const AUTH_LEN: usize = 8;

/// VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: interval in whole seconds, optional PASS authentication.
    V2,
    /// RFC 5798 / 9568: interval in centiseconds, no authentication.
    V3,
}

impl Version {
    /// The version nibble on the wire.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// How a VRRPv3 checksum is computed when *sending*.
///
/// Two forms exist in the field and neither side negotiates: keepalived 2.x
/// includes the IPv4 pseudo-header; RFC 9568, Cisco, Juniper and keepalived
/// with `v3_checksum_as_v2` do not. Receiving accepts both (see
/// [`ChecksumForm`]), so only the sending form needs configuring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum V3Checksum {
    /// Include the IPv4 pseudo-header (keepalived 2.x default).
    #[default]
    PseudoHeader,
    /// VRRP message only (RFC 9568).
    VrrpOnly,
}

/// Which checksum form a received packet verified with.
///
/// Reported so the operator can see what a peer speaks (a metrics label)
/// before switching the sending form to match a non-keepalived peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumForm {
    /// VRRPv2: message only, the only v2 form.
    V2,
    /// VRRPv3 with the IPv4 pseudo-header of the packet's real addresses.
    V3PseudoHeader,
    /// VRRPv3 over the message only.
    V3VrrpOnly,
    /// VRRPv3 with a pseudo-header naming 224.0.0.18 as destination although
    /// the packet was unicast: keepalived <= 1.3.6 (CentOS 7's 1.3.5).
    V3PseudoHeaderMulticastDst,
}

impl ChecksumForm {
    /// Stable label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChecksumForm::V2 => "v2",
            ChecksumForm::V3PseudoHeader => "v3_pseudo_header",
            ChecksumForm::V3VrrpOnly => "v3_vrrp_only",
            ChecksumForm::V3PseudoHeaderMulticastDst => "v3_pseudo_header_multicast_dst",
        }
    }
}

/// The protocol content of one advertisement, as sent or as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    /// 0 = the master is stopping; 255 = address owner.
    pub priority: u8,
    /// Advertisement interval: whole seconds in v2, centiseconds in v3.
    pub interval: Duration,
    /// The virtual addresses the sender protects.
    pub addresses: Vec<Ipv4Addr>,
}

/// A received advertisement that passed every check for this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub advert: Advert,
    /// IP source: the sender's primary address, used to break priority ties.
    pub source: Ipv4Addr,
    pub checksum: ChecksumForm,
}

/// What one instance requires of a received packet.
///
/// Built once per instance (see `Instance::expectations`) and handed to
/// [`decode`] for every packet, so the checks need no instance state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    pub version: Version,
    pub vrid: u8,
    /// Required v2 authentication; ignored for v3.
    pub auth: Auth,
    /// Local advert interval; v2 discards any other (RFC 3768 section 7.1),
    /// v3 learns the master's instead.
    pub interval: Duration,
    /// Configured virtual addresses. `Some` discards adverts whose address
    /// list differs (in any order), as keepalived does: it is the symptom of
    /// a VRID collision with another cluster, and treating the stranger as
    /// our master would silently drop our addresses. `None` skips the check
    /// (RFC 3768/5798 say only "MAY verify ... MUST continue").
    pub addresses: Option<Vec<Ipv4Addr>>,
    /// Require TTL 255. Keep on for multicast; unicast peers reached through
    /// a router arrive with a lower TTL (keepalived skips it for unicast).
    pub check_ttl: bool,
    /// v3 checksum form to try first; the others are still accepted.
    pub v3_checksum: V3Checksum,
    /// `Some`: adverts from any other IP source are discarded
    /// ([`Discard::UnknownPeer`]): a forged advert, or another cluster
    /// reusing our VRID and addresses, must not take part in our election.
    /// `None` accepts any source (keepalived's behaviour).
    pub sources: Option<Vec<Ipv4Addr>>,
}

/// Why an advert could not be encoded. Instance params are validated with
/// the same rules up front, so an instance never hits these at run time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("VRID 0 is not valid (1..=255)")]
    BadVrid,
    #[error(
        "advert interval {interval:?} cannot be sent in VRRP{version:?} \
         (v2: whole seconds 1..=255; v3: multiple of 10ms, 10ms..=40.95s)"
    )]
    BadInterval {
        version: Version,
        interval: Duration,
    },
    #[error("an advert must carry at least one address")]
    NoAddresses,
    #[error("{0} addresses do not fit in the 8-bit address count")]
    TooManyAddresses(usize),
}

/// The interval field for `version`: seconds (v2) or centiseconds (v3).
///
/// Rejects intervals the field cannot carry exactly rather than rounding:
/// a rounded interval would differ from the peer's config and, in v2, make
/// each side discard the other's adverts (split brain).
pub fn interval_field(version: Version, interval: Duration) -> Result<u16, EncodeError> {
    let bad = EncodeError::BadInterval { version, interval };
    match version {
        Version::V2 => {
            if interval.subsec_nanos() != 0 || !(1..=255).contains(&interval.as_secs()) {
                return Err(bad);
            }
            u16::try_from(interval.as_secs()).map_err(|_| bad)
        }
        Version::V3 => {
            let nanos = interval.as_nanos();
            if nanos % 10_000_000 != 0 {
                return Err(bad);
            }
            match u16::try_from(nanos / 10_000_000) {
                Ok(cs) if (1..=4095).contains(&cs) => Ok(cs),
                _ => Err(bad),
            }
        }
    }
}

fn message_len(version: Version, count: usize) -> usize {
    HEADER_LEN
        + 4 * count
        + match version {
            Version::V2 => AUTH_LEN,
            Version::V3 => 0,
        }
}

/// Encode `advert` as the IP payload of a packet from `src` to `dst`.
///
/// `src` and `dst` matter only for a v3 pseudo-header checksum; with unicast
/// peers each peer's copy has its own checksum. `auth` and `v3_checksum`
/// apply only to their version.
pub fn encode(
    advert: &Advert,
    auth: &Auth,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    v3_checksum: V3Checksum,
) -> Result<Vec<u8>, EncodeError> {
    if advert.vrid == 0 {
        return Err(EncodeError::BadVrid);
    }
    let count = advert.addresses.len();
    if count == 0 {
        return Err(EncodeError::NoAddresses);
    }
    let count_field = u8::try_from(count).map_err(|_| EncodeError::TooManyAddresses(count))?;
    let interval = interval_field(advert.version, advert.interval)?;

    let mut out = Vec::with_capacity(message_len(advert.version, count));
    out.push(advert.version.number() << 4 | TYPE_ADVERTISEMENT);
    out.push(advert.vrid);
    out.push(advert.priority);
    out.push(count_field);
    match advert.version {
        // interval_field keeps v2 within 1..=255.
        Version::V2 => out.extend_from_slice(&[auth.type_code(), interval as u8]),
        // 12 bits, reserved nibble zero.
        Version::V3 => out.extend_from_slice(&interval.to_be_bytes()),
    }
    out.extend_from_slice(&[0, 0]);
    for a in &advert.addresses {
        out.extend_from_slice(&a.octets());
    }
    let pseudo = match advert.version {
        Version::V2 => {
            out.extend_from_slice(&auth.data());
            None
        }
        Version::V3 => match v3_checksum {
            V3Checksum::PseudoHeader => Some((src, dst)),
            V3Checksum::VrrpOnly => None,
        },
    };
    let sum = checksum::compute(&out, pseudo);
    out[6..8].copy_from_slice(&sum.to_be_bytes());
    Ok(out)
}

/// The VRID of a payload, if it has a header: lets a socket shared by
/// several instances dispatch before full validation.
pub fn peek_vrid(payload: &[u8]) -> Option<u8> {
    payload
        .get(1)
        .copied()
        .filter(|_| payload.len() >= HEADER_LEN)
}

/// The priority field of a payload, if it has a header: for log lines about
/// packets that were discarded (who sent what).
pub fn peek_priority(payload: &[u8]) -> Option<u8> {
    payload
        .get(2)
        .copied()
        .filter(|_| payload.len() >= HEADER_LEN)
}

/// Validate `payload` (the IP payload of a packet from `src` to `dst`
/// received with `ttl`) against `expect`, in RFC 3768/5798 section 7.1 order
/// plus keepalived's extra checks.
pub fn decode(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    payload: &[u8],
    expect: &Expectations,
) -> Result<Received, Discard> {
    if payload.len() < HEADER_LEN {
        return Err(Discard::TooShort);
    }
    let version = match payload[0] >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        _ => return Err(Discard::BadVersion),
    };
    if version != expect.version {
        return Err(Discard::BadVersion);
    }
    if payload[0] & 0x0f != TYPE_ADVERTISEMENT {
        return Err(Discard::BadType);
    }
    let vrid = payload[1];
    if vrid != expect.vrid {
        return Err(Discard::WrongVrid);
    }
    // Before any other check: a stranger is reported as a stranger, whatever
    // else is wrong with its packet.
    if expect.sources.as_ref().is_some_and(|s| !s.contains(&src)) {
        return Err(Discard::UnknownPeer);
    }
    if expect.check_ttl && ttl != VRRP_TTL {
        return Err(Discard::BadTtl);
    }
    let priority = payload[2];
    let count = usize::from(payload[3]);
    if count == 0 {
        return Err(Discard::NoAddresses);
    }
    if payload.len() != message_len(version, count) {
        return Err(Discard::BadLength);
    }
    let checksum = verify_checksum(version, src, dst, payload, expect.v3_checksum)?;

    let interval = match version {
        Version::V2 => {
            let auth_type = payload[4];
            if auth_type != expect.auth.type_code() {
                return Err(Discard::AuthTypeMismatch);
            }
            // Auth type 0: the data field is ignored on reception (RFC 3768).
            // (No let-chains: the workspace's rust-version is 1.85.)
            if let Auth::Pass(password) = &expect.auth {
                if payload[HEADER_LEN + 4 * count..] != password[..] {
                    return Err(Discard::AuthMismatch);
                }
            }
            Duration::from_secs(u64::from(payload[5]))
        }
        Version::V3 => {
            let cs = u16::from_be_bytes([payload[4], payload[5]]) & 0x0fff;
            Duration::from_millis(u64::from(cs) * 10)
        }
    };
    if interval.is_zero() {
        return Err(Discard::BadInterval);
    }
    if version == Version::V2 && interval != expect.interval {
        return Err(Discard::IntervalMismatch);
    }

    let addresses: Vec<Ipv4Addr> = payload[HEADER_LEN..HEADER_LEN + 4 * count]
        .chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect();
    if let Some(mine) = &expect.addresses {
        if mine.len() != count {
            return Err(Discard::AddressCountMismatch);
        }
        let mut theirs = addresses.clone();
        let mut mine = mine.clone();
        theirs.sort_unstable();
        mine.sort_unstable();
        if theirs != mine {
            return Err(Discard::AddressListMismatch);
        }
    }

    Ok(Received {
        advert: Advert {
            version,
            vrid,
            priority,
            interval,
            addresses,
        },
        source: src,
        checksum,
    })
}

fn verify_checksum(
    version: Version,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload: &[u8],
    preferred: V3Checksum,
) -> Result<ChecksumForm, Discard> {
    let candidates: &[ChecksumForm] = match (version, preferred) {
        (Version::V2, _) => &[ChecksumForm::V2],
        (Version::V3, V3Checksum::PseudoHeader) => &[
            ChecksumForm::V3PseudoHeader,
            ChecksumForm::V3VrrpOnly,
            ChecksumForm::V3PseudoHeaderMulticastDst,
        ],
        (Version::V3, V3Checksum::VrrpOnly) => &[
            ChecksumForm::V3VrrpOnly,
            ChecksumForm::V3PseudoHeader,
            ChecksumForm::V3PseudoHeaderMulticastDst,
        ],
    };
    candidates
        .iter()
        .copied()
        .find(|form| {
            let pseudo = match form {
                ChecksumForm::V2 | ChecksumForm::V3VrrpOnly => None,
                ChecksumForm::V3PseudoHeader => Some((src, dst)),
                ChecksumForm::V3PseudoHeaderMulticastDst => Some((src, VRRP_MULTICAST_V4)),
            };
            checksum::verifies(payload, pseudo)
        })
        .ok_or(Discard::BadChecksum)
}

#[cfg(test)]
mod tests;
