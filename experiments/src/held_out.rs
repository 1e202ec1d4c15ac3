//! The progress lines the programs print while training (sance-toy, sance-hd): the step's
//! statistics, the held-out log-likelihood and the training rate.
use sance::{Ebm, SanceStepStats};
use std::time::Instant;
use tch::Kind;

/// Mean log-likelihood of the held-out rows `x` (in the model's scale), normalised by a quick
/// AIS estimate of log Z (`sance_ebm_log_z` with 128 chains and 200 temperatures, the default
/// step): a model that drifts shows here, while the loss sits at chance by design. In high
/// dimensions such a short anneal underestimates log Z, so the figure is for watching trends,
/// not for the record. NaN when the estimate fails.
pub fn held_out_ll(ebm: &Ebm, x: &[f32]) -> f64 {
    let r = ebm.ais_defaults().and_then(|p| {
        let p = sance::abi::ais::SanceAis { chains: 128, temperatures: 200, ..p };
        let z = ebm.estimate_log_normaliser(&p)?;
        let e = ebm.energy(&ebm.tensor_from(x, x.len() / ebm.sample_size())?)?;
        Ok(-e.f_mean(Kind::Double)?.f_double_value(&[])? - z.log_z)
    });
    r.unwrap_or(f64::NAN)
}

/// Prints a progress table: [`Progress::row`] every `every` steps, the steps per second over
/// the last `every` steps of training alone (the held-out estimate is not counted).
pub struct Progress {
    every: u64,
    last: Instant,
    eval_secs: f64,
}

impl Progress {
    /// Prints the table's header.
    pub fn new(every: u64) -> Progress {
        println!(
            "{:>6} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8}",
            "step",
            "loss",
            "acc",
            "E(data)",
            "E(noise)",
            "c",
            "|dE/dx|",
            "accept",
            "lambda",
            "held-out",
            "steps/s"
        );
        Progress { every, last: Instant::now(), eval_secs: 0.0 }
    }

    /// One line: the step's statistics, the held-out log-likelihood of `held` (in the model's
    /// scale) and the rate.
    pub fn row(&mut self, ebm: &Ebm, s: &SanceStepStats, held: &[f32]) {
        let rate = self.every as f64 / self.last.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let ll = held_out_ll(ebm, held);
        self.eval_secs += t1.elapsed().as_secs_f64();
        self.last = Instant::now();
        println!(
            "{:>6} {:>8.4} {:>6.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>6.3} {:>8.4} {:>8.3} {:>8.1}",
            s.step,
            s.loss,
            s.accuracy,
            s.data_energy,
            s.noise_energy,
            s.log_z_ratio,
            s.langevin_grad_norm,
            s.acceptance_rate,
            s.step_size,
            ll,
            rate
        );
    }

    /// Seconds spent on the held-out estimates, to leave out of a training time.
    pub fn eval_secs(&self) -> f64 {
        self.eval_secs
    }
}
