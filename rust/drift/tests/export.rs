//! The metrics export: the top columns by PSI across windows, their statistics equal to the
//! full report's, and their counts laid out as bins then NaN and infinities (numeric) or
//! categories then "other" (categorical).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::{Random, fp32_batch, int64_bytes, normal_tracker};
use ferroserve_drift::*;
use ferroserve_tensor::DataType;

#[test]
fn export_keeps_the_top_columns_of_the_full_report() {
    let category = CategoricalProfile {
        values: vec![1, 2],
        counts: vec![50, 50],
        other: 0,
    };
    let tracker = normal_tracker(6, 10, Some(&category), WindowPolicy::Rows(200), 1);
    let mut recorder = tracker.recorder(0).unwrap();
    let mut random = Random::new(7);
    let rows = 100;
    for _ in 0..5 {
        // Column 3 shifted by 2 sigma, column 5 by 0.5; the rest from the reference; one NaN.
        let values = fp32_batch(rows, 6, |row, column| match (row, column) {
            (0, 1) => f32::NAN,
            (_, 3) => (random.normal() + 2.0) as f32,
            (_, 5) => (random.normal() + 0.5) as f32,
            _ => random.normal() as f32,
        });
        let categories: Vec<i64> = (0..rows).map(|row| 1 + (row % 2) as i64).collect();
        let categories = int64_bytes(&categories);
        let (shape, category_shape) = ([rows as i64, 6], [rows as i64, 1]);
        let tensors = [
            TensorView {
                datatype: DataType::Fp32,
                shape: &shape,
                data: &values,
            },
            TensorView {
                datatype: DataType::Int64,
                shape: &category_shape,
                data: &categories,
            },
        ];
        assert!(recorder.observe(&tensors, Instant::now()).unwrap());
    }
    let thresholds = Thresholds::default();
    let now = Instant::now();
    let export = tracker.export(now, &thresholds, 3).unwrap();
    assert_eq!(export.columns_total, 7);
    assert_eq!(export.top[..2], [3, 5]);
    assert_eq!(export.top.len(), 3);
    assert_eq!(
        export.windows.keys().copied().collect::<Vec<_>>(),
        ["cumulative", "current", "last_closed"]
    );
    let snapshot = tracker.snapshot(now);
    let full = tracker.evaluate(&snapshot.cumulative, &thresholds).unwrap();
    let cumulative = &export.windows["cumulative"];
    assert_eq!(cumulative.rows, 500);
    assert_eq!(
        (cumulative.judged, cumulative.status),
        (full.judged, full.status)
    );
    for (rank, &index) in export.top.iter().enumerate() {
        let column = &cumulative.columns[rank];
        assert_eq!(column.name, full.columns[index].name);
        assert_eq!(column.psi, full.columns[index].statistics.psi);
        let counts = &snapshot.cumulative.columns[index];
        let mut slots = counts.bins.clone();
        slots.extend([counts.nan, counts.neg_inf, counts.pos_inf]);
        assert_eq!(cumulative.counts[rank], slots);
    }
    let closed = &export.windows["last_closed"];
    assert_eq!(closed.index, Some(1));
    assert!(closed.closed_s.unwrap() >= closed.opened_s.unwrap());
    assert_eq!(cumulative.index, None);
    // The categorical column: categories then "other", no NaN slots.
    let everything = tracker.export(now, &thresholds, 10).unwrap();
    let rank = everything.top.iter().position(|&index| index == 6).unwrap();
    assert_eq!(
        everything.windows["cumulative"].counts[rank],
        vec![250, 250, 0]
    );
    let json = serde_json::to_value(&export).unwrap();
    assert_eq!(json["windows"]["current"]["columns"][0]["name"], "x3");
    assert!(json["windows"]["current"].get("index").is_none());
}
