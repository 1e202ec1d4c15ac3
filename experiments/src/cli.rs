//! One flag parser for the options the programs share: the run's (`--steps`, `--seeds`,
//! `--batch`, `--out`, `--log-every`, `--sample-steps`) and the overrides of [`SanceConfig`]'s
//! defaults ([`Overrides`], applied by [`Overrides::apply`]). Each program passes the flags
//! only it knows to its own closure.
use sance::abi::config::{SanceConfig, SanceConvHead, SanceNoise, SanceScaling};
use std::str::FromStr;

/// What `help` prints for the shared flags, after a program's own.
pub const USAGE: &str = "\
options the programs share (each overrides the library's default; sance-lowd takes no --out,
--log-every or --sample-steps):
  --steps N  --seeds S,S,...  --batch B  --out FILE  --log-every N  --sample-steps T
  --device cpu|cuda|cuda:K|K   --k K (snapshot refresh interval)   --noise snapshot|gaussian
  --lr R  --beta1 B  --clip C  --energy-l2 A  --ema DECAY  --noise-ratio R  --data-noise S
  --width W  --layers L  --head sum|dense  --buffer N  --reinit P (alias --restart)
  --langevin-steps T  --step-size L (a fixed λ, σ = √(2λ))  --noise-std S  --grad-clamp G
  --clamp C|LO,HI (chains kept in [−C, C] or [LO, HI])  --mala  --ula (neither test nor tuning)
  --target-acceptance A  --no-scaling (train on the data as given)
By default MALA tunes its step λ to an acceptance of 0.6; a --step-size keeps λ fixed at
temperature 1. --reinit 0 (the default) keeps the replay buffer a population of the snapshot;
P > 0 restarts that share of the chains each step (short-run chains, as the image recipe).
";

/// The command line's overrides of a config; `None`/`false` keeps the default.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub k: Option<u32>,
    pub gaussian_noise: bool,
    pub lr: Option<f32>,
    pub beta1: Option<f32>,
    pub clip: Option<f32>,
    pub energy_l2: Option<f32>,
    pub ema: Option<f32>,
    pub noise_ratio: Option<f32>,
    pub data_noise: Option<f32>,
    pub width: Option<u32>,
    pub layers: Option<u32>,
    pub head: Option<SanceConvHead>,
    pub buffer: Option<u32>,
    pub reinit: Option<f32>,
    pub langevin_steps: Option<u32>,
    pub step_size: Option<f32>,
    pub noise_std: Option<f32>,
    pub grad_clamp: Option<f32>,
    pub clamp: Option<(f32, f32)>,
    pub mala: bool,
    pub ula: bool,
    pub target_acceptance: Option<f32>,
    pub no_scaling: bool,
    pub device: Option<i32>,
}

impl Overrides {
    /// Writes the overrides into `c`.
    pub fn apply(&self, c: &mut SanceConfig) {
        let set = |dst: &mut f32, v: Option<f32>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        if let Some(k) = self.k {
            c.noise_update_interval = k;
        }
        if self.gaussian_noise {
            c.noise = SanceNoise::Gaussian;
        }
        set(&mut c.learning_rate, self.lr);
        set(&mut c.adam_beta1, self.beta1);
        set(&mut c.grad_clip, self.clip);
        set(&mut c.energy_l2, self.energy_l2);
        set(&mut c.ema_decay, self.ema);
        set(&mut c.noise_ratio, self.noise_ratio);
        set(&mut c.data_noise_std, self.data_noise);
        set(&mut c.replay_reinit_prob, self.reinit);
        for (dst, v) in [(&mut c.hidden_width, self.width), (&mut c.hidden_layers, self.layers)] {
            if let Some(v) = v {
                *dst = v;
            }
        }
        if let Some(h) = self.head {
            c.conv_head = h;
        }
        if let Some(n) = self.buffer {
            c.replay_capacity = n;
        }
        if let Some(d) = self.device {
            c.device = d;
        }
        if self.no_scaling {
            c.scaling = SanceScaling::None;
        }
        let l = &mut c.langevin;
        if let Some(t) = self.langevin_steps {
            l.steps = t;
        }
        if let Some(v) = self.step_size {
            // A step given is kept fixed, at temperature 1.
            l.step_size = v;
            l.noise_std = (2.0 * v).sqrt();
            l.target_acceptance = 0.0;
        }
        set(&mut l.noise_std, self.noise_std);
        set(&mut l.grad_clamp, self.grad_clamp);
        if let Some((lo, hi)) = self.clamp {
            (l.clamp_min, l.clamp_max) = (lo, hi);
        }
        if self.mala {
            l.metropolis = 1;
        }
        if self.ula {
            // sance 0.4's sampler: unadjusted, with a fixed step.
            l.metropolis = 0;
            l.target_acceptance = 0.0;
        }
        set(&mut l.target_acceptance, self.target_acceptance);
    }
}

/// The shared flags of one command line.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub steps: Option<u64>,
    pub seeds: Option<Vec<u64>>,
    pub batch: Option<usize>,
    pub out: Option<String>,
    pub log_every: Option<u64>,
    pub sample_steps: Option<u32>,
    pub config: Overrides,
}

/// The arguments after a flag, for a program's own flags.
pub struct Args<'a> {
    it: std::slice::Iter<'a, String>,
}

impl Args<'_> {
    /// The next argument, the value of `flag`.
    pub fn value(&mut self, flag: &str) -> Result<String, String> {
        self.it.next().cloned().ok_or(format!("{flag} needs a value"))
    }

    /// The value of `flag`, parsed.
    pub fn number<T: FromStr>(&mut self, flag: &str) -> Result<T, String> {
        let v = self.value(flag)?;
        v.parse().map_err(|_| format!("{flag}: not a valid number: {v}"))
    }

    /// The value of `flag`, a comma-separated list.
    pub fn list<T: FromStr>(&mut self, flag: &str) -> Result<Vec<T>, String> {
        let v = self.value(flag)?;
        v.split(',').map(|s| s.trim().parse().map_err(|_| format!("{flag}: not a valid list: {v}"))).collect()
    }
}

/// `--device`: `cpu`, `cuda` (CUDA device 0), `cuda:K`, or the C API's integer (−1 the CPU, K
/// CUDA device K).
pub fn device(v: &str) -> Result<i32, String> {
    match v {
        "cpu" => Ok(-1),
        "cuda" => Ok(0),
        _ => v
            .strip_prefix("cuda:")
            .unwrap_or(v)
            .parse()
            .map_err(|_| format!("--device {v}: expected cpu, cuda, cuda:K or an integer")),
    }
}

/// The device the claim tests put their models on: SANCE_TEST_DEVICE is `cpu` (the default),
/// `cuda` (CUDA device 0) or `cuda:K`; anything else stops the test, so that a typo cannot
/// quietly run the suite on the CPU (as tests/common/mod.rs reads it for libsance's tests).
pub fn test_device() -> i32 {
    match std::env::var("SANCE_TEST_DEVICE").as_deref() {
        Err(_) | Ok("") | Ok("cpu") => -1,
        Ok("cuda") => 0,
        Ok(v) => v
            .strip_prefix("cuda:")
            .and_then(|k| k.parse::<i32>().ok())
            .filter(|&k| k >= 0)
            .unwrap_or_else(|| panic!("SANCE_TEST_DEVICE={v}: expected cpu, cuda or cuda:K")),
    }
}

impl Flags {
    /// Parses `args`; a flag the shared parser does not know goes to `own`, which returns
    /// whether it took it (reading its value from the [`Args`] it gets).
    pub fn parse(
        args: &[String],
        mut own: impl FnMut(&str, &mut Args) -> Result<bool, String>,
    ) -> Result<Flags, String> {
        let mut f = Flags::default();
        let mut a = Args { it: args.iter() };
        while let Some(flag) = a.it.next() {
            let flag = flag.as_str();
            let c = &mut f.config;
            match flag {
                "--steps" => f.steps = Some(a.number(flag)?),
                "--seeds" => f.seeds = Some(a.list(flag)?),
                "--batch" => f.batch = Some(a.number(flag)?),
                "--out" => f.out = Some(a.value(flag)?),
                "--log-every" => f.log_every = Some(a.number::<u64>(flag)?.max(1)),
                "--sample-steps" => f.sample_steps = Some(a.number(flag)?),
                "--device" => c.device = Some(device(&a.value(flag)?)?),
                "--k" => c.k = Some(a.number(flag)?),
                "--noise" => {
                    c.gaussian_noise = match a.value(flag)?.as_str() {
                        "snapshot" => false,
                        "gaussian" => true,
                        v => return Err(format!("--noise: snapshot or gaussian, not {v}")),
                    }
                }
                "--lr" => c.lr = Some(a.number(flag)?),
                "--beta1" => c.beta1 = Some(a.number(flag)?),
                "--clip" => c.clip = Some(a.number(flag)?),
                "--energy-l2" => c.energy_l2 = Some(a.number(flag)?),
                "--ema" => c.ema = Some(a.number(flag)?),
                "--noise-ratio" => c.noise_ratio = Some(a.number(flag)?),
                "--data-noise" => c.data_noise = Some(a.number(flag)?),
                "--width" => c.width = Some(a.number(flag)?),
                "--layers" => c.layers = Some(a.number(flag)?),
                "--head" => {
                    c.head = Some(match a.value(flag)?.as_str() {
                        "sum" => SanceConvHead::Sum,
                        "dense" => SanceConvHead::Dense,
                        h => return Err(format!("--head: sum or dense, not {h}")),
                    })
                }
                "--buffer" => c.buffer = Some(a.number(flag)?),
                "--reinit" | "--restart" => c.reinit = Some(a.number(flag)?),
                "--langevin-steps" => c.langevin_steps = Some(a.number(flag)?),
                "--step-size" => c.step_size = Some(a.number(flag)?),
                "--noise-std" => c.noise_std = Some(a.number(flag)?),
                "--grad-clamp" => c.grad_clamp = Some(a.number(flag)?),
                "--clamp" => {
                    let v: Vec<f32> = a.list(flag)?;
                    c.clamp = Some(match v[..] {
                        [c] if c > 0.0 => (-c, c),
                        [lo, hi] if lo < hi => (lo, hi),
                        _ => return Err("--clamp takes C > 0 or LO,HI with LO < HI".into()),
                    });
                }
                "--mala" => c.mala = true,
                "--ula" => c.ula = true,
                "--target-acceptance" => c.target_acceptance = Some(a.number(flag)?),
                "--no-scaling" => c.no_scaling = true,
                _ => {
                    if !own(flag, &mut a)? {
                        return Err(format!("unknown option {flag}"));
                    }
                }
            }
        }
        let c = &f.config;
        if c.ula && (c.mala || c.target_acceptance.is_some()) {
            return Err(
                "--ula turns the Metropolis test and its tuning off: not with --mala or --target-acceptance"
                    .into(),
            );
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn shared_and_own_flags() {
        let mut sets = String::new();
        let f = Flags::parse(
            &args("--steps 10 --sets a,b --clamp 3 --step-size 0.02 --k 5 --device cuda:1"),
            |flag, a| {
                Ok(flag == "--sets" && {
                    sets = a.value(flag)?;
                    true
                })
            },
        )
        .unwrap();
        assert_eq!((f.steps, sets.as_str(), f.config.clamp), (Some(10), "a,b", Some((-3.0, 3.0))));
        let mut c = SanceConfig::default();
        f.config.apply(&mut c);
        assert_eq!((c.noise_update_interval, c.device), (5, 1));
        assert_eq!((c.langevin.step_size, c.langevin.target_acceptance), (0.02, 0.0));
        assert!((c.langevin.noise_std - 0.2).abs() < 1e-6);
        assert!(Flags::parse(&args("--nope"), |_, _| Ok(false)).unwrap_err().contains("--nope"));
        assert!(Flags::parse(&args("--ula --mala"), |_, _| Ok(false)).is_err());
        assert!(Flags::parse(&args("--clamp 2,1"), |_, _| Ok(false)).is_err());
        // Nothing given: the config is the library's default.
        let (mut a, b) = (SanceConfig::default(), SanceConfig::default());
        Overrides::default().apply(&mut a);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}
