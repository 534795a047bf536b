//! The drift hot path and its readers: `Recorder::observe` on the shape (a batch of 64
//! rows x 64 FP32 columns, 32 bins each; target <= 20 ns per value), the exporter's
//! `snapshot` and `evaluate` for 74 columns (64 inputs + 10 outputs).
//!
//! Measured 2026-11-30 on the 2-core AMD EPYC VM (criterion, median; `Instant::now()` per
//! batch included), 64 rows x 64 FP32 columns: from **fresh batches** (64 distinct ones
//! cycled, as serving sees them) 38.9-47.9 µs = 9.5-11.7 ns per value; one batch counted again
//! and again 41-42 µs. Before the edges were counted rather than searched (scan.rs,
//! LINEAR_EDGES) fresh batches read 137.6 µs = 33.6 ns per value against 9.7 for a repeated
//! batch: the search's select was a branch that the predictor learned on a repeated batch and
//! missed on fresh ones (a hot-buffer copy of fresh batches was as slow; two alternating batches
//! nearly as fast as one). 64 rows x 74 columns in two tensors 48.4 µs = 10.2 ns per value.
//! Serving's small batches cost the same per value: 4 rows x 64 columns, fresh, 2.33 µs = 9.1 ns.
//! Earlier, 2026-11-29 (one batch): 64 x 64 42.6 µs = 10.4 ns;
//! `snapshot` of 74 columns over 2 instances 26 µs; `evaluate` of 74 numeric columns 147 µs
//! (~2 µs per column). Under load from other jobs on the same cores the per-value figure
//! read 22-30 ns wall before the four-row grouping and ~14 ns CPU time.

// criterion_group! and criterion_main! generate undocumented functions.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferroserve_drift::{
    ColumnProfile, DriftTracker, MonitoredColumn, NumericProfile, TensorView, Thresholds,
    TrackerConfig, WindowPolicy,
};
use ferroserve_tensor::DataType;

const ROWS: usize = 64;
const INPUTS: usize = 64;
const OUTPUTS: usize = 10;
const BINS: usize = 32;
/// Distinct batches cycled through (1 MiB of values: beyond the branch predictor's memory).
const FRESH_BATCHES: usize = 64;
/// Rows of a batch as serving forms them at c=16 (the MLP's mean batch).
const SMALL_ROWS: usize = 4;

/// splitmix64 -> standard normal (Box-Muller).
struct Random(u64);

impl Random {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (((z ^ (z >> 31)) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// `INPUTS` FP32 columns of tensor 0 and `OUTPUTS` of tensor 1, each profiled from 10k
/// standard normal values.
fn tracker(random: &mut Random) -> Arc<DriftTracker> {
    let column = |name: String, tensor: usize, column: usize, random: &mut Random| {
        let reference: Vec<f64> = (0..10_000).map(|_| random.normal()).collect();
        MonitoredColumn {
            profile: ColumnProfile::Numeric(
                NumericProfile::from_values(&name, &reference, BINS).unwrap(),
            ),
            name,
            tensor,
            column,
            datatype: DataType::Fp32,
        }
    };
    let mut columns: Vec<MonitoredColumn> = (0..INPUTS)
        .map(|i| column(format!("input[{i}]"), 0, i, random))
        .collect();
    columns.extend((0..OUTPUTS).map(|i| column(format!("output[{i}]"), 1, i, random)));
    DriftTracker::new(TrackerConfig {
        columns,
        instances: 2,
        window: WindowPolicy::Rows(100_000),
        sample_every: 1,
    })
    .unwrap()
}

fn batch(random: &mut Random, columns: usize) -> Vec<u8> {
    (0..ROWS * columns)
        .flat_map(|_| (random.normal() as f32).to_le_bytes())
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut random = Random(42);
    let tracker = tracker(&mut random);
    let inputs = batch(&mut random, INPUTS);
    let outputs = batch(&mut random, OUTPUTS);
    let input_shape = [ROWS as i64, INPUTS as i64];
    let output_shape = [ROWS as i64, OUTPUTS as i64];
    let tensors = [
        TensorView {
            datatype: DataType::Fp32,
            shape: &input_shape,
            data: &inputs,
        },
        TensorView {
            datatype: DataType::Fp32,
            shape: &output_shape,
            data: &outputs,
        },
    ];
    let mut recorder = tracker.recorder(0).unwrap();

    let mut group = c.benchmark_group("observe");
    group.throughput(Throughput::Elements(((INPUTS + OUTPUTS) * ROWS) as u64));
    group.bench_function(
        "64 rows x 74 FP32 columns (64 inputs + 10 outputs), 32 bins",
        |b| {
            b.iter(|| {
                recorder
                    .observe(black_box(&tensors), Instant::now())
                    .unwrap()
            });
        },
    );
    group.finish();

    // The shape alone: 64 x 64 FP32 columns, one tensor.
    let inputs_only = {
        let columns = tracker
            .profiles()
            .iter()
            .zip(tracker.column_names())
            .take(INPUTS)
            .enumerate()
            .map(|(i, (profile, name))| MonitoredColumn {
                name: name.clone(),
                tensor: 0,
                column: i,
                datatype: DataType::Fp32,
                profile: profile.clone(),
            })
            .collect();
        DriftTracker::new(TrackerConfig {
            columns,
            instances: 1,
            window: WindowPolicy::Rows(100_000),
            sample_every: 1,
        })
        .unwrap()
    };
    let mut recorder64 = inputs_only.recorder(0).unwrap();
    let mut group = c.benchmark_group("observe");
    group.throughput(Throughput::Elements((INPUTS * ROWS) as u64));
    group.bench_function("64 rows x 64 FP32 columns, 32 bins, one batch again", |b| {
        b.iter(|| {
            recorder64
                .observe(black_box(&tensors[..1]), Instant::now())
                .unwrap()
        });
    });
    // Serving sees new values every batch: the same batch again lets the branch predictor
    // learn its values, which reads ~4x faster than traffic (measured with window_cost).
    let fresh: Vec<Vec<u8>> = (0..FRESH_BATCHES)
        .map(|_| batch(&mut random, INPUTS))
        .collect();
    let mut next = 0;
    group.bench_function("64 rows x 64 FP32 columns, 32 bins, fresh batches", |b| {
        b.iter(|| {
            next = (next + 1) % FRESH_BATCHES;
            let view = [TensorView {
                datatype: DataType::Fp32,
                shape: &input_shape,
                data: &fresh[next],
            }];
            recorder64
                .observe(black_box(&view), Instant::now())
                .unwrap()
        });
    });
    // Serving's batches: a few rows (the MLP at c=16 forms ~4), where the per-batch and
    // per-column work weighs against 4 values per column.
    let small_shape = [SMALL_ROWS as i64, INPUTS as i64];
    let small: Vec<Vec<u8>> = fresh
        .iter()
        .map(|batch| batch[..SMALL_ROWS * INPUTS * 4].to_vec())
        .collect();
    group.throughput(Throughput::Elements((INPUTS * SMALL_ROWS) as u64));
    group.bench_function("4 rows x 64 FP32 columns, 32 bins, fresh batches", |b| {
        b.iter(|| {
            next = (next + 1) % FRESH_BATCHES;
            let view = [TensorView {
                datatype: DataType::Fp32,
                shape: &small_shape,
                data: &small[next],
            }];
            recorder64
                .observe(black_box(&view), Instant::now())
                .unwrap()
        });
    });
    group.finish();

    let thresholds = Thresholds::default();
    let snapshot = tracker.snapshot(Instant::now());
    c.bench_function("snapshot: 74 columns x 35 slots, 2 instances", |b| {
        b.iter(|| tracker.snapshot(black_box(Instant::now())));
    });
    c.bench_function("evaluate: 74 numeric columns, 32 bins", |b| {
        b.iter(|| {
            tracker
                .evaluate(black_box(&snapshot.cumulative), &thresholds)
                .unwrap()
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
