//! Import and commit: a root filesystem tarball, or a base image plus a new layer, made
//! into an image in the content store.

use berth_manager::images::manifest::{self, Manifest, Platform};
use berth_manager::images::Descriptor;
use berth_proto::manager as pb;
use sha2::{Digest, Sha256};

use crate::clock::now_rfc3339;
use crate::manager::Mgr;
use crate::reference::Reference;

use super::*;

impl Images {
    /// Import a root filesystem tarball (plain or gzip) as a one-layer image named `name`
    /// (None: only its ID). `cmd` becomes the image's Cmd.
    pub async fn import(
        &self,
        tarball: &std::path::Path,
        name: Option<&str>,
        cmd: Vec<String>,
        platform: Option<Platform>,
    ) -> Result<Resolved, Error> {
        let now = now_rfc3339();
        self.create_image(NewImage {
            base: None,
            layer: Some(tarball),
            run: manifest::RunConfig {
                env: Some(vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ]),
                cmd: (!cmd.is_empty()).then_some(cmd),
                ..Default::default()
            },
            history: manifest::History {
                created: now,
                created_by: "berth import".into(),
                comment: "Imported from tarball".into(),
                ..Default::default()
            },
            author: String::new(),
            target: name,
            platform,
        })
        .await
    }

    /// Make an image of `base`'s layers (none for an import) and one more read from a tar
    /// file (plain or compressed), with `run` as its configuration; name it `target` (None:
    /// only its ID) and unpack it.
    pub async fn create_image(&self, n: NewImage<'_>) -> Result<Resolved, Error> {
        let target = match n.target {
            Some(t) => Some(Reference::parse(t)?),
            None => None,
        };
        let lease = format!("image-{}-{}", std::process::id(), unique());
        self.mgr.lease(&lease, 3600).await?;
        let res = self.create_leased(n, target.as_ref(), &lease).await;
        self.mgr.drop_lease(&lease).await;
        res
    }

    pub(super) async fn create_leased(
        &self,
        n: NewImage<'_>,
        target: Option<&Reference>,
        lease: &str,
    ) -> Result<Resolved, Error> {
        let p = n.platform.clone().unwrap_or_else(|| self.platform.clone());
        let (mut layers, mut diff_ids, mut history) = match n.base {
            Some(b) => (
                b.manifest.layers.clone(),
                b.config.rootfs.diff_ids.clone(),
                b.config.history.clone(),
            ),
            None => Default::default(),
        };
        let mut hist = n.history;
        match n.layer {
            Some(path) => {
                let (layer, diff_id) = self.store_layer(path, lease).await?;
                layers.push(layer);
                diff_ids.push(diff_id);
            }
            // A configuration-only step (ENV, CMD, … in a build).
            None => hist.empty_layer = true,
        }
        let created = hist.created.clone();
        history.push(hist);
        self.finish_image(
            p,
            n.author,
            n.run,
            (created, layers, diff_ids, history),
            target,
            lease,
        )
        .await
    }

    /// Store a layer tar (plain or compressed) as a gzip blob: (descriptor, diff id).
    /// The tar is read once, on a blocking thread, checked against the archive limits
    /// (daemon.json `archive-max-size`, `archive-max-entries`) and compressed straight into
    /// a streamed ingest: no copy of the layer is held in memory.
    pub(super) async fn store_layer(
        &self,
        layer: &std::path::Path,
        lease: &str,
    ) -> Result<(Descriptor, String), Error> {
        let path = layer.to_path_buf();
        let limits = self.reg.cfg.archive_limits().unwrap_or_default();
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::WriteContentRequest>(4);
        let first = pb::WriteContentRequest {
            r#ref: format!("{lease}/layer-{}", unique()),
            lease: lease.to_string(),
            ..Default::default()
        };
        let worker = tokio::task::spawn_blocking(move || compress_layer(&path, limits, first, tx));
        let sent = self
            .mgr
            .content
            .clone()
            .write(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await;
        // The worker's error (a limit, a corrupt tar) explains a refused ingest best.
        let made = worker
            .await
            .map_err(|e| Error::Invalid(format!("layer worker: {e}")))??;
        sent?;
        Ok(made)
    }

    #[allow(clippy::type_complexity)]
    pub(super) async fn finish_image(
        &self,
        p: Platform,
        author: String,
        run: manifest::RunConfig,
        (created, layers, diff_ids, history): (
            String,
            Vec<Descriptor>,
            Vec<String>,
            Vec<manifest::History>,
        ),
        target: Option<&Reference>,
        lease: &str,
    ) -> Result<Resolved, Error> {
        let config = manifest::ImageConfig {
            created,
            author,
            architecture: p.architecture.clone(),
            os: p.os.clone(),
            variant: p.variant.clone(),
            config: Some(run),
            rootfs: manifest::RootFs {
                kind: "layers".into(),
                diff_ids,
            },
            history,
        };
        let cfg_bytes = serde_json::to_vec(&config).expect("json");
        let cfg_digest = self.mgr.put(cfg_bytes.clone(), lease).await?;
        let m = Manifest {
            schema_version: 2,
            media_type: manifest::OCI_MANIFEST.into(),
            config: Descriptor {
                media_type: manifest::OCI_CONFIG.into(),
                digest: cfg_digest.clone(),
                size: cfg_bytes.len() as u64,
            },
            layers,
            annotations: Default::default(),
        };
        let m_bytes = serde_json::to_vec(&m).expect("json");
        let m_digest = self.mgr.put(m_bytes.clone(), lease).await?;
        let name = target
            .map(|t| t.to_string())
            .unwrap_or_else(|| format!("sha256:{}", cfg_digest.trim_start_matches("sha256:")));
        let record = pb::Image {
            name: name.clone(),
            target: Some(pb::Descriptor {
                media_type: manifest::OCI_MANIFEST.into(),
                digest: m_digest,
                size: m_bytes.len() as u64,
            }),
            ..Default::default()
        };
        self.set_name(record).await?;
        if p == self.platform
            || (p.os == self.platform.os && p.architecture == self.platform.architecture)
        {
            self.unpack_or_forget(&name, lease).await?;
        }
        Ok(Resolved {
            record: self.mgr.image(&name).await?.unwrap_or_default(),
            manifest_digest: sha256_of(&m_bytes),
            manifest: m,
            config_bytes: cfg_bytes,
            config,
        })
    }
}

/// What [`Images::create_image`] makes an image of.
pub struct NewImage<'a> {
    pub base: Option<&'a Resolved>,
    /// The new layer; None for a configuration-only image (an `empty_layer` history entry).
    pub layer: Option<&'a std::path::Path>,
    pub run: manifest::RunConfig,
    pub history: manifest::History,
    pub author: String,
    pub target: Option<&'a str>,
    pub platform: Option<Platform>,
}

/// Write a blob held in memory through a streamed ingest.
pub async fn write_stream(
    mgr: &Mgr,
    d: &Descriptor,
    lease: &str,
    data: Vec<u8>,
) -> Result<(), Error> {
    if mgr.has(&d.digest).await? {
        return Ok(());
    }
    let mut msgs: Vec<pb::WriteContentRequest> = data
        .chunks(1 << 20)
        .map(|chunk| pb::WriteContentRequest {
            data: chunk.to_vec(),
            ..Default::default()
        })
        .collect();
    msgs.push(pb::WriteContentRequest {
        commit: true,
        expected: d.digest.clone(),
        size: d.size,
        ..Default::default()
    });
    // The first message names the ingest.
    msgs[0].r#ref = format!("{lease}/{}", d.digest);
    msgs[0].lease = lease.to_string();
    mgr.content.clone().write(tokio_stream::iter(msgs)).await?;
    Ok(())
}

/// Check the layer tar at `path` (plain or compressed) against `limits`, then send it
/// gzip-compressed as ingest messages, ending with the commit. `first` names the ingest.
fn compress_layer(
    path: &std::path::Path,
    limits: berth_fstree::layer::Limits,
    first: pb::WriteContentRequest,
    tx: tokio::sync::mpsc::Sender<pb::WriteContentRequest>,
) -> Result<(Descriptor, String), Error> {
    use std::io::{Read, Write};
    let io = |what: &'static str| {
        let path = path.display().to_string();
        move |err| Error::Io { what, path, err }
    };
    let open = || std::fs::File::open(path).map_err(io("open"));
    let diff_id = berth_fstree::layer::measure(open()?, &limits)
        .map_err(|e| Error::Invalid(format!("the layer: {}", crate::archive::limit_hint(e))))?
        .diff_id;
    let mut r = berth_fstree::layer::decompress(open()?).map_err(io("read"))?;
    let mut out = Chunks {
        blob: Sha256::new(),
        size: 0,
        first: Some(first),
        tx,
    };
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = r.read(&mut buf).map_err(io("read"))?;
        if n == 0 {
            break;
        }
        enc.write_all(&buf[..n]).map_err(io("compress"))?;
        if enc.get_ref().len() >= 1 << 20 {
            out.send(std::mem::take(enc.get_mut()))?;
        }
    }
    out.send(enc.finish().map_err(io("compress"))?)?;
    let d = Descriptor {
        media_type: manifest::OCI_LAYER_GZIP.into(),
        digest: format!("sha256:{:x}", out.blob.clone().finalize()),
        size: out.size,
    };
    let mut commit = out.first.take().unwrap_or_default();
    commit.commit = true;
    commit.expected = d.digest.clone();
    commit.size = d.size;
    out.tx.blocking_send(commit).map_err(|_| stopped())?;
    Ok((d, diff_id))
}

fn stopped() -> Error {
    Error::Invalid("the content store stopped reading the layer".into())
}

/// A compressed blob on its way to the content store in ingest messages, hashed as sent.
struct Chunks {
    blob: Sha256,
    size: u64,
    /// The first message (it names the ingest) until it is sent.
    first: Option<pb::WriteContentRequest>,
    tx: tokio::sync::mpsc::Sender<pb::WriteContentRequest>,
}

impl Chunks {
    fn send(&mut self, data: Vec<u8>) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        self.blob.update(&data);
        self.size += data.len() as u64;
        let mut m = self.first.take().unwrap_or_default();
        m.data = data;
        self.tx.blocking_send(m).map_err(|_| stopped())
    }
}
