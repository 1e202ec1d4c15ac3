//! What `sance-lowd` measures a model against: a density known exactly ([`Density`]), its
//! implementations (the Gaussian mixtures of mixture.rs, the Müller–Brown density of
//! mueller_brown.rs, the ridge of ridge.rs, the ring of ring.rs), the change of units `--scale`
//! puts on any of them ([`Scaled`]), and the measures that use only the trait (the regions'
//! shares).
pub mod mixture;
pub mod mueller_brown;
pub mod ridge;
pub mod ring;

use crate::grid::logsumexp;
use mixture::Mixture;
use mueller_brown::MuellerBrown;
use ridge::Ridge;
use ring::Ring;
use sance::model::rng::Rng;

/// A density known exactly, in `dim()` dimensions. Points are row-major, one per `dim()`
/// values, in f64: the caller rounds draws to f32 (what a model sees) and evaluates the rest at
/// the rounded points.
pub trait Density {
    fn name(&self) -> &str;
    fn dim(&self) -> usize;
    /// n exact (independent) draws.
    fn draw(&self, n: usize, rng: &mut Rng) -> Vec<f64>;
    /// The normalised log density at one point (any point of the space, not only the box's).
    fn log_p(&self, x: &[f64]) -> f64;
    /// How many regions the space is split into for the shares of mass.
    fn regions(&self) -> usize;
    /// The region (0..regions()) of one point.
    fn region_of(&self, x: &[f64]) -> usize;
    /// Each region's share of the density's mass.
    fn truth_shares(&self) -> Vec<f64>;
    /// A box (lo_i, hi_i) per coordinate that holds essentially all of the mass: log Z's grid.
    fn bounds(&self) -> (Vec<f64>, Vec<f64>);
    /// What else there is to say about the set (how it is normalised, sampled, split).
    fn note(&self) -> String {
        String::new()
    }
}

impl Density for Mixture {
    fn name(&self) -> &str {
        self.name
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn draw(&self, n: usize, rng: &mut Rng) -> Vec<f64> {
        self.sample_f64(n, rng)
    }
    fn log_p(&self, x: &[f64]) -> f64 {
        logsumexp(&self.component_logs_f64(x))
    }
    fn regions(&self) -> usize {
        self.weights.len()
    }
    fn region_of(&self, x: &[f64]) -> usize {
        self.region_f64(x)
    }
    /// The regions are where each component's weighted density is largest, so their shares
    /// are not the weights: estimated from 200,000 draws of a fixed stream (± 0.001).
    fn truth_shares(&self) -> Vec<f64> {
        let n = 200_000;
        let x = self.sample_f64(n, &mut Rng::new(0x5ba7e5));
        let mut s = vec![0.0; self.weights.len()];
        for p in x.chunks(self.dim) {
            s[self.region_f64(p)] += 1.0 / n as f64;
        }
        s
    }
    fn bounds(&self) -> (Vec<f64>, Vec<f64>) {
        (vec![-12.0; self.dim], vec![12.0; self.dim])
    }
    fn note(&self) -> String {
        format!("weights {}; regions: the component of largest weighted density", fmt(&self.weights))
    }
}

/// A density in other units: x' = S ⊙ x for x drawn from `base`, with
/// log p'(x') = log p(x' ⊘ S) − Σ log S_i, the regions of x' ⊘ S and the box scaled by S (so the
/// grid's cells scale too). KL and shares are invariant to the change of units.
pub struct Scaled {
    base: Box<dyn Density>,
    s: Vec<f64>,
    log_det: f64,
}

impl Scaled {
    /// `factors` cycled over the coordinates when fewer than the dimension; each must be
    /// positive and finite.
    pub fn new(base: Box<dyn Density>, factors: &[f64]) -> Scaled {
        assert!(!factors.is_empty() && factors.iter().all(|s| s.is_finite() && *s > 0.0), "scale factors");
        let s: Vec<f64> = (0..base.dim()).map(|i| factors[i % factors.len()]).collect();
        let log_det = s.iter().map(|s| s.ln()).sum();
        Scaled { base, s, log_det }
    }

    fn unscale(&self, x: &[f64]) -> Vec<f64> {
        x.iter().zip(&self.s).map(|(v, s)| v / s).collect()
    }
}

impl Density for Scaled {
    fn name(&self) -> &str {
        self.base.name()
    }
    fn dim(&self) -> usize {
        self.base.dim()
    }
    fn draw(&self, n: usize, rng: &mut Rng) -> Vec<f64> {
        let d = self.dim();
        let mut x = self.base.draw(n, rng);
        for (i, v) in x.iter_mut().enumerate() {
            *v *= self.s[i % d];
        }
        x
    }
    fn log_p(&self, x: &[f64]) -> f64 {
        self.base.log_p(&self.unscale(x)) - self.log_det
    }
    fn regions(&self) -> usize {
        self.base.regions()
    }
    fn region_of(&self, x: &[f64]) -> usize {
        self.base.region_of(&self.unscale(x))
    }
    fn truth_shares(&self) -> Vec<f64> {
        self.base.truth_shares()
    }
    fn bounds(&self) -> (Vec<f64>, Vec<f64>) {
        let (lo, hi) = self.base.bounds();
        (
            lo.iter().zip(&self.s).map(|(l, s)| l * s).collect(),
            hi.iter().zip(&self.s).map(|(h, s)| h * s).collect(),
        )
    }
    fn note(&self) -> String {
        self.base.note()
    }
}

/// Every set, in the order `--sets all` runs them; `want(name)` says which to build (the
/// Müller–Brown set's tables take a second).
pub fn sets(want: impl Fn(&str) -> bool) -> Vec<Box<dyn Density>> {
    let mut out: Vec<Box<dyn Density>> = vec![];
    for m in mixture::sets() {
        if want(m.name) {
            out.push(Box::new(m));
        }
    }
    if want(MuellerBrown::NAME) {
        out.push(Box::new(MuellerBrown::new()));
    }
    if want(Ridge::NAME) {
        out.push(Box::new(Ridge));
    }
    if want(Ring::NAME) {
        out.push(Box::new(Ring));
    }
    out
}

/// Every set's name, in order.
pub fn names() -> Vec<String> {
    let mut v: Vec<String> = mixture::sets().iter().map(|m| m.name.to_string()).collect();
    v.extend([MuellerBrown::NAME.to_string(), Ridge::NAME.to_string(), Ring::NAME.to_string()]);
    v
}

pub fn fmt(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join("/")
}

fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Each region's share of a model's mass, by importance sampling with the true density as
/// proposal: `x` (n draws of the density, as the model saw them) and the model's energies `e`
/// at them; the share of Σ exp(−E)/p over each region's points. Normalised to sum to 1, so no
/// log Z is needed.
pub fn model_shares(m: &dyn Density, x: &[f32], e: &[f64]) -> Vec<f64> {
    let mut mass = vec![0.0; m.regions()];
    for (xi, &ei) in x.chunks(m.dim()).zip(e) {
        let xi = widen(xi);
        mass[m.region_of(&xi)] += (-ei - m.log_p(&xi)).exp();
    }
    let total: f64 = mass.iter().sum();
    mass.iter().map(|v| v / total).collect()
}

/// Each region's share of the points `x` (the truth's shares, for draws of the density).
pub fn point_shares(m: &dyn Density, x: &[f32]) -> Vec<f64> {
    let n = x.len() / m.dim();
    let mut frac = vec![0.0; m.regions()];
    for xi in x.chunks(m.dim()) {
        frac[m.region_of(&widen(xi))] += 1.0 / n as f64;
    }
    frac
}
