//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): secrets are `whsec_` +
//! base64 of the key bytes; a delivery carries `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, one per secret
//! that is valid, separated by spaces, so a receiver can rotate without losing a delivery.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

/// The prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Bytes of key in a secret the service makes.
const GENERATED_KEY_BYTES: usize = 32;

/// A signing key: the bytes behind a `whsec_…` secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        SigningKey(key)
    }

    /// Parses `whsec_` + base64 of 24 to 64 bytes.
    pub fn parse(secret: &str) -> Result<Self, &'static str> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or("must start with whsec_")?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| "must be whsec_ followed by base64")?;
        if !(24..=64).contains(&key.len()) {
            return Err("the key must be 24 to 64 bytes");
        }
        Ok(SigningKey(key))
    }

    /// The key's bytes, for sealing.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Wraps bytes opened from a sealed secret.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        SigningKey(bytes)
    }

    /// The secret as shown to its owner once: `whsec_` + base64.
    pub fn to_secret(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// One `v1,<base64>` signature of a message.
    pub fn sign(&self, message_id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(message_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header value: one signature per key, space-separated.
pub fn signature_header(keys: &[SigningKey], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| key.sign(message_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published test vector of the Standard Webhooks specification (its reference
    /// libraries all check this one).
    #[test]
    fn signs_the_specifications_test_vector() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("spec secret");
        let signature = key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_valid_key_signs_and_changes_in_any_part_change_the_signature() {
        let (a, b) = (SigningKey::generate(), SigningKey::generate());
        let header = signature_header(&[a.clone(), b.clone()], "msg_1", 10, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts, [a.sign("msg_1", 10, b"{}"), b.sign("msg_1", 10, b"{}")]);
        assert_ne!(a.sign("msg_1", 10, b"{}"), a.sign("msg_2", 10, b"{}"));
        assert_ne!(a.sign("msg_1", 10, b"{}"), a.sign("msg_1", 11, b"{}"));
        assert_ne!(a.sign("msg_1", 10, b"{}"), a.sign("msg_1", 10, b"{ }"));
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let key = SigningKey::generate();
        assert_eq!(SigningKey::parse(&key.to_secret()).expect("round trip"), key);
        assert!(key.to_secret().starts_with("whsec_"));
        assert!(SigningKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(SigningKey::parse("whsec_!!!").is_err());
        assert!(SigningKey::parse("whsec_c2hvcnQ=").is_err());
        assert!(!format!("{key:?}").contains(&key.to_secret()[6..]));
    }
}
