//! Data-parallel training through `sance_ebm_set_allreduce`, with ranks as threads of this
//! process and an in-process sum as the host's reduction (the MPI harness, tests/mpi/, runs
//! the same protocol over real MPI). Checks: one rank trains exactly like no reduction; ranks
//! stay bit-identical; a rank with NaN data makes every rank skip; ranks with different seeds
//! are refused at registration on every rank; a failing reduction is SANCE_STATUS_COLLECTIVE
//! with the model unchanged; 2 ranks on the halves of a batch make the update 1 process makes
//! on the whole batch (the data's scaling, fitted over the ranks' first batches, included).
mod common;
use common::*;
use sance::abi::config::{SanceConfig, SanceInit};
use sance::ffi::api::*;
use sance::ffi::handle::SanceEbm;
use sance::SanceStatus;
use std::ffi::c_void;
use std::ptr;
use std::sync::{Arc, Barrier, Mutex};

/// An in-process allreduce among `world` threads.
struct Group {
    barrier: Barrier,
    acc: Mutex<Vec<f32>>,
    /// Reductions made so far, per rank (all must end equal: nobody left waiting).
    calls: Mutex<Vec<u32>>,
}

struct RankCtx {
    group: Arc<Group>,
    rank: usize,
    /// Make this rank's next reduction fail (return 7) without joining the others.
    fail_next: bool,
}

unsafe extern "C" fn sum(buf: *mut f32, n: usize, user: *mut c_void) -> i32 {
    let ctx = &mut *(user as *mut RankCtx);
    if ctx.fail_next {
        ctx.fail_next = false;
        return 7;
    }
    let g = &ctx.group;
    g.calls.lock().unwrap()[ctx.rank] += 1;
    let buf = std::slice::from_raw_parts_mut(buf, n);
    if g.barrier.wait().is_leader() {
        *g.acc.lock().unwrap() = vec![0.0; n];
    }
    g.barrier.wait();
    {
        let mut acc = g.acc.lock().unwrap();
        assert_eq!(acc.len(), n, "ranks reduced buffers of different sizes");
        for (a, b) in acc.iter_mut().zip(buf.iter()) {
            *a += *b;
        }
    }
    g.barrier.wait();
    buf.copy_from_slice(&g.acc.lock().unwrap());
    g.barrier.wait();
    0
}

fn group(world: usize) -> Arc<Group> {
    Arc::new(Group {
        barrier: Barrier::new(world),
        acc: Mutex::new(Vec::new()),
        calls: Mutex::new(vec![0; world]),
    })
}

/// Runs `f(rank)` on `world` threads at once and returns their results in rank order. A rank
/// left waiting in a reduction fails the test after two minutes instead of hanging it.
fn ranks<T: Send + 'static>(world: usize, f: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let f = Arc::new(f);
    let (tx, rx) = std::sync::mpsc::channel();
    for r in 0..world {
        let (f, tx) = (f.clone(), tx.clone());
        std::thread::spawn(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(r)));
            let _ = tx.send((r, out));
        });
    }
    let mut out: Vec<Option<T>> = (0..world).map(|_| None).collect();
    for _ in 0..world {
        let (r, v) =
            rx.recv_timeout(std::time::Duration::from_secs(120)).expect("a rank is stuck in a reduction");
        out[r] = Some(v.unwrap_or_else(|_| panic!("rank {r} panicked")));
    }
    out.into_iter().map(|v| v.expect("every rank reported")).collect()
}

fn register(h: *mut SanceEbm, ctx: &mut RankCtx, world: usize) -> SanceStatus {
    unsafe {
        sance_ebm_set_allreduce(
            h,
            Some(sum),
            ctx as *mut RankCtx as *mut c_void,
            ctx.rank as u32,
            world as u32,
        )
    }
}

fn step_on(h: *mut SanceEbm, d: &[f32]) -> SanceStatus {
    unsafe { sance_ebm_train_step(h, d.as_ptr(), d.len() / 2, ptr::null_mut()) }
}

fn step_stats(h: *mut SanceEbm, d: &[f32]) -> sance::SanceStepStats {
    let mut s = sance::SanceStepStats::default();
    let st = unsafe { sance_ebm_train_step(h, d.as_ptr(), d.len() / 2, &mut s) };
    assert_eq!(st, SanceStatus::Ok, "{}", last_error());
    s
}

#[test]
fn a_world_of_one_trains_exactly_like_no_reduction() {
    let cfg = small_config();
    let (h, twin) = (new(&cfg), new(&cfg));
    let mut ctx = RankCtx { group: group(1), rank: 0, fail_next: false };
    assert_eq!(register(h, &mut ctx, 1), SanceStatus::Ok, "{}", last_error());
    for t in 0..30 {
        let d = data("8gaussians", 32, t);
        assert_eq!(step_on(h, &d), SanceStatus::Ok, "{}", last_error());
        assert_eq!(step_on(twin, &d), SanceStatus::Ok);
    }
    assert_eq!(bits(&probe(h)), bits(&probe(twin)), "one rank differs from no reduction");
    assert_eq!(
        ctx.group.calls.lock().unwrap()[0],
        1 + 2 + 2 * 30,
        "registration, the first step's two for the data's scaling, then two reductions per step"
    );
    unsafe {
        sance_ebm_free(h);
        sance_ebm_free(twin);
    }
}

#[test]
fn ranks_stay_identical_and_skip_together() {
    const W: usize = 3;
    let g = group(W);
    let out = ranks(W, move |rank| {
        let h = new(&small_config());
        let mut ctx = RankCtx { group: g.clone(), rank, fail_next: false };
        assert_eq!(register(h, &mut ctx, W), SanceStatus::Ok, "{}", last_error());
        let mut statuses = Vec::new();
        for t in 0..40u64 {
            // Each rank its own data; at step 20, rank 1's batch holds a NaN.
            let mut d = data("8gaussians", 32, 1000 * rank as u64 + t);
            if t == 20 && rank == 1 {
                d[5] = f32::NAN;
            }
            statuses.push(step_on(h, &d));
        }
        let mut p = sance::SanceProgress::default();
        assert_eq!(unsafe { sance_ebm_progress(h, &mut p) }, SanceStatus::Ok);
        let mut e = probe(h);
        e.push(p.log_z_ratio);
        // The same model (θ and c), but each rank's own random stream.
        let mut x = vec![0f32; 16];
        assert_eq!(unsafe { sance_ebm_sample(h, 8, ptr::null(), x.as_mut_ptr()) }, SanceStatus::Ok);
        unsafe { sance_ebm_free(h) };
        (statuses, p.step, bits(&e), bits(&x))
    });
    for (rank, (statuses, steps, _, _)) in out.iter().enumerate() {
        for (t, s) in statuses.iter().enumerate() {
            let want = if t == 20 { SanceStatus::NonFinite } else { SanceStatus::Ok };
            assert_eq!(*s, want, "rank {rank}, step {t}");
        }
        assert_eq!(*steps, 39, "rank {rank}: the NaN step counted nowhere");
    }
    assert!(out.iter().all(|o| o.2 == out[0].2), "the ranks' models differ");
    assert!(out[0].3 != out[1].3 && out[1].3 != out[2].3, "two ranks drew the same random numbers");
}

#[test]
fn different_models_are_refused_on_every_rank() {
    const W: usize = 2;
    let g = group(W);
    let out = ranks(W, move |rank| {
        let cfg = SanceConfig { seed: if rank == 1 { 99 } else { 0 }, ..small_config() };
        let h = new(&cfg);
        let mut ctx = RankCtx { group: g.clone(), rank, fail_next: false };
        let s = register(h, &mut ctx, W);
        let msg = last_error();
        // Not registered: it trains alone, without waiting for anyone.
        let d = data("8gaussians", 16, rank as u64);
        let alone = step_on(h, &d);
        unsafe { sance_ebm_free(h) };
        (s, msg, alone)
    });
    for (s, msg, alone) in out {
        assert_eq!(s, SanceStatus::InvalidArgument);
        assert!(msg.contains("do not hold the same model"), "{msg}");
        assert_eq!(alone, SanceStatus::Ok);
    }
}

#[test]
fn classic_nce_is_refused_on_every_rank() {
    const W: usize = 2;
    let g = group(W);
    let out = ranks(W, move |rank| {
        let cfg = SanceConfig { noise: sance::abi::config::SanceNoise::Gaussian, ..small_config() };
        let h = new(&cfg);
        let mut ctx = RankCtx { group: g.clone(), rank, fail_next: false };
        let s = register(h, &mut ctx, W);
        let msg = last_error();
        unsafe { sance_ebm_free(h) };
        (s, msg)
    });
    for (s, msg) in out {
        assert_eq!(s, SanceStatus::InvalidArgument);
        assert!(msg.contains("SANCE_NOISE_GAUSSIAN"), "{msg}");
    }
}

/// A rank passing an impossible rank still takes part in the registration's reduction, so
/// the others get an error instead of waiting for it.
#[test]
fn a_bad_rank_fails_every_rank_without_a_hang() {
    const W: usize = 2;
    let g = group(W);
    let out = ranks(W, move |rank| {
        let h = new(&small_config());
        let mut ctx = RankCtx { group: g.clone(), rank, fail_next: false };
        let claimed = if rank == 1 { 5 } else { 0 };
        let s = unsafe {
            sance_ebm_set_allreduce(h, Some(sum), &mut ctx as *mut RankCtx as *mut c_void, claimed, W as u32)
        };
        unsafe { sance_ebm_free(h) };
        s
    });
    assert_eq!(out, [SanceStatus::InvalidArgument; 2]);
}

#[test]
fn a_failing_reduction_is_a_collective_status_and_changes_nothing() {
    let h = new(&small_config());
    let mut ctx = RankCtx { group: group(1), rank: 0, fail_next: true };
    assert_eq!(register(h, &mut ctx, 1), SanceStatus::Collective, "registration's reduction failed");
    assert_eq!(register(h, &mut ctx, 1), SanceStatus::Ok, "{}", last_error());
    train(h, 0..2);
    let dir = scratch("allreduce-fail");
    let path = cpath(&dir.join("m.safetensors"));
    let save = |h| {
        assert_eq!(unsafe { sance_ebm_save(h, path.as_ptr()) }, SanceStatus::Ok);
        std::fs::read(dir.join("m.safetensors")).unwrap()
    };
    let before = save(h);
    ctx.fail_next = true;
    let d = data("8gaussians", 32, 7);
    assert_eq!(step_on(h, &d), SanceStatus::Collective);
    assert!(last_error().contains("returned 7"), "{}", last_error());
    assert!(save(h) == before, "a failed reduction changed the model");
    assert_eq!(step_on(h, &d), SanceStatus::Ok, "{}", last_error());
    unsafe { sance_ebm_free(h) };
}

/// Two ranks, each on one half of a batch, against one process on the whole batch. The noise
/// chains are made the same by construction: they start at the origin (init_scale 0, no
/// replay) and move without noise, so every chain is the same deterministic path wherever it
/// runs; the data noise is off. Then the averaged gradient is the whole batch's gradient.
#[test]
fn two_halves_make_the_update_of_the_whole() {
    let mut cfg = small_config();
    cfg.replay_reinit_prob = 1.0;
    cfg.data_noise_std = 0.0;
    cfg.langevin.init = SanceInit::Uniform;
    cfg.langevin.init_scale = 0.0;
    cfg.langevin.noise_std = 0.0;
    cfg.langevin.metropolis = 0;
    cfg.langevin.target_acceptance = 0.0;
    // Far from unit scale: the scaling fitted over both halves must be the whole batch's.
    let batches: Vec<Vec<f32>> =
        (0..5).map(|t| data("8gaussians", 64, 50 + t).iter().map(|v| 40.0 + 25.0 * v).collect()).collect();
    // Energies after the steps, and each step's (loss, gradient norm, accuracy).
    let whole = {
        let h = new(&cfg);
        let stats: Vec<[f32; 3]> = batches
            .iter()
            .map(|d| {
                let s = step_stats(h, d);
                [s.loss, s.grad_norm, s.accuracy]
            })
            .collect();
        let e = probe(h);
        unsafe { sance_ebm_free(h) };
        (e, stats)
    };
    let g = group(2);
    let halves = ranks(2, move |rank| {
        let h = new(&cfg);
        let mut ctx = RankCtx { group: g.clone(), rank, fail_next: false };
        assert_eq!(register(h, &mut ctx, 2), SanceStatus::Ok, "{}", last_error());
        let stats: Vec<[f32; 3]> = batches
            .iter()
            .map(|d| {
                let s = step_stats(h, &d[rank * 64..(rank + 1) * 64]);
                [s.loss, s.grad_norm, s.accuracy]
            })
            .collect();
        let e = probe(h);
        unsafe { sance_ebm_free(h) };
        (e, stats)
    });
    assert_eq!(bits(&halves[0].0), bits(&halves[1].0));
    let rel = |a: &[f32], b: &[f32]| {
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    };
    let err = rel(&halves[0].0, &whole.0);
    assert!(err < 1e-5, "2 ranks on halves vs 1 process on the whole: energies differ by {err:.2e}");
    for (t, (h, w)) in halves[0].1.iter().zip(&whole.1).enumerate() {
        // The reported loss and accuracy are averages over ranks, the gradient norm that of the
        // averaged gradient: the whole batch's.
        assert!(rel(h, w) < 1e-5, "step {t}: (loss, gradient norm, accuracy) {h:?} on 2 ranks, {w:?} on 1");
    }
}

/// Ranks that all load one checkpoint hold the same random stream: registration gives every
/// rank but rank 0 a stream of its own, at any step (not only before the first). Ranks whose
/// streams already differ keep theirs.
#[test]
fn ranks_from_one_checkpoint_get_distinct_streams_and_distinct_ones_keep_theirs() {
    const W: usize = 2;
    let trained = new(&small_config());
    train(trained, 0..5);
    let dir = scratch("allreduce-one-checkpoint");
    let path = dir.join("m.safetensors");
    assert_eq!(
        unsafe { sance_ebm_save(trained, cpath(&path).as_ptr()) },
        SanceStatus::Ok,
        "{}",
        last_error()
    );
    unsafe { sance_ebm_free(trained) };
    let load = {
        let path = path.clone();
        move || {
            let mut h = ptr::null_mut();
            let s = unsafe { sance_ebm_load(cpath(&path).as_ptr(), test_device(), &mut h) };
            assert_eq!(s, SanceStatus::Ok, "{}", last_error());
            h
        }
    };
    let draw = |h: *mut SanceEbm| {
        let mut x = vec![0f32; 16];
        assert_eq!(unsafe { sance_ebm_sample(h, 8, ptr::null(), x.as_mut_ptr()) }, SanceStatus::Ok);
        bits(&x)
    };
    // Chains run in place draw from the model's stream (sance_ebm_draw uses its own streams,
    // derived from it, and leaves it where it is).
    let advance_stream = |h: *mut SanceEbm| {
        let mut x = vec![0.5f32; 16];
        assert_eq!(unsafe { sance_ebm_sample_from(h, x.as_mut_ptr(), 8, ptr::null()) }, SanceStatus::Ok);
    };
    // `advance[r]` runs chains on rank r before registering, which moves its stream.
    let run = |advance: [bool; W]| {
        let g = group(W);
        let load = load.clone();
        ranks(W, move |rank| {
            let h = load();
            if advance[rank] {
                advance_stream(h);
            }
            let mut ctx = RankCtx { group: g.clone(), rank, fail_next: false };
            assert_eq!(register(h, &mut ctx, W), SanceStatus::Ok, "{}", last_error());
            let x = draw(h);
            unsafe { sance_ebm_free(h) };
            x
        })
    };
    let same = run([false, false]);
    assert!(same[0] != same[1], "ranks loaded from one checkpoint drew the same random numbers");
    // Rank 0 keeps the stream it loaded: it draws what an unregistered copy draws.
    let alone = load();
    assert!(same[0] == draw(alone), "rank 0's stream changed at registration");
    // Rank 1 moved its stream before registering: the streams differ, so both keep theirs.
    let distinct = run([false, true]);
    let advanced = load();
    advance_stream(advanced);
    assert!(distinct[1] == draw(advanced), "a rank whose stream was already its own lost it");
    unsafe {
        sance_ebm_free(alone);
        sance_ebm_free(advanced);
    }
}
