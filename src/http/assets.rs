//! `/assets/*`: `server.assets_dir` read-only over HTTP with HEAD, Range, ETag,
//! Last-Modified and an exact Content-Length; no listings, no redirects, no escapes.

use super::asset_cache::{AssetCache, Lookup, MEMORY_FILE_MAX};
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
use std::path::Path;
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

/// What an asset answer needs: validators, size, and the bytes or the open file.
pub(super) struct Asset {
    tag: String,
    modified: std::time::SystemTime,
    pub(super) size: u64,
    data: Source,
}

impl Asset {
    /// Whether the file's bytes are held in memory (counted against the cache bound).
    pub(super) fn in_memory(&self) -> bool {
        matches!(self.data, Source::Memory(_))
    }
}

enum Source {
    Memory(Bytes),
    Disk(Arc<File>),
}

/// Every asset response shares this cache (the key includes the assets root).
fn asset_cache() -> &'static AssetCache {
    static CACHE: std::sync::OnceLock<AssetCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(AssetCache::default)
}

/// File bytes the asset cache holds now (for /metrics).
pub(super) fn cache_bytes() -> u64 {
    asset_cache().memory_bytes()
}

/// Opens a file beneath the root (blocking): files up to [`MEMORY_FILE_MAX`] are read whole.
fn load(root: &Path, rel: &str) -> Result<Option<Asset>, OpenError> {
    let file = open_beneath(root, rel)?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.is_file() {
        // Directories are never listed.
        return Ok(None);
    }
    let size = meta.size();
    let data = if size <= MEMORY_FILE_MAX {
        let len = usize::try_from(size)
            .map_err(|_| OpenError::Io(std::io::Error::other("file too large")))?;
        let mut buf = vec![0u8; len];
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

/// The validator of the file now at `rel` (blocking), None if it is gone.
fn current_tag(root: &Path, rel: &str) -> Option<String> {
    let file = open_beneath(root, rel).ok()?;
    let meta = file.metadata().ok()?;
    meta.is_file().then(|| etag(&meta))
}

/// The asset at `rel`: from the cache, revalidated once per period, or loaded once for
/// all the requests that want it at the same moment.
async fn fetch(root: &Path, rel: &str) -> Option<Arc<Asset>> {
    let cache = asset_cache();
    let cell = match cache.lookup(root, rel) {
        Lookup::Hit(asset) => return Some(asset),
        Lookup::Stale(asset) => {
            let (r, p) = (root.to_path_buf(), rel.to_string());
            let now = tokio::task::spawn_blocking(move || current_tag(&r, &p))
                .await
                .ok()
                .flatten();
            if now.as_deref() == Some(asset.tag.as_str()) {
                cache.confirm(root, rel);
                return Some(asset);
            }
            cache.forget(root, rel);
            match cache.lookup(root, rel) {
                Lookup::Load(cell) => cell,
                Lookup::Hit(asset) | Lookup::Stale(asset) => return Some(asset),
            }
        }
        Lookup::Load(cell) => cell,
    };
    let mut loaded_here = false;
    let result = cell
        .get_or_try_init(|| async {
            loaded_here = true;
            let (r, p) = (root.to_path_buf(), rel.to_string());
            match tokio::task::spawn_blocking(move || load(&r, &p)).await {
                Ok(Ok(Some(asset))) => Ok(Arc::new(asset)),
                Ok(Err(OpenError::Io(e))) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::debug!(error = %e, "asset open");
                    Err(())
                }
                _ => Err(()),
            }
        })
        .await;
    match result {
        Ok(asset) => {
            if loaded_here {
                cache.loaded(root, rel);
            }
            Some(asset.clone())
        }
        Err(()) => {
            // Misses are not remembered: the file may appear at any moment.
            cache.forget(root, rel);
            None
        }
    }
}

/// Serves one asset. `rel` is the decoded path below `/assets/`.
pub async fn serve(app: &Arc<App>, req: &Request<Incoming>, rel: &str) -> Response<Body> {
    let head = req.method() == Method::HEAD;
    let rel = match normalize(rel.as_bytes()) {
        Ok(r) if !r.is_empty() => r,
        _ => return not_found(),
    };
    let root = app.config().server.assets_dir.clone();
    let Some(asset) = fetch(&root, &rel).await else {
        return not_found();
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

#[cfg(test)]
mod cache_tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn simultaneous_requests_share_one_load_and_changes_are_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("initrd"), vec![7u8; 1 << 20]).expect("write");
        let root = dir.path().to_path_buf();
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let root = root.clone();
            tasks.push(tokio::spawn(async move { fetch(&root, "initrd").await }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.expect("task").expect("asset"));
        }
        // One load: every request holds the very same copy.
        assert!(got.iter().all(|a| Arc::ptr_eq(a, &got[0])));
        assert!(got[0].in_memory());

        // A replaced file is noticed after the revalidation period.
        std::fs::write(dir.path().join("initrd"), vec![8u8; 1000]).expect("rewrite");
        tokio::time::sleep(crate::http::asset_cache::REVALIDATE + Duration::from_millis(100)).await;
        let now = fetch(&root, "initrd").await.expect("asset");
        assert_eq!(now.size, 1000);
        // A missing file is not remembered as missing.
        assert!(fetch(&root, "later").await.is_none());
        std::fs::write(dir.path().join("later"), b"x").expect("write");
        assert!(fetch(&root, "later").await.is_some());
    }

    #[test]
    fn memory_held_stays_within_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = AssetCache::with_limit(2500);
        for name in ["a", "b", "c", "d"] {
            std::fs::write(dir.path().join(name), vec![1u8; 1000]).expect("write");
            let Lookup::Load(cell) = cache.lookup(dir.path(), name) else {
                panic!("{name} should need a load");
            };
            let asset = load(dir.path(), name).expect("load").expect("file");
            assert!(cell.set(Arc::new(asset)).is_ok());
            cache.loaded(dir.path(), name);
            assert!(cache.memory_bytes() <= 2500, "{}", cache.memory_bytes());
        }
        // The newest stays, the oldest went.
        assert!(matches!(cache.lookup(dir.path(), "d"), Lookup::Hit(_)));
        assert!(matches!(cache.lookup(dir.path(), "a"), Lookup::Load(_)));
    }
}
