//! Window counts: what a window saw, as plain integers per column (bins, then NaN, `-inf`,
//! `+inf`), so windows of executor threads, instances and replicas merge by addition. This is
//! the serializable value the exporter reads, ships between replicas and evaluates.

use serde::{Deserialize, Serialize};

use crate::bins::{EXTRA_SLOTS, NAN_SLOT, NEG_INF_SLOT, POS_INF_SLOT};
use crate::error::CountsError;

/// The counts of one window of one model version's monitored columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCounts {
    /// The profile these counts were binned with (`DriftTracker::profile_id`): counts merge
    /// and evaluate only against the same profile.
    pub profile_id: u64,
    /// Rows counted (sampled batches only). Read with the bins but not atomically with them:
    /// a batch counted while the window rolled may sit in this window's rows and the next
    /// window's bins. Per-column totals (`ColumnCounts::total`) are exact.
    pub rows: u64,
    /// Batches counted.
    pub batches: u64,
    /// One entry per monitored column, in the tracker's order.
    pub columns: Vec<ColumnCounts>,
}

/// One column's counts in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnCounts {
    /// The column's name.
    pub name: String,
    /// Values per finite bin (numeric) or per tracked category, then "other" (categorical).
    pub bins: Vec<u64>,
    /// NaN values (numeric FP columns only).
    pub nan: u64,
    /// `-inf` values.
    pub neg_inf: u64,
    /// `+inf` values.
    pub pos_inf: u64,
}

impl ColumnCounts {
    /// Values counted in finite bins (or categories).
    pub fn finite(&self) -> u64 {
        self.bins.iter().sum()
    }

    /// Every value counted: bins plus NaN and infinities.
    pub fn total(&self) -> u64 {
        self.finite() + self.nan + self.neg_inf + self.pos_inf
    }

    /// The counts in slot order (bins, NaN, `-inf`, `+inf`): the vector PSI and JS compare.
    pub fn slots(&self) -> Vec<u64> {
        let mut slots = Vec::with_capacity(self.bins.len() + EXTRA_SLOTS);
        slots.extend_from_slice(&self.bins);
        slots.extend([self.nan, self.neg_inf, self.pos_inf]);
        slots
    }

    /// A column's counts from its slots in a flat array (`bins` bins, then the extra slots).
    pub(crate) fn from_slots(name: &str, slots: &[u64], bins: usize) -> ColumnCounts {
        let extra = |offset: usize| slots.get(bins + offset).copied().unwrap_or(0);
        ColumnCounts {
            name: name.to_owned(),
            bins: slots.iter().take(bins).copied().collect(),
            nan: extra(NAN_SLOT),
            neg_inf: extra(NEG_INF_SLOT),
            pos_inf: extra(POS_INF_SLOT),
        }
    }
}

impl WindowCounts {
    /// An empty window of the same layout as `self` (same profile, names and bins).
    pub fn empty_like(&self) -> WindowCounts {
        WindowCounts {
            profile_id: self.profile_id,
            rows: 0,
            batches: 0,
            columns: self
                .columns
                .iter()
                .map(|column| ColumnCounts {
                    name: column.name.clone(),
                    bins: vec![0; column.bins.len()],
                    nan: 0,
                    neg_inf: 0,
                    pos_inf: 0,
                })
                .collect(),
        }
    }

    /// Whether `other` has this window's profile, column names and bins.
    pub fn check_layout(&self, other: &WindowCounts) -> Result<(), CountsError> {
        if other.profile_id != self.profile_id {
            return Err(CountsError::Profile {
                expected: self.profile_id,
                actual: other.profile_id,
            });
        }
        if other.columns.len() != self.columns.len() {
            return Err(CountsError::Columns {
                expected: self.columns.len(),
                actual: other.columns.len(),
            });
        }
        let mismatch =
            self.columns
                .iter()
                .zip(&other.columns)
                .enumerate()
                .find(|(_, (ours, theirs))| {
                    ours.name != theirs.name || ours.bins.len() != theirs.bins.len()
                });
        if let Some((index, (ours, theirs))) = mismatch {
            return Err(CountsError::Layout {
                index,
                expected: ours.name.clone(),
                expected_bins: ours.bins.len(),
                actual: theirs.name.clone(),
                actual_bins: theirs.bins.len(),
            });
        }
        Ok(())
    }

    /// Adds `other`'s counts (another thread's, instance's or replica's window) to these.
    /// Counts wrap on overflow, as the counters do (2^64 values is centuries of traffic).
    pub fn merge(&mut self, other: &WindowCounts) -> Result<(), CountsError> {
        self.check_layout(other)?;
        self.rows = self.rows.wrapping_add(other.rows);
        self.batches = self.batches.wrapping_add(other.batches);
        for (ours, theirs) in self.columns.iter_mut().zip(&other.columns) {
            for (bin, add) in ours.bins.iter_mut().zip(&theirs.bins) {
                *bin = bin.wrapping_add(*add);
            }
            ours.nan = ours.nan.wrapping_add(theirs.nan);
            ours.neg_inf = ours.neg_inf.wrapping_add(theirs.neg_inf);
            ours.pos_inf = ours.pos_inf.wrapping_add(theirs.pos_inf);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn window(profile_id: u64, bins: &[u64], nan: u64) -> WindowCounts {
        WindowCounts {
            profile_id,
            rows: bins.iter().sum::<u64>() + nan,
            batches: 1,
            columns: vec![ColumnCounts {
                name: "x".into(),
                bins: bins.to_vec(),
                nan,
                neg_inf: 0,
                pos_inf: 0,
            }],
        }
    }

    #[test]
    fn merge_adds_and_checks_the_layout() {
        let mut total = window(7, &[1, 2, 3], 1);
        total.merge(&window(7, &[4, 0, 1], 2)).unwrap();
        assert_eq!(
            total,
            WindowCounts {
                batches: 2,
                ..window(7, &[5, 2, 4], 3)
            }
        );
        assert_eq!(total.columns[0].total(), 14);
        assert!(matches!(
            total.merge(&window(8, &[1, 1, 1], 0)),
            Err(CountsError::Profile { .. })
        ));
        let error = total.merge(&window(7, &[1, 1], 0)).unwrap_err();
        assert!(error.to_string().contains("3 bins"), "{error}");
    }

    #[test]
    fn serializes_round_trip() {
        let counts = window(7, &[1, 2, 3], 1);
        let text = serde_json::to_string(&counts).unwrap();
        assert_eq!(serde_json::from_str::<WindowCounts>(&text).unwrap(), counts);
    }
}
