//! The MLP's CPU fast path (src/model/fast_mlp.rs: sance-mlp's fused passes, rows split between
//! threads) against libtorch's operations, which it replaces: energies and input gradients
//! within 1e-5 relative, on both activations, inputs of 2 to 784 coordinates, batches that take
//! the one-point path, the GEMM path and several GEMM blocks, one and two threads; the same
//! seed gives the same chains (ULA and MALA) and the same training to rounding.
use sance::abi::config::{SanceActivation, SanceConfig, SanceLangevin};
use sance::model::fast_mlp::{fused_passes, with_kernels, Kernels};
use sance::model::net::{Net, Params};
use sance::model::rng::Rng;
use sance::Ebm;
use tch::{Device, Kind, Tensor};

fn net(dim: i64, width: i64, layers: i64, activation: SanceActivation) -> (Net, Params) {
    let cfg = SanceConfig {
        data_dim: dim as u32,
        hidden_width: width as u32,
        hidden_layers: layers as u32,
        activation,
        ..Default::default()
    };
    let net = Net::from_config(&cfg);
    let p = net.init_params(&mut Rng::new(7), Kind::Float, Device::Cpu).unwrap();
    (net, p)
}

/// max |a − b| / max |b|: the error relative to the largest value.
fn rel(a: &Tensor, b: &Tensor) -> f64 {
    let scale = b.abs().max().double_value(&[]).max(1e-30);
    (a - b).abs().max().double_value(&[]) / scale
}

/// `f` on `k`'s kernels, and whether it took the fused passes (the test hook's count; a
/// comparison of results could not tell: at one point the two paths may round alike).
fn on<R>(k: Kernels, f: impl FnOnce() -> R) -> (R, bool) {
    let before = fused_passes();
    let r = with_kernels(k, f);
    (r, fused_passes() > before)
}

/// E and ∇ₓE by the sampler's workspace (which takes the fused passes at any n) and by
/// libtorch's operations; fails unless each took its own path.
fn both(net: &Net, p: &Params, x: &Tensor) -> [(Tensor, Tensor); 2] {
    [(Kernels::Native, true), (Kernels::Libtorch, false)].map(|(k, fused)| {
        let (r, took) = on(k, || net.sampler_energy_and_grad(p, x).unwrap());
        assert_eq!(took, fused, "{k:?}: the fused passes were{} taken", if took { "" } else { " not" });
        r
    })
}

#[test]
fn energies_and_gradients_match_libtorchs() {
    for threads in [1, 2] {
        let _t = sance::runtime::threads::Scope::for_call(threads);
        for (dim, width, layers, act) in [
            (2, 128, 3, SanceActivation::Silu),
            (2, 64, 2, SanceActivation::LeakyRelu),
            (16, 128, 3, SanceActivation::Silu),
            (784, 256, 2, SanceActivation::Silu),
        ] {
            let (net, p) = net(dim, width, layers, act);
            // 1 and 7 points: one at a time; 300: GEMM; 1,100: several blocks and threads.
            for n in [1, 7, 300, 1100] {
                let x = Tensor::randn([n, dim], (Kind::Float, Device::Cpu)) * 2.0;
                let [(e_fast, g_fast), (e_ref, g_ref)] = both(&net, &p, &x);
                let (de, dg) = (rel(&e_fast, &e_ref), rel(&g_fast, &g_ref));
                assert!(
                    de < 1e-5 && dg < 1e-5,
                    "{dim}→{width}×{layers} {act:?}, n {n}, {threads} threads: energy {de:.2e}, gradient {dg:.2e}"
                );
            }
        }
    }
}

/// Chains from the same start and seed: the fast path's ULA and MALA chains follow libtorch's.
#[test]
fn the_same_seed_gives_the_same_chains() {
    let (net, p) = net(2, 128, 3, SanceActivation::Silu);
    for (chains, metropolis) in [(512, 0), (512, 1)] {
        let x0 = Tensor::randn([chains, 2], (Kind::Float, Device::Cpu));
        let l = SanceLangevin { steps: 20, metropolis, target_acceptance: 0.0, ..Default::default() };
        let [a, b] = [Kernels::Native, Kernels::Libtorch].map(|k| {
            with_kernels(k, || {
                sance::model::langevin::run(&net, &p, x0.copy(), &l, &mut Rng::new(3), false).unwrap().0
            })
        });
        // Per chain: a MALA test that rounding tips the other way sends one chain elsewhere.
        let per_chain = (&a - &b).square().sum_dim_intlist([1i64].as_slice(), false, Kind::Float).sqrt();
        let apart = per_chain.gt(1e-4).sum(Kind::Int64).int64_value(&[]);
        let worst = per_chain.max().double_value(&[]);
        assert!(
            apart <= if metropolis == 1 { chains / 100 } else { 0 },
            "metropolis {metropolis}: {apart} of {chains} chains apart (largest distance {worst:.2e})"
        );
    }
}

/// Training with the defaults (MALA sampler, population, average) from the same seed and data:
/// the model's energies after 30 steps agree to rounding.
#[test]
fn the_same_seed_gives_the_same_training() {
    let cfg = SanceConfig { data_dim: 2, device: sance::abi::config::SANCE_DEVICE_CPU, ..Default::default() };
    let mut rng = Rng::new(9);
    let batches: Vec<Tensor> =
        (0..30).map(|_| rng.randn(&[128, 2], Kind::Float, Device::Cpu).unwrap() * 1.5).collect();
    let probe = Tensor::randn([64, 2], (Kind::Float, Device::Cpu));
    let [a, b] = [Kernels::Native, Kernels::Libtorch].map(|k| {
        with_kernels(k, || {
            let mut ebm = Ebm::new(&cfg).unwrap();
            for x in &batches {
                ebm.train_step(x).unwrap();
            }
            ebm.energy(&probe).unwrap()
        })
    });
    let d = rel(&a, &b);
    assert!(d < 1e-3, "energies after 30 steps differ by {d:.2e} of their largest");
}

/// Energies without a graph (the population's refresh, draws' weights): the fused forward pass
/// from ENERGY_ROWS rows on, within 1e-5 of libtorch's, one and two threads.
#[test]
fn energies_match_libtorchs() {
    for threads in [1, 2] {
        let _t = sance::runtime::threads::Scope::for_call(threads);
        for (dim, act) in [(2, SanceActivation::Silu), (16, SanceActivation::LeakyRelu)] {
            let (net, p) = net(dim, 128, 3, act);
            let x = Tensor::randn([8192 + 5, dim], (Kind::Float, Device::Cpu));
            let [(fast, took), (reference, took_ref)] =
                [Kernels::Native, Kernels::Libtorch].map(|k| on(k, || net.energies(&p, &x).unwrap()));
            assert!(took && !took_ref, "each path was not its own: fused {took}, libtorch {took_ref}");
            let d = rel(&fast, &reference);
            assert!(d < 1e-5, "{dim}-D {act:?}, {threads} threads: {d:.2e}");
        }
    }
}

/// One update's loss gradients for every parameter and c (update_on, the test hook: the
/// gradient before clipping), by the fused training pass and by libtorch's autograd, on the
/// defaults after a few steps (a snapshot, data and noise of 256 rows each); on one thread and
/// on two (each thread a share of the 512 rows, the shares' gradients summed), then with ν = 2
/// and the energies' L2 penalty; and the step's statistics (the loss, which the fused path
/// computes on the host, against libtorch's tensors).
#[test]
fn the_training_gradients_match_libtorchs() {
    for (threads, noise_ratio, energy_l2) in [(1, 1.0, 0.0), (2, 1.0, 0.0), (2, 2.0, 0.1)] {
        let cfg = SanceConfig {
            data_dim: 2,
            device: sance::abi::config::SANCE_DEVICE_CPU,
            num_threads: threads,
            noise_ratio,
            energy_l2,
            ..Default::default()
        };
        let mut rng = Rng::new(4);
        let mut batch = || rng.randn(&[256, 2], Kind::Float, Device::Cpu).unwrap() * 1.5;
        let mut ebm = Ebm::new(&cfg).unwrap();
        for _ in 0..7 {
            ebm.train_step(&batch()).unwrap();
        }
        let (data, noise) = (batch(), batch());
        let bytes = sance::checkpoint::to_bytes(&ebm).unwrap();
        let [(fast_stats, fast), (ref_stats, reference)] = [Kernels::Native, Kernels::Libtorch].map(|k| {
            let mut m =
                sance::checkpoint::from_bytes(bytes.clone(), sance::abi::config::SANCE_DEVICE_CPU).unwrap();
            let _t = sance::runtime::threads::Scope::for_call(threads);
            let (r, took) = on(k, || m.update_on(&data, &noise).unwrap());
            assert_eq!(took, k == Kernels::Native, "{k:?}: the fused training pass was taken: {took}");
            r
        });
        assert_eq!(fast.len(), reference.len());
        for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
            let d = rel(a, b);
            // Each entry sums 512 rows' terms that largely cancel (a bias's gradient): float32
            // rounding in another order leaves about 1e-5 of the largest entry.
            assert!(
                d < 5e-5,
                "{threads} threads, ν {noise_ratio}, l2 {energy_l2}: gradient {i} of {}: {d:.2e} of its largest entry",
                fast.len()
            );
        }
        for (name, a, b) in [
            ("loss", fast_stats.loss, ref_stats.loss),
            ("accuracy", fast_stats.accuracy, ref_stats.accuracy),
            ("data energy", fast_stats.data_energy, ref_stats.data_energy),
            ("noise energy", fast_stats.noise_energy, ref_stats.noise_energy),
            ("log Z ratio", fast_stats.log_z_ratio, ref_stats.log_z_ratio),
            ("gradient norm", fast_stats.grad_norm, ref_stats.grad_norm),
        ] {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{threads} threads, ν {noise_ratio}, l2 {energy_l2}: {name} {a} against {b}"
            );
        }
    }
}

/// OpenMP may grant a parallel region fewer threads than asked (`OMP_THREAD_LIMIT`, as
/// clusters set it, or `OMP_DYNAMIC`): every share of the rows must still run. The comparisons
/// above, two threads asked for, rerun in a process that OpenMP limits to one thread (the limit
/// is read when libgomp starts, hence the new process); before the fix half the rows were
/// left unwritten (energies 38 apart, gradients 1e35).
#[test]
fn a_smaller_team_than_asked_still_covers_every_row() {
    if std::env::var_os("OMP_THREAD_LIMIT").is_some() {
        return; // the child itself
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "energies_and_gradients_match_libtorchs",
            "energies_match_libtorchs",
            "the_training_gradients_match_libtorchs",
            "--test-threads",
            "1",
        ])
        .env("OMP_THREAD_LIMIT", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "under OMP_THREAD_LIMIT=1:\n{text}");
    assert!(text.contains("3 passed"), "the three comparisons did not all run:\n{text}");
}
