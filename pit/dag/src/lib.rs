//! The Pit's workflow DAG tracker: build and validate a graph of nodes, level it, find its
//! critical path, and run it on tokio with bounded concurrency, timeouts, retries, cancellation,
//! a crash-safe checkpoint journal and resume.

mod graph;
mod journal;
mod run;

pub use graph::{Dag, Dep, NodeSpec, ValidationError, ValidationErrors};
pub use journal::{Journal, JournalError, Record};
pub use run::{
    run, Cancel, Event, EventKind, NodeCall, NodeFuture, NodeRunner, NodeState, RunError, RunOptions, RunReport,
};
