//! Errors the runtime binary sees from `bind` / `reload`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a config could not be (re)applied. The previous config keeps serving
/// whenever one of these is returned from `reload`.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("invalid proxy config: {0}")]
    Invalid(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open access log {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no tokio runtime: {0}")]
    Runtime(String),
}
