//! Incremental Server-Sent Events framing (WHATWG `text/event-stream`): bytes in as they
//! arrive, complete events out as soon as their blank line arrives — never waiting for more.

use bytes::{Bytes, BytesMut};

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's bytes exactly as received, terminator included (forwarded untouched when
    /// the gateway does not rewrite the event).
    pub raw: Bytes,
    /// `event:` field.
    pub event: Option<String>,
    /// `id:` field.
    pub id: Option<String>,
    /// `retry:` field.
    pub retry: Option<String>,
    /// Concatenated `data:` lines (joined by `\n`); `None` when the event has no data line.
    pub data: Option<String>,
}

impl Event {
    /// Serialize the event with `data` replaced (other fields kept).
    pub fn with_data(&self, data: &str) -> Bytes {
        let mut out = String::with_capacity(data.len() + 64);
        if let Some(e) = &self.event {
            out.push_str(&format!("event: {e}\n"));
        }
        if let Some(id) = &self.id {
            out.push_str(&format!("id: {id}\n"));
        }
        if let Some(r) = &self.retry {
            out.push_str(&format!("retry: {r}\n"));
        }
        for line in data.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        Bytes::from(out)
    }
}

/// Why a stream cannot be framed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event grew past the limit without ending.
    #[error("an SSE event exceeds {0} bytes")]
    TooLarge(usize),
    /// Not UTF-8.
    #[error("an SSE event is not valid UTF-8")]
    NotUtf8,
}

/// The framer.
pub struct Parser {
    buf: BytesMut,
    max_event: usize,
}

impl Parser {
    /// A framer refusing events larger than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_event,
        }
    }

    /// Append received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if one has fully arrived.
    pub fn next_event(&mut self) -> Result<Option<Event>, SseError> {
        let Some(end) = event_end(&self.buf) else {
            if self.buf.len() > self.max_event {
                return Err(SseError::TooLarge(self.max_event));
            }
            return Ok(None);
        };
        let raw = self.buf.split_to(end).freeze();
        let text = std::str::from_utf8(&raw).map_err(|_| SseError::NotUtf8)?;
        let mut ev = Event {
            raw: raw.clone(),
            event: None,
            id: None,
            retry: None,
            data: None,
        };
        let mut data: Vec<&str> = Vec::new();
        for line in text.split(['\n', '\r']).filter(|l| !l.is_empty()) {
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "data" => data.push(value),
                "event" => ev.event = Some(value.to_string()),
                "id" => ev.id = Some(value.to_string()),
                "retry" => ev.retry = Some(value.to_string()),
                _ => {}
            }
        }
        ev.data = (!data.is_empty()).then(|| data.join("\n"));
        Ok(Some(ev))
    }
}

/// Index just past the blank line ending the first event in `buf`, if complete.
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut line_start = 0;
    while i < buf.len() {
        let term = match buf[i] {
            b'\n' => 1,
            b'\r' if i + 1 < buf.len() && buf[i + 1] == b'\n' => 2,
            // A lone `\r` at the end may be the first half of `\r\n`: wait for more.
            b'\r' if i + 1 == buf.len() => return None,
            b'\r' => 1,
            _ => {
                i += 1;
                continue;
            }
        };
        if i == line_start && i > 0 {
            return Some(i + term);
        }
        if i == 0 {
            // A stream starting with a blank line: an empty event; skip it as its own event.
            return Some(term);
        }
        i += term;
        line_start = i;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_as_soon_as_complete_whatever_the_chunking() {
        let mut p = Parser::new(1024);
        p.push(b"id: 1\ndata: {\"a\"");
        assert_eq!(p.next_event().unwrap(), None);
        p.push(b":1}\n");
        assert_eq!(p.next_event().unwrap(), None);
        p.push(b"\ndata: x\r\ndata: y\r\n\r\n: comment\n\n");
        let e = p.next_event().unwrap().unwrap();
        assert_eq!(
            (e.id.as_deref(), e.data.as_deref()),
            (Some("1"), Some("{\"a\":1}"))
        );
        assert_eq!(&e.raw[..], b"id: 1\ndata: {\"a\":1}\n\n");
        let e = p.next_event().unwrap().unwrap();
        assert_eq!(e.data.as_deref(), Some("x\ny"));
        let e = p.next_event().unwrap().unwrap();
        assert_eq!(e.data, None);
        assert_eq!(p.next_event().unwrap(), None);
    }

    #[test]
    fn rewriting_keeps_fields_and_oversized_events_fail() {
        let mut p = Parser::new(8);
        p.push(b"event: message\nid: 7\ndata: old\n\n");
        let e = p.next_event().unwrap().unwrap();
        assert_eq!(
            &e.with_data("new")[..],
            b"event: message\nid: 7\ndata: new\n\n"
        );
        let mut p = Parser::new(8);
        p.push(b"data: 0123456789");
        assert_eq!(p.next_event(), Err(SseError::TooLarge(8)));
    }
}
