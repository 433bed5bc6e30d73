//! One client connection's addresses and accept time, for both protocols
//! (routing by the address reached, the log's remote address). The timers
//! of an HTTP/2 connection are `h2::timers`; the HTTP/1 engine keeps its
//! own (`h1::server`).

use std::net::SocketAddr;
use std::time::Instant;

#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    /// The configured listen address that accepted the connection.
    pub listen: SocketAddr,
    /// The local address the client connected to (differs from `listen`
    /// on a wildcard listener).
    pub local: SocketAddr,
    /// When the connection was accepted.
    pub started: Instant,
}

impl ConnInfo {
    pub(crate) fn new(peer: SocketAddr, listen: SocketAddr, local: SocketAddr) -> ConnInfo {
        ConnInfo {
            peer,
            listen,
            local,
            started: Instant::now(),
        }
    }
}
