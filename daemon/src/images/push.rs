//! Push: an image's blobs (layers, config, manifest) to its registry, mounting or skipping
//! what the registry has.

use berth_manager::images::manifest;
use berth_manager::images::Descriptor;
use berth_proto::manager as pb;

use crate::reference::Reference;
use crate::registry::Endpoint;

use super::*;

impl Images {
    #[tracing::instrument(level = "info", skip_all, fields(image = %reference))]
    pub async fn push(&self, reference: &str, progress: OnProgress) -> Result<String, Error> {
        let r = Reference::parse(reference)?;
        self.push_inner(&r, &progress)
            .await
            .map_err(|err| Error::Push {
                reference: r.to_string(),
                err: Box::new(err),
            })
    }

    pub(super) async fn push_inner(
        &self,
        r: &Reference,
        progress: &OnProgress,
    ) -> Result<String, Error> {
        let img = self
            .mgr
            .image(&r.to_string())
            .await?
            .ok_or_else(|| Error::NoSuchImage(r.familiar()))?;
        let target = img.target.clone().unwrap_or_default();
        let ep = self
            .reg
            .endpoints(r)?
            .into_iter()
            .find(|e| !e.mirror)
            .ok_or_else(|| Error::Invalid(format!("no registry to push {r} to")))?;
        let top = self.mgr.read(&target.digest).await?;
        let mt = if target.media_type.is_empty() {
            manifest::sniff(&top)
        } else {
            target.media_type.clone()
        };
        let mut to_put: Vec<(String, String, Vec<u8>)> = Vec::new(); // (object, media type, bytes)
        let mut manifests: Vec<(String, Vec<u8>)> = Vec::new();
        if manifest::is_index(&mt) {
            let idx = manifest::parse_index(&top, &target.digest)
                .map_err(|e| content_err(&target.digest, e.to_string()))?;
            let mut all = true;
            for e in &idx.manifests {
                if self.mgr.has(&e.digest).await? {
                    manifests.push((e.digest.clone(), self.mgr.read(&e.digest).await?));
                } else {
                    all = false;
                }
            }
            if all {
                for (d, b) in &manifests {
                    to_put.push((d.clone(), manifest::sniff(b), b.clone()));
                }
                to_put.push((r.object().to_string(), mt.clone(), top.clone()));
            } else {
                // Only some platforms are here: push this platform's manifest under the tag.
                let res = self.resolve_record(&img).await?;
                let b = self.mgr.read(&res.manifest_digest).await?;
                manifests = vec![(res.manifest_digest.clone(), b.clone())];
                to_put.push((r.object().to_string(), manifest::sniff(&b), b));
            }
        } else {
            manifests.push((target.digest.clone(), top.clone()));
            to_put.push((r.object().to_string(), mt.clone(), top.clone()));
        }
        for (d, b) in &manifests {
            let m = manifest::parse_manifest(b, d).map_err(|e| content_err(d, e.to_string()))?;
            let mut blobs = m.layers.clone();
            blobs.push(m.config.clone());
            for blob in blobs {
                self.push_blob(&ep, r, &blob, progress).await?;
            }
        }
        let mut pushed = String::new();
        for (object, media_type, bytes) in to_put {
            let digest = sha256_of(&bytes);
            self.reg
                .put_manifest(&ep, &r.path, &object, &media_type, bytes)
                .await?;
            pushed = digest;
        }
        progress(Progress {
            id: String::new(),
            status: format!("{}: digest: {pushed}", r.tag.as_deref().unwrap_or("latest")),
            current: 0,
            total: 0,
        });
        Ok(pushed)
    }

    pub(super) async fn push_blob(
        &self,
        ep: &Endpoint,
        r: &Reference,
        d: &Descriptor,
        progress: &OnProgress,
    ) -> Result<(), Error> {
        let report = reporter(progress, d);
        if self.reg.has_blob(ep, &r.path, &d.digest).await? {
            report("Layer already exists", d.size);
            return Ok(());
        }
        // Cross-repository mount from another repository of ours on the same registry.
        for img in self.mgr.images().await? {
            let Ok(other) = Reference::parse(&img.name) else {
                continue;
            };
            if other.domain != r.domain || other.path == r.path {
                continue;
            }
            let Ok(res) = self.resolve_record(&img).await else {
                continue;
            };
            if !res.manifest.layers.iter().any(|l| l.digest == d.digest)
                && res.manifest.config.digest != d.digest
            {
                continue;
            }
            if !self
                .reg
                .has_blob(ep, &other.path, &d.digest)
                .await
                .unwrap_or(false)
            {
                continue;
            }
            if self
                .reg
                .start_upload(ep, &r.path, Some((&d.digest, &other.path)))
                .await?
                .is_none()
            {
                report(
                    &format!("Mounted from {}", other.familiar_repository()),
                    d.size,
                );
                return Ok(());
            }
            break;
        }
        let mut loc = self
            .reg
            .start_upload(ep, &r.path, None)
            .await?
            .ok_or_else(|| Error::Invalid("upload mounted without asking".into()))?;
        let mut s = self
            .mgr
            .content
            .clone()
            .read(pb::ReadContentRequest {
                digest: d.digest.clone(),
                offset: 0,
            })
            .await?
            .into_inner();
        const CHUNK: usize = 8 << 20;
        let mut buf = Vec::with_capacity(CHUNK);
        let mut sent = 0u64;
        while let Some(c) = s.message().await? {
            buf.extend_from_slice(&c.data);
            if buf.len() >= CHUNK {
                let chunk = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK));
                let n = chunk.len() as u64;
                loc = self
                    .reg
                    .upload_chunk(ep, &r.path, &loc, sent, chunk)
                    .await?;
                sent += n;
                report("Pushing", sent);
            }
        }
        if !buf.is_empty() {
            let n = buf.len() as u64;
            loc = self.reg.upload_chunk(ep, &r.path, &loc, sent, buf).await?;
            sent += n;
        }
        self.reg.finish_upload(ep, &r.path, &loc, &d.digest).await?;
        report("Pushed", sent);
        Ok(())
    }
}
