//! Tests of both passes, in every build the CPU runs, against f64 definitions and each other.
use super::*;

#[test]
fn fast_exp_is_within_two_ulp_of_libm() {
    let mut worst = 0f64;
    let mut x = -87.0f32;
    while x < 88.0 {
        let (a, b) = (exp_f32(x) as f64, (x as f64).exp());
        worst = worst.max(((a - b) / b).abs());
        x += 0.001_37;
    }
    assert!(worst < 2.5e-7, "worst relative error {worst}");
}

/// A small net with fixed pseudo-random weights.
fn net<T: Real>(dim: usize, widths: &[usize], act: Activation) -> Net<T> {
    let mut s = 12345u64;
    let mut r = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        T::from_f64(((s >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.8)
    };
    let mut hidden = Vec::new();
    let mut fan_in = dim;
    for &w in widths {
        let wv: Vec<T> = (0..w * fan_in).map(|_| r()).collect();
        let bv: Vec<T> = (0..w).map(|_| r()).collect();
        hidden.push(Hidden::new(fan_in, w, wv, bv));
        fan_in = w;
    }
    let w_out: Vec<T> = (0..fan_in).map(|_| r()).collect();
    Net { dim, activation: act, hidden, w_out: Aligned::new(&w_out), scaling: None }
}

/// E by the definition in f64, for finite differences.
fn energy_f64(n: &Net<f64>, x: &[f64]) -> f64 {
    let mut a = x.to_vec();
    for l in &n.hidden {
        a = (0..l.width)
            .map(|o| {
                let z = l.b[o] + (0..l.fan_in).map(|i| l.w[o * l.fan_in + i] * a[i]).sum::<f64>();
                match n.activation {
                    Activation::Silu => z / (1.0 + (-z).exp()),
                    Activation::LeakyRelu => z.max(0.2 * z),
                }
            })
            .collect();
    }
    a.iter().zip(n.w_out.iter()).map(|(a, w)| a * w).sum()
}

#[test]
fn point_gradient_matches_finite_differences() {
    for act in [Activation::Silu, Activation::LeakyRelu] {
        for widths in [&[16][..], &[20, 24], &[16, 16, 16]] {
            let n = net::<f64>(3, widths, act);
            let x = [0.3f32, -0.7, 1.1];
            let (mut e, mut g) = (0f32, [0f32; 3]);
            let mut ws = vec![0f64; n.point_workspace()];
            n.point_isa(Isa::Portable, &x, Some(&mut e), Some(&mut g), &mut ws);
            let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            assert!((e as f64 - energy_f64(&n, &xf)).abs() < 1e-6);
            for k in 0..3 {
                let h = 1e-6;
                let (mut p, mut m) = (xf.clone(), xf.clone());
                p[k] += h;
                m[k] -= h;
                let fd = (energy_f64(&n, &p) - energy_f64(&n, &m)) / (2.0 * h);
                assert!(
                    (g[k] as f64 - fd).abs() < 1e-5 * (1.0 + fd.abs()),
                    "{act:?} {widths:?} {k}: {} vs {fd}",
                    g[k]
                );
            }
        }
    }
}

/// E and ∇ by the definition in f64 (forward, then backward by hand), of the network alone.
fn energy_grad_f64(n: &Net<f64>, z: &[f64]) -> (f64, Vec<f64>) {
    let mut pre = Vec::new();
    let mut a = z.to_vec();
    for l in &n.hidden {
        let zl: Vec<f64> = (0..l.width)
            .map(|o| l.b[o] + (0..l.fan_in).map(|i| l.w[o * l.fan_in + i] * a[i]).sum::<f64>())
            .collect();
        a = zl
            .iter()
            .map(|&v| match n.activation {
                Activation::Silu => v / (1.0 + (-v).exp()),
                Activation::LeakyRelu => v.max(0.2 * v),
            })
            .collect();
        pre.push(zl);
    }
    let e = a.iter().zip(n.w_out.iter()).map(|(a, w)| a * w).sum();
    let mut g: Vec<f64> = n.w_out.to_vec();
    for (l, zl) in n.hidden.iter().zip(&pre).rev() {
        for (g, &v) in g.iter_mut().zip(zl) {
            *g *= match n.activation {
                Activation::Silu => {
                    let s = 1.0 / (1.0 + (-v).exp());
                    s * (1.0 + v * (1.0 - s))
                }
                Activation::LeakyRelu => {
                    if v > 0.0 {
                        1.0
                    } else {
                        0.2
                    }
                }
            };
        }
        g = (0..l.fan_in).map(|i| (0..l.width).map(|o| g[o] * l.w[o * l.fan_in + i]).sum()).collect();
    }
    (e, g)
}

/// A net of `T` with a fitted scaling against the definition: E_net((x − shift)/scale) +
/// Σ ln scale and ∇_z E_net / scale in f64, over every path and build, coordinate by
/// coordinate within `tol` of the largest |value| of that output.
fn check_scaling<T: Real>(tol: f64) {
    // Scales from 0.01 to 100 and shifts of either sign, one far from the origin against
    // its scale (|shift|/scale = 1000). 5 inputs: the first layer by rows; 10: by GEMM.
    let all_shift = [0.3, -2.0, 1000.0, 0.05, -40.0, 7.0, 0.0, -0.01, 3.0, 250.0];
    let all_scale = [0.01, 100.0, 1.0, 0.02, 30.0, 0.5, 2.0, 0.01, 100.0, 4.0];
    for (dim, widths) in [(5usize, &[40usize, 33][..]), (10, &[128, 70])] {
        for act in [Activation::Silu, Activation::LeakyRelu] {
            let mut n = net::<T>(dim, widths, act);
            let shift: Vec<T> = all_shift[..dim].iter().map(|&v| T::from_f64(v)).collect();
            let scale: Vec<T> = all_scale[..dim].iter().map(|&v| T::from_f64(v)).collect();
            n.scaling = Some(Scaling::new(shift.clone(), scale.clone()));
            // The same network in f64 (T's values exactly), without the scaling.
            let to64 = |v: &[T]| -> Vec<f64> { v.iter().map(|x| x.to_f64()).collect() };
            let mut hidden = Vec::new();
            for l in &n.hidden {
                hidden.push(Hidden::new(l.fan_in, l.width, to64(&l.w), to64(&l.b)));
            }
            let plain =
                Net { dim, activation: act, hidden, w_out: Aligned::new(&to64(&n.w_out)), scaling: None };
            let (shift, scale) = (to64(&shift), to64(&scale));
            let log_jacobian: f64 = scale.iter().map(|s| s.ln()).sum();
            // Points where the data would be: shift + scale·u, u in [-2, 2).
            let pts = 600;
            let x: Vec<f32> = (0..pts * dim)
                .map(|i| {
                    let u = ((i * 7919) % 113) as f64 / 28.25 - 2.0;
                    (shift[i % dim] + scale[i % dim] * u) as f32
                })
                .collect();
            let (mut e0, mut g0) = (vec![0f64; pts], vec![0f64; pts * dim]);
            for i in 0..pts {
                let z: Vec<f64> = (0..dim).map(|k| (x[i * dim + k] as f64 - shift[k]) / scale[k]).collect();
                let (e, g) = energy_grad_f64(&plain, &z);
                e0[i] = e + log_jacobian;
                for k in 0..dim {
                    g0[i * dim + k] = g[k] / scale[k];
                }
            }
            let scale_e = e0.iter().fold(0f64, |m, v| m.max(v.abs()));
            let scale_g: Vec<f64> =
                (0..dim).map(|k| (0..pts).fold(0f64, |m, i| m.max(g0[i * dim + k].abs()))).collect();
            let mut ws = vec![T::ZERO; n.point_workspace()];
            let mut runs: Vec<(String, Vec<f32>, Vec<f32>)> = Vec::new();
            for isa in Isa::available() {
                let (mut e, mut g) = (vec![0f32; pts], vec![0f32; pts * dim]);
                n.batch_isa(isa, &x, pts, Some(&mut e), Some(&mut g));
                runs.push((format!("batch {isa:?}"), e, g));
                let (mut e, mut g) = (vec![0f32; pts], vec![0f32; pts * dim]);
                for i in 0..pts {
                    let gi = &mut g[i * dim..(i + 1) * dim];
                    n.point_isa(isa, &x[i * dim..(i + 1) * dim], Some(&mut e[i]), Some(gi), &mut ws);
                }
                runs.push((format!("point {isa:?}"), e, g));
            }
            for k in [1, 3, BATCH_FROM, 600] {
                let (mut e, mut g) = (vec![0f32; pts], vec![0f32; pts * dim]);
                for c in 0..pts / k {
                    let span = c * k..(c + 1) * k;
                    n.energy_grad(
                        &x[span.start * dim..span.end * dim],
                        k,
                        Some(&mut e[span.clone()]),
                        Some(&mut g[span.start * dim..span.end * dim]),
                    );
                }
                runs.push((format!("energy_grad by {k}"), e, g));
            }
            for (path, e, g) in &runs {
                for i in 0..pts {
                    let d = (e[i] as f64 - e0[i]).abs();
                    assert!(d <= tol * scale_e, "{dim} {act:?} {path} row {i}: E {} vs {}", e[i], e0[i]);
                    for k in 0..dim {
                        let (a, b) = (g[i * dim + k] as f64, g0[i * dim + k]);
                        assert!(
                            (a - b).abs() <= tol * scale_g[k],
                            "{dim} {act:?} {path} row {i} col {k}: ∇ {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn scaling_f64_matches_the_definition() {
    // The outputs are float32: one rounding of an f64 result, 2^-24 relative.
    check_scaling::<f64>(1e-7);
}

#[test]
fn scaling_f32_matches_the_definition() {
    check_scaling::<f32>(1e-5);
}

#[test]
fn batch_and_point_paths_agree() {
    // Few inputs and widths with partial blocks; then many inputs (the GEMM first layer)
    // and full blocks of 64.
    for (dim, widths) in [(5usize, &[40usize, 33][..]), (10, &[128, 70])] {
        for act in [Activation::Silu, Activation::LeakyRelu] {
            let n = net::<f32>(dim, widths, act);
            let pts = 600; // more than one GEMM block
            let x: Vec<f32> = (0..pts * dim).map(|i| ((i * 7919) % 113) as f32 / 40.0 - 1.4).collect();
            // The portable one-point pass against every build of both passes.
            let mut ws = vec![0f32; n.point_workspace()];
            let (mut e0, mut g0) = (vec![0f32; pts], vec![0f32; pts * dim]);
            for i in 0..pts {
                let g = &mut g0[i * dim..(i + 1) * dim];
                n.point_isa(Isa::Portable, &x[i * dim..(i + 1) * dim], Some(&mut e0[i]), Some(g), &mut ws);
            }
            let scale_e = e0.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale_g = g0.iter().fold(0f32, |m, v| m.max(v.abs()));
            for isa in Isa::available() {
                let (mut e1, mut g1) = (vec![0f32; pts], vec![0f32; pts * dim]);
                n.batch_isa(isa, &x, pts, Some(&mut e1), Some(&mut g1));
                let (mut e2, mut g2) = (vec![0f32; pts], vec![0f32; pts * dim]);
                for i in 0..pts {
                    let g = &mut g2[i * dim..(i + 1) * dim];
                    n.point_isa(isa, &x[i * dim..(i + 1) * dim], Some(&mut e2[i]), Some(g), &mut ws);
                }
                for (e, g, path) in [(&e1, &g1, "batch"), (&e2, &g2, "point")] {
                    for i in 0..pts {
                        assert!((e[i] - e0[i]).abs() <= 1e-5 * scale_e, "{act:?} {isa:?} {path} row {i}");
                        for k in 0..dim {
                            let d = (g[i * dim + k] - g0[i * dim + k]).abs();
                            assert!(d <= 1e-5 * scale_g, "{act:?} {isa:?} {path} row {i} col {k}");
                        }
                    }
                }
            }
        }
    }
}

/// A plain column-major sgemm with BLAS's arguments, to check [`blas::row_major`]'s
/// translation of row-major products (libsance registers MKL's, which this crate's tests
/// cannot load).
unsafe extern "C" fn reference_sgemm(
    transa: *const std::ffi::c_char,
    transb: *const std::ffi::c_char,
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
) {
    let (m, n, k, lda, ldb, ldc) =
        (*m as usize, *n as usize, *k as usize, *lda as usize, *ldb as usize, *ldc as usize);
    // op(X)[i, j] of a column-major X with leading dimension ld.
    let at = |x: *const f32, t: u8, ld: usize, i: usize, j: usize| {
        if t == b'N' {
            *x.add(i + j * ld)
        } else {
            *x.add(j + i * ld)
        }
    };
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for p in 0..k {
                s += at(a, *transa as u8, lda, i, p) as f64 * at(b, *transb as u8, ldb, p, j) as f64;
            }
            let cij = c.add(i + j * ldc);
            *cij = *alpha * s as f32 + if *beta == 0.0 { 0.0 } else { *beta * *cij };
        }
    }
}

#[test]
fn blas_row_major_products_match_matrixmultiply() {
    let (m, k, n) = (5usize, 7usize, 3usize);
    let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.53).cos()).collect();
    // A and B row-major, then each read through the strides of a column-major copy.
    let col = |x: &[f32], rows: usize, cols: usize| -> Vec<f32> {
        (0..rows * cols).map(|q| x[(q % rows) * cols + q / rows]).collect()
    };
    let (ac, bc) = (col(&a, m, k), col(&b, k, n));
    for (ap, rsa, csa) in [(&a, k as isize, 1isize), (&ac, 1, m as isize)] {
        for (bp, rsb, csb) in [(&b, n as isize, 1isize), (&bc, 1, k as isize)] {
            let (mut want, mut got) = (vec![0f32; m * (n + 2)], vec![0f32; m * (n + 2)]);
            let rsc = (n + 2) as isize;
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    ap.as_ptr(),
                    rsa,
                    csa,
                    bp.as_ptr(),
                    rsb,
                    csb,
                    0.0,
                    want.as_mut_ptr(),
                    rsc,
                    1,
                );
                blas::row_major(
                    reference_sgemm,
                    m,
                    k,
                    n,
                    ap.as_ptr(),
                    rsa,
                    csa,
                    bp.as_ptr(),
                    rsb,
                    csb,
                    got.as_mut_ptr(),
                    rsc,
                );
            }
            for (w, g) in want.iter().zip(&got) {
                assert!((w - g).abs() < 1e-5, "strides A ({rsa}, {csa}) B ({rsb}, {csb}): {w} against {g}");
            }
        }
    }
}

/// The training pass's parameter gradients of Σᵣ deᵣ·E(xᵣ) against central differences of the
/// f64 definition, on both activations (every weight, bias and output weight of a small net),
/// and its energies against the batch pass's.
#[test]
fn param_grads_match_finite_differences() {
    for act in [Activation::Silu, Activation::LeakyRelu] {
        let base = net::<f64>(3, &[5, 4], act);
        let n = 6;
        let x: Vec<f32> = (0..n * 3).map(|i| ((i as f32) * 0.71).sin() * 1.3).collect();
        let de: Vec<f32> = (0..n).map(|r| 0.3 + 0.2 * r as f32 - 0.05 * (r * r) as f32).collect();
        let (mut tape, mut grads) = (Tape::default(), ParamGrads::default());
        let mut e = vec![0f32; n];
        base.forward_tape(&x, n, &mut tape, &mut e).unwrap();
        base.param_grads(&mut tape, &de, &mut grads);
        let mut e_batch = vec![0f32; n];
        base.batch(&x, n, Some(&mut e_batch), None);
        for (a, b) in e.iter().zip(&e_batch) {
            assert!((a - b).abs() < 1e-5, "{act:?}: energy {a} against the batch pass's {b}");
        }
        // Σ de·E with one parameter moved: layer li's W (kind 0), b (1), or w_out (li = None).
        let objective = |net: &Net<f64>| -> f64 {
            (0..n)
                .map(|r| {
                    de[r] as f64
                        * energy_f64(
                            net,
                            &x[r * 3..(r + 1) * 3].iter().map(|&v| v as f64).collect::<Vec<_>>(),
                        )
                })
                .sum()
        };
        let moved = |li: Option<usize>, kind: usize, i: usize, by: f64| -> Net<f64> {
            let mut m = base.clone();
            match li {
                Some(li) => {
                    let l = &m.hidden[li];
                    let (mut w, mut b) = (l.w.to_vec(), l.b.to_vec());
                    if kind == 0 {
                        w[i] += by
                    } else {
                        b[i] += by
                    }
                    m.hidden[li] = Hidden::new(l.fan_in, l.width, w, b);
                }
                None => {
                    let mut w = m.w_out.to_vec();
                    w[i] += by;
                    m.w_out = Aligned::new(&w);
                }
            }
            m
        };
        let h = 1e-5;
        let mut checks = 0;
        let mut check = |li: Option<usize>, kind: usize, i: usize, got: f64| {
            let fd = (objective(&moved(li, kind, i, h)) - objective(&moved(li, kind, i, -h))) / (2.0 * h);
            assert!(
                (fd - got).abs() < 1e-6 * (1.0 + fd.abs()),
                "{act:?} layer {li:?} kind {kind} [{i}]: {got} against {fd}"
            );
            checks += 1;
        };
        for li in 0..base.hidden.len() {
            for i in 0..grads.w[li].len() {
                check(Some(li), 0, i, grads.w[li][i]);
            }
            for i in 0..grads.b[li].len() {
                check(Some(li), 1, i, grads.b[li][i]);
            }
        }
        for i in 0..grads.w_out.len() {
            check(None, 0, i, grads.w_out[i]);
        }
        assert_eq!(checks, 3 * 5 + 5 + 5 * 4 + 4 + 4);
    }
}

/// A sgemm that answers wrongly (here: C left as it was) is refused, and matrixmultiply stays.
#[test]
fn a_disagreeing_blas_is_refused() {
    unsafe extern "C" fn wrong(
        _: *const std::ffi::c_char,
        _: *const std::ffi::c_char,
        _: *const i32,
        _: *const i32,
        _: *const i32,
        _: *const f32,
        _: *const f32,
        _: *const i32,
        _: *const f32,
        _: *const i32,
        _: *const f32,
        _: *mut f32,
        _: *const i32,
    ) {
    }
    assert!(!blas::set_sgemm(wrong), "a wrong sgemm was registered");
}
