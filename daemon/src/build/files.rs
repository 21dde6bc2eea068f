//! COPY/ADD: find the sources (globs, `.dockerignore`, never leaving the source root: every
//! path is opened with RESOLVE_IN_ROOT and walked without following links), checksum them for
//! the cache, and write them into the step's root filesystem through a tar extracted with the
//! layer applier's protections.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::pattern;

pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Read a file inside `root` (no escaping it through links).
pub fn read_in(root: &Path, rel: &str) -> std::io::Result<Vec<u8>> {
    let dir = std::fs::File::open(root)?;
    let fd = berth_fstree::open_in_root(dir.as_raw_fd(), Path::new(rel), libc::O_RDONLY)
        .map_err(std::io::Error::from)?;
    let mut out = Vec::new();
    std::fs::File::from(fd).read_to_end(&mut out)?;
    Ok(out)
}

/// Download `url` into `work` (ADD's remote source). Returns the file.
/// Download `url` into a new file under `work`, streamed, refusing more than `max` bytes
/// (daemon.json `archive-max-size`). A failed download leaves no file behind.
pub async fn download(
    http: &reqwest::Client,
    url: &str,
    work: &Path,
    max: u64,
) -> Result<PathBuf, String> {
    use std::io::Write;
    let mut resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("ADD {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("ADD {url}: {}", resp.status()));
    }
    let too_big = || format!("ADD {url}: larger than {max} bytes (archive-max-size, daemon.json)");
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(too_big());
    }
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let p = work.join(format!("download-{}", crate::images::unique()));
    let res = async {
        let mut f = std::fs::File::create(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let mut got = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("ADD {url}: {e}"))? {
            got += chunk.len() as u64;
            if got > max {
                return Err(too_big());
            }
            f.write_all(&chunk)
                .map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok(())
    }
    .await;
    match res {
        Ok(()) => Ok(p),
        Err(e) => {
            let _ = std::fs::remove_file(&p);
            Err(e)
        }
    }
}

fn url_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or("");
    if name.is_empty() || path.ends_with("//") {
        "index.html".into()
    } else {
        name.to_string()
    }
}

pub enum Kind {
    File,
    Dir,
    Link,
}

pub struct Item {
    /// An O_PATH fd of the source (kept open: the path it came from may not be trusted).
    fd: OwnedFd,
    /// Its name in a directory destination.
    pub name: String,
    /// Its path relative to the source root (for .dockerignore), "" for downloads.
    rel: String,
    pub kind: Kind,
    /// ADD of a local tar archive: extract it instead of copying it.
    pub extract: bool,
}

impl Item {
    /// Where a symlink source points (it is copied as the link it is).
    fn link_target(&self) -> Result<PathBuf, String> {
        nix::fcntl::readlinkat(Some(self.fd.as_raw_fd()), "")
            .map(PathBuf::from)
            .map_err(|e| format!("{}: {e}", self.name))
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

pub struct Plan {
    pub items: Vec<Item>,
    pub checksum: String,
    ignore: pattern::Ignore,
}

/// Does the relative path climb above its root (`../x`, `a/../../x`)?
fn escapes(rel: &str) -> bool {
    let mut depth = 0i32;
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

/// `rel` inside the source `base` as a context path ("" is the context root: `COPY .`,
/// whose entries the `.dockerignore` excludes too — the Dockerfile and .dockerignore
/// themselves when it names them, as dockerd removes them from the context).
fn under(base: &str, rel: &str) -> String {
    if base.is_empty() {
        rel.to_string()
    } else {
        format!("{base}/{rel}")
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Resolve the sources of a COPY/ADD.
pub fn plan(
    root: &Path,
    sources: &[String],
    downloads: &[(String, PathBuf)],
    ignore: &pattern::Ignore,
    is_add: bool,
) -> Result<Plan, String> {
    use sha2::Digest;
    let rootf = if root.as_os_str().is_empty() {
        None
    } else {
        Some(std::fs::File::open(root).map_err(|e| format!("{}: {e}", root.display()))?)
    };
    let mut items = Vec::new();
    for s in sources {
        if let Some((_, file)) = downloads.iter().find(|(u, _)| u == s) {
            let fd = open_path(file)?;
            items.push(Item {
                fd,
                name: url_name(s),
                rel: String::new(),
                kind: Kind::File,
                extract: false,
            });
            continue;
        }
        let rootf = rootf.as_ref().ok_or("no source root")?;
        let raw = s.trim_start_matches('/');
        if escapes(raw) {
            return Err(format!("forbidden path outside the build context: {s}"));
        }
        let rel = pattern::clean(raw);
        let matches: Vec<String> = if has_glob(&rel) {
            let m = glob(rootf, &rel, ignore)?;
            if m.is_empty() {
                return Err(format!("no source files were specified (no match for {s})"));
            }
            m
        } else {
            vec![rel.clone()]
        };
        for m in matches {
            if !m.is_empty() && ignore.excludes(&m) {
                return Err(format!(
                    "COPY failed: file not found in build context or excluded by .dockerignore: stat {m}: file does not exist"
                ));
            }
            let fd = berth_fstree::open_in_root(
                rootf.as_raw_fd(),
                Path::new(if m.is_empty() { "." } else { &m }),
                libc::O_PATH | libc::O_NOFOLLOW,
            )
            .map_err(|_| {
                format!(
                    "COPY failed: file not found in build context or excluded by .dockerignore: stat {}: file does not exist",
                    if m.is_empty() { "." } else { &m }
                )
            })?;
            let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| e.to_string())?;
            let kind = match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => Kind::Dir,
                libc::S_IFLNK => Kind::Link,
                _ => Kind::File,
            };
            let name = m.rsplit('/').next().unwrap_or("").to_string();
            let mut item = Item {
                fd,
                name,
                rel: m,
                kind,
                extract: false,
            };
            if is_add && matches!(item.kind, Kind::File) {
                item.extract = is_archive(&item.path());
            }
            items.push(item);
        }
    }
    // The checksum: names, types, modes and contents (not times), in order.
    let mut h = sha2::Sha256::new();
    for it in &items {
        h.update(format!("item {} {}\n", it.name, it.extract).as_bytes());
        if matches!(it.kind, Kind::Link) {
            h.update(it.link_target()?.as_os_str().as_encoded_bytes());
            continue;
        }
        walk(&it.path(), "", &mut |rel, meta, path| {
            if !rel.is_empty() && ignore.skips(&under(&it.rel, rel), meta.is_dir()) {
                return Ok(false);
            }
            use std::os::unix::fs::MetadataExt;
            h.update(format!("{rel} {:o} {}\n", meta.mode(), meta.len()).as_bytes());
            if meta.file_type().is_symlink() {
                let t = std::fs::read_link(path).map_err(|e| e.to_string())?;
                h.update(t.as_os_str().as_encoded_bytes());
            } else if meta.is_file() {
                let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = f.read(&mut buf).map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
            Ok(true)
        })?;
    }
    Ok(Plan {
        items,
        checksum: format!("{:x}", h.finalize()),
        ignore: ignore.clone(),
    })
}

fn open_path(p: &Path) -> Result<OwnedFd, String> {
    berth_fstree::open::open(p, nix::fcntl::OFlag::O_PATH, nix::sys::stat::Mode::empty())
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// Is the file a tar archive (plain or compressed) ADD should extract?
fn is_archive(p: &Path) -> bool {
    let Ok(f) = std::fs::File::open(p) else {
        return false;
    };
    let Ok(mut r) = berth_fstree::layer::decompress(f) else {
        return false;
    };
    let mut head = vec![0u8; 512];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got == 512 && &head[257..262] == b"ustar"
}

/// Expand a glob pattern relative to `root` (segment by segment, never following links).
fn glob(root: &std::fs::File, pat: &str, ignore: &pattern::Ignore) -> Result<Vec<String>, String> {
    let mut cur = vec![String::new()];
    for seg in pat.split('/').filter(|s| !s.is_empty()) {
        let mut next = Vec::new();
        for base in &cur {
            if !has_glob(seg) {
                next.push(if base.is_empty() {
                    seg.to_string()
                } else {
                    format!("{base}/{seg}")
                });
                continue;
            }
            let Ok(dir) = berth_fstree::open_in_root(
                root.as_raw_fd(),
                Path::new(if base.is_empty() { "." } else { base }),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            ) else {
                continue;
            };
            let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
            let mut names: Vec<String> = std::fs::read_dir(&path)
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| pattern::segment_matches(seg, n))
                .collect();
            names.sort();
            for n in names {
                let full = if base.is_empty() {
                    n
                } else {
                    format!("{base}/{n}")
                };
                if !ignore.excludes(&full) {
                    next.push(full);
                }
            }
        }
        cur = next;
    }
    Ok(cur)
}

/// Visit `path` and, for a directory, everything below it (sorted, links not followed).
/// `f(rel, metadata, path)` returns false to skip an entry (and what it holds).
fn walk(
    path: &Path,
    rel: &str,
    f: &mut dyn FnMut(&str, &std::fs::Metadata, &Path) -> Result<bool, String>,
) -> Result<(), String> {
    // The top is a /proc/self/fd magic link to the source: follow that one (only).
    let meta = if rel.is_empty() {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    }
    .map_err(|e| format!("{rel}: {e}"))?;
    if !f(rel, &meta, path)? {
        return Ok(());
    }
    if meta.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| format!("{rel}: {e}"))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let child_rel = if rel.is_empty() {
                n.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", n.to_string_lossy())
            };
            walk(&path.join(&n), &child_rel, f)?;
        }
    }
    Ok(())
}

/// `user[:group]` → (uid, gid), names looked up in the step's /etc/passwd and /etc/group.
fn owner(root: &Path, spec: &str) -> Result<(u64, u64), String> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = berth_fstree::users::read_in_root(root, "/etc/passwd");
    let group = berth_fstree::users::read_in_root(root, "/etc/group");
    let find = |text: &str, name: &str, field: usize| -> Option<(u64, Option<u64>)> {
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > field && f[0] == name).then(|| {
                (
                    f[2].parse().unwrap_or(0),
                    f.get(3).and_then(|g| g.parse().ok()),
                )
            })
        })
    };
    let (uid, primary) = match u.parse::<u64>() {
        Ok(n) => (n, None),
        Err(_) => {
            let (uid, gid) = find(&passwd, u, 3).ok_or_else(|| {
                format!("unable to convert uid/gid chown string to host mapping: no such user: {u}")
            })?;
            (uid, gid)
        }
    };
    let gid = match g {
        Some(g) => match g.parse::<u64>() {
            Ok(n) => n,
            Err(_) => find(&group, g, 2).map(|(gid, _)| gid).ok_or_else(|| {
                format!(
                    "unable to convert uid/gid chown string to host mapping: no such group: {g}"
                )
            })?,
        },
        None => primary.unwrap_or(uid),
    };
    Ok((uid, gid))
}

/// Create `path` and missing parents inside the root fd (owned by `own`); an fd of it.
pub(crate) fn mkdir_p(
    root: &OwnedFd,
    path: &str,
    own: Option<(u64, u64)>,
) -> Result<OwnedFd, String> {
    let mut cur = String::new();
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        let parent = if cur.is_empty() {
            "/".to_string()
        } else {
            cur.clone()
        };
        cur = format!("{cur}/{comp}");
        match berth_fstree::open_in_root(
            root.as_raw_fd(),
            Path::new(&cur),
            libc::O_PATH | libc::O_DIRECTORY,
        ) {
            Ok(_) => continue,
            Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(format!("{cur}: {e}")),
        }
        let pfd = berth_fstree::open_in_root(
            root.as_raw_fd(),
            Path::new(&parent),
            libc::O_RDONLY | libc::O_DIRECTORY,
        )
        .map_err(|e| format!("{parent}: {e}"))?;
        nix::sys::stat::mkdirat(
            Some(pfd.as_raw_fd()),
            comp,
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        )
        .map_err(|e| format!("mkdir {cur}: {e}"))?;
        if let Some((u, g)) = own {
            nix::unistd::fchownat(
                Some(pfd.as_raw_fd()),
                comp,
                Some(nix::unistd::Uid::from_raw(u as u32)),
                Some(nix::unistd::Gid::from_raw(g as u32)),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| format!("chown {cur}: {e}"))?;
        }
    }
    berth_fstree::open_in_root(
        root.as_raw_fd(),
        Path::new(if path.is_empty() { "/" } else { path }),
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .map_err(|e| format!("{path}: not a directory ({e})"))
}

/// Write the planned sources to `dest` inside `root`.
pub fn write(
    root: &Path,
    plan: &Plan,
    dest: &str,
    dest_is_dir: bool,
    chown: Option<&str>,
    chmod: Option<u32>,
) -> Result<(), String> {
    let own = chown.map(|c| owner(root, c)).transpose()?;
    let rootfd: OwnedFd = std::fs::File::open(root).map_err(|e| e.to_string())?.into();
    let dest = pattern::clean(dest);
    let dir_mode = dest_is_dir || plan.items.len() > 1;
    if plan.items.len() > 1 && !dest_is_dir {
        return Err(format!(
            "When using COPY with more than one source file, the destination must be a directory and end with a /: /{dest}"
        ));
    }
    // Where each item goes: (directory inside the root, name there or None for "contents").
    let existing_dir = berth_fstree::open_in_root(
        rootfd.as_raw_fd(),
        Path::new(&format!("/{dest}")),
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .is_ok();
    for it in &plan.items {
        let (dir, name): (String, Option<String>) = match it.kind {
            Kind::Dir => (dest.clone(), None),
            _ if it.extract => (dest.clone(), None),
            _ if dir_mode || existing_dir => (dest.clone(), Some(it.name.clone())),
            _ => {
                let (p, n) = dest.rsplit_once('/').unwrap_or(("", dest.as_str()));
                if n.is_empty() {
                    return Err("COPY: empty destination".into());
                }
                (p.to_string(), Some(n.to_string()))
            }
        };
        let dirfd = mkdir_p(&rootfd, &dir, own)?;
        let target = PathBuf::from(format!("/proc/self/fd/{}", dirfd.as_raw_fd()));
        if it.extract {
            let f = std::fs::File::open(it.path()).map_err(|e| e.to_string())?;
            let r = berth_fstree::layer::decompress(f).map_err(|e| e.to_string())?;
            berth_fstree::layer::extract(r, &target, &Default::default())
                .map_err(|e| format!("ADD {}: {e}", it.name))?;
            continue;
        }
        let tar_path = root.with_extension(format!("copy-{}.tar", crate::images::unique()));
        let r = (|| -> Result<(), String> {
            let f = std::fs::File::create(&tar_path).map_err(|e| e.to_string())?;
            let mut b = tar::Builder::new(std::io::BufWriter::new(f));
            b.follow_symlinks(false);
            if matches!(it.kind, Kind::Link) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                let (u, g) = own.unwrap_or((0, 0));
                h.set_uid(u);
                h.set_gid(g);
                let entry = name.clone().unwrap_or_else(|| it.name.clone());
                b.append_link(&mut h, &entry, it.link_target()?)
                    .map_err(|e| format!("{entry}: {e}"))?;
            } else {
                walk(&it.path(), "", &mut |rel, meta, path| {
                    if !rel.is_empty() && plan.ignore.skips(&under(&it.rel, rel), meta.is_dir()) {
                        return Ok(false);
                    }
                    let entry = match (&name, rel.is_empty()) {
                        (Some(n), true) => n.clone(),
                        (Some(n), false) => format!("{n}/{rel}"),
                        (None, true) => return Ok(true), // the directory itself: its contents go in
                        (None, false) => rel.to_string(),
                    };
                    add_entry(&mut b, &entry, meta, path, own, chmod)?;
                    Ok(true)
                })?;
            }
            b.into_inner()
                .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
                .map_err(|e| e.to_string())?;
            let f = std::fs::File::open(&tar_path).map_err(|e| e.to_string())?;
            berth_fstree::layer::extract(f, &target, &Default::default())
                .map(|_| ())
                .map_err(|e| format!("copy {} to /{dir}: {e}", it.name))
        })();
        let _ = std::fs::remove_file(&tar_path);
        r?;
    }
    Ok(())
}

fn add_entry(
    b: &mut tar::Builder<std::io::BufWriter<std::fs::File>>,
    name: &str,
    meta: &std::fs::Metadata,
    path: &Path,
    own: Option<(u64, u64)>,
    chmod: Option<u32>,
) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let mut h = tar::Header::new_gnu();
    h.set_metadata(meta);
    let (u, g) = own.unwrap_or((0, 0));
    h.set_uid(u);
    h.set_gid(g);
    h.set_username("").ok();
    h.set_groupname("").ok();
    h.set_mtime(meta.mtime().max(0) as u64);
    let perm = chmod.unwrap_or(meta.mode() & 0o7777);
    h.set_mode(perm);
    let e = |x: std::io::Error| format!("{name}: {x}");
    if meta.file_type().is_symlink() {
        let t = std::fs::read_link(path).map_err(e)?;
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, name, &t).map_err(e)
    } else if meta.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        b.append_data(&mut h, format!("{name}/"), std::io::empty())
            .map_err(e)
    } else if meta.is_file() {
        let f = std::fs::File::open(path).map_err(e)?;
        b.append_data(&mut h, name, f).map_err(e)
    } else {
        // Devices, fifos, sockets: not copied (Docker's context cannot hold them either).
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_names() {
        assert_eq!(url_name("http://127.0.0.1:8/a/b.tar.gz?x=1"), "b.tar.gz");
        assert_eq!(url_name("http://127.0.0.1:8/"), "index.html");
    }
}
