//! Driving Debian's headless Chromium through `chromedriver` with a kept WebDriver client
//! (fantoccini, the W3C protocol over plain HTTP to loopback), wrapped so the kiosk tests read
//! as plain blocking steps. Every wait is bounded.

use std::future::Future;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::http::{block_on, http_json};
use crate::{forward_lines, Guard, Result};

/// A `chromedriver` process on a free loopback port.
#[derive(Debug)]
pub struct Chromedriver {
    _guard: Guard,
    addr: String,
}

impl Chromedriver {
    /// Starts chromedriver; tries again (three attempts in all) when one exits before it says
    /// its port, and says what it printed and how it ended when none starts.
    pub fn start() -> Result<Self> {
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            match Self::start_once()? {
                Ok(started) => return Ok(started),
                Err(why) => {
                    eprintln!("chromedriver attempt {attempt} of 3 failed: {why}");
                    failures.push(why);
                }
            }
        }
        Err(format!(
            "chromedriver did not start in 3 attempts: {}",
            failures.join("; ")
        ))
    }

    /// One attempt: the outer error is final (chromedriver cannot be run at all), the inner
    /// one is worth another attempt.
    fn start_once() -> Result<std::result::Result<Self, String>> {
        // Port 0: chromedriver binds a free port itself and says which, so no other process
        // can take it between a check and its use.
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start chromedriver (scripts/setup.sh installs chromium-driver): {e}"
                )
            })?;
        let stdout = child.stdout.take().ok_or("no stdout from chromedriver")?;
        let stderr = child.stderr.take().ok_or("no stderr from chromedriver")?;
        let mut guard = Guard::new(child, "chromedriver");
        let (tx, rx) = std::sync::mpsc::channel();
        // Both streams keep being read to the end, so chromedriver never blocks on a full pipe.
        forward_lines(stdout, tx.clone());
        forward_lines(stderr, tx);
        let mut said = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let port: u16 = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    return Ok(Err(format!(
                        "it did not say its port within 20 s; it printed {said:?}"
                    )))
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let status = guard
                        .wait(Duration::from_secs(5))
                        .map(|s| s.to_string())
                        .unwrap_or_else(|e| e);
                    return Ok(Err(format!(
                        "it closed its output before saying its port ({status}); it printed \
                         {said:?}"
                    )));
                }
            };
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest
                    .trim_end_matches('.')
                    .trim()
                    .parse()
                    .map_err(|e| format!("chromedriver's port in {line:?}: {e}"))?;
            }
            said.push(line);
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
                return Ok(Err(format!(
                    "it said port {port} but was not ready within 20 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Ok(Self {
            _guard: guard,
            addr,
        }))
    }

    /// A new headless Chromium session.
    pub fn browser(&self) -> Result<Browser> {
        let caps = json!({
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
        });
        let serde_json::Value::Object(caps) = caps else {
            return Err("capabilities are not an object".into());
        };
        let url = format!("http://{}", self.addr);
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        let client = block_on(async move { builder.connect(&url).await })?
            .map_err(|e| format!("chromedriver refused a session: {e}"))?;
        Ok(Browser { client })
    }
}

/// One browser session; closed when dropped.
#[derive(Debug)]
pub struct Browser {
    client: Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let client = self.client.clone();
        let _ = block_on(async move { client.close().await });
    }
}

impl Browser {
    /// Runs one WebDriver command; `what` names it in the error.
    fn run<T>(
        &self,
        what: &str,
        command: impl Future<Output = std::result::Result<T, CmdError>>,
    ) -> Result<T> {
        block_on(command)?.map_err(|e| format!("WebDriver {what}: {e}"))
    }

    pub fn goto(&self, url: &str) -> Result<()> {
        self.run("goto", self.client.goto(url))
    }

    fn find(&self, css: &str) -> Result<Option<Element>> {
        let all = self.run(
            &format!("find {css:?}"),
            self.client.find_all(Locator::Css(css)),
        )?;
        Ok(all.into_iter().next())
    }

    /// The id of the element matching `css` now, if any.
    pub fn try_find(&self, css: &str) -> Result<Option<String>> {
        Ok(self.find(css)?.map(|e| e.element_id().to_string()))
    }

    fn wait_element(&self, css: &str, timeout: Duration) -> Result<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(element) = self.find(css)? {
                return Ok(element);
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

    /// Waits (bounded) until an element matches `css`; returns its id.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Result<String> {
        Ok(self.wait_element(css, timeout)?.element_id().to_string())
    }

    /// Waits until the kiosk page shows `screen` (its `body[data-screen]`).
    pub fn wait_screen(&self, screen: &str) -> Result<()> {
        self.wait_element(
            &format!("body[data-screen=\"{screen}\"]"),
            Duration::from_secs(30),
        )
        .map(drop)
    }

    /// Runs `op` on the element matching `css`, again if the page re-rendered it in between
    /// (the kiosk redraws its screen on every pushed state: a stale reference is normal).
    fn on_element<T, F, Fut>(&self, what: &str, css: &str, op: F) -> Result<T>
    where
        F: Fn(Element) -> Fut,
        Fut: Future<Output = std::result::Result<T, CmdError>>,
    {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let element = self.wait_element(css, Duration::from_secs(15))?;
            match block_on(op(element))? {
                Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(format!("WebDriver {what} {css:?}: {e}")),
                Ok(value) => return Ok(value),
            }
        }
    }

    pub fn click(&self, css: &str) -> Result<()> {
        self.on_element("click", css, |e| async move { e.click().await.map(drop) })
    }

    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        self.on_element("type into", css, |e| async move {
            e.clear().await?;
            e.send_keys(text).await
        })
    }

    pub fn text(&self, css: &str) -> Result<String> {
        self.on_element("text of", css, |e| async move { e.text().await })
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

    /// The attribute `name` of the element matching `css` now ("" if there is none).
    fn attribute_of(&self, css: &str, name: &str) -> Result<String> {
        let Some(element) = self.find(css)? else {
            return Ok(String::new());
        };
        Ok(self
            .run(&format!("attribute {name} of {css:?}"), element.attr(name))?
            .unwrap_or_default())
    }

    pub fn attribute(&self, css: &str, name: &str) -> Result<String> {
        self.on_element("attribute of", css, |e| async move {
            Ok(e.attr(name).await?.unwrap_or_default())
        })
    }

    /// Whether the element matching `css` is enabled.
    pub fn enabled(&self, css: &str) -> Result<bool> {
        self.on_element("enabled", css, |e| async move { e.is_enabled().await })
    }

    /// Saves a PNG of the viewport.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let png = self.run("screenshot", self.client.screenshot())?;
        std::fs::write(path, png).map_err(|e| format!("write {}: {e}", path.display()))
    }
}
