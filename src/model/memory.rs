//! How much memory a call may use: the machine's physical memory on the CPU, the device's
//! free memory on CUDA.
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;
use tch::Device;

/// Bytes a call on `device` can hope to allocate; infinite when unknown.
pub fn available(device: Device) -> f64 {
    match device {
        Device::Cuda(k) => cuda_free(k).unwrap_or(f64::INFINITY),
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

/// The CUDA runtime libtorch loaded (found through libtorch_cuda, which links it); None
/// with a CPU-only libtorch.
struct Cudart {
    get_device: unsafe extern "C" fn(*mut c_int) -> c_int,
    set_device: unsafe extern "C" fn(c_int) -> c_int,
    mem_get_info: unsafe extern "C" fn(*mut usize, *mut usize) -> c_int,
}

fn cudart() -> Option<&'static Cudart> {
    static RT: OnceLock<Option<Cudart>> = OnceLock::new();
    RT.get_or_init(|| {
        // SAFETY: RTLD_NOLOAD returns a handle only to a library already loaded; the symbols
        // have the CUDA runtime API's C signatures.
        unsafe {
            let h = libc::dlopen(c"libtorch_cuda.so".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
            if h.is_null() {
                return None;
            }
            let sym = |name: &std::ffi::CStr| libc::dlsym(h, name.as_ptr());
            let (g, s, m) = (sym(c"cudaGetDevice"), sym(c"cudaSetDevice"), sym(c"cudaMemGetInfo"));
            libc::dlclose(h);
            if g.is_null() || s.is_null() || m.is_null() {
                return None;
            }
            Some(Cudart {
                get_device: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_int) -> c_int>(g),
                set_device: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(c_int) -> c_int>(s),
                mem_get_info: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut usize, *mut usize) -> c_int>(m),
            })
        }
    })
    .as_ref()
}

/// Free bytes on CUDA device `k` (cudaMemGetInfo; the calling thread's current device is put
/// back). libtorch's caching allocator holds memory it has freed, so this undercounts what
/// libtorch can reuse: a conservative bound.
pub fn cuda_free(k: usize) -> Option<f64> {
    let rt = cudart()?;
    // SAFETY: plain CUDA runtime calls on valid pointers.
    unsafe {
        let mut prev: c_int = 0;
        if (rt.get_device)(&mut prev) != 0 {
            return None;
        }
        if (rt.set_device)(k as c_int) != 0 {
            return None;
        }
        let (mut free, mut total) = (0usize, 0usize);
        let ok = (rt.mem_get_info)(&mut free, &mut total) == 0;
        (rt.set_device)(prev);
        ok.then_some(free as f64)
    }
}
