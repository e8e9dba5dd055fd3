//! Readers of the live host: `/proc` ([`ProcFs`]) and the cgroup filesystems ([`CgroupFs`]),
//! each with an injectable root so tests run on fake trees of real kernel text, the
//! whole-machine process scan ([`scan`]) and the zram devices ([`ZramFs`]). Parsing is `oomguard_core::host`'s job; this module
//! opens, reads into reused buffers and classifies failures the way a caller acts on them.

pub mod cgroupfs;
pub mod machine;
pub mod pods;
pub mod procfs;
pub mod scan;
pub mod zram;

pub use cgroupfs::CgroupFs;
pub use procfs::ProcFs;
pub use zram::ZramFs;

use oomguard_core::host::ParseError;
use std::io;
use std::path::PathBuf;

/// A failed read, classified by what the caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The process (or cgroup) went away between listing and reading: skip it.
    #[error("{path}: vanished")]
    Vanished { path: PathBuf },
    /// Not allowed to read it: degrade the report, count it, say what is missing.
    #[error("{path}: permission denied")]
    PermissionDenied { path: PathBuf },
    /// The file is not there on this kernel/configuration (e.g. no PSI, no swap accounting).
    #[error("{path}: not present")]
    NotPresent { path: PathBuf },
    /// Any other I/O error.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The content is not what the kernel prints: the message names file and line.
    #[error("{path}: {source}")]
    Malformed {
        path: PathBuf,
        #[source]
        source: ParseError,
    },
}

impl ReadError {
    /// Classifies an I/O error on `path`. For per-process files ENOENT/ESRCH mean the process
    /// exited; for others ENOENT means the file does not exist here.
    pub(crate) fn from_io(path: PathBuf, e: io::Error, per_process: bool) -> Self {
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ESRCH) if per_process => ReadError::Vanished { path },
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => ReadError::NotPresent { path },
            Some(libc::EACCES) | Some(libc::EPERM) => ReadError::PermissionDenied { path },
            _ => ReadError::Io { path, source: e },
        }
    }

    pub(crate) fn malformed(path: PathBuf, source: ParseError) -> Self {
        ReadError::Malformed { path, source }
    }
}

/// `Ok(None)` for [`ReadError::NotPresent`]: "not supported on this kernel".
pub fn optional<T>(r: Result<T, ReadError>) -> Result<Option<T>, ReadError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ReadError::NotPresent { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The system page size (`sysconf(_SC_PAGESIZE)`), 4096 if it cannot be read.
pub fn page_size_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions and only reads a constant.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(v).ok().filter(|v| *v > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classified_for_the_caller() {
        let p = || PathBuf::from("/proc/42/status");
        let e = |n| io::Error::from_raw_os_error(n);
        assert!(matches!(
            ReadError::from_io(p(), e(libc::ENOENT), true),
            ReadError::Vanished { .. }
        ));
        assert!(matches!(
            ReadError::from_io(p(), e(libc::ESRCH), true),
            ReadError::Vanished { .. }
        ));
        assert!(matches!(
            ReadError::from_io(p(), e(libc::ENOENT), false),
            ReadError::NotPresent { .. }
        ));
        assert!(matches!(
            ReadError::from_io(p(), e(libc::EACCES), true),
            ReadError::PermissionDenied { .. }
        ));
        assert!(matches!(
            ReadError::from_io(p(), e(libc::EPERM), false),
            ReadError::PermissionDenied { .. }
        ));
        let io = ReadError::from_io(p(), e(libc::EIO), true);
        assert_eq!(
            io.to_string(),
            "/proc/42/status: Input/output error (os error 5)"
        );
        assert!(matches!(
            optional::<u8>(Err(ReadError::NotPresent { path: p() })),
            Ok(None)
        ));
    }
}
