//! The kernel's typed errors: `CallError` for anything that goes through the proxy, and
//! `KernelError` for registry, manifest and host operations.

use crate::capability::CapabilityParseError;
use crate::manifest::{CaretKind, ManifestError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Why a proxied call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The payload, target or op was malformed.
    InvalidInput,
    /// No such caret, service or op.
    NotFound,
    /// A capability was missing.
    Denied,
    /// The callee ran and reported failure.
    Failed,
    /// The callee does not offer this.
    Unsupported,
    /// The call ran past its time limit and was interrupted.
    Timeout,
    /// The callee hit its memory cap.
    OutOfMemory,
    /// The callee trapped (panic, unreachable, bad memory access …).
    Trap,
    /// Every instance the caret may have is busy.
    Busy,
    /// The kernel failed; a bug or an environment problem.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid-input",
            ErrorCode::NotFound => "not-found",
            ErrorCode::Denied => "denied",
            ErrorCode::Failed => "failed",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Timeout => "timeout",
            ErrorCode::OutOfMemory => "out-of-memory",
            ErrorCode::Trap => "trap",
            ErrorCode::Busy => "busy",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The typed error of the one call path: `{code, message, caret, capability?}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct CallError {
    pub code: ErrorCode,
    pub message: String,
    /// The caret the error concerns (callee, or caller for denials of a caret principal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caret: Option<String>,
    /// The capability that was missing, for `denied`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(c) = &self.caret {
            write!(f, " [{c}]")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(cap) = &self.capability {
            write!(f, " (needs `{cap}`)")?;
        }
        Ok(())
    }
}

impl CallError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), caret: None, capability: None }
    }
    pub fn with_caret(mut self, caret: impl Into<String>) -> Self {
        self.caret = Some(caret.into());
        self
    }
    pub fn denied(message: impl Into<String>, capability: impl Into<String>) -> Self {
        Self { code: ErrorCode::Denied, message: message.into(), caret: None, capability: Some(capability.into()) }
    }
}

/// Errors of registry, manifest, component and configuration operations.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Capability(#[from] CapabilityParseError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("component {} not found; build it first ({hint})", path.display())]
    ComponentMissing { path: PathBuf, hint: String },
    #[error("{}: not a valid component: {reason}", path.display())]
    InvalidComponent { path: PathBuf, reason: String },
    #[error("caret `{id}` declares kind `{declared}` but its component {found}")]
    WorldMismatch { id: String, declared: CaretKind, found: String },
    #[error("caret `{id}` was built against API {found} but its manifest says {declared}")]
    ApiMismatch { id: String, declared: String, found: String },
    #[error(
        "caret `{id}` imports what its manifest does not declare: {}",
        undeclared.iter().map(|(i, c)| format!("`{i}` (needs a `{c}` capability)")).collect::<Vec<_>>().join(", ")
    )]
    UndeclaredImports { id: String, undeclared: Vec<(String, String)> },
    #[error("no caret `{0}` is installed")]
    NotInstalled(String),
    #[error("caret `{0}` has no previous version to roll back to")]
    NoPrevious(String),
    #[error("cannot grant `{capability}` to `{id}`: its manifest does not ask for it (it asks for: {requested})")]
    NotRequested { id: String, capability: String, requested: String },
    #[error("{}:{line}: corrupt {what}: {reason}; the file was left untouched", path.display())]
    Corrupt { path: PathBuf, what: &'static str, line: usize, reason: String },
    #[error("configuration `{key}`: {message}{}", source_file.as_ref().map(|p| format!(" (in {})", p.display())).unwrap_or_default())]
    Config { key: String, message: String, source_file: Option<PathBuf> },
    #[error("engine: {0}")]
    Engine(String),
    #[error(transparent)]
    Call(#[from] CallError),
}

impl KernelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        KernelError::Io { path: path.into(), source }
    }
}
