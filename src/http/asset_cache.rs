//! The in-memory copy of assets a boot storm asks for: every machine downloads the same
//! kernel and initrd, so one copy is read from disk and every response is a slice of it.
//!
//! Loads are single-flight (the thousand requests that arrive together wait for one read),
//! entries are revalidated by `fstat` at most once per [`REVALIDATE`], and the bytes held
//! are bounded: least recently used entries go first. Files too large to hold stream from
//! disk (the open file is still shared).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::assets::Asset;

/// How long a cached file is trusted before its metadata is checked again.
pub const REVALIDATE: Duration = Duration::from_secs(1);
/// Files up to this size are held in memory (kernels and initrds of common installers).
pub const MEMORY_FILE_MAX: u64 = 128 * 1024 * 1024;
/// Most file bytes held in memory; past it the least recently used entries are dropped
/// (responses still sending them keep their slice alive until they finish).
pub const MEMORY_BYTES_MAX: u64 = 384 * 1024 * 1024;
/// Most entries (paths) remembered, whatever their size.
const ENTRIES_MAX: usize = 4096;

type Key = (PathBuf, String);

struct Slot {
    asset: Arc<OnceCell<Arc<Asset>>>,
    checked: Instant,
    used: Instant,
}

/// Path → loaded asset.
pub struct AssetCache {
    slots: Mutex<HashMap<Key, Slot>>,
    max_bytes: u64,
}

impl Default for AssetCache {
    fn default() -> Self {
        AssetCache::with_limit(MEMORY_BYTES_MAX)
    }
}

/// What a lookup found.
pub enum Lookup {
    /// Fresh: use it.
    Hit(Arc<Asset>),
    /// Cached but older than [`REVALIDATE`]: check that the file is unchanged (its tag),
    /// then [`AssetCache::confirm`] or [`AssetCache::forget`].
    Stale(Arc<Asset>),
    /// Not loaded: whoever awaits this cell first loads the file; the rest wait for it.
    Load(Arc<OnceCell<Arc<Asset>>>),
}

impl AssetCache {
    /// A cache holding at most `max_bytes` of file content.
    pub fn with_limit(max_bytes: u64) -> AssetCache {
        AssetCache {
            slots: Mutex::new(HashMap::new()),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Slot>> {
        // The map holds no invariant a panic could break halfway.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks `rel` under `root` up.
    pub fn lookup(&self, root: &Path, rel: &str) -> Lookup {
        let now = Instant::now();
        let mut slots = self.lock();
        let key = (root.to_path_buf(), rel.to_string());
        if let Some(slot) = slots.get_mut(&key) {
            slot.used = now;
            if let Some(asset) = slot.asset.get() {
                if now.duration_since(slot.checked) < REVALIDATE {
                    return Lookup::Hit(asset.clone());
                }
                // Only this request checks; the others keep using the entry meanwhile.
                slot.checked = now;
                return Lookup::Stale(asset.clone());
            }
            return Lookup::Load(slot.asset.clone());
        }
        if slots.len() >= ENTRIES_MAX {
            evict_oldest(&mut slots, slots_len_target());
        }
        let cell = Arc::new(OnceCell::new());
        slots.insert(
            key,
            Slot {
                asset: cell.clone(),
                checked: now,
                used: now,
            },
        );
        Lookup::Load(cell)
    }

    /// The file behind a stale entry is unchanged: trust it for another period.
    pub fn confirm(&self, root: &Path, rel: &str) {
        if let Some(slot) = self.lock().get_mut(&(root.to_path_buf(), rel.to_string())) {
            slot.checked = Instant::now();
        }
    }

    /// Drops an entry (the file changed, vanished, or could not be loaded).
    pub fn forget(&self, root: &Path, rel: &str) {
        self.lock().remove(&(root.to_path_buf(), rel.to_string()));
    }

    /// A load finished: keep the memory held within [`MEMORY_BYTES_MAX`].
    pub fn loaded(&self, root: &Path, rel: &str) {
        let key = (root.to_path_buf(), rel.to_string());
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(&key) {
            slot.checked = Instant::now();
        }
        while held(&slots) > self.max_bytes {
            let victim = slots
                .iter()
                .filter(|(k, s)| **k != key && s.asset.get().is_some_and(|a| a.in_memory()))
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    slots.remove(&k);
                }
                None => break,
            }
        }
    }

    /// Bytes of file content held now.
    pub fn memory_bytes(&self) -> u64 {
        held(&self.lock())
    }
}

fn held(slots: &HashMap<Key, Slot>) -> u64 {
    slots
        .values()
        .filter_map(|s| s.asset.get())
        .filter(|a| a.in_memory())
        .map(|a| a.size)
        .sum()
}

/// Entries kept when the entry bound is hit: three quarters, so eviction is not per insert.
fn slots_len_target() -> usize {
    ENTRIES_MAX / 4 * 3
}

fn evict_oldest(slots: &mut HashMap<Key, Slot>, keep: usize) {
    let mut by_age: Vec<(Instant, Key)> = slots.iter().map(|(k, s)| (s.used, k.clone())).collect();
    by_age.sort_by_key(|(used, _)| *used);
    let excess = slots.len().saturating_sub(keep);
    for (_, k) in by_age.into_iter().take(excess) {
        slots.remove(&k);
    }
}
