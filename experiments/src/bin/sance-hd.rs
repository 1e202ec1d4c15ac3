//! sance-hd: sance beyond 2-D. Trains on the 16-D Gaussian mixture, the 8×8 digits or
//! Fashion-MNIST, with self-adapting NCE (snapshot noise, refresh every K steps; K = 0 never
//! refreshes) or classic NCE (a fixed Gaussian fitted to the data), and scores the samples.
//! `sance-hd help` lists the options; docs/results.md shows what they gave.
use sance::abi::config::{SanceConfig, SanceLangevin, SanceNoise};
use sance_experiments::cli::{Flags, Overrides};
use sance_experiments::datasets;
use sance_experiments::held_out::Progress;
use sance_experiments::images::score::{self, Judge};
use sance_experiments::images::setup::{
    batch_of, fashion_config, image_config, mixture_config, split, to_model, to_pixels,
};
use sance_experiments::metrics;
use sance_experiments::plot::Canvas;

use sance::model::toy;
use sance::Ebm;
use std::time::Instant;
use tch::{Device, Kind};

const USAGE: &str = "\
usage:
  sance-hd mixture [--methods k25,k100,k0,classic] [--steps 1000] [--seeds 0,1,2] [options]
  sance-hd digits  [--arch mlp|conv] [--methods k1,k25,k0,classic] [--steps 1000] [--seeds 0] [options]
  sance-hd fashion [--method k1|classic] [--steps 2000] [--dir fashion-run] [--resume] [options]
  sance-hd score FILE.f32 [FILE.f32 ...] [--out GRID.png]   scores raw Fashion-MNIST samples
        (float32 LE, N × 784, in [−1, 1], as fashion's samples.f32) on the ladder
methods: kN = self-adapting NCE refreshing the snapshot every N steps (k0: never after the
first step); classic = NCE against a Gaussian fitted to the training data.
options: those below, each overriding the dataset's defaults (docs/results.md lists those),
but --k and --noise (the method says them); --log-every is 250 steps, fashion's 500.
runs on every core (SANCE_NUM_THREADS, unless set, is the number of cores).
";

#[derive(Clone, Debug, PartialEq)]
enum Method {
    Snapshot(u32),
    Classic,
}

impl Method {
    fn parse(s: &str) -> Result<Method, String> {
        if s == "classic" {
            return Ok(Method::Classic);
        }
        s.strip_prefix('k')
            .and_then(|k| k.parse().ok())
            .map(Method::Snapshot)
            .ok_or_else(|| format!("unknown method {s:?} (kN or classic)"))
    }
    fn label(&self) -> String {
        match self {
            Method::Snapshot(0) => "SA-NCE, K = 0 (never refreshed)".into(),
            Method::Snapshot(k) => format!("SA-NCE, K = {k}"),
            Method::Classic => "classic NCE (fitted Gaussian)".into(),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Opts {
    methods: Vec<String>,
    steps: Option<u64>,
    seeds: Vec<u64>,
    arch: String,
    batch: Option<usize>,
    /// Overrides of the dataset's default config (K and the noise come from the method).
    config: Overrides,
    sample_steps: Option<u32>,
    out: Option<String>,
    log_every: u64,
    dir: String,
    resume: bool,
}

impl Opts {
    /// `--arch`, or `default` when it was not given.
    fn arch_or(&self, default: &str) -> String {
        if self.arch.is_empty() {
            default.to_string()
        } else {
            self.arch.clone()
        }
    }
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let (mut methods, mut arch, mut dir, mut resume) =
        (Vec::new(), String::new(), "fashion-run".to_string(), false);
    let f = Flags::parse(args, |flag, a| {
        match flag {
            "--methods" | "--method" => methods = a.value(flag)?.split(',').map(str::to_string).collect(),
            "--arch" => arch = a.value(flag)?,
            "--dir" => dir = a.value(flag)?,
            "--resume" => resume = true,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if f.config.k.is_some() || f.config.gaussian_noise {
        return Err(
            "sance-hd takes K and the noise from --methods (kN or classic), not --k or --noise".into()
        );
    }
    Ok(Opts {
        methods,
        steps: f.steps,
        seeds: f.seeds.unwrap_or(vec![0]),
        arch,
        batch: f.batch,
        config: f.config,
        sample_steps: f.sample_steps,
        out: f.out,
        log_every: f.log_every.unwrap_or(250),
        dir,
        resume,
    })
}

/// Applies the command-line overrides and the method to a dataset's default config.
fn apply(o: &Opts, mut c: SanceConfig, method: &Method, seed: u64) -> SanceConfig {
    c.seed = seed;
    o.config.apply(&mut c);
    match method {
        Method::Snapshot(k) => c.noise_update_interval = *k,
        Method::Classic => c.noise = SanceNoise::Gaussian,
    }
    c
}

/// Trains `ebm` for `steps` on batches that `batch(t)` returns; with `held` (held-out rows in
/// the model's scale) prints progress every `log_every` steps, with the held-out
/// log-likelihood (`every` is also called then, e.g. to write a picture).
fn train(
    ebm: &mut Ebm,
    steps: u64,
    b: usize,
    log_every: u64,
    held: Option<&[f32]>,
    mut batch: impl FnMut(u64) -> Vec<f32>,
    mut every: impl FnMut(&mut Ebm),
) -> Result<f64, String> {
    let t0 = Instant::now();
    let mut progress = held.map(|_| Progress::new(log_every));
    let start = ebm.step_count();
    for t in start..steps {
        let x = batch(t);
        let s =
            ebm.train_step(&ebm.tensor_from(&x, b).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        if s.step % log_every == 0 || s.step == steps {
            if let (Some(p), Some(x)) = (progress.as_mut(), held) {
                p.row(ebm, &s, x);
            }
            every(ebm);
        }
    }
    Ok(t0.elapsed().as_secs_f64() - progress.map_or(0.0, |p| p.eval_secs()))
}

/// `n` samples of the model: fresh chains of the training sampler run for `steps` steps.
fn samples(ebm: &mut Ebm, n: usize, steps: u32) -> Vec<f32> {
    let l = SanceLangevin { steps, ..ebm.config().langevin };
    in_chunks(ebm, n, |e, m| e.sample(m, &l).expect("valid sampler"))
}

/// `n` draws of `sance_ebm_sample(ebm, n, NULL, out)`: the model's defaults (AUTO).
fn default_draws(ebm: &mut Ebm, n: usize) -> Vec<f32> {
    let s = ebm.sampling_defaults();
    in_chunks(ebm, n, |e, m| e.draw(m, &s).expect("a drawable model").0)
}

/// `n` rows drawn by `draw(ebm, m)` in chunks of at most 500 (which keeps the memory of image
/// chains small), as floats on the host.
fn in_chunks(ebm: &mut Ebm, n: usize, mut draw: impl FnMut(&mut Ebm, usize) -> tch::Tensor) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * ebm.sample_size());
    for i in (0..n).step_by(500) {
        let x = draw(ebm, (n - i).min(500));
        out.extend(
            Vec::<f32>::try_from(x.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1)).unwrap(),
        );
    }
    out
}

/// `n` draws the way training draws its noise: chains of the replay buffer (and restarts)
/// run for the training sampler's steps on the snapshot. Self-adapting NCE only (classic NCE
/// has no snapshot); the buffer keeps what it held.
fn buffer_samples(ebm: &mut Ebm, n: usize) -> Vec<f32> {
    in_chunks(ebm, n, |e, m| e.draw_noise(m).expect("a trained snapshot").0)
}

fn stats(v: &[f64], p: usize) -> String {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    if v.len() == 1 {
        return format!("{mean:.p$}");
    }
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    format!("{mean:.p$} ({lo:.p$}–{hi:.p$})")
}

fn methods(o: &Opts, default: &[&str]) -> Result<Vec<Method>, String> {
    let names: Vec<String> = if o.methods.is_empty() {
        default.iter().map(|s| s.to_string()).collect()
    } else {
        o.methods.clone()
    };
    names.iter().map(|s| Method::parse(s)).collect()
}

// ---------------------------------------------------------------- 16-D mixture

fn cmd_mixture(o: &Opts) -> Result<(), String> {
    let steps = o.steps.unwrap_or(1000);
    let b = o.batch.unwrap_or(256);
    let sample_steps = o.sample_steps.unwrap_or(500);
    let d = toy::GAUSSIANS16D_DIM;
    let held_out = data16(2000, 1 << 40);
    let median = metrics::median_distance(&held_out, d);
    let floor = metrics::mmd2(&data16(1000, 1 << 41), &held_out, d, median);
    println!(
        "16-D mixture: {steps} steps of batch {b}, seeds {:?}; samples: 1000 fresh chains of \
         {sample_steps} Langevin steps",
        o.seeds
    );
    println!(
        "MMD² to 2000 held-out points (sum of RBF kernels at 0.5, 1, 2, 4 × the median distance \
         {median:.3}); real-vs-real floor {floor:.5}"
    );
    println!(
        "held-out data: share near a mode {:.3}; the default draws are sance_ebm_sample(…, NULL, …) \
         (SANCE_SAMPLER_AUTO)",
        metrics::coverage16(&held_out[..1000 * d]).near
    );
    println!(
        "| method | MMD² | modes covered (of 8) | share near a mode | default draws: MMD² | modes | share near a mode | ANNEALED draws: share near a mode | seconds |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut panels: Vec<(String, Vec<f32>)> = vec![("held-out data".into(), held_out[..1000 * d].to_vec())];
    for m in methods(o, &["k25", "k100", "k0", "classic"])? {
        let (mut mmd, mut modes, mut near, mut secs) = (vec![], vec![], vec![], 0.0);
        let (mut mmd_d, mut modes_d, mut near_d, mut near_a) = (vec![], vec![], vec![], vec![]);
        for &seed in &o.seeds {
            let cfg = apply(o, mixture_config(), &m, seed);
            let mut ebm = Ebm::new(&cfg).map_err(|e| e.to_string())?;
            secs += train(
                &mut ebm,
                steps,
                b,
                o.log_every,
                None,
                |t| data16(b, seed.wrapping_mul(1_000_003).wrapping_add(t)),
                |_| {},
            )?;
            let x = samples(&mut ebm, 1000, sample_steps);
            mmd.push(metrics::mmd2(&x, &held_out, d, median));
            if seed == o.seeds[0] {
                panels.push((m.label(), x.clone()));
            }
            let c = metrics::coverage16(&x);
            modes.push(c.modes as f64);
            near.push(c.near);
            let xd = default_draws(&mut ebm, 1000);
            mmd_d.push(metrics::mmd2(&xd, &held_out, d, median));
            let c = metrics::coverage16(&xd);
            modes_d.push(c.modes as f64);
            near_d.push(c.near);
            // An independent sampler of the same model: what the model itself holds near a mode.
            let s = sance::abi::sampling::SanceSampling {
                sampler: sance::abi::sampling::SanceSampler::Annealed as u32,
                ..ebm.sampling_defaults()
            };
            let xa = Vec::<f32>::try_from(ebm.draw(4000, &s).expect("ANNEALED").0.flatten(0, -1)).unwrap();
            near_a.push(metrics::coverage16(&xa).near);
        }
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
            m.label(),
            stats(&mmd, 4),
            stats(&modes, 1),
            stats(&near, 3),
            stats(&mmd_d, 4),
            stats(&modes_d, 1),
            stats(&near_d, 3),
            stats(&near_a, 3),
            secs / o.seeds.len() as f64
        );
    }
    let out = o.out.clone().unwrap_or_else(|| "sance-mixture16.png".into());
    scatter_panels(&out, &panels, d).map_err(|e| format!("{out}: {e}"))?;
    let names = panels.iter().map(|p| p.0.as_str()).collect::<Vec<_>>().join(" | ");
    println!(
        "wrote {out}: coordinates 1 and 2 of 1000 points per panel (the 8 modes project onto the 4 \
         corners (±1, ±1)); panels: {names}"
    );
    Ok(())
}

/// One square panel per point set: coordinates 1 and 2 (of `dim`) over [−3, 3]².
fn scatter_panels(path: &str, panels: &[(String, Vec<f32>)], dim: usize) -> std::io::Result<()> {
    const P: usize = 220;
    const GAP: usize = 10;
    const LIM: f64 = 3.0;
    let mut c = Canvas::new(panels.len() * (P + GAP) + GAP, P + 2 * GAP, [255, 255, 255]);
    for (k, (_, x)) in panels.iter().enumerate() {
        let x0 = (GAP + k * (P + GAP)) as f64;
        let col = if k == 0 { [31u8, 119, 180] } else { [214u8, 39, 40] };
        for row in x.chunks_exact(dim) {
            let (a, b) = (row[1] as f64, row[2] as f64);
            if a.abs() < LIM && b.abs() < LIM {
                c.dot(
                    x0 + (a + LIM) / (2.0 * LIM) * P as f64,
                    GAP as f64 + (LIM - b) / (2.0 * LIM) * P as f64,
                    1.4,
                    col,
                    0.35,
                );
            }
        }
        c.rect_outline(
            x0 as i64 - 1,
            GAP as i64 - 1,
            x0 as i64 + P as i64,
            (GAP + P) as i64,
            [120, 120, 120],
        );
    }
    c.write_png(path)
}

fn data16(n: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0f32; toy::GAUSSIANS16D_DIM * n];
    toy::toy_dataset(toy::GAUSSIANS16D, n, seed, &mut v).expect("built-in set");
    v
}

// ---------------------------------------------------------------- images

/// A PNG of image rows: each row a labelled set of `cols` images of h×w pixels in [0, 1].
fn image_grid(
    path: &str,
    rows_: &[(&str, &[f32])],
    h: usize,
    w: usize,
    cols: usize,
    scale: usize,
) -> std::io::Result<()> {
    let gap = 2;
    let cell = |n: usize| n * scale + gap;
    let mut c = Canvas::new(cols * cell(w) + gap, rows_.len() * cell(h) + gap, [255, 255, 255]);
    for (r, (_, imgs)) in rows_.iter().enumerate() {
        for k in 0..cols.min(imgs.len() / (h * w)) {
            for y in 0..h * scale {
                for x in 0..w * scale {
                    let p = imgs[k * h * w + (y / scale) * w + x / scale];
                    let g = (255.0 * (1.0 - p.clamp(0.0, 1.0))) as u8;
                    c.set((gap + k * cell(w) + x) as i64, (gap + r * cell(h) + y) as i64, [g, g, g]);
                }
            }
        }
    }
    c.write_png(path)
}

fn cmd_digits(o: &Opts) -> Result<(), String> {
    let all = datasets::load_digits(&datasets::digits_path())?;
    let (train_set, test_set) = split(&all, 297, 2024);
    let steps = o.steps.unwrap_or(1000);
    let b = o.batch.unwrap_or(256);
    let sample_steps = o.sample_steps.unwrap_or(500);
    let t0 = Instant::now();
    // The judge learns 1,000 of the training digits; the other 500 are the real rung.
    let judge = Judge::new(
        &train_set,
        &train_set.subset(&(0..1000).collect::<Vec<_>>()),
        &test_set,
        (
            "real: 500 training digits the judge did not learn".into(),
            train_set.subset(&(1000..1500).collect::<Vec<_>>()),
        ),
        60,
    );
    println!(
        "8×8 digits ({} train / {} held out), {} energy, {steps} steps of batch {b}, seeds {:?}; \
         samples: 1000 fresh chains of {sample_steps} Langevin steps, and 1000 draws the way training \
         draws its noise (replay buffer)",
        train_set.len(),
        test_set.len(),
        o.arch_or("mlp"),
        o.seeds
    );
    println!(
        "judge: MLP classifier, held-out accuracy {:.1} % ({:.0} s); every set is compared with the {} \
         held-out digits (pixel MMD² in [0, 1]: RBF sum at 0.5–4 × the median distance)",
        100.0 * judge.classifier.test_accuracy,
        t0.elapsed().as_secs_f64(),
        test_set.len()
    );
    judge.print_ladder();
    let mut pictures: Vec<(String, Vec<f32>)> = vec![("real".into(), test_set.pixels[..16 * 64].to_vec())];
    let held_digits = to_model(&test_set.pixels);
    let mut summary = vec![];
    for m in methods(o, &["k1", "k25", "k0", "classic"])? {
        let (mut mmd, mut mmd_buf) = (vec![], vec![]);
        for &seed in &o.seeds {
            let cfg = apply(o, image_config(&o.arch_or("mlp"), 8, 8)?, &m, seed);
            let mut ebm = Ebm::new(&cfg).map_err(|e| e.to_string())?;
            if m == Method::Classic {
                ebm.fit_noise(&ebm.tensor_from(&to_model(&train_set.pixels), train_set.len()).unwrap())
                    .map_err(|e| e.to_string())?;
            }
            let secs = train(
                &mut ebm,
                steps,
                b,
                o.log_every,
                (o.seeds.len() == 1 && o.log_every < steps).then_some(&held_digits[..]),
                |t| batch_of(&train_set, b, seed * 7919 + t),
                |_| {},
            )?;
            let x = to_pixels(&samples(&mut ebm, 1000, sample_steps));
            let s = judge.score(&x);
            println!("{}", score::row(&format!("{}, seed {seed}, fresh chains", m.label()), &s, Some(secs)));
            mmd.push(s.mmd2);
            if m != Method::Classic {
                let xb = to_pixels(&buffer_samples(&mut ebm, 1000));
                let sb = judge.score(&xb);
                println!("{}", score::row(&format!("{}, seed {seed}, buffer draws", m.label()), &sb, None));
                mmd_buf.push(sb.mmd2);
            }
            if seed == o.seeds[0] {
                pictures.push((m.label(), x[..16 * 64].to_vec()));
            }
        }
        summary.push(format!(
            "{}: pixel MMD² {} (fresh chains), {} (buffer draws)",
            m.label(),
            stats(&mmd, 4),
            if mmd_buf.is_empty() { "—".into() } else { stats(&mmd_buf, 4) }
        ));
    }
    println!("mean (min–max) over seeds {:?}:", o.seeds);
    summary.iter().for_each(|l| println!("  {l}"));
    let out = o.out.clone().unwrap_or_else(|| format!("sance-digits-{}.png", o.arch_or("mlp")));
    let rows_: Vec<(&str, &[f32])> = pictures.iter().map(|(l, v)| (l.as_str(), v.as_slice())).collect();
    image_grid(&out, &rows_, 8, 8, 16, 6).map_err(|e| format!("{out}: {e}"))?;
    println!("wrote {out} (rows: {})", pictures.iter().map(|p| p.0.as_str()).collect::<Vec<_>>().join(" | "));
    Ok(())
}

/// Fashion-MNIST: one long run with progress, a PNG grid and a checkpoint every `--log-every`
/// steps (`--resume` continues from the checkpoint), then the Fréchet distance in the
/// penultimate features of a conv classifier trained on the real training set.
fn cmd_fashion(o: &Opts) -> Result<(), String> {
    let dir = std::path::PathBuf::from(&o.dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let train_set = datasets::load_fashion(&datasets::fashion_dir(), true)?;
    let test_set = datasets::load_fashion(&datasets::fashion_dir(), false)?;
    let m = methods(o, &["k1"])?.remove(0);
    let steps = o.steps.unwrap_or(2000);
    let b = o.batch.unwrap_or(64);
    let sample_steps = o.sample_steps.unwrap_or(200);
    let seed = o.seeds[0];
    let ckpt = dir.join(format!(
        "{}.safetensors",
        if m == Method::Classic {
            "classic".to_string()
        } else {
            format!(
                "k{}",
                match m {
                    Method::Snapshot(k) => k,
                    _ => 0,
                }
            )
        }
    ));
    if !o.arch.is_empty() && o.arch != "conv" {
        return Err("fashion trains the conv energy only".into());
    }
    let cfg = apply(o, fashion_config(), &m, seed);
    let mut ebm = if o.resume && ckpt.exists() {
        let e = sance::checkpoint::load(&ckpt, cfg.device).map_err(|e| e.to_string())?;
        println!("resumed {} at step {}", ckpt.display(), e.step_count());
        e
    } else {
        let mut e = Ebm::new(&cfg).map_err(|e| e.to_string())?;
        if m == Method::Classic {
            e.fit_noise(&e.tensor_from(&to_model(&train_set.pixels[..10000 * 784]), 10000).unwrap())
                .map_err(|e| e.to_string())?;
        }
        e
    };
    println!(
        "Fashion-MNIST ({} train / {} test), {} energy on {:?}, {}: {steps} steps of batch {b}; every {} \
         steps a picture and a checkpoint in {}",
        train_set.len(),
        test_set.len(),
        o.arch_or("conv"),
        ebm.device(),
        m.label(),
        o.log_every,
        dir.display()
    );
    let grid_path = dir.join("samples.png").to_string_lossy().into_owned();
    let held_fashion = to_model(&test_set.pixels[..500 * 784]);
    let classic = m == Method::Classic;
    let real = test_set.pixels[..16 * 784].to_vec();
    let secs = train(
        &mut ebm,
        steps,
        b,
        o.log_every,
        Some(&held_fashion[..]),
        |t| batch_of(&train_set, b, seed * 7919 + t),
        |e| {
            // Row 2: fresh chains; row 3: draws of the training sampler from the buffer.
            let x = to_pixels(&samples(e, 16, sample_steps));
            let xb = if classic {
                to_pixels(&samples(e, 16, sample_steps))
            } else {
                to_pixels(&buffer_samples(e, 16))
            };
            let _ = image_grid(&grid_path, &[("real", &real), ("fresh", &x), ("buffer", &xb)], 28, 28, 16, 2);
            if let Err(err) = sance::checkpoint::save(e, &ckpt) {
                eprintln!("checkpoint: {err}");
            }
        },
    )?;
    println!(
        "trained in {secs:.0} s; scoring: a conv classifier on the training set (2 epochs); 1000 samples \
         of fresh chains ({sample_steps} steps), 1000 draws the way training draws its noise"
    );
    let judge = fashion_judge(&train_set, &test_set);
    println!(
        "judge accuracy on the test set: {:.1} %; every set is compared with 1000 test images",
        100.0 * judge.classifier.test_accuracy
    );
    judge.print_ladder();
    let t_fresh = std::time::Instant::now();
    let raw = samples(&mut ebm, 1000, sample_steps);
    let fresh_secs = t_fresh.elapsed().as_secs_f64();
    let x = to_pixels(&raw);
    let label = format!("{} after {} steps", m.label(), ebm.step_count());
    println!("{}", score::row(&format!("{label}, fresh chains"), &judge.score(&x), Some(secs)));
    // What sance_ebm_sample(…, NULL, …) returns: the model's default draws (AUTO).
    let t_draws = std::time::Instant::now();
    let raw_d = default_draws(&mut ebm, 1000);
    let draw_secs = t_draws.elapsed().as_secs_f64();
    let xd = to_pixels(&raw_d);
    println!("{}", score::row(&format!("{label}, sance_ebm_sample(NULL) draws"), &judge.score(&xd), None));
    println!(
        "1000 draws took {draw_secs:.1} s (sance_ebm_sample(NULL)) and {fresh_secs:.1} s (fresh chains, \
         {sample_steps} steps)"
    );
    let draws_path = dir.join("draws.f32");
    write_f32(&draws_path, &raw_d).map_err(|e| format!("{}: {e}", draws_path.display()))?;
    println!("wrote {}: the 1000 sance_ebm_sample(NULL) draws", draws_path.display());
    // The headline samples (samples.f32) are the buffer draws for self-adapting NCE, whose
    // training draws its noise that way; classic NCE has no buffer, so its fresh chains.
    let held = judge.reference();
    let mut rows_: Vec<(&str, &[f32])> = vec![("real", &held.pixels[..16 * 784])];
    let (xb, raw_b);
    let headline = if classic {
        &raw
    } else {
        raw_b = buffer_samples(&mut ebm, 1000);
        xb = to_pixels(&raw_b);
        println!("{}", score::row(&format!("{label}, buffer draws"), &judge.score(&xb), None));
        rows_.extend([("buffer", &xb[..16 * 784]), ("buffer", &xb[16 * 784..32 * 784])]);
        let fresh_path = dir.join("fresh.f32");
        write_f32(&fresh_path, &raw).map_err(|e| format!("{}: {e}", fresh_path.display()))?;
        println!("wrote {}: the 1000 fresh-chain samples", fresh_path.display());
        &raw_b
    };
    rows_.extend([("fresh", &x[..16 * 784]), ("fresh", &x[16 * 784..32 * 784])]);
    rows_.extend([("NULL draws", &xd[..16 * 784]), ("NULL draws", &xd[16 * 784..32 * 784])]);
    let raw_path = dir.join("samples.f32");
    write_f32(&raw_path, headline).map_err(|e| format!("{}: {e}", raw_path.display()))?;
    println!(
        "wrote {}: the 1000 {} samples, float32 little-endian, row-major 1000 × 784, in [−1, 1]",
        raw_path.display(),
        if classic { "fresh-chain" } else { "buffer-draw" }
    );
    let out = o.out.clone().unwrap_or_else(|| dir.join("final.png").to_string_lossy().into_owned());
    image_grid(&out, &rows_, 28, 28, 16, 2).map_err(|e| format!("{out}: {e}"))?;
    println!("wrote {out}");
    Ok(())
}

/// The Fashion-MNIST judge: trained on the 60,000 training images; sets are compared with test
/// images 0–999, and test images 1,000–1,999 are the real rung.
fn fashion_judge<'a>(train: &'a datasets::Images, test: &datasets::Images) -> Judge<'a> {
    let real = test.subset(&(1000..2000).collect::<Vec<_>>());
    Judge::new(train, train, test, ("real: 1000 other test images".into(), real), 2)
}

/// `sance-hd score FILE...`: the Fashion-MNIST ladder and a row per file of raw samples.
fn cmd_score(args: &[String]) -> Result<(), String> {
    // `--out GRID.png` anywhere: a row of real test images, then a row per file.
    let mut files: Vec<String> = vec![];
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--out" {
            out = Some(it.next().ok_or("--out needs a value")?.clone());
        } else {
            files.push(a.clone());
        }
    }
    if files.is_empty() {
        return Err(format!("score needs at least one FILE.f32\n{USAGE}"));
    }
    let train_set = datasets::load_fashion(&datasets::fashion_dir(), true)?;
    let test_set = datasets::load_fashion(&datasets::fashion_dir(), false)?;
    let judge = fashion_judge(&train_set, &test_set);
    println!(
        "judge: conv classifier (2 epochs), test accuracy {:.1} %; every set is compared with 1000 test images",
        100.0 * judge.classifier.test_accuracy
    );
    judge.print_ladder();
    let mut pictures: Vec<Vec<f32>> = vec![];
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| format!("{f}: {e}"))?;
        if bytes.is_empty() || bytes.len() % (4 * 784) != 0 {
            return Err(format!("{f}: {} bytes is not a whole number of 784-float rows", bytes.len()));
        }
        let raw: Vec<f32> =
            bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if raw.iter().any(|v| !v.is_finite()) {
            return Err(format!("{f}: holds values that are not finite"));
        }
        let x = to_pixels(&raw);
        println!("{}", score::row(&format!("{f} ({} images)", raw.len() / 784), &judge.score(&x), None));
        pictures.push(x[..(x.len()).min(32 * 784)].to_vec());
    }
    if let Some(out) = out {
        let mut rows_: Vec<(&str, &[f32])> = vec![("real", &judge.reference().pixels[..16 * 784])];
        for p in &pictures {
            rows_.extend(p.chunks(16 * 784).map(|r| ("file", r)));
        }
        image_grid(&out, &rows_, 28, 28, 16, 2).map_err(|e| format!("{out}: {e}"))?;
        println!("wrote {out}: a row of test images, then two rows (the first 32 images) per file");
    }
    Ok(())
}

/// Raw little-endian float32, row-major, each value clamped to the pixel range [−1, 1].
fn write_f32(path: &std::path::Path, x: &[f32]) -> std::io::Result<()> {
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.clamp(-1.0, 1.0).to_le_bytes()).collect();
    std::fs::write(path, bytes)
}

fn main() {
    // The experiments are the machine's only job: every core, not the library's one-thread
    // default for shared nodes (docs/c-api.md, "Threads"). SANCE_NUM_THREADS set by the caller
    // wins; results are the same for any count.
    if std::env::var_os("SANCE_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("SANCE_NUM_THREADS", cores.to_string());
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    if cmd == "score" {
        if let Err(e) = cmd_score(rest) {
            eprintln!("sance-hd: {e}");
            std::process::exit(1);
        }
        return;
    }
    let mut o = match parse(rest) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sance-hd: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if cmd == "fashion" && !rest.iter().any(|a| a == "--log-every") {
        // Fashion's pictures and checkpoints every 500 steps (each picture runs 32 chains).
        o.log_every = 500;
    }
    let r = match cmd {
        "mixture" => cmd_mixture(&o),
        "digits" => cmd_digits(&o),
        "fashion" => cmd_fashion(&o),
        "help" | "--help" | "-h" => {
            print!("{USAGE}{}", sance_experiments::cli::USAGE);
            Ok(())
        }
        c => Err(format!("unknown command {c}\n{USAGE}")),
    };
    if let Err(e) = r {
        eprintln!("sance-hd: {e}");
        std::process::exit(1);
    }
}
