//! Resolve a Docker `User` string (`name`, `uid`, `name:group`, `uid:gid`…) against the
//! container's `/etc/passwd` and `/etc/group`, read inside the rootfs with every symlink
//! resolved as if the rootfs were `/` (a hostile image cannot point us at the host's files).

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;

/// The resolved identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: those listing the user by name in /etc/group.
    pub additional_gids: Vec<u32>,
    /// The home directory, for HOME (default "/").
    pub home: String,
}

struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Read a file inside `rootfs`; missing → empty.
pub fn read_in_root(rootfs: &Path, path: &str) -> String {
    let Ok(root) = std::fs::File::open(rootfs) else {
        return String::new();
    };
    match crate::open::open_in_root(root.as_raw_fd(), Path::new(path), libc::O_RDONLY) {
        Ok(fd) => {
            let mut s = String::new();
            // Bounded: a passwd file larger than 4 MiB is not one we want to parse.
            let _ = std::fs::File::from(fd).take(4 << 20).read_to_string(&mut s);
            s
        }
        Err(_) => String::new(),
    }
}

fn parse_passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 || l.starts_with('#') {
                return None;
            }
            Some(Passwd {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || l.starts_with('#') {
                return None;
            }
            Some(Group {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// A group (`--group-add`): a number, or a name in the rootfs's group text.
pub fn group_id(name: &str, group: &str) -> Result<u32, String> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    parse_group(group)
        .iter()
        .find(|g| g.name == name)
        .map(|g| g.gid)
        .ok_or_else(|| format!("unable to find group {name}: no matching entries in group file"))
}

/// Resolve `user` ("" means root) with the rootfs's passwd/group texts.
pub fn resolve(user: &str, passwd: &str, group: &str) -> Result<Identity, String> {
    let users = parse_passwd(passwd);
    let groups = parse_group(group);
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = users.iter().find(|p| p.name == u).or_else(|| {
        u.parse::<u32>()
            .ok()
            .and_then(|n| users.iter().find(|p| p.uid == n))
    });
    let (uid, mut gid, name, home) = match (entry, u.parse::<u32>()) {
        (Some(p), _) => (p.uid, p.gid, Some(p.name.clone()), p.home.clone()),
        (None, Ok(n)) => (n, 0, None, "/".to_string()),
        (None, Err(_)) => {
            return Err(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        }
    };
    if let Some(g) = g {
        gid = match groups.iter().find(|x| x.name == g) {
            Some(x) => x.gid,
            None => g.parse().map_err(|_| {
                format!("unable to find group {g}: no matching entries in group file")
            })?,
        };
    }
    let mut additional_gids: Vec<u32> = match &name {
        Some(n) if g.is_none() => groups
            .iter()
            .filter(|x| x.members.iter().any(|m| m == n) && x.gid != gid)
            .map(|x| x.gid)
            .collect(),
        _ => Vec::new(),
    };
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(Identity {
        uid,
        gid,
        additional_gids,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nweb:x:1000:1000::/home/web:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nwheel:x:10:web,other\nweb:x:1000:\naudio:x:29:web\nnogroup:x:65534:\n";

    #[test]
    fn names_numbers_and_groups() {
        let r = resolve("", PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        let w = resolve("web", PASSWD, GROUP).unwrap();
        assert_eq!((w.uid, w.gid), (1000, 1000));
        assert_eq!(w.additional_gids, vec![10, 29]);
        assert_eq!(w.home, "/home/web");
        let n = resolve("1000:audio", PASSWD, GROUP).unwrap();
        assert_eq!((n.uid, n.gid), (1000, 29));
        assert!(n.additional_gids.is_empty());
        let raw = resolve("4242:4343", PASSWD, GROUP).unwrap();
        assert_eq!((raw.uid, raw.gid, raw.home.as_str()), (4242, 4343, "/"));
        assert!(resolve("ghost", PASSWD, GROUP)
            .unwrap_err()
            .contains("unable to find user ghost"));
        assert!(resolve("web:ghosts", PASSWD, GROUP)
            .unwrap_err()
            .contains("unable to find group ghosts"));
    }

    #[test]
    fn symlinked_passwd_cannot_escape_the_rootfs() {
        let d = std::env::temp_dir().join(format!("berth-users-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("etc")).unwrap();
        std::fs::create_dir_all(d.join("host")).unwrap();
        std::fs::write(d.join("host/passwd"), "evil:x:0:0::/:/bin/sh\n").unwrap();
        // An absolute symlink resolves inside the root, so it finds no file here.
        std::os::unix::fs::symlink("/../../../../etc/hostname", d.join("etc/passwd")).unwrap();
        let text = read_in_root(&d, "/etc/passwd");
        assert_eq!(text, "", "must not read the host's file");
        std::fs::remove_dir_all(d).unwrap();
    }
}
