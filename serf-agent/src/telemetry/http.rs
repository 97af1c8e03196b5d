//! A minimal HTTP/1.1 responder for Prometheus scrapes: `GET /metrics` (and `HEAD`),
//! one request per connection, bounded in size, time and number of connections, since
//! whoever can reach the port may be hostile.

use super::{Collect, render_prometheus};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// The largest request head read; a scrape's is a few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;
/// Time allowed to send the request head, and to take the response.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;

/// The Prometheus endpoint, serving until dropped.
#[derive(Debug)]
pub struct PrometheusServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl PrometheusServer {
    /// The address it listens on (the bound port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on `addr` and answers `GET /metrics` with every figure [`Collect`] gives, in
/// the Prometheus text format 0.0.4. Other paths get 404, other methods 405, a malformed
/// or oversized request 400 or 431. Must be called inside a tokio runtime.
pub async fn serve_prometheus(addr: SocketAddr, collect: Collect) -> io::Result<PrometheusServer> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            // Cannot fail: the semaphore is never closed.
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                // Out of descriptors and the like: wait a moment rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let collect = Arc::clone(&collect);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(IO_TIMEOUT * 2, serve_one(stream, collect)).await;
                drop(permit);
            });
        }
    });
    Ok(PrometheusServer { local_addr, task })
}

async fn serve_one(mut stream: TcpStream, collect: Collect) -> io::Result<()> {
    let head = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => {
            respond(&mut stream, 431, "request too large\n", false).await?;
            // Closing with unread input would reset the connection and could destroy the
            // response before the client reads it; read a bounded amount first.
            let mut sink = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                let mut left = 64 * 1024usize;
                while left > 0 {
                    match stream.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => left = left.saturating_sub(n),
                    }
                }
            })
            .await;
            return Ok(());
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => return respond(&mut stream, 408, "request timeout\n", false).await,
    };
    let line = head.split("\r\n").next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        return respond(&mut stream, 400, "bad request\n", false).await;
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return respond(&mut stream, 400, "bad request\n", false).await;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return respond(&mut stream, 405, "only GET and HEAD\n", false).await,
    };
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return respond(&mut stream, 404, "metrics are at /metrics\n", head_only).await;
    }
    let body = render_prometheus(&collect().await.samples());
    respond(&mut stream, 200, &body, head_only).await
}

/// Reads up to the end of the request head; `None` if it exceeds [`MAX_REQUEST`].
async fn read_head(stream: &mut TcpStream) -> io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        if buf.len() > MAX_REQUEST {
            return Ok(None);
        }
    }
}

async fn respond(stream: &mut TcpStream, code: u16, body: &str, head_only: bool) -> io::Result<()> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        _ => "Request Header Fields Too Large",
    };
    let content_type = if code == 200 {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    })
    .await
    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}
