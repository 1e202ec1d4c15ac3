//! sance-lowd: what the defaults learn on low-dimensional densities known exactly — a
//! correlated 2-D Gaussian and mixtures of anisotropic Gaussians with unequal weights in 2–5
//! dimensions, none of which the defaults were tuned on. For each: KL(data ‖ model) estimated
//! as the mean over held-out draws of log p(x) − (−E(x) − log Ẑ), Ẑ by `sance_ebm_log_z`
//! (AIS, default settings); and each component's share of the model's mass, by importance
//! sampling with the true density as proposal (the share of ∫exp(−E) over the points the true
//! mixture assigns to that component, divided by Ẑ).
//!
//!   sance-lowd [--sets all|name,...] [--steps 4000] [--seeds 0,1,2] [--k 50] [--reinit P]
//!              [--mala] [--langevin-steps T]
use sance::abi::config::SanceConfig;
use sance::model::rng::Rng;
use sance::Ebm;
use std::time::Instant;
use tch::Kind;

/// A mixture of Gaussians N(μ_k, L_k L_kᵀ) with weights w_k.
struct Mixture {
    name: &'static str,
    dim: usize,
    weights: Vec<f64>,
    means: Vec<Vec<f64>>,
    /// Lower-triangular Cholesky factors, row-major D×D.
    chol: Vec<Vec<f64>>,
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

fn sets() -> Vec<Mixture> {
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
    fn sample(&self, n: usize, rng: &mut Rng) -> Vec<f32> {
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
                v.push((self.means[k][i] + s) as f32);
            }
        }
        v
    }

    /// log of each component's weighted density at x.
    fn component_logs(&self, x: &[f32]) -> Vec<f64> {
        let d = self.dim;
        (0..self.weights.len())
            .map(|k| {
                let l = &self.chol[k];
                // Solve L u = x − μ.
                let mut u = vec![0.0; d];
                let mut logdet = 0.0;
                for i in 0..d {
                    let s: f64 = (0..i).map(|j| l[i * d + j] * u[j]).sum();
                    u[i] = (x[i] as f64 - self.means[k][i] - s) / l[i * d + i];
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

fn logsumexp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

struct Opts {
    sets: Vec<String>,
    steps: u64,
    seeds: Vec<u64>,
    k: Option<u32>,
    reinit: Option<f32>,
    mala: bool,
    langevin_steps: Option<u32>,
    step_size: Option<f32>,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        sets: vec![],
        steps: 4000,
        seeds: vec![0],
        k: None,
        reinit: None,
        mala: false,
        langevin_steps: None,
        step_size: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--sets" => o.sets = val()?.split(',').filter(|s| *s != "all").map(String::from).collect(),
            "--steps" => o.steps = val()?.parse().map_err(|_| "--steps")?,
            "--seeds" => {
                o.seeds =
                    val()?.split(',').map(|s| s.parse().map_err(|_| "--seeds")).collect::<Result<_, _>>()?
            }
            "--k" => o.k = Some(val()?.parse().map_err(|_| "--k")?),
            "--reinit" => o.reinit = Some(val()?.parse().map_err(|_| "--reinit")?),
            "--langevin-steps" => o.langevin_steps = Some(val()?.parse().map_err(|_| "--langevin-steps")?),
            "--step-size" => o.step_size = Some(val()?.parse().map_err(|_| "--step-size")?),
            "--mala" => o.mala = true,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    Ok(o)
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sance-lowd: {e}");
            std::process::exit(2);
        }
    };
    println!("| set | seed | KL (nats) | mass shares (truth) | max share error | log Z ± se | seconds |");
    println!("|---|---|---|---|---|---|---|");
    for m in sets().into_iter().filter(|m| o.sets.is_empty() || o.sets.iter().any(|s| s == m.name)) {
        for &seed in &o.seeds {
            let mut cfg = SanceConfig { data_dim: m.dim as u32, seed, ..Default::default() };
            if let Some(k) = o.k {
                cfg.noise_update_interval = k;
            }
            if let Some(r) = o.reinit {
                cfg.replay_reinit_prob = r;
            }
            if let Some(t) = o.langevin_steps {
                cfg.langevin.steps = t;
            }
            cfg.langevin.metropolis = o.mala as u32;
            if let Some(l) = o.step_size {
                cfg.langevin.step_size = l;
                cfg.langevin.noise_std = (2.0 * l).sqrt();
            }
            let t0 = Instant::now();
            let mut ebm = Ebm::new(&cfg).expect("config");
            let mut rng = Rng::new(seed.wrapping_mul(7919).wrapping_add(1));
            for _ in 0..o.steps {
                let x = m.sample(256, &mut rng);
                ebm.train_step(&ebm.tensor_from(&x, 256).unwrap()).expect("step");
            }
            let secs = t0.elapsed().as_secs_f64();
            let z = ebm.ais_defaults().and_then(|p| ebm.estimate_log_normaliser(&p)).expect("AIS");
            let n = 20000;
            let x = m.sample(n, &mut Rng::new(1 << 40 | seed));
            let e = Vec::<f64>::try_from(
                ebm.energy(&ebm.tensor_from(&x, n).unwrap()).unwrap().to_kind(Kind::Double),
            )
            .unwrap();
            let (mut kl, mut mass, mut truth) = (0.0, vec![0.0; m.weights.len()], vec![0.0; m.weights.len()]);
            for i in 0..n {
                let comps = m.component_logs(&x[i * m.dim..(i + 1) * m.dim]);
                let lp = logsumexp(&comps);
                let lq = -e[i] - z.log_z;
                kl += lp - lq;
                let k = (0..comps.len()).max_by(|&a, &b| comps[a].total_cmp(&comps[b])).unwrap();
                mass[k] += (lq - lp).exp();
                truth[k] += 1.0;
            }
            kl /= n as f64;
            truth.iter_mut().for_each(|v| *v /= n as f64);
            // Shares of the model's mass: the regions tile the space, so the estimates sum to 1
            // up to the error of log Ẑ, which divides out here.
            let total: f64 = mass.iter().sum();
            mass.iter_mut().for_each(|v| *v /= total);
            let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join("/");
            println!(
                "| {} | {seed} | {kl:.4} | {} ({}) | {:.3} | {:.3} ± {:.3} | {secs:.0} |",
                m.name,
                fmt(&mass),
                fmt(&truth),
                mass.iter().zip(&truth).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max),
                z.log_z,
                z.std_error
            );
        }
    }
}
