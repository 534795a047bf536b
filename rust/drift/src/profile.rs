//! Reference profiles: what a column looked like in the reference data, as plain values the
//! Python loader builds once per model version (off the hot path) and the tracker and the
//! statistics read. `NumericProfile::from_values` and `CategoricalProfile::from_values` are the
//! one definition of how a profile is made, shared by tests and Python.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::bins::numeric_bin;
use crate::error::ProfileError;

/// A numeric column's reference: bin edges, counts per bin and the finite values' moments.
///
/// With interior edges `e_1 < ... < e_k` the `k + 1` bins are `(-inf, e_1)`, `[e_1, e_2)`, ...,
/// `[e_k, +inf)`: a value equal to an edge belongs to the bin that edge opens. NaN, `-inf` and
/// `+inf` are counted apart, never in a bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericProfile {
    /// Interior bin edges, finite and strictly increasing (may be empty: one bin).
    pub edges: Vec<f64>,
    /// Reference values per bin: `edges.len() + 1` entries.
    pub counts: Vec<u64>,
    /// Reference NaNs.
    pub nan: u64,
    /// Reference `-inf`s.
    pub neg_inf: u64,
    /// Reference `+inf`s.
    pub pos_inf: u64,
    /// Mean of the finite reference values.
    pub mean: f64,
    /// Population standard deviation (ddof 0) of the finite reference values.
    pub std: f64,
    /// Smallest finite reference value: where the Wasserstein distance places the lowest bin.
    pub min: f64,
    /// Largest finite reference value: where the Wasserstein distance places the highest bin.
    pub max: f64,
}

/// A low-cardinality integer column's reference: its most frequent values and the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalProfile {
    /// The tracked values (at most top-K), most frequent first.
    pub values: Vec<i64>,
    /// Reference rows per tracked value, in the order of `values`.
    pub counts: Vec<u64>,
    /// Reference rows with any other value.
    pub other: u64,
}

/// One monitored column's reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnProfile {
    /// Binned continuous values.
    Numeric(NumericProfile),
    /// Top-K integer values plus "other".
    Categorical(CategoricalProfile),
}

impl ColumnProfile {
    /// Bins this column counts into (finite bins, or categories plus "other").
    pub fn bins(&self) -> usize {
        match self {
            ColumnProfile::Numeric(profile) => profile.edges.len() + 1,
            ColumnProfile::Categorical(profile) => profile.values.len() + 1,
        }
    }

    /// Checks the profile's invariants; `column` names it in the error.
    pub fn validate(&self, column: &str) -> Result<(), ProfileError> {
        match self {
            ColumnProfile::Numeric(profile) => profile.validate(column),
            ColumnProfile::Categorical(profile) => profile.validate(column),
        }
    }
}

impl NumericProfile {
    /// The profile of `values` with at most `bins` bins.
    ///
    /// Edge rule: the interior edges are the quantiles at `i / bins` for `i` in `1..bins` of
    /// the finite values, computed as numpy's default (`np.quantile(x, q)`, method "linear");
    /// equal consecutive edges are merged into one, so a value repeated across several
    /// quantiles opens one bin `[v, next edge)` and the profile may have fewer than `bins`
    /// bins (a constant column has one edge at its value and two bins). NaN and infinities
    /// take no part in the edges or moments and are counted apart.
    pub fn from_values(column: &str, values: &[f64], bins: usize) -> Result<Self, ProfileError> {
        if bins == 0 {
            return Err(ProfileError::NoBins);
        }
        let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return Err(ProfileError::NoFiniteValues {
                column: column.to_owned(),
                values: values.len(),
            });
        }
        finite.sort_by(f64::total_cmp);
        let mut edges: Vec<f64> = (1..bins)
            .map(|i| quantile_linear(&finite, i as f64 / bins as f64))
            .collect();
        edges.dedup();
        let mut counts = vec![0u64; edges.len() + 1];
        for &value in &finite {
            counts[numeric_bin(&edges, value)] += 1;
        }
        let count = |predicate: fn(&f64) -> bool| values.iter().filter(|v| predicate(v)).count();
        let n = finite.len() as f64;
        let mean = finite.iter().sum::<f64>() / n;
        let variance = finite.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        Ok(NumericProfile {
            edges,
            counts,
            nan: count(|v| v.is_nan()) as u64,
            neg_inf: count(|v| *v == f64::NEG_INFINITY) as u64,
            pos_inf: count(|v| *v == f64::INFINITY) as u64,
            mean,
            std: variance.sqrt(),
            min: finite[0],
            max: finite[finite.len() - 1],
        })
    }

    /// Checks: finite strictly increasing edges, `edges.len() + 1` counts, at least one row,
    /// finite moments with `std >= 0` and `min <= max`.
    pub fn validate(&self, column: &str) -> Result<(), ProfileError> {
        for (index, &edge) in self.edges.iter().enumerate() {
            let increasing = index == 0 || edge > self.edges[index - 1];
            if !edge.is_finite() || !increasing {
                return Err(ProfileError::BadEdge {
                    column: column.to_owned(),
                    index,
                    edge,
                });
            }
        }
        if self.counts.len() != self.edges.len() + 1 {
            return Err(ProfileError::CountLength {
                column: column.to_owned(),
                what: "reference bin counts",
                actual: self.counts.len(),
                expected: self.edges.len() + 1,
                why: "one per bin: the number of edges + 1",
            });
        }
        let total = self.counts.iter().sum::<u64>() + self.nan + self.neg_inf + self.pos_inf;
        if total == 0 {
            return Err(ProfileError::EmptyReference {
                column: column.to_owned(),
            });
        }
        let moments = [
            ("mean", self.mean, self.mean.is_finite()),
            ("std", self.std, self.std.is_finite() && self.std >= 0.0),
            ("min", self.min, self.min.is_finite()),
            (
                "max",
                self.max,
                self.max.is_finite() && self.max >= self.min,
            ),
        ];
        for (what, value, fine) in moments {
            if !fine {
                return Err(ProfileError::BadMoment {
                    column: column.to_owned(),
                    what,
                    value,
                });
            }
        }
        Ok(())
    }

    /// Where each finite bin sits for the Wasserstein distance: the midpoint of its extent,
    /// the outer bins closed by the reference minimum and maximum (`(min + e_1) / 2`, ...,
    /// `(e_k + max) / 2`), clamped so the positions never decrease when `min`/`max` lie inside
    /// the outer edges' span.
    pub fn bin_positions(&self) -> Vec<f64> {
        let Some((&first, &last)) = self.edges.first().zip(self.edges.last()) else {
            return vec![(self.min + self.max) / 2.0];
        };
        let low = self.min.min(first);
        let high = self.max.max(last);
        let mut positions = Vec::with_capacity(self.edges.len() + 1);
        positions.push((low + first) / 2.0);
        positions.extend(self.edges.windows(2).map(|pair| (pair[0] + pair[1]) / 2.0));
        positions.push((last + high) / 2.0);
        positions
    }
}

impl CategoricalProfile {
    /// The profile of `values` keeping the `top_k` most frequent (ties: the smaller value
    /// first); every other value counts as "other".
    pub fn from_values(values: &[i64], top_k: usize) -> Result<Self, ProfileError> {
        if top_k == 0 {
            return Err(ProfileError::NoCategories);
        }
        let mut frequencies: HashMap<i64, u64> = HashMap::new();
        for &value in values {
            *frequencies.entry(value).or_default() += 1;
        }
        let mut ranked: Vec<(i64, u64)> = frequencies.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let other = ranked.iter().skip(top_k).map(|(_, count)| count).sum();
        ranked.truncate(top_k);
        Ok(CategoricalProfile {
            values: ranked.iter().map(|(value, _)| *value).collect(),
            counts: ranked.iter().map(|(_, count)| *count).collect(),
            other,
        })
    }

    /// Checks: one count per value, no value twice, at least one row.
    pub fn validate(&self, column: &str) -> Result<(), ProfileError> {
        if self.counts.len() != self.values.len() {
            return Err(ProfileError::CountLength {
                column: column.to_owned(),
                what: "reference category counts",
                actual: self.counts.len(),
                expected: self.values.len(),
                why: "one per tracked value",
            });
        }
        let mut sorted = self.values.clone();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(ProfileError::DuplicateCategory {
                column: column.to_owned(),
                value: pair[0],
            });
        }
        if self.counts.iter().sum::<u64>() + self.other == 0 {
            return Err(ProfileError::EmptyReference {
                column: column.to_owned(),
            });
        }
        Ok(())
    }
}

/// numpy's default quantile (method "linear") of sorted, finite, non-empty `sorted` at `q`,
/// with numpy's two-sided interpolation so the edges match it to the last bit.
fn quantile_linear(sorted: &[f64], q: f64) -> f64 {
    let virtual_index = (sorted.len() - 1) as f64 * q;
    let below = virtual_index.floor();
    // `below` is in 0..len-1: a floor of (len - 1) * q with q in [0, 1).
    let index = below as usize;
    let Some(&next) = sorted.get(index + 1) else {
        return sorted[sorted.len() - 1];
    };
    let value = sorted[index];
    let t = virtual_index - below;
    let difference = next - value;
    // numpy's `_lerp`: from below when t < 0.5, from above otherwise.
    if t >= 0.5 {
        next - difference * (1.0 - t)
    } else {
        value + difference * t
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quantile_edges_match_numpy_and_merge_ties() {
        // np.quantile(np.arange(10.0), [0.25, 0.5, 0.75]) == [2.25, 4.5, 6.75]
        let values: Vec<f64> = (0..10).map(f64::from).collect();
        let profile = NumericProfile::from_values("x", &values, 4).unwrap();
        assert_eq!(profile.edges, [2.25, 4.5, 6.75]);
        assert_eq!(profile.counts, [3, 2, 2, 3]);
        assert_eq!((profile.min, profile.max, profile.mean), (0.0, 9.0, 4.5));
        // A heavy value: quantiles 0.2..0.8 of [0,1,1,1,1,1,1,1,1,2] are all 1 -> one edge.
        let values = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0];
        let profile = NumericProfile::from_values("x", &values, 5).unwrap();
        assert_eq!(profile.edges, [1.0]);
        assert_eq!(profile.counts, [1, 9]);
    }

    #[test]
    fn non_finite_values_are_counted_apart() {
        let values = [
            f64::NAN,
            1.0,
            f64::INFINITY,
            2.0,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        let profile = NumericProfile::from_values("x", &values, 2).unwrap();
        assert_eq!((profile.nan, profile.neg_inf, profile.pos_inf), (2, 1, 1));
        assert_eq!(profile.edges, [1.5]);
        assert_eq!(profile.counts, [1, 1]);
        assert_eq!(profile.std, 0.5);
        assert!(matches!(
            NumericProfile::from_values("x", &[f64::NAN], 2),
            Err(ProfileError::NoFiniteValues { .. })
        ));
    }

    #[test]
    fn constant_column_has_two_bins() {
        let profile = NumericProfile::from_values("x", &[3.0; 5], 10).unwrap();
        assert_eq!(profile.edges, [3.0]);
        assert_eq!(profile.counts, [0, 5]);
        assert_eq!(profile.bin_positions(), [3.0, 3.0]);
        profile.validate("x").unwrap();
    }

    #[test]
    fn positions_are_midpoints_closed_by_min_and_max() {
        let profile = NumericProfile::from_values("x", &[0.0, 1.0, 2.0, 3.0, 4.0], 2).unwrap();
        assert_eq!(profile.edges, [2.0]);
        assert_eq!(profile.bin_positions(), [1.0, 3.0]);
    }

    #[test]
    fn categorical_keeps_top_k_and_counts_the_rest() {
        let profile = CategoricalProfile::from_values(&[5, 3, 3, 7, 7, 9, 9, 9], 2).unwrap();
        assert_eq!(profile.values, [9, 3]);
        assert_eq!(profile.counts, [3, 2]);
        assert_eq!(profile.other, 3);
        profile.validate("c").unwrap();
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let mut profile = NumericProfile::from_values("x", &[0.0, 1.0, 2.0], 3).unwrap();
        profile.edges.reverse();
        let message = profile.validate("age").unwrap_err().to_string();
        assert!(message.contains("'age'") && message.contains("strictly increasing"));
        let categorical = CategoricalProfile {
            values: vec![1, 1],
            counts: vec![1, 1],
            other: 0,
        };
        assert!(matches!(
            categorical.validate("c"),
            Err(ProfileError::DuplicateCategory { value: 1, .. })
        ));
    }
}
