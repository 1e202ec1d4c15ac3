//! One training update and one Langevin step against an independent PyTorch reference
//! (tests/python/reference_step.py, written from docs/algorithm.md), away from a refresh:
//! several steps after it, so θ ≠ θ̄ and c ≠ 0, with ν = 2, α = 0.1, weight decay > 0 and a
//! global gradient clip that is active; the Langevin step has its per-sample clip and clamp
//! active. In float64, so the comparison (≤ 1e-5 relative) is of the arithmetic, not rounding.
mod common;
use common::scratch;
use common::test_device;
use sance::abi::config::{SanceConfig, SanceScaling};
use sance::checkpoint::{self, Entry};
use sance::model::toy::toy_dataset;
use sance::{Ebm, SanceLangevin};
use std::collections::HashMap;
use std::process::Command;
use tch::{Kind, Tensor};

/// The tensor in float64, as the reference reads everything.
fn entry(t: &Tensor) -> Entry {
    checkpoint::entry(&t.detach().to_kind(Kind::Double)).unwrap()
}

fn batch(ebm: &Ebm, n: usize, seed: u64) -> Tensor {
    let mut v = vec![0f32; 2 * n];
    toy_dataset("8gaussians", n, seed, &mut v).unwrap();
    ebm.tensor_from(&v, n).unwrap()
}

#[test]
fn one_update_and_one_langevin_step_match_the_pytorch_reference() {
    let python = std::env::var("SANCE_PYTHON").expect("SANCE_PYTHON is unset: run through scripts/test");
    let cfg = SanceConfig {
        device: test_device(),
        hidden_width: 32,
        hidden_layers: 3,
        noise_ratio: 2.0,
        energy_l2: 0.1,
        weight_decay: 0.05,
        learning_rate: 3e-3,
        grad_clip: 0.05,
        noise_update_interval: 1000,
        replay_capacity: 512,
        // The reference is the step of docs/algorithm.md on the data as given, with one
        // unadjusted Langevin step; the scaling's chain rule is checked by tests/average.rs
        // and experiments/tests/units.rs, MALA by tests/mala.rs.
        scaling: SanceScaling::None,
        ..Default::default()
    };
    let cfg = SanceConfig {
        // sance 0.4's sampler, which the test's state was calibrated with.
        langevin: SanceLangevin { steps: 20, metropolis: 0, target_acceptance: 0.0, ..cfg.langevin },
        ..cfg
    };
    let mut ebm = Ebm::with_kind(&cfg, Kind::Double).unwrap();
    for t in 0..40 {
        ebm.train_step(&batch(&ebm, 64, t)).unwrap();
    }
    assert!(ebm.log_z_ratio().abs() > 1e-4, "c = {} should be away from 0", ebm.log_z_ratio());
    let moved: f64 = ebm
        .params()
        .iter()
        .zip(ebm.snapshot().unwrap().iter())
        .map(|(a, b)| (a - b).abs().max().double_value(&[]))
        .fold(0.0, f64::max);
    assert!(moved > 1e-3, "θ should have moved away from θ̄ (max |θ − θ̄| = {moved})");

    let dir = scratch("reference-step");
    let data = batch(&ebm, 64, 1000);
    let (noise, _, _) = ebm.draw_noise(128).unwrap();
    checkpoint::save(&ebm, &dir.join("before.safetensors")).unwrap();
    let (stats, grads) = ebm.update_on(&data, &noise).unwrap();
    assert!(stats.grad_norm > cfg.grad_clip, "the global clip must be active (|g| = {})", stats.grad_norm);
    checkpoint::save(&ebm, &dir.join("after.safetensors")).unwrap();

    // One Langevin step with the per-coordinate gradient clamp, the per-sample clip and the
    // clamp of x all active: the gradient clamp is the median |∂E/∂xᵢ|, so half the
    // coordinates are clamped, and the clip the median norm of the clamped gradients, so half
    // the samples are clipped after that, whatever the trained model.
    let x0 = batch(&ebm, 200, 2000) * 1.2;
    let (_, g) = ebm.energy_grad(&x0).unwrap();
    let coord = g.abs().median().double_value(&[]);
    assert!(coord > 0.0, "gradients are zero");
    let g = g.clamp(-coord, coord);
    let norms = g.norm_scalaropt_dim(2.0, [1i64].as_slice(), false);
    let median = norms.median().double_value(&[]) as f32;
    assert!(median > 0.0, "gradient norms are zero");
    let l = SanceLangevin {
        steps: 1,
        step_size: 0.05,
        noise_std: 0.3,
        grad_clip: median,
        grad_clamp: coord as f32,
        clamp_min: -1.5,
        clamp_max: 1.5,
        ..cfg.langevin
    };
    let xi = ebm.peek_normal(&x0.size()).unwrap();
    let x1 = ebm.sample_from(&x0, &l).unwrap();
    let at_bound = x1.abs().ge(1.5).sum(Kind::Int64).int64_value(&[]);
    assert!(at_bound > 0 && at_bound < 400, "clamp active for some coordinates ({at_bound})");

    let mut tensors: Vec<(String, Entry)> = vec![
        ("data".into(), entry(&data)),
        ("noise".into(), entry(&noise)),
        ("loss".into(), entry(&Tensor::from(stats.loss as f64))),
        ("lx0".into(), entry(&x0)),
        ("lxi".into(), entry(&xi)),
        ("lx1".into(), entry(&x1)),
    ];
    let mut names: Vec<String> =
        ebm.net().param_names().into_iter().map(|n| format!("grad.energy.{n}")).collect();
    names.push("grad.c".into());
    assert_eq!(names.len(), grads.len());
    for (n, g) in names.into_iter().zip(&grads) {
        tensors.push((n, entry(g)));
    }
    let lj = format!(
        r#"{{"step_size":{},"noise_std":{},"grad_clip":{},"grad_clamp":{},"clamp_min":{},"clamp_max":{}}}"#,
        l.step_size as f64,
        l.noise_std as f64,
        l.grad_clip as f64,
        l.grad_clamp as f64,
        l.clamp_min as f64,
        l.clamp_max as f64
    );
    let meta: HashMap<String, String> = [("langevin".to_string(), lj)].into();
    let bytes =
        safetensors::tensor::serialize(tensors.iter().map(|(n, e)| (n.as_str(), e)), &Some(meta)).unwrap();
    std::fs::write(dir.join("case.safetensors"), bytes).unwrap();

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/reference_step.py");
    let out =
        Command::new(&python).args(["-W", "ignore"]).arg(script).arg(&dir).output().expect("python runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    eprintln!("{}", text.trim());
}
