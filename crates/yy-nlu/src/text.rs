//! Character classes and hashing shared by every analysis.

use std::hash::{BuildHasher, Hasher};

/// What a character is for the purposes of this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CharClass {
    /// A CJK unified ideograph (Chinese character).
    Han,
    /// A letter or digit of any other script (Latin, Cyrillic, kana, Hangul, …).
    Alnum,
    /// A pictographic symbol.
    Emoji,
    /// Anything else: whitespace, punctuation, control characters, marks.
    Other,
}

/// Classifies a character, after [`fold_width`].
pub(crate) fn classify(c: char) -> CharClass {
    if is_han(c) {
        CharClass::Han
    } else if c.is_alphanumeric() {
        CharClass::Alnum
    } else if is_emoji(c) {
        CharClass::Emoji
    } else {
        CharClass::Other
    }
}

/// CJK unified ideographs, their extensions and the compatibility block.
pub(crate) fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2EBEF
        | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F | 0x30000..=0x323AF)
}

/// Pictographs, dingbats and miscellaneous symbols, the blocks customers' emoji come from.
/// Skin-tone modifiers are left out: they only modify the emoji before them.
pub(crate) fn is_emoji(c: char) -> bool {
    let u = c as u32;
    !(0x1F3FB..=0x1F3FF).contains(&u)
        && matches!(u, 0x1F300..=0x1FAFF | 0x2600..=0x27BF | 0x1F000..=0x1F2FF | 0x2B50 | 0x2B55)
}

/// Latin letters (ASCII and the accented Latin blocks).
pub(crate) fn is_latin_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || (matches!(c as u32, 0x00C0..=0x024F | 0x1E00..=0x1EFF) && c.is_alphabetic())
}

/// Maps full-width ASCII forms (`Ａ`, `１`, `！`) to ASCII, since Chinese input methods produce them
/// for the same letters, digits and punctuation.
pub(crate) fn fold_width(c: char) -> char {
    match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    }
}

/// 64-bit FNV-1a. Features are identified by this hash rather than by owned strings so that
/// classifying a message needs no allocation per feature; with a few thousand features a
/// collision is about as likely as a cosmic-ray bit flip and would only merge two features.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// Starts a hash in a namespace, so equal text in different feature families differs.
    pub(crate) fn new(namespace: u8) -> Self {
        let mut h = Fnv(Self::OFFSET);
        h.byte(namespace);
        h
    }

    pub(crate) fn byte(&mut self, b: u8) {
        self.0 ^= u64::from(b);
        self.0 = self.0.wrapping_mul(Self::PRIME);
    }

    pub(crate) fn bytes(&mut self, bs: &[u8]) {
        for &b in bs {
            self.byte(b);
        }
    }

    pub(crate) fn char(&mut self, c: char) {
        let mut buf = [0u8; 4];
        self.bytes(c.encode_utf8(&mut buf).as_bytes());
    }

    pub(crate) fn finish(self) -> u64 {
        // FNV's low bits mix poorly; a final avalanche keeps hash-map buckets even.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
}

/// A hasher for maps keyed by values that are already well-mixed hashes (or short strings), far
/// cheaper than SipHash on the hot path. Not DoS-resistant, which is fine: keys come from the
/// crate's own data and training examples, and lookups with customer text only read.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = Fnv(self.0 ^ Fnv::OFFSET);
        h.bytes(bytes);
        self.0 = h.finish();
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// [`BuildHasher`] for [`FastHasher`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastBuild;

impl BuildHasher for FastBuild {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

/// A `HashMap` using [`FastBuild`].
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, FastBuild>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify('订'), CharClass::Han);
        assert_eq!(classify('a'), CharClass::Alnum);
        assert_eq!(classify('7'), CharClass::Alnum);
        assert_eq!(classify('😡'), CharClass::Emoji);
        assert_eq!(classify('，'), CharClass::Other);
        assert_eq!(classify('\u{0}'), CharClass::Other);
        assert_eq!(fold_width('Ａ'), 'A');
        assert_eq!(fold_width('１'), '1');
        assert_eq!(fold_width('！'), '!');
        assert!(is_latin_letter('é'));
        assert!(!is_latin_letter('я'));
    }

    #[test]
    fn namespaces_differ() {
        let mut a = Fnv::new(1);
        a.bytes(b"order");
        let mut b = Fnv::new(2);
        b.bytes(b"order");
        assert_ne!(a.finish(), b.finish());
    }
}
