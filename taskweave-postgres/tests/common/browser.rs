//! A real headless browser for tests: Chromium driven through
//! chromedriver's WebDriver protocol (plain HTTP and JSON, spoken here
//! over a `TcpStream`). Without Chromium the test skips loudly, unless
//! `TASKWEAVE_REQUIRE_BROWSER` is set (as CI sets it): then it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; it and its driver end when dropped.
pub struct Browser {
    port: u16,
    session: String,
    driver: Child,
}

/// The first of `names` found on `PATH`.
fn on_path(names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .ok()?;
        let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
        (found.status.success() && !path.is_empty()).then_some(path)
    })
}

impl Browser {
    /// A headless Chromium, or `None` (said on stderr) when it or
    /// chromedriver is not installed and the browser is not required.
    pub fn start_or_skip(test: &str) -> Option<Browser> {
        let (Some(driver), Some(chromium)) = (
            on_path(&["chromedriver"]),
            on_path(&["chromium", "chromium-browser", "google-chrome"]),
        ) else {
            let missing = "Chromium or chromedriver is not installed \
                           (apt-get install chromium chromium-driver)";
            if std::env::var_os("TASKWEAVE_REQUIRE_BROWSER").is_some() {
                panic!("{test}: {missing}, and TASKWEAVE_REQUIRE_BROWSER is set");
            }
            eprintln!("SKIPPED {test}: {missing}");
            return None;
        };
        // Port 0: chromedriver takes a free one and says which on stdout.
        let mut driver = Command::new(driver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver: {e}"));
        let stdout = driver.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let port = line
                    .split_once("started successfully on port ")
                    .and_then(|(_, rest)| rest.trim_end_matches('.').parse::<u16>().ok());
                if let Some(port) = port {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("chromedriver said no port within 30 s: {e}"));
        let mut browser = Browser {
            port,
            session: String::new(),
            driver,
        };
        let started = Instant::now();
        while !browser.call("GET", "/status", None)["ready"]
            .as_bool()
            .unwrap_or(false)
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver not ready in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let session = browser.call(
            "POST",
            "/session",
            Some(
                json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage"]
                }}}}),
            ),
        );
        browser.session = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_string();
        Some(browser)
    }

    /// Sends a WebDriver command; its `value` (the whole answer while it
    /// cannot be read).
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return Value::Null;
        };
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        // chromedriver keeps the connection open: read its Content-Length.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        let body = loop {
            let text = String::from_utf8_lossy(&answer).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head.lines().find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())
                        .flatten()
                });
                if length.is_some_and(|n| body.len() >= n) {
                    break body.to_string();
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => {
                    break text
                        .split_once("\r\n\r\n")
                        .map_or(String::new(), |(_, b)| b.to_string());
                }
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        };
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        value.get("value").cloned().unwrap_or(value)
    }

    fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        let answer = self.call(
            method,
            &format!("/session/{}{path}", self.session),
            Some(body),
        );
        assert!(answer.get("error").is_none(), "{method} {path}: {answer}");
        answer
    }

    /// Loads `url`.
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", json!({ "url": url }));
    }

    /// The element `css` selects.
    fn element(&self, css: &str) -> String {
        let found = self.session_call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    /// The text of the element `css` selects, as the page shows it.
    pub fn text(&self, css: &str) -> String {
        let element = self.element(css);
        let text = self.call(
            "GET",
            &format!("/session/{}/element/{element}/text", self.session),
            None,
        );
        text.as_str()
            .unwrap_or_else(|| panic!("no text for {css}: {text}"))
            .to_string()
    }

    /// Whether the page has an element `css` selects.
    pub fn has(&self, css: &str) -> bool {
        let found = self.call(
            "POST",
            &format!("/session/{}/element", self.session),
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT].is_string()
    }

    /// The text of the element `css` selects once `wanted` accepts it
    /// (the page after a click may still be loading), at most 10 s.
    pub fn text_when(&self, css: &str, wanted: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let found = self.call(
                "POST",
                &format!("/session/{}/element", self.session),
                Some(json!({"using": "css selector", "value": css})),
            );
            let text = found[ELEMENT].as_str().and_then(|element| {
                let path = format!("/session/{}/element/{element}/text", self.session);
                self.call("GET", &path, None).as_str().map(str::to_string)
            });
            match text {
                Some(text) if wanted(&text) => return text,
                last => assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "{css}: not as wanted within 10 s, last {last:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `text` into the field `css` selects.
    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css);
        self.session_call(
            "POST",
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        );
    }

    /// Clicks what `css` selects (a form's button posts the form, and the
    /// call returns once the next page loaded).
    pub fn click(&self, css: &str) {
        let element = self.element(css);
        self.session_call("POST", &format!("/element/{element}/click"), json!({}));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
