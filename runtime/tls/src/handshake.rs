//! The proxy's side of a TLS handshake: read the ClientHello, pick the
//! site's config by SNI, finish the handshake within the listener's
//! timeout, and say what was negotiated (for the access log's
//! `$ssl_protocol` / `$ssl_cipher`, the h2-or-http/1.1 choice, the 421
//! check on reused HTTP/2 connections, and the client subject header).

use std::io;
use std::time::Duration;

use rustls::server::Acceptor;
use rustls::{CipherSuite, HandshakeKind, ProtocolVersion, ServerConnection};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::server::ListenerTls;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    H2,
    Http11,
    /// The client offered no ALPN: HTTP/1.1.
    None,
}

/// What a finished handshake negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// OpenSSL's spelling, as nginx logs it: `TLSv1.3`.
    pub protocol: &'static str,
    /// OpenSSL's suite name, as nginx logs it: `TLS_AES_256_GCM_SHA384`,
    /// `ECDHE-ECDSA-AES128-GCM-SHA256`.
    pub cipher: &'static str,
    pub alpn: Alpn,
    /// The SNI the client sent, lower-cased.
    pub sni: Option<String>,
    /// The store's index of the site that served the handshake: a request
    /// on this connection for a host of another site gets 421.
    pub site: usize,
    pub resumed: bool,
    /// The verified client certificate's subject (RFC 4514, like nginx's
    /// `$ssl_client_s_dn`), when the site asks for one and got one.
    pub client_subject: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake not finished within {0:?}")]
    Timeout(Duration),
    /// No site for this SNI on the listener (or no SNI and no default
    /// site, or a default that refuses unknown names): refused with an
    /// alert, like nginx's `ssl_reject_handshake`.
    #[error("TLS handshake refused: no site for server name {}", sni.as_deref().unwrap_or("(none)"))]
    UnknownName { sni: Option<String> },
    /// Includes the TLS alerts rustls sent or received.
    #[error("TLS handshake failed: {0}")]
    Io(#[from] io::Error),
}

/// Accepts one TLS connection on `io` for `listener`, within its
/// handshake timeout.
pub async fn accept<IO>(
    io: IO,
    listener: &ListenerTls,
) -> Result<(TlsStream<IO>, Negotiated), HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let limit = listener.handshake_timeout;
    tokio::time::timeout(limit, handshake(io, listener))
        .await
        .map_err(|_| HandshakeError::Timeout(limit))?
}

async fn handshake<IO>(
    io: IO,
    listener: &ListenerTls,
) -> Result<(TlsStream<IO>, Negotiated), HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let start = LazyConfigAcceptor::new(Acceptor::default(), io).await?;
    let hello = start.client_hello();
    let sni = hello.server_name().map(str::to_ascii_lowercase);
    let Some(site) = listener.resolver.site_for(sni.as_deref()) else {
        // Any of the listener's configs: its resolver finds no certificate
        // either, so rustls sends the alert and fails the handshake.
        let _ = start.into_stream(listener.configs[0].clone()).await;
        return Err(HandshakeError::UnknownName { sni });
    };
    let stream = start.into_stream(listener.configs[site].clone()).await?;
    let negotiated = negotiated(stream.get_ref().1, sni, listener.store_index[site]);
    Ok((stream, negotiated))
}

fn negotiated(conn: &ServerConnection, sni: Option<String>, site: usize) -> Negotiated {
    Negotiated {
        protocol: match conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "-",
        },
        cipher: conn
            .negotiated_cipher_suite()
            .map_or("-", |s| openssl_name(s.suite())),
        alpn: match conn.alpn_protocol() {
            Some(b"h2") => Alpn::H2,
            Some(_) => Alpn::Http11,
            None => Alpn::None,
        },
        sni,
        site,
        resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
        client_subject: conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|leaf| X509Certificate::from_der(leaf).ok())
            .map(|(_, c)| rfc4514(&c)),
    }
}

/// nginx logs OpenSSL's names; these are every suite rustls's ring
/// provider offers.
fn openssl_name(s: CipherSuite) -> &'static str {
    match s {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "-",
    }
}

/// RFC 4514 string of the subject: RDNs last to first, `,`-separated
/// (what nginx's `$ssl_client_s_dn` prints since 1.11.6).
pub fn rfc4514(cert: &X509Certificate<'_>) -> String {
    let rdns: Vec<String> = cert
        .subject()
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    let key = short_name(&oid).map_or(oid.clone(), str::to_string);
                    let value = atv.as_str().map_or_else(|_| "#".to_string(), escape);
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// OpenSSL's short names for the usual attributes (RFC 4514 3 lists
/// CN, L, ST, O, OU, C, STREET, DC, UID; OpenSSL adds emailAddress).
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// RFC 4514 2.4 escaping; control characters become `\XX` too, so the
/// value is safe in a header.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i + 1 == v.chars().count() && c == ' ');
        if c.is_control() {
            out.push_str(&format!("\\{:02X}", c as u32));
        } else {
            if special {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}
