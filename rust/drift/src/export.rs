//! What the metrics exporter reads once a second: the three windows judged, reduced to the
//! columns that matter most (highest PSI in any window) with their counts. Ranking and
//! trimming happen here, so the exporter serializes and parses only the top columns (a
//! 74-column model's full report is ~60 KB of JSON; reshaping it in Python cost ~4 ms a second).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::counts::{ColumnCounts, WindowCounts};
use crate::error::CountsError;
use crate::profile::ColumnProfile;
use crate::tracker::DriftTracker;
use crate::verdict::{ColumnReport, DriftReport, Status, Thresholds, Verdict};

/// One top column in one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedColumn {
    /// The column.
    pub name: String,
    /// Values in the window.
    pub values: u64,
    /// Its verdict.
    pub verdict: Verdict,
    /// Share of NaN and infinite values.
    pub non_finite_share: f64,
    /// PSI (`None`: not defined for this column and window).
    pub psi: Option<f64>,
    /// Jensen-Shannon distance.
    pub jensen_shannon: Option<f64>,
    /// Kolmogorov-Smirnov (numeric).
    pub kolmogorov_smirnov: Option<f64>,
    /// Wasserstein-1 / reference std (numeric).
    pub wasserstein: Option<f64>,
    /// Chi-squared p-value (categorical).
    pub chi_squared_p_value: Option<f64>,
}

impl From<ColumnReport> for ExportedColumn {
    fn from(report: ColumnReport) -> Self {
        let statistics = report.statistics;
        ExportedColumn {
            name: report.name,
            values: report.values,
            verdict: report.verdict,
            non_finite_share: statistics.non_finite_share,
            psi: statistics.psi,
            jensen_shannon: statistics.jensen_shannon,
            kolmogorov_smirnov: statistics.kolmogorov_smirnov,
            wasserstein: statistics.wasserstein,
            chi_squared_p_value: statistics.chi_squared_p_value,
        }
    }
}

/// One window: its totals over every column, the top columns' statistics and counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedWindow {
    /// Rows counted.
    pub rows: u64,
    /// Batches counted.
    pub batches: u64,
    /// The model's status in this window (over every column).
    pub status: Status,
    /// Columns judged (every column).
    pub judged: usize,
    /// Columns in warning (every column).
    pub warning: usize,
    /// Columns drifting (every column).
    pub drift: usize,
    /// The top columns, in rank order.
    pub columns: Vec<ExportedColumn>,
    /// The top columns' counts, in rank order: the finite bins (or categories and "other"),
    /// then, for numeric columns, NaN, `-inf` and `+inf`.
    pub counts: Vec<Vec<u64>>,
    /// For the last closed window: its number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// For the last closed window: when it opened, seconds since the tracker was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_s: Option<f64>,
    /// For the last closed window: when it closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_s: Option<f64>,
}

/// The export: "cumulative", "current" and (once one closed) "last_closed".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftExport {
    /// `DriftTracker::profile_id` in hex.
    pub profile_id: String,
    /// Columns monitored.
    pub columns_total: usize,
    /// The top columns' indices in the tracker's order, in rank order.
    pub top: Vec<usize>,
    /// The windows by name.
    pub windows: BTreeMap<&'static str, ExportedWindow>,
}

/// The `count` columns with the highest finite PSI in any of `reports` (ties and columns
/// without a PSI: in column order).
pub fn top_columns(reports: &[&DriftReport], count: usize) -> Vec<usize> {
    let Some(first) = reports.first() else {
        return Vec::new();
    };
    let score = |index: usize| {
        reports
            .iter()
            .filter_map(|report| report.columns[index].statistics.psi)
            .filter(|psi| psi.is_finite())
            .fold(-1.0_f64, f64::max)
    };
    let mut ranked: Vec<(f64, usize)> = (0..first.columns.len())
        .map(|index| (score(index), index))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked
        .into_iter()
        .take(count)
        .map(|(_, index)| index)
        .collect()
}

/// A column's slots as exported: bins, then NaN and infinities for numeric columns.
fn slots(profile: &ColumnProfile, counts: &ColumnCounts) -> Vec<u64> {
    let mut slots = counts.bins.clone();
    if matches!(profile, ColumnProfile::Numeric(_)) {
        slots.extend([counts.nan, counts.neg_inf, counts.pos_inf]);
    }
    slots
}

impl DriftTracker {
    /// The windows at `now` judged under `thresholds`, reduced to the `top` columns.
    pub fn export(
        &self,
        now: Instant,
        thresholds: &Thresholds,
        top: usize,
    ) -> Result<DriftExport, CountsError> {
        let snapshot = self.snapshot(now);
        let mut windows: Vec<(&'static str, WindowCounts, Option<ClosedSpan>)> = vec![
            ("cumulative", snapshot.cumulative, None),
            ("current", snapshot.current, None),
        ];
        if let Some(closed) = snapshot.last_closed {
            let span = ClosedSpan {
                index: closed.index,
                opened_s: closed.opened.as_secs_f64(),
                closed_s: closed.closed.as_secs_f64(),
            };
            windows.push(("last_closed", closed.counts, Some(span)));
        }
        let reports = windows
            .iter()
            .map(|(_, counts, _)| self.evaluate(counts, thresholds))
            .collect::<Result<Vec<_>, _>>()?;
        let top = top_columns(&reports.iter().collect::<Vec<_>>(), top);
        let profiles = self.profiles();
        let mut exported = BTreeMap::new();
        for ((name, counts, span), report) in windows.into_iter().zip(reports) {
            let window = ExportedWindow {
                rows: counts.rows,
                batches: counts.batches,
                status: report.status,
                judged: report.judged,
                warning: report.warning,
                drift: report.drift,
                columns: top
                    .iter()
                    .map(|&index| ExportedColumn::from(report.columns[index].clone()))
                    .collect(),
                counts: top
                    .iter()
                    .map(|&index| slots(&profiles[index], &counts.columns[index]))
                    .collect(),
                index: span.map(|span| span.index),
                opened_s: span.map(|span| span.opened_s),
                closed_s: span.map(|span| span.closed_s),
            };
            exported.insert(name, window);
        }
        Ok(DriftExport {
            profile_id: format!("{:016x}", self.profile_id()),
            columns_total: profiles.len(),
            top,
            windows: exported,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct ClosedSpan {
    index: u64,
    opened_s: f64,
    closed_s: f64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::verdict::Statistics;

    fn report(psis: &[Option<f64>]) -> DriftReport {
        DriftReport {
            columns: psis
                .iter()
                .enumerate()
                .map(|(index, &psi)| ColumnReport {
                    name: format!("c{index}"),
                    values: 10,
                    statistics: Statistics {
                        psi,
                        ..Statistics::default()
                    },
                    verdict: Verdict::Ok,
                    flagged_by: Vec::new(),
                })
                .collect(),
            judged: psis.len(),
            warning: 0,
            drift: 0,
            status: Status::Ok,
        }
    }

    #[test]
    fn top_columns_rank_by_the_highest_psi_in_any_window() {
        let cumulative = report(&[Some(0.1), Some(0.5), None, Some(0.05)]);
        let current = report(&[Some(0.7), Some(0.2), Some(f64::NAN), Some(0.05)]);
        assert_eq!(top_columns(&[&cumulative, &current], 2), vec![0, 1]);
        // Ties keep column order; columns without a finite PSI come last.
        assert_eq!(top_columns(&[&cumulative, &current], 10), vec![0, 1, 3, 2]);
        assert_eq!(top_columns(&[], 3), Vec::<usize>::new());
    }
}
