//! `/assets/*`: `server.assets_dir` read-only over HTTP with HEAD, Range, ETag,
//! Last-Modified and an exact Content-Length; no listings, no redirects, no escapes.

use super::response::{error_response, full, Body};
use crate::app::App;
use crate::tftp::path::{normalize, open_beneath, OpenError};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

/// Bytes read from disk per body frame when a file is streamed.
const CHUNK: usize = 256 * 1024;

/// A byte range of a file, inclusive start, exclusive end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

/// What a `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// No (usable) Range: the whole file.
    Whole,
    /// One satisfiable range.
    Part(Span),
    /// A range past the end: 416.
    Unsatisfiable,
}

/// Parses a single-range `bytes=` header against a file size; anything else (several
/// ranges, other units, garbage) is answered with the whole file, as RFC 9110 allows.
pub fn parse_range(value: &str, size: u64) -> RangeAsk {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let span = if a.is_empty() {
        // Suffix: the last `b` bytes.
        let Ok(n) = b.parse::<u64>() else {
            return RangeAsk::Whole;
        };
        if n == 0 {
            return RangeAsk::Unsatisfiable;
        }
        Span {
            start: size.saturating_sub(n),
            end: size,
        }
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return RangeAsk::Whole;
        };
        let end = if b.is_empty() {
            size
        } else {
            match b.parse::<u64>() {
                Ok(last) if last >= start => last.saturating_add(1).min(size),
                _ => return RangeAsk::Whole,
            }
        };
        if start >= size {
            return RangeAsk::Unsatisfiable;
        }
        Span { start, end }
    };
    if span.start >= span.end {
        RangeAsk::Unsatisfiable
    } else {
        RangeAsk::Part(span)
    }
}

/// The strong validator of one version of a file.
fn etag(meta: &std::fs::Metadata) -> String {
    format!(
        "\"{:x}-{:x}-{:x}\"",
        meta.ino(),
        meta.size(),
        meta.mtime() as u64 * 1_000_000_000 + meta.mtime_nsec() as u64
    )
}

fn not_found() -> Response<Body> {
    error_response(StatusCode::NOT_FOUND, "not found")
}

/// Files up to this size are kept in memory and answered without touching the disk.
const SMALL_FILE: u64 = 256 * 1024;
/// How long a cached small file is trusted before its metadata is checked again.
const REVALIDATE: Duration = Duration::from_secs(1);
/// Most bytes the small-file cache holds; past it the cache starts over.
const SMALL_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// What an asset answer needs: validators, size, and the bytes or the open file.
struct Asset {
    tag: String,
    modified: std::time::SystemTime,
    size: u64,
    data: Source,
}

enum Source {
    Memory(Bytes),
    Disk(Arc<File>),
}

type SmallCache = std::sync::Mutex<
    std::collections::HashMap<(std::path::PathBuf, String), (std::time::Instant, Arc<Asset>)>,
>;

/// Small files (iPXE scripts' neighbours, configs, the agent) answered from memory:
/// a boot storm asks for the same few files thousands of times a second.
fn small_cache() -> &'static SmallCache {
    static CACHE: std::sync::OnceLock<SmallCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn cached(root: &std::path::Path, rel: &str) -> Option<Arc<Asset>> {
    let cache = small_cache().lock().ok()?;
    let (checked, asset) = cache.get(&(root.to_path_buf(), rel.to_string()))?;
    (checked.elapsed() < REVALIDATE).then(|| asset.clone())
}

fn remember(root: std::path::PathBuf, rel: String, asset: Arc<Asset>) {
    if let Ok(mut cache) = small_cache().lock() {
        let held: usize = cache.values().map(|(_, a)| a.size as usize).sum();
        if held + asset.size as usize > SMALL_CACHE_BYTES {
            cache.clear();
        }
        cache.insert((root, rel), (std::time::Instant::now(), asset));
    }
}

/// Opens a file beneath the root (blocking): small ones are read whole.
fn load(root: &std::path::Path, rel: &str) -> Result<Option<Asset>, OpenError> {
    let file = open_beneath(root, rel)?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.is_file() {
        // Directories are never listed.
        return Ok(None);
    }
    let size = meta.size();
    let data = if size <= SMALL_FILE {
        let mut buf = vec![0u8; size as usize];
        file.read_exact_at(&mut buf, 0).map_err(OpenError::Io)?;
        Source::Memory(Bytes::from(buf))
    } else {
        Source::Disk(Arc::new(file))
    };
    Ok(Some(Asset {
        tag: etag(&meta),
        modified: UNIX_EPOCH + Duration::from_secs(meta.mtime().max(0) as u64),
        size,
        data,
    }))
}

/// Serves one asset. `rel` is the decoded path below `/assets/`.
pub async fn serve(app: &Arc<App>, req: &Request<Incoming>, rel: &str) -> Response<Body> {
    let head = req.method() == Method::HEAD;
    let rel = match normalize(rel.as_bytes()) {
        Ok(r) if !r.is_empty() => r,
        _ => return not_found(),
    };
    let root = app.config().server.assets_dir.clone();
    let asset = match cached(&root, &rel) {
        Some(a) => a,
        None => {
            let (r, p) = (root.clone(), rel.clone());
            match tokio::task::spawn_blocking(move || load(&r, &p)).await {
                Ok(Ok(Some(a))) => {
                    let a = Arc::new(a);
                    if matches!(a.data, Source::Memory(_)) {
                        remember(root, rel, a.clone());
                    }
                    a
                }
                Ok(Err(OpenError::Io(e))) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::debug!(error = %e, "asset open");
                    return not_found();
                }
                _ => return not_found(),
            }
        }
    };
    let size = asset.size;
    let tag = asset.tag.clone();
    let modified = asset.modified;
    let last_modified = httpdate::fmt_http_date(modified);
    let headers = req.headers();
    let fresh = match headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        Some(inm) => inm.split(',').any(|t| t.trim() == tag || t.trim() == "*"),
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| modified <= since),
    };
    let mut builder = Response::builder()
        .header(header::ETAG, &tag)
        .header(header::LAST_MODIFIED, &last_modified)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, content_type(req.uri().path()));
    if fresh {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(full(Bytes::new()))
            .unwrap_or_else(|_| not_found());
    }
    // If-Range with a stale validator means: send the whole (new) file.
    let range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == tag);
    let ask = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) if range_ok => parse_range(r, size),
        _ => RangeAsk::Whole,
    };
    let (status, span) = match ask {
        RangeAsk::Whole => (
            StatusCode::OK,
            Span {
                start: 0,
                end: size,
            },
        ),
        RangeAsk::Part(s) => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", s.start, s.end - 1, size),
            );
            (StatusCode::PARTIAL_CONTENT, s)
        }
        RangeAsk::Unsatisfiable => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(full(Bytes::new()))
                .unwrap_or_else(|_| not_found());
        }
    };
    let len = span.end - span.start;
    builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, HeaderValue::from(len));
    if head {
        // hyper keeps our Content-Length on HEAD when the body is empty.
        return builder
            .body(full(Bytes::new()))
            .unwrap_or_else(|_| not_found());
    }
    app.metrics.http_bytes.inc_by(len);
    let body = match &asset.data {
        Source::Memory(bytes) => full(bytes.slice(span.start as usize..span.end as usize)),
        Source::Disk(file) => FileBody {
            file: file.clone(),
            offset: span.start,
            end: span.end,
            reading: None,
        }
        .boxed(),
    };
    builder.body(body).unwrap_or_else(|_| not_found())
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("ipxe") | Some("cfg") | Some("txt") | Some("yaml") | Some("yml") | Some("sh") => {
            "text/plain; charset=utf-8"
        }
        Some("json") => "application/json",
        Some("iso") => "application/x-iso9660-image",
        Some("efi") => "application/efi",
        _ => "application/octet-stream",
    }
}

type Read = tokio::task::JoinHandle<std::io::Result<Bytes>>;

/// A file range streamed in `CHUNK`s read on the blocking pool.
struct FileBody {
    file: Arc<File>,
    offset: u64,
    end: u64,
    reading: Option<Read>,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.reading.is_none() {
            if self.offset >= self.end {
                return Poll::Ready(None);
            }
            let want = ((self.end - self.offset) as usize).min(CHUNK);
            let file = self.file.clone();
            let at = self.offset;
            self.reading = Some(tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; want];
                let mut got = 0;
                while got < want {
                    let n = file.read_at(&mut buf[got..], at + got as u64)?;
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                buf.truncate(got);
                Ok(Bytes::from(buf))
            }));
        }
        let Some(reading) = self.reading.as_mut() else {
            return Poll::Ready(None);
        };
        let result = match Pin::new(reading).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        self.reading = None;
        match result {
            Ok(Ok(chunk)) if chunk.is_empty() => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shrank while being sent",
            )))),
            Ok(Ok(chunk)) => {
                self.offset += chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Ok(Err(e)) => Poll::Ready(Some(Err(e))),
            Err(e) => Poll::Ready(Some(Err(std::io::Error::other(e)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reading.is_none() && self.offset >= self.end
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.end - self.offset)
    }
}

use std::future::Future;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |s| parse_range(s, 1000);
        assert_eq!(p("bytes=0-99"), RangeAsk::Part(Span { start: 0, end: 100 }));
        assert_eq!(
            p("bytes=900-"),
            RangeAsk::Part(Span {
                start: 900,
                end: 1000
            })
        );
        assert_eq!(
            p("bytes=-100"),
            RangeAsk::Part(Span {
                start: 900,
                end: 1000
            })
        );
        assert_eq!(
            p("bytes=990-5000"),
            RangeAsk::Part(Span {
                start: 990,
                end: 1000
            })
        );
        assert_eq!(p("bytes=1000-"), RangeAsk::Unsatisfiable);
        assert_eq!(p("bytes=-0"), RangeAsk::Unsatisfiable);
        assert_eq!(p("bytes=5-1"), RangeAsk::Whole);
        assert_eq!(p("bytes=0-1,5-6"), RangeAsk::Whole);
        assert_eq!(p("items=0-1"), RangeAsk::Whole);
        assert_eq!(p("bytes=x-y"), RangeAsk::Whole);
        assert_eq!(
            parse_range("bytes=-5", 3),
            RangeAsk::Part(Span { start: 0, end: 3 })
        );
    }
}
