//! What every exported function of both libraries does at the C boundary: stop panics
//! (crate::panic), turn a result into a status and a message, and check pointers and sizes
//! from C.
use crate::panic::catch_panic;
use crate::status::{set_last_error, Error, Result, SanceStatus};

/// Runs `f`, turning a panic into an error.
pub fn catch<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_panic(f).and_then(|r| r)
}

/// Converts a result into the status the C API returns, recording the message on failure.
pub fn status(fn_name: &str, r: Result<()>) -> SanceStatus {
    match r {
        Ok(()) => SanceStatus::Ok,
        Err(e) => {
            set_last_error(&format!("{fn_name}: {}", e.message));
            e.status
        }
    }
}

/// `catch` then `status`: the body of every status-returning export.
pub fn guard(fn_name: &str, f: impl FnOnce() -> Result<()>) -> SanceStatus {
    status(fn_name, catch(f))
}

/// `catch`, then the value, or `fallback` with the message recorded: the body of the exports
/// that return a value instead of a status (sizes and counts, 0 on failure).
pub fn guard_or<T>(fn_name: &str, fallback: T, f: impl FnOnce() -> Result<T>) -> T {
    catch(f).unwrap_or_else(|e| {
        set_last_error(&format!("{fn_name}: {}", e.message));
        fallback
    })
}

/// Checks a sample count against the sample size: non-zero and addressable as f32s.
pub fn element_count(n: usize, sample_size: usize, what: &str) -> Result<usize> {
    if n == 0 {
        return Err(Error::invalid(format!("{what} must be > 0")));
    }
    n.checked_mul(sample_size)
        .filter(|&e| e <= isize::MAX as usize / std::mem::size_of::<f32>() && e <= i64::MAX as usize)
        .ok_or_else(|| {
            Error::invalid(format!(
                "{what} = {n} samples of {sample_size} floats overflows the address space"
            ))
        })
}

fn check_ptr<T>(p: *const T, name: &str) -> Result<()> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    if !(p as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(Error::invalid(format!("{name} is not aligned for its type")));
    }
    Ok(())
}

/// Borrows `len` floats from C.
///
/// # Safety
/// When non-null, `p` must point to `len` readable floats that stay valid during the call.
pub unsafe fn floats<'a>(p: *const f32, len: usize, name: &str) -> Result<&'a [f32]> {
    check_ptr(p, name)?;
    Ok(std::slice::from_raw_parts(p, len))
}

/// Borrows `len` writable floats from C.
///
/// # Safety
/// When non-null, `p` must point to `len` writable floats, not aliased during the call.
pub unsafe fn floats_mut<'a>(p: *mut f32, len: usize, name: &str) -> Result<&'a mut [f32]> {
    check_ptr(p, name)?;
    Ok(std::slice::from_raw_parts_mut(p, len))
}

/// INVALID_ARGUMENT when two of a call's arrays share memory: outputs must not overlap inputs
/// or each other (docs/c-api.md, "Arrays"), which C cannot see and Rust's borrows forbid.
/// Checked on the pointers, before any slice is borrowed (overlapping borrows are themselves
/// undefined behaviour). Lengths in floats, already checked to be addressable.
pub fn disjoint(a: (*const f32, usize), a_name: &str, b: (*const f32, usize), b_name: &str) -> Result<()> {
    let (a0, b0) = (a.0 as usize, b.0 as usize);
    let f = std::mem::size_of::<f32>();
    let (a1, b1) = (a0 + f * a.1, b0 + f * b.1);
    if a0 < b1 && b0 < a1 {
        return Err(Error::invalid(format!(
            "{a_name} overlaps {b_name} (outputs must not overlap inputs or each other)"
        )));
    }
    Ok(())
}

/// Checks a non-null pointer argument.
pub fn non_null<T>(p: *const T, name: &str) -> Result<()> {
    check_ptr(p, name)
}

/// NON_FINITE naming the first NaN/Inf as `what[row][col]`.
pub fn all_finite(v: &[f32], sample_size: usize, what: &str) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::non_finite(format!(
            "{what}[{}][{}] is {} (inputs must be finite)",
            i / sample_size,
            i % sample_size,
            v[i]
        ))),
    }
}
