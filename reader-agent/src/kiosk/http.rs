//! The kiosk's two local web servers (docs/kiosk.md):
//!
//! - **the patient's listener**: the kiosk's screens (`/`) and the JSON API they use, which is
//!   also the scriptable API;
//! - **the staff's listener**, on its own port: the staff view (`/`), behind a log-in.
//!
//! Every request passes the [`web::guard`] first (Host allow-list, same origin, JSON on
//! anything that changes state, security headers). On top of that, the patient's page and
//! API answer only a request with the launch token, and the staff's API only a logged-in
//! staff member: the log-in's cookie *and* its secret, which the page keeps and sends itself
//! (a cookie alone is worth nothing: every port of 127.0.0.1 receives it). State is pushed to
//! the pages as server-sent events; nothing polls.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use onshi_jpki::Pin;
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};
use tokio_stream::{Stream, StreamExt};
use zeroize::{Zeroize, Zeroizing};

use super::session::{
    Action, ActionError, ConsentAnswers, Kiosk, KioskState, MethodChoice, PrescriptionChoice,
    Treatment, VisualCheck,
};
use super::staff::{DeskError, StaffDesk};
use super::staff_auth::{LoginError, StaffLogins, StaffMember};
use super::web::{self, Edge, Refusal};
use crate::desk::{ClinicalKind, Numbers};
use crate::face::{Camera, Photo};

const KIOSK_PAGE: &str = include_str!("../../assets/kiosk.html");
const KIOSK_SCRIPT: &str = include_str!("../../assets/kiosk.js");
const KIOSK_STYLE: &str = include_str!("../../assets/kiosk.css");
const STAFF_PAGE: &str = include_str!("../../assets/staff.html");
const STAFF_SCRIPT: &str = include_str!("../../assets/staff.js");
const STAFF_STYLE: &str = include_str!("../../assets/staff.css");
const I18N_SCRIPT: &str = include_str!("../../assets/i18n.js");
/// Largest request body on the patient's listener: a 1024×1024 PGM face image in base64.
const MAX_KIOSK_BODY: usize = 2 << 20;
/// Largest request body on the staff's listener: a batch CSV of 100,000 lines fits.
const MAX_STAFF_BODY: usize = 8 << 20;
/// Largest body of a request that carries a secret (the PIN, a staff password).
const MAX_SECRET_BODY: usize = 1024;

/// The patient's listener.
#[derive(Debug, Clone)]
pub struct AppState {
    pub kiosk: Kiosk,
    pub edge: Edge,
}

/// The staff's listener.
#[derive(Debug, Clone)]
pub struct StaffState {
    pub kiosk: Kiosk,
    pub staff: StaffDesk,
    pub outage: super::outage::OutageDesk,
    pub edge: Edge,
    pub logins: StaffLogins,
    /// The name of the log-in cookie (it carries the port: two kiosks on one host keep theirs).
    pub cookie_name: String,
}

fn script(body: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        body,
    )
        .into_response()
}

fn style(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], body).into_response()
}

/// The patient's screens and their API.
pub fn kiosk_router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/state", get(get_state))
        .route("/api/events", get(events))
        .route("/api/session", post(start_session))
        .route("/api/treatment", post(treatment))
        .route("/api/phone", post(phone))
        .route("/api/method", post(method))
        .route("/api/pin", post(pin))
        .route("/api/face", post(face))
        .route("/api/consents", post(consents))
        .route("/api/prescription", post(prescription))
        .route("/api/registration", post(registration))
        .route("/api/cancel", post(cancel))
        .route("/api/declaration", post(declaration))
        .route_layer(middleware::from_fn_with_state(state.clone(), with_token));
    Router::new()
        .route("/", get(kiosk_page))
        .route("/assets/i18n.js", get(|| async { script(I18N_SCRIPT) }))
        .route("/assets/kiosk.js", get(|| async { script(KIOSK_SCRIPT) }))
        .route("/assets/kiosk.css", get(|| async { style(KIOSK_STYLE) }))
        .merge(api)
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_KIOSK_BODY))
        .layer(middleware::from_fn_with_state(
            state.edge.clone(),
            web::guard,
        ))
        .with_state(state)
}

/// The staff's view, its log-in and its API.
pub fn staff_router(state: StaffState) -> Router {
    let api = Router::new()
        .route("/api/state", get(staff_kiosk_state))
        .route("/api/events", get(staff_kiosk_events))
        .route("/api/staff/confirmations", get(confirmations))
        .route("/api/staff/events", get(staff_events))
        .route("/api/staff/visual-check", post(visual_check))
        .route("/api/staff/numbers", post(numbers))
        .route("/api/staff/outage", get(outage_view))
        .route("/api/staff/outage/visits", post(outage_visit))
        .route("/api/staff/outage/acknowledge", post(outage_acknowledge))
        .route("/api/staff/medications", post(medications))
        .route("/api/staff/checkups", post(checkups))
        .route("/api/staff/batch", post(batch_submit).get(batch_list))
        .route("/api/staff/batch/{reception}", get(batch_progress))
        .route("/api/staff/batch/{reception}/results.csv", get(batch_csv))
        .route_layer(middleware::from_fn_with_state(state.clone(), logged_in));
    Router::new()
        .route("/", get(staff_page))
        .route("/assets/i18n.js", get(|| async { script(I18N_SCRIPT) }))
        .route("/assets/staff.js", get(|| async { script(STAFF_SCRIPT) }))
        .route("/assets/staff.css", get(|| async { style(STAFF_STYLE) }))
        .route("/api/me", get(me))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .merge(api)
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_STAFF_BODY))
        .layer(middleware::from_fn_with_state(
            state.edge.clone(),
            web::guard,
        ))
        .with_state(state)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such page or API")
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

/// Reads the body of a request that carries a secret into a wiped-on-drop buffer of the
/// kiosk's own, sized once (it never reallocates, so no copy is left behind), and wipes each
/// chunk the HTTP library handed over when this is its last holder. The connection is closed
/// after the answer ([`close`]), so the library's read buffer is freed too, and the process's
/// allocator wipes whatever it frees (reader-agent's `main.rs`).
async fn read_secret(body: Body) -> Result<Zeroizing<Vec<u8>>, Refusal> {
    let mut body = body;
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_SECRET_BODY));
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(web::refusal(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the body could not be read",
            ));
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let fits = buf.len() + data.len() <= MAX_SECRET_BODY;
        if fits {
            buf.extend_from_slice(&data);
        }
        wipe(data);
        if !fits {
            return Err(web::refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format!("this request's body is at most {MAX_SECRET_BODY} bytes"),
            ));
        }
    }
    Ok(buf)
}

/// Wipes a chunk of a request if nothing else holds it.
fn wipe(data: Bytes) {
    if let Ok(mut bytes) = data.try_into_mut() {
        bytes.zeroize();
    }
}

/// Asks for the connection to be closed after this answer.
fn close(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

// ---- the patient's listener ----------------------------------------------------------------

/// What `/` shows without the launch token.
const NOT_LAUNCHED: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>onshi kiosk</title></head><body><h1>Open the kiosk with its launch address</h1>\
<p>http://ADDR/?token=TOKEN, where TOKEN is in STATE-DIR/kiosk-token, readable only by the \
kiosk's user.</p></body></html>";

/// The kiosk page, only at the launch address (`/?token=…`; the token is readable only by
/// the kiosk's user): the page carries the token and sends it with every request. Another
/// local user who can reach the port but not read the token gets nothing.
async fn kiosk_page(State(app): State<AppState>, req: Request) -> Response {
    if app.edge.has_token(&req) {
        Html(app.edge.page(KIOSK_PAGE)).into_response()
    } else {
        (StatusCode::FORBIDDEN, Html(NOT_LAUNCHED)).into_response()
    }
}

/// The patient's API answers the page or a script: both send the launch token.
async fn with_token(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if app.edge.has_token(&req) {
        next.run(req).await
    } else {
        error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the kiosk's API answers a request with the kiosk's token (X-Onshi-Token, \
             docs/kiosk.md)",
        )
    }
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

fn state_events(kiosk: &Kiosk) -> impl Stream<Item = Event> + Send + 'static {
    WatchStream::new(kiosk.subscribe()).map(|state| {
        Event::default()
            .event("state")
            .json_data(&state)
            .unwrap_or_else(|_| Event::default().event("state"))
    })
}

async fn events(State(app): State<AppState>) -> impl IntoResponse {
    sse(state_events(&app.kiosk))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartSession {
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
        s.session.is_some()
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

/// 「スマートフォンで受付」: the patient holds the phone to the general-purpose reader
/// (simulated: the phone on the kiosk's `--phone` channel). The body is empty or `{}`.
async fn phone(State(app): State<AppState>, body: Bytes) -> Response {
    if !body.is_empty() {
        if let Err(e) = parse::<Empty>(&body) {
            return e.into_response();
        }
    }
    acted(app.kiosk.phone_held().await)
}

/// A JSON body with nothing in it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MethodRequest {
    session: String,
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
pub(crate) struct PinRequest {
    session: String,
    pin: String,
}

/// The PIN arrives over loopback from the page on this host: its body is read into the
/// kiosk's own wiped buffer ([`read_secret`]), the PIN goes straight into a [`Pin`] (moved to
/// the card worker, which sends VERIFY and drops it), every copy is wiped, and the
/// connection is closed after the answer. Nothing here logs it.
async fn pin(State(app): State<AppState>, req: Request) -> Response {
    let body = match read_secret(req.into_body()).await {
        Ok(b) => b,
        Err(refused) => return close(refused.into_response()),
    };
    let parsed: Result<PinRequest, _> = serde_json::from_slice(&body);
    drop(body);
    let mut req = match parsed {
        Ok(r) => r,
        Err(_) => {
            return close(error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "expected {\"session\": \"…\", \"pin\": \"NNNN\"}",
            ))
        }
    };
    let pin = Pin::new(&req.pin);
    req.pin.zeroize();
    let pin = match pin {
        Ok(p) => p,
        Err(e) => return close(error(StatusCode::BAD_REQUEST, "bad_pin", e.to_string())),
    };
    close(acted(
        app.kiosk.act(req.session, Action::EnterPin(pin)).await,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaceRequest {
    session: String,
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
pub(crate) struct ConsentsRequest {
    session: String,
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
pub(crate) struct TreatmentRequest {
    session: String,
    /// `home-visit` or `online` (the mobile mode's first screen).
    treatment: String,
}

async fn treatment(State(app): State<AppState>, body: Bytes) -> Response {
    let req: TreatmentRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let Some(treatment) = Treatment::from_name(&req.treatment) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "treatment {:?} is not one of home-visit, online",
                req.treatment
            ),
        );
    };
    acted(
        app.kiosk
            .act(req.session, Action::ChooseTreatment(treatment))
            .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PrescriptionRequest {
    session: String,
    /// `electronic` or `paper`.
    choice: String,
}

async fn prescription(State(app): State<AppState>, body: Bytes) -> Response {
    let req: PrescriptionRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let choice = match req.choice.as_str() {
        "electronic" => PrescriptionChoice::Electronic,
        "paper" => PrescriptionChoice::Paper,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("choice {other:?} is not one of electronic, paper"),
            )
        }
    };
    acted(
        app.kiosk
            .act(req.session, Action::Prescription(choice))
            .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistrationRequest {
    session: String,
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
pub(crate) struct DeclarationRequest {
    session: String,
    declaration: crate::outage::Declaration,
}

async fn declaration(State(app): State<AppState>, body: Bytes) -> Response {
    let req: DeclarationRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    acted(
        app.kiosk
            .act(req.session, Action::Declare(req.declaration))
            .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionOnly {
    session: String,
}

async fn cancel(State(app): State<AppState>, body: Bytes) -> Response {
    let req: SessionOnly = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    acted(app.kiosk.act(req.session, Action::Cancel).await)
}

// ---- the staff's listener ------------------------------------------------------------------

/// The staff page carries no secret: it asks for a log-in.
async fn staff_page() -> Html<&'static str> {
    Html(STAFF_PAGE)
}

/// The log-in a request shows: its cookie's session id and the secret the page sent.
fn credentials(app: &StaffState, req: &Request) -> Option<(String, String)> {
    let sid = web::cookie_value(req.headers(), &app.cookie_name)?;
    Some((sid.to_owned(), web::request_secret(req)?.to_owned()))
}

/// The staff member of a request's live log-in; a log-in that ended just now switches off
/// its member's visual check.
async fn member_of(app: &StaffState, credentials: Option<(String, String)>) -> Option<StaffMember> {
    let (sid, secret) = credentials?;
    match app.logins.session(&sid, &secret) {
        Ok(m) => Some(m),
        Err(not) => {
            if let Some(staff_id) = not.ended {
                app.kiosk
                    .set_visual_check(VisualCheck::OffIfBy(staff_id))
                    .await;
            }
            None
        }
    }
}

fn login_required() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "login_required",
        "log in as a staff member first",
    )
}

/// The staff's API answers a logged-in staff member only; the handlers see who
/// ([`StaffMember`]).
async fn logged_in(State(app): State<StaffState>, mut req: Request, next: Next) -> Response {
    let shown = credentials(&app, &req);
    match member_of(&app, shown).await {
        Some(m) => {
            req.extensions_mut().insert(m);
            next.run(req).await
        }
        None => login_required(),
    }
}

async fn me(State(app): State<StaffState>, req: Request) -> Response {
    let shown = credentials(&app, &req);
    match member_of(&app, shown).await {
        Some(m) => Json(json!({
            "staff_id": m.staff_id,
            "idle_timeout_seconds": app.logins.idle_timeout().as_secs(),
        }))
        .into_response(),
        None => login_required(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    staff_id: String,
    password: String,
}

async fn login(State(app): State<StaffState>, req: Request) -> Response {
    let body = match read_secret(req.into_body()).await {
        Ok(b) => b,
        Err(refused) => return close(refused.into_response()),
    };
    let parsed: Result<LoginRequest, _> = serde_json::from_slice(&body);
    drop(body);
    let Ok(mut req) = parsed else {
        return close(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"staff_id\": \"…\", \"password\": \"…\"}",
        ));
    };
    let password = Zeroizing::new(std::mem::take(&mut req.password));
    let answer = match app.logins.login(&req.staff_id, password).await {
        Ok(new) => (
            [(
                header::SET_COOKIE,
                web::cookie(&app.cookie_name, &new.session_id),
            )],
            Json(json!({
                "staff_id": req.staff_id,
                // The page keeps it (per tab, per origin) and sends it with every request.
                "token": new.secret,
                "idle_timeout_seconds": app.logins.idle_timeout().as_secs(),
            })),
        )
            .into_response(),
        Err(LoginError::Wrong) => error(
            StatusCode::UNAUTHORIZED,
            "login_failed",
            "the staff id or the password is wrong",
        ),
        Err(LoginError::Busy) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "login_busy",
            "too many log-ins at once: try again shortly",
        ),
        Err(LoginError::Throttled { seconds }) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "login_throttled",
            format!("too many wrong log-ins: try again in {seconds} s"),
        ),
        Err(LoginError::Unavailable(why)) => {
            tracing::error!("staff log-in unavailable: {why}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "login_unavailable",
                "staff log-in is not available: see the kiosk's log",
            )
        }
    };
    close(answer)
}

async fn logout(State(app): State<StaffState>, req: Request) -> Response {
    let ended = credentials(&app, &req).and_then(|(sid, secret)| app.logins.logout(&sid, &secret));
    if let Some(staff_id) = ended {
        app.kiosk
            .set_visual_check(VisualCheck::OffIfBy(staff_id))
            .await;
    }
    (
        [(header::SET_COOKIE, web::expired_cookie(&app.cookie_name))],
        Json(json!({ "logged_out": true })),
    )
        .into_response()
}

async fn staff_kiosk_state(State(app): State<StaffState>) -> Json<KioskState> {
    Json(app.kiosk.state())
}

async fn staff_kiosk_events(
    State(app): State<StaffState>,
    Extension(member): Extension<StaffMember>,
) -> impl IntoResponse {
    sse(while_logged_in(state_events(&app.kiosk), member))
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn confirmations(State(app): State<StaffState>, Query(search): Query<Search>) -> Response {
    Json(json!({ "confirmations": app.staff.today(search.q.trim()) })).into_response()
}

async fn staff_events(
    State(app): State<StaffState>,
    Extension(member): Extension<StaffMember>,
) -> impl IntoResponse {
    let stream = BroadcastStream::new(app.staff.subscribe()).filter_map(|e| {
        // A page that fell behind reloads the list; the event says so.
        let e = match e {
            Ok(e) => e,
            Err(_) => return Some(Event::default().event("lagged").data("{}")),
        };
        Event::default().event("staff").json_data(&e).ok()
    });
    sse(while_logged_in(stream, member))
}

/// Ends an event stream when its staff member's log-in ends (log-out, idle time-out, account
/// removed): the page is told `logged_out` and the stream closes.
fn while_logged_in<S>(stream: S, member: StaffMember) -> impl Stream<Item = Event> + Send + 'static
where
    S: Stream<Item = Event> + Send + 'static,
{
    let ended = WatchStream::new(member.alive)
        .filter(|alive| !alive)
        .map(|_| Err(Event::default().event("logged_out").data("{}")));
    // The page is told `logged_out`, then the stream closes.
    let mut done = false;
    stream.map(Ok).merge(ended).map_while(move |e| {
        if done {
            return None;
        }
        Some(match e {
            Ok(e) => e,
            Err(last) => {
                done = true;
                last
            }
        })
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VisualRequest {
    /// On or off. The staff id recorded is the logged-in staff member's.
    on: bool,
}

async fn visual_check(
    State(app): State<StaffState>,
    Extension(member): Extension<StaffMember>,
    body: Bytes,
) -> Response {
    let req: VisualRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let switch = if req.on {
        VisualCheck::On(member.staff_id)
    } else {
        VisualCheck::Off
    };
    Json(app.kiosk.set_visual_check(switch).await).into_response()
}

/// The outage state, the visits waiting and the disagreements found by the catch-up.
async fn outage_view(State(app): State<StaffState>) -> Response {
    match app.outage.view() {
        Ok(view) => Json(view).into_response(),
        Err(e) => desk_error(DeskError {
            result_code: "OUTAGE_STORE".into(),
            message: e.to_string(),
        }),
    }
}

/// Staff record a patient without a card on the outage path (資格申立書).
async fn outage_visit(
    State(app): State<StaffState>,
    Extension(member): Extension<StaffMember>,
    body: Bytes,
) -> Response {
    let declaration: crate::outage::Declaration = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let outage = app.outage.clone();
    let by = format!("staff:{}", member.staff_id);
    let written = tokio::task::spawn_blocking(move || outage.record(declaration, None, by)).await;
    match written {
        Ok(Ok(waiting)) => {
            Json(serde_json::json!({"recorded": true, "waiting": waiting})).into_response()
        }
        Ok(Err(e)) => {
            let status = match e {
                crate::outage::OutageError::Full { .. } => StatusCode::INSUFFICIENT_STORAGE,
                crate::outage::OutageError::Invalid(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let body = serde_json::json!({"recorded": false, "error": e.to_string()});
            (status, Json(body)).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"recorded": false, "error": e.to_string()})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcknowledgeRequest {
    /// The visit's id (its disagreement's `visit.id`).
    id: String,
}

/// Staff acknowledge a disagreement found by the catch-up (billing has corrected the claim):
/// it leaves the list and the disk. 404 when there is none for that visit.
async fn outage_acknowledge(
    State(app): State<StaffState>,
    Extension(member): Extension<StaffMember>,
    body: Bytes,
) -> Response {
    let req: AcknowledgeRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let outage = app.outage.clone();
    let done =
        tokio::task::spawn_blocking(move || outage.acknowledge(&req.id, &member.staff_id)).await;
    let (status, body) = match done {
        Ok(Ok(true)) => (StatusCode::OK, serde_json::json!({"acknowledged": true})),
        Ok(Ok(false)) => (
            StatusCode::NOT_FOUND,
            serde_json::json!({"acknowledged": false, "error": "no disagreement for that visit"}),
        ),
        Ok(Err(crate::outage::OutageError::Invalid(e))) => (
            StatusCode::BAD_REQUEST,
            serde_json::json!({"acknowledged": false, "error": e}),
        ),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"acknowledged": false, "error": e.to_string()}),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"acknowledged": false, "error": e.to_string()}),
        ),
    };
    (status, Json(body)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NumbersRequest {
    #[serde(default)]
    insurer_number: String,
    #[serde(default)]
    symbol: String,
    #[serde(default)]
    number: String,
    #[serde(default)]
    branch: String,
    birth_date: String,
    /// 医療扶助: the public-expense numbers instead of the insurance numbers.
    #[serde(default)]
    public_expense_number: String,
    #[serde(default)]
    recipient_number: String,
}

async fn numbers(State(app): State<StaffState>, body: Bytes) -> Response {
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
        as_of_date: String::new(),
        public_expense_number: req.public_expense_number.trim().to_owned(),
        recipient_number: req.recipient_number.trim().to_owned(),
    };
    Json(app.staff.confirm_numbers(&numbers).await).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClinicalRequest {
    /// The confirmation's number in today's list.
    seq: u64,
}

async fn clinical(app: StaffState, body: Bytes, kind: ClinicalKind) -> Response {
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

async fn medications(State(app): State<StaffState>, body: Bytes) -> Response {
    clinical(app, body, ClinicalKind::Medications).await
}

async fn checkups(State(app): State<StaffState>, body: Bytes) -> Response {
    clinical(app, body, ClinicalKind::Checkups).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    /// The reservations CSV (`insurer_number,symbol,number,branch,birth_date`).
    csv: String,
}

async fn batch_submit(State(app): State<StaffState>, body: Bytes) -> Response {
    let req: BatchRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match app.staff.submit_batch(&req.csv).await {
        Ok(p) => (StatusCode::ACCEPTED, Json(p)).into_response(),
        Err(e) => desk_error(e),
    }
}

async fn batch_list(State(app): State<StaffState>) -> Response {
    Json(json!({ "batches": app.staff.batches() })).into_response()
}

async fn batch_progress(State(app): State<StaffState>, Path(reception): Path<String>) -> Response {
    match app.staff.batch(&reception) {
        Some(p) => Json(p).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "batch_unknown",
            format!("no batch {reception} was submitted from this kiosk"),
        ),
    }
}

async fn batch_csv(State(app): State<StaffState>, Path(reception): Path<String>) -> Response {
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
