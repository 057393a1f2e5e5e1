//! Sealed blobs for per-user consent: AES-256-GCM with a random 96-bit nonce and associated
//! data naming what the blob is for, so a blob sealed for one purpose, provider or user never
//! opens as another.
//!
//! One 32-byte key per `oauth2AuthorizationCode` provider (its `encryptionKeySecretRef`) seals
//! the stored token sets directly; the consent links and OAuth `state` values the gateway hands
//! out are sealed with a subkey derived from it (HKDF-SHA256), so the key that protects
//! long-lived refresh tokens never encrypts attacker-observable, attacker-replayable text.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

/// Blob format version, the first byte of every sealed blob.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// An AES-256-GCM key.
pub struct SealKey(Aes256Gcm);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

impl SealKey {
    /// The key from Secret bytes: exactly 32 raw bytes, or their standard / URL-safe base64
    /// (surrounding whitespace ignored). `None` for anything else.
    pub fn from_secret(raw: &[u8]) -> Option<Self> {
        Some(Self::from_bytes(&*key_bytes(raw)?))
    }

    /// A subkey for `purpose` (HKDF-SHA256 over the Secret's key).
    pub fn derive(raw: &[u8], purpose: &str) -> Option<Self> {
        let ikm = key_bytes(raw)?;
        let mut okm = Zeroizing::new([0u8; 32]);
        hkdf::Hkdf::<sha2::Sha256>::new(Some(b"gatehouse-consent-v1"), ikm.as_slice())
            .expand(purpose.as_bytes(), okm.as_mut_slice())
            .ok()?;
        Some(Self::from_bytes(&okm))
    }

    fn from_bytes(key: &[u8; 32]) -> Self {
        Self(Aes256Gcm::new(key.into()))
    }

    /// Encrypt `plaintext`, bound to `aad`: `version || nonce || ciphertext+tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ct = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypt a blob from [`seal`](Self::seal) with the same `aad`; `None` if it was sealed
    /// with another key or for another purpose, or was altered.
    pub fn open(&self, aad: &[u8], blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if blob.len() < 1 + NONCE_LEN + 16 || blob[0] != VERSION {
            return None;
        }
        let (nonce, ct) = blob[1..].split_at(NONCE_LEN);
        self.0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .ok()
            .map(Zeroizing::new)
    }

    /// [`seal`](Self::seal) as URL-safe text (for links and `state`).
    pub fn seal_text(&self, aad: &[u8], plaintext: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.seal(aad, plaintext))
    }

    /// [`open`](Self::open) of URL-safe text.
    pub fn open_text(&self, aad: &[u8], text: &str) -> Option<Zeroizing<Vec<u8>>> {
        let blob = URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()?;
        self.open(aad, &blob)
    }
}

/// 32 key bytes from raw or base64 Secret bytes.
fn key_bytes(raw: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    if raw.len() == 32 {
        key.copy_from_slice(raw);
        return Some(key);
    }
    let text = std::str::from_utf8(raw).ok()?.trim();
    if text.len() == 32 {
        key.copy_from_slice(text.as_bytes());
        return Some(key);
    }
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .ok()?,
    );
    if decoded.len() != 32 {
        return None;
    }
    key.copy_from_slice(&decoded);
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn keys_are_raw_or_base64_32_bytes() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(SealKey::from_secret(RAW).is_some());
        assert!(SealKey::from_secret(format!("{b64}\n").as_bytes()).is_some());
        assert!(SealKey::from_secret(b"too short").is_none());
        assert!(SealKey::from_secret(&[1u8; 31]).is_none());
        assert_eq!(
            format!("{:?}", SealKey::from_secret(RAW).unwrap()),
            "SealKey(<redacted>)"
        );
    }

    #[test]
    fn sealed_blobs_open_only_with_their_key_and_purpose() {
        let k = SealKey::from_secret(RAW).unwrap();
        let blob = k.seal(b"grant alice", b"refresh-me");
        assert!(!blob.windows(10).any(|w| w == b"refresh-me"));
        assert_eq!(
            k.open(b"grant alice", &blob).unwrap().as_slice(),
            b"refresh-me"
        );
        assert!(k.open(b"grant bob", &blob).is_none(), "bound to its slot");
        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(k.open(b"grant alice", &tampered).is_none());
        let sub = SealKey::derive(RAW, "state").unwrap();
        assert!(sub.open(b"grant alice", &blob).is_none(), "subkeys differ");
        let t = sub.seal_text(b"s", b"x");
        assert_eq!(sub.open_text(b"s", &t).unwrap().as_slice(), b"x");
        assert!(sub.open_text(b"s", "not base64!").is_none());
    }
}
