//! The kiosk's local web server: the patient's screens (`/`), the staff's view (`/staff`), and
//! the JSON API both pages use, which is also the scriptable API (docs/kiosk.md). State is
//! pushed to the pages as server-sent events; nothing polls.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use onshi_jpki::Pin;
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};
use tokio_stream::{Stream, StreamExt};
use zeroize::Zeroize;

use super::session::{Action, ActionError, ConsentAnswers, Kiosk, KioskState, MethodChoice};
use super::staff::{DeskError, StaffDesk};
use crate::desk::{ClinicalKind, Numbers};
use crate::face::{Camera, Photo};

const KIOSK_PAGE: &str = include_str!("../../assets/kiosk.html");
const STAFF_PAGE: &str = include_str!("../../assets/staff.html");
const I18N_SCRIPT: &str = include_str!("../../assets/i18n.js");
/// Largest request body: a batch CSV of 100,000 lines fits.
const MAX_BODY: usize = 8 << 20;

#[derive(Debug, Clone)]
pub struct AppState {
    pub kiosk: Kiosk,
    pub staff: StaffDesk,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Html(KIOSK_PAGE) }))
        .route("/staff", get(|| async { Html(STAFF_PAGE) }))
        .route(
            "/assets/i18n.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    I18N_SCRIPT,
                )
            }),
        )
        .route("/api/state", get(get_state))
        .route("/api/events", get(events))
        .route("/api/session", post(start_session))
        .route("/api/method", post(method))
        .route("/api/pin", post(pin))
        .route("/api/face", post(face))
        .route("/api/consents", post(consents))
        .route("/api/registration", post(registration))
        .route("/api/cancel", post(cancel))
        .route("/api/staff/confirmations", get(confirmations))
        .route("/api/staff/events", get(staff_events))
        .route("/api/staff/visual-check", post(visual_check))
        .route("/api/staff/numbers", post(numbers))
        .route("/api/staff/medications", post(medications))
        .route("/api/staff/checkups", post(checkups))
        .route("/api/staff/batch", post(batch_submit).get(batch_list))
        .route("/api/staff/batch/{reception}", get(batch_progress))
        .route("/api/staff/batch/{reception}/results.csv", get(batch_csv))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": code, "message": message.into() })),
    )
        .into_response()
}

fn acted(r: Result<KioskState, ActionError>) -> Response {
    match r {
        Ok(state) => Json(state).into_response(),
        Err(e) => (StatusCode::CONFLICT, Json(e)).into_response(),
    }
}

/// A body that is not the JSON an endpoint takes: a 400 that says what is wrong.
struct BadJson(String);

impl IntoResponse for BadJson {
    fn into_response(self) -> Response {
        error(StatusCode::BAD_REQUEST, "bad_request", self.0)
    }
}

/// Parses a JSON body.
fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, BadJson> {
    serde_json::from_slice(body).map_err(|e| BadJson(format!("invalid JSON body: {e}")))
}

async fn get_state(State(app): State<AppState>) -> Json<KioskState> {
    Json(app.kiosk.state())
}

fn sse<S>(stream: S) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    S: Stream<Item = Event> + Send + 'static,
{
    Sse::new(stream.map(Ok)).keep_alive(KeepAlive::default())
}

async fn events(State(app): State<AppState>) -> impl IntoResponse {
    let stream = WatchStream::new(app.kiosk.subscribe()).map(|state| {
        Event::default()
            .event("state")
            .json_data(&state)
            .unwrap_or_else(|_| Event::default().event("state"))
    });
    sse(stream)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartSession {
    /// How long to wait for a card to be placed and read, seconds (default 30, at most 600).
    #[serde(default)]
    wait_seconds: Option<u64>,
}

/// Waits until a card has been placed and read (a session is at its first screen) and
/// returns that state.
async fn start_session(State(app): State<AppState>, body: Bytes) -> Response {
    let req: StartSession = if body.is_empty() {
        StartSession { wait_seconds: None }
    } else {
        match parse(&body) {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        }
    };
    let wait = Duration::from_secs(req.wait_seconds.unwrap_or(30).min(600));
    let mut rx = app.kiosk.subscribe();
    let ready = |s: &KioskState| {
        s.session > 0
            && !matches!(
                s.screen,
                super::session::Screen::InsertCard | super::session::Screen::Working { .. }
            )
    };
    let outcome = tokio::time::timeout(wait, rx.wait_for(ready)).await;
    match outcome {
        Ok(Ok(state)) => Json(state.clone()).into_response(),
        Ok(Err(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopped",
            "the kiosk has stopped",
        ),
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            "no_card",
            format!("no card was placed and read within {} s", wait.as_secs()),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MethodRequest {
    session: Option<u64>,
    /// `pin`, `face` or `visual`.
    method: String,
}

async fn method(State(app): State<AppState>, body: Bytes) -> Response {
    let req: MethodRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let choice = match req.method.as_str() {
        "pin" => MethodChoice::Pin,
        "face" => MethodChoice::Face,
        "visual" => MethodChoice::Visual,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("method {other:?} is not one of pin, face, visual"),
            )
        }
    };
    acted(
        app.kiosk
            .act(req.session, Action::ChooseMethod(choice))
            .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinRequest {
    session: Option<u64>,
    pin: String,
}

/// The PIN arrives over loopback from the page on this host and goes straight into a
/// [`Pin`]; the request's buffers are wiped; nothing here logs it.
async fn pin(State(app): State<AppState>, body: Bytes) -> Response {
    let parsed: Result<PinRequest, _> = serde_json::from_slice(&body);
    // Wipe the request body if this handler holds its only reference.
    if let Ok(mut bytes) = body.try_into_mut() {
        bytes.zeroize();
    }
    let mut req = match parsed {
        Ok(r) => r,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "expected {\"session\": N, \"pin\": \"NNNN\"}",
            )
        }
    };
    let pin = Pin::new(&req.pin);
    req.pin.zeroize();
    let pin = match pin {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_pin", e.to_string()),
    };
    acted(app.kiosk.act(req.session, Action::EnterPin(pin)).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaceRequest {
    session: Option<u64>,
    /// `holder`, `stranger`, or `image` with `image_pgm_base64`.
    camera: String,
    #[serde(default)]
    image_pgm_base64: Option<String>,
}

async fn face(State(app): State<AppState>, body: Bytes) -> Response {
    let req: FaceRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let camera = match (req.camera.as_str(), &req.image_pgm_base64) {
        ("holder", None) => Camera::Holder,
        ("stranger", None) => Camera::Stranger,
        ("image", Some(b64)) => {
            let bytes = match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(b) => b,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_image",
                        format!("image_pgm_base64 is not base64: {e}"),
                    )
                }
            };
            match Photo::parse_pgm(&bytes) {
                Ok(p) => Camera::Image(p),
                Err(e) => return error(StatusCode::BAD_REQUEST, "bad_image", e),
            }
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "camera is \"holder\", \"stranger\", or \"image\" with image_pgm_base64",
            )
        }
    };
    acted(app.kiosk.act(req.session, Action::Face(camera)).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentsRequest {
    session: Option<u64>,
    #[serde(flatten)]
    answers: ConsentAnswers,
}

async fn consents(State(app): State<AppState>, body: Bytes) -> Response {
    let req: ConsentsRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    acted(
        app.kiosk
            .act(req.session, Action::Consents(req.answers))
            .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrationRequest {
    session: Option<u64>,
    accept: bool,
}

async fn registration(State(app): State<AppState>, body: Bytes) -> Response {
    let req: RegistrationRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    acted(
        app.kiosk
            .act(req.session, Action::Register(req.accept))
            .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionOnly {
    session: Option<u64>,
}

async fn cancel(State(app): State<AppState>, body: Bytes) -> Response {
    let req: SessionOnly = if body.is_empty() {
        SessionOnly { session: None }
    } else {
        match parse(&body) {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        }
    };
    acted(app.kiosk.act(req.session, Action::Cancel).await)
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn confirmations(State(app): State<AppState>, Query(search): Query<Search>) -> Response {
    Json(json!({ "confirmations": app.staff.today(search.q.trim()) })).into_response()
}

async fn staff_events(State(app): State<AppState>) -> impl IntoResponse {
    let stream = BroadcastStream::new(app.staff.subscribe()).filter_map(|e| {
        // A page that fell behind reloads the list; the event says so.
        let e = match e {
            Ok(e) => e,
            Err(_) => return Some(Event::default().event("lagged").data("{}")),
        };
        Event::default().event("staff").json_data(&e).ok()
    });
    sse(stream)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VisualRequest {
    /// The staff member's id (1–32 printable ASCII characters); null switches it off.
    staff_id: Option<String>,
}

async fn visual_check(State(app): State<AppState>, body: Bytes) -> Response {
    let req: VisualRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let staff_id = req.staff_id.map(|s| s.trim().to_owned());
    if let Some(id) = &staff_id {
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_staff_id",
                "a staff id is 1 to 32 printable ASCII characters (no spaces)",
            );
        }
    }
    Json(app.kiosk.set_visual_check(staff_id).await).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NumbersRequest {
    insurer_number: String,
    #[serde(default)]
    symbol: String,
    number: String,
    #[serde(default)]
    branch: String,
    birth_date: String,
}

async fn numbers(State(app): State<AppState>, body: Bytes) -> Response {
    let req: NumbersRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let numbers = Numbers {
        insurer_number: req.insurer_number.trim().to_owned(),
        symbol: req.symbol.trim().to_owned(),
        number: req.number.trim().to_owned(),
        branch: req.branch.trim().to_owned(),
        birth_date: req.birth_date.trim().to_owned(),
    };
    Json(app.staff.confirm_numbers(&numbers).await).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClinicalRequest {
    /// The confirmation's number in today's list.
    seq: u64,
}

async fn clinical(app: AppState, body: Bytes, kind: ClinicalKind) -> Response {
    let req: ClinicalRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match app.staff.clinical(req.seq, kind).await {
        Ok(data) => Json(data).into_response(),
        Err(e) => desk_error(e),
    }
}

fn desk_error(e: DeskError) -> Response {
    let status = if e.result_code == onshi_proto::v1::ResultCode::BadRequest.as_str_name() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, Json(e)).into_response()
}

async fn medications(State(app): State<AppState>, body: Bytes) -> Response {
    clinical(app, body, ClinicalKind::Medications).await
}

async fn checkups(State(app): State<AppState>, body: Bytes) -> Response {
    clinical(app, body, ClinicalKind::Checkups).await
}

/// The body is the reservations CSV itself (`insurer_number,symbol,number,branch,birth_date`).
async fn batch_submit(State(app): State<AppState>, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the CSV is not UTF-8",
        );
    };
    match app.staff.submit_batch(text).await {
        Ok(p) => (StatusCode::ACCEPTED, Json(p)).into_response(),
        Err(e) => desk_error(e),
    }
}

async fn batch_list(State(app): State<AppState>) -> Response {
    Json(json!({ "batches": app.staff.batches() })).into_response()
}

async fn batch_progress(State(app): State<AppState>, Path(reception): Path<String>) -> Response {
    match app.staff.batch(&reception) {
        Some(p) => Json(p).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "batch_unknown",
            format!("no batch {reception} was submitted from this kiosk"),
        ),
    }
}

async fn batch_csv(State(app): State<AppState>, Path(reception): Path<String>) -> Response {
    match app.staff.batch_csv(&reception) {
        Some(csv) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"batch-{reception}.csv\""),
                ),
            ],
            csv,
        )
            .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_ready",
            format!("batch {reception} has no results yet (or was not submitted here)"),
        ),
    }
}
