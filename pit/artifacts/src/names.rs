//! Named artifacts with versions, git-like: each version of a name points at a blob and at its
//! parent version, with metadata and lineage. A name's history is an append-only JSON-lines
//! file (`names/<name>.jsonl`), one `write` + fsync per version; a torn last line (a crash
//! mid-append) is skipped on read and reported, never fatal. One process writes a store at a
//! time: opening it for writing takes an exclusive lock and a second writer is refused.

use crate::blobs::{BlobId, BlobStore, StoreError};
use crate::quality::{assess, Quality};
use crate::search::{Hit, SearchError, SearchIndex};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// Where an artifact came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// e.g. `code`, `text`, `report`.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub mime: String,
    /// The caret (or `user`, `conductor`) that produced it.
    #[serde(default)]
    pub author: String,
    /// The melody run and node that produced it, e.g. `run-1a2b/summary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produced_by: Option<String>,
    /// Artifacts it was derived from, as `name@version`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derived_from: Vec<String>,
}

/// One version of a named artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub name: String,
    /// 1, 2, 3 … per name.
    pub version: u64,
    pub blob: BlobId,
    pub len: u64,
    pub parent: Option<u64>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub meta: Meta,
    /// The score and its factors (absent for versions stored before scores existed, and for
    /// blobs larger than `SCORED_UP_TO`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Quality>,
}

/// Larger artifacts are stored without a quality score (scoring reads them as text).
const SCORED_UP_TO: usize = 16 << 20;

/// What a store holds: names and versions, the bytes they stand for, and what that takes on
/// disk after deduplication and compression.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub names: usize,
    pub versions: usize,
    /// The sum of every version's length: what storing each version whole would take.
    pub logical_bytes: u64,
    pub blobs: usize,
    pub chunks: usize,
    /// Compressed chunks and recipes on disk.
    pub stored_bytes: u64,
    /// `logical_bytes / stored_bytes`: what dedup and compression save together.
    pub saving: f64,
    /// Names the search index holds.
    pub indexed: u64,
    /// The mean quality score of the latest versions that have one.
    pub mean_quality: Option<f64>,
}

/// A name's versions, oldest first, and how many torn lines its file had.
type History = (std::sync::Arc<Vec<Version>>, usize);

/// Errors of the named layer.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("`{0}` is not an artifact name: use letters, digits, `-`, `_`, `.` and `/` (no `..`), up to 200")]
    BadName(String),
    #[error("no artifact `{0}`")]
    NotFound(String),
    #[error("{name} has no version {version} (latest: {latest})")]
    NoVersion { name: String, version: u64, latest: u64 },
    #[error("the store at {path} is open for writing by another process (pid in {path}/lock); close it first")]
    Locked { path: PathBuf },
    #[error(transparent)]
    Search(#[from] SearchError),
}

/// Named, versioned artifacts over a blob store.
#[derive(Debug)]
pub struct ArtifactStore {
    blobs: BlobStore,
    root: PathBuf,
    /// Held for the store's life: the exclusive write lock.
    _lock: std::fs::File,
    appending: Mutex<()>,
    /// Puts share it; garbage collection takes it alone, so it never removes the chunks of a
    /// blob whose version is still being recorded.
    collecting: std::sync::RwLock<()>,
    search: SearchIndex,
    /// Each name's history as read from its file (and the torn lines skipped), kept current by
    /// `put`: this process is the store's only writer (the lock), so the copy cannot go stale.
    histories: std::sync::RwLock<std::collections::HashMap<String, History>>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('/')
        && !name.split('/').any(|part| part.is_empty() || part == "." || part == "..")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl ArtifactStore {
    /// Opens (creating) a store for writing; refused while another process has it open.
    pub fn open(root: impl Into<PathBuf>, level: i32) -> Result<Self, ArtifactError> {
        let root = root.into();
        let blobs = BlobStore::open(&root, level)?;
        let lock_path = root.join("lock");
        let io = |e: std::io::Error| ArtifactError::Store(StoreError::Io { path: lock_path.clone(), source: e });
        let mut lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(ArtifactError::Locked { path: root }),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        lock.set_len(0).and_then(|()| write!(lock, "{}", std::process::id())).map_err(io)?;
        std::fs::create_dir_all(root.join("names")).map_err(|e| ArtifactError::Store(StoreError::Io { path: root.join("names"), source: e }))?;
        let (search, fresh) = SearchIndex::open(&root.join("index"))?;
        let store = Self {
            blobs,
            root,
            _lock: lock,
            appending: Mutex::new(()),
            collecting: std::sync::RwLock::new(()),
            search,
            histories: std::sync::RwLock::default(),
        };
        // A new or replaced index, or one that missed names (a crash before its commit), is
        // rebuilt from the store.
        if fresh || store.indexed() != store.names()?.len() as u64 {
            store.rebuild_index()?;
        }
        Ok(store)
    }

    /// Every name in the store.
    pub fn names(&self) -> Result<Vec<String>, ArtifactError> {
        let dir = self.root.join("names");
        let entries = std::fs::read_dir(&dir).map_err(|e| StoreError::Io { path: dir.clone(), source: e })?;
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".jsonl")).map(|n| n.replace("%2F", "/")))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Rebuilds the search index from the names and blobs (it is derived data); returns how
    /// many names were indexed. A blob that cannot be read is indexed by name only.
    pub fn rebuild_index(&self) -> Result<usize, ArtifactError> {
        self.search.clear()?;
        let names = self.names()?;
        for name in &names {
            let Ok((versions, _)) = self.log(name) else { continue };
            let Some(latest) = versions.last() else { continue };
            let bytes = self.blobs.get(&latest.blob).ok();
            self.index(latest, bytes.as_deref())?;
        }
        self.search.commit()?;
        Ok(names.len())
    }

    fn index(&self, v: &Version, bytes: Option<&[u8]>) -> Result<(), ArtifactError> {
        let text = bytes.and_then(|b| std::str::from_utf8(b).ok());
        let quality = v.quality.as_ref().map(|q| q.score);
        Ok(self.search.put(&v.name, v.version, &v.meta.kind, &v.meta.tags, quality, text)?)
    }

    /// The best `limit` matches of `query` among the latest versions, with snippets.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Hit>, ArtifactError> {
        Ok(self.search.search(query, limit)?)
    }

    /// Makes every put so far searchable now (the index commits on its own within ~100 ms).
    pub fn commit_index(&self) -> Result<(), ArtifactError> {
        Ok(self.search.commit()?)
    }

    /// How many names are searchable now.
    pub fn indexed(&self) -> u64 {
        self.search.len()
    }

    fn history_path(&self, name: &str) -> PathBuf {
        self.root.join("names").join(format!("{}.jsonl", name.replace('/', "%2F")))
    }

    /// Every version of `name`, oldest first, and how many torn lines were skipped.
    pub fn log(&self, name: &str) -> Result<(Vec<Version>, usize), ArtifactError> {
        let (versions, torn) = self.history(name)?;
        Ok((versions.as_ref().clone(), torn))
    }

    /// The history of `name`, from memory once it has been read.
    fn history(&self, name: &str) -> Result<(std::sync::Arc<Vec<Version>>, usize), ArtifactError> {
        if !valid_name(name) {
            return Err(ArtifactError::BadName(name.to_owned()));
        }
        if let Some((versions, torn)) = self.histories.read().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok((std::sync::Arc::clone(versions), *torn));
        }
        let path = self.history_path(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ArtifactError::NotFound(name.to_owned())),
            Err(e) => return Err(StoreError::Io { path, source: e }.into()),
        };
        let (mut versions, mut torn) = (Vec::new(), 0);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Version>(line) {
                Ok(v) => versions.push(v),
                Err(_) => torn += 1,
            }
        }
        let versions = std::sync::Arc::new(versions);
        self.histories.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), (std::sync::Arc::clone(&versions), torn));
        Ok((versions, torn))
    }

    /// Stores `bytes` as the next version of `name`, its parent the current latest.
    pub fn put(&self, name: &str, bytes: &[u8], meta: Meta) -> Result<Version, ArtifactError> {
        if !valid_name(name) {
            return Err(ArtifactError::BadName(name.to_owned()));
        }
        let _not_collecting = self.collecting.read().unwrap_or_else(|p| p.into_inner());
        let stored = self.blobs.put(bytes)?;
        let _one_writer = self.appending.lock().unwrap_or_else(|p| p.into_inner());
        let latest = match self.history(name) {
            Ok((versions, _)) => versions.last().map(|v| v.version),
            Err(ArtifactError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let version = Version {
            name: name.to_owned(),
            version: latest.map_or(1, |l| l + 1),
            blob: stored.id,
            len: stored.len,
            parent: latest,
            created_at: now_rfc3339(),
            quality: (bytes.len() <= SCORED_UP_TO).then(|| assess(name, &meta.kind, &meta.mime, bytes)),
            meta,
        };
        let path = self.history_path(name);
        let mut line: Vec<u8> = serde_json::to_vec(&version).map_err(|e| StoreError::Io { path: path.clone(), source: std::io::Error::other(e) })?;
        line.push(b'\n');
        let mut append = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new().create(true).append(true).read(true).open(&path)?;
            // After a torn line (a crash mid-append) start a fresh line, or this one is lost too.
            let len = f.metadata()?.len();
            if len > 0 {
                use std::io::{Read, Seek, SeekFrom};
                let mut last = [0u8; 1];
                f.seek(SeekFrom::Start(len - 1))?;
                f.read_exact(&mut last)?;
                if last[0] != b'\n' {
                    line.insert(0, b'\n');
                }
            }
            f.write_all(&line)?;
            f.sync_all()
        };
        if let Err(e) = append() {
            // What is on disk now is unknown (a part of the line may be there): read it again.
            self.histories.write().unwrap_or_else(|p| p.into_inner()).remove(name);
            return Err(StoreError::Io { path: path.clone(), source: e }.into());
        }
        {
            let mut histories = self.histories.write().unwrap_or_else(|p| p.into_inner());
            let (versions, torn) = histories.remove(name).unwrap_or_default();
            let mut versions = std::sync::Arc::unwrap_or_clone(versions);
            versions.push(version.clone());
            histories.insert(name.to_owned(), (std::sync::Arc::new(versions), torn));
        }
        // Stored first, then indexed: a crash between the two leaves a store whose index is
        // rebuilt, never an index entry for something not stored.
        if let Err(e) = self.index(&version, Some(bytes)) {
            tracing::warn!(name, "stored but not indexed: {e}");
        }
        Ok(version)
    }

    /// A version by `name` (latest), `name@N`, or the bytes' BLAKE3.
    pub fn resolve(&self, spec: &str) -> Result<Version, ArtifactError> {
        let (name, wanted) = match spec.rsplit_once('@') {
            Some((n, v)) => (n, Some(v.parse::<u64>().map_err(|_| ArtifactError::BadName(spec.to_owned()))?)),
            None => (spec, None),
        };
        let (versions, _) = self.history(name)?;
        let latest = versions.last().map_or(0, |v| v.version);
        match wanted {
            None => versions.last().cloned().ok_or_else(|| ArtifactError::NotFound(name.to_owned())),
            // Versions are numbered 1, 2, 3 … in order: the Nth is at N−1 (checked, in case).
            Some(n) => usize::try_from(n.wrapping_sub(1))
                .ok()
                .and_then(|i| versions.get(i))
                .filter(|v| v.version == n)
                .or_else(|| versions.iter().find(|v| v.version == n))
                .cloned()
                .ok_or(ArtifactError::NoVersion { name: name.to_owned(), version: n, latest }),
        }
    }

    /// The bytes of `name`, `name@N`, or a blob id (64 hex digits).
    pub fn get(&self, spec: &str) -> Result<Vec<u8>, ArtifactError> {
        if spec.len() == 64 && spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(self.blobs.get(&BlobId(spec.to_owned()))?);
        }
        let version = self.resolve(spec)?;
        Ok(self.blobs.get(&version.blob)?)
    }

    /// Counts and sizes (see `Stats`).
    pub fn stats(&self) -> Result<Stats, ArtifactError> {
        let mut stats = Stats::default();
        let mut scores = Vec::new();
        for name in self.names()? {
            let (versions, _) = self.history(&name)?;
            stats.names += 1;
            stats.versions += versions.len();
            stats.logical_bytes += versions.iter().map(|v| v.len).sum::<u64>();
            if let Some(q) = versions.last().and_then(|v| v.quality.as_ref()) {
                scores.push(q.score);
            }
        }
        let usage = self.blobs.usage()?;
        (stats.blobs, stats.chunks, stats.stored_bytes) = (usage.blobs, usage.chunks, usage.stored_bytes);
        stats.saving = if usage.stored_bytes > 0 { stats.logical_bytes as f64 / usage.stored_bytes as f64 } else { 0.0 };
        stats.indexed = self.indexed();
        stats.mean_quality = (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
        Ok(stats)
    }

    /// Removes blobs no version of any name points at (e.g. a put a crash cut off before its
    /// version was recorded), the chunks only they used, and temporary leftovers.
    pub fn gc(&self) -> Result<crate::blobs::GcReport, ArtifactError> {
        let _alone = self.collecting.write().unwrap_or_else(|p| p.into_inner());
        let mut keep = std::collections::HashSet::new();
        for name in self.names()? {
            for v in self.log(&name)?.0 {
                keep.insert(v.blob);
            }
        }
        Ok(self.blobs.gc(&keep)?)
    }

    /// The underlying blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }
}
