//! The HTTP front: a listener that bounds the open connections, a per-connection idle
//! timeout, a request-header timeout, and the accept loop that serves the router with
//! graceful shutdown.
//!
//! Each open HTTP/1.1 connection holds buffers and a task (tens of KiB); a client that
//! opens thousands would grow the server's memory without bound, which a firewall
//! under attack cannot afford. Past `max_connections`, a new connection is answered
//! one `503` with `Retry-After` and closed, by a small task that holds no connection
//! state; the connections already open are served as before. A connection admitted
//! must also give its slot back: one that sends a request's headers too slowly is
//! closed after the header timeout (slowloris), and one on which nothing is read or
//! written for the idle timeout is closed (a client that opens connections and sends
//! nothing, or stops reading an answer).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

/// The answer to a connection past the limit (the JSON error shape of every other 503).
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 82\r\n\
\r\n\
{\"error\":\"overloaded\",\"message\":\"too many open connections; retry after 1 second\"}";

/// How long a refused connection may take to send its request and read the answer.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest idle or header timeout taken (longer ones are cut to it), so that
/// adding one to the clock cannot overflow.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Refusals answered at once; past it a new connection is closed unanswered (the
/// refusals are bounded too: a flood of connections must not become a flood of tasks).
const MAX_REFUSALS: usize = 2048;

/// A TCP listener that admits at most `max` open connections.
#[derive(Debug)]
pub struct BoundedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    idle_timeout: Duration,
}

impl BoundedListener {
    /// Wraps `inner`, admitting at most `max` (at least 1) open connections, each
    /// closed once nothing was read or written on it for `idle_timeout`.
    pub fn new(inner: TcpListener, max: usize, idle_timeout: Duration) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS))),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            idle_timeout,
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = Admitted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => {
                    let _ = stream.set_nodelay(true);
                    return (Admitted::new(stream, permit, self.idle_timeout), addr);
                }
                Err(_) => {
                    if let Ok(slot) = Arc::clone(&self.refusals).try_acquire_owned() {
                        tokio::spawn(refuse(stream, slot));
                    }
                    // else: dropped here, closed unanswered.
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Reads what the client sent first (so that closing does not reset the connection
/// before the answer is read), answers 503 and closes. Bounded in time and memory.
async fn refuse(mut stream: TcpStream, _slot: OwnedSemaphorePermit) {
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
        let _ = stream.write_all(REFUSAL).await;
        let _ = stream.shutdown().await;
        // Drain what else the client sends until it closes, so that our close does
        // not turn into a reset that could discard the answer in flight.
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// An admitted connection: its permit is given back when it closes. Reads and writes
/// fail with `TimedOut` once nothing was read or written for the idle timeout, which
/// makes the connection's task end and close it.
#[derive(Debug)]
pub struct Admitted {
    /// Declared before `stream`, so dropped first: by the time the client sees the
    /// close, the slot is free again and it can reconnect at once.
    _permit: OwnedSemaphorePermit,
    stream: TcpStream,
    idle_timeout: Duration,
    /// When a byte was last read or written.
    last_progress: Instant,
    /// Wakes a pending read or write to look at `last_progress` again; re-armed only
    /// when it fires, so progress costs a clock read, not a timer update.
    timer: Pin<Box<Sleep>>,
}

impl Admitted {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, idle_timeout: Duration) -> Self {
        let idle_timeout = idle_timeout.min(MAX_TIMEOUT);
        let now = Instant::now();
        Self {
            stream,
            _permit: permit,
            idle_timeout,
            last_progress: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
        }
    }

    fn progressed(&mut self) {
        self.last_progress = Instant::now();
    }

    /// What a write answers: bytes written are progress; pending looks at the idle time.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progressed();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.poll_idle(cx),
        }
    }

    /// For a read or write that is pending: `TimedOut` once the connection has been
    /// idle for the idle timeout, else pending (with the timer armed to look again).
    fn poll_idle<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        loop {
            let deadline = self.last_progress + self.idle_timeout;
            if Instant::now() >= deadline {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                )));
            }
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => continue,
            }
        }
    }
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.poll_idle(cx),
        }
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.after_write(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.after_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves `router` on the connections `listener` admits until `shutdown` resolves;
/// then stops accepting, lets every open connection finish the request it is in
/// (answering it with `connection: close`), and returns when all are closed. A
/// connection whose request headers are not complete `header_read_timeout` after it
/// opened (or, kept alive, after the previous answer) is closed. Each request
/// carries `ConnectInfo<SocketAddr>` of its peer.
pub async fn serve(
    mut listener: BoundedListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    // Each connection's task holds a receiver of `signal` (told to shut down when the
    // sender is dropped) and of `closed` (whose sender learns when all are gone).
    let header_read_timeout = header_read_timeout.min(MAX_TIMEOUT);
    let (signal_tx, signal_rx) = watch::channel(());
    let (closed_tx, closed_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let service =
            router
                .clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(addr));
                    request
                });
        let service = TowerToHyperService::new(service);
        let mut signal = signal_rx.clone();
        let closed = closed_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let mut conn = pin!(
                builder
                    .serve_connection(TokioIo::new(io), service)
                    .with_upgrades()
            );
            let mut signalled = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::trace!(error = %e, "connection ended");
                        }
                        break;
                    }
                    _ = signal.changed(), if !signalled => {
                        signalled = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(closed);
        });
    }
    // Stop accepting (closes the listening socket), tell every connection, wait.
    drop(listener);
    drop(signal_rx);
    drop(signal_tx);
    drop(closed_rx);
    closed_tx.closed().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_huge_idle_timeout_is_cut_to_a_day_not_an_overflow() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let mut listener = BoundedListener::new(inner, 1, Duration::MAX);
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"x").await.unwrap();
            s
        });
        let (mut io, _) = axum::serve::Listener::accept(&mut listener).await;
        let mut buf = [0u8; 1];
        io.read_exact(&mut buf).await.unwrap();
        // A read with nothing to read arms the idle timer.
        let pending = tokio::time::timeout(Duration::from_millis(50), io.read(&mut buf)).await;
        assert!(pending.is_err(), "nothing more was sent");
        drop(client);
    }

    #[test]
    fn the_refusal_declares_its_body_length() {
        let text = std::str::from_utf8(REFUSAL).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(v["error"], "overloaded");
    }
}
