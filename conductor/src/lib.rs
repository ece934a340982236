//! The Conductor's Rust side: melodies — TOML files of nodes that call carets and Pit services —
//! validated into a DAG and run through the kernel's one proxy, with every run checkpointed.

pub mod melody;
pub mod python;
pub mod runner;

pub use melody::{InstalledTargets, Melody, MelodyError, MelodyNode, TargetCheck};
pub use runner::{run_melody, MelodyRun, NodeSummary, RunSettings, RunStore};
