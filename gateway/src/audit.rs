//! The audit log: one JSON line per client→server MCP message (and per refused request), to the
//! sink the gateway's configuration names. Records hold identities, targets and decisions —
//! never credentials, session keys or message arguments.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use gatehouse_api::config::AuditConfig;
use serde::Serialize;
use std::borrow::Cow;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One audit record. Names that live in the serving snapshot (the gateway, the server) are
/// borrowed from it while the request is handled, not copied per request; a record that
/// outlives the request (a relayed stream's) is made [`owned`](Self::into_owned).
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditRecord<'a> {
    /// RFC 3339 time the request arrived.
    pub timestamp: String,
    /// The same time, for the policy decision's `now` (not written: `timestamp` is).
    #[serde(skip)]
    pub arrived: DateTime<Utc>,
    /// Gateway-assigned request id (also sent upstream as `X-Request-Id`).
    pub request_id: String,
    /// Digest of the client-visible session id (never the id itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Authenticated user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The user's email, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// TrustProvider that verified the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_provider: Option<String>,
    /// Authenticated agent id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// How the agent was identified (`clientId`, `serviceAccount`, `spiffe`, `other`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_kind: Option<String>,
    /// TrustProvider that verified the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_provider: Option<String>,
    /// The gateway (or sidecar) that served the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Cow<'a, str>>,
    /// W3C trace id from the client's `traceparent`, when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// McpServer `namespace/name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<Cow<'a, str>>,
    /// HTTP method of the request.
    pub http_method: Cow<'static, str>,
    /// Request path.
    pub path: String,
    /// JSON-RPC method (`response` for a client's reply to a server request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// JSON-RPC id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jsonrpc_id: Option<serde_json::Value>,
    /// Tool name (as the server knows it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Resource URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Prompt name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// `allow` or `deny`, when a policy decision was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Cow<'static, str>>,
    /// The deciding AccessPolicy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Cow<'a, str>>,
    /// The CredentialProvider whose credential was injected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_provider: Option<Cow<'a, str>>,
    /// The decision's or the error's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Error kind, when the gateway refused or failed the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// HTTP status returned to the client.
    pub status: u16,
    /// HTTP status the upstream returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// Milliseconds until the response headers were sent.
    pub latency_ms: f64,
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), if well formed.
pub fn trace_id(traceparent: Option<&http::HeaderValue>) -> Option<String> {
    let v = traceparent?.to_str().ok()?;
    let mut parts = v.split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    let well_formed = trace.len() == 32
        && trace
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && trace.bytes().any(|b| b != b'0');
    well_formed.then(|| trace.to_string())
}

/// `t` in RFC 3339 with milliseconds and `Z`, exactly as chrono's
/// `to_rfc3339_opts(SecondsFormat::Millis, true)` writes it (tested), without its formatting
/// machinery: every record starts with one.
fn rfc3339_millis(t: DateTime<Utc>) -> String {
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return t.to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    // A leap second (nanosecond ≥ 1e9) shows as second 60, as chrono shows it.
    let (second, millis) = match t.nanosecond() {
        n if n >= 1_000_000_000 => (60, (n - 1_000_000_000) / 1_000_000),
        n => (t.second(), n / 1_000_000),
    };
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, second);
    put(20, 3, millis);
    // ASCII digits and separators: always UTF-8.
    std::str::from_utf8(&b)
        .map(str::to_owned)
        .unwrap_or_default()
}

impl AuditRecord<'_> {
    /// The record as one JSON object, exactly as its `Serialize` form (tested), without
    /// serde's per-byte escaping for the strings that need none (nearly all of them).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        escape_into(out, self.timestamp.as_bytes());
        out.push(b'"');
        let mut w = JsonObject { out };
        w.str(ks!("request_id"), &self.request_id);
        w.opt(ks!("session"), &self.session);
        w.opt(ks!("user"), &self.user);
        w.opt(ks!("email"), &self.email);
        w.opt(ks!("user_provider"), &self.user_provider);
        w.opt(ks!("agent"), &self.agent);
        w.opt(ks!("agent_kind"), &self.agent_kind);
        w.opt(ks!("agent_provider"), &self.agent_provider);
        w.opt(ks!("gateway"), &self.gateway);
        w.opt(ks!("trace_id"), &self.trace_id);
        w.opt(ks!("server"), &self.server);
        w.str(ks!("http_method"), &self.http_method);
        w.str(ks!("path"), &self.path);
        w.opt(ks!("method"), &self.method);
        if let Some(id) = &self.jsonrpc_id {
            w.value(k!("jsonrpc_id"), id);
        }
        w.opt(ks!("tool"), &self.tool);
        w.opt(ks!("resource"), &self.resource);
        w.opt(ks!("prompt"), &self.prompt);
        w.opt(ks!("decision"), &self.decision);
        w.opt(ks!("policy"), &self.policy);
        w.opt(ks!("credential_provider"), &self.credential_provider);
        w.opt(ks!("reason"), &self.reason);
        w.opt(ks!("error"), &self.error);
        w.value(k!("status"), &self.status);
        if let Some(s) = &self.upstream_status {
            w.value(k!("upstream_status"), s);
        }
        w.value(k!("latency_ms"), &self.latency_ms);
        w.out.push(b'}');
    }

    /// A record for a request that just arrived.
    pub fn start(request_id: String, http_method: &str, path: &str) -> Self {
        let http_method = match http_method {
            "POST" => Cow::Borrowed("POST"),
            "GET" => Cow::Borrowed("GET"),
            "DELETE" => Cow::Borrowed("DELETE"),
            other => Cow::Owned(other.to_owned()),
        };
        let arrived = Utc::now();
        Self {
            timestamp: rfc3339_millis(arrived),
            arrived,
            request_id,
            http_method,
            path: path.to_string(),
            ..Default::default()
        }
    }

    /// The same record, owning every name (to outlive the request).
    pub fn into_owned(self) -> AuditRecord<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        AuditRecord {
            timestamp: self.timestamp,
            arrived: self.arrived,
            request_id: self.request_id,
            session: self.session,
            user: self.user,
            email: self.email,
            user_provider: self.user_provider,
            agent: self.agent,
            agent_kind: self.agent_kind,
            agent_provider: self.agent_provider,
            gateway: self.gateway.map(own),
            trace_id: self.trace_id,
            server: self.server.map(own),
            http_method: self.http_method,
            path: self.path,
            method: self.method,
            jsonrpc_id: self.jsonrpc_id,
            tool: self.tool,
            resource: self.resource,
            prompt: self.prompt,
            decision: self.decision,
            policy: self.policy.map(own),
            credential_provider: self.credential_provider.map(own),
            reason: self.reason,
            error: self.error,
            status: self.status,
            upstream_status: self.upstream_status,
            latency_ms: self.latency_ms,
        }
    }
}

/// Writes the members of a JSON object after its first (see [`AuditRecord::write_json`]).
struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
}

/// A member after the first, as written up to its value: `,"name":` (one copy per member
/// instead of three).
macro_rules! k {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}
/// A string member after the first, as written up to its value: `,"name":"`.
macro_rules! ks {
    ($name:literal) => {
        concat!(",\"", $name, "\":\"")
    };
}
use {k, ks};

impl JsonObject<'_> {
    /// A string member; `key` is [`ks!`]`("name")`.
    fn str(&mut self, key: &str, value: &str) {
        self.out.extend_from_slice(key.as_bytes());
        escape_into(self.out, value.as_bytes());
        self.out.push(b'"');
    }

    fn opt<S: AsRef<str>>(&mut self, key: &str, value: &Option<S>) {
        if let Some(v) = value {
            self.str(key, v.as_ref());
        }
    }

    /// Any other member; `key` is [`k!`]`("name")`.
    fn value<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        self.out.extend_from_slice(key.as_bytes());
        let _ = serde_json::to_writer(&mut *self.out, value);
    }
}

/// The inside of `value` as a JSON string, escaped exactly as serde_json escapes it: `"` and
/// `\\` backslashed, `\b \t \n \f \r` short, other control characters `\u00xx`; everything else
/// (DEL, non-ASCII) as it is. Runs of plain bytes are found eight at a time and copied whole.
fn escape_into(out: &mut Vec<u8>, mut value: &[u8]) {
    loop {
        let plain = plain_prefix(value);
        out.extend_from_slice(&value[..plain]);
        let Some((&b, rest)) = value[plain..].split_first() else {
            break;
        };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        value = rest;
    }
}

/// For eight bytes read little-endian: the high bit of each byte that needs escaping in a JSON
/// string (below 0x20, `"` or `\\`) is set. Exact for the lowest such byte, which is all
/// [`plain_prefix`] reads (a byte above one may show set when it is not).
fn special_bytes(x: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of each zero byte of `v`, exact up to the lowest one.
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    // A byte below 0x20 is one whose top three bits are all zero.
    zero(x & u64::from_ne_bytes([0xe0; 8]))
        | zero(x ^ u64::from_ne_bytes([b'"'; 8]))
        | zero(x ^ u64::from_ne_bytes([b'\\'; 8]))
}

/// How many leading bytes of `s` need no escaping in a JSON string.
fn plain_prefix(s: &[u8]) -> usize {
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let first = |mask: u64| (mask.trailing_zeros() / 8) as usize;
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let mask = special_bytes(word(chunk));
        if mask != 0 {
            return i + first(mask);
        }
        i += 8;
    }
    let rest = s.len() - i;
    if rest == 0 {
        return i;
    }
    let mask = if s.len() >= 8 {
        // The last eight bytes, of which the first `8 - rest` were found plain above.
        special_bytes(word(&s[s.len() - 8..])) >> (8 * (8 - rest))
    } else {
        // A short string, padded with spaces (plain).
        let mut padded = [b' '; 8];
        padded[..rest].copy_from_slice(s);
        special_bytes(u64::from_le_bytes(padded))
    };
    if mask == 0 { s.len() } else { i + first(mask) }
}

enum Sink {
    Stdout,
    File(std::fs::File),
    None,
}

impl Sink {
    fn open(config: &AuditConfig) -> Self {
        match config {
            AuditConfig::Stdout => Sink::Stdout,
            AuditConfig::None => Sink::None,
            AuditConfig::File { path } => {
                match OpenOptions::new().create(true).append(true).open(path) {
                    Ok(f) => Sink::File(f),
                    Err(e) => {
                        tracing::error!(%path, error = %e, "cannot open the audit file; auditing to stdout");
                        Sink::Stdout
                    }
                }
            }
        }
    }

    fn write(&mut self, lines: &[u8]) {
        let result = match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(lines).and_then(|_| out.flush())
            }
            Sink::File(f) => f.write_all(lines),
            Sink::None => Ok(()),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "audit write failed");
        }
    }
}

/// Records wait at most this long in memory before they are written.
const FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// A batch this large wakes the flusher at once, without waiting for the interval.
const FLUSH_BYTES: usize = 64 * 1024;
/// Past this much unwritten (the sink is slower than records arrive), the thread recording a
/// request writes the batch itself: auditing then slows requests down instead of dropping
/// records or holding an unbounded batch.
const MAX_PENDING: usize = 4 * 1024 * 1024;
/// After this long without records the flusher sleeps until the next one.
const IDLE_AFTER: Duration = Duration::from_secs(1);

/// Records not written yet, and the sink configuration they were recorded for.
struct Pending {
    config: Option<AuditConfig>,
    lines: Vec<u8>,
}

struct Shared {
    /// Held only to append a record or to take the batch: never across I/O.
    pending: Mutex<Pending>,
    /// The open sink (for `pending.config`), held while a batch is written to it, so batches
    /// reach it whole and in order. Lock order: `sink`, then `pending`.
    sink: Mutex<Option<Sink>>,
    /// The flusher sleeps until a record arrives (no records for [`IDLE_AFTER`]).
    flusher_idle: AtomicBool,
    closed: AtomicBool,
}

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sink(&self) -> std::sync::MutexGuard<'_, Option<Sink>> {
        self.sink.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write the pending batch to the sink, swapping it with `spare` (an empty buffer that keeps
    /// its capacity) so the lock on the batch is held only for the swap. Whether there was one.
    fn write_pending(&self, spare: &mut Vec<u8>) -> bool {
        let mut sink = self.sink();
        {
            let mut pending = self.pending();
            if pending.lines.is_empty() {
                return false;
            }
            std::mem::swap(&mut pending.lines, spare);
        }
        if let Some(sink) = sink.as_mut() {
            sink.write(spare);
        }
        spare.clear();
        true
    }

    /// Point the log at `config`'s sink: lines recorded for the previous one go there first.
    /// Returns the batch, locked, with `config` current.
    fn switch(&self, config: &AuditConfig) -> std::sync::MutexGuard<'_, Pending> {
        let mut sink = self.sink();
        let mut pending = self.pending();
        if pending.config.as_ref() != Some(config) {
            if let Some(old) = sink.as_mut() {
                old.write(&pending.lines);
            }
            pending.lines.clear();
            *sink = Some(Sink::open(config));
            pending.config = Some(config.clone());
        }
        pending
    }
}

/// Writes audit records to the configured sink; reopens it when the configuration changes.
///
/// Every record is written, in order, one JSON line each. Lines are collected in memory and
/// written in batches by a flusher thread — at most [`FLUSH_INTERVAL`] after they were
/// recorded, at once when a batch reaches [`FLUSH_BYTES`], and when the log is dropped
/// (shutdown) — so a busy gateway makes one `write` per batch instead of one per request, and
/// the request workers never wait for the disk (unless it falls [`MAX_PENDING`] behind). A
/// crash can lose the last [`FLUSH_INTERVAL`] of records.
pub struct AuditLog {
    shared: Arc<Shared>,
    flusher: Option<std::thread::Thread>,
}

impl AuditLog {
    /// An audit log with no sink until the first record (the sink follows the config).
    pub fn new() -> Self {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                config: None,
                lines: Vec::new(),
            }),
            sink: Mutex::new(None),
            flusher_idle: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let s = shared.clone();
        let flusher = std::thread::Builder::new()
            .name("gatehouse-audit".into())
            .spawn(move || flush_loop(&s))
            .map(|h| h.thread().clone())
            .map_err(|e| tracing::warn!(error = %e, "no audit flusher thread; writing each record at once"))
            .ok();
        Self { shared, flusher }
    }

    /// Write one record to the sink `config` names.
    pub fn write(&self, config: &AuditConfig, record: &AuditRecord<'_>) {
        let mut pending = self.shared.pending();
        if pending.config.as_ref() != Some(config) {
            drop(pending);
            pending = self.shared.switch(config);
        }
        if matches!(config, AuditConfig::None) {
            return;
        }
        // Serialized straight into the batch (no copy): a line is a microsecond of work.
        record.write_json(&mut pending.lines);
        pending.lines.push(b'\n');
        let size = pending.lines.len();
        drop(pending);
        match &self.flusher {
            // No flusher, or one the sink has left behind: this thread writes.
            None => self.flush(),
            Some(_) if size >= MAX_PENDING => self.flush(),
            Some(t) => {
                // Read first: the flag is shared by every worker, and nearly always false.
                let idle = self.shared.flusher_idle.load(Ordering::Acquire)
                    && self.shared.flusher_idle.swap(false, Ordering::AcqRel);
                if idle || size >= FLUSH_BYTES {
                    t.unpark();
                }
            }
        }
    }

    /// Write every record recorded so far.
    pub fn flush(&self) {
        self.shared.write_pending(&mut Vec::new());
    }
}

/// The flusher thread: write what is pending every [`FLUSH_INTERVAL`] (or when woken for a full
/// batch); sleep while idle.
fn flush_loop(shared: &Shared) {
    let mut spare = Vec::new();
    let mut last_record = Instant::now();
    while !shared.closed.load(Ordering::Acquire) {
        std::thread::park_timeout(FLUSH_INTERVAL);
        if shared.write_pending(&mut spare) {
            last_record = Instant::now();
        } else if last_record.elapsed() > IDLE_AFTER {
            shared.flusher_idle.store(true, Ordering::Release);
            // A record appended before the flag was set would wait for the next one: look again.
            if !shared.pending().lines.is_empty() {
                shared.flusher_idle.store(false, Ordering::Release);
                continue;
            }
            // A writer that sees `flusher_idle` unparks us; an unpark before this park makes it
            // return at once, so no record waits for the next one.
            while shared.flusher_idle.load(Ordering::Acquire)
                && !shared.closed.load(Ordering::Acquire)
            {
                std::thread::park();
            }
            last_record = Instant::now();
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        if let Some(t) = &self.flusher {
            t.unpark();
        }
        self.flush();
    }
}

impl Default for AuditLog {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_read_as_chrono_writes_them() {
        use chrono::TimeZone;
        let mut times: Vec<DateTime<Utc>> = vec![
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 26, 23, 59, 59).unwrap()
                + chrono::Duration::nanoseconds(999_999_999),
            Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            // A leap second.
            chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                .unwrap()
                .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                .unwrap()
                .and_utc(),
            Utc::now(),
        ];
        // Every few hours and milliseconds over five centuries.
        let mut t = Utc.with_ymd_and_hms(1800, 1, 1, 0, 0, 0).unwrap();
        while t.year() < 2300 {
            times.push(t);
            t += chrono::Duration::milliseconds(29 * 3_600_000 + 7_777_777 + 1);
        }
        for t in times {
            assert_eq!(
                rfc3339_millis(t),
                t.to_rfc3339_opts(SecondsFormat::Millis, true),
                "{t:?}"
            );
        }
    }

    use super::*;

    fn full_record(text: &str) -> AuditRecord<'static> {
        let t = || Some(text.to_string());
        AuditRecord {
            timestamp: "2026-11-26T13:00:00.123Z".into(),
            arrived: DateTime::default(),
            request_id: "00ff00ff00ff00ff".into(),
            session: t(),
            user: t(),
            email: t(),
            user_provider: t(),
            agent: t(),
            agent_kind: t(),
            agent_provider: t(),
            gateway: t().map(Cow::Owned),
            trace_id: t(),
            server: t().map(Cow::Owned),
            http_method: "POST".into(),
            path: text.into(),
            method: t(),
            jsonrpc_id: Some(serde_json::json!({"weird": [text, 1.5, null]})),
            tool: t(),
            resource: t(),
            prompt: t(),
            decision: t().map(Cow::Owned),
            policy: t().map(Cow::Owned),
            credential_provider: t().map(Cow::Owned),
            reason: t(),
            error: t(),
            status: 200,
            upstream_status: Some(502),
            latency_ms: 0.123,
        }
    }

    fn file(dir: &tempfile::TempDir, name: &str) -> (AuditConfig, std::path::PathBuf) {
        let path = dir.path().join(name);
        let config = AuditConfig::File {
            path: path.to_string_lossy().into_owned(),
        };
        (config, path)
    }

    fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
        // A batch being written may end in a partial line: only whole lines count.
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Wait (up to 5 s) for the flusher to write `n` records to `path`, without flushing.
    fn until_written(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = lines(path);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn records_from_many_threads_are_all_written_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (config, path) = file(&dir, "audit.jsonl");
        let log = Arc::new(AuditLog::new());
        // Enough for many full batches (a record is ~100 bytes here).
        let (threads, each) = (4, 5_000);
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (log, config) = (log.clone(), config.clone());
                std::thread::spawn(move || {
                    for i in 0..each {
                        let r = AuditRecord::start(format!("{t}-{i}"), "POST", "/mcp");
                        log.write(&config, &r);
                    }
                })
            })
            .collect();
        workers.into_iter().for_each(|w| w.join().unwrap());
        let got = until_written(&path, threads * each);
        assert_eq!(got.len(), threads * each, "every record, none twice");
        let mut next = vec![0; threads];
        for line in &got {
            let (t, i) = line["request_id"]
                .as_str()
                .unwrap()
                .split_once('-')
                .unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s records in the order recorded");
            next[t] += 1;
        }
    }

    #[test]
    fn a_new_sink_gets_only_the_records_made_for_it_and_an_idle_flusher_wakes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, a_path) = file(&dir, "a.jsonl");
        let (b, b_path) = file(&dir, "b.jsonl");
        let log = AuditLog::new();
        log.write(&a, &AuditRecord::start("a1".into(), "POST", "/mcp"));
        log.write(&b, &AuditRecord::start("b1".into(), "POST", "/mcp"));
        log.write(
            &AuditConfig::None,
            &AuditRecord::start("n".into(), "POST", "/mcp"),
        );
        log.write(&a, &AuditRecord::start("a2".into(), "POST", "/mcp"));
        let ids = |v: Vec<serde_json::Value>| -> Vec<String> {
            v.iter()
                .map(|l| l["request_id"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(until_written(&a_path, 2)), ["a1", "a2"]);
        assert_eq!(ids(lines(&b_path)), ["b1"]);
        // Past IDLE_AFTER the flusher sleeps; the next record wakes it (no flush() here).
        std::thread::sleep(IDLE_AFTER + Duration::from_millis(300));
        assert!(log.shared.flusher_idle.load(Ordering::Acquire));
        log.write(&a, &AuditRecord::start("a3".into(), "POST", "/mcp"));
        assert_eq!(ids(until_written(&a_path, 3)), ["a1", "a2", "a3"]);
    }

    #[test]
    fn the_plain_prefix_ends_at_the_first_byte_json_escapes() {
        let special = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        let naive = |s: &[u8]| s.iter().position(|&b| special(b)).unwrap_or(s.len());
        // Plain bytes next to the special ones in value or in borrow behaviour, and a few
        // specials; every length across the word size, a special at every offset (and a
        // second one after it, which must not move the answer).
        let plain = [b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xe0, 0xff, b'a'];
        let specials = [0x00, 0x01, 0x1f, b'"', b'\\', b'\n'];
        for len in 0..=25 {
            let base: Vec<u8> = (0..len).map(|i| plain[i % plain.len()]).collect();
            assert_eq!(plain_prefix(&base), len);
            for at in 0..len {
                for &sp in &specials {
                    let mut s = base.clone();
                    s[at] = sp;
                    assert_eq!(plain_prefix(&s), naive(&s), "{s:?}");
                    if at + 1 < len {
                        s[at + 1] = b'"';
                        assert_eq!(plain_prefix(&s), at, "{s:?}");
                    }
                }
            }
        }
    }

    /// The hand-written line is byte for byte what serde writes: same order, same optional
    /// fields left out, same escaping (plain, quotes, control characters, non-ASCII, DEL).
    #[test]
    fn the_audit_line_is_exactly_its_serde_form() {
        let texts = [
            "plain",
            "quote\" back\\slash",
            "tab\tnl\ncr\r\u{1}\u{7f}",
            "ünï €",
            "",
            // Long enough for the eight-byte scan, with specials at every offset of a word.
            "allowed by AccessPolicy default/u00915-bench: user \"u00915\" matched",
            "0123456\"89abcde\\ghijklm\u{1f}opqrstu\u{0}wxyz",
        ];
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        let texts = texts
            .iter()
            .map(|t| t.to_string())
            .chain([every_ascii.repeat(3)]);
        let mut records: Vec<AuditRecord> = texts.map(|t| full_record(&t)).collect();
        records.push(AuditRecord::start("id".into(), "GET", "/mcp"));
        records.push(AuditRecord {
            latency_ms: 12.0,
            jsonrpc_id: Some(serde_json::json!(7)),
            ..AuditRecord::default()
        });
        for r in records {
            let mut ours = Vec::new();
            r.write_json(&mut ours);
            let serde = serde_json::to_vec(&r).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }
}
