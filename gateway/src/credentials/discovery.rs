//! `oauth2AuthorizationCode.discovery`: finding a provider's authorization server from the
//! upstream McpServer, as an MCP client does.
//!
//! 1. Protected-resource metadata (RFC 9728) of the McpServer's URL: the path-suffixed
//!    well-known URL (§3.1: `https://host/.well-known/oauth-protected-resource/<path>`), then
//!    the host's root one, then the `resource_metadata` URL of the upstream's `401` answer.
//!    Its `resource` must be the McpServer's URL or a prefix of it on the same origin; it is
//!    sent to the authorization server as the RFC 8707 `resource` indicator.
//! 2. The authorization server: the configured `issuer` (which must be listed in
//!    `authorization_servers`), else the first listed.
//! 3. Its metadata (RFC 8414 §3.1 path insertion, then OpenID Connect discovery, inserted and
//!    appended): `issuer` must be the server asked for (§3.3), `authorization_endpoint` and
//!    `token_endpoint` must be present, `code_challenge_methods_supported` (when present) must
//!    include `S256`.
//!
//! Every URL involved goes through [`GuardedHttp`] (SSRF rules, see [`crate::provider_http`]).
//! Results are cached for [`DISCOVERY_TTL`]; one discovery runs at a time per provider. A
//! failure is remembered for [`RETRY_AFTER_FAILURE`] so a broken upstream is not hammered; when
//! earlier endpoints are known they keep being used. A failure only affects this provider.

use crate::provider_http::{AddressPolicy, Answer, GuardedHttp};
use gatehouse_api::config::AuthorizationServerDiscovery;
use gatehouse_api::refs::ObjectKey;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long discovered endpoints are used before discovery runs again.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// How long a failed discovery is remembered before it is tried again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// What discovery found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// The authorization server's issuer identifier.
    pub issuer: String,
    /// Where browsers are sent to consent.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are redeemed.
    pub token_endpoint: String,
    /// The protected resource (RFC 8707 `resource` indicator).
    pub resource: String,
}

#[derive(Default)]
struct Cache {
    good: Option<(Arc<Endpoints>, Instant)>,
    failed: Option<(String, Instant)>,
}

/// Discovery for one provider.
pub struct Discovery {
    provider: ObjectKey,
    config: AuthorizationServerDiscovery,
    http: GuardedHttp,
    cache: tokio::sync::Mutex<Cache>,
}

impl Discovery {
    /// Discovery as configured for `provider`.
    pub fn new(provider: &ObjectKey, config: &AuthorizationServerDiscovery) -> Self {
        Self {
            provider: provider.clone(),
            config: config.clone(),
            http: GuardedHttp::shared(AddressPolicy {
                allow_private_networks: config.allow_private_networks,
            }),
            cache: tokio::sync::Mutex::default(),
        }
    }

    /// The client for the discovered token endpoint (same SSRF rules).
    pub fn http(&self) -> &GuardedHttp {
        &self.http
    }

    /// The endpoints, discovered now or cached. The error names the provider, the McpServer
    /// and what went wrong; it never contains a secret.
    pub async fn endpoints(&self) -> Result<Arc<Endpoints>, String> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some((e, at)) = &cache.good
            && now.duration_since(*at) < DISCOVERY_TTL
        {
            return Ok(e.clone());
        }
        if let Some((message, at)) = &cache.failed
            && now.duration_since(*at) < RETRY_AFTER_FAILURE
        {
            return match &cache.good {
                Some((e, _)) => Ok(e.clone()),
                None => Err(message.clone()),
            };
        }
        match self.discover().await {
            Ok(e) => {
                tracing::info!(
                    provider = %self.provider,
                    server = %self.config.server,
                    issuer = %e.issuer,
                    authorization_endpoint = %e.authorization_endpoint,
                    token_endpoint = %e.token_endpoint,
                    "discovered the authorization server"
                );
                let e = Arc::new(e);
                cache.good = Some((e.clone(), now));
                cache.failed = None;
                Ok(e)
            }
            Err(reason) => {
                let message = format!(
                    "CredentialProvider {}: discovering the authorization server of McpServer {} failed: {reason}",
                    self.provider, self.config.server
                );
                tracing::warn!(provider = %self.provider, reason = %message, stale = cache.good.is_some(), "authorization server discovery failed");
                cache.failed = Some((message.clone(), now));
                match &cache.good {
                    Some((e, _)) => Ok(e.clone()),
                    None => Err(message),
                }
            }
        }
    }

    async fn discover(&self) -> Result<Endpoints, String> {
        let resource_url = self.config.resource_url.as_str();
        let prm = self.protected_resource_metadata(resource_url).await?;
        let resource = protected_resource(&prm, resource_url)?;
        let issuer = choose_issuer(&prm, self.config.issuer.as_deref())?;
        let meta = self.authorization_server_metadata(&issuer).await?;
        let endpoints = endpoints_from(&meta, &issuer, resource)?;
        let policy = self.http.policy();
        policy.check_url(&endpoints.authorization_endpoint).await?;
        policy.check_url(&endpoints.token_endpoint).await?;
        Ok(endpoints)
    }

    /// The first JSON document among `urls`; other answers are noted in `tried`.
    async fn first_document(
        &self,
        urls: &[String],
        tried: &mut Vec<String>,
    ) -> Result<Option<Value>, String> {
        for url in urls {
            let answer = self.http.get(url, "application/json").await?;
            if let Some(doc) = document(url, &answer, tried)? {
                return Ok(Some(doc));
            }
        }
        Ok(None)
    }

    async fn protected_resource_metadata(&self, resource_url: &str) -> Result<Value, String> {
        let mut tried = Vec::new();
        let urls = protected_resource_metadata_urls(resource_url)?;
        if let Some(doc) = self.first_document(&urls, &mut tried).await? {
            return Ok(doc);
        }
        // The upstream may say where its metadata is when asked without a token (RFC 9728 §5.1).
        let probe = self
            .http
            .get(resource_url, "application/json, text/event-stream")
            .await?;
        let named = (probe.status == 401)
            .then(|| {
                probe
                    .headers
                    .get_all(http::header::WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(resource_metadata_parameter)
            })
            .flatten();
        match named {
            Some(url) => {
                if let Some(doc) = self.first_document(&[url], &mut tried).await? {
                    return Ok(doc);
                }
            }
            None => tried.push(format!(
                "{resource_url} (HTTP {}, no resource_metadata in WWW-Authenticate)",
                probe.status
            )),
        }
        Err(format!(
            "the upstream publishes no protected-resource metadata (tried {})",
            tried.join(", ")
        ))
    }

    async fn authorization_server_metadata(&self, issuer: &str) -> Result<Value, String> {
        let mut tried = Vec::new();
        let urls = authorization_server_metadata_urls(issuer)?;
        self.first_document(&urls, &mut tried)
            .await?
            .ok_or_else(|| {
                format!(
                    "authorization server {issuer} publishes no metadata (tried {})",
                    tried.join(", ")
                )
            })
    }
}

/// A metadata document from an answer, `None` (noted in `tried`) when it is not there.
fn document(url: &str, answer: &Answer, tried: &mut Vec<String>) -> Result<Option<Value>, String> {
    match answer.status {
        200 => match serde_json::from_slice::<Value>(&answer.body) {
            Ok(v) if v.is_object() => Ok(Some(v)),
            _ => Err(format!(
                "{url} answered with a body that is not a JSON object"
            )),
        },
        300..=399 => Err(format!(
            "{url} answered with a redirect (HTTP {}); discovery does not follow redirects",
            answer.status
        )),
        status => {
            tried.push(format!("{url} (HTTP {status})"));
            Ok(None)
        }
    }
}

/// `(scheme://authority, path without trailing '/', "?query" or "")` of an absolute URL.
fn split(url: &str) -> Result<(String, String, String), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!("{url:?} is not an absolute URL"));
    };
    let path = uri.path().trim_end_matches('/').to_string();
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    Ok((format!("{scheme}://{authority}"), path, query))
}

/// `url` with `/.well-known/<name>` inserted between its authority and its path (RFC 8414
/// §3.1, RFC 9728 §3.1; a trailing '/' is dropped first).
pub fn well_known(url: &str, name: &str) -> Result<String, String> {
    let (origin, path, query) = split(url)?;
    Ok(format!("{origin}/.well-known/{name}{path}{query}"))
}

/// Where a resource's protected-resource metadata may be: the path-suffixed URL, then the
/// host's root.
pub fn protected_resource_metadata_urls(resource: &str) -> Result<Vec<String>, String> {
    let (origin, _, _) = split(resource)?;
    let mut urls = vec![well_known(resource, "oauth-protected-resource")?];
    let root = format!("{origin}/.well-known/oauth-protected-resource");
    if !urls.contains(&root) {
        urls.push(root);
    }
    Ok(urls)
}

/// Where an authorization server's metadata may be: RFC 8414 with path insertion, then
/// OpenID Connect discovery inserted and (for issuers with a path) appended.
pub fn authorization_server_metadata_urls(issuer: &str) -> Result<Vec<String>, String> {
    let (_, path, _) = split(issuer)?;
    let mut urls = vec![
        well_known(issuer, "oauth-authorization-server")?,
        well_known(issuer, "openid-configuration")?,
    ];
    if !path.is_empty() {
        urls.push(format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ));
    }
    Ok(urls)
}

/// The `resource_metadata` parameter of a `WWW-Authenticate: Bearer …` challenge.
pub fn resource_metadata_parameter(challenge: &str) -> Option<String> {
    let lower = challenge.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("resource_metadata") {
        let start = from + i;
        from = start + "resource_metadata".len();
        // A parameter name starts the challenge's parameters or follows ' ' or ','.
        let boundary = start == 0 || matches!(lower.as_bytes()[start - 1], b' ' | b',' | b'\t');
        let rest = challenge[from..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        if !boundary {
            continue;
        }
        let rest = rest.trim_start();
        let value = match rest.strip_prefix('"') {
            Some(q) => q.split('"').next()?.to_string(),
            None => rest
                .split([',', ' ', '\t'])
                .next()
                .unwrap_or_default()
                .to_string(),
        };
        return (!value.is_empty()).then_some(value);
    }
    None
}

/// The protected resource the metadata describes: its `resource`, which must be the
/// McpServer's URL or a path prefix of it on the same origin (the metadata of another resource
/// must not be used, RFC 9728 §3.3); the McpServer's URL when absent.
pub fn protected_resource(prm: &Value, resource_url: &str) -> Result<String, String> {
    let Some(resource) = prm.get("resource") else {
        return Ok(resource_url.to_string());
    };
    let resource = resource
        .as_str()
        .ok_or("the protected-resource metadata's resource is not a string")?;
    let (want_origin, want_path, _) = split(resource_url)?;
    let (origin, path, _) =
        split(resource).map_err(|e| format!("the protected-resource metadata's resource: {e}"))?;
    let covers = origin.eq_ignore_ascii_case(&want_origin)
        && (want_path == path || want_path.starts_with(&format!("{path}/")) || path.is_empty());
    if !covers {
        return Err(format!(
            "the protected-resource metadata describes {resource}, not {resource_url}"
        ));
    }
    Ok(resource.to_string())
}

/// The authorization server to use: `configured` if listed, else the first listed.
pub fn choose_issuer(prm: &Value, configured: Option<&str>) -> Result<String, String> {
    let listed: Vec<&str> = prm
        .get("authorization_servers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let norm = |s: &str| s.trim_end_matches('/').to_string();
    match configured {
        Some(want) => listed
            .iter()
            .find(|s| norm(s) == norm(want))
            .map(|s| s.to_string())
            .ok_or_else(|| {
                format!(
                    "discovery.issuer {want} is not one of the upstream's authorization_servers ({})",
                    if listed.is_empty() {
                        "none listed".to_string()
                    } else {
                        listed.join(", ")
                    }
                )
            }),
        None => listed.first().map(|s| s.to_string()).ok_or_else(|| {
            "the protected-resource metadata lists no authorization_servers".to_string()
        }),
    }
}

/// The endpoints of authorization-server metadata fetched for `issuer`.
pub fn endpoints_from(meta: &Value, issuer: &str, resource: String) -> Result<Endpoints, String> {
    let field = |name: &str| meta.get(name).and_then(Value::as_str);
    let stated = field("issuer").unwrap_or_default();
    if stated.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(format!(
            "the metadata of authorization server {issuer} names issuer {stated:?}; it must be the same (RFC 8414 §3.3)"
        ));
    }
    let endpoint = |name: &str| {
        field(name)
            .map(str::to_string)
            .ok_or_else(|| format!("the metadata of authorization server {issuer} has no {name}"))
    };
    let listed = |name: &str| {
        meta.get(name)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
    };
    if let Some(methods) = listed("code_challenge_methods_supported")
        && !methods.contains(&"S256")
    {
        return Err(format!(
            "authorization server {issuer} does not support PKCE with S256 (code_challenge_methods_supported: {})",
            methods.join(", ")
        ));
    }
    if let Some(types) = listed("response_types_supported")
        && !types.contains(&"code")
    {
        return Err(format!(
            "authorization server {issuer} does not support the authorization code flow (response_types_supported: {})",
            types.join(", ")
        ));
    }
    Ok(Endpoints {
        issuer: stated.to_string(),
        authorization_endpoint: endpoint("authorization_endpoint")?,
        token_endpoint: endpoint("token_endpoint")?,
        resource,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A metadata server on loopback: the upstream at `/mcp` (metadata only through its `401`),
    /// an authorization server at `/as` stating `issuer`. Counts requests.
    async fn metadata_server(issuer_suffix: &'static str) -> (String, Arc<AtomicUsize>) {
        use http_body_util::Full;
        use hyper::body::Bytes;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let (b, h) = (base.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (b, h) = (b.clone(), h.clone());
                let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    let b = b.clone();
                    async move {
                        let (status, www, body) = match req.uri().path() {
                            "/mcp" => (
                                401,
                                format!(
                                    r#"Bearer error="invalid_token", resource_metadata="{b}/prm""#
                                ),
                                json!({}),
                            ),
                            "/prm" => (
                                200,
                                String::new(),
                                json!({"resource": format!("{b}/mcp"), "authorization_servers": [format!("{b}/as")]}),
                            ),
                            "/.well-known/oauth-authorization-server/as" => (
                                200,
                                String::new(),
                                json!({
                                    "issuer": format!("{b}/as{issuer_suffix}"),
                                    "authorization_endpoint": format!("{b}/as/authorize"),
                                    "token_endpoint": format!("{b}/as/token"),
                                    "code_challenge_methods_supported": ["S256"],
                                }),
                            ),
                            _ => (404, String::new(), json!({})),
                        };
                        let mut r = http::Response::builder().status(status);
                        if !www.is_empty() {
                            r = r.header("www-authenticate", www);
                        }
                        Ok::<_, std::convert::Infallible>(
                            r.body(Full::new(Bytes::from(body.to_string()))).unwrap(),
                        )
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc),
                );
            }
        });
        (base, hits)
    }

    fn discovery(base: &str, allow_private_networks: bool) -> Discovery {
        let config = AuthorizationServerDiscovery {
            server: ObjectKey::new("team-a", "saas"),
            resource_url: format!("{base}/mcp"),
            issuer: None,
            allow_private_networks,
        };
        let mut d = Discovery::new(&ObjectKey::new("team-a", "saas-oauth"), &config);
        d.http = GuardedHttp::new(AddressPolicy {
            allow_private_networks,
        });
        d
    }

    #[tokio::test]
    async fn metadata_named_by_the_upstreams_401_leads_to_the_endpoints_once() {
        let (base, hits) = metadata_server("").await;
        let d = discovery(&base, true);
        let e = d.endpoints().await.unwrap();
        assert_eq!(e.issuer, format!("{base}/as"));
        assert_eq!(e.authorization_endpoint, format!("{base}/as/authorize"));
        assert_eq!(e.token_endpoint, format!("{base}/as/token"));
        assert_eq!(e.resource, format!("{base}/mcp"));
        let fetched = hits.load(Ordering::SeqCst);
        // Two well-known misses, the 401 probe, the named metadata, the AS metadata.
        assert_eq!(fetched, 5);
        assert_eq!(d.endpoints().await.unwrap(), e, "cached");
        assert_eq!(hits.load(Ordering::SeqCst), fetched, "no new request");
    }

    #[tokio::test]
    async fn an_impostor_issuer_fails_the_provider_with_a_reason_and_is_not_retried_at_once() {
        let (base, hits) = metadata_server("-impostor").await;
        let d = discovery(&base, true);
        let e = d.endpoints().await.unwrap_err();
        assert!(e.starts_with("CredentialProvider team-a/saas-oauth: discovering the authorization server of McpServer team-a/saas failed"), "{e}");
        assert!(e.contains("must be the same"), "{e}");
        let fetched = hits.load(Ordering::SeqCst);
        assert_eq!(d.endpoints().await.unwrap_err(), e);
        assert_eq!(hits.load(Ordering::SeqCst), fetched, "failure remembered");
    }

    #[tokio::test]
    async fn without_allow_private_networks_nothing_is_requested() {
        let (base, hits) = metadata_server("").await;
        let e = discovery(&base, false).endpoints().await.unwrap_err();
        assert!(e.contains("127.0.0.1 is a loopback address"), "{e}");
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn well_known_urls_are_inserted_before_the_path() {
        assert_eq!(
            protected_resource_metadata_urls("https://api.example.com/mcp").unwrap(),
            [
                "https://api.example.com/.well-known/oauth-protected-resource/mcp",
                "https://api.example.com/.well-known/oauth-protected-resource",
            ]
        );
        assert_eq!(
            protected_resource_metadata_urls("https://api.example.com:8443/").unwrap(),
            ["https://api.example.com:8443/.well-known/oauth-protected-resource"]
        );
        assert_eq!(
            well_known(
                "https://api.example.com/a/b/?x=1",
                "oauth-protected-resource"
            )
            .unwrap(),
            "https://api.example.com/.well-known/oauth-protected-resource/a/b?x=1"
        );
        assert_eq!(
            authorization_server_metadata_urls("https://auth.example.com").unwrap(),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            authorization_server_metadata_urls("https://auth.example.com/tenant1/").unwrap(),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        assert!(well_known("/relative", "x").is_err());
    }

    #[test]
    fn the_resource_metadata_of_a_challenge_is_found() {
        let cases = [
            (
                r#"Bearer resource_metadata="https://a.example/.well-known/oauth-protected-resource""#,
                Some("https://a.example/.well-known/oauth-protected-resource"),
            ),
            (
                r#"Bearer realm="x", error="invalid_token", resource_metadata="https://a.example/m""#,
                Some("https://a.example/m"),
            ),
            (
                "Bearer resource_metadata=https://a.example/m, scope=x",
                Some("https://a.example/m"),
            ),
            (
                r#"Bearer Resource_Metadata = "https://a.example/m""#,
                Some("https://a.example/m"),
            ),
            (r#"Bearer x_resource_metadata="https://evil/""#, None),
            (r#"Bearer realm="resource_metadata""#, None),
            ("Bearer", None),
            (r#"Bearer resource_metadata="""#, None),
        ];
        for (challenge, want) in cases {
            assert_eq!(
                resource_metadata_parameter(challenge).as_deref(),
                want,
                "{challenge}"
            );
        }
    }

    #[test]
    fn metadata_for_another_resource_is_not_used() {
        let url = "https://api.example.com/mcp";
        let prm = |r: &str| json!({"resource": r});
        assert_eq!(protected_resource(&prm(url), url).unwrap(), url);
        assert_eq!(protected_resource(&json!({}), url).unwrap(), url);
        assert_eq!(
            protected_resource(&prm("https://api.example.com"), url).unwrap(),
            "https://api.example.com"
        );
        assert_eq!(
            protected_resource(&prm("https://api.example.com/mcp/"), url).unwrap(),
            "https://api.example.com/mcp/"
        );
        for other in [
            "https://evil.example.com/mcp",
            "http://api.example.com/mcp",
            "https://api.example.com/mcp-other",
            "https://api.example.com/mcp/deeper",
            "not a url",
        ] {
            assert!(protected_resource(&prm(other), url).is_err(), "{other}");
        }
        assert!(protected_resource(&json!({"resource": 7}), url).is_err());
    }

    #[test]
    fn the_authorization_server_is_the_configured_one_if_listed_else_the_first() {
        let prm = json!({"authorization_servers": ["https://a.example", "https://b.example/t"]});
        assert_eq!(choose_issuer(&prm, None).unwrap(), "https://a.example");
        assert_eq!(
            choose_issuer(&prm, Some("https://b.example/t/")).unwrap(),
            "https://b.example/t"
        );
        let e = choose_issuer(&prm, Some("https://c.example")).unwrap_err();
        assert!(
            e.contains("not one of") && e.contains("https://a.example"),
            "{e}"
        );
        let e = choose_issuer(&json!({}), None).unwrap_err();
        assert!(e.contains("no authorization_servers"), "{e}");
        let e =
            choose_issuer(&json!({"authorization_servers": []}), Some("https://a")).unwrap_err();
        assert!(e.contains("none listed"), "{e}");
    }

    #[test]
    fn authorization_server_metadata_is_checked() {
        let issuer = "https://auth.example.com";
        let good = json!({
            "issuer": issuer,
            "authorization_endpoint": "https://auth.example.com/authorize",
            "token_endpoint": "https://auth.example.com/token",
            "code_challenge_methods_supported": ["plain", "S256"],
            "response_types_supported": ["code"],
        });
        let e = endpoints_from(&good, issuer, "https://r".into()).unwrap();
        assert_eq!(
            e.authorization_endpoint,
            "https://auth.example.com/authorize"
        );
        assert_eq!(e.token_endpoint, "https://auth.example.com/token");
        assert_eq!(e.resource, "https://r");

        let with = |k: &str, v: Value| {
            let mut m = good.clone();
            m[k] = v;
            endpoints_from(&m, issuer, "https://r".into())
        };
        let without = |k: &str| {
            let mut m = good.clone();
            m.as_object_mut().unwrap().remove(k);
            endpoints_from(&m, issuer, "https://r".into())
        };
        let e = with("issuer", json!("https://evil.example.com")).unwrap_err();
        assert!(e.contains("must be the same"), "{e}");
        assert!(without("issuer").is_err());
        let e = with("code_challenge_methods_supported", json!(["plain"])).unwrap_err();
        assert!(e.contains("S256"), "{e}");
        assert!(without("code_challenge_methods_supported").is_ok());
        let e = with("response_types_supported", json!(["token"])).unwrap_err();
        assert!(e.contains("authorization code"), "{e}");
        let e = without("token_endpoint").unwrap_err();
        assert!(e.contains("no token_endpoint"), "{e}");
        assert!(without("authorization_endpoint").is_err());
    }
}
