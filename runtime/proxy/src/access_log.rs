//! nginx `combined` / `main` access logs: one buffered file per path,
//! flushed at least every second and on shutdown, reopened on SIGUSR1.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use hadeploy_config::proxy::LogFormat;

use crate::error::ProxyError;
use crate::message::{Name, RequestHead, names};
use crate::wire;

/// One open log file. Writes go to a 64 KiB buffer; a background task
/// flushes it every second, so a line reaches disk within ~1 s.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    out: Mutex<BufWriter<File>>,
}

fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogFile {
    fn lock(&self) -> std::sync::MutexGuard<'_, BufWriter<File>> {
        // Poison only means another thread panicked mid-write; the buffer
        // is still a buffer.
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write_line(&self, line: &[u8]) {
        let mut out = self.lock();
        if let Err(e) = out.write_all(line) {
            tracing::error!(path = %self.path.display(), error = %e, "access log write failed");
        }
    }

    pub(crate) fn flush(&self) {
        if let Err(e) = self.lock().flush() {
            tracing::error!(path = %self.path.display(), error = %e, "access log flush failed");
        }
    }

    /// logrotate moved the file away: flush to the old one, open the path anew.
    fn reopen(&self) {
        let mut out = self.lock();
        let _ = out.flush();
        match open(&self.path) {
            Ok(f) => *out = BufWriter::with_capacity(64 * 1024, f),
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "access log reopen failed")
            }
        }
    }
}

/// Every log file the proxy has open, by path, shared across reloads so a
/// reload neither loses buffered lines nor reopens unchanged files.
#[derive(Debug, Default)]
pub(crate) struct LogRegistry {
    files: Mutex<HashMap<PathBuf, Arc<LogFile>>>,
}

impl LogRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<LogFile>>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get_or_open(&self, path: &Path) -> Result<Arc<LogFile>, ProxyError> {
        let mut files = self.lock();
        if let Some(f) = files.get(path) {
            return Ok(f.clone());
        }
        let file = open(path).map_err(|source| ProxyError::Log {
            path: path.to_path_buf(),
            source,
        })?;
        let lf = Arc::new(LogFile {
            path: path.to_path_buf(),
            out: Mutex::new(BufWriter::with_capacity(64 * 1024, file)),
        });
        files.insert(path.to_path_buf(), lf.clone());
        Ok(lf)
    }

    /// Drops files no site uses any more (after a reload).
    pub(crate) fn retain(&self, used: &[PathBuf]) {
        let mut files = self.lock();
        files.retain(|p, f| {
            let keep = used.contains(p);
            if !keep {
                f.flush();
            }
            keep
        });
    }

    pub(crate) fn flush_all(&self) {
        let files: Vec<Arc<LogFile>> = self.lock().values().cloned().collect();
        for f in files {
            f.flush();
        }
    }

    pub(crate) fn reopen_all(&self) {
        let files: Vec<Arc<LogFile>> = self.lock().values().cloned().collect();
        for f in files {
            f.reopen();
        }
    }
}

/// The variables of one log line, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    /// `$remote_addr` (after realip).
    pub remote_addr: IpAddr,
    /// The request; `None` for heads refused before they could be parsed
    /// (`"-"`, as nginx logs its 400s).
    pub head: Option<&'a RequestHead>,
    pub status: u16,
    pub body_bytes_sent: u64,
    /// When the response ended (nginx logs the end time).
    pub time: SystemTime,
}

/// `$remote_addr - $remote_user [$time_local] "$request" $status
/// $body_bytes_sent "$http_referer" "$http_user_agent"`, plus
/// `"$http_x_forwarded_for"` for `main`; missing values are `-`.
pub(crate) fn format_line(out: &mut Vec<u8>, f: &Fields<'_>, format: LogFormat) {
    // `$time_local` changes once a second: format it once per second and
    // thread (nginx caches it the same way), not once per request.
    thread_local! {
        static TIME: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let secs = f
        .time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(u64::MAX - 1, |d| d.as_secs());
    TIME.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            *cached = (secs, time_in(f.time, local_zone()));
        }
        format_with_time(out, f, format, &cached.1);
    });
}

#[cfg(test)]
fn format_line_in(f: &Fields<'_>, format: LogFormat, tz: &jiff::tz::TimeZone) -> String {
    let mut out = Vec::new();
    format_with_time(&mut out, f, format, &time_in(f.time, tz));
    String::from_utf8_lossy(&out).into_owned()
}

fn version_text(v: http::Version) -> &'static [u8] {
    match v {
        http::Version::HTTP_10 => b"HTTP/1.0",
        http::Version::HTTP_2 => b"HTTP/2.0",
        _ => b"HTTP/1.1",
    }
}

fn format_with_time(out: &mut Vec<u8>, f: &Fields<'_>, format: LogFormat, time: &str) {
    let header = |name: Name| f.head.and_then(|h| h.headers.get(name));
    let dash = |out: &mut Vec<u8>, v: Option<&[u8]>| match v {
        Some(v) => escape_into(out, v),
        None => out.push(b'-'),
    };
    wire::ip(out, f.remote_addr);
    out.extend_from_slice(b" - ");
    let user = f
        .head
        .and_then(|h| h.headers.get_str(names::AUTHORIZATION))
        .and_then(basic_auth_user);
    dash(out, user.as_deref().map(str::as_bytes));
    out.extend_from_slice(b" [");
    wire::put(out, time.as_bytes());
    out.extend_from_slice(b"] \"");
    match f.head {
        Some(h) => {
            escape_into(out, h.method.as_str().as_bytes());
            out.push(b' ');
            escape_into(out, h.target().as_bytes());
            out.push(b' ');
            wire::put(out, version_text(h.version));
        }
        None => out.push(b'-'),
    }
    out.extend_from_slice(b"\" ");
    wire::number(out, u64::from(f.status));
    out.push(b' ');
    wire::number(out, f.body_bytes_sent);
    out.extend_from_slice(b" \"");
    dash(out, header(names::REFERER));
    out.extend_from_slice(b"\" \"");
    dash(out, header(names::USER_AGENT));
    out.push(b'"');
    if format == LogFormat::Main {
        out.extend_from_slice(b" \"");
        let xff: Vec<&[u8]> = f
            .head
            .map(|h| h.headers.get_all(names::X_FORWARDED_FOR).collect())
            .unwrap_or_default();
        if xff.is_empty() {
            out.push(b'-');
        } else {
            // Several lines are one list, as nginx joins them.
            for (i, v) in xff.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                escape_into(out, v);
            }
        }
        out.push(b'"');
    }
    out.push(b'\n');
}

/// nginx escapes `"`, `\` and bytes outside printable ASCII as `\xHH` in
/// logged variables, so a line can always be split back into fields.
fn escape_into(out: &mut Vec<u8>, v: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let plain = |b: &u8| *b != b'"' && *b != b'\\' && (0x20..0x7f).contains(b);
    if v.iter().all(plain) {
        wire::put(out, v);
        return;
    }
    for &b in v {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        } else {
            out.push(b);
        }
    }
}

/// `$remote_user`: the user name of `Authorization: Basic ...`.
pub(crate) fn basic_auth_user(header: &str) -> Option<String> {
    let (scheme, b64) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64_decode(b64.trim())?;
    let text = String::from_utf8_lossy(&raw);
    let user = text.split_once(':').map(|(u, _)| u).unwrap_or(&text);
    if user.is_empty() {
        None
    } else {
        Some(user.to_string())
    }
}

/// Standard alphabet, padding optional; None on anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().take_while(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The zone `$time_local` is written in: the system's (TZ, then
/// /etc/localtime), read once; UTC when it cannot be determined.
fn local_zone() -> &'static jiff::tz::TimeZone {
    static TZ: OnceLock<jiff::tz::TimeZone> = OnceLock::new();
    TZ.get_or_init(jiff::tz::TimeZone::system)
}

/// `$time_local` as nginx writes it: `10/Oct/2000:13:55:36 -0700`.
fn time_in(t: SystemTime, tz: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(ts) => ts
            .to_zoned_datetime(tz.clone())
            .strftime("%d/%b/%Y:%H:%M:%S %z")
            .to_string(),
        // Out of jiff's range (years beyond 9999): not a real clock.
        Err(_) => "01/Jan/1970:00:00:00 +0000".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn time_local_matches_nginx_format() {
        let utc = jiff::tz::TimeZone::UTC;
        // 2000-10-10 13:55:36 UTC, nginx's documentation example.
        let t = UNIX_EPOCH + Duration::from_secs(971_186_136);
        assert_eq!(time_in(t, &utc), "10/Oct/2000:13:55:36 +0000");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(time_in(t, &utc), "29/Feb/2000:00:00:00 +0000");
        let pdt = jiff::tz::TimeZone::fixed(jiff::tz::offset(-7));
        let t = UNIX_EPOCH + Duration::from_secs(971_186_136 + 7 * 3600);
        assert_eq!(time_in(t, &pdt), "10/Oct/2000:13:55:36 -0700");
        let cst = jiff::tz::TimeZone::fixed(jiff::tz::offset(8));
        assert_eq!(time_in(UNIX_EPOCH, &cst), "01/Jan/1970:08:00:00 +0800");
    }

    #[test]
    fn remote_user_from_basic_auth() {
        assert_eq!(
            basic_auth_user("Basic Zm9vOmJhcg==").as_deref(),
            Some("foo")
        );
        assert_eq!(basic_auth_user("basic YWxpY2U6").as_deref(), Some("alice"));
        assert_eq!(basic_auth_user("Bearer abc"), None);
        assert_eq!(basic_auth_user("Basic !!"), None);
    }

    #[test]
    fn combined_and_main() {
        let raw = b"GET /a\"b HTTP/1.1\r\nUser-Agent: curl/8\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\nAuthorization: Basic YWxpY2U6cHc=\r\n\r\n";
        let (len, p) = crate::h1::head::parse_request(raw)
            .expect("ok")
            .expect("complete");
        let head = crate::h1::head::request_from(bytes::Bytes::copy_from_slice(&raw[..len]), p);
        let f = Fields {
            remote_addr: "127.0.0.1".parse().expect("ip"),
            head: Some(&head),
            status: 200,
            body_bytes_sent: 12,
            time: UNIX_EPOCH + Duration::from_secs(971_186_136),
        };
        assert_eq!(
            format_line_in(&f, LogFormat::Combined, &jiff::tz::TimeZone::UTC),
            "127.0.0.1 - alice [10/Oct/2000:13:55:36 +0000] \"GET /a\\x22b HTTP/1.1\" 200 12 \"-\" \"curl/8\"\n"
        );
        assert_eq!(
            format_line_in(&f, LogFormat::Main, &jiff::tz::TimeZone::UTC),
            "127.0.0.1 - alice [10/Oct/2000:13:55:36 +0000] \"GET /a\\x22b HTTP/1.1\" 200 12 \"-\" \"curl/8\" \"1.2.3.4, 5.6.7.8\"\n"
        );
        let refused = Fields {
            head: None,
            status: 400,
            body_bytes_sent: 0,
            ..f
        };
        assert_eq!(
            format_line_in(&refused, LogFormat::Combined, &jiff::tz::TimeZone::UTC),
            "127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"-\" 400 0 \"-\" \"-\"\n"
        );
    }
}
