//! The reply parser alone (criterion): one HMGET answer of 33 fields (32 Feast `float_val`
//! values and a `_ts` Timestamp, as the fetch bench's view stores them) parsed by ours into
//! spans, beside the redis crate's `parse_redis_value` of the same bytes (a `Value` with an
//! owned `Vec` per field: what the reader used before). Figures in docs/benchmarks.md.
//!
//! `cargo bench -p ferroserve-feast --bench parse`.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use ferroserve_feast::resp::{Parsed, parse_reply};
use ferroserve_feast::{FeastValue, encode_timestamp};

/// The bytes of one 33-field HMGET answer.
fn answer() -> Vec<u8> {
    let mut bytes = b"*33\r\n".to_vec();
    let mut push = |value: &[u8]| {
        bytes.extend(format!("${}\r\n", value.len()).into_bytes());
        bytes.extend(value);
        bytes.extend(b"\r\n");
    };
    for feature in 0..32 {
        let mut value = Vec::new();
        FeastValue::Float(1234.0 + feature as f32 / 100.0).encode(&mut value);
        push(&value);
    }
    let mut timestamp = Vec::new();
    encode_timestamp(1_764_500_000_123_456, &mut timestamp);
    push(&timestamp);
    bytes
}

fn parse(criterion: &mut Criterion) {
    let bytes = answer();
    let mut group = criterion.benchmark_group("one 33-field HMGET answer");
    let mut items = Vec::with_capacity(64);
    group.bench_function("ours (spans)", |bench| {
        bench.iter(|| {
            items.clear();
            let parsed = parse_reply(std::hint::black_box(&bytes), 0, &mut items).unwrap();
            assert!(matches!(parsed, Parsed::Complete { .. }));
            std::hint::black_box(&items);
        });
    });
    group.bench_function("redis crate (Value)", |bench| {
        bench.iter(|| redis::parse_redis_value(std::hint::black_box(&bytes)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
