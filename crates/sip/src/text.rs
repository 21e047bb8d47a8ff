//! [`Text`]: a cheaply clonable UTF-8 string that can share the buffer a message arrived in.

use bytes::Bytes;
use std::fmt;

/// An immutable UTF-8 string backed by [`Bytes`]: slicing a received datagram costs a reference
/// count, not a copy. Built from a `&'static str`, a `String`, or (by the parser) a validated
/// slice of the message buffer.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Text(Bytes);

impl Text {
    /// Wraps bytes that the caller has already validated as UTF-8; `None` if they are not.
    pub fn from_utf8(b: Bytes) -> Option<Self> {
        std::str::from_utf8(&b).ok()?;
        Some(Text(b))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // Invariant: every constructor checks UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A sub-slice sharing the same buffer. `sub` must be a slice of `self.as_str()` (as returned
    /// by `str` methods such as `trim` or `split`); otherwise a copy is made.
    pub fn slice_ref(&self, sub: &str) -> Text {
        let base = self.0.as_ptr() as usize;
        let p = sub.as_ptr() as usize;
        if p >= base && p + sub.len() <= base + self.0.len() {
            Text(self.0.slice(p - base..p - base + sub.len()))
        } else {
            Text::from(sub.to_owned())
        }
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Text(Bytes::from_static(s.as_bytes()))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Bytes::from(s.into_bytes()))
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, o: &str) -> bool {
        self.as_str() == o
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, o: &&str) -> bool {
        self.as_str() == *o
    }
}
