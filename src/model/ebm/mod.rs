//! The self-adapting NCE trainer ([`Ebm`]): model θ, noise snapshot θ̄, offset c, AdamW,
//! replay buffer. docs/algorithm.md gives the equations; docs/architecture.md the map.
//!
//! One file per job:
//! - here: the state and its construction, and what callers ask of it (sizes, memory);
//! - [`saved`]: the one undo that every call changing the model runs under;
//! - [`step`]: the training step and its refresh schedule, the noise draw, the noise fit;
//! - [`loss`]: the NCE loss, its gradients and the step's statistics;
//! - [`update`]: applying an update on one process (AdamW, checks, one read-back);
//! - [`parallel`]: the data-parallel protocol through the host's reduction;
//! - [`inference`]: energies, input gradients and samples of the model;
//! - [`normaliser`]: the estimate of log Z_θ (annealed importance sampling);
//! - [`state`]: the persistent state a checkpoint holds, out of and into a model.
//!
//! Every operation whose size follows the caller's data (batches, sample counts) or the
//! config uses tch's fallible `f_` functions, and every public method that changes the model
//! changes nothing when it fails ([`saved`]): a libtorch error (out of memory on a large
//! batch, say) comes back as SANCE_STATUS_TORCH and the model stays usable.
mod draw;
mod inference;
mod loss;
pub use loss::{LossStats, NceLoss};
mod normaliser;
pub mod parallel;
mod saved;
pub mod state;
mod step;
mod units;
mod update;

use crate::abi::config::{validate_config, SanceArch, SanceConfig, SANCE_DEVICE_AUTO, SANCE_DEVICE_CPU};
use crate::abi::stats::SanceProgress;
use crate::abi::status::{Error, Result};
use crate::model::adam::Adam;
use crate::model::flat;
use crate::model::gaussian::Gaussian;
use crate::model::net::{copy_of, Net, Params};
use crate::model::replay::{Draw, ReplayBuffer};
use crate::model::rng::Rng;
use parallel::Reduction;
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

/// A model and its trainer. Every field that a call may change is listed in
/// [`saved::Saved`], which puts it back when the call fails.
#[derive(Debug)]
pub struct Ebm {
    /// The validated config, with `device` resolved (-1 or a CUDA index).
    cfg: SanceConfig,
    pub(crate) device: Device,
    pub(crate) kind: Kind,
    pub(crate) net: Net,
    /// θ then c, end to end in one buffer (crate::model::flat): `params` and `c` are leaf
    /// views of it, so AdamW, the undo and the gradient norm each touch one tensor.
    theta: Tensor,
    /// θ (leaf tensors requiring grad, views of `theta`).
    pub(crate) params: Params,
    /// c, a 0-d tensor requiring grad (the last entry of `theta`).
    pub(crate) c: Tensor,
    /// θ̃, the parameters' moving average (config.ema_decay > 0): flat like `theta` (θ then
    /// c), with its views as the network's parameters (no grad). The model that energies,
    /// samples and log Z use; None without an average (they use θ).
    pub(crate) average: Option<(Tensor, Params)>,
    /// θ̄ (no grad); None until the first refresh. Replaced whole, never written in place.
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
    /// Replaced whole, never written in place.
    pub(crate) gaussian: Option<Gaussian>,
    /// The data's fitted scaling (config.scaling AUTO, MLP): the model works in z = (x −
    /// shift)/scale. None until the first call that sees data, and always None otherwise.
    /// Replaced whole, never written in place.
    pub(crate) scaling: Option<crate::model::scaling::Scaling>,
    /// The host's reduction over ranks (data-parallel training), once registered, with the
    /// reductions the current step still owes ([`parallel`] alone reads and writes it).
    reduction: Option<Reduction>,
    /// Draws made by this handle (`draw`): with the stream, it seeds the next draw's own stream
    /// (crate::model::ebm::draw). Not saved in checkpoints; a clone inherits it.
    pub(crate) draws: u64,
    /// AUTO's pool of annealed particles for a model without a replay population
    /// ([`draw::DrawPool`]); dropped by every call that may change the model. Replaced whole.
    pub(crate) draw_pool: Option<draw::DrawPool>,
    /// The last reweighting refresh's effective sample size (0 before one) and the count of
    /// refreshes whose weights were not finite (`SanceProgress`; not saved in checkpoints).
    pub(crate) refresh_ess: f64,
    pub(crate) refresh_nonfinite: u64,
}

/// A copy of `theta` (flat θ then c) and its views shaped like `like` (θ's tensors).
pub(crate) fn averaged(theta: &Tensor, like: &Params) -> Result<(Tensor, Params)> {
    let flat = copy_of(theta)?;
    let shapes: Vec<Vec<i64>> = like.iter().map(|p| p.size()).collect();
    let mut views = flat::views(&flat, &shapes)?.into_iter();
    let params = like.try_map(|_| Ok(views.next().expect("one view per tensor")))?;
    Ok((flat, params))
}

impl Ebm {
    pub fn new(cfg: &SanceConfig) -> Result<Ebm> {
        Ebm::with_kind(cfg, Kind::Float)
    }

    /// A model computing in `kind` (the C API always uses float32; tests use float64).
    pub fn with_kind(cfg: &SanceConfig, kind: Kind) -> Result<Ebm> {
        validate_config(cfg)?;
        // Creating (sance_ebm_new) and loading (sance_ebm_load) compute on the new handle's count.
        let _threads = crate::runtime::threads::Scope::for_call(cfg.num_threads);
        let device = resolve_device(cfg.device)?;
        let mut cfg = *cfg;
        cfg.device = match device {
            Device::Cuda(k) => k as i32,
            _ => SANCE_DEVICE_CPU,
        };
        let net = Net::from_config(&cfg);
        if matches!(device, Device::Cuda(_)) && cfg.arch == SanceArch::Conv {
            crate::runtime::cudnn::make_deterministic();
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
        let average = if cfg.ema_decay > 0.0 { Some(averaged(&theta, &init)?) } else { None };
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
            average,
            snapshot: None,
            adam,
            buffer: ReplayBuffer::new(cfg.replay_capacity as usize),
            rng,
            step: 0,
            refresh_count: 0,
            last_draw: None,
            gaussian: None,
            scaling: None,
            reduction: None,
            draws: 0,
            draw_pool: None,
            refresh_ess: 0.0,
            refresh_nonfinite: 0,
        })
    }

    /// The parameters the model is used with: θ̃ when averaging, else θ.
    pub fn model_params(&self) -> &Params {
        self.average.as_ref().map_or(&self.params, |(_, p)| p)
    }

    /// θ̃ ← β·θ̃ + (1 − β)·θ after a step, β = min(ema_decay, (1 + t)/(10 + t)) with t the
    /// steps before this one: the warm-up lets the average leave the initialisation as fast
    /// as θ does, and then averages over the last ~1/(1 − β) steps.
    pub(crate) fn update_average(&mut self) -> Result<()> {
        let Some((avg, _)) = self.average.as_mut() else { return Ok(()) };
        let t = self.step as f64;
        let beta = (self.cfg.ema_decay as f64).min((1.0 + t) / (10.0 + t));
        let theta = &self.theta;
        crate::model::no_grad(|| avg.f_lerp_(theta, 1.0 - beta).map(|_| ()))?;
        Ok(())
    }

    /// The intra-op thread count of a call on this model (`config.num_threads`, docs/c-api.md
    /// "Threads"), held until the scope drops. Every entry that computes opens it first: the C
    /// layer for each call on a handle (crate::ffi::handle), [`Ebm::with_kind`] for a new or
    /// loaded model, [`Ebm::undoable`] for every call that may change the model, a training
    /// step's entry, and the entries that only read (energy, energy_grad, draw, the normaliser's);
    /// one opened inside another changes nothing.
    pub(crate) fn call_threads(&self) -> crate::runtime::threads::Scope {
        crate::runtime::threads::Scope::for_call(self.cfg.num_threads)
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

    /// The current value of c, the learned log Z_θ̄ − log Z_θ.
    pub fn log_z_ratio(&self) -> f64 {
        self.c.double_value(&[])
    }

    /// The fitted noise Gaussian (GAUSSIAN noise), once fitted.
    pub fn gaussian(&self) -> Option<&Gaussian> {
        self.gaussian.as_ref()
    }

    pub fn sample_size(&self) -> usize {
        self.cfg.sample_size()
    }

    pub fn progress(&self) -> SanceProgress {
        SanceProgress {
            step: self.step,
            refresh_count: self.refresh_count,
            replay_len: self.buffer.len() as u64,
            log_z_ratio: self.log_z_ratio() as f32,
            refresh_ess: self.refresh_ess,
            refresh_nonfinite: self.refresh_nonfinite,
        }
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

    /// Working memory of one sample in a pass over the net (input, output, gradients and
    /// the network's activations, roughly), in bytes.
    fn work_bytes_per_row(&self) -> f64 {
        let c = &self.cfg;
        let activations = match c.arch {
            SanceArch::Mlp => c.hidden_width as f64 * c.hidden_layers as f64,
            SanceArch::Conv => {
                c.hidden_width as f64
                    * c.height as f64
                    * c.width as f64
                    * (1.0 + c.hidden_layers as f64 * 0.5)
            }
        };
        (4.0 * self.sample_size() as f64 + 3.0 * activations) * 4.0
    }

    /// Refuses, before any allocation, a call on `n` samples whose working memory exceeds
    /// what the model's device has: the machine's physical memory on the CPU, the device's
    /// total memory on CUDA (crate::runtime::memory says why not what is free). An absurd size
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
        let limit = crate::runtime::memory::available(self.device);
        if bytes > limit {
            let place = match self.device {
                Device::Cuda(k) => format!("CUDA device {k}'s"),
                _ => "this machine's".to_string(),
            };
            return Err(Error::invalid(format!(
                "{what} = {n} would need about {bytes:.3e} bytes of working memory, more than {place} \
                 {limit:.3e}"
            )));
        }
        Ok(())
    }

    /// Rows per chunk of the chunked calls: as many as fit `CHUNK_BYTES` of working memory
    /// (crate::runtime::memory), at least one. Depends on the config only.
    pub fn chunk_rows(&self) -> usize {
        ((crate::runtime::memory::chunk_bytes() as f64 / self.work_bytes_per_row()) as usize).max(1)
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
}
