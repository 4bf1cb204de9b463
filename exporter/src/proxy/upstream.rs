//! The upstream side of one proxy thread: HTTP/1.1 connections to the upstream, kept open
//! between requests as nginx's `keepalive` does, each driven by the request that holds it.
//!
//! A request takes the most recently used idle connection (one the upstream closed meanwhile
//! is passed over: the thread's reactor has seen it readable) or opens a new one, writes its
//! head and as much of its body as is at hand in one write, and reads the response head; the
//! response body ([`UpstreamBody`]) then reads the same connection as the client takes it,
//! sending the rest of a request body that is still coming (an upstream may answer before it
//! has read the whole request). That rest moves as the response is read: a client that sends a
//! large body without reading an answer that started early waits on its own writes (nginx, which
//! by default reads a request body whole before it goes upstream, has no such case; inference
//! servers answer once they have the request). A connection goes back to the pool when its response has been
//! read to the end and its request sent whole; any other end closes it. There is no task per
//! connection and no channel between the request and its connection: every read and write
//! happens in the task of the client's connection, as in nginx's event loop (hyper's client
//! took two tasks and four channels per request, a third of the proxy's instructions).
//!
//! Parsing is httparse's (the response head, chunk sizes, trailers), as in hyper; framing
//! follows RFC 9112 §6.3: no body for `HEAD`, 1xx, 204 and 304; `Transfer-Encoding` before
//! `Content-Length` (which is then dropped, and the connection not reused); chunked, a length,
//! or until the upstream closes. Informational responses (`100 Continue`, `103 Early Hints`)
//! are skipped; `101 Switching Protocols` is refused (upgrades are not proxied).

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use super::UpBody;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use axum::http::{header, request};
use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tower::ServiceExt;

/// How long an idle connection is kept (the upstream may close it sooner).
const IDLE: Duration = Duration::from_secs(60);

/// The most idle connections kept: more than a burst of concurrent requests needs.
const MAX_IDLE: usize = 512;

/// What one read asks for at least.
const READ_SIZE: usize = 8 * 1024;

/// The largest response head (status line and headers) read; a larger one is an error.
const MAX_HEAD: usize = 64 * 1024;

/// The most headers a response head may have (hyper's bound).
const MAX_HEADERS: usize = 100;

/// The longest chunk-size line (with extensions) and the most trailer bytes read.
const MAX_CHUNK_LINE: usize = 4 * 1024;
const MAX_TRAILERS: usize = 16 * 1024;

/// Request bytes held for writing before the request body is asked for more (backpressure).
const MAX_PENDING_WRITE: usize = 64 * 1024;

/// Why a request got no response from the upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// No TCP connection (refused, unreachable, or none within the connect timeout, across
    /// every address the upstream's name resolves to).
    #[error("tcp connect error")]
    Connect {
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request body failed (the client's side: too large, stalled, gone).
    #[error("the request body failed")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Reading from or writing to the upstream failed.
    #[error("connection error")]
    Io(#[from] io::Error),
    /// The upstream closed the connection before a whole response head.
    #[error("connection closed before a response")]
    Closed,
    /// The upstream closed the connection before the end of the response body.
    #[error("connection closed before the end of the response")]
    Truncated,
    /// The upstream's response is not HTTP/1.x as this proxy passes it on.
    #[error("invalid response: {0}")]
    Invalid(&'static str),
}

impl UpstreamError {
    /// The upstream could not be reached at all.
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect { .. })
    }
}

/// The idle connections to one upstream, with how to open more.
#[derive(Debug)]
pub(crate) struct Pool {
    /// The upstream's `http://host:port`.
    upstream: Uri,
    /// Dials as hyper's pooling client did: each resolved address in turn within a share of the
    /// connect timeout, the other address family raced after 300 ms (a name whose IPv6 address
    /// drops packets still connects over IPv4).
    connector: HttpConnector,
    /// Oldest first.
    idle: Mutex<Vec<(Instant, Conn)>>,
}

impl Pool {
    /// A pool for the `upstream` (an `http` URI; its path is not used).
    pub(crate) fn new(upstream: &Uri, connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        Pool {
            upstream: upstream.clone(),
            connector,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `req` (its URI in origin form, its headers as they go upstream) and returns the
    /// response head, its body reading on from the same connection. The connection goes back
    /// with [`Pool::put`] once [`UpstreamBody::take_reusable`] gives it.
    pub(crate) async fn send(
        &self,
        req: Request<UpBody>,
        host: Option<&HeaderValue>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let (parts, body) = req.into_parts();
        let conn = match std::future::poll_fn(|cx| Poll::Ready(self.take(cx))).await {
            Some(c) => c,
            None => self.connect().await?,
        };
        let mut exchange = Exchange::start(conn, &parts, body, host);
        let head = std::future::poll_fn(|cx| exchange.poll_head(cx)).await?;
        Ok(head.into_response(exchange))
    }

    /// The most recently used idle connection still open (those idle too long are closed by
    /// [`Pool::reap`], every second). One the upstream closed has been seen readable by the
    /// reactor: it is dropped without a system call unless its readiness is stale.
    fn take(&self, cx: &mut Context<'_>) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((_, conn)) = idle.pop() {
            if conn.is_open(cx) {
                return Some(conn);
            }
        }
        None
    }

    /// Gives back a connection whose exchange ended cleanly.
    pub(crate) fn put(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push((Instant::now(), conn));
    }

    /// Closes the connections idle for longer than a minute, and those the upstream closed
    /// (called every second: an upstream's own keep-alive timeout, uvicorn's 5 s, leaves no
    /// socket half-closed here for long).
    pub(crate) fn reap(&self, now: Instant) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let stale = idle
            .iter()
            .take_while(|(since, _)| now.saturating_duration_since(*since) >= IDLE)
            .count();
        idle.drain(..stale);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        idle.retain(|(_, conn)| conn.is_open(&mut cx));
    }

    /// How many connections are idle (for tests).
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |i| i.len())
    }

    /// A new connection, registered with this thread's reactor.
    async fn connect(&self) -> Result<Conn, UpstreamError> {
        let io = self
            .connector
            .clone()
            .oneshot(self.upstream.clone())
            .await
            .map_err(|e| UpstreamError::Connect { source: e.into() })?;
        Ok(Conn {
            io: io.into_inner(),
            rd: BytesMut::new(),
        })
    }
}

/// An open connection to the upstream, between exchanges: the socket and its read buffer
/// (empty: a connection is kept only when nothing more came).
#[derive(Debug)]
pub(crate) struct Conn {
    io: TcpStream,
    rd: BytesMut,
}

impl Conn {
    /// Whether the upstream has not closed the connection (nor sent anything unasked).
    fn is_open(&self, cx: &mut Context<'_>) -> bool {
        match self.io.poll_read_ready(cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readable: closed, or bytes no request asked for; or readiness left over from the
            // last read (which filled the buffer exactly). A read tells.
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Reads what the socket has into the read buffer: the bytes read, 0 at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.rd.capacity() - self.rd.len() < READ_SIZE / 2 {
            self.rd.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rd)
    }
}

/// One request on a connection: what is still to be written, and the request body still to
/// send.
struct Exchange {
    conn: Conn,
    /// Request bytes to write, from `written` on.
    wr: Vec<u8>,
    written: usize,
    /// The request body still coming (`None` once it ended).
    body: Option<UpBody>,
    /// The request body goes chunked (its length unknown).
    chunked: bool,
    /// Writing failed (the upstream may still have answered: its response is read first).
    write_failed: Option<io::Error>,
    /// A `HEAD` request: its response has no body whatever its headers say.
    head_request: bool,
    heads: HeadReader,
}

/// Whether a request method is expected to carry a body (an empty one is then sent with
/// `content-length: 0`, as hyper does).
fn has_body(m: &Method) -> bool {
    *m == Method::POST || *m == Method::PUT || *m == Method::PATCH
}

impl Exchange {
    /// Writes the request head into the write buffer: `host` in place of the client's (when
    /// given), and the body's framing: the client's `content-length` (the body hyper received
    /// holds to it), none or `0` for an ended body, else chunked.
    fn start(conn: Conn, parts: &request::Parts, body: UpBody, host: Option<&HeaderValue>) -> Self {
        let mut wr = Vec::with_capacity(512);
        wr.extend_from_slice(parts.method.as_str().as_bytes());
        wr.push(b' ');
        wr.extend_from_slice(
            parts
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .as_bytes(),
        );
        wr.extend_from_slice(b" HTTP/1.1\r\n");
        if let Some(host) = host {
            wr.extend_from_slice(b"host: ");
            wr.extend_from_slice(host.as_bytes());
            wr.extend_from_slice(b"\r\n");
        }
        for (name, value) in &parts.headers {
            if host.is_some() && name == header::HOST {
                continue;
            }
            wr.extend_from_slice(name.as_str().as_bytes());
            wr.extend_from_slice(b": ");
            wr.extend_from_slice(value.as_bytes());
            wr.extend_from_slice(b"\r\n");
        }
        let ended = body.is_end_stream();
        let mut chunked = false;
        if !parts.headers.contains_key(header::CONTENT_LENGTH) {
            match body.size_hint().exact() {
                Some(0) if ended && !has_body(&parts.method) => {}
                Some(n) if ended => {
                    wr.extend_from_slice(b"content-length: ");
                    wr.extend_from_slice(n.to_string().as_bytes());
                    wr.extend_from_slice(b"\r\n");
                }
                _ => {
                    chunked = true;
                    wr.extend_from_slice(b"transfer-encoding: chunked\r\n");
                }
            }
        }
        wr.extend_from_slice(b"\r\n");
        Exchange {
            conn,
            wr,
            written: 0,
            body: (!ended).then_some(body),
            chunked,
            write_failed: None,
            head_request: parts.method == Method::HEAD,
            heads: HeadReader::default(),
        }
    }

    /// Whether request bytes remain to be sent.
    fn sending(&self) -> bool {
        self.body.is_some() || self.written < self.wr.len()
    }

    /// Writes the request on: what is buffered, then the body's frames as they come. Ready
    /// when all of it is written or writing failed (kept in `write_failed`); an error only for
    /// the request body's own failure.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        loop {
            let mut body_pending = false;
            while let Some(body) = self.body.as_mut() {
                if self.wr.len() - self.written >= MAX_PENDING_WRITE {
                    break;
                }
                // What was written goes before more is added: the buffer holds only what is
                // still to write (a socket that takes a little at a time never lets it empty).
                if self.written > 0 {
                    self.wr.drain(..self.written);
                    self.written = 0;
                }
                let mut body = Pin::new(body);
                let ended = match body.as_mut().poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data()
                            && !data.is_empty()
                        {
                            if self.chunked {
                                self.wr
                                    .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                                self.wr.extend_from_slice(&data);
                                self.wr.extend_from_slice(b"\r\n");
                            } else {
                                self.wr.extend_from_slice(&data);
                            }
                        }
                        // A body that knows it is done ends now, not a poll later (the
                        // connection is then free as soon as the response is read).
                        body.is_end_stream()
                    }
                    Poll::Ready(None) => true,
                    Poll::Ready(Some(Err(e))) => {
                        self.body = None;
                        return Poll::Ready(Err(UpstreamError::Body(e)));
                    }
                    Poll::Pending => {
                        body_pending = true;
                        break;
                    }
                };
                if ended {
                    if self.chunked {
                        self.wr.extend_from_slice(b"0\r\n\r\n");
                    }
                    self.body = None;
                }
            }
            if self.written < self.wr.len() {
                match Pin::new(&mut self.conn.io).poll_write(cx, &self.wr[self.written..]) {
                    Poll::Ready(Ok(0)) => {
                        self.fail_write(io::ErrorKind::WriteZero.into());
                        return Poll::Ready(Ok(()));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.written += n;
                        if self.written == self.wr.len() {
                            self.wr.clear();
                            self.written = 0;
                        }
                        continue;
                    }
                    Poll::Ready(Err(e)) => {
                        self.fail_write(e);
                        return Poll::Ready(Ok(()));
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            if self.body.is_none() {
                return Poll::Ready(Ok(()));
            }
            if body_pending {
                return Poll::Pending;
            }
        }
    }

    fn fail_write(&mut self, e: io::Error) {
        self.write_failed = Some(e);
        self.body = None;
        self.wr = Vec::new();
        self.written = 0;
    }

    /// Sends the request and reads the response head (informational ones skipped).
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<Head, UpstreamError>> {
        loop {
            if self.sending()
                && let Poll::Ready(Err(e)) = self.poll_send(cx)
            {
                return Poll::Ready(Err(e));
            }
            if let Some(head) = self.heads.next(&mut self.conn.rd)? {
                return Poll::Ready(Ok(head));
            }
            match ready!(self.conn.poll_fill(cx)) {
                Ok(0) => {
                    self.heads.at_end(&mut self.conn.rd)?;
                    return Poll::Ready(Err(match self.write_failed.take() {
                        Some(e) => e.into(),
                        None => UpstreamError::Closed,
                    }));
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }
}

/// Takes response heads off the front of the read buffer: informational ones skipped, an
/// upgrade refused. An incomplete head is parsed again only once a blank line may have come
/// since the last try, so a head that trickles in costs time linear in its size (each try
/// parses it from its start).
#[derive(Default)]
struct HeadReader {
    /// The buffer's length at the last try that found the head incomplete (0: none yet).
    tried: usize,
}

impl HeadReader {
    /// The next final response head in `rd`, or `None` while more bytes are needed.
    fn next(&mut self, rd: &mut BytesMut) -> Result<Option<Head>, UpstreamError> {
        while !rd.is_empty() && (self.tried == 0 || blank_line_from(rd, self.tried)) {
            let Some(head) = parse_head(rd)? else {
                self.tried = rd.len();
                break;
            };
            self.tried = 0;
            match head.status.as_u16() {
                101 => return invalid("101 Switching Protocols (upgrades are not proxied)"),
                100..=199 => {}
                _ => return Ok(Some(head)),
            }
        }
        if rd.len() >= MAX_HEAD {
            self.at_end(rd)?;
            return invalid("response head over 64 KiB");
        }
        Ok(None)
    }

    /// No more bytes will come: the error an incomplete head has so far, if any (a head
    /// parsed only at its blank line would otherwise leave it unsaid).
    fn at_end(&mut self, rd: &mut BytesMut) -> Result<(), UpstreamError> {
        if !rd.is_empty() {
            parse_head(rd)?;
        }
        Ok(())
    }
}

/// Whether a blank line (the end of a head) may be in `rd` from `from` on (less two bytes, for
/// one split between reads).
fn blank_line_from(rd: &[u8], from: usize) -> bool {
    let tail = &rd[from.saturating_sub(2)..];
    memchr::memchr_iter(b'\n', tail)
        .any(|i| matches!(&tail[i + 1..], [b'\n', ..] | [b'\r', b'\n', ..]))
}

/// A response head as read, with how its body is framed.
struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    reason: Option<hyper::ext::ReasonPhrase>,
    /// The body's length (`None`: chunked or until the close), before the request's method
    /// and the status are taken into account.
    length: Option<u64>,
    chunked: bool,
    /// The upstream keeps the connection open after this response.
    keep_alive: bool,
}

fn invalid<T>(what: &'static str) -> Result<T, UpstreamError> {
    Err(UpstreamError::Invalid(what))
}

/// Takes a complete response head off the front of `rd` (`None` while it is incomplete).
fn parse_head(rd: &mut BytesMut) -> Result<Option<Head>, UpstreamError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let n = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, rd, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return invalid("over 100 headers"),
        Err(_) => return invalid("malformed response head"),
    };
    if n > MAX_HEAD {
        return invalid("response head over 64 KiB");
    }
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .map_or_else(|| invalid("bad status code"), Ok)?;
    let version = if resp.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let reason = resp
        .reason
        .filter(|r| status.canonical_reason() != Some(*r))
        .and_then(|r| hyper::ext::ReasonPhrase::try_from(r.as_bytes()).ok());
    let base = rd.as_ptr() as usize;
    let mut fields = Vec::with_capacity(resp.headers.len());
    let (mut length, mut chunked, mut te, mut close, mut keep) = (None, false, false, false, false);
    for h in resp.headers.iter() {
        let Ok(name) = header::HeaderName::from_bytes(h.name.as_bytes()) else {
            return invalid("bad header name");
        };
        let value = h.value;
        if name == header::CONTENT_LENGTH {
            // One length, or the same one repeated (in fields or a list, as hyper takes it).
            for v in value.split(|&b| b == b',') {
                let n = std::str::from_utf8(v.trim_ascii())
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok());
                match (n, length) {
                    (None, _) => return invalid("bad content-length"),
                    (Some(n), Some(l)) if n != l => return invalid("conflicting content-lengths"),
                    _ => length = n,
                }
            }
        } else if name == header::TRANSFER_ENCODING {
            te = true;
            // The last coding decides (a later field adds codings after an earlier one's).
            chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == header::CONNECTION {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        fields.push((name, value.as_ptr() as usize - base, value.len()));
    }
    let head = rd.split_to(n).freeze();
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, at, len) in fields {
        let Ok(value) = HeaderValue::from_maybe_shared(head.slice(at..at + len)) else {
            return invalid("bad header value");
        };
        headers.append(name, value);
    }
    let mut keep_alive = if version == Version::HTTP_10 {
        keep && !close
    } else {
        !close
    };
    if te && version == Version::HTTP_10 {
        // Its framing is faulty (RFC 9112 §6.1), as hyper also says.
        return invalid("transfer-encoding in an HTTP/1.0 response");
    }
    if te {
        // A length beside a transfer coding is dropped (RFC 9112 §6.3), and the connection with
        // it: the upstream may have meant either.
        if length.take().is_some() {
            headers.remove(header::CONTENT_LENGTH);
            keep_alive = false;
        }
    }
    Ok(Some(Head {
        status,
        version,
        headers,
        reason,
        length,
        chunked,
        keep_alive,
    }))
}

impl Head {
    /// How the body is framed, and whether the connection can be kept after it, for a
    /// response to a `HEAD` request or not.
    fn framing(&self, head_request: bool) -> (Framing, bool) {
        let s = self.status;
        let framing = if head_request || s.is_informational() || s == 204 || s == 304 {
            Framing::Done
        } else if self.chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            match self.length {
                Some(0) => Framing::Done,
                Some(n) => Framing::Length(n),
                None => Framing::Eof,
            }
        };
        (framing, self.keep_alive && framing != Framing::Eof)
    }

    fn into_response(self, exchange: Exchange) -> Response<UpstreamBody> {
        let (framing, keep_alive) = self.framing(exchange.head_request);
        let mut resp = Response::new(UpstreamBody {
            exchange: Some(exchange),
            framing,
            keep_alive,
        });
        *resp.status_mut() = self.status;
        *resp.version_mut() = self.version;
        *resp.headers_mut() = self.headers;
        if let Some(r) = self.reason {
            resp.extensions_mut().insert(r);
        }
        resp
    }
}

/// How the rest of a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    /// This many bytes remain.
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes the connection.
    Eof,
    /// Read to the end.
    Done,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Chunk {
    /// A chunk-size line is next.
    Size,
    /// This many bytes of a chunk's data remain.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The trailer fields (or the empty line) after the last chunk.
    Trailers,
}

/// A response body, read from its connection as it is polled: a frame per chunk (or per read
/// of a body of known length); trailers as the last frame. The request body still coming is
/// sent on as it is polled.
pub(crate) struct UpstreamBody {
    /// `None` once the connection failed or was taken back.
    exchange: Option<Exchange>,
    framing: Framing,
    /// The upstream keeps the connection open after this response.
    keep_alive: bool,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("framing", &self.framing)
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

impl UpstreamBody {
    /// The connection, when the response was read to its end, the request sent whole, and
    /// the upstream keeps it open with nothing more on it.
    pub(crate) fn take_reusable(&mut self) -> Option<Conn> {
        if self.framing != Framing::Done || !self.keep_alive {
            return None;
        }
        let ex = self.exchange.take()?;
        (!ex.sending() && ex.write_failed.is_none() && ex.conn.rd.is_empty()).then_some(ex.conn)
    }

    /// Closes the connection after a failure.
    fn fail(&mut self, e: UpstreamError) -> Poll<Option<Result<Frame<Bytes>, super::BoxError>>> {
        self.exchange = None;
        Poll::Ready(Some(Err(Box::new(e))))
    }
}

/// The next frame of a body framed as `framing` from the bytes read, `rd` (`None`: more bytes
/// are needed, or the body ended).
fn decode(framing: &mut Framing, rd: &mut BytesMut) -> Result<Option<Frame<Bytes>>, &'static str> {
    loop {
        match *framing {
            Framing::Done => return Ok(None),
            Framing::Eof => return Ok((!rd.is_empty()).then(|| Frame::data(rd.split().freeze()))),
            Framing::Length(n) | Framing::Chunked(Chunk::Data(n)) => {
                if rd.is_empty() {
                    return Ok(None);
                }
                let take = n.min(rd.len() as u64);
                let data = rd.split_to(take as usize).freeze();
                *framing = match (*framing, n - take) {
                    (Framing::Length(_), 0) => Framing::Done,
                    (Framing::Length(_), left) => Framing::Length(left),
                    (_, 0) => Framing::Chunked(Chunk::DataEnd),
                    (_, left) => Framing::Chunked(Chunk::Data(left)),
                };
                return Ok(Some(Frame::data(data)));
            }
            // A size line without digits (httparse reads it as 0, the last chunk) is an error.
            Framing::Chunked(Chunk::Size) if rd.first().is_some_and(|b| !b.is_ascii_hexdigit()) => {
                return Err("bad chunk size");
            }
            // Parsed again only once a line end has come (a size line that trickles in).
            Framing::Chunked(Chunk::Size) if memchr::memchr(b'\n', rd).is_none() => {
                if rd.len() > MAX_CHUNK_LINE {
                    return Err("chunk-size line over 4 KiB");
                }
                return Ok(None);
            }
            Framing::Chunked(Chunk::Size) => match httparse::parse_chunk_size(rd) {
                Ok(httparse::Status::Complete((used, size))) => {
                    rd.advance(used);
                    *framing = Framing::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                }
                Ok(httparse::Status::Partial) if rd.len() > MAX_CHUNK_LINE => {
                    return Err("chunk-size line over 4 KiB");
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(_) => return Err("bad chunk size"),
            },
            Framing::Chunked(Chunk::DataEnd) => {
                if rd.len() < 2 {
                    return Ok(None);
                }
                if rd[..2] != *b"\r\n" {
                    return Err("chunk data not followed by CRLF");
                }
                rd.advance(2);
                *framing = Framing::Chunked(Chunk::Size);
            }
            Framing::Chunked(Chunk::Trailers) => {
                if rd.len() < 2 {
                    return Ok(None);
                }
                if rd[..2] == *b"\r\n" {
                    rd.advance(2);
                    *framing = Framing::Done;
                    return Ok(None);
                }
                if !blank_line_from(rd, 0) {
                    if rd.len() > MAX_TRAILERS {
                        return Err("trailers over 16 KiB");
                    }
                    return Ok(None);
                }
                let mut slots = [httparse::EMPTY_HEADER; 32];
                match httparse::parse_headers(rd, &mut slots) {
                    Ok(httparse::Status::Complete((used, fields))) => {
                        let mut trailers = HeaderMap::with_capacity(fields.len());
                        for f in fields {
                            let name = header::HeaderName::from_bytes(f.name.as_bytes());
                            let value = HeaderValue::from_bytes(f.value);
                            match (name, value) {
                                (Ok(n), Ok(v)) => {
                                    trailers.append(n, v);
                                }
                                _ => return Err("bad trailer field"),
                            }
                        }
                        rd.advance(used);
                        *framing = Framing::Done;
                        return Ok(Some(Frame::trailers(trailers)));
                    }
                    Ok(httparse::Status::Partial) if rd.len() > MAX_TRAILERS => {
                        return Err("trailers over 16 KiB");
                    }
                    Ok(httparse::Status::Partial) => return Ok(None),
                    Err(httparse::Error::TooManyHeaders) => return Err("over 32 trailer fields"),
                    Err(_) => return Err("malformed trailers"),
                }
            }
        }
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if this.framing == Framing::Done {
                return Poll::Ready(None);
            }
            let Some(ex) = this.exchange.as_mut() else {
                return Poll::Ready(None);
            };
            if ex.sending()
                && let Poll::Ready(Err(e)) = ex.poll_send(cx)
            {
                return this.fail(e);
            }
            match decode(&mut this.framing, &mut ex.conn.rd) {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) if this.framing == Framing::Done => return Poll::Ready(None),
                Ok(None) => {}
                Err(what) => return this.fail(UpstreamError::Invalid(what)),
            }
            match ready!(ex.conn.poll_fill(cx)) {
                Ok(0) if this.framing == Framing::Eof => {
                    this.framing = Framing::Done;
                    this.exchange = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(UpstreamError::Truncated),
                Ok(_) => {}
                Err(e) => return this.fail(e.into()),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// An error and its causes, `: `-separated, a cause that only repeats its error's words left
/// out ("tcp connect error: Connection refused (os error 111)").
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut last = out.clone();
    for cause in std::iter::successors(e.source(), |c| c.source()) {
        let text = cause.to_string();
        if text != last {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
    }
    out
}

/// A response as [`read_pieces`] read it.
#[derive(Debug, PartialEq)]
pub(crate) struct ReadWhole {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) data: Vec<u8>,
    pub(crate) trailers: Option<HeaderMap>,
    /// The connection would be kept.
    pub(crate) keep: bool,
}

/// Reads `bytes` as an upstream's whole answer, fed in pieces of `piece` bytes to the head
/// parser and the body decoder as reads would (the same steps as [`Exchange::poll_head`] and
/// [`UpstreamBody`], without a socket): for tests and the fuzz target.
pub(crate) fn read_pieces(
    bytes: &[u8],
    piece: usize,
    head_request: bool,
) -> Result<ReadWhole, UpstreamError> {
    let mut rd = BytesMut::new();
    let mut pieces = bytes.chunks(piece.max(1));
    let mut heads = HeadReader::default();
    let head = loop {
        if let Some(h) = heads.next(&mut rd)? {
            break h;
        }
        match pieces.next() {
            Some(p) => rd.extend_from_slice(p),
            None => {
                heads.at_end(&mut rd)?;
                return Err(UpstreamError::Closed);
            }
        }
    };
    let (mut framing, keep) = head.framing(head_request);
    let (mut data, mut trailers) = (Vec::new(), None);
    loop {
        match decode(&mut framing, &mut rd) {
            Ok(Some(f)) => match f.into_data() {
                Ok(d) => data.extend_from_slice(&d),
                Err(f) => trailers = f.into_trailers().ok(),
            },
            Ok(None) if framing == Framing::Done => break,
            Ok(None) => match pieces.next() {
                Some(p) => rd.extend_from_slice(p),
                None if framing == Framing::Eof => break,
                None => return Err(UpstreamError::Truncated),
            },
            Err(what) => return invalid(what),
        }
    }
    let keep = keep && rd.is_empty() && pieces.next().is_none();
    Ok(ReadWhole {
        status: head.status,
        headers: head.headers,
        data,
        trailers,
        keep,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt, Either, Empty};
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn pool(port: u16) -> Arc<Pool> {
        let uri = format!("http://127.0.0.1:{port}").parse().unwrap();
        Arc::new(Pool::new(&uri, Duration::from_secs(5)))
    }

    /// A keep-alive upstream answering `hello` (hyper's server); counts the connections it
    /// accepted.
    async fn upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                    TokioIo::new(tcp),
                    hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(Response::new(axum::body::Body::from(
                            "hello",
                        )))
                    }),
                ));
            }
        });
        (addr, accepted)
    }

    fn get() -> Request<UpBody> {
        Request::builder()
            .uri("/x")
            .header("host", "upstream")
            .body(Either::Right(Empty::new()))
            .unwrap()
    }

    /// Reads a response body to its end: its data, and its connection when reusable.
    async fn read_all(resp: Response<UpstreamBody>) -> (Vec<u8>, Option<Conn>) {
        let mut body = resp.into_body();
        let mut data = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(d) = frame.unwrap().into_data() {
                data.extend_from_slice(&d);
            }
        }
        (data, body.take_reusable())
    }

    #[tokio::test]
    async fn a_response_read_to_the_end_frees_its_connection_for_the_next_request() {
        let (addr, accepted) = upstream().await;
        let pool = pool(addr.port());
        for _ in 0..3 {
            let resp = pool.send(get(), None).await.unwrap();
            let (body, conn) = read_all(resp).await;
            assert_eq!(&body[..], b"hello");
            pool.put(conn.expect("reusable"));
            assert_eq!(pool.idle(), 1);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for all");
        // A response dropped unread is not given back: the next request opens a connection.
        drop(pool.send(get(), None).await.unwrap());
        assert_eq!(pool.idle(), 0);
        let (_, conn) = read_all(pool.send(get(), None).await.unwrap()).await;
        pool.put(conn.unwrap());
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // Two at once: two connections, both kept.
        let (a, b) = tokio::try_join!(pool.send(get(), None), pool.send(get(), None)).unwrap();
        let ((_, ca), (_, cb)) = tokio::join!(read_all(a), read_all(b));
        pool.put(ca.unwrap());
        pool.put(cb.unwrap());
        assert_eq!(pool.idle(), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        // Idle a minute: closed.
        pool.reap(Instant::now() + IDLE - Duration::from_secs(1));
        assert_eq!(pool.idle(), 2);
        pool.reap(Instant::now() + IDLE);
        assert_eq!(pool.idle(), 0);
    }

    #[tokio::test]
    async fn a_closed_idle_connection_is_passed_over_and_a_dead_upstream_is_a_connect_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Answers once per connection, then closes it.
        let server = tokio::spawn(crate::proxy::serve_until_aborted(listener, "{}".into()));
        let pool = pool(port);
        for _ in 0..3 {
            let (_, conn) = read_all(pool.send(get(), None).await.unwrap()).await;
            // Content-Length and keep-alive: reusable, though the upstream then closes it.
            if let Some(c) = conn {
                pool.put(c);
            }
            // Give the reactor the close.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.abort();
        let _ = server.await;
        let e = pool.send(get(), None).await.unwrap_err();
        assert!(e.is_connect(), "{e}");
        assert!(e.to_string().starts_with("tcp connect error"), "{e}");
        assert!(
            chain(&e).starts_with("tcp connect error: Connection refused"),
            "{}",
            chain(&e)
        );
    }

    /// An upstream that records each request (head and body, as sent) and answers it with the
    /// next of `answers`, closing the connection after one that ends with `close`.
    async fn scripted(answers: Vec<&'static str>) -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let (log, answers) = (log.clone(), answers.clone());
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        // A request is whole at its head's end when it has no body, at the
                        // end of its content-length, or at the last chunk.
                        let whole = got.windows(4).position(|w| w == b"\r\n\r\n").and_then(|h| {
                            let head = String::from_utf8_lossy(&got[..h]).to_ascii_lowercase();
                            let body = &got[h + 4..];
                            if head.contains("transfer-encoding: chunked") {
                                body.ends_with(b"0\r\n\r\n").then_some(got.len())
                            } else {
                                let n: usize = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length: "))
                                    .map_or(0, |v| v.parse().unwrap());
                                (body.len() >= n).then_some(h + 4 + n)
                            }
                        });
                        if let Some(end) = whole {
                            log.lock().unwrap().push(got.drain(..end).collect());
                            let Some(answer) = answers.lock().unwrap().next() else {
                                return;
                            };
                            let (answer, close) = match answer.strip_suffix("close") {
                                Some(a) => (a, true),
                                None => (answer, false),
                            };
                            tcp.write_all(answer.as_bytes()).await.unwrap();
                            if close {
                                return;
                            }
                            continue;
                        }
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                });
            }
        });
        (port, seen)
    }

    /// A request body of `chunks`, its length unknown; `hang`: it never ends.
    fn streamed(chunks: &[&'static str], hang: bool) -> UpBody {
        Either::Left(crate::proxy::ReqBody::new(
            Either::Right(axum::body::Body::new(crate::proxy::tests::Chunks(
                chunks.iter().copied().collect(),
                hang,
            ))),
            1 << 20,
            Duration::from_secs(5),
            false,
        ))
    }

    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_dropped_at_the_next_tick() {
        // Keep-alive by its headers, then closed by the upstream (its own idle timeout).
        let (port, _) = scripted(vec!["HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokclose"]).await;
        let pool = pool(port);
        let (body, conn) = read_all(pool.send(get(), None).await.unwrap()).await;
        assert_eq!(body, b"ok");
        pool.put(conn.expect("reusable by its headers"));
        // Give the reactor the close.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.idle(), 1);
        pool.reap(Instant::now());
        assert_eq!(
            pool.idle(),
            0,
            "a connection the upstream closed is not kept"
        );
    }

    #[tokio::test]
    async fn requests_go_upstream_with_their_host_and_body_framed() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let (port, seen) = scripted(vec![ok, ok, ok, ok]).await;
        let pool = pool(port);
        let host = HeaderValue::from_static("up:1");
        let send = |req: Request<UpBody>| {
            let (pool, host) = (pool.clone(), host.clone());
            async move {
                let resp = pool.send(req, Some(&host)).await.unwrap();
                let (body, conn) = read_all(resp).await;
                assert_eq!(body, b"ok");
                pool.put(conn.expect("reusable"));
            }
        };
        // No body: no framing header; the client's Host replaced.
        send(get()).await;
        // An empty POST: content-length 0.
        send(
            Request::post("/p?q=1")
                .body(Either::Right(Empty::new()))
                .unwrap(),
        )
        .await;
        // A body of unknown length: chunked, its chunks as they came.
        send(
            Request::post("/s")
                .header("x-a", "b")
                .body(streamed(&["ab", "", "cde"], false))
                .unwrap(),
        )
        .await;
        // A body with the client's length: as it is.
        send(
            Request::put("/l")
                .header("content-length", "3")
                .body(streamed(&["a", "bc"], false))
                .unwrap(),
        )
        .await;
        let seen: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect();
        assert_eq!(
            seen,
            [
                "GET /x HTTP/1.1\r\nhost: up:1\r\n\r\n",
                "POST /p?q=1 HTTP/1.1\r\nhost: up:1\r\ncontent-length: 0\r\n\r\n",
                "POST /s HTTP/1.1\r\nhost: up:1\r\nx-a: b\r\ntransfer-encoding: chunked\r\n\r\n\
                 2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n",
                "PUT /l HTTP/1.1\r\nhost: up:1\r\ncontent-length: 3\r\n\r\nabc",
            ]
        );
        assert_eq!(pool.idle(), 1, "one connection for the four");
    }

    #[tokio::test]
    async fn informational_responses_are_skipped_and_an_upgrade_refused() {
        let (port, _) = scripted(vec![
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
             HTTP/1.1 201 Made\r\ncontent-length: 1\r\nx-y: z\r\n\r\n!",
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
        ])
        .await;
        let pool = pool(port);
        let resp = pool.send(get(), None).await.unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.headers()["x-y"], "z");
        assert!(resp.headers().get("link").is_none());
        // A reason phrase that is not the status's own is kept, for the client.
        let reason = resp.extensions().get::<hyper::ext::ReasonPhrase>().unwrap();
        assert_eq!(reason.as_bytes(), b"Made");
        let (body, conn) = read_all(resp).await;
        assert_eq!(body, b"!");
        pool.put(conn.unwrap());
        let e = pool.send(get(), None).await.unwrap_err();
        assert!(
            chain(&e).contains("101 Switching Protocols"),
            "{}",
            chain(&e)
        );
    }

    #[tokio::test]
    async fn an_answer_before_the_request_body_ends_comes_back_and_its_connection_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Answers 413 at the head, reads the body on, then closes.
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = tcp.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            tcp.write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 3\r\n\r\nbig")
                .await
                .unwrap();
            while tcp.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        });
        let pool = pool(port);
        // A body that never ends.
        let req = Request::post("/").body(streamed(&["x"], true)).unwrap();
        let resp = pool.send(req, None).await.unwrap();
        assert_eq!(resp.status(), 413);
        let (data, conn) = read_all(resp).await;
        assert_eq!(data, b"big");
        assert!(conn.is_none(), "the request was not sent whole");
    }

    #[test]
    fn bodies_are_framed_as_rfc_9112_says_whatever_the_reads() {
        // (response, HEAD request, data, a trailer's value, connection kept)
        let cases: &[(&str, bool, &str, Option<&str>, bool)] = &[
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                false,
                "hello",
                None,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
                false,
                "hello",
                None,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                false,
                "",
                None,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
                false,
                "hello",
                None,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n, world!!!\r\n0\r\n\r\n",
                false,
                "hello, world!!!",
                None,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nTrailer: x-t\r\n\r\n1\r\nx\r\n0\r\nx-t: done\r\n\r\n",
                false,
                "x",
                Some("done"),
                true,
            ),
            // A length beside a transfer coding: the coding frames it; not kept.
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
                false,
                "ab",
                None,
                false,
            ),
            // Neither: until the close, not kept.
            (
                "HTTP/1.1 200 OK\r\n\r\nto the end",
                false,
                "to the end",
                None,
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz",
                false,
                "zz",
                None,
                false,
            ),
            // HEAD, 204 and 304: no body whatever the headers say.
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                true,
                "",
                None,
                true,
            ),
            (
                "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                false,
                "",
                None,
                true,
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                "",
                None,
                true,
            ),
            // 1xx first.
            (
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!",
                false,
                "!",
                None,
                true,
            ),
            // Closes.
            (
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n!",
                false,
                "!",
                None,
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n!",
                false,
                "!",
                None,
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n!",
                false,
                "!",
                None,
                true,
            ),
            // Bytes after the response: not kept.
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!extra",
                false,
                "!",
                None,
                false,
            ),
        ];
        for &(resp, head_request, data, trailer, kept) in cases {
            for piece in [1, 2, 3, 7, resp.len()] {
                let ReadWhole {
                    headers,
                    data: got,
                    trailers,
                    keep,
                    ..
                } = read_pieces(resp.as_bytes(), piece, head_request)
                    .unwrap_or_else(|e| panic!("{resp:?} in pieces of {piece}: {}", chain(&e)));
                assert_eq!(String::from_utf8_lossy(&got), data, "{resp:?} / {piece}");
                assert_eq!(
                    trailers
                        .as_ref()
                        .and_then(|t| t.get("x-t"))
                        .map(|v| v.to_str().unwrap()),
                    trailer,
                    "{resp:?} / {piece}"
                );
                assert_eq!(keep, kept, "{resp:?} / {piece}: connection kept");
                if resp.contains("Transfer-Encoding") {
                    assert!(
                        headers.get("content-length").is_none(),
                        "{resp:?}: length dropped"
                    );
                }
            }
        }
    }

    #[test]
    fn malformed_responses_are_errors_that_say_what() {
        let cases: &[(&str, &str)] = &[
            (
                "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                "bad content-length",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "bad content-length",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "conflicting content-lengths",
            ),
            ("HTTP/1.1 2000 OK\r\n\r\n", "malformed response head"),
            ("HTTP/2 200 OK\r\n\r\n", "malformed response head"),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "bad chunk size",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n",
                "chunk data not followed by CRLF",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nbad trailer\r\n\r\n",
                "malformed trailers",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
                "connection closed before the end",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                "connection closed before the end",
            ),
            ("HTTP/1.1 200 OK\r\n", "connection closed before a response"),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
                "conflicting content-lengths",
            ),
            // An empty size line is not the last chunk (httparse would read it as 0).
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n\r\n\r\n",
                "bad chunk size",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;ext\r\n",
                "bad chunk size",
            ),
            (
                "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                "transfer-encoding in an HTTP/1.0 response",
            ),
            // Found at the end, though the head is parsed again only at a blank line.
            (
                "HTTP/1.1 200 OK\r\nx: 1\r\nbad line\r\n",
                "malformed response head",
            ),
        ];
        for &(resp, says) in cases {
            let e = read_pieces(resp.as_bytes(), 3, false)
                .err()
                .unwrap_or_else(|| panic!("{resp:?} read"));
            assert!(chain(&e).contains(says), "{resp:?}: {}", chain(&e));
        }
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "x: y\r\n".repeat(101));
        let e = read_pieces(many.as_bytes(), 64, false).err().unwrap();
        assert!(chain(&e).contains("over 100 headers"), "{}", chain(&e));
        let trailers = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n{}\r\n",
            "t: 1\r\n".repeat(33)
        );
        let e = read_pieces(trailers.as_bytes(), 5, false).err().unwrap();
        assert!(
            chain(&e).contains("over 32 trailer fields"),
            "{}",
            chain(&e)
        );
        let long = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;{}",
            "e".repeat(5000)
        );
        let e = read_pieces(long.as_bytes(), 512, false).err().unwrap();
        assert!(
            chain(&e).contains("chunk-size line over 4 KiB"),
            "{}",
            chain(&e)
        );
    }
}
