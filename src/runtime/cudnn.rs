//! Deterministic cuDNN for the conv net on CUDA.
//!
//! cuDNN may pick convolution algorithms that sum with atomics (different bits run to run)
//! and, on Ampere and later, compute in TF32 (10-bit mantissa). When a CUDA conv model is
//! made, sance sets libtorch's process-wide flags `deterministicCuDNN = true` and
//! `allowTF32CuDNN = false`, once per process, so that its sampler and training steps repeat
//! bit for bit on one GPU and keep float32 accuracy. The flags are libtorch's global state:
//! a host that uses libtorch's convolutions itself sees them too, so `SANCE_CUDNN=host`
//! (read once) leaves them alone. tch has no binding for them: they are set through
//! libtorch's own C++ entry points (`at::globalContext()` and two member functions, found
//! by their mangled names in libtorch_cpu, which sance links); when those are missing
//! nothing is set.
use std::ffi::c_void;
use std::sync::OnceLock;

/// Whether the flags were set (false: `SANCE_CUDNN=host`, or the entry points are missing).
pub fn make_deterministic() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(|| {
        if std::env::var("SANCE_CUDNN").as_deref() == Ok("host") {
            return false;
        }
        let Some([ctx, det, tf32]) = crate::runtime::loaded::symbols(
            c"libtorch_cpu.so",
            [
                c"_ZN2at13globalContextEv",
                c"_ZN2at7Context21setDeterministicCuDNNEb",
                c"_ZN2at7Context17setAllowTF32CuDNNEb",
            ],
        ) else {
            return false;
        };
        // SAFETY: the symbols are `at::Context& at::globalContext()` and
        // `void at::Context::set…(bool)`: under the Itanium C++ ABI a non-virtual member
        // function takes `this` as its first argument.
        unsafe {
            let ctx = std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> *mut c_void>(ctx)();
            std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void, bool)>(det)(ctx, true);
            std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void, bool)>(tf32)(ctx, false);
            true
        }
    })
}

#[cfg(test)]
mod tests {
    /// The entry points exist in this libtorch and calling them works (on the CPU the flags
    /// are only stored). Read back through the matching getter.
    #[test]
    fn sets_the_flag_through_libtorchs_entry_points() {
        assert!(super::make_deterministic(), "libtorch's cuDNN entry points were not found");
        let [ctx, get] = crate::runtime::loaded::symbols(
            c"libtorch_cpu.so",
            [c"_ZN2at13globalContextEv", c"_ZNK2at7Context18deterministicCuDNNEv"],
        )
        .expect("libtorch's cuDNN getter");
        // SAFETY: as above; `bool at::Context::deterministicCuDNN() const`.
        let on = unsafe {
            let ctx = std::mem::transmute::<
                *mut std::ffi::c_void,
                unsafe extern "C" fn() -> *mut std::ffi::c_void,
            >(ctx)();
            std::mem::transmute::<*mut std::ffi::c_void, unsafe extern "C" fn(*mut std::ffi::c_void) -> bool>(
                get,
            )(ctx)
        };
        assert!(on, "deterministicCuDNN reads back false");
    }
}
