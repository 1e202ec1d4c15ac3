//! MALA's elementwise work on the CPU in single passes over host memory: the proposal
//! y = x + d + σξ, then the accept test and the copy of the accepted rows into x, d and E.
//! Written with libtorch these are about fifteen operations a step on [n, D] tensors; at the
//! sampler's sizes (n = 256, D = 2–784) each costs its dispatch (microseconds), not its
//! arithmetic, and together they made the default MALA step a third slower than an unadjusted
//! one. The arithmetic is `run_mala`'s tensor path (which CUDA and non-contiguous inputs take),
//! up to the order of the dot product's sums.
use crate::model::langevin::Clamp;
use tch::{Device, Kind, Tensor};

/// A float element that a host pass can read and write: f32 or f64.
pub(crate) trait Elem: Copy + Into<f64> + std::ops::Add<Output = Self> {
    const KIND: Kind;
}
impl Elem for f32 {
    const KIND: Kind = Kind::Float;
}
impl Elem for f64 {
    const KIND: Kind = Kind::Double;
}

/// Whether `t` is a contiguous CPU tensor of `kind` with `len` elements: what reading it as
/// a slice needs.
fn on_host(t: &Tensor, kind: Kind, len: usize) -> bool {
    t.device() == Device::Cpu && t.kind() == kind && t.is_contiguous() && t.numel() == len
}

/// `t`'s elements. Safety: `on_host(t, T::KIND, len)` holds, and nothing writes `t`'s storage
/// while the slice lives.
unsafe fn read<T: Elem>(t: &Tensor, len: usize) -> &[T] {
    if len == 0 {
        return &[];
    }
    std::slice::from_raw_parts(t.data_ptr() as *const T, len)
}

/// `t`'s elements, to write. Safety: `on_host(t, T::KIND, len)` holds, and no other tensor
/// shares `t`'s storage while the slice lives.
unsafe fn write<T: Elem>(t: &mut Tensor, len: usize) -> &mut [T] {
    if len == 0 {
        return &mut [];
    }
    std::slice::from_raw_parts_mut(t.data_ptr() as *mut T, len)
}

/// The box of the accept test on the host: per-coordinate bounds (none without a box).
pub(crate) struct HostBox(Option<(Vec<f64>, Vec<f64>)>);

impl HostBox {
    /// The box for chains of `dim` coordinates; None when its bounds are not one per
    /// coordinate (a shape only broadcasting gives meaning: the tensor path handles it).
    pub(crate) fn of(clamp: &Clamp, dim: usize) -> Result<Option<HostBox>, tch::TchError> {
        let host = |t: &Tensor| -> Result<Vec<f64>, tch::TchError> {
            Vec::<f64>::try_from(t.f_to_kind(Kind::Double)?.f_flatten(0, -1)?.f_contiguous()?)
        };
        Ok(match clamp {
            Clamp::None => Some(HostBox(None)),
            Clamp::Scalar(lo, hi) => Some(HostBox(Some((vec![*lo; dim], vec![*hi; dim])))),
            Clamp::Coordinates(lo, hi) => {
                let (lo, hi) = (host(lo)?, host(hi)?);
                (lo.len() == dim && hi.len() == dim).then_some(HostBox(Some((lo, hi))))
            }
        })
    }

    fn contains<T: Elem>(&self, row: &[T]) -> bool {
        match &self.0 {
            None => true,
            Some((lo, hi)) => row.iter().zip(lo.iter().zip(hi)).all(|(&v, (l, h))| {
                let v: f64 = v.into();
                *l <= v && v <= *h
            }),
        }
    }
}

/// One MALA step's chains on the host: x, d(x) and E(x) (float64) of n chains of dimension
/// `dim`, and the proposal buffer y, all updated in place.
pub(crate) struct HostChains<'t> {
    pub x: &'t mut Tensor,
    pub d: &'t mut Tensor,
    pub e: &'t mut Tensor,
    pub y: &'t mut Tensor,
    pub n: usize,
    pub dim: usize,
}

impl HostChains<'_> {
    /// Whether every buffer, the step's σξ and its T·log u can be read on the host as `T`
    /// (E and T·log u as float64).
    pub(crate) fn ready<T: Elem>(&self, sxi: &Tensor, t_log_u: &Tensor) -> bool {
        let len = self.n * self.dim;
        [&*self.x, &*self.d, &*self.y, sxi].iter().all(|t| on_host(t, T::KIND, len))
            && on_host(self.e, Kind::Double, self.n)
            && on_host(t_log_u, Kind::Double, self.n)
    }

    /// y = x + d + σξ. Needs `ready::<T>`.
    pub(crate) fn propose<T: Elem>(&mut self, sxi: &Tensor) {
        let len = self.n * self.dim;
        // Safety: `ready` checked the four tensors; y is a buffer of its own, the others are
        // only read.
        let (x, d, s, y) = unsafe {
            (read::<T>(self.x, len), read::<T>(self.d, len), read::<T>(sxi, len), write::<T>(self.y, len))
        };
        for i in 0..len {
            y[i] = x[i] + d[i] + s[i];
        }
    }

    /// The accept test of `run_mala` on each chain, T·log u + a·(a + 2σξ)/(4λ) < E(x) − E(y)
    /// with a = d(x) + d(y), and a move out of `bounds` rejected; accepted rows of y, d(y) and
    /// E(y) are copied into x, d and E. Returns how many moved. Needs `ready::<T>` and
    /// `accept_ready::<T>`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn accept<T: Elem>(
        &mut self,
        sxi: &Tensor,
        e_y: &Tensor,
        d_y: &Tensor,
        t_log_u: &Tensor,
        lambda: f64,
        bounds: &HostBox,
    ) -> u64 {
        let (n, dim, len) = (self.n, self.dim, self.n * self.dim);
        // Safety: checked by `ready` and `accept_ready`; x, d and e are written, each a tensor
        // of its own (d is a copy, never the drift's workspace, which d_y is).
        let (x, d, e, y, s) = unsafe {
            (
                write::<T>(self.x, len),
                write::<T>(self.d, len),
                write::<f64>(self.e, n),
                read::<T>(self.y, len),
                read::<T>(sxi, len),
            )
        };
        let (e_y, d_y, t_log_u) =
            unsafe { (read::<T>(e_y, n), read::<T>(d_y, len), read::<f64>(t_log_u, n)) };
        let mut moved = 0;
        for i in 0..n {
            let r = i * dim..(i + 1) * dim;
            let mut dot = 0.0f64;
            for j in r.clone() {
                let a = d[j] + d_y[j];
                dot += a.into() * (a + s[j] + s[j]).into();
            }
            let e_yi: f64 = e_y[i].into();
            // NaN (a non-finite energy at y) compares false: the move is rejected.
            let accept = dot * (0.25 / lambda) + t_log_u[i] < e[i] - e_yi;
            if accept && bounds.contains(&y[r.clone()]) {
                x[r.clone()].copy_from_slice(&y[r.clone()]);
                d[r.clone()].copy_from_slice(&d_y[r]);
                e[i] = e_yi;
                moved += 1;
            }
        }
        moved
    }

    /// Whether the drift's outputs at y, E(y) and d(y), can be read on the host as `T`.
    pub(crate) fn accept_ready<T: Elem>(&self, e_y: &Tensor, d_y: &Tensor) -> bool {
        on_host(e_y, T::KIND, self.n) && on_host(d_y, T::KIND, self.n * self.dim)
    }
}
