//! The MLP's CPU fast path: E(x) and ∇ₓE(x) by the fused passes of the workspace crate
//! sance-mlp (the code libsance_eval runs), instead of a dozen libtorch operations per call.
//!
//! At the sampler's sizes an MLP step pays for libtorch's dispatch more than for arithmetic
//! (docs/speed.md): each operation is a call through the dispatcher, an output checked and
//! often allocated, and one pass over memory; the fused passes do the bias and the activation
//! in the pass that reads the product, keep σ(z) for the backward pass, and run the products
//! on libtorch's own BLAS (MKL's `sgemm_`, registered with sance-mlp once, on the calling
//! thread's MKL thread count as libtorch's products are), falling back to matrixmultiply where
//! the symbol is missing. Used for float32 parameters on the CPU; the network, its rounding
//! aside, is the same: the tests hold both paths to 1e-5.
//!
//! `SANCE_KERNELS=libtorch` keeps libtorch's operations, for comparison (bench/speed times
//! both in the same rounds); [`with_kernels`] chooses per thread, for the tests.
use crate::abi::config::SanceActivation;
use crate::model::net::Params;
use sance_mlp::{Activation, Aligned, Hidden, Net, ParamGrads, Tape};
use std::cell::Cell;
use std::sync::OnceLock;
use tch::{Device, Kind, TchError, Tensor};

/// Which implementation the MLP's input gradient uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// sance-mlp's fused passes where they apply (float32 on the CPU), the default.
    Native,
    /// libtorch's operations everywhere (`SANCE_KERNELS=libtorch`).
    Libtorch,
}

thread_local! {
    static FORCED: Cell<Option<Kernels>> = const { Cell::new(None) };
}

#[cfg(feature = "test-hooks")]
thread_local! {
    static PASSES: Cell<u64> = const { Cell::new(0) };
}

/// Counts a call that took the fused passes (test builds only: [`fused_passes`]).
#[inline(always)]
fn count_pass() {
    #[cfg(feature = "test-hooks")]
    PASSES.with(|c| c.set(c.get() + 1));
}

/// Test-only (the `test-hooks` feature): how many calls on this thread have taken the fused
/// passes, so that a test knows which path ran without comparing results (which two correct
/// paths may round alike).
#[cfg(feature = "test-hooks")]
pub fn fused_passes() -> u64 {
    PASSES.with(|c| c.get())
}

/// The kernels of this thread's calls: [`with_kernels`]'s, else `SANCE_KERNELS`'s, read at
/// each sampler run (not per step), so that a benchmark can alternate the two in one process.
pub fn kernels() -> Kernels {
    FORCED.with(|f| f.get()).unwrap_or_else(|| {
        match std::env::var("SANCE_KERNELS").as_deref().map(str::trim) {
            Ok("libtorch") => Kernels::Libtorch,
            _ => Kernels::Native,
        }
    })
}

/// Runs `f` with this thread's MLP passes on `k` (tests and benchmarks compare the two).
pub fn with_kernels<R>(k: Kernels, f: impl FnOnce() -> R) -> R {
    let before = FORCED.with(|c| c.replace(Some(k)));
    struct Back(Option<Kernels>);
    impl Drop for Back {
        fn drop(&mut self) {
            FORCED.with(|c| c.set(self.0));
        }
    }
    let _back = Back(before);
    f()
}

/// Registers libtorch's sgemm with sance-mlp, once per process.
fn register_blas() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if let Some([f]) = crate::runtime::loaded::symbols(c"libtorch_cpu.so", [c"sgemm_"]) {
            // SAFETY: libtorch_cpu's `sgemm_` is BLAS's (MKL's), with the Fortran signature
            // that `sance_mlp::blas::Sgemm` spells out; the library stays loaded (libsance links it).
            // sance-mlp checks it on a small product first and keeps matrixmultiply if it disagrees.
            let _ = sance_mlp::blas::set_sgemm(unsafe {
                std::mem::transmute::<*mut std::ffi::c_void, sance_mlp::blas::Sgemm>(f)
            });
        }
    });
}

/// The network copied out of `p` for the fused passes, when they apply: MLP parameters in
/// float32 on the CPU and [`Kernels::Native`]. The copy (a few hundred KB at width 256) is made
/// once per sampler run, not per step.
pub(crate) fn native_net(
    p: &Params,
    activation: SanceActivation,
    dim: i64,
) -> Result<Option<Net<f32>>, TchError> {
    let w_out = &p.layers.last().expect("an output layer").weight;
    if kernels() != Kernels::Native || w_out.device() != Device::Cpu || w_out.kind() != Kind::Float {
        return Ok(None);
    }
    register_blas();
    // Parameters are contiguous float32 views of θ's flat tensor: read in place (a copy through
    // tch's conversion is three libtorch calls per tensor, and a step copies a network 4 times).
    let host = |t: &Tensor| -> Result<Vec<f32>, TchError> {
        if t.kind() == Kind::Float && t.device() == Device::Cpu && t.is_contiguous() {
            // SAFETY: a contiguous float32 CPU tensor of numel() values, only read here.
            return Ok(unsafe { host_slice(t, t.numel()) }.to_vec());
        }
        Vec::<f32>::try_from(t.f_contiguous()?.f_view([-1])?)
    };
    let (hidden, _) = p.layers.split_at(p.layers.len() - 1);
    let mut layers = Vec::with_capacity(hidden.len());
    for l in hidden {
        let [width, fan_in] = l.weight.size()[..] else { return Ok(None) };
        let b = l.bias.as_ref().expect("hidden layers have a bias");
        layers.push(Hidden::new(fan_in as usize, width as usize, host(&l.weight)?, host(b)?));
    }
    Ok(Some(Net {
        dim: dim as usize,
        activation: match activation {
            SanceActivation::Silu => Activation::Silu,
            SanceActivation::LeakyRelu => Activation::LeakyRelu,
        },
        hidden: layers,
        w_out: Aligned::new(&host(w_out)?),
        scaling: None,
    }))
}

/// One row share's intermediates in the training pass: θ's tape (forward, then backward in
/// the same call), the snapshot's, and the share's parameter gradients.
#[derive(Default)]
struct Share {
    tape: Tape<f32>,
    snapshot_tape: Tape<f32>,
    grads: ParamGrads<f32>,
}

thread_local! {
    /// The training pass's shares, on the calling thread and reused from step to step: share
    /// t's rows go to whichever pool thread runs t, and its tapes stay here between the
    /// forward and the backward region.
    static SHARES: std::cell::RefCell<Vec<Share>> = Default::default();
}

/// The training step's pass on `x` [N, D] (float32, CPU): E_θ(x) [N] by `net`'s forward pass
/// and, when given, E_θ̄(x) by `snapshot`'s — the same code on the same rows in buffers aligned
/// alike, so that right after a refresh (θ̄ = θ) the two agree to the bit, as the NCE logit's
/// ties need — then, with ∂L/∂E from `loss_grad(E_θ, E_θ̄)` (the caller's loss), the loss's
/// gradient for every parameter, flat in θ's layout (`Params::named` order, c not included).
/// `loss_grad`'s other result passes through.
///
/// With two threads or more the rows are split between them as the sampler's are ([`Split`]'s
/// shares): each thread runs both forward passes on its rows, then its rows' share of the
/// backward pass into gradients of its own, summed here in the shares' order (so the sum
/// depends on the thread count, as libtorch's reductions do, and on nothing else).
pub(crate) fn train_pass<R>(
    net: &Net<f32>,
    snapshot: Option<&Net<f32>>,
    x: &Tensor,
    loss_grad: impl FnOnce(Tensor, Option<Tensor>) -> crate::abi::status::Result<(Vec<f32>, R)>,
) -> crate::abi::status::Result<(Vec<f32>, R)> {
    count_pass();
    let x = input(net, x)?;
    let (n, d) = (x.size()[0] as usize, net.dim);
    // SAFETY: x is a contiguous float32 CPU tensor of n·D values (checked by `input`).
    let xs = unsafe { host_slice(&x, n * d) };
    let split = Split::of(n);
    let (threads, rows) = (split.threads, |t: usize| split.rows(t));
    SHARES.with(|cell| {
        let shares = &mut *cell.borrow_mut();
        if shares.len() < threads {
            shares.resize_with(threads, Share::default);
        }
        let e = Tensor::f_empty([n as i64], (Kind::Float, Device::Cpu))?;
        let es = match snapshot {
            Some(_) => Some(Tensor::f_empty([n as i64], (Kind::Float, Device::Cpu))?),
            None => None,
        };
        // SAFETY: e and es are new contiguous float32 CPU tensors of n values; the shares
        // write disjoint rows of them.
        let (e_out, es_out) =
            (Disjoint(e.data_ptr() as *mut f32), es.as_ref().map(|t| Disjoint(t.data_ptr() as *mut f32)));
        let tapes = Disjoint(shares.as_mut_ptr());
        // Host memory that cannot be had is an error like libtorch's, not an abort.
        let failed = std::sync::atomic::AtomicBool::new(false);
        let forward = |t: usize| {
            let r = rows(t);
            if r.is_empty() {
                return;
            }
            // SAFETY: share t is this thread's alone during the region (t is unique to it).
            let sh = unsafe { &mut *tapes.at(t) };
            let xr = &xs[r.start * d..r.end * d];
            // SAFETY: rows r of e and es belong to share t alone.
            let er = unsafe { std::slice::from_raw_parts_mut(e_out.at(r.start), r.len()) };
            let mut ok = net.forward_tape(xr, r.len(), &mut sh.tape, er).is_ok();
            if let (Some(s), Some(es)) = (snapshot, es_out.as_ref()) {
                // SAFETY: as for e.
                let esr = unsafe { std::slice::from_raw_parts_mut(es.at(r.start), r.len()) };
                ok &= s.forward_tape(xr, r.len(), &mut sh.snapshot_tape, esr).is_ok();
            }
            if !ok {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        };
        on_shares(threads, &forward);
        if failed.into_inner() {
            return Err(TchError::Torch(format!(
                "the MLP's training pass could not allocate its tape for {n} rows"
            ))
            .into());
        }
        let (de, passed) = loss_grad(e, es)?;
        if de.len() != n {
            return Err(TchError::Shape(format!("dL/dE has {} values for {n} rows", de.len())).into());
        }
        let backward = |t: usize| {
            let r = rows(t);
            if !r.is_empty() {
                // SAFETY: as in `forward`.
                let sh = unsafe { &mut *tapes.at(t) };
                net.param_grads(&mut sh.tape, &de[r], &mut sh.grads);
            }
        };
        on_shares(threads, &backward);
        let mut flat = Vec::new();
        for (t, sh) in shares[..threads].iter().enumerate() {
            if rows(t).is_empty() {
                continue;
            }
            let g = &sh.grads;
            let parts =
                g.w.iter()
                    .zip(&g.b)
                    .flat_map(|(w, b)| [w.as_slice(), b.as_slice()])
                    .chain([g.w_out.as_slice()]);
            if flat.is_empty() {
                parts.for_each(|p| flat.extend_from_slice(p));
            } else {
                let mut at = 0;
                for p in parts {
                    flat[at..at + p.len()].iter_mut().zip(p).for_each(|(o, v)| *o += v);
                    at += p.len();
                }
            }
        }
        Ok((flat, passed))
    })
}

/// Runs `f(t)` for the `threads` shares: in one OpenMP region of that many threads, else one
/// after the other on this thread with MKL on all of its threads (one share: the whole pass).
fn on_shares(threads: usize, f: &(dyn Fn(usize) + Sync)) {
    if threads >= 2 && crate::runtime::threads::parallel(threads, f) {
        return;
    }
    (0..threads).for_each(f);
}

/// The `n` floats of a contiguous float32 CPU tensor `t`.
///
/// # Safety
/// `t` holds at least `n` contiguous float32 values on the CPU, and nothing else writes them
/// while the slice lives (nor reads them, if the slice is written).
#[allow(clippy::mut_from_ref)]
unsafe fn host_slice(t: &Tensor, n: usize) -> &mut [f32] {
    std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, n)
}

/// `x` as the fused passes read it: contiguous, float32 on the CPU, [n, net.dim] (a shallow
/// copy when it already is).
fn input(net: &Net<f32>, x: &Tensor) -> Result<Tensor, TchError> {
    let x = x.f_contiguous()?;
    if x.kind() != Kind::Float || x.device() != Device::Cpu || x.numel() != x.size()[0] as usize * net.dim {
        return Err(TchError::Kind(format!("the MLP's fast path got x {:?} {:?}", x.kind(), x.size())));
    }
    Ok(x)
}

/// Rows from which a single call of E and ∇ₓE (`sance_ebm_energy_grad`) copies the network out
/// for the fused passes: one point took 48 µs with the copy against 32 µs on libtorch's
/// operations (`bench/speed --rows eval`); a sampler's run copies once for all its steps.
pub(crate) const ONE_CALL_ROWS: i64 = 64;

/// Rows from which an energy-only pass ([`crate::model::net::Net::energies`]) copies the
/// network out for the fused forward pass: the same as [`ONE_CALL_ROWS`], so that
/// `sance_ebm_energy` and `sance_ebm_energy_grad` give the same energies to the bit.
pub(crate) const ENERGY_ROWS: i64 = ONE_CALL_ROWS;

/// E(x) [n] by `net`'s fused forward pass (no gradient), `x` float32 on the CPU.
pub(crate) fn energies(net: &Net<f32>, x: &Tensor) -> Result<Tensor, TchError> {
    count_pass();
    let x = input(net, x)?;
    let (n, d) = (x.size()[0] as usize, net.dim);
    let e = Tensor::f_empty([n as i64], (Kind::Float, Device::Cpu))?;
    // SAFETY: x and e are contiguous float32 CPU tensors of n·D and n values, e new here.
    let (xs, es) = unsafe { (host_slice(&x, n * d), host_slice(&e, n)) };
    // The rows' shares are written through the first slice, here E ([n, 1]).
    by_rows(n, 1, es, None, &|rows, e, _| {
        net.energy_grad(&xs[rows.start * d..rows.end * d], rows.len(), Some(e), None);
    });
    Ok(e)
}

/// `scale`·∇ₓE(x) into `gx` [n, D] and, when `energy` is given, E(x) into it [n], by `net`'s
/// fused passes. `x` is float32 on the CPU (made contiguous if it is not), `gx` and `energy`
/// contiguous float32 tensors of those shapes.
pub(crate) fn run(
    net: &Net<f32>,
    x: &Tensor,
    scale: f64,
    gx: &mut Tensor,
    energy: Option<&mut Tensor>,
) -> Result<(), TchError> {
    count_pass();
    let x = input(net, x)?;
    let (n, d) = (x.size()[0] as usize, net.dim);
    if gx.numel() != n * d {
        return Err(TchError::Shape(format!(
            "the MLP's fast path got ∇ₓE of {} values for {n} rows",
            gx.numel()
        )));
    }
    let s = scale as f32;
    // SAFETY: x, gx and energy are contiguous float32 CPU tensors of n·D, n·D and n values
    // (checked above and by the callers' allocation), which nothing else reads or writes during
    // the call; gx and energy are distinct from x (allocated by the callers).
    let (xs, gs, es) =
        unsafe { (host_slice(&x, n * d), host_slice(gx, n * d), energy.map(|e| host_slice(e, n))) };
    by_rows(n, d, gs, es, &|rows, g, e| {
        net.energy_grad(&xs[rows.start * d..rows.end * d], rows.len(), e, Some(&mut *g));
        if s != 1.0 {
            g.iter_mut().for_each(|v| *v *= s);
        }
    });
    Ok(())
}

/// Rows per thread below which one thread does the whole call (a pass over fewer rows is
/// mostly the products' packing, and waking a thread costs a few microseconds).
const MIN_ROWS_PER_THREAD: usize = 64;

/// A pass over rows: the rows, their `d` values each of the first output, and their one value
/// of the second when there is one.
type RowsPass<'a> = dyn Fn(std::ops::Range<usize>, &mut [f32], Option<&mut [f32]>) + Sync + 'a;

/// Runs `pass` over the n rows of `g` ([n, d]) and `e` ([n]): split between the calling
/// thread's OpenMP threads, each a whole pass on its share, when there are two or more and at
/// least [`MIN_ROWS_PER_THREAD`] rows for each (crate::runtime::threads::parallel); else on
/// this thread, with MKL on one thread.
fn by_rows(n: usize, d: usize, g: &mut [f32], mut e: Option<&mut [f32]>, pass: &RowsPass<'_>) {
    let split = Split::of(n);
    if split.threads >= 2 {
        let (g_rows, e_rows) = (Disjoint(g.as_mut_ptr()), e.as_mut().map(|e| Disjoint(e.as_mut_ptr())));
        let share = |t: usize| {
            let std::ops::Range { start: lo, end: hi } = split.rows(t);
            if lo < hi {
                // SAFETY: threads get disjoint row ranges of g ([n, d]) and e ([n]), which
                // live until the region is over.
                let g = unsafe { std::slice::from_raw_parts_mut(g_rows.at(lo * d), (hi - lo) * d) };
                let e = e_rows.as_ref().map(|e| unsafe { std::slice::from_raw_parts_mut(e.at(lo), hi - lo) });
                pass(lo..hi, g, e);
            }
        };
        if crate::runtime::threads::parallel(split.threads, &share) {
            return;
        }
    }
    crate::runtime::threads::mkl_single(|| pass(0..n, g, e));
}

/// How a pass over n rows is shared between the calling thread's OpenMP threads: as many
/// threads as the team has, with at least [`MIN_ROWS_PER_THREAD`] rows each (one share when
/// there are fewer), in whole blocks of 8 rows.
struct Split {
    n: usize,
    threads: usize,
    per: usize,
}

impl Split {
    fn of(n: usize) -> Split {
        let threads = crate::runtime::threads::team_size().min(n / MIN_ROWS_PER_THREAD).max(1);
        Split { n, threads, per: n.div_ceil(threads).div_ceil(8) * 8 }
    }

    /// Share t's rows (empty past the last row).
    fn rows(&self, t: usize) -> std::ops::Range<usize> {
        (t * self.per).min(self.n)..((t + 1) * self.per).min(self.n)
    }
}

/// Memory shared out between a region's threads, each touching its own part (rows of an
/// output, a training pass's share).
struct Disjoint<T>(*mut T);
// SAFETY: the threads of a region touch disjoint elements through it.
unsafe impl<T> Sync for Disjoint<T> {}

impl<T> Disjoint<T> {
    /// The address of the i-th element (a method, so that a closure captures the whole value).
    fn at(&self, i: usize) -> *mut T {
        self.0.wrapping_add(i)
    }
}
