//! Systematic resampling, shared by the population's refresh (crate::model::ebm), the
//! draws from the population and the tempered SMC (crate::model::smc).

/// Systematic resampling: `n` indices into `log_w` (unnormalised log weights), each i drawn
/// in proportion to exp(log_w[i]), from one uniform `u` in [0, 1): index j is taken
/// ⌊n·W_j⌋ or ⌈n·W_j⌉ times (W the normalised weights), the least noise a resampling adds.
/// Non-finite or all −∞ weights give the identity on the first `n` rows.
pub fn systematic(log_w: &[f64], n: usize, u: f64) -> Vec<i64> {
    let m = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() || log_w.iter().any(|v| v.is_nan()) {
        return (0..n.min(log_w.len()) as i64).collect();
    }
    let w: Vec<f64> = log_w.iter().map(|v| (v - m).exp()).collect();
    let total: f64 = w.iter().sum();
    let mut idx = Vec::with_capacity(n);
    let (mut acc, mut j) = (w[0] / total, 0usize);
    for i in 0..n {
        let target = (i as f64 + u) / n as f64;
        while target > acc && j + 1 < w.len() {
            j += 1;
            acc += w[j] / total;
        }
        idx.push(j as i64);
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::systematic;
    use crate::model::rng::Rng;

    /// Copies of each item that systematic resampling must give, computed another way: the
    /// i-th pointer (i + u)/n lands on item j when C_{j−1} < (i + u)/n ≤ C_j (C the cumulative
    /// normalised weights), so item j gets F(C_j) − F(C_{j−1}) copies, F(c) the number of
    /// pointers at or below c; the last item takes what rounding leaves of the total.
    fn expected_counts(log_w: &[f64], n: usize, u: f64) -> Vec<usize> {
        let w: Vec<f64> = log_w.iter().map(|v| v.exp()).collect();
        let total: f64 = w.iter().sum();
        let f = |c: f64| ((n as f64 * c - u).floor() + 1.0).clamp(0.0, n as f64) as usize;
        let mut c = 0.0;
        let mut below = 0;
        let mut counts = Vec::new();
        for (j, wj) in w.iter().enumerate() {
            c += wj / total;
            let upto = if j + 1 == w.len() { n } else { f(c) };
            counts.push(upto - below);
            below = upto;
        }
        counts
    }

    #[test]
    fn systematic_resampling_matches_its_pointer_counts() {
        let mut rng = Rng::new(3);
        for (len, n, spread) in [(10, 10, 1.0), (50, 200, 3.0), (300, 64, 0.5), (8192, 8192, 2.0)] {
            for u in [0.0, 0.37, 0.999] {
                let mut log_w: Vec<f64> = (0..len).map(|_| spread * rng.normal()).collect();
                // Items of weight zero are never drawn.
                log_w[len / 2] = f64::NEG_INFINITY;
                let idx = systematic(&log_w, n, u);
                assert_eq!(idx.len(), n);
                assert!(idx.windows(2).all(|p| p[0] <= p[1]), "indices in order");
                let mut counts = vec![0usize; len];
                for &i in &idx {
                    counts[i as usize] += 1;
                }
                assert_eq!(counts, expected_counts(&log_w, n, u), "len {len}, n {n}, u {u}");
                assert_eq!(counts[len / 2], 0, "an item of weight zero was drawn");
                // Each item's copies are n·w_j rounded up or down: the scheme's low variance.
                let m = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let total: f64 = log_w.iter().map(|v| (v - m).exp()).sum();
                for (j, &k) in counts.iter().enumerate() {
                    let share = n as f64 * (log_w[j] - m).exp() / total;
                    assert!((k as f64 - share).abs() < 1.0 + 1e-9, "item {j}: {k} copies for n·w = {share}");
                }
            }
        }
    }

    /// Weights that are not numbers, or all zero, leave the population as it is (the first n
    /// items, in order): what the refresh does when the snapshots' energies are not finite.
    #[test]
    fn weights_that_are_not_numbers_keep_the_population() {
        assert_eq!(systematic(&[0.0, f64::NAN, 1.0], 3, 0.5), vec![0, 1, 2]);
        assert_eq!(systematic(&[f64::NEG_INFINITY; 4], 2, 0.5), vec![0, 1]);
        assert_eq!(systematic(&[0.0, f64::INFINITY], 2, 0.5), vec![0, 1]);
    }
}
