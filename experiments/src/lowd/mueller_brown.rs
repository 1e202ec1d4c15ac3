//! The Müller–Brown density p ∝ exp(−V/kT), kT = 20, with the standard potential
//! V(x, y) = Σ_k A_k exp(a_k (x − x0_k)² + b_k (x − x0_k)(y − y0_k) + c_k (y − y0_k)²): three
//! basins of unequal depth joined by curved, narrow valleys.
//!
//! * Normalisation: log Z_true = log ∫ exp(−V/kT) by the midpoint rule on a 2,400² grid over
//!   the box x ∈ [−3.2, 1.5], y ∈ [−1.2, 3.2]: log Z_true = 5.36613, shares of the three basins
//!   0.806/0.129/0.065. The mass outside the box is 1.7e-9 (against a grid over [−5, 4] ×
//!   [−4, 5]; the far tails run along the deep basin's valley, to the upper left: the box
//!   [−2, 1.5] × [−1, 2.5] would lose 6e-4 of it at this temperature).
//!   log p(x) = −V(x)/kT − log Z_true anywhere, V being analytic.
//! * Sampler: a cell of that grid by inverse CDF over the cells' midpoint masses, then a point
//!   uniform in the cell. That draws the piecewise-constant density p̂ that agrees with p at the
//!   cell centres (cells 0.0020 × 0.0018); KL(p̂ ‖ p) is ≈ 2e-5 nats (the unit test below
//!   measures it), far below what a KL estimate from 20,000 draws resolves.
//! * Regions: the three basins, ordered by depth — 0 around (−0.558, 1.442), 1 around
//!   (0.623, 0.028), 2 around (−0.050, 0.467). A point's basin is the one that steepest descent
//!   reaches from its grid cell, descent taken on the same grid (each cell steps to the
//!   neighbour, of its 8, with the steepest drop, until none is lower), computed once for all
//!   cells; it is gradient descent from the cell centre up to the grid's resolution at the
//!   ridges between basins. Points outside the box, and any spurious grid minimum (none was
//!   found), go to the nearest of the three minima.
use super::Density;
use sance::model::rng::Rng;

/// The temperature of the density exp(−V/kT).
pub const KT: f64 = 20.0;
const A: [f64; 4] = [-200.0, -100.0, -170.0, 15.0];
const AA: [f64; 4] = [-1.0, -1.0, -6.5, 0.7];
const BB: [f64; 4] = [0.0, 0.0, 11.0, 0.6];
const CC: [f64; 4] = [-10.0, -10.0, -6.5, 0.7];
const X0: [f64; 4] = [1.0, 0.0, -0.5, -1.0];
const Y0: [f64; 4] = [0.0, 0.5, 1.5, 1.0];
/// The three minima, deepest first (the regions' order).
pub const MINIMA: [[f64; 2]; 3] = [[-0.558224, 1.441726], [0.623499, 0.028038], [-0.050011, 0.466694]];
/// The box of the normalisation, the sampler and the basin map, and the model's log Z grid.
pub const LO: [f64; 2] = [-3.2, -1.2];
pub const HI: [f64; 2] = [1.5, 3.2];
/// Cells a side of the normalisation/sampling/basin grid.
pub const N: usize = 2400;

/// The Müller–Brown potential.
pub fn potential(x: f64, y: f64) -> f64 {
    (0..4)
        .map(|k| {
            let (dx, dy) = (x - X0[k], y - Y0[k]);
            A[k] * (AA[k] * dx * dx + BB[k] * dx * dy + CC[k] * dy * dy).exp()
        })
        .sum()
}

/// The nearest of the three minima.
fn nearest_minimum(x: f64, y: f64) -> u8 {
    let d = |m: &[f64; 2]| (x - m[0]).powi(2) + (y - m[1]).powi(2);
    (0..3).min_by(|&a, &b| d(&MINIMA[a]).total_cmp(&d(&MINIMA[b]))).unwrap() as u8
}

pub struct MuellerBrown {
    h: [f64; 2],
    /// Cumulative cell masses, normalised to end at 1 (cell = j·N + i, x index i fastest).
    cdf: Vec<f64>,
    /// Each cell's basin.
    basin: Vec<u8>,
    /// log ∫ exp(−V/kT) over the box.
    pub log_z: f64,
    shares: Vec<f64>,
    /// The grid's local minima of V: (x, y) of the cell centre, and the basin it was given.
    pub grid_minima: Vec<([f64; 2], u8)>,
}

impl MuellerBrown {
    pub const NAME: &'static str = "mueller-brown";

    pub fn centre(&self, c: usize) -> [f64; 2] {
        [LO[0] + self.h[0] * ((c % N) as f64 + 0.5), LO[1] + self.h[1] * ((c / N) as f64 + 0.5)]
    }

    pub fn new() -> MuellerBrown {
        let h = [(HI[0] - LO[0]) / N as f64, (HI[1] - LO[1]) / N as f64];
        let mut mb =
            MuellerBrown { h, cdf: vec![], basin: vec![], log_z: 0.0, shares: vec![], grid_minima: vec![] };
        let v: Vec<f64> = (0..N * N)
            .map(|c| {
                let [x, y] = mb.centre(c);
                potential(x, y)
            })
            .collect();
        let v_min = v.iter().cloned().fold(f64::INFINITY, f64::min);
        // Basins: each cell steps to its steepest lower neighbour; paths are followed until a
        // cell already labelled or a local minimum, then labelled together.
        const UNSET: u8 = u8::MAX;
        let mut basin = vec![UNSET; N * N];
        let steepest = |c: usize| -> usize {
            let (i, j) = ((c % N) as i64, (c / N) as i64);
            let mut best = (0.0, c);
            for di in -1..=1i64 {
                for dj in -1..=1i64 {
                    let (a, b) = (i + di, j + dj);
                    if (di, dj) == (0, 0) || a < 0 || b < 0 || a >= N as i64 || b >= N as i64 {
                        continue;
                    }
                    let nb = b as usize * N + a as usize;
                    let dist = ((di as f64 * h[0]).powi(2) + (dj as f64 * h[1]).powi(2)).sqrt();
                    let slope = (v[c] - v[nb]) / dist;
                    if slope > best.0 {
                        best = (slope, nb);
                    }
                }
            }
            best.1
        };
        let mut path = Vec::new();
        for start in 0..N * N {
            let mut c = start;
            let label = loop {
                if basin[c] != UNSET {
                    break basin[c];
                }
                path.push(c);
                let next = steepest(c);
                if next == c {
                    let [x, y] = mb.centre(c);
                    let l = nearest_minimum(x, y);
                    mb.grid_minima.push(([x, y], l));
                    break l;
                }
                c = next;
            };
            for &p in &path {
                basin[p] = label;
            }
            path.clear();
        }
        let mut cdf = Vec::with_capacity(N * N);
        let mut mass = [0.0; 3];
        let mut acc = 0.0;
        for (c, vc) in v.iter().enumerate() {
            let w = (-(vc - v_min) / KT).exp();
            mass[basin[c] as usize] += w;
            acc += w;
            cdf.push(acc);
        }
        cdf.iter_mut().for_each(|c| *c /= acc);
        mb.log_z = acc.ln() + (h[0] * h[1]).ln() - v_min / KT;
        mb.shares = mass.iter().map(|m| m / acc).collect();
        mb.cdf = cdf;
        mb.basin = basin;
        mb
    }

    /// The grid cell holding (x, y), if inside the box.
    fn cell(&self, x: f64, y: f64) -> Option<usize> {
        let i = ((x - LO[0]) / self.h[0]).floor();
        let j = ((y - LO[1]) / self.h[1]).floor();
        (i >= 0.0 && j >= 0.0 && i < N as f64 && j < N as f64).then(|| j as usize * N + i as usize)
    }
}

impl Default for MuellerBrown {
    fn default() -> MuellerBrown {
        MuellerBrown::new()
    }
}

impl Density for MuellerBrown {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn dim(&self) -> usize {
        2
    }
    fn draw(&self, n: usize, rng: &mut Rng) -> Vec<f64> {
        let mut out = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let u = rng.uniform();
            let c = self.cdf.partition_point(|&f| f <= u).min(N * N - 1);
            let (i, j) = ((c % N) as f64, (c / N) as f64);
            out.push(LO[0] + self.h[0] * (i + rng.uniform()));
            out.push(LO[1] + self.h[1] * (j + rng.uniform()));
        }
        out
    }
    fn log_p(&self, x: &[f64]) -> f64 {
        -potential(x[0], x[1]) / KT - self.log_z
    }
    fn regions(&self) -> usize {
        3
    }
    fn region_of(&self, x: &[f64]) -> usize {
        match self.cell(x[0], x[1]) {
            Some(c) => self.basin[c] as usize,
            None => nearest_minimum(x[0], x[1]) as usize,
        }
    }
    fn truth_shares(&self) -> Vec<f64> {
        self.shares.clone()
    }
    fn bounds(&self) -> (Vec<f64>, Vec<f64>) {
        (LO.to_vec(), HI.to_vec())
    }
    fn note(&self) -> String {
        format!(
            "kT = {KT}; log Z_true = log ∫ exp(−V/kT) = {:.5} ({N}² midpoint grid over the box); \
             sampler: a grid cell by inverse CDF, uniform within it; regions: basins by steepest \
             descent on that grid ({} grid minima)",
            self.log_z,
            self.grid_minima.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basins_minima_and_discretisation() {
        let mb = MuellerBrown::new();
        // Exactly three grid minima, one at each true minimum (within a cell).
        assert_eq!(mb.grid_minima.len(), 3, "{:?}", mb.grid_minima);
        for (p, l) in &mb.grid_minima {
            let m = MINIMA[*l as usize];
            assert!((p[0] - m[0]).abs() < 2.0 * mb.h[0] && (p[1] - m[1]).abs() < 2.0 * mb.h[1], "{p:?}");
        }
        eprintln!("mueller-brown: log Z_true {:.6}, shares {:?}", mb.log_z, mb.shares);
        // The mass outside the box: the normalisation over a box twice as wide, finer than
        // needed for the tails (which are smooth).
        let (lo, hi) = ([-5.0, -4.0], [4.0, 5.0]);
        let n = 4500;
        let h = [(hi[0] - lo[0]) / n as f64, (hi[1] - lo[1]) / n as f64];
        let (mut inside, mut all) = (0.0, 0.0);
        for j in 0..n {
            for i in 0..n {
                let (x, y) = (lo[0] + h[0] * (i as f64 + 0.5), lo[1] + h[1] * (j as f64 + 0.5));
                let w = (-(potential(x, y) - potential(MINIMA[0][0], MINIMA[0][1])) / KT).exp();
                all += w;
                if x > LO[0] && x < HI[0] && y > LO[1] && y < HI[1] {
                    inside += w;
                }
            }
        }
        let lost = 1.0 - inside / all;
        eprintln!("mueller-brown: mass outside the box {lost:.2e}");
        assert!(lost < 1e-6);
        // KL(p̂ ‖ p) of the sampler's piecewise-constant density, 4 × 4 points a cell.
        let v_min = potential(MINIMA[0][0], MINIMA[0][1]);
        let mut kl = 0.0;
        for c in 0..N * N {
            let [x, y] = mb.centre(c);
            let vc = potential(x, y);
            let m = (-(vc - v_min) / KT - mb.log_z - v_min / KT).exp() * mb.h[0] * mb.h[1];
            if m < 1e-14 {
                continue;
            }
            let mut s = 0.0;
            for a in 0..4 {
                for b in 0..4 {
                    let dx = ((a as f64 + 0.5) / 4.0 - 0.5) * mb.h[0];
                    let dy = ((b as f64 + 0.5) / 4.0 - 0.5) * mb.h[1];
                    s += (potential(x + dx, y + dy) - vc) / KT / 16.0;
                }
            }
            kl += m * s;
        }
        eprintln!("mueller-brown: KL(sampler ‖ p) ≈ {kl:.2e}");
        assert!(kl.abs() < 1e-4);
    }
}
