//! Draws from the model (`sance_ebm_draw`, docs/algorithm.md "Drawing from the model"):
//! fresh chains (FRESH), the replay population reweighted to the model and moved
//! (POPULATION), or adaptive tempered SMC from a normalised base (ANNEALED); AUTO picks the
//! population when the model has one, else anneals once and keeps the particles as a pool
//! that later calls draw from as POPULATION does, until the model changes.
//!
//! Draws use a stream derived from the model's and from the number of draws the handle has
//! made (since it was made, loaded or cloned, a clone inheriting the count): drawing never
//! changes training, and the same model gives the same sequence of draws.
use super::Ebm;
use crate::abi::config::{SanceLangevin, SanceNoise};
use crate::abi::sampling::{validate_sampling, SanceDrawReport, SanceSampler, SanceSampling};
use crate::abi::status::{Error, Result};
use crate::model::kde::Kde;
use crate::model::langevin;
use crate::model::net::Params;
use crate::model::rng::Rng;
use crate::model::smc::{self, SmcSettings};
use tch::{Device, Kind, Tensor};

/// Tag of the draws' streams (xor the handle's draw count).
const DRAW_STREAM: u64 = 0x5a1c_e000_0000_0100;
/// ANNEALED's particles: max(n, 4n clamped to these) (at most 64 floats per sample; above,
/// max(n, [`ANNEALED_PARTICLES_LARGE`])). Modes' weights are set by the stages' weighted
/// resamplings, not by the moves, which rarely cross between modes: each adds an error of about
/// √(w(1 − w)/ESS) to a mode's weight w, common to the call's draws; 16,384 particles keep the
/// sum within 0.02 on the low-dimensional mixtures (docs/results.md). With 4n particles the
/// error is about half the n draws' own sampling noise, and a call for a few draws does not
/// pay for thousands (docs/speed.md, *time per draw*).
const ANNEALED_PARTICLES: (usize, usize) = (1024, 16384);
const ANNEALED_PARTICLES_LARGE: usize = 256;

/// POPULATION's kernel density estimate is used up to this many floats per sample (beyond,
/// each proposal's density is its own kernel's and the weights degenerate).
const KDE_MAX_DIM: usize = 64;
/// POPULATION's proposals from the estimate: 4n clamped to these. Each mode's weight is off by
/// about √(w(1 − w)/ESS) (ESS 0.4–0.8 of the proposals on the `sance-lowd` sets), and with more
/// proposals than draws the resampling repeats few of them; beyond the most, more draws repeat
/// proposals (the moves spread them). The fewest keep a call for a few draws cheap.
const KDE_PROPOSALS: (usize, usize) = (1024, 1 << 16);
/// The estimate's centres: a random subset of the population of proposals/4 chains, clamped to
/// these (its cost is proposals × centres).
const KDE_CENTRES: (usize, usize) = (256, 2048);

/// The bandwidths POPULATION's pilot tries, as factors of Silverman's rule, and its
/// proposals per bandwidth: proposals/16 clamped to these.
const KDE_BANDWIDTHS: &[f64] = &[1.0, 0.6, 0.35, 0.2];
const KDE_PILOT: (usize, usize) = (64, 512);
/// The least share of the pilot's proposals the weights must keep for POPULATION to use the
/// estimate (when the chains follow the snapshot; else it is the only weighting there is).
const KDE_MIN_SHARE: f64 = 0.1;

/// The temperature T = σ²/(2λ) of a transition.
fn temperature(l: &SanceLangevin) -> f64 {
    (l.noise_std as f64).powi(2) / (2.0 * l.step_size as f64)
}

impl Ebm {
    /// `sance_sampling_init`'s defaults for this model: AUTO, the config's sampler as the moves
    /// (the tuned MALA step of a trained MLP), target_ess 0.5, at most 1,000 temperatures.
    pub fn sampling_defaults(&self) -> SanceSampling {
        SanceSampling {
            sampler: SanceSampler::Auto as u32,
            moves: self.cfg.langevin,
            target_ess: 0.5,
            max_temperatures: 1000,
        }
    }

    /// What AUTO means for this model at temperature `t`: POPULATION when it keeps a
    /// population (the replay buffer holds chains) or a pool of an earlier AUTO call's
    /// annealed particles at `t`, else ANNEALED.
    fn resolve_sampler(&self, s: SanceSampler, t: f64) -> SanceSampler {
        match s {
            SanceSampler::Auto if !self.buffer.is_empty() || self.pool_at(t).is_some() => {
                SanceSampler::Population
            }
            SanceSampler::Auto => SanceSampler::Annealed,
            other => other,
        }
    }

    /// The pool's particles when it was drawn at temperature `t`.
    fn pool_at(&self, t: f64) -> Option<&Tensor> {
        self.draw_pool.as_ref().filter(|p| p.temperature == t).map(|p| &p.rows)
    }

    /// Whether the population is a population of the snapshot's density exp(−E_θ̄): SA-NCE
    /// without restarts, once a snapshot exists (`follow_snapshot`).
    fn population_follows_snapshot(&self) -> bool {
        self.cfg.noise == SanceNoise::Snapshot
            && self.cfg.replay_reinit_prob == 0.0
            && self.snapshot.is_some()
    }

    /// `n` draws, shaped [n, ...sample_shape] in the data's units, with `s`'s sampler, and what
    /// the sampler did. The model is unchanged but for its count of draws.
    pub fn draw(&mut self, n: usize, s: &SanceSampling) -> Result<(Tensor, SanceDrawReport)> {
        let _threads = self.call_threads();
        let asked = validate_sampling(s, "params")?;
        let t = temperature(&s.moves);
        let sampler = self.resolve_sampler(asked, t);
        // AUTO without a replay population draws from the pool (see DrawPool).
        let from_pool = asked == SanceSampler::Auto && self.buffer.is_empty();
        if sampler == SanceSampler::Population && self.buffer.is_empty() && !from_pool {
            return Err(Error::invalid(
                "params.sampler is SANCE_SAMPLER_POPULATION but the model has no population yet (train it, \
                 or load a checkpoint that kept its replay buffer); SANCE_SAMPLER_ANNEALED needs none",
            ));
        }
        let mut report = SanceDrawReport::empty(sampler);
        if n == 0 {
            return Ok((Tensor::f_zeros(self.batch_shape(0), (self.kind, self.device))?, report));
        }
        let mut rng = self.rng.derived(DRAW_STREAM ^ self.draws);
        let mut pool = None;
        let x = match sampler {
            SanceSampler::Fresh => self.fresh_draws(n, &s.moves, &mut rng, &mut report)?,
            SanceSampler::Population => {
                let (rows, follows) = match self.pool_at(t).filter(|_| from_pool) {
                    Some(rows) => (rows.shallow_clone(), false),
                    None => (
                        self.buffer.contents().expect("checked above").shallow_clone(),
                        self.population_follows_snapshot(),
                    ),
                };
                self.population_draws(n, rows, follows, &s.moves, &mut rng, &mut report)?
            }
            _ => {
                let (x, particles) = self.annealed_draws(n, s, &mut rng, &mut report)?;
                if from_pool && self.sample_size() <= KDE_MAX_DIM {
                    pool = Some(DrawPool { rows: particles, temperature: t });
                }
                x
            }
        };
        if pool.is_some() {
            self.draw_pool = pool;
        }
        self.draws = self.draws.wrapping_add(1);
        Ok((x, report))
    }

    /// FRESH: chains from `l`'s init distribution through `l`, in chunks of
    /// [`Ebm::chunk_rows`], each drawing its starts and noise in turn.
    fn fresh_draws(
        &self,
        n: usize,
        l: &SanceLangevin,
        rng: &mut Rng,
        report: &mut SanceDrawReport,
    ) -> Result<Tensor> {
        // Chains start and run in the model's coordinates.
        self.moved_in_chunks(n, l, rng, report, |m, k, rng| {
            Ok(langevin::init_chains(l, &m.batch_shape(k), m.kind, m.device, rng)?)
        })
    }

    /// `n` chains in chunks of [`Ebm::chunk_rows`]: each chunk's starts from `start(k)`, moved
    /// by `l` on E_θ, in the data's units; the moves' acceptance into `report`.
    fn moved_in_chunks(
        &self,
        n: usize,
        l: &SanceLangevin,
        rng: &mut Rng,
        report: &mut SanceDrawReport,
        mut start: impl FnMut(&Ebm, i64, &mut Rng) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let p = self.model_params().detached();
        let clamp = self.clamp_of(l)?;
        let mut acc = Acceptance::new(l);
        let x = super::inference::gathered(
            n,
            self.chunk_rows(),
            self.batch_shape(n as i64),
            self.kind,
            |_, k| {
                let z0 = start(self, k, rng)?;
                let (z, run) = langevin::run_clamped(&self.net, &p, z0, l, &clamp, rng, false)?;
                acc.add(&run, k)?;
                self.to_data(&z)
            },
        )?;
        report.acceptance = acc.mean();
        Ok(x)
    }

    /// POPULATION: `n` points drawn in proportion to the model's density over a density the
    /// library can evaluate, systematically, in random order, then moved by `l` on E_θ.
    /// - Up to [`KDE_MAX_DIM`] floats per sample: 4n draws (clamped to [`KDE_PROPOSALS`]) of a kernel
    ///   density estimate of the population (crate::model::kde), weighted by exp(−E_θ(x)/T)/KDE(x):
    ///   exact importance weights, whatever density the chains follow (their mode weights drift
    ///   from the snapshot's by the refreshes' resampling noise).
    /// - Above, the population itself: weighted by exp(E_θ̄(x) − E_θ(x)/T) when it follows the
    ///   snapshot exp(−E_θ̄) (`follows`); uniformly when it follows no density (restarts).
    ///
    /// `rows`: the replay population, or the pool of annealed particles (which follows no
    /// snapshot: the estimate's weights are its only weighting).
    fn population_draws(
        &self,
        n: usize,
        rows: Tensor,
        follows: bool,
        l: &SanceLangevin,
        rng: &mut Rng,
        report: &mut SanceDrawReport,
    ) -> Result<Tensor> {
        let rows = rows.f_to_kind(self.kind)?;
        let p = self.model_params().detached();
        let t = temperature(l);
        let clamp = self.clamp_of(l)?;
        // The work scales with n (a call for a few draws stays cheap) up to n = 2,048.
        let m = n.saturating_mul(4).clamp(KDE_PROPOSALS.0, KDE_PROPOSALS.1);
        let kde = if self.sample_size() <= KDE_MAX_DIM && rows.size()[0] >= 2 {
            let (centres, pilot) =
                ((m / 4).clamp(KDE_CENTRES.0, KDE_CENTRES.1), (m / 16).clamp(KDE_PILOT.0, KDE_PILOT.1));
            let centres = if rows.size()[0] as usize > centres {
                let mut idx: Vec<i64> = (0..rows.size()[0]).collect();
                shuffle(&mut idx, rng);
                idx.truncate(centres);
                rows.f_index_select(0, &Tensor::f_from_slice(&idx)?.f_to_device(rows.device())?)?
            } else {
                rows.shallow_clone()
            };
            let (share, kde) = self.population_kde(&centres, &p, t, pilot as i64, rng)?;
            // Weights that keep too few proposals (well-separated modes in 16 dimensions: a
            // kernel wide enough to cover a mode reaches into empty space) would draw a few
            // proposals many times: the snapshot's weights are then the better estimate.
            (share >= KDE_MIN_SHARE || !follows).then_some(kde)
        } else {
            None
        };
        let (pool, log_w) = if let Some(kde) = kde {
            self.check_work_size(m, "n (the proposals of SANCE_SAMPLER_POPULATION)", true)?;
            let x = kde.sample(&self.batch_shape(m as i64), self.kind, rng)?;
            let e = self.energies_of(&p, &x)?.f_to_kind(Kind::Double)?;
            let mut w =
                host_f64(&e.f_div_scalar(-t)?.f_sub(&kde.log_density(&x)?.f_to_device(e.device())?)?)?;
            // The target is the density restricted to the moves' box.
            if let Some(inside) = clamp.inside(&x)? {
                let inside = Vec::<bool>::try_from(inside.f_to_device(Device::Cpu)?)?;
                w.iter_mut().zip(inside).filter(|(_, ok)| !ok).for_each(|(v, _)| *v = f64::NEG_INFINITY);
            }
            (x, Some(w))
        } else if follows {
            let snapshot = self.snapshot.as_ref().expect("checked").shallow();
            let e_old = match self.buffer.known_energies() {
                Some(e) => e,
                None => self.energies_of(&snapshot, &rows)?,
            };
            let e_new = self.energies_of(&p, &rows)?;
            let w = host_f64(
                &e_old.f_to_kind(Kind::Double)?.f_sub(&e_new.f_to_kind(Kind::Double)?.f_div_scalar(t)?)?,
            )?;
            (rows, Some(w))
        } else {
            (rows.shallow_clone(), None)
        };
        let log_w = match log_w {
            Some(w) => {
                let max = w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                if !max.is_finite() || w.iter().any(|v| v.is_nan()) {
                    return Err(Error::non_finite(
                        "the population's weights are not finite (the model's energy is not finite where \
                         the population lies, or no point lies inside the moves' box): draw with \
                         SANCE_SAMPLER_ANNEALED or SANCE_SAMPLER_FRESH",
                    ));
                }
                report.ess = ess(&w);
                w
            }
            None => vec![0.0; pool.size()[0] as usize],
        };
        // Each draw picks a point in proportion to its weight (inverse CDF), a chunk at a time:
        // nothing the size of n lives on the host, whose allocations cannot fail gracefully.
        let cdf = weights_cdf(&log_w, pool.device())?;
        self.moved_in_chunks(n, l, rng, report, |_, k, rng| {
            // Stratified: one uniform in each of k equal slices of [0, 1), which draws each
            // point about k·w times with less noise than independent draws (as systematic
            // resampling does); then in random order.
            let u = Tensor::f_arange(k, (Kind::Double, pool.device()))?
                .f_add(&rng.rand(&[k], Kind::Double, pool.device())?)?
                .f_div_scalar(k as f64)?;
            // The first point whose cumulative weight exceeds u (zero weights are skipped).
            let idx = u
                .f_searchsorted(&cdf, false, true, "right", None::<&Tensor>)?
                .f_clamp_max(cdf.size()[0] - 1)?;
            let order = rng.rand(&[k], Kind::Float, pool.device())?.f_argsort(0, false)?;
            Ok(pool.f_index_select(0, &idx.f_index_select(0, &order)?)?)
        })
    }

    /// The population's kernel density estimate at the bandwidth (a factor of Silverman's, of
    /// [`KDE_BANDWIDTHS`]) whose weights exp(−E/T)/KDE keep the largest effective sample size
    /// on a pilot of `pilot` proposals each: too wide a kernel spreads the proposals
    /// beyond the modes, too narrow a one makes each proposal's density its own kernel's. Any
    /// bandwidth gives exact weights; the choice only sets their spread.
    fn population_kde(
        &self,
        rows: &Tensor,
        p: &Params,
        t: f64,
        pilot: i64,
        rng: &mut Rng,
    ) -> Result<(f64, Kde)> {
        let mut best: Option<(f64, Kde)> = None;
        for &scale in KDE_BANDWIDTHS {
            let kde = Kde::fit_scaled(rows, scale)?;
            let x = kde.sample(&self.batch_shape(pilot), self.kind, rng)?;
            let e = self.energies_of(p, &x)?.f_to_kind(Kind::Double)?;
            let w = host_f64(&e.f_div_scalar(-t)?.f_sub(&kde.log_density(&x)?.f_to_device(e.device())?)?)?;
            let share = if w.iter().all(|v| v.is_finite()) { ess(&w) / w.len() as f64 } else { 0.0 };
            if best.as_ref().is_none_or(|(b, _)| share > *b) {
                best = Some((share, kde));
            }
        }
        Ok(best.expect("at least one bandwidth"))
    }

    /// ANNEALED: tempered SMC (crate::model::smc) from [`Ebm::ais_base`] with
    /// [`ANNEALED_PARTICLES`] particles, `n` of them drawn at random at the end; then every
    /// particle, in the model's coordinates.
    fn annealed_draws(
        &self,
        n: usize,
        s: &SanceSampling,
        rng: &mut Rng,
        report: &mut SanceDrawReport,
    ) -> Result<(Tensor, Tensor)> {
        let particles = if self.sample_size() > KDE_MAX_DIM {
            n.max(ANNEALED_PARTICLES_LARGE)
        } else {
            n.max(n.saturating_mul(4).clamp(ANNEALED_PARTICLES.0, ANNEALED_PARTICLES.1))
        };
        self.check_work_size(particles, "n (the particles of SANCE_SAMPLER_ANNEALED)", false)?;
        let base = self.ais_base()?;
        let p = self.model_params().detached();
        let clamp = self.clamp_of(&s.moves)?;
        let settings = SmcSettings {
            moves: &s.moves,
            target_ess: s.target_ess as f64,
            max_stages: s.max_temperatures,
            clamp: &clamp,
        };
        let (z, run) =
            smc::annealed(&self.net, &p, &base, particles, &self.batch_shape(1)[1..], &settings, rng)?;
        let mut idx: Vec<i64> = (0..particles as i64).collect();
        shuffle(&mut idx, rng);
        idx.truncate(n);
        let drawn = z.f_index_select(0, &Tensor::f_from_slice(&idx)?.f_to_device(z.device())?)?;
        // ∫ exp(−E(x)/T) dx in the data's units: E(x) = E_z(z) + L and dx = e^L dz (L the
        // scaling's log-determinant).
        let t = temperature(&s.moves);
        report.temperatures = run.stages;
        report.ess = run.ess;
        report.acceptance = run.acceptance;
        report.log_z = run.log_z + self.log_det() * (1.0 - 1.0 / t);
        report.log_z_std_error = run.std_error;
        Ok((self.to_data(&drawn)?, z))
    }

    /// E_params of rows in the model's coordinates, [N], in chunks of [`Ebm::chunk_rows`].
    fn energies_of(&self, params: &Params, rows: &Tensor) -> Result<Tensor> {
        let n = rows.size()[0];
        let chunk = self.chunk_rows() as i64;
        let mut parts = Vec::new();
        let mut start = 0;
        while start < n {
            let k = chunk.min(n - start);
            parts.push(self.net.energies(params, &rows.f_narrow(0, start, k)?)?);
            crate::fault::torch_point()?;
            start += k;
        }
        Ok(Tensor::f_cat(&parts, 0)?)
    }
}

/// AUTO's pool for a model without a replay population (classic NCE, a file saved without
/// its buffer): the particles of its first ANNEALED call, kept so that later calls draw from
/// them as POPULATION draws from the replay population — a kernel density estimate of them,
/// weighted exactly to the model, then moved — at a cost that scales with n instead of
/// annealing ≥ 1,024 particles per call (docs/speed.md, *Small calls*). The weights are exact
/// for any pool; the pool only has to cover the model's modes, which it does while the model
/// is the one it was annealed to: every call that may change the model drops it
/// (`Ebm::undoable` with `Undo::Model`), and a clone copies it. Not saved in checkpoints.
#[derive(Debug)]
pub(crate) struct DrawPool {
    /// The particles in the model's coordinates, [particles, ...sample_shape].
    rows: Tensor,
    /// The temperature of the moves it was annealed with (a call at another draws anew).
    temperature: f64,
}

impl DrawPool {
    /// The same pool (its tensor is never written in place).
    pub(crate) fn shallow(&self) -> DrawPool {
        DrawPool { rows: self.rows.shallow_clone(), temperature: self.temperature }
    }
}

/// The moves' acceptance over chunks (NaN for unadjusted moves).
struct Acceptance {
    metropolis: bool,
    sum: f64,
    rows: f64,
}

impl Acceptance {
    fn new(l: &SanceLangevin) -> Acceptance {
        Acceptance { metropolis: l.metropolis == 1, sum: 0.0, rows: 0.0 }
    }

    fn add(&mut self, run: &langevin::RunStats, rows: i64) -> Result<()> {
        if self.metropolis {
            self.sum += run.acceptance.f_double_value(&[])? * rows as f64;
            self.rows += rows as f64;
        }
        Ok(())
    }

    fn mean(&self) -> f64 {
        if self.metropolis && self.rows > 0.0 {
            self.sum / self.rows
        } else {
            f64::NAN
        }
    }
}

/// The normalised cumulative weights of exp(log_w), [m] float64 on `device`, ending at 1.
fn weights_cdf(log_w: &[f64], device: Device) -> Result<Tensor> {
    let max = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w = Tensor::f_from_slice(log_w)?.f_sub_scalar(max)?.f_exp()?;
    let c = w.f_cumsum(0, Kind::Double)?;
    let total = c.f_select(0, -1)?;
    Ok(c.f_div(&total)?.f_to_device(device)?)
}

/// Effective sample size 1/Σw² of the normalised weights exp(log_w).
fn ess(log_w: &[f64]) -> f64 {
    let (_, share) = smc::log_mean_and_ess_share(log_w);
    share * log_w.len() as f64
}

/// Fisher–Yates on the handle's derived stream: systematic resampling returns its indices in
/// order, and a caller who takes the first k draws must get k draws of the model.
fn shuffle(idx: &mut [i64], rng: &mut Rng) {
    for i in (1..idx.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        idx.swap(i, j);
    }
}

fn host_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(t.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?)?)
}
