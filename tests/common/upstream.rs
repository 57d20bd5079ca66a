//! A real HTTP/1.1 server on loopback for tests (or on every address of a test's network
//! namespace): the handler decides each answer (status, hang, close); it can be stopped and
//! started again on the same port.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, extra headers, body.
    Answer(u16, Vec<(String, String)>, String),
    /// Keep the connection open without answering, then close it.
    Hang(Duration),
}

impl Reply {
    /// A bare status.
    pub fn status(code: u16) -> Reply {
        Reply::Answer(code, Vec::new(), String::new())
    }

    /// A JSON body with 200.
    pub fn json(body: &str) -> Reply {
        Reply::Answer(
            200,
            vec![("content-type".into(), "application/json".into())],
            body.into(),
        )
    }
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// The server.
pub struct FakeServer {
    port: u16,
    /// The network namespace it listens in (on 0.0.0.0), or None for the host's loopback.
    netns: Option<String>,
    handler: Handler,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Starts on a free loopback port.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FakeServer {
        let mut s = FakeServer {
            port: 0,
            netns: None,
            handler: Arc::new(handler),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        s.listen();
        s
    }

    /// Starts on a free port of every address inside network namespace `ns`, so a daemon
    /// there reaches it on 127.0.0.1 and machines on the namespace's bridge on its address.
    pub fn start_in(
        ns: &str,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> FakeServer {
        let mut s = FakeServer {
            port: 0,
            netns: Some(ns.to_string()),
            handler: Arc::new(handler),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        s.listen();
        s
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn listen(&mut self) {
        let listener = match &self.netns {
            None => TcpListener::bind(("127.0.0.1", self.port)).expect("bind fake server"),
            // A socket belongs to the namespace of the thread that creates it.
            Some(ns) => {
                let (ns, port) = (ns.clone(), self.port);
                std::thread::spawn(move || {
                    super::netns::enter(&ns);
                    TcpListener::bind(("0.0.0.0", port))
                })
                .join()
                .expect("netns bind thread")
                .expect("bind fake server in the namespace")
            }
        };
        self.port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        self.stop = stop.clone();
        let handler = self.handler.clone();
        self.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let handler = handler.clone();
                        std::thread::spawn(move || serve(stream, handler));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }

    /// Closes the listener: new connections are refused until `restart`.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.listen();
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(mut stream: TcpStream, handler: Handler) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
    let Some(req) = read_request(&mut stream) else {
        return;
    };
    match handler(&req) {
        Reply::Hang(d) => std::thread::sleep(d),
        Reply::Answer(code, headers, body) => {
            let mut out = format!(
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&body);
            let _ = stream.write_all(out.as_bytes());
        }
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}
