//! The host's reduction, as C declares it: the one type of the allreduce callback, which the
//! C entry (`sance_ebm_set_allreduce`) takes and the data-parallel step calls.
use std::ffi::c_void;

/// The host's reduction for data-parallel training: sums `buf[0 .. n]` in place over all
/// ranks (e.g. `MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, comm)`) and returns 0,
/// or non-zero on failure. `user` is the pointer given to `sance_ebm_set_allreduce`.
pub type SanceAllreduceFn = Option<unsafe extern "C" fn(buf: *mut f32, n: usize, user: *mut c_void) -> i32>;
