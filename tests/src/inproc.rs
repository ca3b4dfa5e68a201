//! The confirmation service in the test's own process: [`server::run`] on a listener bound to
//! `127.0.0.1:0` (the port read back from the bound socket, never chosen beforehand), on a
//! runtime of its own, with a [`ManualClock`] the test moves. For the gRPC-level tests; what
//! needs a process (the binary's command line, SIGKILL, two instances, pcscd) keeps
//! [`crate::Service`].
//!
//! The clock stands still at the time the service started until the test moves it, so time
//! in these tests (a consent's 24 hours, a rate limit's refill) passes only when they say so.
//! Tests that wait for the service's background work by polling (batches) start it with
//! [`InProcService::start_running`] instead: a clock that runs with real time, moved by the
//! same calls.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use onshi_confirm_service::clock::{Clock, ManualClock};
use onshi_confirm_service::config::Config;
use onshi_confirm_service::server;
use time::OffsetDateTime;

use crate::Result;

/// How long a stopping service may take to finish its connections before the test goes on
/// without waiting for it.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A clock a test can move.
trait MovableClock: Clock {
    fn advance(&self, by: time::Duration);
}

impl MovableClock for ManualClock {
    fn advance(&self, by: time::Duration) {
        ManualClock::advance(self, by);
    }
}

/// Real time plus an offset the test moves.
#[derive(Debug, Default)]
struct RunningClock {
    offset: std::sync::Mutex<time::Duration>,
}

impl Clock for RunningClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MovableClock for RunningClock {
    fn advance(&self, by: time::Duration) {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }
}

/// Whatever serves the confirmation service at a URL: the in-process service or the binary.
pub trait ServiceUrl {
    fn url(&self) -> String;
}

impl ServiceUrl for crate::Service {
    fn url(&self) -> String {
        crate::Service::url(self)
    }
}

impl ServiceUrl for InProcService {
    fn url(&self) -> String {
        InProcService::url(self)
    }
}

/// A running in-process service; stopped (gracefully, connections finished) when dropped.
#[derive(Debug)]
pub struct InProcService {
    pub addr: SocketAddr,
    clock: Arc<dyn MovableClock>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    stopped: mpsc::Receiver<()>,
}

impl InProcService {
    /// Serves the configuration at `config` with the clock standing at the current time.
    pub fn start(config: &Path) -> Result<Self> {
        Self::start_at(config, OffsetDateTime::now_utc())
    }

    /// Serves the configuration at `config` with the clock standing at `at`.
    pub fn start_at(config: &Path, at: OffsetDateTime) -> Result<Self> {
        Self::serve(config, Arc::new(ManualClock::new(at)))
    }

    /// Serves the configuration at `config` with a clock that runs with real time.
    pub fn start_running(config: &Path) -> Result<Self> {
        Self::serve(config, Arc::new(RunningClock::default()))
    }

    fn serve(config: &Path, clock: Arc<dyn MovableClock>) -> Result<Self> {
        let config = Config::load(config).map_err(|e| format!("{}: {e}", config.display()))?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("the bound address: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("non-blocking listener: {e}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .max_blocking_threads(usize::from(config.store_threads))
            .thread_name("inproc-service")
            .build()
            .map_err(|e| format!("the service's runtime: {e}"))?;
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = mpsc::channel::<std::result::Result<(), String>>();
        let (stopped_tx, stopped) = mpsc::channel::<()>();
        let service_clock: Arc<dyn Clock> = Arc::new(Shared(Arc::clone(&clock)));
        std::thread::Builder::new()
            .name(format!("inproc-service {addr}"))
            .spawn(move || {
                let on_ready = ready_tx.clone();
                let outcome = runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .map_err(|e| format!("listener: {e}"))?;
                    server::run(
                        &config,
                        listener,
                        service_clock,
                        async {
                            let _ = shutdown_rx.await;
                        },
                        move || {
                            let _ = on_ready.send(Ok(()));
                        },
                    )
                    .await
                    .map_err(|e| e.to_string())
                });
                // An error before ready is the start's; one after it is reported here.
                if let Err(e) = outcome {
                    if ready_tx.send(Err(e.clone())).is_err() {
                        eprintln!("in-process service {addr}: {e}");
                    }
                }
                drop(runtime);
                let _ = stopped_tx.send(());
            })
            .map_err(|e| format!("the service's thread: {e}"))?;
        match ready.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("in-process service: {e}")),
            Err(e) => return Err(format!("in-process service not ready: {e}")),
        }
        Ok(Self {
            addr,
            clock,
            shutdown: Some(shutdown),
            stopped,
        })
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The service's clock, as the service reads it.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Moves the service's clock by `by` (negative moves it back).
    pub fn advance(&self, by: time::Duration) {
        self.clock.advance(by);
    }
}

impl Drop for InProcService {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if self.stopped.recv_timeout(STOP_TIMEOUT).is_err() {
            eprintln!(
                "in-process service {}: not stopped within {STOP_TIMEOUT:?}; going on",
                self.addr
            );
        }
    }
}

/// The test's handle on the clock, as the service's `Arc<dyn Clock>`.
#[derive(Debug)]
struct Shared(Arc<dyn MovableClock>);

impl Clock for Shared {
    fn now(&self) -> OffsetDateTime {
        self.0.now()
    }
}
