//! gRPC services: each call converts its message, forwards to [`Manager`], and maps errors
//! with [`Error::status`](crate::error::Error::status).

use std::pin::Pin;
use std::sync::Arc;

use berth_proto::manager as pb;
use berth_proto::shim as spb;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::manager::Manager;
use crate::store::ContainerRecord;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A `Write` that sends 256 KiB chunks down a stream (from a blocking thread).
pub(crate) struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Result<pb::DataChunk, Status>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    pub(crate) fn new(tx: tokio::sync::mpsc::Sender<Result<pb::DataChunk, Status>>) -> Self {
        ChunkWriter {
            tx,
            buf: Vec::new(),
        }
    }

    /// Send what is buffered (call once at the end).
    pub(crate) fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.buf);
        self.tx
            .blocking_send(Ok(pb::DataChunk { data }))
            .map_err(|_| std::io::Error::other("the client went away"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 256 << 10 {
            self.flush_chunk()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn st(e: Error) -> Status {
    e.status()
}

pub fn to_pb(c: ContainerRecord) -> pb::Container {
    pb::Container {
        id: c.id,
        labels: c.labels.into_iter().collect(),
        spec: serde_json::to_vec(&c.spec).expect("json"),
        rootfs: c.rootfs,
        runtime: Some(pb::Runtime {
            name: c.runtime,
            root: c.runtime_root,
        }),
        log: Some(pb::LogConfig {
            path: c.log_path,
            max_size: c.log_max_size,
            max_files: c.log_max_files,
            disabled: c.log_disabled,
            format: c.log_format,
            compress: c.log_compress,
            forward: c.log_forward,
            options: c.log_options.into_iter().collect(),
        }),
        image: c.image,
        snapshot_key: c.snapshot_key,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

fn from_pb(c: pb::Container) -> Result<ContainerRecord, Status> {
    let spec = serde_json::from_slice(&c.spec)
        .map_err(|e| Status::invalid_argument(format!("container {}: spec JSON: {e}", c.id)))?;
    let rt = c.runtime.unwrap_or_default();
    let log = c.log.unwrap_or_default();
    Ok(ContainerRecord {
        id: c.id,
        labels: c.labels.into_iter().collect(),
        spec,
        rootfs: c.rootfs,
        runtime: rt.name,
        runtime_root: rt.root,
        log_disabled: log.disabled,
        log_path: if log.disabled {
            String::new()
        } else {
            log.path
        },
        log_max_size: log.max_size,
        log_max_files: log.max_files,
        log_format: log.format,
        log_compress: log.compress,
        log_forward: log.forward,
        log_options: log.options.into_iter().collect(),
        image: c.image,
        snapshot_key: c.snapshot_key,
        created_at: String::new(),
        updated_at: String::new(),
    })
}

#[derive(Clone)]
pub struct Containers(pub Arc<Manager>);

#[tonic::async_trait]
impl pb::containers_server::Containers for Containers {
    type ExportStream = BoxStream<pb::DataChunk>;

    async fn export(
        &self,
        req: Request<pb::ContainerRef>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let id = req.into_inner().id;
        let m = Arc::clone(&self.0);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut w = ChunkWriter::new(tx.clone());
            let r = m
                .export(&id, &mut w)
                .and_then(|()| w.flush_chunk().map_err(|e| Error::io("export", &id, e)));
            if let Err(e) = r {
                let _ = tx.blocking_send(Err(e.status()));
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn create(
        &self,
        req: Request<pb::CreateContainerRequest>,
    ) -> Result<Response<pb::Container>, Status> {
        let c = req
            .into_inner()
            .container
            .ok_or_else(|| Status::invalid_argument("create: no container"))?;
        let rec = from_pb(c)?;
        let c = self.0.create_container(rec).await.map_err(st)?;
        Ok(Response::new(to_pb(c)))
    }

    async fn get(&self, req: Request<pb::ContainerRef>) -> Result<Response<pb::Container>, Status> {
        let c = self.0.container(&req.into_inner().id).map_err(st)?;
        Ok(Response::new(to_pb(c)))
    }

    async fn list(
        &self,
        req: Request<pb::ListContainersRequest>,
    ) -> Result<Response<pb::ListContainersResponse>, Status> {
        let labels = req.into_inner().labels.into_iter().collect();
        let cs = self.0.containers(&labels).map_err(st)?;
        Ok(Response::new(pb::ListContainersResponse {
            containers: cs.into_iter().map(to_pb).collect(),
        }))
    }

    async fn update(
        &self,
        req: Request<pb::UpdateContainerRequest>,
    ) -> Result<Response<pb::Container>, Status> {
        let r = req.into_inner();
        let spec = if r.spec.is_empty() {
            None
        } else {
            Some(
                serde_json::from_slice(&r.spec)
                    .map_err(|e| Status::invalid_argument(format!("spec JSON: {e}")))?,
            )
        };
        let labels = r.update_labels.then(|| r.labels.into_iter().collect());
        let c = self
            .0
            .update_container(&r.id, labels, spec)
            .await
            .map_err(st)?;
        Ok(Response::new(to_pb(c)))
    }

    async fn delete(&self, req: Request<pb::ContainerRef>) -> Result<Response<pb::Empty>, Status> {
        self.0
            .delete_container(&req.into_inner().id)
            .await
            .map_err(st)?;
        Ok(Response::new(pb::Empty {}))
    }
}

#[derive(Clone)]
pub struct Tasks(pub Arc<Manager>);

#[tonic::async_trait]
impl pb::tasks_server::Tasks for Tasks {
    async fn create(
        &self,
        req: Request<pb::CreateTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let r = req.into_inner();
        let t = self
            .0
            .create_task(&r.container_id, r.terminal, r.stdin)
            .await
            .map_err(st)?;
        Ok(Response::new(t))
    }

    async fn start(&self, req: Request<pb::ProcessRef>) -> Result<Response<pb::Task>, Status> {
        let r = req.into_inner();
        let t = self
            .0
            .start(&r.container_id, &r.exec_id)
            .await
            .map_err(st)?;
        Ok(Response::new(t))
    }

    async fn get(&self, req: Request<pb::ContainerRef>) -> Result<Response<pb::Task>, Status> {
        let t = self.0.task(&req.into_inner().id).await.map_err(st)?;
        Ok(Response::new(t))
    }

    async fn list(&self, _: Request<pb::Empty>) -> Result<Response<pb::ListTasksResponse>, Status> {
        let tasks = self.0.tasks().await.map_err(st)?;
        Ok(Response::new(pb::ListTasksResponse { tasks }))
    }

    async fn kill(&self, req: Request<pb::KillRequest>) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        self.0
            .kill(&r.container_id, &r.exec_id, r.signal, r.all)
            .await
            .map_err(st)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn exec(&self, req: Request<pb::ExecRequest>) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        self.0
            .exec(
                &r.container_id,
                &r.exec_id,
                &r.process,
                r.terminal,
                r.stdin,
                r.inherit,
            )
            .await
            .map_err(st)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn wait(&self, req: Request<pb::ProcessRef>) -> Result<Response<pb::ExitStatus>, Status> {
        let r = req.into_inner();
        let (exit_status, exited_at) =
            self.0.wait(&r.container_id, &r.exec_id).await.map_err(st)?;
        Ok(Response::new(pb::ExitStatus {
            exit_status,
            exited_at,
        }))
    }

    async fn pids(
        &self,
        req: Request<pb::ContainerRef>,
    ) -> Result<Response<pb::PidsResponse>, Status> {
        let processes = self.0.pids(&req.into_inner().id).await.map_err(st)?;
        Ok(Response::new(pb::PidsResponse { processes }))
    }

    async fn pause(&self, req: Request<pb::ContainerRef>) -> Result<Response<pb::Empty>, Status> {
        self.0.pause(&req.into_inner().id, true).await.map_err(st)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn resume(&self, req: Request<pb::ContainerRef>) -> Result<Response<pb::Empty>, Status> {
        self.0
            .pause(&req.into_inner().id, false)
            .await
            .map_err(st)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn resize(&self, req: Request<pb::ResizeRequest>) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        self.0
            .resize(&r.container_id, &r.exec_id, r.width, r.height)
            .await
            .map_err(st)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn close_io(&self, req: Request<pb::ProcessRef>) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        self.0
            .close_io(&r.container_id, &r.exec_id)
            .await
            .map_err(st)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn stats(
        &self,
        req: Request<pb::ContainerRef>,
    ) -> Result<Response<pb::TaskStats>, Status> {
        let s = self.0.stats(&req.into_inner().id).await.map_err(st)?;
        Ok(Response::new(s))
    }

    async fn update(
        &self,
        req: Request<pb::UpdateTaskRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        self.0
            .update_task(&r.container_id, &r.resources)
            .await
            .map_err(st)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn delete(
        &self,
        req: Request<pb::ProcessRef>,
    ) -> Result<Response<pb::ExitStatus>, Status> {
        let r = req.into_inner();
        let (exit_status, exited_at) = self
            .0
            .delete_task(&r.container_id, &r.exec_id)
            .await
            .map_err(st)?;
        Ok(Response::new(pb::ExitStatus {
            exit_status,
            exited_at,
        }))
    }

    type AttachStream = BoxStream<pb::AttachOutput>;

    async fn attach(
        &self,
        req: Request<Streaming<pb::AttachInput>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        use pb::attach_input::Input;
        let mut input = req.into_inner();
        let first = input
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("attach: no start message"))?;
        let Some(Input::Start(start)) = first.input else {
            return Err(Status::invalid_argument(
                "attach: the first message must be `start`",
            ));
        };
        let mut client = self.0.shim_client(&start.container_id).map_err(st)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<spb::AttachInput>(16);
        tx.send(spb::AttachInput {
            input: Some(spb::attach_input::Input::Start(spb::AttachStart {
                exec_id: start.exec_id.clone(),
                stdout: start.stdout,
                stderr: start.stderr,
            })),
        })
        .await
        .map_err(|_| Status::internal("attach: channel closed"))?;
        tokio::spawn(async move {
            while let Ok(Some(msg)) = input.message().await {
                let conv = match msg.input {
                    Some(Input::Stdin(d)) => spb::attach_input::Input::Stdin(d),
                    Some(Input::Resize(r)) => spb::attach_input::Input::Resize(spb::Resize {
                        width: r.width,
                        height: r.height,
                    }),
                    Some(Input::CloseStdin(c)) => spb::attach_input::Input::CloseStdin(c),
                    _ => continue,
                };
                if tx
                    .send(spb::AttachInput { input: Some(conv) })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let out = client
            .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|s| Error::shim(&start.container_id, s).status())?
            .into_inner();
        let stream = out.map(|item| {
            item.map(|o| pb::AttachOutput {
                stream: o.stream,
                data: o.data,
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[derive(Clone)]
pub struct Events(pub Arc<Manager>);

#[tonic::async_trait]
impl pb::events_server::Events for Events {
    type SubscribeStream = BoxStream<pb::Envelope>;

    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let topics = req.into_inner().topics;
        let rx = self.0.subscribe();
        let stream = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(move |e| {
            let e = e.ok()?;
            (topics.is_empty() || topics.contains(&e.topic)).then_some(Ok(e))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
