//! Maestro mode: a Python policy (embedded CPython) decides, per melody node, to run it as
//! written, run one of its alternatives, retry a failed node with another alternative, or skip
//! it — and learns from the reward of each outcome. The policy runs on a thread of its own;
//! every answer is checked here, and a policy that raises, answers nonsense, asks for an unsafe
//! skip or is slower than the time limit gets Manual for that node, with the reason recorded.
//! Every decision and reward is appended to `<home>/conductor/episodes.jsonl` (the training
//! data, with its run and node), and the policy is checkpointed after each run.
//!
//! Reward, in [0, 1]: a node that succeeded earns `1 − 0.5 · min(1, seconds)` (faster is
//! better, success always beats failure); when its answer is an artifact version with a
//! quality score (a `pit/artifacts put`, or any answer carrying `quality.score`), the reward is
//! `0.7 · that + 0.3 · score`, so better artifacts are preferred too. A failed attempt earns 0,
//! and a skip of an optional node earns `SKIP_REWARD` — less than any success, more than a
//! failure.

use crate::python::{explain, from_json, install_package, to_json};
use pyo3::prelude::*;
use pyo3::types::PyModule;
use serde_json::{json, Value};
use std::ffi::CString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// What a skip of an optional node is worth.
pub const SKIP_REWARD: f64 = 0.2;

/// The reward of one attempt.
pub fn reward(ok: bool, took: Duration) -> f64 {
    if ok { 1.0 - 0.5 * took.as_secs_f64().min(1.0) } else { 0.0 }
}

/// The quality score an answer carries (`{"quality": {"score": 0.8, …}, …}`), if any.
pub fn quality_of(answer: &str) -> Option<f64> {
    if !answer.trim_start().starts_with('{') {
        return None;
    }
    let v: Value = serde_json::from_str(answer).ok()?;
    v.get("quality")?.get("score")?.as_f64().filter(|q| (0.0..=1.0).contains(q))
}

/// The reward of an attempt whose answer may carry a quality score.
pub fn reward_with_quality(ok: bool, took: Duration, quality: Option<f64>) -> f64 {
    let base = reward(ok, took);
    match quality {
        Some(q) if ok => 0.7 * base + 0.3 * q,
        _ => base,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MaestroError {
    #[error("starting the policy: {0}")]
    Start(String),
    #[error("{}: {reason}; move it away to start learning afresh, or rebuild it with `symphony conductor train`", path.display())]
    Checkpoint { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
}

/// How Maestro is set up.
#[derive(Clone, Debug)]
pub struct MaestroOptions {
    /// Symphony's home: the checkpoint and the episodes live under `conductor/`.
    pub home: PathBuf,
    /// A Python file defining a `Policy` class, instead of the built-in LinUCB.
    pub policy_file: Option<PathBuf>,
    pub seed: u64,
    /// How long one decision may take before the node runs as written.
    pub limit: Duration,
}

impl MaestroOptions {
    pub fn new(home: &Path) -> Self {
        Self { home: home.to_path_buf(), policy_file: None, seed: 0, limit: Duration::from_millis(250) }
    }

    fn dir(&self) -> PathBuf {
        self.home.join("conductor")
    }

    /// The checkpoint of this policy (custom policies keep their own).
    pub fn checkpoint(&self) -> PathBuf {
        match &self.policy_file {
            None => self.dir().join("policy.json"),
            Some(f) => self.dir().join(format!("policy-{}.json", f.file_stem().map_or_else(|| "custom".into(), |s| s.to_string_lossy()))),
        }
    }

    pub fn episodes(&self) -> PathBuf {
        self.dir().join("episodes.jsonl")
    }
}

/// What the policy is asked about one node.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Ask {
    pub node: String,
    /// `target/op` of the node itself (0) and of each alternative.
    pub arms: Vec<String>,
    /// Optional and no node reads its output: a skip is safe.
    pub skippable: bool,
    /// Arms already tried (and failed) for this node in this run.
    pub tried: Vec<usize>,
    /// The context: bias, log input size, attempts so far.
    pub features: Vec<f64>,
}

impl Ask {
    pub fn new(node: &str, arms: Vec<String>, skippable: bool, tried: Vec<usize>, input_bytes: usize) -> Self {
        let features = vec![1.0, (1.0 + input_bytes as f64).ln() / 10.0, tried.len() as f64];
        Self { node: node.to_owned(), arms, skippable, tried, features }
    }

    /// Manual: the first arm not tried yet.
    fn manual(&self) -> Choice {
        Choice::Run((0..self.arms.len()).find(|a| !self.tried.contains(a)).unwrap_or(0))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Run(usize),
    Skip,
}

impl Choice {
    fn to_json(self) -> Value {
        match self {
            Choice::Run(arm) => json!({ "action": "run", "arm": arm }),
            Choice::Skip => json!({ "action": "skip" }),
        }
    }
}

/// What one attempt came to.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    pub ok: bool,
    pub took: Duration,
    /// The quality score of the artifact the answer is, if it is one.
    pub quality: Option<f64>,
}

/// A decision and, when the policy's answer was not used, why.
#[derive(Clone, Debug)]
pub struct Decided {
    pub choice: Choice,
    pub fallback: Option<String>,
}

/// Checks a policy's answer against what may be done.
fn check(answer: &Value, ask: &Ask) -> Result<Choice, String> {
    match answer.get("action").and_then(Value::as_str) {
        Some("skip") if ask.skippable && ask.tried.is_empty() => Ok(Choice::Skip),
        Some("skip") => Err(format!("asked to skip `{}`, which is not optional or whose output another node needs; it ran", ask.node)),
        Some("run") => match answer.get("arm").and_then(Value::as_u64).and_then(|a| usize::try_from(a).ok()) {
            Some(arm) if arm < ask.arms.len() && !ask.tried.contains(&arm) => Ok(Choice::Run(arm)),
            Some(arm) if arm < ask.arms.len() => Err(format!("chose arm {arm} of `{}` again after it failed", ask.node)),
            _ => Err(format!("answered {answer}, which names no arm of `{}` (it has {})", ask.node, ask.arms.len())),
        },
        _ => Err(format!("answered {answer}; expected {{\"action\": \"run\", \"arm\": k}} or {{\"action\": \"skip\"}}")),
    }
}

type Reply = mpsc::Sender<Result<Value, String>>;

enum Request {
    Call { method: &'static str, args: Vec<Value>, reply: Option<Reply> },
}

/// One record of training data.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Episode {
    pub run_id: String,
    pub melody: String,
    pub node: String,
    pub ask: Value,
    pub choice: Value,
    /// The arm's `target/op`, or `skip`.
    pub label: String,
    pub fallback: Option<String>,
    pub ok: bool,
    pub millis: u64,
    pub reward: f64,
}

/// The policy, on its thread, and the training data.
pub struct Maestro {
    requests: Mutex<mpsc::Sender<Request>>,
    /// The node whose decision is overdue, while the policy is still on it.
    busy: Arc<Mutex<Option<String>>>,
    /// `threading.get_ident()` of the policy's thread, to interrupt a hung decision.
    python_thread: u64,
    options: MaestroOptions,
    episodes: Mutex<std::fs::File>,
    /// What fell back, and why, in this process (for the run's report).
    notes: Mutex<Vec<String>>,
    /// Episodes not yet taken by their run (for the artifact store).
    recent: Mutex<Vec<Episode>>,
}

impl std::fmt::Debug for Maestro {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maestro").field("options", &self.options).finish_non_exhaustive()
    }
}

/// Builds the policy object: the user's `Policy` class or the built-in LinUCB, seeded when it
/// takes a seed.
fn make_policy(py: Python<'_>, options: &MaestroOptions) -> PyResult<Py<PyAny>> {
    install_package(py)?;
    let class = match &options.policy_file {
        None => py.import("symphony_conductor")?.getattr("LinUCB")?,
        Some(file) => {
            let source = std::fs::read_to_string(file)
                .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("{}: {e}", file.display())))?;
            let code = CString::new(source).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
            let name = CString::new(file.display().to_string()).unwrap_or_else(|_| c"policy.py".to_owned());
            let module = PyModule::from_code(py, &code, &name, c"maestro_policy")?;
            module.getattr("Policy").map_err(|_| pyo3::exceptions::PyAttributeError::new_err(format!("{} defines no class `Policy`", file.display())))?
        }
    };
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("seed", options.seed)?;
    match class.call((), Some(&kwargs)) {
        Ok(p) => Ok(p.unbind()),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyTypeError>(py) => Ok(class.call0()?.unbind()),
        Err(e) => Err(e),
    }
}

fn call_policy(py: Python<'_>, policy: &Py<PyAny>, method: &str, args: &[Value]) -> Result<Value, String> {
    let run = || -> PyResult<Value> {
        let args: Vec<Bound<'_, PyAny>> = args.iter().map(|a| from_json(py, &a.to_string())).collect::<PyResult<_>>()?;
        let answer = policy.bind(py).call_method1(method, pyo3::types::PyTuple::new(py, args)?)?;
        let text = if answer.is_none() { "null".to_owned() } else { to_json(&answer)? };
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    };
    run().map_err(|e| {
        let e = explain(py, e);
        e.to_string()
    })
}

impl Maestro {
    /// Starts the policy (loading its checkpoint if there is one) on its own thread.
    pub fn start(options: MaestroOptions) -> Result<Arc<Self>, MaestroError> {
        let dir = options.dir();
        std::fs::create_dir_all(&dir).map_err(|e| MaestroError::Io { path: dir.clone(), reason: e.to_string() })?;
        let checkpoint = options.checkpoint();
        let state = match std::fs::read_to_string(&checkpoint) {
            Ok(text) => Some(serde_json::from_str::<Value>(&text).map_err(|e| MaestroError::Checkpoint { path: checkpoint.clone(), reason: e.to_string() })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(MaestroError::Io { path: checkpoint, reason: e.to_string() }),
        };
        let episodes_path = options.episodes();
        let episodes = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&episodes_path)
            .map_err(|e| MaestroError::Io { path: episodes_path.clone(), reason: e.to_string() })?;
        let (requests, queue) = mpsc::channel::<Request>();
        let (started, ready) = mpsc::channel::<Result<u64, MaestroError>>();
        let busy: Arc<Mutex<Option<String>>> = Arc::default();
        let thread_busy = Arc::clone(&busy);
        let thread_options = options.clone();
        std::thread::Builder::new()
            .name("maestro-policy".to_owned())
            .spawn(move || {
                let made = Python::attach(|py| -> Result<(Py<PyAny>, u64), MaestroError> {
                    let policy = make_policy(py, &thread_options).map_err(|e| MaestroError::Start(explain(py, e).to_string()))?;
                    if let Some(state) = &state {
                        call_policy(py, &policy, "load", std::slice::from_ref(state))
                            .map_err(|reason| MaestroError::Checkpoint { path: thread_options.checkpoint(), reason })?;
                    }
                    let ident = py.import("threading").and_then(|t| t.call_method0("get_ident")).and_then(|i| i.extract::<u64>());
                    Ok((policy, ident.unwrap_or(0)))
                });
                let policy = match made {
                    Ok((policy, ident)) => {
                        let _ = started.send(Ok(ident));
                        policy
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                };
                while let Ok(Request::Call { method, args, reply }) = queue.recv() {
                    let answer = Python::attach(|py| call_policy(py, &policy, method, &args));
                    // Whatever was overdue has now been answered (or interrupted).
                    *thread_busy.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    if let Some(reply) = reply {
                        let _ = reply.send(answer);
                    }
                }
            })
            .map_err(|e| MaestroError::Start(e.to_string()))?;
        let python_thread = ready.recv().map_err(|_| MaestroError::Start("the policy thread ended".to_owned()))??;
        Ok(Arc::new(Self {
            requests: Mutex::new(requests),
            busy,
            python_thread,
            options,
            episodes: Mutex::new(episodes),
            notes: Mutex::new(Vec::new()),
            recent: Mutex::new(Vec::new()),
        }))
    }

    fn send(&self, method: &'static str, args: Vec<Value>, reply: Option<Reply>) -> bool {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).send(Request::Call { method, args, reply }).is_ok()
    }

    fn call(&self, method: &'static str, args: Vec<Value>, limit: Option<Duration>) -> Result<Value, String> {
        let (reply, answer) = mpsc::channel();
        if !self.send(method, args, Some(reply)) {
            return Err("the policy thread is gone".to_owned());
        }
        match limit {
            Some(limit) => answer.recv_timeout(limit).map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => format!("took longer than {}", humantime::format_duration(limit)),
                mpsc::RecvTimeoutError::Disconnected => "the policy thread is gone".to_owned(),
            })?,
            None => answer.recv().map_err(|_| "the policy thread is gone".to_owned())?,
        }
    }

    fn note(&self, text: String) {
        tracing::warn!(target: "maestro", "{text}");
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).push(text);
    }

    /// Where the training data is appended.
    pub fn episodes_path(&self) -> PathBuf {
        self.options.episodes()
    }

    /// What fell back to Manual so far, and why.
    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Asks the policy; any failure of its answer means Manual for this node, said why.
    pub fn decide(&self, ask: &Ask) -> Decided {
        let fallback = |why: String| {
            let text = format!("`{}`: Manual, because the policy {why}", ask.node);
            self.note(text.clone());
            Decided { choice: ask.manual(), fallback: Some(text) }
        };
        if let Some(node) = self.busy.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return fallback(format!("is still deciding `{node}`"));
        }
        let ask_json = serde_json::to_value(ask).unwrap_or(Value::Null);
        match self.call("decide", vec![ask_json], Some(self.options.limit)) {
            Ok(answer) => match check(&answer, ask) {
                Ok(choice) => Decided { choice, fallback: None },
                Err(why) => fallback(why),
            },
            Err(why) if why.starts_with("took longer") => {
                *self.busy.lock().unwrap_or_else(|p| p.into_inner()) = Some(ask.node.clone());
                self.interrupt();
                fallback(why)
            }
            Err(why) => fallback(format!("raised {why}")),
        }
    }

    /// Raises `TimeoutError` in the policy's thread (delivered when it next runs Python
    /// bytecode), from a helper thread so the caller never waits on the GIL.
    fn interrupt(&self) {
        let ident = self.python_thread;
        let _ = std::thread::Builder::new().name("maestro-interrupt".to_owned()).spawn(move || {
            Python::attach(|py| {
                let code = format!(
                    "import ctypes\nctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong({ident}), ctypes.py_object(TimeoutError))\n"
                );
                if let Ok(code) = CString::new(code) {
                    let _ = py.run(&code, None, None);
                }
            });
        });
    }

    /// Tells the policy what a choice earned (not while it is stuck) and records the episode.
    pub fn learn(&self, run_id: &str, melody: &str, ask: &Ask, decided: &Decided, outcome: Outcome) {
        let Outcome { ok, took, quality } = outcome;
        let reward = if decided.choice == Choice::Skip { SKIP_REWARD } else { reward_with_quality(ok, took, quality) };
        let ask_json = serde_json::to_value(ask).unwrap_or(Value::Null);
        let choice = decided.choice.to_json();
        if self.busy.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
            self.send("update", vec![ask_json.clone(), choice.clone(), json!(reward)], None);
        }
        let label = match decided.choice {
            Choice::Skip => "skip".to_owned(),
            Choice::Run(arm) => ask.arms.get(arm).cloned().unwrap_or_default(),
        };
        let episode = Episode {
            run_id: run_id.to_owned(),
            melody: melody.to_owned(),
            node: ask.node.clone(),
            ask: ask_json,
            choice,
            label,
            fallback: decided.fallback.clone(),
            ok,
            millis: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            reward,
        };
        if let Ok(mut line) = serde_json::to_string(&episode) {
            line.push('\n');
            let mut file = self.episodes.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = file.write_all(line.as_bytes()) {
                self.note(format!("episode not recorded in {}: {e}", self.options.episodes().display()));
            }
        }
        self.recent.lock().unwrap_or_else(|p| p.into_inner()).push(episode);
    }

    /// The episodes of one run, taken (each is returned once).
    pub fn take_episodes(&self, run_id: &str) -> Vec<Episode> {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let (mine, rest): (Vec<Episode>, Vec<Episode>) = recent.drain(..).partition(|e| e.run_id == run_id);
        *recent = rest;
        mine
    }

    /// Saves the policy's state (temp file + rename: a crash leaves the old checkpoint).
    pub fn checkpoint(&self) -> Result<PathBuf, MaestroError> {
        let path = self.options.checkpoint();
        let limit = Some(self.options.limit.max(Duration::from_secs(5)));
        let state = self.call("state", vec![], limit).map_err(|reason| MaestroError::Io { path: path.clone(), reason: format!("the policy's state: {reason}") })?;
        let text = serde_json::to_vec_pretty(&state).map_err(|e| MaestroError::Io { path: path.clone(), reason: e.to_string() })?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, &text)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| MaestroError::Io { path: path.clone(), reason: e.to_string() })?;
        Ok(path)
    }

    /// What the policy has learned: per node and arm, choices, mean reward, confidence.
    pub fn stats(&self) -> Result<Value, String> {
        self.call("stats", vec![], Some(Duration::from_secs(10)))
    }

    /// Replays recorded episodes into the policy ("Function Quest" training, offline): each
    /// decision the policy made or was given, with the reward it earned. Returns how many.
    pub fn train(&self, episodes: &[Episode]) -> Result<usize, String> {
        for e in episodes {
            self.call("update", vec![e.ask.clone(), e.choice.clone(), json!(e.reward)], Some(Duration::from_secs(10)))?;
        }
        Ok(episodes.len())
    }
}

/// Reads the training data; a torn last line (a crash while appending) is skipped, any other
/// bad line is an error naming its line.
pub fn read_episodes(path: &Path) -> Result<Vec<Episode>, MaestroError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(MaestroError::Io { path: path.to_path_buf(), reason: e.to_string() }),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Episode>(line) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => return Err(MaestroError::Io { path: path.to_path_buf(), reason: format!("line {}: {e}", i + 1) }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(skippable: bool, tried: Vec<usize>) -> Ask {
        Ask::new("n", vec!["caret/a/x".into(), "caret/b/y".into()], skippable, tried, 10)
    }

    #[test]
    fn answers_are_checked_before_they_are_used() {
        type Case = (Value, bool, Vec<usize>, Result<Choice, &'static str>);
        let cases: &[Case] = &[
            (json!({"action": "run", "arm": 1}), false, vec![], Ok(Choice::Run(1))),
            (json!({"action": "skip"}), true, vec![], Ok(Choice::Skip)),
            (json!({"action": "skip"}), false, vec![], Err("asked to skip")),
            (json!({"action": "skip"}), true, vec![0], Err("asked to skip")),
            (json!({"action": "run", "arm": 0}), false, vec![0], Err("again after it failed")),
            (json!({"action": "run", "arm": 2}), false, vec![], Err("names no arm")),
            (json!({"action": "run", "arm": -1}), false, vec![], Err("names no arm")),
            (json!(42), false, vec![], Err("expected")),
            (json!({"action": "dance"}), false, vec![], Err("expected")),
        ];
        for (answer, skippable, tried, want) in cases {
            let got = check(answer, &ask(*skippable, tried.clone()));
            match (got, want) {
                (Ok(c), Ok(w)) => assert_eq!(c, *w, "{answer}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{answer}: {e}"),
                (got, want) => panic!("{answer}: got {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn rewards_prefer_success_then_speed() {
        assert_eq!(reward(false, Duration::ZERO), 0.0);
        assert!(reward(true, Duration::from_secs(5)) > SKIP_REWARD);
        assert!(reward(true, Duration::from_millis(10)) > reward(true, Duration::from_millis(500)));
        assert_eq!(ask(false, vec![0]).manual(), Choice::Run(1));
        // A produced artifact's quality counts; an answer without one changes nothing.
        let fast = Duration::from_millis(1);
        assert!(reward_with_quality(true, fast, Some(0.9)) > reward_with_quality(true, fast, Some(0.2)));
        assert_eq!(reward_with_quality(true, fast, None), reward(true, fast));
        assert_eq!(reward_with_quality(false, fast, Some(1.0)), 0.0);
        assert_eq!(quality_of(r#"{"name":"a","quality":{"score":0.75,"factors":[]}}"#), Some(0.75));
        for none in ["plain text", "{\"quality\": 3}", "{\"quality\": {\"score\": 7}}", "[1]"] {
            assert_eq!(quality_of(none), None, "{none}");
        }
    }
}
