//! The Conductor's Rust side: melodies — TOML files of nodes that call carets and Pit services —
//! validated into a DAG and run through the kernel's one proxy, with every run checkpointed —
//! as written (Manual) or with a learning Python policy deciding per node (Maestro).

pub mod maestro;
pub mod melody;
pub mod python;
pub mod runner;

pub use melody::{Alternative, InstalledTargets, Melody, MelodyError, MelodyNode, TargetCheck};
pub use runner::{run_melody, MelodyRun, NodeSummary, RunSettings, RunStore};
