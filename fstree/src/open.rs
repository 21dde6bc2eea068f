//! Opening paths inside an untrusted tree: `openat2(2)` with `RESOLVE_IN_ROOT` (every
//! component, symlinks and `..` included, resolved as if the tree were `/`), and plain
//! close-on-exec `open`/`openat`.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;

/// `openat2` resolve flags (`linux/openat2.h`).
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Open `path` relative to `root`, resolving every component (symlinks and `..` included) as
/// if `root` were the file system root, so nothing can escape it (`openat2` RESOLVE_IN_ROOT).
pub fn open_in_root(root: RawFd, path: &Path, flags: i32) -> nix::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    openat2(root, rel, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
}

pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;

/// `openat2(2)` with `resolve` flags (always close-on-exec).
pub fn openat2(dir: RawFd, rel: &Path, flags: i32, resolve: u64) -> nix::Result<OwnedFd> {
    let c = CString::new(rel.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: `c` is a NUL-terminated string that outlives the call and `how` is a valid
    // open_how whose size we pass.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = Errno::result(ret)? as RawFd;
    // SAFETY: the kernel just returned this fd to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `open(2)` (always close-on-exec), returning an owned fd.
pub fn open<P: ?Sized + nix::NixPath>(
    path: &P,
    flags: nix::fcntl::OFlag,
    mode: nix::sys::stat::Mode,
) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::open(path, flags | nix::fcntl::OFlag::O_CLOEXEC, mode)?;
    // SAFETY: open just returned this fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(2)` (always close-on-exec), returning an owned fd.
pub fn openat<P: ?Sized + nix::NixPath>(
    dir: RawFd,
    path: &P,
    flags: nix::fcntl::OFlag,
    mode: nix::sys::stat::Mode,
) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::openat(Some(dir), path, flags | nix::fcntl::OFlag::O_CLOEXEC, mode)?;
    // SAFETY: openat just returned this fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
