//! Intra-op threads, per handle, per call and per calling thread.
//!
//! Each computing call runs libtorch's intra-op work on a count picked here, set on the calling
//! thread and put back when the call returns. The count is the handle's `config.num_threads`
//! when it is ≥ 1; else `SANCE_NUM_THREADS` (read once per process: `host` to never change the
//! count, a number N ≥ 1 for N threads, `auto` or unset for the automatic rule); else the
//! automatic rule, one thread.
//!
//! One thread, because any more collapse as soon as a core is shared — with another process,
//! with MPI ranks on every core, with the host's own thread pool: every parallel region must
//! have all its threads scheduled before it ends, and on a shared core each waits for a time
//! slice. Measured on two cores with one kept busy (`bench/threads`, docs/c-api.md "Threads"):
//! a default MLP training step 1.9× slower on two threads than on one, the 28×28 image recipe's
//! 3×; on an idle node libtorch's default gains 10 % on the MLP step and 1.7× on the image step,
//! which a handle on a node it owns asks for with `num_threads`.
//!
//! The count is changed through OpenMP's per-thread setting (`omp_set_num_threads` applies to
//! parallel regions started by the calling thread only; libtorch's intra-op parallelism and
//! oneDNN follow it) and MKL's (`mkl_set_num_threads_local`, which otherwise keeps whatever
//! the host set for MKL), and both are put back when the call returns, so neither the host's
//! other threads nor its own later libtorch calls see a difference. `at::set_num_threads` would not
//! do: it also resizes a process-wide pool and clears oneDNN's cache.
use std::ffi::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// What `SANCE_NUM_THREADS` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Auto,
    Host,
    Fixed(i32),
}

impl Policy {
    pub fn parse(v: Option<&str>) -> Policy {
        match v.map(str::trim) {
            Some("host") => Policy::Host,
            Some(s) => match s.parse::<i32>() {
                Ok(n) if n >= 1 => Policy::Fixed(n),
                _ => Policy::Auto,
            },
            None => Policy::Auto,
        }
    }

    /// The thread count for a call; None: leave it.
    pub fn threads(self) -> Option<i32> {
        match self {
            Policy::Host => None,
            Policy::Fixed(n) => Some(n),
            Policy::Auto => Some(1),
        }
    }
}

fn policy() -> Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    *P.get_or_init(|| Policy::parse(std::env::var("SANCE_NUM_THREADS").ok().as_deref()))
}

/// The OpenMP runtime libtorch uses, found through libtorch_cpu (which is loaded: sance links
/// it), so that sance sets the same runtime's count whatever its name. None when libtorch
/// was built without OpenMP.
struct Omp {
    get: unsafe extern "C" fn() -> c_int,
    set: unsafe extern "C" fn(c_int),
}

fn omp() -> Option<&'static Omp> {
    static OMP: OnceLock<Option<Omp>> = OnceLock::new();
    OMP.get_or_init(|| {
        let [get, set] = crate::runtime::loaded::symbols(
            c"libtorch_cpu.so",
            [c"omp_get_max_threads", c"omp_set_num_threads"],
        )?;
        // SAFETY: the symbols have exactly the OpenMP API's C signatures.
        unsafe {
            Some(Omp {
                get: std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> c_int>(get),
                set: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(c_int)>(set),
            })
        }
    })
    .as_ref()
}

/// MKL's per-thread count, found through libtorch_cpu (the PyPI wheel links MKL statically
/// and exports it). `set_local(n)` returns the thread's previous local count, 0 meaning "none:
/// MKL's global setting", which `set_local(0)` restores. None when libtorch has no MKL.
struct Mkl {
    get: unsafe extern "C" fn() -> c_int,
    set_local: unsafe extern "C" fn(c_int) -> c_int,
}

fn mkl() -> Option<&'static Mkl> {
    static MKL: OnceLock<Option<Mkl>> = OnceLock::new();
    MKL.get_or_init(|| {
        // The C entry points by value. In the PyPI wheel's MKL the lowercase
        // `mkl_set_num_threads_local` is the Fortran one, taking its argument by reference.
        let names = [c"MKL_Get_Max_Threads", c"MKL_Set_Num_Threads_Local"];
        let [get, set_local] = crate::runtime::loaded::symbols(c"libtorch_cpu.so", names)?;
        // SAFETY: the symbols have exactly MKL's C signatures (int (void), int (int)).
        unsafe {
            Some(Mkl {
                get: std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> c_int>(get),
                set_local: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(c_int) -> c_int>(
                    set_local,
                ),
            })
        }
    })
    .as_ref()
}

/// The number of threads MKL would use on the calling thread (None without MKL).
pub fn current_mkl() -> Option<i32> {
    // SAFETY: mkl_get_max_threads has no preconditions.
    mkl().map(|m| unsafe { (m.get)() })
}

/// Sets MKL's count for the calling thread (0: back to MKL's global setting); returns the
/// previous local count (None without MKL).
fn set_mkl_local(n: i32) -> Option<i32> {
    // SAFETY: any n >= 0 is valid.
    mkl().map(|m| unsafe { (m.set_local)(n.max(0)) })
}

/// Runs `f` with MKL on one thread on the calling thread, then puts its count back: a pass
/// too small to split between threads (crate::model::fast_mlp) runs its products faster on one
/// than on a team that must wake for each (64 rows: 0.21 ms a step on two, 0.12 on one).
pub(crate) fn mkl_single<R>(f: impl FnOnce() -> R) -> R {
    let before = set_mkl_local(1);
    struct Back(Option<i32>);
    impl Drop for Back {
        fn drop(&mut self) {
            if let Some(n) = self.0 {
                set_mkl_local(n);
            }
        }
    }
    let _back = Back(before);
    f()
}

/// libgomp's entry to a parallel region and OpenMP's three queries a region's body needs, found
/// through libtorch_cpu as [`Omp`] is: the region libtorch's own `at::parallel_for` opens, on
/// the same pool of threads. Apart from [`Omp`], so that a runtime without them still has its
/// count set.
struct Region {
    parallel: unsafe extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint),
    thread_num: unsafe extern "C" fn() -> c_int,
    num_threads: unsafe extern "C" fn() -> c_int,
    in_parallel: unsafe extern "C" fn() -> c_int,
}

fn region() -> Option<&'static Region> {
    static REGION: OnceLock<Option<Region>> = OnceLock::new();
    REGION
        .get_or_init(|| {
            let names = [c"GOMP_parallel", c"omp_get_thread_num", c"omp_get_num_threads", c"omp_in_parallel"];
            let [p, t, n, i] = crate::runtime::loaded::symbols(c"libtorch_cpu.so", names)?;
            // SAFETY: libgomp's GOMP_parallel(void (*)(void *), void *, unsigned, unsigned) and
            // OpenMP's int (void) queries.
            unsafe {
                Some(Region {
                    parallel: std::mem::transmute::<
                        *mut c_void,
                        unsafe extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint),
                    >(p),
                    thread_num: std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> c_int>(t),
                    num_threads: std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> c_int>(n),
                    in_parallel: std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> c_int>(i),
                })
            }
        })
        .as_ref()
}

/// The threads a parallel region opened here would have: the calling thread's OpenMP count
/// (set by the call's [`Scope`]); 1 without OpenMP, or inside a parallel region already.
pub(crate) fn team_size() -> usize {
    match (omp(), region()) {
        // SAFETY: OpenMP's queries have no preconditions.
        (Some(o), Some(r)) if unsafe { (r.in_parallel)() } == 0 => unsafe { (o.get)() }.max(1) as usize,
        _ => 1,
    }
}

/// A region's body, how many parts it has, and whether it panicked on some thread.
struct Body<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    parts: usize,
    region: &'static Region,
    panicked: AtomicBool,
}

extern "C" fn body(data: *mut c_void) {
    // SAFETY: `data` is the Body that `parallel` keeps alive across the region.
    let b = unsafe { &*(data as *const Body<'_>) };
    // SAFETY: OpenMP's queries have no preconditions.
    let (me, team) = unsafe { ((b.region.thread_num)(), (b.region.num_threads)()) };
    // OpenMP may grant fewer threads than asked (OMP_THREAD_LIMIT, OMP_DYNAMIC): each thread
    // then takes every team-th part, so that every part runs whatever the team's size.
    let (me, team) = (me.max(0) as usize, team.max(1) as usize);
    // A panic must not unwind into libgomp: it is recorded and raised again on the caller's thread.
    let run = || (me..b.parts).step_by(team).for_each(b.f);
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).is_err() {
        b.panicked.store(true, Ordering::Relaxed);
    }
}

/// Runs `f(t)` for t in 0..threads, each on a thread of libtorch's OpenMP pool (the caller's
/// among them; a smaller team than asked runs several parts per thread), and returns when all
/// have; false, running nothing, without OpenMP's region entry. A panic in `f` goes on as a panic on the calling thread once the region is over.
pub(crate) fn parallel(threads: usize, f: &(dyn Fn(usize) + Sync)) -> bool {
    let Some(region) = region() else { return false };
    let b = Body { f, parts: threads, region, panicked: AtomicBool::new(false) };
    // SAFETY: `b` outlives the region, which returns when every thread has finished.
    unsafe { (region.parallel)(body, &b as *const Body<'_> as *mut c_void, threads as c_uint, 0) };
    if b.panicked.load(Ordering::Relaxed) {
        panic!("a parallel region's body panicked on one of its threads");
    }
    true
}

/// The calling thread's intra-op thread count as OpenMP reports it (None without OpenMP).
pub fn current() -> Option<i32> {
    // libtorch sets each thread's count on its first parallel call; make that happen first so
    // that it cannot overwrite a count set here.
    let _ = tch::get_num_threads();
    // SAFETY: omp_get_max_threads has no preconditions.
    omp().map(|o| unsafe { (o.get)() })
}

/// Sets the calling thread's count (no-op without OpenMP).
pub fn set_current(n: i32) {
    if let Some(o) = omp() {
        // SAFETY: any n >= 1 is valid.
        unsafe { (o.set)(n.max(1)) }
    }
}

thread_local! {
    /// Whether a [`Scope`] is open on this thread: a call's entry opens one, and entries it
    /// reaches inside (a C call through the Rust entry it calls) find it open and leave it.
    static OPEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While alive, the calling thread runs libtorch's intra-op work (OpenMP and MKL) on the count
/// the policy picks; dropping it (also on an error or a panic) restores the thread's previous
/// counts. The outermost scope on a thread decides: one opened inside another changes nothing,
/// so a call has one count from its entry to its return.
pub struct Scope {
    outermost: bool,
    restore: Option<i32>,
    restore_mkl: Option<i32>,
}

impl Scope {
    /// For a call of a handle whose `config.num_threads` is `configured` (0: automatic).
    pub fn for_call(configured: u32) -> Scope {
        let p =
            if configured >= 1 { Policy::Fixed(configured.min(i32::MAX as u32) as i32) } else { policy() };
        Scope::with_policy(p)
    }

    pub fn with_policy(p: Policy) -> Scope {
        if OPEN.with(|o| o.replace(true)) {
            return Scope { outermost: false, restore: None, restore_mkl: None };
        }
        let Some(n) = p.threads() else { return Scope { outermost: true, restore: None, restore_mkl: None } };
        let restore = current().and_then(|before| {
            (before != n).then(|| {
                set_current(n);
                before
            })
        });
        Scope { outermost: true, restore, restore_mkl: set_mkl_local(n) }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if !self.outermost {
            return;
        }
        if let Some(n) = self.restore {
            set_current(n);
        }
        if let Some(n) = self.restore_mkl {
            set_mkl_local(n);
        }
        OPEN.with(|o| o.set(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_knob() {
        assert_eq!(Policy::parse(None), Policy::Auto);
        assert_eq!(Policy::parse(Some("auto")), Policy::Auto);
        assert_eq!(Policy::parse(Some("host")), Policy::Host);
        assert_eq!(Policy::parse(Some(" 3 ")), Policy::Fixed(3));
        assert_eq!(Policy::parse(Some("0")), Policy::Auto);
        assert_eq!(Policy::parse(Some("-2")), Policy::Auto);
        assert_eq!(Policy::parse(Some("many")), Policy::Auto);
    }

    #[test]
    fn auto_is_one_thread() {
        assert_eq!(Policy::Auto.threads(), Some(1));
        assert_eq!(Policy::Host.threads(), None);
        assert_eq!(Policy::Fixed(3).threads(), Some(3));
    }

    /// The count changes on the calling thread only, and comes back when the scope ends.
    #[test]
    fn scope_sets_and_restores_the_calling_threads_count() {
        assert!(current().is_some(), "the PyPI libtorch uses OpenMP; its runtime must be found");
        assert!(current_mkl().is_some(), "the PyPI libtorch links MKL; its per-thread setting must be found");
        set_current(3);
        let mkl_before = current_mkl();
        {
            let _s = Scope::with_policy(Policy::Auto);
            assert_eq!(current(), Some(1));
            assert_eq!(current_mkl(), Some(1), "MKL's per-thread count follows the policy too");
            // Another thread keeps its own count.
            let other = std::thread::spawn(|| {
                set_current(2);
                current()
            })
            .join()
            .unwrap();
            assert_eq!(other, Some(2));
            assert_eq!(current(), Some(1));
        }
        assert_eq!(current(), Some(3));
        assert_eq!(current_mkl(), mkl_before, "MKL's count is restored");
        {
            let _s = Scope::with_policy(Policy::Host);
            assert_eq!(current(), Some(3), "`host` keeps the host's count");
        }
        {
            let _s = Scope::for_call(2);
            assert_eq!(current(), Some(2), "the handle's num_threads wins");
        }
        assert_eq!(current(), Some(3));
        {
            let _outer = Scope::for_call(2);
            {
                let _inner = Scope::for_call(4);
                assert_eq!(current(), Some(2), "a scope inside another changes nothing");
            }
            assert_eq!(current(), Some(2), "nor does its end");
        }
        assert_eq!(current(), Some(3));
        let r = std::panic::catch_unwind(|| {
            let _s = Scope::with_policy(Policy::Fixed(2));
            assert_eq!(current(), Some(2));
            assert_eq!(current_mkl(), Some(2));
            panic!("unwinds through the scope");
        });
        assert!(r.is_err());
        assert_eq!(current(), Some(3), "restored on unwinding");
        assert_eq!(current_mkl(), mkl_before, "MKL's count restored on unwinding");
    }
}
