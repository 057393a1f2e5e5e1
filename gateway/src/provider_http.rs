//! The HTTP clients the gateway uses to talk to identity providers (OIDC discovery, JWKS) and
//! OAuth token endpoints. HTTPS with the system roots (plain HTTP only where the CRD allows it:
//! localhost), bounded response size and time, no redirects followed.
//!
//! Two kinds:
//! - [`ProviderHttp`] for URLs an administrator wrote into a CRD.
//! - [`GuardedHttp`] for URLs the gateway *discovered* (an upstream's protected-resource
//!   metadata, an authorization server's metadata, the endpoints they name). Those come from a
//!   party that could be compromised, so they are held to SSRF rules: `https` only, and every
//!   address the host resolves to is checked with [`forbidden`] — loopback, private, link-local
//!   (the cloud metadata service), shared, unspecified, multicast and broadcast addresses are
//!   refused. The connector's resolver filters with the same rule, so the gateway connects to
//!   an address that was checked (a DNS answer that changes between check and connect cannot
//!   rebind it). `allowPrivateNetworks` lifts the scheme rule and the private classes, for
//!   in-cluster and development authorization servers; [`AddressClass::always_refused`]
//!   classes stay refused.

use crate::authn::jwt::JsonFetcher;
use crate::credentials::oauth2::TokenEndpoint;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::HeaderMap;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

/// Largest accepted response (discovery documents, JWKS, token responses are small).
const MAX_RESPONSE: usize = 1024 * 1024;
/// Time allowed for one call.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A shared client for identity providers and token endpoints.
#[derive(Clone)]
pub struct ProviderHttp {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl ProviderHttp {
    /// A client trusting the system's CA roots.
    pub fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build(outbound_connector(true, None)),
        }
    }

    async fn call(&self, req: http::Request<Full<Bytes>>) -> Result<(u16, Value), String> {
        let url = req.uri().to_string();
        let (status, _, body) = send(&self.client, req).await?;
        Ok((status, json_body(&url, status, &body)?))
    }
}

/// Send one request: status, headers and (bounded) body. Redirects are answers, not followed.
async fn send<C>(
    client: &Client<C, Full<Bytes>>,
    req: http::Request<Full<Bytes>>,
) -> Result<(u16, HeaderMap, Bytes), String>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let url = req.uri().to_string();
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| format!("{url} did not answer within {}s", TIMEOUT.as_secs()))?
        .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(
        TIMEOUT,
        Limited::new(resp.into_body(), MAX_RESPONSE).collect(),
    )
    .await
    .map_err(|_| format!("{url}: response body timed out"))?
    .map_err(|e| format!("{url}: response body: {e}"))?
    .to_bytes();
    Ok((status, headers, body))
}

fn json_body(url: &str, status: u16, body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body)
        .map_err(|_| format!("{url} answered HTTP {status} with a body that is not JSON"))
}

/// An error and its causes on one line (hyper's own message is only "client error (Connect)").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    tls_config_trusting(roots)
}

fn tls_config_trusting(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// An outbound connector trusting the system's CA roots (plain http stays possible: callers
/// only reach http URLs the configuration allows), with a 5 s connect timeout. Shared by every
/// outbound client that is not an upstream MCP server (those may carry their own CA bundle).
pub fn outbound_connector(
    all_versions: bool,
    keepalive: Option<Duration>,
) -> HttpsConnector<HttpConnector> {
    outbound_connector_with(GaiResolver::new(), all_versions, keepalive)
}

/// An HTTP/1.1, `https`-only connector trusting `roots` and nothing else (the system roots are
/// not consulted), with the same connect timeout as [`outbound_connector`]. For a peer whose
/// CA is given explicitly, e.g. the operator's push endpoint (`--operator-ca`).
pub fn connector_trusting(
    roots: rustls::RootCertStore,
    keepalive: Option<Duration>,
) -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.set_keepalive(keepalive);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config_trusting(roots))
        .https_only()
        .enable_http1()
        .wrap_connector(http)
}

/// [`outbound_connector`] with a chosen DNS resolver.
fn outbound_connector_with<R>(
    resolver: R,
    all_versions: bool,
    keepalive: Option<Duration>,
) -> HttpsConnector<HttpConnector<R>> {
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.set_keepalive(keepalive);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config())
        .https_or_http();
    if all_versions {
        builder.enable_all_versions().wrap_connector(http)
    } else {
        builder.enable_http1().wrap_connector(http)
    }
}

impl JsonFetcher for ProviderHttp {
    fn get_json(&self, url: &str) -> BoxFuture<'static, Result<Value, String>> {
        let this = self.clone();
        let url = url.to_string();
        Box::pin(async move {
            let req = http::Request::get(&url)
                .header(http::header::ACCEPT, "application/json")
                .body(Full::new(Bytes::new()))
                .map_err(|e| format!("{url}: {e}"))?;
            match this.call(req).await? {
                (200, v) => Ok(v),
                (status, _) => Err(format!("{url} answered HTTP {status}")),
            }
        })
    }
}

fn form_request(
    url: &str,
    headers: &[(String, String)],
    form: &[(String, String)],
) -> Result<http::Request<Full<Bytes>>, String> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish();
    let mut req = http::Request::post(url).header(
        http::header::CONTENT_TYPE,
        "application/x-www-form-urlencoded",
    );
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    req.body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("{url}: {e}"))
}

impl TokenEndpoint for ProviderHttp {
    fn post_form(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        form: Vec<(String, String)>,
    ) -> BoxFuture<'static, Result<(u16, Value), String>> {
        let this = self.clone();
        let url = url.to_string();
        Box::pin(async move { this.call(form_request(&url, &headers, &form)?).await })
    }
}

// === addresses discovered URLs may not reach ===

/// Why an address is not reachable from discovered URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), IPv6 unique local fc00::/7 and the deprecated
    /// site-local fec0::/10.
    Private,
    /// RFC 6598 shared address space 100.64.0.0/10 (carrier-grade NAT).
    Shared,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// The cloud instance metadata services: 169.254.169.254 (AWS, GCP, Azure, …), 169.254.170.2
    /// (AWS ECS task metadata), 100.100.100.200 (Alibaba), fd00:ec2::254 (AWS IPv6).
    CloudMetadata,
    /// 0.0.0.0/8 ("this network"), ::.
    Unspecified,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// Not routable on the internet: 192.0.0.0/24 (IETF protocol assignments), 198.18.0.0/15
    /// (benchmarking), 240.0.0.0/4 (reserved).
    Reserved,
}

impl AddressClass {
    /// Classes refused even with `allowPrivateNetworks`: no authorization server lives there.
    pub fn always_refused(self) -> bool {
        matches!(
            self,
            Self::CloudMetadata | Self::Unspecified | Self::Multicast | Self::Broadcast
        )
    }
}

impl std::fmt::Display for AddressClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Loopback => "a loopback address",
            Self::Private => "a private-network address (RFC 1918 / IPv6 unique local)",
            Self::Shared => "a shared (carrier-grade NAT, RFC 6598) address",
            Self::LinkLocal => "a link-local address",
            Self::CloudMetadata => "the cloud instance metadata service",
            Self::Unspecified => "the unspecified address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Reserved => "a reserved address",
        })
    }
}

/// The class of `ip` if discovered URLs may not reach it, `None` for a public address.
/// IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that IPv4 address.
pub fn forbidden(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::*;
    let [a, b, c, d] = ip.octets();
    Some(match (a, b, c, d) {
        (169, 254, 169, 254) | (169, 254, 170, 2) | (100, 100, 100, 200) => CloudMetadata,
        (255, 255, 255, 255) => Broadcast,
        (0, ..) => Unspecified,
        (127, ..) => Loopback,
        (10, ..) | (192, 168, ..) => Private,
        (172, b, ..) if (16..32).contains(&b) => Private,
        (100, b, ..) if (64..128).contains(&b) => Shared,
        (169, 254, ..) => LinkLocal,
        (224..=239, ..) => Multicast,
        (240..=255, ..) => Reserved,
        (192, 0, 0, _) => Reserved,
        (198, 18 | 19, ..) => Reserved,
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return Some(CloudMetadata);
    }
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return forbidden_v4(embedded(s[6], s[7]));
    }
    // 64:ff9b::a.b.c.d (NAT64 well-known prefix).
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded(s[6], s[7]));
    }
    // 2002:aabb:ccdd::/48 (6to4).
    if s[0] == 0x2002 {
        return forbidden_v4(embedded(s[1], s[2]));
    }
    match s[0] {
        x if x & 0xfe00 == 0xfc00 => Some(Private),
        x if x & 0xffc0 == 0xfec0 => Some(Private),
        x if x & 0xffc0 == 0xfe80 => Some(LinkLocal),
        x if x & 0xff00 == 0xff00 => Some(Multicast),
        _ => None,
    }
}

/// Whether discovered URLs may reach private networks (and use plain http).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressPolicy {
    /// `discovery.allowPrivateNetworks`.
    pub allow_private_networks: bool,
}

impl AddressPolicy {
    /// Why `ip` may not be reached, if it may not.
    pub fn refuses(self, ip: IpAddr) -> Option<AddressClass> {
        forbidden(ip).filter(|c| !self.allow_private_networks || c.always_refused())
    }

    fn hint(self, class: AddressClass) -> &'static str {
        if class.always_refused() {
            "it is never reachable from discovered URLs"
        } else {
            "discovered URLs only reach public addresses unless discovery.allowPrivateNetworks is set"
        }
    }

    /// Check a discovered URL before use: `https` (unless private networks are allowed), a
    /// host, and every address the host resolves to allowed. Address problems are reported
    /// before scheme problems: they say more about where the URL points.
    pub async fn check_url(self, url: &str) -> Result<http::Uri, String> {
        let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
        let scheme = uri.scheme_str().unwrap_or_default();
        if scheme != "https" && scheme != "http" {
            return Err(format!("{url}: only https:// URLs are used"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("{url}: the URL has no host"))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((bare, port)))
                .await
                .map_err(|_| format!("{url}: resolving {bare} timed out"))?
                .map_err(|e| format!("{url}: resolving {bare}: {e}"))?
                .map(|a| a.ip())
                .collect(),
        };
        if let Some((ip, class)) = addrs
            .iter()
            .find_map(|ip| self.refuses(*ip).map(|c| (*ip, c)))
        {
            let what = if bare.parse::<IpAddr>().is_ok() {
                format!("{ip} is {class}")
            } else {
                format!("{bare} resolves to {ip}, {class}")
            };
            return Err(format!("refused {url}: {what}; {}", self.hint(class)));
        }
        if scheme != "https" {
            if !self.allow_private_networks {
                return Err(format!(
                    "refused {url}: discovered URLs must be https:// unless discovery.allowPrivateNetworks is set"
                ));
            }
            // Plain http only inside private networks: a discovered token endpoint receives the
            // gateway's client secret and users' codes, which must not cross the internet in
            // the clear.
            if let Some(ip) = addrs.iter().find(|ip| forbidden(**ip).is_none()) {
                return Err(format!(
                    "refused {url}: plain http:// is used only for private addresses, and {ip} is public; use https://"
                ));
            }
        }
        Ok(uri)
    }
}

/// The connector's DNS resolver for discovered URLs: resolves with the system resolver and
/// drops every address the policy refuses, so the connection goes to a checked address.
#[derive(Clone)]
pub struct CheckingResolver {
    policy: AddressPolicy,
}

impl tower_service::Service<Name> for CheckingResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| match policy.refuses(a.ip()) {
                    Some(class) => {
                        refused = Some((a.ip(), class));
                        false
                    }
                    None => true,
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some((ip, class))) => Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{host} resolves to {ip}, {class}; {}", policy.hint(class)),
                )),
                _ => Ok(allowed.into_iter()),
            }
        })
    }
}

/// A client for discovered URLs: every URL checked by its [`AddressPolicy`] before the
/// request, every connection made to an address its resolver checked, no redirects followed.
#[derive(Clone)]
pub struct GuardedHttp {
    client: Client<HttpsConnector<HttpConnector<CheckingResolver>>, Full<Bytes>>,
    policy: AddressPolicy,
}

/// A discovered URL's answer.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body (at most 1 MiB).
    pub body: Bytes,
}

impl GuardedHttp {
    /// The process-wide client for `policy` (one connection pool per policy).
    pub fn shared(policy: AddressPolicy) -> Self {
        static STRICT: OnceLock<GuardedHttp> = OnceLock::new();
        static PRIVATE: OnceLock<GuardedHttp> = OnceLock::new();
        let cell = if policy.allow_private_networks {
            &PRIVATE
        } else {
            &STRICT
        };
        cell.get_or_init(|| Self::new(policy)).clone()
    }

    /// A client with its own connection pool (tests; everything else uses [`Self::shared`]).
    pub(crate) fn new(policy: AddressPolicy) -> Self {
        let connector = outbound_connector_with(CheckingResolver { policy }, true, None);
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            policy,
        }
    }

    /// The rules this client applies.
    pub fn policy(&self) -> AddressPolicy {
        self.policy
    }

    /// GET a discovered URL. A redirect is returned as it is (and callers treat it as a
    /// failure), never followed.
    pub async fn get(&self, url: &str, accept: &str) -> Result<Answer, String> {
        let uri = self.policy.check_url(url).await?;
        let req = http::Request::get(uri)
            .header(http::header::ACCEPT, accept)
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("{url}: {e}"))?;
        let (status, headers, body) = send(&self.client, req).await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

impl TokenEndpoint for GuardedHttp {
    fn post_form(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        form: Vec<(String, String)>,
    ) -> BoxFuture<'static, Result<(u16, Value), String>> {
        let this = self.clone();
        let url = url.to_string();
        Box::pin(async move {
            this.policy.check_url(&url).await?;
            let (status, _, body) =
                send(&this.client, form_request(&url, &headers, &form)?).await?;
            Ok((status, json_body(&url, status, &body)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::AddressClass::*;
    use super::*;

    fn class(s: &str) -> Option<AddressClass> {
        forbidden(s.parse().expect(s))
    }

    #[test]
    fn every_non_public_ipv4_range_is_classified() {
        let cases: &[(&str, Option<AddressClass>)] = &[
            ("0.0.0.0", Some(Unspecified)),
            ("0.255.255.255", Some(Unspecified)),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("10.0.0.1", Some(Private)),
            ("10.255.255.255", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.15.255.255", None),
            ("172.32.0.0", None),
            ("192.168.0.1", Some(Private)),
            ("192.169.0.1", None),
            ("100.64.0.1", Some(Shared)),
            ("100.127.255.255", Some(Shared)),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("100.100.100.200", Some(CloudMetadata)),
            ("169.254.0.1", Some(LinkLocal)),
            ("169.254.169.254", Some(CloudMetadata)),
            ("169.254.170.2", Some(CloudMetadata)),
            ("169.255.0.1", None),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.255", Some(Multicast)),
            ("240.0.0.1", Some(Reserved)),
            ("255.255.255.254", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            ("192.0.0.8", Some(Reserved)),
            ("198.18.0.1", Some(Reserved)),
            ("198.19.255.255", Some(Reserved)),
            ("198.20.0.0", None),
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("93.184.216.34", None),
            ("223.255.255.255", None),
        ];
        for (ip, want) in cases {
            assert_eq!(class(ip), *want, "{ip}");
        }
    }

    #[test]
    fn every_non_public_ipv6_range_is_classified() {
        let cases: &[(&str, Option<AddressClass>)] = &[
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("fc00::1", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("fec0::1", Some(Private)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("fd00:ec2::254", Some(CloudMetadata)),
            ("ff02::1", Some(Multicast)),
            ("ff05::2", Some(Multicast)),
            ("2001:4860:4860::8888", None),
            ("2606:4700::1111", None),
            ("fbff::1", None),
        ];
        for (ip, want) in cases {
            assert_eq!(class(ip), *want, "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_carrying_an_ipv4_address_are_judged_by_it() {
        let cases: &[(&str, Option<AddressClass>)] = &[
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.1.2.3", Some(Private)),
            ("::ffff:169.254.169.254", Some(CloudMetadata)),
            ("::ffff:100.64.0.1", Some(Shared)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("::ffff:255.255.255.255", Some(Broadcast)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(Loopback)),
            ("::192.168.1.1", Some(Private)),
            ("64:ff9b::7f00:1", Some(Loopback)),
            ("64:ff9b::a9fe:a9fe", Some(CloudMetadata)),
            ("64:ff9b::808:808", None),
            ("2002:7f00:1::", Some(Loopback)),
            ("2002:c0a8:101::1", Some(Private)),
            ("2002:808:808::1", None),
        ];
        for (ip, want) in cases {
            assert_eq!(class(ip), *want, "{ip}");
        }
    }

    #[test]
    fn allowing_private_networks_still_refuses_metadata_and_non_unicast() {
        let strict = AddressPolicy {
            allow_private_networks: false,
        };
        let open = AddressPolicy {
            allow_private_networks: true,
        };
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "100.64.0.1",
            "169.254.1.1",
            "fd00::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(strict.refuses(ip).is_some(), "{ip}");
            assert_eq!(open.refuses(ip), None, "{ip}");
        }
        for ip in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "ff02::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(open.refuses(ip).is_some(), "{ip}");
        }
        assert_eq!(strict.refuses("8.8.8.8".parse().unwrap()), None);
    }

    #[tokio::test]
    async fn discovered_urls_must_be_https_and_point_at_allowed_addresses() {
        let strict = AddressPolicy {
            allow_private_networks: false,
        };
        let open = AddressPolicy {
            allow_private_networks: true,
        };
        let refused = |r: Result<http::Uri, String>| r.expect_err("refused");

        let e = refused(
            strict
                .check_url("http://127.0.0.1:8080/.well-known/x")
                .await,
        );
        assert!(e.contains("127.0.0.1 is a loopback address"), "{e}");
        assert!(e.contains("allowPrivateNetworks"), "{e}");
        let e = refused(strict.check_url("https://[::ffff:a9fe:a9fe]/latest").await);
        assert!(e.contains("cloud instance metadata"), "{e}");
        let e = refused(strict.check_url("https://10.1.2.3/token").await);
        assert!(e.contains("private-network"), "{e}");
        let e = refused(strict.check_url("https://localhost:9/token").await);
        assert!(e.contains("localhost resolves to"), "{e}");
        assert!(e.contains("loopback"), "{e}");
        let e = refused(strict.check_url("http://8.8.8.8/token").await);
        assert!(e.contains("must be https://"), "{e}");
        let e = refused(strict.check_url("ftp://8.8.8.8/token").await);
        assert!(e.contains("only https://"), "{e}");
        let e = refused(strict.check_url("/relative").await);
        assert!(e.contains("no host") || e.contains("only https"), "{e}");
        assert!(strict.check_url("https://8.8.8.8/token").await.is_ok());

        assert!(open.check_url("http://127.0.0.1:8080/token").await.is_ok());
        assert!(open.check_url("http://10.1.2.3/token").await.is_ok());
        let e = refused(open.check_url("http://169.254.169.254/latest").await);
        assert!(e.contains("never reachable"), "{e}");
        // Even with private networks allowed, plain http never goes to a public address.
        let e = refused(open.check_url("http://8.8.8.8/token").await);
        assert!(e.contains("plain http:// is used only for private"), "{e}");
        assert!(open.check_url("https://8.8.8.8/token").await.is_ok());
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses_so_connections_go_to_checked_ones() {
        use std::str::FromStr;
        use tower_service::Service;
        let mut strict = CheckingResolver {
            policy: AddressPolicy {
                allow_private_networks: false,
            },
        };
        let e = strict
            .call(Name::from_str("localhost").unwrap())
            .await
            .expect_err("localhost is loopback");
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("loopback"), "{e}");

        let mut open = CheckingResolver {
            policy: AddressPolicy {
                allow_private_networks: true,
            },
        };
        let addrs: Vec<_> = open
            .call(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        assert!(!addrs.is_empty());
    }

    #[tokio::test]
    async fn a_refused_host_is_never_connected_to() {
        // A listener on loopback that would notice a connection.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let http = GuardedHttp::new(AddressPolicy {
            allow_private_networks: false,
        });
        for url in [
            format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource"),
            format!("https://localhost:{port}/.well-known/oauth-protected-resource"),
        ] {
            let e = http.get(&url, "application/json").await.err().unwrap();
            assert!(e.contains("loopback"), "{e}");
            let e = http
                .post_form(&url, vec![], vec![])
                .await
                .expect_err("refused");
            assert!(e.contains("loopback"), "{e}");
        }
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "a refused URL was connected to");
    }
}
