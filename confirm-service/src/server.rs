//! Wiring: builds the service from a configuration and serves it on an already-bound listener
//! with TLS and required client certificates, plus gRPC health checking and reflection.

use std::future::Future;
use std::sync::Arc;

use onshi_proto::v1::confirmation_server::ConfirmationServer;
use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::audit::AuditLog;
use crate::cert_cache::CertCache;
use crate::challenge::Challenges;
use crate::clock::Clock;
use crate::config::Config;
use crate::service::{ConfirmationService, ServiceState};
use crate::store;
use crate::terminal::RateLimiter;
use crate::trust_reload::{LiveTrust, TrustFiles, Watcher};

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("trust configuration: {0}")]
    Trust(#[from] crate::validation::TrustLoadError),
    #[error("store: {0}")]
    Store(String),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}")]
    Operations(String),
}

impl ServeError {
    /// Whether the service never started because of its configuration or a file it names
    /// (as opposed to failing while serving).
    pub fn is_configuration(&self) -> bool {
        !matches!(self, ServeError::Transport(_))
    }
}

/// Builds the shared state from a configuration, and starts the thread that reloads the
/// trust files (CRLs) when they change; it ends when the state is dropped.
pub fn build_state(config: &Config, clock: Arc<dyn Clock>) -> Result<ServiceState, ServeError> {
    let reload =
        std::time::Duration::from_secs(u64::from(config.validation.reload_interval_seconds));
    let live = |files: TrustFiles| -> Result<Arc<LiveTrust>, ServeError> {
        let watcher = Watcher::new(files.clone());
        let trust = Arc::new(LiveTrust::new(files.load()?));
        if !reload.is_zero() {
            watcher.spawn(Arc::downgrade(&trust), reload).map_err(|e| {
                ServeError::Store(format!("cannot start the CRL reload thread: {e}"))
            })?;
        }
        Ok(trust)
    };
    let trust = live(config.validation.card_files())?;
    // Smartphone certificates: their own CA generation and CRLs (docs/smartphone.md).
    let phone_trust = config.validation.smartphone_files().map(live).transpose()?;
    let store = store::open(&config.store).map_err(|e| ServeError::Store(e.to_string()))?;
    let audit =
        AuditLog::start(Arc::clone(&store)).map_err(|e| ServeError::Store(e.to_string()))?;
    let challenges = Arc::new(
        Challenges::open(
            store.as_ref(),
            audit.clone(),
            time::Duration::seconds(i64::from(config.challenge_ttl_seconds)),
            clock.now(),
        )
        .map_err(|e| ServeError::Store(e.to_string()))?,
    );
    Challenges::spawn_refresh(&challenges, Arc::clone(&store), Arc::clone(&clock))
        .map_err(|e| ServeError::Store(format!("cannot start the challenge key thread: {e}")))?;
    Ok(ServiceState {
        store,
        challenges,
        trust,
        phone_trust,
        cert_cache: CertCache::new(config.validation.cache_entries),
        holders: Default::default(),
        audit,
        clock: Arc::clone(&clock),
        instance_id: instance_id(),
        terminals: Default::default(),
        rate_limiter: RateLimiter::new(config.rate_limit),
        min_face_threshold_permille: config.min_face_threshold_permille,
        quotas: crate::quota::Quotas::new(config.quotas),
        batches: crate::batch::Scheduler::new(config.batch, clock),
    })
}

/// A name for this process as a batch worker: host-unique and distinct across restarts.
fn instance_id() -> String {
    let mut bytes = [0u8; 6];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    format!("{}-{}", std::process::id(), hex::encode(bytes))
}

/// Serves until `shutdown` completes. The listener is bound by the caller, so tests bind
/// port 0 and learn the address without racing.
pub async fn run(
    config: &Config,
    listener: TcpListener,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
) -> Result<(), ServeError> {
    let state = build_state(config, clock)?;
    let service = ConfirmationService::new(state);
    let tls = crate::transport::LiveTls::new(
        crate::transport::server_config(&config.tls).map_err(ServeError::Tls)?,
    );
    // A new network CRL (a revoked terminal) takes effect for the next handshake.
    let _reload =
        AbortOnDrop(tls.reload_every(config.tls.clone(), std::time::Duration::from_secs(1)));

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ConfirmationServer<ConfirmationService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(onshi_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Tls(format!("reflection: {e}")))?;
    // Many clients (grpcurl before 1.9, older grpc_cli) still ask the v1alpha service.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(onshi_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServeError::Tls(format!("reflection: {e}")))?;
    let _metrics = match config.metrics_listen {
        None => None,
        Some(addr) => {
            let (local, task) = crate::observe::serve_metrics(addr)
                .await
                .map_err(ServeError::Operations)?;
            // On stdout like the service's own address: with port 0, this says which port.
            println!("confirm-service: metrics on http://{local}/metrics");
            tracing::info!(addr = %local, "metrics");
            Some(AbortOnDrop(task))
        }
    };
    let _plain_health = match config.health_listen {
        None => None,
        Some(addr) => Some(AbortOnDrop(
            plain_health(addr, health_service.clone()).await?,
        )),
    };

    let limits = config.limits;
    let max_message = usize::try_from(limits.max_message_bytes).unwrap_or(usize::MAX);
    // Everything that can fail at start-up has been checked. Batches left unfinished by an
    // earlier run (or a crashed instance) are picked up only now: a start refused for its
    // configuration leaves them, and its one error line, alone.
    crate::batch::resume(service.state());
    // Say we are ready.
    on_ready();
    crate::transport::http2(Server::builder(), &limits)
        .layer(crate::observe::RpcLayer)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(ConfirmationServer::new(service).max_decoding_message_size(max_message))
        .serve_with_incoming_shutdown(crate::transport::incoming(listener, tls, limits), shutdown)
        .await?;
    Ok(())
}

/// gRPC health checking alone, in plaintext, on a loopback address (orchestrators that cannot
/// present a client certificate). It reports what the TLS port's health reporter says.
async fn plain_health(
    addr: std::net::SocketAddr,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
) -> Result<tokio::task::JoinHandle<()>, ServeError> {
    if !addr.ip().is_loopback() {
        return Err(ServeError::Operations(format!(
            "health_listen {addr} is not a loopback address: the plaintext health port \
             answers anyone who can reach it"
        )));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Operations(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().map_or(addr, |a| a);
    println!("confirm-service: health on {local}");
    tracing::info!(addr = %local, "plaintext health checking");
    Ok(tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        if let Err(e) = Server::builder()
            .add_service(health)
            .serve_with_incoming(incoming)
            .await
        {
            tracing::error!(error = %e, "the plaintext health port stopped");
        }
    }))
}

/// Stops a background task when the server stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
