//! Feed arbitrary bytes to `decode`: it must never panic, and whatever it
//! accepts must survive an encode/decode round trip unchanged.
//!
//! Input layout: src (4) | dst (4) | ttl (1) | selector (1) | payload.
//! The selector picks version, VRID and auth so every check is reachable.
#![no_main]

use std::net::Ipv4Addr;
use std::time::Duration;

use hadeploy_vrrp::{Auth, Expectations, V3Checksum, Version, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, payload)) = data.split_at_checked(10) else {
        return;
    };
    let src = Ipv4Addr::new(head[0], head[1], head[2], head[3]);
    let dst = Ipv4Addr::new(head[4], head[5], head[6], head[7]);
    let ttl = head[8];
    let sel = head[9];
    let version = if sel & 1 == 0 { Version::V2 } else { Version::V3 };
    let expect = Expectations {
        version,
        // Take the VRID from the payload half the time so decode goes deep.
        vrid: if sel & 2 == 0 { 51 } else { payload.get(1).copied().filter(|&v| v != 0).unwrap_or(1) },
        auth: if sel & 4 == 0 { Auth::None } else { Auth::pass(b"secret") },
        interval: Duration::from_secs(1),
        addresses: None,
        check_ttl: sel & 8 == 0,
        v3_checksum: if sel & 16 == 0 {
            V3Checksum::PseudoHeader
        } else {
            V3Checksum::VrrpOnly
        },
    };
    if let Ok(rx) = decode(src, dst, ttl, payload, &expect) {
        let bytes = encode(&rx.advert, &expect.auth, src, dst, V3Checksum::VrrpOnly)
            .expect("a decoded advert must be encodable");
        let again = decode(src, dst, 255, &bytes, &expect).expect("re-encoded advert must decode");
        assert_eq!(again.advert, rx.advert);
    }
});
