//! A libtorch failure on a caller-sized input — here a real out-of-memory error, forced by
//! capping this process's address space (RLIMIT_AS) — returns SANCE_STATUS_TORCH from every
//! entry point that allocates in proportion to its input, writes nothing to the caller's
//! buffers, and leaves the handle exactly as it was (its checkpoint bytes are unchanged) and
//! usable: it then trains on bit for bit like a twin that never saw the failed calls.
//!
//! This binary holds one test, so that the cap affects nothing else.
mod common;
use common::*;
use sance::abi::config::SanceConfig;
use sance::ffi::api::*;
use sance::ffi::handle::SanceEbm;
use sance::SanceStatus;
use std::ptr;

fn vm_size_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

fn set_address_space_limit(bytes: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) }, 0);
    lim.rlim_cur = bytes.min(lim.rlim_max);
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
}

fn checkpoint(h: *mut SanceEbm, name: &str) -> Vec<u8> {
    let path = scratch(name).join("m.safetensors");
    assert_eq!(unsafe { sance_ebm_save(h, cpath(&path).as_ptr()) }, SanceStatus::Ok, "{}", last_error());
    std::fs::read(path).unwrap()
}

fn step(h: *mut SanceEbm, t: u64) {
    let d = data("8gaussians", 64, t);
    let s = unsafe { sance_ebm_train_step(h, d.as_ptr(), 64, ptr::null_mut()) };
    assert_eq!(s, SanceStatus::Ok, "{}", last_error());
}

#[test]
fn out_of_memory_is_a_torch_status_and_the_handle_stays_usable() {
    // Wide layers: a million samples need 1 GB per hidden layer, while the inputs stay small.
    // K = 5, so the failing training step is also a refresh step. Chunks of 16 MiB of work
    // (on this thread), so that one fits under the cap below.
    sance::fault::set_chunk_bytes(Some(16 << 20));
    // Five sampler steps a call: the calls' size, not their length, is what fails here.
    let base = small_config();
    let langevin = sance::SanceLangevin { steps: 5, ..base.langevin };
    let cfg = SanceConfig { hidden_width: 256, noise_update_interval: 5, langevin, ..base };
    let (h, twin) = (new(&cfg), new(&cfg));
    for t in 0..5 {
        step(h, t);
        step(twin, t);
    }
    let before = checkpoint(h, "oom-before");
    assert!(before == checkpoint(twin, "oom-twin-before"), "twins differ before the test");

    // Everything the calls need from Rust is allocated before the cap. `n` samples fit in
    // chunks, not at once; `big` samples do not even fit as one copy of the input.
    let (n, big) = (1usize << 20, 1usize << 25);
    let points = |n: usize| -> Vec<f32> { (0..2 * n).map(|i| ((i % 97) as f32) * 0.05 - 2.4).collect() };
    let (x, xb) = (points(n), points(big));
    let mut chains = xb.clone();
    let sentinel = -7.25f32;
    let mut out = vec![sentinel; 2 * big];
    let mut energies = vec![sentinel; big];
    let mut stats = sance::SanceStepStats { step: u64::MAX, ..Default::default() };
    // What the chunked calls on `n` samples write, capped and (on the twin) not.
    let run_chunked = |m: *mut SanceEbm| -> (Vec<SanceStatus>, Vec<f32>) {
        let mut r = vec![0f32; 6 * n];
        let (e, rest) = r.split_at_mut(n);
        let (e2, rest) = rest.split_at_mut(n);
        let (g, rest) = rest.split_at_mut(2 * n);
        let s1 = unsafe { sance_ebm_energy(m, x.as_ptr(), n, e.as_mut_ptr()) };
        let s2 = unsafe { sance_ebm_energy_grad(m, x.as_ptr(), n, e2.as_mut_ptr(), g.as_mut_ptr()) };
        let s3 = unsafe { sance_ebm_sample(m, n / 2, ptr::null(), rest.as_mut_ptr()) };
        let s4 = unsafe { sance_ebm_sample_from(m, rest.as_mut_ptr(), n / 2, ptr::null()) };
        (vec![s1, s2, s3, s4], r)
    };
    let unlimited = {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) };
        lim.rlim_cur
    };
    set_address_space_limit(vm_size_bytes() + (160 << 20));
    let results = [
        ("train_step", unsafe { sance_ebm_train_step(h, x.as_ptr(), n, &mut stats) }),
        ("energy", unsafe { sance_ebm_energy(h, xb.as_ptr(), big, energies.as_mut_ptr()) }),
        ("energy_grad", unsafe {
            sance_ebm_energy_grad(h, xb.as_ptr(), big, energies.as_mut_ptr(), out.as_mut_ptr())
        }),
        ("sample", unsafe { sance_ebm_sample(h, big, ptr::null(), out.as_mut_ptr()) }),
        ("sample_from", unsafe { sance_ebm_sample_from(h, chains.as_mut_ptr(), big, ptr::null()) }),
    ];
    let message = last_error();
    set_address_space_limit(unlimited);

    for (name, s) in results {
        assert_eq!(s, SanceStatus::Torch, "{name}: {}", last_error());
    }
    assert!(message.contains("libtorch") && message.contains("alloc"), "message: {message}");
    assert!(out.iter().chain(&energies).all(|&v| v == sentinel), "outputs written by failed calls");
    assert!(chains == xb, "chains changed by a failed sample_from");
    assert_eq!(stats.step, u64::MAX, "stats written by a failed step");
    assert!(checkpoint(h, "oom-after") == before, "the failed calls changed the model");
    // Room for a few chunks and thread arenas (glibc reserves 64–128 MiB of address space per
    // arena, and libtorch's pool threads may each open one: 768 MiB failed on the first chunk
    // once in the suite), still a quarter of the ~6 GB the million samples would need at once.
    set_address_space_limit(vm_size_bytes() + (1536 << 20));
    let (chunked_status, chunked) = run_chunked(h);
    let chunked_error = last_error();
    set_address_space_limit(unlimited);
    assert!(
        chunked_status.iter().all(|&s| s == SanceStatus::Ok),
        "chunked calls under the cap: {chunked_status:?}: {chunked_error}"
    );
    let (twin_status, twin_chunked) = run_chunked(twin);
    assert!(twin_status.iter().all(|&s| s == SanceStatus::Ok), "{}", last_error());
    assert!(
        bits(&chunked) == bits(&twin_chunked),
        "chunked results under the cap differ from the uncapped twin's"
    );

    // Usable, and on exactly the path of a twin that never saw the failures.
    for t in 5..12 {
        step(h, t);
        step(twin, t);
    }
    assert!(
        checkpoint(h, "oom-h-end") == checkpoint(twin, "oom-twin-end"),
        "training after the failures differs from the twin"
    );
    unsafe {
        sance_ebm_free(h);
        sance_ebm_free(twin);
    }
}
