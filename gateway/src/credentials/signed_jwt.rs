//! `signedJwt`: the gateway mints a short-lived JWT naming the user and the agent, signed with a
//! PEM key from a Secret (RSA → RS256, EC P-256 → ES256). Upstreams verify it with the public
//! key the gateway publishes at `/.well-known/jwks.json` (`kid` = RFC 7638 thumbprint).
//!
//! Claims: `iss` (configured, else the gateway's `publicUrl`), `sub` (the user; the agent when
//! it acts alone), `azp` and `act.sub` (the agent), `aud`, `iat`, `nbf`, `exp` (`iat` + ttl),
//! `jti`, and `email` when known.

use super::oauth2::{Token, random_id};
use crate::authn::Identity;
use gatehouse_api::refs::ObjectKey;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// A JWT minter for one provider.
pub struct JwtMinter {
    key: EncodingKey,
    alg: Algorithm,
    kid: String,
    jwk: Value,
    issuer: String,
    audience: String,
    ttl: u64,
}

impl std::fmt::Debug for JwtMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtMinter")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl JwtMinter {
    /// Load the key (`pem`, the Secret's value) and compute its public JWK.
    pub fn new(
        p: &ObjectKey,
        pem: &[u8],
        issuer: String,
        audience: &str,
        ttl: u64,
    ) -> Result<Self, String> {
        let (key, alg) = EncodingKey::from_rsa_pem(pem)
            .map(|k| (k, Algorithm::RS256))
            .or_else(|_| EncodingKey::from_ec_pem(pem).map(|k| (k, Algorithm::ES256)))
            .map_err(|_| {
                format!("CredentialProvider {p}: the signing key is not an RSA or EC P-256 private key in PEM (PKCS#1, SEC1 or PKCS#8)")
            })?;
        let mut jwk = Jwk::from_encoding_key(&key, alg).map_err(|_| {
            format!("CredentialProvider {p}: the signing key's public key cannot be derived (EC keys must be P-256)")
        })?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| format!("CredentialProvider {p}: key thumbprint: {e}"))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let jwk = serde_json::to_value(&jwk).expect("a JWK serializes");
        Ok(Self {
            key,
            alg,
            kid,
            jwk,
            issuer,
            audience: audience.to_string(),
            ttl: ttl.max(1),
        })
    }

    /// A token for `who`, valid for the configured ttl.
    pub fn mint(&self, who: &Identity) -> Result<Token, String> {
        let started = Instant::now();
        let now = jsonwebtoken::get_current_timestamp();
        let agent = who.agent.as_ref().map(|a| a.id.as_str());
        let sub = match (&who.user, agent) {
            (Some(u), _) => u.id.as_str(),
            (None, Some(a)) => a,
            (None, None) => return Err("signedJwt needs a user or an agent to name".into()),
        };
        let mut claims = json!({
            "iss": self.issuer, "sub": sub, "aud": self.audience,
            "iat": now, "nbf": now, "exp": now + self.ttl, "jti": random_id(),
        });
        if let Some(a) = agent {
            claims["azp"] = json!(a);
            if who.user.is_some() {
                claims["act"] = json!({"sub": a});
            }
        }
        if let Some(email) = who.user.as_ref().and_then(|u| u.email.as_deref()) {
            claims["email"] = json!(email);
        }
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        let jwt = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("signing a JWT: {e}"))?;
        Ok(Token {
            value: Arc::new(Zeroizing::new(jwt)),
            expires_at: started + Duration::from_secs(self.ttl),
        })
    }
}

/// The JWKS document of `minters` (each key once).
pub fn jwks<'a>(minters: impl Iterator<Item = &'a JwtMinter>) -> Value {
    let mut keys: Vec<&Value> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for m in minters {
        if seen.insert(m.kid.clone()) {
            keys.push(&m.jwk);
        }
    }
    json!({ "keys": keys })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_api::identity::{AgentIdentity, UserIdentity};
    use jsonwebtoken::{DecodingKey, Validation};

    fn who() -> Identity {
        Identity {
            user: Some(Arc::new(UserIdentity {
                id: "u-alice".into(),
                email: Some("alice@example.com".into()),
                groups: vec![],
                provider: "corp".into(),
                claims: Default::default(),
            })),
            agent: Some(AgentIdentity::client("claude-code", "corp")),
            ..Default::default()
        }
    }

    fn rsa_pem() -> String {
        use rsa::pkcs8::EncodePrivateKey;
        let k = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        k.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string()
    }

    #[test]
    fn rsa_keys_sign_rs256_tokens_that_verify_with_the_published_jwk() {
        let p = ObjectKey::new("default", "jwt");
        let m = JwtMinter::new(
            &p,
            rsa_pem().as_bytes(),
            "https://gw".into(),
            "upstream",
            300,
        )
        .unwrap();
        let jwk: Jwk = serde_json::from_value(m.jwk.clone()).unwrap();
        assert_eq!(jwk.common.key_id.as_deref(), Some(m.kid.as_str()));
        assert!(m.jwk.get("d").is_none(), "no private parts: {}", m.jwk);
        let token = m.mint(&who()).unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&["upstream"]);
        v.set_issuer(&["https://gw"]);
        let data = jsonwebtoken::decode::<Value>(
            token.value.as_str(),
            &DecodingKey::from_jwk(&jwk).unwrap(),
            &v,
        )
        .unwrap();
        assert_eq!(data.header.kid.as_deref(), Some(m.kid.as_str()));
        let c = data.claims;
        assert_eq!(c["sub"], "u-alice");
        assert_eq!(c["act"]["sub"], "claude-code");
        assert_eq!(c["azp"], "claude-code");
        assert_eq!(c["email"], "alice@example.com");
        assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 300);
        assert!(!format!("{m:?}").contains("PRIVATE"));
        let doc = jwks([&m, &m].into_iter());
        assert_eq!(doc["keys"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn garbage_keys_are_refused_with_a_clear_error() {
        let p = ObjectKey::new("default", "jwt");
        let err = JwtMinter::new(&p, b"not a key", "i".into(), "a", 60).unwrap_err();
        assert!(err.contains("default/jwt") && err.contains("PEM"), "{err}");
    }
}
