//! Stable, seed-free hashing for affinity keys and rendezvous scores.
//!
//! `std`'s `RandomState` differs per process, which would make rendezvous
//! placement change between runs. These functions are fixed forever: the same
//! key maps to the same agent on every machine and in every replay.

/// 64-bit FNV-1a of `bytes`.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hasher = StableHasher::new();
    hasher.bytes(bytes);
    hasher.finish()
}

/// Streaming 64-bit FNV-1a over a canonical encoding: fixed-width
/// little-endian integers and length-prefixed strings, so the same values
/// give the same hash on every platform and in every release.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StableHasher(u64);

impl StableHasher {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub(crate) fn new() -> Self {
        StableHasher(Self::OFFSET)
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.0 = bytes.iter().fold(self.0, |hash, &b| {
            (hash ^ u64::from(b)).wrapping_mul(Self::PRIME)
        });
    }

    #[cfg(feature = "workflow")]
    pub(crate) fn u64(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }

    #[cfg(feature = "workflow")]
    pub(crate) fn str(&mut self, value: &str) {
        self.u64(value.len() as u64);
        self.bytes(value.as_bytes());
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// Combines two 64-bit values into a well-mixed one (the SplitMix64 finaliser
/// applied to `a ^ rotate(b)`), so nearby inputs give unrelated outputs.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.rotate_left(32).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hasher for maps keyed by integer ids ([`AgentId`](crate::AgentId) and
/// friends): one multiply-xorshift round instead of SipHash. Ids are chosen
/// by the host, not by untrusted peers, so flooding resistance is not needed,
/// and lookups sit on every routing and load-update path.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = mix(self.0, fnv1a(bytes));
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = mix(self.0, value);
    }
}

/// A `HashMap` keyed by ids, hashed with [`IdHasher`]. Only ever used for
/// lookups: nothing iterates it, so its order cannot leak into decisions.
pub(crate) type IdMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Maps a hash to a float strictly inside `(0, 1)`. 52 bits keep
/// `k + 0.5` exactly representable, so the top value stays below 1.
pub(crate) fn unit_interval(hash: u64) -> f64 {
    ((hash >> 12) as f64 + 0.5) / (1u64 << 52) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn unit_interval_excludes_both_ends() {
        assert!(unit_interval(0) > 0.0);
        assert!(unit_interval(u64::MAX) < 1.0);
        assert_ne!(mix(1, 2), mix(2, 1));
    }
}
