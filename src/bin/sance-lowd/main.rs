//! sance-lowd: what the defaults learn on low-dimensional densities known exactly — a
//! correlated 2-D Gaussian and mixtures of anisotropic Gaussians with unequal weights in 2–5
//! dimensions, none of which the defaults were tuned on. For each: KL(data ‖ model) estimated
//! as the mean over 20,000 held-out draws of log p(x) − (−E(x) − log Z), log Z on a grid over
//! [−12, 12]^D in 2–3 D (mass outside the box is lost: it counts against the model) and by
//! `sance_ebm_log_z` (AIS, default settings) in 5-D, where AIS's estimate is printed beside the
//! grid's; and each component's share of the model's mass, by importance
//! sampling with the true density as proposal (the share of ∫exp(−E) over the points the true
//! mixture assigns to that component, divided by Ẑ).
//!
//! Every option overrides one default: `--k` noise_update_interval, `--reinit`
//! replay_reinit_prob, `--mala` langevin.metropolis, `--langevin-steps`, `--step-size` (λ, with
//! σ = √(2λ)), `--lr`, `--ema` ema_decay, `--noise-ratio`; `--batch` is the data batch (256).
//! `--trace N` prints, every N steps, the model's mass shares and the replay buffer's shares of
//! its chains (the noise's), to watch the two follow each other.
//!
//!   sance-lowd [--sets all|name,...] [--steps 4000] [--seeds 0] [--k K] [--reinit P] [--mala]
//!              [--langevin-steps T] [--step-size L] [--lr R] [--ema B] [--noise-ratio N]
//!              [--batch B] [--trace N] [--ais-temperatures T]
use sance::abi::config::SanceConfig;
use sance::model::rng::Rng;
use sance::Ebm;
use std::time::Instant;

mod mixture;
use mixture::{energies, grid_log_z, logsumexp, sets};

fn fmt(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join("/")
}

/// log Z on a grid over [−12, 12]^D (600² or 160³ cells); None above 3 dimensions.
fn grid_log_z_12(ebm: &Ebm, dim: usize) -> Option<f64> {
    let per = match dim {
        1 => 4000,
        2 => 600,
        3 => 160,
        _ => return None,
    };
    Some(grid_log_z(ebm, dim, 12.0, per))
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
    lr: Option<f32>,
    batch: usize,
    ratio: Option<f32>,
    ema: Option<f32>,
    trace: u64,
    ais_temperatures: Option<u32>,
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
        lr: None,
        batch: 256,
        ratio: None,
        ema: None,
        trace: 0,
        ais_temperatures: None,
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
            "--batch" => o.batch = val()?.parse().map_err(|_| "--batch")?,
            "--noise-ratio" => o.ratio = Some(val()?.parse().map_err(|_| "--noise-ratio")?),
            "--ema" => o.ema = Some(val()?.parse().map_err(|_| "--ema")?),
            "--ais-temperatures" => {
                o.ais_temperatures = Some(val()?.parse().map_err(|_| "--ais-temperatures")?)
            }
            "--trace" => o.trace = val()?.parse().map_err(|_| "--trace")?,
            "--lr" => o.lr = Some(val()?.parse().map_err(|_| "--lr")?),
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
    println!("| set | seed | KL (nats) | mass shares (truth) | max share error | log Z: AIS ± se (grid) | seconds |");
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
            if let Some(r) = o.ratio {
                cfg.noise_ratio = r;
            }
            if let Some(b) = o.ema {
                cfg.ema_decay = b;
            }
            if let Some(lr) = o.lr {
                cfg.learning_rate = lr;
            }
            if let Some(l) = o.step_size {
                cfg.langevin.step_size = l;
                cfg.langevin.noise_std = (2.0 * l).sqrt();
            }
            let t0 = Instant::now();
            let mut ebm = Ebm::new(&cfg).expect("config");
            let mut rng = Rng::new(seed.wrapping_mul(7919).wrapping_add(1));
            let probe = m.sample(20000, &mut Rng::new(99));
            for s in 1..=o.steps {
                let x = m.sample(o.batch, &mut rng);
                ebm.train_step(&ebm.tensor_from(&x, o.batch).unwrap()).expect("step");
                if o.trace > 0 && s % o.trace == 0 {
                    let buffer = ebm
                        .persistent_state()
                        .replay
                        .map(|rows| m.point_shares(&Vec::<f32>::try_from(rows.reshape([-1])).unwrap()));
                    eprintln!(
                        "step {s}: model {} replay buffer {}",
                        fmt(&m.model_shares(&probe, &energies(&ebm, &probe, m.dim))),
                        buffer.map_or("empty".into(), |b| fmt(&b))
                    );
                }
            }
            let secs = t0.elapsed().as_secs_f64();
            let mut ais = ebm.ais_defaults().expect("AIS defaults");
            if let Some(t) = o.ais_temperatures {
                ais.temperatures = t;
            }
            let z = ebm.estimate_log_normaliser(&ais).expect("AIS");
            // The KL uses the grid's log Z where there is one (2–3 D), AIS's otherwise.
            let grid = grid_log_z_12(&ebm, m.dim);
            let log_z = grid.unwrap_or(z.log_z);
            let n = 20000;
            let x = m.sample(n, &mut Rng::new(1 << 40 | seed));
            let e = energies(&ebm, &x, m.dim);
            let kl = (0..n)
                .map(|i| logsumexp(&m.component_logs(&x[i * m.dim..(i + 1) * m.dim])) + e[i] + log_z)
                .sum::<f64>()
                / n as f64;
            // Shares of the model's mass: the regions tile the space, so the estimates sum to 1
            // up to the error of log Ẑ, which divides out.
            let (mass, truth) = (m.model_shares(&x, &e), m.point_shares(&x));
            println!(
                "| {} | {seed} | {kl:.4} | {} ({}) | {:.3} | {:.3} ± {:.3} ({}) | {secs:.0} |",
                m.name,
                fmt(&mass),
                fmt(&truth),
                mass.iter().zip(&truth).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max),
                z.log_z,
                z.std_error,
                grid.map_or("—".into(), |g| format!("{g:.3}"))
            );
        }
    }
}
