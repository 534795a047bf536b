//! The drift statistics, computed off the hot path from binned counts (reference vs current,
//! same bins). Each returns `None` when a side has no values (or, for the normalised
//! Wasserstein distance, when the reference has no spread). Each is checked against scipy or
//! numpy on the same binned data in the tests.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The proportion PSI (and the chi-squared expectation) puts in an empty bin instead of 0, so
/// `ln(c / r)` stays finite: 1e-4, as Evidently and most PSI write-ups use. A bin empty on both
/// sides adds nothing; a bin empty on one side adds about `p * ln(p / 1e-4)`.
pub const PSI_EPSILON: f64 = 1e-4;

/// Proportions of `counts`, or `None` when they sum to 0.
fn proportions(counts: &[u64]) -> Option<Vec<f64>> {
    let total: u64 = counts.iter().sum();
    (total > 0).then(|| counts.iter().map(|&c| c as f64 / total as f64).collect())
}

/// Population stability index: `sum((c_i - r_i) * ln(c_i / r_i))` over the proportions, each
/// floored at `PSI_EPSILON` (not renormalised). numpy:
/// `r, c = np.maximum(ref / ref.sum(), 1e-4), np.maximum(cur / cur.sum(), 1e-4)`,
/// `np.sum((c - r) * np.log(c / r))`.
pub fn psi(reference: &[u64], current: &[u64]) -> Option<f64> {
    let reference = proportions(reference)?;
    let current = proportions(current)?;
    Some(
        reference
            .iter()
            .zip(&current)
            .map(|(&r, &c)| {
                let (r, c) = (r.max(PSI_EPSILON), c.max(PSI_EPSILON));
                (c - r) * (c / r).ln()
            })
            .sum(),
    )
}

/// Jensen-Shannon distance, base 2 (in [0, 1]): the square root of the mean of the two
/// Kullback-Leibler divergences to the midpoint distribution, as
/// `scipy.spatial.distance.jensenshannon(ref, cur, base=2)` (which normalises the counts).
pub fn jensen_shannon(reference: &[u64], current: &[u64]) -> Option<f64> {
    let p = proportions(reference)?;
    let q = proportions(current)?;
    let relative_entropy = |x: f64, m: f64| if x > 0.0 { x * (x / m).ln() } else { 0.0 };
    let divergence: f64 = p
        .iter()
        .zip(&q)
        .map(|(&p, &q)| {
            let m = (p + q) / 2.0;
            relative_entropy(p, m) + relative_entropy(q, m)
        })
        .sum();
    Some((divergence / std::f64::consts::LN_2 / 2.0).max(0.0).sqrt())
}

/// Kolmogorov-Smirnov statistic of the binned distributions: the largest gap between the two
/// cumulative proportions at the bin boundaries (`np.max(np.abs(np.cumsum(r) - np.cumsum(c)))`
/// over the proportions). Only ordered bins mean anything here (numeric columns).
pub fn kolmogorov_smirnov(reference: &[u64], current: &[u64]) -> Option<f64> {
    let p = proportions(reference)?;
    let q = proportions(current)?;
    let (mut cp, mut cq, mut largest) = (0.0f64, 0.0f64, 0.0f64);
    for (p, q) in p.iter().zip(&q) {
        cp += p;
        cq += q;
        largest = largest.max((cp - cq).abs());
    }
    Some(largest)
}

/// Wasserstein-1 distance between the binned distributions with bin `i` placed at
/// `positions[i]` (non-decreasing), divided by `scale` (the reference standard deviation):
/// `sum_i |R_i - C_i| * (x_{i+1} - x_i) / scale` with `R`, `C` the cumulative proportions,
/// as `scipy.stats.wasserstein_distance(x, x, ref, cur) / scale`. `None` when `scale` is 0
/// or not finite.
pub fn wasserstein(
    positions: &[f64],
    reference: &[u64],
    current: &[u64],
    scale: f64,
) -> Option<f64> {
    if !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    let p = proportions(reference)?;
    let q = proportions(current)?;
    let (mut cp, mut cq, mut distance) = (0.0f64, 0.0f64, 0.0f64);
    for (i, (p, q)) in p.iter().zip(&q).enumerate() {
        cp += p;
        cq += q;
        if let (Some(&here), Some(&next)) = (positions.get(i), positions.get(i + 1)) {
            distance += (cp - cq).abs() * (next - here);
        }
    }
    Some(distance / scale)
}

/// Pearson's chi-squared test of the current counts against the reference proportions: the
/// expected proportions are the reference's floored at `PSI_EPSILON` and renormalised (a
/// value never seen in the reference would otherwise expect 0), times the current total.
/// Returns the statistic and its p-value with `bins - 1` degrees of freedom, as
/// `scipy.stats.chisquare(cur, f_exp)`. `None` with fewer than 2 bins.
pub fn chi_squared(reference: &[u64], current: &[u64]) -> Option<(f64, f64)> {
    if reference.len() < 2 {
        return None;
    }
    let floored: Vec<f64> = proportions(reference)?
        .into_iter()
        .map(|r| r.max(PSI_EPSILON))
        .collect();
    let norm: f64 = floored.iter().sum();
    let total: u64 = current.iter().sum();
    if total == 0 {
        return None;
    }
    let statistic: f64 = floored
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let expected = total as f64 * r / norm;
            let gap = c as f64 - expected;
            gap * gap / expected
        })
        .sum();
    let p_value = ChiSquared::new((reference.len() - 1) as f64)
        .map(|distribution| distribution.sf(statistic))
        .ok()?;
    Some((statistic, p_value))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Expected values computed with numpy 2 / scipy on the same counts (snippet below).
    //!
    //! ```python
    //! import numpy as np
    //! from scipy.spatial.distance import jensenshannon
    //! from scipy.stats import wasserstein_distance, chisquare
    //! ref = np.array([120, 340, 560, 410, 230, 90, 0, 25], float)
    //! cur = np.array([80, 300, 610, 450, 260, 140, 12, 0], float)
    //! r, c = ref / ref.sum(), cur / cur.sum()
    //! R, C = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
    //! print(repr(np.sum((C - R) * np.log(C / R))))                       # PSI
    //! print(repr(jensenshannon(ref, cur, base=2)))                       # JS
    //! print(repr(np.max(np.abs(np.cumsum(r) - np.cumsum(c)))))           # KS
    //! x = np.array([-2.5, -1.2, -0.4, 0.0, 0.35, 1.1, 2.0, 3.7])
    //! print(repr(wasserstein_distance(x, x, ref, cur) / 1.3))            # W1 / std
    //! e = np.maximum(r, 1e-4); e = e / e.sum() * cur.sum()
    //! print(chisquare(cur, e))                                           # chi2, p
    //! ref = np.array([500, 300, 150, 50], float); cur = np.array([480, 320, 140, 60], float)
    //! e = np.maximum(ref / ref.sum(), 1e-4); e = e / e.sum() * cur.sum()
    //! print(chisquare(cur, e))                                           # chi2, p
    //! ```
    use super::*;

    const REFERENCE: [u64; 8] = [120, 340, 560, 410, 230, 90, 0, 25];
    const CURRENT: [u64; 8] = [80, 300, 610, 450, 260, 140, 12, 0];
    const POSITIONS: [f64; 8] = [-2.5, -1.2, -0.4, 0.0, 0.35, 1.1, 2.0, 3.7];

    const CATEGORY_REFERENCE: [u64; 4] = [500, 300, 150, 50];
    const CATEGORY_CURRENT: [u64; 4] = [480, 320, 140, 60];
    const EXPECTED_PSI: f64 = 0.12370131751151098;
    const EXPECTED_JS: f64 = 0.12362941485786322;
    const EXPECTED_KS: f64 = 0.05397134426428982;
    const EXPECTED_WASSERSTEIN: f64 = 0.11117728133211958;
    const EXPECTED_CHI2: f64 = 831.2444055933877;
    const EXPECTED_CHI2_P: f64 = 3.3523957597787136e-175;
    const EXPECTED_CATEGORY_CHI2: f64 = 4.8;
    const EXPECTED_CATEGORY_CHI2_P: f64 = 0.1870417489049077;

    fn close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("a value");
        assert!(
            (actual - expected).abs() <= 1e-9,
            "{actual} != {expected} (diff {})",
            actual - expected
        );
    }

    #[test]
    fn psi_matches_numpy() {
        close(psi(&REFERENCE, &CURRENT), EXPECTED_PSI);
        close(psi(&REFERENCE, &REFERENCE), 0.0);
        assert_eq!(psi(&[0, 0], &[1, 1]), None);
    }

    #[test]
    fn jensen_shannon_matches_scipy() {
        close(jensen_shannon(&REFERENCE, &CURRENT), EXPECTED_JS);
        close(jensen_shannon(&[1, 0], &[0, 1]), 1.0);
        close(jensen_shannon(&REFERENCE, &REFERENCE), 0.0);
    }

    #[test]
    fn kolmogorov_smirnov_matches_numpy() {
        close(kolmogorov_smirnov(&REFERENCE, &CURRENT), EXPECTED_KS);
    }

    #[test]
    fn wasserstein_matches_scipy() {
        close(
            wasserstein(&POSITIONS, &REFERENCE, &CURRENT, 1.3),
            EXPECTED_WASSERSTEIN,
        );
        assert_eq!(wasserstein(&POSITIONS, &REFERENCE, &CURRENT, 0.0), None);
    }

    #[test]
    fn chi_squared_matches_scipy() {
        let (statistic, p_value) = chi_squared(&REFERENCE, &CURRENT).expect("a value");
        close(Some(statistic), EXPECTED_CHI2);
        close(Some(p_value), EXPECTED_CHI2_P);
        let (statistic, p_value) =
            chi_squared(&CATEGORY_REFERENCE, &CATEGORY_CURRENT).expect("a value");
        close(Some(statistic), EXPECTED_CATEGORY_CHI2);
        close(Some(p_value), EXPECTED_CATEGORY_CHI2_P);
    }
}
