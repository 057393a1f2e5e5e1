//! TrustProviders and CredentialProviders.

use super::servers::Servers;
use super::status::ObjectStatus;
use super::{Problems, Secrets, key_of};
use crate::config::{
    AuthorizationServerDiscovery, BrowserLoginConfig, CredentialProviderConfig, CredentialSource,
    PrincipalKind, TrustMethod, TrustProviderConfig, Upstream, user_of_secret_name,
};
use crate::credential_provider::{
    ClientAuthMethod, CredentialProviderSpec, OAuth2AuthorizationCode,
};
use crate::duration;
use crate::refs::{Kind, ObjectKey, ObjectRef, SecretKeySelector, SecretRef};
use crate::trust_provider::{Authenticates, CertificateIdentity, TrustProviderSpec};
use crate::{CredentialProvider, TrustProvider};
use std::collections::BTreeMap;

/// A compiled provider, or why it cannot be used.
pub(super) type Compiled<T> = BTreeMap<ObjectKey, Result<T, String>>;

/// A usable trust provider.
pub(super) struct TrustEntry {
    pub config: TrustProviderConfig,
    pub secrets: Vec<SecretRef>,
}

/// A usable credential provider.
pub(super) struct CredentialEntry {
    pub config: CredentialProviderConfig,
    pub secrets: Vec<SecretRef>,
}

fn secret_key(ns: &str, sel: &SecretKeySelector) -> SecretRef {
    SecretRef::key(ns, &sel.name, &sel.key)
}

fn url_check(field: &str, url: &str, problems: &mut Problems) {
    let ok = url.starts_with("https://")
        || url.starts_with("http://localhost")
        || url.starts_with("http://127.0.0.1")
        || url.starts_with("http://[::1]");
    if !ok {
        problems.invalid(format!(
            "{field}: {url:?} must be an https:// URL (plain http only for localhost)"
        ));
    }
}

fn seconds(field: &str, value: &str, problems: &mut Problems) -> u64 {
    match duration::parse(value) {
        Ok(d) => d.as_secs(),
        Err(e) => {
            problems.invalid(format!("{field}: {e}"));
            0
        }
    }
}

pub(super) fn compile_trust_providers(
    list: &[TrustProvider],
    secrets: &Secrets<'_>,
    statuses: &mut BTreeMap<ObjectRef, ObjectStatus>,
) -> Compiled<TrustEntry> {
    let mut out = BTreeMap::new();
    for tp in list {
        let key = key_of(tp);
        let mut problems = Problems::default();
        let (method, kind_name, default_principal, refs) =
            trust_method(&key, &tp.spec, &mut problems);
        for (field, r) in &refs {
            secrets.check(r, field, &mut problems);
        }
        let authenticates = match tp.spec.authenticates.unwrap_or(default_principal) {
            Authenticates::User => PrincipalKind::User,
            Authenticates::Agent => PrincipalKind::Agent,
        };
        let entry = match method {
            Some(method) if problems.is_clean() => Ok(TrustEntry {
                config: TrustProviderConfig {
                    name: key.name.clone(),
                    authenticates,
                    method,
                },
                secrets: refs.into_iter().map(|(_, r)| r).collect(),
            }),
            _ => Err(format!("TrustProvider {key} is not ready")),
        };
        let mut status = problems.into_status(tp.metadata.generation, "TrustProvider");
        status.provider_type = kind_name.map(str::to_string);
        statuses.insert(
            ObjectRef::new(Kind::TrustProvider, &key.namespace, &key.name),
            status,
        );
        out.insert(key, entry);
    }
    out
}

type TrustParts = (
    Option<TrustMethod>,
    Option<&'static str>,
    Authenticates,
    Vec<(String, SecretRef)>,
);

fn trust_method(key: &ObjectKey, spec: &TrustProviderSpec, problems: &mut Problems) -> TrustParts {
    let set = [
        spec.oidc.is_some(),
        spec.kubernetes_service_account.is_some(),
        spec.mtls.is_some(),
        spec.api_key.is_some(),
    ];
    if set.iter().filter(|b| **b).count() != 1 {
        problems.invalid("spec: set exactly one of oidc, kubernetesServiceAccount, mtls or apiKey");
        return (None, None, Authenticates::User, vec![]);
    }
    let ns = &key.namespace;
    if let Some(o) = &spec.oidc {
        url_check("spec.oidc.issuer", &o.issuer, problems);
        if let Some(j) = &o.jwks_uri {
            url_check("spec.oidc.jwksUri", j, problems);
        }
        let skew = seconds("spec.oidc.clockSkew", &o.clock_skew, problems);
        let method = TrustMethod::Oidc {
            issuer: o.issuer.trim_end_matches('/').to_string(),
            audiences: o.audiences.clone(),
            jwks_uri: o.jwks_uri.clone(),
            user_claim: o.claim_mappings.user.clone(),
            email_claim: o.claim_mappings.email.clone(),
            groups_claim: o.claim_mappings.groups.clone(),
            client_claim: o.claim_mappings.client.clone(),
            required_scopes: o.required_scopes.clone(),
            clock_skew_seconds: skew,
            browser_login: o.browser_login.as_ref().map(|b| BrowserLoginConfig {
                client_id: b.client_id.clone(),
                client_secret: b.client_secret_ref.as_ref().map(|r| secret_key(ns, r)),
            }),
        };
        let refs = o
            .browser_login
            .as_ref()
            .and_then(|b| b.client_secret_ref.as_ref())
            .map(|r| {
                (
                    "spec.oidc.browserLogin.clientSecretRef".to_string(),
                    secret_key(ns, r),
                )
            })
            .into_iter()
            .collect();
        return (Some(method), Some("oidc"), Authenticates::User, refs);
    }
    if let Some(k) = &spec.kubernetes_service_account {
        let token_review = k.token_review.unwrap_or(false);
        if k.issuer.is_some() == token_review {
            problems.invalid(
                "spec.kubernetesServiceAccount: set either issuer (offline verification) or tokenReview: true (online), not both",
            );
        }
        if k.audiences.is_empty() {
            problems.invalid("spec.kubernetesServiceAccount.audiences: list at least one audience");
        }
        let method = TrustMethod::KubernetesServiceAccount {
            issuer: k.issuer.clone(),
            token_review,
            audiences: k.audiences.clone(),
            header: k.header.clone(),
        };
        return (
            Some(method),
            Some("kubernetesServiceAccount"),
            Authenticates::Agent,
            vec![],
        );
    }
    if let Some(m) = &spec.mtls {
        let ca = secret_key(ns, &m.ca_bundle_secret_ref);
        let from = match m.identity_from {
            CertificateIdentity::SpiffeUri => "spiffeUri",
            CertificateIdentity::DnsSan => "dnsSan",
            CertificateIdentity::CommonName => "commonName",
        };
        let method = TrustMethod::Mtls {
            ca_bundle: ca.clone(),
            identity_from: from.to_string(),
        };
        return (
            Some(method),
            Some("mtls"),
            Authenticates::Agent,
            vec![("spec.mtls.caBundleSecretRef".to_string(), ca)],
        );
    }
    let a = spec.api_key.as_ref().expect("exactly one is set");
    if a.header.trim().is_empty() {
        problems.invalid("spec.apiKey.header: must not be empty");
    }
    let keys = SecretRef::whole(ns, &a.secret_ref.name);
    let method = TrustMethod::ApiKey {
        keys: keys.clone(),
        header: a.header.clone(),
    };
    (
        Some(method),
        Some("apiKey"),
        Authenticates::User,
        vec![("spec.apiKey.secretRef".to_string(), keys)],
    )
}

fn auth_method_name(m: ClientAuthMethod) -> &'static str {
    match m {
        ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
        ClientAuthMethod::ClientSecretPost => "client_secret_post",
        ClientAuthMethod::PrivateKeyJwt => "private_key_jwt",
        ClientAuthMethod::None => "none",
    }
}

pub(super) fn compile_credential_providers(
    list: &[CredentialProvider],
    servers: &Servers,
    secrets: &Secrets<'_>,
    statuses: &mut BTreeMap<ObjectRef, ObjectStatus>,
) -> Compiled<CredentialEntry> {
    let mut out = BTreeMap::new();
    for cp in list {
        let key = key_of(cp);
        let mut problems = Problems::default();
        let spec = &cp.spec;
        if spec.inject.header.trim().is_empty()
            || !spec
                .inject
                .header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            problems.invalid(format!(
                "spec.inject.header: {:?} is not a valid HTTP header name",
                spec.inject.header
            ));
        }
        if !spec.inject.format.contains("{token}") {
            problems.invalid("spec.inject.format: must contain the {token} placeholder");
        }
        let (source, type_name, refs) = credential_source(&key, spec, servers, &mut problems);
        for (field, r) in &refs {
            secrets.check(r, field, &mut problems);
        }
        let mut refs: Vec<SecretRef> = refs.into_iter().map(|(_, r)| r).collect();
        let mut too_many = None;
        if let Some(CredentialSource::PerUserSecret {
            namespace,
            name_template: Some(template),
            key: secret_key,
            ..
        }) = &source
        {
            let (found, total) = per_user_secrets(secrets, namespace, template, secret_key);
            if total > MAX_PER_USER_SECRETS {
                too_many = Some(format!(
                    "spec.perUserSecret.nameTemplate: {total} Secrets in namespace {namespace} match {template:?}; only the first {MAX_PER_USER_SECRETS} by name are served, the other users get no credential. Use secretName (one Secret keyed by user) for this many users"
                ));
            }
            refs.extend(found);
        }
        let entry = match source {
            Some(source) if problems.is_clean() => Ok(CredentialEntry {
                config: CredentialProviderConfig {
                    key: key.clone(),
                    header: spec.inject.header.clone(),
                    format: spec.inject.format.clone(),
                    source,
                },
                secrets: refs,
            }),
            _ => Err(format!("CredentialProvider {key} is not ready")),
        };
        // Reported, yet the provider keeps serving the users it has room for.
        if let Some(message) = too_many {
            problems.unresolved("TooManyPerUserSecrets", message);
        }
        let mut status = problems.into_status(cp.metadata.generation, "CredentialProvider");
        status.provider_type = type_name.map(str::to_string);
        statuses.insert(
            ObjectRef::new(Kind::CredentialProvider, &key.namespace, &key.name),
            status,
        );
        out.insert(key, entry);
    }
    out
}

/// At most this many per-user Secrets per `nameTemplate` provider reach a snapshot. Each is
/// a name in the snapshot ConfigMap (which holds at most 1 MiB), in the gateway's Role, and a
/// watch the gateway keeps open against the API server; past this, `secretName` (one Secret
/// keyed by user, one watch) is the better fit.
pub const MAX_PER_USER_SECRETS: usize = 1000;

/// The existing Secrets a `nameTemplate` provider may look a user's credential up in: same
/// namespace, a name the gateway produces from the template for some user (see
/// [`user_of_secret_name`]), holding `key`. Sorted by name, at most [`MAX_PER_USER_SECRETS`];
/// also returns how many matched in all.
fn per_user_secrets(
    secrets: &Secrets<'_>,
    namespace: &str,
    template: &str,
    key: &str,
) -> (Vec<SecretRef>, usize) {
    let mut total = 0;
    let mut found = Vec::new();
    let matching = secrets
        .in_namespace(namespace)
        .filter(|s| s.keys.contains(key) && user_of_secret_name(template, &s.name).is_some());
    for s in matching {
        total += 1;
        if found.len() < MAX_PER_USER_SECRETS {
            found.push(SecretRef::key(namespace, &s.name, key));
        }
    }
    (found, total)
}

type CredentialParts = (
    Option<CredentialSource>,
    Option<&'static str>,
    Vec<(String, SecretRef)>,
);

fn credential_source(
    key: &ObjectKey,
    spec: &CredentialProviderSpec,
    servers: &Servers,
    problems: &mut Problems,
) -> CredentialParts {
    let set = [
        spec.secret.is_some(),
        spec.per_user_secret.is_some(),
        spec.oauth2_client_credentials.is_some(),
        spec.oauth2_token_exchange.is_some(),
        spec.oauth2_authorization_code.is_some(),
        spec.signed_jwt.is_some(),
    ];
    if set.iter().filter(|b| **b).count() != 1 {
        problems.invalid(
            "spec: set exactly one of secret, perUserSecret, oauth2ClientCredentials, oauth2TokenExchange, oauth2AuthorizationCode or signedJwt",
        );
        return (None, None, vec![]);
    }
    let ns = &key.namespace;
    let client_secret = |field: &str,
                         sel: &Option<SecretKeySelector>,
                         method: ClientAuthMethod,
                         refs: &mut Vec<(String, SecretRef)>,
                         problems: &mut Problems| {
        match sel {
            Some(s) => {
                let r = secret_key(ns, s);
                refs.push((field.to_string(), r.clone()));
                Some(r)
            }
            None => {
                if method != ClientAuthMethod::None {
                    problems.invalid(format!("{field}: required unless authMethod is none"));
                }
                None
            }
        }
    };
    let mut refs = Vec::new();
    if let Some(s) = &spec.secret {
        let r = secret_key(ns, &s.secret_ref);
        refs.push(("spec.secret.secretRef".to_string(), r.clone()));
        return (
            Some(CredentialSource::Secret { secret: r }),
            Some("secret"),
            refs,
        );
    }
    if let Some(p) = &spec.per_user_secret {
        match (&p.secret_name, &p.name_template) {
            (Some(name), None) => refs.push((
                "spec.perUserSecret.secretName".to_string(),
                SecretRef::whole(ns, name),
            )),
            (None, Some(t)) if t.contains("{user}") => {}
            (None, Some(_)) => problems.invalid("spec.perUserSecret.nameTemplate: must contain {user}"),
            _ => problems.invalid(
                "spec.perUserSecret: set either secretName (one Secret keyed by user) or nameTemplate (one Secret per user)",
            ),
        }
        let src = CredentialSource::PerUserSecret {
            namespace: ns.clone(),
            secret_name: p.secret_name.clone(),
            name_template: p.name_template.clone(),
            key: p.key.clone(),
        };
        return (Some(src), Some("perUserSecret"), refs);
    }
    if let Some(c) = &spec.oauth2_client_credentials {
        url_check(
            "spec.oauth2ClientCredentials.tokenUrl",
            &c.token_url,
            problems,
        );
        let secret = client_secret(
            "spec.oauth2ClientCredentials.clientSecretRef",
            &c.client_secret_ref,
            c.auth_method,
            &mut refs,
            problems,
        );
        let src = CredentialSource::OAuth2ClientCredentials {
            token_url: c.token_url.clone(),
            client_id: c.client_id.clone(),
            client_secret: secret,
            auth_method: auth_method_name(c.auth_method).to_string(),
            scopes: c.scopes.clone(),
            audience: c.audience.clone(),
            resource: c.resource.clone(),
        };
        return (Some(src), Some("oauth2ClientCredentials"), refs);
    }
    if let Some(c) = &spec.oauth2_token_exchange {
        url_check("spec.oauth2TokenExchange.tokenUrl", &c.token_url, problems);
        let secret = client_secret(
            "spec.oauth2TokenExchange.clientSecretRef",
            &c.client_secret_ref,
            c.auth_method,
            &mut refs,
            problems,
        );
        let src = CredentialSource::OAuth2TokenExchange {
            token_url: c.token_url.clone(),
            client_id: c.client_id.clone(),
            client_secret: secret,
            auth_method: auth_method_name(c.auth_method).to_string(),
            audience: c.audience.clone(),
            resource: c.resource.clone(),
            scopes: c.scopes.clone(),
            actor_token: c.actor_token,
        };
        return (Some(src), Some("oauth2TokenExchange"), refs);
    }
    if let Some(c) = &spec.oauth2_authorization_code {
        let discovery = authorization_code_endpoints(ns, c, servers, problems);
        let secret = match &c.client_secret_ref {
            Some(s) => {
                let r = secret_key(ns, s);
                refs.push((
                    "spec.oauth2AuthorizationCode.clientSecretRef".to_string(),
                    r.clone(),
                ));
                Some(r)
            }
            None => None,
        };
        let enc = secret_key(ns, &c.encryption_key_secret_ref);
        refs.push((
            "spec.oauth2AuthorizationCode.encryptionKeySecretRef".to_string(),
            enc.clone(),
        ));
        let src = CredentialSource::OAuth2AuthorizationCode {
            authorization_url: c.authorization_url.clone(),
            token_url: c.token_url.clone(),
            discovery,
            client_id: c.client_id.clone(),
            client_secret: secret,
            auth_method: auth_method_name(c.auth_method).to_string(),
            scopes: c.scopes.clone(),
            encryption_key: enc,
        };
        return (Some(src), Some("oauth2AuthorizationCode"), refs);
    }
    let j = spec.signed_jwt.as_ref().expect("exactly one is set");
    let ttl = seconds("spec.signedJwt.ttl", &j.ttl, problems);
    let key_ref = secret_key(ns, &j.signing_key_secret_ref);
    refs.push((
        "spec.signedJwt.signingKeySecretRef".to_string(),
        key_ref.clone(),
    ));
    let src = CredentialSource::SignedJwt {
        signing_key: key_ref,
        issuer: j.issuer.clone(),
        audience: j.audience.clone(),
        ttl_seconds: ttl,
    };
    (Some(src), Some("signedJwt"), refs)
}

/// Check how an `oauth2AuthorizationCode` provider finds its endpoints: named (both URLs) or
/// discovered from an McpServer with an HTTP upstream in the same namespace.
fn authorization_code_endpoints(
    ns: &str,
    c: &OAuth2AuthorizationCode,
    servers: &Servers,
    problems: &mut Problems,
) -> Option<AuthorizationServerDiscovery> {
    const FIELD: &str = "spec.oauth2AuthorizationCode";
    let Some(d) = &c.discovery else {
        match (&c.authorization_url, &c.token_url) {
            (Some(a), Some(t)) => {
                url_check(&format!("{FIELD}.authorizationUrl"), a, problems);
                url_check(&format!("{FIELD}.tokenUrl"), t, problems);
            }
            _ => problems.invalid(format!(
                "{FIELD}: set either authorizationUrl and tokenUrl, or discovery (not both)"
            )),
        }
        return None;
    };
    if c.authorization_url.is_some() || c.token_url.is_some() {
        problems.invalid(format!(
            "{FIELD}: set either authorizationUrl and tokenUrl, or discovery (not both)"
        ));
    }
    if let Some(issuer) = &d.issuer
        && !(issuer.starts_with("https://") || issuer.starts_with("http://"))
    {
        problems.invalid(format!(
            "{FIELD}.discovery.issuer: {issuer:?} must be an http(s) URL"
        ));
    }
    let server = ObjectKey::new(ns, &d.server);
    let resource_url = match servers.get(&server) {
        None => {
            problems.unresolved(
                "ServerNotFound",
                format!("{FIELD}.discovery.server: McpServer {server} not found"),
            );
            return None;
        }
        Some(None) => {
            problems.unresolved(
                "ServerNotReady",
                format!(
                    "{FIELD}.discovery.server: McpServer {server} is not ready (see its status)"
                ),
            );
            return None;
        }
        Some(Some(entry)) => match &entry.config.upstream {
            Upstream::Url { url } => url.clone(),
            Upstream::Stdio { .. } => {
                problems.invalid(format!(
                    "{FIELD}.discovery.server: McpServer {server} runs over stdio and has no URL to read protected-resource metadata from; name authorizationUrl and tokenUrl instead"
                ));
                return None;
            }
        },
    };
    Some(AuthorizationServerDiscovery {
        server,
        resource_url,
        issuer: d.issuer.clone(),
        allow_private_networks: d.allow_private_networks,
    })
}
