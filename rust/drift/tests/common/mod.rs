//! Helpers shared by the integration tests: a seeded random source (no rand dependency),
//! normal samples, and batch buffers in the executor's layout.
#![allow(dead_code)]

use ferroserve_drift::{
    CategoricalProfile, ColumnProfile, DriftTracker, MonitoredColumn, NumericProfile,
    TrackerConfig, WindowPolicy,
};
use ferroserve_tensor::DataType;
use std::sync::Arc;

/// splitmix64: small, seeded, good enough for test data.
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// A category drawn with the given weights.
    pub fn category(&mut self, values: &[i64], weights: &[f64]) -> i64 {
        let total: f64 = weights.iter().sum();
        let mut pick = self.uniform() * total;
        for (value, weight) in values.iter().zip(weights) {
            if pick < *weight {
                return *value;
            }
            pick -= weight;
        }
        values[values.len() - 1]
    }
}

/// Row-major little-endian FP32 bytes of `rows` x `columns` from `value(row, column)`.
pub fn fp32_batch(
    rows: usize,
    columns: usize,
    mut value: impl FnMut(usize, usize) -> f32,
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(rows * columns * 4);
    for row in 0..rows {
        for column in 0..columns {
            bytes.extend_from_slice(&value(row, column).to_le_bytes());
        }
    }
    bytes
}

/// Little-endian INT64 bytes.
pub fn int64_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A tracker of `columns` FP32 columns of tensor 0 (names `x0`, `x1`, ...), profiled from
/// standard normal samples with `bins` bins, plus (when `category`) one categorical INT64
/// column in tensor 1 named `c`.
pub fn normal_tracker(
    columns: usize,
    bins: usize,
    category: Option<&CategoricalProfile>,
    window: WindowPolicy,
    instances: usize,
) -> Arc<DriftTracker> {
    let mut random = Random::new(7);
    let mut monitored: Vec<MonitoredColumn> = (0..columns)
        .map(|column| {
            let reference: Vec<f64> = (0..20_000).map(|_| random.normal()).collect();
            let name = format!("x{column}");
            let profile = NumericProfile::from_values(&name, &reference, bins).unwrap();
            MonitoredColumn {
                name,
                tensor: 0,
                column,
                datatype: DataType::Fp32,
                profile: ColumnProfile::Numeric(profile),
            }
        })
        .collect();
    if let Some(category) = category {
        monitored.push(MonitoredColumn {
            name: "c".into(),
            tensor: 1,
            column: 0,
            datatype: DataType::Int64,
            profile: ColumnProfile::Categorical(category.clone()),
        });
    }
    DriftTracker::new(TrackerConfig {
        columns: monitored,
        instances,
        window,
        sample_every: 1,
    })
    .unwrap()
}
