//! What a caret's store holds, and the host side of its imports: WASI built from its grants
//! only, logging and streaming, the proxy, and the process import.

use crate::audit::AuditLog;
use crate::capability::{Capability, CapabilitySet, FsMode, FsScope};
use crate::error::{CallError, ErrorCode};
use crate::kernel::{KernelInner, Principal};
use crate::wit::since_v0_1_0 as v1;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Stderr kept per instance so a trap can be explained with the caret's own last words.
const STDERR_CAPACITY: usize = 256 * 1024;

/// Receives what a call streams while it runs.
pub trait CallObserver: Send + Sync {
    /// A chunk of output (`host.emit`), e.g. one token of an instrument.
    fn chunk(&self, _caret: &str, _chunk: &str) {}
    /// Progress of the call.
    fn progress(&self, _caret: &str, _done: u64, _total: u64, _message: &str) {}
}

/// Caps linear memory and remembers whether the cap was hit, so a trap can say "out of memory".
pub(crate) struct MemoryCap {
    pub bytes: usize,
    pub hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.bytes {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }
    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The data of one caret instance's store.
pub(crate) struct CaretState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryCap,
    pub caret: Arc<str>,
    pub grants: Arc<CapabilitySet>,
    pub kernel: Weak<KernelInner>,
    pub audit: Arc<AuditLog>,
    pub observer: Option<Arc<dyn CallObserver>>,
    /// When the current call must end; bounds processes the caret spawns too.
    pub deadline: Instant,
    pub stderr: MemoryOutputPipe,
    /// Whether `/` is the sentinel (it is not when a command's workspace is mounted there).
    pub sentinel_mounted: bool,
    /// The resource handle of the sentinel `/` mount, once the guest has asked for preopens.
    pub sentinel: Option<u32>,
    /// Which granted scope (`workspace`, `workspace/src`, `data` …) each directory handle
    /// opened from a preopen lies in, so allowed uses are audited against the grant they used.
    pub fs_scopes: std::collections::HashMap<u32, Arc<str>>,
    /// The first capability refused during the current call; a failing call is then reported
    /// as `denied` with it, however the caret phrased its error.
    pub denial: DenialSlot,
}

/// Shared with the socket check, which runs outside the store.
pub(crate) type DenialSlot = Arc<std::sync::Mutex<Option<String>>>;

impl WasiView for CaretState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Where a caret's scopes live on the host.
#[derive(Clone, Debug)]
pub(crate) struct ScopeRoots {
    pub workspace: PathBuf,
    pub data: PathBuf,
    pub cache: PathBuf,
    /// An empty directory mounted read-only at `/`, so that every path outside the granted
    /// scopes reaches the host, where it is refused and audited (see `wasi_guard`).
    pub sentinel: PathBuf,
    /// Mount a granted workspace at `/` instead of `/workspace`. For plain WASI commands:
    /// wasi-libc resolves relative paths against `/`, so file arguments then mean the workspace.
    pub workspace_at_root: bool,
}

impl ScopeRoots {
    /// The roots of `owner` (a caret id, or a command's name) in a home: its own data and cache
    /// directories, the shared workspace and the sentinel.
    pub fn for_owner(layout: &crate::registry::HomeLayout, workspace: &Path, owner: &str, workspace_at_root: bool) -> Self {
        Self {
            workspace: workspace.to_path_buf(),
            data: layout.caret_data(owner),
            cache: layout.caret_cache(owner),
            sentinel: layout.sentinel_root(),
            workspace_at_root,
        }
    }

    /// Host directory and guest mount point of a scope.
    fn resolve(&self, scope: &FsScope) -> (PathBuf, String) {
        let ws = if self.workspace_at_root { "" } else { "/workspace" };
        match scope {
            FsScope::Workspace { sub: None } if self.workspace_at_root => (self.workspace.clone(), "/".to_owned()),
            FsScope::Workspace { sub: None } => (self.workspace.clone(), "/workspace".to_owned()),
            FsScope::Workspace { sub: Some(s) } => (self.workspace.join(s), format!("{ws}/{s}")),
            FsScope::Data => (self.data.clone(), "/data".to_owned()),
            FsScope::Cache => (self.cache.clone(), "/cache".to_owned()),
        }
    }
}

/// Builds the WASI context of one instance from its grants and nothing else: no inherited
/// environment, arguments or directories, and every socket address checked against grants.
/// `b` comes with stdio (and arguments, for commands) already set by the caller; the caller
/// builds it (preview 2, or preview 1 for core modules). `sentinel` asks for the audited `/`
/// mount (only preview-2 guests go through the wrappers that use it); returns whether it was
/// mounted.
pub(crate) fn configure_wasi(
    b: &mut WasiCtxBuilder,
    caret: &str,
    grants: &Arc<CapabilitySet>,
    roots: &ScopeRoots,
    audit: &Arc<AuditLog>,
    denial: &DenialSlot,
    sentinel: bool,
) -> bool {

    // One preopen per scope, read-write where a write grant covers it.
    let mut mounts: Vec<(FsScope, FsMode)> = Vec::new();
    for cap in grants.iter() {
        if let Capability::Fs { mode, scope } = cap {
            match mounts.iter_mut().find(|(s, _)| s == scope) {
                Some((_, m)) if *mode == FsMode::Write => *m = FsMode::Write,
                Some(_) => {}
                None => mounts.push((scope.clone(), *mode)),
            }
        }
    }
    let mut root_taken = false;
    for (scope, mode) in mounts {
        let (host, guest) = roots.resolve(&scope);
        if matches!(scope, FsScope::Data | FsScope::Cache) {
            let _ = std::fs::create_dir_all(&host);
        }
        let perms = match mode {
            FsMode::Read => FsPerms::ReadOnly,
            FsMode::Write => FsPerms::ReadWrite,
        };
        match b.preopened_dir(&host, &guest, perms) {
            Ok(_) => root_taken |= guest == crate::wasi_guard::SENTINEL_MOUNT,
            Err(e) => {
                tracing::warn!(caret, scope = %scope, dir = %host.display(), error = %e, "granted scope cannot be opened; not mounted")
            }
        }
    }

    let sentinel_mounted = sentinel
        && !root_taken
        && match b.preopened_dir(&roots.sentinel, crate::wasi_guard::SENTINEL_MOUNT, FsPerms::ReadOnly) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(caret, error = %e, "cannot mount the sentinel root; out-of-scope opens will not be audited");
                false
            }
        };

    for cap in grants.iter() {
        if let Capability::Env { name } = cap {
            match name.strip_suffix('*') {
                Some(prefix) => {
                    for (k, v) in std::env::vars() {
                        if k.starts_with(prefix) {
                            b.env(k, v);
                        }
                    }
                }
                None => {
                    if let Ok(v) = std::env::var(name) {
                        b.env(name, v);
                    }
                }
            }
        }
    }

    // Sockets are switched on at the API level so that every address reaches the check below,
    // which decides from the grants and audits each denial.
    b.allow_tcp(true);
    b.allow_udp(true);
    b.allow_ip_name_lookup(false);
    let grants = Arc::clone(grants);
    let audit = Arc::clone(audit);
    let caret_id: Arc<str> = Arc::from(caret);
    let denial = Arc::clone(denial);
    b.socket_addr_check(move |addr: SocketAddr, use_| {
        let allowed = socket_allowed(&grants, addr, &format!("{use_:?}"));
        if !allowed {
            let capability = Capability::NetConnect { host: addr.ip().to_string(), port: Some(addr.port()) }.to_string();
            audit.denied(
                &format!("caret:{caret_id}"),
                Some(&caret_id),
                &capability,
                &addr.to_string(),
                Some(format!("{use_:?}")),
            );
            note(&denial, capability);
        }
        if allowed && addr.port() != 0 {
            let capability = Capability::NetConnect { host: addr.ip().to_string(), port: Some(addr.port()) }.to_string();
            audit.allowed(&format!("caret:{caret_id}"), Some(&caret_id), Some(&capability), &addr.to_string());
        }
        Box::pin(async move { allowed })
    });
    sentinel_mounted
}

fn note(slot: &DenialSlot, capability: String) {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_none() {
        *slot = Some(capability);
    }
}

/// Whether a socket use is covered by a `net.connect` grant. The implicit bind to the wildcard
/// address and port 0 that precedes a connect carries no traffic and is allowed (listening is
/// checked on its own); explicit binds, listening, accepting and UDP are never granted.
fn socket_allowed(grants: &CapabilitySet, addr: SocketAddr, use_: &str) -> bool {
    match use_ {
        "TcpBind" => addr.ip().is_unspecified() && addr.port() == 0,
        "TcpConnect" => {
            let ip = addr.ip();
            let wanted = Capability::NetConnect { host: ip.to_string(), port: Some(addr.port()) };
            grants.allows(&wanted)
                || (ip.is_loopback()
                    && grants.allows(&Capability::NetConnect { host: "localhost".to_owned(), port: Some(addr.port()) }))
        }
        _ => false,
    }
}

impl CaretState {
    /// The state of one instance. `builder` carries stdin, stdout and arguments (a caret's
    /// are empty); stderr is kept for diagnostics and everything else comes from `grants`.
    pub fn new(
        mut builder: WasiCtxBuilder,
        caret: Arc<str>,
        grants: Arc<CapabilitySet>,
        roots: &ScopeRoots,
        memory_bytes: u64,
        kernel: Weak<KernelInner>,
        audit: Arc<AuditLog>,
    ) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        builder.stderr(stderr.clone());
        let denial = DenialSlot::default();
        let sentinel_mounted = configure_wasi(&mut builder, &caret, &grants, roots, &audit, &denial, true);
        let wasi = builder.build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap { bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX), hit: false },
            caret,
            grants,
            kernel,
            audit,
            observer: None,
            deadline: Instant::now(),
            stderr,
            sentinel_mounted,
            sentinel: None,
            fs_scopes: std::collections::HashMap::new(),
            denial,
        }
    }

    /// Remembers a refused capability for the current call (the first one wins).
    pub fn note_denial(&self, capability: String) {
        note(&self.denial, capability);
    }

    /// Takes the refusal noted during the call that just ended.
    pub fn take_denial(&self) -> Option<String> {
        self.denial.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn principal(&self) -> String {
        format!("caret:{}", self.caret)
    }

    /// The last lines the caret wrote to stderr (a panic message, typically).
    pub fn stderr_tail(&self) -> String {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(3)..].join(" | ")
    }
}

/// Adds WASI and the Symphony host interfaces (every API version) to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<CaretState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    crate::wasi_guard::wrap(linker)?;
    v1::operator::symphony::caret::types::add_to_linker::<CaretState, HasSelf<CaretState>>(linker, |s| s)?;
    v1::operator::symphony::caret::host::add_to_linker::<CaretState, HasSelf<CaretState>>(linker, |s| s)?;
    v1::operator::symphony::caret::proxy::add_to_linker::<CaretState, HasSelf<CaretState>>(linker, |s| s)?;
    v1::operator::symphony::caret::process::add_to_linker::<CaretState, HasSelf<CaretState>>(linker, |s| s)?;
    v1::motif::symphony::caret::ui::add_to_linker::<CaretState, HasSelf<CaretState>>(linker, |s| s)?;
    Ok(())
}

impl v1::operator::symphony::caret::types::Host for CaretState {}
impl v1::motif::symphony::caret::ui::Host for CaretState {}

impl v1::operator::symphony::caret::host::Host for CaretState {
    fn log(&mut self, level: v1::LogLevel, message: String) {
        let caret = &*self.caret;
        match level {
            v1::LogLevel::Trace => tracing::trace!(caret, "{message}"),
            v1::LogLevel::Debug => tracing::debug!(caret, "{message}"),
            v1::LogLevel::Info => tracing::info!(caret, "{message}"),
            v1::LogLevel::Warn => tracing::warn!(caret, "{message}"),
            v1::LogLevel::Error => tracing::error!(caret, "{message}"),
        }
    }

    fn progress(&mut self, done: u64, total: u64, message: String) {
        if let Some(o) = &self.observer {
            o.progress(&self.caret, done, total, &message);
        }
    }

    fn emit(&mut self, chunk: String) {
        if let Some(o) = &self.observer {
            o.chunk(&self.caret, &chunk);
        }
    }
}

pub(crate) fn to_wit_error(e: CallError) -> v1::Error {
    let code = match e.code {
        ErrorCode::InvalidInput => v1::ErrorCode::InvalidInput,
        ErrorCode::NotFound => v1::ErrorCode::NotFound,
        ErrorCode::Denied => v1::ErrorCode::Denied,
        ErrorCode::Unsupported => v1::ErrorCode::Unsupported,
        _ => v1::ErrorCode::Failed,
    };
    let message = match e.code {
        ErrorCode::InvalidInput | ErrorCode::NotFound | ErrorCode::Denied | ErrorCode::Unsupported | ErrorCode::Failed => e.message,
        other => format!("{other}: {}", e.message),
    };
    v1::Error { code, message, capability: e.capability }
}

impl v1::operator::symphony::caret::proxy::Host for CaretState {
    fn invoke(&mut self, target: String, op: String, payload: String) -> Result<String, v1::Error> {
        let Some(kernel) = self.kernel.upgrade() else {
            return Err(v1::Error { code: v1::ErrorCode::Failed, message: "kernel is shutting down".into(), capability: None });
        };
        let principal = Principal::Caret(self.caret.to_string());
        // Compiling a callee loaded for this call is the kernel's work, not the caller's: a
        // cold cache on a busy machine must not time out a caller whose own code is quick.
        let loading_before = crate::kernel::time_spent_loading();
        let answer = crate::kernel::invoke(&kernel, &principal, &target, &op, &payload, self.observer.clone());
        self.deadline += crate::kernel::time_spent_loading().saturating_sub(loading_before);
        answer.map_err(to_wit_error)
    }
}

impl v1::operator::symphony::caret::process::Host for CaretState {
    fn exec(
        &mut self,
        program: String,
        args: Vec<String>,
        stdin: Vec<u8>,
    ) -> Result<v1::operator::symphony::caret::process::ExecOutput, v1::Error> {
        let wanted = Capability::ProcessExec { program: program.clone(), args: args.clone() };
        let command_line = std::iter::once(program.as_str()).chain(args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ");
        if !self.grants.allows(&wanted) {
            self.audit.denied(&self.principal(), Some(&self.caret), &wanted.to_string(), &command_line, None);
            self.note_denial(wanted.to_string());
            return Err(v1::Error {
                code: v1::ErrorCode::Denied,
                message: format!("running `{command_line}` needs a grant"),
                capability: Some(wanted.to_string()),
            });
        }
        self.audit.allowed(&self.principal(), Some(&self.caret), Some(&wanted.to_string()), &command_line);
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let workspace = self.kernel.upgrade().map(|k| k.workspace.clone());
        run_process(&program, &args, &stdin, remaining, workspace.as_deref())
            .map(|(status, stdout, stderr)| v1::operator::symphony::caret::process::ExecOutput { status, stdout, stderr })
            .map_err(|message| v1::Error { code: v1::ErrorCode::Failed, message, capability: None })
    }
}

/// Runs a granted command line with an empty environment (but `PATH`, to find the program),
/// in the workspace, killed when the calling caret's time runs out.
fn run_process(
    program: &str,
    args: &[String],
    stdin: &[u8],
    budget: Duration,
    cwd: Option<&Path>,
) -> Result<(i32, Vec<u8>, Vec<u8>), String> {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let mut child_stdin = child.stdin.take();
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(mut s) = child_stdin.take() {
            let _ = s.write_all(&input);
        }
    });
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut buf);
        }
        buf
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= budget => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{program}` ran past the caller's time limit and was killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("waiting for `{program}`: {e}")),
        }
    };
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok((status.code().unwrap_or(-1), stdout, stderr))
}
