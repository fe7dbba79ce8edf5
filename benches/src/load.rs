//! A small HTTP/1.1 load client for the `http` scenario: keep-alive
//! connections, one blocking thread each, sending `GET` requests one after
//! another for a fixed time and counting the complete responses in each
//! second. It runs on the host, outside whatever runs the server. Bodies are
//! read by `Content-Length` (a chunked response is an error: the servers of
//! the scenario send the length).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// A response head larger than this is an error.
const MAX_HEAD: usize = 64 << 10;
/// How long a read or a write may block before the run fails.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub addr: SocketAddr,
    /// The request target, e.g. `/hello.txt`.
    pub path: String,
    /// Concurrent connections (one thread each).
    pub conns: usize,
    /// Requests before the timed window: not counted.
    pub warmup: Duration,
    /// The timed window, in whole seconds.
    pub seconds: u64,
    /// The body every response must have.
    pub body: Vec<u8>,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Complete responses in each second of the timed window.
    pub per_second: Vec<u64>,
    /// Complete responses, warm-up included.
    pub total: u64,
    /// Times a connection was closed by the server between responses and
    /// opened again.
    pub reconnects: u64,
}

impl Outcome {
    pub fn responses(&self) -> u64 {
        self.per_second.iter().sum()
    }
}

/// Run `plan`: every connection's error fails the run (with the first one).
pub fn run(plan: &Plan) -> anyhow::Result<Outcome> {
    anyhow::ensure!(plan.conns > 0 && plan.seconds > 0, "nothing to run");
    let start = Instant::now() + Duration::from_millis(50);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\n\r\n",
        plan.path, plan.addr
    )
    .into_bytes();
    let results: Vec<anyhow::Result<(Vec<u64>, u64, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..plan.conns)
            .map(|_| s.spawn(|| connection(plan, &request, start)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("a load thread panicked")))
            .collect()
    });
    let mut out = Outcome {
        per_second: vec![0; plan.seconds as usize],
        total: 0,
        reconnects: 0,
    };
    for (i, r) in results.into_iter().enumerate() {
        let (counts, done, reconnects) = r.with_context(|| format!("connection {}", i + 1))?;
        out.total += done;
        for (t, c) in out.per_second.iter_mut().zip(counts) {
            *t += c;
        }
        out.reconnects += reconnects;
    }
    Ok(out)
}

fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .with_context(|| format!("cannot connect to {addr}"))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// One connection's loop: responses per second of the timed window, all
/// responses, and reconnections.
fn connection(plan: &Plan, request: &[u8], start: Instant) -> anyhow::Result<(Vec<u64>, u64, u64)> {
    let timed = start + plan.warmup;
    let end = timed + Duration::from_secs(plan.seconds);
    let mut counts = vec![0u64; plan.seconds as usize];
    let mut reconnects = 0;
    std::thread::sleep(start.saturating_duration_since(Instant::now()));
    let mut reader = ResponseReader::new(connect(plan.addr)?);
    let mut done = 0u64;
    while Instant::now() < end {
        reader
            .inner
            .write_all(request)
            .context("sending a request")?;
        let resp = match reader.next_response() {
            Ok(Some(r)) => r,
            Ok(None) => {
                // Closed between responses: the request was not answered.
                reconnects += 1;
                reader = ResponseReader::new(connect(plan.addr)?);
                continue;
            }
            Err(e) => return Err(e.context(format!("after {done} responses"))),
        };
        let now = Instant::now();
        if resp.status != 200 {
            bail!("the server answered {} (expected 200)", resp.status);
        }
        if resp.body != plan.body {
            bail!(
                "unexpected body: {} bytes (expected {})",
                resp.body.len(),
                plan.body.len()
            );
        }
        done += 1;
        if now >= timed && now < end {
            let last = counts.len() - 1;
            counts[((now - timed).as_secs() as usize).min(last)] += 1;
        }
        if resp.close {
            reconnects += 1;
            reader = ResponseReader::new(connect(plan.addr)?);
        }
    }
    Ok((counts, done, reconnects))
}

/// A response head: status, body length, where the body starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub content_length: usize,
    /// Bytes of the head, blank line included.
    pub len: usize,
    /// The server closes the connection after this response.
    pub close: bool,
}

/// Parse the response head at the start of `buf`: `Ok(None)` if it is not
/// complete yet.
pub fn parse_head(buf: &[u8]) -> anyhow::Result<Option<Head>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            bail!("no end of the response head in {} bytes", buf.len());
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).context("the response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let Some(minor) = version.strip_prefix("HTTP/1.") else {
        bail!("not an HTTP/1.x response: `{status_line}`");
    };
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .with_context(|| format!("bad status line `{status_line}`"))?;
    // HTTP/1.0 closes unless the server says keep-alive.
    let mut close = minor == "0";
    let mut length: Option<usize> = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            bail!("bad header line `{line}`");
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let n: usize = value
                    .parse()
                    .with_context(|| format!("bad Content-Length `{value}`"))?;
                if length.is_some_and(|l| l != n) {
                    bail!("two different Content-Length headers");
                }
                length = Some(n);
            }
            "transfer-encoding" if !value.eq_ignore_ascii_case("identity") => {
                bail!("Transfer-Encoding `{value}` is not supported: the server must send Content-Length");
            }
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        close = false;
                    }
                }
            }
            _ => {}
        }
    }
    let content_length = match length {
        Some(n) => n,
        // No body by definition.
        None if status < 200 || status == 204 || status == 304 => 0,
        None => bail!("the response ({status}) has no Content-Length"),
    };
    Ok(Some(Head {
        status,
        content_length,
        len: end + 4,
        close,
    }))
}

/// A complete response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub close: bool,
}

/// Reads responses one after another from a stream.
pub struct ResponseReader<R> {
    pub inner: R,
    buf: Vec<u8>,
}

impl<R: Read> ResponseReader<R> {
    pub fn new(inner: R) -> Self {
        ResponseReader {
            inner,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Read more bytes into the buffer; false at end of stream.
    fn fill(&mut self) -> anyhow::Result<bool> {
        let mut chunk = [0u8; 16 << 10];
        let n = self.inner.read(&mut chunk).context("reading a response")?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The next response; `Ok(None)` if the stream ended before its first
    /// byte (the server closed an idle connection).
    pub fn next_response(&mut self) -> anyhow::Result<Option<Response>> {
        let head = loop {
            if let Some(h) = parse_head(&self.buf)? {
                break h;
            }
            if !self.fill()? {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                bail!(
                    "the connection closed in a response head ({} bytes)",
                    self.buf.len()
                );
            }
        };
        let total = head.len + head.content_length;
        while self.buf.len() < total {
            if !self.fill()? {
                bail!(
                    "the connection closed in a body ({} of {} bytes)",
                    self.buf.len() - head.len,
                    head.content_length
                );
            }
        }
        let body = self.buf[head.len..total].to_vec();
        self.buf.drain(..total);
        Ok(Some(Response {
            status: head.status,
            body,
            close: head.close,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\nDate: Sun, 29 Nov 2026 06:48:34 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nHello, world!\n";

    #[test]
    fn head() {
        let h = parse_head(NODE).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.content_length, 14);
        assert_eq!(&NODE[h.len..], b"Hello, world!\n");
        assert!(!h.close);
    }

    #[test]
    fn incomplete_head() {
        assert_eq!(parse_head(b"").unwrap(), None);
        assert_eq!(parse_head(&NODE[..40]).unwrap(), None);
        assert!(parse_head(&vec![b'x'; MAX_HEAD + 1]).is_err());
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let h = parse_head(
            b"HTTP/1.1 404 Not Found\r\ncontent-LENGTH:  3 \r\nCONNECTION: Close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.status, h.content_length, h.close), (404, 3, true));
    }

    #[test]
    fn http10_closes_unless_kept_alive() {
        let h = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.close);
        let h =
            parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(!h.close);
    }

    #[test]
    fn bad_heads() {
        let err = |b: &[u8]| format!("{:#}", parse_head(b).unwrap_err());
        assert!(
            err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .contains("Content-Length")
        );
        assert!(err(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n").contains("no Content-Length"));
        assert!(err(b"SSH-2.0-OpenSSH\r\n\r\n").contains("not an HTTP/1.x"));
        assert!(err(b"HTTP/1.1 abc OK\r\n\r\n").contains("bad status line"));
        assert!(err(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").contains("bad Content-Length"));
        assert!(
            err(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .contains("two different")
        );
        assert!(err(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n").contains("bad header line"));
        // 204 and 304 have no body, with or without the header.
        let h = parse_head(b"HTTP/1.1 304 Not Modified\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.content_length, 0);
    }

    /// Hands out its bytes a few at a time, as a socket may.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(self.0.len()).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn responses_one_after_another() {
        let python = b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.11.2\r\nContent-type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nabcde";
        let mut stream = NODE.to_vec();
        stream.extend_from_slice(python);
        stream.extend_from_slice(NODE);
        for step in [1, 7, 4096] {
            let mut r = ResponseReader::new(Trickle(&stream, step));
            let a = r.next_response().unwrap().unwrap();
            assert_eq!(a.body, b"Hello, world!\n");
            let b = r.next_response().unwrap().unwrap();
            assert_eq!(
                (b.status, &b.body[..], b.close),
                (200, &b"abcde"[..], false)
            );
            assert_eq!(r.next_response().unwrap().unwrap(), a);
            assert_eq!(r.next_response().unwrap(), None, "clean end of stream");
        }
    }

    #[test]
    fn truncated_responses_are_errors() {
        let mut r = ResponseReader::new(Trickle(&NODE[..NODE.len() - 3], 100));
        let e = format!("{:#}", r.next_response().unwrap_err());
        assert!(e.contains("11 of 14 bytes"), "{e}");
        let mut r = ResponseReader::new(Trickle(&NODE[..20], 100));
        let e = format!("{:#}", r.next_response().unwrap_err());
        assert!(e.contains("in a response head"), "{e}");
    }

    #[test]
    fn against_a_local_server() {
        // A one-connection keep-alive server on 127.0.0.1 answering until
        // the client goes away.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    buf.drain(..i + 4);
                    if s.write_all(NODE).is_err() {
                        return;
                    }
                }
            }
        });
        let out = run(&Plan {
            addr,
            path: "/".into(),
            conns: 1,
            warmup: Duration::from_millis(100),
            seconds: 1,
            body: b"Hello, world!\n".to_vec(),
        })
        .unwrap();
        assert_eq!(out.per_second.len(), 1);
        assert!(out.responses() > 0);
        assert!(out.total >= out.responses());
        assert_eq!(out.reconnects, 0);
        server.join().unwrap();
    }
}
