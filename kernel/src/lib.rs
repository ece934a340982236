//! Symphony's microkernel: loads carets (WASI components) with only the capabilities a person
//! granted, and routes every call through one proxy that checks and audits it.
//!
//! Entry point: [`Kernel::open`], then [`Kernel::invoke`]. See `ARCHITECTURE.md` at the root.

pub mod audit;
pub mod capability;
pub mod capability_audit;
mod caret;
pub mod command;
pub mod config;
pub mod engine;
pub mod error;
mod wasi_guard;
mod fsutil;
pub mod host;
pub mod inspect;
mod kernel;
pub mod manifest;
pub mod package;
pub mod package_index;
pub mod registry;
pub mod swap;
pub mod trust;
pub mod wit;

pub use audit::{AuditLog, AuditRecord, Decision};
pub use capability::{Capability, CapabilitySet};
pub use command::{CommandError, CommandOutput};
pub use config::Config;
pub use error::{CallError, ErrorCode, KernelError};
pub use host::CallObserver;
pub use kernel::{CaretStatus, InstallProgress, Kernel, KernelOptions, LoadReport, Principal, Service, Target, WeakKernel};
pub use manifest::{CaretKind, Limits, Manifest};
pub use registry::{GrantRecord, InstalledCaret};
