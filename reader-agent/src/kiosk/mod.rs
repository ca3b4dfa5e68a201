//! The kiosk: the face-recognition card reader at the counter, simulated as a local web page
//! served by the reader agent (docs/kiosk.md).
//!
//! - [`card`]: the card worker (where the PIN goes), from [`crate::pcsc_card`], whose watcher
//!   sends the insertion and removal events;
//! - [`flow`]: the reception flow as a pure step function (no I/O), with its unit tests;
//! - [`session`]: the runner that owns the flow's state and performs its effects;
//! - [`staff`]: the staff's view (資格確認端末): the day's confirmations, card-less
//!   confirmation, clinical data, batch pre-check;
//! - [`staff_auth`]: staff accounts and log-ins;
//! - [`web`]: what every request must show (Host, origin, token) and the security headers;
//! - [`http`]: the two listeners (the patient's, the staff's), their pages and JSON APIs, with
//!   server-sent events.

pub mod flow;
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod outage;
pub mod session;
pub mod staff;
pub mod staff_auth;
pub mod web;

/// The card worker, shared with the command line (it lives at the PC/SC edge).
pub use crate::pcsc_card::worker as card;

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
    /// The patient's screens (loopback only).
    pub listen: SocketAddr,
    /// The staff's view (loopback only, its own port).
    pub staff_listen: SocketAddr,
    /// A staff log-in idle this long ends.
    pub staff_idle_timeout: Duration,
    pub reader: Option<String>,
    pub service_override: Option<String>,
    pub face_threshold_permille: u16,
    /// Where the face-failure counts, the launch token and the staff accounts are kept.
    pub state_dir: PathBuf,
    pub card_timeout: Duration,
    pub idle_timeout: Duration,
    /// The reception computer's folder: each completed confirmation is written to its
    /// `face/` (docs/oqs-files.md).
    pub oqs_dir: Option<PathBuf>,
    /// The bounded wait for the service before the outage path is offered; also the bound
    /// on each outage probe and catch-up call.
    pub service_wait: Duration,
    /// How often the service is probed (and waiting outage visits caught up).
    pub outage_probe: Duration,
    /// Outage visits kept at most on this terminal.
    pub outage_capacity: usize,
    /// The mobile device of a home visit or online care: every session is a 居宅同意取得型
    /// first visit (treatment choice, then the PIN or a staff visual check).
    pub mobile: bool,
    /// The smartphone simulator channel's socket (`--phone`, docs/smartphone.md), if the
    /// kiosk offers 「スマートフォンで受付」.
    pub phone: Option<PathBuf>,
}

/// Whether the terminal `<医療機関コード>-<id>` belongs to an institution that issues
/// prescriptions, so its kiosk asks for the 電子処方箋 choice: a 医科 (point-table digit 1) or
/// 歯科 (3) institution. A pharmacy (4) receives prescriptions and does not ask; nor does a
/// kiosk whose configuration names no terminal. (Assumption: docs/domain.md.)
pub fn issues_prescriptions(terminal_name: Option<&str>) -> bool {
    let Some(code) = terminal_name.and_then(|n| n.split('-').next()) else {
        return false;
    };
    code.len() == 10 && matches!(code.as_bytes()[2], b'1' | b'3')
}

/// Loads the reader's device key (PKCS#8 DER, ECDSA P-256).
pub fn load_device_key(config: &AgentConfig) -> Result<Option<EcdsaKeyPair>, String> {
    let Some(path) = &config.device_key else {
        return Ok(None);
    };
    web::check_private(path).map_err(|e| format!("the reader's device key: {e}"))?;
    let der = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &der,
        &ring::rand::SystemRandom::new(),
    )
    .map(Some)
    .map_err(|e| format!("{} is not a PKCS#8 ECDSA P-256 key: {e}", path.display()))
}

/// Where the kiosk listens, once bound.
#[derive(Debug, Clone)]
pub struct Listening {
    pub kiosk: SocketAddr,
    pub staff: SocketAddr,
    /// The launch token's file (for scripts; readable only by the kiosk's user).
    pub token_file: PathBuf,
    /// How many staff accounts there are (none: nobody can log in yet).
    pub staff_accounts: usize,
}

async fn bind_loopback(addr: SocketAddr, what: &str) -> Result<tokio::net::TcpListener, String> {
    if !addr.ip().is_loopback() {
        return Err(format!(
            "the {what} must listen on a loopback address, not {addr}: the PIN and health \
             data cross it unencrypted, and its pages answer only to their own address"
        ));
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} for the {what}: {e}"))
}

/// Runs the kiosk until `shutdown` completes. `ready` is told where it listens.
pub async fn run(
    config: &AgentConfig,
    options: KioskOptions,
    ready: impl FnOnce(&Listening),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let device_key = load_device_key(config)?;
    let rng = ring::rand::SystemRandom::new();
    let token = web::random_hex(&rng, 32)?;
    let token_file = web::write_private(&options.state_dir, web::TOKEN_FILE, token.as_bytes())?;
    let face_failures = FaceFailures::load(&options.state_dir)?;
    let outage = outage::OutageDesk::new(
        crate::outage::OutageStore::open(&options.state_dir, options.outage_capacity)
            .map_err(|e| e.to_string())?,
    );
    let accounts = staff_auth::Accounts::in_dir(&options.state_dir);
    let staff_accounts = accounts.list()?.len();
    let logins = staff_auth::StaffLogins::new(accounts, options.staff_idle_timeout)?;
    // Connects on first use and reconnects after a failure: the kiosk starts (and shows
    // 「カードを置いてください」) even while the service is down.
    let channel = client::endpoint(config, options.service_override.as_deref())?.connect_lazy();
    let client = ConfirmationClient::new(channel.clone());
    let staff = staff::StaffDesk::new(client.clone());
    let face_files = match &options.oqs_dir {
        Some(dir) => Some(
            crate::oqs::face::FaceFiles::under(
                dir,
                crate::oqs::codec::Charset::ShiftJis,
                config
                    .terminal_name
                    .as_deref()
                    .and_then(|n| n.split('-').next())
                    .unwrap_or(""),
            )
            .map_err(|e| format!("cannot create {}/face: {e}", dir.display()))?,
        ),
        None => None,
    };
    let catch_up = outage::CatchUp {
        client: client.clone(),
        channel,
        wait: options.service_wait,
        interval: options.outage_probe,
        staff: staff.clone(),
        face_files: face_files.clone(),
    };
    let kiosk = session::start(session::KioskSetup {
        client,
        device_key,
        face_threshold_permille: options.face_threshold_permille,
        prescription_choice: issues_prescriptions(config.terminal_name.as_deref()),
        mobile: options.mobile,
        face_failures,
        card_timeout: options.card_timeout,
        idle_timeout: options.idle_timeout,
        staff: staff.clone(),
        face_files,
        outage: outage.clone(),
        service_wait: options.service_wait,
        phone: options.phone.clone(),
    });
    tokio::spawn(outage::run(outage.clone(), kiosk.clone(), catch_up));

    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = options.reader.clone();
    std::thread::Builder::new()
        .name("kiosk-pcsc-watch".into())
        .spawn(move || crate::pcsc_card::watch::watch(reader, events_tx))
        .map_err(|e| format!("cannot start the PC/SC watcher: {e}"))?;
    let forward = kiosk.clone();
    tokio::spawn(async move {
        while let Some(event) = events_rx.recv().await {
            forward.card_event(event);
        }
    });

    let listener = bind_loopback(options.listen, "kiosk's screens").await?;
    let staff_listener = bind_loopback(options.staff_listen, "staff's view").await?;
    let local = |l: &tokio::net::TcpListener| {
        l.local_addr()
            .map_err(|e| format!("cannot read the listening address: {e}"))
    };
    let listening = Listening {
        kiosk: local(&listener)?,
        staff: local(&staff_listener)?,
        token_file,
        staff_accounts,
    };
    ready(&listening);

    // Staff log-ins that went idle end; a visual check switched on by someone no longer
    // logged in goes off.
    let sweeping = logins.clone();
    let visual = kiosk.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            for staff_id in sweeping.sweep() {
                visual
                    .set_visual_check(session::VisualCheck::OffIfBy(staff_id))
                    .await;
            }
        }
    });

    let app = http::kiosk_router(http::AppState {
        kiosk: kiosk.clone(),
        edge: web::Edge::new(listening.kiosk, Some(token)),
    });
    // The staff's listener has no launch token: its page carries no secret, and each log-in
    // has its own.
    let staff_app = http::staff_router(http::StaffState {
        kiosk,
        staff,
        outage,
        edge: web::Edge::new(listening.staff, None),
        logins,
        cookie_name: format!("onshi_staff_{}", listening.staff.port()),
    });
    // The pages hold event streams open for ever, so a graceful drain would never end: on
    // shutdown the servers are simply dropped (the card worker resets a verified card as its
    // handle goes).
    tokio::select! {
        served = axum::serve(listener, app) => {
            served.map_err(|e| format!("the kiosk's web server failed: {e}"))
        }
        served = axum::serve(staff_listener, staff_app) => {
            served.map_err(|e| format!("the staff's web server failed: {e}"))
        }
        () = shutdown => Ok(()),
    }
}
