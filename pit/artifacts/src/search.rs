//! Full-text search over the latest version of every artifact (tantivy): its content, name,
//! kind and tags, ranked by BM25, with a snippet of the content around the matches. Content is
//! indexed but not stored in the index (the artifact store has it): snippets are made from the
//! hits' content read back at search time, which keeps indexing cheap and the index small.
//!
//! Near-real-time: a put is indexed within a few milliseconds (the store's indexer lets puts
//! gather for `LINGER` in `names.rs`) and a committer thread commits (and reloads the
//! searcher) within `COMMIT_EVERY` of it, so a put is searchable within ~that bound — or
//! within `COMMIT_WHILE_BUSY` while puts arrive faster than they are indexed. The
//! index is derived data: if it is missing or does not open, the store deletes it and rebuilds
//! it from the names and blobs (`ArtifactStore::rebuild_index`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{Field, Schema, Value, FAST, INDEXED, STORED, STRING, TEXT};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// How long a put may wait to become searchable.
pub const COMMIT_EVERY: Duration = Duration::from_millis(100);
/// How long a put may wait to become searchable while the indexer is behind.
pub const COMMIT_WHILE_BUSY: Duration = Duration::from_secs(1);
/// Content beyond this is not indexed (nor kept for snippets).
pub const MAX_INDEXED: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the search index at {path}: {reason}")]
    Index { path: PathBuf, reason: String },
    #[error("the query `{query}`: {reason}")]
    Query { query: String, reason: String },
}

/// One result.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Hit {
    pub name: String,
    pub version: u64,
    pub kind: String,
    pub tags: Vec<String>,
    pub quality: Option<f64>,
    pub score: f32,
    /// Content around the best matches, the matched words in `«»`.
    pub snippet: String,
}

#[derive(Clone, Copy)]
struct Fields {
    name: Field,
    name_key: Field,
    kind: Field,
    tags: Field,
    content: Field,
    version: Field,
    quality: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        name: b.add_text_field("name", TEXT | STORED),
        name_key: b.add_text_field("name_key", STRING),
        kind: b.add_text_field("kind", STRING | STORED),
        tags: b.add_text_field("tags", STRING | STORED),
        content: b.add_text_field("content", TEXT),
        version: b.add_u64_field("version", STORED),
        quality: b.add_f64_field("quality", STORED | FAST | INDEXED),
    };
    (b.build(), fields)
}

struct Inner {
    index: Index,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    reader: IndexReader,
    fields: Fields,
    dirty: AtomicBool,
    /// The journal position everything up to which is indexed; committed as the payload.
    position: AtomicU64,
    /// Set while the indexer has a backlog: commits then wait up to `COMMIT_WHILE_BUSY`, since
    /// each one writes (and syncs) a segment that later has to be merged.
    busy: AtomicBool,
    path: PathBuf,
}

/// The index, and its committer thread (which ends with it).
pub struct SearchIndex {
    inner: Arc<Inner>,
    /// Dropped to stop the committer, which is then joined: until it lets go of the index,
    /// the writer's lock would keep the store from being opened again at once.
    stop: Option<std::sync::mpsc::Sender<()>>,
    committer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

fn index_error(path: &Path, e: impl std::fmt::Display) -> SearchError {
    SearchError::Index { path: path.to_path_buf(), reason: e.to_string() }
}

/// The largest char boundary of `text` at or below `at`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut cut = at.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

/// The text of a `Value` field of a stored document.
fn text_of(doc: &TantivyDocument, field: Field) -> String {
    doc.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned()
}

impl SearchIndex {
    /// Opens the index at `dir`; a missing or unreadable one is replaced by an empty one, and
    /// `true` says it must be rebuilt from the store.
    pub fn open(dir: &Path) -> Result<(Self, bool), SearchError> {
        let (schema, fields) = schema();
        let opened = std::fs::create_dir_all(dir)
            .map_err(|e| index_error(dir, e))
            .and_then(|()| tantivy::directory::MmapDirectory::open(dir).map_err(|e| index_error(dir, e)))
            .and_then(|d| Index::open_or_create(d, schema.clone()).map_err(|e| index_error(dir, e)));
        let (index, fresh) = match opened {
            Ok(index) => {
                let empty = index.load_metas().map(|m| m.segments.is_empty()).unwrap_or(true);
                (index, empty)
            }
            Err(e) => {
                tracing::warn!("{e}; rebuilding it");
                let _ = std::fs::remove_dir_all(dir);
                std::fs::create_dir_all(dir).map_err(|e| index_error(dir, e))?;
                let d = tantivy::directory::MmapDirectory::open(dir).map_err(|e| index_error(dir, e))?;
                (Index::create(d, schema, tantivy::IndexSettings::default()).map_err(|e| index_error(dir, e))?, true)
            }
        };
        // Made on a thread of lower priority: tantivy's indexing and merge threads start from
        // it and inherit that, so under load durable puts get the CPU and the index lags
        // (and catches up) instead. One indexing thread per core: with one, an import's
        // indexing ran on one core for most of its time (34–39 → 44–52 MB/s of sources until
        // searchable on 2 cores).
        let writer = std::thread::scope(|s| {
            s.spawn(|| {
                lower_priority();
                let threads = crate::cores::available().min(4);
                index.writer_with_num_threads(threads, threads * (32 << 20))
            })
            .join()
        })
        .map_err(|_| index_error(dir, "the index writer's thread panicked"))?
        .map_err(|e| index_error(dir, e))?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(|e| index_error(dir, e))?;
        let position = if fresh { 0 } else { index.load_metas().ok().and_then(|m| m.payload).and_then(|p| p.parse().ok()).unwrap_or(0) };
        let inner = Arc::new(Inner { index, writer: Mutex::new(writer), reader, fields, dirty: AtomicBool::new(false), position: AtomicU64::new(position), busy: AtomicBool::new(false), path: dir.to_path_buf() });
        let weak = Arc::downgrade(&inner);
        let (stop, stopped) = std::sync::mpsc::channel();
        let committer = std::thread::Builder::new().name("artifact-index".to_owned()).spawn(move || committer(&weak, &stopped)).ok();
        Ok((Self { inner, stop: Some(stop), committer }, fresh))
    }

    /// Indexes (or re-indexes) the latest version of a name.
    pub fn put(&self, name: &str, version: u64, kind: &str, tags: &[String], quality: Option<f64>, content: Option<&str>) -> Result<(), SearchError> {
        let f = self.inner.fields;
        let content = content.unwrap_or_default();
        let content = &content[..floor_char_boundary(content, MAX_INDEXED)];
        let mut document = doc!(
            f.name => name,
            f.name_key => name,
            f.kind => kind,
            f.content => content,
            f.version => version,
            f.quality => quality.unwrap_or(0.0),
        );
        for tag in tags {
            document.add_text(f.tags, tag);
        }
        let writer = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.delete_term(Term::from_field_text(f.name_key, name));
        writer.add_document(document).map_err(|e| index_error(&self.inner.path, e))?;
        self.inner.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Takes a name out of the index (its last version was deleted).
    pub fn remove(&self, name: &str) {
        let writer = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.delete_term(Term::from_field_text(self.inner.fields.name_key, name));
        self.inner.dirty.store(true, Ordering::Release);
    }

    /// The store's journal position up to which everything is indexed (as of the last commit
    /// when just opened: what a crash lost after it is indexed again).
    pub fn position(&self) -> u64 {
        self.inner.position.load(Ordering::Acquire)
    }

    /// Whether the indexer is behind (more is waiting).
    pub fn set_busy(&self, busy: bool) {
        self.inner.busy.store(busy, Ordering::Release);
    }

    /// Everything up to `position` is indexed now.
    pub fn set_position(&self, position: u64) {
        self.inner.position.fetch_max(position, Ordering::AcqRel);
        self.inner.dirty.store(true, Ordering::Release);
    }

    /// Empties the index (before a rebuild).
    pub fn clear(&self) -> Result<(), SearchError> {
        let writer = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.delete_all_documents().map_err(|e| index_error(&self.inner.path, e))?;
        self.inner.position.store(0, Ordering::Release);
        drop(writer);
        self.commit()
    }

    /// Makes everything indexed so far searchable now.
    pub fn commit(&self) -> Result<(), SearchError> {
        commit(&self.inner)
    }

    /// The best `limit` matches of `query` (tantivy's syntax: words, `"phrases"`, `kind:code`,
    /// `tags:draft`, `name:report`, `AND`/`OR`/`-`); `content(name, version)` gives a hit's
    /// text for its snippet.
    pub fn search(&self, query: &str, limit: usize, content: &dyn Fn(&str, u64) -> Option<String>) -> Result<Vec<Hit>, SearchError> {
        let f = self.inner.fields;
        let bad = |reason: String| SearchError::Query { query: query.to_owned(), reason };
        let mut parser = QueryParser::for_index(&self.inner.index, vec![f.name, f.content, f.kind, f.tags]);
        parser.set_field_boost(f.name, 2.0);
        let parsed = parser.parse_query(query).map_err(|e| bad(e.to_string()))?;
        let searcher = self.inner.reader.searcher();
        let top = searcher.search(&parsed, &TopDocs::with_limit(limit.max(1)).order_by_score()).map_err(|e| bad(e.to_string()))?;
        let mut snippets = tantivy::snippet::SnippetGenerator::create(&searcher, &*parsed, f.content).map_err(|e| bad(e.to_string()))?;
        snippets.set_max_num_chars(160);
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address).map_err(|e| index_error(&self.inner.path, e))?;
            let (name, version) = (text_of(&doc, f.name), doc.get_first(f.version).and_then(|v| v.as_u64()).unwrap_or(0));
            let text = content(&name, version).unwrap_or_default();
            let snippet = snippets.snippet(&text[..floor_char_boundary(&text, MAX_INDEXED)]);
            let (fragment, marks) = (snippet.fragment(), snippet.highlighted());
            let mut text = String::new();
            let mut at = 0;
            for m in marks {
                text.push_str(&fragment[at..m.start]);
                text.push('«');
                text.push_str(&fragment[m.start..m.end]);
                text.push('»');
                at = m.end;
            }
            text.push_str(&fragment[at..]);
            let quality = doc.get_first(f.quality).and_then(|v| v.as_f64());
            hits.push(Hit {
                name,
                version,
                kind: text_of(&doc, f.kind),
                tags: doc.get_all(f.tags).filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                quality,
                score,
                snippet: text.split_whitespace().collect::<Vec<_>>().join(" "),
            });
        }
        Ok(hits)
    }

    /// How many names are searchable now.
    pub fn len(&self) -> u64 {
        self.inner.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for SearchIndex {
    /// What was indexed is committed before the store closes (a CLI put exits at once).
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(c) = self.committer.take() {
            let _ = c.join();
        }
        if self.inner.dirty.load(Ordering::Acquire)
            && let Err(e) = commit(&self.inner)
        {
            tracing::warn!("{e}");
        }
    }
}

/// Commits on a thread of lower priority: tantivy starts its next indexing threads from the
/// committing thread, and they inherit its priority (committed from a writer's thread, they
/// ran at nice 0 and took half the CPU from a bulk import).
fn commit(inner: &Inner) -> Result<(), SearchError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            lower_priority();
            commit_here(inner)
        })
        .join()
    })
    .unwrap_or_else(|_| Err(index_error(&inner.path, "the committing thread panicked")))
}

fn commit_here(inner: &Inner) -> Result<(), SearchError> {
    let mut writer = inner.writer.lock().unwrap_or_else(|p| p.into_inner());
    inner.dirty.store(false, Ordering::Release);
    // Read before the commit: every document for positions up to it was added already.
    let position = inner.position.load(Ordering::Acquire);
    let mut prepared = writer.prepare_commit().map_err(|e| index_error(&inner.path, e))?;
    prepared.set_payload(&position.to_string());
    prepared.commit().map_err(|e| index_error(&inner.path, e))?;
    drop(writer);
    inner.reader.reload().map_err(|e| index_error(&inner.path, e))
}

/// The nice value of the index's threads: derived work yields to durable puts, but only a
/// little. At nice 19 a busy machine (a build beside the IDE: 3 busy processes on 2 cores)
/// starved the index: put → searchable took 1.8–2.3 s at p99 instead of ~70 ms. At nice 2 it
/// took 127–135 ms, and 16 concurrent writers measured the same as at 19 (`cargo xtask bench
/// search`, `store`).
const INDEX_NICE: i32 = 2;

/// Lowers the calling thread's scheduling priority to `INDEX_NICE`. (Unprivileged, it cannot be
/// raised again: only ever called on threads that index.)
pub fn lower_priority() {
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), INDEX_NICE) {
        tracing::debug!("could not lower the indexer's priority: {e}");
    }
}

/// Commits what was indexed since the last commit, every `COMMIT_EVERY`, while the index lives.
fn committer(inner: &Weak<Inner>, stopped: &std::sync::mpsc::Receiver<()>) {
    let mut last = std::time::Instant::now();
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(COMMIT_EVERY / 2) {
        let Some(inner) = inner.upgrade() else { return };
        if inner.busy.load(Ordering::Acquire) && last.elapsed() < COMMIT_WHILE_BUSY {
            continue;
        }
        last = std::time::Instant::now();
        if inner.dirty.load(Ordering::Acquire)
            && let Err(e) = commit(&inner)
        {
            tracing::warn!("{e}");
        }
    }
}
