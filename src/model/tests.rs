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
    let l = ebm.nce_loss(&data, &noise).unwrap();
    let (loss, h) = (&l.loss, l.logits().expect("the tensors' loss"));
    assert_eq!(h.abs().max().double_value(&[]), 0.0, "h = −log ν = 0 everywhere at a refresh");
    let mut inputs: Vec<&Tensor> = ebm.params.iter().collect();
    inputs.push(&ebm.c);
    let mut g = Tensor::run_backward(&[loss], &inputs, false, false);
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
    let moved = !snap_before.iter().zip(&ebm.params).all(|(a, b)| a.equal(&b.detach()));
    assert!(moved, "θ moved away from θ̄");
    ebm.refresh_noise().unwrap();
    assert_eq!(ebm.refresh_count(), 2);
    assert!(ebm.snapshot.as_ref().unwrap().iter().zip(&ebm.params).all(|(a, b)| a.equal(&b.detach())));
    let b = batch(&ebm, "rings", 32, 9);
    assert_eq!(ebm.train_step(&b).unwrap().refreshed, 0);
}

/// A refresh sets c and its Adam momentum to 0 and keeps its second moment. With ν = 1,
/// ∂L/∂c is exactly 0 at a refresh, so after the refresh step's update c is still exactly 0
/// (with the momentum kept it would move by the last window's momentum).
#[test]
fn c_and_its_momentum_are_reset_at_every_refresh() {
    let mut ebm = Ebm::new(&SanceConfig { noise_update_interval: 5, ..cfg() }).unwrap();
    let lr = ebm.config().learning_rate as f64;
    let last = ebm.adam.m.len() - 1;
    let mut c_before_refresh = 0.0;
    for t in 0..15u64 {
        let b = batch(&ebm, "8gaussians", 64, t);
        let s = ebm.train_step(&b).unwrap();
        if t % 5 == 4 {
            c_before_refresh = f64::max(c_before_refresh, ebm.log_z_ratio().abs());
        }
        if s.refreshed == 1 {
            assert_eq!(ebm.log_z_ratio(), 0.0, "c after refresh step {t}");
            assert_eq!(s.log_z_ratio, 0.0, "the reported c after refresh step {t}");
        }
    }
    assert!(c_before_refresh > lr, "c does move between refreshes ({c_before_refresh})");
    assert!(ebm.adam.m[last].double_value(&[]) != 0.0, "c has momentum before the refresh");
    let v = ebm.adam.v[last].double_value(&[]);
    ebm.refresh_noise().unwrap();
    assert_eq!(ebm.log_z_ratio(), 0.0);
    assert_eq!(ebm.adam.m[last].double_value(&[]), 0.0, "c's momentum is reset");
    assert_eq!(ebm.adam.v[last].double_value(&[]), v, "c's second moment is kept");
}

/// The training noise is Langevin chains on the snapshot θ̄, not on θ: several steps after a
/// refresh (θ ≠ θ̄) a step's chains equal chains run by hand on θ̄ from the same random
/// stream, and differ from chains run on θ.
#[test]
fn training_noise_is_sampled_from_the_snapshot() {
    use crate::model::langevin;
    // Every chain fresh from the init box (with ρ = 0 fresh chains are importance-resampled
    // first, checked by the defaults' tests).
    let c = SanceConfig { replay_capacity: 0, noise_update_interval: 1000, replay_reinit_prob: 1.0, ..cfg() };
    let mut ebm = Ebm::new(&c).unwrap();
    for t in 0..30 {
        let b = batch(&ebm, "8gaussians", 64, t);
        ebm.train_step(&b).unwrap();
    }
    let l = ebm.config().langevin;
    let mut rng = ebm.rng.clone();
    let (noise, _, _) = ebm.draw_noise(64).unwrap();
    // The same draw by hand: plan, fresh chains, then Langevin.
    let draw = ebm.buffer.plan(64, c.replay_reinit_prob as f64, &mut rng);
    assert_eq!(draw.fresh, 64);
    let x0 = langevin::init_chains(&l, &ebm.batch_shape(64), ebm.kind, ebm.device, &mut rng).unwrap();
    let mut rng_theta = rng.clone();
    let on_snapshot =
        langevin::run(&ebm.net, ebm.snapshot.as_ref().unwrap(), x0.copy(), &l, &mut rng, false).unwrap().0;
    let on_theta = langevin::run(&ebm.net, &ebm.params.detached(), x0, &l, &mut rng_theta, false).unwrap().0;
    assert!(noise.equal(&on_snapshot), "the training noise is not Langevin on θ̄");
    assert!(!noise.equal(&on_theta), "θ and θ̄ give the same chains: the test cannot tell them apart");
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

/// Relative error of ∇ₓE (the hand-written MLP backward pass, or autograd for the conv net)
/// against central differences of E, in float64 on weights trained away from their
/// initialisation. h = 1e-5: truncation error ~h² and rounding ~1e-16/h, both far below 1e-7.
fn input_gradient_error(cfg: SanceConfig) -> f64 {
    use crate::model::rng::Rng;
    let mut cfg = SanceConfig { learning_rate: 1e-2, ..cfg };
    cfg.langevin.steps = 5; // the weights only need to move away from the initialisation
    let mut ebm = Ebm::with_kind(&cfg, Kind::Double).unwrap();
    let shape = ebm.batch_shape(16);
    for t in 0..15 {
        let b = Rng::new(t).randn(&shape, Kind::Double, ebm.device).unwrap() * 1.5;
        ebm.train_step(&b).unwrap();
    }
    let x = Rng::new(99).randn(&ebm.batch_shape(8), Kind::Double, ebm.device).unwrap() * 1.5;
    let (_, g) = ebm.energy_grad(&x).unwrap();
    let g = g.view([8, -1]);
    let d = g.size()[1];
    let h = 1e-5;
    let mut fd = Vec::new();
    for j in 0..d {
        let step = Tensor::zeros([8, d], (Kind::Double, ebm.device));
        let _ = step.narrow(1, j, 1).fill_(h);
        let step = step.view(x.size().as_slice());
        let (ep, em) = (ebm.energy(&(&x + &step)).unwrap(), ebm.energy(&(&x - &step)).unwrap());
        fd.push((ep - em) / (2.0 * h));
    }
    let fd = Tensor::stack(&fd, 1);
    let err = ((&g - &fd).norm().double_value(&[])) / fd.norm().double_value(&[]);
    eprintln!(
        "{:?} {:?} depth {}: ∇ₓE vs central differences, relative error {err:.2e}",
        cfg.arch, cfg.activation, cfg.hidden_layers
    );
    err
}

#[test]
fn input_gradient_matches_central_differences_mlp() {
    use crate::abi::config::SanceActivation;
    for activation in [SanceActivation::Silu, SanceActivation::LeakyRelu] {
        for hidden_layers in 1..=4 {
            let c = SanceConfig { activation, hidden_layers, data_dim: 3, ..cfg() };
            let err = input_gradient_error(c);
            assert!(err < 1e-7, "MLP {activation:?} depth {hidden_layers}: relative error {err:.3e}");
        }
    }
}

#[test]
fn input_gradient_matches_central_differences_conv() {
    use crate::abi::config::{SanceActivation, SanceArch};
    for activation in [SanceActivation::Silu, SanceActivation::LeakyRelu] {
        for hidden_layers in 0..=2 {
            let c = SanceConfig {
                arch: SanceArch::Conv,
                activation,
                hidden_layers,
                channels: 2,
                height: 6,
                width: 5,
                hidden_width: 4,
                replay_capacity: 64,
                ..cfg()
            };
            let err = input_gradient_error(c);
            assert!(err < 1e-7, "conv {activation:?} depth {hidden_layers}: relative error {err:.3e}");
        }
    }
}

/// Right after a refresh with ν = 1 the logit is 0 everywhere: every sample is a tie, which
/// counts half, so the accuracy is exactly chance — on every step at K = 1.
#[test]
fn accuracy_counts_ties_as_half() {
    let c = SanceConfig { noise_update_interval: 1, noise_ratio: 1.0, ..cfg() };
    let mut ebm = Ebm::new(&c).unwrap();
    for t in 0..3 {
        let b = batch(&ebm, "8gaussians", 64, t);
        let s = ebm.train_step(&b).unwrap();
        assert_eq!(s.refreshed, 1);
        assert_eq!(s.accuracy, 0.5, "step {}: accuracy {} on a refresh step", s.step, s.accuracy);
    }
}

#[test]
fn replay_buffer_keeps_each_chains_snapshot_energy() {
    // ρ = 0: the buffer keeps E_θ̄ beside each chain (written by the fill, the commits and the
    // resampling), and the refresh's reweighting uses it in place of a pass over the buffer.
    let c = SanceConfig { replay_capacity: 300, replay_reinit_prob: 0.0, noise_update_interval: 7, ..cfg() };
    let mut ebm = Ebm::new(&c).unwrap();
    for t in 0..30 {
        let b = batch(&ebm, "8gaussians", 100, t);
        ebm.train_step(&b).unwrap();
        let kept = ebm.buffer.known_energies().expect("energies known with ρ = 0");
        let rows = ebm.buffer.contents().unwrap();
        let truth = ebm.net.energy(ebm.snapshot.as_ref().unwrap(), &rows).unwrap();
        let err = (&kept - &truth).abs().max().double_value(&[]);
        let scale = truth.abs().max().double_value(&[]).max(1.0);
        assert!(err <= 1e-4 * scale, "step {t}: kept energies off by {err:e} (scale {scale})");
    }
}

/// MALA's host path on the CPU (`mala_host`) moves the chains as the tensor path does: from
/// the same stream, the same chains, energies' acceptance and statistics, up to the order of
/// the accept test's sums — with and without a clamp box, in float32 and float64.
#[test]
fn mala_host_path_matches_the_tensor_path() {
    use crate::model::langevin::{self, Clamp};
    for (kind, box_) in [(Kind::Float, false), (Kind::Float, true), (Kind::Double, true)] {
        let mut ebm = Ebm::with_kind(&cfg(), kind).unwrap();
        for t in 0..20 {
            let b = batch(&ebm, "8gaussians", 64, t);
            ebm.train_step(&b).unwrap();
        }
        let mut l = ebm.config().langevin;
        l.metropolis = 1;
        l.steps = 30;
        // A step large enough that hundreds of moves are rejected.
        l.step_size = 8.0;
        l.noise_std = 4.0;
        let clamp = if box_ { Clamp::Scalar(-1.5, 1.5) } else { Clamp::None };
        let p = ebm.params.detached();
        let mut rng = crate::model::rng::Rng::new(7);
        let x0 = langevin::init_chains(&l, &ebm.batch_shape(256), ebm.kind, ebm.device, &mut rng).unwrap();
        let (mut r1, mut r2) = (rng.clone(), rng.clone());
        let (on_host, s1) =
            langevin::run_clamped(&ebm.net, &p, x0.copy(), &l, &clamp, &mut r1, true).unwrap();
        let (on_tensors, s2) = langevin::run_mala_on_tensors(&ebm.net, &p, x0, &l, &clamp, &mut r2).unwrap();
        let diff = on_host.f_sub(&on_tensors).unwrap().abs().max().double_value(&[]);
        let (a1, a2) = (s1.acceptance.double_value(&[]), s2.acceptance.double_value(&[]));
        assert!(diff < 1e-5, "{kind:?}, box {box_}: chains differ by {diff}");
        assert!((a1 - a2).abs() < 1e-12 && a1 > 0.02 && a1 < 0.98, "acceptance {a1} against {a2}");
        assert!((s1.grad_norm.double_value(&[]) - s2.grad_norm.double_value(&[])).abs() < 1e-9);
    }
}

/// The fill (`draws_of`) draws the init distribution g tilted by the snapshot's density,
/// ∝ exp(−E(x))·g(x): for the box, q restricted to it; for the Gaussian init, q·g. Checked on a
/// model of N(0, 2²I) data against the moments of exp(−E)·g on a grid. The earlier weights
/// exp(−E)/g (q itself, with weights of infinite variance) give a second moment near 4
/// instead of q·g's 1.4 and fail.
#[test]
fn the_fill_draws_the_init_distribution_tilted_by_the_snapshot() {
    use crate::abi::config::{SanceInit, SanceScaling};
    for (init, scale) in [(SanceInit::Gaussian, 1.5f64), (SanceInit::Uniform, 3.0)] {
        let mut c = SanceConfig { scaling: SanceScaling::None, ..cfg() };
        c.langevin.init = init;
        c.langevin.init_scale = scale as f32;
        let mut ebm = Ebm::new(&c).unwrap();
        for t in 0..300 {
            let x =
                crate::model::rng::Rng::new(t).randn(&[128, 2], Kind::Float, tch::Device::Cpu).unwrap() * 2.0;
            ebm.train_step(&x).unwrap();
        }
        let p = ebm.params.shallow();
        let (x, e) = ebm.draws_of(&p, 8192).unwrap();
        // The fill's energies are its rows'.
        let again = ebm.net.energy(&p, &x).unwrap();
        assert!(f64::try_from((&e - &again).abs().max()).unwrap() < 1e-5);
        // Moments of exp(−E)·g on a 400² grid over [−8, 8]².
        let per = 400i64;
        let h = 16.0 / per as f64;
        let ax = Tensor::arange(per, (Kind::Double, tch::Device::Cpu)) * h + (h / 2.0 - 8.0);
        let grid = Tensor::stack(&[ax.repeat_interleave_self_int(per, 0, None), ax.repeat([per])], 1);
        let log_t = ebm.net.energy(&p, &grid.to_kind(Kind::Float)).unwrap().to_kind(Kind::Double).neg()
            + match init {
                SanceInit::Gaussian => {
                    grid.square().sum_dim_intlist(1, false, Kind::Double) / (-2.0 * scale * scale)
                }
                SanceInit::Uniform => {
                    let inside = grid.abs().le(scale).all_dim(1, false).to_kind(Kind::Double);
                    (inside - 1.0) * 1e9
                }
            };
        let w = (&log_t - log_t.max()).exp();
        let w = &w / w.sum(Kind::Double);
        let x = x.to_kind(Kind::Double);
        for k in 0..2 {
            let (gx, fx) = (grid.select(1, k), x.select(1, k));
            let (m_grid, m_fill) = (
                f64::try_from((&w * &gx).sum(Kind::Double)).unwrap(),
                f64::try_from(fx.mean(Kind::Double)).unwrap(),
            );
            let (s_grid, s_fill) = (
                f64::try_from((&w * gx.square()).sum(Kind::Double)).unwrap(),
                f64::try_from(fx.square().mean(Kind::Double)).unwrap(),
            );
            assert!((m_grid - m_fill).abs() < 0.06, "{init:?}: mean {m_fill} against {m_grid}");
            assert!(
                (s_grid - s_fill).abs() < 0.08 * s_grid,
                "{init:?}: second moment {s_fill} against {s_grid}"
            );
        }
    }
}
