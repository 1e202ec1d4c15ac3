//! The model the calls use is θ's moving average θ̃ (config.ema_decay, docs/algorithm.md step
//! 6): checked against the recurrence θ̃ ← β_t·θ̃ + (1 − β_t)·θ, β_t = min(β, (1 + t)/(10 + t)),
//! run here on copies of θ taken after every step, and against θ itself with ema_decay = 0.
//! The network sees the data in its fitted scaling's coordinates z = (x − shift)/scale, and
//! E(x) = E_net(z) + Σ log scale: the by-hand energies apply it, and the gradient is autograd's
//! through the whole map (an independent check of the hand-written chain rule).
use sance::abi::config::{SanceConfig, SANCE_DEVICE_CPU};
use sance::model::rng::Rng;
use sance::Ebm;
use tch::{Kind, Tensor};

fn data(rng: &mut Rng, n: usize) -> Vec<f32> {
    // Off unit scale, so that the scaling is far from the identity.
    (0..2 * n)
        .map(|i| (if i % 2 == 0 { 5.0 + 3.0 * rng.normal() } else { 0.2 * rng.normal() }) as f32)
        .collect()
}

/// x in the network's coordinates, and Σ log scale.
fn to_model(ebm: &Ebm, x: &Tensor) -> (Tensor, f64) {
    let s = ebm.scaling().expect("an MLP fits its scaling at its first step");
    let scale = s.scale.to_kind(x.kind());
    let z = (x - s.shift.to_kind(x.kind())) / &scale;
    (z, scale.log().sum(Kind::Double).double_value(&[]))
}

#[test]
fn energies_come_from_the_moving_average() {
    let cfg =
        SanceConfig { device: SANCE_DEVICE_CPU, hidden_width: 16, replay_capacity: 64, ..Default::default() };
    assert_eq!(cfg.ema_decay, 0.99, "the default");
    let mut ebm = Ebm::with_kind(&cfg, Kind::Double).unwrap();
    let mut avg: Vec<Tensor> = ebm.params().iter().map(|p| p.detach().copy()).collect();
    let mut rng = Rng::new(5);
    for t in 0..40u32 {
        let x = data(&mut rng, 32);
        ebm.train_step(&ebm.tensor_from(&x, 32).unwrap()).unwrap();
        let beta = 0.99f64.min((1.0 + t as f64) / (10.0 + t as f64));
        for (a, p) in avg.iter_mut().zip(ebm.params().iter()) {
            *a = &*a * beta + p.detach() * (1.0 - beta);
        }
    }
    let x = ebm.tensor_from(&data(&mut rng, 100), 100).unwrap();
    let by_hand = {
        let mut p = ebm.params().detached_copy().unwrap();
        for (q, a) in p.iter_mut().zip(&avg) {
            *q = a.shallow_clone();
        }
        let (z, log_det) = to_model(&ebm, &x);
        ebm.net().energy(&p, &z).unwrap() + log_det
    };
    let of_theta = {
        let (z, log_det) = to_model(&ebm, &x);
        ebm.net().energy(ebm.params(), &z).unwrap().detach() + log_det
    };
    let got = ebm.energy(&x).unwrap();
    let diff = (&got - &by_hand).abs().max().double_value(&[]);
    let apart = (&got - &of_theta).abs().max().double_value(&[]);
    assert!(diff < 1e-10, "energy of the model vs the recurrence: {diff:e}");
    assert!(apart > 1e-4, "the average should differ from θ after 40 steps ({apart:e})");
    let (_, g) = ebm.energy_grad(&x).unwrap();
    let xg = x.detach().set_requires_grad(true);
    let p = {
        let mut p = ebm.params().detached_copy().unwrap();
        for (q, a) in p.iter_mut().zip(&avg) {
            *q = a.shallow_clone();
        }
        p
    };
    let e = ebm.net().energy(&p, &to_model(&ebm, &xg).0).unwrap().sum(Kind::Double);
    let g_ref = Tensor::run_backward(&[e], &[&xg], false, false).remove(0);
    assert!((&g - &g_ref).abs().max().double_value(&[]) < 1e-9, "gradient of the averaged energy");
}

#[test]
fn no_average_is_theta() {
    let cfg = SanceConfig {
        device: SANCE_DEVICE_CPU,
        hidden_width: 16,
        replay_capacity: 64,
        ema_decay: 0.0,
        ..Default::default()
    };
    let mut ebm = Ebm::with_kind(&cfg, Kind::Double).unwrap();
    let mut rng = Rng::new(6);
    for _ in 0..10 {
        let x = data(&mut rng, 32);
        ebm.train_step(&ebm.tensor_from(&x, 32).unwrap()).unwrap();
    }
    let x = ebm.tensor_from(&data(&mut rng, 50), 50).unwrap();
    let (z, log_det) = to_model(&ebm, &x);
    let of_theta = ebm.net().energy(ebm.params(), &z).unwrap().detach() + log_det;
    assert!((ebm.energy(&x).unwrap() - of_theta).abs().max().double_value(&[]) < 1e-12);
}
