//! The one grid normaliser of the experiments: log ∫ exp(f) over a box by the midpoint rule,
//! and a model's log Z = log ∫ exp(−E) with the share of its mass in each part of the box.
//! sance-toy (the 2-D models' log Z on a grid wide enough to see mass outside the data's box),
//! sance-lowd (log Z of 2- and 3-D models, and the truth's own integral as a check of the
//! grid) and the claim tests all measure with it. Mass outside the box is lost: it counts
//! against the model.
use sance::Ebm;
use tch::Kind;

/// Cell centres per call of the integrand: a few MB of activations for the MLPs measured.
const CHUNK: usize = 65_536;

/// log Σ exp(v), stable; −∞ for an empty or all −∞ slice.
pub fn logsumexp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// A model's energies at the n points `x` (n × dim, f32 as the model sees them), in f64.
pub fn energies(ebm: &Ebm, x: &[f32], dim: usize) -> Vec<f64> {
    let t = ebm.tensor_from(x, x.len() / dim).expect("points as a tensor");
    Vec::<f64>::try_from(ebm.energy(&t).expect("energies").to_kind(Kind::Double)).expect("energies to host")
}

/// The box Π [lo_i, hi_i] cut into `per` cells a side.
#[derive(Clone, Debug)]
pub struct Grid {
    lo: Vec<f64>,
    hi: Vec<f64>,
    per: usize,
}

/// A model's mass on a grid: log Z and the share of each part (summed per part, so that a
/// tiny share keeps its digits).
#[derive(Clone, Debug)]
pub struct Mass {
    pub log_z: f64,
    pub shares: Vec<f64>,
    /// E_q[log q] over the grid's cells, q = exp(−E)/Z: the mean log-density exact draws of the
    /// model would have.
    pub mean_log_q: f64,
}

impl Grid {
    pub fn new(lo: &[f64], hi: &[f64], per: usize) -> Grid {
        assert_eq!(lo.len(), hi.len(), "a box needs as many upper bounds as lower ones");
        assert!(per > 0 && lo.iter().zip(hi).all(|(l, h)| l < h), "an empty grid");
        Grid { lo: lo.to_vec(), hi: hi.to_vec(), per }
    }

    /// [−w, w]^dim.
    pub fn cube(dim: usize, w: f64, per: usize) -> Grid {
        Grid::new(&vec![-w; dim], &vec![w; dim], per)
    }

    /// The box widened by half its width on each side (twice as wide), `per` cells a side.
    pub fn widened(&self, per: usize) -> Grid {
        let lo: Vec<f64> = self.lo.iter().zip(&self.hi).map(|(l, h)| l - (h - l) / 2.0).collect();
        let hi: Vec<f64> = self.lo.iter().zip(&self.hi).map(|(l, h)| h + (h - l) / 2.0).collect();
        Grid::new(&lo, &hi, per)
    }

    pub fn dim(&self) -> usize {
        self.lo.len()
    }

    /// A cell's width along each coordinate.
    fn widths(&self) -> Vec<f64> {
        self.lo.iter().zip(&self.hi).map(|(l, u)| (u - l) / self.per as f64).collect()
    }

    /// log of a cell's volume (a cube's as D · ln h, to the last bit).
    pub fn log_cell(&self) -> f64 {
        let h = self.widths();
        if h.iter().all(|&v| v == h[0]) {
            self.dim() as f64 * h[0].ln()
        } else {
            h.iter().map(|h| h.ln()).sum()
        }
    }

    /// Calls `f` with the cell centres (f32, the points a model sees; the first coordinate
    /// varies fastest) in chunks of up to 65,536 points, row-major.
    pub fn for_each_chunk(&self, mut f: impl FnMut(&[f32])) {
        let (dim, per, h) = (self.dim(), self.per, self.widths());
        let cells = per.pow(dim as u32);
        let mut x = Vec::with_capacity(CHUNK.min(cells) * dim);
        for i in 0..cells {
            let mut r = i;
            for (lo, h) in self.lo.iter().zip(&h) {
                x.push((lo + h * ((r % per) as f64 + 0.5)) as f32);
                r /= per;
            }
            if x.len() == CHUNK * dim || i + 1 == cells {
                f(&x);
                x.clear();
            }
        }
    }

    /// log ∫ exp(f) over the box: `log_f` gets a chunk of cell centres and returns f at each.
    pub fn log_integral(&self, mut log_f: impl FnMut(&[f32]) -> Vec<f64>) -> f64 {
        let mut parts = Vec::new();
        self.for_each_chunk(|x| parts.push(logsumexp(&log_f(x))));
        logsumexp(&parts) + self.log_cell()
    }

    /// The model's log Z over the box.
    pub fn log_z(&self, ebm: &Ebm) -> f64 {
        let dim = self.dim();
        self.log_integral(|x| energies(ebm, x, dim).iter().map(|e| -e).collect())
    }

    /// The model's log Z over the box, and its mass split into `parts` by `part` (the part of
    /// a cell, from its centre).
    pub fn mass(&self, ebm: &Ebm, parts: usize, part: impl Fn(&[f32]) -> usize) -> Mass {
        let dim = self.dim();
        let (mut log_q, mut part_of) = (Vec::new(), Vec::new());
        self.for_each_chunk(|x| {
            log_q.extend(energies(ebm, x, dim).iter().map(|e| -e));
            part_of.extend(x.chunks(dim).map(&part));
        });
        let log_cell = self.log_cell();
        let log_z = logsumexp(&log_q) + log_cell;
        let mut shares = vec![0.0; parts];
        let mut mean_log_q = 0.0;
        for (lq, k) in log_q.iter().zip(&part_of) {
            let lp = lq - log_z; // log q(x), normalised
            let p = (lp + log_cell).exp(); // the cell's mass
            shares[*k] += p;
            mean_log_q += p * lp;
        }
        Mass { log_z, shares, mean_log_q }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrates_a_gaussian() {
        // ∫ exp(−‖x‖²/2) over R² is 2π; [−8, 8]² loses nothing at f64 precision.
        let g = Grid::cube(2, 8.0, 400);
        let log_i = g.log_integral(|x| {
            x.chunks(2).map(|p| -0.5 * (p[0] as f64).powi(2) - 0.5 * (p[1] as f64).powi(2)).collect()
        });
        assert!((log_i - (2.0 * std::f64::consts::PI).ln()).abs() < 1e-6, "{log_i}");
        // An uneven box: ∫ over [0, 8] × [−8, 8] is half of it.
        let g = Grid::new(&[0.0, -8.0], &[8.0, 8.0], 400);
        let log_h = g.log_integral(|x| {
            x.chunks(2).map(|p| -0.5 * (p[0] as f64).powi(2) - 0.5 * (p[1] as f64).powi(2)).collect()
        });
        assert!((log_h - std::f64::consts::PI.ln()).abs() < 1e-3, "{log_h}");
    }

    #[test]
    fn logsumexp_of_nothing_is_minus_infinity() {
        assert_eq!(logsumexp(&[]), f64::NEG_INFINITY);
        assert_eq!(logsumexp(&[f64::NEG_INFINITY, 0.0]), 0.0);
    }
}
