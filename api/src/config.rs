//! `GatewayConfig`: the snapshot a gateway serves from. Produced by [`crate::compile()`],
//! pushed to gateways, applied atomically. It carries Secret *references* only.

use crate::access_policy::Action;
use crate::identity::AgentKind;
use crate::refs::{ObjectKey, SecretRef};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything one gateway (or one sidecar) needs to serve, and nothing secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConfig {
    /// Content hash of everything below (hex SHA-256 of the canonical JSON). Equal versions mean
    /// equal configuration.
    pub version: String,
    /// Which gateway this is for.
    pub gateway: GatewayId,
    /// Canonical public URL (the OAuth protected resource), when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Listener settings.
    pub listener: ListenerConfig,
    /// Session settings.
    pub session: SessionConfig,
    /// Allowed `Origin` values; empty means only requests without an Origin header, or with an
    /// Origin on localhost, are accepted from browsers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// Audit sink.
    pub audit: AuditConfig,
    /// Trust providers that authenticate on this gateway, by name.
    pub trust_providers: Vec<TrustProviderConfig>,
    /// Servers served, ordered by path.
    pub servers: Vec<ServerConfig>,
    /// Credential providers referenced by the policies below.
    pub credential_providers: Vec<CredentialProviderConfig>,
    /// Policies targeting the servers above, ordered by namespace/name.
    pub policies: Vec<PolicyConfig>,
    /// Every Secret this gateway reads (for least-privilege RBAC).
    pub secrets: Vec<SecretRef>,
}

/// Identifies a gateway deployment: a standalone McpGateway, or the sidecar of a workload
/// McpServer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum GatewayId {
    /// A standalone McpGateway.
    Gateway {
        /// Its namespace/name.
        #[serde(flatten)]
        key: ObjectKey,
    },
    /// The sidecar next to a workload McpServer.
    Sidecar {
        /// The McpServer's namespace/name.
        #[serde(flatten)]
        server: ObjectKey,
    },
}

impl std::fmt::Display for GatewayId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatewayId::Gateway { key } => write!(f, "McpGateway {key}"),
            GatewayId::Sidecar { server } => write!(f, "sidecar of McpServer {server}"),
        }
    }
}

/// Listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerConfig {
    /// Port.
    pub port: u16,
    /// TLS certificate Secret (`tls.crt`, `tls.key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SecretRef>,
}

/// Sessions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionConfig {
    /// Secret key from which session encryption keys derive; absent → per-process random key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SecretRef>,
    /// Idle lifetime in seconds.
    pub ttl_seconds: u64,
}

/// Audit sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "sink")]
pub enum AuditConfig {
    /// Standard output.
    Stdout,
    /// Append to a file.
    File {
        /// Path.
        path: String,
    },
    /// Disabled.
    None,
}

/// Whether a provider yields users or agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PrincipalKind {
    /// Human users.
    User,
    /// Agents.
    Agent,
}

/// A trust provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustProviderConfig {
    /// Name (policies refer to it by name).
    pub name: String,
    /// Users or agents.
    pub authenticates: PrincipalKind,
    /// How identities are verified.
    pub method: TrustMethod,
}

/// How a trust provider verifies identities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum TrustMethod {
    /// OIDC bearer JWTs.
    #[serde(rename_all = "camelCase")]
    Oidc {
        /// Issuer.
        issuer: String,
        /// Extra accepted audiences (besides the public URL).
        audiences: Vec<String>,
        /// JWKS override.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jwks_uri: Option<String>,
        /// User-id claim.
        user_claim: String,
        /// Email claim.
        email_claim: String,
        /// Groups claim.
        groups_claim: String,
        /// Client claim, if overridden.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_claim: Option<String>,
        /// Required scopes.
        required_scopes: Vec<String>,
        /// Clock skew in seconds.
        clock_skew_seconds: u64,
        /// Browser sign-in at the gateway (consent links), if configured.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        browser_login: Option<BrowserLoginConfig>,
    },
    /// Kubernetes ServiceAccount tokens.
    #[serde(rename_all = "camelCase")]
    KubernetesServiceAccount {
        /// Issuer for offline verification.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuer: Option<String>,
        /// Verify online with TokenReview.
        token_review: bool,
        /// Required audiences.
        audiences: Vec<String>,
        /// Header carrying the token when `Authorization` holds a user token.
        header: String,
    },
    /// Client certificates.
    #[serde(rename_all = "camelCase")]
    Mtls {
        /// CA bundle.
        ca_bundle: SecretRef,
        /// `spiffeUri`, `dnsSan` or `commonName`.
        identity_from: String,
    },
    /// API keys.
    #[serde(rename_all = "camelCase")]
    ApiKey {
        /// Secret of `principal: sha256:<hex>` entries.
        keys: SecretRef,
        /// Header carrying the key.
        header: String,
    },
}

/// The gateway's OAuth client at an OIDC issuer, for browser sign-in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrowserLoginConfig {
    /// Client id.
    pub client_id: String,
    /// Client secret, for a confidential client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretRef>,
}

/// An upstream server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    /// The McpServer.
    pub key: ObjectKey,
    /// Path on the gateway.
    pub path: String,
    /// Where the upstream is.
    pub upstream: Upstream,
    /// Transport to the upstream.
    pub transport: String,
    /// CA bundle for https upstreams, instead of system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<SecretRef>,
    /// TLS server name override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// Request (response headers) timeout, ms.
    pub request_timeout_ms: u64,
    /// Idle SSE stream timeout, ms.
    pub stream_idle_timeout_ms: u64,
    /// Tool-name prefix exposed to agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_prefix: Option<String>,
}

/// Where an upstream is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Upstream {
    /// An http(s) URL (remote, or an in-cluster Service resolved to its DNS name).
    Url {
        /// The URL.
        url: String,
    },
    /// A process the sidecar starts, spoken to over stdio.
    Stdio {
        /// Command and arguments.
        command: Vec<String>,
    },
}

/// A credential provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialProviderConfig {
    /// The CredentialProvider.
    pub key: ObjectKey,
    /// Header to set.
    pub header: String,
    /// Value template containing `{token}`.
    pub format: String,
    /// How the credential is obtained.
    pub source: CredentialSource,
}

/// The Secret a `perUserSecret` `nameTemplate` names for `user`: `{user}` is replaced by the
/// user id made DNS-safe (lowercased, anything but `[a-z0-9]` becomes `-`, leading and trailing
/// `-` trimmed). The gateway looks credentials up by this name, and the compiler lists exactly
/// the existing Secrets it can produce, so both must use this one function.
pub fn user_secret_name(template: &str, user: &str) -> String {
    let safe: String = user
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    template.replace("{user}", safe.trim_matches('-'))
}

/// The user part of `name` when `name` is a Secret name that [`user_secret_name`] makes from
/// `template` for some user: the part `{user}` stands for, non-empty and already DNS-safe.
pub fn user_of_secret_name<'a>(template: &str, name: &'a str) -> Option<&'a str> {
    let parts: Vec<&str> = template.split("{user}").collect();
    let occurrences = parts.len() - 1;
    if occurrences == 0 {
        return None;
    }
    let fixed: usize = parts.iter().map(|p| p.len()).sum();
    let rest = name.len().checked_sub(fixed)?;
    if rest == 0 || rest % occurrences != 0 {
        return None;
    }
    let start = parts[0].len();
    let user = name.get(start..start + rest / occurrences)?;
    // Equal only when `user` is its own DNS-safe form and the fixed parts match.
    (user_secret_name(template, user) == name).then_some(user)
}

/// How a credential is obtained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum CredentialSource {
    /// One shared secret.
    Secret {
        /// Where it is.
        secret: SecretRef,
    },
    /// Per-user secrets.
    #[serde(rename_all = "camelCase")]
    PerUserSecret {
        /// Namespace of the Secrets.
        namespace: String,
        /// One Secret keyed by user id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret_name: Option<String>,
        /// A Secret per user, named by template.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name_template: Option<String>,
        /// Key within per-user Secrets.
        key: String,
    },
    /// OAuth 2.0 client credentials.
    #[serde(rename_all = "camelCase")]
    OAuth2ClientCredentials {
        /// Token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Client secret or key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret: Option<SecretRef>,
        /// Client authentication method.
        auth_method: String,
        /// Scopes.
        scopes: Vec<String>,
        /// Audience.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
        /// Resource.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
    },
    /// OAuth 2.0 token exchange.
    #[serde(rename_all = "camelCase")]
    OAuth2TokenExchange {
        /// Token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Client secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret: Option<SecretRef>,
        /// Client authentication method.
        auth_method: String,
        /// Audience.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
        /// Resource.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
        /// Scopes.
        scopes: Vec<String>,
        /// Send the agent's token as actor.
        actor_token: bool,
    },
    /// Per-user authorization code + PKCE.
    #[serde(rename_all = "camelCase")]
    OAuth2AuthorizationCode {
        /// Authorization endpoint, when named rather than discovered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authorization_url: Option<String>,
        /// Token endpoint, when named rather than discovered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_url: Option<String>,
        /// Discover the endpoints from the upstream's protected-resource metadata.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        discovery: Option<AuthorizationServerDiscovery>,
        /// Client id.
        client_id: String,
        /// Client secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret: Option<SecretRef>,
        /// Client authentication method.
        auth_method: String,
        /// Scopes.
        scopes: Vec<String>,
        /// Token-store encryption key.
        encryption_key: SecretRef,
    },
    /// A JWT minted by the gateway.
    #[serde(rename_all = "camelCase")]
    SignedJwt {
        /// Signing key.
        signing_key: SecretRef,
        /// Issuer, if not the public URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuer: Option<String>,
        /// Audience.
        audience: String,
        /// Lifetime in seconds.
        ttl_seconds: u64,
    },
}

/// Where a gateway discovers an `oauth2AuthorizationCode` provider's authorization server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationServerDiscovery {
    /// The McpServer whose protected-resource metadata is read.
    pub server: ObjectKey,
    /// Its upstream URL: the protected resource.
    pub resource_url: String,
    /// The authorization server to pick from the metadata; `None` = the first listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Whether discovered URLs may be plain http or reach non-public addresses.
    #[serde(default)]
    pub allow_private_networks: bool,
}

/// A compiled AccessPolicy, as it travels to gateways.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyConfig {
    /// The AccessPolicy.
    pub key: ObjectKey,
    /// Allow or Deny.
    pub action: Action,
    /// Subject entries (any may match).
    pub subjects: Vec<SubjectConfig>,
    /// Targets.
    pub targets: Vec<TargetConfig>,
    /// CEL condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Set when the AccessPolicy is invalid and is kept only to deny, fail-closed: a broken Deny
    /// still denies everything on the servers it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_closed: Option<String>,
}

/// One subject entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectConfig {
    /// User selector; `None` = only requests without a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<UserMatch>,
    /// Agent selector; `None` = any agent or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<AgentMatch>,
}

/// User selector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserMatch {
    /// Trust provider name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_provider: Option<String>,
    /// User id globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// Email globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Exact claim values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
}

/// Agent selector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentMatch {
    /// Trust provider name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_provider: Option<String>,
    /// Id globs per agent kind.
    pub ids: BTreeMap<AgentKindKey, Vec<String>>,
}

/// [`AgentKind`] as a map key (serialized in camelCase).
pub type AgentKindKey = AgentKind;

/// A target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetConfig {
    /// The McpServer.
    pub server: ObjectKey,
    /// The CredentialProvider to inject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_provider: Option<ObjectKey>,
    /// Tool filter; `None` = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<FilterConfig>,
    /// Resource filter; `None` = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<FilterConfig>,
    /// Prompt filter; `None` = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<FilterConfig>,
}

/// Allow/deny globs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterConfig {
    /// Allowed globs; `None` = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Denied globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl GatewayConfig {
    /// Compute the content hash of this snapshot (ignoring the current `version`).
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut copy = self.clone();
        copy.version = String::new();
        let json = serde_json::to_vec(&copy).expect("GatewayConfig serializes");
        hex::encode(&Sha256::digest(&json)[..16])
    }

    /// Find a server by path.
    pub fn server_by_path(&self, path: &str) -> Option<&ServerConfig> {
        self.servers.iter().find(|s| s.path == path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_secret_names_are_dns_safe() {
        assert_eq!(
            user_secret_name("gh-{user}", "Ana.Lopez@Example.com"),
            "gh-ana-lopez-example-com"
        );
        assert_eq!(user_secret_name("{user}-pat", "__bob__"), "bob-pat");
        assert_eq!(user_secret_name("pat-{user}", "___"), "pat-");
    }

    #[test]
    fn a_secret_name_gives_back_the_user_part_only_when_the_template_could_make_it() {
        let t = "github-pat-{user}";
        assert_eq!(user_of_secret_name(t, "github-pat-alice"), Some("alice"));
        assert_eq!(
            user_of_secret_name(t, "github-pat-ana-lopez-example-com"),
            Some("ana-lopez-example-com")
        );
        for not_made in [
            "github-pat-",
            "github-pat--alice",
            "github-pat-alice-",
            "github-pat-Alice",
            "github-pat-a.b",
            "gitlab-pat-alice",
            "github-pat",
        ] {
            assert_eq!(user_of_secret_name(t, not_made), None, "{not_made}");
        }
        assert_eq!(
            user_of_secret_name("{user}-x-{user}", "bob-x-bob"),
            Some("bob")
        );
        assert_eq!(user_of_secret_name("{user}-x-{user}", "bob-x-ann"), None);
        assert_eq!(
            user_of_secret_name("no-placeholder", "no-placeholder"),
            None
        );
        // Every name the gateway looks up for a real user is recognised.
        for user in ["alice", "Bob@Example.com", "x_1", "ÄRGER-9"] {
            let name = user_secret_name(t, user);
            if name != "github-pat-" {
                assert!(user_of_secret_name(t, &name).is_some(), "{user} -> {name}");
            }
        }
    }
}
