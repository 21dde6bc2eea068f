//! Apply one image layer (a tar stream, plain, gzip or zstd) into a snapshot's directory, in
//! the form overlayfs reads: OCI whiteouts (`.wh.NAME`) become 0:0 character devices, opaque
//! markers (`.wh..wh..opq`) the `trusted.overlay.opaque` xattr on their directory.
//!
//! The layer is hostile input. Every entry's path is checked (relative, no `..`), every parent
//! directory is opened with `openat2(RESOLVE_IN_ROOT)` so symlinks in the layer cannot lead
//! outside the directory, the entry itself is created with `*at` calls that never follow a
//! final symlink, hard links must point at a non-directory inside the layer, device nodes and
//! overlay xattrs are refused, and the uncompressed size is capped (decompression bombs).
//! On error the caller removes the directory: nothing outside it was touched.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::open::open_in_root;
use nix::errno::Errno;
use sha2::{Digest, Sha256};

/// Caps on one layer's uncompressed content.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Uncompressed tar bytes.
    pub max_bytes: u64,
    /// Entries.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 30,
            max_entries: 10_000_000,
        }
    }
}

/// What applying a layer produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// `sha256:<hex>` of the uncompressed tar (the image config's diff_id).
    pub diff_id: String,
    /// Uncompressed size in bytes.
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("layer entry {path:?}: {reason}")]
    Entry { path: String, reason: String },
    #[error("layer entry {path:?}: {what}")]
    EntryIo {
        path: String,
        what: &'static str,
        #[source]
        err: io::Error,
    },
    #[error("tar stream is larger than {limit} bytes uncompressed (a decompression bomb?)")]
    TooLarge { limit: u64 },
    #[error("tar stream has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("layer stream is not a valid tar archive")]
    Corrupt(#[source] io::Error),
    #[error("open layer target directory {path}")]
    Target {
        path: String,
        #[source]
        err: io::Error,
    },
}

fn entry_err(path: &str, reason: impl Into<String>) -> Error {
    Error::Entry {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Counts and hashes the uncompressed stream, and stops it at the size cap.
struct Meter<R> {
    inner: R,
    hash: Sha256,
    n: u64,
    limit: u64,
    over: bool,
}

impl<R: Read> Read for Meter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        if self.n > self.limit {
            self.over = true;
            return Err(io::Error::other("layer size limit exceeded"));
        }
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// The decompressor for a stream, from its first bytes.
pub fn decompress<'a>(r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut br = BufReader::with_capacity(256 << 10, r);
    let head = br.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(br))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(br)?)
    } else {
        Box::new(br)
    })
}

/// A relative path with no `..`, `.` or empty components; None for the root itself.
pub fn clean(raw: &[u8]) -> Result<Option<PathBuf>, String> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path".into());
    }
    if raw.contains(&0) {
        return Err("NUL in path".into());
    }
    let p = Path::new(std::ffi::OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains \"..\"".into()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

fn cstr(name: &std::ffi::OsStr) -> CString {
    CString::new(name.as_bytes()).expect("no NUL: checked by clean")
}

struct Applier {
    root: OwnedFd,
    euid_root: bool,
    /// The last parent directory opened, by path.
    parent: Option<(PathBuf, OwnedFd)>,
    /// Directory mtimes to set once everything below them is written.
    dir_times: HashMap<PathBuf, i64>,
    /// A plain archive (`docker cp`): `.wh.` names are ordinary files.
    plain: bool,
}

impl Applier {
    fn open(&self, rel: &Path, flags: i32) -> Result<OwnedFd, Errno> {
        open_in_root(self.root.as_raw_fd(), rel, flags)
    }

    /// The parent directory of an entry, created (0755, root) where missing.
    fn parent_fd(&mut self, parent: &Path, shown: &str) -> Result<i32, Error> {
        if let Some((p, fd)) = &self.parent {
            if p == parent {
                return Ok(fd.as_raw_fd());
            }
        }
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        let fd = match self.open(parent, flags) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                let mut cur = PathBuf::new();
                for c in parent.components() {
                    let at = self
                        .open(&cur, flags)
                        .map_err(|e| io_err(shown, "open parent directory", e))?;
                    cur.push(c);
                    let name = cstr(c.as_os_str());
                    // SAFETY: `at` is an open directory fd and `name` a NUL-terminated
                    // single component (no '/'), so the directory is made inside `at`.
                    let r = unsafe { libc::mkdirat(at.as_raw_fd(), name.as_ptr(), 0o755) };
                    if r < 0 && Errno::last() != Errno::EEXIST {
                        return Err(io_err(shown, "create parent directory", Errno::last()));
                    }
                }
                self.open(parent, flags)
                    .map_err(|e| io_err(shown, "open parent directory", e))?
            }
            Err(Errno::ENOTDIR) => return Err(entry_err(shown, "a parent is not a directory")),
            Err(e) => return Err(io_err(shown, "open parent directory", e)),
        };
        let raw = fd.as_raw_fd();
        self.parent = Some((parent.to_path_buf(), fd));
        Ok(raw)
    }

    /// Remove whatever `name` is in `dir` (a directory recursively). Missing is fine.
    fn remove(&self, dir: i32, name: &CString, shown: &str) -> Result<(), Error> {
        // SAFETY: dir is an open directory fd; name is a single NUL-terminated component.
        if unsafe { libc::unlinkat(dir, name.as_ptr(), 0) } == 0 {
            return Ok(());
        }
        match Errno::last() {
            Errno::ENOENT => Ok(()),
            Errno::EISDIR | Errno::EPERM => {
                // std's remove_dir_all never follows symlinks below the path it is given; the
                // path names `name` inside `dir` through the fd, not by a resolvable string.
                let p = PathBuf::from(format!("/proc/self/fd/{dir}"))
                    .join(std::ffi::OsStr::from_bytes(name.as_bytes()));
                std::fs::remove_dir_all(&p).map_err(|err| Error::EntryIo {
                    path: shown.to_string(),
                    what: "replace directory",
                    err,
                })
            }
            e => Err(io_err(shown, "replace existing entry", e)),
        }
    }
}

fn io_err(path: &str, what: &'static str, e: Errno) -> Error {
    Error::EntryIo {
        path: path.to_string(),
        what,
        err: io::Error::from(e),
    }
}

fn check(path: &str, what: &'static str, r: libc::c_int) -> Result<(), Error> {
    if r < 0 {
        return Err(io_err(path, what, Errno::last()));
    }
    Ok(())
}

/// Apply the layer read from `r` into `dir` (an existing, empty snapshot directory).
pub fn apply(r: impl Read, dir: &Path, limits: &Limits) -> Result<Applied, Error> {
    apply_with(r, dir, limits, false)
}

/// Extract a plain tar archive (no whiteouts) into `dir` with the same protections: no
/// entry lands outside `dir`, whatever links the archive or the directory holds.
pub fn extract(r: impl Read, dir: &Path, limits: &Limits) -> Result<Applied, Error> {
    apply_with(r, dir, limits, true)
}

/// Read the archive from `r` (plain or compressed) to its end, writing nothing, and check
/// it against `limits`: a caller that must not leave half an extraction behind measures a
/// spooled archive first. Returns what [`extract`] would report.
pub fn measure(r: impl Read, limits: &Limits) -> Result<Applied, Error> {
    let stream = decompress(r).map_err(Error::Corrupt)?;
    let mut meter = Meter {
        inner: stream,
        hash: Sha256::new(),
        n: 0,
        limit: limits.max_bytes,
        over: false,
    };
    let res = count_entries(&mut meter, limits);
    let drained = res.and_then(|()| io::copy(&mut meter, &mut io::sink()).map_err(Error::Corrupt));
    if meter.over {
        return Err(Error::TooLarge {
            limit: limits.max_bytes,
        });
    }
    drained?;
    Ok(Applied {
        diff_id: format!("sha256:{:x}", meter.hash.finalize()),
        size: meter.n,
    })
}

fn count_entries<R: Read>(r: &mut R, limits: &Limits) -> Result<(), Error> {
    let mut archive = tar::Archive::new(r);
    let mut count = 0u64;
    for entry in archive.entries().map_err(Error::Corrupt)? {
        entry.map_err(Error::Corrupt)?;
        count += 1;
        if count > limits.max_entries {
            return Err(Error::TooManyEntries {
                limit: limits.max_entries,
            });
        }
    }
    Ok(())
}

fn apply_with(r: impl Read, dir: &Path, limits: &Limits, plain: bool) -> Result<Applied, Error> {
    let root = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::Target {
        path: dir.display().to_string(),
        err: e.into(),
    })?;
    // SAFETY: open returned a fresh fd that we now own.
    let root = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(root) };
    let mut ap = Applier {
        root,
        euid_root: nix::unistd::geteuid().is_root(),
        parent: None,
        dir_times: HashMap::new(),
        plain,
    };
    let stream = decompress(r).map_err(Error::Corrupt)?;
    let mut meter = Meter {
        inner: stream,
        hash: Sha256::new(),
        n: 0,
        limit: limits.max_bytes,
        over: false,
    };
    let res = apply_entries(&mut ap, &mut meter, limits);
    if meter.over {
        return Err(Error::TooLarge {
            limit: limits.max_bytes,
        });
    }
    res?;
    // The diff id covers the whole stream, the end-of-archive blocks and padding included.
    let drained = io::copy(&mut meter, &mut io::sink());
    if meter.over {
        return Err(Error::TooLarge {
            limit: limits.max_bytes,
        });
    }
    drained.map_err(Error::Corrupt)?;
    // Directory times last: writing inside a directory changes its mtime.
    let mut times: Vec<_> = ap.dir_times.drain().collect();
    times.sort_by_key(|t| std::cmp::Reverse(t.0.components().count()));
    for (p, mtime) in times {
        if let Ok(fd) = ap.open(&p, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW) {
            let ts = [timespec(mtime), timespec(mtime)];
            // SAFETY: fd is an open directory; ts is a valid array of two timespecs.
            unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) };
        }
    }
    Ok(Applied {
        diff_id: format!("sha256:{:x}", meter.hash.finalize()),
        size: meter.n,
    })
}

fn timespec(secs: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    }
}

fn apply_entries<R: Read>(ap: &mut Applier, r: &mut R, limits: &Limits) -> Result<(), Error> {
    let mut archive = tar::Archive::new(r);
    let mut count = 0u64;
    for entry in archive.entries().map_err(Error::Corrupt)? {
        let mut entry = entry.map_err(Error::Corrupt)?;
        count += 1;
        if count > limits.max_entries {
            return Err(Error::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let Some(path) = clean(&raw).map_err(|r| entry_err(&shown, r))? else {
            continue; // the root directory itself
        };
        let name = path
            .file_name()
            .expect("a normal last component")
            .to_owned();
        let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let name_bytes = name.as_bytes();

        // Whiteouts.
        if name_bytes == b".wh..wh..opq" && !ap.plain {
            let fd = ap.parent_fd(&parent, &shown)?;
            let d = ap
                .open(
                    &parent,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                )
                .map_err(|e| io_err(&shown, "open opaque directory", e))?;
            let _ = fd;
            set_xattr(d.as_raw_fd(), "trusted.overlay.opaque", b"y", &shown)?;
            continue;
        }
        if let Some(hidden) = name_bytes.strip_prefix(b".wh.").filter(|_| !ap.plain) {
            if hidden.starts_with(b".wh.") {
                continue; // aufs metadata (.wh..wh.plnk and the like)
            }
            if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.contains(&b'/') {
                return Err(entry_err(&shown, "whiteout of an invalid name"));
            }
            let fd = ap.parent_fd(&parent, &shown)?;
            let target = CString::new(hidden).expect("no NUL");
            ap.remove(fd, &target, &shown)?;
            // SAFETY: fd is an open directory, target a single NUL-terminated component.
            let r =
                unsafe { libc::mknodat(fd, target.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) };
            check(&shown, "create whiteout", r)?;
            continue;
        }

        let h = entry.header();
        let kind = h.entry_type();
        let mode = h.mode().map_err(Error::Corrupt)? & 0o7777;
        let uid = h.uid().map_err(Error::Corrupt)? as u32;
        let gid = h.gid().map_err(Error::Corrupt)? as u32;
        let mtime = h.mtime().unwrap_or(0) as i64;
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let mut xattrs = Vec::new();
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts {
                let ext = ext.map_err(Error::Corrupt)?;
                if let Some(k) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    let k = String::from_utf8_lossy(k).into_owned();
                    if k.starts_with("trusted.overlay.") || k.starts_with("trusted.") {
                        return Err(entry_err(&shown, format!("refused xattr {k:?}")));
                    }
                    xattrs.push((k, ext.value_bytes().to_vec()));
                }
            }
        }
        let fd = ap.parent_fd(&parent, &shown)?;
        let cname = cstr(&name);
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous => {
                ap.remove(fd, &cname, &shown)?;
                // SAFETY: fd is an open directory; cname a single NUL-terminated component;
                // O_EXCL|O_NOFOLLOW create a new file and never follow a symlink.
                let f = unsafe {
                    libc::openat(
                        fd,
                        cname.as_ptr(),
                        libc::O_WRONLY
                            | libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_CLOEXEC,
                        0o600,
                    )
                };
                check(&shown, "create file", f)?;
                // SAFETY: openat just returned this fd; we own it.
                let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(f) };
                io::copy(&mut entry, &mut file).map_err(|err| Error::EntryIo {
                    path: shown.clone(),
                    what: "write file",
                    err,
                })?;
                finish(
                    ap,
                    true,
                    file.as_raw_fd(),
                    uid,
                    gid,
                    mode,
                    mtime,
                    &xattrs,
                    &shown,
                )?;
            }
            T::Directory => {
                let d = match ap.open(&path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW)
                {
                    Ok(d) => d,
                    Err(_) => {
                        ap.remove(fd, &cname, &shown)?;
                        // SAFETY: as above: a single component inside an open directory.
                        let r = unsafe { libc::mkdirat(fd, cname.as_ptr(), 0o700) };
                        check(&shown, "create directory", r)?;
                        ap.open(&path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW)
                            .map_err(|e| io_err(&shown, "open directory", e))?
                    }
                };
                finish(
                    ap,
                    false,
                    d.as_raw_fd(),
                    uid,
                    gid,
                    mode,
                    mtime,
                    &xattrs,
                    &shown,
                )?;
                ap.dir_times.insert(path.clone(), mtime);
            }
            T::Symlink => {
                let target = link.ok_or_else(|| entry_err(&shown, "symlink without a target"))?;
                let target =
                    CString::new(target).map_err(|_| entry_err(&shown, "NUL in symlink target"))?;
                ap.remove(fd, &cname, &shown)?;
                // SAFETY: target and cname are NUL-terminated; fd an open directory. A
                // symlink's text is never followed here: later entries resolve in the root.
                let r = unsafe { libc::symlinkat(target.as_ptr(), fd, cname.as_ptr()) };
                check(&shown, "create symlink", r)?;
                if ap.euid_root {
                    // SAFETY: as above; AT_SYMLINK_NOFOLLOW acts on the link itself.
                    let r = unsafe {
                        libc::fchownat(fd, cname.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
                    };
                    check(&shown, "chown symlink", r)?;
                }
                let ts = [timespec(mtime), timespec(mtime)];
                // SAFETY: as above; ts is an array of two timespecs.
                unsafe {
                    libc::utimensat(fd, cname.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
                };
            }
            T::Link => {
                let target = link.ok_or_else(|| entry_err(&shown, "hard link without a target"))?;
                let Some(tpath) = clean(&target).map_err(|r| {
                    entry_err(
                        &shown,
                        format!(
                            "hard link target {:?}: {r}",
                            String::from_utf8_lossy(&target)
                        ),
                    )
                })?
                else {
                    return Err(entry_err(&shown, "hard link to the root directory"));
                };
                let t = ap
                    .open(&tpath, libc::O_PATH | libc::O_NOFOLLOW)
                    .map_err(|e| {
                        entry_err(
                            &shown,
                            format!(
                                "hard link target {} not in this layer: {e}",
                                tpath.display()
                            ),
                        )
                    })?;
                let st = nix::sys::stat::fstat(t.as_raw_fd())
                    .map_err(|e| io_err(&shown, "stat hard link target", e))?;
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    return Err(entry_err(&shown, "hard link to a directory"));
                }
                ap.remove(fd, &cname, &shown)?;
                let empty = CString::new("").expect("static");
                // SAFETY: t is an O_PATH fd of the target (resolved inside the root); with
                // AT_EMPTY_PATH linkat links exactly that inode.
                let r = unsafe {
                    libc::linkat(
                        t.as_raw_fd(),
                        empty.as_ptr(),
                        fd,
                        cname.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    )
                };
                check(&shown, "create hard link", r)?;
            }
            T::Fifo => {
                ap.remove(fd, &cname, &shown)?;
                // SAFETY: as above.
                let r = unsafe { libc::mknodat(fd, cname.as_ptr(), libc::S_IFIFO | 0o600, 0) };
                check(&shown, "create fifo", r)?;
                let f = ap
                    .open(&path, libc::O_PATH | libc::O_NOFOLLOW)
                    .map_err(|e| io_err(&shown, "open fifo", e))?;
                let p = format!("/proc/self/fd/{}", f.as_raw_fd());
                let _ = std::os::unix::fs::chown(&p, Some(uid), Some(gid));
                let _ = std::fs::set_permissions(
                    &p,
                    std::os::unix::fs::PermissionsExt::from_mode(mode),
                );
            }
            T::Char | T::Block => {
                // Images made from a debootstrap or a live system carry /dev nodes. A
                // container's /dev is a fresh tmpfs, so those are never seen: skip them.
                // Anywhere else a device node would be reachable: refuse the layer.
                if path.starts_with("dev") {
                    continue;
                }
                return Err(entry_err(
                    &shown,
                    "device nodes are not allowed in layers (outside /dev, where they are skipped)",
                ));
            }
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {}
            other => {
                return Err(entry_err(
                    &shown,
                    format!("unsupported entry type {other:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// Owner, mode (after chown, which clears set-id bits), xattrs and mtime of an open entry.
#[allow(clippy::too_many_arguments)]
fn finish(
    ap: &Applier,
    fresh: bool,
    fd: i32,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: &[(String, Vec<u8>)],
    shown: &str,
) -> Result<(), Error> {
    // A file we just created as root is already 0:0.
    if ap.euid_root && (!fresh || uid != 0 || gid != 0) {
        // SAFETY: fd is an open file or directory of ours.
        check(shown, "chown", unsafe { libc::fchown(fd, uid, gid) })?;
    }
    // SAFETY: as above.
    check(shown, "chmod", unsafe { libc::fchmod(fd, mode) })?;
    for (k, v) in xattrs {
        set_xattr(fd, k, v, shown)?;
    }
    let ts = [timespec(mtime), timespec(mtime)];
    // SAFETY: as above; ts is an array of two timespecs.
    unsafe { libc::futimens(fd, ts.as_ptr()) };
    Ok(())
}

fn set_xattr(fd: i32, key: &str, value: &[u8], shown: &str) -> Result<(), Error> {
    let k = CString::new(key).map_err(|_| entry_err(shown, "NUL in xattr name"))?;
    // SAFETY: fd is open; k is NUL-terminated; value is a live slice whose length we pass.
    let r = unsafe {
        libc::fsetxattr(
            fd,
            k.as_ptr(),
            value.as_ptr() as *const libc::c_void,
            value.len(),
            0,
        )
    };
    check(shown, "set xattr", r)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// One raw ustar entry, so tests can write names the tar crate would refuse.
    pub(crate) fn raw_entry(name: &[u8], kind: u8, link: &[u8], mode: u32, data: &[u8]) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name);
        let oct = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
            let s = format!("{:0w$o}\0", v, w = len - 1);
            h[at..at + len].copy_from_slice(s.as_bytes());
        };
        oct(&mut h, 100, 8, mode as u64);
        oct(&mut h, 108, 8, 0);
        oct(&mut h, 116, 8, 0);
        oct(&mut h, 124, 12, data.len() as u64);
        oct(&mut h, 136, 12, 1_600_000_000);
        h[148..156].copy_from_slice(b"        ");
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        let cs = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(cs.as_bytes());
        let mut out = h.to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    pub(crate) fn tar_of(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut t: Vec<u8> = entries.concat();
        t.extend_from_slice(&[0u8; 1024]);
        t
    }

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A scratch area: `root` is the layer directory, `outside` a sibling that must stay
    /// untouched.
    fn scratch(tag: &str) -> (Dir, PathBuf, PathBuf) {
        let d = std::env::temp_dir().join(format!("berth-layer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let root = d.join("root");
        let outside = d.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        (Dir(d), root, outside)
    }

    fn outside_untouched(outside: &Path) {
        let n = std::fs::read_dir(outside).unwrap().count();
        assert_eq!(n, 0, "something was written outside the layer");
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean(b"./a/b/").unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(clean(b"./").unwrap(), None);
        assert!(clean(b"/etc/passwd").unwrap_err().contains("absolute"));
        assert!(clean(b"a/../../x").unwrap_err().contains(".."));
        assert!(clean(b"..").unwrap_err().contains(".."));
    }

    #[test]
    fn applies_files_links_and_whiteouts_with_the_same_diff_id_compressed_or_not() {
        let tar = tar_of(&[
            raw_entry(b"etc/", b'5', b"", 0o755, b""),
            raw_entry(b"etc/hello", b'0', b"", 0o4755, b"hi\n"),
            raw_entry(b"etc/link", b'2', b"hello", 0o777, b""),
            raw_entry(b"etc/hard", b'1', b"etc/hello", 0o644, b""),
            raw_entry(b"gone/.wh.old", b'0', b"", 0o644, b""),
            raw_entry(b"opaque/.wh..wh..opq", b'0', b"", 0o644, b""),
            raw_entry(b"fifo", b'6', b"", 0o600, b""),
        ]);
        let want = format!("sha256:{:x}", Sha256::digest(&tar));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::stream::encode_all(&tar[..], 1).unwrap();
        for (tag, bytes) in [("plain", tar.clone()), ("gzip", gz), ("zstd", zst)] {
            let (_d, root, outside) = scratch(tag);
            let a = apply(&bytes[..], &root, &Limits::default()).unwrap();
            assert_eq!(a.diff_id, want, "{tag}");
            assert_eq!(a.size, tar.len() as u64);
            assert_eq!(std::fs::read(root.join("etc/hello")).unwrap(), b"hi\n");
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            let m = std::fs::metadata(root.join("etc/hello")).unwrap();
            assert_eq!(m.mode() & 0o7777, 0o4755, "set-uid kept after chown");
            assert_eq!(m.nlink(), 2, "hard link");
            assert_eq!(
                std::fs::read_link(root.join("etc/link")).unwrap(),
                Path::new("hello")
            );
            let w = std::fs::symlink_metadata(root.join("gone/old")).unwrap();
            assert!(
                w.file_type().is_char_device() && w.rdev() == 0,
                "overlay whiteout"
            );
            if nix::unistd::geteuid().is_root() {
                let v = xattr_get(&root.join("opaque"), "trusted.overlay.opaque");
                assert_eq!(v.as_deref(), Some(&b"y"[..]));
            }
            assert!(std::fs::symlink_metadata(root.join("fifo"))
                .unwrap()
                .file_type()
                .is_fifo());
            outside_untouched(&outside);
        }
    }

    fn xattr_get(p: &Path, k: &str) -> Option<Vec<u8>> {
        let p = CString::new(p.as_os_str().as_bytes()).unwrap();
        let k = CString::new(k).unwrap();
        let mut buf = [0u8; 64];
        // SAFETY: p and k are NUL-terminated; buf is writable for its length.
        let n = unsafe {
            libc::lgetxattr(
                p.as_ptr(),
                k.as_ptr(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        (n >= 0).then(|| buf[..n as usize].to_vec())
    }

    fn refused(tag: &str, entries: &[Vec<u8>], needle: &str) {
        let (_d, root, outside) = scratch(tag);
        let e = apply(&tar_of(entries)[..], &root, &Limits::default())
            .expect_err(&format!("{tag}: a malicious layer was applied"));
        let text = format!("{e}");
        assert!(text.contains(needle), "{tag}: {text}");
        outside_untouched(&outside);
    }

    #[test]
    fn malicious_entries_are_refused_and_nothing_escapes() {
        refused(
            "dotdot",
            &[raw_entry(b"../outside/x", b'0', b"", 0o644, b"x")],
            "..",
        );
        refused(
            "abs",
            &[raw_entry(b"/etc/x", b'0', b"", 0o644, b"x")],
            "absolute",
        );
        refused(
            "hardlink-out",
            &[raw_entry(b"h", b'1', b"../outside/x", 0o644, b"")],
            "hard link target",
        );
        refused(
            "hardlink-abs",
            &[raw_entry(b"h", b'1', b"/etc/passwd", 0o644, b"")],
            "hard link target",
        );
        refused(
            "hardlink-dir",
            &[
                raw_entry(b"d/", b'5', b"", 0o755, b""),
                raw_entry(b"h", b'1', b"d", 0o644, b""),
            ],
            "directory",
        );
        refused(
            "chardev",
            &[raw_entry(b"usr/mem", b'3', b"", 0o644, b"")],
            "device",
        );
        refused(
            "blockdev",
            &[raw_entry(b"sda", b'4', b"", 0o644, b"")],
            "device",
        );
        refused(
            "whiteout-dot",
            &[raw_entry(b"a/.wh..", b'0', b"", 0o644, b"")],
            "whiteout",
        );
    }

    #[test]
    fn device_nodes_under_dev_are_skipped() {
        let (_d, root, _outside) = scratch("devnodes");
        let tar = tar_of(&[
            raw_entry(b"dev/", b'5', b"", 0o755, b""),
            raw_entry(b"dev/null", b'3', b"", 0o666, b""),
            raw_entry(b"dev/sda", b'4', b"", 0o660, b""),
        ]);
        apply(&tar[..], &root, &Limits::default()).unwrap();
        assert!(root.join("dev").is_dir());
        assert!(!root.join("dev/null").exists() && !root.join("dev/sda").exists());
    }

    #[test]
    fn symlinks_cannot_lead_writes_outside() {
        let (_d, root, outside) = scratch("symlink");
        let out = outside.display().to_string();
        let rel = "../outside".to_string();
        for target in [out.as_str(), rel.as_str(), "../../../../../../.."] {
            let tar = tar_of(&[
                raw_entry(b"link", b'2', target.as_bytes(), 0o777, b""),
                raw_entry(b"link/pwned", b'0', b"", 0o644, b"x"),
            ]);
            // Either refused, or written inside the layer: never outside.
            let _ = apply(&tar[..], &root, &Limits::default());
            outside_untouched(&outside);
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
        }
        // A whiteout through a symlinked directory stays inside too.
        std::fs::write(outside.join("keep"), "x").unwrap();
        let tar = tar_of(&[
            raw_entry(b"link", b'2', out.as_bytes(), 0o777, b""),
            raw_entry(b"link/.wh.keep", b'0', b"", 0o644, b""),
        ]);
        let _ = apply(&tar[..], &root, &Limits::default());
        assert_eq!(std::fs::read_to_string(outside.join("keep")).unwrap(), "x");
        std::fs::remove_file(outside.join("keep")).unwrap();
    }

    #[test]
    fn decompression_bombs_stop_at_the_limit() {
        let (_d, root, _outside) = scratch("bomb");
        let big = vec![0u8; 8 << 20];
        let tar = tar_of(&[raw_entry(b"zeros", b'0', b"", 0o644, &big)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 64 << 10);
        let limits = Limits {
            max_bytes: 1 << 20,
            max_entries: 10,
        };
        let e = apply(&gz[..], &root, &limits).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        let many: Vec<Vec<u8>> = (0..20)
            .map(|i| raw_entry(format!("f{i}").as_bytes(), b'0', b"", 0o644, b""))
            .collect();
        let e = apply(&tar_of(&many)[..], &root, &limits).unwrap_err();
        assert!(matches!(e, Error::TooManyEntries { .. }), "{e}");
    }

    #[test]
    fn overlay_xattrs_in_a_layer_are_refused() {
        // PAX header carrying SCHILY.xattr.trusted.overlay.redirect.
        let rec = "SCHILY.xattr.trusted.overlay.redirect=/etc\n";
        let len = rec.len() + 3;
        let pax = format!("{len} {rec}");
        assert_eq!(pax.len(), len);
        refused(
            "pax-overlay",
            &[
                raw_entry(b"PaxHeaders/x", b'x', b"", 0o644, pax.as_bytes()),
                raw_entry(b"x", b'0', b"", 0o644, b"x"),
            ],
            "xattr",
        );
    }
}
