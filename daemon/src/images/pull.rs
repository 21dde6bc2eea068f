//! Pull: resolve a reference at its registry (following an index to this host's
//! platform), download the blobs into the content store under a lease (resuming broken
//! downloads), record and unpack the image.

use std::time::Duration;

use berth_manager::images::manifest;
use berth_manager::images::Descriptor;
use berth_proto::manager as pb;
use tokio_stream::StreamExt;

use crate::manager::Mgr;
use crate::reference::Reference;
use crate::registry::{Endpoint, Registry};

use super::*;

impl Images {
    #[tracing::instrument(level = "info", skip_all, fields(image = %reference))]
    pub async fn pull(&self, reference: &str, progress: OnProgress) -> Result<Resolved, Error> {
        let r = Reference::parse(reference)?;
        let lease = format!("pull-{}-{}", std::process::id(), unique());
        self.mgr.lease(&lease, 24 * 3600).await?;
        let res = self.pull_leased(&r, &lease, &progress).await;
        self.mgr.drop_lease(&lease).await;
        res.map_err(|err| Error::Pull {
            reference: r.to_string(),
            err: Box::new(err),
        })
    }

    pub(super) async fn pull_leased(
        &self,
        r: &Reference,
        lease: &str,
        progress: &OnProgress,
    ) -> Result<Resolved, Error> {
        let mut last = None;
        for ep in self.reg.endpoints(r)? {
            match self.reg.get_manifest(&ep, &r.path, r.object()).await {
                Ok(m) => {
                    return self.pull_from(r, &ep, m, lease, progress).await;
                }
                Err(e) if ep.mirror => {
                    tracing::info!("mirror {}: {e}", ep.base);
                    last = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .map(Error::from)
            .unwrap_or_else(|| Error::Invalid(format!("no endpoint for {r}"))))
    }

    pub(super) async fn pull_from(
        &self,
        r: &Reference,
        ep: &Endpoint,
        (body, media_type, reported): (Vec<u8>, String, Option<String>),
        lease: &str,
        progress: &OnProgress,
    ) -> Result<Resolved, Error> {
        let digest = sha256_of(&body);
        if let Some(want) = &r.digest {
            if *want != digest {
                return Err(content_err(
                    want,
                    format!("the registry sent a manifest with digest {digest}"),
                ));
            }
        }
        if let Some(rep) = reported.filter(|d| d.starts_with("sha256:")) {
            if rep != digest {
                return Err(content_err(
                    &rep,
                    format!("the registry's manifest has digest {digest}"),
                ));
            }
        }
        let mt = if media_type.is_empty() || media_type == "application/json" {
            manifest::sniff(&body)
        } else {
            media_type
        };
        let top = Descriptor {
            media_type: mt.clone(),
            digest: digest.clone(),
            size: body.len() as u64,
        };
        // Already here under this name: nothing to fetch (dockerd's "Image is up to date").
        if let Ok(cur) = self.resolve(&r.to_string()).await {
            if cur
                .record
                .target
                .as_ref()
                .is_some_and(|t| t.digest == digest)
            {
                progress(Progress {
                    id: String::new(),
                    status: format!("Digest: {digest}"),
                    current: 0,
                    total: 0,
                });
                return Ok(cur);
            }
        }
        let (m_digest, m_bytes) = if manifest::is_index(&mt) {
            let idx = manifest::parse_index(&body, &digest)
                .map_err(|e| content_err(&digest, e.to_string()))?;
            let e = manifest::choose(&idx, &self.platform).ok_or_else(|| {
                Error::Invalid(format!("{r}: no manifest for platform {}", self.platform))
            })?;
            let (b, _, _) = self.reg.get_manifest(ep, &r.path, &e.digest).await?;
            if sha256_of(&b) != e.digest {
                return Err(content_err(
                    &e.digest,
                    "the registry sent a manifest with another digest",
                ));
            }
            self.mgr.put(b.clone(), lease).await?;
            (e.digest.clone(), b)
        } else if manifest::is_manifest(&mt) {
            (digest.clone(), body.clone())
        } else {
            return Err(content_err(
                &digest,
                format!("media type {mt:?} is not an image manifest"),
            ));
        };
        let m = manifest::parse_manifest(&m_bytes, &m_digest)
            .map_err(|e| content_err(&m_digest, e.to_string()))?;
        self.mgr.put(body, lease).await?;
        // Config and layers, up to max-concurrent-downloads at a time.
        let mut blobs = vec![m.config.clone()];
        blobs.extend(m.layers.iter().cloned());
        let limit = Arc::new(tokio::sync::Semaphore::new(
            self.reg.cfg.max_concurrent_downloads.max(1),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for d in blobs {
            let (mgr, reg, ep, repo, lease, progress, limit) = (
                self.mgr.clone(),
                self.reg.clone(),
                ep.clone(),
                r.path.clone(),
                lease.to_string(),
                progress.clone(),
                limit.clone(),
            );
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore");
                download(&mgr, &reg, &ep, &repo, &d, &lease, &progress).await
            });
        }
        while let Some(res) = tasks.join_next().await {
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tasks.abort_all();
                    return Err(e);
                }
                Err(e) => return Err(Error::Invalid(format!("download task: {e}"))),
            }
        }
        let name = r.to_string();
        let record = pb::Image {
            name: name.clone(),
            target: Some(pb::Descriptor {
                media_type: top.media_type.clone(),
                digest: top.digest.clone(),
                size: top.size,
            }),
            labels: [(
                "berth.repo-digest".to_string(),
                format!("{}@{}", r.repository(), top.digest),
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        self.set_name(record).await?;
        progress(Progress {
            id: String::new(),
            status: "Extracting".into(),
            current: 0,
            total: 0,
        });
        self.unpack_or_forget(&name, lease).await?;
        progress(Progress {
            id: String::new(),
            status: format!("Digest: {}", top.digest),
            current: 0,
            total: 0,
        });
        self.resolve(&name).await
    }

    /// Unpack `name`; if that fails (a hostile or corrupt layer), the name is removed again
    /// so no image is left that cannot run; its content goes with the next collection.
    pub async fn unpack_or_forget(&self, name: &str, lease: &str) -> Result<(), Error> {
        let r = self
            .mgr
            .images
            .clone()
            .unpack(pb::UnpackRequest {
                name: name.to_string(),
                lease: lease.to_string(),
            })
            .await;
        if let Err(e) = r {
            let _ = self
                .mgr
                .images
                .clone()
                .delete(pb::ImageRef {
                    name: name.to_string(),
                })
                .await;
            return Err(e.into());
        }
        Ok(())
    }
}

/// Fetch one blob into the content store, resuming after broken connections (up to 5 tries,
/// backing off), verified by the store on commit.
pub(super) async fn download(
    mgr: &Mgr,
    reg: &Registry,
    ep: &Endpoint,
    repo: &str,
    d: &Descriptor,
    lease: &str,
    progress: &OnProgress,
) -> Result<(), Error> {
    let report = reporter(progress, d);
    if mgr.has(&d.digest).await? {
        report("Already exists", d.size);
        return Ok(());
    }
    let reference = format!("{lease}/{}", d.digest);
    let mut attempt = 0u32;
    loop {
        let offset = mgr.ingest_offset(&reference).await?;
        let result = download_once(mgr, reg, ep, repo, d, lease, &reference, offset, &report).await;
        match result {
            Ok(()) => {
                report("Download complete", d.size);
                return Ok(());
            }
            Err(e) if attempt < 5 && retryable(&e) => {
                attempt += 1;
                tracing::info!("{}: {e}; retrying ({attempt}/5)", d.digest);
                tokio::time::sleep(Duration::from_millis(200 * (1 << attempt))).await;
            }
            Err(e) => {
                let _ = mgr
                    .content
                    .clone()
                    .abort(pb::IngestRef { r#ref: reference })
                    .await;
                return Err(e);
            }
        }
    }
}

pub(super) fn retryable(e: &Error) -> bool {
    match e {
        Error::Registry(r) => r.transient(),
        Error::Interrupted { .. } => true,
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn download_once(
    mgr: &Mgr,
    reg: &Registry,
    ep: &Endpoint,
    repo: &str,
    d: &Descriptor,
    lease: &str,
    reference: &str,
    offset: u64,
    report: &(dyn Fn(&str, u64) + Sync),
) -> Result<(), Error> {
    if offset > d.size {
        return Err(content_err(
            &d.digest,
            format!(
                "ingest holds {offset} bytes, more than the {} expected",
                d.size
            ),
        ));
    }
    let resp = reg.get_blob(ep, repo, &d.digest, offset).await?;
    // A registry that ignores Range sends everything: start over.
    let start = if offset > 0 && resp.status() == reqwest::StatusCode::PARTIAL_CONTENT {
        offset
    } else {
        0
    };
    let (tx, writer) = mgr.writer();
    let _ = tx
        .send(pb::WriteContentRequest {
            r#ref: reference.to_string(),
            lease: lease.to_string(),
            offset: start,
            ..Default::default()
        })
        .await;
    let mut got = start;
    let mut body = resp.bytes_stream();
    let mut broken = None;
    let mut last_report = 0u64;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(b) => {
                got += b.len() as u64;
                if got > d.size {
                    broken = Some(content_err(
                        &d.digest,
                        format!("the registry sent more than the {} bytes expected", d.size),
                    ));
                    break;
                }
                let m = pb::WriteContentRequest {
                    data: b.to_vec(),
                    ..Default::default()
                };
                if tx.send(m).await.is_err() {
                    break;
                }
                if got - last_report > 1 << 20 {
                    report("Downloading", got);
                    last_report = got;
                }
            }
            Err(e) => {
                broken = Some(Error::Interrupted {
                    digest: d.digest.clone(),
                    reason: e.to_string(),
                });
                break;
            }
        }
    }
    if broken.is_none() {
        let _ = tx
            .send(pb::WriteContentRequest {
                commit: true,
                expected: d.digest.clone(),
                size: d.size,
                ..Default::default()
            })
            .await;
    }
    drop(tx);
    let w = writer
        .await
        .map_err(|e| Error::Invalid(format!("content writer: {e}")))?;
    if let Some(e) = broken {
        return Err(e);
    }
    let w = w?.into_inner();
    if w.digest.is_empty() {
        return Err(Error::Interrupted {
            digest: d.digest.clone(),
            reason: "not committed".into(),
        });
    }
    Ok(())
}
