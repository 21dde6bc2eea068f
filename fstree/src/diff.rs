//! What a container changed: its active snapshot's upper directory read against the layers
//! below it. [`changes`] lists the paths (Docker's `docker diff`); [`write_layer`] writes
//! them as an OCI layer tar (whiteouts as `.wh.` files, opaque directories as `.wh..wh..opq`)
//! for `commit`.
//!
//! The upper directory is written by the (untrusted) container, possibly while we read it:
//! every step is an `*at` call relative to an already-open directory with `O_NOFOLLOW`, so a
//! directory swapped for a symlink mid-walk cannot lead the walk outside the upper directory.

use std::ffi::{CString, OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};

use crate::mount::Mount;

/// Docker's change kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Absolute path inside the container.
    pub path: String,
    pub kind: Kind,
}

/// The writable directory and the read-only ones below it (top first) of a snapshot's mounts.
pub fn layers_of(mounts: &[Mount]) -> Option<(PathBuf, Vec<PathBuf>)> {
    let m = mounts.first()?;
    match m.kind.as_str() {
        "bind" => Some((PathBuf::from(&m.source), Vec::new())),
        "overlay" => {
            let opt = |k: &str| m.options.iter().find_map(|o| o.strip_prefix(k));
            let upper = opt("upperdir=")?;
            let lowers = opt("lowerdir=")
                .map(|l| l.split(':').map(PathBuf::from).collect())
                .unwrap_or_default();
            Some((PathBuf::from(upper), lowers))
        }
        _ => None,
    }
}

fn open_at(dir: RawFd, name: &OsStr, flags: OFlag) -> std::io::Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(dir),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn lstat_at(dir: RawFd, name: &OsStr) -> std::io::Result<FileStat> {
    Ok(fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW)?)
}

fn is_whiteout(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFCHR
        && st.st_rdev == 0
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
}

fn get_xattr(fd: RawFd, name: &str) -> Option<Vec<u8>> {
    let path = CString::new(format!("/proc/self/fd/{fd}")).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and live across the call; `buf` is writable
    // for its length.
    let r = unsafe {
        libc::getxattr(
            path.as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (r >= 0).then(|| {
        buf.truncate(r as usize);
        buf
    })
}

fn is_opaque(dir: RawFd) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|k| get_xattr(dir, k).as_deref() == Some(b"y"))
}

/// Sorted entry names of an open directory.
fn entries(dir: RawFd) -> std::io::Result<Vec<OsString>> {
    let d = nix::dir::Dir::openat(
        Some(dir),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut names: Vec<OsString> = Vec::new();
    for e in d.into_iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Whether `rel` exists in the layers below (top first), as overlayfs would merge them.
fn in_lowers(lowers: &[OwnedFd], rel: &Path) -> bool {
    for l in lowers {
        let flags = libc::O_PATH | libc::O_NOFOLLOW;
        if let Ok(fd) = crate::open::open_in_root(l.as_raw_fd(), rel, flags) {
            return nix::sys::stat::fstat(fd.as_raw_fd())
                .map(|st| !is_whiteout(&st))
                .unwrap_or(false);
        }
    }
    false
}

/// One entry of the upper directory, as the walk meets it.
enum Entry<'a> {
    /// A file, directory, link... with its stat; `fd` open (O_PATH or O_RDONLY for files).
    Present {
        rel: &'a Path,
        st: &'a FileStat,
        parent: RawFd,
        name: &'a OsStr,
        opaque: bool,
    },
    Whiteout {
        rel: &'a Path,
    },
}

/// Whether `rel` is one of `mount_points`, new, and empty (a directory with no entries or
/// an empty file): what the runtime made to mount on.
fn is_mount_stub(
    mount_points: &[String],
    lowers: &[OwnedFd],
    dir: RawFd,
    name: &OsStr,
    rel: &Path,
    st: &FileStat,
) -> bool {
    let abs = format!("/{}", rel.display());
    if !mount_points.iter().any(|m| m.trim_end_matches('/') == abs) || in_lowers(lowers, rel) {
        return false;
    }
    if is_dir(st) {
        open_at(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .and_then(|fd| entries(fd.as_raw_fd()))
            .is_ok_and(|e| e.is_empty())
    } else {
        st.st_size == 0
    }
}

struct Walk<'a> {
    lowers: &'a [OwnedFd],
    mount_points: &'a [String],
}

fn walk(
    w: &Walk<'_>,
    dir: RawFd,
    rel: &Path,
    f: &mut dyn FnMut(Entry<'_>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    for name in entries(dir)? {
        let st = match lstat_at(dir, &name) {
            Ok(st) => st,
            // Removed while we read: the container is still running; skip it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let child = rel.join(&name);
        if is_mount_stub(w.mount_points, w.lowers, dir, &name, &child, &st) {
            continue;
        }
        if is_whiteout(&st) {
            f(Entry::Whiteout { rel: &child })?;
            continue;
        }
        if is_dir(&st) {
            let fd = match open_at(dir, &name, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            f(Entry::Present {
                rel: &child,
                st: &st,
                parent: dir,
                name: &name,
                opaque: is_opaque(fd.as_raw_fd()),
            })?;
            walk(w, fd.as_raw_fd(), &child, f)?;
        } else {
            f(Entry::Present {
                rel: &child,
                st: &st,
                parent: dir,
                name: &name,
                opaque: false,
            })?;
        }
    }
    Ok(())
}

fn open_dirs(upper: &Path, lowers: &[PathBuf]) -> std::io::Result<(std::fs::File, Vec<OwnedFd>)> {
    let u = std::fs::File::open(upper)?;
    let mut ls = Vec::new();
    for l in lowers {
        ls.push(OwnedFd::from(std::fs::File::open(l)?));
    }
    Ok((u, ls))
}

/// The container's changes, sorted by path.
pub fn changes(
    upper: &Path,
    lowers: &[PathBuf],
    mount_points: &[String],
) -> std::io::Result<Vec<Change>> {
    let (u, ls) = open_dirs(upper, lowers)?;
    let mut out = Vec::new();
    let w = Walk {
        lowers: &ls,
        mount_points,
    };
    walk(&w, u.as_raw_fd(), Path::new(""), &mut |e| {
        match e {
            Entry::Whiteout { rel } => out.push(Change {
                path: format!("/{}", rel.display()),
                kind: Kind::Deleted,
            }),
            Entry::Present { rel, .. } => out.push(Change {
                path: format!("/{}", rel.display()),
                kind: if in_lowers(&ls, rel) {
                    Kind::Modified
                } else {
                    Kind::Added
                },
            }),
        }
        Ok(())
    })?;
    // A directory copied up only because the runtime made mount points in it (/etc for
    // /etc/hosts) is no change of the container's: dropped unless something else under it
    // changed (Docker keeps those mount points in a layer of their own below).
    let holds_mount = |dir: &str| {
        mount_points
            .iter()
            .any(|m| m.len() > dir.len() && m.starts_with(dir) && m.as_bytes()[dir.len()] == b'/')
    };
    let paths: Vec<String> = out.iter().map(|c| c.path.clone()).collect();
    out.retain(|c| {
        if !matches!(c.kind, Kind::Modified) || !holds_mount(&c.path) {
            return true;
        }
        let prefix = format!("{}/", c.path);
        paths.iter().any(|p| p.starts_with(&prefix))
    });
    Ok(out)
}

/// Tar output with hard links tracked by (device, inode).
struct TarOut<'w> {
    t: tar::Builder<&'w mut dyn Write>,
    links: std::collections::HashMap<(u64, u64), PathBuf>,
}

fn empty_file_header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0o644);
    h
}

impl TarOut<'_> {
    /// One file, directory, link or node (`name` in the open directory `parent`) as `rel`.
    fn present(
        &mut self,
        rel: &Path,
        st: &FileStat,
        parent: RawFd,
        name: &OsStr,
        opaque: bool,
    ) -> std::io::Result<()> {
        let t = &mut self.t;
        let mut h = tar::Header::new_gnu();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid as u64);
        h.set_gid(st.st_gid as u64);
        h.set_mtime(st.st_mtime.max(0) as u64);
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        match kind {
            SFlag::S_IFDIR => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                t.append_data(&mut h, rel, std::io::empty())?;
                if opaque {
                    t.append_data(
                        &mut empty_file_header(),
                        rel.join(".wh..wh..opq"),
                        std::io::empty(),
                    )?;
                }
            }
            SFlag::S_IFREG => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&key) {
                        h.set_entry_type(tar::EntryType::Link);
                        h.set_size(0);
                        return t.append_link(&mut h, rel, first);
                    }
                    self.links.insert(key, rel.to_path_buf());
                }
                let fd = open_at(parent, name, OFlag::O_RDONLY)?;
                let f = std::fs::File::from(fd);
                let len = f.metadata()?.len();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(len);
                // A file still growing is cut at the size we saw.
                t.append_data(&mut h, rel, std::io::Read::take(f, len))?;
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(Some(parent), name)?;
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                t.append_link(&mut h, rel, Path::new(&target))?;
            }
            SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO => {
                h.set_entry_type(match kind {
                    SFlag::S_IFCHR => tar::EntryType::Char,
                    SFlag::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                h.set_device_major(libc::major(st.st_rdev))?;
                h.set_device_minor(libc::minor(st.st_rdev))?;
                h.set_size(0);
                t.append_data(&mut h, rel, std::io::empty())?;
            }
            // Sockets are not carried in archives.
            _ => {}
        }
        Ok(())
    }

    fn entry(&mut self, e: Entry<'_>) -> std::io::Result<()> {
        match e {
            Entry::Whiteout { rel } => {
                let mut wh = OsString::from(".wh.");
                wh.push(rel.file_name().unwrap_or_default());
                self.t.append_data(
                    &mut empty_file_header(),
                    rel.with_file_name(wh),
                    std::io::empty(),
                )
            }
            Entry::Present {
                rel,
                st,
                parent,
                name,
                opaque,
            } => self.present(rel, st, parent, name, opaque),
        }
    }
}

/// Write the container's changes as an uncompressed OCI layer tar.
pub fn write_layer(
    upper: &Path,
    lowers: &[PathBuf],
    mount_points: &[String],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let (u, ls) = open_dirs(upper, lowers)?;
    let w = Walk {
        lowers: &ls,
        mount_points,
    };
    let mut o = TarOut {
        t: tar::Builder::new(out),
        links: Default::default(),
    };
    walk(&w, u.as_raw_fd(), Path::new(""), &mut |e| o.entry(e))?;
    o.t.finish()
}

/// Write `name` in the open directory `parent` — a file, a link, or a directory and all
/// below it — as a plain tar whose top entry is called `top` (`docker cp` out of a
/// container). Nothing is followed: every step is relative to an open directory.
pub fn write_tree(
    parent: RawFd,
    name: &OsStr,
    top: &Path,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let st = lstat_at(parent, name)?;
    let mut o = TarOut {
        t: tar::Builder::new(out),
        links: Default::default(),
    };
    o.present(top, &st, parent, name, false)?;
    if is_dir(&st) {
        let fd = open_at(parent, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        let w = Walk {
            lowers: &[],
            mount_points: &[],
        };
        walk(&w, fd.as_raw_fd(), top, &mut |e| o.entry(e))?;
    }
    o.t.finish()
}

/// `lstat` of `name` in an open directory.
pub fn stat_at(parent: RawFd, name: &OsStr) -> std::io::Result<FileStat> {
    lstat_at(parent, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-diff-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn lists_added_modified_and_deleted() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: whiteouts are device nodes, which need root");
            return;
        }
        let d = tmp("changes");
        let (upper, lower) = (d.join("upper"), d.join("lower"));
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/passwd"), "root").unwrap();
        std::fs::write(lower.join("gone"), "x").unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/passwd"), "root\nme").unwrap();
        std::fs::write(upper.join("new"), "n").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", upper.join("link")).unwrap();
        std::fs::create_dir_all(upper.join("proc")).unwrap();
        std::fs::write(upper.join("hostname"), "").unwrap();
        nix::sys::stat::mknod(
            &upper.join("gone"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o600),
            0,
        )
        .unwrap();
        let stubs = [
            "/proc".to_string(),
            "/hostname".to_string(),
            "/new".to_string(),
        ];
        let c = changes(&upper, std::slice::from_ref(&lower), &stubs).unwrap();
        let got: Vec<(String, Kind)> = c.into_iter().map(|c| (c.path, c.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("/etc".into(), Kind::Modified),
                ("/etc/passwd".into(), Kind::Modified),
                ("/gone".into(), Kind::Deleted),
                ("/link".into(), Kind::Added),
                ("/new".into(), Kind::Added),
            ]
        );
        let mut tar_bytes = Vec::new();
        write_layer(&upper, &[lower], &stubs, &mut tar_bytes).unwrap();
        let mut a = tar::Archive::new(&tar_bytes[..]);
        let mut names = Vec::new();
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let p = e.path().unwrap().display().to_string();
            if p == "link" {
                assert_eq!(
                    e.link_name().unwrap().unwrap().display().to_string(),
                    "/etc/shadow",
                    "a symlink is stored, never followed"
                );
            }
            names.push(p);
        }
        assert_eq!(names, vec!["etc", "etc/passwd", ".wh.gone", "link", "new"]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
