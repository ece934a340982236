//! `pit/melodies`: run a melody file of the workspace from the IDE, through the same runner as
//! `symphony melody run` (journal, outputs, resume). `run {path, concurrency?}` checks the
//! melody against the installed carets (every problem named with its line) and starts it in
//! the background, answering `{job, name, nodes}` at once; `cancel {job}` stops it. Progress —
//! each node's start, retry, end — and the run's end reach `melody.progress` subscribers.

use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use symphony_conductor::{run_melody, InstalledTargets, Melody, RunSettings, RunStore};
use symphony_dag::{Cancel, Event, EventKind};
use symphony_kernel::{CallError, ErrorCode, Principal, Service, WeakKernel};

type Listeners = Arc<Mutex<Vec<mpsc::Sender<Value>>>>;

#[derive(Debug)]
pub struct MelodiesService {
    kernel: WeakKernel,
    home: PathBuf,
    next: AtomicU64,
    running: Arc<Mutex<HashMap<u64, Cancel>>>,
    listeners: Listeners,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunArg {
    path: String,
    #[serde(default = "four")]
    concurrency: usize,
}

fn four() -> usize {
    4
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobArg {
    job: u64,
}

fn invalid(message: impl Into<String>) -> CallError {
    CallError::new(ErrorCode::InvalidInput, message)
}

/// A node's event as the UI reads it.
fn describe(job: u64, e: &Event) -> Value {
    let mut v = json!({ "job": job, "node": &*e.id, "at_ms": e.at.as_millis() });
    let (kind, extra) = match &e.kind {
        EventKind::Started { attempt } => ("started", json!({ "attempt": attempt })),
        EventKind::Retrying { attempt, error, backoff } => ("retrying", json!({ "attempt": attempt, "error": error, "backoff_ms": backoff.as_millis() })),
        EventKind::Done { duration, output_bytes, attempts } => ("done", json!({ "ms": duration.as_millis(), "output_bytes": output_bytes, "attempts": attempts })),
        EventKind::Failed { error, attempts } => ("failed", json!({ "error": error, "attempts": attempts })),
        EventKind::Skipped { because } => ("skipped", json!({ "because": because })),
        EventKind::Resumed => ("resumed", json!({})),
    };
    v["kind"] = json!(kind);
    if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
        v.extend(extra);
    }
    v
}

fn send(listeners: &Listeners, event: &Value) {
    listeners.lock().unwrap_or_else(|p| p.into_inner()).retain(|l| l.send(event.clone()).is_ok());
}

impl MelodiesService {
    pub fn new(kernel: &symphony_kernel::Kernel, home: &std::path::Path) -> Self {
        Self {
            kernel: kernel.downgrade(),
            home: home.to_path_buf(),
            next: AtomicU64::new(1),
            running: Arc::default(),
            listeners: Arc::default(),
        }
    }

    /// Progress of every run from now on.
    pub fn listen(&self) -> mpsc::Receiver<Value> {
        let (tx, rx) = mpsc::channel();
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        rx
    }

    /// Starts a run; its calls are made as `principal` (the caller), never as someone else.
    fn run(&self, principal: &Principal, arg: RunArg) -> Result<Value, CallError> {
        let kernel = self.kernel.upgrade().ok_or_else(|| CallError::new(ErrorCode::Internal, "the kernel is gone"))?;
        let rel = crate::workspace_service::relative(&arg.path)?;
        let file = kernel.workspace().join(&rel);
        let text = std::fs::read_to_string(&file).map_err(|e| CallError::new(ErrorCode::NotFound, format!("`{}`: {e}", arg.path)))?;
        let melody = Melody::parse(&text, &rel, Some(&InstalledTargets(&kernel))).map_err(|e| invalid(e.to_string()))?;
        let job = self.next.fetch_add(1, Ordering::Relaxed);
        let cancel = Cancel::default();
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(job, cancel.clone());
        let answer = json!({ "job": job, "name": melody.name, "nodes": melody.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>() });
        let (listeners, running, store) = (Arc::clone(&self.listeners), Arc::clone(&self.running), RunStore::in_home(&self.home));
        let settings = RunSettings { concurrency: arg.concurrency.max(1), resume: None, principal: principal.clone(), maestro: None };
        std::thread::Builder::new()
            .name(format!("melody-{job}"))
            .spawn(move || {
                let finished = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime.block_on(async {
                        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
                        let forward = {
                            let listeners = Arc::clone(&listeners);
                            tokio::spawn(async move {
                                while let Some(e) = rx.recv().await {
                                    send(&listeners, &describe(job, &e));
                                }
                            })
                        };
                        let result = run_melody(&kernel, &melody, &store, settings, Some(tx), cancel).await;
                        let _ = forward.await;
                        match result {
                            Ok(run) => json!({
                                "job": job, "kind": "finished", "run_id": run.run_id, "ok": run.report.ok(),
                                "cancelled": run.report.cancelled, "elapsed_ms": run.report.elapsed.as_millis(),
                                "nodes": run.summary,
                            }),
                            Err(e) => json!({ "job": job, "kind": "finished", "ok": false, "error": e.to_string() }),
                        }
                    }),
                    Err(e) => json!({ "job": job, "kind": "finished", "ok": false, "error": format!("starting the runtime: {e}") }),
                };
                running.lock().unwrap_or_else(|p| p.into_inner()).remove(&job);
                send(&listeners, &finished);
            })
            .map_err(|e| CallError::new(ErrorCode::Internal, format!("starting the run: {e}")))?;
        Ok(answer)
    }
}

impl Service for MelodiesService {
    fn name(&self) -> &str {
        "melodies"
    }

    fn call(&self, principal: &Principal, op: &str, payload: &str) -> Result<String, CallError> {
        let parse_error = |e: serde_json::Error| invalid(format!("pit/melodies {op}: {e}"));
        let answer = match op {
            "run" => self.run(principal, serde_json::from_str(payload).map_err(parse_error)?)?,
            "cancel" => {
                let JobArg { job } = serde_json::from_str(payload).map_err(parse_error)?;
                let cancel = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(&job).cloned();
                let cancel = cancel.ok_or_else(|| CallError::new(ErrorCode::NotFound, format!("no running job {job}")))?;
                cancel.cancel();
                json!(true)
            }
            other => return Err(CallError::new(ErrorCode::NotFound, format!("pit/melodies has no op `{other}`; it has run, cancel"))),
        };
        Ok(answer.to_string())
    }
}
