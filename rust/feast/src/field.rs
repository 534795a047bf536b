//! Hash field names of Feast's Redis layout: a feature's field is the 4 raw bytes of
//! murmur3_x86_32 (seed 0) of the UTF-8 text `"{view}:{feature}"`, as a little-endian u32
//! (Feast's `_mmh3` in `infra/online_stores/helpers.py`: `mmh3.hash(key, signed=False)` packed
//! `<Q` and cut to its first 4 bytes), and a view's event time is the text field `_ts:{view}`.

/// murmur3_x86_32 of `data` with `seed` (Austin Appleby's reference, as Python's `mmh3.hash`).
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut hash = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        hash = (hash ^ mix(k))
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail
            .iter()
            .rev()
            .fold(0u32, |k, &byte| (k << 8) | u32::from(byte));
        hash ^= mix(k);
    }
    // The length is mixed in modulo 2^32, as the reference does.
    hash ^= data.len() as u32;
    hash ^= hash >> 16;
    hash = hash.wrapping_mul(0x85eb_ca6b);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(0xc2b2_ae35);
    hash ^ (hash >> 16)
}

/// The hash field of feature `feature` of Feast view `view`.
pub fn feature_field(view: &str, feature: &str) -> [u8; 4] {
    let mut text = Vec::with_capacity(view.len() + 1 + feature.len());
    text.extend_from_slice(view.as_bytes());
    text.push(b':');
    text.extend_from_slice(feature.as_bytes());
    murmur3_32(&text, 0).to_le_bytes()
}

/// The hash field of view `view`'s event time: `_ts:{view}` as UTF-8 text.
pub fn timestamp_field(view: &str) -> Vec<u8> {
    format!("_ts:{view}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference vectors of murmur3_x86_32 (SMHasher's verification strings, the tail lengths
    /// 1-3 and a seed), checked against Python's `mmh3.hash(..., signed=False)`.
    #[test]
    fn murmur3_matches_the_reference() {
        let cases: [(&[u8], u32, u32); 9] = [
            (b"", 0, 0),
            (b"", 1, 0x514e_28b7),
            (b"", 0xffff_ffff, 0x81f1_6f39),
            (b"a", 0, 0x3c25_69b2),
            (b"ab", 0, 0x9bbf_d75f),
            (b"abc", 0, 0xb3dd_93fa),
            (b"abcd", 0, 0x43ed_676a),
            (b"hello", 0, 0x248b_fa47),
            (
                b"The quick brown fox jumps over the lazy dog",
                0,
                0x2e4f_f723,
            ),
        ];
        for (data, seed, expected) in cases {
            assert_eq!(
                murmur3_32(data, seed),
                expected,
                "{:?} seed {seed}",
                String::from_utf8_lossy(data)
            );
        }
    }

    /// Fields computed by Feast 0.67.0's own `_mmh3` (rust/feast/tools/feast_vectors.py).
    #[test]
    fn feature_fields_match_feast() {
        for (view, feature, expected) in FEAST_FIELDS {
            assert_eq!(&feature_field(view, feature), expected, "{view}:{feature}");
        }
        assert_eq!(
            timestamp_field("driver_hourly_stats"),
            b"_ts:driver_hourly_stats"
        );
    }

    /// (view, feature, `_mmh3(f"{view}:{feature}")`) from Feast.
    const FEAST_FIELDS: [(&str, &str, &[u8; 4]); 5] = [
        ("driver_hourly_stats", "conv_rate", b"\x61\x60\xe3\xda"),
        ("driver_hourly_stats", "acc_rate", b"\xfa\x5e\x58\xad"),
        ("user", "age", b"\x75\x95\xb0\x79"),
        ("v", "f", b"\xf1\x6c\xb6\x0a"),
        ("vue", "café", b"\xb7\x76\x9c\xf5"),
    ];
}
