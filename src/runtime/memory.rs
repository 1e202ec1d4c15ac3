//! How much memory a call may use, and how much one chunk of a chunked call works in.
//!
//! A call may use the machine's physical memory on the CPU, the device's
//! total memory on CUDA. Totals, not what is free at the moment: libtorch's caching allocator
//! keeps freed memory for reuse (and a host using libtorch holds its own), so "free" would
//! refuse a step that ran fine a moment before. The check only refuses absurd sizes; a size
//! that does not fit after all fails in libtorch and comes back as SANCE_STATUS_TORCH with
//! the model unchanged.
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;
use tch::Device;

/// Working memory per chunk of `sample`, `sample_from`, `energy` and `energy_grad`: a fixed
/// number, so that how a call is cut (and so the sampler's random stream) depends on the
/// model and `n` only, never on the machine.
pub(crate) const CHUNK_BYTES: usize = 256 << 20;

/// [`CHUNK_BYTES`], or what a test set on this thread (`crate::fault::set_chunk_bytes`).
pub(crate) fn chunk_bytes() -> usize {
    crate::fault::chunk_bytes_override().unwrap_or(CHUNK_BYTES)
}

/// Bytes a call on `device` can hope to allocate; infinite when unknown.
pub fn available(device: Device) -> f64 {
    match device {
        Device::Cuda(k) => cuda_total(k).unwrap_or(f64::INFINITY),
        _ => physical(),
    }
}

fn physical() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    if pages > 0 && size > 0 {
        pages as f64 * size as f64
    } else {
        f64::INFINITY
    }
}

/// The CUDA driver's device queries, which need no context (so asking about one device never
/// creates a context on another). None until libtorch has loaded the driver, or without one.
struct Driver {
    device_get: unsafe extern "C" fn(*mut c_int, c_int) -> c_int,
    total_mem: unsafe extern "C" fn(*mut usize, c_int) -> c_int,
}

fn driver() -> Option<&'static Driver> {
    static DRV: OnceLock<Option<Driver>> = OnceLock::new();
    DRV.get_or_init(|| {
        // libtorch's CUDA runtime loads the driver when it first looks for devices, which
        // making a CUDA model did.
        let names = [c"cuDeviceGet", c"cuDeviceTotalMem_v2"];
        let [g, t] = crate::runtime::loaded::symbols(c"libcuda.so.1", names)?;
        type DeviceGet = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
        type TotalMem = unsafe extern "C" fn(*mut usize, c_int) -> c_int;
        // SAFETY: the symbols have the driver API's C signatures (CUdevice is an int).
        unsafe {
            Some(Driver {
                device_get: std::mem::transmute::<*mut c_void, DeviceGet>(g),
                total_mem: std::mem::transmute::<*mut c_void, TotalMem>(t),
            })
        }
    })
    .as_ref()
}

/// Total bytes of CUDA device `k` (its index as libtorch and CUDA_VISIBLE_DEVICES number it).
pub fn cuda_total(k: usize) -> Option<f64> {
    let d = driver()?;
    // SAFETY: plain driver calls writing to valid pointers.
    unsafe {
        let mut dev: c_int = 0;
        if (d.device_get)(&mut dev, k as c_int) != 0 {
            return None;
        }
        let mut bytes = 0usize;
        ((d.total_mem)(&mut bytes, dev) == 0).then_some(bytes as f64)
    }
}
