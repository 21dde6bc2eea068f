//! What a container mounts besides the defaults: `Binds` (`-v`), `Mounts` (`--mount`),
//! `--volumes-from`, and the image's and the config's `Volumes`; the volumes that takes,
//! made (and seeded from the image), and removed with the container when anonymous.

use std::collections::BTreeMap;

use berth_manager::oci::MountOpt;
use serde_json::json;

use super::doc::{Config, HostConfig, MountPoint};
use super::{all, find, Error, Result};
use crate::state::State;

/// One mount a container asked for, before it becomes an OCI mount.
#[derive(Clone, Debug, Default)]
pub struct Want {
    /// "bind", "volume" or "tmpfs".
    pub kind: String,
    /// Host path (bind) or volume name ("" for a new anonymous volume).
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// Do not seed a new volume from the image.
    pub nocopy: bool,
    pub tmpfs_options: String,
    /// A bind's propagation ("" for rprivate).
    pub propagation: String,
    /// A bind without its sub-mounts (`BindOptions.NonRecursive`).
    pub non_recursive: bool,
    /// Labels of a volume this mount creates (`VolumeOptions.Labels`).
    pub labels: BTreeMap<String, String>,
    /// A path inside the volume to mount instead of its root (`VolumeOptions.Subpath`).
    pub subpath: String,
}

/// Volume name → ids of the containers that mount it.
pub async fn users(d: &State) -> Result<BTreeMap<String, Vec<String>>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in all(d).await? {
        for mnt in &c.doc.mounts {
            if mnt.r#type == "volume" {
                if let Some(n) = &mnt.name {
                    m.entry(n.clone()).or_default().push(c.id.clone());
                }
            }
        }
    }
    Ok(m)
}

/// `-v SRC:DST[:MODES]`.
fn bind_want(b: &str) -> Result<Want> {
    let parts: Vec<&str> = b.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => {
            return Err(Error::Invalid(format!(
                "invalid volume specification: '{b}'"
            )))
        }
    };
    if !dst.starts_with('/') {
        return Err(Error::Invalid(format!(
            "invalid mount config for type \"bind\": invalid mount path: '{dst}' mount path must be absolute"
        )));
    }
    let modes: Vec<&str> = mode.split(',').filter(|m| !m.is_empty()).collect();
    if let Some(bad) = modes.iter().find(|m| {
        !matches!(
            **m,
            "ro" | "rw"
                | "z"
                | "Z"
                | "nocopy"
                | "private"
                | "rprivate"
                | "shared"
                | "rshared"
                | "slave"
                | "rslave"
        )
    }) {
        return Err(Error::Invalid(format!(
            "invalid mode: {bad} in volume specification '{b}'"
        )));
    }
    let kind = if src.starts_with('/') {
        "bind"
    } else {
        "volume"
    };
    if kind == "volume" && !crate::volumes::valid_name(src) {
        return Err(Error::Invalid(format!(
            "create {src}: \"{src}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    Ok(Want {
        kind: kind.into(),
        source: src.into(),
        target: dst.into(),
        read_only: modes.contains(&"ro"),
        nocopy: modes.contains(&"nocopy"),
        tmpfs_options: String::new(),
        propagation: modes
            .iter()
            .find(|m| m.contains("private") || m.contains("shared") || m.contains("slave"))
            .map(|m| m.to_string())
            .unwrap_or_default(),
        ..Default::default()
    })
}

/// What `--mount`'s nested options ask for, each honoured or refused by name.
#[derive(Default)]
struct SubOptions {
    propagation: String,
    non_recursive: bool,
    create_mountpoint: bool,
    labels: BTreeMap<String, String>,
    subpath: String,
}

fn mount_suboptions(i: usize, m: &super::doc::MountSpec) -> Result<SubOptions> {
    use serde_json::Value;
    let refuse = |field: &str| {
        Err(Error::Invalid(format!(
            "HostConfig.Mounts[{i}].{field} is not supported by Berth"
        )))
    };
    let mut out = SubOptions::default();
    for (k, v) in &m.rest {
        if super::fields::is_zero(v) {
            continue;
        }
        match k.as_str() {
            // Bind mounts on Linux are always consistent: every mode is met.
            "Consistency" => {}
            "BindOptions" => {
                for (bk, bv) in v.as_object().into_iter().flatten() {
                    match (bk.as_str(), bv) {
                        (_, bv) if super::fields::is_zero(bv) => {}
                        ("Propagation", Value::String(p)) => {
                            if !matches!(
                                p.as_str(),
                                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
                            ) {
                                return Err(Error::Invalid(format!(
                                    "HostConfig.Mounts[{i}].BindOptions.Propagation: invalid propagation mode {p:?}"
                                )));
                            }
                            out.propagation = p.clone();
                        }
                        ("NonRecursive", Value::Bool(b)) => out.non_recursive = *b,
                        ("CreateMountpoint", Value::Bool(b)) => out.create_mountpoint = *b,
                        (other, _) => return refuse(&format!("BindOptions.{other}")),
                    }
                }
            }
            _ => return refuse(k),
        }
    }
    if let Some(vo) = &m.volume_options {
        for (vk, vv) in &vo.rest {
            if super::fields::is_zero(vv) {
                continue;
            }
            match vk.as_str() {
                "Labels" => {
                    for (lk, lv) in vv.as_object().into_iter().flatten() {
                        out.labels
                            .insert(lk.clone(), lv.as_str().unwrap_or_default().to_string());
                    }
                }
                "DriverConfig"
                    if vv["Name"]
                        .as_str()
                        .is_none_or(|n| n.is_empty() || n == "local")
                        && super::fields::is_zero(&vv["Options"]) => {}
                // Pinned by a file descriptor at create (see `mount_subpaths`), so a
                // container cannot swap it for a symlink out of the volume.
                "Subpath" => {
                    let sp = vv.as_str().unwrap_or_default();
                    if sp.starts_with('/')
                        || std::path::Path::new(sp)
                            .components()
                            .any(|c| !matches!(c, std::path::Component::Normal(_)))
                    {
                        return Err(Error::Invalid(format!(
                            "HostConfig.Mounts[{i}].VolumeOptions.Subpath {sp:?}: must be a relative path inside the volume, without '.' or '..'"
                        )));
                    }
                    if m.r#type.as_deref().unwrap_or("volume") != "volume" {
                        return Err(Error::Invalid(format!(
                            "HostConfig.Mounts[{i}].VolumeOptions.Subpath: only volume mounts have a subpath"
                        )));
                    }
                    out.subpath = sp.to_string();
                }
                other => return refuse(&format!("VolumeOptions.{other}")),
            }
        }
    }
    if let Some(t) = &m.tmpfs_options {
        if let Some((tk, _)) = t.rest.iter().find(|(_, v)| !super::fields::is_zero(v)) {
            return refuse(&format!("TmpfsOptions.{tk}"));
        }
    }
    Ok(out)
}

/// A shared or slave bind needs its source's mount to propagate: Docker's check.
fn check_propagation(source: &str, propagation: &str) -> Result<()> {
    let need_shared = propagation.contains("shared");
    let need_slave = propagation.contains("slave");
    if !need_shared && !need_slave {
        return Ok(());
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let src = std::path::Path::new(source);
    // The longest mount point that contains the source.
    let best = info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let mp = *f.get(4)?;
            let sep = f.iter().position(|x| *x == "-")?;
            src.starts_with(mp)
                .then(|| (mp.to_string(), f[6..sep].join(" ")))
        })
        .max_by_key(|(mp, _)| mp.len());
    let Some((mp, optional)) = best else {
        return Ok(());
    };
    let shared = optional.contains("shared:");
    let slave = optional.contains("master:");
    if need_shared && !shared {
        return Err(Error::Invalid(format!(
            "path {source} is mounted on {mp} but it is not a shared mount"
        )));
    }
    if need_slave && !shared && !slave {
        return Err(Error::Invalid(format!(
            "path {source} is mounted on {mp} but it is not a shared or slave mount"
        )));
    }
    Ok(())
}

/// Everything a container mounts besides the defaults: `Binds`, `Mounts`,
/// `--volumes-from`, then the image's and the config's `Volumes` not yet covered.
pub async fn wants(
    d: &State,
    cfg: &Config,
    host: &HostConfig,
    image_volumes: &[String],
) -> Result<Vec<Want>> {
    let mut out: Vec<Want> = Vec::new();
    for b in host.binds.iter().flatten() {
        out.push(bind_want(b)?);
    }
    for (i, m) in host.mounts.iter().flatten().enumerate() {
        let kind = m.r#type.clone().unwrap_or_else(|| "volume".into());
        let target = m.target.clone();
        if !target.starts_with('/') {
            return Err(Error::Invalid(format!(
                "invalid mount config for type \"{kind}\": invalid mount path: '{target}' mount path must be absolute"
            )));
        }
        let source = m.source.clone();
        match kind.as_str() {
            "bind" if !source.starts_with('/') => {
                return Err(Error::Invalid(format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute"
                )))
            }
            "bind"
                if !std::path::Path::new(&source).exists()
                    && !mount_suboptions(i, m)?.create_mountpoint =>
            {
                return Err(Error::Invalid(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {source}"
                )))
            }
            "bind" | "volume" | "tmpfs" => {}
            other => {
                return Err(Error::Invalid(format!(
                    "mount type {other:?} is not supported"
                )))
            }
        }
        let sub = mount_suboptions(i, m)?;
        if kind == "bind" && sub.create_mountpoint && !std::path::Path::new(&source).exists() {
            std::fs::create_dir_all(&source).map_err(|e| {
                Error::Invalid(format!("HostConfig.Mounts[{i}]: create {source}: {e}"))
            })?;
        }
        let mut tmpfs_options = Vec::new();
        let tmpfs = m.tmpfs_options.clone().unwrap_or_default();
        if let Some(sz) = tmpfs.size_bytes.filter(|s| *s > 0) {
            tmpfs_options.push(format!("size={sz}"));
        }
        if let Some(md) = tmpfs.mode.filter(|s| *s > 0) {
            tmpfs_options.push(format!("mode={md:o}"));
        }
        out.push(Want {
            kind,
            source,
            target,
            read_only: m.read_only.unwrap_or(false),
            nocopy: m
                .volume_options
                .as_ref()
                .and_then(|v| v.no_copy)
                .unwrap_or(false),
            tmpfs_options: tmpfs_options.join(","),
            propagation: sub.propagation,
            non_recursive: sub.non_recursive,
            labels: sub.labels,
            subpath: sub.subpath,
        });
    }
    for from in host.volumes_from.iter().flatten() {
        let (name, mode) = from.split_once(':').unwrap_or((from, ""));
        let other = find(d, name).await?;
        for m in &other.doc.mounts {
            if out.iter().any(|w| w.target == m.destination) {
                continue;
            }
            out.push(Want {
                source: if m.r#type == "volume" {
                    m.name.clone().unwrap_or_default()
                } else {
                    m.source.clone()
                },
                kind: m.r#type.clone(),
                target: m.destination.clone(),
                read_only: match mode {
                    "ro" => true,
                    "rw" => false,
                    _ => !m.rw,
                },
                nocopy: true,
                subpath: m.subpath.clone().unwrap_or_default(),
                propagation: if m.r#type == "bind" && m.propagation != "rprivate" {
                    m.propagation.clone()
                } else {
                    String::new()
                },
                ..Default::default()
            });
        }
    }
    let mut declared: Vec<String> = image_volumes.to_vec();
    declared.extend(cfg.volumes.iter().flat_map(|v| v.keys().cloned()));
    for t in declared {
        if !t.starts_with('/')
            || out
                .iter()
                .any(|w| w.target.trim_end_matches('/') == t.trim_end_matches('/'))
        {
            continue;
        }
        out.push(Want {
            kind: "volume".into(),
            source: String::new(),
            target: t,
            ..Default::default()
        });
    }
    // HostConfig.VolumeDriver is the driver of the volumes this container makes: only
    // "local" exists (with no volumes to make, it asks for nothing, as in Docker).
    let driver = host
        .rest
        .get("VolumeDriver")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    if !matches!(driver, "" | "local") && out.iter().any(|w| w.kind == "volume") {
        return Err(Error::Invalid(format!(
            "error looking up volume plugin {driver}: plugin {driver:?} not found (Berth has the local volume driver only)"
        )));
    }
    Ok(out)
}

/// What [`realize`] makes: the records for the container ("Mounts" as inspect shows
/// them), the spec's mount options, and (mount point, volume directory) pairs to seed
/// from the image.
pub struct Realized {
    pub records: Vec<MountPoint>,
    pub opts: Vec<MountOpt>,
    pub seeds: Vec<(String, String)>,
}

/// Make the volumes `wants` needs.
pub fn realize(d: &State, id: &str, wants: &[Want]) -> Result<Realized> {
    let mut r = Realized {
        records: Vec::new(),
        opts: Vec::new(),
        seeds: Vec::new(),
    };
    for w in wants {
        match w.kind.as_str() {
            "volume" => {
                let anonymous = w.source.is_empty();
                let name = if anonymous {
                    super::new_id()
                } else {
                    w.source.clone()
                };
                let (v, made) = d.volumes.create(
                    &name,
                    "local",
                    Default::default(),
                    w.labels.clone(),
                    anonymous,
                )?;
                if made {
                    d.events
                        .publish("volume", "create", &v.name, json!({"driver": "local"}));
                }
                // A subpath is never seeded: it is part of a volume that exists already.
                if !w.nocopy && w.subpath.is_empty() {
                    r.seeds.push((w.target.clone(), v.mountpoint.clone()));
                }
                let source = if w.subpath.is_empty() {
                    v.mountpoint.clone()
                } else {
                    subpath_dir(d, id, r.records.len()).display().to_string()
                };
                r.records.push(MountPoint {
                    r#type: "volume".into(),
                    name: Some(v.name.clone()),
                    source: v.mountpoint.clone(),
                    destination: w.target.clone(),
                    driver: Some("local".into()),
                    mode: if w.read_only { "ro" } else { "z" }.into(),
                    rw: !w.read_only,
                    propagation: String::new(),
                    anonymous: Some(anonymous),
                    subpath: (!w.subpath.is_empty()).then(|| w.subpath.clone()),
                });
                r.opts.push(MountOpt {
                    source,
                    destination: w.target.clone(),
                    kind: "bind".into(),
                    read_only: w.read_only,
                    options: vec![],
                });
            }
            "tmpfs" => {
                r.records.push(MountPoint {
                    r#type: "tmpfs".into(),
                    destination: w.target.clone(),
                    rw: !w.read_only,
                    ..Default::default()
                });
                r.opts.push(MountOpt {
                    source: "tmpfs".into(),
                    destination: w.target.clone(),
                    kind: "tmpfs".into(),
                    read_only: w.read_only,
                    options: w
                        .tmpfs_options
                        .split(',')
                        .filter(|o| !o.is_empty())
                        .map(String::from)
                        .collect(),
                });
            }
            _ => {
                check_propagation(&w.source, &w.propagation)?;
                let propagation = if w.propagation.is_empty() {
                    "rprivate".to_string()
                } else {
                    w.propagation.clone()
                };
                r.records.push(MountPoint {
                    r#type: "bind".into(),
                    source: w.source.clone(),
                    destination: w.target.clone(),
                    mode: if w.read_only { "ro" } else { "" }.into(),
                    rw: !w.read_only,
                    propagation: propagation.clone(),
                    ..Default::default()
                });
                let mut options = vec![propagation];
                if w.non_recursive {
                    options.push("bind".into());
                }
                r.opts.push(MountOpt {
                    source: w.source.clone(),
                    destination: w.target.clone(),
                    kind: "bind".into(),
                    read_only: w.read_only,
                    options,
                });
            }
        }
    }
    Ok(r)
}

/// Remove a removed container's anonymous volumes (`rm -v`, `--rm`).
pub async fn remove_anonymous(d: &State, mounts: &[MountPoint]) {
    let used = users(d).await.unwrap_or_default();
    for m in mounts {
        if m.r#type == "volume" && m.anonymous == Some(true) {
            let name = m.name.as_deref().unwrap_or("");
            if !used.contains_key(name) && d.volumes.remove(name, &[]).is_ok() {
                d.events
                    .publish("volume", "destroy", name, json!({"driver": "local"}));
            }
        }
    }
}

/// Where mount `n` of container `id` pins its volume's subpath.
pub fn subpath_dir(d: &State, id: &str, n: usize) -> std::path::PathBuf {
    super::dir(d, id).join("subpaths").join(n.to_string())
}

/// Pin every volume subpath of container `id`: the subpath is opened beneath the volume
/// (`openat2` RESOLVE_BENEATH: no symlink or `..` may leave it) and that very file is
/// bind-mounted under the container's directory, which the spec names as the source. A
/// container that later swaps the subpath for a symlink changes nothing. Idempotent (a
/// start after a reboot mounts what is missing).
pub fn mount_subpaths(d: &State, id: &str, records: &[MountPoint]) -> Result<()> {
    use berth_fstree::open as fo;
    use nix::fcntl::OFlag;
    use std::os::fd::AsRawFd;
    for (n, m) in records.iter().enumerate() {
        let Some(sp) = &m.subpath else { continue };
        let target = subpath_dir(d, id, n);
        if super::namespaces::is_mountpoint(&target) {
            continue;
        }
        let name = m.name.as_deref().unwrap_or_default();
        let bad = |e: String| Error::Invalid(format!("volume {name}: subpath {sp:?}: {e}"));
        let root = fo::open(
            m.source.as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| bad(format!("open the volume {}: {e}", m.source)))?;
        let fd = fo::openat2(
            root.as_raw_fd(),
            std::path::Path::new(sp),
            libc::O_PATH,
            fo::RESOLVE_BENEATH | fo::RESOLVE_NO_MAGICLINKS,
        )
        .map_err(|e| match e {
            nix::errno::Errno::ENOENT => bad("no such file or directory in the volume".into()),
            nix::errno::Errno::EXDEV => bad("it leads out of the volume".into()),
            e => bad(e.to_string()),
        })?;
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| bad(e.to_string()))?;
        let parent = target.parent().expect("subpath dir has a parent");
        std::fs::create_dir_all(parent).map_err(Error::internal)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            std::fs::create_dir_all(&target).map_err(Error::internal)?;
        } else {
            std::fs::File::create(&target).map_err(Error::internal)?;
        }
        let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        nix::mount::mount(
            Some(proc_path.as_str()),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| bad(format!("bind it at {}: {e}", target.display())))?;
    }
    Ok(())
}

/// Undo [`mount_subpaths`] (a removed container, a failed create).
pub fn unmount_subpaths(d: &State, id: &str) {
    let dir = super::dir(d, id).join("subpaths");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if super::namespaces::is_mountpoint(&p) {
            if let Err(err) = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(container_id = %id, "unmount {}: {err}", p.display());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
