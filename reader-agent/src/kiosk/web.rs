//! The kiosk's web edge: what every request to either listener must show before any handler
//! runs, and the headers every answer carries (docs/security.md, "The kiosk").
//!
//! The browser that shows the kiosk visits other sites too, so a request is not trusted for
//! reaching a loopback port. In order:
//!
//! 1. **Host**: only the listener's own `IP:PORT` and `localhost:PORT` (DNS rebinding gives a
//!    hostile page the kiosk's address under the attacker's name): `421` otherwise.
//! 2. **Origin / Sec-Fetch-Site**: when a browser says where a request comes from, it must be
//!    this listener's own origin (`403 cross_origin` otherwise), on every method.
//! 3. **State-changing requests** (anything but GET and HEAD) must also be
//!    `Content-Type: application/json` (a cross-site form or `text/plain` fetch cannot send
//!    that without a CORS preflight, which the kiosk never grants) and carry a same-origin
//!    `Origin` (or `Sec-Fetch-Site: same-origin`): `403` otherwise, before any handler runs.
//! 4. **A secret sent by the page itself**, never a cookie alone: cookies of 127.0.0.1 are
//!    sent to every port of it, so any local listener the browser is lured to gets them. The
//!    patient's listener requires this launch's token on every API request (and on a
//!    state-changing one before anything else); the staff's listener requires the log-in's
//!    own secret (`staff_auth`). It travels in [`TOKEN_HEADER`], or as the `token` query
//!    parameter of a GET (event streams and downloads cannot send headers).
//!
//! The launch token is made at launch and written to a file only the kiosk's user can read;
//! the patient's page is served only to `/?token=…` (the launch address) and carries it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::json;
use subtle::ConstantTimeEq;

/// The header that carries the launch token on state-changing requests.
pub const TOKEN_HEADER: &str = "x-onshi-token";
/// Where the launch token is written in the state folder (mode 0600).
pub const TOKEN_FILE: &str = "kiosk-token";
/// What the pages carry where the token goes.
pub const TOKEN_PLACEHOLDER: &str = "{{ONSHI_TOKEN}}";

/// The policy of every page: scripts and styles only from the kiosk's own files (no inline
/// script), no framing, no forms posting anywhere, no plug-ins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `n` random bytes from the system, hex.
pub fn random_hex(rng: &SystemRandom, n: usize) -> Result<String, String> {
    let mut bytes = vec![0u8; n];
    rng.fill(&mut bytes)
        .map_err(|_| "the system's random source failed".to_owned())?;
    Ok(hex::encode(bytes))
}

/// Compares two secrets in time independent of where they differ.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// One listener's identity and the launch token.
#[derive(Clone)]
pub struct Edge {
    inner: Arc<EdgeInner>,
}

struct EdgeInner {
    /// `127.0.0.1:8080`, `localhost:8080` (lower case).
    hosts: Vec<String>,
    /// `http://` + each host.
    origins: Vec<String>,
    /// The launch token a state-changing request must carry, on the patient's listener;
    /// `None` on the staff's, where the log-in's secret is checked instead.
    token: Option<String>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("hosts", &self.inner.hosts)
            .finish_non_exhaustive()
    }
}

impl Edge {
    /// The edge of a listener bound to `addr` (a loopback address with its real port);
    /// `token`: the launch token every state-changing request must carry, if any.
    pub fn new(addr: SocketAddr, token: Option<String>) -> Self {
        let ip = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        let hosts = vec![
            format!("{ip}:{}", addr.port()),
            format!("localhost:{}", addr.port()),
        ];
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        Self {
            inner: Arc::new(EdgeInner {
                hosts,
                origins,
                token,
            }),
        }
    }

    /// The launch token ("" on a listener without one).
    pub fn token(&self) -> &str {
        self.inner.token.as_deref().unwrap_or("")
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.inner.hosts.contains(&host)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.inner.origins.contains(&origin)
    }

    /// Whether the request carries this launch's token (in the header, or the query of a
    /// GET).
    pub fn has_token(&self, req: &Request) -> bool {
        match (&self.inner.token, request_secret(req)) {
            (Some(token), Some(sent)) => secrets_equal(sent, token),
            _ => false,
        }
    }

    /// The page with the token in place of [`TOKEN_PLACEHOLDER`].
    pub fn page(&self, html: &str) -> String {
        html.replace(TOKEN_PLACEHOLDER, self.token())
    }
}

/// The secret a request carries: [`TOKEN_HEADER`], or for a GET the `token` query parameter.
pub fn request_secret(req: &Request) -> Option<&str> {
    if let Some(v) = req.headers().get(TOKEN_HEADER) {
        return v.to_str().ok();
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    req.uri()
        .query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v)
}

/// A refusal: the status, a stable key and a reason, answered as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.code, "message": self.message })),
        )
            .into_response()
    }
}

/// A refusal of the edge.
pub fn refusal(status: StatusCode, code: &'static str, message: &str) -> Refusal {
    Refusal {
        status,
        code,
        message: message.to_owned(),
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

/// Why the edge refuses a request, if it does.
fn check(edge: &Edge, req: &Request) -> Result<(), Refusal> {
    let headers = req.headers();
    for once in [header::HOST, header::ORIGIN, header::CONTENT_TYPE] {
        if headers.get_all(&once).iter().count() > 1 {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "a request names its Host, Origin and Content-Type once",
            ));
        }
    }
    let host = header_str(headers, header::HOST);
    let authority = req.uri().authority().map(|a| a.as_str());
    // A Host header always (an absolute-form target must agree with it).
    let host_ok = match (host, authority) {
        (Some(h), Some(a)) => edge.host_allowed(h) && edge.host_allowed(a),
        (Some(h), None) => edge.host_allowed(h),
        (None, _) => false,
    };
    if !host_ok {
        return Err(refusal(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected",
            "this kiosk answers only to its own loopback address",
        ));
    }
    let origin = header_str(headers, header::ORIGIN);
    if origin.is_some_and(|o| !edge.origin_allowed(o)) {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "requests from other origins are refused",
        ));
    }
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if fetch_site.is_some_and(|s| s != "same-origin" && s != "none") {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "requests from other sites are refused",
        ));
    }
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return Ok(());
    }
    let json = header_str(headers, header::CONTENT_TYPE).is_some_and(|ct| {
        let media = ct.split(';').next().unwrap_or("").trim();
        media.eq_ignore_ascii_case("application/json")
    });
    if !json {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a state-changing request must be Content-Type: application/json",
        ));
    }
    if origin.is_none() && fetch_site != Some("same-origin") {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a state-changing request must name its origin (Origin: http://HOST:PORT of this \
             listener)",
        ));
    }
    if edge.inner.token.is_some() && !edge.has_token(req) {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a state-changing request must carry the kiosk's token in X-Onshi-Token \
             (docs/kiosk.md)",
        ));
    }
    Ok(())
}

/// The middleware of both listeners: the checks above, then the security headers on every
/// answer (refusals included).
pub async fn guard(State(edge): State<Edge>, req: Request, next: Next) -> Response {
    let mut response = match check(&edge, &req) {
        Ok(()) => next.run(req).await,
        Err(refused) => refused.into_response(),
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A cookie of the kiosk's: HttpOnly, SameSite=Strict, for the whole listener.
pub fn cookie(name: &str, value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// A cookie that tells the browser to forget `name`.
pub fn expired_cookie(name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The value of cookie `name` in the request, if any.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Creates the state folder readable only by its owner (or checks an existing one is the
/// kiosk user's and not writable by others) and writes `contents` to `name` in it, mode
/// 0600.
pub fn write_private(dir: &Path, name: &str, contents: &[u8]) -> Result<PathBuf, String> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    check_private(dir)?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    // The mode above is filtered by the umask; set it exactly.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot set the mode of {}: {e}", tmp.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Refuses a secret file (or the folder that holds secrets) that is a symbolic link, that
/// belongs to another user than the kiosk's, or that others than its owner can read or write
/// (a folder: write).
pub fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link; it must be the file itself",
            path.display()
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "{} belongs to user {}, not to the kiosk's user {me}",
            path.display(),
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    let others = if meta.is_dir() { 0o022 } else { 0o077 };
    if mode & others != 0 {
        return Err(format!(
            "{} is open to others (mode {mode:o}); it holds secrets: chmod {} it",
            path.display(),
            if meta.is_dir() { "700" } else { "600" }
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge() -> Edge {
        Edge::new("127.0.0.1:8080".parse().unwrap(), Some("t0k3n".into()))
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = axum::http::Request::builder().method(method).uri("/api/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    fn refused_with(edge: &Edge, req: &Request) -> Option<u16> {
        check(edge, req).err().map(|r| r.status.as_u16())
    }

    const GOOD: [(&str, &str); 4] = [
        ("host", "127.0.0.1:8080"),
        ("origin", "http://127.0.0.1:8080"),
        ("content-type", "application/json"),
        ("x-onshi-token", "t0k3n"),
    ];

    #[test]
    fn a_same_origin_json_request_with_the_token_passes() {
        assert_eq!(refused_with(&edge(), &request("POST", &GOOD)), None);
        let mut localhost = GOOD;
        localhost[0] = ("host", "LOCALHOST:8080");
        localhost[1] = ("origin", "http://localhost:8080");
        assert_eq!(refused_with(&edge(), &request("POST", &localhost)), None);
    }

    #[test]
    fn each_missing_or_foreign_part_is_refused() {
        let e = edge();
        for (i, bad) in [
            ("host", "rebind.evil.example:8080"),
            ("origin", "https://evil.example"),
            ("content-type", "text/plain"),
            ("x-onshi-token", "t0k3m"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut h = GOOD;
            h[i] = bad;
            let want = if i == 0 { 421 } else { 403 };
            assert_eq!(
                refused_with(&e, &request("POST", &h)),
                Some(want),
                "{bad:?}"
            );
            // Left out altogether.
            let without: Vec<_> = GOOD
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, h)| *h)
                .collect();
            assert_eq!(
                refused_with(&e, &request("POST", &without)),
                Some(want),
                "without {}",
                GOOD[i].0
            );
        }
    }

    #[test]
    fn sec_fetch_site_stands_in_for_a_missing_origin_but_never_for_another_site() {
        let e = edge();
        let mut h: Vec<_> = GOOD
            .iter()
            .copied()
            .filter(|(k, _)| *k != "origin")
            .collect();
        h.push(("sec-fetch-site", "same-origin"));
        assert_eq!(refused_with(&e, &request("POST", &h)), None);
        for site in ["same-site", "cross-site"] {
            let mut h = GOOD.to_vec();
            h.push(("sec-fetch-site", site));
            assert_eq!(refused_with(&e, &request("POST", &h)), Some(403), "{site}");
            // GETs too: another site cannot even read a page of the kiosk's.
            assert_eq!(
                refused_with(
                    &e,
                    &request(
                        "GET",
                        &[("host", "127.0.0.1:8080"), ("sec-fetch-site", site)]
                    )
                ),
                Some(403)
            );
        }
    }

    #[test]
    fn gets_need_only_the_right_host() {
        let e = edge();
        assert_eq!(
            refused_with(&e, &request("GET", &[("host", "127.0.0.1:8080")])),
            None
        );
        assert_eq!(
            refused_with(&e, &request("GET", &[("host", "127.0.0.1:8081")])),
            Some(421)
        );
        assert_eq!(refused_with(&e, &request("GET", &[])), Some(421));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a_b=1; onshi_kiosk_8080=xyz; other=2"),
        );
        assert_eq!(cookie_value(&h, "onshi_kiosk_8080"), Some("xyz"));
        assert_eq!(cookie_value(&h, "onshi_kiosk"), None);
    }

    #[test]
    fn private_files_are_written_0600_and_others_readable_ones_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("state");
        let path = write_private(&sub, "secret", b"x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        assert!(check_private(&path).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(check_private(&path).unwrap_err().contains("chmod 600"));
        // A folder others may write to (they could swap the files in it) is refused.
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(write_private(&sub, "secret", b"y")
            .unwrap_err()
            .contains("chmod 700"));
        // So is a symbolic link in place of the file.
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = sub.join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(check_private(&link).unwrap_err().contains("symbolic link"));
    }

    #[test]
    fn repeated_host_or_origin_headers_are_refused() {
        let e = edge();
        let mut h = GOOD.to_vec();
        h.push(("host", "evil.example"));
        assert_eq!(refused_with(&e, &request("POST", &h)), Some(400));
        let mut h = GOOD.to_vec();
        h.push(("origin", "http://evil.example"));
        assert_eq!(refused_with(&e, &request("POST", &h)), Some(400));
    }

    #[test]
    fn the_token_may_come_in_the_query_of_a_get_only() {
        let e = edge();
        let get = axum::http::Request::builder()
            .method("GET")
            .uri("/api/events?x=1&token=t0k3n")
            .body(axum::body::Body::empty())
            .unwrap();
        assert!(e.has_token(&get));
        let post = axum::http::Request::builder()
            .method("POST")
            .uri("/api/method?token=t0k3n")
            .body(axum::body::Body::empty())
            .unwrap();
        assert!(!e.has_token(&post));
    }
}
