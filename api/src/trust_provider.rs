//! `TrustProvider`: how the gateway verifies who a user or an agent is.

use crate::conditions::CommonStatus;
use crate::refs::{SecretKeySelector, SecretSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How an identity is verified: OIDC tokens, Kubernetes ServiceAccount tokens, client
/// certificates, or API keys.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "TrustProvider",
    namespaced,
    status = "TrustProviderStatus",
    shortname = "mcptrust",
    category = "gatehouse",
    doc = "How the gateway verifies users and agents: OIDC, Kubernetes ServiceAccount tokens, mTLS client certificates, or API keys.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Type", type_ = "string", json_path = ".status.type"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("[has(self.oidc), has(self.kubernetesServiceAccount), has(self.mtls), has(self.apiKey)].filter(x, x).size() == 1").message("set exactly one of oidc, kubernetesServiceAccount, mtls or apiKey"))]
pub struct TrustProviderSpec {
    /// Whether identities from this provider are users (humans) or agents. Default: `User` for
    /// `oidc` and `apiKey`, `Agent` for `kubernetesServiceAccount` and `mtls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticates: Option<Authenticates>,
    /// OpenID Connect: bearer JWTs from an identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Oidc>,
    /// Kubernetes ServiceAccount tokens (projected, audience-bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_service_account: Option<KubernetesServiceAccount>,
    /// Client certificates verified against a CA bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<Mtls>,
    /// Static API keys, stored hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKey>,
}

/// What kind of principal a provider authenticates.
#[derive(JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Authenticates {
    /// A human user.
    User,
    /// An agent (an MCP client acting on its own or for a user).
    Agent,
}

/// OpenID Connect settings.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Oidc {
    /// Issuer URL; discovery at `<issuer>/.well-known/openid-configuration`.
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('https://') || self.startsWith('http://localhost') || self.startsWith('http://127.0.0.1')").message("oidc.issuer must be an https:// URL (plain http only for localhost)"))]
    #[schemars(length(max = 2048))]
    pub issuer: String,
    /// Accepted `aud` values in addition to the gateway's `publicUrl` (the RFC 8707 resource).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// JWKS URL, when it should not come from discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Which claims hold the identity.
    #[serde(default)]
    pub claim_mappings: ClaimMappings,
    /// Scopes every token must carry; missing ones get `403 insufficient_scope`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_scopes: Vec<String>,
    /// Allowed clock skew for `exp`, `nbf` and `iat`. Default `60s`.
    #[serde(default = "default_skew")]
    #[x_kube(validation = kube::core::Rule::new(crate::duration::CEL_RULE).message("oidc.clockSkew must be a duration such as 60s"))]
    #[schemars(length(max = 2048))]
    pub clock_skew: String,
    /// Sign-in in the browser at the gateway, with this issuer, before a user may act on a page
    /// the gateway links to outside the agent — today the per-user consent links of
    /// `oauth2AuthorizationCode` CredentialProviders. With it, a consent link only works for
    /// the user it was made for: a link forwarded to (or phished from) someone else is refused
    /// before that person's upstream account can be connected to the wrong user. Without it,
    /// a consent link is a bearer link for its 10-minute life. Register the gateway at the
    /// issuer as an OAuth client with redirect URI `<publicUrl>/oauth/login/callback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_login: Option<BrowserLogin>,
}

/// The gateway's own OAuth client at an OIDC issuer, for browser sign-in.
#[derive(JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrowserLogin {
    /// Client id registered for the gateway (authorization code flow with PKCE S256).
    #[schemars(length(min = 1, max = 512))]
    pub client_id: String,
    /// Client secret (`client_secret_basic`), for a confidential client. Omit for a public
    /// client (PKCE only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeySelector>,
}

fn default_skew() -> String {
    "60s".to_string()
}

/// Claims that hold the identity.
#[derive(JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimMappings {
    /// Claim holding the stable user id. Default `sub`.
    #[serde(default = "default_user_claim")]
    pub user: String,
    /// Claim holding the email. Default `email`.
    #[serde(default = "default_email_claim")]
    pub email: String,
    /// Claim holding the groups (a string or an array of strings). Default `groups`.
    #[serde(default = "default_groups_claim")]
    pub groups: String,
    /// Claim naming the OAuth client (the agent) the token was issued to. Default: `azp`, then
    /// `client_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

impl Default for ClaimMappings {
    fn default() -> Self {
        Self {
            user: default_user_claim(),
            email: default_email_claim(),
            groups: default_groups_claim(),
            client: None,
        }
    }
}

fn default_user_claim() -> String {
    "sub".to_string()
}
fn default_email_claim() -> String {
    "email".to_string()
}
fn default_groups_claim() -> String {
    "groups".to_string()
}

/// Kubernetes ServiceAccount token settings.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("has(self.issuer) != (has(self.tokenReview) && self.tokenReview)").message("set either issuer (offline verification) or tokenReview: true (online), not both"))]
pub struct KubernetesServiceAccount {
    /// The cluster's service-account issuer, for offline verification against its JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Verify tokens online with the TokenReview API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_review: Option<bool>,
    /// Audiences the token must be bound to.
    #[schemars(length(min = 1))]
    pub audiences: Vec<String>,
    /// Header carrying the agent's token when a user token occupies `Authorization`.
    /// Default `X-Agent-Authorization`.
    #[serde(default = "default_agent_header")]
    pub header: String,
}

fn default_agent_header() -> String {
    "X-Agent-Authorization".to_string()
}

/// Client-certificate settings.
#[derive(JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mtls {
    /// PEM CA bundle client certificates must chain to.
    pub ca_bundle_secret_ref: SecretKeySelector,
    /// Which part of the certificate is the identity. Default `SpiffeUri`.
    #[serde(default)]
    pub identity_from: CertificateIdentity,
}

/// Which part of a client certificate names the principal.
#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertificateIdentity {
    /// The `spiffe://` URI SAN.
    #[default]
    SpiffeUri,
    /// The first DNS SAN.
    DnsSan,
    /// The subject common name.
    CommonName,
}

/// API key settings.
#[derive(JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKey {
    /// Secret whose entries map a principal name to the SHA-256 of its key, written
    /// `sha256:<hex>` (generate with `printf %s "$KEY" | sha256sum`).
    pub secret_ref: SecretSelector,
    /// Header carrying the key. `Authorization` means `Authorization: Bearer <key>`.
    /// Default `X-API-Key`.
    #[serde(default = "default_api_key_header")]
    pub header: String,
}

fn default_api_key_header() -> String {
    "X-API-Key".to_string()
}

/// Observed state of a TrustProvider.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustProviderStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Which kind of provider this is (`oidc`, `kubernetesServiceAccount`, `mtls`, `apiKey`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}
