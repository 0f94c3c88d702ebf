//! Secrets at rest in the event log: connector tokens, passwords and signing secrets are stored
//! sealed, never in clear, because the log is read by operators, subscribers and backups.
//!
//! A [`Sealer`] holds an AES-256-GCM key derived with HKDF-SHA256 from a configured secret and a
//! *purpose* (such as `"ticket-sync connector secrets"`), so one configured secret used by two
//! services yields two unrelated keys. Each sealed value is bound to *additional data* naming
//! where it belongs (such as `tenant/connector/field`): a sealed value copied to another place
//! does not open.
//!
//! Format of a sealed value: one version byte (`1`), the 12-byte random nonce, then the
//! ciphertext with its 16-byte tag.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};

/// The format version written in the first byte of every sealed value.
const VERSION: u8 = 1;
/// The HKDF salt: fixed, so the same configured secret always derives the same key.
const SALT: &[u8] = b"yiwaiwai yy-seal v1";
/// The shortest configured secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// Why a value could not be sealed or opened. Never carries the secret or the plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The configured secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("the sealing secret must be at least {MIN_SECRET_LEN} bytes")]
    WeakSecret,
    /// The sealed bytes are damaged, of an unknown version, or were sealed under another key or
    /// for another place.
    #[error("a sealed value cannot be opened (another key, another place, or damaged)")]
    Unreadable,
    /// The cryptographic library refused the operation.
    #[error("sealing failed")]
    Crypto,
}

/// Seals and opens values under one derived key. Its `Debug` shows nothing of the key.
pub struct Sealer {
    key: RandomizedNonceKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

struct KeyLen;

impl KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

impl Sealer {
    /// Derives the key for `purpose` from `secret`.
    ///
    /// # Errors
    /// [`SealError::WeakSecret`] when `secret` is shorter than [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: &str, purpose: &str) -> Result<Self, SealError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SealError::WeakSecret);
        }
        let prk = Salt::new(HKDF_SHA256, SALT).extract(secret.as_bytes());
        let info = [purpose.as_bytes()];
        let okm = prk.expand(&info, KeyLen).map_err(|_| SealError::Crypto)?;
        let mut key = [0u8; 32];
        okm.fill(&mut key).map_err(|_| SealError::Crypto)?;
        let key = RandomizedNonceKey::new(&AES_256_GCM, &key).map_err(|_| SealError::Crypto)?;
        Ok(Sealer { key })
    }

    /// Seals `plaintext` for the place named by `aad`.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad.as_bytes()), &mut in_out)
            .map_err(|_| SealError::Crypto)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Opens what [`Sealer::seal`] produced for the same `aad`.
    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let Some((&VERSION, rest)) = sealed.split_first() else {
            return Err(SealError::Unreadable);
        };
        if rest.len() < NONCE_LEN {
            return Err(SealError::Unreadable);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Unreadable)?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut in_out)
            .map_err(|_| SealError::Unreadable)?;
        Ok(plaintext.to_vec())
    }

    /// Opens a sealed UTF-8 string.
    pub fn open_string(&self, aad: &str, sealed: &[u8]) -> Result<String, SealError> {
        String::from_utf8(self.open(aad, sealed)?).map_err(|_| SealError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a-configured-secret-of-some-length";

    #[test]
    fn round_trip() {
        let sealer = Sealer::new(SECRET, "test").unwrap();
        let sealed = sealer.seal("t1/cnx_1/token", b"s3cr3t").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"s3cr3t"), "stored in clear");
        assert_eq!(sealer.open("t1/cnx_1/token", &sealed).unwrap(), b"s3cr3t");
        // A random nonce per seal: sealing twice never gives the same bytes.
        assert_ne!(sealed, sealer.seal("t1/cnx_1/token", b"s3cr3t").unwrap());
    }

    #[test]
    fn another_place_key_or_purpose_does_not_open() {
        let sealer = Sealer::new(SECRET, "test").unwrap();
        let sealed = sealer.seal("t1/cnx_1/token", b"s3cr3t").unwrap();
        assert_eq!(sealer.open("t2/cnx_1/token", &sealed), Err(SealError::Unreadable));
        let other_key = Sealer::new("another-configured-secret-0123", "test").unwrap();
        assert_eq!(other_key.open("t1/cnx_1/token", &sealed), Err(SealError::Unreadable));
        let other_purpose = Sealer::new(SECRET, "other").unwrap();
        assert_eq!(
            other_purpose.open("t1/cnx_1/token", &sealed),
            Err(SealError::Unreadable)
        );
    }

    #[test]
    fn damage_is_refused_without_panicking() {
        let sealer = Sealer::new(SECRET, "test").unwrap();
        let sealed = sealer.seal("a", b"value").unwrap();
        for cut in 0..sealed.len() {
            assert_eq!(sealer.open("a", &sealed[..cut]), Err(SealError::Unreadable));
        }
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(sealer.open("a", &flipped), Err(SealError::Unreadable));
        let mut versioned = sealed;
        versioned[0] = 9;
        assert_eq!(sealer.open("a", &versioned), Err(SealError::Unreadable));
    }

    #[test]
    fn weak_secrets_are_refused() {
        assert_eq!(Sealer::new("short", "test").unwrap_err(), SealError::WeakSecret);
        assert_eq!(format!("{:?}", Sealer::new(SECRET, "test").unwrap()), "Sealer(***)");
    }
}
