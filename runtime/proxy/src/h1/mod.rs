//! HTTP/1.1 on both sides of the proxy, written for it rather than taken
//! from hyper: heads are parsed with httparse and forwarded by copying
//! header lines, bodies are split off the read buffers without copying, and
//! one task drives a client connection and its upstream exchange: `server`
//! is the side facing clients, `client` the side facing upstreams, `head`
//! parses into the shared model (`crate::message`). HTTP/2 clients are
//! served by hyper (`crate::h2`) on top of the same pieces.

pub(crate) mod body;
pub(crate) mod client;
pub(crate) mod framing;
pub(crate) mod head;
pub(crate) mod server;
pub(crate) mod write;
