//! Classic NCE (SANCE_NOISE_GAUSSIAN): the fit, the exact log density in the logit, errors
//! that leave the model unchanged, and the fit's place in checkpoints.
mod common;
use common::*;
use sance::abi::config::{SanceNoise, SanceScaling, SANCE_DEVICE_CPU};
use sance::ffi::api::*;
use sance::{Ebm, SanceConfig, SanceStatus, SanceStepStats};
use std::ptr;
use tch::{Device, Kind, Tensor};

/// Classic NCE on the data as given (the fit's numbers are then the data's own); a scaled
/// model's fit is `a_scaled_model_fits_its_noise_in_its_own_coordinates`'s.
fn gaussian_config() -> SanceConfig {
    SanceConfig { noise: SanceNoise::Gaussian, scaling: SanceScaling::None, ..small_config() }
}

/// With the default scaling the noise is fitted in the model's coordinates, where the data
/// have mean 0 and std 2 per coordinate, and `data_noise_std` (in the data's units) adds its
/// variance there divided by the squared scale.
#[test]
fn a_scaled_model_fits_its_noise_in_its_own_coordinates() {
    let cfg = SanceConfig { scaling: SanceScaling::Auto, data_noise_std: 3.0, ..gaussian_config() };
    let mut ebm = Ebm::with_kind(&cfg, Kind::Double).unwrap();
    let raw: Vec<f32> = data("8gaussians", 2000, 4)
        .iter()
        .enumerate()
        .map(|(i, v)| v * if i % 2 == 0 { 100.0 } else { 0.01 })
        .collect();
    ebm.fit_noise(&ebm.tensor_from(&raw, 2000).unwrap()).unwrap();
    let s = ebm.scaling().expect("the fit's data fix the scaling");
    let scale = Vec::<f64>::try_from(&s.scale).unwrap();
    let g = ebm.gaussian().unwrap();
    let mean = Vec::<f64>::try_from(&g.mean).unwrap();
    assert!(mean.iter().all(|m| m.abs() < 1e-9), "the fit's mean in z: {mean:?}");
    // The covariance's diagonal: 4 (std 2) + the ridge + (3 / scale_i)².
    let l = &g.scale;
    let var = Vec::<f64>::try_from(l.mm(&l.tr()).diagonal(0, 0, 1)).unwrap();
    for i in 0..2 {
        let want = 4.0 * 1999.0 / 2000.0 * 2000.0 / 1999.0 + (3.0 / scale[i]).powi(2);
        assert!((var[i] - want).abs() < 0.01 * want, "coordinate {i}: variance {} against {want}", var[i]);
    }
}

/// The sample covariance plus the documented ridge and the data noise's variance s², and log q
/// by the textbook formula −½(x−μ)ᵀΣ⁻¹(x−μ) − ½·log det(2πΣ), all in float64 with inverse and
/// log-determinant (no Cholesky, unlike the library).
fn reference_log_q(fit_data: &Tensor, s: f64, x: &Tensor) -> Tensor {
    let d = fit_data.to_kind(Kind::Double).flatten(1, -1);
    let n = d.size()[0] as f64;
    let mu = d.mean_dim([0i64].as_slice(), true, Kind::Double);
    let c = &d - &mu;
    let mut cov = c.tr().mm(&c) / (n - 1.0);
    let dim = cov.size()[0];
    let ridge = 1e-3 * cov.diagonal(0, 0, 1).mean(Kind::Double).double_value(&[]) + 1e-6;
    cov += Tensor::eye(dim, (Kind::Double, Device::Cpu)) * (ridge + s * s);
    let u = x.to_kind(Kind::Double).flatten(1, -1) - &mu;
    let quad = (u.mm(&cov.inverse()) * &u).sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
    let logdet = (cov * (2.0 * std::f64::consts::PI)).logdet().double_value(&[]);
    quad * -0.5 - 0.5 * logdet
}

#[test]
fn the_logit_uses_the_exact_log_density_of_the_fit() {
    // With data noise s the fit is of the data convolved with N(0, s²I): what training sees.
    for (dim, name, s) in [(2usize, "8gaussians", 0.0), (16, "gaussians16d", 0.0), (16, "gaussians16d", 0.3)]
    {
        let cfg = SanceConfig {
            data_dim: dim as u32,
            noise_ratio: 2.0,
            data_noise_std: s as f32,
            ..gaussian_config()
        };
        let s = s as f32 as f64;
        let mut ebm = Ebm::with_kind(&cfg, Kind::Double).unwrap();
        let fit = ebm.tensor_from(&data(name, 500, 1), 500).unwrap();
        ebm.fit_noise(&fit).unwrap();
        let x = ebm.tensor_from(&data(name, 64, 2), 64).unwrap();
        let noise = ebm.tensor_from(&data(name, 128, 3), 128).unwrap();
        let l = ebm.nce_loss(&x, &noise).unwrap();
        let (loss, h) = (&l.loss, l.logits().expect("the tensors' loss"));
        // h = −E − log q + c − ln ν over [data; noise]; the fit started c at the mean log q of
        // the fit data.
        let c0 = reference_log_q(&fit, s, &fit).mean(Kind::Double).double_value(&[]);
        assert!(
            (ebm.log_z_ratio() - c0).abs() < 1e-9,
            "{name}: c starts at {} instead of {c0}",
            ebm.log_z_ratio()
        );
        let all = Tensor::cat(&[&x, &noise], 0);
        let want_h = -ebm.energy(&all).unwrap() - reference_log_q(&fit, s, &all) + c0 - 2f64.ln();
        let err = (h - &want_h).abs().max().double_value(&[]);
        assert!(err < 1e-9, "{name}: logit differs from the reference by {err}");
        let sp = |t: Tensor| t.softplus().mean(Kind::Double).double_value(&[]);
        let want_loss = sp(-want_h.narrow(0, 0, 64)) + 2.0 * sp(want_h.narrow(0, 64, 128));
        assert!((loss.double_value(&[]) - want_loss).abs() < 1e-9, "{name}: loss");
    }
}

#[test]
fn draws_follow_the_fit_and_high_dimensions_fit_a_diagonal() {
    let cfg = SanceConfig { data_dim: 16, ..gaussian_config() };
    let mut ebm = Ebm::with_kind(&cfg, Kind::Double).unwrap();
    let fit = ebm.tensor_from(&data("gaussians16d", 4000, 5), 4000).unwrap();
    ebm.fit_noise(&fit).unwrap();
    let g = ebm.gaussian().unwrap();
    assert!(g.is_full());
    let mut rng = sance::model::rng::Rng::new(9);
    let x = g.sample(&[20000, 16], &mut rng).unwrap();
    let cov = |t: &Tensor| {
        let c = t - t.mean_dim([0i64].as_slice(), true, Kind::Double);
        c.tr().mm(&c) / (t.size()[0] as f64 - 1.0)
    };
    let err = (cov(&x) - cov(&fit)).abs().max().double_value(&[]);
    // Entries are O(1); the standard error of 20,000 draws is about 0.01.
    assert!(err < 0.06, "draws' covariance differs from the data's by {err}");

    // Above SANCE_NOISE_FULL_COVARIANCE_MAX_DIM the fit is diagonal: per-coordinate variances.
    let d = sance::abi::config::SANCE_NOISE_FULL_COVARIANCE_MAX_DIM as usize + 1;
    let cfg = SanceConfig { data_dim: d as u32, hidden_width: 4, ..gaussian_config() };
    let mut big = Ebm::with_kind(&cfg, Kind::Double).unwrap();
    let scales = Tensor::linspace(0.5, 2.0, d as i64, (Kind::Double, Device::Cpu));
    let fit = Tensor::randn([300, d as i64], (Kind::Double, Device::Cpu)) * &scales + 1.0;
    big.fit_noise(&fit).unwrap();
    let g = big.gaussian().unwrap();
    assert!(!g.is_full());
    let var = fit.var_dim([0i64].as_slice(), true, false);
    let ridge = 1e-3 * var.mean(Kind::Double).double_value(&[]) + 1e-6;
    let want = (var + ridge).sqrt();
    assert!((&g.scale - want).abs().max().double_value(&[]) < 1e-9, "diagonal std");
    let x = Tensor::randn([8, d as i64], (Kind::Double, Device::Cpu));
    let want_lq = (((&x - fit.mean_dim([0i64].as_slice(), false, Kind::Double)) / &g.scale)
        .square()
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
        * -0.5)
        - g.scale.log().sum(Kind::Double)
        - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
    assert!((g.log_density(&x).unwrap() - want_lq).abs().max().double_value(&[]) < 1e-7);
}

#[test]
fn misuse_is_refused_and_leaves_the_model_unchanged() {
    // fit_noise on a self-adapting model.
    let h = new(&small_config());
    train(h, 0..3);
    let before = probe(h);
    let d = data("8gaussians", 100, 0);
    assert_eq!(unsafe { sance_ebm_fit_noise(h, d.as_ptr(), 100) }, SanceStatus::InvalidArgument);
    assert!(last_error().contains("SANCE_NOISE_SNAPSHOT"), "{}", last_error());
    assert_eq!(bits(&probe(h)), bits(&before));
    unsafe { sance_ebm_free(h) };

    let g = new(&gaussian_config());
    // Too few samples, NaN, NULL: refused, nothing fitted (the first step then fits its batch).
    assert_eq!(unsafe { sance_ebm_fit_noise(g, d.as_ptr(), 1) }, SanceStatus::InvalidArgument);
    let mut bad = d.clone();
    bad[7] = f32::NAN;
    assert_eq!(unsafe { sance_ebm_fit_noise(g, bad.as_ptr(), 100) }, SanceStatus::NonFinite);
    assert_eq!(unsafe { sance_ebm_fit_noise(g, ptr::null(), 100) }, SanceStatus::NullPointer);
    assert_eq!(unsafe { sance_ebm_fit_noise(ptr::null_mut(), d.as_ptr(), 100) }, SanceStatus::NullPointer);
    // No snapshot to refresh.
    assert_eq!(unsafe { sance_ebm_refresh_noise(g) }, SanceStatus::InvalidArgument);
    assert!(last_error().contains("SANCE_NOISE_GAUSSIAN"), "{}", last_error());
    // A first step on one sample cannot fit, and changes nothing.
    let e0 = probe(g);
    assert_eq!(
        unsafe { sance_ebm_train_step(g, d.as_ptr(), 1, ptr::null_mut()) },
        SanceStatus::InvalidArgument
    );
    assert_eq!(bits(&probe(g)), bits(&e0));
    let mut st = SanceStepStats::default();
    assert_eq!(
        unsafe { sance_ebm_train_step(g, d.as_ptr(), 100, &mut st) },
        SanceStatus::Ok,
        "{}",
        last_error()
    );
    assert_eq!((st.step, st.refresh_count, st.refreshed), (1, 0, 0));
    assert_eq!((st.acceptance_rate, st.langevin_grad_norm), (1.0, 0.0));
    unsafe { sance_ebm_free(g) };
}

#[test]
fn without_a_fit_the_first_batch_is_used() {
    let cfg = SanceConfig { device: test_device(), ..gaussian_config() };
    let mut a = Ebm::with_kind(&cfg, Kind::Double).unwrap();
    let mut b = Ebm::with_kind(&cfg, Kind::Double).unwrap();
    let first = a.tensor_from(&data("rings", 256, 0), 256).unwrap();
    b.fit_noise(&first).unwrap();
    for t in 0..5 {
        let x = a.tensor_from(&data("rings", 256, t), 256).unwrap();
        let sa = a.train_step(&x).unwrap();
        let sb = b.train_step(&x).unwrap();
        assert_eq!(sa, sb, "step {t}");
    }
    let g = a.gaussian().unwrap();
    let want = first.mean_dim([0i64].as_slice(), false, Kind::Double);
    assert!((&g.mean - want).abs().max().double_value(&[]) < 1e-12);
}

#[test]
fn the_fit_is_saved_and_training_resumes_exactly() {
    let dir = scratch("gaussian_noise_ckpt");
    let path = cpath(&dir.join("g.safetensors"));
    let cfg = SanceConfig { data_dim: 16, ..gaussian_config() };
    let a = new(&cfg);
    let fit = data("gaussians16d", 300, 1);
    assert_eq!(unsafe { sance_ebm_fit_noise(a, fit.as_ptr(), 300) }, SanceStatus::Ok);
    let step = |h, t| {
        let d = data("gaussians16d", 64, t);
        let mut st = SanceStepStats::default();
        assert_eq!(
            unsafe { sance_ebm_train_step(h, d.as_ptr(), 64, &mut st) },
            SanceStatus::Ok,
            "{}",
            last_error()
        );
        st
    };
    for t in 0..3 {
        step(a, t);
    }
    assert_eq!(unsafe { sance_ebm_save(a, path.as_ptr()) }, SanceStatus::Ok, "{}", last_error());
    let mut b = ptr::null_mut();
    assert_eq!(
        unsafe { sance_ebm_load(path.as_ptr(), SANCE_DEVICE_CPU, &mut b) },
        SanceStatus::Ok,
        "{}",
        last_error()
    );
    for t in 3..6 {
        assert_eq!(step(a, t), step(b, t), "step {t} after the reload");
    }
    unsafe {
        sance_ebm_free(a);
        sance_ebm_free(b);
    }
}
