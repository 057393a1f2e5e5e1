//! Per-user consent grant Secrets written by gateways in cluster mode
//! (`gatehouse_api::push::grants`), as the operator sees them: the names it lists in the
//! `resourceNames` of each gateway's Role.
//!
//! Only a Secret whose `type` is the grant type *and* whose name is a grant name counts. The
//! type is immutable, so a gateway, which may create Secrets in its providers' namespaces but
//! not read them, cannot get read access to an existing Secret of another kind (a
//! ServiceAccount token, a TLS key) by labelling or naming anything: it can only ever gain
//! access to Secrets that were created as grants.

use crate::secret_keys::SecretKeys;
use gatehouse_api::push::grants::{GRANT_PROVIDER_LABEL, GRANT_SECRET_TYPE, is_grant_name};

/// One grant Secret.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantSecret {
    /// Its namespace (the CredentialProvider's).
    pub namespace: String,
    /// The CredentialProvider it is for (its label).
    pub provider: String,
    /// Its name.
    pub name: String,
}

impl GrantSecret {
    /// `s` as a grant Secret, if it is one.
    pub fn of(s: &SecretKeys) -> Option<Self> {
        let m = &s.metadata;
        let name = m.name.as_deref()?;
        if s.type_.as_deref() != Some(GRANT_SECRET_TYPE)
            || !is_grant_name(name)
            || m.deletion_timestamp.is_some()
        {
            return None;
        }
        Some(Self {
            namespace: m.namespace.clone()?,
            provider: m.labels.as_ref()?.get(GRANT_PROVIDER_LABEL)?.clone(),
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(name: &str, type_: &str, provider: Option<&str>) -> SecretKeys {
        let mut v = serde_json::json!({"metadata": {"name": name, "namespace": "team-a"},
                                       "type": type_});
        if let Some(p) = provider {
            v["metadata"]["labels"] = serde_json::json!({GRANT_PROVIDER_LABEL: p});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_secrets_created_as_grants_count() {
        let name = format!("gatehouse-grant-{}", "ab".repeat(32));
        assert_eq!(
            GrantSecret::of(&mk(&name, GRANT_SECRET_TYPE, Some("saas"))),
            Some(GrantSecret {
                namespace: "team-a".into(),
                provider: "saas".into(),
                name: name.clone()
            })
        );
        // a labelled ServiceAccount token under a grant's name is not a grant
        let token = "kubernetes.io/service-account-token";
        assert_eq!(GrantSecret::of(&mk(&name, token, Some("saas"))), None);
        // the grant type under another name is not a grant
        assert_eq!(
            GrantSecret::of(&mk("default-token", GRANT_SECRET_TYPE, Some("saas"))),
            None
        );
        // a grant for no provider is nobody's
        assert_eq!(GrantSecret::of(&mk(&name, GRANT_SECRET_TYPE, None)), None);
    }
}
