//! Named artifacts with versions, git-like: each version of a name points at a blob and at its
//! parent version, with metadata and lineage. A version is a JSON record in the pack journal,
//! appended in the same batch as its blob's new chunks, so a put is one durable append. The
//! search index follows the journal on its own thread (`indexer`): a put returns once durable,
//! and is searchable within the commit interval when the indexer keeps up. One process writes
//! a store at a time: opening it takes an exclusive lock and a second writer is refused.

use crate::blobs::{parse_id, BlobId, BlobStore, StoreError};
use crate::catalog::{version_key, Tier, Tombstone};
use crate::pack::{Kind, Record};
use crate::quality::{assess, Quality};
use crate::search::{Hit, SearchError, SearchIndex};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

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

/// What a put came to: the version holding the bytes, and whether the put made it. Putting
/// exactly what the latest version holds (bytes and metadata) makes none.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub version: Version,
    pub new: bool,
}

/// One artifact for `ArtifactStore::put_many`.
#[derive(Clone, Debug)]
pub struct NewVersion<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
    pub meta: Meta,
}

/// A version whose append is in flight: what numbering and the identical check need.
struct InFlight {
    version: u64,
    blob: BlobId,
    len: u64,
    meta: Meta,
}

/// An artifact prepared for `commit`.
struct Prepared {
    records: Vec<Record>,
    blob: BlobId,
    len: u64,
    quality: Option<Quality>,
}

/// What `put_many`'s threads share: artifacts prepared (by index), how far they are ready in
/// order, and what is appended.
#[derive(Default)]
struct Bulk {
    slots: Vec<Option<Prepared>>,
    /// `slots[..ready]` are prepared; `slots[start..ready]` are not appended yet.
    ready: usize,
    start: usize,
    /// Content bytes in `slots[start..ready]`.
    bytes: usize,
    appending: bool,
    /// What was stored, by the index of its batch's first artifact.
    done: Vec<(usize, Vec<Stored>)>,
    failed: Option<ArtifactError>,
}

/// `put_many` appends batches of about this many bytes of content (4 MiB imported 319 MB
/// ~3 % faster than 8 or 2, 16 slower: the last batch is appended while the other cores have
/// nothing left to prepare), or of this many artifacts (their versions and recipes make one
/// group record: this bounds it at a few MiB).
const BULK_BYTES: usize = 4 << 20;
const BULK_ITEMS: usize = 4096;

/// Larger artifacts are stored without a quality score: scoring reads them as text, and past
/// this size that costs more than storing them (and they are seldom hand-written).
const SCORED_UP_TO: usize = 4 << 20;

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
pub struct ArtifactStore {
    blobs: Arc<BlobStore>,
    root: PathBuf,
    /// Held for the store's life: the exclusive write lock.
    _lock: std::fs::File,
    /// Puts share it; garbage collection takes it alone, so it never drops the chunks of a
    /// blob whose version is still being recorded.
    collecting: std::sync::RwLock<()>,
    search: Arc<SearchIndex>,
    /// The last version handed out per name while its append is in flight (the catalog has
    /// it once durable).
    numbered: Mutex<HashMap<String, InFlight>>,
    indexed: Arc<Progress>,
    indexer: Option<std::thread::JoinHandle<()>>,
    /// When each blob was last read (unix seconds), for retention policies.
    access: Mutex<HashMap<[u8; 32], u64>>,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore").field("root", &self.root).finish_non_exhaustive()
    }
}

/// How far the indexer has got, in journal positions; and how many bulk puts are running,
/// which it waits for.
#[derive(Default)]
struct Progress {
    done: Mutex<u64>,
    moved: Condvar,
    bulk_puts: Mutex<usize>,
    bulk_done: Condvar,
}

/// Held while a bulk put runs: the indexer waits, then indexes what it brought in one go.
/// Even at nice 19 it took ~10 % of the CPU from an import on 2 cores (it gets a core
/// whenever an appending thread waits on a sync, and keeps it for a time slice), and an
/// import is CPU-bound; its puts are searchable once it ends and the indexer catches up.
struct BulkPut<'a>(&'a Progress);

impl<'a> BulkPut<'a> {
    fn start(progress: &'a Progress) -> Self {
        *progress.bulk_puts.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        Self(progress)
    }
}

impl Drop for BulkPut<'_> {
    fn drop(&mut self) {
        let mut running = self.0.bulk_puts.lock().unwrap_or_else(|p| p.into_inner());
        *running -= 1;
        if *running == 0 {
            self.0.bulk_done.notify_all();
        }
    }
}

/// How long the indexer lets puts gather once one arrives (a small part of `COMMIT_EVERY`).
const LINGER: std::time::Duration = std::time::Duration::from_millis(5);

/// Follows the journal: indexes the latest version of each name a record touched, in order,
/// and tells the index (and `commit_index`) how far it got.
fn indexer(feed: &std::sync::mpsc::Receiver<(u64, String)>, blobs: &BlobStore, search: &SearchIndex, progress: &Progress) {
    crate::search::lower_priority();
    while let Ok(first) = feed.recv() {
        let mut bulk_puts = progress.bulk_puts.lock().unwrap_or_else(|p| p.into_inner());
        while *bulk_puts > 0 {
            bulk_puts = progress.bulk_done.wait(bulk_puts).unwrap_or_else(|p| p.into_inner());
        }
        drop(bulk_puts);
        // Let puts gather for a moment: woken for each one, the indexer (and tantivy's
        // threads, woken per document) cost concurrent writers a context switch per put.
        std::thread::sleep(LINGER);
        let mut batch = vec![first];
        while batch.len() < 4096
            && let Ok(next) = feed.try_recv()
        {
            batch.push(next);
        }
        let upto = batch.iter().map(|(p, _)| *p).max().unwrap_or(0);
        search.set_busy(batch.len() > 1);
        let mut seen = std::collections::HashSet::new();
        for (_, name) in batch {
            if seen.insert(name.clone()) {
                index_latest(blobs, search, &name);
            }
        }
        search.set_position(upto);
        let mut done = progress.done.lock().unwrap_or_else(|p| p.into_inner());
        *done = (*done).max(upto);
        progress.moved.notify_all();
    }
}

/// Indexes what a name's latest version holds (by name only when its bytes are in another
/// tier, or not text).
fn index_latest(blobs: &BlobStore, search: &SearchIndex, name: &str) {
    let latest = blobs.journal.catalog.read().unwrap_or_else(|p| p.into_inner()).names.get(name).and_then(|h| h.last().cloned());
    let Some(v) = latest else {
        search.remove(name);
        return;
    };
    let bytes = match blobs.tier(&v.blob) {
        Ok(Tier::Hot) => blobs.read_prefix(&v.blob, crate::search::MAX_INDEXED).ok(),
        _ => None,
    };
    let text = bytes.as_deref().and_then(|b| match std::str::from_utf8(b) {
        Ok(t) => Some(t),
        // Cut mid-character by the prefix: index up to it.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&b[..e.valid_up_to()]).ok(),
        Err(_) => None,
    });
    let quality = v.quality.as_ref().map(|q| q.score);
    if let Err(e) = search.put(&v.name, v.version, &v.meta.kind, &v.meta.tags, quality, text) {
        tracing::warn!(name, "not indexed: {e}");
    }
}

/// Whether `name` can name an artifact: 1–200 characters of ASCII letters, digits, `-`, `_`,
/// `.` and `/`, relative, with no empty, `.` or `..` part.
pub fn valid_name(name: &str) -> bool {
    // On bytes: an import checks every name, and the `str` splitting took 8 % of importing
    // small files. Non-ASCII bytes fail the character check.
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 200
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'/'))
        && b.split(|&c| c == b'/').all(|part| !part.is_empty() && part != b"." && part != b"..")
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl ArtifactStore {
    /// Opens (creating) a store for writing; refused while another process has it open.
    pub fn open(root: impl Into<PathBuf>, level: i32) -> Result<Self, ArtifactError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| StoreError::Io { path: root.clone(), source: e })?;
        let lock_path = root.join("lock");
        let io = |e: std::io::Error| ArtifactError::Store(StoreError::Io { path: lock_path.clone(), source: e });
        let mut lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(ArtifactError::Locked { path: root }),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        lock.set_len(0).and_then(|()| write!(lock, "{}", std::process::id())).map_err(io)?;
        crate::legacy::import(&root, level)?;
        let blobs = Arc::new(BlobStore::open(&root, level)?);
        let (search, fresh) = SearchIndex::open(&root.join("index"))?;
        let search = Arc::new(search);
        let (feed, follow) = std::sync::mpsc::channel();
        let names = {
            let mut catalog = blobs.journal.catalog.write().unwrap_or_else(|p| p.into_inner());
            catalog.feed = Some(feed.clone());
            catalog.names.len() as u64
        };
        // A new or replaced index, or one holding names the store no longer has, is rebuilt;
        // otherwise what the journal holds past the index's last commit is indexed again.
        let indexed = Arc::new(Progress::default());
        if fresh || search.len() > names {
            rebuild(&blobs, &search)?;
        } else {
            let from = search.position();
            // Short of names (a crash before a commit): everything is indexed again.
            let short = search.len() < names;
            let catalog = blobs.journal.catalog.read().unwrap_or_else(|p| p.into_inner());
            for (name, history) in &catalog.names {
                let at = history.last().and_then(|v| catalog.version_locs.get(&version_key(name, v.version))).map_or(u64::MAX, |l| l.position());
                if at > from || short {
                    let _ = feed.send((catalog.last_version_at, name.clone()));
                }
            }
        }
        drop(feed);
        *indexed.done.lock().unwrap_or_else(|p| p.into_inner()) = search.position();
        let indexer = {
            let (blobs, search, progress) = (Arc::clone(&blobs), Arc::clone(&search), Arc::clone(&indexed));
            std::thread::Builder::new()
                .name("artifact-indexer".to_owned())
                .spawn(move || indexer(&follow, &blobs, &search, &progress))
                .map_err(|e| StoreError::Io { path: root.join("index"), source: e })?
        };
        let access = std::fs::read(root.join("access.bin")).ok().and_then(|b| postcard::from_bytes(&b).ok()).unwrap_or_default();
        Ok(Self {
            blobs,
            root,
            _lock: lock,
            collecting: std::sync::RwLock::new(()),
            search,
            numbered: Mutex::default(),
            indexed,
            indexer: Some(indexer),
            access: Mutex::new(access),
        })
    }

    /// Every name in the store, sorted.
    pub fn names(&self) -> Result<Vec<String>, ArtifactError> {
        let mut names: Vec<String> = self.blobs.journal.catalog.read().unwrap_or_else(|p| p.into_inner()).names.keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    /// Rebuilds the search index from the names and blobs (it is derived data); returns how
    /// many names were indexed. A blob that cannot be read is indexed by name only.
    pub fn rebuild_index(&self) -> Result<usize, ArtifactError> {
        self.commit_index()?;
        rebuild(&self.blobs, &self.search)
    }

    /// The best `limit` matches of `query` among the latest versions, with snippets.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Hit>, ArtifactError> {
        let content = |name: &str, version: u64| -> Option<String> {
            let v = self.resolve(&format!("{name}@{version}")).ok()?;
            // Snippets come from hot bytes only: a search must not restore cold blobs.
            if self.blobs.tier(&v.blob).ok()? != Tier::Hot {
                return None;
            }
            let bytes = self.blobs.read_prefix(&v.blob, crate::search::MAX_INDEXED).ok()?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
        };
        Ok(self.search.search(query, limit, &content)?)
    }

    /// Makes every put so far searchable now (otherwise that takes the indexer's lag plus
    /// up to `COMMIT_EVERY`).
    pub fn commit_index(&self) -> Result<(), ArtifactError> {
        let target = self.blobs.journal.catalog.read().unwrap_or_else(|p| p.into_inner()).last_version_at;
        let mut done = self.indexed.done.lock().unwrap_or_else(|p| p.into_inner());
        while *done < target && self.indexer.as_ref().is_some_and(|h| !h.is_finished()) {
            done = self.indexed.moved.wait_timeout(done, std::time::Duration::from_millis(50)).unwrap_or_else(|p| p.into_inner()).0;
        }
        drop(done);
        Ok(self.search.commit()?)
    }

    /// How many names are searchable now.
    pub fn indexed(&self) -> u64 {
        self.search.len()
    }

    /// Every version of `name`, oldest first.
    pub fn log(&self, name: &str) -> Result<Vec<Version>, ArtifactError> {
        Ok(self.history(name)?.as_ref().clone())
    }

    fn history(&self, name: &str) -> Result<Arc<Vec<Version>>, ArtifactError> {
        if !valid_name(name) {
            return Err(ArtifactError::BadName(name.to_owned()));
        }
        self.known_history(name).ok_or_else(|| ArtifactError::NotFound(name.to_owned()))
    }

    /// A name's versions, if it has any (the name is not checked: callers did).
    fn known_history(&self, name: &str) -> Option<Arc<Vec<Version>>> {
        self.blobs.journal.catalog.read().unwrap_or_else(|p| p.into_inner()).names.get(name).cloned()
    }

    /// Stores `bytes` as the next version of `name`, its parent the current latest. Durable
    /// once it returns: its chunks, recipe and version went out in one synced append (shared
    /// with concurrent puts). Putting exactly what the latest version holds (bytes and
    /// metadata) returns that version instead of making another.
    pub fn put(&self, name: &str, bytes: &[u8], meta: Meta) -> Result<Version, ArtifactError> {
        self.put_with(name, bytes, meta, &mut |_, _| {}).map(|stored| stored.version)
    }

    /// `put`, telling `progress` how many of the bytes are chunked, hashed and compressed so
    /// far (and how many there are): a put of a large file takes seconds.
    pub fn put_with(&self, name: &str, bytes: &[u8], meta: Meta, progress: &mut dyn FnMut(u64, u64)) -> Result<Stored, ArtifactError> {
        if !valid_name(name) {
            return Err(ArtifactError::BadName(name.to_owned()));
        }
        let _not_collecting = self.collecting.read().unwrap_or_else(|p| p.into_inner());
        let mut versions = self.put_one(&NewVersion { name, bytes, meta }, &mut |done| progress(done, bytes.len() as u64))?;
        versions.pop().ok_or_else(|| ArtifactError::NotFound(name.to_owned()))
    }

    /// One artifact prepared and appended (its name checked, collection held off).
    fn put_one(&self, item: &NewVersion<'_>, progress: &mut dyn FnMut(u64)) -> Result<Vec<Stored>, ArtifactError> {
        let prepared = self.prepare(item, progress)?;
        self.commit(std::slice::from_ref(item), vec![prepared])
    }

    /// Stores many artifacts — an import of a tree — as `put` would one after the other, in
    /// this order, but prepared (chunked, hashed, compressed, scored) on all cores and
    /// appended in batches of about `BULK_BYTES`, one synced write each, while the next batch
    /// is prepared. Every version is durable once this returns. Nothing is written when a
    /// name is invalid; on an I/O error the batches before it are stored. The search indexer
    /// waits while this runs (see `BulkPut`): what it stores is searchable shortly after.
    pub fn put_many(&self, items: &[NewVersion<'_>]) -> Result<Vec<Stored>, ArtifactError> {
        if let Some(bad) = items.iter().find(|i| !valid_name(i.name)) {
            return Err(ArtifactError::BadName(bad.name.to_owned()));
        }
        let _not_collecting = self.collecting.read().unwrap_or_else(|p| p.into_inner());
        if let [one] = items {
            return self.put_one(one, &mut |_| {});
        }
        // One thread per core (this one too) prepares the next artifact; whichever finds a
        // batch ready in order appends it, unless another is appending, and goes on preparing.
        // No thread waits to be handed work. Measured against: an appending thread woken for
        // each prepared artifact (the context switches cost more than the appends), and one
        // woken per batch (199 against 218 MB/s: it preempted the preparing threads).
        let _indexer_waits = BulkPut::start(&self.indexed);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let bulk = Mutex::new(Bulk { slots: std::iter::repeat_with(|| None).take(items.len()).collect(), ..Bulk::default() });
        let work = || {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { return };
                let prepared = self.prepare(item, &mut |_| {});
                let mut b = bulk.lock().unwrap_or_else(|p| p.into_inner());
                if b.failed.is_some() {
                    return;
                }
                match prepared {
                    Ok(p) => b.slots[i] = Some(p),
                    Err(e) => {
                        b.failed = Some(e);
                        return;
                    }
                }
                while b.ready < items.len() && b.slots[b.ready].is_some() {
                    b.bytes += items[b.ready].bytes.len();
                    b.ready += 1;
                }
                // Append while a batch is ready (and then what became ready meanwhile).
                while !b.appending && b.failed.is_none() && b.ready > b.start && (b.bytes >= BULK_BYTES || b.ready - b.start >= BULK_ITEMS || b.ready == items.len()) {
                    let (from, to) = (b.start, b.ready);
                    let batch: Vec<Prepared> = b.slots[from..to].iter_mut().filter_map(Option::take).collect();
                    (b.start, b.bytes, b.appending) = (to, 0, true);
                    drop(b);
                    let appended = self.commit(&items[from..to], batch);
                    b = bulk.lock().unwrap_or_else(|p| p.into_inner());
                    b.appending = false;
                    match appended {
                        Ok(versions) => b.done.push((from, versions)),
                        Err(e) => b.failed = Some(e),
                    }
                }
            }
        };
        std::thread::scope(|s| {
            for _ in 1..crate::cores::available() {
                s.spawn(work);
            }
            work();
        });
        let b = bulk.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = b.failed {
            return Err(e);
        }
        let mut done = b.done;
        done.sort_by_key(|(from, _)| *from);
        Ok(done.into_iter().flat_map(|(_, versions)| versions).collect())
    }

    /// One artifact's chunks, recipe and quality score, ready to append.
    fn prepare(&self, item: &NewVersion<'_>, progress: &mut dyn FnMut(u64)) -> Result<Prepared, ArtifactError> {
        // `put_many` checked the name; a new name's missing history is no error here.
        let history = self.known_history(item.name);
        let latest = history.as_deref().and_then(|h| h.last());
        // The latest version's bytes again (a tool that saves every file each time): nothing
        // to chunk, compress or score; `commit` then finds it identical.
        if let Some(l) = latest
            && l.len == item.bytes.len() as u64
            && l.blob.0 == blake3::hash(item.bytes).to_hex().as_str()
            && self.blobs.contains(&l.blob)
        {
            return Ok(Prepared { records: Vec::new(), blob: l.blob.clone(), len: l.len, quality: l.quality.clone() });
        }
        let blob = self.blobs.prepare_after(item.bytes, latest.map(|v| &v.blob), progress)?;
        let quality = (item.bytes.len() <= SCORED_UP_TO).then(|| assess(item.name, &item.meta.kind, &item.meta.mime, item.bytes));
        Ok(Prepared { records: blob.records, blob: blob.report.id, len: blob.report.len, quality })
    }

    /// Appends prepared artifacts in one synced write, numbering their versions under the
    /// journal's lock (numbers follow write order, and an artifact identical to its name's
    /// latest version — durable or still in flight — makes no new one).
    fn commit(&self, items: &[NewVersion<'_>], prepared: Vec<Prepared>) -> Result<Vec<Stored>, ArtifactError> {
        // A bulk write's recipes and versions go in one group (see `pack::group_of`).
        let bulk = items.len() > 1;
        let (mut records, mut small) = (Vec::new(), Vec::new());
        let mut seen = std::collections::HashSet::new();
        let mut rest = Vec::with_capacity(prepared.len());
        for p in prepared {
            // Identical files in one batch (licences, say) are written once.
            for r in p.records.into_iter().filter(|r| seen.insert((r.kind as u8, r.key))) {
                if bulk && r.kind != Kind::Chunk { small.push(r) } else { records.push(r) }
            }
            rest.push((p.blob, p.len, p.quality));
        }
        // A new version, or the number of an identical one still in flight (read back from
        // the catalog once the append returns: it is durable by then).
        let mut made: Vec<Result<Stored, u64>> = Vec::with_capacity(items.len());
        let mut make = || -> Result<Vec<Record>, StoreError> {
            let catalog = self.blobs.journal.catalog.read().unwrap_or_else(|p| p.into_inner());
            let mut numbered = self.numbered.lock().unwrap_or_else(|p| p.into_inner());
            let mut out = Vec::new();
            for (item, (blob, len, quality)) in items.iter().zip(rest.drain(..)) {
                let same = |l_blob: &BlobId, l_len: u64, l_meta: &Meta| *l_blob == blob && l_len == len && *l_meta == item.meta;
                match numbered.get(item.name) {
                    Some(f) if same(&f.blob, f.len, &f.meta) => {
                        made.push(Err(f.version));
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        if let Some(l) = catalog.names.get(item.name).and_then(|h| h.last())
                            && same(&l.blob, l.len, &l.meta)
                        {
                            made.push(Ok(Stored { version: l.clone(), new: false }));
                            continue;
                        }
                    }
                }
                let last = numbered.get(item.name).map(|f| f.version).max(catalog.highest.get(item.name).copied());
                let number = last.map_or(1, |l| l + 1);
                let v = Version { name: item.name.to_owned(), version: number, blob, len, parent: last, created_at: now_rfc3339(), quality, meta: item.meta.clone() };
                // Plain JSON: compressed with its neighbours in a group now (bulk) or when
                // compaction gathers versions at rest (gc, sweeps). Compressing a lone one
                // against the dictionary at put time cost 20–40 % of the durable puts/s of 16
                // writers and ~20 % of one writer's ingest; until compaction, only the hot
                // tier holds the ~450 bytes a record more.
                let payload = serde_json::to_vec(&v).map_err(|e| StoreError::Io { path: self.root.clone(), source: std::io::Error::other(e) })?;
                out.push(Record { kind: Kind::Version, key: version_key(item.name, number), payload, decoded: Some(Box::new(v.clone())) });
                numbered.insert(item.name.to_owned(), InFlight { version: number, blob: v.blob.clone(), len, meta: v.meta.clone() });
                made.push(Ok(Stored { version: v, new: true }));
            }
            if !bulk || small.len() + out.len() == 0 {
                return Ok(out);
            }
            small.append(&mut out);
            let group = crate::pack::group_of(std::mem::take(&mut small)).map_err(|e| StoreError::Io { path: self.root.clone(), source: std::io::Error::other(e) })?;
            Ok(vec![group])
        };
        let appended = self.blobs.journal.append(records, Some(&mut make));
        // Durable (or failed): the catalog knows these now, so they need not be held here.
        let mut numbered = self.numbered.lock().unwrap_or_else(|p| p.into_inner());
        for (item, m) in items.iter().zip(&made) {
            if let Ok(stored) = m
                && numbered.get(item.name).is_some_and(|f| f.version == stored.version.version)
            {
                numbered.remove(item.name);
            }
        }
        drop(numbered);
        appended?;
        items
            .iter()
            .zip(made)
            .map(|(item, m)| m.or_else(|number| self.resolve(&format!("{}@{number}", item.name)).map(|version| Stored { version, new: false })))
            .collect()
    }

    /// Deletes one version (a retention policy decided so): a tombstone in the journal; its
    /// blob goes at the next collection if nothing else points at it.
    pub fn delete(&self, name: &str, version: u64) -> Result<(), ArtifactError> {
        self.resolve(&format!("{name}@{version}"))?;
        let payload = serde_json::to_vec(&Tombstone { name: name.to_owned(), version }).map_err(|e| StoreError::Io { path: self.root.clone(), source: std::io::Error::other(e) })?;
        self.blobs.journal.append(vec![Record { kind: Kind::Tombstone, key: version_key(name, version), payload, decoded: None }], None)?;
        Ok(())
    }

    /// A version by `name` (latest), `name@N`, or the bytes' BLAKE3.
    pub fn resolve(&self, spec: &str) -> Result<Version, ArtifactError> {
        let (name, wanted) = match spec.rsplit_once('@') {
            Some((n, v)) => (n, Some(v.parse::<u64>().map_err(|_| ArtifactError::BadName(spec.to_owned()))?)),
            None => (spec, None),
        };
        let versions = self.history(name)?;
        let latest = versions.last().map_or(0, |v| v.version);
        match wanted {
            None => versions.last().cloned().ok_or_else(|| ArtifactError::NotFound(name.to_owned())),
            Some(n) => versions
                .binary_search_by_key(&n, |v| v.version)
                .ok()
                .and_then(|i| versions.get(i))
                .cloned()
                .ok_or(ArtifactError::NoVersion { name: name.to_owned(), version: n, latest }),
        }
    }

    /// The bytes of `name`, `name@N`, or a blob id (64 hex digits).
    pub fn get(&self, spec: &str) -> Result<Vec<u8>, ArtifactError> {
        let blob = if spec.len() == 64 && spec.bytes().all(|b| b.is_ascii_hexdigit()) { BlobId(spec.to_owned()) } else { self.resolve(spec)?.blob };
        let bytes = self.blobs.get(&blob)?;
        if let Ok(key) = parse_id(&blob) {
            self.access.lock().unwrap_or_else(|p| p.into_inner()).insert(key, now_secs());
        }
        Ok(bytes)
    }

    /// When a blob was last read through this store (unix seconds), if ever.
    pub fn last_access(&self, blob: &BlobId) -> Option<u64> {
        let key = parse_id(blob).ok()?;
        self.access.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied()
    }

    /// Writes the access times out (they are also written when the store closes).
    pub fn save_access(&self) -> Result<(), ArtifactError> {
        let bytes = postcard::to_allocvec(&*self.access.lock().unwrap_or_else(|p| p.into_inner())).map_err(|e| StoreError::Io { path: self.root.join("access.bin"), source: std::io::Error::other(e) })?;
        crate::write_atomic(&self.root.join("access.bin"), &bytes)?;
        Ok(())
    }

    /// Counts and sizes (see `Stats`).
    pub fn stats(&self) -> Result<Stats, ArtifactError> {
        let mut stats = Stats::default();
        let mut scores = Vec::new();
        {
            let catalog = self.blobs.journal.catalog.read().unwrap_or_else(|p| p.into_inner());
            for versions in catalog.names.values() {
                stats.names += 1;
                stats.versions += versions.len();
                stats.logical_bytes += versions.iter().map(|v| v.len).sum::<u64>();
                if let Some(q) = versions.last().and_then(|v| v.quality.as_ref()) {
                    scores.push(q.score);
                }
            }
        }
        let usage = self.blobs.usage()?;
        (stats.blobs, stats.chunks, stats.stored_bytes) = (usage.blobs, usage.chunks, usage.stored_bytes);
        stats.saving = if usage.stored_bytes > 0 { stats.logical_bytes as f64 / usage.stored_bytes as f64 } else { 0.0 };
        stats.indexed = self.indexed();
        stats.mean_quality = (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
        Ok(stats)
    }

    /// Drops blobs no version of any name points at (e.g. a put a crash cut off before its
    /// version was recorded, or versions a policy deleted), the chunks only they used, and
    /// temporary leftovers.
    pub fn gc(&self) -> Result<crate::blobs::GcReport, ArtifactError> {
        self.gc_with(&mut |_, _| {})
    }

    /// `gc`, telling `progress(bytes of packs looked at, bytes in packs)` as it goes.
    pub fn gc_with(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<crate::blobs::GcReport, ArtifactError> {
        let _alone = self.collecting.write().unwrap_or_else(|p| p.into_inner());
        let keep: std::collections::HashSet<BlobId> =
            self.blobs.journal.catalog.read().unwrap_or_else(|p| p.into_inner()).names.values().flat_map(|h| h.iter().map(|v| v.blob.clone())).collect();
        Ok(self.blobs.gc_with(&keep, progress)?)
    }

    /// The underlying blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }
}

/// Indexes the latest version of every name anew.
fn rebuild(blobs: &BlobStore, search: &SearchIndex) -> Result<usize, ArtifactError> {
    search.clear()?;
    let (names, at) = {
        let catalog = blobs.journal.catalog.read().unwrap_or_else(|p| p.into_inner());
        (catalog.names.keys().cloned().collect::<Vec<_>>(), catalog.last_version_at)
    };
    for name in &names {
        index_latest(blobs, search, name);
    }
    search.set_position(at);
    search.commit()?;
    Ok(names.len())
}

impl Drop for ArtifactStore {
    /// The indexer finishes what the journal holds and the index commits, so the next open
    /// has nothing to catch up on; access times are saved.
    fn drop(&mut self) {
        self.blobs.journal.catalog.write().unwrap_or_else(|p| p.into_inner()).feed = None;
        if let Some(indexer) = self.indexer.take() {
            let _ = indexer.join();
        }
        if let Err(e) = self.save_access() {
            tracing::warn!("{e}");
        }
    }
}
