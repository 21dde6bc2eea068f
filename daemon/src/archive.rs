//! `save` and `load`: image archives that both Docker and OCI tools read. A saved archive is
//! an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) that also carries
//! Docker's `manifest.json` and `repositories`, as Docker 25 writes them. `load` takes that,
//! a plain OCI layout, or the older Docker archive (`<id>/layer.tar`, `<config>.json`).
//!
//! Archives are untrusted: entries are unpacked into a fresh directory only if they are
//! regular files or directories with clean relative paths (no `..`, no absolute paths, no
//! links); every blob is verified against its digest by the content store.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_manager::images::manifest::{self, Manifest};
use berth_manager::images::Descriptor;
use berth_proto::manager as pb;
use sha2::{Digest, Sha256};

use crate::images::{Error, Images};
use crate::manager::Mgr;
use crate::reference::Reference;

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |err| Error::Io {
        what,
        path: path.display().to_string(),
        err,
    }
}

/// Write `names` (references or IDs) to `out` as one archive.
pub async fn save(images: &Images, names: &[String], out: &Path) -> Result<(), Error> {
    let mut blobs: Vec<Descriptor> = Vec::new();
    let mut index = Vec::new();
    let mut docker = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for n in names {
        let r = images.resolve(n).await?;
        let m_bytes = images.mgr.read(&r.manifest_digest).await?;
        let mdesc = Descriptor {
            media_type: manifest::sniff(&m_bytes),
            digest: r.manifest_digest.clone(),
            size: m_bytes.len() as u64,
        };
        blobs.push(mdesc.clone());
        blobs.push(r.manifest.config.clone());
        blobs.extend(r.manifest.layers.iter().cloned());
        let mut tags = Vec::new();
        if let Ok(rf) = Reference::parse(&r.record.name) {
            if !r.record.name.starts_with("sha256:") && rf.tag.is_some() {
                tags.push(rf.familiar());
                let top = r
                    .manifest
                    .layers
                    .last()
                    .map(|l| hex(&l.digest))
                    .unwrap_or_default();
                repositories
                    .entry(rf.familiar_repository())
                    .or_default()
                    .insert(rf.tag.clone().unwrap_or_default(), top);
                index.push(serde_json::json!({
                    "mediaType": mdesc.media_type, "digest": mdesc.digest, "size": mdesc.size,
                    "annotations": {
                        "io.containerd.image.name": rf.to_string(),
                        "org.opencontainers.image.ref.name": rf.tag.clone().unwrap_or_default(),
                    },
                }));
            }
        }
        if tags.is_empty() {
            index.push(serde_json::json!({
                "mediaType": mdesc.media_type, "digest": mdesc.digest, "size": mdesc.size,
            }));
        }
        docker.push(serde_json::json!({
            "Config": format!("blobs/sha256/{}", hex(&r.manifest.config.digest)),
            "RepoTags": tags,
            "Layers": r.manifest.layers.iter().map(|l| format!("blobs/sha256/{}", hex(&l.digest))).collect::<Vec<_>>(),
        }));
    }
    let f = std::fs::File::create(out).map_err(io("create", out))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(f));
    let add = |tar: &mut tar::Builder<_>, name: &str, data: &[u8]| -> Result<(), Error> {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, data)
            .map_err(io("write", out))
    };
    add(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut seen = std::collections::HashSet::new();
    for b in blobs {
        if !seen.insert(b.digest.clone()) {
            continue;
        }
        // Blobs are streamed from the store, not held in memory.
        let path = format!("blobs/sha256/{}", hex(&b.digest));
        let mut h = tar::Header::new_ustar();
        h.set_size(b.size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        let data = images.mgr.read(&b.digest).await?;
        if data.len() as u64 != b.size {
            return Err(Error::Content {
                digest: b.digest.clone(),
                reason: format!("store has {} bytes, descriptor says {}", data.len(), b.size),
            });
        }
        tar.append_data(&mut h, &path, &data[..])
            .map_err(io("write", out))?;
    }
    let idx = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": index,
    });
    add(&mut tar, "index.json", idx.to_string().as_bytes())?;
    add(
        &mut tar,
        "manifest.json",
        serde_json::Value::from(docker).to_string().as_bytes(),
    )?;
    add(
        &mut tar,
        "repositories",
        serde_json::to_string(&repositories)
            .expect("json")
            .as_bytes(),
    )?;
    tar.into_inner()
        .map_err(io("write", out))?
        .flush()
        .map_err(io("write", out))?;
    Ok(())
}

fn hex(d: &str) -> String {
    d.trim_start_matches("sha256:").to_string()
}

/// Unpack an archive's regular files into `dir`, refusing anything else, and more than
/// `limits` allow (uncompressed bytes, entries).
fn unpack_archive(
    archive: &Path,
    dir: &Path,
    limits: &berth_fstree::layer::Limits,
) -> Result<(), Error> {
    let f = std::fs::File::open(archive).map_err(io("open", archive))?;
    let r = berth_fstree::layer::decompress(f).map_err(io("read", archive))?;
    let mut t = tar::Archive::new(r);
    // Docker's and podman's archives link duplicate layers: (link, target), both inside.
    let mut links: Vec<(PathBuf, PathBuf, String)> = Vec::new();
    // A body that is not a tar archive is the client's mistake (400), as in dockerd.
    let not_tar =
        |e: std::io::Error| Error::Invalid(format!("invalid archive (not a tar file): {e}"));
    let (mut entries, mut bytes) = (0u64, 0u64);
    let too_big = || {
        Error::Invalid(format!(
            "archive {}: larger than {} bytes uncompressed (daemon.json archive-max-size)",
            archive.display(),
            limits.max_bytes
        ))
    };
    for e in t.entries().map_err(not_tar)? {
        let mut e = e.map_err(not_tar)?;
        entries += 1;
        if entries > limits.max_entries {
            return Err(Error::Invalid(format!(
                "archive {}: more than {} entries (daemon.json archive-max-entries)",
                archive.display(),
                limits.max_entries
            )));
        }
        bytes = bytes.saturating_add(e.header().entry_size().unwrap_or(0).saturating_add(512));
        if bytes > limits.max_bytes {
            return Err(too_big());
        }
        let raw = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let bad = |reason: String| {
            Error::Invalid(format!(
                "archive {}: entry {shown:?}: {reason}",
                archive.display()
            ))
        };
        let Some(rel) = berth_fstree::layer::clean(&raw).map_err(bad)? else {
            continue;
        };
        let dst = dir.join(&rel);
        match e.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&dst).map_err(io("create", &dst))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(p) = dst.parent() {
                    std::fs::create_dir_all(p).map_err(io("create", p))?;
                }
                // create_new: an entry never replaces (or writes through) anything.
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&dst)
                    .map_err(io("create", &dst))?;
                std::io::copy(&mut e, &mut out).map_err(io("write", &dst))?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                let base = if e.header().entry_type() == tar::EntryType::Symlink {
                    rel.parent().map(Path::to_path_buf).unwrap_or_default()
                } else {
                    PathBuf::new()
                };
                let resolved = inside(&base, &target).ok_or_else(|| {
                    bad(format!(
                        "link to {:?} leaves the archive",
                        String::from_utf8_lossy(&target)
                    ))
                })?;
                links.push((rel, resolved, shown));
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => return Err(bad(format!("{other:?} entries are not allowed"))),
        }
    }
    // Links become hard links to regular files already unpacked (never to anything outside).
    for (link, target, shown) in links {
        let src = dir.join(&target);
        let meta = std::fs::symlink_metadata(&src);
        if !meta.map(|m| m.is_file()).unwrap_or(false) {
            return Err(Error::Invalid(format!(
                "archive {}: entry {shown:?}: links to {} which is not a file in the archive",
                archive.display(),
                target.display()
            )));
        }
        let dst = dir.join(&link);
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p).map_err(io("create", p))?;
        }
        std::fs::hard_link(&src, &dst).map_err(io("link", &dst))?;
    }
    Ok(())
}

/// `target` (relative to `base`) as a path inside the archive, or None if it leaves it.
fn inside(base: &Path, target: &[u8]) -> Option<PathBuf> {
    use std::path::Component;
    let t = Path::new(std::ffi::OsStr::from_bytes(target));
    if t.is_absolute() {
        return None;
    }
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    for c in base.join(t).components() {
        match c {
            Component::Normal(n) => out.push(n.to_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            _ => return None,
        }
    }
    (!out.is_empty()).then(|| out.iter().collect())
}

fn sha256_file(p: &Path) -> Result<(String, u64), Error> {
    let mut f = std::fs::File::open(p).map_err(io("open", p))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io("read", p))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((format!("sha256:{:x}", h.finalize()), n))
}

/// Stream a file into the content store as `digest`.
async fn put_file(mgr: &Mgr, p: &Path, digest: &str, size: u64, lease: &str) -> Result<(), Error> {
    if mgr.has(digest).await? {
        return Ok(());
    }
    let (tx, writer) = mgr.writer();
    let path = p.to_path_buf();
    let (reference, lease, digest_s) = (
        format!("{lease}/{digest}"),
        lease.to_string(),
        digest.to_string(),
    );
    let reader = tokio::task::spawn_blocking(move || -> Result<(), Error> {
        let mut f = std::fs::File::open(&path).map_err(io("open", &path))?;
        let mut first = true;
        loop {
            let mut buf = vec![0u8; 1 << 20];
            let k = f.read(&mut buf).map_err(io("read", &path))?;
            buf.truncate(k);
            let last = k == 0;
            let msg = pb::WriteContentRequest {
                r#ref: if first {
                    reference.clone()
                } else {
                    String::new()
                },
                lease: if first { lease.clone() } else { String::new() },
                data: buf,
                commit: last,
                expected: if last {
                    digest_s.clone()
                } else {
                    String::new()
                },
                size: if last { size } else { 0 },
                ..Default::default()
            };
            first = false;
            if tx.blocking_send(msg).is_err() || last {
                return Ok(());
            }
        }
    });
    reader
        .await
        .map_err(|e| Error::Invalid(format!("load worker: {e}")))??;
    writer
        .await
        .map_err(|e| Error::Invalid(format!("content writer: {e}")))??;
    Ok(())
}

/// Load an archive; returns Docker's lines ("Loaded image: …" / "Loaded image ID: …").
/// The archive is unpacked in a new 0700 directory of an unpredictable name under
/// `work_root` (berthd's `DATA_ROOT/tmp`, swept at start), never a shared /tmp path.
pub async fn load(images: &Images, archive: &Path, work_root: &Path) -> Result<Vec<String>, Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::create_dir_all(work_root).map_err(io("create", work_root))?;
    let tmp = work_root.join(format!("load-{}", crate::images::unique()));
    // (create, not create_all: an existing path, a planted link included, is an error.)
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(io("create", &tmp))?;
    let lease = format!("load-{}-{}", std::process::id(), crate::images::unique());
    images.mgr.lease(&lease, 3600).await?;
    let res = async {
        let (a, t) = (archive.to_path_buf(), tmp.clone());
        let limits = images.reg.cfg.archive_limits().unwrap_or_default();
        tokio::task::spawn_blocking(move || unpack_archive(&a, &t, &limits))
            .await
            .map_err(|e| Error::Invalid(format!("load worker: {e}")))??;
        load_dir(images, &tmp, &lease).await
    }
    .await;
    images.mgr.drop_lease(&lease).await;
    let _ = std::fs::remove_dir_all(&tmp);
    res
}

async fn load_dir(images: &Images, dir: &Path, lease: &str) -> Result<Vec<String>, Error> {
    let mgr = &images.mgr;
    let mut out = Vec::new();
    let docker_manifest = std::fs::read(dir.join("manifest.json")).ok();
    let blob_dir = dir.join("blobs/sha256");
    if blob_dir.is_dir() {
        // OCI layout (possibly with Docker's manifest.json beside it).
        for e in std::fs::read_dir(&blob_dir)
            .map_err(io("list", &blob_dir))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let digest = format!("sha256:{name}");
            berth_manager::images::content::parse_digest(&digest).map_err(|_| {
                Error::Invalid(format!(
                    "archive blob {name:?} is not named by a sha256 digest"
                ))
            })?;
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            put_file(mgr, &e.path(), &digest, size, lease).await?;
        }
    }
    let index: Option<manifest::Index> = std::fs::read(dir.join("index.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let (Some(index), true) = (index, blob_dir.is_dir()) {
        // Names: the index's annotations, else Docker's RepoTags for the same config.
        let repo_tags: BTreeMap<String, Vec<String>> = docker_manifest
            .as_deref()
            .and_then(|b| serde_json::from_slice::<Vec<serde_json::Value>>(b).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let cfg = format!(
                    "sha256:{}",
                    m["Config"]
                        .as_str()
                        .unwrap_or("")
                        .rsplit('/')
                        .next()
                        .unwrap_or("")
                        .trim_end_matches(".json")
                );
                let tags = repo_tags(&m);
                (cfg, tags)
            })
            .collect();
        for e in index.manifests {
            let desc = pb::Descriptor {
                media_type: if e.media_type.is_empty() {
                    manifest::OCI_MANIFEST.into()
                } else {
                    e.media_type.clone()
                },
                digest: e.digest.clone(),
                size: e.size,
            };
            let mut names: Vec<String> = Vec::new();
            if let Some(n) = e.annotations.get("io.containerd.image.name") {
                names.push(n.clone());
            } else if let Some(n) = e.annotations.get("org.opencontainers.image.ref.name") {
                if Reference::parse(n).is_ok() && n.contains(':') {
                    names.push(n.clone());
                }
            }
            let bytes = mgr.read(&e.digest).await?;
            let cfg_digest = if manifest::is_manifest(&desc.media_type) {
                manifest::parse_manifest(&bytes, &e.digest)
                    .map(|m| m.config.digest)
                    .unwrap_or_default()
            } else {
                String::new()
            };
            if names.is_empty() {
                if let Some(tags) = repo_tags.get(&cfg_digest) {
                    names.extend(tags.iter().cloned());
                }
            }
            out.extend(record(images, names, desc, &cfg_digest, lease).await?);
        }
        return Ok(out);
    }
    let Some(dm) = docker_manifest else {
        return Err(Error::Invalid(
            "archive has neither index.json nor manifest.json".into(),
        ));
    };
    // The older Docker archive: <config>.json, <id>/layer.tar.
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&dm)
        .map_err(|e| Error::Invalid(format!("archive manifest.json: {e}")))?;
    for m in entries {
        let cfg_rel = m["Config"].as_str().unwrap_or("");
        let cfg_path = safe_join(dir, cfg_rel)?;
        let (cfg_digest, cfg_size) = sha256_file(&cfg_path)?;
        put_file(mgr, &cfg_path, &cfg_digest, cfg_size, lease).await?;
        let mut layers = Vec::new();
        for l in m["Layers"].as_array().cloned().unwrap_or_default() {
            let p = safe_join(dir, l.as_str().unwrap_or(""))?;
            let (d, size) = sha256_file(&p)?;
            let mut head = [0u8; 4];
            let n = std::fs::File::open(&p)
                .and_then(|mut f| f.read(&mut head))
                .unwrap_or(0);
            let mt = if n >= 2 && head[..2] == [0x1f, 0x8b] {
                manifest::OCI_LAYER_GZIP
            } else if n >= 4 && head == [0x28, 0xb5, 0x2f, 0xfd] {
                manifest::OCI_LAYER_ZSTD
            } else {
                manifest::OCI_LAYER
            };
            put_file(mgr, &p, &d, size, lease).await?;
            layers.push(Descriptor {
                media_type: mt.into(),
                digest: d,
                size,
            });
        }
        let man = Manifest {
            schema_version: 2,
            media_type: manifest::OCI_MANIFEST.into(),
            config: Descriptor {
                media_type: manifest::OCI_CONFIG.into(),
                digest: cfg_digest.clone(),
                size: cfg_size,
            },
            layers,
            annotations: Default::default(),
        };
        let bytes = serde_json::to_vec(&man).expect("json");
        let digest = mgr.put(bytes.clone(), lease).await?;
        let names = repo_tags(&m);
        let desc = pb::Descriptor {
            media_type: manifest::OCI_MANIFEST.into(),
            digest,
            size: bytes.len() as u64,
        };
        out.extend(record(images, names, desc, &cfg_digest, lease).await?);
    }
    Ok(out)
}

/// An entry's `RepoTags` in Docker's manifest.json.
fn repo_tags(m: &serde_json::Value) -> Vec<String> {
    m["RepoTags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn safe_join(dir: &Path, rel: &str) -> Result<PathBuf, Error> {
    match berth_fstree::layer::clean(rel.as_bytes()) {
        Ok(Some(p)) => Ok(dir.join(p)),
        _ => Err(Error::Invalid(format!(
            "archive manifest.json names {rel:?}: not a path inside the archive"
        ))),
    }
}

/// Record `desc` under each name (or, untagged, under its ID), then unpack.
async fn record(
    images: &Images,
    names: Vec<String>,
    desc: pb::Descriptor,
    cfg_digest: &str,
    lease: &str,
) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut full = Vec::new();
    for n in &names {
        let r = Reference::parse(n)?;
        full.push((r.to_string(), format!("Loaded image: {}", r.familiar())));
    }
    if full.is_empty() {
        full.push((
            cfg_digest.to_string(),
            format!("Loaded image ID: {cfg_digest}"),
        ));
    }
    for (name, line) in full {
        images
            .set_name(pb::Image {
                name: name.clone(),
                target: Some(desc.clone()),
                ..Default::default()
            })
            .await?;
        // Another platform's image is kept, not unpacked.
        let runnable = images
            .resolve_record(&pb::Image {
                name: name.clone(),
                target: Some(desc.clone()),
                ..Default::default()
            })
            .await
            .map(|r| {
                r.config.os == images.platform.os
                    && r.config.architecture == images.platform.architecture
            })
            .unwrap_or(false);
        if runnable {
            images.unpack_or_forget(&name, lease).await?;
        }
        out.push(line);
    }
    Ok(out)
}

/// An archive error, naming the daemon.json setting when a bound was hit.
pub fn limit_hint(e: berth_fstree::layer::Error) -> String {
    use berth_fstree::layer::Error as E;
    match e {
        E::TooLarge { .. } => format!("{e} (daemon.json archive-max-size)"),
        E::TooManyEntries { .. } => format!("{e} (daemon.json archive-max-entries)"),
        e => format!("{:#}", anyhow::Error::new(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_with_escaping_or_linked_entries_are_refused() {
        let dir = std::env::temp_dir().join(format!("berth-archive-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("out")).unwrap();
        for (tag, name, kind) in [
            ("dotdot", "../escape", b'0'),
            ("abs", "/tmp/escape", b'0'),
            ("symlink", "blobs", b'2'),
        ] {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..108].copy_from_slice(b"0000644\0");
            h[124..136].copy_from_slice(b"00000000000\0");
            h[136..148].copy_from_slice(b"00000000000\0");
            h[148..156].copy_from_slice(b"        ");
            h[156] = kind;
            if kind == b'2' {
                h[157..161].copy_from_slice(b"/etc");
            }
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            let sum: u32 = h.iter().map(|b| *b as u32).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            let mut t = h.to_vec();
            t.extend_from_slice(&[0u8; 1024]);
            let a = dir.join(format!("{tag}.tar"));
            std::fs::write(&a, t).unwrap();
            let e = unpack_archive(&a, &dir.join("out"), &Default::default()).unwrap_err();
            assert!(e.to_string().contains("entry"), "{tag}: {e}");
            let _ = std::fs::remove_dir_all(dir.join("out"));
            std::fs::create_dir_all(dir.join("out")).unwrap();
            assert_eq!(
                std::fs::read_dir(dir.join("out")).unwrap().count(),
                0,
                "{tag}"
            );
        }
        assert!(!Path::new("/tmp/escape").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
