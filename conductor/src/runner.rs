//! Running a melody: each node's `${…}` references are filled from its dependencies' outputs,
//! and the node is called through the kernel's proxy. Runs live under `<home>/runs/<run-id>/`:
//! the checkpoint journal, the outputs, and a summary.

use crate::melody::{references, Melody, MelodyNode};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
        format!("{}-{}-{:04x}", &stamp[..8.min(stamp.len())], &stamp[8.min(stamp.len())..], (nanos ^ std::process::id()) & 0xffff)
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
}

impl Default for RunSettings {
    fn default() -> Self {
        Self { concurrency: 4, resume: None, principal: Principal::User }
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
}

impl NodeRunner for ProxyRunner {
    fn run(&self, call: NodeCall) -> NodeFuture {
        let node = self.nodes[call.index].clone();
        let kernel = self.kernel.clone();
        let principal = self.principal.clone();
        Box::pin(async move {
            let input = resolve(&node.input, &call.inputs)?;
            let body = payload(&input);
            // Kernel calls are synchronous and may run for long: keep them off the scheduler.
            tokio::task::spawn_blocking(move || kernel.invoke(&principal, &node.target, &node.op, &body))
                .await
                .map_err(|e| format!("the call did not complete: {e}"))?
                .map_err(|e| e.to_string())
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
    let runner = Arc::new(ProxyRunner {
        kernel: kernel.clone(),
        nodes: Arc::new(melody.nodes.clone()),
        principal: settings.principal.clone(),
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
    let summary = write_outputs(melody, store, &run_id, &report);
    Ok(MelodyRun { run_id, report, dir, summary })
}

/// Leaves each output as a file and a `summary.json`, for the user and for later tools, and
/// returns the summary.
fn write_outputs(melody: &Melody, store: &RunStore, run_id: &str, report: &RunReport) -> Vec<NodeSummary> {
    let mut summary = Vec::new();
    for (node, state) in melody.nodes.iter().zip(&report.states) {
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
