//! Crash-safe file replacement: write a temporary file in the target's directory, flush and
//! fsync it, rename it over the target, fsync the directory. At every point of failure the
//! previous file is intact.
use crate::abi::status::{Error, Result};
use crate::fault::{save_fault as fault, FaultPoint};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::io(format!("{what} {}: {e}", path.display()))
}

/// Replaces `path` with `bytes` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.is_dir() {
        return Err(Error::io(format!("cannot save to {}: it is a directory", path.display())));
    }
    let name = path.file_name().ok_or_else(|| Error::io(format!("{} names no file", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let tmp = dir.join(tmp_name);

    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let half = bytes.len() / 2;
        f.write_all(&bytes[..half])?;
        fault(FaultPoint::MidWrite)?;
        f.write_all(&bytes[half..])?;
        f.flush()?;
        fault(FaultPoint::BeforeSync)?;
        f.sync_all()?;
        fault(FaultPoint::BeforeRename)?;
        fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(io_error(path, "cannot save", e));
    }
    // The rename is durable only once the directory entry is.
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(dir, "cannot sync directory", e))
}
