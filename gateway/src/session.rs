//! Gateway-minted `Mcp-Session-Id`s.
//!
//! The client-visible id is `gh1.` + base64url(nonce ‖ XChaCha20-Poly1305(claims)). The claims
//! carry the upstream's session id and the identity and server the session belongs to, so any
//! replica holding the same key can serve any request of the session — no sticky sessions, no
//! shared store — and an id presented by someone else, tampered with, or expired is refused.
//! The key is derived with HKDF-SHA256 from the session key Secret (or a key file); without one,
//! each process draws a random key, and sessions do not survive a restart or span replicas.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use gatehouse_api::identity::{AgentIdentity, UserIdentity};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const PREFIX: &str = "gh1.";
const AAD: &[u8] = b"gatehouse mcp session v1";
/// Upper bound on an id we try to decrypt (a long upstream id still fits comfortably).
const MAX_TOKEN_LEN: usize = 4096;

/// What a session id says, once decrypted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The upstream's own `Mcp-Session-Id`.
    #[serde(rename = "u")]
    pub upstream: String,
    /// McpServer `namespace/name`.
    #[serde(rename = "s")]
    pub server: String,
    /// `provider/id` of the user, if any.
    #[serde(rename = "usr", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `provider/kind/id` of the agent, if any.
    #[serde(rename = "agt", default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Issued at, Unix seconds.
    #[serde(rename = "iat")]
    pub issued: i64,
    /// Expires at, Unix seconds.
    #[serde(rename = "exp")]
    pub expires: i64,
}

/// Why a presented id was refused (all map to 404, so the client re-initializes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not ours, or altered.
    #[error("the session id is not valid")]
    Invalid,
    /// Past its lifetime.
    #[error("the session has expired")]
    Expired,
    /// Minted for another identity or server.
    #[error("the session belongs to a different identity or server")]
    WrongOwner,
}

impl SessionError {
    /// The text for the error response (never says more than this).
    pub fn public_reason(self) -> &'static str {
        match self {
            SessionError::Invalid => "the session id is not valid",
            SessionError::Expired => "the session has expired",
            SessionError::WrongOwner => "the session belongs to a different identity or server",
        }
    }
}

/// The identity a session is bound to, as stored in its claims.
pub fn owner(
    user: Option<&UserIdentity>,
    agent: Option<&AgentIdentity>,
) -> (Option<String>, Option<String>) {
    (
        user.map(|u| format!("{}/{}", u.provider, u.id)),
        agent.map(|a| format!("{}/{}/{}", a.provider, a.kind.as_str(), a.id)),
    )
}

/// Seals and opens session ids.
pub struct SessionKeys {
    cipher: XChaCha20Poly1305,
    /// Where the key came from, for logs (never the key).
    pub source: String,
}

impl SessionKeys {
    /// Derive the key from secret material.
    pub fn derive(material: &[u8], source: impl Into<String>) -> Self {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"gatehouse"), material);
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(b"mcp-session-id v1", key.as_mut());
        Self {
            cipher: XChaCha20Poly1305::new((&*key).into()),
            source: source.into(),
        }
    }

    /// A random key for this process only.
    pub fn random() -> Self {
        let material: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
        Self::derive(&*material, "a random per-process key")
    }

    /// Mint a session id.
    pub fn seal(&self, claims: &SessionClaims) -> String {
        let plain = Zeroizing::new(serde_json::to_vec(claims).expect("claims serialize"));
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = XNonce::from_slice(&nonce_bytes);
        let sealed = self
            .cipher
            .encrypt(
                nonce,
                Payload {
                    msg: &plain,
                    aad: AAD,
                },
            )
            .expect("XChaCha20-Poly1305 encryption does not fail for small messages");
        let mut out = Vec::with_capacity(24 + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Open a session id and check it belongs to this identity and server, at time `now`.
    pub fn open(
        &self,
        token: &str,
        server: &str,
        owner: &(Option<String>, Option<String>),
        now: i64,
    ) -> Result<SessionClaims, SessionError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(SessionError::Invalid);
        }
        let raw = token
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|r| r.len() > 24)
            .ok_or(SessionError::Invalid)?;
        let (nonce, sealed) = raw.split_at(24);
        let plain = Zeroizing::new(
            self.cipher
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: AAD,
                    },
                )
                .map_err(|_| SessionError::Invalid)?,
        );
        let claims: SessionClaims =
            serde_json::from_slice(&plain).map_err(|_| SessionError::Invalid)?;
        if claims.server != server || (claims.user.clone(), claims.agent.clone()) != *owner {
            return Err(SessionError::WrongOwner);
        }
        if now >= claims.expires {
            return Err(SessionError::Expired);
        }
        Ok(claims)
    }
}

/// A short digest of a session id for audit records: correlates lines, reveals nothing usable.
pub fn digest(token: &str) -> String {
    hex::encode(&Sha256::digest(token.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_claims() -> SessionClaims {
        SessionClaims {
            upstream: "up-1".into(),
            server: "default/demo".into(),
            user: Some("keys/alice".into()),
            agent: None,
            issued: 100,
            expires: 200,
        }
    }

    fn alice() -> (Option<String>, Option<String>) {
        (Some("keys/alice".into()), None)
    }

    #[test]
    fn round_trip_across_instances_with_the_same_key() {
        let a = SessionKeys::derive(b"shared key", "test");
        let b = SessionKeys::derive(b"shared key", "test");
        let token = a.seal(&mk_claims());
        assert_eq!(
            b.open(&token, "default/demo", &alice(), 150),
            Ok(mk_claims())
        );
    }

    #[test]
    fn other_identity_other_server_expiry_and_tampering_are_refused() {
        let k = SessionKeys::derive(b"k", "test");
        let token = k.seal(&mk_claims());
        let bob = (Some("keys/bob".into()), None);
        assert_eq!(
            k.open(&token, "default/demo", &bob, 150),
            Err(SessionError::WrongOwner)
        );
        assert_eq!(
            k.open(&token, "default/other", &alice(), 150),
            Err(SessionError::WrongOwner)
        );
        assert_eq!(
            k.open(&token, "default/demo", &alice(), 200),
            Err(SessionError::Expired)
        );
        let mut bytes = token.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            k.open(&tampered, "default/demo", &alice(), 150),
            Err(SessionError::Invalid)
        );
        let other = SessionKeys::derive(b"other", "test");
        assert_eq!(
            other.open(&k.seal(&mk_claims()), "default/demo", &alice(), 150),
            Err(SessionError::Invalid)
        );
    }
}
