//! The upstream connections of one proxy thread: HTTP/1.1 connections kept open between
//! requests, as nginx's `keepalive` does. A connection goes back to the pool when its response
//! has been read to the end (a response left unread closes it); a request takes the most
//! recently used idle one, or opens a new one. A request an idle connection could not take
//! (the upstream closed it meanwhile) goes on a new connection: it was never sent.
//!
//! Hyper's pooling client does the same but spawns a task per request to wait for the
//! connection to be free again; here the response body's end puts it back directly.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::UpBody;
use axum::http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::ServiceExt;

/// How long an idle connection is kept (the upstream may close it sooner).
const IDLE: Duration = Duration::from_secs(60);

/// The most idle connections kept: more than a burst of concurrent requests needs.
const MAX_IDLE: usize = 512;

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
    /// The connection failed before a response (the request body's failure included).
    #[error(transparent)]
    Request(#[from] hyper::Error),
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
    idle: Mutex<Vec<(Instant, SendRequest<UpBody>)>>,
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

    /// Sends `req` (its URI in origin form) and returns the response head with the connection,
    /// to be given back with [`Pool::put`] once the response body has been read.
    pub(crate) async fn send(
        &self,
        mut req: Request<UpBody>,
    ) -> Result<(Response<Incoming>, SendRequest<UpBody>), UpstreamError> {
        while let Some(mut conn) = self.take() {
            match conn.try_send_request(req).await {
                Ok(resp) => return Ok((resp, conn)),
                Err(mut e) => match e.take_message() {
                    // Closed before the request went out: try another connection.
                    Some(r) => req = r,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut conn = self.connect().await?;
        let resp = conn.send_request(req).await?;
        Ok((resp, conn))
    }

    /// The most recently used idle connection still open (those idle too long are closed by
    /// [`Pool::reap`], every second).
    fn take(&self) -> Option<SendRequest<UpBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((_, conn)) = idle.pop() {
            if conn.is_ready() {
                return Some(conn);
            }
        }
        None
    }

    /// Gives back a connection whose response was read to the end: kept when it can take
    /// another request now, or once it can (its request body may still be going out).
    pub(crate) fn put(self: &Arc<Self>, mut conn: SendRequest<UpBody>) {
        if conn.is_ready() {
            self.keep(conn);
        } else if !conn.is_closed() {
            let pool = Arc::downgrade(self);
            tokio::spawn(async move {
                if conn.ready().await.is_ok()
                    && let Some(pool) = pool.upgrade()
                {
                    pool.keep(conn);
                }
            });
        }
    }

    /// Closes the connections idle for longer than a minute (called every second).
    pub(crate) fn reap(&self, now: Instant) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let stale = idle
            .iter()
            .take_while(|(since, _)| now.saturating_duration_since(*since) >= IDLE)
            .count();
        idle.drain(..stale);
    }

    fn keep(&self, conn: SendRequest<UpBody>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push((Instant::now(), conn));
    }

    /// How many connections are idle (for tests).
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |i| i.len())
    }

    /// A new connection, its driving task spawned on this thread's runtime.
    async fn connect(&self) -> Result<SendRequest<UpBody>, UpstreamError> {
        let io = self
            .connector
            .clone()
            .oneshot(self.upstream.clone())
            .await
            .map_err(|e| UpstreamError::Connect { source: e.into() })?;
        // A request's head and body in one buffer and one write (the body is small, or streams
        // on in frames of at most a read's size).
        let (conn, driver) = hyper::client::conn::http1::Builder::new()
            .writev(false)
            .handshake(io)
            .await?;
        tokio::spawn(async move {
            if let Err(e) = driver.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(conn)
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;

    use hyper_util::rt::TokioIo;

    use super::*;

    fn pool(port: u16) -> Arc<Pool> {
        let uri = format!("http://127.0.0.1:{port}").parse().unwrap();
        Arc::new(Pool::new(&uri, Duration::from_secs(5)))
    }

    /// A keep-alive upstream answering `hello`; counts the connections it accepted.
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
            .body(http_body_util::Either::Right(http_body_util::Empty::new()))
            .unwrap()
    }

    async fn idle_becomes(pool: &Pool, n: usize) {
        for _ in 0..1000 {
            if pool.idle() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("idle connections: {}, not {n}", pool.idle());
    }

    #[tokio::test]
    async fn a_response_read_to_the_end_frees_its_connection_for_the_next_request() {
        let (addr, accepted) = upstream().await;
        let pool = pool(addr.port());
        for _ in 0..3 {
            let (resp, conn) = pool.send(get()).await.unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"hello");
            pool.put(conn);
            idle_becomes(&pool, 1).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for all");
        // A response dropped unread is not given back: the next request opens a connection.
        let (resp, conn) = pool.send(get()).await.unwrap();
        drop((resp, conn));
        assert_eq!(pool.idle(), 0);
        let (resp, conn) = pool.send(get()).await.unwrap();
        resp.into_body().collect().await.unwrap();
        pool.put(conn);
        idle_becomes(&pool, 1).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // Two at once: two connections, both kept.
        let ((a, ca), (b, cb)) = tokio::try_join!(pool.send(get()), pool.send(get())).unwrap();
        a.into_body().collect().await.unwrap();
        b.into_body().collect().await.unwrap();
        pool.put(ca);
        pool.put(cb);
        idle_becomes(&pool, 2).await;
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
            let (resp, conn) = pool.send(get()).await.unwrap();
            resp.into_body().collect().await.unwrap();
            pool.put(conn);
        }
        server.abort();
        let _ = server.await;
        let e = pool.send(get()).await.unwrap_err();
        assert!(e.is_connect(), "{e}");
        assert!(e.to_string().starts_with("tcp connect error"), "{e}");
        assert!(
            chain(&e).starts_with("tcp connect error: Connection refused"),
            "{}",
            chain(&e)
        );
    }
}
