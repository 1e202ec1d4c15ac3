//! The ridge: x₁ ~ N(0, 2²), x₂ = x₁²/4 − 1.5 + N(0, 0.5²) — a curved, thin valley, neither
//! Gaussian nor a mixture. log p is exact and analytic. Regions: the two halves x₁ < 0 and
//! x₁ ≥ 0 (shares 0.5/0.5 by symmetry). Box x₁ ∈ [−10, 10], x₂ ∈ [−4, 27]: the mass outside is
//! P(|x₁| > 10) = 5.7e-7 plus at most P(N(0,1) < −5) = 2.9e-7 below x₂ = −4 (x₂ > 27 needs
//! |x₁| > 10 or a 7σ step), under 1e-6 in all.
use super::Density;
use sance::model::rng::Rng;

const SD1: f64 = 2.0;
const SD2: f64 = 0.5;
const SHIFT: f64 = -1.5;

pub struct Ridge;

impl Ridge {
    pub const NAME: &'static str = "ridge";
}

impl Density for Ridge {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn dim(&self) -> usize {
        2
    }
    fn draw(&self, n: usize, rng: &mut Rng) -> Vec<f64> {
        let mut out = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let x1 = SD1 * rng.normal();
            out.push(x1);
            out.push(x1 * x1 / 4.0 + SHIFT + SD2 * rng.normal());
        }
        out
    }
    fn log_p(&self, x: &[f64]) -> f64 {
        let z1 = x[0] / SD1;
        let z2 = (x[1] - x[0] * x[0] / 4.0 - SHIFT) / SD2;
        -0.5 * (z1 * z1 + z2 * z2) - (SD1 * SD2).ln() - (2.0 * std::f64::consts::PI).ln()
    }
    fn regions(&self) -> usize {
        2
    }
    fn region_of(&self, x: &[f64]) -> usize {
        (x[0] >= 0.0) as usize
    }
    fn truth_shares(&self) -> Vec<f64> {
        vec![0.5, 0.5]
    }
    fn bounds(&self) -> (Vec<f64>, Vec<f64>) {
        (vec![-10.0, -4.0], vec![10.0, 27.0])
    }
    fn note(&self) -> String {
        "x₁ ~ N(0, 2²), x₂ = x₁²/4 − 1.5 + N(0, 0.5²); regions: x₁ < 0 and x₁ ≥ 0".into()
    }
}
