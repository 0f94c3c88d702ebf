//! Signing secrets at rest: sealed with `yy-seal` (AES-256-GCM under a key derived from
//! `webhook.secret_key` for this purpose alone), so the log, readable by operators and
//! subscribers, never holds one in clear. The tenant and endpoint are the additional data: a
//! sealed secret copied to another endpoint does not open.

use crate::signing::SigningKey;

/// What the key is derived for: the same configured secret used elsewhere derives another key.
const PURPOSE: &str = "webhook signing secrets";

/// Seals and opens signing secrets; without `webhook.secret_key`, seals nothing.
#[derive(Debug)]
pub struct Sealer {
    sealer: Option<yy_seal::Sealer>,
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// `webhook.secret_key` is not set.
    #[error("webhook.secret_key is not configured")]
    NotConfigured,
    /// Sealing failed, or the sealed bytes are damaged or were sealed under another key or for
    /// another endpoint.
    #[error(transparent)]
    Seal(#[from] yy_seal::SealError),
}

impl Sealer {
    /// A sealer keyed by `secret_key` (validated at start: empty, or at least 32 characters).
    pub fn new(secret_key: &str) -> Result<Self, SealError> {
        if secret_key.is_empty() {
            return Ok(Sealer { sealer: None });
        }
        Ok(Sealer {
            sealer: Some(yy_seal::Sealer::new(secret_key, PURPOSE)?),
        })
    }

    /// Whether secrets can be sealed.
    pub fn is_configured(&self) -> bool {
        self.sealer.is_some()
    }

    fn place(tenant: &str, endpoint: &str) -> String {
        format!("{tenant}/{endpoint}")
    }

    /// Seals `key` for one endpoint.
    pub fn seal(&self, tenant: &str, endpoint: &str, key: &SigningKey) -> Result<Vec<u8>, SealError> {
        let sealer = self.sealer.as_ref().ok_or(SealError::NotConfigured)?;
        Ok(sealer.seal(&Self::place(tenant, endpoint), key.bytes())?)
    }

    /// Opens what [`Sealer::seal`] made for the same tenant and endpoint.
    pub fn open(&self, tenant: &str, endpoint: &str, sealed: &[u8]) -> Result<SigningKey, SealError> {
        let sealer = self.sealer.as_ref().ok_or(SealError::NotConfigured)?;
        Ok(SigningKey::from_bytes(
            sealer.open(&Self::place(tenant, endpoint), sealed)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_endpoint_and_key() {
        let sealer = Sealer::new("a-long-configured-secret-key-0123456789").expect("sealer");
        let key = SigningKey::generate();
        let sealed = sealer.seal("ten_1", "whk_1", &key).expect("seal");
        assert!(!sealed.windows(key.bytes().len()).any(|w| w == key.bytes()));
        assert_eq!(sealer.open("ten_1", "whk_1", &sealed).expect("open"), key);
        assert!(sealer.open("ten_1", "whk_2", &sealed).is_err());
        assert!(sealer.open("ten_2", "whk_1", &sealed).is_err());
        let other = Sealer::new("another-configured-secret-key-0123456789").expect("sealer");
        assert!(other.open("ten_1", "whk_1", &sealed).is_err());
    }

    #[test]
    fn without_a_key_nothing_is_sealed() {
        let sealer = Sealer::new("").expect("sealer");
        assert!(!sealer.is_configured());
        assert_eq!(
            sealer.seal("ten_1", "whk_1", &SigningKey::generate()),
            Err(SealError::NotConfigured)
        );
    }
}
