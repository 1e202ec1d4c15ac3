//! Trainer tests that need the model's internals: the ML identity, refresh timing, c reset,
//! replay behaviour, rollback on non-finite steps, determinism.
use crate::abi::config::{SanceConfig, SANCE_DEVICE_CPU};
use crate::model::ebm::Ebm;
use crate::model::toy::toy_dataset;
use tch::{Kind, Tensor};

fn cfg() -> SanceConfig {
    SanceConfig { device: SANCE_DEVICE_CPU, hidden_width: 32, replay_capacity: 512, ..Default::default() }
}

fn batch(ebm: &Ebm, name: &str, n: usize, seed: u64) -> Tensor {
    let mut v = vec![0f32; 2 * n];
    toy_dataset(name, n, seed, &mut v).unwrap();
    ebm.tensor_from(&v, n).unwrap()
}

fn max_rel_err(a: &[Tensor], b: &[Tensor]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).square().sum(Kind::Double).double_value(&[])).sum();
    let den: f64 = b.iter().map(|y| y.square().sum(Kind::Double).double_value(&[])).sum();
    (num / den).sqrt()
}

/// Right after a refresh (θ = θ̄, c = 0), with ν = 1 and α = 0, the NCE gradient equals
/// ½·[mean ∇θE(data) − mean ∇θE(noise)], computed here independently by autograd on the
/// two mean energies.
fn ml_identity(kind: Kind) -> f64 {
    let c = SanceConfig { noise_ratio: 1.0, energy_l2: 0.0, ..cfg() };
    let mut ebm = Ebm::with_kind(&c, kind).unwrap();
    // Move away from the initialisation first so the identity is tested on a trained model.
    for t in 0..20 {
        let b = batch(&ebm, "8gaussians", 64, t);
        ebm.train_step(&b).unwrap();
    }
    ebm.refresh_noise().unwrap();
    let data = batch(&ebm, "8gaussians", 128, 99);
    let (noise, _, _) = ebm.draw_noise(128).unwrap();
    let (loss, h, _) = ebm.nce_loss(&data, &noise).unwrap();
    assert_eq!(h.abs().max().double_value(&[]), 0.0, "h = −log ν = 0 everywhere at a refresh");
    let mut inputs: Vec<&Tensor> = ebm.params.iter().collect();
    inputs.push(&ebm.c);
    let mut g = Tensor::run_backward(&[&loss], &inputs, false, false);
    let g_c = g.pop().unwrap();
    assert_eq!(g_c.double_value(&[]), 0.0, "dL/dc is exactly 0 at a refresh");

    let e_d = ebm.net.energy(&ebm.params, &data).unwrap().mean(kind);
    let e_n = ebm.net.energy(&ebm.params, &noise).unwrap().mean(kind);
    let params: Vec<&Tensor> = ebm.params.iter().collect();
    let gd = Tensor::run_backward(&[&e_d], &params, false, false);
    let gn = Tensor::run_backward(&[&e_n], &params, false, false);
    let half_ml: Vec<Tensor> = gd.iter().zip(&gn).map(|(a, b)| (a - b) * 0.5).collect();
    max_rel_err(&g, &half_ml)
}

#[test]
fn nce_gradient_at_refresh_is_half_the_ml_gradient() {
    let e64 = ml_identity(Kind::Double);
    assert!(e64 <= 1e-5, "float64 relative error {e64}");
    let e32 = ml_identity(Kind::Float);
    assert!(e32 <= 1e-4, "float32 relative error {e32}");
}

fn refresh_pattern(k: u32, steps: u64) -> Vec<i32> {
    let mut ebm = Ebm::new(&SanceConfig { noise_update_interval: k, ..cfg() }).unwrap();
    (0..steps)
        .map(|t| {
            let before: Vec<Tensor> = ebm.params.iter().map(|p| p.detach().copy()).collect();
            let b = batch(&ebm, "rings", 32, t);
            let s = ebm.train_step(&b).unwrap();
            assert_eq!(s.step, t + 1);
            if s.refreshed == 1 {
                // θ̄ is θ as it was before this step's update.
                let snap = ebm.snapshot.as_ref().unwrap();
                assert!(snap.iter().zip(&before).all(|(a, b)| a.equal(b)), "snapshot is a copy of θ");
            }
            assert!(ebm.snapshot.as_ref().unwrap().iter().all(|p| !p.requires_grad()));
            s.refreshed
        })
        .collect()
}

#[test]
fn refresh_timing_for_k_1_3_and_manual() {
    assert_eq!(refresh_pattern(1, 5), vec![1, 1, 1, 1, 1]);
    assert_eq!(refresh_pattern(3, 8), vec![1, 0, 0, 1, 0, 0, 1, 0]);
    // K = 0: only the automatic first refresh, then only when asked.
    assert_eq!(refresh_pattern(0, 6), vec![1, 0, 0, 0, 0, 0]);
    let mut ebm = Ebm::new(&SanceConfig { noise_update_interval: 0, ..cfg() }).unwrap();
    for t in 0..4 {
        let b = batch(&ebm, "rings", 32, t);
        ebm.train_step(&b).unwrap();
    }
    let snap_before: Vec<Tensor> = ebm.snapshot.as_ref().unwrap().iter().map(|p| p.copy()).collect();
    assert!(!snap_before.iter().zip(&ebm.params).all(|(a, b)| a.equal(&b.detach())), "θ moved away from θ̄");
    ebm.refresh_noise().unwrap();
    assert_eq!(ebm.refresh_count(), 2);
    assert!(ebm.snapshot.as_ref().unwrap().iter().zip(&ebm.params).all(|(a, b)| a.equal(&b.detach())));
    let b = batch(&ebm, "rings", 32, 9);
    assert_eq!(ebm.train_step(&b).unwrap().refreshed, 0);
}

#[test]
fn c_is_reset_at_every_refresh() {
    let mut ebm = Ebm::new(&SanceConfig { noise_update_interval: 5, ..cfg() }).unwrap();
    let lr = ebm.config().learning_rate as f64;
    let mut c_before_refresh = 0.0;
    for t in 0..15u64 {
        let b = batch(&ebm, "8gaussians", 64, t);
        let s = ebm.train_step(&b).unwrap();
        if t % 5 == 4 {
            c_before_refresh = f64::max(c_before_refresh, ebm.log_z().abs());
        }
        if s.refreshed == 1 {
            // c restarted from 0 and took a single Adam step (|Δ| ≲ a few lr) with a zero gradient.
            assert!(ebm.log_z().abs() <= 4.0 * lr, "c after a refresh step: {}", ebm.log_z());
        }
    }
    assert!(c_before_refresh > 4.0 * lr, "c does move between refreshes ({c_before_refresh})");
    ebm.refresh_noise().unwrap();
    assert_eq!(ebm.log_z(), 0.0);
}

#[test]
fn replay_buffer_fills_to_capacity_with_reinit_fraction() {
    let c = SanceConfig { replay_capacity: 300, replay_reinit_prob: 0.2, ..cfg() };
    let mut ebm = Ebm::new(&c).unwrap();
    let (mut fresh, mut total, mut len) = (0, 0, 0);
    for t in 0..40 {
        let b = batch(&ebm, "8gaussians", 100, t);
        ebm.train_step(&b).unwrap();
        let d = ebm.last_draw.as_ref().unwrap();
        // The first step is all fresh; afterwards the buffer grows by the fresh chains only.
        assert!(t > 0 || d.fresh == 100);
        len = (len + d.fresh).min(300);
        assert_eq!(ebm.buffer.len(), len);
        if t >= 3 {
            fresh += d.fresh;
            total += d.fresh + d.replay_slots.len();
        }
    }
    let frac = fresh as f64 / total as f64;
    assert!((frac - 0.2).abs() < 0.04, "fresh fraction {frac}");
    // The stored chains are the Langevin outputs: finite and spread over the plane.
    let stored = ebm.buffer.contents().unwrap();
    assert_eq!(stored.size(), vec![300, 2]);
    assert!(stored.isfinite().all().int64_value(&[]) == 1);
}

/// Everything a step may change, copied.
fn state(ebm: &Ebm) -> Vec<Tensor> {
    let mut v: Vec<Tensor> = ebm.params.iter().map(|p| p.detach().copy()).collect();
    v.extend(ebm.snapshot.iter().flatten().map(|p| p.copy()));
    v.push(ebm.c.detach().copy());
    v.extend(ebm.adam.m.iter().chain(&ebm.adam.v).map(|t| t.copy()));
    v.extend(ebm.buffer.contents().map(|t| t.copy()));
    v
}

#[test]
fn non_finite_step_leaves_everything_unchanged() {
    let c = SanceConfig { learning_rate: 1e30, noise_update_interval: 2, ..cfg() };
    let mut ebm = Ebm::new(&c).unwrap();
    let mut failure = None;
    for t in 0..10 {
        let before = state(&ebm);
        let (rng, step, refreshes, adam_t, len) =
            (ebm.rng.clone(), ebm.step, ebm.refresh_count, ebm.adam.t, ebm.buffer.len());
        let b = batch(&ebm, "8gaussians", 64, t);
        if let Err(e) = ebm.train_step(&b) {
            let after = state(&ebm);
            assert_eq!(before.len(), after.len());
            // Bitwise equality, NaN included.
            for (x, y) in before.iter().zip(&after) {
                let xb = Vec::<f32>::try_from(x.flatten(0, -1)).unwrap();
                let yb = Vec::<f32>::try_from(y.flatten(0, -1)).unwrap();
                assert!(xb.iter().zip(&yb).all(|(p, q)| p.to_bits() == q.to_bits()));
            }
            assert_eq!(
                (ebm.rng.clone(), ebm.step, ebm.refresh_count, ebm.adam.t, ebm.buffer.len()),
                (rng, step, refreshes, adam_t, len)
            );
            failure = Some(e);
            break;
        }
    }
    let e = failure.expect("an absurd learning rate diverges within 10 steps");
    assert_eq!(e.status, crate::abi::status::SanceStatus::NonFinite);
}

fn run_alone(seed: u64) -> (Tensor, Tensor) {
    let mut ebm = Ebm::new(&SanceConfig { seed, ..cfg() }).unwrap();
    for t in 0..25 {
        let b = batch(&ebm, "pinwheel", 64, t);
        ebm.train_step(&b).unwrap();
    }
    let probe = batch(&ebm, "rings", 50, 1);
    let l = ebm.config().langevin;
    (ebm.energy(&probe).unwrap(), ebm.sample(20, &l).unwrap())
}

#[test]
fn results_depend_only_on_the_handle_even_with_concurrent_handles() {
    let (e_alone, s_alone) = run_alone(11);
    // The same handle trained while another one draws random numbers on another thread.
    let noisy = std::thread::spawn(|| {
        let mut other = Ebm::new(&SanceConfig { seed: 5, ..cfg() }).unwrap();
        let l = other.config().langevin;
        for t in 0..60 {
            let b = batch(&other, "rings", 64, t);
            other.train_step(&b).unwrap();
            let _ = other.sample(32, &l).unwrap();
        }
    });
    let (e, s) = run_alone(11);
    noisy.join().unwrap();
    assert!(e.equal(&e_alone), "energies differ bitwise");
    assert!(s.equal(&s_alone), "samples differ bitwise");
    let (e_other, _) = run_alone(12);
    assert!(!e_other.equal(&e_alone), "another seed gives another model");
}
