//! `-H tcp://…`: the API over TCP, with TLS (`--tls`, `--tlsverify` requiring client
//! certificates signed by `--tlscacert`, as dockerd). Plain TCP gives root on this host to
//! whoever reaches the port, so it is refused unless forced with `--tls=false`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Clone, Debug, Default)]
pub struct TlsOpts {
    /// --tls given: Some(true) on, Some(false) forced off, None unset.
    pub tls: Option<bool>,
    pub verify: bool,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

fn certs(p: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let v: Vec<_> = CertificateDer::pem_file_iter(p)
        .map_err(|e| anyhow::anyhow!("read certificates from {}: {e}", p.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("certificates in {}: {e}", p.display()))?;
    if v.is_empty() {
        anyhow::bail!("{}: no PEM certificate in it", p.display());
    }
    Ok(v)
}

/// The server's TLS configuration, or None for plain TCP (only when forced).
pub fn server_config(addr: &str, o: &TlsOpts) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let on = o.verify || o.tls == Some(true);
    if !on {
        if o.tls == Some(false) {
            tracing::warn!("serving the API on tcp://{addr} WITHOUT TLS: anyone who can reach it is root on this host");
            return Ok(None);
        }
        anyhow::bail!(
            "-H tcp://{addr}: refusing to serve the API unencrypted (anyone reaching the port would be root here); use --tlsverify --tlscacert CA --tlscert CERT --tlskey KEY, or --tls=false to force it"
        );
    }
    let (Some(cert), Some(key)) = (&o.cert, &o.key) else {
        anyhow::bail!("-H tcp://{addr}: TLS needs --tlscert and --tlskey");
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
    if !o.verify {
        // (dockerd warns the same way.)
        tracing::warn!("serving the API on tcp://{addr} with --tls but without --tlsverify: no client certificate is asked for, so anyone who can reach it is root on this host");
    }
    let builder = if o.verify {
        let ca =
            o.ca.as_ref()
                .ok_or_else(|| anyhow::anyhow!("--tlsverify needs --tlscacert"))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(ca)? {
            roots
                .add(c)
                .map_err(|e| anyhow::anyhow!("CA certificate {}: {e}", ca.display()))?;
        }
        let v =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| anyhow::anyhow!("client verification: {e}"))?;
        builder.with_client_cert_verifier(v)
    } else {
        builder.with_no_client_auth()
    };
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("private key {}: {e}", key.display()))?;
    let cfg = builder
        .with_single_cert(certs(cert)?, key)
        .map_err(|e| anyhow::anyhow!("certificate {}: {e}", cert.display()))?;
    Ok(Some(Arc::new(cfg)))
}

/// How long a client may take over its TLS handshake, and how many handshakes may be
/// under way at once (more wait for a place, in the kernel's backlog).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKES: usize = 256;

/// Accepts TCP connections and completes their TLS handshakes concurrently, each bounded in
/// time, so a peer that stalls its handshake holds up only itself; a failed handshake is
/// logged and skipped.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsIo, std::net::SocketAddr)>,
    local: std::net::SocketAddr,
}

type TlsIo = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

impl TlsListener {
    pub fn new(
        tcp: tokio::net::TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(16);
        let places = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(place) = places.clone().acquire_owned().await else {
                    return;
                };
                let (s, addr) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _place = place;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(s)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => tracing::info!(%addr, "TLS handshake refused: {e}"),
                        Err(_) => tracing::info!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsIo;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The accepting task is gone (the runtime is shutting down).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
