//! The service's front door: who gets a connection, for how long, and what a connection may
//! ask of the HTTP/2 server behind it (docs/security.md, "The confirmation service").
//!
//! - **Before authentication** a peer is a stranger. Connections are counted against
//!   [`LimitsConfig::max_connections`] (accepting pauses at the cap, so the process never runs
//!   out of descriptors: the default stays below the descriptor limit), each gets TCP
//!   keepalive, and its TLS handshake, which demands a terminal's client certificate, must
//!   finish within [`LimitsConfig::handshake_timeout_seconds`] or the connection is dropped.
//!   Handshakes run in their own tasks, so a slow one holds nobody else up.
//! - **After authentication** the HTTP/2 server advertises `max_concurrent_streams`, bounds
//!   header lists and message sizes, answers each request within a time-out, pings idle
//!   connections and closes connections past a maximum age ([`http2`]).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::config::{LimitsConfig, TlsConfig};

/// Descriptors kept free for the store, the trust files and the process itself when the
/// connection cap is derived from the descriptor limit.
const RESERVED_DESCRIPTORS: u64 = 64;

/// The connection cap: the configured one, or (0) one below the process's descriptor limit.
pub fn max_connections(limits: &LimitsConfig) -> usize {
    let by_descriptors = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(u64::MAX, |n| n.saturating_sub(RESERVED_DESCRIPTORS).max(1));
    let wanted = if limits.max_connections == 0 {
        crate::config::DEFAULT_MAX_CONNECTIONS
    } else {
        u64::from(limits.max_connections)
    };
    usize::try_from(wanted.min(by_descriptors)).unwrap_or(usize::MAX)
}

fn pem_error(path: &std::path::Path, what: &str, e: impl std::fmt::Display) -> String {
    format!("{}: {what}: {e}", path.display())
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The server's TLS configuration from the files `[tls]` names: its certificate chain and key,
/// the network CA whose terminal certificates it requires, and the network CA's CRL if one is
/// configured (a revoked terminal certificate fails the handshake).
pub fn server_config(tls: &TlsConfig) -> Result<ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut read(&tls.certificate)?.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| pem_error(&tls.certificate, "not PEM certificates", e))?;
    if chain.is_empty() {
        return Err(format!(
            "{} holds no certificate",
            tls.certificate.display()
        ));
    }
    crate::keyfile::check_private(&tls.private_key)?;
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut read(&tls.private_key)?.as_slice())
            .map_err(|e| pem_error(&tls.private_key, "not a PEM private key", e))?
            .ok_or_else(|| format!("{} holds no private key", tls.private_key.display()))?;
    let mut roots = RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut read(&tls.client_ca)?.as_slice()) {
        let ca = ca.map_err(|e| pem_error(&tls.client_ca, "not PEM certificates", e))?;
        roots
            .add(ca)
            .map_err(|e| pem_error(&tls.client_ca, "not a usable CA certificate", e))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{} holds no CA certificate",
            tls.client_ca.display()
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if let Some(crl_path) = &tls.client_crl {
        verifier = verifier.with_crls(read_crls(crl_path)?);
    }
    let verifier = verifier
        .build()
        .map_err(|e| format!("the terminals' verifier cannot be built: {e}"))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "{} and {} cannot be used together: {e}",
                tls.certificate.display(),
                tls.private_key.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The CRLs of a file, PEM or DER.
fn read_crls(path: &std::path::Path) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let bytes = read(path)?;
    if bytes.starts_with(b"-----") {
        let crls: Vec<_> = rustls_pemfile::crls(&mut bytes.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| pem_error(path, "not PEM CRLs", e))?;
        if crls.is_empty() {
            return Err(format!("{} holds no CRL", path.display()));
        }
        Ok(crls)
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes)])
    }
}

/// The TLS configuration in force, replaced when the files change (a new network CRL).
#[derive(Clone)]
pub struct LiveTls {
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl std::fmt::Debug for LiveTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTls").finish_non_exhaustive()
    }
}

impl LiveTls {
    pub fn new(config: ServerConfig) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(config))),
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        TlsAcceptor::from(config)
    }

    pub fn replace(&self, config: ServerConfig) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    /// Re-reads the `[tls]` files every `interval` when one of them changed, for as long as
    /// the returned task runs; a file that cannot be used keeps the configuration in force
    /// (and says so).
    pub fn reload_every(&self, tls: TlsConfig, interval: Duration) -> tokio::task::JoinHandle<()> {
        let live = self.clone();
        tokio::spawn(async move {
            let stamp = |tls: &TlsConfig| {
                let mut files = vec![&tls.certificate, &tls.private_key, &tls.client_ca];
                files.extend(tls.client_crl.as_ref());
                files
                    .into_iter()
                    .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
                    .collect::<Vec<_>>()
            };
            let mut seen = stamp(&tls);
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                let now = stamp(&tls);
                if now == seen {
                    continue;
                }
                seen = now;
                match server_config(&tls) {
                    Ok(config) => {
                        live.replace(config);
                        tracing::info!("TLS files reloaded (terminal CRL in force)");
                    }
                    Err(e) => tracing::error!(
                        "TLS files changed but cannot be used, kept the previous ones: {e}"
                    ),
                }
            }
        })
    }
}

/// One accepted, authenticated connection; it holds its place under the connection cap
/// until it is dropped.
pub struct Conn {
    io: TlsStream<TcpStream>,
    _place: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        crate::observe::connection(-1.0);
    }
}

impl Connected for Conn {
    type ConnectInfo = <TlsStream<TcpStream> as Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Accepts connections on `listener` as the module says, yielding authenticated ones. The
/// accepting task ends when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: LiveTls,
    limits: LimitsConfig,
) -> ReceiverStream<io::Result<Conn>> {
    let cap = max_connections(&limits);
    let places = Arc::new(Semaphore::new(cap));
    let handshake = Duration::from_secs(u64::from(limits.handshake_timeout_seconds.max(1)));
    let keepalive = (limits.tcp_keepalive_seconds > 0).then(|| {
        socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(u64::from(limits.tcp_keepalive_seconds)))
            .with_interval(Duration::from_secs(10))
    });
    let (tx, rx) = mpsc::channel(64);
    tracing::info!(
        max_connections = cap,
        handshake_timeout_s = handshake.as_secs(),
        "accepting connections"
    );
    tokio::spawn(async move {
        loop {
            let place = tokio::select! {
                p = places.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                () = tx.closed() => return,
            };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = tx.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or memory: wait instead of spinning on the error.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Small gRPC frames: without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms.
            let _ = tcp.set_nodelay(true);
            if let Some(k) = &keepalive {
                let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(k);
            }
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                    Ok(Ok(io)) => {
                        crate::observe::connection(1.0);
                        let _ = tx.send(Ok(Conn { io, _place: place })).await;
                    }
                    // Logged with the peer's address and the reason (no certificate, an
                    // unknown or revoked one): no person data passes a terminal's handshake.
                    Ok(Err(e)) => {
                        crate::observe::handshake_failed("refused");
                        tracing::warn!(%peer, "TLS handshake refused: {e}");
                    }
                    Err(_) => {
                        crate::observe::handshake_failed("timeout");
                        tracing::info!(%peer, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// The HTTP/2 server's limits (see the module).
pub fn http2(builder: tonic::transport::Server, limits: &LimitsConfig) -> tonic::transport::Server {
    let secs = |s: u32| Duration::from_secs(u64::from(s));
    let mut b = builder
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_header_list_size(limits.max_header_list_bytes)
        .http2_keepalive_interval(
            (limits.http2_keepalive_seconds > 0).then(|| secs(limits.http2_keepalive_seconds)),
        )
        .http2_keepalive_timeout(Some(Duration::from_secs(10)));
    if limits.request_timeout_seconds > 0 {
        b = b.timeout(secs(limits.request_timeout_seconds));
    }
    if limits.max_connection_age_seconds > 0 {
        b = b
            .max_connection_age(secs(limits.max_connection_age_seconds))
            .max_connection_age_grace(secs(30));
    }
    b
}
