//! The kiosk: the face-recognition card reader at the counter, simulated as a local web page
//! served by the reader agent (docs/kiosk.md).
//!
//! - [`card`]: PC/SC insertion and removal events and the card worker (where the PIN goes);
//! - [`session`]: the reception flow as one state machine;
//! - [`staff`]: the staff's view (資格確認端末): the day's confirmations, card-less
//!   confirmation, clinical data, batch pre-check;
//! - [`http`]: the pages and the JSON API, with server-sent events.

pub mod card;
pub mod http;
pub mod session;
pub mod staff;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use onshi_proto::v1::confirmation_client::ConfirmationClient;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

use crate::client;
use crate::config::AgentConfig;
use crate::face::FaceFailures;

/// How the kiosk runs.
#[derive(Debug, Clone)]
pub struct KioskOptions {
    pub listen: SocketAddr,
    pub reader: Option<String>,
    pub service_override: Option<String>,
    pub face_threshold_permille: u16,
    /// Where the face-failure counts are kept.
    pub state_dir: PathBuf,
    pub card_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Loads the reader's device key (PKCS#8 DER, ECDSA P-256).
pub fn load_device_key(config: &AgentConfig) -> Result<Option<EcdsaKeyPair>, String> {
    let Some(path) = &config.device_key else {
        return Ok(None);
    };
    let der = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &der,
        &ring::rand::SystemRandom::new(),
    )
    .map(Some)
    .map_err(|e| format!("{} is not a PKCS#8 ECDSA P-256 key: {e}", path.display()))
}

/// Runs the kiosk until `shutdown` completes. `ready` is told the address it listens on.
pub async fn run(
    config: &AgentConfig,
    options: KioskOptions,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let device_key = load_device_key(config)?;
    std::fs::create_dir_all(&options.state_dir)
        .map_err(|e| format!("cannot create {}: {e}", options.state_dir.display()))?;
    let face_failures = FaceFailures::load(&options.state_dir)?;
    // Connects on first use and reconnects after a failure: the kiosk starts (and shows
    // 「カードを置いてください」) even while the service is down.
    let channel = client::endpoint(config, options.service_override.as_deref())?.connect_lazy();
    let client = ConfirmationClient::new(channel);
    let staff = staff::StaffDesk::new(client.clone());
    let kiosk = session::start(session::KioskSetup {
        client,
        device_key,
        face_threshold_permille: options.face_threshold_permille,
        face_failures,
        card_timeout: options.card_timeout,
        idle_timeout: options.idle_timeout,
        staff: staff.clone(),
    });

    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = options.reader.clone();
    std::thread::Builder::new()
        .name("kiosk-pcsc-watch".into())
        .spawn(move || card::watch(reader, events_tx))
        .map_err(|e| format!("cannot start the PC/SC watcher: {e}"))?;
    let forward = kiosk.clone();
    tokio::spawn(async move {
        while let Some(event) = events_rx.recv().await {
            forward.card_event(event);
        }
    });

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    ready(addr);
    let app = http::router(http::AppState { kiosk, staff });
    // The pages hold event streams open for ever, so a graceful drain would never end: on
    // shutdown the server is simply dropped (the card worker resets a verified card as its
    // handle goes).
    tokio::select! {
        served = axum::serve(listener, app) => {
            served.map_err(|e| format!("the kiosk's web server failed: {e}"))
        }
        () = shutdown => Ok(()),
    }
}
