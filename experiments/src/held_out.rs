//! The held-out log-likelihood the programs print while training (sance-toy, sance-hd).
use sance::Ebm;
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
