//! sance-lowd: what the defaults learn on low-dimensional densities known exactly — a
//! correlated 2-D Gaussian and mixtures of anisotropic Gaussians with unequal weights in 2–5
//! dimensions (lowd/mixture.rs), the Müller–Brown density at kT = 20 (lowd/mueller_brown.rs)
//! and a curved ridge (lowd/ridge.rs), none of which the defaults were tuned on; optionally in
//! other units (`--scale`). For each: KL(data ‖ model) estimated as the mean over 20,000
//! held-out draws of log p(x) − (−E(x) − log Z), log Z on a grid over the set's box (600²
//! cells in 2-D, 160³ in 3-D; mass outside the box is lost: it counts against the model) and by
//! `sance_ebm_log_z` (AIS, default settings) in 5-D, where AIS's estimate is printed beside the
//! grid's and beside a grid over the box widened twice (1200² or 200³ cells: the model's whole
//! mass, what AIS estimates; the row also gives the share of it outside the set's box); and
//! each region's share of the model's mass (a mixture's regions are its components;
//! Müller–Brown's its three basins; the ridge's its halves x₁ < 0, x₁ ≥ 0), by importance
//! sampling with the true density as proposal (the share of ∫exp(−E) over the points the truth
//! assigns to that region, divided by Ẑ). The truth's shares in the row are those of the same
//! held-out draws; stderr first lists each set's box, exact (or well estimated) shares, and how
//! its grid integrates the true density (log ∫ p, 0 up to the grid's error).
//!
//! `--scale S` multiplies every data coordinate by S, `--scale a,b,...` coordinate i by the
//! i-th factor (cycled when fewer than D): the data are x' = S ⊙ x, and everything is measured
//! in those units — log p'(x') = log p(x' ⊘ S) − Σ log S_i, the box scaled by S, regions of
//! x' ⊘ S — so KL and shares are comparable across scales (KL does not depend on the units).
//!
//! Every other option overrides one default: `--k` noise_update_interval, `--reinit`
//! replay_reinit_prob, `--mala` langevin.metropolis = 1, `--ula` langevin.metropolis = 0 with a
//! fixed step (sance 0.4's sampler), `--no-scaling` scaling NONE (sance 0.4's units),
//! `--langevin-steps`, `--step-size` (a fixed λ, with σ = √(2λ)), `--lr`, `--ema` ema_decay,
//! `--noise-ratio`; `--batch` is the data batch (256).
//! `--trace N` prints, every N steps, the model's mass shares and the replay buffer's shares of
//! its chains (the noise's), to watch the two follow each other.
//!
//!   sance-lowd [--sets all|name,...] [--scale S|a,b,...] [--steps 4000] [--seeds 0] [--batch B]
//!              [--trace N] [--ais-temperatures T] [--draws N]
//!              and the options every program takes (sance_experiments::cli::USAGE)
//!
//! Sets: gauss2-corr, mix2-2, mix3-3a, mix3-3b, mix5-4, mueller-brown, ridge, ring.
use sance::abi::config::SanceConfig;
use sance::model::rng::Rng;
use sance::Ebm;
use sance_experiments::cli::{Flags, Overrides};
use sance_experiments::grid::{energies, Grid};
use sance_experiments::lowd::{self as density, fmt, model_shares, point_shares, Density, Scaled};
use std::time::Instant;

/// Cells a side of the log Z grid in `dim` dimensions; None above 3.
fn grid_cells(dim: usize) -> Option<usize> {
    match dim {
        1 => Some(4000),
        2 => Some(600),
        3 => Some(160),
        _ => None,
    }
}

/// The set's box as a grid (600² or 160³ cells); None above 3 dimensions.
fn set_grid(m: &dyn Density) -> Option<Grid> {
    let (lo, hi) = m.bounds();
    grid_cells(m.dim()).map(|per| Grid::new(&lo, &hi, per))
}

/// The model's log Z on a grid over the set's box; None above 3 dimensions.
fn grid_log_z_set(ebm: &Ebm, m: &dyn Density) -> Option<f64> {
    set_grid(m).map(|g| g.log_z(ebm))
}

/// The model's log Z on a grid over the set's box widened twice around its centre, with as
/// fine cells in 2-D (1200²) and nearly (200³) in 3-D: what AIS's log Z is checked against,
/// since the set's box loses the model's mass outside it.
fn grid_log_z_wide(ebm: &Ebm, m: &dyn Density) -> Option<f64> {
    let per = match m.dim() {
        1 => 8000,
        2 => 1200,
        3 => 200,
        _ => return None,
    };
    set_grid(m).map(|g| g.widened(per).log_z(ebm))
}

/// The true density's log ∫ p on the same grid: 0 up to the mass outside the box and the
/// midpoint rule's error, at any scale.
fn grid_log_mass_truth(m: &dyn Density) -> Option<f64> {
    let d = m.dim();
    set_grid(m).map(|g| {
        g.log_integral(|x| {
            x.chunks(d).map(|p| m.log_p(&p.iter().map(|&v| v as f64).collect::<Vec<_>>())).collect()
        })
    })
}

fn to_f32(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

struct Opts {
    sets: Vec<String>,
    steps: u64,
    seeds: Vec<u64>,
    batch: usize,
    /// Overrides of the default config.
    config: Overrides,
    trace: u64,
    ais_temperatures: Option<u32>,
    /// Draws per sampler for the samplers' table (0: none).
    draws: usize,
    /// Per-coordinate factors (cycled) for the data's units, and as given on the command line.
    scale: Vec<f64>,
    scale_label: String,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let (mut sets, mut trace, mut ais_temperatures, mut draws) = (Vec::new(), 0, None, 0);
    let (mut scale, mut scale_label) = (vec![1.0], "1".to_string());
    let f = Flags::parse(args, |flag, a| {
        match flag {
            "--sets" => sets = a.value(flag)?.split(',').filter(|s| *s != "all").map(String::from).collect(),
            "--ais-temperatures" => ais_temperatures = Some(a.number(flag)?),
            "--draws" => draws = a.number(flag)?,
            "--trace" => trace = a.number(flag)?,
            "--scale" => {
                scale_label = a.value(flag)?;
                scale = scale_label
                    .split(',')
                    .map(|s| s.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0))
                    .collect::<Option<_>>()
                    .ok_or("--scale takes positive numbers, S or a,b,...")?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if f.out.is_some() || f.log_every.is_some() || f.sample_steps.is_some() {
        return Err("sance-lowd prints tables only: no --out, --log-every or --sample-steps".into());
    }
    Ok(Opts {
        sets,
        steps: f.steps.unwrap_or(4000),
        seeds: f.seeds.unwrap_or(vec![0]),
        batch: f.batch.unwrap_or(256),
        config: f.config,
        trace,
        ais_temperatures,
        draws,
        scale,
        scale_label,
    })
}

fn main() {
    let o = match parse(&std::env::args().skip(1).collect::<Vec<_>>()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sance-lowd: {e}");
            std::process::exit(2);
        }
    };
    let names = density::names();
    if let Some(u) = o.sets.iter().find(|s| !names.contains(s)) {
        eprintln!("sance-lowd: unknown set {u} (the sets: {})", names.join(", "));
        std::process::exit(2);
    }
    let sets: Vec<Scaled> = density::sets(|n| o.sets.is_empty() || o.sets.iter().any(|s| s == n))
        .into_iter()
        .map(|m| Scaled::new(m, &o.scale))
        .collect();
    for m in &sets {
        let (lo, hi) = m.bounds();
        let b = lo
            .iter()
            .zip(&hi)
            .map(|(l, h)| format!("[{}, {}]", *l as f32, *h as f32))
            .collect::<Vec<_>>()
            .join("×");
        eprintln!(
            "{} (D = {}, scale {}): box {b}; truth's shares {}; truth's log ∫ p on the grid {}; {}",
            m.name(),
            m.dim(),
            o.scale_label,
            fmt(&m.truth_shares()),
            grid_log_mass_truth(m).map_or("—".into(), |g| format!("{g:.2e}")),
            m.note()
        );
    }
    println!(
        "| set | scale | seed | KL (nats) | mass shares (truth) | max share error | log Z: AIS ± se (grid; box ×2) | mass outside box | seconds |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut draw_rows = Vec::new();
    for m in &sets {
        let (m, dim): (&dyn Density, usize) = (m, m.dim());
        let sample = |n: usize, rng: &mut Rng| to_f32(&m.draw(n, rng));
        for &seed in &o.seeds {
            let mut cfg = SanceConfig { data_dim: dim as u32, seed, ..Default::default() };
            o.config.apply(&mut cfg);
            let t0 = Instant::now();
            let mut ebm = Ebm::new(&cfg).expect("config");
            let mut rng = Rng::new(seed.wrapping_mul(7919).wrapping_add(1));
            let probe = sample(20000, &mut Rng::new(99));
            for s in 1..=o.steps {
                let x = sample(o.batch, &mut rng);
                ebm.train_step(&ebm.tensor_from(&x, o.batch).unwrap()).expect("step");
                if o.trace > 0 && s % o.trace == 0 {
                    let buffer = ebm
                        .persistent_state()
                        .replay
                        .map(|rows| point_shares(m, &Vec::<f32>::try_from(rows.reshape([-1])).unwrap()));
                    eprintln!(
                        "step {s}: model {} replay buffer {}",
                        fmt(&model_shares(m, &probe, &energies(&ebm, &probe, dim))),
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
            let grid = grid_log_z_set(&ebm, m);
            let wide = grid_log_z_wide(&ebm, m);
            let log_z = grid.unwrap_or(z.log_z);
            let n = 20000;
            let x = sample(n, &mut Rng::new(1 << 40 | seed));
            let e = energies(&ebm, &x, dim);
            let kl = x
                .chunks(dim)
                .zip(&e)
                .map(|(xi, ei)| m.log_p(&xi.iter().map(|&v| v as f64).collect::<Vec<_>>()) + ei + log_z)
                .sum::<f64>()
                / n as f64;
            // Shares of the model's mass: the regions tile the space, so the estimates sum to 1
            // up to the error of log Ẑ, which divides out.
            let (mass, truth) = (model_shares(m, &x, &e), point_shares(m, &x));
            println!(
                "| {} | {} | {seed} | {kl:.4} | {} ({}) | {:.3} | {:.3} ± {:.3} ({}) | {} | {secs:.0} |",
                m.name(),
                o.scale_label,
                fmt(&mass),
                fmt(&truth),
                mass.iter().zip(&truth).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max),
                z.log_z,
                z.std_error,
                match (grid, wide) {
                    (Some(g), Some(w)) => format!("{g:.3}; {w:.3}"),
                    _ => "—".into(),
                },
                match (grid, wide) {
                    (Some(g), Some(w)) => format!("{:.1e}", (1.0 - (g - w).exp()).max(0.0)),
                    _ => "—".into(),
                }
            );
            if o.draws > 0 {
                draw_rows.extend(sampler_rows(
                    &mut ebm,
                    m,
                    &x,
                    &e,
                    &mass,
                    log_z,
                    o.draws,
                    seed,
                    &o.scale_label,
                ));
            }
        }
    }
    if !draw_rows.is_empty() {
        println!();
        println!(
            "| set | scale | seed | sampler | draws' shares (model's) | max share gap | mean log p of draws − exact | ESS | acceptance | log Z − grid's (± se) | ms per 1,000 draws |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for r in draw_rows {
            println!("{r}");
        }
    }
}

/// One row per sampler of `sance_ebm_draw`: `n` draws of the trained model, their regions'
/// shares against the model's own (`mass`, by importance sampling from the truth's draws
/// `x` with energies `e`), and their mean model log-density −E − log Z against exact draws'
/// (the same importance sampling): a sampler that leaves mass between modes or spreads too
/// wide shows a negative gap.
#[allow(clippy::too_many_arguments)]
fn sampler_rows(
    ebm: &mut Ebm,
    m: &dyn Density,
    x: &[f32],
    e: &[f64],
    mass: &[f64],
    log_z: f64,
    n: usize,
    seed: u64,
    scale: &str,
) -> Vec<String> {
    use sance::abi::sampling::{SanceSampler, SanceSampling};
    let dim = m.dim();
    // E_model[log p_model]: in 2-D exactly, on a 600² grid over the set's box (what exact
    // draws of the model give, the grid being the model's distribution); above, by
    // self-normalised importance sampling from the truth's draws.
    let exact = if dim == 2 {
        let (lo, hi) = m.bounds();
        let g = Grid::new(&lo, &hi, 600).mass(ebm, 1, |_| 0);
        // In the draws' normalisation, −E − log_z (log_z is this grid's in 2-D: the same value).
        g.mean_log_q + (g.log_z - log_z)
    } else {
        let (mut num, mut den) = (0.0, 0.0);
        for (xi, &ei) in x.chunks(dim).zip(e) {
            let w = (-ei - m.log_p(&xi.iter().map(|&v| v as f64).collect::<Vec<_>>())).exp();
            num += w * (-ei - log_z);
            den += w;
        }
        num / den
    };
    let defaults = ebm.sampling_defaults();
    let mut rows = Vec::new();
    let fresh200 = SanceSampling {
        sampler: SanceSampler::Fresh as u32,
        moves: sance::abi::config::SanceLangevin { steps: 200, ..defaults.moves },
        ..defaults
    };
    for (label, s) in [
        ("FRESH (sance 0.5's NULL)", SanceSampling { sampler: SanceSampler::Fresh as u32, ..defaults }),
        ("FRESH, 200 steps (the cost reference)", fresh200),
        ("POPULATION", SanceSampling { sampler: SanceSampler::Population as u32, ..defaults }),
        ("ANNEALED", SanceSampling { sampler: SanceSampler::Annealed as u32, ..defaults }),
        ("AUTO (NULL)", defaults),
    ] {
        let t0 = Instant::now();
        let (d, report) = match ebm.draw(n, &s) {
            Ok(v) => v,
            Err(err) => {
                rows.push(format!("| {} | {scale} | {seed} | {label} | failed: {} |", m.name(), err.message));
                continue;
            }
        };
        let ms = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
        let d = Vec::<f32>::try_from(d.reshape([-1])).unwrap();
        let shares = point_shares(m, &d);
        let gap = shares.iter().zip(mass).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let ed = energies(ebm, &d, dim);
        let mean = ed.iter().map(|v| -v - log_z).sum::<f64>() / ed.len() as f64;
        let z = if report.log_z.is_finite() {
            format!("{:+.3} ± {:.3}", report.log_z - log_z, report.log_z_std_error)
        } else {
            "—".into()
        };
        rows.push(format!(
            "| {} | {scale} | {seed} | {label} | {} ({}) | {gap:.3} | {:+.3} | {:.0} | {:.2} | {z} | {ms:.0} |",
            m.name(),
            fmt(&shares),
            fmt(mass),
            mean - exact,
            report.ess,
            report.acceptance,
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model that knew the truth would score KL 0 at every scale: the true density's grid
    /// over the scaled box integrates to 1, and log p' is log p shifted by −Σ log S.
    #[test]
    fn truth_is_consistent_at_every_scale() {
        let scales: [&[f64]; 5] = [&[1.0], &[0.01], &[100.0], &[10.0, 0.1], &[0.3, 7.0, 0.02]];
        for s in scales {
            for m in density::sets(|_| true) {
                let base_dim = m.dim();
                let x0 = m.draw(5, &mut Rng::new(3));
                let logs0: Vec<f64> = x0.chunks(base_dim).map(|p| m.log_p(p)).collect();
                let regions0: Vec<usize> = x0.chunks(base_dim).map(|p| m.region_of(p)).collect();
                let m = Scaled::new(m, s);
                let x = m.draw(5, &mut Rng::new(3));
                let log_det: f64 = (0..base_dim).map(|i| s[i % s.len()].ln()).sum();
                for (i, p) in x.chunks(base_dim).enumerate() {
                    assert!((m.log_p(p) - (logs0[i] - log_det)).abs() < 1e-9);
                    assert_eq!(m.region_of(p), regions0[i]);
                }
                if let Some(g) = grid_log_mass_truth(&m) {
                    eprintln!("{} at scale {s:?}: log ∫ p on the grid {g:.2e}", m.name());
                    assert!(g.abs() < 1e-3, "{} at scale {s:?}: log ∫ p = {g}", m.name());
                }
            }
        }
    }

    /// At scale 1 the mixtures draw, and score, exactly as before the sets were generalised.
    #[test]
    fn mixtures_unchanged_at_scale_one() {
        for mix in density::mixture::sets() {
            let a = mix.sample(100, &mut Rng::new(5));
            let m = Scaled::new(
                Box::new(density::mixture::sets().into_iter().find(|m| m.name == mix.name).unwrap()),
                &[1.0],
            );
            let b = to_f32(&m.draw(100, &mut Rng::new(5)));
            assert_eq!(a, b);
            for p in a.chunks(mix.dim) {
                let wide: Vec<f64> = p.iter().map(|&v| v as f64).collect();
                assert_eq!(m.log_p(&wide), sance_experiments::grid::logsumexp(&mix.component_logs(p)));
                assert_eq!(m.region_of(&wide), mix.region(p));
            }
        }
    }
}
