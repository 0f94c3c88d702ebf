//! API keys and the admin token: generation, hashing and comparison.

use hmac::digest::InvalidLength;
use hmac::{Hmac, Mac};
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::Sha256;

/// What every API key starts with.
pub(crate) const KEY_PREFIX: &str = "yy_";

/// The random characters after [`KEY_PREFIX`]: 40 base62 characters carry about 238 bits.
const KEY_RANDOM_CHARS: usize = 40;

/// The length of a whole API key.
pub(crate) const KEY_LEN: usize = KEY_PREFIX.len() + KEY_RANDOM_CHARS;

/// How many leading characters of a key are kept, in the clear, to tell keys apart in listings.
/// Short enough to leave more than 200 random bits unknown.
pub(crate) const DISPLAY_PREFIX_LEN: usize = 10;

/// The length of a key hash (HMAC-SHA256).
pub(crate) const HASH_LEN: usize = 32;

/// A new API key: `yy_` and 40 base62 characters from the thread-local CSPRNG (ChaCha, seeded
/// from the operating system).
pub(crate) fn generate_key() -> String {
    let random: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(KEY_RANDOM_CHARS)
        .map(char::from)
        .collect();
    format!("{KEY_PREFIX}{random}")
}

/// The part of `key` shown in listings.
pub(crate) fn display_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_PREFIX_LEN).collect()
}

/// True when `key` has the shape of an API key, so that anything else is refused without hashing.
pub(crate) fn looks_like_key(key: &str) -> bool {
    key.len() == KEY_LEN
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Hashes API keys under the gateway's key secret. Only these hashes are stored: without the
/// secret, the log and snapshots reveal nothing that lets anyone present a key.
#[derive(Clone)]
pub(crate) struct KeyHasher {
    mac: Hmac<Sha256>,
}

impl KeyHasher {
    /// A hasher keyed with `secret`.
    pub(crate) fn new(secret: &[u8]) -> Result<Self, InvalidLength> {
        Ok(KeyHasher {
            mac: Hmac::new_from_slice(secret)?,
        })
    }

    /// HMAC-SHA256 of `key`.
    pub(crate) fn hash(&self, key: &str) -> [u8; HASH_LEN] {
        let mut mac = self.mac.clone();
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(***)")
    }
}

/// The configured admin token, compared in constant time.
///
/// Both the configured and the presented token are run through an HMAC under a key drawn at
/// start, and the digests are compared with the MAC's constant-time check: the time taken
/// depends neither on where the tokens differ nor on their lengths.
#[derive(Clone)]
pub(crate) struct AdminToken {
    mac: Hmac<Sha256>,
    expected: [u8; HASH_LEN],
}

impl AdminToken {
    /// The token `token`.
    pub(crate) fn new(token: &str) -> Result<Self, InvalidLength> {
        let mut key = [0u8; HASH_LEN];
        rand::rng().fill(&mut key);
        let mac = Hmac::<Sha256>::new_from_slice(&key)?;
        let mut expected = mac.clone();
        expected.update(token.as_bytes());
        Ok(AdminToken {
            expected: expected.finalize().into_bytes().into(),
            mac,
        })
    }

    /// True when `presented` is the token.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        let mut mac = self.mac.clone();
        mac.update(presented.as_bytes());
        mac.verify_slice(&self.expected).is_ok()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape_and_differ() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        for key in [&a, &b] {
            assert_eq!(key.len(), KEY_LEN);
            assert!(looks_like_key(key), "{key}");
            assert_eq!(display_prefix(key).len(), DISPLAY_PREFIX_LEN);
            assert!(key.starts_with(&display_prefix(key)));
        }
        assert!(!looks_like_key("yy_short"));
        assert!(!looks_like_key(&format!("xx_{}", &a[3..])));
        assert!(!looks_like_key(&format!("{}-", &a[..KEY_LEN - 1])));
    }

    #[test]
    fn hashes_depend_on_the_secret_and_the_key() {
        let one = KeyHasher::new(b"secret-one-0123456789abcdef0123456789").expect("hasher");
        let two = KeyHasher::new(b"secret-two-0123456789abcdef0123456789").expect("hasher");
        let key = generate_key();
        assert_eq!(one.hash(&key), one.hash(&key));
        assert_ne!(one.hash(&key), two.hash(&key));
        assert_ne!(one.hash(&key), one.hash(&generate_key()));
    }

    #[test]
    fn admin_token_matches_only_itself() {
        let token = AdminToken::new("admin-token-0123456789").expect("token");
        assert!(token.matches("admin-token-0123456789"));
        assert!(!token.matches("admin-token-012345678"));
        assert!(!token.matches("admin-token-01234567890"));
        assert!(!token.matches(""));
    }
}
