//! The fixed Gaussian noise of classic NCE (`SANCE_NOISE_GAUSSIAN`): fitted to data once,
//! sampled exactly, and its exact log density used in the logit.
//!
//! Up to [`FULL_COVARIANCE_MAX_DIM`] coordinates the covariance is full, Σ̂ + (s² + ridge)·I
//! with ridge = [`RIDGE_RELATIVE`]·tr(Σ̂)/D + [`RIDGE_ABSOLUTE`] (the sample covariance of
//! images is singular: constant border pixels, fewer images than pixels) and s the config's
//! `data_noise_std` (the trainer classifies data + N(0, s²I) against q, so q is fitted to
//! that); beyond it, only the diagonal (D² floats would not fit, and a Cholesky factor costs
//! D³). The fit runs in float64.
use crate::model::rng::Rng;
use tch::{Device, Kind, TchError, Tensor};

/// Largest dimension with a full covariance; above it the fit is diagonal.
pub const FULL_COVARIANCE_MAX_DIM: usize = crate::abi::config::SANCE_NOISE_FULL_COVARIANCE_MAX_DIM as usize;
/// Ridge added to the covariance's diagonal, relative to the mean variance.
pub(crate) const RIDGE_RELATIVE: f64 = 1e-3;
/// Absolute ridge (keeps the fit proper when every sample is the same).
pub(crate) const RIDGE_ABSOLUTE: f64 = 1e-6;

/// N(mean, L·Lᵀ) over flattened samples of `dim` floats.
#[derive(Debug)]
pub struct Gaussian {
    /// [D].
    pub mean: Tensor,
    /// The Cholesky factor L, [D, D] lower triangular (full), or the std, [D] (diagonal).
    pub scale: Tensor,
    /// L⁻¹ (full) or 1/std (diagonal), kept to evaluate log q with one matmul.
    inv_scale: Tensor,
    /// −Σ log diag L − D/2·log 2π.
    log_norm: f64,
}

impl Gaussian {
    /// Fits mean and covariance to `x` [N, ...] (N >= 2) convolved with N(0, `added_variance`·I)
    /// (the trainer's data noise), in float64, then stores them in `kind` on `device`.
    pub fn fit(x: &Tensor, added_variance: f64, kind: Kind, device: Device) -> Result<Gaussian, TchError> {
        let d = x.f_flatten(1, -1)?.size()[1];
        let added = Tensor::f_full([d], added_variance, (Kind::Double, x.device()))?;
        Gaussian::fit_added(x, &added, kind, device)
    }

    /// [`Gaussian::fit`] with a variance per coordinate added, `added` [D] (the data noise of a
    /// scaled model, seen in its standardised coordinates).
    pub fn fit_added(x: &Tensor, added: &Tensor, kind: Kind, device: Device) -> Result<Gaussian, TchError> {
        let n = x.size()[0];
        let x = x.f_flatten(1, -1)?.f_to_kind(Kind::Double)?;
        let d = x.size()[1];
        let added = added.f_to_kind(Kind::Double)?.f_to_device(x.device())?;
        let mean = x.f_mean_dim([0i64].as_slice(), false, Kind::Double)?;
        let centred = x.f_sub(&mean)?;
        let scale = if d as usize <= FULL_COVARIANCE_MAX_DIM {
            let cov = centred.f_tr()?.f_matmul(&centred)?.f_div_scalar((n - 1) as f64)?;
            let ridge = RIDGE_RELATIVE * cov.f_diagonal(0, 0, 1)?.f_mean(Kind::Double)?.f_double_value(&[])?
                + RIDGE_ABSOLUTE;
            let cov = cov.f_add(&Tensor::f_diag_embed(&added.f_add_scalar(ridge)?, 0, 0, 1)?)?;
            cov.f_linalg_cholesky(false)?
        } else {
            let var = centred
                .f_square()?
                .f_sum_dim_intlist([0i64].as_slice(), false, Kind::Double)?
                .f_div_scalar((n - 1) as f64)?;
            let ridge = RIDGE_RELATIVE * var.f_mean(Kind::Double)?.f_double_value(&[])? + RIDGE_ABSOLUTE;
            var.f_add(&added)?.f_add_scalar(ridge)?.f_sqrt()?
        };
        // Rounded to `kind` first, so that a checkpoint (which stores them in `kind`) rebuilds
        // exactly this Gaussian.
        Gaussian::from_parts(mean.f_to_kind(kind)?, scale.f_to_kind(kind)?, kind, device)
    }

    /// A Gaussian from its mean [D] and scale (L [D, D] or std [D]), as a checkpoint holds them.
    pub fn from_parts(mean: Tensor, scale: Tensor, kind: Kind, device: Device) -> Result<Gaussian, TchError> {
        let mean64 = mean.f_to_kind(Kind::Double)?;
        let scale64 = scale.f_to_kind(Kind::Double)?;
        let d = mean64.size()[0];
        let full = scale64.dim() == 2;
        let (inv, log_diag_sum) = if full {
            let eye = Tensor::f_eye(d, (Kind::Double, scale64.device()))?;
            let inv = scale64.f_linalg_solve_triangular(&eye, false, true, false)?;
            (inv, scale64.f_diagonal(0, 0, 1)?.f_log()?.f_sum(Kind::Double)?.f_double_value(&[])?)
        } else {
            (scale64.f_reciprocal()?, scale64.f_log()?.f_sum(Kind::Double)?.f_double_value(&[])?)
        };
        let log_norm = -log_diag_sum - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
        let to = |t: &Tensor| t.f_to_device(device)?.f_to_kind(kind);
        Ok(Gaussian { mean: to(&mean64)?, scale: to(&scale64)?, inv_scale: to(&inv)?, log_norm })
    }

    pub fn dim(&self) -> i64 {
        self.mean.size()[0]
    }

    pub fn is_full(&self) -> bool {
        self.scale.dim() == 2
    }

    /// `n` exact draws, shaped `shape` ([n, ...sample_shape]).
    pub fn sample(&self, shape: &[i64], rng: &mut Rng) -> Result<Tensor, TchError> {
        let n = shape[0];
        let z = rng.randn(&[n, self.dim()], self.mean.kind(), self.mean.device())?;
        let x = if self.is_full() { z.f_matmul(&self.scale.f_tr()?)? } else { z.f_mul(&self.scale)? };
        x.f_add(&self.mean)?.f_view(shape)
    }

    /// log q(x) for x [N, ...] → [N].
    pub fn log_density(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let centred = x.f_flatten(1, -1)?.f_sub(&self.mean)?;
        let u = if self.is_full() {
            centred.f_matmul(&self.inv_scale.f_tr()?)?
        } else {
            centred.f_mul(&self.inv_scale)?
        };
        u.f_square()?
            .f_sum_dim_intlist([1i64].as_slice(), false, x.kind())?
            .f_mul_scalar(-0.5)?
            .f_add_scalar(self.log_norm)
    }

    /// ∇ₓ log q(x) = −Σ⁻¹(x − μ) for x [N, ...] → [N, ...] (Σ⁻¹ = L⁻ᵀL⁻¹ when full).
    pub fn grad_log_density(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let centred = x.f_flatten(1, -1)?.f_sub(&self.mean)?;
        let g = if self.is_full() {
            centred.f_matmul(&self.inv_scale.f_tr()?)?.f_matmul(&self.inv_scale)?
        } else {
            centred.f_mul(&self.inv_scale.f_square()?)?
        };
        g.f_neg()?.f_view(x.size().as_slice())
    }

    /// The same Gaussian, sharing its tensors: a fit replaces a Gaussian whole and never
    /// writes into one, so an undo keeps the handles.
    pub fn shallow(&self) -> Gaussian {
        Gaussian {
            mean: self.mean.shallow_clone(),
            scale: self.scale.shallow_clone(),
            inv_scale: self.inv_scale.shallow_clone(),
            log_norm: self.log_norm,
        }
    }
}
