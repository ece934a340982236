//! `pit/artifacts`: the artifact store through the proxy, so carets (with `pit.artifacts.<op>`
//! grants), melodies, the Conductor, the UI and the CLI use one path: `put {name, text | base64,
//! meta?}` (answers the version, `unchanged: true` when the latest already held the same
//! bytes and metadata), `get {spec, encoding?}` (`name`, `name@N` or a blob hash; the content comes back as
//! `text` when it is UTF-8, else as `base64`), `log {name}`, `search {query, limit?}`
//! (ranked, with snippets), `stats`, `verify`, `gc` (removes what no version points at),
//! `sweep {dry_run?}` (the stale manager: moves blobs to warm/cold tiers and deletes versions
//! by the policy in `<home>/artifacts/stale.toml`; moved blobs come back on access). The store
//! lives in `<home>/artifacts` and is opened on first use, so only a process that uses it
//! holds its write lock; a second one is told which process has it. When the policy sets
//! `[sweep] every`, the sweep also runs on that schedule while the store is open.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use symphony_artifacts::{ArtifactError, ArtifactStore, Meta};
use symphony_kernel::{CallError, ErrorCode, Principal, Service};
use symphony_stale::{StaleError, StaleManager, SweepReport};

/// The open store, its stale manager and (with `[sweep] every`) the scheduled sweep.
struct Open {
    store: Arc<ArtifactStore>,
    stale: Arc<StaleManager>,
    /// Why `stale.toml` was refused: sweeps say so; everything else works on (warm blobs
    /// still come back, cold ones only from the default location).
    policy_error: Option<String>,
    _schedule: Option<symphony_stale::Schedule>,
}

pub struct ArtifactsService {
    root: PathBuf,
    open: Mutex<Option<Open>>,
}

impl std::fmt::Debug for ArtifactsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactsService").field("root", &self.root).finish_non_exhaustive()
    }
}

impl ArtifactsService {
    pub fn new(home: &std::path::Path) -> Self {
        Self { root: home.join("artifacts"), open: Mutex::new(None) }
    }

    /// Runs `f` on the store and its stale manager, opening them on first use.
    pub fn with_store<T>(&self, f: impl FnOnce(&ArtifactStore, &StaleManager) -> Result<T, CallError>) -> Result<T, CallError> {
        let mut guard = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let (config, policy_error) = match symphony_stale::Config::load(&self.root) {
                Ok(c) => (c, None),
                Err(e) => {
                    tracing::warn!("{e}; sweeps are refused until it is fixed");
                    (symphony_stale::Config::parse("", &self.root, "defaults").map_err(stale_error)?, Some(e.to_string()))
                }
            };
            let store = Arc::new(ArtifactStore::open(&self.root, config.hot_level).map_err(call_error)?);
            let stale = Arc::new(StaleManager::with_config(Arc::clone(&store), config).map_err(stale_error)?);
            let schedule = stale.config().every.filter(|_| policy_error.is_none()).map(|every| stale.schedule(every));
            *guard = Some(Open { store, stale, policy_error, _schedule: schedule });
        }
        let Some(open) = guard.as_ref() else { return Err(CallError::new(ErrorCode::Internal, "the artifact store did not open")) };
        let (store, stale) = (Arc::clone(&open.store), Arc::clone(&open.stale));
        // Not under the lock: a long sweep must not hold up gets.
        drop(guard);
        f(&store, &stale)
    }

    /// A sweep with progress (`step`, bytes moved, bytes to move) — the CLI shows it as a bar.
    pub fn sweep(&self, dry_run: bool, progress: &mut dyn FnMut(&str, u64, u64)) -> Result<SweepReport, CallError> {
        self.with_store(|_, _| Ok(()))?;
        let policy_error = self.open.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(|o| o.policy_error.clone());
        if let Some(e) = policy_error {
            return Err(CallError::new(ErrorCode::InvalidInput, e));
        }
        self.with_store(|_, stale| stale.sweep(dry_run, None, progress).map_err(stale_error))
    }
}

impl ArtifactsService {
    /// `verify`, with progress (bytes read, bytes in packs): the op's answer as JSON text.
    pub fn verify(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<String, CallError> {
        self.with_store(|store, _| {
            let problems = store.blobs().verify_with(progress).map_err(|e| call_error(e.into()))?;
            Ok(serde_json::json!({ "ok": problems.is_empty(), "problems": problems.iter().map(ToString::to_string).collect::<Vec<_>>() }).to_string())
        })
    }

    /// `gc`, with progress (bytes of packs looked at, bytes in packs): the op's answer as JSON text.
    pub fn gc(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<String, CallError> {
        self.with_store(|store, _| Ok(serde_json::to_value(store.gc_with(progress).map_err(call_error)?).unwrap_or_default().to_string()))
    }
}

/// What `import` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Imported {
    pub files: usize,
    pub bytes: u64,
    pub new_versions: usize,
    /// Files whose bytes and metadata were already their name's latest version.
    pub unchanged: usize,
    /// Paths (relative to the directory) that cannot be artifact names, not imported.
    pub skipped: Vec<String>,
    pub millis: u64,
}

/// An import reads and stores this much at a time, so a large tree is never all in memory.
const IMPORT_BYTES: u64 = 64 << 20;

impl ArtifactsService {
    /// Imports every file under `dir` (not following links, leaving out `.git`) as
    /// `<prefix>/<relative path>` with `meta`, through the store's bulk put: prepared on all
    /// cores, each batch one synced append. `progress(bytes read, bytes in all)`.
    pub fn import(&self, dir: &std::path::Path, prefix: &str, meta: &Meta, progress: &mut dyn FnMut(u64, u64)) -> Result<Imported, CallError> {
        let started = std::time::Instant::now();
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(at) = stack.pop() {
            let entries = std::fs::read_dir(&at).map_err(|e| CallError::new(ErrorCode::InvalidInput, format!("reading {}: {e}", at.display())))?;
            for entry in entries.flatten() {
                let Ok(kind) = entry.file_type() else { continue };
                if kind.is_dir() && entry.file_name() != ".git" {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    files.push((entry.path(), entry.metadata().map_or(0, |m| m.len())));
                }
            }
        }
        files.sort();
        let mut report = Imported::default();
        let total = files.iter().map(|(_, len)| len).sum();
        let mut done = 0;
        let mut batch: Vec<(String, Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0;
        let prefix = prefix.trim_matches('/');
        for (i, (path, len)) in files.iter().enumerate() {
            done += len;
            let rel = path.strip_prefix(dir).unwrap_or(path).to_string_lossy().replace('\\', "/");
            let name = if prefix.is_empty() { rel.clone() } else { format!("{prefix}/{rel}") };
            if !symphony_artifacts::valid_name(&name) {
                report.skipped.push(rel);
            } else {
                let bytes = std::fs::read(path).map_err(|e| CallError::new(ErrorCode::Failed, format!("reading {}: {e}", path.display())))?;
                batch_bytes += bytes.len() as u64;
                batch.push((name, bytes));
            }
            if batch_bytes >= IMPORT_BYTES || i + 1 == files.len() {
                self.import_batch(&std::mem::take(&mut batch), meta, &mut report)?;
                batch_bytes = 0;
                progress(done, total);
            }
        }
        report.millis = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    fn import_batch(&self, batch: &[(String, Vec<u8>)], meta: &Meta, report: &mut Imported) -> Result<(), CallError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.with_store(|store, _| {
            let items: Vec<symphony_artifacts::NewVersion<'_>> = batch.iter().map(|(name, bytes)| symphony_artifacts::NewVersion { name, bytes, meta: meta.clone() }).collect();
            let stored = store.put_many(&items).map_err(call_error)?;
            for (s, (_, bytes)) in stored.iter().zip(batch) {
                report.files += 1;
                report.bytes += bytes.len() as u64;
                if s.new {
                    report.new_versions += 1;
                } else {
                    report.unchanged += 1;
                }
            }
            Ok(())
        })
    }
}

fn stale_error(e: StaleError) -> CallError {
    match e {
        StaleError::Store(e) => call_error(e),
        StaleError::Policy(e) => CallError::new(ErrorCode::InvalidInput, e.to_string()),
        other => CallError::new(ErrorCode::Failed, other.to_string()),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Sweep {
    #[serde(default)]
    dry_run: bool,
}

/// The content is `text` (UTF-8) or `base64` (any bytes, standard alphabet, padded): one of them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Put {
    name: String,
    text: Option<String>,
    base64: Option<String>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Get {
    spec: String,
    #[serde(default)]
    encoding: Encoding,
}

/// How `get` carries content: `auto` (the default) as `text` when it is UTF-8, else as
/// `base64`; `text` refuses binary content; `base64` always.
#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    #[default]
    Auto,
    Text,
    Base64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Name {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    query: String,
    #[serde(default = "ten")]
    limit: usize,
}

fn ten() -> usize {
    10
}

fn call_error(e: ArtifactError) -> CallError {
    let code = match &e {
        ArtifactError::NotFound(_) | ArtifactError::NoVersion { .. } => ErrorCode::NotFound,
        ArtifactError::BadName(_) => ErrorCode::InvalidInput,
        ArtifactError::Locked { .. } => ErrorCode::Busy,
        ArtifactError::Search(symphony_artifacts::SearchError::Query { .. }) => ErrorCode::InvalidInput,
        ArtifactError::Search(_) => ErrorCode::Failed,
        ArtifactError::Store(symphony_artifacts::StoreError::NotFound(_)) => ErrorCode::NotFound,
        ArtifactError::Store(symphony_artifacts::StoreError::BadId(_)) => ErrorCode::InvalidInput,
        ArtifactError::Store(_) => ErrorCode::Failed,
    };
    CallError::new(code, e.to_string())
}

fn parse<'a, T: Deserialize<'a>>(op: &str, payload: &'a str) -> Result<T, CallError> {
    serde_json::from_str(payload).map_err(|e| CallError::new(ErrorCode::InvalidInput, format!("pit/artifacts {op}: {e}")))
}

impl Service for ArtifactsService {
    fn name(&self) -> &str {
        "artifacts"
    }

    fn call(&self, principal: &Principal, op: &str, payload: &str) -> Result<String, CallError> {
        let payload = if payload.trim().is_empty() { "{}" } else { payload };
        match op {
            "verify" => return self.verify(&mut |_, _| {}),
            "gc" => return self.gc(&mut |_, _| {}),
            _ => {}
        }
        if op == "sweep" {
            let Sweep { dry_run } = parse(op, payload)?;
            let report = self.sweep(dry_run, &mut |_, _, _| {})?;
            return Ok(serde_json::to_value(report).unwrap_or_default().to_string());
        }
        self.with_store(|store, _| Self::call_store(store, principal, op, payload))
    }
}

impl ArtifactsService {
    /// `put` of bytes at hand, without the op's JSON: the CLI stores a file this way, so a
    /// large one is not copied into text or base64 and back. Answers what the op answers.
    /// `progress` hears bytes prepared and bytes in all.
    pub fn put_bytes(&self, principal: &Principal, name: &str, bytes: &[u8], meta: Meta, progress: &mut dyn FnMut(u64, u64)) -> Result<serde_json::Value, CallError> {
        self.with_store(|store, _| Self::put_into(store, principal, name, bytes, meta, progress))
    }

    /// The bytes of `spec` (`get` without the op's JSON).
    pub fn get_bytes(&self, spec: &str) -> Result<Vec<u8>, CallError> {
        self.with_store(|store, _| store.get(spec).map_err(call_error))
    }

    /// The version made (`unchanged: true` when the latest already held the same bytes and
    /// metadata: the store makes no new one).
    fn put_into(store: &ArtifactStore, principal: &Principal, name: &str, bytes: &[u8], mut meta: Meta, progress: &mut dyn FnMut(u64, u64)) -> Result<serde_json::Value, CallError> {
        if meta.author.is_empty() {
            meta.author = principal.to_string();
        }
        let stored = store.put_with(name, bytes, meta, progress).map_err(call_error)?;
        let mut answer = serde_json::to_value(stored.version).unwrap_or_default();
        answer["unchanged"] = serde_json::Value::Bool(!stored.new);
        Ok(answer)
    }

    fn call_store(store: &ArtifactStore, principal: &Principal, op: &str, payload: &str) -> Result<String, CallError> {
        let json = |v: serde_json::Value| Ok(v.to_string());
        match op {
            "put" => {
                let Put { name, text, base64, meta } = parse(op, payload)?;
                let bytes = match (text, base64) {
                    (Some(text), None) => text.into_bytes(),
                    (None, Some(encoded)) => BASE64.decode(encoded.trim()).map_err(|e| CallError::new(ErrorCode::InvalidInput, format!("pit/artifacts put: `base64` of `{name}` does not decode: {e}")))?,
                    _ => return Err(CallError::new(ErrorCode::InvalidInput, format!("pit/artifacts put: `{name}` needs its content as `text` or as `base64`, one of them"))),
                };
                json(Self::put_into(store, principal, &name, &bytes, meta, &mut |_, _| {})?)
            }
            "get" => {
                let Get { spec, encoding } = parse(op, payload)?;
                let bytes = store.get(&spec).map_err(call_error)?;
                let text = if encoding == Encoding::Base64 { Err(bytes) } else { String::from_utf8(bytes).map_err(std::string::FromUtf8Error::into_bytes) };
                match (text, encoding) {
                    (Ok(text), _) => json(serde_json::json!({ "spec": spec, "text": text })),
                    (Err(_), Encoding::Text) => Err(CallError::new(ErrorCode::Unsupported, format!("`{spec}` is binary (not UTF-8): ask for it with `encoding: base64`"))),
                    (Err(bytes), _) => json(serde_json::json!({ "spec": spec, "base64": BASE64.encode(bytes) })),
                }
            }
            "log" => {
                let Name { name } = parse(op, payload)?;
                let versions = store.log(&name).map_err(call_error)?;
                json(serde_json::json!({ "name": name, "versions": versions }))
            }
            "stats" => json(serde_json::to_value(store.stats().map_err(call_error)?).unwrap_or_default()),
            "search" => {
                let Search { query, limit } = parse(op, payload)?;
                let hits = store.search(&query, limit.min(1000)).map_err(call_error)?;
                json(serde_json::json!({ "query": query, "hits": hits }))
            }
            other => Err(CallError::new(ErrorCode::NotFound, format!("pit/artifacts has no op `{other}`; it has put, get, log, search, stats, verify, gc, sweep"))),
        }
    }
}
