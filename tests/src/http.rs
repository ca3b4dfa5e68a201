//! HTTP from the tests to the kiosk's listeners and to chromedriver: one request with exactly
//! the header fields a test gives (attack tests forge Host, Origin and cookies), and a
//! server-sent event stream followed until an event matches. reqwest speaks HTTP/1.1 and
//! eventsource-stream parses the events; one shared runtime drives both from the tests' plain
//! threads. Loopback only; every wait is bounded.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::Result;

/// How long one request may take, header and body (the kiosk's `POST /api/session` waits for a
/// card up to the `wait_seconds` it is given).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The runtime that runs the tests' HTTP and WebDriver calls. Built once; a test thread blocks
/// on it for the length of one call, so calls from several test threads run side by side.
static RUNTIME: LazyLock<std::result::Result<tokio::runtime::Runtime, String>> =
    LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("onshi-e2e-http")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the tests' HTTP runtime: {e}"))
    });

/// Runs `future` to its end on the shared runtime. Not for use inside a runtime.
pub fn block_on<F: Future>(future: F) -> Result<F::Output> {
    let runtime = RUNTIME.as_ref().map_err(Clone::clone)?;
    Ok(runtime.block_on(future))
}

/// One client for every request: no proxy (loopback only), HTTP/1.1, bounded.
static CLIENT: LazyLock<std::result::Result<reqwest::Client, String>> = LazyLock::new(|| {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build the tests' HTTP client: {e}"))
});

fn client() -> Result<&'static reqwest::Client> {
    CLIENT.as_ref().map_err(Clone::clone)
}

/// An HTTP answer: the status, the header fields (names in lower case) and the body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body)
            .map_err(|e| format!("answer {} is not JSON ({e}): {:?}", self.status, self.body))
    }
}

fn header_map(headers: &[(&str, &str)]) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("header name {name:?}: {e}"))?;
        let value =
            HeaderValue::from_str(value).map_err(|e| format!("header {name} {value:?}: {e}"))?;
        map.append(name, value);
    }
    Ok(map)
}

fn method(name: &str) -> Result<reqwest::Method> {
    reqwest::Method::from_bytes(name.as_bytes()).map_err(|e| format!("method {name:?}: {e}"))
}

/// One HTTP/1.1 request to `addr` (`host:port`) with exactly the header fields given (a `Host`
/// among them replaces the address's own), and `body` if any.
pub fn request(
    addr: &str,
    method_name: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Answer> {
    let url = format!("http://{addr}{path}");
    let mut builder = client()?
        .request(method(method_name)?, &url)
        .headers(header_map(headers)?)
        .timeout(REQUEST_TIMEOUT);
    if let Some(body) = body {
        builder = builder.body(body.to_owned());
    }
    block_on(async move {
        let answer = builder
            .send()
            .await
            .map_err(|e| format!("{method_name} {path}: {e}"))?;
        let status = answer.status().as_u16();
        let headers = answer
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = answer
            .text()
            .await
            .map_err(|e| format!("{method_name} {path}: reading the answer: {e}"))?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    })?
}

/// GET or POST a JSON API (`Content-Type: application/json`) and parse the answer.
pub fn http_json(
    addr: &str,
    method_name: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let text = body.map(|b| b.to_string());
    let a = request(
        addr,
        method_name,
        path,
        &[("content-type", "application/json")],
        text.as_deref(),
    )?;
    let value = a.json().map_err(|e| format!("{method_name} {path}: {e}"))?;
    Ok((a.status, value))
}

/// Follows the server-sent events at `addr` + `path` (a GET with `headers`) until an event
/// named `event` carries JSON data for which `done` holds, and returns that data. Fails if the
/// stream ends or `timeout` passes first, saying what the last such event carried.
pub fn follow_events(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    event: &str,
    timeout: Duration,
    mut done: impl FnMut(&Value) -> bool,
) -> Result<Value> {
    let url = format!("http://{addr}{path}");
    let request = client()?
        .get(&url)
        .headers(header_map(headers)?)
        .header("accept", "text/event-stream")
        .timeout(timeout);
    block_on(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        let answer = request
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        if !answer.status().is_success() {
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            return Err(format!("GET {path} answered {status}: {body}"));
        }
        let mut events = answer.bytes_stream().eventsource();
        let mut last = Value::Null;
        loop {
            let next = match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(next) => next,
                Err(_) => {
                    return Err(format!(
                        "no matching {event:?} event from {path} within {timeout:?} (last: {last})"
                    ))
                }
            };
            match next {
                None => return Err(format!("the event stream {path} ended (last: {last})")),
                Some(Err(e)) => {
                    return Err(format!("reading {path} (last: {last}): {e}"));
                }
                Some(Ok(e)) if e.event == event => {
                    let value: Value = serde_json::from_str(&e.data).map_err(|err| {
                        format!("{event} event is not JSON ({err}): {:?}", e.data)
                    })?;
                    if done(&value) {
                        return Ok(value);
                    }
                    last = value;
                }
                Some(Ok(_)) => {}
            }
        }
    })?
}
