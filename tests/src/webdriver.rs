//! A small WebDriver client (W3C protocol over HTTP/1.1, JSON) for driving Debian's headless
//! Chromium through `chromedriver`, and the plain HTTP client the kiosk tests use for its API.
//! Loopback only; every wait is bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{Guard, Result};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

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

/// One HTTP/1.1 request to `addr` (`host:port`); returns the status and the body. Sends
/// `Content-Type: application/json`.
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    let a = request(
        addr,
        method,
        path,
        &[("content-type", "application/json")],
        body,
    )?;
    Ok((a.status, a.body))
}

/// One HTTP/1.1 request to `addr` with exactly the header fields given (plus `Host: addr`
/// unless one is given, `Connection: close` and `Content-Length`).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Answer> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let body = body.unwrap_or("");
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{method} {path}: {e}"))?;
    // Read the header, then exactly the body it announces: a server may keep the connection
    // open despite `Connection: close` (chromedriver does).
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("{method} {path}: reading the answer: {e}"))?;
        if n == 0 {
            return Err(format!("{method} {path}: no HTTP header in the answer"));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut payload = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {path}: bad status line in {head:?}"))?;
    let fields: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = fields
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let chunked = fields
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    loop {
        let complete = match length {
            Some(len) => payload.len() >= len,
            None if chunked => payload.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("{method} {path}: reading the answer: {e}"))?;
        if n == 0 {
            break;
        }
        payload.extend_from_slice(&buf[..n]);
    }
    if let Some(len) = length {
        payload.truncate(len);
    } else if chunked {
        payload = dechunk(&payload)?;
    }
    Ok(Answer {
        status,
        headers: fields,
        body: String::from_utf8_lossy(&payload).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunked encoding")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("truncated chunk")?);
        data = data.get(size + 2..).ok_or("truncated chunk")?;
    }
}

/// GET or POST a JSON API and parse the answer.
pub fn http_json(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let text = body.map(|b| b.to_string());
    let (status, answer) = http(addr, method, path, text.as_deref())?;
    let value = serde_json::from_str(&answer)
        .map_err(|e| format!("{method} {path} answered {status} with non-JSON {answer:?}: {e}"))?;
    Ok((status, value))
}

/// A `chromedriver` process on a free loopback port.
#[derive(Debug)]
pub struct Chromedriver {
    _guard: Guard,
    addr: String,
}

impl Chromedriver {
    pub fn start() -> Result<Self> {
        // Port 0: chromedriver binds a free port itself and says which, so no other process
        // can take it between a check and its use.
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start chromedriver (scripts/setup.sh installs chromium-driver): {e}"
                )
            })?;
        let stdout = child.stdout.take().ok_or("no stdout from chromedriver")?;
        let guard = Guard::new(child, "chromedriver");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            // Keeps reading to the end, so chromedriver never blocks on a full pipe.
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(|l| l.ok())
            {
                let _ = tx.send(line);
            }
        });
        let port: u16 = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .map_err(|_| "chromedriver did not say its port within 20 s")?;
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest
                    .trim_end_matches('.')
                    .trim()
                    .parse()
                    .map_err(|e| format!("chromedriver's port in {line:?}: {e}"))?;
            }
        };
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, v)) = http_json(&addr, "GET", "/status", None) {
                if v["value"]["ready"] == true {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err("chromedriver did not become ready within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self {
            _guard: guard,
            addr,
        })
    }

    /// A new headless Chromium session.
    pub fn browser(&self) -> Result<Browser> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1280,900",
                    "--lang=ja-JP"
                ]
            }
        }}});
        let (status, v) = http_json(&self.addr, "POST", "/session", Some(caps))?;
        let id = v["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| format!("chromedriver refused a session ({status}): {v}"))?
            .to_owned();
        Ok(Browser {
            driver: self.addr.clone(),
            session: id,
        })
    }
}

/// One browser session; closed when dropped.
#[derive(Debug)]
pub struct Browser {
    driver: String,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            &self.driver,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

impl Browser {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let full = format!("/session/{}{path}", self.session);
        let (status, v) = http_json(&self.driver, method, &full, body)?;
        if status != 200 {
            return Err(format!(
                "WebDriver {method} {path} failed ({status}): {}",
                v["value"]["message"].as_str().unwrap_or("")
            ));
        }
        Ok(v["value"].clone())
    }

    pub fn goto(&self, url: &str) -> Result<()> {
        self.call("POST", "/url", Some(json!({ "url": url })))
            .map(drop)
    }

    /// The element matching `css` now, if any.
    pub fn try_find(&self, css: &str) -> Result<Option<String>> {
        let v = self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        Ok(v.as_array()
            .and_then(|a| a.first())
            .and_then(|e| e[ELEMENT].as_str())
            .map(str::to_owned))
    }

    /// Waits (bounded) until an element matches `css`.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(id) = self.try_find(css)? {
                return Ok(id);
            }
            if Instant::now() > deadline {
                let screen = self.attribute_of("body", "data-screen").unwrap_or_default();
                return Err(format!(
                    "no element {css:?} within {timeout:?} (the page shows screen {screen:?}; text: {:?})",
                    self.text("body").unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the kiosk page shows `screen` (its `body[data-screen]`).
    pub fn wait_screen(&self, screen: &str) -> Result<()> {
        self.wait_for(
            &format!("body[data-screen=\"{screen}\"]"),
            Duration::from_secs(30),
        )
        .map(drop)
    }

    /// Runs `op` on the element matching `css`, again if the page re-rendered it in between
    /// (the kiosk redraws its screen on every pushed state: a stale reference is normal).
    fn on_element<T>(&self, css: &str, op: impl Fn(&str) -> Result<T>) -> Result<T> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let id = self.wait_for(css, Duration::from_secs(15))?;
            match op(&id) {
                Err(e) if e.contains("stale element") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    pub fn click(&self, css: &str) -> Result<()> {
        self.on_element(css, |id| {
            self.call("POST", &format!("/element/{id}/click"), Some(json!({})))
                .map(drop)
        })
    }

    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        self.on_element(css, |id| {
            self.call("POST", &format!("/element/{id}/clear"), Some(json!({})))?;
            self.call(
                "POST",
                &format!("/element/{id}/value"),
                Some(json!({ "text": text })),
            )
            .map(drop)
        })
    }

    pub fn text(&self, css: &str) -> Result<String> {
        self.on_element(css, |id| {
            let v = self.call("GET", &format!("/element/{id}/text"), None)?;
            Ok(v.as_str().unwrap_or("").to_owned())
        })
    }

    /// Waits (bounded) until the text of `css` contains `want`.
    pub fn wait_text(&self, css: &str, want: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text(css)?;
            if text.contains(want) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{css} never showed {want:?} (last: {text:?})"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn attribute_of(&self, css: &str, name: &str) -> Result<String> {
        let Some(id) = self.try_find(css)? else {
            return Ok(String::new());
        };
        let v = self.call("GET", &format!("/element/{id}/attribute/{name}"), None)?;
        Ok(v.as_str().unwrap_or("").to_owned())
    }

    pub fn attribute(&self, css: &str, name: &str) -> Result<String> {
        self.on_element(css, |id| {
            let v = self.call("GET", &format!("/element/{id}/attribute/{name}"), None)?;
            Ok(v.as_str().unwrap_or("").to_owned())
        })
    }

    /// Whether the element matching `css` is enabled.
    pub fn enabled(&self, css: &str) -> Result<bool> {
        self.on_element(css, |id| {
            let v = self.call("GET", &format!("/element/{id}/enabled"), None)?;
            Ok(v.as_bool().unwrap_or(false))
        })
    }

    /// Saves a PNG of the viewport.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let v = self.call("GET", "/screenshot", None)?;
        let b64 = v.as_str().ok_or("no screenshot data")?;
        let png = decode_base64(b64)?;
        std::fs::write(path, png).map_err(|e| format!("write {}: {e}", path.display()))
    }
}

/// Standard base64 (the screenshot); the e2e crate has no base64 dependency for one use.
fn decode_base64(text: &str) -> Result<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c).ok_or("bad base64 in the screenshot")? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8h").unwrap(), b"hello!");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert!(decode_base64("a*==").is_err());
    }

    #[test]
    fn chunked_bodies_are_reassembled() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n").unwrap(),
            b"hello!"
        );
        assert!(dechunk(b"5\r\nhel").is_err());
    }
}
