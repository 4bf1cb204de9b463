//! `--web.config.file`: TLS and basic authentication in prometheus/exporter-toolkit's format, so
//! the files operators already have for node_exporter work here, for the exporter and the
//! engine alike.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   min_version: TLS12        # TLS12 (default) or TLS13
//!   max_version: TLS13
//! http_server_config:
//!   headers: { Strict-Transport-Security: max-age=31536000 }
//! basic_auth_users:
//!   prometheus: $2y$10$...    # bcrypt
//! ```
//!
//! The file is read at start. Fields of the format this server does not implement (client
//! certificates, cipher suites, rate limits) are refused by name rather than ignored.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::Body as _;
use tokio::sync::OwnedSemaphorePermit;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::text::{quote, redact};

/// A web configuration that cannot be used.
#[derive(Debug, Error)]
pub enum WebConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A field is wrong.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field (YAML path).
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// The file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    http2: Option<bool>,
}

/// Good credentials: (user, SHA-256 of the password).
type Verified = HashSet<(String, [u8; 32])>;

/// The resolved configuration.
#[derive(Clone)]
pub struct WebConfig {
    /// TLS, when configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Response headers to add.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Users and their bcrypt hashes; empty: no authentication.
    users: Arc<BTreeMap<String, String>>,
    /// Verified (user, SHA-256 of the password) pairs, so bcrypt runs once per good
    /// credential. Failures are not cached: a second try costs as much as the first, for known
    /// and unknown users alike.
    cache: Arc<Mutex<Verified>>,
    /// The cost of the hash unknown users are verified against: the costliest user's, at most
    /// [`DECOY_COST_MAX`].
    decoy_cost: Option<u32>,
    /// That hash, made once on the first unknown user (in the blocking pool, so start-up stays
    /// instant).
    decoy: Arc<std::sync::OnceLock<Option<String>>>,
    /// bcrypt checks running at once (about one per core): more wait, without a thread each.
    checks: Arc<tokio::sync::Semaphore>,
    /// Requests with a bearer token to paths under this prefix skip basic authentication: the
    /// handler checks the token (the engine's write API).
    pub bearer_prefix: Option<&'static str>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn version(
    path: &Path,
    field: &str,
    v: &str,
) -> Result<&'static rustls::SupportedProtocolVersion, WebConfigError> {
    match v {
        "TLS12" => Ok(&rustls::version::TLS12),
        "TLS13" => Ok(&rustls::version::TLS13),
        "TLS10" | "TLS11" => Err(WebConfigError::Invalid {
            path: path.into(),
            field: format!("tls_server_config.{field}"),
            message: format!("{} is not supported (TLS12 or TLS13)", quote(v)),
        }),
        _ => Err(WebConfigError::Invalid {
            path: path.into(),
            field: format!("tls_server_config.{field}"),
            message: format!("{}: TLS12 or TLS13", quote(v)),
        }),
    }
}

/// bcrypt costs the bcrypt crate verifies; others would fail every login.
const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=31;

/// Above this cost a warning says how long one check takes.
const BCRYPT_COST_WARN: u32 = 12;

/// The highest cost unknown users are checked at: above it a flood of made-up users would cost
/// the server more than it may spend on strangers.
const DECOY_COST_MAX: u32 = 12;

/// The longest `Authorization` header value checked (bcrypt reads only 72 bytes of a password).
pub const MAX_AUTHORIZATION: usize = 1024;

/// How long one bcrypt check at `cost` takes, from the time of one at cost 4 (each step
/// doubles the work).
pub fn bcrypt_estimate(cost: u32, at_cost_4: std::time::Duration) -> std::time::Duration {
    let factor = 1u64 << cost.saturating_sub(4).min(40);
    at_cost_4.saturating_mul(u32::try_from(factor).unwrap_or(u32::MAX))
}

/// The largest web configuration, certificate or key file read (1 MiB); only regular files are.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads and checks a web configuration file; relative certificate paths are relative to it.
/// Users whose bcrypt cost is above 12 get a warning with the time one check takes (estimated
/// from one cost-4 hash: a cost-31 hash would take days to compute).
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let text =
        crate::file::read_text(path, MAX_FILE_BYTES).map_err(|source| WebConfigError::Read {
            path: path.into(),
            source,
        })?;
    let web = parse(path, &text)?;
    let costly: Vec<(&String, u32)> = web
        .users
        .iter()
        .filter_map(|(u, h)| Some((u, bcrypt_cost(h)?)))
        .filter(|(_, c)| *c > BCRYPT_COST_WARN)
        .collect();
    if !costly.is_empty() {
        let started = std::time::Instant::now();
        let _ = bcrypt::hash("calibration", 4);
        let at_4 = started.elapsed();
        for (user, cost) in costly {
            let check = bcrypt_estimate(cost, at_4);
            tracing::warn!(user = %user, cost, check = ?check, "a bcrypt cost above 12: every login with a password not yet verified takes this long (10 to 12 is usual)");
        }
    }
    Ok(web)
}

/// Parses a web configuration (`path` names it in errors and anchors relative paths).
pub fn parse(path: &Path, text: &str) -> Result<WebConfig, WebConfigError> {
    let raw: RawWebConfig = if text.trim().is_empty() {
        RawWebConfig::default()
    } else {
        let de = yaml_serde::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            invalid(path, &field, redact(&e.into_inner().to_string()))
        })?
    };
    let tls = match raw.tls_server_config {
        None => None,
        Some(t) => Some(Arc::new(tls_config(path, t)?)),
    };
    let headers = match raw.http_server_config {
        None => Vec::new(),
        Some(h) => headers(path, h)?,
    };
    check_users(path, &raw.basic_auth_users)?;
    // Unknown users are checked against a hash of the costliest user's cost (at most 12),
    // made on the first unknown user: as long as for a known user up to that cost, and no
    // hash to compute at start.
    let costliest = raw
        .basic_auth_users
        .values()
        .filter_map(|h| bcrypt_cost(h))
        .max();
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    Ok(WebConfig {
        tls,
        headers,
        users: Arc::new(raw.basic_auth_users),
        cache: Arc::default(),
        decoy_cost: costliest.map(|c| c.min(DECOY_COST_MAX)),
        decoy: Arc::default(),
        checks: Arc::new(tokio::sync::Semaphore::new(parallel)),
        bearer_prefix: None,
    })
}

fn invalid(path: &Path, field: &str, message: String) -> WebConfigError {
    WebConfigError::Invalid {
        path: path.into(),
        field: field.into(),
        message,
    }
}

/// `tls_server_config`: the server configuration; certificate paths relative to `path`'s
/// directory.
fn tls_config(path: &Path, t: RawTls) -> Result<rustls::ServerConfig, WebConfigError> {
    if let Some(a) = t.client_auth_type.as_deref()
        && a != "NoClientCert"
    {
        return Err(invalid(
            path,
            "tls_server_config.client_auth_type",
            format!(
                "{}: client certificates are not supported (NoClientCert only)",
                quote(a)
            ),
        ));
    }
    let (Some(cert), Some(key)) = (t.cert_file, t.key_file) else {
        return Err(invalid(
            path,
            "tls_server_config",
            "cert_file and key_file are both required".into(),
        ));
    };
    let min = version(
        path,
        "min_version",
        t.min_version.as_deref().unwrap_or("TLS12"),
    )?;
    let max = version(
        path,
        "max_version",
        t.max_version.as_deref().unwrap_or("TLS13"),
    )?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| {
                (u16::from(min.version)..=u16::from(max.version)).contains(&u16::from(v.version))
            })
            .collect();
    if versions.is_empty() {
        return Err(invalid(
            path,
            "tls_server_config.max_version",
            "is below min_version".into(),
        ));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    server_config(&base.join(cert), &base.join(key), &versions)
}

/// `http_server_config`: the response headers.
fn headers(path: &Path, h: RawHttp) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
    // http2: accepted for compatibility and ignored: the server speaks HTTP/1.1 only (as it
    // always has: hyper-util is built without HTTP/2), which every scraper speaks.
    let _ = h.http2;
    let mut headers = Vec::new();
    for (k, v) in h.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            invalid(
                path,
                "http_server_config.headers",
                format!("{} is not a header name", quote(&k)),
            )
        })?;
        let value = HeaderValue::from_str(&v).map_err(|_| {
            invalid(
                path,
                "http_server_config.headers",
                format!("the value of {} is not valid", quote(&k)),
            )
        })?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// `basic_auth_users`: every hash a bcrypt hash of a cost the bcrypt crate verifies.
fn check_users(path: &Path, users: &BTreeMap<String, String>) -> Result<(), WebConfigError> {
    for (user, hash) in users {
        let field = format!(
            "basic_auth_users.{}",
            user.chars().take(100).collect::<String>()
        );
        match bcrypt_cost(hash) {
            None => {
                return Err(invalid(
                    path,
                    &field,
                    "is not a bcrypt hash ($2a$, $2b$ or $2y$; make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)".into(),
                ));
            }
            Some(c) if !BCRYPT_COSTS.contains(&c) => {
                return Err(invalid(
                    path,
                    &field,
                    format!(
                        "bcrypt cost {c} is outside {}..={} (10 to 12 is usual)",
                        BCRYPT_COSTS.start(),
                        BCRYPT_COSTS.end()
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn bcrypt_cost(hash: &str) -> Option<u32> {
    let rest = hash
        .strip_prefix("$2y$")
        .or_else(|| hash.strip_prefix("$2b$"))
        .or_else(|| hash.strip_prefix("$2a$"))?;
    let (cost, tail) = rest.split_once('$')?;
    (tail.len() == 53).then_some(())?;
    cost.parse().ok()
}

fn server_config(
    cert: &Path,
    key: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<rustls::ServerConfig, WebConfigError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let read = |p: &Path| {
        crate::file::read_bounded(p, MAX_FILE_BYTES).map_err(|source| WebConfigError::Read {
            path: p.into(),
            source,
        })
    };
    let bad = |p: &Path, m: String| WebConfigError::Invalid {
        path: p.into(),
        field: "PEM".into(),
        message: m,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(cert, "no certificate".into()));
    }
    let key_der =
        PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| bad(key, e.to_string()))?;
    rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(versions)
        .map_err(|e| bad(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad(key, format!("the key does not fit the certificate: {e}")))
}

impl WebConfig {
    /// Whether requests must authenticate.
    pub fn auth_required(&self) -> bool {
        !self.users.is_empty()
    }

    /// The user and password of an `Authorization: Basic` header value.
    fn credentials(value: &str) -> Option<(String, String)> {
        use base64::Engine;
        let b64 = value.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, pass) = text.split_once(':')?;
        Some((user.to_string(), pass.to_string()))
    }

    /// Whether a credential was verified before (no bcrypt).
    fn verified(&self, user: &str, pass: &str) -> bool {
        let key = (user.to_string(), Sha256::digest(pass.as_bytes()).into());
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
    }

    /// Checks an `Authorization: Basic` header value (bcrypt, blocking: see [`Self::authorize`]).
    pub fn check_basic(&self, value: &str) -> bool {
        if value.len() > MAX_AUTHORIZATION {
            return false;
        }
        let Some((user, pass)) = Self::credentials(value) else {
            return false;
        };
        let (user, pass) = (user.as_str(), pass.as_str());
        let Some(hash) = self.users.get(user) else {
            // Spend about the time of a known user's check, so names cannot be probed.
            if let Some(cost) = self.decoy_cost
                && let Some(decoy) = self
                    .decoy
                    .get_or_init(|| bcrypt::hash("cellwatch decoy", cost).ok())
            {
                let _ = bcrypt::verify(pass, decoy);
            }
            return false;
        };
        let key = (user.to_string(), Sha256::digest(pass.as_bytes()).into());
        if self.verified(user, pass) {
            return true;
        }
        let ok = bcrypt::verify(pass, hash).unwrap_or(false);
        if ok {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            // Only good credentials get here, so the set stays small; the bound is a backstop.
            if cache.len() < 1024 {
                cache.insert(key);
            }
        }
        ok
    }

    /// Checks an `Authorization` header value without holding up the runtime: values over
    /// [`MAX_AUTHORIZATION`] bytes and malformed ones are refused, verified credentials pass
    /// from the cache, and the rest wait (asynchronously: a client that goes away stops
    /// waiting) for one of about one check per core, then run bcrypt in the blocking pool.
    pub async fn authorize(&self, value: &str) -> bool {
        if value.len() > MAX_AUTHORIZATION {
            return false;
        }
        let Some((user, pass)) = Self::credentials(value) else {
            return false;
        };
        if self.users.contains_key(&user) && self.verified(&user, &pass) {
            return true;
        }
        let Ok(permit) = self.checks.clone().acquire_owned().await else {
            return false;
        };
        let web = self.clone();
        let value = value.to_string();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            web.check_basic(&value)
        })
        .await
        .unwrap_or(false)
    }

    /// How many good credentials are cached.
    pub fn cached(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

async fn guard(State(web): State<WebConfig>, req: Request, next: Next) -> Response {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let path = req.uri().path();
    let bearer_write = web
        .bearer_prefix
        .is_some_and(|p| path == p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
        && matches!(
            *req.method(),
            axum::http::Method::POST | axum::http::Method::DELETE
        )
        && auth.as_deref().is_some_and(|a| a.starts_with("Bearer "));
    let allowed = !web.auth_required()
        || bearer_write
        || match auth {
            Some(a) => web.authorize(&a).await,
            None => false,
        };
    let mut resp = if allowed {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"cellwatch\"")],
            "Unauthorized\n",
        )
            .into_response()
    };
    for (k, v) in &web.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

/// The router behind basic authentication and the configured headers.
pub fn protect(router: Router, web: &WebConfig) -> Router {
    router.layer(axum::middleware::from_fn_with_state(web.clone(), guard))
}

/// Bounds on the connections of one listener, so that no client can hold the server's file
/// handles, memory or time: slow or stalled clients are cut off, and at most
/// `max_connections` are served at once (more wait in the kernel's accept queue until one
/// closes, as with nginx's `worker_connections`; node_exporter's `--web.max-requests` answers
/// 503 instead, and exporter-toolkit has no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait for a request's headers: from the connection's start (and again after a TLS
    /// handshake, which gets as long) or, on a kept-alive connection, from the end of the
    /// previous response; so also how long an idle connection stays open.
    pub read_header_timeout: Duration,
    /// Longest a request's body may take to arrive, from the end of its headers.
    pub read_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_header_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_connections: 512,
        }
    }
}

/// A request body that must arrive within a time: the whole of it by a deadline (`gap:
/// false`), or each chunk within `timeout` of the previous one (`gap: true`). The timer is only
/// armed when the client makes the server wait.
pub struct TimedBody<B> {
    inner: B,
    timeout: Duration,
    gap: bool,
    deadline: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// A request body did not arrive in time.
#[derive(Debug, Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

impl<B> TimedBody<B> {
    pub fn new(inner: B, timeout: Duration, gap: bool) -> Self {
        TimedBody {
            inner,
            timeout,
            gap,
            deadline: tokio::time::Instant::now() + timeout,
            timer: None,
        }
    }
}

impl<B> http_body::Body for TimedBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if this.gap {
                    this.deadline = tokio::time::Instant::now() + this.timeout;
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn body_deadline(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    let req = if req.body().is_end_stream() {
        req
    } else {
        req.map(|b| axum::body::Body::new(TimedBody::new(b, timeout, false)))
    };
    next.run(req).await
}

/// Accepts connections from `listener` until `shutdown` completes, at most as many at once as
/// `slots` has permits, and hands each to `serve` with its permit (dropped when the connection
/// ends). A connection is accepted first and then waits for a permit, so a loop never holds a
/// permit while no connection is there for it (several loops sharing `slots` would strand
/// connections otherwise); past the limit, each loop holds at most the one connection waiting
/// and the rest wait in the kernel's accept queue. Accept errors (out of file handles,
/// typically) back off from 5 ms to 1 s rather than spin.
pub async fn accept_loop<F>(
    listener: &tokio::net::TcpListener,
    slots: &Arc<tokio::sync::Semaphore>,
    shutdown: F,
    mut serve: impl FnMut(tokio::net::TcpStream, std::net::SocketAddr, OwnedSemaphorePermit),
) where
    F: Future<Output = ()>,
{
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Duration::ZERO;
    let mut warned: Option<std::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = &mut shutdown => return,
        };
        match accepted {
            Ok((tcp, peer)) => {
                backoff = Duration::ZERO;
                let permit = match slots.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        if warned.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                            warned = Some(std::time::Instant::now());
                            tracing::warn!(
                                address = ?listener.local_addr().ok(),
                                "the connection limit is reached: new connections wait until one closes"
                            );
                        }
                        tokio::select! {
                            p = slots.clone().acquire_owned() => match p {
                                Ok(p) => p,
                                Err(_) => return,
                            },
                            _ = &mut shutdown => return,
                        }
                    }
                };
                let _ = tcp.set_nodelay(true);
                serve(tcp, peer, permit);
            }
            Err(e) => {
                if backoff.is_zero() {
                    tracing::warn!(error = %e, "accept failed; backing off");
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = &mut shutdown => return,
                }
            }
        }
    }
}

/// The soft limit on open files from `/proc/self/limits` (Linux); `None` when unknown or
/// unlimited.
pub fn open_files_limit() -> Option<u64> {
    parse_open_files(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

fn parse_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Warns at start when the connection limits could take more file handles than the process
/// may open: accepts would then fail (and back off) before the limits are reached.
pub fn warn_if_few_files(needed: u64) {
    if let Some(limit) = open_files_limit()
        && limit < needed
    {
        tracing::warn!(
            open_files_limit = limit,
            needed,
            "the open-files limit (ulimit -n) is below what the connection limits may take: raise it (LimitNOFILE=) or lower the --*max-connections flags"
        );
    }
}

/// A connection whose writes must make progress: a write, flush or shutdown that stays pending
/// (the client stopped reading and the socket buffers are full) for `timeout` without a byte
/// going out fails with `TimedOut`, so the connection ends and frees its slot. A reader that is
/// slow but steady is never cut off: each write that goes through restarts the clock.
pub(crate) struct WriteTimeout<T> {
    inner: T,
    timeout: Duration,
    /// Armed when a write first has to wait; disarmed by progress.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteTimeout<T> {
    pub(crate) fn new(inner: T, timeout: Duration) -> Self {
        WriteTimeout {
            inner,
            timeout,
            timer: None,
        }
    }

    /// Turns a pending write into an error once it has waited `timeout`; progress disarms.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        match r {
            Poll::Ready(r) => {
                self.timer = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the client read nothing for {timeout:?}"),
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, r)
    }
}

/// The most a connection buffers: the longest request head taken.
const MAX_HEAD: usize = 64 << 10;

/// Resolves once `stop` says `true`; never when there is none, or its sender is gone without
/// saying so.
async fn stopped(stop: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    if let Some(stop) = stop
        && stop.wait_for(|s| *s).await.is_ok()
    {
        return;
    }
    std::future::pending::<()>().await;
}

/// How one connection is served (see [`serve_connection`]).
#[derive(Debug, Clone, Copy)]
pub struct ConnOptions {
    /// Longest wait for each request's headers (and so for an idle kept-alive connection; a
    /// TLS handshake gets as long).
    pub read_header_timeout: Duration,
    /// A write that makes no progress for this long (a client that stopped reading) ends the
    /// connection.
    pub write_timeout: Duration,
    /// A response's head and body copied into one buffer and sent in one `write` (cheaper for
    /// many small responses, the proxy's) rather than a `writev` of the pieces (large pages:
    /// `/metrics`, the status page).
    pub flatten: bool,
}

/// Serves one connection with HTTP/1.1 as `options` say, over TLS when `tls` is given. When
/// `stop` turns `true` the connection shuts down gracefully: a request in flight is answered,
/// then the connection closes (an idle one closes at once); with no `stop` it serves until the
/// client closes it (no look at a stop signal per turn). `service` answers the requests: a
/// router (see [`router_service`]) or a hyper service of its own (the metering proxy's).
pub async fn serve_connection<S, B>(
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    options: ConnOptions,
    service: S,
    mut stop: Option<tokio::sync::watch::Receiver<bool>>,
) where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
            Error: Into<BoxError>,
        >,
    B: http_body::Body<Error: Into<BoxError>> + 'static,
{
    let ConnOptions {
        read_header_timeout,
        write_timeout,
        flatten,
    } = options;
    let tcp = WriteTimeout::new(tcp, write_timeout);
    let mut http = hyper::server::conn::http1::Builder::new();
    if flatten {
        http.writev(false);
    }
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(read_header_timeout)
        // Request headers up to this (hyper's default, 400 KiB, would let slow clients hold that
        // much each until the header timeout).
        .max_buf_size(MAX_HEAD);
    let result = match tls {
        None => drive(&http, tcp, service, &mut stop).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(read_header_timeout, acceptor.accept(tcp));
            let tls = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(peer = %peer, "TLS handshake timed out");
                        return;
                    }
                },
                _ = stopped(&mut stop) => return,
            };
            drive(&http, tls, service, &mut stop).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %peer, error = %e, "connection ended");
    }
}

/// Serves `io` with `http` until the client closes it, or until `stop` says so (then
/// gracefully: a request in flight is answered first).
async fn drive<I, S, B>(
    http: &hyper::server::conn::http1::Builder,
    io: I,
    service: S,
    stop: &mut Option<tokio::sync::watch::Receiver<bool>>,
) -> hyper::Result<()>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
            Error: Into<BoxError>,
        >,
    B: http_body::Body<Error: Into<BoxError>> + 'static,
{
    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    if stop.is_none() {
        return conn.await;
    }
    tokio::select! {
        biased;
        r = conn.as_mut() => r,
        _ = stopped(stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// A router as the service [`serve_connection`] takes.
pub fn router_service(router: Router) -> hyper_util::service::TowerToHyperService<Router> {
    hyper_util::service::TowerToHyperService::new(router)
}

/// How long connections in flight get to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener`, over TLS when configured, until `shutdown` completes, within
/// `limits`; then stops accepting, lets requests in flight finish (for at most
/// [`SHUTDOWN_GRACE`]; idle connections close at once) and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    web: Option<&WebConfig>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The body deadline inside authentication: it starts once the request is let in, not while
    // it waits for a bcrypt check.
    let router = router.layer(axum::middleware::from_fn_with_state(
        limits.read_timeout,
        body_deadline,
    ));
    let router = match web {
        Some(w) => protect(router, w),
        None => router,
    };
    let tls = web
        .and_then(|w| w.tls.clone())
        .map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    accept_loop(&listener, &slots, shutdown, |tcp, peer, permit| {
        // Forget the connections that ended.
        while connections.try_join_next().is_some() {}
        let router = router.clone();
        let tls = tls.clone();
        let stopping = stopping.clone();
        connections.spawn(async move {
            serve_connection(
                tcp,
                peer,
                tls,
                ConnOptions {
                    read_header_timeout: limits.read_header_timeout,
                    write_timeout: limits.read_timeout,
                    flatten: false,
                },
                router_service(router),
                Some(stopping),
            )
            .await;
            drop(permit);
        });
    })
    .await;
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            grace = ?SHUTDOWN_GRACE,
            "connections still busy at shutdown were closed"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$04$";

    fn cfg(text: &str) -> Result<WebConfig, WebConfigError> {
        parse(Path::new("/etc/cellwatch/web.yml"), text)
    }

    #[test]
    fn users_are_checked_with_bcrypt_and_cached() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let w = cfg(&format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
        use base64::Engine;
        let b = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(!w.check_basic(&b("alice:wrong")));
        assert_eq!(w.cached(), 0, "failures are not cached");
        assert!(w.check_basic(&b("alice:s3cret")));
        assert_eq!(w.cached(), 1);
        assert!(w.check_basic(&b("alice:s3cret")), "from the cache");
        assert!(!w.check_basic(&b("alice:wrong")));
        assert!(!w.check_basic(&b("bob:s3cret")));
        assert!(!w.check_basic("Bearer x"));
        assert!(!w.check_basic("Basic !!!"));
        assert!(format!("{w:?}").contains("alice") && !format!("{w:?}").contains(&hash));
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        // /dev/zero would be read until memory runs out; a directory or a huge file likewise.
        for (path, want) in [
            (
                Path::new("/dev/zero"),
                "a character device: only a regular file is read",
            ),
            (Path::new("/"), "a directory: only a regular file is read"),
        ] {
            let e = load(path).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("web.yml");
        std::fs::write(&big, "#".repeat(MAX_FILE_BYTES as usize + 1)).unwrap();
        let e = load(&big).unwrap_err().to_string();
        assert!(e.contains("larger than the limit of 1 MiB"), "{e}");
        let cert = dir.path().join("web-tls.yml");
        std::fs::write(
            &cert,
            "tls_server_config:\n  cert_file: /dev/zero\n  key_file: /dev/zero\n",
        )
        .unwrap();
        let e = load(&cert).unwrap_err().to_string();
        assert!(e.contains("only a regular file is read"), "{e}");
    }

    #[test]
    fn bad_files_name_the_field() {
        let e = cfg("basic_auth_users:\n  alice: plain\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("basic_auth_users.alice") && e.contains("bcrypt"),
            "{e}"
        );
        let e = cfg("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: []\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cipher_suites"), "{e}");
        let e = cfg("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("client_auth_type"), "{e}");
        let e = cfg("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS11\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("min_version"), "{e}");
        let e = cfg("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/cellwatch/missing.crt"), "{e}");
        let e = cfg("rate_limit: { interval: 1s }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rate_limit"), "{e}");
        assert!(cfg("").unwrap().tls.is_none());
        assert!(bcrypt_cost(HASH).is_none());
    }

    #[test]
    fn errors_never_show_a_value_that_may_be_a_password() {
        for text in [
            "basic_auth_users: hunter2-secret\n",
            "basic_auth_users: [hunter2-secret]\n",
            "basic_auth_users:\n  alice: [hunter2-secret]\n",
            "basic_auth_users:\n  alice: { p: hunter2-secret }\n",
            "basic_auth_users:\n  alice: hunter2-secret\n",
            "tls_server_config: hunter2-secret\n",
            "hunter2-secret\n",
        ] {
            let e = cfg(text).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{text:?}: {e}");
            assert!(!e.contains('\n') && e.len() < 400, "{text:?}: {e}");
            assert!(e.contains("/etc/cellwatch/web.yml"), "{e}");
        }
        let e = cfg("basic_auth_users: hunter2-secret\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("basic_auth_users") && e.contains("map"), "{e}");
        let e = cfg(&format!(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: {}\n",
            "x".repeat(5000)
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("min_version") && e.len() < 300, "{e}");
    }

    #[tokio::test]
    async fn checks_are_bounded_the_cache_comes_first_and_long_headers_are_refused() {
        use base64::Engine;
        let b = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let w = cfg(&format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
        let long = b(&format!("alice:{}", "x".repeat(MAX_AUTHORIZATION)));
        assert!(!w.check_basic(&long));
        assert!(w.authorize(&b("alice:s3cret")).await);
        assert_eq!(w.cached(), 1);
        // Every check slot taken: a verified credential still passes (from the cache, no
        // bcrypt), an over-long header is refused at once, an unknown user waits for a slot.
        let slots = w.checks.available_permits();
        assert!(slots >= 1);
        let all = w
            .checks
            .clone()
            .acquire_many_owned(slots as u32)
            .await
            .unwrap();
        let wait = Duration::from_secs(30);
        assert!(
            tokio::time::timeout(wait, w.authorize(&b("alice:s3cret")))
                .await
                .unwrap()
        );
        assert!(
            !tokio::time::timeout(wait, w.authorize(&long))
                .await
                .unwrap()
        );
        let mallory = b("mallory:x");
        let mut pending = Box::pin(w.authorize(&mallory));
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut pending)
                .await
                .is_err(),
            "a check ran beyond the bound"
        );
        drop(all);
        assert!(!tokio::time::timeout(wait, pending).await.unwrap());
    }

    #[test]
    fn unknown_users_are_checked_at_cost_12_at_most() {
        let w = cfg(&format!(
            "basic_auth_users:\n  alice: '{}'\n",
            with_cost("31")
        ))
        .unwrap();
        assert_eq!(w.decoy_cost, Some(12));
        assert!(w.decoy.get().is_none(), "nothing hashed at start");
        let w = cfg(&format!(
            "basic_auth_users:\n  alice: '{}'\n",
            bcrypt::hash("pw", 4).unwrap()
        ))
        .unwrap();
        assert_eq!(w.decoy_cost, Some(4));
    }

    #[tokio::test]
    async fn the_body_deadline_starts_after_authentication() {
        use base64::Engine;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let w: &'static WebConfig = Box::leak(Box::new(
            cfg(&format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap(),
        ));
        let limits = Limits {
            read_timeout: Duration::from_secs(3),
            ..Limits::default()
        };
        let router = Router::new().route(
            "/echo",
            axum::routing::post(|body: String| async move { body }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Every bcrypt slot taken: the request waits in authentication.
        let slots = w.checks.available_permits() as u32;
        let all = w.checks.clone().acquire_many_owned(slots).await.unwrap();
        tokio::spawn(serve(
            listener,
            router,
            Some(w),
            limits,
            std::future::pending(),
        ));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        c.write_all(
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: 5\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        // Longer than the body timeout in the queue, then the body comes soon after the check.
        tokio::time::sleep(Duration::from_secs(4)).await;
        drop(all);
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.write_all(b"hello").await.unwrap();
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(30), c.read(&mut answer))
            .await
            .unwrap()
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn shutdown_lets_a_request_in_flight_finish() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (entered, handler_entered) = tokio::sync::oneshot::channel::<()>();
        let entered = Arc::new(Mutex::new(Some(entered)));
        let release = Arc::new(tokio::sync::Notify::new());
        let router = {
            let release = release.clone();
            Router::new().route(
                "/slow",
                axum::routing::get(move || async move {
                    if let Some(e) = entered.lock().unwrap().take() {
                        let _ = e.send(());
                    }
                    release.notified().await;
                    "done"
                }),
            )
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut server = tokio::spawn(serve(listener, router, None, Limits::default(), async {
            let _ = stopped.await;
        }));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let wait = Duration::from_secs(30);
        tokio::time::timeout(wait, handler_entered)
            .await
            .unwrap()
            .unwrap();
        stop.send(()).unwrap();
        // The server does not return (and so the process does not exit) under the request.
        assert!(
            tokio::time::timeout(Duration::from_millis(500), &mut server)
                .await
                .is_err(),
            "serve returned with a request in flight"
        );
        release.notify_one();
        let mut answer = String::new();
        tokio::time::timeout(wait, c.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"),
            "{answer}"
        );
        tokio::time::timeout(wait, server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    fn with_cost(cost: &str) -> String {
        let h = bcrypt::hash("pw", 4).unwrap();
        format!("$2y${cost}${}", &h[7..])
    }

    #[test]
    fn bcrypt_costs_outside_4_to_31_are_refused_with_the_user() {
        for cost in ["03", "00", "32", "99"] {
            let e = cfg(&format!(
                "basic_auth_users:\n  alice: '{}'\n",
                with_cost(cost)
            ))
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("basic_auth_users.alice") && e.contains("4..=31"),
                "{cost}: {e}"
            );
        }
        // Cost 31 loads at once (nothing is hashed at start) and unknown users are checked
        // against a real hash, not one made at start.
        let started = std::time::Instant::now();
        let w = cfg(&format!(
            "basic_auth_users:\n  alice: '{}'\n  bob: '{}'\n",
            with_cost("31"),
            bcrypt::hash("pw", 4).unwrap()
        ))
        .unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(w.decoy_cost, Some(12));
        let w = cfg(&format!(
            "basic_auth_users:\n  bob: '{}'\n",
            bcrypt::hash("pw", 4).unwrap()
        ))
        .unwrap();
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode("bob:pw");
        assert!(w.check_basic(&format!("Basic {b}")));
        let b = base64::engine::general_purpose::STANDARD.encode("carol:pw");
        assert!(!w.check_basic(&format!("Basic {b}")));
    }

    #[test]
    fn the_open_files_limit_is_read_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             63432                63432                processes \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files(text), Some(1024));
        assert_eq!(
            parse_open_files(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
        assert_eq!(parse_open_files(""), None);
    }

    #[test]
    fn a_bcrypt_check_doubles_with_each_cost_step() {
        let ms = std::time::Duration::from_millis;
        assert_eq!(bcrypt_estimate(4, ms(1)), ms(1));
        assert_eq!(bcrypt_estimate(12, ms(1)), ms(256));
        assert_eq!(bcrypt_estimate(31, ms(1)), ms(1 << 27));
        assert_eq!(bcrypt_estimate(3, ms(1)), ms(1));
    }
}
