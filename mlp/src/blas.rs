//! An outside BLAS's sgemm in place of matrixmultiply's, for a process that has one loaded:
//! libsance registers libtorch's (MKL's `sgemm_`, which runs on the calling thread's MKL
//! thread count, as libtorch's own products do); libsance_eval never does and keeps
//! matrixmultiply. Measured on the sampler's shapes (docs/speed.md): MKL's kernels are faster
//! than matrixmultiply's on the same core, and they thread.
use std::ffi::c_char;
use std::sync::OnceLock;

/// BLAS's `sgemm_` (Fortran calling convention, column-major, every argument by reference):
/// C ← α·op(A)·op(B) + β·C.
pub type Sgemm = unsafe extern "C" fn(
    transa: *const c_char,
    transb: *const c_char,
    m: *const i32,
    n: *const i32,
    k: *const i32,
    alpha: *const f32,
    a: *const f32,
    lda: *const i32,
    b: *const f32,
    ldb: *const i32,
    beta: *const f32,
    c: *mut f32,
    ldc: *const i32,
) -> ();

static SGEMM: OnceLock<Sgemm> = OnceLock::new();

/// Makes every float32 product of this process's passes use `f` (the first registration wins;
/// the products change by rounding only).
pub fn set_sgemm(f: Sgemm) {
    let _ = SGEMM.set(f);
}

/// The registered sgemm, if any.
#[inline]
pub(crate) fn sgemm() -> Option<Sgemm> {
    SGEMM.get().copied()
}

/// C[m×n] = A[m×k]·B[k×n], row-major C with row stride `rsc`, A and B each with one unit
/// stride (row- or column-major), through the column-major `f`: C row-major is Cᵀ column-major,
/// and Cᵀ = Bᵀ·Aᵀ. A matrix stored row-major with row stride r is, read column-major, its own
/// transpose with leading dimension r: op 'N'; one stored column-major is itself: op 'T'.
///
/// # Safety
/// As `Real::gemm`: the pointers and strides address valid matrices of those sizes, one of
/// each input's strides is 1, and the sizes fit in i32.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn row_major(
    f: Sgemm,
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    c: *mut f32,
    rsc: isize,
) {
    // (op, leading dimension) of a `rows` × `cols` operand with strides (rs, cs).
    let op = |rs: isize, cs: isize, rows: usize, cols: usize| -> (c_char, i32) {
        if cs == 1 {
            (b'N' as c_char, rs.max(cols as isize).max(1) as i32)
        } else {
            debug_assert_eq!(rs, 1, "one unit stride");
            (b'T' as c_char, cs.max(rows as isize).max(1) as i32)
        }
    };
    // Bᵀ (n × k) first, Aᵀ (k × m) second.
    let (tb, ldb) = op(rsb, csb, k, n);
    let (ta, lda) = op(rsa, csa, m, k);
    let (m_, n_, k_) = (n as i32, m as i32, k as i32);
    let (one, zero) = (1.0f32, 0.0f32);
    let ldc = (rsc as i32).max(1);
    f(&tb, &ta, &m_, &n_, &k_, &one, b, &ldb, a, &lda, &zero, c, &ldc);
}
