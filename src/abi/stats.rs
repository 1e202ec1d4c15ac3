//! What the library reports back to C: per-step statistics and a model's progress.

/// What one training step did.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SanceStepStats {
    /// Steps completed, this one included.
    pub step: u64,
    /// Snapshot refreshes so far, this step's included.
    pub refresh_count: u64,
    /// 1 if this step refreshed the snapshot (θ̄ ← θ, c ← 0), else 0.
    pub refreshed: i32,
    /// NCE loss (with the energy penalty) before the update.
    pub loss: f32,
    /// Fraction of data and noise samples the logit h classifies correctly, a tie (h = 0)
    /// counting half: 0.5 is chance, and exactly 0.5 on a refresh step with ν = 1 (h = 0
    /// everywhere), so always at K = 1.
    pub accuracy: f32,
    /// Mean E_θ over the data batch, before the update.
    pub data_energy: f32,
    /// Mean E_θ over the noise samples, before the update.
    pub noise_energy: f32,
    /// c after this step's update: the learned log Z_θ̄ − log Z_θ. On a refresh step c and its
    /// momentum restart from 0 and ∂L/∂c = 0, so this is 0 (exactly for ν = 1, up to rounding
    /// otherwise).
    pub log_z_ratio: f32,
    /// Global gradient norm (θ and c) before clipping.
    pub grad_norm: f32,
    /// Mean per-sample ‖∇ₓE_θ̄‖ over the noise chains and their Langevin steps (MALA: at the
    /// chains' starting points; 0 for GAUSSIAN noise, which has no chains).
    pub langevin_grad_norm: f32,
    /// Share of the noise chains' Langevin moves accepted, over chains and steps: MALA's
    /// Metropolis–Hastings acceptance rate; 1 for unadjusted Langevin and for GAUSSIAN noise,
    /// whose moves and draws are never rejected.
    pub acceptance_rate: f32,
    /// The Langevin step λ the noise chains used (in the model's coordinates when scaled),
    /// after any tuning of earlier steps (`target_acceptance`); 0 for GAUSSIAN noise, which has
    /// no chains.
    pub step_size: f32,
    /// What this step found the sampler cannot do with these data, as SANCE_WARNING_* bits (0:
    /// nothing). The step itself is done; the bits say the noise is not what NCE assumes, so
    /// the model will be off (docs/algorithm.md, "Units"). This rank's own data, when
    /// data-parallel.
    pub warnings: u32,
}

/// `SanceStepStats::warnings`: the step is too coarse to resolve the data or the density the
/// chains are in — one step's noise (noise_std) exceeds the data batch's spread (its std per
/// coordinate, in the sampler's units), MALA accepts fewer than 20 % of its moves, or an
/// unadjusted step's drift exceeds 0.3 × its noise (λ·‖∇ₓE‖ > 0.3·noise_std·√D on average; its
/// chains then sample a density off the model's by O(λ)).
pub const SANCE_WARNING_COARSE_STEP: u32 = 1;
/// `SanceStepStats::warnings`: the step is too fine for the chains to cross the data in time:
/// the noise of one call's run, noise_std·√steps, is under 1 % of the data batch's spread
/// (its std per coordinate, in the sampler's units), so the chains barely move.
pub const SANCE_WARNING_FROZEN_STEP: u32 = 2;
/// `SanceStepStats::warnings`: the chains cannot reach the data: a data point lies outside
/// the sampler's clamp box, or, with a fixed step (`target_acceptance` 0), more than 10 % of
/// the batch's coordinates lie outside the box that fresh chains start in (`init_scale`; a tuned
/// step carries the chains out of it).
pub const SANCE_WARNING_OUT_OF_REACH: u32 = 4;

/// Where a model stands: counters and the current offset c.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SanceProgress {
    /// Training steps completed.
    pub step: u64,
    /// Snapshot refreshes so far.
    pub refresh_count: u64,
    /// Chains stored in the replay buffer.
    pub replay_len: u64,
    /// c, the learned log Z_θ̄ − log Z_θ.
    pub log_z_ratio: f32,
    /// Effective sample size, in chains (1 to replay_len), of the weights exp(E_θ̄old − E_θ̄new)
    /// the last refresh gave the population (replay_reinit_prob = 0): far below replay_len,
    /// the snapshot moved far between refreshes and the resampling kept few distinct chains
    /// (a smaller learning rate or noise_update_interval keeps it up). 0 until a refresh has
    /// reweighted the population since the model was made or loaded.
    pub refresh_ess: f64,
    /// Refreshes (since the model was made or loaded) whose weights were not finite (an
    /// energy overflowed on some chain): the population was then kept as it was, unresampled.
    pub refresh_nonfinite: u64,
}
