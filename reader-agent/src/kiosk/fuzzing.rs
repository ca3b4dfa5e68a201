//! The body of the `kiosk_body` fuzz target (fuzz/), here so that the committed corpus is
//! replayed on stable by an ordinary test (tests/fuzz_corpus.rs) through exactly the same code.
//!
//! The input is a request body as it reaches the kiosk's two listeners. It goes through every
//! JSON request type of [`super::http`] as its handler parses it (`serde_json`, unknown fields
//! refused), and then through what the handler does with the fields before anything reaches
//! the kiosk's state machine: the method's name, [`Pin::new`], the face request's camera, the
//! base64 decoding of its image and [`Photo::parse_pgm`], and the batch's CSV
//! ([`desk::parse_csv`]). The same bytes are also tried as a PGM image and as a CSV upload.
//!
//! The request types' fields are private to `http`, so the follow-up steps read the fields
//! from a `serde_json::Value` of the same body (by name, or by position for the array form
//! serde also accepts) (equal to the typed parse whenever that
//! succeeds: the typed parse refuses duplicate fields). They mirror the handlers' code: a
//! change there must be made here too.
//!
//! [`kiosk_body`] must never panic, and checks what a successful parse promises.

use base64::Engine as _;
use onshi_jpki::Pin;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::http::{
    BatchRequest, ClinicalRequest, ConsentsRequest, FaceRequest, LoginRequest, MethodRequest,
    NumbersRequest, PinRequest, RegistrationRequest, SessionOnly, StartSession, TreatmentRequest,
    VisualRequest,
};
use crate::desk;
use crate::face::Photo;

fn parses<T: DeserializeOwned>(data: &[u8]) -> bool {
    serde_json::from_slice::<T>(data).is_ok()
}

/// A string field of the body, as the typed parse saw it: by name in an object, or by
/// position in an array (serde's derived `Deserialize` also takes a struct as the sequence of
/// its fields, so `["9f3c", "4729"]` is a `PinRequest`).
fn field<'a>(value: &'a Option<Value>, name: &str, position: usize) -> Option<&'a str> {
    match value.as_ref()? {
        Value::Object(map) => map.get(name)?.as_str(),
        Value::Array(items) => items.get(position)?.as_str(),
        _ => None,
    }
}

/// A PGM that parsed: within the bounds, and the same image once written back.
fn check_photo(photo: &Photo) {
    assert!((1..=1024).contains(&photo.width) && (1..=1024).contains(&photo.height));
    assert_eq!(photo.pixels.len(), photo.width * photo.height);
    assert_eq!(Photo::parse_pgm(&photo.to_pgm()).as_ref(), Ok(photo));
}

/// A CSV that parsed: at least one query, at most one per line (CSV ends a record at a CR as
/// at an LF), fields trimmed, no commas.
fn check_csv(text: &str, queries: &[onshi_proto::v1::NumbersQuery]) {
    assert!(!queries.is_empty());
    assert!(queries.len() <= text.split(['\n', '\r']).count());
    for q in queries {
        for f in [
            &q.insurer_number,
            &q.symbol,
            &q.number,
            &q.branch,
            &q.birth_date,
            &q.public_expense_number,
            &q.recipient_number,
        ] {
            // A comma inside a field only comes from a quoted field.
            assert!(!f.contains(',') || text.contains('"'));
            assert_eq!(f.trim(), f.as_str());
        }
    }
}

/// Tries every parser on `data` (module docs) and names those that accepted it, in a fixed
/// order: the request types (`start_session`, `method`, `pin`, …) and the steps that follow
/// (`method-choice`, `pin-valid`, `face-camera`, `face-image`, `batch-csv`), then `raw-pgm` and
/// `raw-csv` for the bytes taken whole.
pub fn kiosk_body(data: &[u8]) -> Vec<&'static str> {
    let mut accepted = Vec::new();
    let value = serde_json::from_slice::<Value>(data).ok();

    // The patient's listener. An empty body starts a session with the defaults.
    if data.is_empty() || parses::<StartSession>(data) {
        accepted.push("start_session");
    }
    if parses::<MethodRequest>(data) {
        accepted.push("method");
        if matches!(field(&value, "method", 1), Some("pin" | "face" | "visual")) {
            accepted.push("method-choice");
        }
    }
    if parses::<TreatmentRequest>(data) {
        accepted.push("treatment");
        let name = field(&value, "treatment", 1).unwrap_or_default();
        if super::flow::Treatment::from_name(name).is_some() {
            accepted.push("treatment-choice");
        }
    }
    if parses::<PinRequest>(data) {
        accepted.push("pin");
        let pin = field(&value, "pin", 1).unwrap_or_else(|| panic!("a PinRequest without its pin"));
        if let Ok(pin) = Pin::new(pin) {
            // A Pin never shows its digits.
            assert!(!format!("{pin} {pin:?}").contains(char::is_numeric));
            accepted.push("pin-valid");
        }
    }
    if parses::<FaceRequest>(data) {
        accepted.push("face");
        let camera = field(&value, "camera", 1);
        let image = field(&value, "image_pgm_base64", 2);
        match (camera, image) {
            (Some("holder" | "stranger"), None) => accepted.push("face-camera"),
            (Some("image"), Some(b64)) => {
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) {
                    if let Ok(photo) = Photo::parse_pgm(&bytes) {
                        check_photo(&photo);
                        accepted.push("face-image");
                    }
                }
            }
            _ => {}
        }
    }
    if parses::<ConsentsRequest>(data) {
        accepted.push("consents");
    }
    if parses::<RegistrationRequest>(data) {
        accepted.push("registration");
    }
    if parses::<SessionOnly>(data) {
        accepted.push("cancel");
    }

    // The staff's listener.
    if parses::<LoginRequest>(data) {
        accepted.push("login");
    }
    if parses::<VisualRequest>(data) {
        accepted.push("visual");
    }
    if parses::<NumbersRequest>(data) {
        accepted.push("numbers");
    }
    if parses::<ClinicalRequest>(data) {
        accepted.push("clinical");
    }
    if parses::<BatchRequest>(data) {
        accepted.push("batch");
        let csv =
            field(&value, "csv", 0).unwrap_or_else(|| panic!("a BatchRequest without its csv"));
        if let Ok(queries) = desk::parse_csv(csv, "the uploaded file") {
            check_csv(csv, &queries);
            accepted.push("batch-csv");
        }
    }

    // The bytes whole: a camera image, a reservations file.
    if let Ok(photo) = Photo::parse_pgm(data) {
        check_photo(&photo);
        accepted.push("raw-pgm");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(queries) = desk::parse_csv(text, "fuzz") {
            check_csv(text, &queries);
            accepted.push("raw-csv");
        }
    }
    accepted
}
