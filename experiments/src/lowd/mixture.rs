//! The low-dimensional densities of `sance-lowd` and of the tests of the defaults: a
//! correlated 2-D Gaussian and mixtures of anisotropic Gaussians with unequal weights in 2–5
//! dimensions, known exactly, and the measures taken against them. (`sance-lowd` sees them,
//! and its other sets, through `lowd::Density`.)
use crate::grid::logsumexp;
use sance::model::rng::Rng;

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
