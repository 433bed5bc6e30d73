//! Why a TLS configuration could not be loaded. Each variant names the
//! YAML path of the field at fault and, where there is one, the file.

use std::path::PathBuf;

use crate::pem::PemError;
use crate::tickets::TicketKeyError;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {error}")]
    Pem { path: String, error: PemError },
    #[error("{path}: {}: {error}", file.display())]
    Certificate {
        path: String,
        file: PathBuf,
        error: rustls::Error,
    },
    #[error("{path}: at least one certificate is required")]
    NoCertificate { path: String },
    #[error("{path}: {error}")]
    TicketKeys { path: String, error: TicketKeyError },
    #[error("{path}: {}: {message}", file.display())]
    Roots {
        path: String,
        file: PathBuf,
        message: String,
    },
    #[error("{path}: no CA certificates found in the system store ({message}); set ca_file")]
    SystemRoots { path: String, message: String },
    #[error("{path}: {message}")]
    Verifier { path: String, message: String },
    #[error("server name `{name}` is served by both {first} and {second} on one listener")]
    DuplicateName {
        name: String,
        first: String,
        second: String,
    },
    #[error("a listener needs at least one TLS site")]
    EmptyListener,
    #[error("the default site is not one of the listener's sites")]
    NoSuchDefault,
    #[error("site index {0} is not in the store")]
    NoSuchSite(usize),
    #[error("cannot build the TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}
