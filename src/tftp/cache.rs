//! Shared in-memory copies of small files, keyed by path and checked against the open
//! file's inode, size and mtime, so a boot storm reads each boot file from disk once.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::OnceCell;

/// Most bytes kept in the cache over all files; least recently used files go first.
pub const CACHE_MAX_TOTAL: u64 = 1024 * 1024 * 1024;

/// What identifies one version of a file: a change to any field means new contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileVersion {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileVersion {
    /// The version of an open file, from its metadata.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        FileVersion {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

struct Slot {
    version: FileVersion,
    data: OnceCell<Bytes>,
    last_used: AtomicU64,
}

type Key = (PathBuf, String);

/// The shared file cache of one server.
#[derive(Default)]
pub struct FileCache {
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
    clock: AtomicU64,
}

/// Whether [`FileCache::get`] read the disk or found the contents already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Served from memory.
    Hit,
    /// This call read the file.
    Loaded,
}

impl FileCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The contents of `file` (opened from `rel` under `root`, at `version`): from
    /// memory if that version is cached, else read once while concurrent callers wait.
    pub async fn get(
        &self,
        root: &Path,
        rel: &str,
        file: File,
        version: FileVersion,
    ) -> io::Result<(Bytes, Lookup)> {
        let slot = self.slot(root, rel, version);
        let mut loaded = false;
        let data = slot
            .data
            .get_or_try_init(|| async {
                loaded = true;
                read_whole(file, version.size).await
            })
            .await?
            .clone();
        if loaded {
            self.evict_beyond(CACHE_MAX_TOTAL, &slot);
            Ok((data, Lookup::Loaded))
        } else {
            Ok((data, Lookup::Hit))
        }
    }

    /// Bytes held right now.
    pub fn total_bytes(&self) -> u64 {
        self.lock()
            .values()
            .filter_map(|s| s.data.get())
            .map(|b| b.len() as u64)
            .sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Slot>>> {
        // A panic while holding the lock cannot leave the map inconsistent (single
        // inserts/removes), so a poisoned lock is still usable.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot(&self, root: &Path, rel: &str, version: FileVersion) -> Arc<Slot> {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let key = (root.to_path_buf(), rel.to_owned());
        let mut slots = self.lock();
        match slots.get(&key) {
            Some(slot) if slot.version == version => {
                slot.last_used.store(now, Ordering::Relaxed);
                Arc::clone(slot)
            }
            _ => {
                // New or changed file: a fresh slot; transfers still holding the old
                // Bytes keep sending the version they started with.
                let slot = Arc::new(Slot {
                    version,
                    data: OnceCell::new(),
                    last_used: AtomicU64::new(now),
                });
                slots.insert(key, Arc::clone(&slot));
                slot
            }
        }
    }

    fn evict_beyond(&self, limit: u64, keep: &Arc<Slot>) {
        let mut slots = self.lock();
        let mut total: u64 = slots
            .values()
            .filter_map(|s| s.data.get())
            .map(|b| b.len() as u64)
            .sum();
        while total > limit {
            let victim = slots
                .iter()
                .filter(|(_, s)| !Arc::ptr_eq(s, keep) && s.data.get().is_some())
                .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
                .map(|(k, s)| (k.clone(), s.data.get().map_or(0, |b| b.len() as u64)));
            match victim {
                Some((key, len)) => {
                    slots.remove(&key);
                    total = total.saturating_sub(len);
                }
                None => break,
            }
        }
    }
}

/// Reads exactly `size` bytes on the blocking pool; a file that shrank is an error.
async fn read_whole(file: File, size: u64) -> io::Result<Bytes> {
    tokio::task::spawn_blocking(move || {
        let len = usize::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, 0)?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(p: &Path) -> (File, FileVersion) {
        let f = File::open(p).unwrap();
        let v = FileVersion::of(&f.metadata().unwrap());
        (f, v)
    }

    #[tokio::test]
    async fn loads_once_and_invalidates_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"one").unwrap();
        let cache = FileCache::new();
        let (f, v) = open(&p);
        let (d, l) = cache.get(dir.path(), "f", f, v).await.unwrap();
        assert_eq!((&d[..], l), (&b"one"[..], Lookup::Loaded));
        let (f, v) = open(&p);
        let (d, l) = cache.get(dir.path(), "f", f, v).await.unwrap();
        assert_eq!((&d[..], l), (&b"one"[..], Lookup::Hit));
        // Replace by rename: new inode, so new contents even with the same size.
        let tmp = dir.path().join("g");
        std::fs::write(&tmp, b"two").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        let (f, v) = open(&p);
        let (d, l) = cache.get(dir.path(), "f", f, v).await.unwrap();
        assert_eq!((&d[..], l), (&b"two"[..], Lookup::Loaded));
    }

    #[tokio::test]
    async fn concurrent_misses_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 1 << 20]).unwrap();
        let cache = Arc::new(FileCache::new());
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let cache = Arc::clone(&cache);
            let (f, v) = open(&p);
            let root = dir.path().to_path_buf();
            tasks.push(tokio::spawn(async move {
                cache.get(&root, "f", f, v).await.unwrap().1
            }));
        }
        let mut loads = 0;
        for t in tasks {
            if t.await.unwrap() == Lookup::Loaded {
                loads += 1;
            }
        }
        assert_eq!(loads, 1);
        assert_eq!(cache.total_bytes(), 1 << 20);
    }

    #[tokio::test]
    async fn evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new();
        for name in ["a", "b", "c"] {
            let p = dir.path().join(name);
            std::fs::write(&p, vec![1u8; 100]).unwrap();
            let (f, v) = open(&p);
            let slot = cache.slot(dir.path(), name, v);
            slot.data
                .get_or_try_init(|| read_whole(f, v.size))
                .await
                .unwrap();
            cache.evict_beyond(250, &slot);
        }
        assert_eq!(cache.total_bytes(), 200);
        assert!(!cache
            .lock()
            .contains_key(&(dir.path().to_path_buf(), "a".into())));
    }
}
