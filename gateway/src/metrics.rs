//! Prometheus metrics. Labels never carry identities or secrets: server, method (bounded to the
//! MCP method names), decision and status only.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};

/// Labels of a relayed (or refused) request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// McpServer `namespace/name`, or `-` when no route matched.
    pub server: String,
    /// MCP method (bounded set), `GET`/`DELETE` for streams, or `-`.
    pub method: Cow<'static, str>,
    /// `allow`, `deny` or `-` when no decision was made.
    pub decision: Cow<'static, str>,
    /// HTTP status returned to the client.
    pub status: u16,
}

/// Labels of a server-scoped metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    /// McpServer `namespace/name`.
    pub server: String,
}

/// Labels of an upstream error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    /// McpServer `namespace/name`.
    pub server: String,
    /// `connect`, `timeout`, `status`, `malformed_sse`, `idle_timeout`, …
    pub kind: String,
}

/// Labels of the config-info gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigLabels {
    /// Snapshot version (content hash).
    pub version: String,
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by server, method, decision and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Time to upstream response headers (or to the refusal), seconds.
    pub latency: Family<ServerLabels, Histogram, fn() -> Histogram>,
    /// Upstream failures.
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    /// Sessions minted minus sessions ended by DELETE.
    pub active_sessions: Gauge,
    /// SSE streams currently relayed.
    pub active_streams: Gauge,
    /// 1 for the config version being served.
    pub config_info: Family<ConfigLabels, Gauge>,
    current_version: Mutex<Option<String>>,
    /// The request metrics of each server, by server label: the same metrics the families
    /// hold, found per request with one short lookup instead of hashing every label.
    handles: RwLock<HashMap<String, ServerHandles, foldhash::fast::RandomState>>,
    /// Successful configuration loads.
    pub reloads: Counter,
    /// Rejected configuration loads (the previous config kept serving).
    pub reload_failures: Counter,
}

/// One server's request metrics (shared with the families): its latency histogram and its
/// request counters by (method, decision, status).
struct ServerHandles {
    latency: Histogram,
    requests: Vec<((&'static str, &'static str, u16), Counter)>,
}

/// Servers whose handles are kept (servers removed by a reload keep theirs, as the families
/// keep their series).
const MAX_HANDLE_SERVERS: usize = 4096;
/// (method, decision, status) sets kept per server: a server sees a handful.
const MAX_HANDLE_LABEL_SETS: usize = 64;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gatehouse");
        let requests = Family::default();
        registry.register(
            "requests",
            "MCP requests by server, method, decision and HTTP status",
            requests.clone(),
        );
        let latency: Family<ServerLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Time until the upstream's response headers (or the gateway's refusal)",
            latency.clone(),
        );
        let upstream_errors = Family::default();
        registry.register(
            "upstream_errors",
            "Upstream failures by server and kind",
            upstream_errors.clone(),
        );
        let active_sessions = Gauge::default();
        registry.register(
            "active_sessions",
            "Sessions minted by this process and not yet deleted",
            active_sessions.clone(),
        );
        let active_streams = Gauge::default();
        registry.register(
            "active_streams",
            "SSE streams currently relayed",
            active_streams.clone(),
        );
        let config_info = Family::default();
        registry.register(
            "config_info",
            "The configuration version being served (value 1)",
            config_info.clone(),
        );
        let reloads = Counter::default();
        registry.register("config_reloads", "Configurations applied", reloads.clone());
        let reload_failures = Counter::default();
        registry.register(
            "config_reload_failures",
            "Configurations rejected; the last good one kept serving",
            reload_failures.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            upstream_errors,
            active_sessions,
            active_streams,
            config_info,
            current_version: Mutex::new(None),
            handles: RwLock::default(),
            reloads,
            reload_failures,
        }
    }

    /// Record that `version` is now served.
    pub fn set_config_version(&self, version: &str) {
        let mut current = self
            .current_version
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(old) = current.take() {
            self.config_info.remove(&ConfigLabels { version: old });
        }
        self.config_info
            .get_or_create(&ConfigLabels {
                version: version.to_string(),
            })
            .set(1);
        *current = Some(version.to_string());
    }

    /// Count a request and observe its latency under its labels (`server` is `None` when no
    /// route matched).
    pub fn request(
        &self,
        server: Option<&str>,
        method: &'static str,
        decision: &'static str,
        status: u16,
        seconds: f64,
    ) {
        let server = server.unwrap_or("-");
        let key = (method, decision, status);
        {
            let handles = self.handles.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(h) = handles.get(server)
                && let Some((_, counter)) = h.requests.iter().find(|(k, _)| *k == key)
            {
                counter.inc();
                h.latency.observe(seconds);
                return;
            }
        }
        let labels = RequestLabels {
            server: server.to_string(),
            method: Cow::Borrowed(method),
            decision: Cow::Borrowed(decision),
            status,
        };
        let counter = self.requests.get_or_create(&labels).clone();
        let latency = self
            .latency
            .get_or_create(&ServerLabels {
                server: labels.server,
            })
            .clone();
        counter.inc();
        latency.observe(seconds);
        let mut handles = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        // Bounded: past these, requests go through the families (correct, only slower).
        if handles.len() >= MAX_HANDLE_SERVERS && !handles.contains_key(server) {
            return;
        }
        let h = handles
            .entry(server.to_string())
            .or_insert_with(|| ServerHandles {
                latency,
                requests: Vec::new(),
            });
        if h.requests.len() < MAX_HANDLE_LABEL_SETS && !h.requests.iter().any(|(k, _)| *k == key) {
            h.requests.push((key, counter));
        }
    }

    /// Count an upstream error.
    pub fn upstream_error(&self, server: &str, kind: &str) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                server: server.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Decrements the active-streams gauge when a relayed stream ends, however it ends.
pub struct StreamGuard(Gauge);

impl StreamGuard {
    /// Count a stream as open until the guard drops.
    pub fn open(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The bounded method label: known MCP methods as themselves, anything else as `other`.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
        "response",
        "GET",
        "DELETE",
        "-",
    ];
    KNOWN
        .iter()
        .find(|k| **k == method)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    /// The first request of a label set goes through the families, later ones through the
    /// kept handles: the exposition counts them all, under the right labels.
    #[test]
    fn requests_are_counted_under_their_labels() {
        let m = Metrics::new();
        for _ in 0..3 {
            m.request(Some("ns/a"), "tools/call", "allow", 200, 0.001);
        }
        m.request(Some("ns/a"), "tools/call", "deny", 200, 0.001);
        m.request(Some("ns/b"), "tools/call", "allow", 200, 0.001);
        m.request(None, "-", "-", 404, 0.0001);
        m.request(None, "-", "-", 404, 0.0001);
        let text = m.encode();
        let count = |labels: &str| {
            line(&text, &format!("gatehouse_requests_total{{{labels}}} "))
                .unwrap_or_else(|| panic!("no series {labels} in\n{text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            count(r#"server="ns/a",method="tools/call",decision="allow",status="200""#),
            "3"
        );
        assert_eq!(
            count(r#"server="ns/a",method="tools/call",decision="deny",status="200""#),
            "1"
        );
        assert_eq!(
            count(r#"server="ns/b",method="tools/call",decision="allow",status="200""#),
            "1"
        );
        assert_eq!(
            count(r#"server="-",method="-",decision="-",status="404""#),
            "2"
        );
        let observed = |server: &str| {
            line(
                &text,
                &format!("gatehouse_request_duration_seconds_count{{server=\"{server}\"}} "),
            )
            .unwrap_or_else(|| panic!("no latency for {server} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
        };
        assert_eq!(observed("ns/a"), "4");
        assert_eq!(observed("ns/b"), "1");
        assert_eq!(observed("-"), "2");
    }

    /// Past the kept label sets a server's requests are still counted (through the families).
    #[test]
    fn label_sets_beyond_the_kept_ones_still_count() {
        let m = Metrics::new();
        for status in 0..(MAX_HANDLE_LABEL_SETS as u16 + 10) {
            m.request(Some("ns/a"), "ping", "allow", 200 + status, 0.001);
            m.request(Some("ns/a"), "ping", "allow", 200 + status, 0.001);
        }
        let text = m.encode();
        let last = 200 + MAX_HANDLE_LABEL_SETS as u16 + 9;
        let want = format!(
            r#"gatehouse_requests_total{{server="ns/a",method="ping",decision="allow",status="{last}"}} 2"#
        );
        assert!(text.lines().any(|l| l == want), "{want} missing in\n{text}");
    }
}
