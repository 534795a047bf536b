//! `DriftTracker` and the profile builders: streaming drift statistics (`ferroserve-drift`) as
//! Python sees it. Python reads the reference data and the declaration; profiles, counts,
//! windows and reports cross this layer as JSON (the crate's serde forms), which only the
//! exporter and the `drift` report read, off the hot path.

use std::time::{Duration, Instant};

use ferroserve_drift::{
    CategoricalProfile, ColumnProfile, DriftReport, DriftTracker, MonitoredColumn, NumericProfile,
    Thresholds, TrackerConfig, WindowCounts, WindowPolicy,
};
use ferroserve_runtime::DriftTap;
use ferroserve_tensor::DataType;
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use serde::Serialize;

use crate::exceptions::InvalidInputError;
use crate::gil::{Work, without_gil};

fn invalid(message: impl std::fmt::Display) -> PyErr {
    InvalidInputError::new_err(message.to_string())
}

fn json<T: Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(invalid)
}

fn datatype(name: &str) -> PyResult<DataType> {
    name.parse()
        .map_err(|_| invalid(format!("'{name}' is not a v2 datatype")))
}

/// The profile (JSON) of a numeric column: `bins` quantile bins of `values`' finite values.
#[pyfunction]
pub(crate) fn drift_numeric_profile(
    py: Python<'_>,
    name: &str,
    values: PyReadonlyArray1<'_, f64>,
    bins: usize,
) -> PyResult<String> {
    let values = values.as_slice()?;
    let profile = without_gil(py, Work::Bytes(values.len() * 8), || {
        NumericProfile::from_values(name, values, bins).map_err(invalid)
    })?;
    json(&ColumnProfile::Numeric(profile))
}

/// The profile (JSON) of a categorical column: the `top_k` most frequent of `values`.
#[pyfunction]
pub(crate) fn drift_categorical_profile(
    py: Python<'_>,
    values: PyReadonlyArray1<'_, i64>,
    top_k: usize,
) -> PyResult<String> {
    let values = values.as_slice()?;
    // A load thread's work: the event loop runs meanwhile, as for numeric profiles.
    let profile = without_gil(py, Work::Bytes(values.len() * 8), || {
        CategoricalProfile::from_values(values, top_k).map_err(invalid)
    })?;
    json(&ColumnProfile::Categorical(profile))
}

/// A model version's drift tracker and the executor's tap into it.
#[pyclass(frozen, name = "DriftTracker", module = "ferroserve._core")]
pub(crate) struct PyDriftTracker {
    tap: DriftTap,
}

impl PyDriftTracker {
    /// What the executor counts with.
    pub(crate) fn tap(&self) -> DriftTap {
        self.tap.clone()
    }
}

/// One window in a report.
#[derive(Serialize)]
struct WindowReport<'a> {
    rows: u64,
    batches: u64,
    report: DriftReport,
    counts: &'a WindowCounts,
    /// For the last closed window: its number and span in seconds since the tracker started.
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    opened_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    closed_s: Option<f64>,
}

#[derive(Serialize)]
struct Report<'a> {
    profile_id: String,
    errors: u64,
    cumulative: WindowReport<'a>,
    current: WindowReport<'a>,
    last_closed: Option<WindowReport<'a>>,
}

#[pymethods]
impl PyDriftTracker {
    /// `columns`: per monitored column (name, tensor index, column on the feature axis, v2
    /// datatype, profile JSON); `datatypes`: every tensor the executor shows it (model inputs,
    /// then outputs); one window policy of `window_rows` or `window_seconds`.
    #[new]
    #[pyo3(signature = (columns, datatypes, *, instances, window_rows = None, window_seconds = None, sample_every = 1))]
    fn new(
        columns: Vec<(String, usize, usize, String, String)>,
        datatypes: Vec<String>,
        instances: usize,
        window_rows: Option<u64>,
        window_seconds: Option<f64>,
        sample_every: u32,
    ) -> PyResult<Self> {
        let window = match (window_rows, window_seconds) {
            (Some(rows), None) => WindowPolicy::Rows(rows),
            (None, Some(seconds)) => WindowPolicy::Time(
                Duration::try_from_secs_f64(seconds)
                    .map_err(|_| invalid(format!("window_seconds {seconds} is not a duration")))?,
            ),
            _ => return Err(invalid("give one of window_rows and window_seconds")),
        };
        let columns = columns
            .into_iter()
            .map(|(name, tensor, column, datatype_name, profile)| {
                let profile: ColumnProfile = serde_json::from_str(&profile)
                    .map_err(|error| invalid(format!("column '{name}': profile: {error}")))?;
                Ok(MonitoredColumn {
                    datatype: datatype(&datatype_name)?,
                    name,
                    tensor,
                    column,
                    profile,
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let datatypes = datatypes
            .iter()
            .map(|name| datatype(name))
            .collect::<PyResult<Vec<_>>>()?;
        let tracker = DriftTracker::new(TrackerConfig {
            columns,
            instances,
            window,
            sample_every,
        })
        .map_err(invalid)?;
        Ok(PyDriftTracker {
            tap: DriftTap::new(tracker, datatypes),
        })
    }

    /// The monitored columns' names, in order.
    #[getter]
    fn columns(&self) -> Vec<String> {
        self.tap.tracker.column_names().to_vec()
    }

    /// The profiles (JSON list, in column order).
    fn profiles(&self) -> PyResult<String> {
        json(&self.tap.tracker.profiles())
    }

    /// Batches the tracker refused or threads left without a recorder (wiring bugs).
    #[getter]
    fn errors(&self) -> u64 {
        self.tap.errors()
    }

    /// The cumulative, current and last closed windows (JSON): each one's rows, batches,
    /// counts and report under `thresholds` (JSON of the crate's `Thresholds`; missing
    /// fields take the defaults).
    fn report(&self, py: Python<'_>, thresholds: &str) -> PyResult<String> {
        let thresholds: Thresholds = serde_json::from_str(thresholds)
            .map_err(|error| invalid(format!("thresholds: {error}")))?;
        let tracker = &self.tap.tracker;
        let errors = self.tap.errors();
        without_gil(py, Work::Blocking, || {
            let snapshot = tracker.snapshot(Instant::now());
            let window = |counts: &WindowCounts| -> Result<(u64, u64, DriftReport), PyErr> {
                let report = tracker.evaluate(counts, &thresholds).map_err(invalid)?;
                Ok((counts.rows, counts.batches, report))
            };
            let plain = |counts| {
                window(counts).map(|(rows, batches, report)| WindowReport {
                    rows,
                    batches,
                    report,
                    counts,
                    index: None,
                    opened_s: None,
                    closed_s: None,
                })
            };
            let last_closed = match &snapshot.last_closed {
                Some(closed) => {
                    let mut report = plain(&closed.counts)?;
                    report.index = Some(closed.index);
                    report.opened_s = Some(closed.opened.as_secs_f64());
                    report.closed_s = Some(closed.closed.as_secs_f64());
                    Some(report)
                }
                None => None,
            };
            json(&Report {
                profile_id: format!("{:016x}", tracker.profile_id()),
                errors,
                cumulative: plain(&snapshot.cumulative)?,
                current: plain(&snapshot.current)?,
                last_closed,
            })
        })
    }

    /// What the metrics snapshot exports (JSON of the crate's `DriftExport`): the windows
    /// judged under `thresholds`, reduced to the `top` columns by PSI, with their counts.
    fn export(&self, py: Python<'_>, thresholds: &str, top: usize) -> PyResult<String> {
        let thresholds: Thresholds = serde_json::from_str(thresholds)
            .map_err(|error| invalid(format!("thresholds: {error}")))?;
        let tracker = &self.tap.tracker;
        without_gil(py, Work::Blocking, || {
            let export = tracker
                .export(Instant::now(), &thresholds, top)
                .map_err(invalid)?;
            json(&export)
        })
    }

    /// Restarts the cumulative and current windows (the counts so far are left behind).
    fn reset(&self) {
        self.tap.tracker.reset(Instant::now());
    }
}
