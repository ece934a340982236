//! A kernel on a fresh home and workspace, with helpers to install and grant built carets.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use symphony_kernel::{
    AuditLog, AuditRecord, CallError, CallObserver, Capability, Config, Decision, Kernel, KernelOptions, Principal,
};

/// `extensions/` of this checkout.
pub fn extensions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("extensions")
}

/// The directory of a caret; panics with the fix if it has not been built.
pub fn caret_dir(name: &str) -> PathBuf {
    let dir = [extensions().join(name), extensions().join("tests").join(name)]
        .into_iter()
        .find(|d| d.is_dir())
        .unwrap_or_else(|| panic!("no caret `{name}` in extensions/"));
    let built = dir.join("build");
    assert!(
        built.is_dir() && std::fs::read_dir(&built).map(|mut d| d.next().is_some()).unwrap_or(false),
        "caret `{name}` is not built: run `cargo xtask carets` (or `cargo xtask test`)"
    );
    dir
}

/// The built `.wasm` of a package in `extensions/`.
pub fn built_wasm(package_dir: &str, file: &str) -> PathBuf {
    let path = caret_dir(package_dir).join("build").join(file);
    assert!(path.is_file(), "{} missing: run `cargo xtask carets`", path.display());
    path
}

pub struct Fixture {
    pub root: tempfile::TempDir,
    pub kernel: Kernel,
}

pub fn cap(text: &str) -> Capability {
    text.parse().unwrap_or_else(|e| panic!("{e}"))
}

impl Fixture {
    /// A kernel whose workspace holds a few files, beside a `secret.txt` outside it.
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let ws = root.path().join("workspace");
        std::fs::create_dir_all(ws.join("src")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(ws.join("notes.md"), "# Notes\n\nTODO: write more notes\nsome words here\n")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            ws.join("src/lib.rs"),
            "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\n// FIXME: overflow\npub fn add_three(a: i32, b: i32, c: i32) -> i32 {\n    add(add(a, b), c)\n}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.path().join("secret.txt"), "TOP-SECRET-CONTENT").unwrap_or_else(|e| panic!("{e}"));
        let kernel = Kernel::open(KernelOptions { home: root.path().join("home"), workspace: ws, config })
            .unwrap_or_else(|e| panic!("open kernel: {e}"));
        Self { root, kernel }
    }

    pub fn workspace(&self) -> PathBuf {
        self.root.path().join("workspace")
    }

    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    pub fn install(&self, name: &str) -> &Self {
        self.kernel.install_dir(&caret_dir(name)).unwrap_or_else(|e| panic!("install {name}: {e}"));
        self
    }

    pub fn grant(&self, id: &str, caps: &[&str]) -> &Self {
        let caps: Vec<Capability> = caps.iter().map(|c| cap(c)).collect();
        self.kernel.grant(id, &caps, "test").unwrap_or_else(|e| panic!("grant {id}: {e}"));
        self
    }

    pub fn revoke(&self, id: &str, caps: &[&str]) -> &Self {
        let caps: Vec<Capability> = caps.iter().map(|c| cap(c)).collect();
        self.kernel.revoke(id, &caps).unwrap_or_else(|e| panic!("revoke {id}: {e}"));
        self
    }

    pub fn call(&self, id: &str, op: &str, payload: &str) -> Result<String, CallError> {
        self.kernel.invoke(&Principal::User, &format!("caret/{id}"), op, payload)
    }

    pub fn ok(&self, id: &str, op: &str, payload: &str) -> String {
        self.call(id, op, payload).unwrap_or_else(|e| panic!("{id} {op}: {e}"))
    }

    pub fn json(&self, id: &str, op: &str, payload: &str) -> serde_json::Value {
        let text = self.ok(id, op, payload);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{id} {op} answered non-JSON `{text}`: {e}"))
    }

    pub fn audit(&self) -> Vec<AuditRecord> {
        self.kernel.audit_log().flush();
        let (records, bad) = AuditLog::read(self.kernel.audit_log().path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(bad.is_empty(), "unreadable audit lines: {bad:?}");
        records
    }

    /// Denials recorded for `caret` whose capability starts with `prefix`.
    pub fn denials(&self, caret: &str, prefix: &str) -> Vec<AuditRecord> {
        self.audit()
            .into_iter()
            .filter(|r| r.decision == Decision::Denied && r.caret.as_deref() == Some(caret))
            .filter(|r| r.capability.as_deref().is_some_and(|c| c.starts_with(prefix)))
            .collect()
    }
}

/// Collects streamed chunks and progress reports.
#[derive(Default)]
pub struct Recorder {
    pub chunks: Mutex<Vec<String>>,
    pub progress: Mutex<Vec<(u64, u64)>>,
}

impl CallObserver for Recorder {
    fn chunk(&self, _caret: &str, chunk: &str) {
        self.chunks.lock().unwrap_or_else(|p| p.into_inner()).push(chunk.to_owned());
    }
    fn progress(&self, _caret: &str, done: u64, total: u64, _message: &str) {
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).push((done, total));
    }
}

pub fn recorder() -> Arc<Recorder> {
    Arc::new(Recorder::default())
}
