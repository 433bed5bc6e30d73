use super::*;

const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 100);

/// RFC 3768 layout by hand: VRID 51, priority 100, 1 address, auth 0,
/// interval 1 s, checksum b8bd (summed by hand: 2133+6401+0001+c0a8+0164
/// = 14741, folded 4742, complemented b8bd), 192.168.1.100, 8 zero bytes.
const V2_NO_AUTH: [u8; 20] = [
    0x21, 0x33, 0x64, 0x01, 0x00, 0x01, 0xb8, 0xbd, 192, 168, 1, 100, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// VRID 1, priority 150, 2 addresses, PASS "secret", interval 1 s,
/// checksum f7ab (sum 20852, folded 0854, complemented f7ab).
const V2_PASS: [u8; 24] = [
    0x21, 0x01, 0x96, 0x02, 0x01, 0x01, 0xf7, 0xab, 10, 0, 0, 1, 10, 0, 0, 2, b's', b'e', b'c',
    b'r', b'e', b't', 0, 0,
];

/// RFC 5798 layout: VRID 51, priority 100, 1 address, max adver int 100 cs,
/// checksum over the message only: 3133+6401+0064+c0a8+0164 = 157a4,
/// folded 57a5, complemented a85a.
const V3_VRRP_ONLY: [u8; 12] = [
    0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0xa8, 0x5a, 192, 168, 1, 100,
];

/// Same message with the pseudo-header of 192.168.1.10 -> 224.0.0.18:
/// c0a8+010a+e000+0012+0070+000c = 1a240, plus 157a4 = 2f9e4, folded f9e6,
/// complemented 0619.
const V3_PSEUDO: [u8; 12] = [
    0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0x06, 0x19, 192, 168, 1, 100,
];

fn expect(version: Version, vrid: u8) -> Expectations {
    Expectations {
        version,
        vrid,
        auth: Auth::None,
        interval: Duration::from_secs(1),
        addresses: None,
        check_ttl: true,
        v3_checksum: V3Checksum::PseudoHeader,
        sources: None,
    }
}

fn advert(version: Version, vrid: u8, priority: u8, addresses: &[Ipv4Addr]) -> Advert {
    Advert {
        version,
        vrid,
        priority,
        interval: Duration::from_secs(1),
        addresses: addresses.to_vec(),
    }
}

/// Independent RFC 1071 checksum: builds the pseudo-header as bytes and
/// sums it with the message, sharing no code with `checksum.rs`.
fn reference_checksum(msg: &[u8], pseudo: Option<(Ipv4Addr, Ipv4Addr)>) -> u16 {
    let mut bytes = Vec::new();
    if let Some((s, d)) = pseudo {
        bytes.extend_from_slice(&s.octets());
        bytes.extend_from_slice(&d.octets());
        bytes.extend_from_slice(&[0, 112]);
        bytes.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    }
    bytes.extend_from_slice(msg);
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u32 = 0;
    for w in bytes.chunks(2) {
        sum += (u32::from(w[0]) << 8) | u32::from(w[1]);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Rewrite the checksum after a test edits a field, so the check under test
/// is the one that fires.
fn refresh_checksum(pkt: &mut [u8], pseudo: Option<(Ipv4Addr, Ipv4Addr)>) {
    pkt[6] = 0;
    pkt[7] = 0;
    let c = reference_checksum(pkt, pseudo);
    pkt[6..8].copy_from_slice(&c.to_be_bytes());
}

fn dec(pkt: &[u8], e: &Expectations) -> Result<Received, Discard> {
    decode(SRC, VRRP_MULTICAST_V4, 255, pkt, e)
}

// ---- known-good vectors ----

#[test]
fn encode_v2_matches_hand_vector() {
    let a = advert(Version::V2, 51, 100, &[VIP]);
    let bytes = encode(
        &a,
        &Auth::None,
        SRC,
        VRRP_MULTICAST_V4,
        V3Checksum::PseudoHeader,
    );
    assert_eq!(bytes.unwrap(), V2_NO_AUTH);
}

#[test]
fn encode_v2_pass_matches_hand_vector() {
    let a = advert(
        Version::V2,
        1,
        150,
        &[Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)],
    );
    let bytes = encode(
        &a,
        &Auth::pass(b"secret"),
        SRC,
        VRRP_MULTICAST_V4,
        V3Checksum::VrrpOnly,
    );
    assert_eq!(bytes.unwrap(), V2_PASS);
}

#[test]
fn encode_v3_both_checksum_forms_match_hand_vectors() {
    let a = advert(Version::V3, 51, 100, &[VIP]);
    let only = encode(
        &a,
        &Auth::None,
        SRC,
        VRRP_MULTICAST_V4,
        V3Checksum::VrrpOnly,
    )
    .unwrap();
    assert_eq!(only, V3_VRRP_ONLY);
    let pseudo = encode(
        &a,
        &Auth::None,
        SRC,
        VRRP_MULTICAST_V4,
        V3Checksum::PseudoHeader,
    )
    .unwrap();
    assert_eq!(pseudo, V3_PSEUDO);
}

#[test]
fn hand_vectors_agree_with_reference_checksum() {
    // Guards the hand arithmetic in the constants above.
    let mut v = V2_NO_AUTH;
    refresh_checksum(&mut v, None);
    assert_eq!(v, V2_NO_AUTH);
    let mut v = V2_PASS;
    refresh_checksum(&mut v, None);
    assert_eq!(v, V2_PASS);
    let mut v = V3_VRRP_ONLY;
    refresh_checksum(&mut v, None);
    assert_eq!(v, V3_VRRP_ONLY);
    let mut v = V3_PSEUDO;
    refresh_checksum(&mut v, Some((SRC, VRRP_MULTICAST_V4)));
    assert_eq!(v, V3_PSEUDO);
}

#[test]
fn v3_pseudo_header_checksum_matches_reference_for_unicast() {
    // Many addresses and a unicast destination: the pseudo-header length and
    // destination both change the sum.
    let dst = Ipv4Addr::new(10, 1, 2, 3);
    let addrs: Vec<Ipv4Addr> = (1..=7).map(|i| Ipv4Addr::new(10, 9, 8, i)).collect();
    let mut a = advert(Version::V3, 200, 254, &addrs);
    a.interval = Duration::from_millis(4090);
    let bytes = encode(&a, &Auth::None, SRC, dst, V3Checksum::PseudoHeader).unwrap();
    let mut zeroed = bytes.clone();
    zeroed[6] = 0;
    zeroed[7] = 0;
    let stored = u16::from_be_bytes([bytes[6], bytes[7]]);
    assert_eq!(stored, reference_checksum(&zeroed, Some((SRC, dst))));
    assert_ne!(stored, reference_checksum(&zeroed, None));
}

#[test]
fn decode_v2_vectors() {
    let r = dec(&V2_NO_AUTH, &expect(Version::V2, 51)).unwrap();
    assert_eq!(r.advert, advert(Version::V2, 51, 100, &[VIP]));
    assert_eq!(r.source, SRC);
    assert_eq!(r.checksum, ChecksumForm::V2);

    let mut e = expect(Version::V2, 1);
    e.auth = Auth::pass(b"secret");
    let r = dec(&V2_PASS, &e).unwrap();
    assert_eq!(r.advert.priority, 150);
    assert_eq!(
        r.advert.addresses,
        [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]
    );
}

#[test]
fn decode_v3_accepts_either_checksum_form_and_reports_it() {
    for preferred in [V3Checksum::PseudoHeader, V3Checksum::VrrpOnly] {
        let mut e = expect(Version::V3, 51);
        e.v3_checksum = preferred;
        let r = dec(&V3_PSEUDO, &e).unwrap();
        assert_eq!(r.checksum, ChecksumForm::V3PseudoHeader);
        assert_eq!(r.advert.interval, Duration::from_secs(1));
        let r = dec(&V3_VRRP_ONLY, &e).unwrap();
        assert_eq!(r.checksum, ChecksumForm::V3VrrpOnly);
        assert_eq!(r.advert, advert(Version::V3, 51, 100, &[VIP]));
    }
}

#[test]
fn decode_v3_accepts_old_keepalived_multicast_pseudo_header_on_unicast() {
    // keepalived <= 1.3.6 summed 224.0.0.18 into the pseudo-header of a
    // unicast packet.
    let unicast_dst = Ipv4Addr::new(192, 168, 1, 11);
    let e = expect(Version::V3, 51);
    let r = decode(SRC, unicast_dst, 255, &V3_PSEUDO, &e).unwrap();
    assert_eq!(r.checksum, ChecksumForm::V3PseudoHeaderMulticastDst);
    // The same bytes with the real pseudo-header computed verify normally.
    let a = advert(Version::V3, 51, 100, &[VIP]);
    let bytes = encode(&a, &Auth::None, SRC, unicast_dst, V3Checksum::PseudoHeader).unwrap();
    let r = decode(SRC, unicast_dst, 255, &bytes, &e).unwrap();
    assert_eq!(r.checksum, ChecksumForm::V3PseudoHeader);
}

#[test]
fn roundtrip_all_versions_and_forms() {
    let addrs = [VIP, Ipv4Addr::new(192, 168, 1, 101)];
    for (version, interval) in [
        (Version::V2, Duration::from_secs(255)),
        (Version::V3, Duration::from_millis(10)),
        (Version::V3, Duration::from_millis(40950)),
    ] {
        for form in [V3Checksum::PseudoHeader, V3Checksum::VrrpOnly] {
            for priority in [0, 1, 254, 255] {
                let mut a = advert(version, 255, priority, &addrs);
                a.interval = interval;
                let bytes = encode(&a, &Auth::None, SRC, VRRP_MULTICAST_V4, form).unwrap();
                let mut e = expect(version, 255);
                e.interval = interval;
                e.addresses = Some(addrs.to_vec());
                assert_eq!(dec(&bytes, &e).unwrap().advert, a, "{version:?} {form:?}");
            }
        }
    }
}

#[test]
fn v3_reserved_bits_are_ignored_on_receive() {
    let mut pkt = V3_VRRP_ONLY;
    pkt[4] |= 0xf0;
    refresh_checksum(&mut pkt, None);
    let r = dec(&pkt, &expect(Version::V3, 51)).unwrap();
    assert_eq!(r.advert.interval, Duration::from_secs(1));
}

// ---- every discard reason ----

#[test]
fn too_short() {
    assert_eq!(
        dec(&V2_NO_AUTH[..7], &expect(Version::V2, 51)),
        Err(Discard::TooShort)
    );
    assert_eq!(dec(&[], &expect(Version::V2, 51)), Err(Discard::TooShort));
}

#[test]
fn bad_version() {
    assert_eq!(
        dec(&V3_PSEUDO, &expect(Version::V2, 51)),
        Err(Discard::BadVersion)
    );
    assert_eq!(
        dec(&V2_NO_AUTH, &expect(Version::V3, 51)),
        Err(Discard::BadVersion)
    );
    let mut pkt = V2_NO_AUTH;
    pkt[0] = 0x41;
    refresh_checksum(&mut pkt, None);
    assert_eq!(
        dec(&pkt, &expect(Version::V2, 51)),
        Err(Discard::BadVersion)
    );
}

#[test]
fn bad_type() {
    let mut pkt = V2_NO_AUTH;
    pkt[0] = 0x22;
    refresh_checksum(&mut pkt, None);
    assert_eq!(dec(&pkt, &expect(Version::V2, 51)), Err(Discard::BadType));
}

#[test]
fn wrong_vrid() {
    assert_eq!(
        dec(&V2_NO_AUTH, &expect(Version::V2, 52)),
        Err(Discard::WrongVrid)
    );
}

#[test]
fn unknown_source_is_discarded_before_other_checks() {
    let mut e = expect(Version::V2, 51);
    e.sources = Some(vec![Ipv4Addr::new(192, 168, 1, 11)]);
    assert_eq!(dec(&V2_NO_AUTH, &e), Err(Discard::UnknownPeer));
    // Even with a wrong TTL and checksum: the stranger is named as such.
    let mut bad = V2_NO_AUTH;
    bad[6] ^= 0xff;
    let r = decode(SRC, VRRP_MULTICAST_V4, 64, &bad, &e);
    assert_eq!(r, Err(Discard::UnknownPeer));
    // Another VRID is still only "not ours".
    e.vrid = 52;
    assert_eq!(dec(&V2_NO_AUTH, &e), Err(Discard::WrongVrid));
    e.vrid = 51;
    e.sources = Some(vec![Ipv4Addr::new(192, 168, 1, 11), SRC]);
    assert!(dec(&V2_NO_AUTH, &e).is_ok());
    e.sources = Some(vec![]);
    assert_eq!(dec(&V2_NO_AUTH, &e), Err(Discard::UnknownPeer));
}

#[test]
fn ttl_must_be_255_unless_unchecked() {
    let mut e = expect(Version::V2, 51);
    let r = decode(SRC, VRRP_MULTICAST_V4, 254, &V2_NO_AUTH, &e);
    assert_eq!(r, Err(Discard::BadTtl));
    e.check_ttl = false;
    assert!(decode(SRC, VRRP_MULTICAST_V4, 64, &V2_NO_AUTH, &e).is_ok());
}

#[test]
fn no_addresses() {
    let pkt = [0x31, 0x33, 0x64, 0x00, 0x00, 0x64, 0, 0];
    let mut pkt = pkt.to_vec();
    refresh_checksum(&mut pkt, None);
    assert_eq!(
        dec(&pkt, &expect(Version::V3, 51)),
        Err(Discard::NoAddresses)
    );
}

#[test]
fn bad_length_truncated_or_extended() {
    let e = expect(Version::V2, 51);
    assert_eq!(dec(&V2_NO_AUTH[..19], &e), Err(Discard::BadLength));
    assert_eq!(dec(&V2_NO_AUTH[..12], &e), Err(Discard::BadLength));
    let mut long = V2_NO_AUTH.to_vec();
    long.extend_from_slice(&[0, 0]);
    assert_eq!(dec(&long, &e), Err(Discard::BadLength));
    // Count says 2 but only one address present.
    let mut pkt = V3_VRRP_ONLY;
    pkt[3] = 2;
    assert_eq!(dec(&pkt, &expect(Version::V3, 51)), Err(Discard::BadLength));
}

#[test]
fn bad_checksum() {
    let mut pkt = V2_NO_AUTH;
    pkt[11] ^= 0x01;
    assert_eq!(
        dec(&pkt, &expect(Version::V2, 51)),
        Err(Discard::BadChecksum)
    );
    // v3 packet whose pseudo-header names another source fails both forms.
    let r = decode(
        Ipv4Addr::new(192, 168, 1, 99),
        VRRP_MULTICAST_V4,
        255,
        &V3_PSEUDO,
        &expect(Version::V3, 51),
    );
    assert_eq!(r, Err(Discard::BadChecksum));
}

#[test]
fn auth_type_mismatch_both_ways() {
    let mut e = expect(Version::V2, 1);
    assert_eq!(dec(&V2_PASS, &e), Err(Discard::AuthTypeMismatch));
    e.auth = Auth::pass(b"secret");
    let mut pkt = V2_NO_AUTH;
    pkt[1] = 1;
    refresh_checksum(&mut pkt, None);
    assert_eq!(dec(&pkt, &e), Err(Discard::AuthTypeMismatch));
}

#[test]
fn auth_password_mismatch() {
    let mut e = expect(Version::V2, 1);
    e.auth = Auth::pass(b"secreT");
    assert_eq!(dec(&V2_PASS, &e), Err(Discard::AuthMismatch));
    e.auth = Auth::pass(b"secret\0\x01");
    assert_eq!(dec(&V2_PASS, &e), Err(Discard::AuthMismatch));
}

#[test]
fn auth_none_ignores_auth_data() {
    let mut pkt = V2_NO_AUTH;
    pkt[19] = 0x55;
    refresh_checksum(&mut pkt, None);
    assert!(dec(&pkt, &expect(Version::V2, 51)).is_ok());
}

#[test]
fn v2_interval_mismatch_is_discarded_v3_is_learned() {
    let mut e = expect(Version::V2, 51);
    e.interval = Duration::from_secs(2);
    assert_eq!(dec(&V2_NO_AUTH, &e), Err(Discard::IntervalMismatch));
    let mut e = expect(Version::V3, 51);
    e.interval = Duration::from_millis(100);
    assert_eq!(
        dec(&V3_PSEUDO, &e).unwrap().advert.interval,
        Duration::from_secs(1)
    );
}

#[test]
fn zero_interval_is_discarded() {
    let mut pkt = V3_VRRP_ONLY;
    pkt[5] = 0;
    refresh_checksum(&mut pkt, None);
    assert_eq!(
        dec(&pkt, &expect(Version::V3, 51)),
        Err(Discard::BadInterval)
    );
    let mut pkt = V2_NO_AUTH;
    pkt[5] = 0;
    refresh_checksum(&mut pkt, None);
    assert_eq!(
        dec(&pkt, &expect(Version::V2, 51)),
        Err(Discard::BadInterval)
    );
}

#[test]
fn address_checks() {
    let a = advert(Version::V3, 9, 100, &[VIP, Ipv4Addr::new(192, 168, 1, 101)]);
    let pkt = encode(
        &a,
        &Auth::None,
        SRC,
        VRRP_MULTICAST_V4,
        V3Checksum::VrrpOnly,
    )
    .unwrap();
    let mut e = expect(Version::V3, 9);

    e.addresses = Some(vec![Ipv4Addr::new(192, 168, 1, 101), VIP]);
    assert!(dec(&pkt, &e).is_ok(), "order must not matter");
    e.addresses = Some(vec![VIP]);
    assert_eq!(dec(&pkt, &e), Err(Discard::AddressCountMismatch));
    e.addresses = Some(vec![VIP, Ipv4Addr::new(192, 168, 1, 102)]);
    assert_eq!(dec(&pkt, &e), Err(Discard::AddressListMismatch));
    e.addresses = None;
    assert!(dec(&pkt, &e).is_ok());
}

// ---- encode errors and helpers ----

#[test]
fn encode_rejects_what_the_wire_cannot_carry() {
    let enc = |a: &Advert| encode(a, &Auth::None, SRC, VRRP_MULTICAST_V4, V3Checksum::VrrpOnly);
    assert_eq!(
        enc(&advert(Version::V2, 0, 100, &[VIP])),
        Err(EncodeError::BadVrid)
    );
    assert_eq!(
        enc(&advert(Version::V2, 1, 100, &[])),
        Err(EncodeError::NoAddresses)
    );
    let many = vec![VIP; 256];
    assert_eq!(
        enc(&advert(Version::V3, 1, 100, &many)),
        Err(EncodeError::TooManyAddresses(256))
    );
    let mut a = advert(Version::V2, 1, 100, &[VIP]);
    a.interval = Duration::from_millis(1500);
    assert!(matches!(enc(&a), Err(EncodeError::BadInterval { .. })));
}

#[test]
fn interval_field_limits() {
    let ms = Duration::from_millis;
    assert_eq!(interval_field(Version::V2, ms(1000)), Ok(1));
    assert_eq!(interval_field(Version::V2, ms(255_000)), Ok(255));
    assert!(interval_field(Version::V2, ms(0)).is_err());
    assert!(interval_field(Version::V2, ms(256_000)).is_err());
    assert!(interval_field(Version::V2, ms(1500)).is_err());
    assert_eq!(interval_field(Version::V3, ms(10)), Ok(1));
    assert_eq!(interval_field(Version::V3, ms(100)), Ok(10));
    assert_eq!(interval_field(Version::V3, ms(40_950)), Ok(4095));
    assert!(interval_field(Version::V3, ms(40_960)).is_err());
    assert!(interval_field(Version::V3, ms(5)).is_err());
    assert!(interval_field(Version::V3, ms(0)).is_err());
    assert!(interval_field(Version::V3, Duration::from_nanos(10_000_001)).is_err());
}

#[test]
fn peek_vrid_needs_a_header() {
    assert_eq!(peek_vrid(&V2_NO_AUTH), Some(51));
    assert_eq!(peek_vrid(&V2_NO_AUTH[..7]), None);
    assert_eq!(peek_priority(&V2_NO_AUTH), Some(100));
    assert_eq!(peek_priority(&V2_NO_AUTH[..7]), None);
}

#[test]
fn expectations_debug_hides_password() {
    let mut e = expect(Version::V2, 1);
    e.auth = Auth::pass(b"hunter2");
    assert!(!format!("{e:?}").contains("hunter2"));
}

#[test]
fn labels() {
    assert_eq!(ChecksumForm::V3PseudoHeader.as_str(), "v3_pseudo_header");
    assert_eq!(Discard::BadTtl.as_str(), "bad_ttl");
}

// ---- vectors checked by an independent dissector ----

/// Encoded by this crate, then written into pcap files (IPv4 src
/// 192.168.1.10, TTL 255) and dissected by TShark 4.0.17 (Debian 12):
/// every checksum reported `[Checksum Status: Good]`, the pseudo-header
/// ones by default and the VRRP-only ones with
/// `-o vrrp.v3_checksum_as_in_v2:TRUE` (and each as Bad the other way),
/// matching what vrrp.md records for keepalived's packets.
const TSHARK_GOOD: [(&str, Version, u64, bool, V3Checksum, Ipv4Addr, &str); 6] = [
    (
        "v2 none",
        Version::V2,
        1000,
        false,
        V3Checksum::PseudoHeader,
        VRRP_MULTICAST_V4,
        "213364050001b2520a141e010a141e020a141e030a141e040a141e050000000000000000",
    ),
    (
        "v2 pass",
        Version::V2,
        3000,
        true,
        V3Checksum::PseudoHeader,
        VRRP_MULTICAST_V4,
        "21336405010375040a141e010a141e020a141e030a141e040a141e057365637265740000",
    ),
    (
        "v3 pseudo multicast",
        Version::V3,
        100,
        false,
        V3Checksum::PseudoHeader,
        VRRP_MULTICAST_V4,
        "31336405000afff70a141e010a141e020a141e030a141e040a141e05",
    ),
    (
        "v3 pseudo unicast",
        Version::V3,
        40950,
        false,
        V3Checksum::PseudoHeader,
        Ipv4Addr::new(192, 168, 1, 11),
        "313364050fff0e620a141e010a141e020a141e030a141e040a141e05",
    ),
    (
        "v3 vrrp-only multicast",
        Version::V3,
        100,
        false,
        V3Checksum::VrrpOnly,
        VRRP_MULTICAST_V4,
        "31336405000aa2490a141e010a141e020a141e030a141e040a141e05",
    ),
    (
        "v3 vrrp-only unicast",
        Version::V3,
        1000,
        false,
        V3Checksum::VrrpOnly,
        Ipv4Addr::new(192, 168, 1, 11),
        "313364050064a1ef0a141e010a141e020a141e030a141e040a141e05",
    ),
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn tshark_verified_vectors_encode_and_decode() {
    let addrs: Vec<Ipv4Addr> = (1..=5).map(|i| Ipv4Addr::new(10, 20, 30, i)).collect();
    for (name, version, interval_ms, pass, form, dst, hex) in TSHARK_GOOD {
        let auth = if pass {
            Auth::pass(b"secret")
        } else {
            Auth::None
        };
        let mut a = advert(version, 51, 100, &addrs);
        a.interval = Duration::from_millis(interval_ms);
        let bytes = unhex(hex);
        assert_eq!(encode(&a, &auth, SRC, dst, form).unwrap(), bytes, "{name}");

        let mut e = expect(version, 51);
        e.auth = auth;
        e.interval = a.interval;
        e.addresses = Some(addrs.clone());
        let r = decode(SRC, dst, 255, &bytes, &e).unwrap();
        assert_eq!(r.advert, a, "{name}");
        let want = match (version, form) {
            (Version::V2, _) => ChecksumForm::V2,
            (Version::V3, V3Checksum::PseudoHeader) => ChecksumForm::V3PseudoHeader,
            (Version::V3, V3Checksum::VrrpOnly) => ChecksumForm::V3VrrpOnly,
        };
        assert_eq!(r.checksum, want, "{name}");
    }
}
