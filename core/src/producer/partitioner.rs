//! Choosing a partition, as Kafka's Java client does by default.
//!
//! Keyed records go to `toPositive(murmur2(key)) % partitions`, so pail and Kafka place the same
//! key on the same partition. Records without a key stick to one partition until a batch's
//! worth of bytes or records has gone there, then move on (KIP-480), which keeps batches full
//! instead of spreading one record per partition.

/// Kafka's `Utils.murmur2`: MurmurHash2, 32-bit, seed 0x9747b28c, little-endian blocks.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives a keyed record.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    // Kafka's `toPositive` masks the sign bit rather than taking an absolute value.
    let positive = (murmur2(key) & 0x7fff_ffff) as u32;
    positive % partitions
}

/// Sticky choice for records without a key.
#[derive(Debug)]
pub struct Sticky {
    partitions: u32,
    current: u32,
    bytes: u64,
    records: u64,
    bytes_max: u64,
    records_max: u64,
}

impl Sticky {
    /// Starts on `first` (callers pick it at random so producers spread out).
    pub fn new(partitions: u32, first: u32, bytes_max: u64, records_max: u64) -> Self {
        Sticky {
            partitions,
            current: first % partitions,
            bytes: 0,
            records: 0,
            bytes_max,
            records_max,
        }
    }

    /// The partition for the next unkeyed record of `size` bytes.
    pub fn next(&mut self, size: u64) -> u32 {
        if self.records >= self.records_max
            || self.bytes + size > self.bytes_max && self.records > 0
        {
            self.current = (self.current + 1) % self.partitions;
            self.bytes = 0;
            self.records = 0;
        }
        self.bytes += size;
        self.records += 1;
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected values are from Kafka's own `UtilsTest.testMurmur2`; the project's Python
    /// test checks more keys against kafka-python's independent implementation.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn negative_hashes_are_made_positive_by_masking() {
        // murmur2("21") is negative: masking keeps the low 31 bits.
        let masked = (-973932308i32 & 0x7fff_ffff) as u32;
        assert_eq!(partition_for_key(b"21", 7), masked % 7);
        assert!((0..100).all(|i| partition_for_key(format!("k{i}").as_bytes(), 3) < 3));
    }

    #[test]
    fn sticky_fills_a_batch_then_moves_on() {
        let mut s = Sticky::new(3, 1, 100, 1000);
        let picks: Vec<u32> = (0..12).map(|_| s.next(25)).collect();
        assert_eq!(picks, vec![1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 0]);
        let mut s = Sticky::new(2, 0, 1 << 30, 2);
        assert_eq!(
            (0..5).map(|_| s.next(1)).collect::<Vec<_>>(),
            vec![0, 0, 1, 1, 0]
        );
    }
}
