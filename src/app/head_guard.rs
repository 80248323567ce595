//! A request line too long for the HTTP parser, answered with the API's JSON error shape.
//!
//! hyper refuses a request whose URI is over 64 KiB (`414`) or whose head outgrows its buffer
//! (`431`) itself, with an empty body, before any layer of the app sees the request: a client
//! that sent a 1 MiB query string got no `{"error", "parameter"}` naming what was wrong. So each
//! connection's bytes pass through [`HeadGuard`], which follows the HTTP/1 framing just far
//! enough to find request lines (heads end at an empty line; a `Content-Length` body is
//! skipped), and answers a request line longer than [`MAX_REQUEST_LINE`] with a JSON `414`
//! before hyper's limits are reached, then closes the connection. A connection it cannot
//! follow (a chunked body, an upgrade) is passed through unwatched from then on: hyper's own
//! limits still hold there.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest request line (method, URI, version) answered normally: under hyper's URI limit
/// (65,534 bytes), with room for the method and version.
pub const MAX_REQUEST_LINE: usize = 60 << 10;

/// How much of a header line is kept to read `Content-Length`, `Transfer-Encoding`, `Upgrade`.
const HEADER_PREFIX: usize = 256;

/// Where the guard is in the stream of requests.
enum Framing {
    /// In a request line, this many bytes into it.
    Line(usize),
    /// In the header lines: the current line's start and what the head said so far.
    Headers {
        line: Vec<u8>,
        content_length: u64,
        unfollowable: bool,
    },
    /// In a body, this many bytes before its end.
    Body(u64),
    /// Not followed any more (chunked body, upgrade, a header it could not read).
    Off,
    /// Answering a request line that was too long: this much of the answer is written, then
    /// the rest of what the client sends is read and dropped (up to [`MAX_DRAIN`]), since
    /// closing a socket with unread input resets it and the client may lose the answer.
    Refusing { written: usize, drained: usize },
}

/// The most input read and dropped after a refusal, before the connection is given up.
const MAX_DRAIN: usize = 16 << 20;

/// An I/O stream whose requests' lines are bounded; see the module documentation.
pub struct HeadGuard<S> {
    inner: S,
    framing: Framing,
}

impl<S> HeadGuard<S> {
    pub fn new(inner: S) -> Self {
        HeadGuard {
            inner,
            framing: Framing::Line(0),
        }
    }
}

/// The answer to a request line over [`MAX_REQUEST_LINE`].
fn refusal() -> Vec<u8> {
    let body = serde_json::json!({
        "error": format!("the URL is too long: a request line may have at most {MAX_REQUEST_LINE} bytes"),
        "parameter": "query",
    })
    .to_string();
    format!(
        "HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl Framing {
    /// Follows `bytes`; answers false when a request line went over the limit.
    fn follow(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            match self {
                Framing::Line(n) => {
                    let (b, rest) = (bytes[0], &bytes[1..]);
                    bytes = rest;
                    match b {
                        // Empty lines before a request are allowed (RFC 9112, 2.2).
                        b'\n' if *n == 0 => {}
                        b'\n' => {
                            *self = Framing::Headers {
                                line: Vec::new(),
                                content_length: 0,
                                unfollowable: false,
                            }
                        }
                        b'\r' => {}
                        _ => {
                            *n += 1;
                            if *n > MAX_REQUEST_LINE {
                                return false;
                            }
                        }
                    }
                }
                Framing::Headers {
                    line,
                    content_length,
                    unfollowable,
                } => {
                    let (b, rest) = (bytes[0], &bytes[1..]);
                    bytes = rest;
                    if b != b'\n' {
                        if line.len() < HEADER_PREFIX && b != b'\r' {
                            line.push(b);
                        }
                        continue;
                    }
                    if line.is_empty() {
                        *self = match (*unfollowable, *content_length) {
                            (true, _) => Framing::Off,
                            (false, 0) => Framing::Line(0),
                            (false, n) => Framing::Body(n),
                        };
                        continue;
                    }
                    let text = String::from_utf8_lossy(line).to_ascii_lowercase();
                    let (name, value) = text.split_once(':').unwrap_or((&text, ""));
                    match name.trim() {
                        "content-length" => match value.trim().parse() {
                            Ok(n) => *content_length = n,
                            Err(_) => *unfollowable = true,
                        },
                        "transfer-encoding" | "upgrade" => *unfollowable = true,
                        _ => {}
                    }
                    line.clear();
                }
                Framing::Body(n) => {
                    let skip = usize::try_from(*n).unwrap_or(usize::MAX).min(bytes.len());
                    bytes = &bytes[skip..];
                    *n -= skip as u64;
                    if *n == 0 {
                        *self = Framing::Line(0);
                    }
                }
                Framing::Off | Framing::Refusing { .. } => return true,
            }
        }
        true
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Framing::Refusing { written, drained } = &mut this.framing {
            let answer = refusal();
            while *written < answer.len() {
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &answer[*written..]))?;
                if n == 0 {
                    break;
                }
                *written += n;
            }
            ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
            let mut sink = [0u8; 8192];
            while *drained < MAX_DRAIN {
                let mut scratch = ReadBuf::new(&mut sink);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut scratch))?;
                if scratch.filled().is_empty() {
                    break;
                }
                *drained += scratch.filled().len();
            }
            // hyper sees the connection fail and drops it without answering itself.
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the request line is too long; answered 414",
            )));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if !this.framing.follow(&buf.filled()[before..]) {
            buf.set_filled(before);
            this.framing = Framing::Refusing {
                written: 0,
                drained: 0,
            };
            return Pin::new(this).poll_read(cx, buf);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadGuard<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sends `request` through a guard and answers what the guard let through and what it
    /// answered the client itself.
    async fn through(request: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut guard = HeadGuard::new(server);
        let sender = tokio::spawn(async move {
            // The guard stops reading after a refusal: the rest may not be taken.
            let _ = client.write_all(&request).await;
            let _ = client.shutdown().await;
            let mut answer = Vec::new();
            let _ = client.read_to_end(&mut answer).await;
            answer
        });
        let mut passed = Vec::new();
        let mut chunk = vec![0; 4096];
        loop {
            match guard.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => passed.extend_from_slice(&chunk[..n]),
            }
        }
        drop(guard);
        (passed, sender.await.unwrap())
    }

    #[tokio::test]
    async fn a_request_line_of_a_mebibyte_is_answered_414_as_json() {
        let request = format!(
            "GET /api/v1/runs?service={} HTTP/1.1\r\nhost: x\r\n\r\n",
            "a".repeat(1 << 20)
        );
        let (passed, answer) = through(request.into_bytes()).await;
        assert!(
            passed.len() <= MAX_REQUEST_LINE + 4096,
            "{} bytes reached the parser",
            passed.len()
        );
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 414 "), "{answer}");
        let body: serde_json::Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["parameter"], "query");
    }

    #[tokio::test]
    async fn requests_and_bodies_of_any_size_pass_untouched() {
        // A body of one long line (no line breaks) is skipped by its length, so the next
        // request's line is measured from its own start.
        let body = "b".repeat(200_000);
        let mut request = format!(
            "\r\nPOST /api/v1/runs HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        request.push_str(&format!(
            "GET /api/v1/runs?q={} HTTP/1.1\r\n\r\n",
            "q".repeat(1000)
        ));
        let (passed, answer) = through(request.clone().into_bytes()).await;
        assert_eq!(passed, request.as_bytes());
        assert!(answer.is_empty());
    }

    #[tokio::test]
    async fn a_chunked_body_turns_the_guard_off_for_the_connection() {
        let request = format!(
            "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{}",
            "c".repeat(MAX_REQUEST_LINE * 2)
        );
        let (passed, answer) = through(request.clone().into_bytes()).await;
        assert_eq!(passed.len(), request.len());
        assert!(answer.is_empty());
    }
}
