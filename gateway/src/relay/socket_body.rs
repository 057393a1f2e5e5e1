//! HTTP/1.1 body framing (RFC 9112 §6–7), and an upstream response body read straight from its
//! socket.
//!
//! An SSE stream can stay open for hours while carrying nothing: bytes are read into a stack
//! buffer only when the socket is readable, the framing (chunked, `Content-Length`, or until
//! close) is decoded in place, and nothing is kept between events. A body that ends cleanly on
//! a keep-alive connection gives the connection back to its pool.

use super::upstream::H1Pool;
use crate::body::BoxError;
use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length`: this many bytes remain.
    Length(u64),
    /// Neither: the body ends when the upstream closes the connection.
    UntilClose,
}

impl Framing {
    /// The framing the response head `headers` declares; `None` when it cannot be relayed
    /// (a transfer coding other than a final `chunked`, or an invalid `Content-Length`).
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        // One walk over the (few) fields instead of a hashed lookup per name.
        let (mut codings, mut chunked_last, mut length) = (0usize, false, None);
        for (name, value) in headers {
            if name == http::header::TRANSFER_ENCODING {
                if value.to_str().is_ok() {
                    for coding in crate::http1::tokens(value.as_bytes()) {
                        codings += 1;
                        chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                    }
                }
            } else if name == http::header::CONTENT_LENGTH && length.is_none() {
                length = Some(value);
            }
        }
        if codings > 0 {
            // Only a lone `chunked` is decoded here; anything else stays with hyper.
            return (codings == 1 && chunked_last).then_some(Framing::Chunked);
        }
        match length {
            Some(v) => v.to_str().ok()?.trim().parse().ok().map(Framing::Length),
            None => Some(Framing::UntilClose),
        }
    }
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line (hex digits, optional extensions, CRLF).
    Size,
    /// Inside a chunk: this many data bytes remain.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last (zero-size) chunk: trailer lines until an empty one.
    Trailers,
    /// The body is complete.
    Done,
}

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

/// Decodes a body's framing from bytes as they arrive.
#[derive(Debug)]
pub struct Decoder {
    framing: Framing,
    chunk: Chunk,
    /// Request side: lines must end in CRLF and chunk sizes carry no whitespace, so the
    /// gateway never reads a request's end differently from a strict proxy in front of it.
    strict: bool,
    /// Trailer bytes read so far (bounded when `strict`).
    trailer_bytes: usize,
}

impl Decoder {
    /// A decoder for a response body framed as `framing` (bare LF and padded sizes accepted,
    /// as upstreams send them).
    pub fn new(framing: Framing) -> Self {
        let chunk = match framing {
            Framing::Length(0) => Chunk::Done,
            _ => Chunk::Size,
        };
        Self {
            framing,
            chunk,
            strict: false,
            trailer_bytes: 0,
        }
    }

    /// A decoder for a request body framed as `framing`: strict RFC 9112 chunk syntax.
    pub fn strict(framing: Framing) -> Self {
        Self {
            strict: true,
            ..Self::new(framing)
        }
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        self.chunk == Chunk::Done
    }

    /// Take the next piece of body data out of `buf`, consuming framing bytes as it goes.
    /// `Ok(None)`: more bytes are needed (or the body is done).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, String> {
        loop {
            match (self.framing, self.chunk) {
                (_, Chunk::Done) => return Ok(None),
                (Framing::UntilClose, _) => {
                    return Ok((!buf.is_empty()).then(|| buf.split().freeze()));
                }
                (Framing::Length(_), _) => {
                    let Framing::Length(left) = &mut self.framing else {
                        unreachable!()
                    };
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = (*left).min(buf.len() as u64) as usize;
                    *left -= n as u64;
                    if *left == 0 {
                        self.chunk = Chunk::Done;
                    }
                    return Ok(Some(buf.split_to(n).freeze()));
                }
                (Framing::Chunked, Chunk::Size) => {
                    let Some(line) = take_line(buf, self.strict)? else {
                        return Ok(None);
                    };
                    if self.strict
                        && line
                            .iter()
                            .any(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f)
                    {
                        return Err("a control character in a chunk extension".into());
                    }
                    let size = line.split(|b| *b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(size)
                        .ok()
                        .map(|s| if self.strict { s } else { s.trim() })
                        .filter(|s| {
                            !s.is_empty()
                                && s.len() <= 16
                                && s.bytes().all(|b| b.is_ascii_hexdigit())
                        })
                        .and_then(|s| u64::from_str_radix(s, 16).ok())
                        .ok_or_else(|| "an invalid chunk size".to_string())?;
                    self.chunk = if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    };
                }
                (Framing::Chunked, Chunk::Data(left)) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = left.min(buf.len() as u64) as usize;
                    let data = buf.split_to(n).freeze();
                    self.chunk = if n as u64 == left {
                        // Consume the chunk's CRLF now if it is here, so an idle stream
                        // keeps no bytes (and no buffer) between events.
                        if buf.starts_with(b"\r\n") {
                            buf.advance(2);
                            Chunk::Size
                        } else if buf.starts_with(b"\n") && !self.strict {
                            buf.advance(1);
                            Chunk::Size
                        } else {
                            Chunk::DataEnd
                        }
                    } else {
                        Chunk::Data(left - n as u64)
                    };
                    return Ok(Some(data));
                }
                (Framing::Chunked, Chunk::DataEnd) => {
                    let Some(line) = take_line(buf, self.strict)? else {
                        return Ok(None);
                    };
                    if !line.is_empty() {
                        return Err("a chunk longer than its size".into());
                    }
                    self.chunk = Chunk::Size;
                }
                (Framing::Chunked, Chunk::Trailers) => {
                    let Some(line) = take_line(buf, self.strict)? else {
                        return Ok(None);
                    };
                    self.trailer_bytes += line.len() + 2;
                    if self.strict && self.trailer_bytes > MAX_LINE {
                        return Err("an overlong trailer section".into());
                    }
                    if line.is_empty() {
                        self.chunk = Chunk::Done;
                    }
                }
            }
        }
    }
}

/// One CRLF-terminated line out of `buf` (without its CRLF; a bare LF is accepted unless
/// `strict`), or `None` until it is complete.
fn take_line(buf: &mut BytesMut, strict: bool) -> Result<Option<Bytes>, String> {
    match buf.iter().position(|b| *b == b'\n') {
        Some(i) => {
            let mut line = buf.split_to(i + 1).freeze();
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.truncate(i - 1);
            } else if strict {
                return Err("a chunk line ending in a bare LF".into());
            }
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err("an overlong chunk line".into()),
        None => Ok(None),
    }
}

/// A response body read from the upstream socket (see the module documentation).
pub struct SocketBody {
    /// `None` once the connection went back to its pool.
    io: Option<TcpStream>,
    /// Bytes read but not decoded yet; empty (no allocation) between events.
    pending: BytesMut,
    decoder: Decoder,
    /// Where the connection goes once the body has ended, if it can carry another request.
    pool: Option<Arc<H1Pool>>,
}

impl SocketBody {
    /// The body of a response whose head was read from `io`: `read` holds the bytes read past
    /// the head. With `pool`, the connection is returned there when the body ends cleanly.
    pub fn new(io: TcpStream, read: BytesMut, framing: Framing, pool: Option<Arc<H1Pool>>) -> Self {
        Self {
            io: Some(io),
            pending: read,
            decoder: Decoder::new(framing),
            pool,
        }
    }

    /// The body has ended: the connection goes back to the pool when nothing followed it.
    fn finish(&mut self) {
        if let (Some(pool), Some(io)) = (self.pool.take(), self.io.take())
            && self.pending.is_empty()
        {
            pool.checkin(io);
        }
    }
}

/// Bytes read from the socket per readable event (on the stack; copied out as data).
const READ_CHUNK: usize = 8192;

/// Read what `io` has (up to [`READ_CHUNK`], through a stack buffer) onto the end of `into`:
/// `Ok(0)` at the end of the stream. Through `AsyncRead`, so a short read marks the socket
/// drained and the next poll waits for readiness without a syscall.
pub fn read_some<IO: AsyncRead + Unpin>(
    io: &mut IO,
    into: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
    let mut buf = ReadBuf::uninit(&mut chunk);
    ready!(Pin::new(io).poll_read(cx, &mut buf))?;
    into.extend_from_slice(buf.filled());
    Poll::Ready(Ok(buf.filled().len()))
}

impl Body for SocketBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let decoded = this.decoder.decode(&mut this.pending);
            if this.pending.is_empty() {
                // Release the buffer between events (an idle stream holds none).
                this.pending = BytesMut::new();
            }
            match decoded {
                Ok(Some(data)) => {
                    if this.decoder.is_done() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(None) if this.decoder.is_done() => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(None) => {}
                Err(e) => {
                    this.io = None;
                    return Poll::Ready(Some(Err(format!("the upstream sent {e}").into())));
                }
            }
            let Some(io) = &mut this.io else {
                return Poll::Ready(Some(Err("the upstream connection is closed".into())));
            };
            match ready!(read_some(io, &mut this.pending, cx)) {
                Ok(0) if this.decoder.framing == Framing::UntilClose => {
                    this.decoder.chunk = Chunk::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return Poll::Ready(Some(Err(
                        "the upstream closed the connection before the response ended".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done() && !self.pending.has_remaining()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.framing {
            // What is left to decode, buffered or not.
            Framing::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    /// Feed `wire` in pieces of `step` bytes; collect the data and whether the body ended.
    fn decode_in_pieces(framing: Framing, wire: &[u8], step: usize) -> (Vec<u8>, bool) {
        let mut d = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(data) = d.decode(&mut buf).unwrap() {
                out.extend_from_slice(&data);
            }
        }
        (out, d.is_done())
    }

    #[test]
    fn framing_follows_the_response_head() {
        assert_eq!(
            Framing::of(&headers(&[("transfer-encoding", "chunked")])),
            Some(Framing::Chunked)
        );
        assert_eq!(
            Framing::of(&headers(&[("transfer-encoding", " Chunked ")])),
            Some(Framing::Chunked)
        );
        assert_eq!(
            Framing::of(&headers(&[("transfer-encoding", "gzip, chunked")])),
            None
        );
        assert_eq!(
            Framing::of(&headers(&[("content-length", "12")])),
            Some(Framing::Length(12))
        );
        assert_eq!(Framing::of(&headers(&[("content-length", "x")])), None);
        assert_eq!(Framing::of(&headers(&[])), Some(Framing::UntilClose));
        // Codings are read across fields; the first Content-Length counts.
        assert_eq!(
            Framing::of(&headers(&[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked")
            ])),
            None
        );
        assert_eq!(
            Framing::of(&headers(&[
                ("transfer-encoding", " , "),
                ("content-length", "7")
            ])),
            Some(Framing::Length(7))
        );
        assert_eq!(
            Framing::of(&headers(&[
                ("content-length", "5"),
                ("content-length", "9")
            ])),
            Some(Framing::Length(5))
        );
        // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3).
        assert_eq!(
            Framing::of(&headers(&[
                ("transfer-encoding", "chunked"),
                ("content-length", "3")
            ])),
            Some(Framing::Chunked)
        );
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let wire = b"7\r\ndata: a\r\n4;ext=1\r\n\n\nx\n\r\n0\r\nTrailer: t\r\n\r\n";
        for step in [1, 2, 3, 5, 7, 64] {
            let (data, done) = decode_in_pieces(Framing::Chunked, wire, step);
            assert_eq!(data, b"data: a\n\nx\n", "step {step}");
            assert!(done, "step {step}");
        }
    }

    #[test]
    fn an_open_chunked_stream_is_not_done() {
        let (data, done) = decode_in_pieces(Framing::Chunked, b"6\r\n: ping\r\n", 4);
        assert_eq!(data, b": ping");
        assert!(!done);
    }

    #[test]
    fn broken_chunked_framing_is_an_error() {
        for wire in [&b"zz\r\n"[..], b"3\r\nabcd\r\n", b"\r\n"] {
            let mut d = Decoder::new(Framing::Chunked);
            let mut buf = BytesMut::from(wire);
            let mut result = Ok(None);
            for _ in 0..4 {
                result = d.decode(&mut buf);
                if !matches!(result, Ok(Some(_))) {
                    break;
                }
            }
            assert!(result.is_err(), "{wire:?}: {result:?}");
        }
        let mut d = Decoder::new(Framing::Chunked);
        let mut long = BytesMut::from(&[b'1'; MAX_LINE + 1][..]);
        assert!(d.decode(&mut long).is_err());
    }

    #[test]
    fn request_bodies_are_decoded_strictly() {
        let decode_all = |mut d: Decoder, wire: &[u8]| {
            let mut buf = BytesMut::from(wire);
            let mut out = Vec::new();
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(data)) => out.extend_from_slice(&data),
                    Ok(None) => return Ok((out, d.is_done())),
                    Err(e) => return Err(e),
                }
            }
        };
        let good = b"5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n";
        assert_eq!(
            decode_all(Decoder::strict(Framing::Chunked), good),
            Ok((b"hello".to_vec(), true))
        );
        // What a lenient reader would take, a strict one refuses: bare LF line ends, padded
        // or signed sizes.
        for wire in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",
        ] {
            assert!(
                decode_all(Decoder::strict(Framing::Chunked), wire).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
            assert!(
                decode_all(Decoder::new(Framing::Chunked), wire).is_ok_and(|(d, _)| d == b"hello")
                    || wire.starts_with(b"+"),
                "lenient: {:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn length_and_close_delimited_bodies() {
        let (data, done) = decode_in_pieces(Framing::Length(5), b"hello", 2);
        assert_eq!((data.as_slice(), done), (&b"hello"[..], true));
        let (data, done) = decode_in_pieces(Framing::Length(5), b"hel", 2);
        assert_eq!((data.as_slice(), done), (&b"hel"[..], false));
        let (data, done) = decode_in_pieces(Framing::UntilClose, b"data: 1\n\n", 3);
        assert_eq!((data.as_slice(), done), (&b"data: 1\n\n"[..], false));
        assert!(Decoder::new(Framing::Length(0)).is_done());
    }

    /// A real socket: the body ends at the last chunk, bytes hyper had read past the head come
    /// first, and an idle stream holds no buffer.
    #[tokio::test]
    async fn reads_a_chunked_body_from_a_socket() {
        use http_body_util::BodyExt;
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"9\r\n: ready\n\n\r\n").await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            s.write_all(b"9\r\ndata: 1\n\n\r\n0\r\n\r\n").await.unwrap();
            s
        });
        let io = TcpStream::connect(addr).await.unwrap();
        let mut body = SocketBody::new(
            io,
            BytesMut::from(&b"3\r\nab\n\r\n"[..]),
            Framing::Chunked,
            None,
        );
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "ab\n");
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(second, ": ready\n\n");
        assert_eq!(body.pending.capacity(), 0, "no buffer held while idle");
        let third = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(third, "data: 1\n\n");
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
        drop(server.await.unwrap());
    }

    #[tokio::test]
    async fn a_connection_closed_mid_body_is_an_error() {
        use http_body_util::BodyExt;
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"5\r\nabc").await.unwrap();
        });
        let io = TcpStream::connect(addr).await.unwrap();
        let mut body = SocketBody::new(io, BytesMut::new(), Framing::Chunked, None);
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "abc"
        );
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
    }
}
