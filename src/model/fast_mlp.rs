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
    let host =
        |t: &Tensor| -> Result<Vec<f32>, TchError> { Vec::<f32>::try_from(t.f_contiguous()?.f_view([-1])?) };
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

thread_local! {
    /// The training pass's intermediates (forward, then backward in the same call) and a
    /// second tape for the snapshot's forward pass, reused from step to step on each thread.
    static TAPE: std::cell::RefCell<(Tape<f32>, ParamGrads<f32>, Tape<f32>)> = Default::default();
}

/// The training step's pass on `x` [N, D] (float32, CPU): E_θ(x) [N] by `net`'s forward pass
/// and, when given, E_θ̄(x) by `snapshot`'s — the same code on buffers aligned alike, so that
/// right after a refresh (θ̄ = θ) the two agree to the bit, as the NCE logit's ties need — then,
/// with ∂L/∂E from `loss_grad(E_θ, E_θ̄)` (the caller's loss, differentiated by libtorch on
/// the N energies), the loss's gradients for every parameter, as tensors shaped like `p`'s in
/// `Params::named` order. `loss_grad`'s other result passes through.
pub(crate) fn train_pass<R>(
    net: &Net<f32>,
    snapshot: Option<&Net<f32>>,
    p: &Params,
    x: &Tensor,
    loss_grad: impl FnOnce(Tensor, Option<Tensor>) -> crate::abi::status::Result<(Tensor, R)>,
) -> crate::abi::status::Result<(Vec<Tensor>, R)> {
    let x = input(net, x)?;
    let n = x.size()[0] as usize;
    // SAFETY: x is a contiguous float32 CPU tensor of n·D values (checked by `input`).
    let xs = unsafe { host_slice(&x, n * net.dim) };
    // Host memory that cannot be had is an error like libtorch's, not an abort.
    let out_of_memory =
        |_| TchError::Torch(format!("the MLP's training pass could not allocate its tape for {n} rows"));
    TAPE.with(|cell| {
        let (tape, grads, snapshot_tape) = &mut *cell.borrow_mut();
        let e = Tensor::f_empty([n as i64], (Kind::Float, Device::Cpu))?;
        // SAFETY: e is a new contiguous float32 CPU tensor of n values.
        net.forward_tape(xs, n, tape, unsafe { host_slice(&e, n) }).map_err(out_of_memory)?;
        let e_snapshot = match snapshot {
            Some(s) => {
                let es = Tensor::f_empty([n as i64], (Kind::Float, Device::Cpu))?;
                // SAFETY: as for e.
                s.forward_tape(xs, n, snapshot_tape, unsafe { host_slice(&es, n) }).map_err(out_of_memory)?;
                Some(es)
            }
            None => None,
        };
        let (de, passed) = loss_grad(e, e_snapshot)?;
        let de = de.f_to_kind(Kind::Float)?.f_contiguous()?;
        if de.numel() != n || de.device() != Device::Cpu {
            return Err(TchError::Shape(format!("dL/dE has {} values for {n} rows", de.numel())).into());
        }
        // SAFETY: de is a contiguous float32 CPU tensor of n values (checked), read only here.
        net.param_grads(tape, unsafe { host_slice(&de, n) }, grads);
        let mut out = Vec::with_capacity(2 * net.hidden.len() + 1);
        let (hidden, last) = p.layers.split_at(p.layers.len() - 1);
        for (li, l) in hidden.iter().enumerate() {
            out.push(Tensor::f_from_slice(&grads.w[li])?.f_view(l.weight.size().as_slice())?);
            let b = l.bias.as_ref().expect("hidden layers have a bias");
            out.push(Tensor::f_from_slice(&grads.b[li])?.f_view(b.size().as_slice())?);
        }
        out.push(Tensor::f_from_slice(&grads.w_out)?.f_view(last[0].weight.size().as_slice())?);
        Ok((out, passed))
    })
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
    let threads = crate::runtime::threads::team_size().min(n / MIN_ROWS_PER_THREAD);
    if threads >= 2 {
        // Shares in whole blocks of 8 rows.
        let per = n.div_ceil(threads).div_ceil(8) * 8;
        let (g_rows, e_rows) = (Rows(g.as_mut_ptr()), e.as_mut().map(|e| Rows(e.as_mut_ptr())));
        let share = |t: usize| {
            let (lo, hi) = ((t * per).min(n), ((t + 1) * per).min(n));
            if lo < hi {
                // SAFETY: threads get disjoint row ranges of g ([n, d]) and e ([n]), which
                // live until the region is over.
                let g = unsafe { std::slice::from_raw_parts_mut(g_rows.at(lo * d), (hi - lo) * d) };
                let e = e_rows.as_ref().map(|e| unsafe { std::slice::from_raw_parts_mut(e.at(lo), hi - lo) });
                pass(lo..hi, g, e);
            }
        };
        if crate::runtime::threads::parallel(threads, &share) {
            return;
        }
    }
    crate::runtime::threads::mkl_single(|| pass(0..n, g, e));
}

/// An output's rows, shared out between a region's threads (each writes its own).
struct Rows(*mut f32);
// SAFETY: the threads of `by_rows`'s region write disjoint rows through it.
unsafe impl Sync for Rows {}

impl Rows {
    /// The address of the i-th value (a method, so that a closure captures the whole `Rows`).
    fn at(&self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}
