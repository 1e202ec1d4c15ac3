//! The self-adapting NCE trainer: model θ, noise snapshot θ̄, offset c, Adam, replay buffer.
//! docs/algorithm.md gives the equations this file implements, step by step.
//!
//! Every operation whose size follows the caller's data (batches, sample counts) or the
//! config uses tch's fallible `f_` functions, and every public method that changes the model
//! changes nothing when it fails: a libtorch error (out of memory on a large batch, say)
//! comes back as SANCE_STATUS_TORCH and the model stays usable.
use crate::abi::config::{
    validate_config, validate_langevin, SanceConfig, SanceLangevin, SanceNoise, SANCE_DEVICE_AUTO, SANCE_DEVICE_CPU,
};
use crate::abi::stats::{SanceProgress, SanceStepStats};
use crate::abi::status::{Error, Result};
use crate::fault::torch_point;
use crate::ffi::boundary::{catch_torch, restoring};
use crate::model::adam::Adam;
use crate::model::gaussian::Gaussian;
use crate::model::collective::{self, Collective, Phase};
use crate::model::flat;
use crate::model::langevin;
use crate::model::net::{copy_of, Net, Params};
use crate::model::replay::{Draw, ReplayBuffer};
use crate::model::rng::Rng;
use crate::model::threads;
use tch::{Device, Kind, Tensor};

/// Resolves `SanceConfig::device` to a libtorch device.
pub fn resolve_device(d: i32) -> Result<Device> {
    match d {
        SANCE_DEVICE_CPU => Ok(Device::Cpu),
        SANCE_DEVICE_AUTO => Ok(if tch::Cuda::is_available() { Device::Cuda(0) } else { Device::Cpu }),
        k if k >= 0 => {
            let n = tch::Cuda::device_count();
            if n == 0 {
                Err(Error::device(format!(
                    "config.device asks for CUDA device {k}, but no CUDA device is available \
                     (no GPU, no driver, or a CPU-only libtorch); use -1 (CPU) or -2 (auto)"
                )))
            } else if k as i64 >= n {
                Err(Error::device(format!(
                    "config.device asks for CUDA device {k}, but only {n} CUDA device(s) exist (0..{})",
                    n - 1
                )))
            } else {
                Ok(Device::Cuda(k as usize))
            }
        }
        k => Err(Error::invalid(format!("config.device has invalid value {k}"))),
    }
}

#[derive(Debug)]
pub struct Ebm {
    /// The validated config, with `device` resolved (-1 or a CUDA index).
    cfg: SanceConfig,
    pub(crate) device: Device,
    pub(crate) kind: Kind,
    pub(crate) net: Net,
    /// θ then c, end to end in one buffer (crate::model::flat): `params` and `c` are leaf
    /// views of it, so AdamW, the backup and its restore each touch one tensor.
    theta: Tensor,
    /// θ (leaf tensors requiring grad, views of `theta`).
    pub(crate) params: Params,
    /// c, a 0-d tensor requiring grad (the last entry of `theta`).
    pub(crate) c: Tensor,
    /// θ̄ (no grad); None until the first refresh.
    pub(crate) snapshot: Option<Params>,
    /// Moments for θ (in `Params::named` order) then c.
    pub(crate) adam: Adam,
    pub(crate) buffer: ReplayBuffer,
    pub(crate) rng: Rng,
    pub(crate) step: u64,
    pub(crate) refresh_count: u64,
    /// Provenance of the last step's noise chains (for tests and diagnostics).
    pub(crate) last_draw: Option<Draw>,
    /// GAUSSIAN noise: the fitted density; None until `fit_noise` or the first step.
    pub(crate) gaussian: Option<Gaussian>,
    /// The host's reduction over ranks (data-parallel training), once registered.
    collective: Option<Collective>,
    /// Which reductions the current training step still owes the other ranks.
    phase: Phase,
}

/// Statistics averaged over ranks with the gradient: loss, accuracy, mean data energy, mean
/// noise energy, the sampler's gradient norm, its acceptance rate.
const STATS_REDUCED: usize = 6;

/// What an update overwrites: θ and c (flat), then Adam's moments (flat) and count.
type Backup = (Tensor, Tensor, Tensor, u64);

impl Ebm {
    pub fn new(cfg: &SanceConfig) -> Result<Ebm> {
        Ebm::with_kind(cfg, Kind::Float)
    }

    /// A model computing in `kind` (the C API always uses float32; tests use float64).
    pub fn with_kind(cfg: &SanceConfig, kind: Kind) -> Result<Ebm> {
        validate_config(cfg)?;
        let device = resolve_device(cfg.device)?;
        let mut cfg = *cfg;
        cfg.device = match device {
            Device::Cuda(k) => k as i32,
            _ => SANCE_DEVICE_CPU,
        };
        let net = Net::from_config(&cfg);
        if matches!(device, Device::Cuda(_)) && cfg.arch == crate::abi::config::SanceArch::Conv {
            crate::model::cudnn::make_deterministic();
        }
        let mut rng = Rng::new(cfg.seed);
        let init = net.init_params(&mut rng, kind, device)?;
        // θ as initialised, then c = 0, moved into one buffer of leaf views.
        let mut shapes: Vec<Vec<i64>> = init.iter().map(|p| p.size()).collect();
        shapes.push(vec![]);
        let c0 = Tensor::f_zeros([], (kind, device))?;
        let theta = crate::model::no_grad(|| flat::concat(init.iter().chain([&c0])))?;
        let mut views = flat::views(&theta, &shapes)?.into_iter().map(|v| v.detach().set_requires_grad(true));
        let params = init.try_map(|_| Ok(views.next().expect("one view per tensor")))?;
        let c = views.next().expect("c's view");
        let adam = Adam::new(
            &shapes,
            (kind, device),
            cfg.learning_rate as f64,
            cfg.adam_beta1 as f64,
            cfg.adam_beta2 as f64,
            cfg.weight_decay as f64,
        )?;
        Ok(Ebm {
            cfg,
            device,
            kind,
            net,
            theta,
            params,
            c,
            snapshot: None,
            adam,
            buffer: ReplayBuffer::new(cfg.replay_capacity as usize),
            rng,
            step: 0,
            refresh_count: 0,
            last_draw: None,
            gaussian: None,
            collective: None,
            phase: Phase::Done,
        })
    }

    pub fn config(&self) -> SanceConfig {
        self.cfg
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn step_count(&self) -> u64 {
        self.step
    }

    pub fn refresh_count(&self) -> u64 {
        self.refresh_count
    }

    /// The network's definition.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// θ, layer by layer.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// θ̄, once the first refresh has happened.
    pub fn snapshot(&self) -> Option<&Params> {
        self.snapshot.as_ref()
    }

    /// The current value of c.
    pub fn log_z(&self) -> f64 {
        self.c.double_value(&[])
    }

    pub fn sample_size(&self) -> usize {
        self.cfg.sample_size()
    }

    pub fn progress(&self) -> SanceProgress {
        SanceProgress {
            step: self.step,
            refresh_count: self.refresh_count,
            replay_len: self.buffer.len() as u64,
            log_z: self.log_z() as f32,
        }
    }

    /// Working memory of one sample in a pass over the net (input, output, gradients and
    /// the network's activations, roughly), in bytes.
    fn work_bytes_per_row(&self) -> f64 {
        let c = &self.cfg;
        let activations = match c.arch {
            crate::abi::config::SanceArch::Mlp => c.hidden_width as f64 * c.hidden_layers as f64,
            crate::abi::config::SanceArch::Conv => {
                c.hidden_width as f64 * c.height as f64 * c.width as f64 * (1.0 + c.hidden_layers as f64 * 0.5)
            }
        };
        (4.0 * self.sample_size() as f64 + 3.0 * activations) * 4.0
    }

    /// Refuses, before any allocation, a call on `n` samples whose working memory exceeds
    /// what the model's device has: the machine's physical memory on the CPU, the device's
    /// total memory on CUDA (crate::model::memory says why not what is free). An absurd size
    /// is an error, not an out-of-memory crash. A `chunked` call (sample, sample_from, energy,
    /// energy_grad) needs one chunk's work plus the n samples themselves on the device (on the
    /// CPU three copies: the caller's, the tensor's, the gathered result); a training step or
    /// a fit needs the work of all n.
    pub fn check_work_size(&self, n: usize, what: &str, chunked: bool) -> Result<()> {
        let per_row = self.work_bytes_per_row();
        let copies = if self.device == Device::Cpu { 3.0 } else { 1.0 };
        let bytes = if chunked {
            n.min(self.chunk_rows()) as f64 * per_row + copies * 4.0 * n as f64 * self.sample_size() as f64
        } else {
            n as f64 * per_row
        };
        let limit = crate::model::memory::available(self.device);
        if bytes > limit {
            let place = match self.device {
                Device::Cuda(k) => format!("CUDA device {k}'s"),
                _ => "this machine's".to_string(),
            };
            return Err(Error::invalid(format!(
                "{what} = {n} would need about {bytes:.3e} bytes of working memory, more than {place} {limit:.3e}"
            )));
        }
        Ok(())
    }

    /// Full batch shape [n, ...sample_shape].
    pub fn batch_shape(&self, n: i64) -> Vec<i64> {
        let mut s = vec![n];
        s.extend(self.cfg.sample_shape());
        s
    }

    /// Copies `n` row-major samples into a tensor on the model's device and dtype.
    pub fn tensor_from(&self, data: &[f32], n: usize) -> Result<Tensor> {
        debug_assert_eq!(data.len(), n * self.sample_size());
        Ok(Tensor::f_from_slice(data)?
            .f_view(self.batch_shape(n as i64).as_slice())?
            .f_to_device(self.device)?
            .f_to_kind(self.kind)?)
    }

    /// The fitted noise Gaussian (GAUSSIAN noise), once fitted.
    pub fn gaussian(&self) -> Option<&Gaussian> {
        self.gaussian.as_ref()
    }

    /// GAUSSIAN noise: fits the noise density's mean and covariance to `x` [N, ...], N >= 2
    /// (docs/algorithm.md gives the ridge and when the covariance is diagonal). Replaces an
    /// earlier fit (c is set only before the first step, see `install_fit`). On failure
    /// nothing changes.
    pub fn fit_noise(&mut self, x: &Tensor) -> Result<()> {
        if self.cfg.noise != SanceNoise::Gaussian {
            return Err(Error::invalid(
                "fit_noise: config.noise is SANCE_NOISE_SNAPSHOT, whose noise is the model itself; a fitted \
                 Gaussian is used only with SANCE_NOISE_GAUSSIAN",
            ));
        }
        let n = x.size()[0];
        if n < 2 {
            return Err(Error::invalid(format!("fit_noise: n must be at least 2 to estimate a covariance (got {n})")));
        }
        let c_before = copy_of(&self.c)?;
        let r = catch_torch(|| self.install_fit(x));
        if r.is_err() {
            restoring(|| crate::model::no_grad(|| self.c.copy_(&c_before)));
        }
        r
    }

    /// Fits q to `x` and, before the first step, starts c at the mean of log q over `x`:
    /// the model's log density −E + c then starts on q's scale (E ≈ 0 at initialisation), so
    /// that c need not climb tens of nats at the learning rate's pace first. A later refit
    /// leaves c to adapt. Nothing changes on failure.
    fn install_fit(&mut self, x: &Tensor) -> Result<()> {
        // The trainer adds N(0, s²I) to every data batch; q is fitted to what it classifies.
        let s = self.cfg.data_noise_std as f64;
        let g = Gaussian::fit(x, s * s, self.kind, self.device)?;
        torch_point()?;
        if self.step == 0 {
            let c0 = g.log_density(&x.f_to_device(self.device)?.f_to_kind(self.kind)?)?.f_mean(self.kind)?;
            crate::model::no_grad(|| self.c.f_copy_(&c0))?;
        }
        self.gaussian = Some(g);
        Ok(())
    }

    /// θ̄ ← θ and c ← 0, and c's Adam momentum ← 0 (its second moment is kept). Right after
    /// a refresh ∂L/∂c = 0, so c stays at 0 instead of being pushed by the momentum it built up
    /// tracking the previous snapshot's normaliser; the kept second moment keeps its steps at
    /// their usual scale (docs/algorithm.md). On failure nothing changes.
    pub fn refresh_noise(&mut self) -> Result<()> {
        if self.cfg.noise == SanceNoise::Gaussian {
            return Err(Error::invalid(
                "refresh_noise: config.noise is SANCE_NOISE_GAUSSIAN, a fixed density with no snapshot to \
                 refresh (refit it with fit_noise)",
            ));
        }
        let snapshot = catch_torch(|| {
            let s = self.params.detached_copy()?;
            torch_point()?;
            Ok(s)
        })?;
        let c_before = copy_of(&self.c)?;
        let m_before = copy_of(self.adam.m.last().expect("c has moments"))?;
        let zeroed = catch_torch(|| {
            let _ = crate::model::no_grad(|| self.c.f_zero_())?;
            torch_point()?;
            let _ = self.adam.m.last_mut().expect("c has moments").f_zero_()?;
            Ok(())
        });
        if let Err(e) = zeroed {
            // Copies into existing storage: nothing to allocate, nothing to fail.
            restoring(|| {
                crate::model::no_grad(|| {
                    self.c.copy_(&c_before);
                    self.adam.m.last_mut().expect("c has moments").copy_(&m_before);
                })
            });
            return Err(e);
        }
        self.snapshot = Some(snapshot);
        self.refresh_count += 1;
        Ok(())
    }

    /// One SA-NCE step on a data batch [B, ...]. On any failure — a non-finite loss or
    /// gradient (NonFinite), an update that makes the energies non-finite (NonFinite), or a
    /// libtorch error (Torch) — nothing changes: θ, θ̄, c, Adam, buffer, counters and the
    /// random stream are as before the call.
    pub fn train_step(&mut self, data: &Tensor) -> Result<SanceStepStats> {
        self.begin_step();
        let r = self.train_step_local(data);
        if r.is_err() {
            self.abandon_step();
        }
        r
    }

    /// Marks the start of a training step: with a reduction registered, its reductions are
    /// owed to the other ranks from here on.
    pub fn begin_step(&mut self) {
        self.phase = Phase::Start;
    }

    /// After a step failed on this rank: makes the reductions it still owes the other ranks,
    /// each flagged bad, so that every rank skips or undoes the step and none waits forever.
    /// The C entry point calls it too when a step fails before it reaches the model (NaN in
    /// the data, say).
    pub fn abandon_step(&mut self) {
        let Some(c) = self.collective else { return };
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Start => {
                let mut buf = vec![0f32; self.gradient_buffer_len()];
                *buf.last_mut().expect("non-empty") = 1.0;
                let _ = c.reduce(&mut buf, "a skipped step's gradient reduction");
            }
            Phase::Reduced => {
                let _ = c.reduce(&mut [1.0], "a skipped step's update check");
            }
            Phase::Done => {}
        }
    }

    /// θ and c, then the statistics averaged over ranks, then the flag of a bad rank.
    fn gradient_buffer_len(&self) -> usize {
        self.theta.numel() + STATS_REDUCED + 1
    }

    /// Registers the host's reduction (None unregisters); with one, training steps average
    /// the gradient, the statistics and the skip decisions over ranks. Registration is itself
    /// a reduction: it checks that all ranks hold the same θ, c, counters and config (the
    /// device aside). A model that has not trained yet then takes a stream of its own per rank
    /// for its noise chains (rank 0 keeps the seed's); a trained one (say, each rank resuming
    /// from its own checkpoint) keeps the stream it has. On failure nothing changes.
    pub fn set_allreduce(&mut self, c: Option<Collective>) -> Result<()> {
        let Some(c) = c else {
            self.collective = None;
            return Ok(());
        };
        let fingerprint = if c.world == 0 || c.rank >= c.world {
            Err(Error::invalid(format!(
                "set_allreduce: rank must be < world_size, world_size >= 1 (got rank {}, world_size {})",
                c.rank, c.world
            )))
        } else if self.cfg.noise == SanceNoise::Gaussian {
            Err(Error::invalid(
                "set_allreduce: a SANCE_NOISE_GAUSSIAN model cannot train data-parallel: each rank would fit its \
                 own noise density (and c) to its own data, and the ranks would drift apart",
            ))
        } else {
            self.fingerprint()
        };
        let fingerprint = match fingerprint {
            Ok(f) => f,
            Err(e) => {
                // The other ranks are entering the registration's reduction: take part with a
                // buffer that fails their check too (its size does not depend on the
                // arguments), so that every rank gets an error and none waits.
                let mut buf = collective::registration_buffer(0, 0, 1);
                buf[2] = f32::NAN;
                let _ = c.reduce(&mut buf, "registration");
                return Err(e);
            }
        };
        let mut buf = collective::registration_buffer(fingerprint, c.rank, c.world);
        c.reduce(&mut buf, "registration")?;
        collective::check_registration(&buf)?;
        if self.step == 0 && c.rank > 0 {
            let s = self.rng.state();
            let mut seed = collective::fnv1a(&c.rank.to_le_bytes(), collective::FNV_OFFSET);
            for w in s {
                seed = collective::fnv1a(&w.to_le_bytes(), seed);
            }
            self.rng = Rng::new(seed);
        }
        self.collective = Some(c);
        Ok(())
    }

    /// What every rank must agree on: the config (its device aside), θ and c, the counters.
    fn fingerprint(&self) -> Result<u64> {
        // The device index may differ (each rank its own GPU), its kind may not: the CPU and
        // CUDA round the update differently.
        let mut cfg = self.cfg;
        cfg.device = if self.device == Device::Cpu { SANCE_DEVICE_CPU } else { 0 };
        let mut h = collective::fnv1a(crate::checkpoint::config_json::to_json(&cfg).as_bytes(), collective::FNV_OFFSET);
        let theta = Vec::<f32>::try_from(self.theta.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?)?;
        for v in theta {
            h = collective::fnv1a(&v.to_bits().to_le_bytes(), h);
        }
        for n in [self.step, self.refresh_count, self.adam.t] {
            h = collective::fnv1a(&n.to_le_bytes(), h);
        }
        Ok(h)
    }

    fn train_step_local(&mut self, data: &Tensor) -> Result<SanceStepStats> {
        let b = data.size().first().copied().unwrap_or(0);
        let _threads = threads::Scope::for_call(self.net.arch, b.max(self.noise_rows(b)));
        if self.cfg.noise == SanceNoise::Gaussian {
            return self.train_step_gaussian(data);
        }
        let k = self.cfg.noise_update_interval as u64;
        let refresh = self.snapshot.is_none() || (k >= 1 && self.step.is_multiple_of(k));
        let rng_before = self.rng.clone();
        let c_before = copy_of(&self.c)?;
        let snap_before = if refresh { self.snapshot.take() } else { None };
        let c_momentum_before = copy_of(self.adam.m.last().expect("c has moments"))?;
        let count_before = self.refresh_count;
        // A libtorch failure anywhere, as an error or as the panic of an infallible op, ends
        // in the restore below.
        let r = catch_torch(|| {
            if refresh {
                self.refresh_noise()?;
            }
            self.step_inner(data)
        });
        match r {
            Ok(stats) => Ok(self.finish_step(stats, refresh)),
            Err(e) => {
                self.rng = rng_before;
                // A copy into existing storage allocates nothing.
                restoring(|| crate::model::no_grad(|| self.c.copy_(&c_before)));
                if refresh {
                    self.snapshot = snap_before;
                    self.refresh_count = count_before;
                    restoring(|| crate::model::no_grad(|| self.adam.m.last_mut().expect("c has moments").copy_(&c_momentum_before)));
                }
                Err(e)
            }
        }
    }

    /// Counts a step that succeeded and stamps its statistics with the counters.
    fn finish_step(&mut self, mut stats: SanceStepStats, refreshed: bool) -> SanceStepStats {
        self.step += 1;
        stats.step = self.step;
        stats.refresh_count = self.refresh_count;
        stats.refreshed = refreshed as i32;
        stats
    }

    /// A classic-NCE step: the Gaussian is fitted to this batch if it never was; no snapshot,
    /// no refresh, no chains. On failure nothing changes (a fit made here is undone).
    fn train_step_gaussian(&mut self, data: &Tensor) -> Result<SanceStepStats> {
        let rng_before = self.rng.clone();
        let fitted_here = self.gaussian.is_none();
        let c_before = copy_of(&self.c)?;
        let r = catch_torch(|| {
            if fitted_here {
                if data.size()[0] < 2 {
                    return Err(Error::invalid(
                        "the first step of SANCE_NOISE_GAUSSIAN fits the noise to its batch, which needs n >= 2 \
                         (or call fit_noise first)",
                    ));
                }
                self.install_fit(data)?;
            }
            self.step_inner(data)
        });
        match r {
            Ok(stats) => Ok(self.finish_step(stats, false)),
            Err(e) => {
                self.rng = rng_before;
                if fitted_here {
                    self.gaussian = None;
                    restoring(|| crate::model::no_grad(|| self.c.copy_(&c_before)));
                }
                Err(e)
            }
        }
    }

    /// Draws this step's noise: M chains from the replay buffer / init, `T` Langevin steps on
    /// E_θ̄. Writes nothing to the buffer.
    pub fn draw_noise(&mut self, m: usize) -> Result<(Tensor, Draw, langevin::RunStats)> {
        let l = self.cfg.langevin;
        let draw = self.buffer.plan(m, self.cfg.replay_reinit_prob as f64, &mut self.rng);
        let fresh = langevin::init_chains(
            &l,
            &self.batch_shape(draw.fresh as i64),
            self.kind,
            self.device,
            &mut self.rng,
        )?;
        let x0 = match self.buffer.gather(&draw)? {
            Some(r) => Tensor::f_cat(&[r.f_to_kind(self.kind)?, fresh], 0)?,
            None => fresh,
        };
        let snapshot = self.snapshot.as_ref().expect("snapshot exists during a step");
        let (x, run) = langevin::run(&self.net, snapshot, x0, &l, &mut self.rng, true)?;
        Ok((x, draw, run))
    }

    /// The NCE loss on given data and noise, differentiable in θ and c. Returns the loss and
    /// (h, E_θ) over the concatenation [data; noise].
    /// The logit is h = −E_θ(x) − log q(x) + c − ln ν, where log q = −E_θ̄ for the snapshot
    /// (its normaliser is absorbed by c) and the exact log density for GAUSSIAN noise.
    pub fn nce_loss(&self, data: &Tensor, noise: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let nu = self.cfg.noise_ratio as f64;
        let b = data.size()[0];
        let x = Tensor::f_cat(&[data, noise], 0)?;
        let n = x.size()[0] - b;
        let e = self.net.energy(&self.params, &x)?;
        let neg_log_q = match self.cfg.noise {
            SanceNoise::Snapshot => {
                let snapshot = self.snapshot.as_ref().expect("snapshot exists");
                crate::model::no_grad(|| self.net.energy(snapshot, &x))?
            }
            SanceNoise::Gaussian => {
                let g = self.gaussian.as_ref().expect("the Gaussian is fitted before a step");
                g.log_density(&x)?.f_neg()?
            }
        };
        let h = neg_log_q.f_sub(&e)?.f_add(&self.c)?.f_sub_scalar(nu.ln())?;
        let (h_d, h_n) = (h.f_narrow(0, 0, b)?, h.f_narrow(0, b, n)?);
        let mut loss = h_d
            .f_neg()?
            .f_softplus()?
            .f_mean(self.kind)?
            .f_add(&h_n.f_softplus()?.f_mean(self.kind)?.f_mul_scalar(nu)?)?;
        if self.cfg.energy_l2 > 0.0 {
            let (e_d, e_n) = (e.f_narrow(0, 0, b)?, e.f_narrow(0, b, n)?);
            let penalty = e_d.f_square()?.f_mean(self.kind)?.f_add(&e_n.f_square()?.f_mean(self.kind)?)?;
            loss = loss.f_add(&penalty.f_mul_scalar(self.cfg.energy_l2 as f64)?)?;
        }
        Ok((loss, h, e))
    }

    /// M = round(ν·B) noise chains per step, at least one.
    fn noise_rows(&self, b: i64) -> i64 {
        ((self.cfg.noise_ratio as f64 * b as f64).round() as i64).max(1)
    }

    fn step_inner(&mut self, data: &Tensor) -> Result<SanceStepStats> {
        let b = data.size()[0];
        let m = self.noise_rows(b) as usize;
        let data = if self.cfg.data_noise_std > 0.0 {
            let noise = self.rng.randn(&data.size(), self.kind, self.device)?;
            data.f_add(&noise.f_mul_scalar(self.cfg.data_noise_std as f64)?)?
        } else {
            data.shallow_clone()
        };
        if self.cfg.noise == SanceNoise::Gaussian {
            let g = self.gaussian.as_ref().expect("the Gaussian is fitted before a step");
            let noise = g.sample(&self.batch_shape(m as i64), &mut self.rng)?;
            let (stats, _) = self.update(&data, &noise, None, None)?;
            return Ok(stats);
        }
        let (noise, draw, run) = self.draw_noise(m)?;
        let (stats, _) = self.update(&data, &noise, Some(&draw), Some(&run))?;
        self.last_draw = Some(draw);
        Ok(stats)
    }

    /// Test-only (the `test-hooks` feature): one update, as a training step makes it, on given
    /// data and noise chains — no refresh, no Langevin sampling, the replay buffer untouched.
    /// Returns the step's statistics and the gradient of the loss for θ (in `Params::named`
    /// order) then c, before clipping. tests/reference_step.rs compares all of it with a
    /// PyTorch reference.
    #[cfg(feature = "test-hooks")]
    pub fn update_on(&mut self, data: &Tensor, noise: &Tensor) -> Result<(SanceStepStats, Vec<Tensor>)> {
        let r = self.update(data, noise, None, None)?;
        self.step += 1;
        Ok(r)
    }

    /// Test-only: the N(0, 1) tensor the next draw of this shape from the handle's stream
    /// would give, without consuming it (the sampler's ξ, for the reference Langevin step).
    #[cfg(feature = "test-hooks")]
    pub fn peek_normal(&self, shape: &[i64]) -> Result<Tensor> {
        Ok(self.rng.clone().randn(shape, self.kind, self.device)?)
    }

    /// Loss, gradients, clip, AdamW and the finiteness check on data [B, ...] and noise
    /// [M, ...]; then, when a draw is given, the chains go back to the replay buffer. On any
    /// failure θ, c and Adam are restored. Returns the stats and the gradients before clipping
    /// (test hooks only).
    ///
    /// One host sync: everything is computed on the device, the update included, and the
    /// statistics and the finiteness checks are read back together at the end. A step whose
    /// loss or gradient turns out non-finite is then undone like one whose update blew up.
    fn update(
        &mut self,
        data: &Tensor,
        noise: &Tensor,
        draw: Option<&Draw>,
        run: Option<&langevin::RunStats>,
    ) -> Result<(SanceStepStats, Vec<Tensor>)> {
        if let Some(c) = self.collective {
            return self.update_collective(c, data, noise, draw, run);
        }
        let b = data.size()[0];
        let (loss, h, e, grads) = self.loss_and_gradients(data, noise)?;
        // One flat gradient in θ's layout (θ then c); clipping scales it, not `grads`.
        let mut g = flat::concat(&grads)?;
        let gnorm = g.f_square()?.f_sum(Kind::Double)?.f_sqrt()?;
        // The test entry returns the gradients as they were before clipping.
        let raw_grads = if cfg!(feature = "test-hooks") && draw.is_none() { grads } else { Vec::new() };
        let clip = self.cfg.grad_clip as f64;
        if clip > 0.0 {
            // g·min(1, clip/‖g‖), on the device (no read of ‖g‖).
            let scale = gnorm.f_clamp_min(1e-300)?.f_reciprocal()?.f_mul_scalar(clip)?.f_clamp_max(1.0)?;
            let _ = g.f_mul_(&scale.f_to_kind(g.kind())?)?;
        }
        // Keep what the update overwrites, so that an update that blows the model up can be
        // undone: a finite gradient times an absurd learning rate gives finite but useless
        // parameters whose energies overflow, and the next step could not recover. Every
        // failure from here on restores it.
        let undo = self.update_backup()?;
        // A panic of libtorch's (an infallible op failing) in here is an error too: the
        // backup is restored below.
        let read = catch_torch(|| {
            let energies_ok = self.update_and_check(&g, data, noise)?;
            torch_point()?;
            let summary = Tensor::f_cat(
                &[
                    self.step_statistics(&loss, &h, &e, b, run)?,
                    Tensor::f_stack(
                        &[gnorm.shallow_clone(), self.c.detach().f_to_kind(Kind::Double)?, energies_ok.f_to_kind(Kind::Double)?],
                        0,
                    )?,
                ],
                0,
            )?;
            let v = Vec::<f64>::try_from(summary.f_to_device(Device::Cpu)?)?;
            Ok(<[f64; 9]>::try_from(v).expect("nine statistics were stacked"))
        });
        let [loss_v, accuracy, data_energy, noise_energy, lnorm, acceptance, gnorm_v, log_z, energies_ok] = match read {
            Ok(s) => s,
            Err(e) => {
                self.restore_backup(undo);
                return Err(e);
            }
        };
        let failure = if !loss_v.is_finite() || !gnorm_v.is_finite() {
            Some(Error::non_finite(format!(
                "step {}: the loss ({loss_v}) or gradient norm ({gnorm_v}) is not finite; the update \
                 was skipped and the model left unchanged (lower learning_rate or langevin.step_size, \
                 or set grad_clip / energy_l2)",
                self.step + 1
            )))
        } else if energies_ok != 1.0 {
            Some(Error::non_finite(format!(
                "step {}: the update made the energies non-finite (learning_rate too large?); it was \
                 undone and the model left unchanged",
                self.step + 1
            )))
        } else {
            draw.and_then(|d| catch_torch(|| Ok(self.buffer.commit(d, noise)?)).err())
        };
        if let Some(e) = failure {
            self.restore_backup(undo);
            return Err(e);
        }
        let stats = SanceStepStats {
            loss: loss_v as f32,
            accuracy: accuracy as f32,
            data_energy: data_energy as f32,
            noise_energy: noise_energy as f32,
            log_z: log_z as f32,
            grad_norm: gnorm_v as f32,
            langevin_grad_norm: lnorm as f32,
            acceptance_rate: acceptance as f32,
            ..Default::default()
        };
        Ok((stats, raw_grads))
    }

    /// [`Ebm::update`] with the host's reduction: the flat gradient and the statistics are summed
    /// over ranks in one reduction and averaged, so every rank clips and applies the same
    /// update; any rank's non-finite loss or gradient makes every rank skip (a flag in the same
    /// buffer). After the update a one-float reduction says whether the energies stayed finite
    /// on every rank; if not, every rank undoes it. Every rank makes the same reductions: two,
    /// or one when every rank skips at the first (a rank that fails in between still makes
    /// them: [`Ebm::abandon_step`]).
    fn update_collective(
        &mut self,
        c: Collective,
        data: &Tensor,
        noise: &Tensor,
        draw: Option<&Draw>,
        run: Option<&langevin::RunStats>,
    ) -> Result<(SanceStepStats, Vec<Tensor>)> {
        let b = data.size()[0];
        let (loss, h, e, grads) = self.loss_and_gradients(data, noise)?;
        let g = flat::concat(&grads)?;
        let bad = loss.f_isfinite()?.f_logical_and(&g.f_isfinite()?.f_all()?)?.f_logical_not()?;
        let local = Tensor::f_cat(&[self.step_statistics(&loss, &h, &e, b, run)?, bad.f_to_kind(Kind::Double)?.f_view([1])?], 0)?;
        let host = Tensor::f_cat(&[g.detach().f_to_kind(Kind::Float)?, local.f_to_kind(Kind::Float)?], 0)?;
        let mut buf = Vec::<f32>::try_from(host.f_to_device(Device::Cpu)?)?;
        debug_assert_eq!(buf.len(), self.gradient_buffer_len());
        // Past this reduction the other ranks' steps depend on this one's: a failure of the
        // host's reduction owes nothing more (calling it again could hang).
        self.phase = Phase::Done;
        c.reduce(&mut buf, "the gradient reduction")?;
        let p = g.numel();
        let w = c.world as f64;
        if buf[p + STATS_REDUCED] > 0.0 {
            return Err(Error::non_finite(format!(
                "step {}: {} rank(s) saw a non-finite loss or gradient (or failed before the reduction); every \
                 rank skipped the step and left its model unchanged",
                self.step + 1,
                buf[p + STATS_REDUCED]
            )));
        }
        self.phase = Phase::Reduced;
        let stats: Vec<f64> = buf[p..p + STATS_REDUCED].iter().map(|&v| v as f64 / w).collect();
        // Every rank divides the same sums the same way: the same update everywhere.
        let mut g = Tensor::f_from_slice(&buf[..p])?
            .f_to_device(self.device)?
            .f_to_kind(self.kind)?
            .f_div_scalar(w)?;
        // The norm and the clip from the host's copy, summed in order: the same bits on every
        // rank (libtorch's sum rounds by its thread count, which follows each rank's batch).
        let gnorm_v = buf[..p].iter().map(|&v| (v as f64 / w) * (v as f64 / w)).sum::<f64>().sqrt();
        let clip = self.cfg.grad_clip as f64;
        if clip > 0.0 && gnorm_v > clip {
            let _ = g.f_mul_scalar_(clip / gnorm_v)?;
        }
        let undo = self.update_backup()?;
        // This rank's verdict on its update (finite energies, replay buffer room reserved),
        // then every rank's: the step stands only if all kept theirs.
        let local_ok = catch_torch(|| {
            let ok = self.update_and_check(&g, data, noise)?;
            torch_point()?;
            if draw.is_some() {
                self.buffer.reserve(noise)?;
            }
            let read = Tensor::f_stack(&[ok.f_to_kind(Kind::Double)?, self.c.detach().f_to_kind(Kind::Double)?], 0)?;
            Ok(Vec::<f64>::try_from(read.f_to_device(Device::Cpu)?)?)
        });
        let mut flag = [match &local_ok {
            Ok(v) if v[0] == 1.0 => 0.0f32,
            _ => 1.0,
        }];
        self.phase = Phase::Done;
        let agreed = c.reduce(&mut flag, "the update check");
        let failure = match (&local_ok, agreed) {
            (Err(e), _) => Some(e.clone()),
            (_, Err(e)) => Some(e),
            _ if flag[0] > 0.0 => Some(Error::non_finite(format!(
                "step {}: the update made the energies non-finite on {} rank(s) (learning_rate too large?); \
                 every rank undid it and left its model unchanged",
                self.step + 1,
                flag[0]
            ))),
            _ => None,
        };
        if let Some(e) = failure {
            self.restore_backup(undo);
            return Err(e);
        }
        // Every rank has applied the update. Room in the replay buffer was reserved above, so
        // storing the chains cannot run out of memory; if it still failed, undoing θ here alone
        // would set this rank apart from the others, so the buffer just keeps its old chains.
        if let Some(d) = draw {
            let _ = catch_torch(|| Ok(self.buffer.commit(d, noise)?));
        }
        let v = local_ok.expect("checked above");
        let stats = SanceStepStats {
            loss: stats[0] as f32,
            accuracy: stats[1] as f32,
            data_energy: stats[2] as f32,
            noise_energy: stats[3] as f32,
            log_z: v[1] as f32,
            grad_norm: gnorm_v as f32,
            langevin_grad_norm: stats[4] as f32,
            acceptance_rate: stats[5] as f32,
            ..Default::default()
        };
        Ok((stats, Vec::new()))
    }

    /// The NCE loss on data [B, ...] and noise [M, ...], its logits and energies, and its
    /// gradients for θ (in `Params::named` order) then c.
    fn loss_and_gradients(&self, data: &Tensor, noise: &Tensor) -> Result<(Tensor, Tensor, Tensor, Vec<Tensor>)> {
        let (loss, h, e) = self.nce_loss(data, noise)?;
        torch_point()?;
        let mut inputs: Vec<&Tensor> = self.params.iter().collect();
        inputs.push(&self.c);
        let grads = Tensor::f_run_backward(&[&loss], &inputs, false, false)?;
        torch_point()?;
        Ok((loss, h, e, grads))
    }

    /// The step's statistics on the device, in float64, [`STATS_REDUCED`] of them: loss,
    /// accuracy of the classifier, mean data energy, mean noise energy, the sampler's gradient
    /// norm and acceptance rate (Gaussian noise has no sampler: 0 and 1). `b` data rows come
    /// first in `h` and `e`, the noise after them.
    fn step_statistics(&self, loss: &Tensor, h: &Tensor, e: &Tensor, b: i64, run: Option<&langevin::RunStats>) -> Result<Tensor> {
        let m = h.size()[0] - b;
        let correct = h
            .f_narrow(0, 0, b)?
            .f_gt(0.0)?
            .f_sum(Kind::Double)?
            .f_add(&h.f_narrow(0, b, m)?.f_lt(0.0)?.f_sum(Kind::Double)?)?;
        let none;
        let run = match run {
            Some(r) => r,
            None => {
                none = langevin::RunStats::constant(0.0, 1.0, self.device)?;
                &none
            }
        };
        Ok(Tensor::f_stack(
            &[
                loss.detach().f_to_kind(Kind::Double)?,
                correct.f_div_scalar((b + m) as f64)?,
                e.f_narrow(0, 0, b)?.f_mean(Kind::Double)?.detach(),
                e.f_narrow(0, b, m)?.f_mean(Kind::Double)?.detach(),
                run.grad_norm.shallow_clone(),
                run.acceptance.shallow_clone(),
            ],
            0,
        )?)
    }

    /// Applies AdamW, then says whether c and the energies of the batch are still finite.
    /// Returns a bool tensor (no host read).
    fn update_and_check(&mut self, g: &Tensor, data: &Tensor, noise: &Tensor) -> Result<Tensor> {
        // Weight decay for θ, not for c (the last entry).
        let decayed = self.theta.size()[0] - 1;
        self.adam.step(&mut self.theta, g, decayed)?;
        torch_point()?;
        let x = Tensor::f_cat(&[data, noise], 0)?;
        let energies_ok = crate::model::no_grad(|| self.net.energy(&self.params, &x))?.f_isfinite()?.f_all()?;
        Ok(energies_ok.f_logical_and(&self.c.f_isfinite()?)?)
    }

    /// Copies of θ, c and Adam's state, taken before an update.
    fn update_backup(&self) -> Result<Backup> {
        Ok((copy_of(&self.theta)?, copy_of(&self.adam.m_flat)?, copy_of(&self.adam.v_flat)?, self.adam.t))
    }

    /// Puts back what [`Ebm::update_backup`] saved. Copies into existing storage (the views
    /// stay views): nothing here allocates.
    fn restore_backup(&mut self, (theta, m, v, t): Backup) {
        restoring(|| {
            crate::model::no_grad(|| {
                self.theta.copy_(&theta);
                self.adam.m_flat.copy_(&m);
                self.adam.v_flat.copy_(&v);
            })
        });
        self.adam.t = t;
    }

    /// Changes the learning rate for the following steps (e.g. after a divergence).
    pub fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        if !lr.is_finite() || lr <= 0.0 {
            return Err(Error::invalid(format!("learning_rate must be a finite number > 0 (got {lr})")));
        }
        self.cfg.learning_rate = lr;
        self.adam.lr = lr as f64;
        Ok(())
    }

    /// Rows per chunk of the chunked calls: as many as fit `CHUNK_BYTES` of working memory
    /// (crate::fault), at least one. Depends on the config only.
    pub fn chunk_rows(&self) -> usize {
        ((crate::fault::chunk_bytes() as f64 / self.work_bytes_per_row()) as usize).max(1)
    }

    /// E_θ(x) for a batch [N, ...] → [N], in chunks of [`Ebm::chunk_rows`] rows.
    pub fn energy(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.size()[0] as usize;
        if n == 0 {
            return Ok(Tensor::f_zeros([0], (self.kind, self.device))?);
        }
        let chunk = self.chunk_rows();
        let _threads = threads::Scope::for_call(self.net.arch, n.min(chunk) as i64);
        let mut parts = Vec::new();
        for (start, k) in row_chunks(n, chunk) {
            parts.push(crate::model::no_grad(|| self.net.energy(&self.params, &x.f_narrow(0, start, k)?))?);
            torch_point()?;
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Tensor::f_cat(&parts, 0)? })
    }

    /// (E_θ(x), ∇ₓE_θ(x)), in chunks; with more than one chunk the gradients are gathered on
    /// the host, so that the device holds one chunk's work at a time.
    pub fn energy_grad(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let n = x.size()[0] as usize;
        let chunk = self.chunk_rows();
        let _threads = threads::Scope::for_call(self.net.arch, n.min(chunk) as i64);
        let p = self.params.detached();
        let mut energies = Vec::new();
        let grads = gathered(n, chunk, x.size(), self.kind, |start, k| {
            let (e, g) = self.net.energy_and_grad(&p, &x.f_narrow(0, start, k)?)?;
            torch_point()?;
            energies.push(e);
            Ok(g)
        })?;
        Ok((if energies.len() == 1 { energies.remove(0) } else { Tensor::f_cat(&energies, 0)? }, grads))
    }

    /// Runs `f` with the random stream, which is put back as it was if `f` fails.
    fn keeping_rng<T>(&mut self, f: impl FnOnce(&mut Ebm) -> Result<T>) -> Result<T> {
        let before = self.rng.clone();
        let r = f(self);
        if r.is_err() {
            self.rng = before;
        }
        r
    }

    /// Langevin chains on E_θ from `l`'s init distribution. Chains are independent, so `n`
    /// chains run in chunks of [`Ebm::chunk_rows`], each drawing its start and noise from the
    /// stream in turn; with more than one chunk the result is gathered on the host.
    pub fn sample(&mut self, n: usize, l: &SanceLangevin) -> Result<Tensor> {
        validate_langevin(l, "params")?;
        if n == 0 {
            return Ok(Tensor::f_zeros(self.batch_shape(0), (self.kind, self.device))?);
        }
        let chunk = self.chunk_rows();
        let _threads = threads::Scope::for_call(self.net.arch, n.min(chunk) as i64);
        let (shape, kind) = (self.batch_shape(n as i64), self.kind);
        self.keeping_rng(|m| {
            let p = m.params.detached();
            gathered(n, chunk, shape, kind, |_, k| {
                let x0 = langevin::init_chains(l, &m.batch_shape(k), m.kind, m.device, &mut m.rng)?;
                Ok(langevin::run(&m.net, &p, x0, l, &mut m.rng, false)?.0)
            })
        })
    }

    /// Langevin chains on E_θ from given starting points, in chunks like [`Ebm::sample`].
    pub fn sample_from(&mut self, x: &Tensor, l: &SanceLangevin) -> Result<Tensor> {
        validate_langevin(l, "params")?;
        let n = x.size()[0] as usize;
        let chunk = self.chunk_rows();
        let _threads = threads::Scope::for_call(self.net.arch, n.min(chunk) as i64);
        let kind = self.kind;
        self.keeping_rng(|m| {
            let p = m.params.detached();
            gathered(n, chunk, x.size(), kind, |start, k| {
                Ok(langevin::run(&m.net, &p, x.f_narrow(0, start, k)?, l, &mut m.rng, false)?.0)
            })
        })
    }
}

/// (start, rows) of the consecutive chunks of at most `chunk` rows that cover `n` rows.
fn row_chunks(n: usize, chunk: usize) -> impl Iterator<Item = (i64, i64)> {
    (0..n).step_by(chunk.max(1)).map(move |s| (s as i64, chunk.min(n - s) as i64))
}

/// `f(start, rows)` for each chunk of `n` rows, as one tensor of `shape`: with one chunk its
/// result as it is (on the device), with several gathered chunk by chunk on the host, so that
/// the device holds one chunk's work at a time.
fn gathered(
    n: usize,
    chunk: usize,
    shape: Vec<i64>,
    kind: Kind,
    mut f: impl FnMut(i64, i64) -> Result<Tensor>,
) -> Result<Tensor> {
    if n <= chunk {
        return f(0, n as i64);
    }
    let out = Tensor::f_empty(shape, (kind, Device::Cpu))?;
    for (start, k) in row_chunks(n, chunk) {
        let _ = out.f_narrow(0, start, k)?.f_copy_(&f(start, k)?)?;
    }
    Ok(out)
}
