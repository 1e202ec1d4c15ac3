//! The ring: radius r ~ N(3, 0.3²), angle uniform — a density no mixture or Gaussian fits,
//! with no mass at its centre (issue 28's example: fresh chains from the box left their draws
//! inside it). p(x) = N(‖x‖; 3, 0.3²)/(2π‖x‖), exact. Regions: the four quadrants (shares
//! 0.25 each by symmetry). Box [−5, 5]²: the mass outside lies beyond r = 5, 6.7σ out, under
//! 1e-10 (and r < 0 is 10σ below the radius: ignored).
use super::Density;
use sance::model::rng::Rng;

const RADIUS: f64 = 3.0;
const WIDTH: f64 = 0.3;

pub struct Ring;

impl Ring {
    pub const NAME: &'static str = "ring";
}

impl Density for Ring {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn dim(&self) -> usize {
        2
    }
    fn draw(&self, n: usize, rng: &mut Rng) -> Vec<f64> {
        let mut out = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let r = RADIUS + WIDTH * rng.normal();
            let a = 2.0 * std::f64::consts::PI * rng.uniform();
            out.push(r * a.cos());
            out.push(r * a.sin());
        }
        out
    }
    fn log_p(&self, x: &[f64]) -> f64 {
        let r = (x[0] * x[0] + x[1] * x[1]).sqrt().max(1e-300);
        let z = (r - RADIUS) / WIDTH;
        let tau = 2.0 * std::f64::consts::PI;
        -0.5 * z * z - (WIDTH * tau.sqrt()).ln() - (tau * r).ln()
    }
    fn regions(&self) -> usize {
        4
    }
    fn region_of(&self, x: &[f64]) -> usize {
        (x[0] >= 0.0) as usize + 2 * (x[1] >= 0.0) as usize
    }
    fn truth_shares(&self) -> Vec<f64> {
        vec![0.25; 4]
    }
    fn bounds(&self) -> (Vec<f64>, Vec<f64>) {
        (vec![-5.0, -5.0], vec![5.0, 5.0])
    }
    fn note(&self) -> String {
        "r ~ N(3, 0.3²), angle uniform; regions: the quadrants".into()
    }
}
