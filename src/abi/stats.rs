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
    /// Mean per-sample ‖∇ₓE_θ̄‖ over the noise chains and Langevin steps (0 for GAUSSIAN noise,
    /// which has no chains).
    pub langevin_grad_norm: f32,
    /// Share of the noise chains' Langevin moves accepted, over chains and steps: MALA's
    /// Metropolis–Hastings acceptance rate; 1 for unadjusted Langevin and for GAUSSIAN noise,
    /// whose moves and draws are never rejected.
    pub acceptance_rate: f32,
}

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
}
