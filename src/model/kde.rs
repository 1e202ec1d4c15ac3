//! A Gaussian kernel density estimate of a population of chains: a normalised density of the
//! population's shape that can be sampled and evaluated exactly, so that importance weights
//! p/KDE are exact whatever density the chains actually follow (crate::model::ebm::draw: the
//! replay population's mode weights drift from the snapshot's by the resamplings' noise, and
//! weights that assumed the snapshot's density would carry that drift into the draws).
//!
//! Kernels N(c_i, diag(h²)) at the centres, with Silverman's rule per coordinate:
//! h_j = s_j·(4/((D + 2)·N))^(1/(D+4)), s_j the centres' standard deviation. Useful in a few
//! dozen dimensions at most: in hundreds, each draw's density is its own kernel's.
use crate::model::rng::Rng;
use tch::{Kind, TchError, Tensor};

/// Rows of the pairwise-distance block evaluated at once (bounds the memory to about
/// BLOCK × N doubles).
const BLOCK: i64 = 1024;

pub struct Kde {
    /// Centres divided by the bandwidth, [N, D], float64.
    centres: Tensor,
    /// ‖centre/h‖², [N].
    sq: Tensor,
    /// Bandwidth per coordinate, [D], float64.
    h: Tensor,
    /// −log N − Σ log h_j − D/2·log 2π: the mixture's normaliser.
    log_norm: f64,
}

impl Kde {
    /// The estimate over `rows` [N, ...] (N >= 2), at Silverman's bandwidth.
    pub fn fit(rows: &Tensor) -> Result<Kde, TchError> {
        Kde::fit_scaled(rows, 1.0)
    }

    /// The estimate at `scale` times Silverman's bandwidth (which oversmooths a multimodal
    /// population: its spread per coordinate is mostly between modes).
    pub fn fit_scaled(rows: &Tensor, scale: f64) -> Result<Kde, TchError> {
        let c = rows.f_flatten(1, -1)?.f_to_kind(Kind::Double)?;
        let (n, d) = (c.size()[0] as f64, c.size()[1] as f64);
        let factor = scale * (4.0 / ((d + 2.0) * n)).powf(1.0 / (d + 4.0));
        // A coordinate with no spread (a constant) gets a tiny kernel instead of none.
        let s = c.f_std_dim([0i64].as_slice(), true, false)?.f_clamp_min(1e-6)?;
        let h = s.f_mul_scalar(factor)?;
        let centres = c.f_div(&h)?;
        let sq = centres.f_square()?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Double)?;
        let log_h = h.f_log()?.f_sum(Kind::Double)?.f_double_value(&[])?;
        let log_norm = -n.ln() - log_h - 0.5 * d * (2.0 * std::f64::consts::PI).ln();
        Ok(Kde { centres, sq, h, log_norm })
    }

    /// `m` draws shaped `shape` ([m, ...]) in `kind`: a centre picked uniformly, plus its kernel's noise.
    pub fn sample(&self, shape: &[i64], kind: Kind, rng: &mut Rng) -> Result<Tensor, TchError> {
        let (m, n) = (shape[0], self.centres.size()[0] as u64);
        let pick: Vec<i64> = (0..m).map(|_| rng.below(n) as i64).collect();
        let idx = Tensor::f_from_slice(&pick)?.f_to_device(self.centres.device())?;
        let u = self.centres.f_index_select(0, &idx)?;
        let xi = rng.randn(&u.size(), Kind::Double, self.centres.device())?;
        u.f_add(&xi)?.f_mul(&self.h)?.f_to_kind(kind)?.f_view(shape)
    }

    /// log KDE(x) for x [m, ...] → [m], float64 on the host's device of `x`.
    pub fn log_density(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let u = x
            .f_flatten(1, -1)?
            .f_to_kind(Kind::Double)?
            .f_to_device(self.centres.device())?
            .f_div(&self.h)?;
        let m = u.size()[0];
        let mut parts = Vec::new();
        let mut start = 0;
        while start < m {
            let k = BLOCK.min(m - start);
            let ub = u.f_narrow(0, start, k)?;
            let usq = ub.f_square()?.f_sum_dim_intlist([1i64].as_slice(), true, Kind::Double)?;
            // ‖u − c‖² = ‖u‖² + ‖c‖² − 2u·c, clamped at 0 against rounding.
            let d2 = usq
                .f_add(&self.sq.f_unsqueeze(0)?)?
                .f_sub(&ub.f_matmul(&self.centres.f_tr()?)?.f_mul_scalar(2.0)?)?
                .f_clamp_min(0.0)?;
            parts.push(
                d2.f_mul_scalar(-0.5)?.f_logsumexp([1i64].as_slice(), false)?.f_add_scalar(self.log_norm)?,
            );
            crate::fault::torch_point()?;
            start += k;
        }
        Tensor::f_cat(&parts, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// The estimate is a normalised density (its integral on a grid is 1) whose draws have the
    /// centres' mean and, per coordinate, their variance plus h².
    #[test]
    fn the_estimate_is_normalised_and_its_draws_follow_it() {
        let mut rng = Rng::new(3);
        let rows = rng.randn(&[500, 2], Kind::Double, Device::Cpu).unwrap() * Tensor::from_slice(&[1.0, 0.3])
            + Tensor::from_slice(&[2.0, -1.0]);
        let kde = Kde::fit(&rows).unwrap();
        let per = 600i64;
        let (lo, hi) = (-6.0, 6.0);
        let h = (hi - lo) / per as f64;
        let ax = Tensor::arange(per, (Kind::Double, Device::Cpu)) * h + (lo + h / 2.0);
        let grid = Tensor::stack(&[ax.repeat_interleave_self_int(per, 0, None), ax.repeat([per])], 1);
        let total = f64::try_from(kde.log_density(&grid).unwrap().exp().sum(Kind::Double)).unwrap() * h * h;
        assert!((total - 1.0).abs() < 1e-3, "∫ KDE = {total}");
        let x = kde.sample(&[20000, 2], Kind::Double, &mut rng).unwrap();
        let mean = x.mean_dim([0i64].as_slice(), false, Kind::Double);
        let want = rows.mean_dim([0i64].as_slice(), false, Kind::Double);
        assert!(f64::try_from((&mean - &want).abs().max()).unwrap() < 0.03, "{mean:?} vs {want:?}");
        let var = x.var_dim([0i64].as_slice(), true, false);
        let want = rows.var_dim([0i64].as_slice(), true, false) + kde.h.square();
        let rel = f64::try_from(((&var - &want) / &want).abs().max()).unwrap();
        assert!(rel < 0.05, "variance {var:?} vs {want:?}");
    }
}
