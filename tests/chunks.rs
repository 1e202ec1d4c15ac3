//! sample, sample_from, energy and energy_grad cut large calls into chunks of rows (a fixed
//! working-memory budget, src/runtime/memory.rs CHUNK_BYTES). Cut or not, the results are the same up
//! to float rounding (matrix products may round differently with fewer rows), and a cut call
//! is reproducible bit for bit.
mod common;
use common::*;
use sance::abi::config::SanceLangevin;
use sance::ffi::api::*;
use sance::SanceStatus;
use std::ptr;

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn cut_and_uncut_calls_agree() {
    let h = new(&small_config());
    train(h, 0..3);
    let n = 1000;
    let x = data("rings", n, 4);
    // Energy, gradients and noiseless chains: once in one piece, once in chunks of ~37 rows.
    let run = |chunk: Option<usize>| -> Vec<f32> {
        sance::fault::set_chunk_bytes(chunk);
        let mut r = vec![0f32; 6 * n];
        let (e, rest) = r.split_at_mut(n);
        let (e2, rest) = rest.split_at_mut(n);
        let (g, chains) = rest.split_at_mut(2 * n);
        chains.copy_from_slice(&x);
        let quiet = SanceLangevin {
            noise_std: 0.0,
            steps: 10,
            metropolis: 0,
            target_acceptance: 0.0,
            ..Default::default()
        };
        unsafe {
            assert_eq!(
                sance_ebm_energy(h, x.as_ptr(), n, e.as_mut_ptr()),
                SanceStatus::Ok,
                "{}",
                last_error()
            );
            assert_eq!(
                sance_ebm_energy_grad(h, x.as_ptr(), n, e2.as_mut_ptr(), g.as_mut_ptr()),
                SanceStatus::Ok
            );
            assert_eq!(sance_ebm_sample_from(h, chains.as_mut_ptr(), n, &quiet), SanceStatus::Ok);
        }
        sance::fault::set_chunk_bytes(None);
        r
    };
    let whole = run(None);
    // small_config: 16 hidden units, 2 layers: (4·2 + 3·32)·4 = 416 bytes per row.
    let cut = run(Some(37 * 416));
    for (name, range) in [
        ("energy", 0..n),
        ("energy_grad energies", n..2 * n),
        ("gradients", 2 * n..4 * n),
        ("chains", 4 * n..6 * n),
    ] {
        let err = max_rel(&cut[range.clone()], &whole[range]);
        assert!(err < 1e-5, "{name}: cut and uncut differ by {err}");
    }
    // Noisy sampling in chunks: reproducible from the same state, finite.
    let sample = |chunk| {
        sance::fault::set_chunk_bytes(Some(chunk));
        let mut out = vec![0f32; 2 * n];
        let s = unsafe { sance_ebm_sample(h, n, ptr::null(), out.as_mut_ptr()) };
        sance::fault::set_chunk_bytes(None);
        assert_eq!(s, SanceStatus::Ok, "{}", last_error());
        out
    };
    let dir = scratch("chunks");
    let path = cpath(&dir.join("m.safetensors"));
    assert_eq!(unsafe { sance_ebm_save(h, path.as_ptr()) }, SanceStatus::Ok);
    let a = sample(37 * 416);
    let mut h2 = ptr::null_mut();
    assert_eq!(unsafe { sance_ebm_load(path.as_ptr(), -1, &mut h2) }, SanceStatus::Ok);
    let b = {
        sance::fault::set_chunk_bytes(Some(37 * 416));
        let mut out = vec![0f32; 2 * n];
        let s = unsafe { sance_ebm_sample(h2, n, ptr::null(), out.as_mut_ptr()) };
        sance::fault::set_chunk_bytes(None);
        assert_eq!(s, SanceStatus::Ok);
        out
    };
    assert_eq!(bits(&a), bits(&b), "sampling in chunks is reproducible");
    // Each chunk draws its own starts and noise: no chunk repeats another.
    let rows = 37 * 2;
    assert!(bits(&a[..rows]) != bits(&a[rows..2 * rows]), "two chunks drew the same chains");
    assert!(a.iter().all(|v| v.is_finite()));
    unsafe {
        sance_ebm_free(h);
        sance_ebm_free(h2);
    }
}
