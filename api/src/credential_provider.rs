//! `CredentialProvider`: how the gateway obtains the downstream credential for a request and
//! how it injects it.

use crate::conditions::CommonStatus;
use crate::refs::SecretKeySelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the gateway obtains the credential it injects into requests to an upstream MCP server,
/// per user where the kind allows. Agents never see these credentials.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "CredentialProvider",
    namespaced,
    status = "CredentialProviderStatus",
    shortname = "mcpcred",
    category = "gatehouse",
    doc = "How the gateway obtains (per user where possible) and injects the downstream credential for an upstream MCP server.",
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
#[x_kube(validation = kube::core::Rule::new("[has(self.secret), has(self.perUserSecret), has(self.oauth2ClientCredentials), has(self.oauth2TokenExchange), has(self.oauth2AuthorizationCode), has(self.signedJwt)].filter(x, x).size() == 1").message("set exactly one of secret, perUserSecret, oauth2ClientCredentials, oauth2TokenExchange, oauth2AuthorizationCode or signedJwt"))]
pub struct CredentialProviderSpec {
    /// How the credential is put on the upstream request. Default `Authorization: Bearer {token}`.
    #[serde(default)]
    pub inject: Inject,
    /// One credential shared by every user, from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SharedSecret>,
    /// Each user's own static credential (e.g. a personal access token), looked up by identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user_secret: Option<PerUserSecret>,
    /// OAuth 2.0 client credentials grant: the gateway's own token for the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_client_credentials: Option<OAuth2ClientCredentials>,
    /// OAuth 2.0 token exchange (RFC 8693): the user's token is exchanged for one for the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_token_exchange: Option<OAuth2TokenExchange>,
    /// OAuth 2.0 authorization code with PKCE: each user consents once; tokens are stored
    /// encrypted, keyed to the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_authorization_code: Option<OAuth2AuthorizationCode>,
    /// The gateway mints a short-lived JWT naming the user and the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_jwt: Option<SignedJwt>,
}

/// How a credential is injected.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inject {
    /// Header name. Default `Authorization`.
    #[serde(default = "default_inject_header")]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z0-9!#$%&*+.^_`|~-]+$')").message("inject.header must be a valid HTTP header name"))]
    #[schemars(length(max = 2048))]
    pub header: String,
    /// Header value template; `{token}` is replaced by the credential. Default `Bearer {token}`.
    /// Use `{token}` alone for raw API-key headers, `Basic {token}` for a pre-encoded basic
    /// credential.
    #[serde(default = "default_inject_format")]
    #[x_kube(validation = kube::core::Rule::new("self.contains('{token}')").message("inject.format must contain the {token} placeholder"))]
    #[schemars(length(max = 2048))]
    pub format: String,
}

impl Default for Inject {
    fn default() -> Self {
        Self {
            header: default_inject_header(),
            format: default_inject_format(),
        }
    }
}

fn default_inject_header() -> String {
    "Authorization".to_string()
}
fn default_inject_format() -> String {
    "Bearer {token}".to_string()
}

/// A shared credential.
#[derive(JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SharedSecret {
    /// The Secret key holding the credential.
    pub secret_ref: SecretKeySelector,
}

/// Per-user static credentials.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("has(self.secretName) != has(self.nameTemplate)").message("set either secretName (one Secret keyed by user) or nameTemplate (one Secret per user)"))]
pub struct PerUserSecret {
    /// One Secret whose keys are user ids (characters other than `[A-Za-z0-9._-]` replaced by
    /// `_`) and whose values are that user's credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// One Secret per user, named by this template; `{user}` is replaced by the user id (made
    /// DNS-safe: lowercased, other characters replaced by `-`, leading and trailing `-`
    /// removed). E.g. `github-pat-{user}`. In cluster mode the gateway may read exactly the
    /// existing Secrets of this namespace whose names the template makes and that hold `key`
    /// (the operator names them in the gateway's Role, at most 1,000); a Secret added for a new
    /// user is picked up without a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.contains('{user}')").message("perUserSecret.nameTemplate must contain {user}"))]
    #[schemars(length(max = 2048))]
    pub name_template: Option<String>,
    /// Key within the per-user Secret, with `nameTemplate`. Default `token`.
    #[serde(default = "default_token_key")]
    pub key: String,
}

fn default_token_key() -> String {
    "token".to_string()
}

/// How the gateway authenticates to a token endpoint.
#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientAuthMethod {
    /// HTTP basic authentication with the client id and secret.
    #[default]
    #[serde(rename = "client_secret_basic")]
    ClientSecretBasic,
    /// Client id and secret in the form body.
    #[serde(rename = "client_secret_post")]
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523).
    #[serde(rename = "private_key_jwt")]
    PrivateKeyJwt,
    /// Public client: no client authentication.
    #[serde(rename = "none")]
    None,
}

/// OAuth 2.0 client credentials.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("self.authMethod == 'none' || has(self.clientSecretRef)").message("clientSecretRef is required unless authMethod is none"))]
pub struct OAuth2ClientCredentials {
    /// Token endpoint URL.
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('https://') || self.startsWith('http://localhost') || self.startsWith('http://127.0.0.1')").message("tokenUrl must be an https:// URL (plain http only for localhost)"))]
    #[schemars(length(max = 2048))]
    pub token_url: String,
    /// Client id.
    #[schemars(length(min = 1))]
    pub client_id: String,
    /// Client secret, or the PEM private key for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeySelector>,
    /// Client authentication method. Default `client_secret_basic`.
    #[serde(default)]
    pub auth_method: ClientAuthMethod,
    /// Scopes to request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// `audience` parameter, for providers that want one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// `resource` parameter (RFC 8707).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// OAuth 2.0 token exchange (RFC 8693).
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("self.authMethod == 'none' || has(self.clientSecretRef)").message("clientSecretRef is required unless authMethod is none"))]
pub struct OAuth2TokenExchange {
    /// Token endpoint URL.
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('https://') || self.startsWith('http://localhost') || self.startsWith('http://127.0.0.1')").message("tokenUrl must be an https:// URL (plain http only for localhost)"))]
    #[schemars(length(max = 2048))]
    pub token_url: String,
    /// Client id of the gateway at the token endpoint.
    #[schemars(length(min = 1))]
    pub client_id: String,
    /// Client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeySelector>,
    /// Client authentication method. Default `client_secret_basic`.
    #[serde(default)]
    pub auth_method: ClientAuthMethod,
    /// `audience` of the requested token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// `resource` of the requested token (RFC 8707).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Scopes to request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Send the agent's credential as `actor_token`, so the issued token records the delegation
    /// in its `act` claim.
    #[serde(default)]
    pub actor_token: bool,
}

/// Per-user consent with the authorization code grant and PKCE.
///
/// The provider's endpoints are either named (`authorizationUrl` and `tokenUrl`) or discovered
/// (`discovery`) from the upstream McpServer's OAuth protected-resource metadata.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("has(self.discovery) ? !has(self.authorizationUrl) && !has(self.tokenUrl) : has(self.authorizationUrl) && has(self.tokenUrl)").message("set either authorizationUrl and tokenUrl, or discovery (not both)"))]
pub struct OAuth2AuthorizationCode {
    /// Authorization endpoint URL. Set together with `tokenUrl`, or leave both out and set
    /// `discovery`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('https://') || self.startsWith('http://localhost') || self.startsWith('http://127.0.0.1')").message("authorizationUrl must be an https:// URL (plain http only for localhost)"))]
    #[schemars(length(max = 2048))]
    pub authorization_url: Option<String>,
    /// Token endpoint URL. Set together with `authorizationUrl`, or leave both out and set
    /// `discovery`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('https://') || self.startsWith('http://localhost') || self.startsWith('http://127.0.0.1')").message("tokenUrl must be an https:// URL (plain http only for localhost)"))]
    #[schemars(length(max = 2048))]
    pub token_url: Option<String>,
    /// Discover the authorization server from the upstream McpServer instead of naming its
    /// endpoints: the server's protected-resource metadata (RFC 9728) names the authorization
    /// server, whose metadata (RFC 8414, or OpenID Connect discovery) gives the endpoints.
    ///
    /// The gateway fetches `/.well-known/oauth-protected-resource` of the McpServer's upstream URL
    /// (path-suffixed form of RFC 9728 §3.1, then the host's root, then the `resource_metadata` of
    /// the upstream's `401` answer), picks the authorization server, fetches its metadata
    /// (`/.well-known/oauth-authorization-server`, then `/.well-known/openid-configuration`),
    /// checks that its `issuer` is the server it asked and that it supports PKCE with S256, and
    /// sends the metadata's `resource` as the RFC 8707 resource indicator. Results are cached for
    /// an hour; a failed discovery fails only this provider's requests, with a message saying why.
    ///
    /// Every discovered URL (the metadata documents, the authorization and token endpoints) must
    /// be `https://` and resolve only to public addresses: loopback, private (RFC 1918, IPv6 ULA),
    /// link-local (including the cloud metadata service at 169.254.169.254), shared (100.64.0.0/10),
    /// unspecified, multicast and broadcast addresses are refused, the gateway connects to the
    /// address it checked, and redirects are not followed. This keeps a compromised or
    /// misconfigured upstream from steering the gateway at internal services;
    /// `discovery.allowPrivateNetworks` lifts the rule for in-cluster and development
    /// authorization servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<AuthorizationServerDiscovery>,
    /// Client id registered with the provider (redirect URI:
    /// `<gateway publicUrl>/oauth/callback`).
    #[schemars(length(min = 1))]
    pub client_id: String,
    /// Client secret; omit for public clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeySelector>,
    /// Client authentication method. Default `client_secret_basic`.
    #[serde(default)]
    pub auth_method: ClientAuthMethod,
    /// Scopes to request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// 32-byte key (base64 or raw) that encrypts stored token sets (AES-256-GCM).
    pub encryption_key_secret_ref: SecretKeySelector,
}

/// Where and how the gateway discovers an authorization server.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationServerDiscovery {
    /// Name of the McpServer (in this namespace) whose protected-resource metadata names the
    /// authorization server. It needs an HTTP upstream (`url`, `service`, or a `workload` with
    /// a port).
    #[schemars(length(min = 1, max = 253))]
    pub server: String,
    /// The authorization server (its issuer identifier) to use when the metadata lists several.
    /// It must be one of the metadata's `authorization_servers`. Default: the first listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("discovery.issuer must be an http(s) URL"))]
    #[schemars(length(max = 2048))]
    pub issuer: Option<String>,
    /// Let discovery reach authorization servers on loopback, private, link-local and shared
    /// (CGNAT) addresses, and reach those (never a public address) over plain `http://`. For
    /// an authorization server inside the cluster or on a developer's machine; leave it off
    /// for anything on the internet. Even
    /// with it on, the cloud metadata service addresses, unspecified, multicast and broadcast
    /// addresses stay refused. Default `false`.
    #[serde(default)]
    pub allow_private_networks: bool,
}

/// A JWT minted by the gateway.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedJwt {
    /// PEM private key (RSA or EC P-256) the gateway signs with; its public key is published at
    /// `/.well-known/jwks.json` on the gateway.
    pub signing_key_secret_ref: SecretKeySelector,
    /// `iss` of minted tokens. Default: the gateway's `publicUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `aud` of minted tokens.
    #[schemars(length(min = 1))]
    pub audience: String,
    /// Lifetime of minted tokens. Default `5m`.
    #[serde(default = "default_jwt_ttl")]
    #[x_kube(validation = kube::core::Rule::new(crate::duration::CEL_RULE).message("signedJwt.ttl must be a duration such as 5m"))]
    #[schemars(length(max = 2048))]
    pub ttl: String,
}

fn default_jwt_ttl() -> String {
    "5m".to_string()
}

/// Observed state of a CredentialProvider.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialProviderStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Which kind of provider this is.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}
