//! The daemon's side of the manager's image services: a connection, and blob helpers.

use std::path::Path;

use berth_proto::manager as pb;
use berth_proto::manager::{
    containers_client::ContainersClient, content_client::ContentClient,
    events_client::EventsClient, images_client::ImagesClient, leases_client::LeasesClient,
    snapshots_client::SnapshotsClient, tasks_client::TasksClient,
};
use tonic::transport::Channel;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connect to berth-manager at {address}")]
    Connect {
        address: String,
        #[source]
        err: tonic::transport::Error,
    },
    /// (Not a `source`: a status's Display would repeat its message.)
    #[error("berth-manager: {}", .0.message())]
    Call(tonic::Status),
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::Call(s)
    }
}

#[derive(Clone)]
pub struct Mgr {
    pub content: ContentClient<Channel>,
    pub images: ImagesClient<Channel>,
    pub snapshots: SnapshotsClient<Channel>,
    pub leases: LeasesClient<Channel>,
    pub containers: ContainersClient<Channel>,
    pub tasks: TasksClient<Channel>,
    pub events: EventsClient<Channel>,
}

impl Mgr {
    pub async fn connect(address: &Path) -> Result<Mgr, Error> {
        let ch = berth_manager::client::channel(address)
            .await
            .map_err(|err| Error::Connect {
                address: address.display().to_string(),
                err,
            })?;
        let max = 64 << 20;
        Ok(Mgr {
            content: ContentClient::new(ch.clone()).max_decoding_message_size(max),
            images: ImagesClient::new(ch.clone()),
            snapshots: SnapshotsClient::new(ch.clone()),
            leases: LeasesClient::new(ch.clone()),
            containers: ContainersClient::new(ch.clone()),
            tasks: TasksClient::new(ch.clone()),
            events: EventsClient::new(ch),
        })
    }

    /// A whole blob (manifests, configs).
    pub async fn read(&self, digest: &str) -> Result<Vec<u8>, Error> {
        let mut s = self
            .content
            .clone()
            .read(pb::ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
            })
            .await?
            .into_inner();
        let mut out = Vec::new();
        while let Some(c) = s.message().await? {
            out.extend_from_slice(&c.data);
        }
        Ok(out)
    }

    /// A streamed Content.Write: send messages (the first names the ingest), drop the sender
    /// to end the stream, then await the handle for the store's answer.
    pub fn writer(
        &self,
    ) -> (
        tokio::sync::mpsc::Sender<pb::WriteContentRequest>,
        tokio::task::JoinHandle<Result<tonic::Response<pb::WriteContentResponse>, tonic::Status>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::WriteContentRequest>(4);
        let mut content = self.content.clone();
        let handle = tokio::spawn(async move {
            content
                .write(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        });
        (tx, handle)
    }

    pub async fn has(&self, digest: &str) -> Result<bool, Error> {
        match self
            .content
            .clone()
            .info(pb::DigestRef {
                digest: digest.to_string(),
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(s.into()),
        }
    }

    /// Write a small blob in one message; returns its digest.
    pub async fn put(&self, data: Vec<u8>, lease: &str) -> Result<String, Error> {
        let digest = format!(
            "sha256:{}",
            berth_manager::images::content::sha256_hex(&data)
        );
        if self.has(&digest).await? {
            return Ok(digest);
        }
        let size = data.len() as u64;
        let msg = pb::WriteContentRequest {
            r#ref: format!("{lease}/{digest}"),
            lease: lease.to_string(),
            offset: 0,
            data,
            commit: true,
            expected: digest.clone(),
            size,
        };
        self.content
            .clone()
            .write(tokio_stream::iter(vec![msg]))
            .await?;
        Ok(digest)
    }

    /// Where an ingest stands.
    pub async fn ingest_offset(&self, reference: &str) -> Result<u64, Error> {
        Ok(self
            .content
            .clone()
            .status(pb::IngestRef {
                r#ref: reference.to_string(),
            })
            .await?
            .into_inner()
            .offset)
    }

    pub async fn image(&self, name: &str) -> Result<Option<pb::Image>, Error> {
        match self
            .images
            .clone()
            .get(pb::ImageRef {
                name: name.to_string(),
            })
            .await
        {
            Ok(i) => Ok(Some(i.into_inner())),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(s.into()),
        }
    }

    pub async fn images(&self) -> Result<Vec<pb::Image>, Error> {
        Ok(self
            .images
            .clone()
            .list(pb::Empty {})
            .await?
            .into_inner()
            .images)
    }

    pub async fn lease(&self, id: &str, ttl: u64) -> Result<(), Error> {
        self.leases
            .clone()
            .create(pb::CreateLeaseRequest {
                id: id.to_string(),
                ttl_seconds: ttl,
            })
            .await?;
        Ok(())
    }

    pub async fn drop_lease(&self, id: &str) {
        let _ = self
            .leases
            .clone()
            .delete(pb::LeaseRef { id: id.to_string() })
            .await;
    }
}
