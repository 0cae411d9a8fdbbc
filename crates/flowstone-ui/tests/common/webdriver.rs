//! A small W3C WebDriver client for Debian's chromedriver, over [`crate::common::http`]: the dozen
//! commands the browser suite uses (navigate, find, click, type, read, run a script, pointer
//! actions, screenshots). Hand-written rather than a client crate because those bring an HTTP
//! client stack (hyper's client, TLS) the workspace does not otherwise build, for a protocol
//! that is plain JSON over HTTP to a process on this machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::http;

/// Where Debian puts the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The key W3C WebDriver names element references by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether the browser is installed; when not, under `CI=true` this fails loudly, otherwise it
/// prints that the suite is skipped and returns false.
pub fn browser_available() -> bool {
    let present =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if present {
        return true;
    }
    let message = format!(
        "{CHROMIUM} or {CHROMEDRIVER} is missing: install Debian's chromium and chromium-driver \
         (apt-get install -y chromium chromium-driver)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the browser suite must run under CI: {message}");
    }
    eprintln!("SKIPPED the browser suite: {message}");
    false
}

/// A chromedriver process and one headless Chromium session; both end on [`Browser::quit`]
/// (or when dropped: the driver is killed with the test).
pub struct Browser {
    driver: tokio::process::Child,
    addr: SocketAddr,
    session: String,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free port and opens a session with a `width`×`height` window.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                let status = http::request(addr, "GET", "/status", &[], None).await;
                let ready: Value = serde_json::from_str(&status.body).unwrap_or_default();
                if ready["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                         format!("--window-size={width},{height}")],
            }
        }}});
        let reply = send(addr, "POST", "/session", Some(&capabilities)).await;
        let session = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver opened no session: {reply}"))
            .to_owned();
        Browser {
            driver,
            addr,
            session,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        send(self.addr, method, &path, body).await
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({ "url": url })))
            .await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call("GET", "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Waits up to 10 s for the URL to contain `part` (after a navigation that a click or a
    /// script started: WebDriver's click does not always wait for it).
    pub async fn wait_for_url(&self, part: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let url = self.url().await;
            if url.contains(part) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still at {url}, not at ...{part}..."
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's title.
    pub async fn title(&self) -> String {
        self.call("GET", "/title", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The elements matching `css`.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self
            .call(
                "POST",
                "/elements",
                Some(&json!({"using": "css selector", "value": css})),
            )
            .await;
        found
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| Element(e[ELEMENT].as_str().unwrap().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.find_all(css).await.into_iter().next() {
                return e;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no element '{css}' on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the first element matching `css` (found again if it went stale between
    /// being found and read, as when the page was still being replaced).
    pub async fn text_of(&self, css: &str) -> String {
        self.text_containing(css, "").await
    }

    /// The text of the first element matching `css` once it contains `needle`, looked up
    /// afresh each time: after a click that navigates, the element found first may belong to
    /// the page being left (and go stale before its text is read).
    pub async fn text_containing(&self, css: &str, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.find_all(css).await.into_iter().next() {
                let path = format!("/session/{}/element/{}/text", self.session, e.0);
                if let Some(text) = try_send(self.addr, "GET", &path).await
                    && let Some(text) = text.as_str()
                    && text.contains(needle)
                {
                    return text.to_owned();
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no '{css}' containing '{needle}' on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An attribute of the element.
    pub async fn attribute(&self, e: &Element, name: &str) -> Option<String> {
        let v = self
            .call("GET", &format!("/element/{}/attribute/{name}", e.0), None)
            .await;
        v.as_str().map(str::to_owned)
    }

    /// Clicks the element (and waits for a navigation it starts).
    pub async fn click(&self, e: &Element) {
        self.call("POST", &format!("/element/{}/click", e.0), Some(&json!({})))
            .await;
    }

    /// Types `text` into the element.
    pub async fn type_into(&self, e: &Element, text: &str) {
        self.call(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(&json!({ "text": text })),
        )
        .await;
    }

    /// Clicks at (`x`, `y`) pixels from the element's top-left corner, which must be in the
    /// viewport (the page is not scrolled).
    pub async fn click_at(&self, e: &Element, x: i64, y: i64) {
        let rect = self
            .call("GET", &format!("/element/{}/rect", e.0), None)
            .await;
        // From the viewport's origin: an element origin counts from the centre of the
        // element's visible part, which a canvas taller than the window makes awkward.
        let (left, top) = (
            rect["x"].as_f64().unwrap() as i64,
            rect["y"].as_f64().unwrap() as i64,
        );
        let actions = json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "duration": 0, "origin": "viewport", "x": left + x, "y": top + y},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerUp", "button": 0}
            ]
        }]});
        self.call("POST", "/actions", Some(&actions)).await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
        .await
    }

    /// Runs an async `script`: its last argument is the callback to call with the result.
    pub async fn execute_async(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/async",
            Some(&json!({"script": script, "args": args})),
        )
        .await
    }

    /// Resizes the window.
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(&json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Saves a PNG screenshot of the viewport as `name`.png under [`screenshot_dir`] and
    /// returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.call("GET", "/screenshot", None).await;
        let png = base64_decode(data.as_str().expect("a screenshot"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Ends the session and the driver.
    pub async fn quit(mut self) {
        let path = format!("/session/{}", self.session);
        let _ = send(self.addr, "DELETE", &path, None).await;
        let _ = self.driver.kill().await;
    }
}

/// `target/flowstone-ui-screenshots` of the build (`CARGO_TARGET_DIR` when set).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("flowstone-ui-screenshots")
}

/// Sends a body-less WebDriver command; `None` when the driver refuses it (a stale element).
async fn try_send(addr: SocketAddr, method: &str, path: &str) -> Option<Value> {
    let headers: &[(&str, &str)] = &[("Content-Type", "application/json; charset=utf-8")];
    let reply = http::request(addr, method, path, headers, None).await;
    let value: Value = serde_json::from_str(&reply.body).ok()?;
    (reply.status == 200).then(|| value["value"].clone())
}

/// Sends a WebDriver command; panics with the driver's error message when it fails.
async fn send(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(Value::to_string);
    let headers: &[(&str, &str)] = &[("Content-Type", "application/json; charset=utf-8")];
    let reply = http::request(
        addr,
        method,
        path,
        headers,
        body.as_deref().map(str::as_bytes),
    )
    .await;
    let value: Value = serde_json::from_str(&reply.body).unwrap_or_else(|e| {
        panic!(
            "chromedriver answered {method} {path} with non-JSON ({e}): {}",
            reply.body
        )
    });
    if reply.status != 200 {
        panic!("chromedriver refused {method} {path}: {}", value["value"]);
    }
    value["value"].clone()
}

/// Standard base64 (the screenshot's encoding).
fn base64_decode(text: &str) -> Vec<u8> {
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
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk.iter().fold(0u32, |acc, d| (acc << 6) | d) << (6 * (4 - chunk.len()));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

#[test]
fn decodes_base64() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}
