//! A property test over many thousands of mutated checkpoints: loading any of them returns OK
//! or SANCE_STATUS_CORRUPT, never a panic, an abort or another status. Seeds: the small
//! in-tree corpus (tests/corpus/) plus a checkpoint of a freshly trained model.
mod common;
use common::*;
use sance::abi::config::SANCE_DEVICE_CPU;
use sance::checkpoint::from_bytes;
use sance::ffi::api::{sance_ebm_free, sance_ebm_save};
use sance::SanceStatus;
use sance_cabi::boundary::catch;

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn header_len(b: &[u8]) -> usize {
    if b.len() < 8 {
        return 0;
    }
    (u64::from_le_bytes(b[..8].try_into().unwrap()) as usize).min(b.len() - 8)
}

fn mutate(seed: &[u8], r: &mut XorShift) -> Vec<u8> {
    let mut b = seed.to_vec();
    let rounds = 1 + r.below(3);
    for _ in 0..rounds {
        if b.is_empty() {
            b.push(r.next() as u8);
        }
        match r.below(7) {
            0 => {
                // flip bits
                for _ in 0..1 + r.below(8) {
                    let i = r.below(b.len());
                    b[i] ^= 1 << r.below(8);
                }
            }
            1 => {
                // overwrite a run with random bytes
                let i = r.below(b.len());
                let n = 1 + r.below(16);
                for j in i..(i + n).min(b.len()) {
                    b[j] = r.next() as u8;
                }
            }
            2 => {
                let cut = r.below(b.len() + 1);
                b.truncate(cut);
            }
            3 => {
                let i = r.below(b.len() + 1);
                let extra: Vec<u8> = (0..1 + r.below(8)).map(|_| r.next() as u8).collect();
                b.splice(i..i, extra);
            }
            4 | 5 => {
                // Change a digit inside the JSON header: shapes, offsets, counters, config.
                let h = header_len(&b);
                let digits: Vec<usize> = (8..8 + h).filter(|&i| b[i].is_ascii_digit()).collect();
                if !digits.is_empty() {
                    let i = digits[r.below(digits.len())];
                    b[i] = b'0' + r.below(10) as u8;
                }
            }
            _ => {
                // Rewrite the length prefix.
                if b.len() >= 8 {
                    let v = match r.below(3) {
                        0 => r.next(),
                        1 => r.below(b.len() + 16) as u64,
                        _ => u64::MAX - r.below(8) as u64,
                    };
                    b[..8].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
    b
}

#[test]
fn mutated_checkpoints_never_crash_the_loader() {
    let dir = scratch("fuzz");
    let path = dir.join("seed.safetensors");
    let h = new(&small_config());
    train(h, 0..8);
    assert_eq!(unsafe { sance_ebm_save(h, cpath(&path).as_ptr()) }, SanceStatus::Ok);
    unsafe { sance_ebm_free(h) };
    let mut seeds = vec![std::fs::read(&path).unwrap()];
    // Every format version the loader reads: v1 (sance 0.1), v2 (sance 0.2 to ABI 3) and the current v3.
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    for version in ["v1", "v2", "v3"] {
        for e in std::fs::read_dir(corpus.join(version)).unwrap() {
            seeds.push(std::fs::read(e.unwrap().path()).unwrap());
        }
    }
    assert!(seeds.len() >= 10, "the in-tree corpus is missing");
    for (i, seed) in seeds.iter().enumerate() {
        assert!(from_bytes(seed.clone(), SANCE_DEVICE_CPU).is_ok(), "seed {i} does not load unmutated");
    }

    let mut r = XorShift(0x9E3779B97F4A7C15);
    let (mut ok, mut corrupt) = (0usize, 0usize);
    let n = 50_000;
    for i in 0..n {
        let seed = &seeds[i % seeds.len()];
        let input = mutate(seed, &mut r);
        // A model that loads must also work (mutated weights may legitimately overflow).
        let used = catch(|| {
            let ebm = from_bytes(input.clone(), SANCE_DEVICE_CPU)?;
            let x = ebm.tensor_from(&vec![0.5f32; 3 * ebm.sample_size()], 3)?;
            Ok(ebm.energy(&x)?.size() == vec![3])
        });
        match used {
            Ok(true) => ok += 1,
            Ok(false) => panic!("input {i} loaded but gives energies of the wrong shape"),
            Err(e) if e.status == SanceStatus::Corrupt => corrupt += 1,
            Err(e) => {
                let dump = dir.join(format!("crash-{i}.safetensors"));
                std::fs::write(&dump, &input).unwrap();
                panic!("input {i} gave {:?}: {} (saved to {})", e.status, e.message, dump.display());
            }
        }
    }
    eprintln!("fuzz: {n} mutated checkpoints: {ok} loaded, {corrupt} rejected as corrupt, 0 crashes");
    // Both outcomes must be common: a loader that refused everything, or accepted everything,
    // would fail here (seen: ~8 % load, ~92 % are refused).
    assert!(ok > n / 50, "too few mutants load ({ok} of {n}): the loader refuses valid files?");
    assert!(corrupt > n / 2, "most mutations must be caught ({corrupt} of {n})");
}

/// Rewrites the current version's seed corpus (tests/corpus/v3; v1 and v2 are kept as sance
/// 0.1 and 0.3 wrote them): `cargo test --release --test fuzz_checkpoint -- --ignored`.
#[test]
#[ignore]
fn regenerate_corpus() {
    use sance::abi::config::{SanceArch, SanceConfig};
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/v3");
    std::fs::create_dir_all(&corpus).unwrap();
    let tiny =
        SanceConfig { device: SANCE_DEVICE_CPU, hidden_width: 4, replay_capacity: 6, ..Default::default() };
    let conv = SanceConfig {
        arch: SanceArch::Conv,
        channels: 1,
        height: 4,
        width: 4,
        hidden_width: 2,
        hidden_layers: 1,
        replay_capacity: 3,
        ..tiny
    };
    for (name, cfg, steps) in [("fresh-mlp", tiny, 0u64), ("trained-mlp", tiny, 3), ("trained-conv", conv, 2)]
    {
        let h = new(&cfg);
        let d = vec![0.25f32; 4 * 16];
        for _ in 0..steps {
            let s = unsafe { sance::ffi::api::sance_ebm_train_step(h, d.as_ptr(), 4, std::ptr::null_mut()) };
            assert_eq!(s, SanceStatus::Ok, "{}", last_error());
        }
        let p = corpus.join(format!("{name}.safetensors"));
        assert_eq!(unsafe { sance_ebm_save(h, cpath(&p).as_ptr()) }, SanceStatus::Ok);
        unsafe { sance_ebm_free(h) };
    }
}
