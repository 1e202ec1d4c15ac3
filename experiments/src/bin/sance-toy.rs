//! sance-toy: trains an EBM on a built-in 2-D dataset, samples it, writes a picture; or sweeps
//! the snapshot refresh interval K. Run `sance-toy help` for the options.
use sance::abi::config::SanceConfig;
use sance::model::toy::{toy_dataset, TOY_DATASETS};
use sance::Ebm;
use sance_experiments::cli::{Flags, Overrides};
use sance_experiments::held_out::Progress;
use sance_experiments::plot::{ramp, Canvas};
use sance_experiments::toy as eval;
use std::time::Instant;
use tch::Kind;

const USAGE: &str = "\
usage:
  sance-toy train [--dataset NAME] [--steps N] [--batch B] [--k K] [--seed S] [--out FILE.png]
                  [--log-every N] [--sample-steps T] and the options below
  sance-toy sweep [--dataset NAME[,NAME...]|all] [--steps N] [--batch B] [--ks 1,10,25,100,1000]
                  [--seeds 0,1,2] and the options below (--k is the sweep's --ks)
datasets: 8gaussians, rings, checkerboard, 2spirals, pinwheel
";

#[derive(Clone)]
struct Opts {
    dataset: String,
    steps: u64,
    batch: usize,
    k: u32,
    seed: u64,
    out: String,
    log_every: u64,
    sample_steps: u32,
    ks: Vec<u32>,
    seeds: Vec<u64>,
    /// Overrides of the default config, but for K (`k`, or each of `ks`).
    config: Overrides,
    datasets: Vec<String>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let (mut datasets, mut ks, mut seed) = (Vec::new(), vec![1, 10, 100, 300, 1000], 0);
    let mut f = Flags::parse(args, |flag, a| {
        match flag {
            // train's one seed; sweep's are --seeds.
            "--seed" => seed = a.number(flag)?,
            "--dataset" => {
                let v = a.value(flag)?;
                datasets = if v == "all" {
                    TOY_DATASETS.iter().map(|s| s.to_string()).collect()
                } else {
                    v.split(',').map(str::to_string).collect()
                };
            }
            "--ks" => ks = a.list(flag)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if datasets.is_empty() {
        datasets = vec!["8gaussians".into()];
    }
    if let Some(d) = datasets.iter().find(|d| !TOY_DATASETS.contains(&d.as_str())) {
        return Err(format!("unknown dataset {d}"));
    }
    let seeds = f.seeds.clone().unwrap_or(vec![0]);
    Ok(Opts {
        dataset: datasets[0].clone(),
        steps: f.steps.unwrap_or(4000),
        batch: f.batch.unwrap_or(256),
        k: f.config.k.take().unwrap_or(SanceConfig::default().noise_update_interval),
        seed,
        out: f.out.clone().unwrap_or_else(|| format!("sance-{}.png", datasets[0])),
        log_every: f.log_every.unwrap_or(250),
        sample_steps: f.sample_steps.unwrap_or(500),
        ks,
        seeds,
        config: f.config,
        datasets,
    })
}

/// Quality of a trained model against its dataset.
struct Scores {
    /// Mean log-likelihood of fresh data (nats), normalised on [−20, 20]² (eval::normaliser).
    test_ll: f64,
    /// log Z on the grid, and by annealed importance sampling with the library's defaults.
    log_z: f64,
    ais: sance::model::ais::Estimate,
    /// The same log-likelihood normalised by the AIS estimate.
    test_ll_ais: f64,
    /// Share of the model's mass inside [−6, 6]², the box that holds the data, and outside it.
    mass_in_box: f64,
    mass_outside: f64,
    /// KL(data ‖ model), where the data density is known (8gaussians, rings, checkerboard).
    kl: Option<f64>,
    /// Squared MMD (RBF, bandwidth 0.5) between 2000 model samples and 2000 data samples.
    mmd2: f64,
    samples: Vec<f32>,
}

fn data_batch(name: &str, n: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0f32; 2 * n];
    toy_dataset(name, n, seed, &mut v).expect("dataset name checked");
    v
}

fn score(ebm: &mut Ebm, dataset: &str, sample_steps: u32) -> Scores {
    let test = data_batch(dataset, 5000, 1 << 40);
    let z = eval::normaliser(ebm);
    let e = ebm
        .energy(&ebm.tensor_from(&test, 5000).expect("test tensor"))
        .expect("energies")
        .to_kind(Kind::Double);
    let mean_e = e.mean(Kind::Double).double_value(&[]);
    let test_ll = -mean_e - z.log_z;
    let ais = ebm.ais_defaults().and_then(|p| ebm.estimate_log_normaliser(&p)).expect("AIS estimate");
    let test_ll_ais = -mean_e - ais.log_z;
    let kl = eval::kl(ebm, dataset, 5000, 1 << 41, z.log_z);
    let mut l = ebm.config().langevin;
    l.steps = sample_steps.max(1);
    let x = ebm.sample(2000, &l).expect("valid sampler");
    let samples =
        Vec::<f32>::try_from(x.to_device(tch::Device::Cpu).to_kind(Kind::Float).flatten(0, -1)).unwrap();
    let truth = data_batch(dataset, 2000, 1 << 42);
    let mmd2 = eval::mmd2_rbf(&samples, &truth, 2, 0.5);
    Scores {
        test_ll,
        log_z: z.log_z,
        ais,
        test_ll_ais,
        mass_in_box: z.mass_in_box,
        mass_outside: z.mass_outside,
        kl,
        mmd2,
        samples,
    }
}

fn train(o: &Opts, k: u32, seed: u64, verbose: bool) -> Result<(Ebm, f64), sance::Error> {
    let mut cfg = SanceConfig { seed, ..Default::default() };
    o.config.apply(&mut cfg);
    cfg.noise_update_interval = k;
    let mut ebm = Ebm::new(&cfg)?;
    if verbose {
        println!(
            "{}",
            unsafe { std::ffi::CStr::from_ptr(sance::ffi::api::sance_version()) }.to_string_lossy()
        );
        println!(
            "training on {} for {} steps of batch {} (K = {k}, device {:?}, seed {seed})",
            o.dataset,
            o.steps,
            o.batch,
            ebm.device()
        );
    }
    let mut progress = verbose.then(|| Progress::new(o.log_every));
    let held = data_batch(&o.dataset, 1000, 1 << 43);
    let t0 = Instant::now();
    for t in 0..o.steps {
        let batch = data_batch(&o.dataset, o.batch, seed.wrapping_mul(1_000_003).wrapping_add(t));
        let s = ebm.train_step(&ebm.tensor_from(&batch, o.batch)?)?;
        if let Some(p) = progress.as_mut().filter(|_| s.step % o.log_every == 0 || s.step == o.steps) {
            p.row(&ebm, &s, &held);
        }
    }
    Ok((ebm, t0.elapsed().as_secs_f64() - progress.map_or(0.0, |p| p.eval_secs())))
}

fn picture(ebm: &Ebm, o: &Opts, samples: &[f32]) -> std::io::Result<()> {
    const P: usize = 360; // panel size in pixels
    const GAP: usize = 12;
    const LIM: f64 = 5.0; // panels show [−LIM, LIM]²
    let mut c = Canvas::new(3 * P + 4 * GAP, P + 2 * GAP, [255, 255, 255]);
    let to_px = |v: f64| (v + LIM) / (2.0 * LIM) * P as f64;
    let panel = |i: usize| (GAP + i * (P + GAP)) as f64;

    // Panel 3: model density exp(−E)/Z with energy contours every nat above the minimum.
    let (g, _) = eval::grid(-LIM, LIM, P as i64);
    let e = Vec::<f64>::try_from(
        ebm.energy(&g.to_kind(ebm.kind()).to_device(ebm.device()))
            .expect("grid energies")
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu),
    )
    .unwrap();
    let e_min = e.iter().cloned().fold(f64::INFINITY, f64::min);
    let density: Vec<f64> = e.iter().map(|v| (-(v - e_min)).exp()).collect();
    // Contours every 1.5 nats above the minimum, the first 8 levels.
    const LEVELS: i64 = 8;
    let level = |v: f64| ((v - e_min) / 1.5).floor().min(LEVELS as f64) as i64;
    for i in 0..P {
        for j in 0..P {
            // grid index: x = i-th value, y = j-th value; image rows run top-down.
            let idx = i * P + j;
            let mut col = ramp(density[idx].sqrt());
            let right = if i + 1 < P { level(e[idx + P]) } else { level(e[idx]) };
            let down = if j + 1 < P { level(e[idx + 1]) } else { level(e[idx]) };
            if level(e[idx]) < LEVELS && (right != level(e[idx]) || down != level(e[idx])) {
                col = [255, 255, 255];
            }
            c.set((panel(2) as usize + i) as i64, (GAP + P - 1 - j) as i64, col);
        }
    }
    // Panels 1 and 2: data and model samples.
    let data = data_batch(&o.dataset, 2000, 1 << 43);
    for (k, (pts, col)) in [(&data[..], [31u8, 119, 180]), (samples, [214u8, 39, 40])].iter().enumerate() {
        for p in pts.chunks(2).filter(|p| p[0].abs() < LIM as f32 && p[1].abs() < LIM as f32) {
            let (x, y) = (to_px(p[0] as f64), to_px(p[1] as f64));
            c.dot(panel(k) + x, GAP as f64 + P as f64 - y, 1.6, *col, 0.45);
        }
    }
    for k in 0..3 {
        let x0 = panel(k) as i64 - 1;
        c.rect_outline(x0, GAP as i64 - 1, x0 + P as i64, (GAP + P) as i64, [120, 120, 120]);
    }
    c.write_png(&o.out)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    let o = match parse(rest) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sance-toy: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let result = match cmd {
        "train" => cmd_train(&o),
        "sweep" => cmd_sweep(&o),
        "help" | "--help" | "-h" => {
            print!("{USAGE}{}", sance_experiments::cli::USAGE);
            Ok(())
        }
        _ => Err(format!("unknown command {cmd}")),
    };
    if let Err(e) = result {
        eprintln!("sance-toy: {e}");
        std::process::exit(1);
    }
}

fn cmd_train(o: &Opts) -> Result<(), String> {
    let (mut ebm, secs) = train(o, o.k, o.seed, true).map_err(|e| e.to_string())?;
    let s = score(&mut ebm, &o.dataset, o.sample_steps);
    println!("trained in {secs:.1} s ({:.0} steps/s)", o.steps as f64 / secs);
    println!(
        "normaliser: {n}x{n} grid over [-{w},{w}]^2; model mass inside [-{b},{b}]^2 (the data's box): {:.4} \
         (outside: {:.1e})",
        s.mass_in_box,
        s.mass_outside,
        n = eval::WIDE_RES,
        w = eval::WIDE,
        b = eval::BOX
    );
    println!("test log-likelihood: {:.3} nats", s.test_ll);
    println!(
        "held-out log-likelihood by sance_ebm_log_z (AIS, default settings): {:.3} nats (log Z {:.3} ± \
         {:.3}; the grid's {:.3})",
        s.test_ll_ais, s.ais.log_z, s.ais.std_error, s.log_z
    );
    if let Some(kl) = s.kl {
        println!("KL(data || model): {kl:.3} nats");
    }
    println!("MMD^2 (RBF 0.5, 2000 samples of {} Langevin steps): {:.5}", o.sample_steps, s.mmd2);
    picture(&ebm, o, &s.samples).map_err(|e| format!("writing {}: {e}", o.out))?;
    println!(
        "wrote {} (left: data, middle: model samples, right: model density with energy contours)",
        o.out
    );
    Ok(())
}

fn cmd_sweep(o: &Opts) -> Result<(), String> {
    for d in &o.datasets {
        sweep_one(&Opts { dataset: d.clone(), datasets: vec![d.clone()], ..o.clone() })?;
    }
    Ok(())
}

fn sweep_one(o: &Opts) -> Result<(), String> {
    println!(
        "sweep of the refresh interval K on {} ({} steps of batch {}, seeds {:?})",
        o.dataset, o.steps, o.batch, o.seeds
    );
    println!(
        "(test LL and KL normalised on [-{w},{w}]^2; mass: the model's share inside [-{b},{b}]^2)",
        w = eval::WIDE,
        b = eval::BOX
    );
    println!("| K | test LL (nats) | KL (nats) | mass in box | MMD² | seconds |");
    println!("|---|---|---|---|---|---|");
    for &k in &o.ks {
        let (mut ll, mut kl, mut mass, mut mmd, mut secs) = (vec![], vec![], vec![], vec![], 0.0);
        for &seed in &o.seeds {
            let (mut ebm, t) = train(o, k, seed, false).map_err(|e| e.to_string())?;
            let s = score(&mut ebm, &o.dataset, o.sample_steps);
            ll.push(s.test_ll);
            kl.extend(s.kl);
            mass.push(s.mass_in_box);
            mmd.push(s.mmd2);
            secs += t;
        }
        let fmt = |v: &[f64], p: usize| -> String {
            if v.is_empty() {
                return "—".into();
            }
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            if v.len() == 1 {
                return format!("{mean:.p$}");
            }
            let (lo, hi) = (
                v.iter().cloned().fold(f64::INFINITY, f64::min),
                v.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            );
            format!("{mean:.p$} ({lo:.p$}…{hi:.p$})")
        };
        println!(
            "| {k} | {} | {} | {} | {} | {:.0} |",
            fmt(&ll, 3),
            fmt(&kl, 3),
            fmt(&mass, 4),
            fmt(&mmd, 4),
            secs / o.seeds.len() as f64
        );
    }
    Ok(())
}
