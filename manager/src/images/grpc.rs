//! gRPC services Content, Images, Snapshots and Leases: each call converts its message and
//! forwards to [`Images`]; file work runs on the blocking pool (the manager's runtime has one
//! thread). Errors map to codes with [`Error::code`].

use std::pin::Pin;

use berth_proto::manager as pb;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::snapshots::{Kind, Mount, Snapshot};
use super::{Descriptor, Error, ImageRecord, Images};

fn st(e: Error) -> Status {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    Status::new(e.code(), s)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("worker: {e}")))?
        .map_err(st)
}

fn image_pb(i: ImageRecord) -> pb::Image {
    pb::Image {
        name: i.name,
        target: Some(pb::Descriptor {
            media_type: i.target.media_type,
            digest: i.target.digest,
            size: i.target.size,
        }),
        labels: i.labels.into_iter().collect(),
        created_at: i.created_at,
        updated_at: i.updated_at,
    }
}

fn mounts_pb(m: Vec<Mount>) -> pb::MountsResponse {
    pb::MountsResponse {
        mounts: m
            .into_iter()
            .map(|m| pb::Mount {
                r#type: m.kind,
                source: m.source,
                options: m.options,
            })
            .collect(),
    }
}

/// A mount as the gRPC message carries it.
pub fn mount_of(m: pb::Mount) -> Mount {
    Mount {
        kind: m.r#type,
        source: m.source,
        options: m.options,
    }
}

fn snapshot_pb(s: Snapshot) -> pb::Snapshot {
    pb::Snapshot {
        key: s.key,
        parent: s.parent,
        kind: match s.kind {
            Kind::Active => "active",
            Kind::View => "view",
            Kind::Committed => "committed",
        }
        .into(),
        labels: s.labels.into_iter().collect(),
        created_at: s.created_at,
    }
}

fn lease_pb(l: super::Lease) -> pb::Lease {
    pb::Lease {
        id: l.id,
        created_at: l.created_at,
        expires_at: l.expires_at,
        content: l.content,
        snapshots: l.snapshots,
    }
}

pub struct ContentService(pub Images);
pub struct ImagesService(pub Images);
pub struct SnapshotsService(pub Images);
pub struct LeasesService(pub Images);

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::DataChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::content_server::Content for ContentService {
    async fn info(&self, r: Request<pb::DigestRef>) -> Result<Response<pb::BlobInfo>, Status> {
        let d = r.into_inner().digest;
        let info = self
            .0
            .content
            .info(&d)
            .map_err(st)?
            .ok_or_else(|| st(Error::ContentNotFound(d)))?;
        Ok(Response::new(pb::BlobInfo {
            digest: info.digest,
            size: info.size,
        }))
    }

    async fn list(&self, _: Request<pb::Empty>) -> Result<Response<pb::ListBlobsResponse>, Status> {
        let c = self.0.content.clone();
        let blobs = blocking(move || c.list()).await?;
        Ok(Response::new(pb::ListBlobsResponse {
            blobs: blobs
                .into_iter()
                .map(|b| pb::BlobInfo {
                    digest: b.digest,
                    size: b.size,
                })
                .collect(),
        }))
    }

    async fn delete(&self, r: Request<pb::DigestRef>) -> Result<Response<pb::Empty>, Status> {
        let d = r.into_inner().digest;
        if !self.0.content.delete(&d).map_err(st)? {
            return Err(st(Error::ContentNotFound(d)));
        }
        Ok(Response::new(pb::Empty {}))
    }

    type ReadStream = ChunkStream;

    async fn read(
        &self,
        r: Request<pb::ReadContentRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        use std::io::{Read, Seek, SeekFrom};
        let r = r.into_inner();
        let mut f = self.0.content.open_blob(&r.digest).map_err(st)?;
        f.seek(SeekFrom::Start(r.offset))
            .map_err(|e| Status::internal(format!("seek {}: {e}", r.digest)))?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let n = match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::internal(format!(
                            "read {}: {e}",
                            r.digest
                        ))));
                        break;
                    }
                };
                if tx
                    .blocking_send(Ok(pb::DataChunk {
                        data: buf[..n].to_vec(),
                    }))
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn status(
        &self,
        r: Request<pb::IngestRef>,
    ) -> Result<Response<pb::IngestStatus>, Status> {
        let reference = r.into_inner().r#ref;
        let c = self.0.content.clone();
        let all = blocking(move || c.ingests()).await?;
        let s = all.into_iter().find(|i| i.reference == reference);
        Ok(Response::new(match s {
            Some(i) => pb::IngestStatus {
                r#ref: i.reference,
                offset: i.offset,
                lease: i.lease,
                updated: i.updated,
            },
            None => pb::IngestStatus {
                r#ref: reference,
                ..Default::default()
            },
        }))
    }

    async fn list_ingests(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::ListIngestsResponse>, Status> {
        let c = self.0.content.clone();
        let all = blocking(move || c.ingests()).await?;
        Ok(Response::new(pb::ListIngestsResponse {
            ingests: all
                .into_iter()
                .map(|i| pb::IngestStatus {
                    r#ref: i.reference,
                    offset: i.offset,
                    lease: i.lease,
                    updated: i.updated,
                })
                .collect(),
        }))
    }

    async fn write(
        &self,
        r: Request<Streaming<pb::WriteContentRequest>>,
    ) -> Result<Response<pb::WriteContentResponse>, Status> {
        let mut stream = r.into_inner();
        let Some(first) = stream.message().await? else {
            return Err(Status::invalid_argument("write: empty stream"));
        };
        let images = self.0.clone();
        let reference = first.r#ref.clone();
        let lease = first.lease.clone();
        // The file work happens on a blocking thread fed through a channel.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<pb::WriteContentRequest>(8);
        let worker =
            tokio::task::spawn_blocking(move || -> Result<pb::WriteContentResponse, Error> {
                let mut w = images.content.ingest(&reference, &lease)?;
                let mut msg = first;
                if msg.offset != w.offset() {
                    if msg.offset == 0 {
                        w.reset()?;
                    } else {
                        return Err(Error::FailedPrecondition(format!(
                            "ingest {reference:?} is at offset {}, not {}",
                            w.offset(),
                            msg.offset
                        )));
                    }
                }
                loop {
                    if !msg.data.is_empty() {
                        w.write(&msg.data)?;
                    }
                    if msg.commit {
                        let size = (msg.size != 0).then_some(msg.size);
                        let info = w.commit(&msg.expected, size)?;
                        images.lease_content(&lease, &info.digest).ok();
                        return Ok(pb::WriteContentResponse {
                            offset: info.size,
                            digest: info.digest,
                        });
                    }
                    match rx.blocking_recv() {
                        Some(m) => msg = m,
                        None => {
                            return Ok(pb::WriteContentResponse {
                                offset: w.offset(),
                                digest: String::new(),
                            })
                        }
                    }
                }
            });
        let mut failed = None;
        loop {
            match stream.message().await {
                Ok(Some(m)) => {
                    if tx.send(m).await.is_err() {
                        break; // the worker stopped (an error or a commit)
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let res = worker
            .await
            .map_err(|e| Status::internal(format!("worker: {e}")))?
            .map_err(st)?;
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(Response::new(res))
    }

    async fn abort(&self, r: Request<pb::IngestRef>) -> Result<Response<pb::Empty>, Status> {
        self.0.content.abort(&r.into_inner().r#ref).map_err(st)?;
        Ok(Response::new(pb::Empty {}))
    }
}

#[tonic::async_trait]
impl pb::images_server::Images for ImagesService {
    async fn create(
        &self,
        r: Request<pb::CreateImageRequest>,
    ) -> Result<Response<pb::Image>, Status> {
        let r = r.into_inner();
        let i = r
            .image
            .ok_or_else(|| Status::invalid_argument("create image: no image"))?;
        let t = i.target.unwrap_or_default();
        let rec = ImageRecord {
            name: i.name,
            target: Descriptor {
                media_type: t.media_type,
                digest: t.digest,
                size: t.size,
            },
            labels: i.labels.into_iter().collect(),
            ..Default::default()
        };
        let img = self.0.create_image(rec, r.replace).map_err(st)?;
        Ok(Response::new(image_pb(img)))
    }

    async fn get(&self, r: Request<pb::ImageRef>) -> Result<Response<pb::Image>, Status> {
        let i = self.0.image(&r.into_inner().name).map_err(st)?;
        Ok(Response::new(image_pb(i)))
    }

    async fn list(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::ListImagesResponse>, Status> {
        let all = self.0.images().map_err(st)?;
        Ok(Response::new(pb::ListImagesResponse {
            images: all.into_iter().map(image_pb).collect(),
        }))
    }

    async fn delete(&self, r: Request<pb::ImageRef>) -> Result<Response<pb::Empty>, Status> {
        self.0.delete_image(&r.into_inner().name).map_err(st)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn unpack(
        &self,
        r: Request<pb::UnpackRequest>,
    ) -> Result<Response<pb::UnpackResponse>, Status> {
        let r = r.into_inner();
        let images = self.0.clone();
        let chain_id = blocking(move || images.unpack(&r.name, &r.lease)).await?;
        Ok(Response::new(pb::UnpackResponse { chain_id }))
    }

    async fn garbage_collect(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::GarbageCollectResponse>, Status> {
        let images = self.0.clone();
        let c = blocking(move || {
            let keep = images.container_snapshots();
            images.collect(&keep)
        })
        .await?;
        Ok(Response::new(pb::GarbageCollectResponse {
            blobs: c.blobs,
            snapshots: c.snapshots,
            ingests: c.ingests as u32,
            bytes: c.bytes,
        }))
    }
}

impl SnapshotsService {
    fn create_and_mount(
        &self,
        r: pb::PrepareSnapshotRequest,
        kind: Kind,
    ) -> Result<Response<pb::MountsResponse>, Status> {
        let s = &self.0.snapshots;
        s.create(&r.key, &r.parent, kind, r.labels.into_iter().collect())
            .map_err(st)?;
        Ok(Response::new(mounts_pb(s.mounts(&r.key).map_err(st)?)))
    }
}

#[tonic::async_trait]
impl pb::snapshots_server::Snapshots for SnapshotsService {
    async fn prepare(
        &self,
        r: Request<pb::PrepareSnapshotRequest>,
    ) -> Result<Response<pb::MountsResponse>, Status> {
        self.create_and_mount(r.into_inner(), Kind::Active)
    }

    async fn view(
        &self,
        r: Request<pb::PrepareSnapshotRequest>,
    ) -> Result<Response<pb::MountsResponse>, Status> {
        self.create_and_mount(r.into_inner(), Kind::View)
    }

    async fn commit(
        &self,
        r: Request<pb::CommitSnapshotRequest>,
    ) -> Result<Response<pb::Snapshot>, Status> {
        let r = r.into_inner();
        let s = self.0.snapshots.commit(&r.name, &r.key).map_err(st)?;
        Ok(Response::new(snapshot_pb(s)))
    }

    async fn mounts(
        &self,
        r: Request<pb::SnapshotRef>,
    ) -> Result<Response<pb::MountsResponse>, Status> {
        let m = self.0.snapshots.mounts(&r.into_inner().key).map_err(st)?;
        Ok(Response::new(mounts_pb(m)))
    }

    async fn stat(&self, r: Request<pb::SnapshotRef>) -> Result<Response<pb::Snapshot>, Status> {
        let s = self.0.snapshots.get(&r.into_inner().key).map_err(st)?;
        Ok(Response::new(snapshot_pb(s)))
    }

    async fn list(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
        let all = self.0.snapshots.list().map_err(st)?;
        Ok(Response::new(pb::ListSnapshotsResponse {
            snapshots: all.into_iter().map(snapshot_pb).collect(),
        }))
    }

    async fn remove(&self, r: Request<pb::SnapshotRef>) -> Result<Response<pb::Empty>, Status> {
        let s = self.0.snapshots.clone();
        let key = r.into_inner().key;
        blocking(move || s.remove(&key)).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn usage(
        &self,
        r: Request<pb::SnapshotRef>,
    ) -> Result<Response<pb::SnapshotUsage>, Status> {
        let s = self.0.snapshots.clone();
        let key = r.into_inner().key;
        let u = blocking(move || s.usage(&key)).await?;
        Ok(Response::new(pb::SnapshotUsage {
            size: u.size,
            inodes: u.inodes,
        }))
    }

    async fn changes(
        &self,
        r: Request<pb::DiffRequest>,
    ) -> Result<Response<pb::ChangesResponse>, Status> {
        let r = r.into_inner();
        let (upper, lowers) = self.layers(&r.key)?;
        let skip = r.mount_points;
        let list =
            tokio::task::spawn_blocking(move || super::diff::changes(&upper, &lowers, &skip))
                .await
                .map_err(|e| Status::internal(format!("worker: {e}")))?
                .map_err(|e| Status::internal(format!("read the changes: {e}")))?;
        Ok(Response::new(pb::ChangesResponse {
            changes: list
                .into_iter()
                .map(|c| pb::Change {
                    path: c.path,
                    kind: c.kind as u32,
                })
                .collect(),
        }))
    }

    type DiffStream = Pin<Box<dyn Stream<Item = Result<pb::DataChunk, Status>> + Send>>;

    async fn diff(
        &self,
        r: Request<pb::DiffRequest>,
    ) -> Result<Response<Self::DiffStream>, Status> {
        let pb::DiffRequest { key, mount_points } = r.into_inner();
        let (upper, lowers) = self.layers(&key)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut w = crate::grpc::ChunkWriter::new(tx.clone());
            let r = super::diff::write_layer(&upper, &lowers, &mount_points, &mut w)
                .and_then(|()| w.flush_chunk());
            if let Err(e) = r {
                let _ = tx.blocking_send(Err(Status::internal(format!(
                    "diff of snapshot {key}: {e}"
                ))));
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

impl SnapshotsService {
    /// The upper and lower directories of an active snapshot.
    fn layers(&self, key: &str) -> Result<(std::path::PathBuf, Vec<std::path::PathBuf>), Status> {
        let s = self.0.snapshots.get(key).map_err(st)?;
        if s.kind != Kind::Active {
            return Err(Status::failed_precondition(format!(
                "snapshot {key} is not active: only a writable snapshot has changes"
            )));
        }
        let m = self.0.snapshots.mounts(key).map_err(st)?;
        super::diff::layers_of(&m)
            .ok_or_else(|| Status::internal(format!("snapshot {key}: unexpected mounts")))
    }
}

#[tonic::async_trait]
impl pb::leases_server::Leases for LeasesService {
    async fn create(
        &self,
        r: Request<pb::CreateLeaseRequest>,
    ) -> Result<Response<pb::Lease>, Status> {
        let r = r.into_inner();
        let l = self.0.create_lease(&r.id, r.ttl_seconds).map_err(st)?;
        Ok(Response::new(lease_pb(l)))
    }

    async fn delete(&self, r: Request<pb::LeaseRef>) -> Result<Response<pb::Empty>, Status> {
        self.0.delete_lease(&r.into_inner().id).map_err(st)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn list(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::ListLeasesResponse>, Status> {
        let all = self.0.leases().map_err(st)?;
        Ok(Response::new(pb::ListLeasesResponse {
            leases: all.into_iter().map(lease_pb).collect(),
        }))
    }
}
