//! The join's gather from the embedded store into a batch buffer, on a snapshot of 100k keys x
//! 32 FP32 features: 64 INT64 keys (target <= 5 µs), 1 key, 64 BYTES keys, and the MLP
//! shape (32 request-time + 32 looked-up features per row, 64 rows). Every key is present; the
//! keys of a batch are spread over the table so the rows are not neighbours in memory.
//!
//! Measured 2026-11-29 on the 2-core AMD EPYC VM (criterion, median of the slope, snapshot
//! `load()` included): 64 INT64 keys 1.39 µs (~22 ns per key); 1 key 128 ns; 64 BYTES keys
//! (13-byte strings) 3.33 µs; 64 rows of 32 request + 32 looked-up features 1.41 µs.
//!
//! The per-view lookup latency histogram (2026-11-30, same VM under load; an A/B of the join
//! without and with it in one process, medians of 81 alternating rounds, since criterion runs
//! minutes apart on this shared machine differed by up to 50%): 1 key 135 -> 162 ns, 64 keys
//! 1.43 -> 1.42 µs, 64 rows of 32 request + 32 looked-up 1.80 -> 1.87 µs.

// criterion_group! and criterion_main! generate undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferroserve_features::{
    ColumnValues, Declaration, Feature, FeatureStore, FeatureValue, FeatureView, JoinPlan,
    KeyColumn, MissingPolicy, ModelInput, ModelInputAssembly, ModelSignature, RequestInput,
    Segment, TableBuilder,
};
use ferroserve_tensor::{DataType, encode_bytes};

/// Keys in the snapshot.
const KEYS: usize = 100_000;
/// Features per key.
const FEATURES: usize = 32;

/// A plan: key input `key` (INT64 or BYTES) -> view `user` (32 FP32) into model input `x`,
/// after `dense` request-time columns when `dense > 0`.
fn plan(key: DataType, dense: usize) -> JoinPlan {
    let mut request_inputs = vec![RequestInput {
        name: "key".into(),
        datatype: key,
        columns: 1,
    }];
    let mut segments = vec![Segment::View("user".into())];
    if dense > 0 {
        request_inputs.push(RequestInput {
            name: "dense".into(),
            datatype: DataType::Fp32,
            columns: dense,
        });
        segments.insert(0, Segment::RequestInput("dense".into()));
    }
    let declaration = Declaration {
        request_inputs,
        views: vec![FeatureView {
            name: "user".into(),
            key: vec!["key".into()],
            features: (0..FEATURES)
                .map(|index| Feature {
                    name: format!("f{index}"),
                    datatype: DataType::Fp32,
                    default: FeatureValue::Fp32(0.0),
                })
                .collect(),
            max_age: None,
            on_missing: MissingPolicy::UseDefault,
        }],
        assembly: vec![ModelInputAssembly {
            model_input: "x".into(),
            segments,
        }],
    };
    let model = ModelSignature {
        inputs: vec![ModelInput {
            name: "x".into(),
            datatype: DataType::Fp32,
            dims: vec![(dense + FEATURES) as i64],
        }],
    };
    JoinPlan::compile(&declaration, &model).expect("the bench's declaration fits")
}

/// The BYTES key of row `row`.
fn bytes_key(row: usize) -> String {
    format!("user-{row:08}")
}

/// A store holding the snapshot for `plan`.
fn store(plan: &JoinPlan, key: DataType) -> FeatureStore {
    let layout = plan.view_layout("user").expect("declared");
    let int_keys: Vec<i64> = (0..KEYS as i64).map(|k| k * 7_919 + 1).collect();
    let byte_keys = encode_bytes(
        (0..KEYS)
            .map(bytes_key)
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_bytes),
    )
    .expect("short keys");
    let columns: Vec<Vec<f32>> = (0..FEATURES)
        .map(|feature| {
            (0..KEYS)
                .map(|row| (row * FEATURES + feature) as f32)
                .collect()
        })
        .collect();
    let column = match key {
        DataType::Int64 => KeyColumn::Int64(&int_keys),
        _ => KeyColumn::Bytes {
            raw: &byte_keys,
            count: KEYS,
        },
    };
    let mut builder = TableBuilder::new(layout).key("key", column).expect("key");
    for (slot, values) in layout.features().iter().zip(&columns) {
        builder = builder
            .feature(&slot.name, ColumnValues::Fp32(values))
            .expect("feature");
    }
    let store = FeatureStore::new(plan.view_layouts());
    store
        .install(vec![builder.build().expect("builds")])
        .expect("installs");
    store
}

/// The rows of a batch: spread over the table.
fn batch_rows(rows: usize) -> Vec<usize> {
    (0..rows).map(|row| (row * 1_543 + 17) % KEYS).collect()
}

fn bench_case(c: &mut Criterion, name: &str, key: DataType, rows: usize, dense: usize) {
    let plan = plan(key, dense);
    let store = store(&plan, key);
    let batch = batch_rows(rows);
    let keys: Vec<u8> = match key {
        DataType::Int64 => batch
            .iter()
            .flat_map(|&row| (row as i64 * 7_919 + 1).to_le_bytes())
            .collect(),
        _ => encode_bytes(
            batch
                .iter()
                .map(|&row| bytes_key(row))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_bytes),
        )
        .expect("short keys"),
    };
    let dense_values: Vec<u8> = (0..rows * dense)
        .flat_map(|value| (value as f32).to_le_bytes())
        .collect();
    let request: Vec<&[u8]> = if dense > 0 {
        vec![&keys, &dense_values]
    } else {
        vec![&keys]
    };
    let mut x = vec![0u8; rows * plan.model_inputs()[0].row_bytes()];
    let mut group = c.benchmark_group("gather");
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            let snapshot = store.load();
            let rejected = plan
                .gather(&snapshot, black_box(&request), rows, 0, &mut [&mut x])
                .expect("fits");
            black_box(rejected);
            black_box(&x);
        });
    });
    group.finish();
    let stats = plan.stats().snapshot();
    println!(
        "  {name}: mean {:.0} ns per gather call measured inside the join ({} calls, {} rows, misses {})",
        stats.gather_ns as f64 / stats.gathers.max(1) as f64,
        stats.gathers,
        stats.rows,
        stats.views[0].misses,
    );
}

fn gather(c: &mut Criterion) {
    bench_case(c, "64 INT64 keys x 32 FP32", DataType::Int64, 64, 0);
    bench_case(c, "1 INT64 key x 32 FP32", DataType::Int64, 1, 0);
    bench_case(c, "64 BYTES keys x 32 FP32", DataType::Bytes, 64, 0);
    bench_case(
        c,
        "64 rows: 32 request + 32 looked-up FP32",
        DataType::Int64,
        64,
        32,
    );
}

criterion_group!(benches, gather);
criterion_main!(benches);
