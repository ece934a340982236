//! `pit/artifacts`: the artifact store through the proxy, so carets (with `pit.artifacts.<op>`
//! grants), melodies, the Conductor, the UI and the CLI use one path: `put {name, text, meta?}`,
//! `get {spec}` (`name`, `name@N` or a blob hash), `log {name}`, `search {query, limit?}`
//! (ranked, with snippets), `stats`, `verify`, `gc` (removes what no version points at). The store lives in
//! `<home>/artifacts` and is opened on first use, so only a process that uses it holds its
//! write lock; a second one is told which process has it.

use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Mutex;
use symphony_artifacts::{ArtifactError, ArtifactStore, Meta};
use symphony_kernel::{CallError, ErrorCode, Principal, Service};

#[derive(Debug)]
pub struct ArtifactsService {
    root: PathBuf,
    store: Mutex<Option<ArtifactStore>>,
}

impl ArtifactsService {
    pub fn new(home: &std::path::Path) -> Self {
        Self { root: home.join("artifacts"), store: Mutex::new(None) }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Put {
    name: String,
    text: String,
    #[serde(default)]
    meta: Meta,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    spec: String,
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
        let mut guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(ArtifactStore::open(&self.root, 3).map_err(call_error)?);
        }
        let Some(store) = guard.as_ref() else { return Err(CallError::new(ErrorCode::Internal, "the artifact store did not open")) };
        let payload = if payload.trim().is_empty() { "{}" } else { payload };
        let json = |v: serde_json::Value| Ok(v.to_string());
        match op {
            "put" => {
                let Put { name, text, mut meta } = parse(op, payload)?;
                if meta.author.is_empty() {
                    meta.author = principal.to_string();
                }
                json(serde_json::to_value(store.put(&name, text.as_bytes(), meta).map_err(call_error)?).unwrap_or_default())
            }
            "get" => {
                let Spec { spec } = parse(op, payload)?;
                let bytes = store.get(&spec).map_err(call_error)?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| CallError::new(ErrorCode::Unsupported, format!("`{spec}` is binary; the proxy carries text artifacts only for now")))?;
                json(serde_json::json!({ "spec": spec, "text": text }))
            }
            "log" => {
                let Name { name } = parse(op, payload)?;
                let (versions, torn) = store.log(&name).map_err(call_error)?;
                json(serde_json::json!({ "name": name, "versions": versions, "torn_lines": torn }))
            }
            "verify" => {
                let problems = store.blobs().verify().map_err(|e| call_error(e.into()))?;
                json(serde_json::json!({ "ok": problems.is_empty(), "problems": problems.iter().map(ToString::to_string).collect::<Vec<_>>() }))
            }
            "stats" => json(serde_json::to_value(store.stats().map_err(call_error)?).unwrap_or_default()),
            "gc" => json(serde_json::to_value(store.gc().map_err(call_error)?).unwrap_or_default()),
            "search" => {
                let Search { query, limit } = parse(op, payload)?;
                let hits = store.search(&query, limit.min(1000)).map_err(call_error)?;
                json(serde_json::json!({ "query": query, "hits": hits }))
            }
            other => Err(CallError::new(ErrorCode::NotFound, format!("pit/artifacts has no op `{other}`; it has put, get, log, search, stats, verify, gc"))),
        }
    }
}
