//! [`KeyName`]: the name of a fair-share or concurrency key, held inline
//! when short, so that naming a key costs a task no allocation.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// Longest name held inline, in bytes: with its length and the tag, 24
/// bytes, the size of the shared form. A tenant's name (`tenant-` and its
/// number) fits up to 15 digits. 30 bytes (a size of 32) cost the keyed
/// cycle about 2 % more instructions (callgrind, `perf_report`'s pipeline).
const INLINE: usize = 22;

/// The name of a fair-share key ([`FairShare::key`](crate::scheduler::FairShare::key))
/// or a concurrency key ([`TaskOptions::concurrency_keys`](crate::scheduler::TaskOptions::concurrency_keys)):
/// a string that a task carries from submission to its end.
///
/// A name of at most 22 bytes (a tenant, a provider, a customer id) is
/// held inline: building one, cloning one and dropping one never
/// allocate. A longer one is shared behind an [`Arc`], so a clone does not
/// copy it. It reads as a `&str` ([`Deref`], [`as_str`](Self::as_str)),
/// compares, orders and hashes as its string, and is written (serde) as a
/// plain string, as a `String` was.
///
/// ```
/// use taskweave::scheduler::{KeyName, TaskSpec};
///
/// let name = KeyName::from("openai");
/// assert_eq!(name, "openai");
/// assert_eq!(name.len(), 6);
/// let spec = TaskSpec::new(()).concurrency_key(name.clone()).fairness("acme", 2);
/// assert_eq!(spec.options().concurrency_keys, [name]);
/// assert_eq!(spec.options().fairness.as_ref().unwrap().key, "acme");
/// ```
#[derive(Clone)]
pub struct KeyName(Repr);

#[derive(Clone)]
enum Repr {
    /// `bytes[..len]` is the name, taken whole from a `str`.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Shared(Arc<str>),
}

impl KeyName {
    /// The name `name`.
    pub fn new(name: &str) -> Self {
        match u8::try_from(name.len()) {
            Ok(len) if name.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..name.len()].copy_from_slice(name.as_bytes());
                KeyName(Repr::Inline { len, bytes })
            }
            _ => KeyName(Repr::Shared(Arc::from(name))),
        }
    }

    /// The name `value` displays as; one that fits inline is written in
    /// place, with no allocation.
    pub(crate) fn display(value: impl fmt::Display) -> Self {
        let mut inline = InlineWriter::default();
        match fmt::write(&mut inline, format_args!("{value}")) {
            Ok(()) => KeyName(Repr::Inline {
                len: inline.len,
                bytes: inline.bytes,
            }),
            Err(_) => KeyName::new(&value.to_string()),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // The bytes are a whole `str`'s, so they are UTF-8: the
            // fallback is never taken.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Shared(name) => name,
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether it is the empty name.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name's bytes, without the UTF-8 check of [`as_str`](Self::as_str):
    /// what comparisons and hashing read, on every task's path.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(name) => name.as_bytes(),
        }
    }
}

/// Writes whole `str`s into an inline name's bytes, or fails once they
/// do not fit.
#[derive(Default)]
struct InlineWriter {
    len: u8,
    bytes: [u8; INLINE],
}

impl fmt::Write for InlineWriter {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let start = usize::from(self.len);
        let end = start + text.len();
        let room = self.bytes.get_mut(start..end).ok_or(fmt::Error)?;
        room.copy_from_slice(text.as_bytes());
        self.len = u8::try_from(end).map_err(|_| fmt::Error)?;
        Ok(())
    }
}

impl Deref for KeyName {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for KeyName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for KeyName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for KeyName {
    fn from(name: &str) -> Self {
        KeyName::new(name)
    }
}

impl From<&String> for KeyName {
    fn from(name: &String) -> Self {
        KeyName::new(name)
    }
}

impl From<String> for KeyName {
    fn from(name: String) -> Self {
        KeyName::new(&name)
    }
}

impl From<Arc<str>> for KeyName {
    /// Shares `name` when it is too long to hold inline.
    fn from(name: Arc<str>) -> Self {
        match name.len() {
            len if len <= INLINE => KeyName::new(&name),
            _ => KeyName(Repr::Shared(name)),
        }
    }
}

impl From<KeyName> for String {
    fn from(name: KeyName) -> Self {
        name.as_str().to_owned()
    }
}

impl PartialEq for KeyName {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for KeyName {}

impl PartialEq<str> for KeyName {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for KeyName {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<String> for KeyName {
    fn eq(&self, other: &String) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<KeyName> for str {
    fn eq(&self, other: &KeyName) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<KeyName> for &str {
    fn eq(&self, other: &KeyName) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialOrd for KeyName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyName {
    /// As the strings order: UTF-8's byte order is its code points' order.
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for KeyName {
    /// As the string hashes (`str` writes its bytes and then `0xff`), so
    /// a map keyed by names is looked up by `&str`; from the bytes, with
    /// no UTF-8 check.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
        state.write_u8(0xff);
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for KeyName {
    /// The empty name.
    fn default() -> Self {
        KeyName::new("")
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for KeyName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for KeyName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;

        impl serde::de::Visitor<'_> for Name {
            type Value = KeyName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key name (a string)")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<KeyName, E> {
                Ok(KeyName::new(name))
            }
        }

        deserializer.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn short_and_long_names_read_compare_and_hash_as_their_strings() {
        let long = "a-name-well-past-twenty-two-bytes";
        for text in ["", "openai", "exactly-22-bytes-long!", long, "ünïcödé"] {
            let name = KeyName::from(text);
            assert_eq!(name.as_str(), text);
            assert_eq!(name, text);
            assert_eq!(text, name);
            assert_eq!(name.to_string(), text);
            assert_eq!(format!("{name:?}"), format!("{text:?}"));
            assert_eq!(String::from(name.clone()), text);
            assert_eq!(name.len(), text.len());
            let map = HashMap::from([(name.clone(), 1)]);
            let hashes = std::collections::hash_map::RandomState::new();
            assert_eq!(hashes.hash_one(&name), hashes.hash_one(text));
            assert_eq!(map.get(text), Some(&1));
        }
        assert!(matches!(
            KeyName::from("exactly-22-bytes-long!").0,
            Repr::Inline { .. }
        ));
        assert_eq!(std::mem::size_of::<KeyName>(), 24);
        assert!(matches!(KeyName::from(long).0, Repr::Shared(_)));
        let shared = KeyName::from(Arc::<str>::from(long));
        assert_eq!(shared, KeyName::from(long.to_string()));
    }

    #[test]
    fn a_displayed_value_is_written_in_place_or_shared_when_long() {
        let tenant = crate::TenantId::new(999_999_999_999_999);
        let name = KeyName::display(tenant);
        assert_eq!(name, tenant.to_string());
        assert!(matches!(name.0, Repr::Inline { .. }));
        let long = "x".repeat(INLINE + 1);
        let name = KeyName::display(&long);
        assert_eq!(name, long);
        assert!(matches!(name.0, Repr::Shared(_)));
        assert_eq!(KeyName::display(""), "");
    }

    #[test]
    fn names_order_as_strings_do() {
        let texts = [
            "b",
            "a",
            "ab",
            "",
            "z-long-name-beyond-the-inline-room",
            "é",
            "aa",
        ];
        let mut names: Vec<KeyName> = texts.iter().copied().map(KeyName::from).collect();
        let mut sorted = texts.to_vec();
        names.sort();
        sorted.sort();
        assert!(names.iter().map(KeyName::as_str).eq(sorted));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_name_is_written_as_a_plain_string_and_read_back() {
        for text in ["acme", "a-name-well-past-twenty-two-bytes"] {
            let written = serde_json::to_string(&KeyName::from(text)).unwrap();
            assert_eq!(written, serde_json::to_string(text).unwrap());
            let read: KeyName = serde_json::from_str(&written).unwrap();
            assert_eq!(read, text);
        }
        assert!(serde_json::from_str::<KeyName>("7").is_err());
    }
}
