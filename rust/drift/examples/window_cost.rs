//! What one drift window costs here, on data written by `benches/drift_evidently.py`: the
//! reference profiles built once (load time), then per window the executor's work (every row
//! counted by `Recorder::observe` in 64-row batches, the window rolling at its last batch) and
//! the exporter's (`evaluate` of the closed window, and its report serialised to JSON as the
//! Python binding does). Prints one JSON object with the timings and each window's report, and
//! for contrast the cost of counting one batch over and over, as the criterion bench does.
//!
//! ```text
//! cargo run --release -p ferroserve-drift --example window_cost -- DIR \
//!     COLUMNS REFERENCE_ROWS WINDOW_ROWS WINDOWS BINS TOP_K REPEATS
//! ```
//!
//! `DIR` holds little-endian raw arrays: `reference_numeric.bin` (f64, column-major
//! `COLUMNS x REFERENCE_ROWS`), `reference_category.bin` (i64, `REFERENCE_ROWS`) and per window
//! `k` `window_{k}_numeric.bin` (f32, row-major `WINDOW_ROWS x COLUMNS`: the executor's input
//! tensor) and `window_{k}_category.bin` (i64, `WINDOW_ROWS`: a second, `[batch]` tensor).
//! Columns are named `x0`.. and `category`.
#![allow(clippy::unwrap_used)]

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferroserve_drift::{
    CategoricalProfile, ColumnProfile, DriftTracker, MonitoredColumn, NumericProfile, Recorder,
    TensorView, Thresholds, TrackerConfig, WindowPolicy,
};
use ferroserve_tensor::DataType;
use serde_json::json;

/// Rows per executed batch (the serving benchmarks' `max_batch_size`).
const BATCH: usize = 64;

struct Args {
    dir: PathBuf,
    columns: usize,
    reference_rows: usize,
    window_rows: usize,
    windows: usize,
    bins: usize,
    top_k: usize,
    repeats: usize,
}

fn args() -> Result<Args, Box<dyn Error>> {
    let given: Vec<String> = std::env::args().skip(1).collect();
    let [dir, numbers @ ..] = given.as_slice() else {
        return Err(
            "usage: window_cost DIR COLUMNS REFERENCE_ROWS WINDOW_ROWS WINDOWS BINS TOP_K REPEATS"
                .into(),
        );
    };
    let numbers: Vec<usize> = numbers
        .iter()
        .map(|n| n.parse())
        .collect::<Result<_, _>>()?;
    let [
        columns,
        reference_rows,
        window_rows,
        windows,
        bins,
        top_k,
        repeats,
    ] = numbers[..]
    else {
        return Err("expected 7 numbers after DIR".into());
    };
    Ok(Args {
        dir: dir.into(),
        columns,
        reference_rows,
        window_rows,
        windows,
        bins,
        top_k,
        repeats: repeats.max(1),
    })
}

/// A raw file of `N`-byte little-endian values, checked to hold `count` of them.
fn read<const N: usize, T>(
    path: &Path,
    count: usize,
    decode: fn([u8; N]) -> T,
) -> Result<Vec<T>, Box<dyn Error>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() != count * N {
        return Err(format!(
            "{}: {} bytes, expected {}",
            path.display(),
            bytes.len(),
            count * N
        )
        .into());
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|chunk| decode(chunk.try_into().unwrap()))
        .collect())
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `struct timespec` on 64-bit Linux.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[repr(C)]
struct Timespec {
    seconds: i64,
    nanoseconds: i64,
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
unsafe extern "C" {
    /// libc's, which std already links.
    fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
}

/// This thread's CPU time in ns (`CLOCK_THREAD_CPUTIME_ID`): beside the wall time, it stays
/// put when other jobs share the cores. `None` off 64-bit Linux.
fn thread_cpu_ns() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    {
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        let mut time = Timespec {
            seconds: 0,
            nanoseconds: 0,
        };
        // SAFETY: `time` is a valid, writable `struct timespec` for the call's duration, and
        // the clock id is Linux's constant for the calling thread's CPU clock.
        let status = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &raw mut time) };
        (status == 0).then(|| {
            u64::try_from(time.seconds).unwrap_or(0) * 1_000_000_000
                + u64::try_from(time.nanoseconds).unwrap_or(0)
        })
    }
    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    None
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

/// Counts a window's rows (`category.len() / 8`) in `BATCH`-row batches as the executor does:
/// an FP32 `[rows, columns]` tensor and an INT64 `[rows]` one per batch. With `same_batch`,
/// every batch is the window's first one instead.
fn observe_window(
    recorder: &mut Recorder,
    numeric: &[u8],
    category: &[u8],
    columns: usize,
    same_batch: bool,
) -> Result<(), Box<dyn Error>> {
    let row_bytes = columns * 4;
    let rows = category.len() / 8;
    for first in (0..rows).step_by(BATCH) {
        let batch = BATCH.min(rows - first);
        let at = if same_batch { 0 } else { first };
        let shape_numeric = [batch as i64, columns as i64];
        let shape_category = [batch as i64];
        let tensors = [
            TensorView {
                datatype: DataType::Fp32,
                shape: &shape_numeric,
                data: &numeric[at * row_bytes..(at + batch) * row_bytes],
            },
            TensorView {
                datatype: DataType::Int64,
                shape: &shape_category,
                data: &category[at * 8..(at + batch) * 8],
            },
        ];
        recorder.observe(&tensors, Instant::now())?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = args()?;
    let reference = read(
        &args.dir.join("reference_numeric.bin"),
        args.columns * args.reference_rows,
        f64::from_le_bytes,
    )?;
    let reference_category = read(
        &args.dir.join("reference_category.bin"),
        args.reference_rows,
        i64::from_le_bytes,
    )?;

    // Load time: what the model loader does once per version.
    let started = Instant::now();
    let mut columns = Vec::with_capacity(args.columns + 1);
    for (index, values) in reference.chunks_exact(args.reference_rows).enumerate() {
        let name = format!("x{index}");
        let profile = NumericProfile::from_values(&name, values, args.bins)?;
        columns.push(MonitoredColumn {
            name,
            tensor: 0,
            column: index,
            datatype: DataType::Fp32,
            profile: ColumnProfile::Numeric(profile),
        });
    }
    columns.push(MonitoredColumn {
        name: "category".into(),
        tensor: 1,
        column: 0,
        datatype: DataType::Int64,
        profile: ColumnProfile::Categorical(CategoricalProfile::from_values(
            &reference_category,
            args.top_k,
        )?),
    });
    let profile_time = started.elapsed();
    let tracker = DriftTracker::new(TrackerConfig {
        columns,
        instances: 1,
        window: WindowPolicy::Rows(args.window_rows as u64),
        sample_every: 1,
    })?;
    let mut recorder = tracker.recorder(0)?;
    let thresholds = Thresholds::default();

    let mut windows = Vec::with_capacity(args.windows);
    for k in 0..args.windows {
        let numeric: Vec<u8> = std::fs::read(args.dir.join(format!("window_{k}_numeric.bin")))?;
        let category: Vec<u8> = std::fs::read(args.dir.join(format!("window_{k}_category.bin")))?;
        let row_bytes = args.columns * 4;
        if numeric.len() != args.window_rows * row_bytes || category.len() != args.window_rows * 8 {
            return Err(format!("window {k}: wrong file sizes").into());
        }
        let (mut observe, mut evaluate, mut serialize) = (Vec::new(), Vec::new(), Vec::new());
        let (mut observe_cpu, mut evaluate_cpu) = (Vec::new(), Vec::new());
        let mut last = None;
        for _ in 0..args.repeats {
            // The executor's work: every batch counted as it runs (here back to back). The
            // last batch reaches `window_rows`, which rolls the window.
            let cpu = thread_cpu_ns();
            let started = Instant::now();
            observe_window(&mut recorder, &numeric, &category, args.columns, false)?;
            observe.push(nanos(started.elapsed()));
            observe_cpu.extend(thread_cpu_ns().zip(cpu).map(|(end, start)| end - start));

            // The exporter's work: read the closed window, judge it, serialise the report.
            let cpu = thread_cpu_ns();
            let started = Instant::now();
            let snapshot = tracker.snapshot(Instant::now());
            let closed = snapshot.last_closed.ok_or("the window did not roll")?;
            let report = tracker.evaluate(&closed.counts, &thresholds)?;
            evaluate.push(nanos(started.elapsed()));
            evaluate_cpu.extend(thread_cpu_ns().zip(cpu).map(|(end, start)| end - start));
            let started = Instant::now();
            let text = serde_json::to_string(&report)?;
            serialize.push(nanos(started.elapsed()));
            assert_eq!(closed.counts.rows, args.window_rows as u64);
            last = Some((report, text.len()));
        }
        let (report, report_bytes) = last.ok_or("no repeat ran")?;
        windows.push(json!({
            "window": k,
            "rows": args.window_rows,
            "values": args.window_rows * (args.columns + 1),
            "observe_ns": median(observe.clone()),
            "observe_ns_min": observe.iter().min(),
            "observe_cpu_ns": (!observe_cpu.is_empty()).then(|| median(observe_cpu)),
            "evaluate_ns": median(evaluate.clone()),
            "evaluate_ns_min": evaluate.iter().min(),
            "evaluate_cpu_ns": (!evaluate_cpu.is_empty()).then(|| median(evaluate_cpu)),
            "serialize_ns": median(serialize),
            "report_bytes": report_bytes,
            "report": report,
        }));
    }
    // The criterion bench's way for contrast: the first window's first batch counted again
    // and again, as many rows as a window (the branch predictor may learn its comparisons).
    let numeric = std::fs::read(args.dir.join("window_0_numeric.bin"))?;
    let category = std::fs::read(args.dir.join("window_0_category.bin"))?;
    let (mut repeated, mut repeated_cpu) = (Vec::new(), Vec::new());
    for _ in 0..args.repeats {
        let cpu = thread_cpu_ns();
        let started = Instant::now();
        observe_window(&mut recorder, &numeric, &category, args.columns, true)?;
        repeated.push(nanos(started.elapsed()));
        repeated_cpu.extend(thread_cpu_ns().zip(cpu).map(|(end, start)| end - start));
    }
    let output = json!({
        "columns": args.columns + 1,
        "reference_rows": args.reference_rows,
        "bins": args.bins,
        "top_k": args.top_k,
        "batch": BATCH,
        "repeats": args.repeats,
        "profile_ns": nanos(profile_time),
        "windows": windows,
        "repeated_batch": {
            "values": args.window_rows * (args.columns + 1),
            "observe_ns": median(repeated),
            "observe_cpu_ns": (!repeated_cpu.is_empty()).then(|| median(repeated_cpu)),
        },
    });
    println!("{output}");
    Ok(())
}
