//! Signing secrets at rest: sealed with AES-256-GCM under a key derived from
//! `webhook.secret_key`, so the log (readable by operators and subscribers) never holds one in
//! clear. The tenant and endpoint are the additional authenticated data: a sealed secret copied
//! to another endpoint does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use sha2::{Digest, Sha256};

use crate::signing::SigningKey;

/// Seals and opens signing secrets.
pub struct Sealer {
    key: Option<RandomizedNonceKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("configured", &self.key.is_some())
            .finish()
    }
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// `webhook.secret_key` is not set.
    #[error("webhook.secret_key is not configured")]
    NotConfigured,
    /// The sealed bytes are damaged, or were sealed under another key or for another endpoint.
    #[error("a sealed secret cannot be opened (another webhook.secret_key, or damaged)")]
    Unreadable,
}

impl Sealer {
    /// A sealer keyed by `secret_key`; an empty one seals nothing (endpoints cannot be created).
    pub fn new(secret_key: &str) -> Self {
        if secret_key.is_empty() {
            return Sealer { key: None };
        }
        // The configured key is a high-entropy string (validated at start); one hash turns it
        // into the 32 bytes AES-256 needs without constraining its format.
        let digest = Sha256::digest(secret_key.as_bytes());
        let key = RandomizedNonceKey::new(&AES_256_GCM, &digest).ok();
        Sealer { key }
    }

    /// Whether secrets can be sealed.
    pub fn is_configured(&self) -> bool {
        self.key.is_some()
    }

    fn aad(tenant: &str, endpoint: &str) -> Vec<u8> {
        format!("{tenant}/{endpoint}").into_bytes()
    }

    /// Seals `key` for one endpoint: nonce, then ciphertext and tag.
    pub fn seal(&self, tenant: &str, endpoint: &str, key: &SigningKey) -> Result<Vec<u8>, SealError> {
        let sealer = self.key.as_ref().ok_or(SealError::NotConfigured)?;
        let mut in_out = key.bytes().to_vec();
        let nonce = sealer
            .seal_in_place_append_tag(Aad::from(Self::aad(tenant, endpoint)), &mut in_out)
            .map_err(|_| SealError::Unreadable)?;
        let mut sealed = nonce.as_ref().to_vec();
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Opens what [`Sealer::seal`] made for the same tenant and endpoint.
    pub fn open(&self, tenant: &str, endpoint: &str, sealed: &[u8]) -> Result<SigningKey, SealError> {
        let sealer = self.key.as_ref().ok_or(SealError::NotConfigured)?;
        if sealed.len() <= NONCE_LEN {
            return Err(SealError::Unreadable);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Unreadable)?;
        let mut in_out = ciphertext.to_vec();
        let plain = sealer
            .open_in_place(nonce, Aad::from(Self::aad(tenant, endpoint)), &mut in_out)
            .map_err(|_| SealError::Unreadable)?;
        Ok(SigningKey::from_bytes(plain.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_endpoint_and_key() {
        let sealer = Sealer::new("a-long-configured-secret-key-0123456789");
        let key = SigningKey::generate();
        let sealed = sealer.seal("ten_1", "whk_1", &key).expect("seal");
        assert!(!sealed.windows(key.bytes().len()).any(|w| w == key.bytes()));
        assert_eq!(sealer.open("ten_1", "whk_1", &sealed).expect("open"), key);
        assert_eq!(sealer.open("ten_1", "whk_2", &sealed), Err(SealError::Unreadable));
        assert_eq!(sealer.open("ten_2", "whk_1", &sealed), Err(SealError::Unreadable));
        let other = Sealer::new("another-configured-secret-key-0123456789");
        assert_eq!(other.open("ten_1", "whk_1", &sealed), Err(SealError::Unreadable));
        let mut damaged = sealed.clone();
        *damaged.last_mut().expect("bytes") ^= 1;
        assert_eq!(sealer.open("ten_1", "whk_1", &damaged), Err(SealError::Unreadable));
        assert_eq!(sealer.open("ten_1", "whk_1", &sealed[..5]), Err(SealError::Unreadable));
        // Two seals of one secret differ (fresh nonces).
        assert_ne!(sealer.seal("ten_1", "whk_1", &key).expect("seal"), sealed);
    }

    #[test]
    fn without_a_key_nothing_is_sealed() {
        let sealer = Sealer::new("");
        assert!(!sealer.is_configured());
        assert_eq!(
            sealer.seal("ten_1", "whk_1", &SigningKey::generate()),
            Err(SealError::NotConfigured)
        );
    }
}
