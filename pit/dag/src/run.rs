//! Running a DAG on tokio: a node starts as soon as its dependencies are done, at most
//! `concurrency` at once, each attempt under a timeout, failed attempts retried with exponential
//! backoff; a failed node skips only what depends on it. Every finished node is journaled, so a
//! run killed at any point resumes without re-running a node whose result was written.

use crate::graph::Dag;
use crate::journal::{Journal, JournalError, Record};
use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;

/// What a runner is asked to do: one attempt of one node, with its dependencies' outputs.
#[derive(Clone, Debug)]
pub struct NodeCall {
    pub index: usize,
    pub id: Arc<str>,
    /// `(dependency id, its output)` for every direct dependency.
    pub inputs: Vec<(Arc<str>, Arc<str>)>,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// The future of one attempt: the node's output, or why it failed.
pub type NodeFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// Runs nodes. Implemented for any `Fn(NodeCall) -> NodeFuture`.
pub trait NodeRunner: Send + Sync + 'static {
    fn run(&self, call: NodeCall) -> NodeFuture;
}

impl<F> NodeRunner for F
where
    F: Fn(NodeCall) -> NodeFuture + Send + Sync + 'static,
{
    fn run(&self, call: NodeCall) -> NodeFuture {
        self(call)
    }
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Most nodes running at once.
    pub concurrency: usize,
    /// Per-attempt timeout for nodes that set none.
    pub default_timeout: Option<Duration>,
    /// Wait before the first retry; doubles for each further one.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Where to journal finished nodes (and resume from, when `resume` is set).
    pub journal: Option<PathBuf>,
    pub resume: bool,
    /// Identifies the run in its journal.
    pub run_id: String,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            concurrency: std::thread::available_parallelism().map_or(4, |n| n.get() * 4),
            default_timeout: None,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            journal: None,
            resume: false,
            run_id: String::new(),
        }
    }
}

/// Where a node ended up.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeState {
    /// Never started (the run was cancelled first).
    Pending,
    Done { output: Arc<str>, duration: Duration, attempts: u32, resumed: bool },
    Failed { error: String, attempts: u32 },
    /// Not run because a dependency failed.
    Skipped { because: String },
    /// Running when the run was cancelled.
    Cancelled,
}

/// What happened, for a subscriber to follow.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    Started { attempt: u32 },
    Retrying { attempt: u32, error: String, backoff: Duration },
    Done { duration: Duration, output_bytes: usize, attempts: u32 },
    Failed { error: String, attempts: u32 },
    Skipped { because: String },
    /// Restored from the journal instead of run.
    Resumed,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub node: usize,
    pub id: Arc<str>,
    /// Since the run started.
    pub at: Duration,
    pub kind: EventKind,
}

/// Cancels a run: running nodes are aborted, nothing new starts.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<(AtomicBool, Notify)>);

impl Cancel {
    pub fn cancel(&self) {
        self.0 .0.store(true, Ordering::SeqCst);
        self.0 .1.notify_waiters();
    }
    pub fn is_cancelled(&self) -> bool {
        self.0 .0.load(Ordering::SeqCst)
    }
    async fn cancelled(&self) {
        loop {
            let notified = self.0 .1.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub states: Vec<NodeState>,
    pub elapsed: Duration,
    /// The longest chain by measured durations: total and node indices.
    pub critical_path: (Duration, Vec<usize>),
    pub cancelled: bool,
}

impl RunReport {
    /// Whether every node is done.
    pub fn ok(&self) -> bool {
        self.states.iter().all(|s| matches!(s, NodeState::Done { .. }))
    }
}

/// Why a run could not proceed at all (node failures are in the report, not here).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the checkpoint {} belongs to a different graph (it changed since run `{run}`); start a new run", path.display())]
    GraphChanged { path: PathBuf, run: String },
    #[error("the checkpoint {} names node `{node}`, which the graph does not have", path.display())]
    UnknownNode { path: PathBuf, node: String },
}

/// The result of one node's task: index, outcome, duration of the successful attempt, attempts.
type Finished = (usize, Result<String, String>, Duration, u32);

struct Scheduler<'a> {
    dag: &'a Dag,
    states: Vec<NodeState>,
    waiting_on: Vec<usize>,
    ready: VecDeque<usize>,
    events: Option<mpsc::UnboundedSender<Event>>,
    started: Instant,
}

impl Scheduler<'_> {
    fn emit(&self, node: usize, kind: EventKind) {
        if let Some(tx) = &self.events {
            let _ = tx.send(Event { node, id: Arc::clone(self.dag.id(node)), at: self.started.elapsed(), kind });
        }
    }

    /// Marks `i` done and frees the dependants whose last dependency it was.
    fn complete(&mut self, i: usize) {
        for d in self.dag.dependants(i) {
            self.waiting_on[d] -= 1;
            if self.waiting_on[d] == 0 && matches!(self.states[d], NodeState::Pending) {
                self.ready.push_back(d);
            }
        }
    }

    /// Skips everything downstream of a failed node (transitively).
    fn skip_downstream(&mut self, failed: usize) {
        let because = format!("`{}` failed", self.dag.node(failed).id);
        let mut stack: Vec<usize> = self.dag.dependants(failed).collect();
        while let Some(d) = stack.pop() {
            if matches!(self.states[d], NodeState::Pending) {
                self.states[d] = NodeState::Skipped { because: because.clone() };
                self.emit(d, EventKind::Skipped { because: because.clone() });
                stack.extend(self.dag.dependants(d));
            }
        }
    }

    fn inputs(&self, i: usize) -> Vec<(Arc<str>, Arc<str>)> {
        self.dag
            .dependencies(i)
            .filter_map(|d| match &self.states[d] {
                NodeState::Done { output, .. } => Some((Arc::clone(self.dag.id(d)), Arc::clone(output))),
                _ => None,
            })
            .collect()
    }
}

fn backoff_for(options: &RunOptions, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    options.backoff.saturating_mul(factor).min(options.max_backoff)
}

/// Runs `dag` with `runner`. Node failures are reported in the `RunReport`; `Err` means the
/// run could not be set up (journal unreadable, checkpoint of another graph).
pub async fn run(
    dag: &Dag,
    runner: Arc<dyn NodeRunner>,
    options: RunOptions,
    events: Option<mpsc::UnboundedSender<Event>>,
    cancel: Cancel,
) -> Result<RunReport, RunError> {
    let n = dag.len();
    let mut sched = Scheduler {
        dag,
        states: vec![NodeState::Pending; n],
        waiting_on: (0..n).map(|i| dag.dependency_count(i)).collect(),
        ready: VecDeque::new(),
        events,
        started: Instant::now(),
    };

    let mut journal = match &options.journal {
        None => None,
        Some(path) if options.resume && path.exists() => {
            let (journal, records) = Journal::resume(path)?;
            restore(dag, &mut sched, &records, path)?;
            Some(journal)
        }
        Some(path) => Some(Journal::create(
            path,
            &Record::Begin {
                run_id: options.run_id.clone(),
                fingerprint: dag.fingerprint(),
                nodes: u32::try_from(n).unwrap_or(u32::MAX),
            },
        )?),
    };
    for i in 0..n {
        if sched.waiting_on[i] == 0 && matches!(sched.states[i], NodeState::Pending) {
            sched.ready.push_back(i);
        }
    }

    let concurrency = options.concurrency.max(1);
    let options = Arc::new(options);
    let mut running: JoinSet<Finished> = JoinSet::new();
    let mut in_flight: Vec<bool> = vec![false; n];
    let mut task_node: std::collections::HashMap<tokio::task::Id, usize> = std::collections::HashMap::new();
    let mut cancelled = false;
    loop {
        while running.len() < concurrency {
            let Some(i) = sched.ready.pop_front() else { break };
            in_flight[i] = true;
            let node = dag.node(i);
            let call = NodeCall { index: i, id: Arc::clone(dag.id(i)), inputs: sched.inputs(i), attempt: 1 };
            let timeout = node.timeout.or(options.default_timeout);
            let retries = node.retries;
            let runner = Arc::clone(&runner);
            let opts = Arc::clone(&options);
            let tx = sched.events.clone();
            let started = sched.started;
            let handle = running.spawn(attempt_node(call, timeout, retries, runner, opts, tx, started));
            task_node.insert(handle.id(), i);
        }
        if running.is_empty() {
            break;
        }
        let first = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            joined = running.join_next_with_id() => joined,
        };
        let Some(first) = first else {
            cancelled = true;
            running.abort_all();
            break;
        };
        // Settle everything already finished in one go: one journal write per batch.
        let mut batch = vec![first];
        while let Some(more) = running.try_join_next_with_id() {
            batch.push(more);
        }
        for joined in batch {
            let (i, result, duration, attempts) = match joined {
                Ok((id, f)) => {
                    task_node.remove(&id);
                    f
                }
                // A runner that panicked fails its node like any other error.
                Err(e) => match task_node.remove(&e.id()) {
                    Some(i) => (i, Err(format!("the node's runner panicked: {e}")), Duration::ZERO, 1),
                    None => continue,
                },
            };
            in_flight[i] = false;
            match result {
                Ok(output) => {
                    if let Some(j) = journal.as_mut() {
                        j.push_done(dag.id(i), &output, u64::try_from(duration.as_micros()).unwrap_or(u64::MAX), attempts);
                    }
                    sched.emit(i, EventKind::Done { duration, output_bytes: output.len(), attempts });
                    sched.states[i] = NodeState::Done { output: Arc::from(output), duration, attempts, resumed: false };
                    sched.complete(i);
                }
                Err(error) => {
                    if let Some(j) = journal.as_mut() {
                        j.push(&Record::Failed { node: dag.node(i).id.clone(), error: error.clone(), attempts });
                    }
                    sched.emit(i, EventKind::Failed { error: error.clone(), attempts });
                    sched.states[i] = NodeState::Failed { error, attempts };
                    sched.skip_downstream(i);
                }
            }
        }
        if let Some(j) = journal.as_mut() {
            j.flush()?;
        }
    }
    if cancelled {
        for (i, flying) in in_flight.iter().enumerate() {
            if *flying {
                sched.states[i] = NodeState::Cancelled;
            }
        }
    }
    if let Some(j) = journal.as_mut() {
        let ok = sched.states.iter().all(|s| matches!(s, NodeState::Done { .. }));
        j.push(&Record::End { ok });
        j.sync()?;
    }
    let durations: Vec<Duration> = sched
        .states
        .iter()
        .map(|s| match s {
            NodeState::Done { duration, .. } => *duration,
            _ => Duration::ZERO,
        })
        .collect();
    let critical_path = dag.critical_path(|i| durations[i]);
    Ok(RunReport { states: sched.states, elapsed: sched.started.elapsed(), critical_path, cancelled })
}

/// Marks the nodes a journal says are done; failed ones run again.
fn restore(dag: &Dag, sched: &mut Scheduler<'_>, records: &[Record], path: &std::path::Path) -> Result<(), RunError> {
    let mut run = String::new();
    for record in records {
        match record {
            Record::Begin { run_id, fingerprint, .. } => {
                run.clone_from(run_id);
                if *fingerprint != dag.fingerprint() {
                    return Err(RunError::GraphChanged { path: path.to_path_buf(), run: run_id.clone() });
                }
            }
            Record::Done { node, output, micros, attempts } => {
                let i = dag
                    .index_of(node)
                    .ok_or_else(|| RunError::UnknownNode { path: path.to_path_buf(), node: node.clone() })?;
                if matches!(sched.states[i], NodeState::Done { .. }) {
                    continue;
                }
                sched.states[i] = NodeState::Done {
                    output: Arc::from(output.as_str()),
                    duration: Duration::from_micros(*micros),
                    attempts: *attempts,
                    resumed: true,
                };
                sched.emit(i, EventKind::Resumed);
                sched.complete(i);
            }
            Record::Failed { .. } | Record::End { .. } => {}
        }
    }
    // `complete` queued freed nodes; the caller rebuilds the ready queue from scratch.
    sched.ready.clear();
    Ok(())
}

async fn attempt_node(
    mut call: NodeCall,
    timeout: Option<Duration>,
    retries: u32,
    runner: Arc<dyn NodeRunner>,
    options: Arc<RunOptions>,
    events: Option<mpsc::UnboundedSender<Event>>,
    run_started: Instant,
) -> Finished {
    let i = call.index;
    let emit = |kind: EventKind| {
        if let Some(tx) = &events {
            let _ = tx.send(Event { node: i, id: Arc::clone(&call.id), at: run_started.elapsed(), kind });
        }
    };
    let attempts = retries + 1;
    let mut last_error = String::new();
    for attempt in 1..=attempts {
        call.attempt = attempt;
        emit(EventKind::Started { attempt });
        let started = Instant::now();
        let fut = runner.run(call.clone());
        let result = match timeout {
            Some(t) => match tokio::time::timeout(t, fut).await {
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {t:?}")),
            },
            None => fut.await,
        };
        match result {
            Ok(output) => return (i, Ok(output), started.elapsed(), attempt),
            Err(e) => last_error = e,
        }
        if attempt < attempts {
            let wait = backoff_for(&options, attempt);
            emit(EventKind::Retrying { attempt, error: last_error.clone(), backoff: wait });
            tokio::time::sleep(wait).await;
        }
    }
    (i, Err(last_error), Duration::ZERO, attempts)
}
