//! Shadow traffic: a copy of a request sent to another version of its model, whose answer is
//! discarded after it is compared with the one the client got. The copy runs as its own task,
//! so the client's answer never waits for it; the comparison (largest absolute difference
//! over every output element, and whether anything differs at all) is counted per shadow
//! version in `ShadowStats`, which the metrics snapshot reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use ferroserve_tensor::DataType;
use ferroserve_tensor::wire::{self, InferRequestView};
use tokio::sync::oneshot;

use crate::routes::{InferRoute, PendingInfer};

/// Upper bounds of the max-abs-difference histogram: exact agreement, float noise, then
/// decades up to 100; larger differences (and differences of BYTES or of non-finite values)
/// fall in the last, unbounded bucket.
pub const DIFFERENCE_BOUNDS: [f64; 11] = [
    0.0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0,
];

/// What one shadow version's copies came to, since the server started.
#[derive(Default)]
pub struct ShadowStats {
    /// Copies sent (the native path took them).
    sent: AtomicU64,
    /// Copies whose answer failed (any error status), or whose request's own answer failed,
    /// so there was nothing to compare.
    failed: AtomicU64,
    /// Compared answers that differ in anything: an output value, shape, datatype or name.
    mismatched: AtomicU64,
    /// Compared answers by their largest absolute difference (`DIFFERENCE_BOUNDS`, then +Inf).
    buckets: [AtomicU64; DIFFERENCE_BOUNDS.len() + 1],
    /// Sum of the finite largest differences, in millionths (a Prometheus histogram's sum).
    sum_micros: AtomicU64,
}

/// A copy of `ShadowStats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowCounts {
    /// Copies sent.
    pub sent: u64,
    /// Copies with nothing to compare (an error on either side).
    pub failed: u64,
    /// Compared answers that differ.
    pub mismatched: u64,
    /// Compared answers per difference bucket (not cumulative), the last unbounded.
    pub buckets: Vec<u64>,
    /// Sum of the finite largest differences, in millionths.
    pub sum_micros: u64,
}

impl ShadowStats {
    /// The counts now.
    pub fn counts(&self) -> ShadowCounts {
        ShadowCounts {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            mismatched: self.mismatched.load(Ordering::Relaxed),
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }

    fn record(&self, difference: f64) {
        let bucket = DIFFERENCE_BOUNDS
            .iter()
            .position(|&bound| difference <= bound)
            .unwrap_or(DIFFERENCE_BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        if difference > 0.0 {
            self.mismatched.fetch_add(1, Ordering::Relaxed);
        }
        if difference.is_finite() {
            // Saturating float-to-int cast: a finite difference past u64 sums as u64::MAX.
            let micros = (difference * 1e6) as u64;
            self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        }
    }
}

/// `primary` (the client's answer to `message`) with a copy sent to `shadow`, compared into
/// `stats` once both have answered. The copy is not mirrored (and `primary` comes back as it
/// is) when the shadow's native path does not take the request.
pub fn mirror(
    primary: PendingInfer,
    shadow: Arc<dyn InferRoute>,
    stats: Arc<ShadowStats>,
    message: Bytes,
    view: InferRequestView,
    deadline: Option<Instant>,
    stream: bool,
) -> PendingInfer {
    let Some(copy) = shadow.infer(message, view, deadline, false) else {
        return primary;
    };
    stats.sent.fetch_add(1, Ordering::Relaxed);
    let (sender, receiver) = oneshot::channel::<Vec<u8>>();
    tokio::spawn(async move {
        let copied = copy.await;
        let (Ok(answer), Ok(served)) = (copied, receiver.await) else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        stats.record(largest_difference(&served, stream, &answer));
    });
    Box::pin(async move {
        let result = primary.await;
        if let Ok(response) = &result {
            let _ = sender.send(response.clone());
        }
        result
    })
}

/// The largest absolute difference between two serialized responses' outputs (the first a
/// `ModelStreamInferResponse` when `stream`): 0 when they are identical, infinite when they
/// cannot be compared value by value (different outputs, shapes or datatypes; BYTES that
/// differ; a non-finite value on one side only; a response that does not parse).
pub fn largest_difference(served: &[u8], stream: bool, copy: &[u8]) -> f64 {
    let (Ok(a), Ok(b)) = (
        wire::parse_infer_response(served, stream),
        wire::parse_infer_response(copy, false),
    ) else {
        return f64::INFINITY;
    };
    if a.outputs.len() != b.outputs.len()
        || a.raw_output_contents.len() != a.outputs.len()
        || b.raw_output_contents.len() != b.outputs.len()
    {
        return f64::INFINITY;
    }
    let mut largest = 0.0f64;
    for (index, out_a) in a.outputs.iter().enumerate() {
        // Outputs are matched by name: the two versions may list them in another order.
        let Some(index_b) = b
            .outputs
            .iter()
            .position(|out_b| copy[out_b.name.clone()] == served[out_a.name.clone()])
        else {
            return f64::INFINITY;
        };
        let out_b = &b.outputs[index_b];
        let datatype = &served[out_a.datatype.clone()];
        if datatype != &copy[out_b.datatype.clone()] || out_a.shape != out_b.shape {
            return f64::INFINITY;
        }
        let raw_a = &served[a.raw_output_contents[index].clone()];
        let raw_b = &copy[b.raw_output_contents[index_b].clone()];
        let difference = std::str::from_utf8(datatype)
            .ok()
            .and_then(|name| name.parse::<DataType>().ok())
            .map_or(f64::INFINITY, |datatype| {
                values_difference(datatype, raw_a, raw_b)
            });
        largest = largest.max(difference);
    }
    largest
}

/// The largest absolute difference between two raw tensors of `datatype`.
fn values_difference(datatype: DataType, a: &[u8], b: &[u8]) -> f64 {
    if a == b {
        return 0.0;
    }
    let Some(size) = element_size(datatype) else {
        return f64::INFINITY; // BYTES: any difference is one
    };
    if a.len() != b.len() || !a.len().is_multiple_of(size) {
        return f64::INFINITY;
    }
    a.chunks_exact(size)
        .zip(b.chunks_exact(size))
        .map(|(x, y)| {
            let (x, y) = (value(datatype, x), value(datatype, y));
            if x.is_nan() && y.is_nan() || x == y {
                0.0 // equal infinities too
            } else {
                (x - y).abs() // NaN or infinite against a number: NaN or inf, never 0
            }
        })
        .fold(0.0, |largest, d| {
            if d.is_nan() {
                f64::INFINITY
            } else {
                largest.max(d)
            }
        })
}

fn element_size(datatype: DataType) -> Option<usize> {
    Some(match datatype {
        DataType::Bool | DataType::Uint8 | DataType::Int8 => 1,
        DataType::Uint16 | DataType::Int16 | DataType::Fp16 | DataType::Bf16 => 2,
        DataType::Uint32 | DataType::Int32 | DataType::Fp32 => 4,
        DataType::Uint64 | DataType::Int64 | DataType::Fp64 => 8,
        DataType::Bytes => return None,
    })
}

/// One little-endian element as f64 (64-bit integers past 2^53 round: a difference of one
/// unit there still shows, as a rounding of it).
#[allow(clippy::cast_precision_loss)]
fn value(datatype: DataType, bytes: &[u8]) -> f64 {
    let array = |n: usize| {
        let mut out = [0u8; 8];
        out[..n].copy_from_slice(&bytes[..n]);
        out
    };
    match datatype {
        DataType::Bool | DataType::Uint8 => f64::from(bytes[0]),
        DataType::Int8 => f64::from(i8::from_le_bytes([bytes[0]])),
        DataType::Uint16 => f64::from(u16::from_le_bytes([bytes[0], bytes[1]])),
        DataType::Int16 => f64::from(i16::from_le_bytes([bytes[0], bytes[1]])),
        DataType::Fp16 => f64::from(f16_to_f32(u16::from_le_bytes([bytes[0], bytes[1]]))),
        DataType::Bf16 => f64::from(f32::from_bits(
            u32::from(u16::from_le_bytes([bytes[0], bytes[1]])) << 16,
        )),
        DataType::Uint32 => f64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        DataType::Int32 => f64::from(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        DataType::Fp32 => f64::from(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        DataType::Uint64 => u64::from_le_bytes(array(8)) as f64,
        DataType::Int64 => i64::from_le_bytes(array(8)) as f64,
        DataType::Fp64 => f64::from_le_bytes(array(8)),
        DataType::Bytes => f64::NAN,
    }
}

/// IEEE 754 half precision to single (exact).
fn f16_to_f32(bits: u16) -> f32 {
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = bits & 0x3ff;
    let magnitude = match exponent {
        // Subnormal (or zero): mantissa * 2^-24, exact in f32.
        0 => f32::from(mantissa) * (1.0 / 16_777_216.0),
        0x1f if mantissa == 0 => f32::INFINITY,
        0x1f => f32::NAN,
        _ => f32::from_bits(((exponent + 127 - 15) << 23) | (u32::from(mantissa) << 13)),
    };
    if bits & 0x8000 == 0 {
        magnitude
    } else {
        -magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroserve_tensor::wire::{ResponseOutput, encode_infer_response};

    fn response(outputs: &[(&str, &str, &[i64], &[u8])], stream: bool) -> Vec<u8> {
        let outputs: Vec<ResponseOutput<'_>> = outputs
            .iter()
            .map(|&(name, datatype, shape, raw)| ResponseOutput {
                name,
                datatype,
                shape,
                raw,
            })
            .collect();
        encode_infer_response(b"m", b"1", b"", &outputs, stream)
    }

    fn fp32(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn differences_by_value_and_structure() {
        let a = fp32(&[1.0, 2.0, 3.0]);
        let b = fp32(&[1.0, 2.5, 2.0]);
        let served = response(&[("y", "FP32", &[3], &a)], true);
        assert_eq!(
            largest_difference(&served, true, &response(&[("y", "FP32", &[3], &a)], false)),
            0.0
        );
        let copy = response(&[("y", "FP32", &[3], &b)], false);
        assert!((largest_difference(&served, true, &copy) - 1.0).abs() < 1e-9);
        for other in [
            response(&[("y", "FP32", &[1, 3], &a)], false), // shape
            response(&[("y", "INT32", &[3], &a)], false),   // datatype
            response(&[("z", "FP32", &[3], &a)], false),    // name
            response(&[], false),                           // outputs
            b"\xff".to_vec(),                               // not a response
        ] {
            assert_eq!(largest_difference(&served, true, &other), f64::INFINITY);
        }
        // Outputs in another order are matched by name.
        let two = response(&[("y", "FP32", &[3], &a), ("z", "FP32", &[3], &b)], false);
        let swapped = response(&[("z", "FP32", &[3], &b), ("y", "FP32", &[3], &a)], false);
        assert_eq!(largest_difference(&two, false, &swapped), 0.0);
    }

    #[test]
    fn non_finite_values_and_bytes() {
        let nan = fp32(&[f32::NAN, 1.0]);
        assert_eq!(
            values_difference(DataType::Fp32, &nan, &fp32(&[f32::NAN, 1.0])),
            0.0
        );
        assert_eq!(
            values_difference(DataType::Fp32, &nan, &fp32(&[0.0, 1.0])),
            f64::INFINITY
        );
        let inf = fp32(&[f32::INFINITY]);
        assert_eq!(
            values_difference(DataType::Fp32, &inf, &fp32(&[f32::INFINITY])),
            0.0
        );
        assert_eq!(
            values_difference(DataType::Fp32, &inf, &fp32(&[1.0])),
            f64::INFINITY
        );
        assert_eq!(
            values_difference(DataType::Bytes, b"\x01\0\0\0a", b"\x01\0\0\0b"),
            f64::INFINITY
        );
        assert_eq!(
            values_difference(DataType::Int64, &(-3i64).to_le_bytes(), &4i64.to_le_bytes()),
            7.0
        );
    }

    #[test]
    fn half_precision_is_exact() {
        for (bits, expected) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x0001, 5.960_464_5e-8),
            (0x8001, -5.960_464_5e-8),
            (0x7bff, 65504.0),
            (0x7c00, f32::INFINITY),
            (0x0000, 0.0),
        ] {
            assert_eq!(f16_to_f32(bits), expected, "{bits:#06x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
        let bf16 = (1.5f32.to_bits() >> 16) as u16;
        assert_eq!(value(DataType::Bf16, &bf16.to_le_bytes()), 1.5);
    }

    #[test]
    fn the_histogram_counts_each_comparison_once() {
        let stats = ShadowStats::default();
        for difference in [0.0, 0.0, 5e-7, 0.5, 1e9, f64::INFINITY] {
            stats.record(difference);
        }
        let counts = stats.counts();
        assert_eq!(counts.buckets.iter().sum::<u64>(), 6);
        assert_eq!(counts.buckets[0], 2); // exact
        assert_eq!(counts.buckets[2], 1); // <= 1e-6
        assert_eq!(counts.buckets[8], 1); // <= 1
        assert_eq!(counts.buckets[DIFFERENCE_BOUNDS.len()], 2); // unbounded
        assert_eq!(counts.mismatched, 4);
    }
}
