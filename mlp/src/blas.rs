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
/// the products change by rounding only), after checking it on a small product of each
/// transposition against matrixmultiply's; returns whether `f` is the one in use. Only on
/// little-endian machines (see [`row_major`]'s integers).
pub fn set_sgemm(f: Sgemm) -> bool {
    if cfg!(target_endian = "big") || !agrees(f) {
        return false;
    }
    let _ = SGEMM.set(f);
    SGEMM.get().is_some_and(|g| std::ptr::fn_addr_eq(*g, f))
}

/// Whether `f` computes 3×4·4×5 products (A and B each row- or column-major) as
/// matrixmultiply does, to rounding.
fn agrees(f: Sgemm) -> bool {
    let (m, k, n) = (3usize, 4usize, 5usize);
    let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.25 - 1.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| 1.0 - i as f32 * 0.125).collect();
    [(k as isize, 1isize, 1isize, k as isize), (1, m as isize, n as isize, 1)].iter().all(
        |&(rsa, csa, rsb, csb)| {
            let (mut want, mut got) = (vec![0f32; m * n], vec![7f32; m * n]);
            // SAFETY: a (12 values) and b (20) hold the operands under either stride pair; c is m × n.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    rsa,
                    csa,
                    b.as_ptr(),
                    rsb,
                    csb,
                    0.0,
                    want.as_mut_ptr(),
                    n as isize,
                    1,
                );
                row_major(
                    f,
                    m,
                    k,
                    n,
                    a.as_ptr(),
                    rsa,
                    csa,
                    b.as_ptr(),
                    rsb,
                    csb,
                    got.as_mut_ptr(),
                    n as isize,
                );
            }
            want.iter().zip(&got).all(|(w, g)| (w - g).abs() <= 1e-4 * (1.0 + w.abs()))
        },
    )
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
    let op = |rs: isize, cs: isize, rows: usize, cols: usize| -> (c_char, i64) {
        if cs == 1 {
            (b'N' as c_char, rs.max(cols as isize).max(1) as i64)
        } else {
            debug_assert_eq!(rs, 1, "one unit stride");
            (b'T' as c_char, cs.max(rows as isize).max(1) as i64)
        }
    };
    // Bᵀ (n × k) first, Aᵀ (k × m) second.
    let (tb, ldb) = op(rsb, csb, k, n);
    let (ta, lda) = op(rsa, csa, m, k);
    // Every integer is stored in 64 bits and passed by reference: a BLAS with 32-bit integers
    // (LP64) reads the low half, which on a little-endian machine is the value, and one with
    // 64-bit integers (ILP64) reads all of it; either way it sees the right size.
    let (m_, n_, k_) = (n as i64, m as i64, k as i64);
    let ldc = (rsc as i64).max(1);
    let (one, zero) = (1.0f32, 0.0f32);
    let int = |v: &i64| v as *const i64 as *const i32;
    f(&tb, &ta, int(&m_), int(&n_), int(&k_), &one, b, int(&ldb), a, int(&lda), &zero, c, int(&ldc));
}
