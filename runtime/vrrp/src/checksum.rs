//! The Internet checksum (RFC 1071) as VRRP uses it.
//!
//! Kept apart from the codec because VRRPv3 over IPv4 has two incompatible
//! checksum forms in the field (see [`V3Checksum`](crate::V3Checksum)) and
//! the receiver tries several pseudo-headers; each try is one call here.

use std::net::Ipv4Addr;

use crate::packet::IPPROTO_VRRP;

/// Ones'-complement sum of 16-bit big-endian words, not yet folded.
///
/// A `u64` accumulator cannot overflow for any buffer this crate sees
/// (VRRP messages are at most a few kilobytes).
fn sum_words(mut acc: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(2);
    for pair in &mut chunks {
        acc += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // The loop leaves at most 16 significant bits.
    acc as u16
}

/// Sum of the IPv4 pseudo-header (src, dst, zero, protocol 112, length).
fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, vrrp_len: usize) -> u64 {
    let mut acc = sum_words(0, &src.octets());
    acc = sum_words(acc, &dst.octets());
    acc += u64::from(IPPROTO_VRRP);
    acc + vrrp_len as u64
}

/// The checksum to store in a message whose checksum field is zero.
///
/// With `pseudo` set, the IPv4 pseudo-header of (src, dst) is included, as
/// keepalived 2.x does for VRRPv3 by default.
pub(crate) fn compute(message: &[u8], pseudo: Option<(Ipv4Addr, Ipv4Addr)>) -> u16 {
    let start = match pseudo {
        Some((src, dst)) => pseudo_header_sum(src, dst, message.len()),
        None => 0,
    };
    !fold(sum_words(start, message))
}

/// Whether a received message (checksum field included) verifies.
pub(crate) fn verifies(message: &[u8], pseudo: Option<(Ipv4Addr, Ipv4Addr)>) -> bool {
    compute(message, pseudo) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2
        // (folded), so the checksum is its complement 220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_words(0, &data)), 0xddf2);
        assert_eq!(compute(&data, None), 0x220d);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(compute(&[0x12], None), !0x1200);
        assert_eq!(compute(&[0x12, 0x00], None), compute(&[0x12], None));
    }

    #[test]
    fn stored_checksum_verifies_and_corruption_does_not() {
        let mut msg = vec![0x31, 0x2a, 0x64, 0x01, 0x00, 0x64, 0x00, 0x00, 10, 0, 0, 1];
        let pseudo = Some((Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(224, 0, 0, 18)));
        let c = compute(&msg, pseudo);
        msg[6..8].copy_from_slice(&c.to_be_bytes());
        assert!(verifies(&msg, pseudo));
        assert!(!verifies(&msg, None));
        msg[2] ^= 0x01;
        assert!(!verifies(&msg, pseudo));
    }
}
