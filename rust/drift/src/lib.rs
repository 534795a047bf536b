//! Streaming drift statistics in pure Rust: reference profiles of a model version's columns,
//! per-column binned counts updated by the executor threads for every executed (sampled)
//! batch, windows of those counts that merge by addition, and the statistics and verdicts the
//! metrics exporter computes from them. It knows nothing of Python, files or metrics formats;
//! the Python loader builds the profiles and the bindings only adapt.
//!
//! # Flow
//! 1. Model load (Python, off the hot path): per monitored column a [`ColumnProfile`], either
//!    [`NumericProfile::from_values`] (quantile edges, see its edge rule) or
//!    [`CategoricalProfile::from_values`] (top-K plus "other"), or the same plain values
//!    computed elsewhere and checked by [`DriftTracker::new`]. Then one tracker per version:
//!    `DriftTracker::new(TrackerConfig { columns, instances, window, sample_every })`, with
//!    each [`MonitoredColumn`] mapped to (tensor index, column on the feature axis).
//! 2. Each executor thread, once: `let mut recorder = tracker.recorder(instance)?;`.
//! 3. Each executed batch, on that thread: `recorder.observe(&tensors, now)` with the batch's
//!    tensors as [`TensorView`]s in the mapped order (e.g. inputs then outputs) and the
//!    executor's `Instant` after the run. An [`ObserveError`] is a wiring bug: count it, never
//!    fail the batch for it.
//! 4. The exporter, every scrape: `let snapshot = tracker.snapshot(Instant::now());` gives the
//!    cumulative window, the open tumbling window and the last closed one as
//!    [`WindowCounts`]; `tracker.evaluate(&window, &thresholds)` (or [`evaluate`] on counts
//!    merged from replicas with [`WindowCounts::merge`]) gives a [`DriftReport`]: statistics,
//!    a verdict per column and the model's [`Status`]. `tracker.reset(now)` restarts both
//!    windows.
//!
//! ```
//! use std::time::Instant;
//! use ferroserve_drift::*;
//! use ferroserve_tensor::DataType;
//!
//! let reference: Vec<f64> = (0..1000).map(|i| f64::from(i) / 100.0).collect();
//! let profile = NumericProfile::from_values("x[0]", &reference, 10)?;
//! let tracker = DriftTracker::new(TrackerConfig {
//!     columns: vec![MonitoredColumn {
//!         name: "x[0]".into(),
//!         tensor: 0,
//!         column: 0,
//!         datatype: DataType::Fp32,
//!         profile: ColumnProfile::Numeric(profile),
//!     }],
//!     instances: 1,
//!     window: WindowPolicy::Rows(10_000),
//!     sample_every: 1,
//! })?;
//!
//! // Executor thread: one recorder, one observe per executed batch.
//! let mut recorder = tracker.recorder(0)?;
//! let batch: Vec<u8> = (0..64 * 2).flat_map(|i| (i as f32 / 12.8).to_le_bytes()).collect();
//! let shape = [64, 2];
//! let tensors = [TensorView { datatype: DataType::Fp32, shape: &shape, data: &batch }];
//! assert!(recorder.observe(&tensors, Instant::now())?);
//!
//! // Exporter: read the windows and judge one.
//! let snapshot = tracker.snapshot(Instant::now());
//! assert_eq!(snapshot.cumulative.columns[0].total(), 64);
//! let report = tracker.evaluate(&snapshot.cumulative, &Thresholds::default())?;
//! assert_eq!(report.columns[0].verdict, Verdict::TooFewRows); // 64 < min_rows
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Decisions
//! - **Concurrency: one writer per counter, no lock on the hot path.** Each executor thread
//!   owns a [`Recorder`] (one per instance, enforced) whose counters only it writes, with a
//!   relaxed load and store (plain `mov`s: no locked read-modify-write, no cache line shared
//!   with another writer). They are atomics only so the exporter may read them at any time.
//!   Per batch one shared atomic add (row windows) or a clock comparison (time windows); the
//!   window lock is taken once per roll and by readers, never per value. Nothing allocates.
//! - **Windows are differences of monotonic counters.** Counters are cumulative since load and
//!   never reset; the tracker keeps the counter totals at load/reset and at the open window's
//!   start, so a roll is one snapshot under the lock and every counted value lands in exactly
//!   one tumbling window (per counter; a batch counted during a roll may split across two
//!   windows by column, and the `rows` total is read with, not atomically with, the bins).
//! - **Bins: `[e_i, e_{i+1})`.** Interior edges from the reference's numpy "linear" quantiles,
//!   equal edges merged ([`NumericProfile::from_values`]); open outer bins; NaN, `-inf`,
//!   `+inf` counted apart. The hot path compares FP32 values with edges rounded up to f32 and
//!   integers with edges rounded up to integers, which gives exactly [`numeric_bin`]'s bin.
//! - **Statistics** ([`stats`]): PSI and JS over bins plus the NaN/inf slots (so a rise in
//!   missing values drifts), KS and Wasserstein over the finite bins (Wasserstein with bins at
//!   their midpoints, the outer ones closed by the reference min and max, over the reference
//!   std), chi-squared over categories and "other". Thresholds in [`Thresholds`], with no
//!   verdict below `min_rows` values.
//! - **Sampling**: every Nth batch per executor thread; windows by rows count sampled rows.
//! - **Datatypes**: numeric FP32, BF16, FP64 and the integers up to 32 bits unsigned / 64
//!   signed, plus BOOL; categorical the integers and BOOL. FP16 and UINT64 are refused at
//!   load. Integer edges saturate at the i64 range (an edge past it misplaces `i64::MAX`).

mod bins;
mod counts;
mod error;
mod export;
mod profile;
mod scan;
pub mod stats;
mod tracker;
mod verdict;
mod window;

pub use bins::numeric_bin;
pub use counts::{ColumnCounts, WindowCounts};
pub use error::{CountsError, ObserveError, ProfileError, RecorderError};
pub use export::{DriftExport, ExportedColumn, ExportedWindow, top_columns};
pub use profile::{CategoricalProfile, ColumnProfile, NumericProfile};
pub use tracker::{
    CATEGORICAL_DATATYPES, DriftTracker, MonitoredColumn, NUMERIC_DATATYPES, Recorder, TensorView,
    TrackerConfig,
};
pub use verdict::{
    ColumnReport, DriftReport, Statistic, Statistics, Status, Thresholds, Verdict,
    column_statistics, column_verdict, evaluate,
};
pub use window::{ClosedWindow, DriftSnapshot, WindowPolicy};
