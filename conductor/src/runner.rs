//! Running a melody: each node's `${…}` references are filled from its dependencies' outputs,
//! and the node is called through the kernel's proxy. Runs live under `<home>/runs/<run-id>/`:
//! the checkpoint journal, the outputs, and a summary.

use crate::maestro::{Ask, Choice, Maestro, Outcome};
use crate::melody::{references, Melody, MelodyNode};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use symphony_dag::{Cancel, Event, NodeCall, NodeFuture, NodeRunner, NodeState, RunError, RunOptions, RunReport};
use symphony_kernel::{Kernel, Principal};
use tokio::sync::mpsc;

/// Where runs are kept.
#[derive(Clone, Debug)]
pub struct RunStore {
    root: PathBuf,
}

impl RunStore {
    /// Runs under `<home>/runs`.
    pub fn in_home(home: &Path) -> Self {
        Self { root: home.join("runs") }
    }

    pub fn dir(&self, run_id: &str) -> PathBuf {
        self.root.join(run_id)
    }

    pub fn journal(&self, run_id: &str) -> PathBuf {
        self.dir(run_id).join("journal")
    }

    /// Where a node's output is written when the run ends.
    pub fn output(&self, run_id: &str, node: &str) -> PathBuf {
        self.dir(run_id).join("outputs").join(format!("{node}.out"))
    }

    /// A new, unused run id: UTC time plus a few random hex digits.
    pub fn new_run_id(&self) -> String {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let stamp: String = now.chars().filter(char::is_ascii_digit).collect();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // A counter keeps ids made in the same second by this process apart; the random-ish
        // part keeps processes apart.
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{}-{}-{:04x}{made:x}", &stamp[..8.min(stamp.len())], &stamp[8.min(stamp.len())..], (nanos ^ std::process::id()) & 0xffff);
        if self.dir(&id).exists() { self.new_run_id() } else { id }
    }
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub concurrency: usize,
    /// Resume this run instead of starting a new one.
    pub resume: Option<String>,
    /// Who the calls are made as.
    pub principal: Principal,
    /// Maestro mode: this policy decides per node. `None` is Manual: as written.
    pub maestro: Option<Arc<Maestro>>,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self { concurrency: 4, resume: None, principal: Principal::User, maestro: None }
    }
}

/// A finished (or stopped) run.
#[derive(Clone, Debug)]
pub struct MelodyRun {
    pub run_id: String,
    pub report: RunReport,
    pub dir: PathBuf,
    /// Per node, in melody order; also written to `summary.json`.
    pub summary: Vec<NodeSummary>,
    /// Maestro: the nodes that fell back to Manual, and why.
    pub fallbacks: Vec<String>,
}

/// What happened to one node, as `summary.json` and `symphony melody run` show it.
#[derive(Clone, Debug, Serialize)]
pub struct NodeSummary {
    pub id: String,
    pub target: String,
    pub op: String,
    /// `done`, `failed`, `skipped`, `cancelled` or `pending`.
    pub state: &'static str,
    pub millis: Option<u128>,
    pub attempts: Option<u32>,
    pub output_bytes: Option<usize>,
    /// Where the output was written.
    pub output: Option<PathBuf>,
    /// The failure, or why the node was skipped.
    pub error: Option<String>,
    /// Restored from the journal rather than run.
    pub resumed: bool,
}

/// Navigates `value` along a dotted path of object keys and array indices.
fn select<'v>(value: &'v serde_json::Value, path: &[&str]) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(value, |v, key| match v {
        serde_json::Value::Object(o) => o.get(*key),
        serde_json::Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// The value of `${reference}` given the outputs of the node's dependencies.
fn lookup(reference: &str, outputs: &[(Arc<str>, Arc<str>)]) -> Result<serde_json::Value, String> {
    let mut parts = reference.split('.');
    let node = parts.next().unwrap_or_default();
    let path: Vec<&str> = parts.collect();
    let Some((_, text)) = outputs.iter().find(|(id, _)| &**id == node) else {
        return Err(format!("`${{{reference}}}`: no output from `{node}`"));
    };
    let parsed = serde_json::from_str::<serde_json::Value>(text);
    if path.is_empty() {
        return Ok(parsed.unwrap_or_else(|_| serde_json::Value::String(text.to_string())));
    }
    let json = parsed.map_err(|_| format!("`${{{reference}}}`: the output of `{node}` is not JSON, so it has no field `{}`", path.join(".")))?;
    select(&json, &path)
        .cloned()
        .ok_or_else(|| format!("`${{{reference}}}`: the output of `{node}` has no `{}`", path.join(".")))
}

fn as_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces every `${…}` in `input`: a string that is one reference becomes the referenced
/// value itself; references inside longer strings are interpolated as text.
pub(crate) fn resolve(input: &serde_json::Value, outputs: &[(Arc<str>, Arc<str>)]) -> Result<serde_json::Value, String> {
    Ok(match input {
        serde_json::Value::String(s) => {
            let refs = references(s);
            match refs.as_slice() {
                [] => input.clone(),
                [(_, reference)] if s.trim() == format!("${{{reference}}}") => lookup(reference, outputs)?,
                _ => {
                    let mut text = s.clone();
                    for (_, reference) in refs {
                        let value = as_text(&lookup(&reference, outputs)?);
                        text = text.replacen(&format!("${{{reference}}}"), &value, 1);
                    }
                    serde_json::Value::String(text)
                }
            }
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(|v| resolve(v, outputs)).collect::<Result<_, _>>()?),
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.iter().map(|(k, v)| Ok((k.clone(), resolve(v, outputs)?))).collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// The payload a node sends: a string input goes as raw text, anything else as JSON.
fn payload(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

struct ProxyRunner {
    kernel: Kernel,
    nodes: Arc<Vec<MelodyNode>>,
    principal: Principal,
    maestro: Option<Arc<Maestro>>,
    /// Per node: some node reads its output (so it may never be skipped).
    needed: Arc<Vec<bool>>,
    run_id: Arc<str>,
    melody: Arc<str>,
    /// Nodes Maestro skipped (done, with no output).
    skipped: Arc<Mutex<Vec<usize>>>,
    /// Maestro's fallbacks in this run.
    fallbacks: Arc<Mutex<Vec<String>>>,
}

/// One call through the proxy, off the scheduler's threads (kernel calls are synchronous and
/// may run for long).
async fn call(kernel: &Kernel, principal: &Principal, target: &str, op: &str, body: String) -> Result<String, String> {
    let (kernel, principal, target, op) = (kernel.clone(), principal.clone(), target.to_owned(), op.to_owned());
    tokio::task::spawn_blocking(move || kernel.invoke(&principal, &target, &op, &body))
        .await
        .map_err(|e| format!("the call did not complete: {e}"))?
        .map_err(|e| e.to_string())
}

/// What the policy calls each arm: `target/op`, and where two arms share it (the same op with
/// different inputs), which arm it is (0 is the node as written).
fn arm_labels(arms: &[(&str, &str, &serde_json::Value)]) -> Vec<String> {
    let plain: Vec<String> = arms.iter().map(|(t, o, _)| format!("{t}/{o}")).collect();
    plain
        .iter()
        .enumerate()
        .map(|(i, l)| if plain.iter().filter(|m| *m == l).count() > 1 { format!("{l} (arm {i})") } else { l.clone() })
        .collect()
}

impl NodeRunner for ProxyRunner {
    fn run(&self, call_: NodeCall) -> NodeFuture {
        let node = self.nodes[call_.index].clone();
        let kernel = self.kernel.clone();
        let principal = self.principal.clone();
        let Some(maestro) = self.maestro.clone() else {
            return Box::pin(async move {
                let input = resolve(&node.input, &call_.inputs)?;
                call(&kernel, &principal, &node.target, &node.op, payload(&input)).await
            });
        };
        let skippable = node.optional && !self.needed[call_.index];
        let (run_id, melody, skipped, fallbacks) = (self.run_id.clone(), self.melody.clone(), self.skipped.clone(), self.fallbacks.clone());
        let index = call_.index;
        Box::pin(async move {
            let arms = node.arms();
            let labels = arm_labels(&arms);
            // The context's input size is the node's own input's.
            let input_bytes = payload(&resolve(&node.input, &call_.inputs)?).len();
            let mut tried = Vec::new();
            loop {
                let ask = Ask::new(&node.id, labels.clone(), skippable, tried.clone(), input_bytes);
                let decided = {
                    let (maestro, ask) = (Arc::clone(&maestro), ask.clone());
                    tokio::task::spawn_blocking(move || maestro.decide(&ask)).await.map_err(|e| format!("the policy did not answer: {e}"))?
                };
                if let Some(why) = &decided.fallback {
                    fallbacks.lock().unwrap_or_else(|p| p.into_inner()).push(why.clone());
                }
                let arm = match decided.choice {
                    Choice::Skip => {
                        skipped.lock().unwrap_or_else(|p| p.into_inner()).push(index);
                        maestro.learn(&run_id, &melody, &ask, &decided, Outcome { ok: true, took: std::time::Duration::ZERO, quality: None });
                        return Ok(String::new());
                    }
                    Choice::Run(arm) => arm,
                };
                let (target, op, arm_input) = arms[arm];
                let body = payload(&resolve(arm_input, &call_.inputs)?);
                let started = std::time::Instant::now();
                let result = call(&kernel, &principal, target, op, body).await;
                let quality = result.as_deref().ok().and_then(crate::maestro::quality_of);
                maestro.learn(&run_id, &melody, &ask, &decided, Outcome { ok: result.is_ok(), took: started.elapsed(), quality });
                match result {
                    Ok(out) => return Ok(out),
                    Err(e) => {
                        tried.push(arm);
                        // Retry with another alternative while one is left; then fail as written.
                        if tried.len() >= arms.len() {
                            return Err(e);
                        }
                    }
                }
            }
        })
    }
}

/// Runs (or resumes) `melody` through `kernel`, sending progress to `events`.
pub async fn run_melody(
    kernel: &Kernel,
    melody: &Melody,
    store: &RunStore,
    settings: RunSettings,
    events: Option<mpsc::UnboundedSender<Event>>,
    cancel: Cancel,
) -> Result<MelodyRun, RunError> {
    let (run_id, resume) = match &settings.resume {
        Some(id) => (id.clone(), true),
        None => (store.new_run_id(), false),
    };
    let dir = store.dir(&run_id);
    if !resume {
        // Keep the melody as it was run, beside its journal.
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::copy(&melody.file, dir.join("melody.toml"));
    }
    let needed: Vec<bool> = melody.nodes.iter().map(|n| melody.nodes.iter().any(|m| m.reads.contains(&n.id))).collect();
    let skipped: Arc<Mutex<Vec<usize>>> = Arc::default();
    let fallbacks: Arc<Mutex<Vec<String>>> = Arc::default();
    let runner = Arc::new(ProxyRunner {
        kernel: kernel.clone(),
        nodes: Arc::new(melody.nodes.clone()),
        principal: settings.principal.clone(),
        maestro: settings.maestro.clone(),
        needed: Arc::new(needed),
        run_id: Arc::from(run_id.as_str()),
        melody: Arc::from(melody.name.as_str()),
        skipped: Arc::clone(&skipped),
        fallbacks: Arc::clone(&fallbacks),
    });
    let options = RunOptions {
        concurrency: settings.concurrency.max(1),
        default_timeout: None,
        backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(10),
        journal: Some(store.journal(&run_id)),
        resume,
        run_id: run_id.clone(),
    };
    if resume && !options.journal.as_ref().is_some_and(|j| j.exists()) {
        return Err(RunError::Journal(symphony_dag::JournalError::Io {
            path: store.journal(&run_id),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, format!("no run `{run_id}` to resume")),
        }));
    }
    let report = symphony_dag::run(&melody.dag, runner, options, events, cancel).await?;
    let skipped = std::mem::take(&mut *skipped.lock().unwrap_or_else(|p| p.into_inner()));
    let summary = write_outputs(melody, store, &run_id, &report, &skipped);
    let mut fallbacks = std::mem::take(&mut *fallbacks.lock().unwrap_or_else(|p| p.into_inner()));
    if let Some(maestro) = &settings.maestro {
        if let Err(e) = maestro.checkpoint() {
            fallbacks.push(format!("the policy was not checkpointed: {e}"));
        }
        let episodes = maestro.take_episodes(&run_id);
        if let Err(e) = store_episodes(kernel, &settings.principal, melody, &run_id, &episodes) {
            fallbacks.push(format!("this run's training data is in {} but not in the artifact store: {e}", maestro.episodes_path().display()));
        }
    }
    Ok(MelodyRun { run_id, report, dir, summary, fallbacks })
}

/// Puts a Maestro run's episodes into the artifact store, when one is running, as a version of
/// `conductor/episodes/<melody>` produced by the run (its lineage), for whoever trains next.
fn store_episodes(kernel: &Kernel, principal: &Principal, melody: &Melody, run_id: &str, episodes: &[crate::maestro::Episode]) -> Result<(), String> {
    if episodes.is_empty() || !kernel.services().iter().any(|s| s == "artifacts") {
        return Ok(());
    }
    let mut text = String::new();
    for e in episodes {
        text.push_str(&serde_json::to_string(e).map_err(|e| e.to_string())?);
        text.push('\n');
    }
    let name: String = melody.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    let put = serde_json::json!({
        "name": format!("conductor/episodes/{name}"),
        "text": text,
        "meta": { "kind": "training-data", "tags": ["maestro", "episodes"], "mime": "application/x-ndjson", "author": "conductor", "produced_by": run_id },
    });
    kernel.invoke(principal, "pit/artifacts", "put", &put.to_string()).map(|_| ()).map_err(|e| e.to_string())
}

/// Leaves each output as a file and a `summary.json`, for the user and for later tools, and
/// returns the summary.
fn write_outputs(melody: &Melody, store: &RunStore, run_id: &str, report: &RunReport, skipped: &[usize]) -> Vec<NodeSummary> {
    let mut summary = Vec::new();
    for (i, (node, state)) in melody.nodes.iter().zip(&report.states).enumerate() {
        let mut line = NodeSummary {
            id: node.id.clone(),
            target: node.target.clone(),
            op: node.op.clone(),
            state: "pending",
            millis: None,
            attempts: None,
            output_bytes: None,
            output: None,
            error: None,
            resumed: false,
        };
        match state {
            NodeState::Done { .. } if skipped.contains(&i) => {
                line.state = "skipped";
                line.error = Some("skipped by Maestro: optional, and no node needs its output".to_owned());
            }
            NodeState::Done { output, duration, attempts, resumed } => {
                let path = store.output(run_id, &node.id);
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                if let Err(e) = std::fs::write(&path, output.as_bytes()) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write node output");
                }
                line.state = "done";
                line.millis = Some(duration.as_millis());
                line.attempts = Some(*attempts);
                line.output_bytes = Some(output.len());
                line.output = Some(path);
                line.resumed = *resumed;
            }
            NodeState::Failed { error, attempts } => {
                line.state = "failed";
                line.error = Some(error.clone());
                line.attempts = Some(*attempts);
            }
            NodeState::Skipped { because } => {
                line.state = "skipped";
                line.error = Some(because.clone());
            }
            NodeState::Cancelled => line.state = "cancelled",
            NodeState::Pending => {}
        }
        summary.push(line);
    }
    let path = store.dir(run_id).join("summary.json");
    match serde_json::to_vec_pretty(&summary) {
        Ok(bytes) => {
            if let Err(e) = std::fs::write(&path, bytes) {
                tracing::warn!(path = %path.display(), error = %e, "cannot write run summary");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot serialise run summary"),
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outs(pairs: &[(&str, &str)]) -> Vec<(Arc<str>, Arc<str>)> {
        pairs.iter().map(|(k, v)| (Arc::from(*k), Arc::from(*v))).collect()
    }

    #[test]
    fn references_resolve_to_values_fields_and_text() {
        let o = outs(&[("a", r#"{"lines":3,"items":[{"path":"x.rs"}]}"#), ("t", "plain text")]);
        let cases = [
            (r#""${a}""#, r#"{"lines":3,"items":[{"path":"x.rs"}]}"#),
            (r#""${a.lines}""#, "3"),
            (r#""${a.items.0.path}""#, r#""x.rs""#),
            (r#""${t}""#, r#""plain text""#),
            (r#""n=${a.lines}; ${t}!""#, r#""n=3; plain text!""#),
            (r#"{"text":"${t}","n":["${a.lines}"]}"#, r#"{"text":"plain text","n":[3]}"#),
            (r#""no refs""#, r#""no refs""#),
        ];
        for (input, expected) in cases {
            let input: serde_json::Value = serde_json::from_str(input).unwrap_or_default();
            let got = resolve(&input, &o).unwrap_or_else(serde_json::Value::String);
            let want: serde_json::Value = serde_json::from_str(expected).unwrap_or_default();
            assert_eq!(got, want, "{input}");
        }
        for (input, error) in [
            (r#""${a.missing}""#, "has no `missing`"),
            (r#""${t.x}""#, "is not JSON"),
            (r#""${zz}""#, "no output from `zz`"),
        ] {
            let input: serde_json::Value = serde_json::from_str(input).unwrap_or_default();
            let err = resolve(&input, &o).err().unwrap_or_default();
            assert!(err.contains(error), "{input}: {err}");
        }
    }
}
