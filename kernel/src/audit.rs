//! The append-only audit log: one JSON object per line, every denial written at once,
//! allowed uses counted and written at first use and then every `sample`-th time.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What the kernel decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allowed,
    Denied,
    /// A resource limit stopped the caret (time, memory).
    Limited,
    /// Something the kernel did to a caret: a version swapped in, a swap refused.
    Event,
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC timestamp with milliseconds.
    pub time: String,
    /// Who acted: `user`, `caret:<id>`, `conductor`.
    pub principal: String,
    /// The caret concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caret: Option<String>,
    /// The capability checked, e.g. `fs.read:workspace`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// What was touched: `caret/text-tools#grep`, a path, an address, a command line.
    pub target: String,
    pub decision: Decision,
    /// How many uses this line stands for (allowed uses are aggregated).
    #[serde(default = "one")]
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

fn one() -> u64 {
    1
}

/// Allowed uses of one key that are counted but not yet on record.
struct Pending {
    record: AllowedUse,
    unwritten: u64,
}

/// What an allowed-use record says besides its count; built only when first seen.
#[derive(Clone, Debug)]
pub struct AllowedUse {
    pub principal: String,
    pub caret: Option<String>,
    pub capability: Option<String>,
    pub target: String,
}

/// Hashes the parts that identify a use without allocating; 64 bits make two distinct uses
/// sharing a count practically impossible.
fn use_key(parts: &[&str]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

/// A line that could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub reason: String,
}

/// The audit log of one Symphony home.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
    /// Allowed uses not yet written, per hash of what identifies the use (see `allowed_use`).
    pending: Mutex<HashMap<u64, Pending>>,
    sample: u64,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("path", &self.path).finish()
    }
}

pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl AuditLog {
    /// Opens (creating) the log at `path`; allowed uses are written every `sample`-th time.
    pub fn open(path: &Path, sample: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(Some(file)),
            pending: Mutex::new(HashMap::new()),
            sample: sample.max(1),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `record` as one line. One `write` per line on an append-mode file keeps lines
    /// whole even with several kernel processes on one home.
    pub fn write(&self, record: &AuditRecord) {
        let Ok(mut line) = serde_json::to_vec(record) else { return };
        line.push(b'\n');
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = guard.as_mut()
            && let Err(e) = file.write_all(&line)
        {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write audit log");
        }
    }

    /// Records a denial, always.
    pub fn denied(&self, principal: &str, caret: Option<&str>, capability: &str, target: &str, detail: Option<String>) {
        tracing::info!(principal, caret, capability, target, "denied");
        self.write(&AuditRecord {
            time: now_rfc3339(),
            principal: principal.to_owned(),
            caret: caret.map(str::to_owned),
            capability: Some(capability.to_owned()),
            target: target.to_owned(),
            decision: Decision::Denied,
            count: 1,
            detail,
        });
    }

    /// Records a limit that stopped a caret, always.
    pub fn limited(&self, principal: &str, caret: &str, limit: &str, target: &str, detail: String) {
        self.write(&AuditRecord {
            time: now_rfc3339(),
            principal: principal.to_owned(),
            caret: Some(caret.to_owned()),
            capability: Some(limit.to_owned()),
            target: target.to_owned(),
            decision: Decision::Limited,
            count: 1,
            detail: Some(detail),
        });
    }

    /// Records a kernel event about a caret (`caret.swapped` …), always.
    pub fn event(&self, caret: &str, event: &str, target: &str, detail: String) {
        self.write(&AuditRecord {
            time: now_rfc3339(),
            principal: "kernel".to_owned(),
            caret: Some(caret.to_owned()),
            capability: Some(event.to_owned()),
            target: target.to_owned(),
            decision: Decision::Event,
            count: 1,
            detail: Some(detail),
        });
    }

    /// Counts an allowed use; writes the first one and then every `sample`-th.
    pub fn allowed(&self, principal: &str, caret: Option<&str>, capability: Option<&str>, target: &str) {
        self.allowed_use(&[principal, capability.unwrap_or_default(), target], || AllowedUse {
            principal: principal.to_owned(),
            caret: caret.map(str::to_owned),
            capability: capability.map(str::to_owned),
            target: target.to_owned(),
        });
    }

    /// Counts an allowed use identified by `key` (borrowed parts, hashed); `describe` builds
    /// the record's text only when a line is actually written. This keeps the proxy's hot path
    /// free of allocations.
    pub fn allowed_use(&self, key: &[&str], describe: impl FnOnce() -> AllowedUse) {
        let key = use_key(key);
        let write = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            match pending.get_mut(&key) {
                // First use: on record at once, and remembered so later ones are counted.
                None => {
                    let record = describe();
                    pending.insert(key, Pending { record: record.clone(), unwritten: 0 });
                    Some((record, 1))
                }
                Some(p) => {
                    p.unwritten += 1;
                    (p.unwritten >= self.sample).then(|| (p.record.clone(), std::mem::take(&mut p.unwritten)))
                }
            }
        };
        if let Some((record, count)) = write {
            self.write_allowed(record, count);
        }
    }

    fn write_allowed(&self, r: AllowedUse, count: u64) {
        self.write(&AuditRecord {
            time: now_rfc3339(),
            principal: r.principal,
            caret: r.caret,
            capability: r.capability,
            target: r.target,
            decision: Decision::Allowed,
            count,
            detail: None,
        });
    }

    /// Writes the counts of allowed uses not yet on record.
    pub fn flush(&self) {
        let drained: Vec<_> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending
                .values_mut()
                .filter(|p| p.unwritten > 0)
                .map(|p| (p.record.clone(), std::mem::take(&mut p.unwritten)))
                .collect()
        };
        for (record, count) in drained {
            self.write_allowed(record, count);
        }
    }

    /// Reads every record back; lines that do not parse are returned separately, never fatal.
    pub fn read(path: &Path) -> std::io::Result<(Vec<AuditRecord>, Vec<BadLine>)> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
            Err(e) => return Err(e),
        };
        let mut records = Vec::new();
        let mut bad = Vec::new();
        for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
            let line = line?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<AuditRecord>(&line) {
                Ok(r) => records.push(r),
                Err(e) => bad.push(BadLine { line: i + 1, reason: e.to_string() }),
            }
        }
        Ok((records, bad))
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.flush();
    }
}
