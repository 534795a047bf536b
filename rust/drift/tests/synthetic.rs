//! Synthetic windows through the whole path (bytes -> recorder -> closed window -> report):
//! windows drawn from the reference distribution raise no drift (false alarms under 1% over
//! 200 windows), and a 0.5-sigma mean shift, a variance change, a new category and a jump in
//! missing values are each detected.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::{Random, fp32_batch, int64_bytes, normal_tracker};
use ferroserve_drift::*;
use ferroserve_tensor::DataType;

/// Rows per window: the default `min_rows`.
const WINDOW: u64 = 2000;
/// Numeric columns.
const COLUMNS: usize = 4;
/// The reference categories and their weights.
const CATEGORIES: [i64; 4] = [1, 2, 3, 4];
const WEIGHTS: [f64; 4] = [0.4, 0.3, 0.2, 0.1];

/// Draws the value of a numeric column (by index) in one row.
type NumericDraw = Box<dyn FnMut(&mut Random, usize) -> f32>;

/// Draws one numeric value of column `column` and one category per row.
struct Source {
    numeric: NumericDraw,
    category: Box<dyn FnMut(&mut Random) -> i64>,
}

fn reference_source() -> Source {
    Source {
        numeric: Box::new(|random, _| random.normal() as f32),
        category: Box::new(|random| random.category(&CATEGORIES, &WEIGHTS)),
    }
}

fn category_profile() -> CategoricalProfile {
    let mut random = Random::new(99);
    let values: Vec<i64> = (0..20_000)
        .map(|_| random.category(&CATEGORIES, &WEIGHTS))
        .collect();
    CategoricalProfile::from_values(&values, 4).unwrap()
}

/// Streams `windows` windows of 64-row batches from `source`; the report of each closed
/// window.
fn run(windows: u64, mut source: Source, seed: u64) -> Vec<DriftReport> {
    let tracker = normal_tracker(
        COLUMNS,
        32,
        Some(&category_profile()),
        WindowPolicy::Rows(WINDOW),
        1,
    );
    let mut recorder = tracker.recorder(0).unwrap();
    let mut random = Random::new(seed);
    let mut reports = Vec::new();
    let thresholds = Thresholds::default();
    let rows = 50usize; // 2000 = 40 batches of 50: windows close on a batch boundary.
    while (reports.len() as u64) < windows {
        let x = fp32_batch(rows, COLUMNS, |_, column| {
            (source.numeric)(&mut random, column)
        });
        let c: Vec<i64> = (0..rows).map(|_| (source.category)(&mut random)).collect();
        let c = int64_bytes(&c);
        let tensors = [
            TensorView {
                datatype: DataType::Fp32,
                shape: &[rows as i64, COLUMNS as i64],
                data: &x,
            },
            TensorView {
                datatype: DataType::Int64,
                shape: &[rows as i64],
                data: &c,
            },
        ];
        recorder.observe(&tensors, Instant::now()).unwrap();
        let snapshot = tracker.snapshot(Instant::now());
        if let Some(closed) = snapshot.last_closed
            && closed.index == reports.len() as u64
        {
            assert_eq!(closed.counts.rows, WINDOW);
            reports.push(tracker.evaluate(&closed.counts, &thresholds).unwrap());
        }
    }
    reports
}

fn verdict(report: &DriftReport, column: &str) -> Verdict {
    report
        .columns
        .iter()
        .find(|c| c.name == column)
        .unwrap()
        .verdict
}

#[test]
fn reference_windows_raise_no_drift() {
    let reports = run(200, reference_source(), 1);
    let drifted_columns: usize = reports.iter().map(|r| r.drift).sum();
    let flagged_models = reports.iter().filter(|r| r.status == Status::Drift).count();
    // Fewer than 1% of the 200 windows may flag any column drifting.
    let windows_with_drift = reports.iter().filter(|r| r.drift > 0).count();
    assert!(
        windows_with_drift < 2,
        "{windows_with_drift} of 200 windows had a drifting column ({drifted_columns} columns)"
    );
    assert_eq!(flagged_models, 0);
    assert!(reports.iter().all(|r| r.judged == COLUMNS + 1));
    let worst_psi = reports
        .iter()
        .flat_map(|r| r.columns.iter().filter_map(|c| c.statistics.psi))
        .fold(0.0f64, f64::max);
    assert!(worst_psi < 0.1, "worst PSI {worst_psi}");
}

#[test]
fn a_half_sigma_mean_shift_is_detected() {
    let source = Source {
        numeric: Box::new(|random, column| {
            (random.normal() + if column == 0 { 0.5 } else { 0.0 }) as f32
        }),
        ..reference_source()
    };
    for report in run(5, source, 2) {
        assert_eq!(
            verdict(&report, "x0"),
            Verdict::Drift,
            "{:?}",
            report.columns[0]
        );
        assert_eq!(verdict(&report, "x1"), Verdict::Ok);
        let shifted = &report.columns[0].statistics;
        assert!(shifted.wasserstein.unwrap() > 0.4, "{shifted:?}");
        assert_eq!(report.status, Status::Warning); // 1 of 5 columns
    }
}

#[test]
fn a_variance_change_is_detected() {
    let source = Source {
        numeric: Box::new(|random, column| {
            (random.normal() * if column == 1 { 1.5 } else { 1.0 }) as f32
        }),
        ..reference_source()
    };
    for report in run(5, source, 3) {
        assert_eq!(
            verdict(&report, "x1"),
            Verdict::Drift,
            "{:?}",
            report.columns[1]
        );
        assert_eq!(verdict(&report, "x0"), Verdict::Ok);
    }
}

#[test]
fn a_new_category_is_detected() {
    let source = Source {
        category: Box::new(|random| {
            if random.uniform() < 0.05 {
                7
            } else {
                random.category(&CATEGORIES, &WEIGHTS)
            }
        }),
        ..reference_source()
    };
    for report in run(5, source, 4) {
        assert_eq!(
            verdict(&report, "c"),
            Verdict::Drift,
            "{:?}",
            report.columns[4]
        );
        assert!(
            report.columns[..COLUMNS]
                .iter()
                .all(|c| c.verdict == Verdict::Ok)
        );
        let statistics = &report.columns[4].statistics;
        assert!(
            statistics.chi_squared_p_value.unwrap() < 1e-6,
            "{statistics:?}"
        );
    }
}

#[test]
fn missing_values_and_a_model_wide_shift_drift_the_model() {
    let source = Source {
        numeric: Box::new(|random, column| match column {
            0 if random.uniform() < 0.1 => f32::NAN,
            _ => (random.normal() + 1.0) as f32,
        }),
        ..reference_source()
    };
    for report in run(3, source, 5) {
        assert_eq!(report.drift, COLUMNS);
        assert_eq!(report.status, Status::Drift);
        assert!((report.columns[0].statistics.non_finite_share - 0.1).abs() < 0.03);
    }
}
