//! Symbols of libraries that are already loaded (libtorch and what it links: OpenMP, the CUDA
//! driver), for the few entry points tch does not bind. A library that is not loaded is not
//! loaded here either: the lookup then finds nothing and the caller goes without.
use std::ffi::{c_void, CStr};

/// The addresses of `names` in `lib` and the libraries it depends on, if `lib` is loaded and
/// has all of them; None otherwise.
pub fn symbols<const N: usize>(lib: &CStr, names: [&CStr; N]) -> Option<[*mut c_void; N]> {
    // SAFETY: RTLD_NOLOAD only returns a handle to a library already loaded (or null); dlsym
    // and dlclose take that handle and NUL-terminated names. Closing drops only the reference
    // taken here: the library stays loaded by whoever loaded it.
    unsafe {
        let h = libc::dlopen(lib.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
        if h.is_null() {
            return None;
        }
        let found = names.map(|n| libc::dlsym(h, n.as_ptr()));
        libc::dlclose(h);
        found.iter().all(|p| !p.is_null()).then_some(found)
    }
}
