//! The low-dimensional densities of `sance-lowd` (and of the suite's test of the defaults,
//! tests/defaults_learn_densities.rs, which includes this file): a correlated 2-D Gaussian and
//! mixtures of anisotropic Gaussians with unequal weights in 2–5 dimensions, known exactly,
//! and the measures taken against them. (`sance-lowd` sees them, and its other sets, through
//! density.rs's `Density`; the log Z grid here takes any box.)
#![allow(dead_code)]
use sance::model::rng::Rng;
use sance::Ebm;
use tch::Kind;

/// A model's energies at the n points `x` (n × dim).
pub fn energies(ebm: &Ebm, x: &[f32], dim: usize) -> Vec<f64> {
    let t = ebm.tensor_from(x, x.len() / dim).unwrap();
    Vec::<f64>::try_from(ebm.energy(&t).unwrap().to_kind(Kind::Double)).unwrap()
}

/// log Z by the midpoint rule over [−w, w]^D with `per` cells a side, in chunks of 65,536
/// points (mass outside the box is lost).
pub fn grid_log_z(ebm: &Ebm, dim: usize, w: f64, per: usize) -> f64 {
    grid_log_z_box(ebm, &vec![-w; dim], &vec![w; dim], per)
}

/// log Z by the midpoint rule over the box Π [lo_i, hi_i] with `per` cells a side (mass outside
/// the box is lost).
pub fn grid_log_z_box(ebm: &Ebm, lo: &[f64], hi: &[f64], per: usize) -> f64 {
    let dim = lo.len();
    grid_log_integral(lo, hi, per, |x| energies(ebm, x, dim).iter().map(|e| -e).collect())
}

/// log ∫ exp(f) over the box Π [lo_i, hi_i] by the midpoint rule with `per` cells a side:
/// `log_f` gets the cell centres (as f32, the points a model sees; the first coordinate
/// varies fastest) in chunks of up to 65,536 points, row-major, and returns f at each.
pub fn grid_log_integral(
    lo: &[f64],
    hi: &[f64],
    per: usize,
    mut log_f: impl FnMut(&[f32]) -> Vec<f64>,
) -> f64 {
    let dim = lo.len();
    assert_eq!(dim, hi.len(), "a box needs as many upper bounds as lower ones");
    let h: Vec<f64> = lo.iter().zip(hi).map(|(l, u)| (u - l) / per as f64).collect();
    let cells = per.pow(dim as u32);
    let mut parts = Vec::new();
    let mut x = Vec::new();
    for i in 0..cells {
        let mut r = i;
        for k in 0..dim {
            x.push((lo[k] + h[k] * ((r % per) as f64 + 0.5)) as f32);
            r /= per;
        }
        if x.len() == 65_536 * dim || i + 1 == cells {
            parts.push(logsumexp(&log_f(&x)));
            x.clear();
        }
    }
    // A cube's cell volume as before boxes (D · ln h), to the last bit.
    let log_cell =
        if h.iter().all(|&v| v == h[0]) { dim as f64 * h[0].ln() } else { h.iter().map(|h| h.ln()).sum() };
    logsumexp(&parts) + log_cell
}

/// A mixture of Gaussians N(μ_k, L_k L_kᵀ) with weights w_k.
pub struct Mixture {
    pub name: &'static str,
    pub dim: usize,
    pub weights: Vec<f64>,
    pub means: Vec<Vec<f64>>,
    /// Lower-triangular Cholesky factors, row-major D×D.
    pub chol: Vec<Vec<f64>>,
}

/// A random rotation times a diagonal of stds, as a Cholesky factor of the covariance.
fn factor(d: usize, stds: &[f64], rng: &mut Rng) -> Vec<f64> {
    // Covariance R diag(s²) Rᵀ with R from Gram–Schmidt on a Gaussian matrix.
    let mut r: Vec<Vec<f64>> = (0..d).map(|_| (0..d).map(|_| rng.normal()).collect()).collect();
    for i in 0..d {
        for j in 0..i {
            let rj = r[j].clone();
            let dot: f64 = r[i].iter().zip(&rj).map(|(a, b)| a * b).sum();
            for (a, b) in r[i].iter_mut().zip(&rj) {
                *a -= dot * b;
            }
        }
        let n = r[i].iter().map(|v| v * v).sum::<f64>().sqrt();
        r[i].iter_mut().for_each(|v| *v /= n);
    }
    let mut cov = vec![0.0; d * d];
    for a in 0..d {
        for b in 0..d {
            cov[a * d + b] = (0..d).map(|k| r[k][a] * stds[k] * stds[k] * r[k][b]).sum();
        }
    }
    cholesky(&cov, d)
}

fn cholesky(a: &[f64], d: usize) -> Vec<f64> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            l[i * d + j] = if i == j { (a[i * d + i] - s).sqrt() } else { (a[i * d + j] - s) / l[j * d + j] };
        }
    }
    l
}

pub fn sets() -> Vec<Mixture> {
    let mut rng = Rng::new(2026);
    let mut out = vec![Mixture {
        name: "gauss2-corr",
        dim: 2,
        weights: vec![1.0],
        means: vec![vec![1.0, -0.5]],
        chol: vec![cholesky(&[2.0, 1.2, 1.2, 1.0], 2)],
    }];
    let mut mix = |name, dim: usize, weights: Vec<f64>, means: Vec<Vec<f64>>, stds: Vec<Vec<f64>>| {
        let chol = stds.iter().map(|s| factor(dim, s, &mut rng)).collect();
        out.push(Mixture { name, dim, weights, means, chol });
    };
    mix(
        "mix2-2",
        2,
        vec![0.7, 0.3],
        vec![vec![-2.0, 0.5], vec![2.0, -1.0]],
        vec![vec![0.8, 0.3], vec![0.5, 0.25]],
    );
    mix(
        "mix3-3a",
        3,
        vec![0.5, 0.25, 0.25],
        vec![vec![-2.0, 0.0, 1.0], vec![2.0, 1.5, -1.0], vec![0.5, -2.5, 0.0]],
        vec![vec![0.9, 0.5, 0.3], vec![0.6, 0.4, 0.2], vec![0.8, 0.3, 0.3]],
    );
    mix(
        "mix3-3b",
        3,
        vec![0.45, 0.35, 0.20],
        vec![vec![2.5, 0.0, 0.0], vec![-1.5, 2.0, 0.5], vec![-1.0, -2.0, -1.0]],
        vec![vec![1.0, 0.4, 0.3], vec![0.7, 0.5, 0.25], vec![0.5, 0.5, 0.3]],
    );
    mix(
        "mix5-4",
        5,
        vec![0.4, 0.3, 0.2, 0.1],
        vec![
            vec![2.0, 0.0, 0.0, 1.0, 0.0],
            vec![-2.0, 1.0, 0.0, 0.0, 0.5],
            vec![0.0, -2.0, 1.5, 0.0, 0.0],
            vec![0.0, 1.0, -2.0, -1.0, 0.0],
        ],
        vec![
            vec![0.8, 0.5, 0.4, 0.3, 0.3],
            vec![0.6, 0.4, 0.4, 0.3, 0.2],
            vec![0.7, 0.5, 0.3, 0.3, 0.3],
            vec![0.5, 0.4, 0.3, 0.3, 0.2],
        ],
    );
    out
}

impl Mixture {
    pub fn sample(&self, n: usize, rng: &mut Rng) -> Vec<f32> {
        self.sample_f64(n, rng).into_iter().map(|v| v as f32).collect()
    }

    /// `sample`'s draws before they are rounded to f32 (the same draws of `rng`).
    pub fn sample_f64(&self, n: usize, rng: &mut Rng) -> Vec<f64> {
        let d = self.dim;
        let mut v = Vec::with_capacity(n * d);
        for _ in 0..n {
            let u = rng.uniform();
            let mut k = 0;
            let mut acc = self.weights[0];
            while u > acc && k + 1 < self.weights.len() {
                k += 1;
                acc += self.weights[k];
            }
            let z: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            for i in 0..d {
                let s: f64 = (0..=i).map(|j| self.chol[k][i * d + j] * z[j]).sum();
                v.push(self.means[k][i] + s);
            }
        }
        v
    }

    /// log of each component's weighted density at x.
    pub fn component_logs(&self, x: &[f32]) -> Vec<f64> {
        self.component_logs_f64(&x.iter().map(|&v| v as f64).collect::<Vec<_>>())
    }

    /// `component_logs` at a point given in f64.
    pub fn component_logs_f64(&self, x: &[f64]) -> Vec<f64> {
        let d = self.dim;
        (0..self.weights.len())
            .map(|k| {
                let l = &self.chol[k];
                // Solve L u = x − μ.
                let mut u = vec![0.0; d];
                let mut logdet = 0.0;
                for i in 0..d {
                    let s: f64 = (0..i).map(|j| l[i * d + j] * u[j]).sum();
                    u[i] = (x[i] - self.means[k][i] - s) / l[i * d + i];
                    logdet += l[i * d + i].ln();
                }
                self.weights[k].ln()
                    - 0.5 * u.iter().map(|v| v * v).sum::<f64>()
                    - logdet
                    - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln()
            })
            .collect()
    }
}

pub fn logsumexp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

impl Mixture {
    /// The component whose weighted density is largest at x: the regions that split the
    /// space between components.
    pub fn region(&self, x: &[f32]) -> usize {
        self.region_f64(&x.iter().map(|&v| v as f64).collect::<Vec<_>>())
    }

    /// `region` at a point given in f64.
    pub fn region_f64(&self, x: &[f64]) -> usize {
        let c = self.component_logs_f64(x);
        (0..c.len()).max_by(|&a, &b| c[a].total_cmp(&c[b])).expect("a component")
    }

    /// Each region's share of a model's mass, by importance sampling with the true density as
    /// proposal: `x` (n draws of the mixture) and the model's energies `e` at them; the share
    /// of Σ exp(−E)/p over each region's points. Normalised to sum to 1, so no log Z is needed.
    pub fn model_shares(&self, x: &[f32], e: &[f64]) -> Vec<f64> {
        let d = self.dim;
        let mut mass = vec![0.0; self.weights.len()];
        for (i, &ei) in e.iter().enumerate() {
            let xi = &x[i * d..(i + 1) * d];
            mass[self.region(xi)] += (-ei - logsumexp(&self.component_logs(xi))).exp();
        }
        let total: f64 = mass.iter().sum();
        mass.iter().map(|m| m / total).collect()
    }

    /// Each region's share of the points `x` (the truth's shares, for draws of the mixture).
    pub fn point_shares(&self, x: &[f32]) -> Vec<f64> {
        let n = x.len() / self.dim;
        let mut frac = vec![0.0; self.weights.len()];
        for i in 0..n {
            frac[self.region(&x[i * self.dim..(i + 1) * self.dim])] += 1.0 / n as f64;
        }
        frac
    }
}
