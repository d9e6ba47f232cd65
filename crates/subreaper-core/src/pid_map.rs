//! Maps keyed by pid, as the engine keeps them (known children, recent exits, pending waits).
//!
//! std's default hasher (SipHash, built to resist keys chosen to collide) costs more per lookup
//! than the rest of the bookkeeping of an exit in a drain. Pids are handed out by the kernel, in
//! sequence, not chosen by whoever could gain from collisions; a multiplication by an odd
//! constant spreads them over the table (hashbrown takes its bucket from the low bits and its
//! tag from the high ones, and both vary with every pid).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed by pid, with [`PidHasher`].
pub(crate) type PidMap<V> = HashMap<i32, V, BuildHasherDefault<PidHasher>>;

/// Hashes one pid with one multiplication.
#[derive(Default, Clone, Copy)]
pub(crate) struct PidHasher(u64);

/// 2^64 divided by the golden ratio, made odd: Fibonacci hashing's multiplier.
const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_i32(&mut self, pid: i32) {
        self.0 = (self.0 ^ pid as u32 as u64).wrapping_mul(MULTIPLIER);
    }

    // Only pids are hashed here; anything else still hashes, a byte at a time.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(MULTIPLIER);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn sequential_pids_spread_over_buckets_and_tags() {
        let build = BuildHasherDefault::<PidHasher>::default();
        let hashes: Vec<u64> = (1000..1512).map(|pid: i32| build.hash_one(pid)).collect();
        // Low bits pick the bucket in a table of 512: all distinct.
        let buckets: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 511).collect();
        assert_eq!(buckets.len(), 512);
        // The top 7 bits are hashbrown's tag: all 128 values appear.
        let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(tags.len(), 128);
    }

    #[test]
    fn a_map_of_pids_finds_each() {
        let mut map: PidMap<i32> = PidMap::default();
        let pids: Vec<i32> = (0..20_000).map(|i| (i * 7919) % 4_194_304 + 1).collect();
        for &p in &pids {
            map.insert(p, -p);
        }
        assert_eq!(map.len(), pids.len());
        assert!(pids.iter().all(|p| map.get(p) == Some(&-p)));
        assert_eq!(map.get(&0), None);
    }
}
