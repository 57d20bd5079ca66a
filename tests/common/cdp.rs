//! Headless Chromium driven over the Chrome DevTools Protocol: a fresh profile, no network
//! services, one page reached through a minimal RFC 6455 websocket client (text frames).

use super::util::describe;
use super::HarnessError;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Chromium may take to open its DevTools port.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one protocol call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest websocket message accepted (screenshots are the big ones).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// How often `wait_until` re-evaluates its expression.
const POLL: Duration = Duration::from_millis(25);

/// The browser binary: `BOOTD_TEST_CHROMIUM`, else Debian's `chromium`.
pub fn chromium_binary() -> String {
    std::env::var("BOOTD_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".to_string())
}

/// A headless Chromium on a throw-away profile; killed with its process group on drop.
pub struct Browser {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium with a window of `width`x`height` showing `about:blank`.
    pub fn start(width: u32, height: u32) -> Result<Browser, HarnessError> {
        let profile = tempfile::tempdir().map_err(|e| HarnessError::io("profile dir", e))?;
        let mut cmd = Command::new(chromium_binary());
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--no-proxy-server",
            "--mute-audio",
            "--hide-scrollbars",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: renderer and helper processes die with it.
        .process_group(0);
        let line = describe(&cmd);
        let child = cmd
            .spawn()
            .map_err(|source| HarnessError::Spawn { cmd: line, source })?;
        let mut browser = Browser {
            child,
            port: 0,
            profile,
        };
        browser.port = browser.wait_port()?;
        Ok(browser)
    }

    /// Reads the port Chromium chose from `DevToolsActivePort` in its profile.
    fn wait_port(&mut self) -> Result<u16, HarnessError> {
        let file = self.profile.path().join("DevToolsActivePort");
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(HarnessError::Format {
                    what: "chromium start".into(),
                    detail: format!("exited with {status} before opening its DevTools port"),
                });
            }
            if let Some(port) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
            {
                return Ok(port);
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(HarnessError::Timeout {
                    timeout: START_TIMEOUT,
                    what: format!("{} to appear", file.display()),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Connects to the first page target (the `about:blank` window).
    pub fn page(&self) -> Result<Page, HarnessError> {
        let body = http_get(self.port, "/json/list")?;
        let targets: Value = serde_json::from_str(&body).map_err(|e| HarnessError::Format {
            what: "DevTools target list".into(),
            detail: format!("{e}: {body}"),
        })?;
        let ws = targets
            .as_array()
            .and_then(|a| a.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .ok_or_else(|| HarnessError::Format {
                what: "DevTools target list".into(),
                detail: format!("no page target: {body}"),
            })?;
        let path = ws
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
            .ok_or_else(|| HarnessError::Format {
                what: "webSocketDebuggerUrl".into(),
                detail: ws.to_string(),
            })?;
        Page::connect(self.port, &path)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: signals only the process group this struct started (pgid == its pid).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// A plain HTTP GET to the DevTools endpoint; returns the body.
fn http_get(port: u16, path: &str) -> Result<String, HarnessError> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| HarnessError::io(format!("connect to DevTools port {port}"), e))?;
    s.set_read_timeout(Some(CALL_TIMEOUT))
        .map_err(|e| HarnessError::io("set timeout", e))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| HarnessError::io("send DevTools request", e))?;
    // Chromium keeps the connection open: read the head, then Content-Length bytes.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .ok_or_else(|| HarnessError::Format {
                    what: "DevTools HTTP answer".into(),
                    detail: head.clone(),
                })?;
            if raw.len() >= end + 4 + len {
                return Ok(String::from_utf8_lossy(&raw[end + 4..end + 4 + len]).into_owned());
            }
        }
        let n = s
            .read(&mut chunk)
            .map_err(|e| HarnessError::io("read DevTools answer", e))?;
        if n == 0 {
            return Err(HarnessError::Format {
                what: "DevTools HTTP answer".into(),
                detail: format!("connection closed: {}", String::from_utf8_lossy(&raw)),
            });
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// One page, driven over its websocket.
pub struct Page {
    ws: TcpStream,
    buf: Vec<u8>,
    next_id: u64,
}

impl Page {
    fn connect(port: u16, path: &str) -> Result<Page, HarnessError> {
        let mut ws = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| HarnessError::io("connect to the page websocket", e))?;
        ws.set_read_timeout(Some(CALL_TIMEOUT))
            .map_err(|e| HarnessError::io("set timeout", e))?;
        let _ = ws.set_nodelay(true);
        // No Origin header: Chromium then accepts the client without --remote-allow-origins.
        write!(
            ws,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: Ym9vdGQtdGVzdC1ub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .map_err(|e| HarnessError::io("send websocket upgrade", e))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = ws
                .read(&mut chunk)
                .map_err(|e| HarnessError::io("read websocket upgrade", e))?;
            if n == 0 || buf.len() > 64 * 1024 {
                return Err(HarnessError::Format {
                    what: "websocket upgrade".into(),
                    detail: String::from_utf8_lossy(&buf).into_owned(),
                });
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        if !head.starts_with("HTTP/1.1 101") {
            return Err(HarnessError::Format {
                what: "websocket upgrade".into(),
                detail: head,
            });
        }
        buf.drain(..end);
        Ok(Page {
            ws,
            buf,
            next_id: 1,
        })
    }

    fn send_text(&mut self, text: &str) -> Result<(), HarnessError> {
        let payload = text.as_bytes();
        let mask = [0x5a, 0x1e, 0xc3, 0x77];
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x81); // FIN + text
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        self.ws
            .write_all(&frame)
            .map_err(|e| HarnessError::io("write websocket frame", e))
    }

    fn fill(&mut self, need: usize) -> Result<(), HarnessError> {
        let mut chunk = [0u8; 65536];
        while self.buf.len() < need {
            let n = self
                .ws
                .read(&mut chunk)
                .map_err(|e| HarnessError::io("read websocket frame", e))?;
            if n == 0 {
                return Err(HarnessError::Format {
                    what: "websocket".into(),
                    detail: "the browser closed the connection".into(),
                });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    }

    /// Reads one whole message (continuation frames joined; pings answered).
    fn recv_text(&mut self) -> Result<String, HarnessError> {
        let mut message = Vec::new();
        loop {
            self.fill(2)?;
            let (b0, b1) = (self.buf[0], self.buf[1]);
            let (mut len, mut at) = (u64::from(b1 & 0x7f), 2usize);
            if len == 126 {
                self.fill(4)?;
                len = u64::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                at = 4;
            } else if len == 127 {
                self.fill(10)?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.buf[2..10]);
                len = u64::from_be_bytes(b);
                at = 10;
            }
            let masked = b1 & 0x80 != 0;
            let key_at = at;
            if masked {
                at += 4;
            }
            if len as usize > MAX_MESSAGE || message.len() + len as usize > MAX_MESSAGE {
                return Err(HarnessError::Format {
                    what: "websocket".into(),
                    detail: format!("message over {MAX_MESSAGE} bytes"),
                });
            }
            let total = at + len as usize;
            self.fill(total)?;
            let mut payload = self.buf[at..total].to_vec();
            if masked {
                let key = [
                    self.buf[key_at],
                    self.buf[key_at + 1],
                    self.buf[key_at + 2],
                    self.buf[key_at + 3],
                ];
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= key[i % 4];
                }
            }
            self.buf.drain(..total);
            match b0 & 0x0f {
                0x0..=0x2 => {
                    message.extend_from_slice(&payload);
                    if b0 & 0x80 != 0 {
                        return Ok(String::from_utf8_lossy(&message).into_owned());
                    }
                }
                0x8 => {
                    return Err(HarnessError::Format {
                        what: "websocket".into(),
                        detail: "the browser sent a close frame".into(),
                    })
                }
                0x9 => self.send_pong(&payload)?,
                _ => {}
            }
        }
    }

    fn send_pong(&mut self, payload: &[u8]) -> Result<(), HarnessError> {
        let mut frame = vec![0x8a, 0x80 | (payload.len().min(125) as u8), 0, 0, 0, 0];
        frame.extend_from_slice(&payload[..payload.len().min(125)]);
        self.ws
            .write_all(&frame)
            .map_err(|e| HarnessError::io("write websocket pong", e))
    }

    /// Calls a protocol method and returns its `result` (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, HarnessError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send_text(&json!({"id": id, "method": method, "params": params}).to_string())?;
        let start = Instant::now();
        loop {
            let text = self.recv_text()?;
            let v: Value = serde_json::from_str(&text).map_err(|e| HarnessError::Format {
                what: format!("{method} answer"),
                detail: e.to_string(),
            })?;
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    return Err(HarnessError::Format {
                        what: format!("{method} answer"),
                        detail: err.to_string(),
                    });
                }
                return Ok(v["result"].clone());
            }
            if start.elapsed() > CALL_TIMEOUT {
                return Err(HarnessError::Timeout {
                    timeout: CALL_TIMEOUT,
                    what: format!("the answer to {method}"),
                });
            }
        }
    }

    /// Loads a URL and waits until its document has loaded.
    pub fn navigate(&mut self, url: &str) -> Result<(), HarnessError> {
        self.call("Page.navigate", json!({ "url": url }))?;
        self.wait_until("document.readyState === 'complete'", CALL_TIMEOUT)
            .map(|_| ())
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    pub fn eval(&mut self, expr: &str) -> Result<Value, HarnessError> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(HarnessError::Format {
                what: format!("evaluation of {expr}"),
                detail: ex.to_string(),
            });
        }
        Ok(r["result"]["value"].clone())
    }

    /// Polls `expr` until it is truthy; returns its value and how long that took.
    pub fn wait_until(
        &mut self,
        expr: &str,
        timeout: Duration,
    ) -> Result<(Value, Duration), HarnessError> {
        let start = Instant::now();
        loop {
            let v = self.eval(expr)?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok((v, start.elapsed()));
            }
            if start.elapsed() > timeout {
                return Err(HarnessError::Timeout {
                    timeout,
                    what: format!("`{expr}` in the page (last value {v})"),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Saves a PNG of the viewport.
    pub fn screenshot(&mut self, path: &Path) -> Result<(), HarnessError> {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}))?;
        let data = r["data"].as_str().ok_or_else(|| HarnessError::Format {
            what: "screenshot".into(),
            detail: "no data".into(),
        })?;
        let png = base64_decode(data).ok_or_else(|| HarnessError::Format {
            what: "screenshot".into(),
            detail: "data is not base64".into(),
        })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| HarnessError::file(dir, e))?;
        }
        std::fs::write(path, png).map_err(|e| HarnessError::file(path, e))
    }
}

/// Decodes standard base64 (padding optional); None on any other character.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
