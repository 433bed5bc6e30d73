//! nginx's static module: `root` + `index` list, conditional GETs, a single
//! byte range, no directory listing.

use std::io::SeekFrom;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::io::AsyncSeekExt;

use crate::body::{FileBody, ProxyBody, empty};
use crate::message::{HeaderList, names};
use crate::{router, uri};

/// nginx's ETag: hex mtime seconds and hex size.
fn etag(mtime: u64, len: u64) -> String {
    format!("\"{mtime:x}-{len:x}\"")
}

fn etag_matches(list: &str, tag: &str) -> bool {
    let bare = tag.trim_start_matches("W/");
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == bare)
}

/// What a static request produced; `Err` statuses are "generated" errors
/// that the site's error pages may replace.
pub(crate) type StaticResult = Result<Response<ProxyBody>, StatusCode>;

pub(crate) struct StaticRequest<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderList,
    /// Normalized path (see [`uri::normalize_path`]).
    pub path: &'a str,
    /// The query as sent, for the trailing-slash redirect.
    pub query: Option<&'a str>,
    /// The host the client asked for (absolute-form authority or Host).
    pub host: Option<&'a str>,
    /// The address the client connected to.
    pub local: SocketAddr,
}

impl StaticRequest<'_> {
    /// nginx's redirect to a directory (`absolute_redirect on`,
    /// `server_name_in_redirect off`, `port_in_redirect on`):
    /// `http://host[:port]/dir/?query`, the host from the request (else
    /// the local address), the port the client connected to, the path
    /// normalized and re-escaped. Never a relative or protocol-relative
    /// reference built from what the client sent (`//evil.example/..`).
    fn directory_url(&self) -> String {
        let mut url = String::with_capacity(self.path.len() + 64);
        url.push_str("http://");
        match self.host.map(router::normalize_host) {
            Some(h) if !h.is_empty() => url.push_str(&h),
            _ => match self.local.ip() {
                std::net::IpAddr::V4(v4) => url.push_str(&v4.to_string()),
                std::net::IpAddr::V6(v6) => url.push_str(&format!("[{v6}]")),
            },
        }
        if self.local.port() != 80 {
            url.push(':');
            url.push_str(itoa::Buffer::new().format(self.local.port()));
        }
        uri::push_escaped(&mut url, self.path);
        url.push('/');
        if let Some(q) = self.query {
            url.push('?');
            url.push_str(q);
        }
        url
    }
}

pub(crate) async fn serve(req: &StaticRequest<'_>, root: &Path, index: &[String]) -> StaticResult {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    let rel = req.path.trim_start_matches('/');
    let mut file_path = root.join(rel);
    if req.path.ends_with('/') {
        let mut found = None;
        for name in index {
            let candidate = file_path.join(name);
            if let Ok(m) = tokio::fs::metadata(&candidate).await
                && m.is_file()
            {
                found = Some(candidate);
                break;
            }
        }
        match found {
            Some(p) => file_path = p,
            None => {
                // nginx without autoindex: existing directory -> 403.
                return match tokio::fs::metadata(&file_path).await {
                    Ok(m) if m.is_dir() => Err(StatusCode::FORBIDDEN),
                    Ok(_) => Err(StatusCode::NOT_FOUND),
                    Err(e) => Err(io_status(&e)),
                };
            }
        }
    }
    serve_file(req, &file_path, true).await
}

/// Serves one file; `redirect_dirs` sends `/dir` to `/dir/` like nginx.
pub(crate) async fn serve_file(
    req: &StaticRequest<'_>,
    file_path: &PathBuf,
    redirect_dirs: bool,
) -> StaticResult {
    let meta = tokio::fs::metadata(file_path)
        .await
        .map_err(|e| io_status(&e))?;
    if meta.is_dir() {
        if !redirect_dirs {
            return Err(StatusCode::FORBIDDEN);
        }
        let loc = req.directory_url();
        let mut resp = Response::new(empty());
        *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
        if let Ok(v) = HeaderValue::from_str(&loc) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(resp);
    }
    if !meta.is_file() {
        return Err(StatusCode::NOT_FOUND);
    }
    let len = meta.len();
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let mtime = modified
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let tag = etag(mtime, len);
    let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(mtime));
    let mime = mime_guess::from_path(file_path).first_or_octet_stream();

    let mut builder = Response::builder()
        .header(header::LAST_MODIFIED, &last_modified)
        .header(header::ETAG, &tag)
        .header(header::ACCEPT_RANGES, "bytes");

    if not_modified(req.headers, &tag, mtime) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(empty())
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR);
    }
    builder = builder.header(header::CONTENT_TYPE, mime.as_ref());

    let range = if req.method == Method::GET && if_range_ok(req.headers, &tag, &last_modified) {
        req.headers
            .get_str(names::RANGE)
            .map(|v| parse_range(v, len))
    } else {
        None
    };
    let (status, start, count) = match range {
        None | Some(RangeSpec::Ignore) => (StatusCode::OK, 0, len),
        Some(RangeSpec::Unsatisfiable) => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .header(header::CONTENT_LENGTH, 0)
                .body(empty())
                .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR);
        }
        Some(RangeSpec::Range(a, b)) => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {a}-{b}/{len}"));
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
    };
    builder = builder.status(status).header(header::CONTENT_LENGTH, count);
    if req.method == Method::HEAD {
        return builder
            .body(empty())
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR);
    }
    let mut file = tokio::fs::File::open(file_path)
        .await
        .map_err(|e| io_status(&e))?;
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|e| io_status(&e))?;
    }
    builder
        .body(FileBody::new(file, count).boxed_unsync())
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

fn io_status(e: &std::io::Error) -> StatusCode {
    match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => StatusCode::NOT_FOUND,
        std::io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
fn not_modified(headers: &HeaderList, tag: &str, mtime: u64) -> bool {
    if let Some(inm) = headers.get_str(names::IF_NONE_MATCH) {
        return etag_matches(inm, tag);
    }
    if let Some(ims) = headers
        .get_str(names::IF_MODIFIED_SINCE)
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let ims = ims
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        return mtime <= ims;
    }
    false
}

fn if_range_ok(headers: &HeaderList, tag: &str, last_modified: &str) -> bool {
    match headers.get_str(names::IF_RANGE) {
        None => true,
        Some(v) if v.starts_with('"') => v == tag,
        Some(v) => v == last_modified,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// Malformed or multi-range: serve the whole file (nginx would build a
    /// multipart response for several ranges; clients accept a 200).
    Ignore,
    Unsatisfiable,
    /// Inclusive bounds.
    Range(u64, u64),
}

fn parse_range(v: &str, len: u64) -> RangeSpec {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return RangeSpec::Ignore;
        };
        if n == 0 || len == 0 {
            return RangeSpec::Unsatisfiable;
        }
        let n = n.min(len);
        return RangeSpec::Range(len - n, len - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeSpec::Ignore;
    };
    let end = if b.is_empty() {
        len.saturating_sub(1)
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e.min(len.saturating_sub(1)),
            _ => return RangeSpec::Ignore,
        }
    };
    if start >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Range(start, end)
}

/// Reads a small file (error pages) fully; None when it cannot be read.
pub(crate) async fn read_small(path: &Path) -> Option<(Vec<u8>, String)> {
    let data = tokio::fs::read(path).await.ok()?;
    let mime = mime_guess::from_path(path)
        .first_or_octet_stream()
        .to_string();
    Some((data, mime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::Range(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeSpec::Range(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeSpec::Range(90, 99));
        assert_eq!(parse_range("bytes=95-200", 100), RangeSpec::Range(95, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=5-1", 100), RangeSpec::Ignore);
    }

    #[test]
    fn etags() {
        assert_eq!(etag(0x5f5e100, 0x1a), "\"5f5e100-1a\"");
        assert!(etag_matches("\"a\", W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"c\"", "\"b\""));
    }
}
